//! One evaluation of a tenant's rules: for each enabled rule, which groups hold now (a
//! threshold over its window of the rollups; an anomaly rule over the anomalies detectors
//! stored; a budget over the month's spend or its month-end projection), one lifecycle step over
//! its open alerts, and what changed stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use hub_core::time::{DAY_MS, MINUTE_MS};
use hub_core::{Dimension, Severity, TenantId};
use hub_storage::analytics::{SummaryQuery, summary};
use hub_storage::{
    AlertRecord, AnomalyFilter, EventField, EventFilter, Storage, StorageError, StoredRule,
};

use super::lifecycle::{self, Alert, AlertGroup, Notice, Phase};
use super::rule::{self, Condition, Rule};
use super::silence::{self, Silence};
use super::text;
use hub_storage::Aggregate;

/// How long after its step ends an anomaly keeps an anomaly rule's alert firing.
pub const ANOMALY_HOLD_MS: i64 = 5 * MINUTE_MS;

/// What one evaluation of a rule did.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOutcome {
    pub rule_id: i64,
    pub rule: String,
    pub severity: Severity,
    /// The notices, with what a person reads for each.
    pub notices: Vec<(Notice, String)>,
    /// Its alerts open (pending or firing) after this evaluation.
    pub open: usize,
    /// Of those, the firing ones (what a composite rule reads).
    pub firing: usize,
}

/// Evaluates each of the tenant's enabled rules at `now_ms`. A rule whose stored JSON no longer
/// reads (written by an older hub) is skipped with a warning rather than failing the others.
pub async fn evaluate_tenant(
    store: &dyn Storage,
    tenant: TenantId,
    now_ms: i64,
) -> Result<Vec<RuleOutcome>, StorageError> {
    let mut out = Vec::new();
    let silences: Vec<Silence> = store
        .silences()
        .silences(tenant, now_ms, false, silence::MAX_ACTIVE)
        .await?
        .iter()
        .filter_map(Silence::read)
        .collect();
    let ctx = Evaluation {
        store,
        tenant,
        now_ms,
        silences,
        reads: Reads::default(),
        firing: Mutex::new(HashMap::new()),
    };
    let mut rules = Vec::new();
    for stored in store.alerts().rules(tenant).await? {
        if !stored.enabled {
            continue;
        }
        let spec: serde_json::Value = serde_json::from_str(&stored.spec)
            .map_err(|e| StorageError::Corrupt(format!("alert rule {}: {e}", stored.id)))?;
        match rule::parse(&spec) {
            Ok(rule) => rules.push((stored, rule)),
            Err(e) => {
                tracing::warn!(tenant = %tenant, rule = stored.id, error = %e, "an alert rule no longer reads; skipped")
            }
        }
    }
    // Composites read what the others' evaluation of this minute left firing: they go last.
    rules.sort_by_key(|(_, r)| matches!(r.condition, Condition::Composite { .. }));
    for (stored, rule) in &rules {
        let outcome = evaluate_rule(&ctx, stored, rule).await?;
        ctx.firing
            .lock()
            .unwrap()
            .insert(rule.name.clone(), outcome.firing);
        out.push(outcome);
    }
    Ok(out)
}

/// One evaluation of a tenant's rules: when, the silences in effect, and what its rules read,
/// read once however many rules ask for it (rules that share a window, a grouping and filters
/// share one summary of the rollups; the same goes for anomalies, events and the month's spend).
pub struct Evaluation<'a> {
    pub store: &'a dyn Storage,
    pub tenant: TenantId,
    pub now_ms: i64,
    pub silences: Vec<Silence>,
    reads: Reads,
    /// Each rule evaluated so far, by name: its firing alerts.
    firing: Mutex<HashMap<String, usize>>,
}

type Shared<T> = Mutex<HashMap<String, Arc<T>>>;

#[derive(Default)]
struct Reads {
    summaries: Shared<Vec<(AlertGroup, Aggregate)>>,
    anomalies: Shared<Vec<hub_storage::Anomaly>>,
    events: Shared<Vec<hub_storage::StoredEvent>>,
    spend: Shared<crate::spend::SpendProjection>,
}

/// The value of `key` in `map`, read with `read` the first time it is asked for.
async fn once<T>(
    map: &Shared<T>,
    key: String,
    read: impl std::future::Future<Output = Result<T, StorageError>>,
) -> Result<Arc<T>, StorageError> {
    if let Some(v) = map.lock().unwrap().get(&key) {
        return Ok(v.clone());
    }
    let v = Arc::new(read.await?);
    map.lock().unwrap().insert(key, v.clone());
    Ok(v)
}

