//! Framing: cutting a request body into the bytes of each event, so that every event is validated
//! on its own. The cutting works on bytes (only strings may hold bytes above ASCII, and no such
//! byte is structural), so invalid UTF-8 or a syntax error inside one element of a JSON array, or on
//! one NDJSON line, becomes that event's rejection with its line and column.
//!
//! The framing is honest about what it cannot read: data after the body's JSON value, or an array
//! element damaged so that its end cannot be known (an unterminated string), refuses the whole
//! body with the offset, rather than guessing and losing the elements that the damage hides.

use std::cell::OnceCell;

use serde::de::IgnoredAny;

use super::BodyError;
use super::shape::{Shape, Stop, is_ws, scan, string_end};

/// One element of a batch before validation.
#[derive(Debug)]
pub(super) enum Item {
    /// The element's bytes are `body[start..end]`, surrounding whitespace left out.
    Piece {
        start: usize,
        end: usize,
        shape: Shape,
    },
    /// Nothing between two commas of an array; `at` is the second comma.
    Empty { at: usize },
}

/// A body cut into elements.
#[derive(Debug, Default)]
pub(super) struct Framed {
    pub items: Vec<Item>,
    /// Set (to the body's length) when the array never closed.
    pub unclosed: Option<usize>,
    /// Whether the items were cut from a JSON array, whose malformed elements must be checked
    /// for damage that hides where they end ([`super::shape::structural_fault`]).
    pub from_array: bool,
}

/// Line and column (both 1-based, columns in bytes) of offsets into one body. The line starts
/// are found once, on the first question, so that reporting many errors stays linear.
pub(super) struct Lines<'a> {
    body: &'a [u8],
    starts: OnceCell<Vec<usize>>,
}

impl<'a> Lines<'a> {
    pub(super) fn new(body: &'a [u8]) -> Self {
        Self {
            body,
            starts: OnceCell::new(),
        }
    }

    pub(super) fn at(&self, offset: usize) -> (usize, usize) {
        let starts = self.starts.get_or_init(|| {
            std::iter::once(0)
                .chain(
                    self.body
                        .iter()
                        .enumerate()
                        .filter(|&(_, &b)| b == b'\n')
                        .map(|(i, _)| i + 1),
                )
                .collect()
        });
        let offset = offset.min(self.body.len());
        let line = starts.partition_point(|&s| s <= offset);
        (line, offset - starts[line - 1] + 1)
    }

    pub(super) fn malformed(&self, offset: usize, message: impl Into<String>) -> BodyError {
        let (line, column) = self.at(offset);
        BodyError::Malformed {
            offset,
            line,
            column,
            message: message.into(),
        }
    }
}

/// serde_json appends " at line L column C" to its messages; we report those separately.
pub(super) fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    }
}

/// The byte offset in `bytes` of serde_json's line and column.
pub(super) fn offset_of(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        if i + 1 == line {
            return (offset + column.saturating_sub(1)).min(bytes.len());
        }
        offset += l.len();
    }
    bytes.len()
}

/// Best effort: the key whose value holds the error at `offset` (`"latency_ms": NaN` →
/// `latency_ms`).
pub(super) fn field_before(bytes: &[u8], offset: usize) -> String {
    let head = &bytes[..offset.min(bytes.len())];
    let Some(colon) = head.iter().rposition(|&b| b == b':') else {
        return String::new();
    };
    let key_part = head[..colon].trim_ascii_end();
    let Some(inner) = key_part.strip_suffix(b"\"") else {
        return String::new();
    };
    match inner.iter().rposition(|&b| b == b'"') {
        Some(q) => String::from_utf8_lossy(&inner[q + 1..]).into_owned(),
        None => String::new(),
    }
}

fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while body.get(i).copied().is_some_and(is_ws) {
        i += 1;
    }
    i
}

/// Refuses anything but whitespace after the body's value, which ended before `end`.
fn no_trailing_data(body: &[u8], end: usize, lines: &Lines) -> Result<(), BodyError> {
    let offset = skip_ws(body, end);
    if offset == body.len() {
        return Ok(());
    }
    let (line, column) = lines.at(offset);
    Err(BodyError::TrailingData {
        offset,
        line,
        column,
    })
}

pub(super) fn split_json(body: &[u8]) -> Result<Framed, BodyError> {
    let lines = Lines::new(body);
    let first = skip_ws(body, 0);
    match body.get(first) {
        None => Err(BodyError::Empty),
        Some(b'[') => {
            let (framed, end) = split_array(body, first);
            if let Some(end) = end {
                no_trailing_data(body, end, &lines)?;
            }
            Ok(framed)
        }
        Some(b'{') => split_object(body, first, &lines),
        Some(_) => match serde_json::from_slice::<IgnoredAny>(body) {
            Err(err) => {
                let offset = offset_of(body, err.line(), err.column());
                Err(lines.malformed(offset, strip_position(&err)))
            }
            Ok(_) => Err(BodyError::NotABatch),
        },
    }
}

