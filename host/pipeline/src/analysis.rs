//! One scheduled run of a detector or forecaster for one tenant and one period: build its series
//! from the rollups (`series`), call it through the plugin host (under its limits, settled into
//! its health and failures), and keep what it answered: a detector's anomalies (each stored once,
//! and each new one also written as an `anomaly` event so that it shows in the explorer and can
//! feed alerts), a forecaster's forecasts (the newest per series).

use std::sync::Arc;

use hub_core::TenantId;
use hub_core::ingest::IngestLimits;
use hub_plugins::{Analyser, Anomaly, FindingSeverity, Forecast, PluginHost, Series};
use hub_storage::{
    NewAnomaly, RunOutcome, SeriesDims, Storage, StoredForecast, TenantBatch, series_key,
};

use crate::grid::{self, SeriesCache};
use crate::series::{self, Built};

/// Points handed to one call at most: a run over more series is split into several calls, so
/// that no call's input outgrows a plugin's memory (16 bytes a point, ~8 MiB a call).
pub const POINTS_PER_CALL: usize = 500_000;

/// What the anomaly events say they come from.
pub const SOURCE_MODULE: &str = "llm-analytics-hub";

/// Runs `analyser` for the period ending at `period_ms` (its series from the grid `cache` keeps
/// for it, moved forward) and says how it went. Never fails: a
/// plugin's failure has been settled by the host, a storage failure is the outcome's message.
pub async fn run(
    host: &Arc<PluginHost>,
    storage: &Arc<dyn Storage>,
    tenant: TenantId,
    analyser: &Analyser,
    period_ms: i64,
    cache: &SeriesCache,
) -> RunOutcome {
    let end = grid::end_of(&analyser.series, period_ms);
    let grid = match cache
        .grid(
            storage.as_ref(),
            tenant,
            &analyser.name,
            &analyser.series,
            end,
        )
        .await
    {
        Ok(g) => g,
        Err(e) => return failed(0, format!("building the series failed: {e}")),
    };
    let built = series::from_grid(&grid, &analyser.series);
    cache.keep(tenant, &analyser.name, grid);
    let n = built.series.len() as i64;
    let message = (built.groups * analyser.series.metrics.len() > built.series.len()).then(|| {
        format!(
            "{} of {} series (the largest by requests; max_series is {})",
            built.series.len(),
            built.groups * analyser.series.metrics.len(),
            analyser.series.max_series
        )
    });
    let outcome = if analyser.kind == hub_plugins::PluginKind::Forecaster {
        forecast(host, storage, tenant, analyser, &built).await
    } else {
        detect(host, storage, tenant, analyser, &built).await
    };
    match outcome {
        Ok(found) => RunOutcome {
            outcome: "ok".into(),
            series: n,
            found: found as i64,
            message,
        },
        Err(e) => failed(n, e),
    }
}

fn failed(series: i64, message: String) -> RunOutcome {
    RunOutcome {
        outcome: "failed".into(),
        series,
        found: 0,
        message: Some(message),
    }
}

/// The series in calls of at most [`POINTS_PER_CALL`] points, each with the index of its first.
pub fn chunks(series: &[Series]) -> Vec<(usize, Arc<Vec<Series>>)> {
    let mut out = Vec::new();
    let (mut start, mut points) = (0, 0);
    for (i, s) in series.iter().enumerate() {
        if points > 0 && points + s.values.len() > POINTS_PER_CALL {
            out.push((start, Arc::new(series[start..i].to_vec())));
            (start, points) = (i, 0);
        }
        points += s.values.len();
    }
    if start < series.len() {
        out.push((start, Arc::new(series[start..].to_vec())));
    }
    out
}

async fn detect(
    host: &Arc<PluginHost>,
    storage: &Arc<dyn Storage>,
    tenant: TenantId,
    analyser: &Analyser,
    built: &Built,
) -> Result<usize, String> {
    let mut found = Vec::new();
    for (first, part) in chunks(&built.series) {
        let answer = host
            .detect(tenant, analyser, part)
            .await
            .map_err(|e| format!("the detector failed: {e}"))?;
        found.extend(answer.into_iter().map(|a| {
            let i = first + a.series as usize;
            anomaly(analyser, &built.series[i], &built.dims[i], a)
        }));
    }
    let now = hub_core::time::now_ms();
    let new = storage
        .anomalies()
        .insert_anomalies(tenant, &found, now)
        .await
        .map_err(|e| format!("storing the anomalies failed: {e}"))?;
    if !new.is_empty() {
        let events = new.iter().filter_map(|a| anomaly_event(a, now)).collect();
        storage
            .write_batches(&[TenantBatch { tenant, events }], now)
            .await
            .map_err(|e| format!("writing the anomaly events failed: {e}"))?;
    }
    Ok(new.len())
}

fn anomaly(analyser: &Analyser, s: &Series, dims: &SeriesDims, a: Anomaly) -> NewAnomaly {
    NewAnomaly {
        plugin: analyser.name.clone(),
        dims: dims.clone(),
        metric: s.metric.clone(),
        step_ms: i64::from(s.step_ms),
        ts_ms: a.ts_ms,
        value: a.value,
        expected: a.expected,
        lower: a.lower,
        upper: a.upper,
        score: a.score,
        severity: match a.severity {
            FindingSeverity::Info => hub_core::Severity::Info,
            FindingSeverity::Warning => hub_core::Severity::Warning,
            FindingSeverity::Critical => hub_core::Severity::Critical,
        },
        reason: a.reason,
    }
}

