//! How deep an event nests and how long its longest string is, found by one byte scan (the same
//! scan that cuts a JSON array into elements), so that the limits on both cost ordinary events
//! nothing. Only an event over a limit is walked again, to name the fields that are.

use super::FieldError;

/// What one scan of a JSON text found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    /// The deepest nesting of objects and arrays; the event object itself is level 1.
    pub depth: usize,
    /// Bytes of the longest string, key or value, as written. Escapes count as written, which is
    /// never less than decoded, so a text whose strings are all short enough here is within the limit.
    pub longest_string: usize,
}

/// Why [`scan`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// At a `,` outside every string and container.
    Comma,
    /// At a `]` outside every string and container.
    Close,
    /// At the end of the text.
    End,
}

/// JSON's insignificant whitespace.
pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Scans `bytes` from `i`. With `split`, stops at the first `,` or `]` outside every string and
/// container (where an array element ends); otherwise scans to the end. Returns where it stopped.
///
/// Strings are tracked (a `"` not escaped by `\` opens or closes one) and so are brackets, by
/// count, not kind: for well-formed JSON that finds the end of every element exactly, and a
/// malformed element is looked at more closely by [`structural_fault`].
#[inline]
pub(super) fn scan(bytes: &[u8], mut i: usize, split: bool) -> (usize, Shape, Stop) {
    let mut shape = Shape::default();
    let mut depth = 0usize;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                let start = i + 1;
                i = string_end(bytes, start);
                shape.longest_string = shape.longest_string.max(i - start);
            }
            b'{' | b'[' => {
                depth += 1;
                shape.depth = shape.depth.max(depth);
            }
            b'}' | b']' if depth > 0 => depth -= 1,
            b']' if split => return (i, shape, Stop::Close),
            b',' if split && depth == 0 => return (i, shape, Stop::Comma),
            _ => {}
        }
        i += 1;
    }
    (bytes.len(), shape, Stop::End)
}

/// The index of the `"` closing the string whose first content byte is at `i`, or the length of
/// `bytes` when the string is not closed.
#[inline]
pub(super) fn string_end(bytes: &[u8], mut i: usize) -> usize {
    loop {
        i += special_offset(bytes.get(i..).unwrap_or_default());
        match bytes.get(i) {
            Some(b'"') => return i,
            Some(_) => i += 2,
            None => return bytes.len(),
        }
    }
}

/// The offset of the first `"` or `\` in `bytes`, or its length. Eight bytes at a time: most of
/// an event's bytes are inside strings.
#[inline]
fn special_offset(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let hits =
            has_zero(word ^ (ONES * u64::from(b'"'))) | has_zero(word ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            // The lowest flagged byte is always a true match (only bytes above one can be false).
            return offset + (hits.trailing_zeros() / 8) as usize;
        }
        offset += 8;
    }
    offset
        + chunks
            .remainder()
            .iter()
            .position(|&b| b == b'"' || b == b'\\')
            .unwrap_or(chunks.remainder().len())
}

/// Whether the malformed element `bytes` is damaged in a way that may hide where it ends, and so
/// where the next element of the array starts. Returns the offset and a description of the first
/// such damage, or `None` when the element is one complete value whose only faults are inside
/// single tokens: a bad number or literal where a value belongs (`NaN`, `1.2.3`, `tru`), a bad
/// escape, a control character or invalid UTF-8 inside a string. Those leave every string and
/// bracket where the scan saw it, so the element's end is certain.
///
/// Anything else (an unterminated string, a missing or extra bracket, comma or colon, a word
/// where a key belongs) is treated as hiding the end: a string closed too early or too late turns
/// the rest of the body inside out, and the scan cannot tell that from a mere typo.
pub(super) fn structural_fault(bytes: &[u8]) -> Option<(usize, &'static str)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Want {
        Value,
        ValueOrClose,
        KeyOrClose,
        Key,
        Colon,
        CommaOrClose,
        Nothing,
    }
    let mut stack: Vec<u8> = Vec::new();
    let mut want = Want::Value;
    let mut i = 0;
    let after_value = |stack: &Vec<u8>| {
        if stack.is_empty() {
            Want::Nothing
        } else {
            Want::CommaOrClose
        }
    };
    let expected = |want: Want, stack: &Vec<u8>| match want {
        Want::Value | Want::ValueOrClose => "expected a value",
        Want::KeyOrClose | Want::Key => "expected a key (a string)",
        Want::Colon => "expected `:`",
        Want::CommaOrClose if stack.last() == Some(&b'{') => "expected `,` or `}`",
        Want::CommaOrClose => "expected `,` or `]`",
        Want::Nothing => "unexpected data after the element's value",
    };
    while let Some(&b) = bytes.get(i) {
        if is_ws(b) {
            i += 1;
            continue;
        }
        let at = i;
        match b {
            b'"' => {
                let end = string_end(bytes, i + 1);
                if end >= bytes.len() {
                    return Some((at, "unterminated string"));
                }
                i = end + 1;
                want = match want {
                    Want::Value | Want::ValueOrClose => after_value(&stack),
                    Want::KeyOrClose | Want::Key => Want::Colon,
                    _ => return Some((at, expected(want, &stack))),
                };
                continue;
            }
            b'{' | b'[' if matches!(want, Want::Value | Want::ValueOrClose) => {
                stack.push(b);
                want = if b == b'{' {
                    Want::KeyOrClose
                } else {
                    Want::ValueOrClose
                };
            }
            b'}' | b']'
                if matches!(
                    (want, b),
                    (Want::KeyOrClose, b'}') | (Want::ValueOrClose, b']')
                ) || (want == Want::CommaOrClose
                    && stack.last() == Some(&if b == b'}' { b'{' } else { b'[' })) =>
            {
                stack.pop();
                want = after_value(&stack);
            }
            b',' if want == Want::CommaOrClose => {
                want = if stack.last() == Some(&b'{') {
                    Want::Key
                } else {
                    Want::Value
                };
            }
            b':' if want == Want::Colon => want = Want::Value,
            b'{' | b'[' | b'}' | b']' | b',' | b':' => return Some((at, expected(want, &stack))),
            _ => {
                // A number, literal or stray word: a value's token, well-formed or not.
                while bytes
                    .get(i)
                    .is_some_and(|&c| !is_ws(c) && !b"\",:[]{}".contains(&c))
                {
                    i += 1;
                }
                if !matches!(want, Want::Value | Want::ValueOrClose) {
                    return Some((at, expected(want, &stack)));
                }
                want = after_value(&stack);
                continue;
            }
        }
        i += 1;
    }
    if want == Want::Nothing {
        None
    } else {
        Some((bytes.len(), "the element ends before its value is complete"))
    }
}