/// Cuts the array opening at `open` into elements. Returns them with the index after the closing
/// `]`, or `None` for that when the body ends first.
fn split_array(body: &[u8], open: usize) -> (Framed, Option<usize>) {
    let mut framed = Framed {
        from_array: true,
        ..Default::default()
    };
    let mut i = open + 1;
    loop {
        let (stop_at, shape, stop) = scan(body, i, true);
        let start = skip_ws(body, i);
        let mut end = stop_at;
        while end > start && is_ws(body[end - 1]) {
            end -= 1;
        }
        if start < end {
            framed.items.push(Item::Piece { start, end, shape });
        } else if stop == Stop::Comma || (stop == Stop::Close && i > open + 1) {
            // `[a,,b]`, `[,a]` and `[a,]`: a missing element is an element that cannot be read.
            framed.items.push(Item::Empty { at: stop_at });
        }
        match stop {
            Stop::Comma => i = stop_at + 1,
            Stop::Close => return (framed, Some(stop_at + 1)),
            Stop::End => {
                framed.unclosed = Some(body.len());
                return (framed, None);
            }
        }
    }
}

/// A top-level object: `{"events": [...]}` (other members are allowed and ignored) or one event.
fn split_object(body: &[u8], open: usize, lines: &Lines) -> Result<Framed, BodyError> {
    let mut events: Option<Framed> = None;
    let mut others = Vec::new();
    let mut i = skip_ws(body, open + 1);
    if body.get(i) != Some(&b'}') {
        loop {
            if body.get(i) != Some(&b'"') {
                return Err(lines.malformed(i, "expected a key (a string)"));
            }
            let key_end = string_end(body, i + 1);
            if key_end >= body.len() {
                return Err(lines.malformed(i, "unterminated string"));
            }
            let key = &body[i..=key_end];
            let key_at = i;
            i = skip_ws(body, key_end + 1);
            if body.get(i) != Some(&b':') {
                return Err(lines.malformed(i, "expected `:`"));
            }
            i = skip_ws(body, i + 1);
            let value_at = i;
            let is_events = key == b"\"events\""
                || (key.contains(&b'\\')
                    && serde_json::from_slice::<String>(key).is_ok_and(|k| k == "events"));
            if is_events && body.get(i) == Some(&b'[') {
                if events.is_some() {
                    return Err(lines.malformed(key_at, "duplicate key `events`"));
                }
                let (framed, end) = split_array(body, i);
                let Some(end) = end else {
                    // Its elements are looked at first: one of them may be why it never closed.
                    return Ok(framed);
                };
                events = Some(framed);
                i = end;
            } else {
                i = skip_value(body, i).map_err(|(at, what)| lines.malformed(at, what))?;
                if is_events && &body[value_at..i] != b"null" {
                    return Err(BodyError::NotABatch);
                }
                others.push(value_at..i);
            }
            i = skip_ws(body, i);
            match body.get(i) {
                Some(b',') => i = skip_ws(body, i + 1),
                Some(b'}') => break,
                _ => return Err(lines.malformed(i, "expected `,` or `}`")),
            }
        }
    }
    let end = i + 1;
    no_trailing_data(body, end, lines)?;
    match events {
        Some(framed) => {
            // The wrapper's other members are not stored, but must still be JSON.
            for range in others {
                if let Err(err) = serde_json::from_slice::<IgnoredAny>(&body[range.clone()]) {
                    let at = range.start + offset_of(&body[range], err.line(), err.column());
                    return Err(lines.malformed(at, strip_position(&err)));
                }
            }
            Ok(framed)
        }
        None => {
            let (_, shape, _) = scan(&body[open..end], 0, false);
            Ok(Framed {
                items: vec![Item::Piece {
                    start: open,
                    end,
                    shape,
                }],
                ..Default::default()
            })
        }
    }
}

/// Skips the value starting at `i`: returns the index after it, or where and why it cannot be
/// skipped. Containers and strings are delimited as [`scan`] does; a scalar is any run of bytes up
/// to the next delimiter, to be judged when the value is parsed.
fn skip_value(body: &[u8], i: usize) -> Result<usize, (usize, &'static str)> {
    match body.get(i) {
        None => Err((i, "expected a value")),
        Some(b'"') => {
            let end = string_end(body, i + 1);
            if end >= body.len() {
                Err((i, "unterminated string"))
            } else {
                Ok(end + 1)
            }
        }
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while let Some(&b) = body.get(j) {
                match b {
                    b'"' => j = string_end(body, j + 1),
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err((body.len(), "the body ends before this value is closed"))
        }
        Some(_) => {
            let mut j = i;
            while body
                .get(j)
                .is_some_and(|&c| !is_ws(c) && !b"\",:[]{}".contains(&c))
            {
                j += 1;
            }
            if j == i {
                Err((i, "expected a value"))
            } else {
                Ok(j)
            }
        }
    }
}

pub(super) fn split_ndjson(body: &[u8]) -> Framed {
    let mut items = Vec::new();
    let mut line_start = 0;
    for line in body.split_inclusive(|&b| b == b'\n') {
        let start = line_start;
        line_start += line.len();
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        let start = start + (line.len() - line.trim_ascii_start().len());
        let end = start + trimmed.len();
        let (_, shape, _) = scan(trimmed, 0, false);
        items.push(Item::Piece { start, end, shape });
    }
    Framed {
        items,
        ..Default::default()
    }
}
