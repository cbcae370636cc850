//! The worker side: the ingest topic consumed as a group, each batch handed to the pipeline
//! through an in-process queue, each partition's offset committed up to the batches stored.
//!
//! - **Nothing skipped**: a partition's committed offset never passes a batch that is not stored.
//!   A worker that dies leaves its partitions at their committed offsets; the next owner reads
//!   from there, and storage recognises (by event id) what had been stored after that point, so
//!   each event is stored and counted once.
//! - **A write that fails** puts its batch back at the head of its partition, which is paused and
//!   tried again every half second until storage takes it.
//! - **Bounded memory, one partition at a time**: the in-process queue keeps its capacity and
//!   per-tenant share; a batch that does not fit is held and its partition paused (other
//!   partitions go on) until it fits.
//! - **Poison**: a message that cannot be read (unknown format version, bad headers or value) goes
//!   to the dead-letter topic with the reason, and the partition goes on.
//! - **Rebalancing**: when partitions are taken away, what is stored is committed first; batches
//!   of those partitions still in the pipeline are stored but no longer committed here (the next
//!   owner reads them again and storage recognises them).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_core::{EventRecord, TenantId};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{KafkaConfig, codec, dlq};
use crate::memory::MemoryQueue;
use crate::{BusConsumer, BusError, Committed};

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Messages read from the ingest topic.
    pub consumed: AtomicU64,
    /// Batches stored (acknowledged by the pipeline).
    pub stored: AtomicU64,
    /// Batches put back after a failed write.
    pub retried: AtomicU64,
    /// Messages sent to the dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Offset commits that the broker refused (after a rebalance, say).
    pub commit_failures: AtomicU64,
}

/// A running consumer; [`Worker::stop`] ends it.
pub struct Worker {
    /// Set to the grace the pipeline has to store what it holds.
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
    pub stats: Arc<WorkerStats>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Worker")
    }
}

impl Worker {
    /// Stops reading, waits up to `grace` for the batches in the pipeline to be stored, commits
    /// and leaves the group. The pipeline's consumer ends after that.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(Some(grace));
        if tokio::time::timeout(grace + Duration::from_secs(10), self.task)
            .await
            .is_err()
        {
            tracing::warn!("the Kafka worker did not stop in time");
        }
    }
}

/// A batch not in the pipeline: waiting for room, or put back after a failed write.
struct Held {
    offset: i64,
    tenant: TenantId,
    payload: Arc<[u8]>,
    /// Decoded already (waiting for room); `None` after a failed write (decoded again).
    events: Option<Vec<EventRecord>>,
}

/// One assigned partition.
struct Part {
    /// Changes on every assignment, so that acknowledgements of an earlier one are ignored.
    epoch: u64,
    /// Offsets read and not yet committed: stored (`true`) or not.
    inflight: BTreeMap<i64, bool>,
    /// The offset to commit next (one past the last stored batch before any unstored one).
    commit: Option<i64>,
    held: VecDeque<Held>,
    paused: bool,
}

impl Part {
    fn mark_stored(&mut self, offset: i64) {
        if let Some(done) = self.inflight.get_mut(&offset) {
            *done = true;
        }
        while let Some((&o, &true)) = self.inflight.first_key_value() {
            self.inflight.pop_first();
            self.commit = Some(o + 1);
        }
    }
}

#[derive(Default)]
struct Parts {
    map: HashMap<i32, Part>,
    epochs: u64,
}

impl Parts {
    /// What can be committed, taken (so that it is committed once).
    fn take_commits(&mut self, topic: &str, only: Option<&[i32]>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (&p, part) in self.map.iter_mut() {
            if only.is_some_and(|o| !o.contains(&p)) {
                continue;
            }
            if let Some(next) = part.commit.take() {
                let _ = tpl.add_partition_offset(topic, p, Offset::Offset(next));
            }
        }
        tpl
    }
}

