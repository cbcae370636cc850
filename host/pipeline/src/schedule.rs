//! The scheduler: runs each tenant's enabled detectors (by default every minute, on the newest
//! complete step) and forecasters (by default hourly), off the ingest path.
//!
//! - **When.** A plugin's periods are its `every` on the clock (a 5-minute detector runs for the
//!   periods ending 12:00, 12:05, …), each run `settle` after its period ends so that the
//!   rollups of the last step are complete. A detector that missed periods (the hub was down)
//!   catches up on them, oldest first, up to `catch_up` periods; a forecaster only makes the
//!   newest forecast. A plugin that never ran starts with the newest period.
//! - **Once.** A run's row in `analysis_runs` is its lease: the replica that inserts it runs the
//!   period, every other replica skips it, and a run left unfinished (its replica died) is
//!   taken over once the lease is older than `lease`. Anomalies are stored once per point
//!   whoever finds them, so a period run twice reports nothing twice.
//! - **Fairly.** At most `concurrency` runs at once across all tenants, each period queued on a
//!   fair semaphore, so one tenant's slow detector delays another tenant's analysis by at most
//!   one run and never its ingest (analysis is not charged to the tenant's enrichment budget;
//!   its deadline, schedule and failures bound it).
//! - **Alerts.** Each tenant with enabled alert rules has them evaluated once a minute, on the
//!   newest settled minute, under the same kind of lease (its row is named [`ALERTS_RUN`]), one
//!   tenant at a time and apart from the detectors' permits; missed minutes are not caught up.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub_core::TenantId;
use hub_core::time::{MINUTE_MS, floor_to};
use hub_plugins::{Analyser, PluginHost, PluginKind};
use hub_storage::{RunOutcome, RunRecord, Storage};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::analysis;
use crate::grid::SeriesCache;

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often the scheduler looks for due runs.
    pub tick: Duration,
    /// How long after a period ends its last step's rollups are taken as complete.
    pub settle: Duration,
    /// A run not finished this long after it started may be taken over by another replica.
    pub lease: Duration,
    /// Periods a detector catches up on at most.
    pub catch_up: u32,
    /// Runs at once, across all tenants.
    pub concurrency: usize,
    /// This replica's name in the leases (unique per process).
    pub owner: String,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(5),
            settle: Duration::from_secs(20),
            lease: Duration::from_secs(600),
            catch_up: 60,
            concurrency: 1,
            owner: crate::replica_name(),
        }
    }
}

/// Counters for `/metrics` and the benchmarks.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    pub runs_ok: AtomicU64,
    pub runs_failed: AtomicU64,
    /// Runs another replica had already taken.
    pub runs_skipped: AtomicU64,
    pub anomalies: AtomicU64,
    pub forecasts: AtomicU64,
    /// Time spent in whole runs (building, calling, storing), microseconds.
    pub run_micros: AtomicU64,
    /// Evaluations of a tenant's alert rules, and the notices they raised.
    pub alert_evaluations: AtomicU64,
    pub alert_notices: AtomicU64,
    /// What became of the notices' deliveries (`alerts::deliver`).
    pub deliveries: Arc<crate::alerts::deliver::DeliveryStats>,
    /// Integrations' syncs (`sync`).
    pub sync: Arc<crate::sync::SyncStats>,
}

/// The lease name of a tenant's alert evaluation in `analysis_runs` (no plugin name has `@`).
pub const ALERTS_RUN: &str = "@alerts";

