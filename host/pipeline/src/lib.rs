//! The pipeline: takes batches off the bus, enriches them, writes them (events and rollups in one
//! transaction), and acknowledges each batch only after its commit. Also runs the periodic
//! maintenance (partitions ahead, retention).
//!
//! Two stages: enrichment runs in one lane per tenant (`lanes`), so that no tenant's batches wait
//! on another tenant's plugins; the writers then group whatever is ready into one transaction
//! (group commit): under load, many small requests cost one commit, which is what lets SQLite
//! keep up with a busy API.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub mod alerts;
pub mod analysis;
pub mod billed;
pub mod context;
pub mod governance;
pub mod grid;
mod lanes;
pub mod reprice;
pub mod schedule;
pub mod series;
pub mod spend;
pub mod sync;

use hub_bus::{BusConsumer, BusError, Committed, Envelope};
use hub_plugins::PluginHost;
use hub_storage::{RetentionPolicy, Storage, TenantBatch};
pub use reprice::{RepriceConfig, Repricer};
use tokio::task::JoinHandle;

/// This process's name in the leases of scheduled work (unique per process).
pub fn replica_name() -> String {
    format!(
        "{}-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "hub".into()),
        std::process::id(),
        hub_core::time::now_ms()
    )
}

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Concurrent writer tasks. SQLite has one writer whatever this says; PostgreSQL benefits
    /// from a few.
    pub writers: usize,
    /// Events per group commit at most.
    pub max_group_events: usize,
    /// Attempts at a failing write before the batch is refused (unacknowledged).
    pub write_attempts: u32,
    /// How long a tenant's enrichment lane stays open without a batch.
    pub lane_idle: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            writers: 2,
            max_group_events: 20_000,
            write_attempts: 3,
            lane_idle: Duration::from_secs(30),
        }
    }
}

/// Counters the API exposes on `/metrics`.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub commits: AtomicU64,
    pub write_failures: AtomicU64,
    /// Sum of commit durations, microseconds (with `commits`, the mean).
    pub commit_micros: AtomicU64,
}

/// The running writers; [`Pipeline::join`] waits until the bus is closed and drained.
pub struct Pipeline {
    lanes: Option<JoinHandle<()>>,
    writers: Vec<JoinHandle<()>>,
    pub stats: Arc<PipelineStats>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("writers", &self.writers.len())
            .finish()
    }
}

impl Pipeline {
    /// Starts the writers. With `plugins`, each tenant's enabled enrichers run over its events
    /// (in the tenant's lane) before they are written.
    pub fn spawn(
        storage: Arc<dyn Storage>,
        consumer: BusConsumer,
        config: PipelineConfig,
        plugins: Option<Arc<PluginHost>>,
    ) -> Self {
        let stats = Arc::new(PipelineStats::default());
        let (ready, lanes) = match plugins {
            Some(host) => {
                let (relay, ready) = hub_bus::relay();
                let lanes = lanes::spawn(
                    consumer,
                    relay,
                    host,
                    config.max_group_events,
                    config.lane_idle,
                );
                (ready, Some(lanes))
            }
            None => (consumer, None),
        };
        let writers = (0..config.writers.max(1))
            .map(|_| {
                let (storage, ready, config, stats) = (
                    storage.clone(),
                    ready.clone(),
                    config.clone(),
                    stats.clone(),
                );
                tokio::spawn(async move { run_writer(storage, ready, config, stats).await })
            })
            .collect();
        Self {
            lanes,
            writers,
            stats,
        }
    }

    /// Waits for the lanes and writers to drain the bus (after every producer was dropped).
    pub async fn join(self) {
        if let Some(lanes) = self.lanes
            && let Err(e) = lanes.await
        {
            tracing::error!(error = %e, "the enrichment stage panicked");
        }
        for w in self.writers {
            if let Err(e) = w.await {
                tracing::error!(error = %e, "pipeline writer panicked");
            }
        }
    }
}