struct Ctx {
    parts: Arc<Mutex<Parts>>,
    topic: String,
    stats: Arc<WorkerStats>,
}

impl ClientContext for Ctx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        super::Quiet.log(level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        super::Quiet.error(error, reason);
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            let mut parts = self.parts.lock().unwrap();
            let commit = parts.take_commits(&self.topic, Some(&revoked));
            for p in &revoked {
                parts.map.remove(p);
            }
            drop(parts);
            tracing::info!(partitions = ?revoked, "partitions revoked");
            if commit.count() > 0
                && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
            {
                self.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "committing revoked partitions failed");
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut parts = self.parts.lock().unwrap();
            let mut assigned = Vec::new();
            for e in tpl.elements() {
                parts.epochs += 1;
                let epoch = parts.epochs;
                parts.map.insert(
                    e.partition(),
                    Part {
                        epoch,
                        inflight: BTreeMap::new(),
                        commit: None,
                        held: VecDeque::new(),
                        paused: false,
                    },
                );
                assigned.push(e.partition());
            }
            drop(parts);
            // A partition paused under an earlier assignment reads again.
            let _ = consumer.resume(tpl);
            tracing::info!(partitions = ?assigned, "partitions assigned");
        }
    }
}

/// A batch's outcome, back from the pipeline.
struct Done {
    partition: i32,
    epoch: u64,
    offset: i64,
    tenant: TenantId,
    payload: Arc<[u8]>,
    result: Result<Committed, BusError>,
}

/// Joins the workers' group and starts consuming. The returned consumer feeds the pipeline
/// (its queue holds at most `capacity` events, `tenant_capacity` of one tenant).
/// Dead letters are sent with `publisher`'s producer.
pub fn spawn(
    publisher: &super::Publisher,
    capacity: usize,
    tenant_capacity: usize,
) -> Result<(BusConsumer, Worker), String> {
    let config = publisher.config().clone();
    let dead_letters = publisher.producer().clone();
    let parts = Arc::new(Mutex::new(Parts::default()));
    let stats = Arc::new(WorkerStats::default());
    let mut c = config.client();
    c.set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A worker killed without leaving is noticed within this, and its partitions reassigned.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        // What librdkafka prefetches is bounded too.
        .set("queued.max.messages.kbytes", "65536");
    let consumer: StreamConsumer<Ctx> = c
        .create_with_context(Ctx {
            parts: parts.clone(),
            topic: config.topic.clone(),
            stats: stats.clone(),
        })
        .map_err(|e| format!("creating the Kafka consumer: {e}"))?;
    consumer
        .subscribe(&[&config.topic])
        .map_err(|e| format!("subscribing to {}: {e}", config.topic))?;
    let (queue, pipeline) = MemoryQueue::new(capacity, tenant_capacity);
    let (stop, stopped) = watch::channel(None);
    let run = Run {
        consumer: Arc::new(consumer),
        parts,
        queue,
        dead_letters,
        config,
        stats: stats.clone(),
    };
    let task = tokio::spawn(run.run(stopped));
    Ok((pipeline, Worker { stop, task, stats }))
}

struct Run {
    consumer: Arc<StreamConsumer<Ctx>>,
    parts: Arc<Mutex<Parts>>,
    queue: MemoryQueue,
    dead_letters: FutureProducer<super::Quiet>,
    config: KafkaConfig,
    stats: Arc<WorkerStats>,
}

/// What a message said, read before it is let go.
enum Read {
    Batch {
        tenant: TenantId,
        events: Vec<EventRecord>,
    },
    Poison {
        reason: String,
        headers: Vec<(String, Option<Vec<u8>>)>,
    },
}

