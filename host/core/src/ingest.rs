//! Turning request bodies into events: splitting a batch, then validating each event on its own so
//! that a bad event is reported by index and field while its neighbours are still accepted.
//!
//! Two shapes are accepted as they are (see `shared/examples/`): the flat per-call form that
//! applications send, and the LLM DevOps envelope (`source_module`, `event_type`, nested `payload`
//! with `payload_type` and a typed `data`). Both map onto [`EventRecord`].

mod framing;
mod lazy;
mod validate;

use crate::event::EventRecord;
use crate::time::HOUR_MS;
use framing::{Item, split_json, split_ndjson};
pub use validate::parse_event;

/// Limits applied to every batch and event. Operators configure them; defaults follow the API docs.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Events in one request.
    pub max_events: usize,
    /// How far in the past a timestamp may be.
    pub max_age_ms: i64,
    /// How far in the future a timestamp may be (clock skew).
    pub max_future_ms: i64,
    /// Bytes in any string field.
    pub max_string_bytes: usize,
    /// Entries in `tags`.
    pub max_tags: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_events: 10_000,
            max_age_ms: 7 * 24 * HOUR_MS,
            max_future_ms: HOUR_MS,
            max_string_bytes: 4096,
            max_tags: 64,
        }
    }
}

/// How the body is framed, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// A JSON array, `{"events": [...]}`, or one event object.
    Json,
    /// One JSON event per line.
    Ndjson,
}

/// One problem with one field of one event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// A JSON path into the event, e.g. `input_tokens`, `tags.team`, `payload.data.model_id`;
    /// empty when the event as a whole is wrong (e.g. not JSON).
    pub field: String,
    pub message: String,
}

/// All problems of one event, by its position in the batch (0-based).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    pub index: usize,
    pub errors: Vec<FieldError>,
}

/// Why a whole body was refused (no event could be looked at).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Malformed {
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "the body must be a JSON array of events, an object with an \"events\" array, or NDJSON (one event per line)"
    )]
    NotABatch,
    #[error("the batch has {count} events; the limit is {limit} events per request")]
    TooManyEvents { count: usize, limit: usize },
    #[error("the batch is empty: send at least one event")]
    Empty,
}

/// The outcome of parsing one body: the valid events, and a rejection per invalid one.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    pub events: Vec<EventRecord>,
    pub rejected: Vec<Rejection>,
    /// Events the body held, valid or not.
    pub total: usize,
}

/// Splits, parses and validates a request body.
pub fn parse_body(
    body: &[u8],
    format: BodyFormat,
    limits: &IngestLimits,
    now_ms: i64,
) -> Result<ParsedBatch, BodyError> {
    let items = match format {
        BodyFormat::Json => split_json(body)?,
        BodyFormat::Ndjson => split_ndjson(body),
    };
    if items.is_empty() {
        return Err(BodyError::Empty);
    }
    if items.len() > limits.max_events {
        return Err(BodyError::TooManyEvents {
            count: items.len(),
            limit: limits.max_events,
        });
    }
    let mut batch = ParsedBatch {
        total: items.len(),
        ..Default::default()
    };
    batch.events.reserve(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let result = match item {
            Item::Raw(raw) => parse_event(raw, limits, now_ms),
            Item::Broken(err) => Err(vec![err]),
        };
        match result {
            Ok(event) => batch.events.push(event),
            Err(errors) => batch.rejected.push(Rejection { index, errors }),
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests;
