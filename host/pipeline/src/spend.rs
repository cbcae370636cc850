//! The month-end spend projection: what the month has cost so far (from the rollups) plus what
//! the newest `cost_usd` forecast says the rest of the month will cost. Where the forecast ends
//! before the month does, the rest is its mean rate; where no forecaster forecasts cost, the
//! projection is the month's run rate so far (and says so).

use chrono::{Datelike, TimeZone, Utc};
use hub_core::{Dimension, TenantId};
use hub_storage::analytics::{SummaryQuery, summary};
use hub_storage::{ForecastFilter, Storage, StorageError, StoredForecast};

/// How a projection was made.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// From this plugin's forecast, at its level.
    Forecast { plugin: String, level: f64 },
    /// Spend so far, extended at its average rate.
    RunRate,
}

/// One projection (the tenant's, or one group's).
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// The group's value of the grouped dimension (`None` for the tenant's total).
    pub key: Option<String>,
    pub actual_usd: f64,
    pub projected_usd: f64,
    /// The projection's bounds at the forecast's level (the sums of the forecast's bounds: wider
    /// than the sum's own interval); equal to `projected_usd` for a run rate.
    pub lower_usd: f64,
    pub upper_usd: f64,
    pub method: Method,
    /// The share of the month's remaining time the forecast covers (1 for a run rate).
    pub coverage: f64,
}

/// The month a projection is about and its projections.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendProjection {
    pub month_start_ms: i64,
    pub month_end_ms: i64,
    pub now_ms: i64,
    pub total: Projection,
    /// By the grouped dimension, largest actual spend first (empty without grouping).
    pub groups: Vec<Projection>,
}

/// Start and end (exclusive) of the UTC month holding `ts_ms`.
pub fn month_of(ts_ms: i64) -> (i64, i64) {
    let t = Utc.timestamp_millis_opt(ts_ms).single().unwrap_or_default();
    let start = Utc
        .with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    let end = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    (start.timestamp_millis(), end.timestamp_millis())
}

/// Projects a group's month from what it spent and its forecast (if any).
fn project(
    key: Option<String>,
    actual: f64,
    forecast: Option<&StoredForecast>,
    (start, end, now): (i64, i64, i64),
) -> Projection {
    let remaining = (end - now).max(0) as f64;
    let run_rate = || Projection {
        key: key.clone(),
        actual_usd: actual,
        projected_usd: actual + actual / (now - start).max(1) as f64 * remaining,
        lower_usd: 0.0,
        upper_usd: 0.0,
        method: Method::RunRate,
        coverage: 1.0,
    };
    let Some(f) = forecast.filter(|f| !f.points.is_empty() && f.step_ms > 0) else {
        let mut p = run_rate();
        (p.lower_usd, p.upper_usd) = (p.projected_usd, p.projected_usd);
        return p;
    };
    let step = f.step_ms as f64;
    let (mut mean, mut lower, mut upper, mut covered) = (0.0, 0.0, 0.0, 0.0);
    for p in &f.points {
        // The part of the point's step that lies between now and the month's end.
        let from = (p.ts_ms.max(now)) as f64;
        let to = ((p.ts_ms + f.step_ms).min(end)) as f64;
        if to <= from {
            continue;
        }
        let share = (to - from) / step;
        mean += p.mean.max(0.0) * share;
        lower += p.lower.max(0.0) * share;
        upper += p.upper.max(0.0) * share;
        covered += to - from;
    }
    // Past the forecast's last point, its average rate.
    let last = f
        .points
        .last()
        .map_or(now, |p| p.ts_ms + f.step_ms)
        .max(now);
    let uncovered = (end - last).max(0) as f64;
    if uncovered > 0.0 {
        let n = f.points.len() as f64;
        let per_ms = |v: fn(&hub_storage::ForecastPoint) -> f64| {
            f.points.iter().map(|p| v(p).max(0.0)).sum::<f64>() / n / step
        };
        mean += per_ms(|p| p.mean) * uncovered;
        lower += per_ms(|p| p.lower) * uncovered;
        upper += per_ms(|p| p.upper) * uncovered;
    }
    Projection {
        key,
        actual_usd: actual,
        projected_usd: actual + mean,
        lower_usd: actual + lower,
        upper_usd: actual + upper,
        method: Method::Forecast {
            plugin: f.plugin.clone(),
            level: f.level,
        },
        coverage: if remaining > 0.0 {
            (covered / remaining).min(1.0)
        } else {
            1.0
        },
    }
}