impl Run {
    async fn run(self, mut stop: watch::Receiver<Option<Duration>>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        // A broker that is down fails every read: said when it starts and every minute after.
        let mut said: Option<(String, std::time::Instant)> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let room = self.queue.depth() < self.queue.capacity;
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                Some(done) = done_rx.recv() => self.on_done(done, &done_tx),
                _ = tick.tick() => {
                    self.retry_held(&done_tx);
                    self.commit(CommitMode::Async);
                }
                m = self.consumer.recv(), if room => match m {
                    Ok(m) => {
                        said = None;
                        self.on_message(&m, &done_tx).await
                    }
                    Err(e) => {
                        let e = e.to_string();
                        if said.as_ref().is_none_or(|(s, at)| *s != e || at.elapsed() > Duration::from_secs(60)) {
                            tracing::warn!(error = %e, "reading the ingest topic failed");
                            said = Some((e, std::time::Instant::now()));
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
        // Stopping: what is in the pipeline is stored (or not) within the grace, then committed.
        let grace = stop.borrow().unwrap_or_default();
        let deadline = tokio::time::Instant::now() + grace;
        while self.in_pipeline() > 0 {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some(done)) => self.on_done(done, &done_tx),
                _ => break,
            }
        }
        self.commit(CommitMode::Sync);
        drop(self.queue);
        // Leaving the group can hang on a broker that is gone: not longer than a few seconds.
        let consumer = self.consumer;
        let leave = tokio::task::spawn_blocking(move || {
            consumer.unsubscribe();
            drop(consumer);
        });
        if tokio::time::timeout(Duration::from_secs(5), leave)
            .await
            .is_err()
        {
            tracing::warn!("leaving the consumer group timed out");
        }
    }

    fn in_pipeline(&self) -> usize {
        let parts = self.parts.lock().unwrap();
        parts
            .map
            .values()
            .map(|p| p.inflight.values().filter(|d| !**d).count() - p.held.len())
            .sum()
    }

    async fn on_message(&self, m: &BorrowedMessage<'_>, done: &mpsc::UnboundedSender<Done>) {
        self.stats.consumed.fetch_add(1, Ordering::Relaxed);
        let (partition, offset) = (m.partition(), m.offset());
        let payload: Arc<[u8]> = m.payload().unwrap_or_default().into();
        let read = read(m, &payload);
        let (tenant, events) = match read {
            Read::Batch { tenant, events } => (tenant, events),
            Read::Poison { reason, headers } => {
                if !self.parts.lock().unwrap().map.contains_key(&partition) {
                    return; // revoked meanwhile: the next owner reads it
                }
                tracing::warn!(partition, offset, %reason, "dead-lettering a message");
                dlq::send(
                    &self.dead_letters,
                    &self.config,
                    partition,
                    offset,
                    &payload,
                    &headers,
                    &reason,
                )
                .await;
                self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
                if let Some(part) = self.parts.lock().unwrap().map.get_mut(&partition) {
                    // In order: committed past once everything before it is stored.
                    part.inflight.insert(offset, false);
                    part.mark_stored(offset);
                }
                return;
            }
        };
        let mut parts = self.parts.lock().unwrap();
        let Some(part) = parts.map.get_mut(&partition) else {
            return; // revoked meanwhile: the next owner reads it
        };
        part.inflight.insert(offset, false);
        let epoch = part.epoch;
        if part.held.is_empty() {
            self.publish(
                part, partition, epoch, offset, tenant, payload, events, done,
            );
        } else {
            part.held.push_back(Held {
                offset,
                tenant,
                payload,
                events: Some(events),
            });
        }
    }

    /// Into the pipeline, or held (and the partition paused) when the queue has no room for it.
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        part: &mut Part,
        partition: i32,
        epoch: u64,
        offset: i64,
        tenant: TenantId,
        payload: Arc<[u8]>,
        events: Vec<EventRecord>,
        done: &mpsc::UnboundedSender<Done>,
    ) -> bool {
        match self.queue.publish(tenant, events) {
            Ok(ack) => {
                let done = done.clone();
                tokio::spawn(async move {
                    let result = ack.await.unwrap_or(Err(BusError::Stopped));
                    let _ = done.send(Done {
                        partition,
                        epoch,
                        offset,
                        tenant,
                        payload,
                        result,
                    });
                });
                true
            }
            Err((_, events)) => {
                part.held.push_front(Held {
                    offset,
                    tenant,
                    payload,
                    events: Some(events),
                });
                self.pause(part, partition);
                false
            }
        }
    }

