//! Re-pricing: runs the tenant's cost estimate again over stored events, page by page, and has
//! storage restate what they count ([`hub_storage::Storage::restate_costs`]).
//!
//! - A job runs the tenant's enabled enrichers in their order (as ingest does, so a plugin that
//!   normalizes model names before the cost plugin still does) in instances of its own, created
//!   for the job with the installs' configuration at its start; their `kv` changes are dropped
//!   and only the cost estimate is taken from their answers (tags and other fields stay as they
//!   were stored). An event is estimated as if it had just arrived: with the cost its sender
//!   reported, and no estimate.
//! - The job's plugin calls are charged to the tenant's plugin CPU budget (`hub_plugins::Sandbox`);
//!   while the tenant is over it, the job's next page waits.
//! - A page whose enrichers fail is not restated (an estimate that failed is not "unpriced"):
//!   the job stops as failed, saying which plugin failed and where.
//! - Jobs of different tenants take turns a page at a time, and all re-pricing works at most
//!   `duty` of the time (it sleeps the rest), so ingest keeps the writer and the cores. A job runs
//!   for at most `max_job`; it then stops, saying how far it got (running it again is
//!   idempotent, so it continues from there at the cost of reading what is done).
//! - Progress is recorded after each page, with a heartbeat: a job whose replica stopped is taken
//!   up from its last page by any replica once the heartbeat is `stale_after` old.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hub_core::{Dimension, EventRecord};
use hub_storage::{
    CostUpdate, EventCursor, EventFilter, JobProgress, JobStatus, RepriceJob, Storage,
};

use hub_plugins::{PluginHost, Sandbox};

#[derive(Debug, Clone)]
pub struct RepriceConfig {
    /// Events per page (one restating transaction).
    pub page_size: usize,
    /// Jobs this replica works on at once (each of another tenant).
    pub max_active: usize,
    /// The share of time re-pricing may work; it sleeps the rest.
    pub duty: f64,
    /// How long a job may run before it stops.
    pub max_job: Duration,
    /// A running job with no heartbeat for this long is taken up by another replica.
    pub stale_after: Duration,
    /// How often to look for new jobs when there is nothing to do.
    pub poll: Duration,
}

impl Default for RepriceConfig {
    fn default() -> Self {
        Self {
            page_size: 500,
            max_active: 4,
            duty: 0.5,
            max_job: Duration::from_secs(3600),
            stale_after: Duration::from_secs(60),
            poll: Duration::from_secs(1),
        }
    }
}

/// The filter a job was asked for: dimension name → value.
pub type JobFilter = BTreeMap<String, String>;

/// The event search a job walks.
pub fn job_filter(job: &RepriceJob) -> Result<EventFilter, String> {
    let dims: JobFilter = serde_json::from_str(&job.filter_json)
        .map_err(|e| format!("the job's filter is not valid: {e}"))?;
    let dims = dims
        .into_iter()
        .map(|(k, v)| {
            Dimension::parse(&k)
                .map(|d| (d, v))
                .ok_or_else(|| format!("unknown dimension `{k}` in the job's filter"))
        })
        .collect::<Result<_, _>>()?;
    Ok(EventFilter {
        from_ms: Some(job.from_ms),
        to_ms: Some(job.to_ms),
        dims,
        ..Default::default()
    })
}

/// The estimates of `stored` events, as the enrichers give them now.
/// The estimates of `stored` events, as the tenant's enrichers give them now.
fn estimate(sandbox: &mut Sandbox, stored: &[EventRecord]) -> Result<Vec<CostUpdate>, String> {
    let mut events: Vec<EventRecord> = stored
        .iter()
        .map(|e| {
            let mut fresh = e.clone();
            let sender = e.sender_cost();
            fresh.reported_cost_usd = sender;
            fresh.cost_usd = sender;
            fresh.estimated_cost_usd = None;
            fresh.enriched_by.clear();
            fresh
        })
        .collect();
    sandbox.enrich(&mut events)?;
    Ok(events
        .into_iter()
        .map(|e| CostUpdate {
            ts_ms: e.ts_ms,
            event_id: e.event_id,
            estimated_cost_usd: e.estimated_cost_usd,
        })
        .collect())
}

