//! The values a detector's or forecaster's series are made of (per group, per metric, per step
//! over its history), read from the rollups a slice of time at a time and kept between runs.
//!
//! A full read of 10,000 groups over 1,440 minutes is 14.4 million rollup rows: read at once,
//! the rows alone would take gigabytes, and read every minute the scan would cost more than
//! the detector. So a grid is read in slices of at most [`ROWS_PER_SLICE`] expected rows
//! (memory bounded by the slice, not the history), and the scheduler keeps each install's grid
//! ([`SeriesCache`]): the next run moves it forward and reads only the steps that are new, and
//! [`REREAD`] before them (events that arrived after their step's run). The whole history is
//! read again every [`REFRESH`] (late events older than that window), when the settings
//! change, after a gap longer than the history, or for a period older than the grid's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hub_core::time::{MINUTE_MS, floor_to};
use hub_core::{Dimension, Metric, TenantId};
use hub_plugins::SeriesSettings;
use hub_storage::analytics::{TimeseriesQuery, buckets};
use hub_storage::{Aggregate, GroupKey, Storage, StorageError};

/// Rollup rows one slice of a read is sized for (a few hundred bytes each while read).
pub const ROWS_PER_SLICE: usize = 200_000;
/// Steps read again at each run before the new ones: at least 3 steps and 10 minutes.
pub const REREAD: i64 = 10 * MINUTE_MS;
/// How often a kept grid is read whole again.
pub const REFRESH: Duration = Duration::from_secs(3600);
/// Groups a kept grid may hold, as a multiple of the install's `max_series`: past it the grid
/// is read whole at every run rather than kept (its memory is the tenant's groups, not the cap).
pub const KEEP_GROUPS_PER_SERIES: usize = 4;

/// One group's values: requests and events per step (to rank the groups), and each metric's.
#[derive(Debug, Clone)]
pub struct Rows {
    pub requests: Vec<f64>,
    pub events: Vec<f64>,
    /// In the order of the settings' metrics.
    pub metrics: Vec<Vec<f64>>,
}

/// Every group's values over `[from, from + n × step)`.
#[derive(Debug)]
pub struct Grid {
    pub settings: SeriesSettings,
    pub from: i64,
    pub n: usize,
    pub groups: HashMap<GroupKey, Rows>,
    read_at: Instant,
}

impl Grid {
    fn empty(settings: &SeriesSettings, end: i64) -> Grid {
        let n = (settings.history_ms / settings.step_ms) as usize;
        Grid {
            settings: settings.clone(),
            from: end - n as i64 * settings.step_ms,
            n,
            groups: HashMap::new(),
            read_at: Instant::now(),
        }
    }

    pub fn end(&self) -> i64 {
        self.from + self.n as i64 * self.settings.step_ms
    }

    /// The value a step without events has, per metric.
    fn blanks(&self) -> Vec<f64> {
        let empty = Aggregate::default();
        self.settings
            .metrics
            .iter()
            .map(|m| value(m, &empty))
            .collect()
    }

    /// Reads the whole history ending at `end`, a slice at a time.
    pub async fn read(
        store: &dyn Storage,
        tenant: TenantId,
        settings: &SeriesSettings,
        end: i64,
    ) -> Result<Grid, StorageError> {
        let mut grid = Grid::empty(settings, end);
        grid.read_range(store, tenant, 0).await?;
        Ok(grid)
    }

    /// Moves the grid to end at `end` and reads the new steps (and [`REREAD`] before them).
    async fn advance(
        &mut self,
        store: &dyn Storage,
        tenant: TenantId,
        end: i64,
    ) -> Result<(), StorageError> {
        let step = self.settings.step_ms;
        let shift = ((end - self.end()) / step) as usize;
        let blanks = self.blanks();
        for rows in self.groups.values_mut() {
            for (i, v) in std::iter::once(&mut rows.requests)
                .chain(std::iter::once(&mut rows.events))
                .chain(rows.metrics.iter_mut())
                .enumerate()
            {
                v.drain(..shift);
                let blank = if i < 2 { 0.0 } else { blanks[i - 2] };
                v.resize(self.n, blank);
            }
        }
        self.from += shift as i64 * step;
        // Groups without events left in the history are no longer series.
        self.groups.retain(|_, r| r.events.iter().any(|e| *e > 0.0));
        let again = ((REREAD + step - 1) / step).max(3) as usize;
        let first = self.n.saturating_sub(shift + again);
        self.read_range(store, tenant, first).await
    }