    fn pause(&self, part: &mut Part, partition: i32) {
        if !part.paused {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&self.config.topic, partition);
            if let Err(e) = self.consumer.pause(&tpl) {
                tracing::warn!(error = %e, partition, "pausing a partition failed");
            }
            part.paused = true;
        }
    }

    fn on_done(&self, d: Done, done: &mpsc::UnboundedSender<Done>) {
        let mut parts = self.parts.lock().unwrap();
        let Some(part) = parts.map.get_mut(&d.partition) else {
            return;
        };
        if part.epoch != d.epoch {
            return;
        }
        match d.result {
            Ok(_) => {
                self.stats.stored.fetch_add(1, Ordering::Relaxed);
                part.mark_stored(d.offset);
                if !part.held.is_empty() {
                    let (p, held) = (d.partition, std::mem::take(&mut part.held));
                    self.release(part, p, held, done);
                }
            }
            Err(e) => {
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, partition = d.partition, offset = d.offset,
                    "a batch was not stored: it is tried again");
                part.held.push_front(Held {
                    offset: d.offset,
                    tenant: d.tenant,
                    payload: d.payload,
                    events: None,
                });
                self.pause(part, d.partition);
            }
        }
    }

    /// Every half second: held batches into the pipeline while there is room.
    fn retry_held(&self, done: &mpsc::UnboundedSender<Done>) {
        let mut parts = self.parts.lock().unwrap();
        for (&p, part) in parts.map.iter_mut() {
            if !part.held.is_empty() {
                let held = std::mem::take(&mut part.held);
                self.release(part, p, held, done);
            }
        }
    }

    /// Publishes held batches in order until one does not fit; resumes the partition when all
    /// went.
    fn release(
        &self,
        part: &mut Part,
        partition: i32,
        mut held: VecDeque<Held>,
        done: &mpsc::UnboundedSender<Done>,
    ) {
        while let Some(h) = held.pop_front() {
            let events = match h.events {
                Some(events) => events,
                // It was read before; if it cannot be now, nothing changed but memory: keep it.
                None => codec::decode(&h.payload).unwrap_or_default(),
            };
            let epoch = part.epoch;
            if !self.publish(
                part, partition, epoch, h.offset, h.tenant, h.payload, events, done,
            ) {
                // `publish` put it back at the head; the rest follow it.
                part.held.extend(held);
                return;
            }
        }
        if part.paused {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&self.config.topic, partition);
            if let Err(e) = self.consumer.resume(&tpl) {
                tracing::warn!(error = %e, partition, "resuming a partition failed");
            }
            part.paused = false;
        }
    }

    fn commit(&self, mode: CommitMode) {
        let tpl = self
            .parts
            .lock()
            .unwrap()
            .take_commits(&self.config.topic, None);
        if tpl.count() > 0
            && let Err(e) = self.consumer.commit(&tpl, mode)
        {
            self.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "committing offsets failed");
        }
    }
}

/// Reads a message's headers and value.
fn read(m: &BorrowedMessage<'_>, payload: &[u8]) -> Read {
    let pairs: Vec<(&str, Option<&[u8]>)> = m
        .headers()
        .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
        .unwrap_or_default();
    let read = codec::head(pairs.iter().copied()).and_then(|head| {
        codec::decode(payload).map(|events| Read::Batch {
            tenant: head.tenant,
            events,
        })
    });
    read.unwrap_or_else(|reason| Read::Poison {
        reason,
        headers: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
            .collect(),
    })
}
