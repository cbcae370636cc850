//! What detectors found and forecasters predict: `/v1/anomalies` (the list, one, and the series
//! around one for a chart), `/v1/forecasts` (the newest per series) and
//! `/v1/forecasts/spend` (the month-end spend projection), and a plugin's scheduled runs. Anyone
//! who can read the tenant's metrics reads these; another tenant's anomaly is a 404.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use hub_core::Dimension;
use hub_core::time::{DAY_MS, parse_query_time, to_rfc3339};
use hub_pipeline::spend::{Method, Projection, month_projection};
use hub_storage::{
    Anomaly, AnomalyCursor, AnomalyFilter, ForecastFilter, SeriesDims, StoredForecast,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::query::{Params, check_order};
use crate::{ApiError, AppState, Principal, Right};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_anomalies))
        .routes(routes!(get_anomaly))
        .routes(routes!(anomaly_context))
        .routes(routes!(list_forecasts))
        .routes(routes!(spend_projection))
        .routes(routes!(plugin_runs))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyDto {
    pub id: i64,
    /// The detector that found it.
    pub plugin: String,
    /// The series' dimensions and values (`{}`: the tenant's total).
    #[schema(value_type = Object)]
    pub series: BTreeMap<String, String>,
    pub metric: String,
    /// The series' step: `1m`, `5m`, `1h` or `1d`.
    pub step: String,
    /// The start of the step that is unusual (RFC 3339).
    pub ts: String,
    pub value: f64,
    pub expected: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// How unusual, as the detector measures it (larger is worse).
    pub score: f64,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// What a person should read.
    pub reason: String,
    pub detected_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyPageDto {
    pub anomalies: Vec<AnomalyDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn dims_object(dims: &SeriesDims) -> BTreeMap<String, String> {
    dims.iter().cloned().collect()
}

fn anomaly_dto(a: &Anomaly) -> AnomalyDto {
    let f = &a.found;
    AnomalyDto {
        id: a.id,
        plugin: f.plugin.clone(),
        series: dims_object(&f.dims),
        metric: f.metric.clone(),
        step: hub_plugins::step_name(f.step_ms),
        ts: to_rfc3339(f.ts_ms),
        value: f.value,
        expected: f.expected,
        lower: f.lower,
        upper: f.upper,
        score: f.score,
        severity: f.severity.as_str().to_string(),
        reason: f.reason.clone(),
        detected_at: to_rfc3339(a.detected_at_ms),
    }
}

fn encode_cursor(c: AnomalyCursor) -> String {
    crate::wire::encode_cursor(c.ts_ms, &c.id.to_string())
}

fn decode_cursor(s: &str) -> Result<AnomalyCursor, ApiError> {
    let (ts_ms, id) = crate::wire::decode_id_cursor(s)?;
    Ok(AnomalyCursor { ts_ms, id })
}

/// `filter=model:gpt-4o,app:bot` (repeatable): a series' dimensions, as a detector's settings
/// name them (`tag.<name>` too).
fn series_filters(p: &Params) -> Result<SeriesDims, ApiError> {
    let mut out = Vec::new();
    for value in p.all("filter") {
        for part in value.split(',').filter(|p| !p.trim().is_empty()) {
            let (dim, v) = part.split_once(':').ok_or_else(|| {
                ApiError::invalid(
                    "filter",
                    format!("'{part}' is not dimension:value (e.g. model:gpt-4o)"),
                )
            })?;
            let dim = dim.trim();
            if !hub_plugins::SERIES_DIMENSIONS.contains(&dim) && !dim.starts_with("tag.") {
                return Err(ApiError::invalid(
                    "filter",
                    format!(
                        "unknown dimension '{dim}'; allowed: {}, tag.<name>",
                        hub_plugins::SERIES_DIMENSIONS.join(", ")
                    ),
                ));
            }
            out.push((dim.to_string(), v.trim().to_string()));
        }
    }
    Ok(out)
}

fn metric_param(p: &Params) -> Result<Option<String>, ApiError> {
    match p.one("metric") {
        None => Ok(None),
        Some(m) if hub_plugins::SERIES_METRICS.contains(&m) => Ok(Some(m.to_string())),
        Some(m) => Err(ApiError::invalid(
            "metric",
            format!(
                "unknown metric '{m}'; allowed: {}",
                hub_plugins::SERIES_METRICS.join(", ")
            ),
        )),
    }
}

fn limit_param(p: &Params, default: usize) -> Result<usize, ApiError> {
    match p.one("limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::invalid("limit", format!("'{v}' is not a number from 1 to 1000"))
            }),
    }
}

