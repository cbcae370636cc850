//! Alert notices delivered to the rules' targets (installed integrations, their `on-alerts`).
//!
//! - **Queued with the alert.** An evaluation's notices become one delivery per target, stored
//!   in the transaction that stores the alert's change: a notice raised is never lost, and one
//!   not stored was never raised.
//! - **Taken once.** Every `tick` each replica looks for tenants with due deliveries and takes up
//!   to `per_tenant` of a tenant's for `lease` (a replica that dies mid-way leaves them to another
//!   once the lease passes: delivery is at least once; the alert's id and state tell repeats apart).
//! - **Grouped.** A tenant's due deliveries to one target go in one `on-alerts` call (up to
//!   `batch`), so the alerts of a rule that fire together arrive as one message.
//! - **Retried.** A target that is unavailable (or overran its deadline, or trapped) is tried
//!   again after an exponential backoff with jitter (`retry_base` doubling up to `retry_max`,
//!   each wait drawn between half and all of it, once per call so that a batch stays one), until `give_up` after the notice was raised;
//!   a target that answers that its configuration is wrong, or has a bug, is not retried. Every
//!   attempt is recorded, and the alert stays as it is whatever its deliveries do.
//! - **Apart.** One task per tenant at most, `concurrency` calls at once across tenants; the
//!   calls are not charged to the tenant's enrichment budget, so neither a slow target nor a
//!   flood of alerts slows any tenant's ingest, and a tenant's slow target delays another
//!   tenant's deliveries by at most its deadline.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub_core::TenantId;
use hub_plugins::{
    Alert, AlertSeverity, AlertState, CallError, PluginError, PluginHost, SEVERITY_LABEL,
    STATE_LABEL, alert_v1,
};
use hub_storage::{AfterAttempt, Delivery, DeliveryAttempt, NewDelivery, Storage};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::lifecycle::{Notice, NoticeKind};
use super::rule::Rule;
use super::silence::Silence;

/// An alert as its targets are handed it, fixed when the notice is raised (the id is the
/// alert's, and the state the delivery's notice, filled in when it is sent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub rule: String,
    /// The rule's kind (`threshold`, …); empty in what a hub before 0.3.0's alerts stored.
    #[serde(default)]
    pub kind: String,
    /// The rule's severity as the hub names it.
    pub severity: String,
    pub ts_ms: i64,
    pub summary: String,
    /// The dimensions of the alert's group.
    #[serde(default)]
    pub group: Vec<(String, String)>,
    /// The rule's labels. (What an older hub stored here was the group's dimensions, the
    /// rule's labels, the state and the severity in one list.)
    pub labels: Vec<(String, String)>,
    /// The value that made the notice.
    #[serde(default)]
    pub value: Option<f64>,
}

impl Payload {
    /// What a silence's matchers are checked against: the labels a 0.1.0 integration reads
    /// (the group's dimensions, the rule's labels, `state` and `severity`).
    pub fn match_labels(&self, notice: &str) -> Vec<(String, String)> {
        alert_v1(&self.to_alert(0, notice)).labels
    }

    /// The WIT's alert of the alert `alert_id`, for the delivery's `notice`.
    pub fn to_alert(&self, alert_id: i64, notice: &str) -> Alert {
        let host = [STATE_LABEL, SEVERITY_LABEL];
        Alert {
            id: alert_id.to_string(),
            rule: self.rule.clone(),
            rule_kind: self.kind.clone(),
            state: if notice == "resolved" {
                AlertState::Resolved
            } else {
                AlertState::Firing
            },
            repeat: notice == "repeat",
            severity: AlertSeverity::parse(&self.severity).unwrap_or(AlertSeverity::Warning),
            ts_ms: self.ts_ms,
            summary: self.summary.clone(),
            group: self.group.clone(),
            labels: self
                .labels
                .iter()
                .filter(|(k, _)| !host.contains(&k.as_str()))
                .cloned()
                .collect(),
            value: self.value,
        }
    }
}

/// The deliveries of a rule's notices: one per (notice, target); a notice a silence matches at
/// `now_ms` is recorded as silenced, not sent.
pub fn deliveries_for(
    rule: &Rule,
    notices: &[(Notice, String)],
    now_ms: i64,
    silences: &[Silence],
) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    for (n, summary) in notices {
        let payload = Payload {
            rule: rule.name.clone(),
            kind: rule.condition.kind().into(),
            severity: rule.severity.as_str().into(),
            ts_ms: now_ms,
            summary: summary.clone(),
            group: n.group.clone(),
            labels: rule
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            value: n.value.is_finite().then_some(n.value),
        };
        let notice = notice_name(n.kind);
        let silenced = silences
            .iter()
            .find(|s| s.silences(now_ms, &rule.name, &payload.match_labels(notice)))
            .map(Silence::note);
        let payload = serde_json::to_string(&payload).expect("a payload is always JSON");
        for target in &rule.targets {
            out.push(NewDelivery {
                group: n.group.clone(),
                target: target.clone(),
                notice: notice.into(),
                payload: payload.clone(),
                silenced: silenced.clone(),
            });
        }
    }
    out
}

