//! Turning request bodies into events: splitting a batch, then validating each event on its own so
//! that a bad event is reported by index and field while its neighbours are still accepted.
//!
//! Two shapes are accepted as they are (see `shared/examples/`): the flat per-call form that
//! applications send, and the LLM DevOps envelope (`source_module`, `event_type`, nested `payload`
//! with `payload_type` and a typed `data`). Both map onto [`EventRecord`].

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::event::{EventRecord, Severity, Status};
use crate::time::{HOUR_MS, parse_rfc3339, to_rfc3339};

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

/// One element of a batch before validation: its raw text, or why it could not even be cut out.
enum Item<'a> {
    Raw(&'a str),
    Broken(FieldError),
}

fn malformed(err: &serde_json::Error) -> BodyError {
    BodyError::Malformed {
        line: err.line(),
        column: err.column(),
        message: strip_position(err),
    }
}

/// serde_json appends " at line L column C" to its messages; we report those separately.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    }
}

fn split_json(body: &[u8]) -> Result<Vec<Item<'_>>, BodyError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let (line, column) = line_col(body, e.valid_up_to());
        BodyError::Malformed {
            line,
            column,
            message: "the body is not valid UTF-8".into(),
        }
    })?;
    let first = text.trim_start().as_bytes().first().copied();
    match first {
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(raws) => Ok(raws.into_iter().map(|r| Item::Raw(r.get())).collect()),
            // A broken element must not take its neighbours down: cut the array by hand and let
            // each element succeed or fail alone.
            Err(_) => Ok(split_array_tolerant(text)),
        },
        Some(b'{') => {
            #[derive(Deserialize)]
            struct Wrapper<'a> {
                #[serde(borrow)]
                events: Option<Vec<&'a RawValue>>,
            }
            match serde_json::from_str::<Wrapper>(text) {
                Ok(Wrapper { events: Some(raws) }) => {
                    Ok(raws.into_iter().map(|r| Item::Raw(r.get())).collect())
                }
                // Not a wrapper: a single event object.
                Ok(Wrapper { events: None }) => Ok(vec![Item::Raw(text.trim())]),
                Err(err) => Err(malformed(&err)),
            }
        }
        None => Err(BodyError::Empty),
        Some(_) => match serde_json::from_str::<Value>(text) {
            Err(err) => Err(malformed(&err)),
            Ok(_) => Err(BodyError::NotABatch),
        },
    }
}

/// Cuts a top-level JSON array into element texts by tracking nesting and strings, without
/// parsing. Elements that are malformed are reported with their line and column in the body.
fn split_array_tolerant(text: &str) -> Vec<Item<'_>> {
    let bytes = text.as_bytes();
    let open = text.find('[').unwrap_or(0);
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut start = open + 1;
    let mut closed = false;
    for (i, &b) in bytes.iter().enumerate().skip(open + 1) {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' if depth > 0 => depth -= 1,
            b']' => {
                push_piece(&mut items, text, start, i, true);
                closed = true;
                break;
            }
            b',' if depth == 0 => {
                push_piece(&mut items, text, start, i, false);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !closed {
        push_piece(&mut items, text, start, text.len(), true);
    }
    items
}

/// Adds the element `text[from..to]`; a blank one is an error unless it is the slot after the last
/// comma-less element (`[]` or a trailing `]`).
fn push_piece<'a>(items: &mut Vec<Item<'a>>, text: &'a str, from: usize, to: usize, last: bool) {
    if text[from..to].trim().is_empty() {
        if !last {
            let (line, column) = line_col(text.as_bytes(), to);
            items.push(Item::Broken(FieldError {
                field: String::new(),
                message: format!(
                    "malformed JSON at line {line}, column {column}: empty array element"
                ),
            }));
        }
        return;
    }
    items.push(check_element(text, from, to));
}

/// Parses one cut-out element only to find whether, and where, it is malformed.
fn check_element(text: &str, from: usize, to: usize) -> Item<'_> {
    let piece = &text[from..to];
    match serde_json::from_str::<&RawValue>(piece) {
        Ok(raw) => Item::Raw(raw.get()),
        Err(err) => {
            // Position of the error inside the piece, translated to the body.
            let offset_in_piece = offset_of(piece, err.line(), err.column());
            let (line, column) = line_col(text.as_bytes(), from + offset_in_piece);
            Item::Broken(FieldError {
                field: field_before(piece, offset_in_piece),
                message: format!(
                    "malformed JSON at line {line}, column {column}: {}",
                    strip_position(&err)
                ),
            })
        }
    }
}

