//! `POST /v1/events`.

use std::io::Read;
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hub_core::ingest::{BodyError, BodyFormat, Rejection, parse_body};
use serde::Serialize;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::metrics::{Metrics, OutcomeLabel, ReasonLabel};
use crate::{ApiError, AppState, Principal, Right};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    // The body limit is enforced by the handler (so that the 413 names the limit), not by axum.
    OpenApiRouter::new().routes(routes!(post_events).layer(DefaultBodyLimit::disable()))
}

/// The answer to an ingest request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestResponse {
    /// Events taken by this request: stored, or (Kafka bus) held durably by the broker.
    pub accepted: usize,
    /// Of `accepted`, the events a pipeline worker stores next (Kafka bus: the broker has them on
    /// every in-sync replica); duplicates among them are recognised then, so they are counted
    /// here and not in `duplicates`. 0 on the in-process bus, which answers after the commit.
    pub pending: usize,
    /// Valid events that were already stored (same `event_id` and timestamp); not counted twice.
    pub duplicates: usize,
    /// Invalid events, by their 0-based index in the batch.
    #[schema(value_type = Vec<Object>)]
    pub rejected: Vec<Rejection>,
}

/// A 400 from ingest: every event rejected (the usual answer), or a body that could not be read at
/// all (the error shape). Documentation only: the handler answers one or the other.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum IngestRefusal {
    AllRejected(IngestResponse),
    Unreadable(crate::error::ErrorBody),
}

fn outcome(metrics: &Metrics, outcome: &'static str) {
    metrics
        .ingest_requests
        .get_or_create(&OutcomeLabel { outcome })
        .inc();
}

fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyFormat::Json);
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" | "" => Ok(BodyFormat::Json),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines" => Ok(BodyFormat::Ndjson),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "content type '{other}' is not accepted: use application/json (an array or {{\"events\": [...]}}) or application/x-ndjson"
        ))),
    }
}

fn is_gzip(headers: &HeaderMap) -> Result<bool, ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => Ok(false),
        Some(e) if e == "identity" || e.is_empty() => Ok(false),
        Some(e) if e == "gzip" || e == "x-gzip" => Ok(true),
        Some(e) => Err(ApiError::UnsupportedMediaType(format!(
            "content encoding '{e}' is not accepted: use gzip or none"
        ))),
    }
}

fn mib(bytes: usize) -> String {
    if bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

pub(crate) async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large =
        || ApiError::PayloadTooLarge(format!("the request body exceeds the {} limit", mib(limit)));
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(ApiError::BadRequest(format!(
            "could not read the request body: {e}"
        ))),
    }
}

fn gunzip_limited(bytes: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    let mut decoder = flate2::read::GzDecoder::new(bytes).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid gzip: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "the decompressed body exceeds the {} limit",
            mib(limit)
        )));
    }
    Ok(out)
}

#[utoipa::path(
    post, path = "/v1/events", tag = "ingest",
    description = "Send events: a JSON array, {\"events\": [...]}, or NDJSON (Content-Type: application/x-ndjson); \
        gzip accepted (Content-Encoding: gzip). Both the flat per-call form and the LLM DevOps envelope are accepted. \
        The answer comes after the batch is committed. Needs the `ingest` scope.",
    request_body(content = Vec<Object>, description = "events", content_type = "application/json"),
    responses(
        (status = 202, description = "At least one event was valid; all valid ones are stored", body = IngestResponse),
        (status = 400, description = "No event was valid (the ingest answer, every event rejected), or the body could not be cut into events (the error shape)", body = IngestRefusal),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 413, description = "Body or batch over the limit", body = crate::error::ErrorBody),
        (status = 415, description = "Unknown content type or encoding", body = crate::error::ErrorBody),
        (status = 429, description = "The pipeline is saturated; retry after Retry-After seconds", body = crate::error::ErrorBody),
        (status = 503, description = "Storage failed; nothing was acknowledged, resend", body = crate::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    principal: Result<Principal, ApiError>,
    body: Body,
) -> Response {
    let started = Instant::now();
    let metrics = state.metrics.clone();
    match ingest(state, headers, principal, body, started).await {
        Ok(response) => response,
        Err(e) => {
            outcome(
                &metrics,
                match e.status() {
                    StatusCode::UNAUTHORIZED => "unauthorized",
                    StatusCode::FORBIDDEN => "forbidden",
                    StatusCode::PAYLOAD_TOO_LARGE => "too_large",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                    StatusCode::TOO_MANY_REQUESTS => "saturated",
                    StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                    _ => "bad_request",
                },
            );
            e.into_response()
        }
    }
}

