use super::*;
use crate::event::{Severity, Status};

const FLAT: &str = include_str!("../../../../examples/flat-events.json");
const ENVELOPE: &str = include_str!("../../../../examples/upstream-envelope.ndjson");

/// 2026-11-25T11:00:00Z: "now" for the examples, which were written on that morning.
const NOW: i64 = 1_795_604_400_000;

fn parse(body: &str, format: BodyFormat) -> ParsedBatch {
    parse_body(body.as_bytes(), format, &IngestLimits::default(), NOW).expect("body parses")
}

fn one_error(body: &str) -> FieldError {
    let batch = parse(body, BodyFormat::Json);
    assert_eq!(batch.rejected.len(), 1, "{:?}", batch.rejected);
    let mut errors = batch.rejected[0].errors.clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.remove(0)
}

#[test]
fn now_constant_is_the_examples_morning() {
    assert_eq!(crate::time::to_rfc3339(NOW), "2026-11-25T11:00:00.000Z");
}

#[test]
fn flat_examples_are_accepted_as_they_are() {
    let batch = parse(FLAT, BodyFormat::Json);
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    assert_eq!(batch.events.len(), 3);
    let first = &batch.events[0];
    assert_eq!(first.kind, "llm_call");
    assert_eq!(first.model.as_deref(), Some("gpt-4o"));
    assert_eq!(first.input_tokens, Some(512));
    assert_eq!(first.latency_ms, Some(812.5));
    assert_eq!(first.ttft_ms, Some(120.0));
    assert_eq!(first.status, Some(Status::Ok));
    assert_eq!(first.tags_json, r#"{"team":"care"}"#);
    assert!(
        first.event_id.starts_with("h-"),
        "derived id: {}",
        first.event_id
    );
    let second = &batch.events[1];
    assert_eq!(second.event_id, "9a1f6a44-0c55-4a43-8d52-3f0f3b1d2e01");
    assert_eq!(second.status, Some(Status::Error));
    assert_eq!(second.error_type.as_deref(), Some("timeout"));
    assert!(second.is_error());
    assert_eq!(batch.events[2].output_tokens, None);
}

#[test]
fn envelope_examples_are_accepted_and_mapped() {
    let batch = parse(ENVELOPE, BodyFormat::Ndjson);
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    assert_eq!(batch.events.len(), 11);
    let by_kind = |k: &str| {
        batch
            .events
            .iter()
            .find(|e| e.kind == k)
            .unwrap_or_else(|| panic!("{k}"))
    };
    let latency = by_kind("telemetry.latency");
    assert_eq!(latency.source_module.as_deref(), Some("llm-observatory"));
    assert_eq!(latency.model.as_deref(), Some("gpt-4o"));
    assert_eq!(latency.latency_ms, Some(1523.4));
    assert_eq!(latency.trace_id.as_deref(), Some("req-1"));
    assert!(latency.is_request());
    let tokens = by_kind("telemetry.token_usage");
    assert_eq!(
        (tokens.input_tokens, tokens.output_tokens),
        (Some(500), Some(300))
    );
    assert!(!tokens.is_request());
    let cost = by_kind("cost.token_cost");
    assert_eq!(cost.cost_usd, Some(0.00425));
    assert_eq!(
        cost.input_tokens, None,
        "cost events must not double-count tokens"
    );
    let threat = by_kind("security.threat");
    assert_eq!(threat.severity, Some(Severity::Critical));
    assert_eq!(threat.status, None);
    assert_eq!(by_kind("security.auth").user_id.as_deref(), Some("u-42"));
    assert_eq!(by_kind("custom.asset_registered").event_type, "lifecycle");
    assert_eq!(latency.correlation_id, cost.correlation_id);
}

#[test]
fn wrapper_object_and_single_event_are_batches() {
    let wrapped = format!(r#"{{"events": {FLAT}}}"#);
    assert_eq!(parse(&wrapped, BodyFormat::Json).events.len(), 3);
    let single = r#"{"timestamp": "2026-11-25T10:00:00Z", "model": "m"}"#;
    assert_eq!(parse(single, BodyFormat::Json).events.len(), 1);
}

#[test]
fn identical_bytes_get_identical_derived_ids() {
    let a = parse(FLAT, BodyFormat::Json);
    let b = parse(FLAT, BodyFormat::Json);
    assert_eq!(a.events[0].event_id, b.events[0].event_id);
    assert_ne!(a.events[0].event_id, a.events[2].event_id);
}

#[test]
fn every_bad_field_is_named_and_neighbours_survive() {
    let cases: &[(&str, &str, &str)] = &[
        (r#"{"model": "m"}"#, "timestamp", "is required"),
        (r#"{"timestamp": "yesterday"}"#, "timestamp", "RFC 3339"),
        (
            r#"{"timestamp": "2026-11-01T00:00:00Z"}"#,
            "timestamp",
            "older than",
        ),
        (
            r#"{"timestamp": "2026-11-25T13:00:00Z"}"#,
            "timestamp",
            "in the future",
        ),
        (
            r#"{"timestamp": "2026-11-25T10:00:00Z", "input_tokens": -5}"#,
            "input_tokens",
            "negative",
        ),
        (
            r#"{"timestamp": "2026-11-25T10:00:00Z", "input_tokens": "12"}"#,
            "input_tokens",
            "whole number",
        ),
        (
            r#"{"timestamp": "2026-11-25T10:00:00Z", "output_tokens": 1.5}"#,
            "output_tokens",
            "whole number",
        ),
        (
            r#"{"timestamp": "2026-11-25T10:00:00Z", "latency_ms": "NaN"}"#,
            "latency_ms",
            "finite",
        ),
        (
            r#"{"timestamp": "2026-11-25T10:00:00Z", "latency_ms": -1}"#,
            "latency_ms",
            "negative",
        ),
        (
            r#"{"timestamp": "2026-11-25T10:00:00Z", "status": "meh"}"#,
            "status",
            "allowed: ok, error, cancelled",
        ),
        (
            r#"{"timestamp": "2026-11-25T10:00:00Z", "severity": "loud"}"#,
            "severity",
            "allowed",
        ),
        (
            r#"{"timestamp": "2026-11-25T10:00:00Z", "model": 42}"#,
            "model",
            "must be a string",
        ),
        (
            r#"{"timestamp": "2026-11-25T10:00:00Z", "tags": {"a": {"b": 1}}}"#,
            "tags.a",
            "string, number or boolean",
        ),
        (
            r#"{"timestamp": "2026-11-25T10:00:00Z", "tags": []}"#,
            "tags",
            "object",
        ),
        (
            r#"{"timestamp": "2026-11-25T10:00:00Z", "event_id": 7}"#,
            "event_id",
            "string",
        ),
        (r#"[1]"#, "", "JSON object"),
    ];
    for (event, field, needle) in cases {
        let body = format!(
            r#"[{{"timestamp": "2026-11-25T10:00:00Z"}}, {event}, {{"timestamp": "2026-11-25T10:00:01Z"}}]"#
        );
        let batch = parse(&body, BodyFormat::Json);
        assert_eq!(batch.events.len(), 2, "neighbours of {event} survive");
        assert_eq!(batch.rejected.len(), 1, "{event}");
        assert_eq!(batch.rejected[0].index, 1);
        let err = &batch.rejected[0].errors[0];
        assert_eq!(err.field, *field, "{event}: {err:?}");
        assert!(err.message.contains(needle), "{event}: {}", err.message);
    }
}

#[test]
fn long_dimension_strings_and_too_many_tags_are_refused() {
    let long = "x".repeat(4097);
    let err = one_error(&format!(
        r#"[{{"timestamp": "2026-11-25T10:00:00Z", "app": "{long}"}}]"#
    ));
    assert_eq!(err.field, "app");
    assert!(err.message.contains("4097 bytes"), "{}", err.message);
    let tags: Vec<String> = (0..65).map(|i| format!(r#""t{i}": "v""#)).collect();
    let err = one_error(&format!(
        r#"[{{"timestamp": "2026-11-25T10:00:00Z", "tags": {{{}}}}}]"#,
        tags.join(",")
    ));
    assert_eq!(err.field, "tags");
    assert!(
        err.message.contains("65 tags; at most 64"),
        "{}",
        err.message
    );
}

#[test]
fn all_errors_of_one_event_are_reported_together() {
    let batch = parse(
        r#"[{"input_tokens": -1, "status": "nope"}]"#,
        BodyFormat::Json,
    );
    let fields: Vec<_> = batch.rejected[0]
        .errors
        .iter()
        .map(|e| e.field.as_str())
        .collect();
    assert_eq!(fields, ["timestamp", "input_tokens", "status"]);
}

#[test]
fn a_syntax_error_in_one_array_element_spares_the_others() {
    let body = "[\n {\"timestamp\": \"2026-11-25T10:00:00Z\"},\n {\"timestamp\": \"2026-11-25T10:00:00Z\", \"latency_ms\": NaN},\n {\"timestamp\": \"2026-11-25T10:00:02Z\"}\n]";
    let batch = parse(body, BodyFormat::Json);
    assert_eq!(batch.events.len(), 2);
    let rejection = &batch.rejected[0];
    assert_eq!(rejection.index, 1);
    assert_eq!(rejection.errors[0].field, "latency_ms");
    assert!(
        rejection.errors[0].message.contains("line 3, column"),
        "{}",
        rejection.errors[0].message
    );
}

#[test]
fn ndjson_reports_bad_lines_by_index_and_line() {
    let body = "{\"timestamp\": \"2026-11-25T10:00:00Z\"}\n\n{\"timestamp\": oops}\n{\"timestamp\": \"2026-11-25T10:00:01Z\"}\n";
    let batch = parse(body, BodyFormat::Ndjson);
    assert_eq!(batch.total, 3);
    assert_eq!(batch.events.len(), 2);
    assert_eq!(batch.rejected[0].index, 1);
    assert_eq!(batch.rejected[0].errors[0].field, "timestamp");
    assert!(
        batch.rejected[0].errors[0].message.contains("line 3"),
        "{:?}",
        batch.rejected
    );
}

#[test]
fn whole_body_errors() {
    let limits = IngestLimits {
        max_events: 2,
        ..Default::default()
    };
    let three = r#"[{}, {}, {}]"#;
    assert_eq!(
        parse_body(three.as_bytes(), BodyFormat::Json, &limits, NOW).unwrap_err(),
        BodyError::TooManyEvents { count: 3, limit: 2 }
    );
    let err = parse_body(b"{\"events\": [1,", BodyFormat::Json, &limits, NOW).unwrap_err();
    assert!(
        matches!(err, BodyError::Malformed { line: 1, .. }),
        "{err:?}"
    );
    assert_eq!(
        parse_body(b"42", BodyFormat::Json, &limits, NOW).unwrap_err(),
        BodyError::NotABatch
    );
    assert_eq!(
        parse_body(b"  ", BodyFormat::Json, &limits, NOW).unwrap_err(),
        BodyError::Empty
    );
    assert_eq!(
        parse_body(b"[]", BodyFormat::Json, &limits, NOW).unwrap_err(),
        BodyError::Empty
    );
}

#[test]
fn envelope_field_errors_use_json_paths() {
    let body = r#"{"source_module": "m", "event_type": "telemetry", "timestamp": "2026-11-25T10:00:00Z",
        "payload": {"payload_type": "telemetry", "data": {"telemetry_type": "token_usage", "prompt_tokens": "many"}}}"#;
    let err = one_error(body);
    assert_eq!(err.field, "payload.data.prompt_tokens");
    let body = r#"{"source_module": "m", "event_type": "x", "timestamp": "2026-11-25T10:00:00Z", "payload": 3}"#;
    assert_eq!(one_error(body).field, "payload");
}

fn parse_bytes(body: &[u8], format: BodyFormat) -> Result<ParsedBatch, BodyError> {
    parse_body(body, format, &IngestLimits::default(), NOW)
}

/// A valid flat event at "now" minus `i` seconds, so that neighbours differ.
fn valid(i: usize) -> String {
    format!(
        r#"{{"timestamp": {}, "model": "m{i}"}}"#,
        NOW - 1000 * i as i64
    )
}

/// Asserts that every element of the body is accounted for, and returns the rejected indices.
fn rejected_indices(batch: &ParsedBatch) -> Vec<usize> {
    assert_eq!(
        batch.events.len() + batch.rejected.len(),
        batch.total,
        "{:?}",
        batch.rejected
    );
    batch.rejected.iter().map(|r| r.index).collect()
}

#[test]
fn data_after_the_body_value_refuses_the_body_naming_where_it_starts() {
    let (a, b) = (valid(1), valid(2));
    let cases = [
        (format!("[{a}][{b}]"), a.len() + 2),
        (format!("[{a}],[{b}]"), a.len() + 2),
        (format!("[{a}] junk"), a.len() + 3),
        (format!("{{\"events\": [{a}]}} junk"), a.len() + 15),
        (format!("{{\"events\": [{a}], \"n\": 1}}{{}}"), a.len() + 22),
        (format!("{a} {b}"), a.len() + 1),
        (format!("[{a}]]"), a.len() + 2),
    ];
    for (body, offset) in cases {
        let err = parse_bytes(body.as_bytes(), BodyFormat::Json).unwrap_err();
        assert_eq!(
            err,
            BodyError::TrailingData {
                offset,
                line: 1,
                column: offset + 1
            },
            "{body}"
        );
        assert!(
            err.to_string().contains(&format!("(byte {offset})")),
            "{err}"
        );
    }
    let err =
        parse_bytes(format!("[\n{a}\n]\n\n  [{b}]").as_bytes(), BodyFormat::Json).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unexpected data at line 5, column 3 (byte "),
        "{err}"
    );
    // Whitespace after the value is not data.
    assert_eq!(
        parse(&format!("[{a}]\n\t \r\n"), BodyFormat::Json)
            .events
            .len(),
        1
    );
}

#[test]
fn an_unterminated_string_refuses_the_body_instead_of_swallowing_its_neighbours() {
    let (a, c) = (valid(1), valid(3));
    let broken = format!(r#"{{"timestamp": {NOW}, "model": "x}}"#);
    // Mid-array, at the end, and two of them that pair up so that the cut looks consistent.
    let bodies = [
        format!("[{a}, {broken}, {c}]"),
        format!("[{a}, {broken}]"),
        format!("[{a}, {broken}, {broken}, {c}]"),
        format!("{{\"events\": [{a}, {broken}, {c}]}}"),
        format!(r#"[{{"a": "x}}, {{"b": "y}}, {c}]"#),
    ];
    for body in bodies {
        let err = parse_bytes(body.as_bytes(), BodyFormat::Json).unwrap_err();
        match &err {
            BodyError::Unreadable { index, offset, .. } => {
                assert_eq!(&body[*offset..*offset + 2], "{\"", "{err}");
                assert!(*index <= 1, "{err}");
            }
            other => panic!("{body}: {other:?}"),
        }
        assert!(err.to_string().contains("cannot be told"), "{err}");
    }
    let err = parse_bytes(
        format!("[{a},\n  {broken},\n {c}]").as_bytes(),
        BodyFormat::Json,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "element 1 of the array, from line 2, column 3 (byte {}), is malformed so that where it ends, \
             and so where the next element starts, cannot be told: expected `,` or `}}` at line 3, column 4 (byte {})",
            a.len() + 5,
            a.len() + 5 + broken.len() + 5
        )
    );
    // In NDJSON a line is an element whatever it holds: only that line is rejected.
    let batch = parse(&format!("{a}\n{broken}\n{c}\n"), BodyFormat::Ndjson);
    assert_eq!(rejected_indices(&batch), [1]);
}

#[test]
fn damage_inside_one_token_rejects_only_that_element() {
    let bad_values = [
        "NaN", "Infinity", "1.2.3", "01", "-", "tru", "1e", "+1", "0x10",
    ];
    for bad in bad_values {
        let body = format!(
            "[{}, {{\"latency_ms\": {bad}, \"timestamp\": {NOW}}}, {}]",
            valid(1),
            valid(2)
        );
        let batch = parse(&body, BodyFormat::Json);
        assert_eq!(rejected_indices(&batch), [1], "{bad}");
        let err = &batch.rejected[0].errors[0];
        assert_eq!(err.field, "latency_ms", "{bad}");
        assert!(
            err.message.starts_with("malformed JSON at line 1, column "),
            "{bad}: {err:?}"
        );
    }
    for bad in [r#""a\x""#, "\"a\u{1}b\"", r#""\u12""#, r#""\ud800""#] {
        let body = format!(
            "[{}, {{\"model\": {bad}, \"timestamp\": {NOW}}}, {}]",
            valid(1),
            valid(2)
        );
        let batch = parse(&body, BodyFormat::Json);
        assert_eq!(rejected_indices(&batch), [1], "{bad}: {:?}", batch.rejected);
        assert_eq!(batch.rejected[0].errors[0].field, "model", "{bad}");
    }
    // Missing elements are elements that cannot be read.
    let batch = parse(&format!("[{},,{},]", valid(1), valid(2)), BodyFormat::Json);
    assert_eq!(rejected_indices(&batch), [1, 3]);
    assert!(
        batch.rejected[0].errors[0]
            .message
            .contains("empty array element")
    );
    // An array that never closes is refused even when every element in it is whole.
    let err = parse_bytes(
        format!("[{}, {}", valid(1), valid(2)).as_bytes(),
        BodyFormat::Json,
    )
    .unwrap_err();
    assert!(
        matches!(&err, BodyError::Malformed { message, .. } if message.contains("not closed")),
        "{err:?}"
    );
}

#[test]
fn invalid_utf8_in_one_array_element_rejects_that_element_only() {
    let mut bad = format!(r#"{{"timestamp": {NOW}, "model": "gpt"#).into_bytes();
    bad.extend_from_slice(b"\xff\xfe\"}");
    let mut body = format!("[{},\n  ", valid(1)).into_bytes();
    body.extend_from_slice(&bad);
    body.extend_from_slice(format!(",\n{}]", valid(2)).as_bytes());
    let batch = parse_bytes(&body, BodyFormat::Json).unwrap();
    assert_eq!(rejected_indices(&batch), [1]);
    assert_eq!(batch.events.len(), 2);
    let err = &batch.rejected[0].errors[0];
    assert_eq!(err.field, "model");
    // Line 2 starts two bytes before the element; the bad byte is the fourth from its end.
    let column = bad.len() - 1;
    assert_eq!(
        err.message,
        format!("malformed JSON at line 2, column {column}: not valid UTF-8")
    );
    // The same in the wrapper, and a single event is its own element.
    let mut wrapped = b"{\"events\": ".to_vec();
    wrapped.extend_from_slice(&body);
    wrapped.push(b'}');
    assert_eq!(
        rejected_indices(&parse_bytes(&wrapped, BodyFormat::Json).unwrap()),
        [1]
    );
    let single = parse_bytes(&bad, BodyFormat::Json).unwrap();
    assert_eq!(rejected_indices(&single), [0]);
    // NDJSON: the line, with line and column.
    let mut lines = format!("{}\n", valid(1)).into_bytes();
    lines.extend_from_slice(&bad);
    lines.extend_from_slice(format!("\n{}\n", valid(2)).as_bytes());
    let batch = parse_bytes(&lines, BodyFormat::Ndjson).unwrap();
    assert_eq!(rejected_indices(&batch), [1]);
    assert!(
        batch.rejected[0].errors[0]
            .message
            .starts_with("malformed JSON at line 2, column "),
        "{:?}",
        batch.rejected
    );
}

#[test]
fn numbers_out_of_range_are_rejected_naming_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#""input_tokens": 1e400"#, "input_tokens"),
        (r#""prompt_tokens": -1e400"#, "prompt_tokens"),
        (r#""output_tokens": 100000001"#, "output_tokens"),
        (
            r#""completion_tokens": 18446744073709551616"#,
            "completion_tokens",
        ),
        (r#""input_tokens": 1e9"#, "input_tokens"),
        (r#""latency_ms": 1e400"#, "latency_ms"),
        (r#""latency_ms": 604800001"#, "latency_ms"),
        (r#""ttft_ms": 1e308"#, "ttft_ms"),
        (r#""cost_usd": 1e400"#, "cost_usd"),
        (r#""cost_usd": 1e308"#, "cost_usd"),
        (r#""cost_usd": 1000000.01"#, "cost_usd"),
        (r#""tags": {"n": 1e400}"#, "tags.n"),
    ];
    for (member, field) in cases {
        let err = one_error(&format!(r#"{{"timestamp": {NOW}, {member}}}"#));
        assert_eq!(err.field, *field, "{member}");
        assert!(
            err.message.contains("out of range"),
            "{member}: {}",
            err.message
        );
    }
    let err = one_error(r#"{"timestamp": 1e400}"#);
    assert_eq!(
        (err.field.as_str(), err.message.contains("out of range")),
        ("timestamp", true)
    );
    // The bounds themselves are accepted.
    let batch = parse(
        &format!(
            r#"{{"timestamp": {NOW}, "input_tokens": {MAX_TOKENS}, "latency_ms": {MAX_DURATION_MS}, "ttft_ms": 604800000, "cost_usd": {MAX_COST_USD}}}"#
        ),
        BodyFormat::Json,
    );
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    assert_eq!(batch.events[0].cost_usd, Some(1_000_000.0));
    // Two events of 1e308 would make a tenant's cost sums infinite: neither is stored.
    let costly = format!(r#"{{"timestamp": {NOW}, "cost_usd": 1e308}}"#);
    let batch = parse(
        &format!("[{costly}, {costly}, {}]", valid(1)),
        BodyFormat::Json,
    );
    assert_eq!(rejected_indices(&batch), [0, 1]);
    // Envelope fields too, by their path.
    let envelope = |data: &str| {
        format!(
            r#"{{"source_module": "m", "event_type": "x", "timestamp": {NOW}, "payload": {{"payload_type": "cost", "data": {{{data}}}}}}}"#
        )
    };
    let err = one_error(&envelope(r#""total_cost_usd": 1e308"#));
    assert_eq!(err.field, "payload.data.total_cost_usd");
    assert!(
        err.message.contains("out of range: at most 1000000 USD"),
        "{}",
        err.message
    );
    let err = one_error(&envelope(r#""total_latency_ms": 1e400"#));
    assert_eq!(err.field, "payload.data.total_latency_ms");
}

/// An event with an unknown field `x` holding `depth - 1` nested arrays (so the event nests
/// `depth` levels).
fn nested(depth: usize) -> String {
    let inner = depth - 1;
    format!(
        r#"{{"timestamp": {NOW}, "x": {}1{}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

#[test]
fn nesting_is_limited_anywhere_in_the_event_naming_the_path() {
    assert!(parse(&nested(32), BodyFormat::Json).rejected.is_empty());
    let err = one_error(&nested(33));
    assert_eq!(err.field, format!("x{}", "[0]".repeat(31)));
    assert_eq!(
        err.message,
        "nests 33 levels deep; at most 32 levels allowed"
    );
    // Far past serde_json's recursion limit of 128: still that element's rejection, in every framing.
    let deep = nested(100_000);
    for (body, format) in [
        (
            format!("[{}, {deep}, {}]", valid(1), valid(2)),
            BodyFormat::Json,
        ),
        (
            format!("{{\"events\": [{}, {deep}, {}]}}", valid(1), valid(2)),
            BodyFormat::Json,
        ),
        (
            format!("{}\n{deep}\n{}", valid(1), valid(2)),
            BodyFormat::Ndjson,
        ),
    ] {
        let batch = parse(&body, format);
        assert_eq!(rejected_indices(&batch), [1]);
        let fields: Vec<&str> = batch.rejected[0]
            .errors
            .iter()
            .map(|e| e.message.as_str())
            .collect();
        assert!(
            fields.contains(&"nests 100000 levels deep; at most 32 levels allowed"),
            "{fields:?}"
        );
    }
    let too_deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let batch = parse(
        &format!("[{too_deep_array}, {}]", valid(1)),
        BodyFormat::Json,
    );
    assert_eq!(rejected_indices(&batch), [0]);
    // In the envelope's payload, by its path; the limit is a setting.
    let body = format!(
        r#"{{"source_module": "m", "event_type": "x", "timestamp": {NOW}, "payload": {{"payload_type": "t", "data": {{"notes": {{"a": [{{"b": 1}}]}}}}}}}}"#
    );
    let limits = IngestLimits {
        max_depth: 5,
        ..Default::default()
    };
    let batch = parse_body(body.as_bytes(), BodyFormat::Json, &limits, NOW).unwrap();
    let err = &batch.rejected[0].errors[0];
    assert_eq!(err.field, "payload.data.notes.a[0]");
    assert_eq!(err.message, "nests 6 levels deep; at most 5 levels allowed");
}

#[test]
fn every_string_and_the_event_itself_are_limited_in_size() {
    let long = "y".repeat(4097);
    let err = one_error(&format!(
        r#"{{"timestamp": {NOW}, "extra": {{"list": [1, "{long}"]}}}}"#
    ));
    assert_eq!(err.field, "extra.list[1]");
    assert_eq!(
        err.message,
        "is 4097 bytes long; at most 4096 bytes allowed"
    );
    let err = one_error(&format!(r#"{{"timestamp": {NOW}, "{long}": 1}}"#));
    assert_eq!(err.field, "y".repeat(64));
    assert_eq!(
        err.message,
        "the key is 4097 bytes long; at most 4096 bytes allowed"
    );
    let err = one_error(&format!(
        r#"{{"timestamp": {NOW}, "tags": {{"t": "{long}"}}}}"#
    ));
    assert_eq!(
        (err.field.as_str(), err.message.contains("4097 bytes")),
        ("tags.t", true)
    );
    // Decoded length counts: 4096 escaped characters are 4096 bytes, within the limit.
    let escaped = r"\n".repeat(4096);
    assert!(
        parse(
            &format!(r#"{{"timestamp": {NOW}, "x": "{escaped}"}}"#),
            BodyFormat::Json
        )
        .rejected
        .is_empty()
    );
    // A megabyte in an unknown field: over the event size, and over the string limit.
    let huge = "z".repeat(1 << 20);
    let body = format!(
        r#"[{}, {{"timestamp": {NOW}, "blob": "{huge}"}}]"#,
        valid(1)
    );
    let batch = parse(&body, BodyFormat::Json);
    assert_eq!(rejected_indices(&batch), [1]);
    let errors = &batch.rejected[0].errors;
    assert_eq!(errors[0].field, "");
    assert_eq!(
        errors[0].message,
        format!(
            "the event is {} bytes long; at most 65536 bytes allowed",
            huge.len() + 40
        )
    );
    assert_eq!(errors[1].field, "blob");
    // Many short fields can make an event too large as well; the limit is a setting.
    let limits = IngestLimits {
        max_event_bytes: 100,
        ..Default::default()
    };
    let body = format!(r#"{{"timestamp": {NOW}, "a": "{}"}}"#, "x".repeat(80));
    let batch = parse_body(body.as_bytes(), BodyFormat::Json, &limits, NOW).unwrap();
    assert_eq!(batch.rejected[0].errors[0].field, "");
    assert!(
        batch.rejected[0].errors[0]
            .message
            .contains("at most 100 bytes")
    );
}

#[test]
fn metric_labels_for_rejections_are_a_fixed_set() {
    let label = |field: &str| {
        FieldError {
            field: field.into(),
            message: String::new(),
        }
        .top_level_field()
    };
    assert_eq!(label("payload.data.total_cost_usd"), "payload");
    assert_eq!(label("tags.team"), "tags");
    assert_eq!(label("input_tokens"), "input_tokens");
    assert_eq!(label(""), "");
    assert_eq!(label("x[0][1]"), "unknown_field");
    assert_eq!(label("anything.a.sender.chose"), "unknown_field");
}

/// Whatever a body holds, every element is accounted for: either the whole body is refused with a
/// [`BodyError`], or each element the generator put in is accepted or rejected by its index.
mod property {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        /// A valid event: accepted.
        Valid,
        /// Well-formed but invalid, over a limit, or damaged inside one token: rejected by index.
        Rejected,
        /// A string that never closes: a JSON body is refused, as where the element ends (and so
        /// where the next starts) cannot be known; an NDJSON line is rejected.
        Unterminated,
    }

    #[derive(Debug, Clone)]
    struct Part {
        kind: Kind,
        /// The element on one line (NDJSON needs that).
        compact: Vec<u8>,
        /// The element as it may appear in a JSON body, maybe over several lines.
        any: Vec<u8>,
    }

    fn part(kind: Kind, compact: Vec<u8>) -> Part {
        Part {
            kind,
            any: compact.clone(),
            compact,
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9 _.-]{0,12}",
            prop::sample::select(vec![
                "gpt-4o",
                "modèle",
                "模型",
                "quote \" inside",
                "back\\slash\\",
                "emoji 😀",
                "brackets ]}[{,: \"",
                "tab\tnew\nline",
                "",
            ])
            .prop_map(String::from),
        ]
    }

    fn timestamp() -> impl Strategy<Value = i64> {
        (0i64..3600).prop_map(|s| NOW - s * 1000)
    }

    fn valid_event() -> impl Strategy<Value = Part> {
        (
            timestamp(),
            prop::option::of(text()),
            prop::option::of(0..=MAX_TOKENS),
            prop::option::of(0.0..=MAX_DURATION_MS),
            prop::option::of(0.0..=MAX_COST_USD),
            prop::option::of(text()),
            prop::option::of((text(), 0usize..6)),
            any::<bool>(),
        )
            .prop_map(|(ts, model, tokens, latency, cost, team, extra, pretty)| {
                let mut event = json!({"timestamp": ts});
                let obj = event.as_object_mut().unwrap();
                if let Some(m) = model {
                    obj.insert("model".into(), m.into());
                }
                if let Some(t) = tokens {
                    obj.insert("input_tokens".into(), t.into());
                }
                if let Some(l) = latency {
                    obj.insert("latency_ms".into(), l.into());
                }
                if let Some(c) = cost {
                    obj.insert("cost_usd".into(), c.into());
                }
                if let Some(team) = team {
                    obj.insert("tags".into(), json!({ "team": team }));
                }
                if let Some((note, depth)) = extra {
                    let mut nested = Value::String(note);
                    for i in 0..depth {
                        nested = if i % 2 == 0 {
                            json!([nested, 1])
                        } else {
                            json!({ "k": nested })
                        };
                    }
                    obj.insert("extra".into(), nested);
                }
                let compact = serde_json::to_vec(&event).unwrap();
                let any = if pretty {
                    serde_json::to_vec_pretty(&event).unwrap()
                } else {
                    compact.clone()
                };
                Part {
                    kind: Kind::Valid,
                    compact,
                    any,
                }
            })
    }

    fn rejected_event() -> impl Strategy<Value = Part> {
        let invalid = prop_oneof![
            Just(r#"{"model": "no timestamp"}"#.to_string()),
            timestamp().prop_map(|ts| format!(r#"{{"timestamp": {ts}, "input_tokens": -3}}"#)),
            timestamp().prop_map(|ts| format!(
                r#"{{"timestamp": {ts}, "output_tokens": {}}}"#,
                MAX_TOKENS + 1
            )),
            timestamp().prop_map(|ts| format!(r#"{{"timestamp": {ts}, "cost_usd": 1e308}}"#)),
            timestamp().prop_map(|ts| format!(r#"{{"timestamp": {ts}, "latency_ms": 1e400}}"#)),
            timestamp().prop_map(|ts| format!(r#"{{"timestamp": {ts}, "status": "meh"}}"#)),
            timestamp().prop_map(|ts| format!(
                r#"{{"timestamp": {ts}, "extra": {{"note": "{}"}}}}"#,
                "x".repeat(5000)
            )),
            Just("42".to_string()),
            Just(r#""a string""#.to_string()),
            Just("[1, {\"a\": []}]".to_string()),
            (timestamp(), 33usize..300).prop_map(|(ts, d)| format!(
                r#"{{"timestamp": {ts}, "x": {}{}}}"#,
                "[".repeat(d - 1),
                "]".repeat(d - 1)
            )),
            (timestamp(), 33usize..150).prop_map(|(ts, d)| format!(
                r#"{{"timestamp": {ts}, "x": {}1{}}}"#,
                r#"{"a":"#.repeat(d - 1),
                "}".repeat(d - 1)
            )),
        ]
        .prop_map(|text| part(Kind::Rejected, text.into_bytes()));
        let bad_token = (
            timestamp(),
            prop::sample::select(vec![
                "NaN", "Infinity", "1.2.3", "01", "-", "tru", "1e", "+1",
            ]),
        )
            .prop_map(|(ts, bad)| {
                part(
                    Kind::Rejected,
                    format!(r#"{{"timestamp": {ts}, "latency_ms": {bad}, "model": "m"}}"#)
                        .into_bytes(),
                )
            });
        let bad_string = (
            timestamp(),
            prop::sample::select(vec![
                &b"\xff"[..],
                b"\xc3\x28",
                b"\xed\xa0\x80",
                b"\x01",
                b"\\q",
                b"\\uZZ",
            ]),
        )
            .prop_map(|(ts, bad)| {
                let mut bytes = format!(r#"{{"timestamp": {ts}, "model": "ab"#).into_bytes();
                bytes.extend_from_slice(bad);
                bytes.extend_from_slice(br#"cd", "app": "a"}"#);
                part(Kind::Rejected, bytes)
            });
        prop_oneof![invalid, bad_token, bad_string]
    }

    fn unterminated_event() -> impl Strategy<Value = Part> {
        (
            timestamp(),
            prop::sample::select(vec![
                r#""model": "abc}"#,
                r#""model": "abc\"}"#,
                r#""model: "abc"}"#,
                r#""tags": {"team": "care}}"#,
            ]),
        )
            .prop_map(|(ts, tail)| {
                part(
                    Kind::Unterminated,
                    format!(r#"{{"timestamp": {ts}, {tail}"#).into_bytes(),
                )
            })
    }

    fn element() -> impl Strategy<Value = Part> {
        prop_oneof![
            6 => valid_event(),
            4 => rejected_event(),
            1 => unterminated_event(),
        ]
    }

    #[derive(Debug, Clone, Copy)]
    enum Framing {
        Array,
        Wrapper,
        Ndjson,
    }

    fn body(parts: &[Part], framing: Framing, sep: &str, junk: Option<&str>) -> Vec<u8> {
        let mut out = Vec::new();
        match framing {
            Framing::Array | Framing::Wrapper => {
                if let Framing::Wrapper = framing {
                    out.extend_from_slice(br#"{"meta": {"k": [1, "]"]}, "events": "#);
                }
                out.push(b'[');
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                        out.extend_from_slice(sep.as_bytes());
                    }
                    out.extend_from_slice(&p.any);
                }
                out.extend_from_slice(sep.as_bytes());
                out.push(b']');
                if let Framing::Wrapper = framing {
                    out.push(b'}');
                }
                if let Some(junk) = junk {
                    out.extend_from_slice(sep.as_bytes());
                    out.extend_from_slice(junk.as_bytes());
                }
            }
            Framing::Ndjson => {
                let newline = if sep.contains('\r') { "\r\n" } else { "\n" };
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(newline.as_bytes());
                        if sep.len() > 2 {
                            out.extend_from_slice(newline.as_bytes());
                        }
                    }
                    out.extend_from_slice(&p.compact);
                }
                // Junk on the last line makes that line, the element, unreadable.
                if let Some(junk) = junk {
                    out.extend_from_slice(junk.as_bytes());
                }
                out.extend_from_slice(newline.as_bytes());
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn every_element_is_accounted_for_or_the_body_is_refused(
            parts in prop::collection::vec(element(), 1..10),
            framing in prop_oneof![Just(Framing::Array), Just(Framing::Wrapper), Just(Framing::Ndjson)],
            sep in prop::sample::select(vec!["", " ", "\n", "\r\n  ", "\n\n\t"]),
            junk in prop::option::weighted(0.15, prop::sample::select(vec![
                "junk", "[{}]", ",[1]", "{}", "\"x\"", "]", "}", "0",
            ])),
        ) {
            let bytes = body(&parts, framing, sep, junk);
            let n = parts.len();
            let json = !matches!(framing, Framing::Ndjson);
            let unterminated = parts.iter().any(|p| p.kind == Kind::Unterminated);
            let shown = String::from_utf8_lossy(&bytes);
            let format = if json { BodyFormat::Json } else { BodyFormat::Ndjson };
            match parse_body(&bytes, format, &IngestLimits::default(), NOW) {
                Err(err) => {
                    prop_assert!(json && (unterminated || junk.is_some()), "refused without cause: {err}\n{shown}");
                    if !unterminated {
                        prop_assert!(matches!(err, BodyError::TrailingData { .. }), "{err}\n{shown}");
                    }
                }
                Ok(batch) => {
                    prop_assert!(!(json && (unterminated || junk.is_some())), "accepted a body it cannot read whole: {:?}\n{shown}", batch.rejected);
                    prop_assert_eq!(batch.total, n);
                    prop_assert_eq!(batch.events.len() + batch.rejected.len(), n);
                    let mut expected: Vec<usize> = parts
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.kind != Kind::Valid)
                        .map(|(i, _)| i)
                        .collect();
                    if junk.is_some() && expected.last() != Some(&(n - 1)) {
                        expected.push(n - 1);
                    }
                    let got: Vec<usize> = batch.rejected.iter().map(|r| r.index).collect();
                    prop_assert_eq!(got, expected, "{:?}\n{}", batch.rejected, shown);
                    prop_assert!(batch.rejected.iter().all(|r| !r.errors.is_empty()));
                }
            }
        }
    }
}
