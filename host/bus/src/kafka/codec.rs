//! The message format on the ingest topic, version 1.
//!
//! A message is one tenant's batch (or a piece of it, when the batch is larger than a message
//! may be): headers `hub-schema` (the format's version, `1`), `hub-tenant` (the tenant's id, as
//! the API key that sent the batch named it) and `hub-events` (how many); the key is the tenant's
//! id; the value is a JSON array of the events as the API accepted them (every stored column,
//! named as in the event model, `payload` the event as the client sent it; latencies and costs as
//! their IEEE 754 bits, so that they arrive exactly). The broker
//! compresses the batch (lz4). A worker refuses a message whose version it does not know, and
//! it goes to the dead-letter topic with that reason until a worker that knows it replays it.

use std::sync::Arc;

use hub_core::{EnrichedBy, EventRecord, Severity, Status, TenantId, TokenDetails};
use serde::{Deserialize, Serialize};

/// The version this hub writes and reads.
pub const SCHEMA: u32 = 1;
pub const HEADER_SCHEMA: &str = "hub-schema";
pub const HEADER_TENANT: &str = "hub-tenant";
pub const HEADER_EVENTS: &str = "hub-events";
/// On a dead letter: why it could not be consumed, and where it was.
pub const HEADER_REASON: &str = "hub-dead-reason";
pub const HEADER_FROM: &str = "hub-dead-from";

/// A float as its IEEE 754 bits: JSON's decimal form does not always parse back to the same
/// double, and a cost or latency must arrive exactly as it was sent.
mod exact {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        v.map(f64::to_bits).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(f64::from_bits))
    }
}

/// One event on the wire: `S` is `&str` when writing and `String` when reading.
#[derive(Serialize, Deserialize)]
struct Wire<S, E> {
    id: S,
    ts: i64,
    event_type: S,
    kind: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_module: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operation: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "exact")]
    latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "exact")]
    ttft_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_type: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "exact")]
    cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "exact")]
    reported_cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "exact")]
    estimated_cost_usd: Option<f64>,
    /// Cache read, cache write, reasoning, audio input, audio output tokens.
    #[serde(default)]
    details: [Option<i64>; 5],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_tier: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correlation_id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent_event_id: Option<S>,
    tags: S,
    payload: S,
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    enriched_by: Vec<E>,
}

fn wire(e: &EventRecord) -> Wire<&str, &EnrichedBy> {
    fn s(v: &Option<String>) -> Option<&str> {
        v.as_deref()
    }
    Wire {
        id: &e.event_id,
        ts: e.ts_ms,
        event_type: &e.event_type,
        kind: &e.kind,
        source_module: s(&e.source_module),
        severity: e.severity.map(Severity::as_str),
        environment: s(&e.environment),
        app: s(&e.app),
        model: s(&e.model),
        provider: s(&e.provider),
        operation: s(&e.operation),
        input_tokens: e.input_tokens,
        output_tokens: e.output_tokens,
        latency_ms: e.latency_ms,
        ttft_ms: e.ttft_ms,
        status: e.status.map(Status::as_str),
        error_type: s(&e.error_type),
        cost_usd: e.cost_usd,
        reported_cost_usd: e.reported_cost_usd,
        estimated_cost_usd: e.estimated_cost_usd,
        details: e.details.0,
        service_tier: s(&e.service_tier),
        user_id: s(&e.user_id),
        session_id: s(&e.session_id),
        trace_id: s(&e.trace_id),
        correlation_id: s(&e.correlation_id),
        parent_event_id: s(&e.parent_event_id),
        tags: &e.tags_json,
        payload: &e.payload_json,
        enriched_by: e.enriched_by.iter().map(|b| b.as_ref()).collect(),
    }
}

fn record(w: Wire<String, EnrichedBy>) -> Result<EventRecord, String> {
    let severity = match w.severity {
        Some(s) => Some(Severity::parse(&s).ok_or_else(|| format!("severity '{s}' is unknown"))?),
        None => None,
    };
    let status = match w.status {
        Some(s) => Some(Status::parse(&s).ok_or_else(|| format!("status '{s}' is unknown"))?),
        None => None,
    };
    Ok(EventRecord {
        event_id: w.id,
        ts_ms: w.ts,
        event_type: w.event_type,
        kind: w.kind,
        source_module: w.source_module,
        severity,
        environment: w.environment,
        app: w.app,
        model: w.model,
        provider: w.provider,
        operation: w.operation,
        input_tokens: w.input_tokens,
        output_tokens: w.output_tokens,
        latency_ms: w.latency_ms,
        ttft_ms: w.ttft_ms,
        status,
        error_type: w.error_type,
        cost_usd: w.cost_usd,
        reported_cost_usd: w.reported_cost_usd,
        estimated_cost_usd: w.estimated_cost_usd,
        details: TokenDetails(w.details),
        service_tier: w.service_tier,
        user_id: w.user_id,
        session_id: w.session_id,
        trace_id: w.trace_id,
        correlation_id: w.correlation_id,
        parent_event_id: w.parent_event_id,
        tags_json: w.tags,
        payload_json: w.payload,
        enriched_by: w.enriched_by.into_iter().map(Arc::new).collect(),
    })
}