/// Best effort: the key whose value holds the syntax error (`"latency_ms": NaN` → `latency_ms`).
fn field_before(piece: &str, offset: usize) -> String {
    let head = &piece[..offset.min(piece.len())];
    let Some(colon) = head.rfind(':') else {
        return String::new();
    };
    let key_part = head[..colon].trim_end();
    if !key_part.ends_with('"') {
        return String::new();
    }
    let inner = &key_part[..key_part.len() - 1];
    match inner.rfind('"') {
        Some(q) => inner[q + 1..].to_string(),
        None => String::new(),
    }
}

fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return (offset + column.saturating_sub(1)).min(text.len());
        }
        offset += l.len();
    }
    text.len()
}

fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let head = &bytes[..offset.min(bytes.len())];
    let line = head.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = head.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

fn split_ndjson(body: &[u8]) -> Vec<Item<'_>> {
    let mut items = Vec::new();
    for (line_no, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let item = match std::str::from_utf8(line) {
            Err(_) => Item::Broken(FieldError {
                field: String::new(),
                message: format!("line {}: not valid UTF-8", line_no + 1),
            }),
            Ok(text) => match serde_json::from_str::<&RawValue>(text) {
                Ok(raw) => Item::Raw(raw.get()),
                Err(err) => Item::Broken(FieldError {
                    field: field_before(text, offset_of(text, 1, err.column())),
                    message: format!(
                        "malformed JSON at line {}, column {}: {}",
                        line_no + 1,
                        err.column(),
                        strip_position(&err)
                    ),
                }),
            },
        };
        items.push(item);
    }
    items
}

/// Validates one event, collecting every problem rather than stopping at the first.
pub fn parse_event(
    raw: &str,
    limits: &IngestLimits,
    now_ms: i64,
) -> Result<EventRecord, Vec<FieldError>> {
    let value: Value = serde_json::from_str(raw).map_err(|e| {
        vec![FieldError {
            field: String::new(),
            message: format!("malformed JSON: {e}"),
        }]
    })?;
    let Value::Object(obj) = value else {
        return Err(vec![FieldError {
            field: String::new(),
            message: format!("an event must be a JSON object, not {}", type_name(&value)),
        }]);
    };
    let mut v = Validator {
        limits,
        errors: Vec::new(),
    };
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
        Err(v.errors)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A content-derived id for events that carry none, so that resending the same bytes is idempotent.
fn derived_id(raw: &str) -> String {
    let digest = Sha256::digest(raw.as_bytes());
    format!("h-{}", hex::encode(&digest[..16]))
}

struct Validator<'l> {
    limits: &'l IngestLimits,
    errors: Vec<FieldError>,
}

/// Largest token count we believe: ten billion (anything above is a client bug).
const MAX_TOKENS: i64 = 10_000_000_000;

