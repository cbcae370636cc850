//! Ingest's unit tests: the examples as they are, every bad field named with its neighbours kept
//! (here); damaged bodies (`damage`); limits (`limits`); and a property over generated bodies
//! (`property`).

use super::*;
use crate::event::{Severity, Status};

const FLAT: &str = include_str!("../../../../../examples/flat-events.json");
const ENVELOPE: &str = include_str!("../../../../../examples/upstream-envelope.ndjson");

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
fn a_tag_named_like_the_hubs_own_is_refused() {
    // `hub.integration` says which integration's sync brought an event in: no sender may claim it.
    let err = one_error(
        r#"[{"timestamp": "2026-11-25T10:00:00Z", "tags": {"hub.integration": "costops"}}]"#,
    );
    assert_eq!(err.field, "tags.hub.integration");
    assert!(err.message.contains("reserved"), "{}", err.message);
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

mod damage;
mod limits;
mod property;
