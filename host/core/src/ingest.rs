//! Turning request bodies into events: splitting a batch, then validating each event on its own so
//! that a bad event is reported by index and field while its neighbours are still accepted.
//!
//! Two shapes are accepted as they are (see `shared/examples/`): the flat per-call form that
//! applications send, and the LLM DevOps envelope (`source_module`, `event_type`, nested `payload`
//! with `payload_type` and a typed `data`). Both map onto [`EventRecord`].

mod framing;
mod lazy;
mod shape;
mod usage;
mod validate;

use crate::event::EventRecord;
use crate::time::HOUR_MS;
use framing::{Item, Lines, field_before, split_json, split_ndjson};
use shape::structural_fault;
use validate::Failure;
pub use validate::{MAX_COST_USD, MAX_DURATION_MS, MAX_TOKENS, parse_event};

/// Tag names the hub sets itself; a sender's tag named so is refused.
pub const RESERVED_TAG_PREFIX: &str = "hub.";
/// The tag on an event an integration's `sync` brought in: the integration's name.
pub const INTEGRATION_TAG: &str = "hub.integration";

/// Limits applied to every batch and event. Operators configure them; defaults follow the API docs.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Events in one request.
    pub max_events: usize,
    /// How far in the past a timestamp may be.
    pub max_age_ms: i64,
    /// How far in the future a timestamp may be (clock skew).
    pub max_future_ms: i64,
    /// Bytes in any string of an event, key or value, known field or not (decoded).
    pub max_string_bytes: usize,
    /// Entries in `tags`.
    pub max_tags: usize,
    /// Bytes of one event as sent, which is what is stored as its payload.
    pub max_event_bytes: usize,
    /// Levels of nesting of objects and arrays anywhere in one event, the event object being
    /// level 1 (so `{"a": {"b": [1]}}` has 3).
    pub max_depth: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_events: 10_000,
            max_age_ms: 7 * 24 * HOUR_MS,
            max_future_ms: HOUR_MS,
            max_string_bytes: 4096,
            max_tags: 64,
            max_event_bytes: 64 * 1024,
            max_depth: 32,
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
    /// A JSON path into the event, e.g. `input_tokens`, `tags.team`, `payload.data.model_id`,
    /// `extra.items[2]` (unknown fields too, for the limits on every string and on nesting);
    /// empty when the event as a whole is wrong (e.g. not JSON, or too large).
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// The top-level field this error is about when it is one the validator reads, `""` for the
    /// event as a whole, and `"unknown_field"` for a path into any other field: a small fixed set,
    /// fit for a metric label (a sender cannot mint labels by naming fields).
    pub fn top_level_field(&self) -> &'static str {
        let top = self.field.split(['.', '[']).next().unwrap_or_default();
        if top.is_empty() {
            return "";
        }
        validate::FIELDS
            .iter()
            .chain(usage::FIELDS)
            .find(|known| **known == top)
            .copied()
            .unwrap_or("unknown_field")
    }
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
    #[error("malformed JSON at line {line}, column {column} (byte {offset}): {message}")]
    Malformed {
        offset: usize,
        line: usize,
        column: usize,
        message: String,
    },
    /// More than whitespace after the body's JSON value (`[a][b]`, `[a],[b]`, `[a] junk`).
    #[error(
        "unexpected data at line {line}, column {column} (byte {offset}) after the end of the body's JSON value: a JSON body is one array, one {{\"events\": [...]}} object or one event (send several as NDJSON, one per line)"
    )]
    TrailingData {
        offset: usize,
        line: usize,
        column: usize,
    },
    /// An array element damaged so that where it ends, and so where the next one starts, cannot
    /// be known (an unterminated string, a missing bracket): the framing does not guess.
    #[error(
        "element {index} of the array, from line {line}, column {column} (byte {offset}), is malformed so that where it ends, and so where the next element starts, cannot be told: {message}"
    )]
    Unreadable {
        index: usize,
        offset: usize,
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

/// Validates events given one JSON document each (what an integration's `sync` answers) exactly
/// as a request body's events are, by position: `events.len() + rejected.len() == total`.
/// The batch limit is the caller's to apply.
pub fn parse_documents(docs: &[String], limits: &IngestLimits, now_ms: i64) -> ParsedBatch {
    let mut batch = ParsedBatch {
        total: docs.len(),
        ..Default::default()
    };
    for (index, doc) in docs.iter().enumerate() {
        match parse_event(doc, limits, now_ms) {
            Ok(event) => batch.events.push(event),
            Err(errors) => batch.rejected.push(Rejection { index, errors }),
        }
    }
    batch
}

/// Marks an event an integration's `sync` brought in: the tag [`INTEGRATION_TAG`] = its name
/// (no sender can set it: ingest refuses tags named `hub.…`).
pub fn tag_integration(event: &mut EventRecord, integration: &str) {
    let mut tags: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&event.tags_json).unwrap_or_default();
    tags.insert(INTEGRATION_TAG.into(), integration.into());
    event.tags_json = serde_json::Value::Object(tags).to_string();
}

/// Splits, parses and validates a request body.
///
/// Every element the body holds is accounted for: `events.len() + rejected.len() == total`. What
/// cannot be cut into elements with certainty is a [`BodyError`] naming where.
pub fn parse_body(
    body: &[u8],
    format: BodyFormat,
    limits: &IngestLimits,
    now_ms: i64,
) -> Result<ParsedBatch, BodyError> {
    let framed = match format {
        BodyFormat::Json => split_json(body)?,
        BodyFormat::Ndjson => split_ndjson(body),
    };
    let lines = Lines::new(body);
    let not_closed = |end| lines.malformed(end, "the array is not closed (no `]`)");
    if framed.items.is_empty() {
        return Err(framed.unclosed.map_or(BodyError::Empty, not_closed));
    }
    if framed.items.len() > limits.max_events {
        return Err(BodyError::TooManyEvents {
            count: framed.items.len(),
            limit: limits.max_events,
        });
    }
    let mut batch = ParsedBatch {
        total: framed.items.len(),
        ..Default::default()
    };
    batch.events.reserve(framed.items.len());
    for (index, item) in framed.items.iter().enumerate() {
        let result = match *item {
            Item::Empty { at } => {
                let (line, column) = lines.at(at);
                Err(vec![FieldError {
                    field: String::new(),
                    message: format!(
                        "malformed JSON at line {line}, column {column}: empty array element"
                    ),
                }])
            }
            Item::Piece { start, end, shape } => {
                let bytes = &body[start..end];
                match validate::element(bytes, shape, limits, now_ms) {
                    Ok(event) => Ok(event),
                    Err(Failure::Invalid(errors)) => Err(errors),
                    Err(Failure::Syntax { offset, message }) => {
                        if framed.from_array
                            && let Some((at, what)) = structural_fault(bytes)
                        {
                            let (line, column) = lines.at(start);
                            let (at_line, at_column) = lines.at(start + at);
                            return Err(BodyError::Unreadable {
                                index,
                                offset: start,
                                line,
                                column,
                                message: format!(
                                    "{what} at line {at_line}, column {at_column} (byte {})",
                                    start + at
                                ),
                            });
                        }
                        let (line, column) = lines.at(start + offset);
                        Err(vec![FieldError {
                            field: field_before(bytes, offset),
                            message: format!(
                                "malformed JSON at line {line}, column {column}: {message}"
                            ),
                        }])
                    }
                }
            }
        };
        match result {
            Ok(event) => batch.events.push(event),
            Err(errors) => batch.rejected.push(Rejection { index, errors }),
        }
    }
    if let Some(end) = framed.unclosed {
        return Err(not_closed(end));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests;
