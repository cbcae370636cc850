//! The metric routes: summaries and time series from rollups.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::Json;
use axum::extract::{Query, State};
use hub_core::time::{DAY_MS, parse_query_time, to_rfc3339};
use hub_core::{Dimension, Metric, TokenDetail};
use hub_storage::GroupKey;
use hub_storage::analytics::{SummaryQuery, TimeseriesQuery, aligned_range, summary, timeseries};
use hub_storage::rollup::resolution_for_step;
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::metrics::RouteLabel;
use crate::{ApiError, AppState, Principal, Right};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_summary))
        .routes(routes!(get_timeseries))
}

/// Longest range one query may cover.
const MAX_RANGE_MS: i64 = 400 * DAY_MS;
/// Most points one series may have.
const MAX_POINTS: i64 = 10_000;

/// Query parameters as sent, with helpers that name the parameter in every error.
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn new(pairs: Vec<(String, String)>, allowed: &[&str]) -> Result<Self, ApiError> {
        for (k, _) in &pairs {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::invalid(
                    k,
                    format!("unknown parameter; allowed: {}", allowed.join(", ")),
                ));
            }
        }
        Ok(Self { pairs })
    }

    pub(crate) fn one(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `limit`: 1 to `max`, `default` when absent.
    pub(crate) fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.one("limit") {
            None => Ok(default),
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid(
                    "limit",
                    format!("'{l}' is not 1 to {max}"),
                )),
            },
        }
    }

    /// One of `allowed`, or absent.
    pub(crate) fn choice(&self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        match self.one(name) {
            None => Ok(None),
            Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
            Some(v) => {
                let (last, rest) = allowed.split_last().unwrap_or((&"", &[]));
                let list = if rest.is_empty() {
                    last.to_string()
                } else {
                    format!("{} or {last}", rest.join(", "))
                };
                Err(ApiError::invalid(name, format!("'{v}' is not {list}")))
            }
        }
    }

    /// An id (`what` names it in the error), or absent.
    pub(crate) fn id(&self, name: &str, what: &str) -> Result<Option<i64>, ApiError> {
        self.one(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::invalid(name, format!("'{v}' is not {what}")))
            })
            .transpose()
    }

    pub(crate) fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn time(&self, name: &str, default: i64, now: i64) -> Result<i64, ApiError> {
        self.one(name).map_or(Ok(default), |v| {
            parse_query_time(v, now).map_err(|e| ApiError::invalid(name, e))
        })
    }

    /// `from`/`to` with defaults (the last 24 hours) and sanity checks.
    fn range(&self, now: i64) -> Result<(i64, i64), ApiError> {
        let to = self.time("to", now, now)?;
        let from = self.time("from", to - DAY_MS, now)?;
        check_order(Some(from), Some(to))?;
        if to - from > MAX_RANGE_MS {
            return Err(ApiError::invalid(
                "from",
                "the range is longer than 400 days",
            ));
        }
        Ok((from, to))
    }

    fn group_by(&self) -> Result<Vec<Dimension>, ApiError> {
        let joined: Vec<&str> = self.all("group_by").collect();
        Dimension::parse_list(&joined.join(",")).map_err(|e| ApiError::invalid("group_by", e))
    }

    /// `filter=model:gpt-4o,app:search` (repeatable); several values of one dimension are ORed.
    fn filters(&self) -> Result<Vec<(Dimension, String)>, ApiError> {
        let mut out = Vec::new();
        for value in self.all("filter") {
            for part in value.split(',').filter(|p| !p.trim().is_empty()) {
                let (dim, v) = part.split_once(':').ok_or_else(|| {
                    ApiError::invalid(
                        "filter",
                        format!("'{part}' is not dimension:value (e.g. model:gpt-4o)"),
                    )
                })?;
                let dim = Dimension::parse(dim.trim()).ok_or_else(|| {
                    ApiError::invalid(
                        "filter",
                        format!(
                            "unknown dimension '{}'; allowed: {}",
                            dim.trim(),
                            Dimension::allowed_list()
                        ),
                    )
                })?;
                out.push((dim, v.trim().to_string()));
            }
        }
        Ok(out)
    }
}

