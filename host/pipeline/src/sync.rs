//! Integrations' `sync`: records from other systems (a CostOps billing feed, a Sentinel's
//! detections, a Registry's changes) brought into their tenant as events.
//!
//! - **Once.** Each tenant's enabled integrations with a sync period (`refresh-interval-s`) are
//!   called once per period across replicas: a period's row in `analysis_runs` is its lease, as
//!   for the detectors (`/v1/plugins/{name}/runs` lists them). A tenant over its plugin CPU
//!   budget has its sync put off to a later tick.
//! - **Checked as ingest checks.** Each event the integration answers is validated exactly as
//!   `POST /v1/events` validates it, with the operator's limits: an invalid one is rejected with
//!   ingest's reasons (counted, and named in the run's message), its neighbours are kept. Each
//!   kept one is tagged `hub.integration` = the integration's name.
//! - **Stored as ingest stores.** The events go on the bus like a REST batch (the tenant's share
//!   of the queue, its enrichers, group commit) and the run waits for their acknowledgement. Only
//!   then are the integration's `kv` writes (its cursor) persisted; events not stored leave the
//!   cursor where it was, so they are asked for again next period. An event id stored before is
//!   not stored again, so a record synced twice counts once.
//! - **More.** An answer that says `more` is followed by another call at once, up to
//!   [`MAX_SYNC_CALLS`] in a period.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_bus::{BusProducer, Committed};
use hub_core::TenantId;
use hub_core::ingest::{IngestLimits, Rejection, parse_documents, tag_integration};
use hub_core::time::floor_to;
use hub_plugins::{MAX_SYNC_CALLS, PluginHost, Syncer};
use hub_storage::{RunOutcome, Storage};

use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// How often each replica looks for due syncs.
    pub tick: Duration,
    /// A sync not finished this long after it started may be taken over by another replica.
    pub lease: Duration,
    /// This replica's name in the leases.
    pub owner: String,
    /// REST ingest's limits, applied to every synced event.
    pub limits: IngestLimits,
    /// How long a sync waits for room on a full bus before it gives the period up.
    pub publish_patience: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(5),
            lease: Duration::from_secs(600),
            owner: crate::replica_name(),
            limits: IngestLimits::default(),
            publish_patience: Duration::from_secs(60),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SyncStats {
    pub runs_ok: AtomicU64,
    pub runs_failed: AtomicU64,
    /// Events stored, already stored (duplicates), and rejected by ingest's checks.
    pub events_stored: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub events_rejected: AtomicU64,
}

/// Runs due syncs every `config.tick`, until aborted. Abort it before draining the pipeline: it
/// holds a bus producer.
pub fn spawn_sync(
    host: Arc<PluginHost>,
    storage: Arc<dyn Storage>,
    bus: BusProducer,
    config: SyncConfig,
    stats: Arc<SyncStats>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let job = Arc::new(SyncJob::new(host, storage, bus, config, stats));
        let mut tick = tokio::time::interval(job.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = job.tick().await {
                tracing::warn!(error = %e, "the sync job could not look for due syncs");
            }
        }
    })
}

pub struct SyncJob {
    host: Arc<PluginHost>,
    storage: Arc<dyn Storage>,
    bus: BusProducer,
    config: SyncConfig,
    stats: Arc<SyncStats>,
    /// (tenant, integration) with a sync under way on this replica.
    running: Mutex<HashSet<(TenantId, String)>>,
    /// The newest period this replica ran or found taken, per (tenant, integration).
    seen: Mutex<HashMap<(TenantId, String), i64>>,
}

