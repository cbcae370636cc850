//! The in-process queue: bounded in events and, per tenant, in a share of them. It is the whole
//! bus of the embedded default, and on a Kafka worker the queue between the consumer and the
//! pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hub_core::{EventRecord, TenantId};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};

use crate::{AckReceiver, BusConsumer, BusError, Envelope, Saturated, TenantDepths};

#[derive(Clone)]
pub(crate) struct MemoryQueue {
    tx: mpsc::UnboundedSender<Envelope>,
    permits: Arc<Semaphore>,
    pub(crate) capacity: usize,
    pub(crate) tenant_capacity: usize,
    pub(crate) depth: Arc<AtomicUsize>,
    tenant_depths: TenantDepths,
}

impl MemoryQueue {
    pub(crate) fn new(
        capacity_events: usize,
        tenant_capacity_events: usize,
    ) -> (Self, BusConsumer) {
        let (tx, rx) = mpsc::unbounded_channel();
        let capacity = capacity_events.clamp(1, Semaphore::MAX_PERMITS);
        let queue = Self {
            tx,
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            tenant_capacity: tenant_capacity_events.clamp(1, capacity),
            depth: Arc::new(AtomicUsize::new(0)),
            tenant_depths: Arc::default(),
        };
        (
            queue,
            BusConsumer {
                rx: Arc::new(Mutex::new(rx)),
            },
        )
    }

    /// Queues a batch if there is room for all of its events, in the queue and in the tenant's
    /// share of it; else gives the events back with the reason.
    #[allow(clippy::result_large_err)]
    pub(crate) fn publish(
        &self,
        tenant: TenantId,
        events: Vec<EventRecord>,
    ) -> Result<AckReceiver, (Saturated, Vec<EventRecord>)> {
        let len = events.len();
        let saturated = || Saturated::Hub {
            queued: self.depth(),
            capacity: self.capacity,
        };
        let Ok(n) = u32::try_from(len.max(1)) else {
            return Err((saturated(), events));
        };
        // The tenant's share first (under its lock until counted), then the queue's permits.
        let mut depths = self.tenant_depths.lock().unwrap();
        let queued = depths.get(&tenant).copied().unwrap_or(0);
        if queued > 0 && queued + len > self.tenant_capacity {
            return Err((
                Saturated::Tenant {
                    queued,
                    capacity: self.tenant_capacity,
                },
                events,
            ));
        }
        let Ok(permit) = self.permits.clone().try_acquire_many_owned(n) else {
            return Err((saturated(), events));
        };
        *depths.entry(tenant).or_default() += len;
        drop(depths);
        let (ack, rx) = oneshot::channel();
        self.depth.fetch_add(len, Ordering::Relaxed);
        let envelope = Envelope {
            tenant,
            events,
            ack: Some(ack),
            _permit: permit,
            depth: self.depth.clone(),
            tenant_depths: self.tenant_depths.clone(),
            len,
        };
        if let Err(mpsc::error::SendError(envelope)) = self.tx.send(envelope) {
            envelope.acknowledge(Err(BusError::Stopped));
        }
        Ok(rx)
    }

    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    pub(crate) fn tenant_depth(&self, tenant: TenantId) -> usize {
        self.tenant_depths
            .lock()
            .unwrap()
            .get(&tenant)
            .copied()
            .unwrap_or(0)
    }
}