fn key_object(dims: &[Dimension], key: &GroupKey) -> BTreeMap<&'static str, Option<String>> {
    dims.iter()
        .zip(key)
        .map(|(d, v)| (d.name(), v.clone()))
        .collect()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LatencyStats {
    pub avg: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SummaryGroup {
    /// The grouped dimensions' values (`null`: events without that dimension).
    #[schema(value_type = Object)]
    pub key: BTreeMap<&'static str, Option<String>>,
    /// All events, of any kind.
    pub events: i64,
    /// LLM requests (flat events and envelope latency telemetry).
    pub requests: i64,
    pub errors: i64,
    /// All input, cache reads and writes and audio input included.
    pub input_tokens: i64,
    /// All output, reasoning and audio output included.
    pub output_tokens: i64,
    /// Input served from the provider's prompt cache (part of `input_tokens`).
    pub cache_read_tokens: i64,
    /// Input written to the prompt cache (part of `input_tokens`).
    pub cache_write_tokens: i64,
    /// Hidden reasoning tokens (part of `output_tokens`).
    pub reasoning_tokens: i64,
    pub audio_input_tokens: i64,
    pub audio_output_tokens: i64,
    /// What the calls cost, each counted once: the reported cost where one was sent, else the
    /// cost plugin's estimate. Unpriced events add nothing here; see `unpriced_events`.
    pub cost_usd: f64,
    /// The cost plugin's estimates, including those of calls whose reported cost counts.
    pub estimated_cost_usd: f64,
    /// The costs senders (or CostOps) reported.
    pub reported_cost_usd: f64,
    /// Events with tokens that should have a cost and have none (no price for their model).
    pub unpriced_events: i64,
    /// The tokens of the unpriced events.
    pub unpriced_tokens: i64,
    /// Milliseconds; percentiles within 1% of the exact value.
    pub latency_ms: LatencyStats,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SummaryResponse {
    pub from: String,
    pub to: String,
    pub groups: Vec<SummaryGroup>,
}

pub(crate) fn observe(state: &AppState, route: &'static str, started: Instant) {
    state
        .metrics
        .query_seconds
        .get_or_create(&RouteLabel { route })
        .observe(started.elapsed().as_secs_f64());
}

#[utoipa::path(
    get, path = "/v1/metrics/summary", tag = "query",
    description = "Totals per group over a range, from the coarsest rollups that answer it exactly. Needs the `query` scope.",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339, epoch ms, or now-24h (default: to minus 24h)"),
        ("to" = Option<String>, Query, description = "RFC 3339, epoch ms, or now (default: now)"),
        ("group_by" = Option<String>, Query, description = "comma-separated: source_module, app, environment, model, provider, operation, status"),
        ("filter" = Option<String>, Query, description = "dimension:value pairs, comma-separated, repeatable (model:gpt-4o,app:search)"),
    ),
    responses((status = 200, body = SummaryResponse), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn get_summary(
    State(state): State<AppState>,
    principal: Principal,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<SummaryResponse>, ApiError> {
    let started = Instant::now();
    principal.require(Right::ReadMetrics)?;
    let p = Params::new(pairs, &["from", "to", "group_by", "filter"])?;
    let (from_ms, to_ms) = p.range(hub_core::time::now_ms())?;
    let q = SummaryQuery {
        from_ms,
        to_ms,
        group_by: p.group_by()?,
        filters: p.filters()?,
    };
    let groups = summary(state.storage.as_ref(), principal.tenant, &q).await?;
    let groups = groups
        .into_iter()
        .map(|g| SummaryGroup {
            key: key_object(&q.group_by, &g.key),
            events: g.agg.events,
            requests: g.agg.requests,
            errors: g.agg.errors,
            input_tokens: g.agg.input_tokens,
            output_tokens: g.agg.output_tokens,
            cache_read_tokens: g.agg.details[TokenDetail::CacheRead.index()],
            cache_write_tokens: g.agg.details[TokenDetail::CacheWrite.index()],
            reasoning_tokens: g.agg.details[TokenDetail::Reasoning.index()],
            audio_input_tokens: g.agg.details[TokenDetail::AudioInput.index()],
            audio_output_tokens: g.agg.details[TokenDetail::AudioOutput.index()],
            cost_usd: g.agg.cost_usd,
            estimated_cost_usd: g.agg.estimated_cost_usd,
            reported_cost_usd: g.agg.reported_cost_usd,
            unpriced_events: g.agg.unpriced_events,
            unpriced_tokens: g.agg.unpriced_tokens,
            latency_ms: LatencyStats {
                avg: g.agg.latency_avg(),
                p50: g.agg.latency.quantile(0.50),
                p95: g.agg.latency.quantile(0.95),
                p99: g.agg.latency.quantile(0.99),
            },
        })
        .collect();
    observe(&state, "summary", started);
    Ok(Json(SummaryResponse {
        from: to_rfc3339(from_ms),
        to: to_rfc3339(to_ms),
        groups,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// Start of the step (RFC 3339).
    pub ts: String,
    /// `null` where undefined (a latency with no latencies in the step).
    pub value: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeriesDto {
    #[schema(value_type = Object)]
    pub key: BTreeMap<&'static str, Option<String>>,
    pub points: Vec<Point>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimeseriesResponse {
    pub metric: String,
    pub step: String,
    /// The range after alignment to the step.
    pub from: String,
    pub to: String,
    pub series: Vec<SeriesDto>,
}

/// The metrics a time series can show, as the OpenAPI document lists them (the parser is
/// `hub_core::Metric`; a test keeps the two the same).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum MetricName {
    Events,
    Requests,
    Errors,
    InputTokens,
    OutputTokens,
    CacheReadTokens,
    CacheWriteTokens,
    ReasoningTokens,
    AudioInputTokens,
    AudioOutputTokens,
    CostUsd,
    EstimatedCostUsd,
    ReportedCostUsd,
    UnpricedEvents,
    UnpricedTokens,
    LatencyAvg,
    LatencyP50,
    LatencyP95,
    LatencyP99,
}

#[utoipa::path(
    get, path = "/v1/metrics/timeseries", tag = "query",
    description = "One series per group with a point per step; from/to are aligned to the step. Needs the `query` scope.",
    params(
        ("metric" = Option<MetricName>, Query, description = "what each point counts (default requests)"),
        ("step" = Option<String>, Query, description = "a whole number of minutes, hours or days: 1m, 5m, 15m, 1h, 1d (default 1m)", pattern = "^[1-9][0-9]{0,5}[mhd]$"),
        ("from" = Option<String>, Query, description = "default: to minus 24h"),
        ("to" = Option<String>, Query, description = "default: now"),
        ("group_by" = Option<String>, Query, description = "comma-separated dimensions"),
        ("filter" = Option<String>, Query, description = "dimension:value pairs"),
    ),
    responses((status = 200, body = TimeseriesResponse), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn get_timeseries(
    State(state): State<AppState>,
    principal: Principal,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<TimeseriesResponse>, ApiError> {
    let started = Instant::now();
    principal.require(Right::ReadMetrics)?;
    let p = Params::new(
        pairs,
        &["metric", "step", "from", "to", "group_by", "filter"],
    )?;
    let metric = Metric::parse(p.one("metric").unwrap_or("requests"))
        .map_err(|e| ApiError::invalid("metric", e))?;
    let step_text = p.one("step").unwrap_or("1m");
    let step_ms =
        hub_core::time::parse_duration_ms(step_text).map_err(|e| ApiError::invalid("step", e))?;
    if resolution_for_step(step_ms).is_none() {
        return Err(ApiError::invalid(
            "step",
            format!(
                "'{step_text}' is not a whole number of minutes, hours or days; allowed e.g. 1m, 5m, 1h, 1d"
            ),
        ));
    }
    let (from_ms, to_ms) = p.range(hub_core::time::now_ms())?;
    let q = TimeseriesQuery {
        from_ms,
        to_ms,
        step_ms,
        metric,
        group_by: p.group_by()?,
        filters: p.filters()?,
    };
    let (from, to) = aligned_range(&q);
    if (to - from) / step_ms > MAX_POINTS {
        return Err(ApiError::invalid(
            "step",
            format!(
                "{} points per series is over the {MAX_POINTS} limit; use a larger step",
                (to - from) / step_ms
            ),
        ));
    }
    let series = timeseries(state.storage.as_ref(), principal.tenant, &q).await?;
    let series = series
        .into_iter()
        .map(|s| SeriesDto {
            key: key_object(&q.group_by, &s.key),
            points: s
                .points
                .into_iter()
                .map(|(ts, value)| Point {
                    ts: to_rfc3339(ts),
                    value,
                })
                .collect(),
        })
        .collect();
    observe(&state, "timeseries", started);
    Ok(Json(TimeseriesResponse {
        metric: metric.name().into(),
        step: step_text.into(),
        from: to_rfc3339(from),
        to: to_rfc3339(to),
        series,
    }))
}

/// 400 when both ends of a range are given and `from` is not before `to` (every route that takes
/// a range says so the same way).
pub(crate) fn check_order(from_ms: Option<i64>, to_ms: Option<i64>) -> Result<(), ApiError> {
    match (from_ms, to_ms) {
        (Some(from), Some(to)) if from >= to => Err(ApiError::invalid(
            "from",
            format!(
                "must be before to ({} >= {})",
                to_rfc3339(from),
                to_rfc3339(to)
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_metrics_are_the_parsed_ones() {
        let documented = serde_json::to_value(<MetricName as utoipa::PartialSchema>::schema())
            .unwrap()["enum"]
            .clone();
        let parsed: Vec<&str> = hub_core::Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(documented, serde_json::json!(parsed));
    }
}
