//! Validating one event and mapping either accepted shape (the flat per-call form or the LLM
//! DevOps envelope) onto [`EventRecord`], collecting every problem with its JSON path.

use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::framing::{Lines, field_before, offset_of, strip_position};
use super::lazy::{Field, Obj};
use super::shape::{Shape, scan, violations};
use super::{FieldError, IngestLimits};
use crate::event::{EventRecord, Severity, Status};
use crate::time::{HOUR_MS, parse_rfc3339, to_rfc3339};

/// The most tokens one event may report as input or as output: 100 million, far above any context
/// window offered (a few million tokens), so no real call comes near it, and a tenant's `i64` sums
/// could not overflow before 92 billion such events. More is a client bug, rejected as out of
/// range rather than stored.
pub const MAX_TOKENS: i64 = 100_000_000;

/// The longest `latency_ms`, `ttft_ms` or `total_latency_ms` one event may report: 7 days in
/// milliseconds (604,800,000), as long as the default window of accepted timestamps. More is
/// rejected as out of range.
pub const MAX_DURATION_MS: f64 = 604_800_000.0;

/// The largest `cost_usd` or `total_cost_usd` one event may report: 1,000,000 USD. More is
/// rejected as out of range, so that no event can make a tenant's cost sums overflow (two events of
/// `1e308` would make them infinite, which the storage returns as `null`).
pub const MAX_COST_USD: f64 = 1_000_000.0;

/// Every top-level field the validator reads, in either shape.
pub(super) const FIELDS: &[&str] = &[
    "timestamp",
    "event_id",
    "service_tier",
    "app",
    "environment",
    "model",
    "provider",
    "operation",
    "input_tokens",
    "prompt_tokens",
    "output_tokens",
    "completion_tokens",
    "latency_ms",
    "ttft_ms",
    "status",
    "error_type",
    "cost_usd",
    "user_id",
    "session_id",
    "trace_id",
    "correlation_id",
    "parent_event_id",
    "source_module",
    "severity",
    "tags",
    "event_type",
    "schema_version",
    "payload",
];

/// Why one element of a batch is not an event.
pub(super) enum Failure {
    /// It is not well-formed JSON (or not UTF-8): where, as an offset into the element, and why.
    Syntax { offset: usize, message: String },
    /// It is JSON, but not a valid event.
    Invalid(Vec<FieldError>),
}

/// Validates one event, collecting every problem rather than stopping at the first.
pub fn parse_event(
    raw: &str,
    limits: &IngestLimits,
    now_ms: i64,
) -> Result<EventRecord, Vec<FieldError>> {
    let (_, shape, _) = scan(raw.as_bytes(), 0, false);
    event(raw, shape, limits, now_ms).map_err(|failure| match failure {
        Failure::Invalid(errors) => errors,
        Failure::Syntax { offset, message } => {
            let (line, column) = Lines::new(raw.as_bytes()).at(offset);
            vec![FieldError {
                field: field_before(raw.as_bytes(), offset),
                message: format!("malformed JSON at line {line}, column {column}: {message}"),
            }]
        }
    })
}

/// Validates one element of a batch, given as bytes with the [`Shape`] that framing found.
pub(super) fn element(
    bytes: &[u8],
    shape: Shape,
    limits: &IngestLimits,
    now_ms: i64,
) -> Result<EventRecord, Failure> {
    let raw = std::str::from_utf8(bytes).map_err(|e| Failure::Syntax {
        offset: e.valid_up_to(),
        message: "not valid UTF-8".into(),
    })?;
    event(raw, shape, limits, now_ms)
}

fn event(
    raw: &str,
    shape: Shape,
    limits: &IngestLimits,
    now_ms: i64,
) -> Result<EventRecord, Failure> {
    let syntax = |e: serde_json::Error| Failure::Syntax {
        offset: offset_of(raw.as_bytes(), e.line(), e.column()),
        message: strip_position(&e),
    };
    let first = raw.trim_start().as_bytes().first().copied();
    if first != Some(b'{') {
        // Checked without building it: the value may nest deeper than a parser's recursion limit.
        serde_json::from_str::<IgnoredAny>(raw).map_err(syntax)?;
        let t = match first {
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        };
        return Err(Failure::Invalid(vec![FieldError {
            field: String::new(),
            message: format!("an event must be a JSON object, not {t}"),
        }]));
    }
    let obj = Obj::parse(raw).map_err(syntax)?;
    let mut v = Validator {
        limits,
        errors: Vec::new(),
    };
    v.size_and_shape(raw, shape);
    let is_envelope = obj.contains_key("payload")
        && (obj.contains_key("source_module") || obj.contains_key("event_type"));
    let record = if is_envelope {
        v.envelope(&obj, raw, now_ms)
    } else {
        v.flat(&obj, raw, now_ms)
    };
    if v.errors.is_empty() {
        Ok(record)
    } else {
        Err(Failure::Invalid(v.errors))
    }
}

