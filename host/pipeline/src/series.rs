//! The regular series a detector or forecaster is given, built from the tenant's rollups: one
//! scan of the step's rollups over the history (grouped as the settings say), the largest groups
//! by requests kept, and for each kept group one series per metric with a point at every step.
//! A step without events is 0 for a count and NaN for what is undefined without requests (a
//! latency, an error rate): the WIT's `values` are plain numbers, and NaN is how a series says
//! "no value here".

use hub_core::time::floor_to;
use hub_core::{Dimension, Metric, TenantId};
use hub_plugins::{Series, SeriesSettings};
use hub_storage::analytics::{TimeseriesQuery, buckets};

pub use crate::grid::value;
use crate::grid::{Grid, Rows};
use hub_storage::{Aggregate, SeriesDims, Storage, StorageError};

/// Series built for one run, with what names each in storage.
#[derive(Debug, Default)]
pub struct Built {
    pub series: Vec<Series>,
    /// Each series' dimensions, sorted by name (as stored keys read back).
    pub dims: Vec<SeriesDims>,
    /// Groups with traffic in the history, before the cap.
    pub groups: usize,
}

fn needs_sketch(metrics: &[String]) -> bool {
    metrics.iter().any(|m| m.starts_with("latency_"))
}

/// Builds the series of `settings` whose newest step ends at `end_ms` (exclusive; rounded down
/// to the step), reading the whole history (the scheduler keeps grids instead: [`Grid`]).
pub async fn build(
    store: &dyn Storage,
    tenant: TenantId,
    settings: &SeriesSettings,
    end_ms: i64,
) -> Result<Built, StorageError> {
    let grid = Grid::read(store, tenant, settings, floor_to(end_ms, settings.step_ms)).await?;
    Ok(from_grid(&grid, settings))
}

/// The series of a grid: the largest groups by requests (then events) kept, up to the
/// settings' `max_series` (groups × metrics), each metric of each a series.
pub fn from_grid(grid: &Grid, settings: &SeriesSettings) -> Built {
    let step = grid.settings.step_ms;
    // Keys hold the dimensions' values then the tag's; they are put back in the settings'
    // order below.
    let names: Vec<&String> = settings
        .group_by
        .iter()
        .filter(|d| !d.starts_with("tag."))
        .chain(settings.group_by.iter().filter(|d| d.starts_with("tag.")))
        .collect();
    // Events that do not carry a grouped dimension (an envelope without a model) are not a
    // series of that dimension.
    let mut ranked: Vec<(Vec<String>, f64, f64, Option<&Rows>)> = grid
        .groups
        .iter()
        .filter_map(|(key, rows)| {
            let key: Option<Vec<String>> = key.iter().cloned().collect();
            let sum = |v: &[f64]| v.iter().sum::<f64>();
            key.map(|k| (k, sum(&rows.requests), sum(&rows.events), Some(rows)))
        })
        .collect();
    if settings.group_by.is_empty() && ranked.is_empty() {
        ranked.push((Vec::new(), 0.0, 0.0, None));
    }
    let total = ranked.len();
    ranked.sort_by(|a, b| {
        (b.1, b.2)
            .partial_cmp(&(a.1, a.2))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
    let per_metric = settings.metrics.len().max(1);
    ranked.truncate((settings.max_series as usize / per_metric).max(1));

    let ts: Vec<i64> = (0..grid.n).map(|i| grid.from + i as i64 * step).collect();
    let blank = Aggregate::default();
    let mut built = Built {
        groups: total,
        ..Default::default()
    };
    for (key, _, _, rows) in &ranked {
        let by_name: Vec<(String, String)> = names
            .iter()
            .map(|n| (*n).clone())
            .zip(key.iter().cloned())
            .collect();
        // In the order the settings name them.
        let mut dims: SeriesDims = settings
            .group_by
            .iter()
            .filter_map(|n| by_name.iter().find(|(k, _)| k == n).cloned())
            .collect();
        let wire_key = dims.clone();
        dims.sort();
        for (m, metric) in settings.metrics.iter().enumerate() {
            built.series.push(Series {
                key: wire_key.clone(),
                metric: metric.clone(),
                step_ms: step as u32,
                ts_ms: ts.clone(),
                values: match rows {
                    Some(r) => r.metrics[m].clone(),
                    None => vec![value(metric, &blank); grid.n],
                },
            });
            built.dims.push(dims.clone());
        }
    }
    built
}

/// The series an anomaly was found in, from `before` steps before its point to `after` steps
/// after (not past `now_ms`), for a chart: `(step start, value)` with `None` where undefined.
pub async fn around(
    store: &dyn Storage,
    anomaly: &hub_storage::Anomaly,
    before: i64,
    after: i64,
    now_ms: i64,
) -> Result<Vec<(i64, Option<f64>)>, StorageError> {
    let f = &anomaly.found;
    let step = f.step_ms;
    let filters = f
        .dims
        .iter()
        .map(|(k, v)| {
            Dimension::parse(k)
                .map(|d| (d, v.clone()))
                .ok_or_else(|| StorageError::Corrupt(format!("anomaly dimension {k:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let from = f.ts_ms - before * step;
    let to = (f.ts_ms + (after + 1) * step).min(floor_to(now_ms, step) + step);
    let q = TimeseriesQuery {
        from_ms: from,
        to_ms: to,
        step_ms: step,
        metric: Metric::Requests,
        group_by: Vec::new(),
        filters,
    };
    let points = buckets(
        store,
        anomaly.tenant,
        &q,
        needs_sketch(std::slice::from_ref(&f.metric)),
        None,
    )
    .await?
    .remove(&Vec::new())
    .unwrap_or_default();
    let empty = Aggregate::default();
    Ok((from..to)
        .step_by(step as usize)
        .map(|t| {
            let v = value(&f.metric, points.get(&t).unwrap_or(&empty));
            (t, v.is_finite().then_some(v))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_metric_has_a_value() {
        let mut agg = Aggregate {
            requests: 4,
            errors: 1,
            input_tokens: 10,
            output_tokens: 20,
            cost_usd: 0.5,
            ..Default::default()
        };
        for l in [100.0, 200.0, 300.0, 400.0] {
            agg.latency.add(l);
            agg.latency_count += 1;
        }
        for m in hub_plugins::SERIES_METRICS {
            assert!(value(m, &agg).is_finite(), "{m}");
        }
        assert_eq!(value("error_rate", &agg), 0.25);
        // Without requests: counts are 0, the rest undefined.
        let none = Aggregate::default();
        assert_eq!(value("requests", &none), 0.0);
        assert_eq!(value("cost_usd", &none), 0.0);
        assert!(value("error_rate", &none).is_nan());
        assert!(value("latency_p95_ms", &none).is_nan());
    }
}
