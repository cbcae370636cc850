//! Limits: numbers out of range, nesting depth, sizes of strings and events, and the fixed set of
//! rejection labels.

use super::*;

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