/// The first of several synonymous keys whose value is present and not null.
fn first_present<'k, 'a>(obj: &Obj<'a>, keys: &[&'k str]) -> Option<(&'k str, Field<'a>)> {
    keys.iter()
        .find_map(|k| obj.get(k).filter(|v| !v.is_null()).map(|v| (*k, v)))
}

/// A content-derived id for events that carry none, so that resending the same bytes is idempotent.
fn derived_id(raw: &str) -> String {
    let digest = Sha256::digest(raw.as_bytes());
    format!("h-{}", hex::encode(&digest[..16]))
}

pub(super) struct Validator<'l> {
    limits: &'l IngestLimits,
    pub(super) errors: Vec<FieldError>,
}

impl Validator<'_> {
    pub(super) fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub(super) fn path(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    }

    /// The limits on the event as a whole: its size, and the nesting and string lengths anywhere
    /// in it, unknown fields included. `shape` tells cheaply whether any string or nesting is over
    /// its limit; only then is the event walked to name the fields that are.
    fn size_and_shape(&mut self, raw: &str, shape: Shape) {
        let l = self.limits;
        if raw.len() > l.max_event_bytes {
            self.fail(
                "",
                format!(
                    "the event is {} bytes long; at most {} bytes allowed",
                    raw.len(),
                    l.max_event_bytes
                ),
            );
        }
        if shape.depth > l.max_depth || shape.longest_string > l.max_string_bytes {
            self.errors
                .extend(violations(raw, l.max_depth, l.max_string_bytes));
        }
    }

    /// A string field; absent, null and "" are `None`. (Its length was checked with every other
    /// string of the event, in [`Self::size_and_shape`].)
    fn string(&mut self, obj: &Obj<'_>, prefix: &str, key: &str) -> Option<String> {
        match obj.get(key)? {
            Field::Null => None,
            Field::String(s) if s.is_empty() => None,
            Field::String(s) => Some(s.into_owned()),
            other => {
                let t = other.type_name();
                self.fail(
                    Self::path(prefix, key),
                    format!("must be a string, got {t}"),
                );
                None
            }
        }
    }

    /// The first of several synonymous keys that is present.
    fn string_any(&mut self, obj: &Obj<'_>, prefix: &str, keys: &[&str]) -> Option<String> {
        let (key, _) = first_present(obj, keys)?;
        self.string(obj, prefix, key)
    }

    fn required_string(&mut self, obj: &Obj<'_>, prefix: &str, key: &str) -> Option<String> {
        let value = self.string(obj, prefix, key);
        if value.is_none()
            && !self
                .errors
                .iter()
                .any(|e| e.field == Self::path(prefix, key))
        {
            self.fail(Self::path(prefix, key), "is required");
        }
        value
    }

    pub(super) fn tokens(&mut self, obj: &Obj<'_>, prefix: &str, keys: &[&str]) -> Option<i64> {
        let (key, value) = first_present(obj, keys)?;
        let field = Self::path(prefix, key);
        let out_of_range =
            |n: &str| format!("{n} is out of range: at most {MAX_TOKENS} tokens per event");
        match value {
            Field::Number(n) => match n.as_i64() {
                Some(t) if t < 0 => {
                    self.fail(field, format!("must not be negative, got {t}"));
                    None
                }
                Some(t) if t > MAX_TOKENS => {
                    self.fail(field, out_of_range(&t.to_string()));
                    None
                }
                Some(t) => Some(t),
                None if n.as_u64().is_some()
                    || n.as_f64().is_some_and(|x| x > MAX_TOKENS as f64) =>
                {
                    self.fail(field, out_of_range(&n.to_string()));
                    None
                }
                None if n.as_f64().is_some_and(|x| x < 0.0) => {
                    self.fail(field, format!("must not be negative, got {n}"));
                    None
                }
                None => {
                    self.fail(field, format!("must be a whole number of tokens, got {n}"));
                    None
                }
            },
            Field::OutOfRange(text) => {
                self.fail(field, out_of_range(truncate(text, 32)));
                None
            }
            other => {
                let t = other.type_name();
                self.fail(field, format!("must be a whole number, got {t}"));
                None
            }
        }
    }

    /// A non-negative finite number of `unit` (latency in ms, cost in USD), at most `max`.
    fn amount(
        &mut self,
        obj: &Obj<'_>,
        prefix: &str,
        keys: &[&str],
        max: f64,
        unit: &str,
    ) -> Option<f64> {
        let (key, value) = first_present(obj, keys)?;
        let field = Self::path(prefix, key);
        let out_of_range = |n: &str| format!("{n} is out of range: at most {max} {unit} per event");
        match value {
            Field::Number(n) => match n.as_f64() {
                Some(x) if !x.is_finite() => {
                    self.fail(field, "must be a finite number");
                    None
                }
                Some(x) if x < 0.0 => {
                    self.fail(field, format!("must not be negative, got {x}"));
                    None
                }
                Some(x) if x > max => {
                    self.fail(field, out_of_range(&n.to_string()));
                    None
                }
                Some(x) => Some(x),
                None => {
                    self.fail(field, "must be a finite number");
                    None
                }
            },
            Field::OutOfRange(text) => {
                self.fail(field, out_of_range(truncate(text, 32)));
                None
            }
            Field::String(s)
                if matches!(
                    s.to_ascii_lowercase().as_str(),
                    "nan" | "inf" | "infinity" | "-infinity"
                ) =>
            {
                self.fail(
                    field,
                    format!("must be a finite number, got the string \"{s}\""),
                );
                None
            }
            other => {
                let t = other.type_name();
                self.fail(field, format!("must be a number, got {t}"));
                None
            }
        }
    }

    fn timestamp(&mut self, obj: &Obj<'_>, now_ms: i64) -> Option<i64> {
        let ts = match obj.get("timestamp") {
            None | Some(Field::Null) => {
                self.fail(
                    "timestamp",
                    "is required (RFC 3339, e.g. 2026-11-25T10:30:00Z, or epoch milliseconds)",
                );
                return None;
            }
            Some(Field::String(s)) => match parse_rfc3339(&s) {
                Some(ts) => ts,
                None => {
                    self.fail(
                        "timestamp",
                        format!(
                            "'{}' is not an RFC 3339 time such as 2026-11-25T10:30:00Z",
                            truncate(&s, 64)
                        ),
                    );
                    return None;
                }
            },
            Some(Field::Number(n)) => match n.as_i64() {
                Some(ms) => ms,
                None => {
                    self.fail("timestamp", format!("{n} is not whole epoch milliseconds"));
                    return None;
                }
            },
            Some(Field::OutOfRange(text)) => {
                self.fail(
                    "timestamp",
                    format!(
                        "{} is out of range for epoch milliseconds",
                        truncate(text, 32)
                    ),
                );
                return None;
            }
            Some(other) => {
                let t = other.type_name();
                self.fail(
                    "timestamp",
                    format!("must be an RFC 3339 string or epoch milliseconds, got {t}"),
                );
                return None;
            }
        };
        if ts < now_ms - self.limits.max_age_ms {
            self.fail(
                "timestamp",
                format!(
                    "{} is older than the accepted window of {} hours",
                    to_rfc3339(ts),
                    self.limits.max_age_ms / HOUR_MS
                ),
            );
            return None;
        }
        if ts > now_ms + self.limits.max_future_ms {
            self.fail(
                "timestamp",
                format!(
                    "{} is more than {} minutes in the future (check the sender's clock)",
                    to_rfc3339(ts),
                    self.limits.max_future_ms / 60_000
                ),
            );
            return None;
        }
        Some(ts)
    }

    fn event_id(&mut self, obj: &Obj<'_>, raw: &str) -> String {
        match obj.get("event_id") {
            None | Some(Field::Null) => derived_id(raw),
            Some(Field::String(s)) if s.is_empty() => {
                self.fail(
                    "event_id",
                    "must not be empty (omit it to let the hub derive one)",
                );
                String::new()
            }
            Some(Field::String(s)) if s.len() > 256 => {
                self.fail(
                    "event_id",
                    format!("is {} bytes long; at most 256 bytes allowed", s.len()),
                );
                String::new()
            }
            Some(Field::String(s)) => s.into_owned(),
            Some(other) => {
                let t = other.type_name();
                self.fail("event_id", format!("must be a string, got {t}"));
                String::new()
            }
        }
    }

    fn status(&mut self, obj: &Obj<'_>, prefix: &str) -> Option<Status> {
        let s = self.string(obj, prefix, "status")?;
        let parsed = Status::parse(&s);
        if parsed.is_none() {
            self.fail(
                Self::path(prefix, "status"),
                format!(
                    "unknown value '{}'; allowed: ok, error, cancelled",
                    truncate(&s, 64)
                ),
            );
        }
        parsed
    }

    fn severity(&mut self, obj: &Obj<'_>) -> Option<Severity> {
        let s = self.string(obj, "", "severity")?;
        let parsed = Severity::parse(&s);
        if parsed.is_none() {
            self.fail(
                "severity",
                format!(
                    "unknown value '{}'; allowed: debug, info, warning, error, critical",
                    truncate(&s, 64)
                ),
            );
        }
        parsed
    }

    fn tags(&mut self, obj: &Obj<'_>) -> String {
        let tags = match obj.get("tags") {
            None | Some(Field::Null) => return "{}".into(),
            Some(Field::Object(tags)) => tags,
            Some(other) => {
                let t = other.type_name();
                self.fail("tags", format!("must be an object of strings, got {t}"));
                return "{}".into();
            }
        };
        if tags.len() > self.limits.max_tags {
            self.fail(
                "tags",
                format!(
                    "has {} tags; at most {} allowed",
                    tags.len(),
                    self.limits.max_tags
                ),
            );
            return "{}".into();
        }
        let mut out = Map::new();
        for (key, value) in tags.entries() {
            let field = format!("tags.{}", truncate(key, 64));
            if key.len() > 256 {
                self.fail(
                    field,
                    format!("tag name is {} bytes long; at most 256 allowed", key.len()),
                );
                continue;
            }
            if key.starts_with(super::RESERVED_TAG_PREFIX) {
                self.fail(
                    field,
                    format!(
                        "tag names starting with `{}` are reserved for tags the hub sets",
                        super::RESERVED_TAG_PREFIX
                    ),
                );
                continue;
            }
            let text = match value {
                Field::Null => continue,
                Field::String(s) => s.into_owned(),
                Field::Bool(b) => b.to_string(),
                Field::Number(n) => n.to_string(),
                Field::OutOfRange(text) => {
                    self.fail(field, format!("{} is out of range", truncate(text, 32)));
                    continue;
                }
                other => {
                    let t = other.type_name();
                    self.fail(
                        field,
                        format!("must be a string, number or boolean, got {t}"),
                    );
                    continue;
                }
            };
            out.insert(key.to_string(), Value::String(text));
        }
        Value::Object(out).to_string()
    }

    fn flat(&mut self, obj: &Obj<'_>, raw: &str, now_ms: i64) -> EventRecord {
        let event_id = self.event_id(obj, raw);
        let ts_ms = self.timestamp(obj, now_ms).unwrap_or_default();
        let (source_module, severity) = (self.string(obj, "", "source_module"), self.severity(obj));
        let environment = self.string(obj, "", "environment");
        let app = self.string(obj, "", "app");
        let model = self.string(obj, "", "model");
        let provider = self.string(obj, "", "provider");
        let operation = self.string(obj, "", "operation");
        let usage = self.usage(obj, "");
        let cost_usd = self.amount(obj, "", &["cost_usd"], MAX_COST_USD, "USD");
        EventRecord {
            event_id,
            ts_ms,
            event_type: "llm_call".into(),
            kind: "llm_call".into(),
            source_module,
            severity,
            environment,
            app,
            model,
            provider,
            operation,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            details: usage.details,
            service_tier: self.string(obj, "", "service_tier"),
            latency_ms: self.amount(obj, "", &["latency_ms"], MAX_DURATION_MS, "ms"),
            ttft_ms: self.amount(obj, "", &["ttft_ms"], MAX_DURATION_MS, "ms"),
            status: Some(self.status(obj, "").unwrap_or(Status::Ok)),
            error_type: self.string(obj, "", "error_type"),
            cost_usd,
            reported_cost_usd: cost_usd,
            estimated_cost_usd: None,
            user_id: self.string(obj, "", "user_id"),
            session_id: self.string(obj, "", "session_id"),
            trace_id: self.string(obj, "", "trace_id"),
            correlation_id: self.string(obj, "", "correlation_id"),
            parent_event_id: self.string(obj, "", "parent_event_id"),
            tags_json: self.tags(obj),
            payload_json: raw.to_string(),
            enriched_by: Vec::new(),
        }
    }

    fn envelope(&mut self, obj: &Obj<'_>, raw: &str, now_ms: i64) -> EventRecord {
        let event_id = self.event_id(obj, raw);
        let ts_ms = self.timestamp(obj, now_ms).unwrap_or_default();
        let source_module = self.required_string(obj, "", "source_module");
        let event_type = self
            .required_string(obj, "", "event_type")
            .unwrap_or_default();
        let severity = self.severity(obj);
        let environment = self.string(obj, "", "environment");
        let correlation_id = self.string(obj, "", "correlation_id");
        let parent_event_id = self.string(obj, "", "parent_event_id");
        let tags_json = self.tags(obj);
        self.string(obj, "", "schema_version");

        let (payload_type, data) = match obj.get("payload") {
            Some(Field::Object(payload)) => {
                let payload_type = self
                    .required_string(&payload, "payload", "payload_type")
                    .unwrap_or_default();
                let data = match payload.get("data") {
                    Some(Field::Object(data)) => data,
                    None | Some(Field::Null) => {
                        self.fail("payload.data", "is required (an object)");
                        Obj::default()
                    }
                    Some(other) => {
                        let t = other.type_name();
                        self.fail("payload.data", format!("must be an object, got {t}"));
                        Obj::default()
                    }
                };
                (payload_type, data)
            }
            other => {
                let t = other.as_ref().map(Field::type_name).unwrap_or("nothing");
                self.fail(
                    "payload",
                    format!("must be an object with payload_type and data, got {t}"),
                );
                (String::new(), Obj::default())
            }
        };
        let data = &data;
        let p = "payload.data";
        let family = if payload_type.is_empty() {
            None
        } else {
            self.string(data, p, &format!("{payload_type}_type"))
        };
        let kind = match &family {
            Some(f) => format!("{payload_type}.{f}"),
            None => payload_type.clone(),
        };
        // A cost event repeats the token usage of the call it prices; counting its tokens too would
        // double the call's tokens in the rollups, so only its cost is taken.
        let is_cost = payload_type == "cost";
        let usage = if is_cost {
            super::usage::Usage::default()
        } else {
            self.usage(data, p)
        };
        let cost_usd = if is_cost {
            self.amount(
                data,
                p,
                &["total_cost_usd", "cost_usd"],
                MAX_COST_USD,
                "USD",
            )
        } else {
            None
        };
        let latency_ms = self.amount(
            data,
            p,
            &["total_latency_ms", "latency_ms"],
            MAX_DURATION_MS,
            "ms",
        );
        let status = self.status(data, p);
        let mut record = EventRecord {
            event_id,
            ts_ms,
            event_type,
            status: None,
            kind,
            source_module,
            severity,
            environment,
            app: self.string_any(data, p, &["app", "application"]),
            model: self.string_any(data, p, &["model_id", "model"]),
            provider: self.string(data, p, "provider"),
            operation: self.string(data, p, "operation"),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            details: usage.details,
            service_tier: self.string(data, p, "service_tier"),
            latency_ms,
            ttft_ms: self.amount(data, p, &["ttft_ms"], MAX_DURATION_MS, "ms"),
            error_type: self.string(data, p, "error_type"),
            cost_usd,
            reported_cost_usd: cost_usd,
            estimated_cost_usd: None,
            user_id: self.string(data, p, "user_id"),
            session_id: self.string(data, p, "session_id"),
            trace_id: self.string_any(data, p, &["trace_id", "request_id"]),
            correlation_id,
            parent_event_id,
            tags_json,
            payload_json: raw.to_string(),
            enriched_by: Vec::new(),
        };
        record.status = status.or(record.is_request().then_some(Status::Ok));
        record
    }
}

pub(super) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