    /// Reads steps `first..n` from the rollups, slice by slice, over what the grid held there.
    async fn read_range(
        &mut self,
        store: &dyn Storage,
        tenant: TenantId,
        first: usize,
    ) -> Result<(), StorageError> {
        let step = self.settings.step_ms;
        let tag = self
            .settings
            .group_by
            .iter()
            .find_map(|d| d.strip_prefix("tag."));
        let group_by = dimensions(&self.settings)?;
        let sketch = self
            .settings
            .metrics
            .iter()
            .any(|m| m.starts_with("latency_"));
        let blanks = self.blanks();
        let mut at = first;
        while at < self.n {
            let len = (ROWS_PER_SLICE / self.groups.len().max(1))
                .clamp(1, 60.max(self.n / 24))
                .min(self.n - at);
            let q = TimeseriesQuery {
                from_ms: self.from + at as i64 * step,
                to_ms: self.from + (at + len) as i64 * step,
                step_ms: step,
                metric: Metric::Requests,
                group_by: group_by.clone(),
                filters: Vec::new(),
            };
            let found = buckets(store, tenant, &q, sketch, tag).await?;
            // What the grid held for these steps is replaced: blank first, then what was read.
            for rows in self.groups.values_mut() {
                for i in at..at + len {
                    rows.requests[i] = 0.0;
                    rows.events[i] = 0.0;
                    for (m, b) in rows.metrics.iter_mut().zip(&blanks) {
                        m[i] = *b;
                    }
                }
            }
            let n = self.n;
            for (key, points) in found {
                let rows = self.groups.entry(key).or_insert_with(|| Rows {
                    requests: vec![0.0; n],
                    events: vec![0.0; n],
                    metrics: blanks.iter().map(|b| vec![*b; n]).collect(),
                });
                for (t, agg) in points {
                    let i = ((t - self.from) / step) as usize;
                    if i >= n {
                        continue;
                    }
                    rows.requests[i] = agg.requests as f64;
                    rows.events[i] = agg.events as f64;
                    for (m, name) in rows.metrics.iter_mut().zip(&self.settings.metrics) {
                        m[i] = value(name, &agg);
                    }
                }
            }
            at += len;
        }
        Ok(())
    }
}

/// Each install's grid, kept between its runs in this replica.
#[derive(Debug, Default)]
pub struct SeriesCache {
    grids: Mutex<HashMap<(TenantId, String), Grid>>,
}

impl SeriesCache {
    /// The grid of `plugin`'s series ending at `end`: the kept one moved forward when it can
    /// be, else read whole (and kept when it is the newest and not too large).
    pub async fn grid(
        &self,
        store: &dyn Storage,
        tenant: TenantId,
        plugin: &str,
        settings: &SeriesSettings,
        end: i64,
    ) -> Result<Grid, StorageError> {
        let key = (tenant, plugin.to_string());
        let kept = self.grids.lock().unwrap().remove(&key);
        let grid = match kept {
            Some(mut g)
                if same_grid(&g.settings, settings)
                    && end >= g.end()
                    && end - g.end() < settings.history_ms
                    && g.read_at.elapsed() < REFRESH =>
            {
                g.advance(store, tenant, end).await?;
                g
            }
            // A period older than the kept grid (a catch-up behind a newer run): read, not kept.
            Some(g) if end < g.end() && same_grid(&g.settings, settings) => {
                let old = Grid::read(store, tenant, settings, end).await;
                self.grids.lock().unwrap().insert(key, g);
                return old;
            }
            _ => Grid::read(store, tenant, settings, end).await?,
        };
        Ok(grid)
    }