/// Writes what is ready (enriched, or needing no enrichment) in group commits.
async fn run_writer(
    storage: Arc<dyn Storage>,
    ready: BusConsumer,
    config: PipelineConfig,
    stats: Arc<PipelineStats>,
) {
    while let Some(mut group) = ready.next_group(config.max_group_events).await {
        let batches: Vec<TenantBatch> = group
            .iter_mut()
            .map(|env: &mut Envelope| TenantBatch {
                tenant: env.tenant,
                events: std::mem::take(&mut env.events),
            })
            .collect();
        let started = Instant::now();
        let result =
            write_with_retry(storage.as_ref(), &batches, config.write_attempts, &stats).await;
        stats
            .commit_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match result {
            Ok(outcomes) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                for (env, outcome) in group.into_iter().zip(outcomes) {
                    env.acknowledge(Ok(Committed {
                        inserted: outcome.inserted,
                        duplicates: outcome.duplicates,
                        pending: 0,
                    }));
                }
            }
            Err(message) => {
                for env in group {
                    env.acknowledge(Err(BusError::Storage(message.clone())));
                }
            }
        }
        // Freeing a group's events (a dozen strings each) takes a while: not on the single
        // writer's path to its next group.
        tokio::task::spawn_blocking(move || drop(batches));
    }
}

async fn write_with_retry(
    storage: &dyn Storage,
    batches: &[TenantBatch],
    attempts: u32,
    stats: &PipelineStats,
) -> Result<Vec<hub_storage::WriteOutcome>, String> {
    let mut delay = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match storage
            .write_batches(batches, hub_core::time::now_ms())
            .await
        {
            Ok(outcomes) => return Ok(outcomes),
            Err(e) => {
                stats.write_failures.fetch_add(1, Ordering::Relaxed);
                let events: usize = batches.iter().map(|b| b.events.len()).sum();
                tracing::warn!(error = %e, attempt, events, "writing a batch group failed");
                if attempt >= attempts {
                    return Err(e.to_string());
                }
                tokio::time::sleep(delay).await;
                delay *= 4;
                attempt += 1;
            }
        }
    }
}

/// Runs partition upkeep and retention now and then every `interval`, until aborted.
pub fn spawn_maintenance(
    storage: Arc<dyn Storage>,
    policy: RetentionPolicy,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = hub_core::time::now_ms();
            if let Err(e) = storage.prepare_partitions(now).await {
                tracing::warn!(error = %e, "partition upkeep failed");
            }
            match storage.enforce_retention(&policy, now).await {
                Ok(report) => tracing::info!(
                    events_deleted = report.events_deleted,
                    rollups_deleted = report.rollups_deleted,
                    partitions_dropped = report.partitions_dropped,
                    "retention enforced"
                ),
                Err(e) => tracing::warn!(error = %e, "retention failed"),
            }
            // Failed sign-ins are remembered for a day after the last one.
            if let Err(e) = storage
                .login_throttle()
                .forget_before(now - hub_core::time::DAY_MS)
                .await
            {
                tracing::warn!(error = %e, "forgetting old sign-in failures failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn acknowledges_after_commit_and_drains_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let storage = hub_storage::testing::scratch_sqlite(dir.path()).await;
        let tenant = storage.tenants().create_tenant("t", 0).await.unwrap().id;
        let (producer, consumer) = hub_bus::in_process(10_000, 10_000);
        let pipeline = Pipeline::spawn(storage.clone(), consumer, PipelineConfig::default(), None);
        let now = hub_core::time::now_ms();
        let limits = hub_core::ingest::IngestLimits::default();
        let mut acks = Vec::new();
        for i in 0..20 {
            let raw = format!(r#"{{"event_id": "e{i}", "timestamp": {now}, "model": "m"}}"#);
            let ev = hub_core::ingest::parse_event(&raw, &limits, now).unwrap();
            acks.push(producer.try_publish(tenant, vec![ev.clone(), ev]).unwrap());
        }
        drop(producer);
        for ack in acks {
            assert_eq!(
                ack.await.unwrap().unwrap(),
                Committed {
                    inserted: 1,
                    duplicates: 1,
                    pending: 0,
                }
            );
        }
        pipeline.join().await;
        assert_eq!(storage.count_events(tenant).await.unwrap(), 20);
    }
}