/// A stored anomaly as an envelope event (`payload_type` `anomaly`, kind `anomaly.<metric>`),
/// parsed as any sent event is. Its id follows from the point, so writing it again changes
/// nothing.
pub fn anomaly_event(a: &hub_storage::Anomaly, now_ms: i64) -> Option<hub_core::EventRecord> {
    use sha2::Digest;
    let f = &a.found;
    let key = series_key(&f.dims);
    let id = hex::encode(
        &sha2::Sha256::digest(format!("{}\n{}\n{}\n{}", f.plugin, key, f.metric, f.ts_ms))[..16],
    );
    let dim = |name: &str| {
        f.dims
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut data = serde_json::json!({
        "anomaly_type": f.metric,
        "anomaly_id": a.id,
        "plugin": f.plugin,
        "series": f.dims.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "metric": f.metric,
        "step_ms": f.step_ms,
        "value": f.value,
        "expected": f.expected,
        "lower": f.lower,
        "upper": f.upper,
        "score": f.score,
        "reason": f.reason,
    });
    for name in ["app", "model", "provider", "operation"] {
        if let Some(v) = dim(name) {
            data[name] = v.into();
        }
    }
    let mut event = serde_json::json!({
        "event_id": format!("anomaly-{id}"),
        "timestamp": hub_core::time::to_rfc3339(f.ts_ms),
        "source_module": SOURCE_MODULE,
        "event_type": "anomaly",
        "severity": f.severity.as_str(),
        "payload": {"payload_type": "anomaly", "data": data},
    });
    if let Some(env) = dim("environment") {
        event["environment"] = env.into();
    }
    let tags: serde_json::Map<String, serde_json::Value> = f
        .dims
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("tag.")?.to_string(), v.clone().into())))
        .collect();
    if !tags.is_empty() {
        event["tags"] = tags.into();
    }
    match hub_core::ingest::parse_event(&event.to_string(), &IngestLimits::default(), now_ms) {
        Ok(e) => Some(e),
        Err(errors) => {
            tracing::warn!(
                anomaly = a.id,
                ?errors,
                "an anomaly could not be written as an event"
            );
            None
        }
    }
}

async fn forecast(
    host: &Arc<PluginHost>,
    storage: &Arc<dyn Storage>,
    tenant: TenantId,
    analyser: &Analyser,
    built: &Built,
) -> Result<usize, String> {
    let settings = &analyser.series;
    let mut stored = Vec::new();
    let now = hub_core::time::now_ms();
    for (first, part) in chunks(&built.series) {
        let answer: Vec<Forecast> = host
            .forecast(tenant, analyser, part, settings.horizon)
            .await
            .map_err(|e| format!("the forecaster failed: {e}"))?;
        stored.extend(answer.into_iter().map(|f| {
            let i = first + f.series as usize;
            StoredForecast {
                plugin: analyser.name.clone(),
                dims: built.dims[i].clone(),
                metric: built.series[i].metric.clone(),
                step_ms: settings.step_ms,
                level: settings.level,
                made_at_ms: now,
                points: (0..f.ts_ms.len())
                    .map(|j| hub_storage::ForecastPoint {
                        ts_ms: f.ts_ms[j],
                        mean: f.mean[j],
                        lower: f.lower[j],
                        upper: f.upper[j],
                    })
                    .collect(),
            }
        }));
    }
    storage
        .forecasts()
        .put_forecasts(tenant, &stored)
        .await
        .map_err(|e| format!("storing the forecasts failed: {e}"))?;
    Ok(stored.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: usize) -> Series {
        Series {
            key: Vec::new(),
            metric: "requests".into(),
            step_ms: 60_000,
            ts_ms: vec![0; points],
            values: vec![0.0; points],
        }
    }

    #[test]
    fn calls_hold_at_most_their_share_of_points() {
        let all = vec![
            series(300_000),
            series(300_000),
            series(100_000),
            series(600_000),
        ];
        let parts: Vec<(usize, usize)> = chunks(&all).iter().map(|(f, p)| (*f, p.len())).collect();
        // A series larger than the share still goes, alone.
        assert_eq!(parts, [(0, 1), (1, 2), (3, 1)]);
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn an_anomaly_is_an_envelope_event_with_the_series_dimensions() {
        let a = hub_storage::Anomaly {
            id: 7,
            tenant: TenantId::from_verified(1),
            found: NewAnomaly {
                plugin: "zscore".into(),
                dims: vec![
                    ("environment".into(), "prod".into()),
                    ("model".into(), "gpt-4o".into()),
                ],
                metric: "cost_usd".into(),
                step_ms: 60_000,
                ts_ms: 1_795_000_000_000,
                value: 41.0,
                expected: Some(10.0),
                lower: None,
                upper: Some(20.0),
                score: 4.1,
                severity: hub_core::Severity::Critical,
                reason: "cost_usd for model=gpt-4o is 4.1× its usual".into(),
            },
            detected_at_ms: 1_795_000_060_000,
        };
        let e = anomaly_event(&a, 1_795_000_060_000).unwrap();
        assert_eq!(e.kind, "anomaly.cost_usd");
        assert_eq!(e.event_type, "anomaly");
        assert_eq!(
            (e.model.as_deref(), e.environment.as_deref()),
            (Some("gpt-4o"), Some("prod"))
        );
        assert_eq!(e.severity, Some(hub_core::Severity::Critical));
        assert_eq!(e.ts_ms, a.found.ts_ms);
        assert!(!e.is_request() && e.cost_usd.is_none(), "{e:?}");
        // The same point is the same event.
        assert_eq!(
            anomaly_event(&a, 1_795_000_090_000).unwrap().event_id,
            e.event_id
        );
    }
}
