//! The ingest bus between the API and the pipeline.
//!
//! The in-process bus (the embedded default) is a queue bounded in *events*, not requests: a
//! publisher that would push it past its capacity is refused at once with [`Saturated`], which the
//! API turns into `429 Retry-After` instead of letting memory grow. Each tenant may hold at most its
//! share of that capacity, so a tenant whose batches wait (its plugins are slow or over budget)
//! fills its own share and gets its own 429s, never its neighbours'. Every published batch carries
//! a one-shot acknowledgement that the pipeline completes only after the batch is committed.
//!
//! The Kafka bus ([`kafka`]) is the scale-out one: ingest replicas publish to a topic partitioned
//! by tenant and answer once the broker has the batch; workers consume it as a group, feed each
//! batch through an in-process queue to the same pipeline, and commit a partition's offsets only up
//! to the batches that are stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use hub_core::{EventRecord, TenantId};
use tokio::sync::{Mutex, OwnedSemaphorePermit, mpsc, oneshot};

pub mod kafka;
mod memory;

use memory::MemoryQueue;

/// What the pipeline reports back for one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    pub inserted: usize,
    pub duplicates: usize,
    /// Events the broker holds durably that a worker stores later (the Kafka bus); duplicates
    /// among them are recognised when they are written.
    pub pending: usize,
}

/// Why a batch was not committed (it was not acknowledged; the client should resend it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("storage is unavailable: {0}")]
    Storage(String),
    #[error("the pipeline stopped before the batch was committed")]
    Stopped,
    #[error("the broker did not acknowledge the batch: {0}")]
    Broker(String),
}

/// The queue (or the tenant's share of it) is full: try again after the pipeline catches up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Saturated {
    #[error("the ingest queue is full ({queued} of {capacity} events queued)")]
    Hub { queued: usize, capacity: usize },
    #[error(
        "this tenant's share of the ingest queue is full ({queued} of {capacity} events of this tenant \
         queued; its plugins or its rate hold them back)"
    )]
    Tenant { queued: usize, capacity: usize },
    #[error(
        "the pipeline workers are {lag} batches behind on this tenant's partition {partition} \
         (at most {bound} are let in)"
    )]
    Lag {
        partition: i32,
        lag: i64,
        bound: i64,
    },
}

/// Why a batch was not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Full: try again after a while (429).
    #[error(transparent)]
    Saturated(#[from] Saturated),
    /// The bus cannot take batches now (the broker does not answer): 503.
    #[error("the ingest bus is unavailable: {0}")]
    Unavailable(String),
    /// An event larger than the bus carries (Kafka: one message): 413.
    #[error("{0}")]
    TooLarge(String),
}

/// Events queued per tenant; an entry goes when its count reaches 0.
pub(crate) type TenantDepths = Arc<StdMutex<HashMap<TenantId, usize>>>;

/// A batch on its way to storage.
pub struct Envelope {
    pub tenant: TenantId,
    pub events: Vec<EventRecord>,
    pub(crate) ack: Option<oneshot::Sender<Result<Committed, BusError>>>,
    pub(crate) _permit: OwnedSemaphorePermit,
    pub(crate) depth: Arc<AtomicUsize>,
    pub(crate) tenant_depths: TenantDepths,
    pub(crate) len: usize,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("tenant", &self.tenant)
            .field("events", &self.len)
            .finish()
    }
}

impl Envelope {
    /// Completes the batch: the publisher's `202` (or error) goes out after this.
    pub fn acknowledge(mut self, result: Result<Committed, BusError>) {
        // The publisher may have gone (client disconnected); the batch is stored either way.
        if let Some(ack) = self.ack.take() {
            let _ = ack.send(result);
        }
    }
}

impl Drop for Envelope {
    fn drop(&mut self) {
        self.depth.fetch_sub(self.len, Ordering::Relaxed);
        let mut depths = self.tenant_depths.lock().unwrap();
        if let Some(d) = depths.get_mut(&self.tenant) {
            *d = d.saturating_sub(self.len);
            if *d == 0 {
                depths.remove(&self.tenant);
            }
        }
    }
}

/// The publishing side, cloned into every request handler: the in-process queue, or a Kafka
/// producer.
#[derive(Clone)]
pub struct BusProducer {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Memory(MemoryQueue),
    Kafka(Arc<kafka::Publisher>),
}

impl std::fmt::Debug for BusProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusProducer")
            .field("kind", &self.kind())
            .field("capacity", &self.capacity())
            .field("depth", &self.depth())
            .finish()
    }
}

/// A pending acknowledgement.
pub type AckReceiver = oneshot::Receiver<Result<Committed, BusError>>;