/// The events as message values of at most `max_bytes` each (an event larger than that travels
/// alone), each with its number of events.
pub fn encode(events: &[EventRecord], max_bytes: usize) -> Vec<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut buf = Vec::with_capacity(max_bytes.min(1 << 20));
    let mut n = 0;
    let mut one = Vec::new();
    for e in events {
        one.clear();
        serde_json::to_writer(&mut one, &wire(e)).expect("an event always serializes");
        if n > 0 && buf.len() + one.len() + 2 > max_bytes {
            buf.push(b']');
            out.push((std::mem::take(&mut buf), n));
            n = 0;
        }
        buf.push(if n == 0 { b'[' } else { b',' });
        buf.extend_from_slice(&one);
        n += 1;
    }
    if n > 0 {
        buf.push(b']');
        out.push((buf, n));
    }
    out
}

/// What a message's headers say, before its value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub schema: u32,
    pub tenant: TenantId,
}

/// Reads the headers (`(name, value)` pairs): the reason when the message cannot be this
/// version's.
pub fn head<'a>(
    headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
) -> Result<Head, String> {
    let (mut schema, mut tenant) = (None, None);
    for (name, value) in headers {
        let text = || value.and_then(|v| std::str::from_utf8(v).ok());
        match name {
            HEADER_SCHEMA => {
                schema = Some(
                    text()
                        .and_then(|v| v.parse::<u32>().ok())
                        .ok_or("header hub-schema is not a number")?,
                )
            }
            HEADER_TENANT => {
                tenant = Some(
                    text()
                        .and_then(|v| v.parse::<i64>().ok())
                        .ok_or("header hub-tenant is not a tenant id")?,
                )
            }
            _ => {}
        }
    }
    let schema = schema.ok_or("no hub-schema header: not a message of this hub")?;
    if schema != SCHEMA {
        return Err(format!(
            "message format version {schema}: this worker reads version {SCHEMA} (replay it with `hub dlq replay` from a worker that reads it)"
        ));
    }
    let tenant = tenant.ok_or("no hub-tenant header")?;
    if tenant <= 0 {
        return Err(format!("header hub-tenant: {tenant} is not a tenant id"));
    }
    Ok(Head {
        schema,
        // Verified: only an ingest replica (which authenticated the batch's API key) writes here.
        tenant: TenantId::from_verified(tenant),
    })
}

/// Reads a message's value: the reason (with the event's index) when it cannot.
pub fn decode(value: &[u8]) -> Result<Vec<EventRecord>, String> {
    let wires: Vec<Wire<String, EnrichedBy>> = serde_json::from_slice(value)
        .map_err(|e| format!("the value is not a batch of events: {e}"))?;
    wires
        .into_iter()
        .enumerate()
        .map(|(i, w)| record(w).map_err(|e| format!("event {i}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<EventRecord> {
        let limits = hub_core::ingest::IngestLimits::default();
        let now = hub_core::time::now_ms();
        (0..n)
            .map(|i| {
                let raw = format!(
                    r#"{{"event_id": "e{i}", "timestamp": {now}, "model": "gpt-4o", "provider": "openai",
                        "input_tokens": 10, "output_tokens": 5, "latency_ms": 812.5, "status": "error",
                        "error_type": "rate_limit", "usage": {{"cache_read_tokens": 3}},
                        "tags": {{"team": "care"}}, "user_id": "u\"{i}"}}"#
                );
                let mut e = hub_core::ingest::parse_event(&raw, &limits, now).unwrap();
                e.cost_usd = Some(0.1 + i as f64 / 3.0);
                e.enriched_by = vec![Arc::new(EnrichedBy {
                    plugin: "cost".into(),
                    fields: vec!["cost_usd".into()],
                })];
                e
            })
            .collect()
    }

    #[test]
    fn events_travel_unchanged() {
        let sent = events(50);
        let messages = encode(&sent, 1 << 20);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].1, 50);
        let back = decode(&messages[0].0).unwrap();
        assert!(back == sent, "events changed on the way");
    }

    #[test]
    fn large_batches_are_split_under_the_message_size() {
        let sent = events(100);
        let messages = encode(&sent, 4_000);
        assert!(messages.len() > 1);
        let mut back = Vec::new();
        for (value, n) in &messages {
            assert!(value.len() <= 4_000 || *n == 1, "{} bytes", value.len());
            let got = decode(value).unwrap();
            assert_eq!(got.len(), *n);
            back.extend(got);
        }
        assert!(back == sent, "events changed on the way");
    }

    #[test]
    fn headers_say_whose_and_which_version() {
        let h = |s: &'static str, t: &'static str| {
            head([
                (HEADER_SCHEMA, Some(s.as_bytes())),
                (HEADER_TENANT, Some(t.as_bytes())),
            ])
        };
        assert_eq!(h("1", "7").unwrap().tenant, TenantId::from_verified(7));
        assert!(h("2", "7").unwrap_err().contains("version 2"));
        assert!(h("x", "7").unwrap_err().contains("hub-schema"));
        assert!(h("1", "-1").unwrap_err().contains("hub-tenant"));
        assert!(head([]).unwrap_err().contains("not a message of this hub"));
    }

    #[test]
    fn a_bad_value_is_named() {
        assert!(decode(b"{").unwrap_err().contains("not a batch"));
        let bad = br#"[{"id":"a","ts":1,"event_type":"llm_call","kind":"llm_call","status":"maybe","tags":"{}","payload":"{}"}]"#;
        assert_eq!(
            decode(bad).unwrap_err(),
            "event 0: status 'maybe' is unknown"
        );
    }
}
