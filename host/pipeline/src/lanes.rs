//! The enrichment stage: one lane per tenant, between the bus and the writers.
//!
//! A lane takes what its tenant has queued (its batches grouped into one pass, so that small
//! requests cost one call per plugin), waits while the tenant is over its plugin CPU budget, runs
//! the tenant's enrichers and hands the batches on to the writers, which commit whatever is ready.
//! A tenant's slow or throttled plugins therefore hold up that tenant's lane only: its batches
//! wait, its share of the bus fills and its own requests get the 429s, while every other tenant's
//! batches go past. Lanes start on a tenant's first batch and end after a while without one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_bus::{BusConsumer, Envelope, Relay};
use hub_core::TenantId;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use hub_plugins::PluginHost;

struct Lanes {
    host: Arc<PluginHost>,
    relay: Relay,
    max_events: usize,
    idle: Duration,
    /// The open lanes. A batch is sent under this lock, and a lane closes under it only when its
    /// queue is empty, so that no batch is ever sent to a lane that has gone.
    open: Mutex<HashMap<TenantId, mpsc::UnboundedSender<Envelope>>>,
}

/// Starts the stage: routes the bus's batches to their tenants' lanes until the bus closes, then
/// lets every lane drain and finish. The writers' consumer ends after that.
pub(crate) fn spawn(
    consumer: BusConsumer,
    relay: Relay,
    host: Arc<PluginHost>,
    max_events: usize,
    idle: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let lanes = Arc::new(Lanes {
            host,
            relay,
            max_events,
            idle,
            open: Mutex::new(HashMap::new()),
        });
        let mut running = JoinSet::new();
        while let Some(group) = consumer.next_group(max_events).await {
            for envelope in group {
                lanes.route(envelope, &mut running);
            }
            while running.try_join_next().is_some() {}
        }
        // The bus is closed and drained: close every lane; each finishes what it holds.
        lanes.open.lock().unwrap().clear();
        while let Some(r) = running.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "an enrichment lane panicked");
            }
        }
    })
}

impl Lanes {
    fn route(self: &Arc<Self>, envelope: Envelope, running: &mut JoinSet<()>) {
        let tenant = envelope.tenant;
        let mut open = self.open.lock().unwrap();
        let envelope = match open.get(&tenant) {
            Some(lane) => match lane.send(envelope) {
                Ok(()) => return,
                // Only a lane that panicked is gone without closing: open it again.
                Err(mpsc::error::SendError(envelope)) => envelope,
            },
            None => envelope,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(envelope).expect("the receiver is held right here");
        open.insert(tenant, tx);
        let this = self.clone();
        running.spawn(async move { this.run(tenant, rx).await });
    }

    async fn run(&self, tenant: TenantId, mut rx: mpsc::UnboundedReceiver<Envelope>) {
        loop {
            let first = match tokio::time::timeout(self.idle, rx.recv()).await {
                Ok(Some(envelope)) => envelope,
                // Closed by the dispatcher at shutdown, and drained.
                Ok(None) => return,
                Err(_) => {
                    let mut open = self.open.lock().unwrap();
                    if rx.is_empty() {
                        open.remove(&tenant);
                        return;
                    }
                    continue;
                }
            };
            let enrich = self.host.has_enrichers(tenant).await;
            if enrich && let Some(wait) = self.host.budget_wait(tenant) {
                tokio::time::sleep(wait).await;
            }
            // Everything the tenant queued meanwhile goes into the same pass.
            let mut group = vec![first];
            let mut events = group[0].events.len();
            while events < self.max_events {
                match rx.try_recv() {
                    Ok(envelope) => {
                        events += envelope.events.len();
                        group.push(envelope);
                    }
                    Err(_) => break,
                }
            }
            if enrich {
                enrich_together(&self.host, tenant, &mut group).await;
            }
            for envelope in group {
                self.relay.send(envelope);
            }
        }
    }
}

/// Runs the tenant's enrichers once over all of `group`'s events, then hands each batch its own
/// events back.
async fn enrich_together(host: &Arc<PluginHost>, tenant: TenantId, group: &mut [Envelope]) {
    if let [one] = group {
        host.enrich(tenant, &mut one.events).await;
        return;
    }
    let lens: Vec<usize> = group.iter().map(|e| e.events.len()).collect();
    let mut all = Vec::with_capacity(lens.iter().sum());
    for envelope in group.iter_mut() {
        all.append(&mut envelope.events);
    }
    host.enrich(tenant, &mut all).await;
    let mut rest = all.into_iter();
    for (envelope, n) in group.iter_mut().zip(lens) {
        envelope.events = rest.by_ref().take(n).collect();
    }
}
