//! Summaries and time series answered from rollups, for either backend.

use std::collections::{BTreeMap, HashMap};

use hub_core::time::{ceil_to, floor_to};
use hub_core::{Dimension, Metric, TenantId};

use crate::model::{Aggregate, GroupKey, Scan};
use crate::rollup::{Source, plan, resolution_for_step};
use crate::{Result, Storage};

#[derive(Debug, Clone)]
pub struct SummaryQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub group_by: Vec<Dimension>,
    pub filters: Vec<(Dimension, String)>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub key: GroupKey,
    pub agg: Aggregate,
}

/// Totals per group over `[from, to)`, largest groups (by requests, then events) first.
pub async fn summary(
    store: &dyn Storage,
    tenant: TenantId,
    q: &SummaryQuery,
) -> Result<Vec<Group>> {
    let mut groups: HashMap<GroupKey, Aggregate> = HashMap::new();
    for piece in plan(q.from_ms, q.to_ms) {
        let scan = Scan {
            from_ms: piece.from_ms,
            to_ms: piece.to_ms,
            filters: &q.filters,
            group_by: &q.group_by,
            by_bucket: false,
            bucket_step_ms: 0,
            with_sketch: true,
            tag: None,
        };
        let rows = match piece.source {
            Source::Rollup(res) => store.scan_rollups(tenant, res, &scan).await?,
            Source::Raw => store.scan_raw(tenant, &scan, 1).await?,
        };
        for row in rows {
            groups.entry(row.key).or_default().merge(&row.agg);
        }
    }
    if q.group_by.is_empty() && groups.is_empty() {
        groups.insert(Vec::new(), Aggregate::default());
    }
    let mut out: Vec<Group> = groups
        .into_iter()
        .map(|(key, agg)| Group { key, agg })
        .collect();
    out.sort_by(|a, b| {
        (b.agg.requests, b.agg.events)
            .cmp(&(a.agg.requests, a.agg.events))
            .then_with(|| a.key.cmp(&b.key))
    });
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct TimeseriesQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    /// A whole number of minutes, hours or days (checked with [`resolution_for_step`]).
    pub step_ms: i64,
    pub metric: Metric,
    pub group_by: Vec<Dimension>,
    pub filters: Vec<(Dimension, String)>,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub key: GroupKey,
    /// One point per step from the first bucket on; `None` where the metric is undefined
    /// (a latency with no latencies in the bucket).
    pub points: Vec<(i64, Option<f64>)>,
}

/// The aligned range a time series covers: `from` rounded down and `to` rounded up to the step.
pub fn aligned_range(q: &TimeseriesQuery) -> (i64, i64) {
    (floor_to(q.from_ms, q.step_ms), ceil_to(q.to_ms, q.step_ms))
}

/// Each group's aggregate per step over the aligned range: only the buckets with rows (the
/// sketches merged only when the metric needs them). What [`timeseries`] reads points from, and
/// what the scheduler builds a detector's series of several metrics from in one scan.
///
/// With a `tag`, its value ends each group's key and the buckets come from the raw events (the
/// rollups keep no tags): as costly as the events of the range are many, and only as far back
/// as raw events are kept.
pub async fn buckets(
    store: &dyn Storage,
    tenant: TenantId,
    q: &TimeseriesQuery,
    with_sketch: bool,
    tag: Option<&str>,
) -> Result<HashMap<GroupKey, BTreeMap<i64, Aggregate>>> {
    let (from, to) = aligned_range(q);
    let scan = Scan {
        from_ms: from,
        to_ms: to,
        filters: &q.filters,
        group_by: &q.group_by,
        by_bucket: true,
        bucket_step_ms: q.step_ms,
        with_sketch,
        tag,
    };
    let rows = match tag {
        Some(_) => store.scan_raw(tenant, &scan, q.step_ms).await?,
        None => {
            let res = resolution_for_step(q.step_ms).ok_or_else(|| {
                crate::StorageError::Corrupt(format!("step {} ms has no rollup", q.step_ms))
            })?;
            store.scan_rollups(tenant, res, &scan).await?
        }
    };
    let mut series: HashMap<GroupKey, BTreeMap<i64, Aggregate>> = HashMap::new();
    for row in rows {
        let bucket = floor_to(row.bucket_ms.unwrap_or(from), q.step_ms);
        let slot = series
            .entry(row.key)
            .or_default()
            .entry(bucket)
            .or_default();
        if with_sketch {
            slot.merge(&row.agg);
        } else {
            slot.merge_sums(&row.agg);
        }
    }
    Ok(series)
}

/// One series per group, with a point for every step in the aligned range.
pub async fn timeseries(
    store: &dyn Storage,
    tenant: TenantId,
    q: &TimeseriesQuery,
) -> Result<Vec<Series>> {
    let (from, to) = aligned_range(q);
    let mut series = buckets(store, tenant, q, q.metric.quantile().is_some(), None).await?;
    if q.group_by.is_empty() && series.is_empty() {
        series.insert(Vec::new(), BTreeMap::new());
    }
    let empty = Aggregate::default();
    let mut out: Vec<Series> = series
        .into_iter()
        .map(|(key, buckets)| {
            let points = (from..to)
                .step_by(q.step_ms as usize)
                .map(|t| (t, buckets.get(&t).unwrap_or(&empty).metric(q.metric)))
                .collect();
            Series { key, points }
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}