/// One rule: the groups that hold, a lifecycle step, the changes stored with their notices'
/// deliveries (those the evaluation's silences match recorded as silenced).
pub async fn evaluate_rule(
    ctx: &Evaluation<'_>,
    stored: &StoredRule,
    rule: &Rule,
) -> Result<RuleOutcome, StorageError> {
    let (store, tenant, now_ms) = (ctx.store, ctx.tenant, ctx.now_ms);
    let (holding, for_ms) = match &rule.condition {
        Condition::Threshold {
            window_ms,
            for_ms,
            group_by,
            filters,
            ..
        } => {
            let dims = |names: &[String]| -> Vec<Dimension> {
                names.iter().filter_map(|n| Dimension::parse(n)).collect()
            };
            let q = SummaryQuery {
                from_ms: now_ms - window_ms,
                to_ms: now_ms,
                group_by: dims(group_by),
                filters: filters
                    .iter()
                    .filter_map(|(k, v)| Some((Dimension::parse(k)?, v.clone())))
                    .collect(),
            };
            let key = format!("{window_ms}|{group_by:?}|{filters:?}");
            let groups = once(&ctx.reads.summaries, key, async {
                Ok(summary(store, tenant, &q)
                    .await?
                    .into_iter()
                    .filter_map(|g| {
                        // A group without a value for one of its dimensions is not judged.
                        let values: Option<Vec<String>> = g.key.into_iter().collect();
                        let mut key: AlertGroup = group_by.iter().cloned().zip(values?).collect();
                        key.sort();
                        Some((key, g.agg))
                    })
                    .collect())
            })
            .await?;
            (holding(rule, &groups), *for_ms)
        }
        Condition::Anomaly {
            detector,
            min_severity,
            filters,
        } => {
            let filter = AnomalyFilter {
                from_ms: Some(now_ms - DAY_MS - ANOMALY_HOLD_MS),
                min_severity: Some(*min_severity),
                plugin: detector.clone(),
                dims: filters.clone(),
                ..Default::default()
            };
            let key = format!("{detector:?}|{min_severity:?}|{filters:?}");
            let found = once(&ctx.reads.anomalies, key, async {
                Ok(store
                    .anomalies()
                    .list_anomalies(tenant, &filter, None, 1_000)
                    .await?
                    .0)
            })
            .await?;
            let mut holding: BTreeMap<AlertGroup, f64> = BTreeMap::new();
            for a in found
                .iter()
                .filter(|a| a.found.ts_ms + a.found.step_ms + ANOMALY_HOLD_MS > now_ms)
            {
                let mut key = a.found.dims.clone();
                key.push(("metric".into(), a.found.metric.clone()));
                key.sort();
                // Newest first: the first anomaly of a series gives its value.
                holding.entry(key).or_insert(a.found.value);
            }
            (holding.into_iter().collect(), 0)
        }
        Condition::Event {
            event_kind,
            min_severity,
            window_ms,
            min_count,
            group_by,
        } => {
            let filter = EventFilter {
                from_ms: Some(now_ms - window_ms),
                to_ms: Some(now_ms),
                fields: vec![(EventField::Kind, event_kind.clone())],
                ..Default::default()
            };
            // The newest thousand of the window at most: a count of 1,000 means "1,000 or more".
            let key = format!("{event_kind}|{window_ms}");
            let events = once(&ctx.reads.events, key, async {
                Ok(store
                    .list_events(tenant, &filter, None, 1_000)
                    .await?
                    .events)
            })
            .await?;
            let dim = group_by.as_deref().and_then(Dimension::parse);
            let mut counts: BTreeMap<AlertGroup, u64> = BTreeMap::new();
            for e in events.iter().map(|e| &e.record) {
                let severe = match (min_severity, e.severity) {
                    (None, _) => true,
                    (Some(min), Some(s)) => s as u8 >= *min as u8,
                    (Some(_), None) => false,
                };
                let key = match (group_by, dim) {
                    (Some(name), Some(d)) => match e.dimension(d) {
                        Some(v) => vec![(name.clone(), v.to_string())],
                        None => continue,
                    },
                    _ => Vec::new(),
                };
                if severe {
                    *counts.entry(key).or_default() += 1;
                }
            }
            let holding = counts
                .into_iter()
                .filter(|(_, n)| n >= min_count)
                .map(|(k, n)| (k, n as f64))
                .collect();
            (holding, 0)
        }
        Condition::Composite { all, rules } => {
            let firing = ctx.firing.lock().unwrap();
            let n = rules
                .iter()
                .filter(|r| firing.get(*r).is_some_and(|f| *f > 0))
                .count();
            let holds = if *all { n == rules.len() } else { n > 0 };
            (
                if holds {
                    vec![(Vec::new(), n as f64)]
                } else {
                    Vec::new()
                },
                0,
            )
        }
        Condition::Budget {
            budget_usd,
            percent,
            projected,
            group_by,
            from,
        } => {
            let budget_usd = match from {
                None => *budget_usd,
                Some(f) => match super::budget::limit(store, tenant, f, now_ms).await? {
                    Some(limit) => limit,
                    // Not brought in (yet): the rule's alerts stay as they are.
                    None => {
                        tracing::warn!(tenant = %tenant, rule = %rule.name, integration = %f.integration, budget = %f.budget_id, "the budget is not known: no cost.budget event of the integration names it");
                        let open = store.alerts().open_alerts(tenant, stored.id).await?;
                        let firing = open.iter().filter(|a| a.state == "firing").count();
                        return Ok(RuleOutcome {
                            rule_id: stored.id,
                            rule: rule.name.clone(),
                            severity: rule.severity,
                            notices: Vec::new(),
                            open: open.len(),
                            firing,
                        });
                    }
                },
            };
            let dim = group_by.as_deref().and_then(Dimension::parse);
            let p = once(&ctx.reads.spend, format!("{dim:?}"), async {
                crate::spend::month_projection(store, tenant, now_ms, dim).await
            })
            .await?;
            let line = budget_usd * percent / 100.0;
            let of = |pr: &crate::spend::Projection| {
                if *projected {
                    pr.projected_usd
                } else {
                    pr.actual_usd
                }
            };
            let holding = match (group_by, dim) {
                (Some(name), Some(_)) => p
                    .groups
                    .iter()
                    .filter_map(|g| Some((vec![(name.clone(), g.key.clone()?)], of(g))))
                    .filter(|(_, v)| *v >= line)
                    .collect(),
                _ => [(Vec::new(), of(&p.total))]
                    .into_iter()
                    .filter(|(_, v)| *v >= line)
                    .collect(),
            };
            (holding, 0)
        }
    };
    let alerts = store.alerts();
    let open: Vec<Alert> = alerts
        .open_alerts(tenant, stored.id)
        .await?
        .into_iter()
        .map(|r| from_record(&r))
        .collect();
    let step = lifecycle::step(for_ms, rule.renotify_ms, &open, &holding, now_ms);
    let records: Vec<AlertRecord> = step
        .alerts
        .iter()
        .map(|a| to_record(stored.id, rule, a))
        .collect();
    let notices: Vec<(Notice, String)> = step
        .notices
        .iter()
        .map(|n| (n.clone(), text::summary(rule, &n.group, n.value)))
        .collect();
    let deliveries = super::deliver::deliveries_for(rule, &notices, now_ms, &ctx.silences);
    // Most minutes change nothing: no transaction for them.
    if !(records.is_empty() && step.forgotten.is_empty() && deliveries.is_empty()) {
        alerts
            .save_alerts(
                tenant,
                stored.id,
                &records,
                &step.forgotten,
                &deliveries,
                now_ms,
            )
            .await?;
    }
    let mut phases: HashMap<&AlertGroup, Phase> =
        open.iter().map(|a| (&a.group, a.phase)).collect();
    for a in &step.alerts {
        phases.insert(&a.group, a.phase);
    }
    for g in &step.forgotten {
        phases.remove(g);
    }
    let still_open = phases.values().filter(|p| **p != Phase::Resolved).count();
    let firing = phases.values().filter(|p| **p == Phase::Firing).count();
    Ok(RuleOutcome {
        rule_id: stored.id,
        rule: rule.name.clone(),
        severity: rule.severity,
        notices,
        open: still_open,
        firing,
    })
}

