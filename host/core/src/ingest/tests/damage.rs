//! Damaged bodies: data after the value, unterminated strings, damage inside one token, invalid
//! UTF-8: the body is refused naming where, or only the damaged element is rejected.

use super::*;

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