#[utoipa::path(
    get, path = "/v1/anomalies", tag = "analysis",
    description = "What the tenant's detectors found, newest first, with cursor pagination. Needs the `query` scope (viewers and up).",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339, epoch ms, or now-7d (default: to minus 7 days)"),
        ("to" = Option<String>, Query, description = "default: now"),
        ("metric" = Option<String>, Query, description = "requests, errors, error_rate, input_tokens, output_tokens, cost_usd, latency_p50_ms, latency_p95_ms or latency_p99_ms"),
        ("severity" = Option<String>, Query, description = "this severity or worse: info, warning or critical"),
        ("plugin" = Option<String>, Query, description = "the detector's name"),
        ("filter" = Option<String>, Query, description = "the series' dimension:value pairs, comma-separated, repeatable (model:gpt-4o)"),
        ("limit" = Option<usize>, Query, description = "1 to 1000 (default 100)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = AnomalyPageDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_anomalies(
    State(state): State<AppState>,
    principal: Principal,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<AnomalyPageDto>, ApiError> {
    principal.require(Right::ReadMetrics)?;
    let p = Params::new(
        pairs,
        &[
            "from", "to", "metric", "severity", "plugin", "filter", "limit", "cursor",
        ],
    )?;
    let now = hub_core::time::now_ms();
    let time = |name: &str, default: i64| {
        p.one(name).map_or(Ok(default), |v| {
            parse_query_time(v, now).map_err(|e| ApiError::invalid(name, e))
        })
    };
    let to = time("to", now + 1)?;
    let from = time("from", to - 7 * DAY_MS)?;
    check_order(Some(from), Some(to))?;
    let min_severity = match p.one("severity") {
        None => None,
        Some(s) => Some(
            ["info", "warning", "critical"]
                .contains(&s)
                .then(|| hub_core::Severity::parse(s))
                .flatten()
                .ok_or_else(|| {
                    ApiError::invalid(
                        "severity",
                        format!("'{s}' is not info, warning or critical"),
                    )
                })?,
        ),
    };
    let filter = AnomalyFilter {
        from_ms: Some(from),
        to_ms: Some(to),
        metric: metric_param(&p)?,
        min_severity,
        plugin: p.one("plugin").map(str::to_string),
        dims: series_filters(&p)?,
    };
    let cursor = p.one("cursor").map(decode_cursor).transpose()?;
    let (page, next) = state
        .storage
        .anomalies()
        .list_anomalies(principal.tenant, &filter, cursor, limit_param(&p, 100)?)
        .await?;
    Ok(Json(AnomalyPageDto {
        anomalies: page.iter().map(anomaly_dto).collect(),
        next_cursor: next.map(encode_cursor),
    }))
}

async fn anomaly(state: &AppState, principal: &Principal, id: &str) -> Result<Anomaly, ApiError> {
    principal.require(Right::ReadMetrics)?;
    let missing = || ApiError::NotFound(format!("anomaly {id} in this tenant"));
    let id: i64 = id.parse().map_err(|_| missing())?;
    state
        .storage
        .anomalies()
        .get_anomaly(principal.tenant, id)
        .await?
        .ok_or_else(missing)
}

#[utoipa::path(
    get, path = "/v1/anomalies/{id}", tag = "analysis",
    description = "One anomaly; another tenant's is a 404.",
    params(("id" = i64, Path, description = "the anomaly's id")),
    responses((status = 200, body = AnomalyDto), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn get_anomaly(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<AnomalyDto>, ApiError> {
    Ok(Json(anomaly_dto(&anomaly(&state, &principal, &id).await?)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContextPoint {
    pub ts: String,
    /// `null` where undefined (no requests in the step).
    pub value: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnomalyContextDto {
    pub anomaly: AnomalyDto,
    /// The anomaly's series around it, at its step, from the rollups as they are now.
    pub points: Vec<ContextPoint>,
}

#[utoipa::path(
    get, path = "/v1/anomalies/{id}/context", tag = "analysis",
    description = "The series an anomaly was found in, around it, for a chart.",
    params(
        ("id" = i64, Path, description = "the anomaly's id"),
        ("before" = Option<i64>, Query, description = "steps before the anomaly, 1 to 1440 (default 60)"),
        ("after" = Option<i64>, Query, description = "steps after it, 0 to 1440 (default 10; never past now)"),
    ),
    responses((status = 200, body = AnomalyContextDto), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn anomaly_context(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<AnomalyContextDto>, ApiError> {
    let a = anomaly(&state, &principal, &id).await?;
    let p = Params::new(pairs, &["before", "after"])?;
    let steps = |name: &str, default: i64, min: i64| match p.one(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (min..=1440).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(name, format!("'{v}' is not a number from {min} to 1440"))
            }),
    };
    let (before, after) = (steps("before", 60, 1)?, steps("after", 10, 0)?);
    if a.found.dims.iter().any(|(k, _)| k.starts_with("tag.")) {
        return Err(ApiError::invalid(
            "id",
            "the series of a tag has no rollups to chart; list its events instead",
        ));
    }
    let points = hub_pipeline::series::around(
        state.storage.as_ref(),
        &a,
        before,
        after,
        hub_core::time::now_ms(),
    )
    .await?;
    Ok(Json(AnomalyContextDto {
        anomaly: anomaly_dto(&a),
        points: points
            .into_iter()
            .map(|(t, value)| ContextPoint {
                ts: to_rfc3339(t),
                value,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastPointDto {
    pub ts: String,
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastDto {
    pub plugin: String,
    #[schema(value_type = Object)]
    pub series: BTreeMap<String, String>,
    pub metric: String,
    pub step: String,
    /// The level of `lower`/`upper` (0.95: a 95% interval), as the forecaster states it.
    pub level: f64,
    pub made_at: String,
    pub points: Vec<ForecastPointDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastListDto {
    pub forecasts: Vec<ForecastDto>,
}

fn forecast_dto(f: StoredForecast) -> ForecastDto {
    ForecastDto {
        plugin: f.plugin,
        series: dims_object(&f.dims),
        metric: f.metric,
        step: hub_plugins::step_name(f.step_ms),
        level: f.level,
        made_at: to_rfc3339(f.made_at_ms),
        points: f
            .points
            .into_iter()
            .map(|p| ForecastPointDto {
                ts: to_rfc3339(p.ts_ms),
                mean: p.mean,
                lower: p.lower,
                upper: p.upper,
            })
            .collect(),
    }
}

#[utoipa::path(
    get, path = "/v1/forecasts", tag = "analysis",
    description = "The newest forecast of each series the tenant's forecasters watch.",
    params(
        ("metric" = Option<String>, Query, description = "one of the series metrics (cost_usd, requests, …)"),
        ("plugin" = Option<String>, Query, description = "the forecaster's name"),
        ("filter" = Option<String>, Query, description = "the series' dimension:value pairs (app:bot)"),
        ("group_by" = Option<String>, Query, description = "only series with exactly these dimensions, comma-separated; empty for the tenant's totals"),
        ("limit" = Option<usize>, Query, description = "1 to 1000 (default 100)"),
    ),
    responses((status = 200, body = ForecastListDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_forecasts(
    State(state): State<AppState>,
    principal: Principal,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<ForecastListDto>, ApiError> {
    principal.require(Right::ReadMetrics)?;
    let p = Params::new(pairs, &["metric", "plugin", "filter", "group_by", "limit"])?;
    let exact_dims = p.one("group_by").map(|g| {
        g.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
    let filter = ForecastFilter {
        plugin: p.one("plugin").map(str::to_string),
        metric: metric_param(&p)?,
        dims: series_filters(&p)?,
        exact_dims,
    };
    let limit = limit_param(&p, 100)?;
    let all = state
        .storage
        .forecasts()
        .list_forecasts(principal.tenant, &filter)
        .await?;
    Ok(Json(ForecastListDto {
        forecasts: all.into_iter().take(limit).map(forecast_dto).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionDto {
    /// The group's value (absent for the tenant's total).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Spent from the start of the month until now.
    pub actual_usd: f64,
    /// Spent so far plus what the rest of the month is forecast to cost.
    pub projected_usd: f64,
    /// Bounds at `level`: the sums of the forecast's bounds (so wider than the interval of the
    /// sum); equal to `projected_usd` for a run rate.
    pub lower_usd: f64,
    pub upper_usd: f64,
    /// `forecast` (from `plugin`'s newest cost_usd forecast) or `run_rate` (no forecaster
    /// forecasts this cost: spend so far at its average rate).
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<f64>,
    /// The share of the rest of the month the forecast's points cover; the remainder is its
    /// average rate.
    pub coverage: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpendProjectionDto {
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    pub now: String,
    pub total: ProjectionDto,
    /// By `group_by`, largest spend first.
    pub groups: Vec<ProjectionDto>,
}

fn projection_dto(p: Projection) -> ProjectionDto {
    let (method, plugin, level) = match p.method {
        Method::Forecast { plugin, level } => ("forecast", Some(plugin), Some(level)),
        Method::RunRate => ("run_rate", None, None),
    };
    ProjectionDto {
        key: p.key,
        actual_usd: p.actual_usd,
        projected_usd: p.projected_usd,
        lower_usd: p.lower_usd,
        upper_usd: p.upper_usd,
        method: method.into(),
        plugin,
        level,
        coverage: p.coverage,
    }
}

#[utoipa::path(
    get, path = "/v1/forecasts/spend", tag = "analysis",
    description = "The month-end spend projection (UTC calendar month): spend so far plus the newest cost_usd forecast of the rest of the month, for the tenant and optionally per group.",
    params(
        ("period" = Option<String>, Query, description = "month (the only period for now; default month)"),
        ("group_by" = Option<String>, Query, description = "one dimension: app, model, provider, environment, operation or source_module"),
    ),
    responses((status = 200, body = SpendProjectionDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn spend_projection(
    State(state): State<AppState>,
    principal: Principal,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<SpendProjectionDto>, ApiError> {
    principal.require(Right::ReadMetrics)?;
    let p = Params::new(pairs, &["period", "group_by"])?;
    if let Some(period) = p.one("period").filter(|v| *v != "month") {
        return Err(ApiError::invalid(
            "period",
            format!("'{period}' is not a period this hub projects; use month"),
        ));
    }
    let group_by = match p.one("group_by") {
        None | Some("") => None,
        Some(g) => Some(
            Dimension::parse(g)
                .filter(|d| *d != Dimension::Status)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "group_by",
                        format!(
                            "'{g}' is not one of {}",
                            hub_plugins::SERIES_DIMENSIONS.join(", ")
                        ),
                    )
                })?,
        ),
    };
    let now = hub_core::time::now_ms();
    let s = month_projection(state.storage.as_ref(), principal.tenant, now, group_by).await?;
    Ok(Json(SpendProjectionDto {
        period: "month".into(),
        period_start: to_rfc3339(s.month_start_ms),
        period_end: to_rfc3339(s.month_end_ms),
        now: to_rfc3339(s.now_ms),
        total: projection_dto(s.total),
        groups: s.groups.into_iter().map(projection_dto).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunDto {
    /// The end of the period the run covered.
    pub period: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `ok`, `failed`, or absent while it runs.
    pub outcome: Option<String>,
    pub series: Option<i64>,
    /// Anomalies (a detector) or forecasts (a forecaster) stored; events stored new (an
    /// integration's sync, whose `series` counts the events it answered).
    pub found: Option<i64>,
    pub message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunListDto {
    pub runs: Vec<RunDto>,
}

#[utoipa::path(
    get, path = "/v1/plugins/{name}/runs", tag = "analysis",
    description = "A detector's or forecaster's scheduled runs, or an integration's syncs, of the last day (kept a week), newest first. A sync's `series` counts the events it answered, `found` those stored new, and `message` names the events ingest refused and why. Analysts and up.",
    params(
        ("name" = String, Path, description = "the plugin's name"),
        ("from" = Option<String>, Query, description = "runs of periods from here (default now-24h)"),
    ),
    responses((status = 200, body = RunListDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn plugin_runs(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<RunListDto>, ApiError> {
    principal.require(Right::ReadConfig)?;
    let p = Params::new(pairs, &["from"])?;
    let now = hub_core::time::now_ms();
    let from = p.one("from").map_or(Ok(now - DAY_MS), |v| {
        parse_query_time(v, now).map_err(|e| ApiError::invalid("from", e))
    })?;
    let mut runs = state
        .storage
        .analysis_runs()
        .runs(principal.tenant, Some(&name), from)
        .await?;
    runs.reverse();
    Ok(Json(RunListDto {
        runs: runs
            .into_iter()
            .take(1000)
            .map(|r| RunDto {
                period: to_rfc3339(r.period_ms),
                started_at: to_rfc3339(r.started_at_ms),
                finished_at: r.finished_at_ms.map(to_rfc3339),
                outcome: r.outcome.as_ref().map(|o| o.outcome.clone()),
                series: r.outcome.as_ref().map(|o| o.series),
                found: r.outcome.as_ref().map(|o| o.found),
                message: r.outcome.and_then(|o| o.message),
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = AnomalyCursor {
            ts_ms: 1_795_000_000_000,
            id: 42,
        };
        assert_eq!(decode_cursor(&encode_cursor(c)).unwrap(), c);
        assert!(decode_cursor("!!!").is_err());
        assert!(
            decode_cursor(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("1|x")).is_err()
        );
    }
}