impl SyncJob {
    pub fn new(
        host: Arc<PluginHost>,
        storage: Arc<dyn Storage>,
        bus: BusProducer,
        config: SyncConfig,
        stats: Arc<SyncStats>,
    ) -> Self {
        Self {
            host,
            storage,
            bus,
            config,
            stats,
            running: Mutex::new(HashSet::new()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Starts every due sync (each in a task of its own).
    pub async fn tick(self: &Arc<Self>) -> Result<(), String> {
        let tenants = self
            .storage
            .plugins()
            .tenants_with_kinds(&["integration"])
            .await
            .map_err(|e| e.to_string())?;
        let now = hub_core::time::now_ms();
        for tenant in tenants {
            for syncer in self.host.syncers(tenant).await {
                let period = floor_to(now, i64::from(syncer.every_s.max(1)) * 1_000);
                let key = (tenant, syncer.name.clone());
                if self.seen.lock().unwrap().get(&key) == Some(&period)
                    || self.running.lock().unwrap().contains(&key)
                    || !self.host.in_budget(tenant)
                {
                    continue;
                }
                self.seen.lock().unwrap().insert(key.clone(), period);
                self.running.lock().unwrap().insert(key.clone());
                let this = self.clone();
                tokio::spawn(async move {
                    this.run_period(tenant, &syncer, period).await;
                    this.running.lock().unwrap().remove(&key);
                });
            }
        }
        Ok(())
    }

    /// Takes the period's lease and syncs; a period another replica took is skipped.
    pub async fn run_period(&self, tenant: TenantId, syncer: &Syncer, period: i64) {
        let runs = self.storage.analysis_runs();
        let owner = &self.config.owner;
        let lease = self.config.lease.as_millis() as i64;
        match runs
            .claim_run(
                tenant,
                &syncer.name,
                period,
                owner,
                hub_core::time::now_ms(),
                lease,
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(tenant = %tenant, plugin = %syncer.name, error = %e, "taking a sync's lease failed");
                return;
            }
        }
        let outcome = self.sync(tenant, syncer, period).await;
        let counter = if outcome.outcome == "ok" {
            &self.stats.runs_ok
        } else {
            &self.stats.runs_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = runs
            .finish_run(
                tenant,
                &syncer.name,
                period,
                owner,
                hub_core::time::now_ms(),
                &outcome,
            )
            .await
        {
            tracing::warn!(tenant = %tenant, plugin = %syncer.name, error = %e, "recording a finished sync failed");
        }
    }

    /// Calls `sync` (again while it says `more`), storing each answer's valid events before the
    /// next call. The outcome's `series` counts the events answered, `found` those stored new.
    pub async fn sync(&self, tenant: TenantId, syncer: &Syncer, period: i64) -> RunOutcome {
        let name = syncer.name.as_str();
        let mut tally = Tally::default();
        let mut failure = None;
        let (from, to) = (period - i64::from(syncer.every_s.max(1)) * 1_000, period);
        let now = hub_core::time::now_ms();
        let context =
            match crate::context::context(self.storage.as_ref(), tenant, now, from, to).await {
                Ok(c) => c,
                Err(e) => {
                    return RunOutcome {
                        outcome: "failed".into(),
                        series: 0,
                        found: 0,
                        message: Some(format!(
                            "reading the tenant's spend for the sync failed: {e}"
                        )),
                    };
                }
            };
        for _ in 0..MAX_SYNC_CALLS {
            let out = match self.host.sync(tenant, name, context.clone()).await {
                Ok(Some(out)) => out,
                // Over the CPU budget now: what was stored stays; the rest waits.
                Ok(None) => break,
                Err(e) => {
                    failure = Some(format!("the integration's sync failed: {e}"));
                    break;
                }
            };
            tally.messages.push(out.report.message.clone());
            let parsed =
                parse_documents(&out.events, &self.config.limits, hub_core::time::now_ms());
            tally.answered += parsed.total;
            self.stats
                .events_rejected
                .fetch_add(parsed.rejected.len() as u64, Ordering::Relaxed);
            if !parsed.rejected.is_empty() {
                tracing::warn!(tenant = %tenant, plugin = %name, rejected = parsed.rejected.len(), first = %rejection_text(&parsed.rejected[0]), "a sync answered invalid events");
            }
            tally.rejected.extend(parsed.rejected);
            let mut events = parsed.events;
            for e in &mut events {
                tag_integration(e, name);
            }
            match self.store(tenant, events).await {
                Ok(c) => {
                    tally.stored += c.inserted + c.pending;
                    tally.duplicates += c.duplicates;
                    self.host.finish_sync(tenant, name, true).await;
                }
                Err(e) => {
                    self.host.finish_sync(tenant, name, false).await;
                    failure = Some(format!(
                        "the synced events could not be stored ({e}); they are asked for again next period"
                    ));
                    break;
                }
            }
            if !out.more {
                break;
            }
        }
        self.stats
            .events_stored
            .fetch_add(tally.stored as u64, Ordering::Relaxed);
        self.stats
            .events_duplicate
            .fetch_add(tally.duplicates as u64, Ordering::Relaxed);
        let message = tally.message(failure.as_deref());
        tracing::info!(tenant = %tenant, plugin = %name, answered = tally.answered, stored = tally.stored, rejected = tally.rejected.len(), "{message}");
        RunOutcome {
            outcome: if failure.is_some() { "failed" } else { "ok" }.into(),
            series: tally.answered as i64,
            found: tally.stored as i64,
            message: Some(message),
        }
    }

    /// Publishes `events` in pieces the bus takes, waiting (up to the patience) for room, and
    /// waits for every piece's acknowledgement.
    async fn store(
        &self,
        tenant: TenantId,
        mut events: Vec<hub_core::EventRecord>,
    ) -> Result<Committed, String> {
        let mut total = Committed::default();
        let piece = self
            .config
            .limits
            .max_events
            .min(self.bus.tenant_capacity())
            .min(self.bus.capacity())
            .max(1);
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(piece));
            let waited = std::time::Instant::now();
            let ack = loop {
                // A refused batch is not given back: publish a copy until one is taken.
                match self.bus.try_publish(tenant, events.clone()) {
                    Ok(ack) => break ack,
                    Err(full) if waited.elapsed() >= self.config.publish_patience => {
                        return Err(full.to_string());
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            let c = ack
                .await
                .map_err(|_| "the pipeline stopped before committing".to_string())?
                .map_err(|e| e.to_string())?;
            total.inserted += c.inserted;
            total.duplicates += c.duplicates;
            total.pending += c.pending;
            events = rest;
        }
        Ok(total)
    }
}

#[derive(Default)]
struct Tally {
    answered: usize,
    stored: usize,
    duplicates: usize,
    rejected: Vec<Rejection>,
    messages: Vec<String>,
}

impl Tally {
    /// The run's message: counts, the first rejections with ingest's reasons, the plugin's words.
    fn message(&self, failure: Option<&str>) -> String {
        let mut m = format!(
            "{} events answered: {} stored, {} already stored, {} rejected",
            self.answered,
            self.stored,
            self.duplicates,
            self.rejected.len()
        );
        for r in self.rejected.iter().take(3) {
            m.push_str(&format!("; {}", rejection_text(r)));
        }
        if self.rejected.len() > 3 {
            m.push_str(&format!("; and {} more", self.rejected.len() - 3));
        }
        if let Some(last) = self.messages.iter().rev().find(|m| !m.is_empty()) {
            m.push_str(&format!(". The integration says: {}", truncate(last, 300)));
        }
        if let Some(f) = failure {
            m.push_str(&format!(". {f}"));
        }
        m
    }
}

/// `event 3: timestamp: is required` (every field of the event).
fn rejection_text(r: &Rejection) -> String {
    let reasons: Vec<String> = r
        .errors
        .iter()
        .map(|e| {
            if e.field.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", e.field, e.message)
            }
        })
        .collect();
    format!("event {}: {}", r.index, truncate(&reasons.join(", "), 300))
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