/// The month-end projection of the tenant's spend, and by `group_by` when given.
pub async fn month_projection(
    store: &dyn Storage,
    tenant: TenantId,
    now_ms: i64,
    group_by: Option<Dimension>,
) -> Result<SpendProjection, StorageError> {
    let (start, end) = month_of(now_ms);
    let window = (start, end, now_ms);
    let spent = |group_by: Vec<Dimension>| SummaryQuery {
        from_ms: start,
        to_ms: now_ms.max(start + 1),
        group_by,
        filters: Vec::new(),
    };
    let forecasts = store
        .forecasts()
        .list_forecasts(
            tenant,
            &ForecastFilter {
                metric: Some("cost_usd".into()),
                ..Default::default()
            },
        )
        .await?;
    // The newest forecast of the series with exactly these dimensions.
    let newest = |dims: &[(String, String)]| {
        forecasts
            .iter()
            .filter(|f| f.dims == dims)
            .max_by_key(|f| f.made_at_ms)
    };
    let total_actual = summary(store, tenant, &spent(Vec::new()))
        .await?
        .first()
        .map_or(0.0, |g| g.agg.cost_usd);
    let total = project(None, total_actual, newest(&[]), window);
    let mut groups = Vec::new();
    if let Some(dim) = group_by {
        for g in summary(store, tenant, &spent(vec![dim])).await? {
            let Some(value) = g.key.first().cloned().flatten() else {
                continue;
            };
            let dims = [(dim.name().to_string(), value.clone())];
            groups.push(project(Some(value), g.agg.cost_usd, newest(&dims), window));
        }
        groups.sort_by(|a, b| b.actual_usd.total_cmp(&a.actual_usd));
    }
    Ok(SpendProjection {
        month_start_ms: start,
        month_end_ms: end,
        now_ms,
        total,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_storage::ForecastPoint;

    const H: i64 = 3_600_000;

    #[test]
    fn months_are_utc_calendar_months() {
        // 2026-12-07T02:00:00Z
        let (s, e) = month_of(1_796_608_800_000);
        assert_eq!(hub_core::time::to_rfc3339(s), "2026-12-01T00:00:00.000Z");
        assert_eq!(hub_core::time::to_rfc3339(e), "2027-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_rest_of_the_month_comes_from_the_forecast_then_its_rate() {
        // A 10-hour "month", 4 hours in, $40 spent; a forecast of $5 ± 1 an hour for 3 hours.
        let (start, end, now) = (0, 10 * H, 4 * H);
        let f = StoredForecast {
            plugin: "ets".into(),
            dims: Vec::new(),
            metric: "cost_usd".into(),
            step_ms: H,
            level: 0.95,
            made_at_ms: now,
            points: (4..7)
                .map(|h| ForecastPoint {
                    ts_ms: h * H,
                    mean: 5.0,
                    lower: 4.0,
                    upper: 6.0,
                })
                .collect(),
        };
        let p = project(None, 40.0, Some(&f), (start, end, now));
        // 3 forecast hours and 3 more at its rate: 40 + 6 × 5.
        assert!((p.projected_usd - 70.0).abs() < 1e-9, "{p:?}");
        assert!(
            (p.lower_usd - 64.0).abs() < 1e-9 && (p.upper_usd - 76.0).abs() < 1e-9,
            "{p:?}"
        );
        assert!((p.coverage - 0.5).abs() < 1e-9);
        assert_eq!(
            p.method,
            Method::Forecast {
                plugin: "ets".into(),
                level: 0.95
            }
        );
        // Half an hour into the first forecast hour: half of it is still to come.
        let p = project(None, 40.0, Some(&f), (start, end, now + H / 2));
        assert!(
            (p.projected_usd - (40.0 + 2.5 + 10.0 + 3.0 * 5.0)).abs() < 1e-9,
            "{p:?}"
        );
        // Without a forecast: the run rate, $10 an hour.
        let p = project(None, 40.0, None, (start, end, now));
        assert_eq!((p.projected_usd, p.method), (100.0, Method::RunRate));
    }
}