impl BusProducer {
    /// The Kafka bus's publishing side.
    pub fn kafka(publisher: Arc<kafka::Publisher>) -> Self {
        Self {
            inner: Inner::Kafka(publisher),
        }
    }

    /// The Kafka publisher, when this is the Kafka bus.
    pub fn kafka_publisher(&self) -> Option<&Arc<kafka::Publisher>> {
        match &self.inner {
            Inner::Memory(_) => None,
            Inner::Kafka(k) => Some(k),
        }
    }

    /// Publishes a batch if there is room for all of its events (in the queue and in the tenant's
    /// share of it; on Kafka, in the producer's window and within the lag bound of the tenant's
    /// partitions). The receiver completes once the batch is committed to storage (in-process) or
    /// acknowledged by every in-sync replica of the broker (Kafka).
    pub fn try_publish(
        &self,
        tenant: TenantId,
        events: Vec<EventRecord>,
    ) -> Result<AckReceiver, Refused> {
        match &self.inner {
            Inner::Memory(q) => q
                .publish(tenant, events)
                .map_err(|(s, _)| Refused::Saturated(s)),
            Inner::Kafka(k) => k.publish(tenant, events),
        }
    }

    /// `memory` or `kafka`.
    pub fn kind(&self) -> &'static str {
        match &self.inner {
            Inner::Memory(_) => "memory",
            Inner::Kafka(_) => "kafka",
        }
    }

    /// Whether batches can be published now; the reason when not (the broker does not answer).
    pub fn ready(&self) -> Result<(), String> {
        match &self.inner {
            Inner::Memory(_) => Ok(()),
            Inner::Kafka(k) => k.ready(),
        }
    }

    /// Events queued or being written (in-process); events sent and not yet acknowledged by the
    /// broker (Kafka).
    pub fn depth(&self) -> usize {
        match &self.inner {
            Inner::Memory(q) => q.depth(),
            Inner::Kafka(k) => k.depth(),
        }
    }

    pub fn capacity(&self) -> usize {
        match &self.inner {
            Inner::Memory(q) => q.capacity,
            Inner::Kafka(k) => k.capacity(),
        }
    }

    /// Events one tenant may have queued at once (in-process); on Kafka, the largest batch that
    /// is published whole.
    pub fn tenant_capacity(&self) -> usize {
        match &self.inner {
            Inner::Memory(q) => q.tenant_capacity,
            Inner::Kafka(k) => k.capacity(),
        }
    }

    /// Events of `tenant` queued or being written (in-process only; 0 on Kafka).
    pub fn tenant_depth(&self, tenant: TenantId) -> usize {
        match &self.inner {
            Inner::Memory(q) => q.tenant_depth(tenant),
            Inner::Kafka(_) => 0,
        }
    }

    /// The consumer group's lag on each partition of the ingest topic (Kafka only), as last read.
    pub fn lag(&self) -> Vec<kafka::PartitionLag> {
        match &self.inner {
            Inner::Memory(_) => Vec::new(),
            Inner::Kafka(k) => k.lag(),
        }
    }
}

/// The consuming side, shared by the pipeline's writers.
#[derive(Clone)]
pub struct BusConsumer {
    pub(crate) rx: Arc<Mutex<mpsc::UnboundedReceiver<Envelope>>>,
}

impl std::fmt::Debug for BusConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusConsumer")
    }
}

impl BusConsumer {
    /// Waits for the next batch, then takes more that are already queued, up to `max_events` in
    /// all (group commit). `None` once every producer is gone and the queue is drained.
    pub async fn next_group(&self, max_events: usize) -> Option<Vec<Envelope>> {
        let mut rx = self.rx.lock().await;
        let first = rx.recv().await?;
        let mut n = first.len;
        let mut group = vec![first];
        while n < max_events {
            match rx.try_recv() {
                Ok(env) => {
                    n += env.len;
                    group.push(env);
                }
                Err(_) => break,
            }
        }
        Some(group)
    }
}

/// An in-process bus holding at most `capacity_events` events in flight, of which at most
/// `tenant_capacity_events` from one tenant (a batch larger than that share is taken when the
/// tenant has nothing queued, so that the share never refuses a batch the API accepts).
pub fn in_process(
    capacity_events: usize,
    tenant_capacity_events: usize,
) -> (BusProducer, BusConsumer) {
    let (queue, consumer) = MemoryQueue::new(capacity_events, tenant_capacity_events);
    (
        BusProducer {
            inner: Inner::Memory(queue),
        },
        consumer,
    )
}

/// Hands envelopes from one stage of the pipeline to the next (enrichment to the writers): the
/// envelopes keep their places in the bus's capacity and their acknowledgements until written.
#[derive(Clone)]
pub struct Relay {
    tx: mpsc::UnboundedSender<Envelope>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Relay")
    }
}

