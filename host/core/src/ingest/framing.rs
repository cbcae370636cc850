//! Framing: cutting a request body into the raw text of each event, so that every event is
//! validated on its own. A syntax error inside one element of a JSON array, or on one NDJSON line,
//! becomes that event's rejection with its line and column.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{BodyError, FieldError};

/// One element of a batch before validation: its raw text, or why it could not even be cut out.
pub(super) enum Item<'a> {
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

pub(super) fn split_json(body: &[u8]) -> Result<Vec<Item<'_>>, BodyError> {
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

pub(super) fn split_ndjson(body: &[u8]) -> Vec<Item<'_>> {
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
