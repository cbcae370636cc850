//! The ingest bus between the API and the pipeline.
//!
//! The in-process bus (the embedded default) is a queue bounded in *events*, not requests: a
//! publisher that would push it past its capacity is refused at once with [`Saturated`], which the
//! API turns into `429 Retry-After` instead of letting memory grow. Every published batch carries
//! a one-shot acknowledgement that the pipeline completes only after the batch is committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hub_core::{EventRecord, TenantId};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// What the pipeline reports back for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub inserted: usize,
    pub duplicates: usize,
}

/// Why a batch was not committed (it was not acknowledged; the client should resend it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("storage is unavailable: {0}")]
    Storage(String),
    #[error("the pipeline stopped before the batch was committed")]
    Stopped,
}

/// The queue is full: try again after the pipeline catches up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ingest queue is full ({queued} of {capacity} events queued)")]
pub struct Saturated {
    pub queued: usize,
    pub capacity: usize,
}

/// A batch on its way to storage.
pub struct Envelope {
    pub tenant: TenantId,
    pub events: Vec<EventRecord>,
    ack: Option<oneshot::Sender<Result<Committed, BusError>>>,
    _permit: OwnedSemaphorePermit,
    depth: Arc<AtomicUsize>,
    len: usize,
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
    }
}

/// The publishing side, cloned into every request handler.
#[derive(Clone)]
pub struct BusProducer {
    tx: mpsc::UnboundedSender<Envelope>,
    permits: Arc<Semaphore>,
    capacity: usize,
    depth: Arc<AtomicUsize>,
}

impl std::fmt::Debug for BusProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusProducer")
            .field("capacity", &self.capacity)
            .field("depth", &self.depth())
            .finish()
    }
}

/// A pending acknowledgement.
pub type AckReceiver = oneshot::Receiver<Result<Committed, BusError>>;

impl BusProducer {
    /// Queues a batch if there is room for all of its events.
    pub fn try_publish(
        &self,
        tenant: TenantId,
        events: Vec<EventRecord>,
    ) -> Result<AckReceiver, Saturated> {
        let len = events.len();
        let saturated = || Saturated {
            queued: self.depth(),
            capacity: self.capacity,
        };
        let n = u32::try_from(len.max(1)).map_err(|_| saturated())?;
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| saturated())?;
        let (ack, rx) = oneshot::channel();
        self.depth.fetch_add(len, Ordering::Relaxed);
        let envelope = Envelope {
            tenant,
            events,
            ack: Some(ack),
            _permit: permit,
            depth: self.depth.clone(),
            len,
        };
        if let Err(mpsc::error::SendError(envelope)) = self.tx.send(envelope) {
            envelope.acknowledge(Err(BusError::Stopped));
        }
        Ok(rx)
    }

    /// Events queued or being written.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// The consuming side, shared by the pipeline's writers.
#[derive(Clone)]
pub struct BusConsumer {
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Envelope>>>,
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

/// An in-process bus holding at most `capacity_events` events in flight.
pub fn in_process(capacity_events: usize) -> (BusProducer, BusConsumer) {
    let (tx, rx) = mpsc::unbounded_channel();
    let capacity = capacity_events.clamp(1, Semaphore::MAX_PERMITS);
    let producer = BusProducer {
        tx,
        permits: Arc::new(Semaphore::new(capacity)),
        capacity,
        depth: Arc::new(AtomicUsize::new(0)),
    };
    (
        producer,
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
        let (p, c) = in_process(3);
        let t = TenantId::from_verified(1);
        let a = p.try_publish(t, vec![ev(), ev()]).unwrap();
        assert_eq!(p.depth(), 2);
        assert_eq!(
            p.try_publish(t, vec![ev(), ev()]).unwrap_err(),
            Saturated {
                queued: 2,
                capacity: 3
            }
        );
        let b = p.try_publish(t, vec![ev()]).unwrap();
        let group = c.next_group(10).await.unwrap();
        assert_eq!(group.len(), 2, "both queued batches form one group");
        for env in group {
            let n = env.events.len();
            env.acknowledge(Ok(Committed {
                inserted: n,
                duplicates: 0,
            }));
        }
        assert_eq!(a.await.unwrap().unwrap().inserted, 2);
        assert_eq!(b.await.unwrap().unwrap().inserted, 1);
        assert_eq!(p.depth(), 0);
        assert!(p.try_publish(t, vec![ev(), ev(), ev()]).is_ok());
    }

    #[tokio::test]
    async fn consumer_ends_when_producers_are_gone() {
        let (p, c) = in_process(10);
        let ack = p
            .try_publish(TenantId::from_verified(1), vec![ev()])
            .unwrap();
        drop(p);
        let group = c.next_group(10).await.unwrap();
        drop(group);
        assert!(ack.await.is_err(), "a dropped envelope never acknowledges");
        assert!(c.next_group(10).await.is_none());
    }
}