/// One open container while [`violations`] walks an event: an object with the raw key of the member
/// being read (`None` while a key is expected), or an array with the index of the element being read.
enum Frame<'a> {
    Object(Option<&'a str>),
    Array(usize),
}

/// The fields of a well-formed event `text` that break the nesting or string limits, each named by
/// its JSON path (`payload.data.notes`, `extra.list[3]`); at most 16 of them.
pub(super) fn violations(text: &str, max_depth: usize, max_string: usize) -> Vec<FieldError> {
    const MAX_REPORTED: usize = 16;
    let bytes = text.as_bytes();
    let mut errors = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if errors.len() >= MAX_REPORTED {
            break;
        }
        match b {
            b'{' | b'[' if stack.len() >= max_depth => {
                let (end, levels) = skip_container(bytes, i);
                errors.push(FieldError {
                    field: path(&stack),
                    message: format!(
                        "nests {} levels deep; at most {max_depth} levels allowed",
                        stack.len() + levels
                    ),
                });
                i = end;
                continue;
            }
            b'{' => stack.push(Frame::Object(None)),
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object(key)) => *key = None,
                Some(Frame::Array(index)) => *index += 1,
                None => {}
            },
            b'"' => {
                let end = string_end(bytes, i + 1).min(bytes.len() - 1);
                let raw = &text[i..=end];
                let is_key = matches!(stack.last(), Some(Frame::Object(None)));
                if let (true, Some(Frame::Object(key))) = (is_key, stack.last_mut()) {
                    *key = Some(raw);
                }
                if raw.len().saturating_sub(2) > max_string {
                    let len = decoded_len(raw);
                    if len > max_string {
                        errors.push(FieldError {
                            field: path(&stack),
                            message: format!(
                                "{}is {len} bytes long; at most {max_string} bytes allowed",
                                if is_key { "the key " } else { "" }
                            ),
                        });
                    }
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    errors
}

/// From the `{` or `[` at `i` of well-formed JSON: the index after its matching close, and how
/// many levels of nesting it holds (itself included).
fn skip_container(bytes: &[u8], mut i: usize) -> (usize, usize) {
    let (mut depth, mut deepest) = (0usize, 0usize);
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => i = string_end(bytes, i + 1),
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return (i + 1, deepest);
                }
            }
            _ => {}
        }
        i += 1;
    }
    (bytes.len(), deepest)
}

/// The decoded length of the JSON string literal `raw` (quotes included).
fn decoded_len(raw: &str) -> usize {
    let inner = raw.len().saturating_sub(2);
    if !raw.contains('\\') {
        return inner;
    }
    serde_json::from_str::<String>(raw).map_or(inner, |s| s.len())
}

/// The JSON path of the value being read: keys joined by `.`, array indices as `[i]`; each key
/// decoded and cut to 64 bytes.
fn path(stack: &[Frame]) -> String {
    let mut out = String::new();
    for frame in stack {
        match frame {
            Frame::Object(Some(raw)) => {
                let key = if raw.contains('\\') {
                    serde_json::from_str::<String>(raw)
                        .map(std::borrow::Cow::Owned)
                        .unwrap_or(std::borrow::Cow::Borrowed(&raw[1..raw.len() - 1]))
                } else {
                    std::borrow::Cow::Borrowed(&raw[1..raw.len() - 1])
                };
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(super::validate::truncate(&key, 64));
            }
            Frame::Object(None) => {}
            Frame::Array(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}