async fn ingest(
    state: AppState,
    headers: HeaderMap,
    principal: Result<Principal, ApiError>,
    body: Body,
    started: Instant,
) -> Result<Response, ApiError> {
    let principal = principal?;
    principal.require(Right::Ingest)?;
    let format = body_format(&headers)?;
    let gzip = is_gzip(&headers)?;
    let raw = read_limited(body, state.config.max_body_bytes).await?;
    let config = state.config.clone();
    let now = hub_core::time::now_ms();
    // Decompressing and validating is CPU work: keep it off the async workers for large bodies.
    let parse = move || -> Result<_, ApiError> {
        let bytes = if gzip {
            std::borrow::Cow::Owned(gunzip_limited(&raw, config.max_decompressed_bytes)?)
        } else {
            std::borrow::Cow::Borrowed(&raw[..])
        };
        parse_body(&bytes, format, &config.ingest, now).map_err(|e| match e {
            BodyError::TooManyEvents { .. } => ApiError::PayloadTooLarge(e.to_string()),
            other => ApiError::BadRequest(other.to_string()),
        })
    };
    let parsed = if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(usize::MAX)
        > 64 * 1024
    {
        tokio::task::spawn_blocking(parse)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    } else {
        parse()?
    };
    for rejection in &parsed.rejected {
        let reason = rejection
            .errors
            .first()
            .map(|e| Metrics::reason_of(e.top_level_field()))
            .unwrap_or_default();
        state
            .metrics
            .events_rejected
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
    if parsed.events.is_empty() {
        outcome(&state.metrics, "rejected");
        let body = IngestResponse {
            accepted: 0,
            pending: 0,
            duplicates: 0,
            rejected: parsed.rejected,
        };
        return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
    }
    let n = parsed.events.len();
    let ack = state
        .bus
        .try_publish(principal.tenant, parsed.events)
        .map_err(|refused| match refused {
            hub_bus::Refused::Saturated(s) => ApiError::TooManyRequests {
                message: format!(
                    "the hub is saturated ({s}); retry this batch after the Retry-After delay"
                ),
                retry_after_secs: 1,
            },
            hub_bus::Refused::Unavailable(reason) => ApiError::Unavailable(format!(
                "{reason}; nothing from this batch was acknowledged, resend it"
            )),
            hub_bus::Refused::TooLarge(what) => ApiError::PayloadTooLarge(format!(
                "{what}; nothing from this batch was acknowledged: send that event smaller"
            )),
        })?;
    let committed = ack
        .await
        .map_err(|_| {
            ApiError::Unavailable("the pipeline stopped before committing; resend the batch".into())
        })?
        .map_err(|e| {
            ApiError::Unavailable(format!(
                "{e}; nothing from this batch was acknowledged, resend it"
            ))
        })?;
    state
        .metrics
        .events_accepted
        .inc_by((committed.inserted + committed.pending) as u64);
    state
        .metrics
        .events_duplicate
        .inc_by(committed.duplicates as u64);
    state.metrics.ingest_batch_events.observe(n as f64);
    state
        .metrics
        .ingest_ack_seconds
        .observe(started.elapsed().as_secs_f64());
    outcome(&state.metrics, "accepted");
    let body = IngestResponse {
        accepted: committed.inserted + committed.pending,
        pending: committed.pending,
        duplicates: committed.duplicates,
        rejected: parsed.rejected,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