    /// Keeps `grid` for the install's next run, unless it holds too many groups or a newer one
    /// is kept already (this one was a catch-up's).
    pub fn keep(&self, tenant: TenantId, plugin: &str, grid: Grid) {
        let cap = grid.settings.max_series as usize * KEEP_GROUPS_PER_SERIES;
        if grid.groups.len() > cap.max(1) {
            return;
        }
        let mut grids = self.grids.lock().unwrap();
        let key = (tenant, plugin.to_string());
        if grids.get(&key).is_none_or(|kept| kept.end() <= grid.end()) {
            grids.insert(key, grid);
        }
    }

    /// Forgets every grid but those of these installs (the others were removed or changed).
    pub fn retain(&self, live: &dyn Fn(TenantId, &str) -> bool) {
        self.grids.lock().unwrap().retain(|(t, p), _| live(*t, p));
    }
}

/// The value of one of the series metrics (`hub_marketplace::series::METRICS`) in a bucket; NaN
/// where it is undefined.
pub fn value(metric: &str, agg: &Aggregate) -> f64 {
    let of = |m: Metric| agg.metric(m).unwrap_or(f64::NAN);
    match metric {
        "requests" => agg.requests as f64,
        "errors" => agg.errors as f64,
        "error_rate" if agg.requests > 0 => agg.errors as f64 / agg.requests as f64,
        "error_rate" => f64::NAN,
        "input_tokens" => agg.input_tokens as f64,
        "output_tokens" => agg.output_tokens as f64,
        "cost_usd" => agg.cost_usd,
        "latency_p50_ms" => of(Metric::LatencyP50),
        "latency_p95_ms" => of(Metric::LatencyP95),
        "latency_p99_ms" => of(Metric::LatencyP99),
        _ => f64::NAN,
    }
}

/// The settings' group-by dimensions that the rollups hold (all but a `tag.`).
pub fn dimensions(settings: &SeriesSettings) -> Result<Vec<Dimension>, StorageError> {
    settings
        .group_by
        .iter()
        .filter(|d| !d.starts_with("tag."))
        .map(|d| {
            Dimension::parse(d).ok_or_else(|| {
                StorageError::Corrupt(format!("series settings name dimension {d:?}"))
            })
        })
        .collect()
}

/// Whether two settings read the same values (the cap and the schedule do not matter).
fn same_grid(a: &SeriesSettings, b: &SeriesSettings) -> bool {
    a.metrics == b.metrics
        && a.group_by == b.group_by
        && a.step_ms == b.step_ms
        && a.history_ms == b.history_ms
}

/// The step that ends a run's series: its period's end, rounded down to the step.
pub fn end_of(settings: &SeriesSettings, period_ms: i64) -> i64 {
    floor_to(period_ms, settings.step_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catch_up_grid_does_not_replace_a_newer_kept_one() {
        let settings = SeriesSettings {
            metrics: vec!["requests".into()],
            group_by: vec!["model".into()],
            step_ms: 60_000,
            history_ms: 30 * 60_000,
            max_series: 10,
            every_ms: 60_000,
            horizon: 0,
            level: 0.0,
        };
        let (t, cache) = (TenantId::from_verified(7), SeriesCache::default());
        let kept_end =
            |c: &SeriesCache| c.grids.lock().unwrap().get(&(t, "p".into())).map(Grid::end);
        let newer = 100 * 60_000;
        cache.keep(t, "p", Grid::empty(&settings, newer));
        cache.keep(t, "p", Grid::empty(&settings, newer - 5 * 60_000));
        assert_eq!(kept_end(&cache), Some(newer));
        cache.keep(t, "p", Grid::empty(&settings, newer + 60_000));
        assert_eq!(kept_end(&cache), Some(newer + 60_000));
    }
}