impl Validator<'_> {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn path(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    }

    /// A string field; absent, null and "" are `None`.
    fn string(&mut self, obj: &Map<String, Value>, prefix: &str, key: &str) -> Option<String> {
        match obj.get(key)? {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) if s.len() > self.limits.max_string_bytes => {
                self.fail(
                    Self::path(prefix, key),
                    format!(
                        "is {} bytes long; at most {} bytes allowed",
                        s.len(),
                        self.limits.max_string_bytes
                    ),
                );
                None
            }
            Value::String(s) => Some(s.clone()),
            other => {
                let t = type_name(other);
                self.fail(
                    Self::path(prefix, key),
                    format!("must be a string, got {t}"),
                );
                None
            }
        }
    }

    /// The first of several synonymous keys that is present.
    fn string_any(
        &mut self,
        obj: &Map<String, Value>,
        prefix: &str,
        keys: &[&str],
    ) -> Option<String> {
        keys.iter()
            .find(|k| obj.get(**k).is_some_and(|v| !v.is_null()))
            .and_then(|k| self.string(obj, prefix, k))
    }

    fn required_string(
        &mut self,
        obj: &Map<String, Value>,
        prefix: &str,
        key: &str,
    ) -> Option<String> {
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

    fn tokens(&mut self, obj: &Map<String, Value>, prefix: &str, keys: &[&str]) -> Option<i64> {
        let key = keys
            .iter()
            .find(|k| obj.get(**k).is_some_and(|v| !v.is_null()))?;
        let field = Self::path(prefix, key);
        match &obj[*key] {
            Value::Number(n) => match n.as_i64() {
                Some(t) if t < 0 => {
                    self.fail(field, format!("must not be negative, got {t}"));
                    None
                }
                Some(t) if t > MAX_TOKENS => {
                    self.fail(
                        field,
                        format!("{t} is implausibly large (at most {MAX_TOKENS})"),
                    );
                    None
                }
                Some(t) => Some(t),
                None if n.as_u64().is_some() => {
                    self.fail(
                        field,
                        format!("{n} is implausibly large (at most {MAX_TOKENS})"),
                    );
                    None
                }
                None => {
                    self.fail(field, format!("must be a whole number of tokens, got {n}"));
                    None
                }
            },
            other => {
                let t = type_name(other);
                self.fail(field, format!("must be a whole number, got {t}"));
                None
            }
        }
    }

    /// A non-negative finite number (latency, cost).
    fn amount(&mut self, obj: &Map<String, Value>, prefix: &str, keys: &[&str]) -> Option<f64> {
        let key = keys
            .iter()
            .find(|k| obj.get(**k).is_some_and(|v| !v.is_null()))?;
        let field = Self::path(prefix, key);
        match &obj[*key] {
            Value::Number(n) => match n.as_f64() {
                Some(x) if !x.is_finite() => {
                    self.fail(field, "must be a finite number");
                    None
                }
                Some(x) if x < 0.0 => {
                    self.fail(field, format!("must not be negative, got {x}"));
                    None
                }
                Some(x) => Some(x),
                None => {
                    self.fail(field, "must be a finite number");
                    None
                }
            },
            Value::String(s)
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
                let t = type_name(other);
                self.fail(field, format!("must be a number, got {t}"));
                None
            }
        }
    }

    fn timestamp(&mut self, obj: &Map<String, Value>, now_ms: i64) -> Option<i64> {
        let ts = match obj.get("timestamp") {
            None | Some(Value::Null) => {
                self.fail(
                    "timestamp",
                    "is required (RFC 3339, e.g. 2026-11-25T10:30:00Z, or epoch milliseconds)",
                );
                return None;
            }
            Some(Value::String(s)) => match parse_rfc3339(s) {
                Some(ts) => ts,
                None => {
                    self.fail(
                        "timestamp",
                        format!(
                            "'{}' is not an RFC 3339 time such as 2026-11-25T10:30:00Z",
                            truncate(s, 64)
                        ),
                    );
                    return None;
                }
            },
            Some(Value::Number(n)) => match n.as_i64() {
                Some(ms) => ms,
                None => {
                    self.fail("timestamp", format!("{n} is not whole epoch milliseconds"));
                    return None;
                }
            },
            Some(other) => {
                let t = type_name(other);
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

    fn event_id(&mut self, obj: &Map<String, Value>, raw: &str) -> String {
        match obj.get("event_id") {
            None | Some(Value::Null) => derived_id(raw),
            Some(Value::String(s)) if s.is_empty() => {
                self.fail(
                    "event_id",
                    "must not be empty (omit it to let the hub derive one)",
                );
                String::new()
            }
            Some(Value::String(s)) if s.len() > 256 => {
                self.fail(
                    "event_id",
                    format!("is {} bytes long; at most 256 bytes allowed", s.len()),
                );
                String::new()
            }
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                let t = type_name(other);
                self.fail("event_id", format!("must be a string, got {t}"));
                String::new()
            }
        }
    }

    fn status(&mut self, obj: &Map<String, Value>, prefix: &str) -> Option<Status> {
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

    fn severity(&mut self, obj: &Map<String, Value>) -> Option<Severity> {
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

    fn tags(&mut self, obj: &Map<String, Value>) -> String {
        let tags = match obj.get("tags") {
            None | Some(Value::Null) => return "{}".into(),
            Some(Value::Object(tags)) => tags,
            Some(other) => {
                let t = type_name(other);
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
        for (key, value) in tags {
            let field = format!("tags.{}", truncate(key, 64));
            if key.len() > 256 {
                self.fail(
                    field,
                    format!("tag name is {} bytes long; at most 256 allowed", key.len()),
                );
                continue;
            }
            let text = match value {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => {
                    let t = type_name(other);
                    self.fail(
                        field,
                        format!("must be a string, number or boolean, got {t}"),
                    );
                    continue;
                }
            };
            if text.len() > self.limits.max_string_bytes {
                self.fail(
                    field,
                    format!(
                        "is {} bytes long; at most {} allowed",
                        text.len(),
                        self.limits.max_string_bytes
                    ),
                );
                continue;
            }
            out.insert(key.clone(), Value::String(text));
        }
        Value::Object(out).to_string()
    }

    fn flat(&mut self, obj: &Map<String, Value>, raw: &str, now_ms: i64) -> EventRecord {
        EventRecord {
            event_id: self.event_id(obj, raw),
            ts_ms: self.timestamp(obj, now_ms).unwrap_or_default(),
            event_type: "llm_call".into(),
            kind: "llm_call".into(),
            source_module: self.string(obj, "", "source_module"),
            severity: self.severity(obj),
            environment: self.string(obj, "", "environment"),
            app: self.string(obj, "", "app"),
            model: self.string(obj, "", "model"),
            provider: self.string(obj, "", "provider"),
            operation: self.string(obj, "", "operation"),
            input_tokens: self.tokens(obj, "", &["input_tokens", "prompt_tokens"]),
            output_tokens: self.tokens(obj, "", &["output_tokens", "completion_tokens"]),
            latency_ms: self.amount(obj, "", &["latency_ms"]),
            ttft_ms: self.amount(obj, "", &["ttft_ms"]),
            status: Some(self.status(obj, "").unwrap_or(Status::Ok)),
            error_type: self.string(obj, "", "error_type"),
            cost_usd: self.amount(obj, "", &["cost_usd"]),
            user_id: self.string(obj, "", "user_id"),
            session_id: self.string(obj, "", "session_id"),
            trace_id: self.string(obj, "", "trace_id"),
            correlation_id: self.string(obj, "", "correlation_id"),
            parent_event_id: self.string(obj, "", "parent_event_id"),
            tags_json: self.tags(obj),
            payload_json: raw.to_string(),
        }
    }

    fn envelope(&mut self, obj: &Map<String, Value>, raw: &str, now_ms: i64) -> EventRecord {
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

        let empty = Map::new();
        let (payload_type, data) = match obj.get("payload") {
            Some(Value::Object(payload)) => {
                let payload_type = self
                    .required_string(payload, "payload", "payload_type")
                    .unwrap_or_default();
                let data = match payload.get("data") {
                    Some(Value::Object(data)) => data,
                    None | Some(Value::Null) => {
                        self.fail("payload.data", "is required (an object)");
                        &empty
                    }
                    Some(other) => {
                        let t = type_name(other);
                        self.fail("payload.data", format!("must be an object, got {t}"));
                        &empty
                    }
                };
                (payload_type, data)
            }
            other => {
                let t = other.map(type_name).unwrap_or("nothing");
                self.fail(
                    "payload",
                    format!("must be an object with payload_type and data, got {t}"),
                );
                (String::new(), &empty)
            }
        };
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
        let (input_tokens, output_tokens) = if is_cost {
            (None, None)
        } else {
            (
                self.tokens(data, p, &["prompt_tokens", "input_tokens"]),
                self.tokens(data, p, &["completion_tokens", "output_tokens"]),
            )
        };
        let latency_ms = self.amount(data, p, &["total_latency_ms", "latency_ms"]);
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
            input_tokens,
            output_tokens,
            latency_ms,
            ttft_ms: self.amount(data, p, &["ttft_ms"]),
            error_type: self.string(data, p, "error_type"),
            cost_usd: if is_cost {
                self.amount(data, p, &["total_cost_usd", "cost_usd"])
            } else {
                None
            },
            user_id: self.string(data, p, "user_id"),
            session_id: self.string(data, p, "session_id"),
            trace_id: self.string_any(data, p, &["trace_id", "request_id"]),
            correlation_id,
            parent_event_id,
            tags_json,
            payload_json: raw.to_string(),
        };
        record.status = status.or(record.is_request().then_some(Status::Ok));
        record
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