/// The periods a plugin that runs `every` should run now, oldest first: those after its last run
/// (at most `catch_up` of them; only the newest for a forecaster or a plugin that never ran), and
/// those whose run was left unfinished past the lease. `recent` are its runs of the catch-up
/// window; `last_run` its newest run when that window has none.
pub fn due_periods(
    every: i64,
    forecaster: bool,
    now_ms: i64,
    config: &SchedulerConfig,
    recent: &[RunRecord],
    last_run: Option<i64>,
) -> Vec<i64> {
    let newest = floor_to(now_ms - config.settle.as_millis() as i64, every);
    let window = if forecaster {
        1
    } else {
        i64::from(config.catch_up.max(1))
    };
    let oldest = newest - (window - 1) * every;
    let lease = config.lease.as_millis() as i64;
    let last = recent.iter().map(|r| r.period_ms).max().or(last_run);
    let first = match last {
        None => newest,
        Some(l) => (l + every).max(oldest),
    };
    let mut due: Vec<i64> = recent
        .iter()
        .filter(|r| {
            r.period_ms >= oldest && r.finished_at_ms.is_none() && r.started_at_ms < now_ms - lease
        })
        .map(|r| r.period_ms)
        .collect();
    due.extend((first..=newest).step_by(every as usize));
    due.sort_unstable();
    due.dedup();
    due
}

/// Runs due detectors and forecasters every `config.tick`, until aborted.
pub fn spawn_scheduler(
    host: Arc<PluginHost>,
    storage: Arc<dyn Storage>,
    config: SchedulerConfig,
    stats: Arc<SchedulerStats>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let scheduler = Scheduler {
            host,
            storage,
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            alert_permits: Arc::new(Semaphore::new(1)),
            running: Arc::new(Mutex::new(HashSet::new())),
            cache: Arc::new(SeriesCache::default()),
            config,
            stats,
        };
        let mut tick = tokio::time::interval(scheduler.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = scheduler.tick().await {
                tracing::warn!(error = %e, "the analysis scheduler could not look for due runs");
            }
        }
    })
}

#[derive(Clone)]
struct Scheduler {
    host: Arc<PluginHost>,
    storage: Arc<dyn Storage>,
    config: SchedulerConfig,
    stats: Arc<SchedulerStats>,
    permits: Arc<Semaphore>,
    /// Alert evaluations, one at a time, apart from the detectors' permits so that a long
    /// detector run never delays a tenant's alerts.
    alert_permits: Arc<Semaphore>,
    /// (tenant, plugin) with a task under way on this replica.
    running: Arc<Mutex<HashSet<(TenantId, String)>>>,
    /// Each install's series values, kept between its runs.
    cache: Arc<SeriesCache>,
}