/// One job this replica works on.
struct Active {
    job: RepriceJob,
    filter: EventFilter,
    sandbox: Option<Sandbox>,
    started: Instant,
}

enum Step {
    More,
    Over,
}

/// Works through re-pricing jobs; one per replica.
pub struct Repricer {
    storage: Arc<dyn Storage>,
    plugins: Arc<PluginHost>,
    config: RepriceConfig,
    /// Who this replica is, in the jobs it holds.
    owner: String,
}

impl Repricer {
    pub fn new(storage: Arc<dyn Storage>, plugins: Arc<PluginHost>, config: RepriceConfig) -> Self {
        let owner = format!(
            "{}-{}-{:x}",
            hostname(),
            std::process::id(),
            hub_core::time::now_ms()
        );
        Self {
            storage,
            plugins,
            config,
            owner,
        }
    }

    /// Runs until aborted. Aborting between pages loses nothing: a page is restated in one
    /// transaction, and a page restated again changes nothing.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut active: Vec<Active> = Vec::new();
            loop {
                if let Err(e) = self.claim(&mut active).await {
                    tracing::warn!(error = %e, "looking for re-pricing jobs failed");
                }
                if active.is_empty() {
                    tokio::time::sleep(self.config.poll).await;
                    continue;
                }
                let started = Instant::now();
                self.round(&mut active).await;
                let rest = started.elapsed().as_secs_f64() * (1.0 - self.config.duty)
                    / self.config.duty.max(0.01);
                tokio::time::sleep(Duration::from_secs_f64(rest)).await;
            }
        })
    }

    /// Works every job this replica holds to its end (for tests and the CLI): `claim` then rounds.
    pub async fn run_until_idle(&self) -> Result<(), String> {
        let mut active = Vec::new();
        loop {
            self.claim(&mut active).await.map_err(|e| e.to_string())?;
            if active.is_empty() {
                return Ok(());
            }
            self.round(&mut active).await;
        }
    }

    async fn claim(&self, active: &mut Vec<Active>) -> hub_storage::Result<()> {
        while active.len() < self.config.max_active {
            let now = hub_core::time::now_ms();
            let stale = now - self.config.stale_after.as_millis() as i64;
            let Some(job) = self
                .storage
                .reprices()
                .claim_job(&self.owner, now, stale)
                .await?
            else {
                return Ok(());
            };
            if active.iter().any(|a| a.job.id == job.id) {
                // Our own job, slow enough between pages to look stale: it is ours already.
                return Ok(());
            }
            tracing::info!(tenant = %job.tenant, job = job.id, from_ms = job.from_ms, to_ms = job.to_ms, "re-pricing job started");
            match job_filter(&job) {
                Ok(filter) => active.push(Active {
                    job,
                    filter,
                    sandbox: None,
                    started: Instant::now(),
                }),
                Err(e) => self.finish(&job, JobStatus::Failed, Some(&e)).await,
            }
        }
        Ok(())
    }

    /// One page of each active job.
    async fn round(&self, active: &mut Vec<Active>) {
        let mut kept = Vec::with_capacity(active.len());
        for mut a in active.drain(..) {
            match self.step(&mut a).await {
                Ok(Step::More) => kept.push(a),
                Ok(Step::Over) => {}
                Err(e) => {
                    tracing::warn!(tenant = %a.job.tenant, job = a.job.id, error = %e, "re-pricing job failed");
                    self.finish(&a.job, JobStatus::Failed, Some(&e)).await;
                }
            }
        }
        *active = kept;
    }

    async fn step(&self, a: &mut Active) -> Result<Step, String> {
        if a.started.elapsed() > self.config.max_job {
            let reached = a
                .job
                .cursor
                .as_ref()
                .map(|c| format!(", back to {}", hub_core::time::to_rfc3339(c.ts_ms)))
                .unwrap_or_default();
            return Err(format!(
                "stopped after {} s, the longest a re-pricing job may run on this hub; {} events \
                 were re-priced (newest first{reached}): ask again for the rest",
                self.config.max_job.as_secs(),
                a.job.events_examined
            ));
        }
        if a.sandbox.as_ref().is_some_and(|s| !s.in_budget()) {
            // The tenant's plugins are over its CPU budget: its next page waits for a later round.
            return Ok(Step::More);
        }
        let tenant = a.job.tenant;
        let began = Instant::now();
        let page = self
            .storage
            .list_events(
                tenant,
                &a.filter,
                a.job.cursor.as_ref(),
                self.config.page_size,
            )
            .await
            .map_err(|e| format!("reading events: {e}"))?;
        let events: Vec<EventRecord> = page.events.into_iter().map(|s| s.record).collect();
        if events.is_empty() {
            self.finish(&a.job, JobStatus::Done, None).await;
            return Ok(Step::Over);
        }
        let listed = began.elapsed();
        let sandbox = match a.sandbox.take() {
            Some(s) => s,
            None => self.plugins.sandbox(tenant).await?,
        };
        let (sandbox, updates) = tokio::task::spawn_blocking(move || {
            let mut sandbox = sandbox;
            let updates = estimate(&mut sandbox, &events);
            (sandbox, updates.map(|u| (u, events)))
        })
        .await
        .map_err(|e| format!("the estimating task failed: {e}"))?;
        a.sandbox = Some(sandbox);
        let (updates, events) = updates.map_err(|e| {
            format!(
                "{e} (at the page of events from {}; nothing of that page was changed)",
                a.job
                    .cursor
                    .as_ref()
                    .map(|c| hub_core::time::to_rfc3339(c.ts_ms))
                    .unwrap_or_else(|| "the newest".into())
            )
        })?;
        let estimated = began.elapsed();
        let restated = self
            .storage
            .restate_costs(tenant, &updates)
            .await
            .map_err(|e| format!("restating costs: {e}"))?;
        tracing::debug!(
            tenant = %tenant,
            job = a.job.id,
            events = updates.len(),
            changed = restated.changed,
            list_ms = listed.as_millis() as u64,
            estimate_ms = (estimated - listed).as_millis() as u64,
            restate_ms = (began.elapsed() - estimated).as_millis() as u64,
            "re-priced a page"
        );
        let last = events.last().expect("the page is not empty");
        let progress = JobProgress {
            cursor: Some(EventCursor {
                ts_ms: last.ts_ms,
                event_id: last.event_id.clone(),
            }),
            examined: restated.found as i64,
            changed: restated.changed as i64,
            cost_before_usd: restated.counted_before_usd,
            cost_after_usd: restated.counted_after_usd,
        };
        let held = self
            .storage
            .reprices()
            .record_progress(a.job.id, &self.owner, &progress, hub_core::time::now_ms())
            .await
            .map_err(|e| format!("recording progress: {e}"))?;
        if !held {
            tracing::info!(tenant = %tenant, job = a.job.id, "re-pricing job cancelled or taken up elsewhere; stopping");
            return Ok(Step::Over);
        }
        a.job.cursor = progress.cursor;
        a.job.events_examined += progress.examined;
        if page.next.is_none() {
            self.finish(&a.job, JobStatus::Done, None).await;
            return Ok(Step::Over);
        }
        Ok(Step::More)
    }

    async fn finish(&self, job: &RepriceJob, status: JobStatus, error: Option<&str>) {
        tracing::info!(tenant = %job.tenant, job = job.id, status = status.as_str(), error, "re-pricing job over");
        if let Err(e) = self
            .storage
            .reprices()
            .finish_job(job.id, &self.owner, status, error, hub_core::time::now_ms())
            .await
        {
            tracing::warn!(job = job.id, error = %e, "recording the end of a re-pricing job failed");
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "hub".into())
}
