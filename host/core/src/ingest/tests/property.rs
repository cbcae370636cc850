//! Whatever a body holds, every element is accounted for: either the whole body is refused with a
//! [`BodyError`], or each element the generator put in is accepted or rejected by its index.

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
                format!(r#"{{"timestamp": {ts}, "latency_ms": {bad}, "model": "m"}}"#).into_bytes(),
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