fn notice_name(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Firing => "firing",
        NoticeKind::Repeat => "repeat",
        NoticeKind::Resolved => "resolved",
    }
}

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// How often each replica looks for due deliveries.
    pub tick: Duration,
    /// How long a replica holds the deliveries it took.
    pub lease: Duration,
    /// The first retry's wait (before jitter); each later one doubles, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A delivery not made this long after its notice was raised is given up.
    pub give_up: Duration,
    /// Deliveries of one tenant taken per tick at most.
    pub per_tenant: usize,
    /// Alerts in one `on-alerts` call at most.
    pub batch: usize,
    /// Calls at once across tenants.
    pub concurrency: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            lease: Duration::from_secs(300),
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(600),
            give_up: Duration::from_secs(6 * 3600),
            per_tenant: 500,
            batch: 100,
            concurrency: 4,
        }
    }
}

/// Deliveries made, retried and given up, for `/metrics`.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
}

/// Whether a failed call is worth making again: the target was unavailable, ran out of time or
/// memory, trapped, or the hub could not make the call (a disabled integration may be enabled
/// again). A target that says its configuration is wrong, or that it has a bug, or that
/// answered against the contract, is not.
pub fn retryable(e: &CallError) -> bool {
    !matches!(
        e,
        CallError::Plugin(PluginError::BadConfig(_) | PluginError::Internal(_))
            | CallError::WrongKind(_)
            | CallError::InvalidOutput(_)
    )
}

/// The wait before retry number `attempts` (1 for the first): `retry_base` doubled per attempt
/// up to `retry_max`, then drawn between half and all of that by `jitter` in [0, 1).
pub fn backoff(config: &DeliveryConfig, attempts: u32, jitter: f64) -> Duration {
    let doubled = config
        .retry_base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let full = doubled.min(config.retry_max);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// What becomes of a delivery made `attempts` times (this one included) whose last attempt at
/// `now_ms` failed with `e`.
pub fn after_failure(
    config: &DeliveryConfig,
    d: &Delivery,
    attempts: u32,
    e: &CallError,
    now_ms: i64,
    jitter: f64,
) -> AfterAttempt {
    let at_ms = now_ms + backoff(config, attempts, jitter).as_millis() as i64;
    if retryable(e) && at_ms - d.created_at_ms <= config.give_up.as_millis() as i64 {
        AfterAttempt::Retry { at_ms }
    } else {
        AfterAttempt::Failed
    }
}

/// Delivers due notices every `config.tick`, until aborted.
pub fn spawn_delivery(
    host: Arc<PluginHost>,
    storage: Arc<dyn Storage>,
    config: DeliveryConfig,
    stats: Arc<DeliveryStats>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let d = Deliverer {
            host,
            storage,
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            running: Arc::new(Mutex::new(HashSet::new())),
            config,
            stats,
        };
        let mut tick = tokio::time::interval(d.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = d.tick().await {
                tracing::warn!(error = %e, "looking for due alert deliveries failed");
            }
        }
    })
}

#[derive(Clone)]
struct Deliverer {
    host: Arc<PluginHost>,
    storage: Arc<dyn Storage>,
    config: DeliveryConfig,
    stats: Arc<DeliveryStats>,
    permits: Arc<Semaphore>,
    /// Tenants with a delivery task under way on this replica.
    running: Arc<Mutex<HashSet<TenantId>>>,
}

