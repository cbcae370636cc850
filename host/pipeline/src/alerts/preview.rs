//! How often a rule would have fired over the last week, before it is saved: the rule form's
//! preview. A threshold rule is replayed over the minute rollups (each group's window at every
//! evaluation point, its `for` counted in points); an anomaly rule counts the anomalies it would
//! have matched. The other kinds depend on what only the live evaluation has (this month's
//! budget, events kept as raw events, other rules' alerts) and are not previewed.

use std::collections::BTreeMap;

use hub_core::time::{DAY_MS, MINUTE_MS, floor_to};
use hub_core::{Dimension, Metric, TenantId};
use hub_storage::analytics::{TimeseriesQuery, buckets};
use hub_storage::{Aggregate, AnomalyFilter, Storage, StorageError};

use super::evaluate::holding;
use super::lifecycle::AlertGroup;
use super::rule::{Condition, Rule};

/// How far back a preview looks.
pub const SPAN_MS: i64 = 7 * DAY_MS;
/// Evaluation points per window at most (a long window is replayed at a coarser step).
const POINTS_PER_WINDOW: i64 = 12;
/// Groups replayed at most (the busiest).
pub const MAX_GROUPS: usize = 100;
/// Episodes listed at most (the newest).
const MAX_EPISODES: usize = 20;

/// One time a group's alert would have fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub group: AlertGroup,
    pub fired_ms: i64,
    /// `None` while it would still be firing now.
    pub resolved_ms: Option<i64>,
}

/// What the replay found.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub from_ms: i64,
    pub to_ms: i64,
    /// How far apart the evaluation points were (the rule itself runs every minute).
    pub step_ms: i64,
    /// Groups judged (at most [`MAX_GROUPS`]).
    pub groups: usize,
    /// Times an alert would have started firing.
    pub fired: usize,
    /// Time spent firing, summed over groups.
    pub firing_ms: i64,
    /// The newest episodes.
    pub episodes: Vec<Episode>,
}

/// The preview of `rule` at `now_ms`, or `None` for a kind that is not previewed.
pub async fn preview(
    store: &dyn Storage,
    tenant: TenantId,
    rule: &Rule,
    now_ms: i64,
) -> Result<Option<Preview>, StorageError> {
    let to = floor_to(now_ms, MINUTE_MS);
    let from = to - SPAN_MS;
    match &rule.condition {
        Condition::Threshold {
            metric,
            window_ms,
            for_ms,
            group_by,
            filters,
            ..
        } => {
            let step = (window_ms / POINTS_PER_WINDOW / MINUTE_MS).max(1) * MINUTE_MS;
            let dims: Vec<Dimension> = group_by
                .iter()
                .filter_map(|d| Dimension::parse(d))
                .collect();
            let q = TimeseriesQuery {
                from_ms: from - window_ms,
                to_ms: to,
                step_ms: MINUTE_MS,
                metric: Metric::Requests,
                group_by: dims,
                filters: filters
                    .iter()
                    .filter_map(|(k, v)| Some((Dimension::parse(k)?, v.clone())))
                    .collect(),
            };
            let latency = metric.starts_with("latency");
            let series = buckets(store, tenant, &q, latency, None).await?;
            // The busiest groups; a group without a value for a dimension is not judged.
            let mut groups: Vec<(AlertGroup, BTreeMap<i64, Aggregate>)> = series
                .into_iter()
                .filter_map(|(key, minutes)| {
                    let values: Option<Vec<String>> = key.into_iter().collect();
                    let mut g: AlertGroup = group_by.iter().cloned().zip(values?).collect();
                    g.sort();
                    Some((g, minutes))
                })
                .collect();
            groups.sort_by_key(|(_, m)| {
                std::cmp::Reverse(m.values().map(|a| a.requests).sum::<i64>())
            });
            groups.truncate(MAX_GROUPS);
            let need = (for_ms + step - 1) / step;
            let mut out = Preview {
                from_ms: from,
                to_ms: to,
                step_ms: step,
                groups: groups.len(),
                fired: 0,
                firing_ms: 0,
                episodes: Vec::new(),
            };
            for (group, minutes) in &groups {
                let mut streak = 0;
                let mut fired_at: Option<i64> = None;
                let mut t = from + step;
                while t <= to {
                    let mut agg = Aggregate::default();
                    for (_, a) in minutes.range(t - window_ms..t) {
                        if latency {
                            agg.merge(a);
                        } else {
                            agg.merge_sums(a);
                        }
                    }
                    let holds = !holding(rule, &[(group.clone(), agg)]).is_empty();
                    streak = if holds { streak + 1 } else { 0 };
                    match (holds && streak > need, fired_at) {
                        (true, None) => fired_at = Some(t),
                        (false, Some(f)) => {
                            out.record(group, f, Some(t));
                            fired_at = None;
                        }
                        _ => {}
                    }
                    t += step;
                }
                if let Some(f) = fired_at {
                    out.record(group, f, None);
                }
            }
            out.episodes.sort_by_key(|e| std::cmp::Reverse(e.fired_ms));
            out.episodes.truncate(MAX_EPISODES);
            Ok(Some(out))
        }
        Condition::Anomaly {
            detector,
            min_severity,
            filters,
        } => {
            let filter = AnomalyFilter {
                from_ms: Some(from),
                to_ms: Some(to),
                min_severity: Some(*min_severity),
                plugin: detector.clone(),
                dims: filters.clone(),
                ..Default::default()
            };
            let (found, _) = store
                .anomalies()
                .list_anomalies(tenant, &filter, None, 10_000)
                .await?;
            let mut out = Preview {
                from_ms: from,
                to_ms: to,
                step_ms: MINUTE_MS,
                groups: 0,
                fired: 0,
                firing_ms: 0,
                episodes: Vec::new(),
            };
            // Per series, oldest first: an anomaly while the last one still holds the alert
            // keeps it firing, as the live rule does.
            let mut by_series: BTreeMap<AlertGroup, Vec<(i64, i64)>> = BTreeMap::new();
            for a in &found {
                let mut g = a.found.dims.clone();
                g.push(("metric".into(), a.found.metric.clone()));
                g.sort();
                let end = a.found.ts_ms + a.found.step_ms + super::evaluate::ANOMALY_HOLD_MS;
                by_series.entry(g).or_default().push((a.found.ts_ms, end));
            }
            out.groups = by_series.len();
            for (g, mut spans) in by_series {
                spans.sort_unstable();
                let mut open: Option<(i64, i64)> = None;
                for (start, end) in spans {
                    open = match open {
                        Some((s, e)) if start <= e => Some((s, e.max(end))),
                        Some((s, e)) => {
                            out.record(&g, s, Some(e));
                            Some((start, end))
                        }
                        None => Some((start, end)),
                    };
                }
                if let Some((s, e)) = open {
                    out.record(&g, s, (e <= to).then_some(e));
                }
            }
            out.episodes.sort_by_key(|e| std::cmp::Reverse(e.fired_ms));
            out.episodes.truncate(MAX_EPISODES);
            Ok(Some(out))
        }
        Condition::Budget { .. } | Condition::Event { .. } | Condition::Composite { .. } => {
            Ok(None)
        }
    }
}

impl Preview {
    fn record(&mut self, group: &AlertGroup, fired_ms: i64, resolved_ms: Option<i64>) {
        self.fired += 1;
        self.firing_ms += resolved_ms.unwrap_or(self.to_ms) - fired_ms;
        self.episodes.push(Episode {
            group: group.clone(),
            fired_ms,
            resolved_ms,
        });
    }
}
