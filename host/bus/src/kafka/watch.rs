//! Reads the broker every second: whether it answers (readiness), the ingest topic's partitions
//! (creating the topics when they do not exist), and the workers' lag on each partition, which
//! ingest holds to `max_lag` and `/metrics` shows.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaConfig;

/// One partition of the ingest topic as last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    pub partition: i32,
    /// The offset the next message will get.
    pub end: i64,
    /// Where the workers' group will go on from (the first offset when it has committed none).
    pub committed: i64,
    /// Batches published and not yet stored.
    pub lag: i64,
}

#[derive(Debug)]
struct State {
    ready: Result<i32, String>,
    lag: Vec<PartitionLag>,
    /// Per partition, the offset after the last message this replica published there. A broker's
    /// high watermark should never be below it, but one was seen to be (tansu 0.6 answers the
    /// offset after the last *record batch's first record*): the later of the two is the end.
    published: std::collections::HashMap<i32, i64>,
}

/// What the last reading found; shared by the publisher, `/readyz` and `/metrics`.
#[derive(Debug)]
pub struct Watch {
    state: RwLock<State>,
}

const TIMEOUT: Duration = Duration::from_secs(3);

impl Watch {
    /// The topic's partition count, or why batches cannot be published now.
    pub fn partitions(&self) -> Result<i32, String> {
        self.state.read().unwrap().ready.clone()
    }

    pub fn lag(&self) -> Vec<PartitionLag> {
        self.state.read().unwrap().lag.clone()
    }

    /// This replica published a message at `offset` of `partition`.
    pub fn published(&self, partition: i32, offset: i64) {
        let mut state = self.state.write().unwrap();
        let end = state.published.entry(partition).or_default();
        *end = (*end).max(offset + 1);
        if let Some(l) = state.lag.iter_mut().find(|l| l.partition == partition)
            && l.end <= offset
        {
            l.end = offset + 1;
            l.lag = l.end - l.committed;
        }
    }

    /// The lag of one partition (0 when it was not read yet).
    pub fn lag_of(&self, partition: i32) -> i64 {
        self.state
            .read()
            .unwrap()
            .lag
            .iter()
            .find(|l| l.partition == partition)
            .map_or(0, |l| l.lag)
    }

    /// Starts reading every `every` until the last other holder of the watch is gone. Not ready
    /// until the first reading succeeds.
    pub fn spawn(config: KafkaConfig, every: Duration) -> Result<Arc<Self>, String> {
        let mut c = config.client();
        c.set("group.id", &config.group)
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer<super::Quiet> = c
            .create_with_context(super::Quiet)
            .map_err(|e| e.to_string())?;
        let admin: AdminClient<super::Quiet> = config
            .client()
            .create_with_context(super::Quiet)
            .map_err(|e| e.to_string())?;
        let watch = Arc::new(Self {
            state: RwLock::new(State {
                ready: Err("the broker has not answered yet".into()),
                lag: Vec::new(),
                published: Default::default(),
            }),
        });
        let held = watch.clone();
        let reader = Arc::new((consumer, admin, config));
        tokio::spawn(async move {
            // The topics are created (when missing) once, at the first answer.
            let mut created = false;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if Arc::strong_count(&held) == 1 {
                    break;
                }
                let r = reader.clone();
                let reading = tokio::task::spawn_blocking(move || {
                    if !created {
                        create_topics(&r.1, &r.2)?;
                    }
                    match read(&r.0, &r.2) {
                        // A broker that lost its topics (one keeping them in memory, restarted).
                        Err(Failed::Missing(_)) => {
                            create_topics(&r.1, &r.2)?;
                            read(&r.0, &r.2).map_err(Failed::into_message)
                        }
                        r => r.map_err(Failed::into_message),
                    }
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
                let mut state = held.state.write().unwrap();
                match reading {
                    Ok(mut lag) => {
                        created = true;
                        for l in &mut lag {
                            if let Some(&end) = state.published.get(&l.partition) {
                                l.end = l.end.max(end);
                                l.lag = (l.end - l.committed).max(0);
                            }
                        }
                        state.ready = Ok(lag.len() as i32);
                        state.lag = lag;
                    }
                    Err(e) => {
                        if state.ready.is_ok() {
                            tracing::warn!(error = %e, "the Kafka broker does not answer");
                        }
                        state.ready = Err(e);
                    }
                }
            }
        });
        Ok(watch)
    }
}

/// One reading (blocking calls).
/// Why a reading failed.
enum Failed {
    Missing(String),
    Broker(String),
}

impl Failed {
    fn into_message(self) -> String {
        match self {
            Self::Missing(m) | Self::Broker(m) => m,
        }
    }
}

fn read(
    consumer: &BaseConsumer<super::Quiet>,
    config: &KafkaConfig,
) -> Result<Vec<PartitionLag>, Failed> {
    let topic = config.topic.as_str();
    let partitions = topic_partitions(consumer, topic).map_err(Failed::Broker)?;
    if partitions == 0 {
        return Err(Failed::Missing(format!("topic {topic} does not exist")));
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, TIMEOUT)
        .map_err(|e| Failed::Broker(format!("reading the workers' offsets: {e}")))?;
    let mut out = Vec::with_capacity(partitions as usize);
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, TIMEOUT)
            .map_err(|e| Failed::Broker(format!("reading partition {p}'s end: {e}")))?;
        let at = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o.max(low),
            _ => low,
        };
        out.push(PartitionLag {
            partition: p,
            end: high,
            committed: at,
            lag: (high - at).max(0),
        });
    }
    Ok(out)
}

/// The topic's partitions; 0 when it does not exist.
fn topic_partitions(consumer: &BaseConsumer<super::Quiet>, topic: &str) -> Result<i32, String> {
    let md = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|e| format!("the broker does not answer: {e}"))?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len() as i32))
}

/// Creates the ingest and dead-letter topics (an existing one is left as it is).
pub(crate) fn create_topics(
    admin: &AdminClient<super::Quiet>,
    config: &KafkaConfig,
) -> Result<(), String> {
    let dead = config.dead_letter_topic();
    let topics = [
        NewTopic::new(
            &config.topic,
            config.partitions,
            TopicReplication::Fixed(config.replication),
        ),
        NewTopic::new(&dead, 1, TopicReplication::Fixed(config.replication)),
    ];
    let results = futures::executor::block_on(
        admin.create_topics(&topics, &AdminOptions::new().request_timeout(Some(TIMEOUT))),
    )
    .map_err(|e| format!("creating the topics: {e}"))?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, "created the topic"),
            Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "the topic exists")
            }
            Err((name, e)) => return Err(format!("creating topic {name}: {e}")),
        }
    }
    Ok(())
}