impl Relay {
    /// Passes `envelope` on; if the next stage has stopped, it is refused as the bus would.
    pub fn send(&self, envelope: Envelope) {
        if let Err(mpsc::error::SendError(envelope)) = self.tx.send(envelope) {
            envelope.acknowledge(Err(BusError::Stopped));
        }
    }
}

/// A relay and the consumer of what passes through it; the consumer ends once every clone of the
/// relay is dropped and it is drained.
pub fn relay() -> (Relay, BusConsumer) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Relay { tx },
        BusConsumer {
            rx: Arc::new(Mutex::new(rx)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> EventRecord {
        hub_core::ingest::parse_event(
            r#"{"timestamp": 0}"#,
            &hub_core::ingest::IngestLimits {
                max_age_ms: i64::MAX / 2,
                ..Default::default()
            },
            0,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn full_queue_refuses_and_frees_on_ack() {
        let (p, c) = in_process(3, 3);
        let t = TenantId::from_verified(1);
        let a = p.try_publish(t, vec![ev(), ev()]).unwrap();
        assert_eq!(p.depth(), 2);
        // Another tenant: within its own share, but the queue as a whole is full.
        assert_eq!(
            p.try_publish(TenantId::from_verified(2), vec![ev(), ev()])
                .unwrap_err(),
            Refused::Saturated(Saturated::Hub {
                queued: 2,
                capacity: 3
            })
        );
        let b = p.try_publish(t, vec![ev()]).unwrap();
        let group = c.next_group(10).await.unwrap();
        assert_eq!(group.len(), 2, "both queued batches form one group");
        for env in group {
            let n = env.events.len();
            env.acknowledge(Ok(Committed {
                inserted: n,
                ..Default::default()
            }));
        }
        assert_eq!(a.await.unwrap().unwrap().inserted, 2);
        assert_eq!(b.await.unwrap().unwrap().inserted, 1);
        assert_eq!(p.depth(), 0);
        assert!(p.try_publish(t, vec![ev(), ev(), ev()]).is_ok());
    }

    #[tokio::test]
    async fn consumer_ends_when_producers_are_gone() {
        let (p, c) = in_process(10, 10);
        let ack = p
            .try_publish(TenantId::from_verified(1), vec![ev()])
            .unwrap();
        drop(p);
        let group = c.next_group(10).await.unwrap();
        drop(group);
        assert!(ack.await.is_err(), "a dropped envelope never acknowledges");
        assert!(c.next_group(10).await.is_none());
    }

    #[tokio::test]
    async fn a_tenant_fills_its_own_share_not_its_neighbours() {
        let (p, c) = in_process(10, 4);
        let (noisy, quiet) = (TenantId::from_verified(1), TenantId::from_verified(2));
        // A first batch larger than the share is taken (the tenant has nothing queued).
        let big = p.try_publish(noisy, vec![ev(); 5]).unwrap();
        assert_eq!(
            p.try_publish(noisy, vec![ev()]).unwrap_err(),
            Refused::Saturated(Saturated::Tenant {
                queued: 5,
                capacity: 4
            })
        );
        assert!(
            Saturated::Tenant {
                queued: 5,
                capacity: 4
            }
            .to_string()
            .contains("this tenant's share")
        );
        let q = p.try_publish(quiet, vec![ev(); 4]).unwrap();
        assert_eq!((p.tenant_depth(noisy), p.tenant_depth(quiet)), (5, 4));
        for env in c.next_group(100).await.unwrap() {
            let n = env.events.len();
            env.acknowledge(Ok(Committed {
                inserted: n,
                ..Default::default()
            }));
        }
        assert_eq!(big.await.unwrap().unwrap().inserted, 5);
        assert_eq!(q.await.unwrap().unwrap().inserted, 4);
        assert_eq!((p.tenant_depth(noisy), p.depth()), (0, 0));
        assert!(p.try_publish(noisy, vec![ev(); 4]).is_ok());
    }

    #[tokio::test]
    async fn a_relay_carries_envelopes_and_their_acknowledgements() {
        let (p, c) = in_process(10, 10);
        let (relay, written) = relay();
        let ack = p
            .try_publish(TenantId::from_verified(1), vec![ev(), ev()])
            .unwrap();
        drop(p);
        for env in c.next_group(10).await.unwrap() {
            relay.send(env);
        }
        drop(relay);
        let group = written.next_group(10).await.unwrap();
        assert_eq!(group.len(), 1);
        for env in group {
            env.acknowledge(Ok(Committed {
                inserted: 2,
                ..Default::default()
            }));
        }
        assert_eq!(ack.await.unwrap().unwrap().inserted, 2);
        assert!(written.next_group(10).await.is_none());
    }
}