impl Scheduler {
    async fn tick(&self) -> Result<(), String> {
        let tenants = self
            .storage
            .plugins()
            .tenants_with_kinds(&["detector", "forecaster"])
            .await
            .map_err(|e| e.to_string())?;
        let now = hub_core::time::now_ms();
        let mut live = HashSet::new();
        for tenant in tenants {
            let analysers = match self.host.analysers(tenant).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "reading the tenant's detectors failed");
                    continue;
                }
            };
            for analyser in analysers {
                let key = (tenant, analyser.name.clone());
                live.insert(key.clone());
                if self.running.lock().unwrap().contains(&key) {
                    continue;
                }
                let due = match self.due(tenant, &analyser, now).await {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, plugin = %analyser.name, error = %e, "reading the plugin's runs failed");
                        continue;
                    }
                };
                if due.is_empty() {
                    continue;
                }
                self.running.lock().unwrap().insert(key.clone());
                let this = self.clone();
                tokio::spawn(async move {
                    for period in due {
                        this.run_once(tenant, &analyser, period).await;
                    }
                    this.running.lock().unwrap().remove(&key);
                });
            }
        }
        self.alert_tick(now).await?;
        // Grids of installs removed or disabled since are dropped (a change of settings is
        // seen when the grid is next asked for).
        self.cache
            .retain(&|t, p| live.contains(&(t, p.to_string())));
        Ok(())
    }

    /// Evaluates each tenant's alert rules once a minute (the newest settled one; alerts do
    /// not catch up on minutes the hub was down), on one replica.
    async fn alert_tick(&self, now: i64) -> Result<(), String> {
        let tenants = self
            .storage
            .alerts()
            .tenants_with_rules()
            .await
            .map_err(|e| e.to_string())?;
        let runs = self.storage.analysis_runs();
        let window_start = floor_to(now, MINUTE_MS) - 2 * MINUTE_MS;
        for tenant in tenants {
            let key = (tenant, ALERTS_RUN.to_string());
            if self.running.lock().unwrap().contains(&key) {
                continue;
            }
            let recent = match runs.runs(tenant, Some(ALERTS_RUN), window_start).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "reading the alert evaluations failed");
                    continue;
                }
            };
            let last = recent.iter().map(|r| r.period_ms).max();
            let due = due_periods(MINUTE_MS, true, now, &self.config, &recent, last);
            let Some(&period) = due.last() else { continue };
            self.running.lock().unwrap().insert(key.clone());
            let this = self.clone();
            tokio::spawn(async move {
                this.evaluate_alerts(tenant, period).await;
                this.running.lock().unwrap().remove(&key);
            });
        }
        Ok(())
    }

    async fn evaluate_alerts(&self, tenant: TenantId, period: i64) {
        let Ok(_permit) = self.alert_permits.acquire().await else {
            return;
        };
        let runs = self.storage.analysis_runs();
        let owner = &self.config.owner;
        let lease = self.config.lease.as_millis() as i64;
        let now = hub_core::time::now_ms();
        match runs
            .claim_run(tenant, ALERTS_RUN, period, owner, now, lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "taking the alert evaluation's lease failed");
                return;
            }
        }
        let outcome = match crate::alerts::evaluate::evaluate_tenant(
            self.storage.as_ref(),
            tenant,
            period,
        )
        .await
        {
            Ok(rules) => {
                let notices: usize = rules.iter().map(|r| r.notices.len()).sum();
                self.stats.alert_evaluations.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .alert_notices
                    .fetch_add(notices as u64, Ordering::Relaxed);
                for r in &rules {
                    for (n, text) in &r.notices {
                        tracing::info!(tenant = %tenant, rule = %r.rule, kind = ?n.kind, "alert: {text}");
                    }
                }
                RunOutcome {
                    outcome: "ok".into(),
                    series: rules.len() as i64,
                    found: notices as i64,
                    message: None,
                }
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "evaluating alert rules failed");
                RunOutcome {
                    outcome: "failed".into(),
                    series: 0,
                    found: 0,
                    message: Some(e.to_string()),
                }
            }
        };
        let done = hub_core::time::now_ms();
        if let Err(e) = runs
            .finish_run(tenant, ALERTS_RUN, period, owner, done, &outcome)
            .await
        {
            tracing::warn!(tenant = %tenant, error = %e, "recording an alert evaluation failed");
        }
    }

    async fn due(
        &self,
        tenant: TenantId,
        analyser: &Analyser,
        now: i64,
    ) -> Result<Vec<i64>, hub_storage::StorageError> {
        let every = analyser.series.every_ms;
        let window_start = floor_to(now, every) - i64::from(self.config.catch_up + 1) * every;
        let runs = self.storage.analysis_runs();
        let recent = runs
            .runs(tenant, Some(&analyser.name), window_start)
            .await?;
        let last = if recent.is_empty() {
            runs.last_run(tenant, &analyser.name).await?
        } else {
            None
        };
        Ok(due_periods(
            every,
            analyser.kind == PluginKind::Forecaster,
            now,
            &self.config,
            &recent,
            last,
        ))
    }

    /// Takes the period's lease and runs it; another replica's period is skipped.
    async fn run_once(&self, tenant: TenantId, analyser: &Analyser, period: i64) {
        let Ok(_permit) = self.permits.acquire().await else {
            return;
        };
        let analysis = self.storage.analysis_runs();
        let owner = &self.config.owner;
        let now = hub_core::time::now_ms();
        let lease = self.config.lease.as_millis() as i64;
        match analysis
            .claim_run(tenant, &analyser.name, period, owner, now, lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                self.stats.runs_skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant, plugin = %analyser.name, error = %e, "taking a run's lease failed");
                return;
            }
        }
        let started = Instant::now();
        let outcome = analysis::run(
            &self.host,
            &self.storage,
            tenant,
            analyser,
            period,
            &self.cache,
        )
        .await;
        self.record(tenant, analyser, period, &outcome, started.elapsed());
        if let Err(e) = analysis
            .finish_run(
                tenant,
                &analyser.name,
                period,
                owner,
                hub_core::time::now_ms(),
                &outcome,
            )
            .await
        {
            // The lease runs out and another replica runs the period again; what this run
            // stored is stored once all the same.
            tracing::warn!(tenant = %tenant, plugin = %analyser.name, error = %e, "recording a finished run failed");
        }
    }

    fn record(
        &self,
        tenant: TenantId,
        analyser: &Analyser,
        period: i64,
        outcome: &RunOutcome,
        took: Duration,
    ) {
        let s = &self.stats;
        s.run_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if outcome.outcome == "ok" {
            s.runs_ok.fetch_add(1, Ordering::Relaxed);
            let found = if analyser.kind == PluginKind::Forecaster {
                &s.forecasts
            } else {
                &s.anomalies
            };
            found.fetch_add(outcome.found as u64, Ordering::Relaxed);
            tracing::debug!(tenant = %tenant, plugin = %analyser.name, period, series = outcome.series, found = outcome.found, took_ms = took.as_millis() as u64, "analysis run");
        } else {
            s.runs_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tenant = %tenant, plugin = %analyser.name, period, message = outcome.message.as_deref().unwrap_or(""), "analysis run failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    /// 12:00:30 on some day: the minute that ended at 12:00 is settled (20 s), the one that
    /// ends at 12:01 is not.
    const NOON: i64 = 1_795_000_000_000 - 1_795_000_000_000 % (60 * M) + 30_000;

    fn run(period_ms: i64, started_at_ms: i64, finished: bool) -> RunRecord {
        RunRecord {
            plugin: "zscore".into(),
            period_ms,
            owner: "a".into(),
            started_at_ms,
            finished_at_ms: finished.then_some(started_at_ms + 1),
            outcome: None,
        }
    }

    #[test]
    fn a_new_plugin_runs_the_newest_settled_period() {
        let c = SchedulerConfig::default();
        let newest = NOON - 30_000;
        assert_eq!(due_periods(M, false, NOON, &c, &[], None), [newest]);
        // Five-minute periods: the newest that ended before now minus the settling time.
        assert_eq!(due_periods(5 * M, false, NOON, &c, &[], None), [newest]);
        assert_eq!(
            due_periods(5 * M, false, NOON + 4 * M, &c, &[], None),
            [newest]
        );
        // Before the settling time has passed, the minute that just ended is not due.
        assert_eq!(
            due_periods(M, false, newest + 10_000, &c, &[], None),
            [newest - M]
        );
    }

    #[test]
    fn nothing_is_due_twice_and_missed_periods_are_caught_up_to_a_bound() {
        let c = SchedulerConfig::default();
        let newest = NOON - 30_000;
        let done = [run(newest, NOON - 10_000, true)];
        assert!(due_periods(M, false, NOON, &c, &done, None).is_empty());
        // Down for three minutes: the three missed periods, oldest first.
        let later = due_periods(M, false, NOON + 3 * M, &c, &done, None);
        assert_eq!(later, [newest + M, newest + 2 * M, newest + 3 * M]);
        // Down for a day: the newest `catch_up` periods only.
        let day = due_periods(M, false, NOON + 1_440 * M, &c, &[], Some(newest));
        assert_eq!(day.len(), 60);
        assert_eq!(*day.last().unwrap(), newest + 1_440 * M);
        // A forecaster makes only the newest forecast.
        assert_eq!(
            due_periods(M, true, NOON + 3 * M, &c, &done, None),
            [newest + 3 * M]
        );
    }

    #[test]
    fn a_run_left_unfinished_is_due_again_once_its_lease_is_old() {
        let c = SchedulerConfig::default();
        let newest = NOON - 30_000;
        let held = [
            run(newest - M, NOON - 60_000, false),
            run(newest, NOON - 10_000, true),
        ];
        assert!(due_periods(M, false, NOON, &c, &held, None).is_empty());
        let lease = c.lease.as_millis() as i64;
        let old = [
            run(newest - M, NOON - lease - 1, false),
            run(newest, NOON - 10_000, true),
        ];
        assert_eq!(due_periods(M, false, NOON, &c, &old, None), [newest - M]);
    }
}
