//! The event routes: search with cursor pagination, and one event by id.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
use hub_core::time::{parse_query_time, to_rfc3339};
use hub_core::{Dimension, TokenDetail};
use hub_storage::{EventCursor, EventField, EventFilter, StoredEvent};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::query::{Params, check_order, observe};
use crate::{ApiError, AppState, Principal, Right};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(get_event))
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
    /// All input, cache reads and writes and audio input included.
    pub input_tokens: Option<i64>,
    /// All output, reasoning and audio output included.
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub audio_input_tokens: Option<i64>,
    pub audio_output_tokens: Option<i64>,
    pub latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub status: Option<String>,
    pub error_type: Option<String>,
    /// The cost this event counts in summaries: the reported cost, else the estimate; 0 when
    /// another event of the same call (`correlation_id`) holds the call's cost; `null` when
    /// unpriced or when the event has no tokens to price.
    pub cost_usd: Option<f64>,
    /// The cost plugin's estimate, kept beside a reported cost.
    pub estimated_cost_usd: Option<f64>,
    /// The cost the sender (or CostOps) reported.
    pub reported_cost_usd: Option<f64>,
    /// The event has tokens but no price was found for its model: its cost is unknown, not $0.
    pub unpriced: bool,
    /// How the provider served the call, as the sender said (`batch`, `flex`, `priority`, …).
    pub service_tier: Option<String>,
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

/// The fields one plugin filled in: `cost_usd` (or `estimated_cost_usd` beside a reported
/// cost), `provider`, `operation`, `app`, `environment`,
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
    let unpriced = r.is_unpriced();
    Ok(EventDto {
        timestamp: to_rfc3339(r.ts_ms),
        received_at: to_rfc3339(e.received_at_ms),
        severity: r.severity.map(|s| s.as_str().to_string()),
        status: r.status.map(|s| s.as_str().to_string()),
        tags: raw_json(r.tags_json)?,
        payload: raw_json(r.payload_json)?,
        unpriced,
        cache_read_tokens: r.details.get(TokenDetail::CacheRead),
        cache_write_tokens: r.details.get(TokenDetail::CacheWrite),
        reasoning_tokens: r.details.get(TokenDetail::Reasoning),
        audio_input_tokens: r.details.get(TokenDetail::AudioInput),
        audio_output_tokens: r.details.get(TokenDetail::AudioOutput),
        estimated_cost_usd: r.estimated_cost_usd,
        reported_cost_usd: r.reported_cost_usd,
        service_tier: r.service_tier,
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
    crate::wire::encode_cursor(c.ts_ms, &c.event_id)
}

fn decode_cursor(s: &str) -> Result<EventCursor, ApiError> {
    let (ts_ms, event_id) = crate::wire::decode_cursor(s)?;
    Ok(EventCursor { ts_ms, event_id })
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

#[cfg(test)]
mod tests {
    use super::*;

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
