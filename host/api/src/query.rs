//! The query routes: summaries and time series from rollups, and the event search.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use hub_core::time::{DAY_MS, parse_query_time, to_rfc3339};
use hub_core::{Dimension, Metric};
use hub_storage::analytics::{SummaryQuery, TimeseriesQuery, aligned_range, summary, timeseries};
use hub_storage::rollup::resolution_for_step;
use hub_storage::{EventCursor, EventField, EventFilter, GroupKey, StoredEvent};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::metrics::RouteLabel;
use crate::{ApiError, AppState, Principal, Right};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/metrics/summary", get(get_summary))
        .route("/v1/metrics/timeseries", get(get_timeseries))
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}", get(get_event))
}

/// Longest range one query may cover.
const MAX_RANGE_MS: i64 = 400 * DAY_MS;
/// Most points one series may have.
const MAX_POINTS: i64 = 10_000;

/// Query parameters as sent, with helpers that name the parameter in every error.
struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    fn new(pairs: Vec<(String, String)>, allowed: &[&str]) -> Result<Self, ApiError> {
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

    fn one(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
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
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    /// Milliseconds; percentiles within 1% of the exact value.
    pub latency_ms: LatencyStats,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SummaryResponse {
    pub from: String,
    pub to: String,
    pub groups: Vec<SummaryGroup>,
}

fn observe(state: &AppState, route: &'static str, started: Instant) {
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
            cost_usd: g.agg.cost_usd,
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
    CostUsd,
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

/// An event as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventDto {
    pub event_id: String,
    pub timestamp: String,
    pub received_at: String,
    pub event_type: String,
    pub kind: String,
    pub source_module: Option<String>,
    pub severity: Option<String>,
    pub environment: Option<String>,
    pub app: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub operation: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub status: Option<String>,
    pub error_type: Option<String>,
    pub cost_usd: Option<f64>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub parent_event_id: Option<String>,
    #[schema(value_type = Object)]
    pub tags: Box<RawValue>,
    /// The event exactly as it was sent.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    /// What each enricher filled in, in the order they ran (empty when the event is as sent).
    pub enriched_by: Vec<EnrichedByDto>,
}

/// The fields one plugin filled in: `cost_usd`, `provider`, `operation`, `app`, `environment`,
/// or `tags.<name>`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnrichedByDto {
    pub plugin: String,
    pub fields: Vec<String>,
}

fn raw_json(text: String) -> Result<Box<RawValue>, ApiError> {
    RawValue::from_string(text)
        .map_err(|e| ApiError::Internal(format!("stored JSON is invalid: {e}")))
}

fn event_dto(e: StoredEvent) -> Result<EventDto, ApiError> {
    let r = e.record;
    Ok(EventDto {
        timestamp: to_rfc3339(r.ts_ms),
        received_at: to_rfc3339(e.received_at_ms),
        severity: r.severity.map(|s| s.as_str().to_string()),
        status: r.status.map(|s| s.as_str().to_string()),
        tags: raw_json(r.tags_json)?,
        payload: raw_json(r.payload_json)?,
        enriched_by: r
            .enriched_by
            .into_iter()
            .map(|e| EnrichedByDto {
                plugin: e.plugin.clone(),
                fields: e.fields.clone(),
            })
            .collect(),
        event_id: r.event_id,
        event_type: r.event_type,
        kind: r.kind,
        source_module: r.source_module,
        environment: r.environment,
        app: r.app,
        model: r.model,
        provider: r.provider,
        operation: r.operation,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        latency_ms: r.latency_ms,
        ttft_ms: r.ttft_ms,
        error_type: r.error_type,
        cost_usd: r.cost_usd,
        user_id: r.user_id,
        session_id: r.session_id,
        trace_id: r.trace_id,
        correlation_id: r.correlation_id,
        parent_event_id: r.parent_event_id,
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPageDto {
    pub events: Vec<EventDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn encode_cursor(c: &EventCursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}|{}", c.ts_ms, c.event_id))
}

fn decode_cursor(s: &str) -> Result<EventCursor, ApiError> {
    let bad = || {
        ApiError::invalid(
            "cursor",
            "is not a cursor this API returned; start again without it",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ts, id) = text.split_once('|').ok_or_else(bad)?;
    Ok(EventCursor {
        ts_ms: ts.parse().map_err(|_| bad())?,
        event_id: id.to_string(),
    })
}

#[utoipa::path(
    get, path = "/v1/events", tag = "query",
    description = "Events newest first, filtered, with cursor pagination. Needs the `query` scope.",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339, epoch ms, or now-1h"),
        ("to" = Option<String>, Query, description = "RFC 3339, epoch ms, or now"),
        ("model" = Option<String>, Query), ("provider" = Option<String>, Query), ("app" = Option<String>, Query),
        ("environment" = Option<String>, Query), ("operation" = Option<String>, Query), ("status" = Option<String>, Query),
        ("source_module" = Option<String>, Query), ("severity" = Option<String>, Query), ("event_type" = Option<String>, Query),
        ("kind" = Option<String>, Query), ("correlation_id" = Option<String>, Query), ("trace_id" = Option<String>, Query),
        ("session_id" = Option<String>, Query), ("user_id" = Option<String>, Query),
        ("id" = Option<String>, Query, description = "any of the event's ids (event, trace, session, correlation, parent, user) starts with this; case-sensitive, at most 256 characters"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = EventPageDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    principal: Principal,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<EventPageDto>, ApiError> {
    let started = Instant::now();
    principal.require(Right::ReadEvents)?;
    let mut allowed: Vec<&str> = vec!["from", "to", "limit", "cursor", "id"];
    allowed.extend(Dimension::ALL.map(|d| d.name()));
    allowed.extend(EventField::ALL.map(|f| f.name()));
    let p = Params::new(pairs, &allowed)?;
    let now = hub_core::time::now_ms();
    let mut filter = EventFilter {
        from_ms: p
            .one("from")
            .map(|v| parse_query_time(v, now).map_err(|e| ApiError::invalid("from", e)))
            .transpose()?,
        to_ms: p
            .one("to")
            .map(|v| parse_query_time(v, now).map_err(|e| ApiError::invalid("to", e)))
            .transpose()?,
        ..Default::default()
    };
    check_order(filter.from_ms, filter.to_ms)?;
    for dim in Dimension::ALL {
        filter
            .dims
            .extend(p.all(dim.name()).map(|v| (dim, v.to_string())));
    }
    for field in EventField::ALL {
        if let Some(v) = p.one(field.name()) {
            filter.fields.push((field, v.to_string()));
        }
    }
    if let Some(id) = p.one("id").filter(|v| !v.is_empty()) {
        if id.chars().count() > 256 {
            return Err(ApiError::invalid(
                "id",
                "is longer than 256 characters; ids are shorter than that",
            ));
        }
        filter.id_prefix = Some(id.to_string());
    }
    let limit = match p.one("limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::invalid("limit", format!("'{v}' is not a number from 1 to 1000"))
            })?,
    };
    let cursor = p.one("cursor").map(decode_cursor).transpose()?;
    let page = state
        .storage
        .list_events(principal.tenant, &filter, cursor.as_ref(), limit)
        .await?;
    let next_cursor = page.next.as_ref().map(encode_cursor);
    let events = page
        .events
        .into_iter()
        .map(event_dto)
        .collect::<Result<_, _>>()?;
    observe(&state, "events", started);
    Ok(Json(EventPageDto {
        events,
        next_cursor,
    }))
}

#[utoipa::path(
    get, path = "/v1/events/{id}", tag = "query",
    description = "One event by its id (the newest, should a sender have reused an id). Needs the `query` scope.",
    params(("id" = String, Path, description = "event_id")),
    responses((status = 200, body = EventDto), (status = 404, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn get_event(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<EventDto>, ApiError> {
    principal.require(Right::ReadEvents)?;
    let event = state
        .storage
        .get_event(principal.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("event '{id}' not found")))?;
    Ok(Json(event_dto(event)?))
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

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = EventCursor {
            ts_ms: 42,
            event_id: "a|b".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        assert!(decode_cursor("!!!").is_err());
    }
}