fn from_record(r: &AlertRecord) -> Alert {
    Alert {
        group: r.group.clone(),
        phase: Phase::parse(&r.state),
        value: r.value,
        since_ms: r.since_ms,
        fired_at_ms: r.fired_at_ms,
        resolved_at_ms: r.resolved_at_ms,
        notified_at_ms: r.notified_at_ms,
        acknowledged: r.acknowledged.is_some(),
    }
}

fn to_record(rule_id: i64, rule: &Rule, a: &Alert) -> AlertRecord {
    AlertRecord {
        id: 0,
        rule_id,
        group: a.group.clone(),
        state: a.phase.name().into(),
        severity: rule.severity,
        value: a.value,
        summary: text::summary(rule, &a.group, a.value),
        since_ms: a.since_ms,
        fired_at_ms: a.fired_at_ms,
        resolved_at_ms: a.resolved_at_ms,
        notified_at_ms: a.notified_at_ms,
        // Kept as stored: saving does not touch it.
        acknowledged: None,
    }
}

/// The groups of a threshold rule whose condition holds over the window's totals (`groups`,
/// one per group of the rule's `group_by`), with the metric's value. A group below the rule's
/// `min_requests`, or whose metric has no value (a latency without calls), does not hold.
pub(super) fn holding(rule: &Rule, groups: &[(AlertGroup, Aggregate)]) -> Vec<(AlertGroup, f64)> {
    let Condition::Threshold {
        metric,
        op,
        value,
        min_requests,
        ..
    } = &rule.condition
    else {
        return Vec::new();
    };
    groups
        .iter()
        .filter(|(_, agg)| agg.requests.max(0) as u64 >= *min_requests)
        .filter_map(|(key, agg)| {
            let v = crate::grid::value(metric, agg);
            (v.is_finite() && op.holds(v, *value)).then(|| (key.clone(), v))
        })
        .collect()
}