impl Deliverer {
    async fn tick(&self) -> Result<(), hub_storage::StorageError> {
        let now = hub_core::time::now_ms();
        for tenant in self.storage.deliveries().tenants_with_due(now).await? {
            if !self.running.lock().unwrap().insert(tenant) {
                continue;
            }
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.deliver_tenant(tenant).await {
                    tracing::warn!(tenant = %tenant, error = %e, "delivering alerts failed");
                }
                this.running.lock().unwrap().remove(&tenant);
            });
        }
        Ok(())
    }

    /// Takes the tenant's due deliveries and makes one call per target and batch.
    async fn deliver_tenant(&self, tenant: TenantId) -> Result<(), hub_storage::StorageError> {
        let store = self.storage.deliveries();
        let taken = store
            .claim_due(
                tenant,
                hub_core::time::now_ms(),
                self.config.lease.as_millis() as i64,
                self.config.per_tenant,
            )
            .await?;
        let mut by_target: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
        for d in taken {
            by_target.entry(d.target.clone()).or_default().push(d);
        }
        for (target, deliveries) in by_target {
            for chunk in deliveries.chunks(self.config.batch.max(1)) {
                self.deliver(tenant, &target, chunk).await?;
            }
        }
        Ok(())
    }

    /// One `on-alerts` call with `chunk`, and its outcome recorded for each delivery.
    async fn deliver(
        &self,
        tenant: TenantId,
        target: &str,
        chunk: &[Delivery],
    ) -> Result<(), hub_storage::StorageError> {
        let store = self.storage.deliveries();
        let mut alerts = Vec::with_capacity(chunk.len());
        let mut sent = Vec::with_capacity(chunk.len());
        for d in chunk {
            match serde_json::from_str::<Payload>(&d.payload) {
                Ok(p) => {
                    alerts.push(p.to_alert(d.alert_id, &d.notice));
                    sent.push(d);
                }
                Err(e) => {
                    // Written by a hub whose payload this one cannot read: nothing to retry.
                    let why = format!("the stored notice does not read: {e}");
                    let now = hub_core::time::now_ms();
                    store
                        .record_attempt(
                            tenant,
                            &attempt(d, now, 0, AfterAttempt::Failed, Some(&why)),
                            AfterAttempt::Failed,
                            Some(&why),
                        )
                        .await?;
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if sent.is_empty() {
            return Ok(());
        }
        let result = {
            let Ok(_permit) = self.permits.acquire().await else {
                return Ok(());
            };
            let started = Instant::now();
            let r = self.host.notify(tenant, target, alerts).await;
            (r, started.elapsed())
        };
        let (result, took) = result;
        let now = hub_core::time::now_ms();
        let error = result.as_ref().err().map(|e| e.to_string());
        // One draw for the call: the alerts that went together are retried together.
        let jitter: f64 = rand::random();
        for d in sent {
            let attempts = u32::try_from(d.attempts + 1).unwrap_or(u32::MAX);
            let after = match &result {
                Ok(()) => AfterAttempt::Delivered,
                Err(e) => after_failure(&self.config, d, attempts, e, now, jitter),
            };
            let counter = match after {
                AfterAttempt::Delivered => &self.stats.delivered,
                AfterAttempt::Retry { .. } => &self.stats.retried,
                AfterAttempt::Failed => &self.stats.failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let a = attempt(d, now, took.as_millis() as i64, after, error.as_deref());
            store
                .record_attempt(tenant, &a, after, error.as_deref())
                .await?;
        }
        if let Err(e) = &result {
            tracing::warn!(tenant = %tenant, target, alerts = chunk.len(), error = %e, "an alert delivery failed");
        }
        Ok(())
    }
}

fn attempt(
    d: &Delivery,
    at_ms: i64,
    duration_ms: i64,
    after: AfterAttempt,
    error: Option<&str>,
) -> DeliveryAttempt {
    DeliveryAttempt {
        delivery_id: d.id,
        at_ms,
        duration_ms,
        outcome: after.outcome().into(),
        error: error.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DeliveryConfig {
        DeliveryConfig {
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(600),
            give_up: Duration::from_secs(3600),
            ..Default::default()
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap_and_is_jittered_between_half_and_all() {
        let c = config();
        let secs = |n, j| backoff(&c, n, j).as_secs_f64();
        assert_eq!(
            [secs(1, 1.0), secs(2, 1.0), secs(3, 1.0)],
            [10.0, 20.0, 40.0]
        );
        assert_eq!(secs(1, 0.0), 5.0);
        assert_eq!(secs(7, 1.0), 600.0, "capped");
        assert_eq!(secs(40, 0.0), 300.0, "no overflow far out");
        assert!((secs(2, 0.5) - 15.0).abs() < 1e-9);
    }

    fn delivery(created_at_ms: i64) -> Delivery {
        Delivery {
            id: 1,
            tenant: TenantId::from_verified(1),
            alert_id: 7,
            rule_id: 3,
            target: "webhook".into(),
            notice: "firing".into(),
            payload: "{}".into(),
            state: "queued".into(),
            attempts: 0,
            created_at_ms,
            next_at_ms: created_at_ms,
            finished_at_ms: None,
            last_error: None,
        }
    }

    #[test]
    fn an_unavailable_target_is_retried_until_the_give_up_time_and_a_bad_config_never() {
        let c = config();
        let d = delivery(0);
        let down = CallError::Plugin(PluginError::Unavailable("503".into()));
        assert_eq!(
            after_failure(&c, &d, 1, &down, 1_000, 1.0),
            AfterAttempt::Retry { at_ms: 11_000 }
        );
        assert_eq!(
            after_failure(
                &c,
                &d,
                2,
                &CallError::Deadline(Duration::from_secs(5)),
                0,
                0.0
            ),
            AfterAttempt::Retry { at_ms: 10_000 }
        );
        // The next try would fall after the hour.
        assert_eq!(
            after_failure(&c, &d, 9, &down, 3_300_000, 1.0),
            AfterAttempt::Failed
        );
        let wrong = CallError::Plugin(PluginError::BadConfig("url: 404".into()));
        assert_eq!(
            after_failure(&c, &d, 1, &wrong, 0, 0.0),
            AfterAttempt::Failed
        );
        let bug = CallError::Plugin(PluginError::Internal("oops".into()));
        assert!(!retryable(&bug));
        assert!(retryable(&CallError::Host("no enabled integration".into())));
    }
}
