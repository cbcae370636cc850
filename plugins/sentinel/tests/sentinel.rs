//! The sentinel component, built for wasm32-wasip2 and run in the hub's own runtime, against a
//! real HTTP server on 127.0.0.1 playing the Sentinel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_plugin_sdk::testing::{
    Alert, AlertSeverity, AlertState, Grants, HttpServer, Reply, RuntimeConfig, TestHost,
    parse_events,
};
use serde_json::{Value, json};

const TOKEN: &str = "sentinel-token-1";

fn host(server: &HttpServer) -> TestHost {
    let (manifest, wasm) =
        hub_plugin_sdk::testing::built_plugin(env!("CARGO_MANIFEST_DIR")).unwrap();
    let grants = Grants {
        kv: true,
        http: vec![server.host()],
    };
    let config = RuntimeConfig {
        allow_private_http: true,
        http_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let mut h = TestHost::from_parts(&wasm, &manifest, config, Some(grants)).unwrap();
    h.configure(json!({"url": server.url(""), "token": TOKEN, "min_severity": "warning"}))
        .unwrap();
    h
}

fn alert(id: &str, kind: &str, severity: AlertSeverity, state: AlertState) -> Alert {
    Alert {
        id: id.into(),
        rule: format!("{kind} rule"),
        rule_kind: kind.into(),
        state,
        repeat: false,
        severity,
        ts_ms: 1_790_000_000_000,
        summary: "cost_usd of model=gpt-4o is 41 (expected 10)".into(),
        group: vec![("model".into(), "gpt-4o".into())],
        labels: vec![("team".into(), "search".into())],
        value: Some(41.0),
    }
}

#[test]
fn alerts_and_anomalies_are_posted_as_sentinel_events_the_hub_itself_accepts() {
    let server = HttpServer::start(|_| Reply::json(202, &json!({"accepted": 2})));
    let mut h = host(&server);
    h.on_alerts(&[
        alert("7", "anomaly", AlertSeverity::Error, AlertState::Firing),
        alert(
            "8",
            "threshold",
            AlertSeverity::Critical,
            AlertState::Resolved,
        ),
        // Below `min_severity`: not forwarded.
        alert("9", "threshold", AlertSeverity::Info, AlertState::Firing),
    ])
    .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "one POST per batch");
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path()), ("POST", "/api/v1/events"));
    assert_eq!(r.header("authorization"), Some("Bearer sentinel-token-1"));
    let events = r.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2);
    let anomaly = &events[0];
    assert_eq!(anomaly["source_module"], "llm-analytics-hub");
    assert_eq!(anomaly["event_type"], "anomaly");
    assert_eq!(anomaly["severity"], "error");
    assert_eq!(anomaly["payload"]["payload_type"], "anomaly");
    assert_eq!(anomaly["payload"]["data"]["state"], "firing");
    assert_eq!(anomaly["payload"]["data"]["model"], "gpt-4o");
    assert_eq!(anomaly["payload"]["data"]["labels"]["team"], "search");
    assert_eq!(events[1]["payload"]["data"]["state"], "resolved");
    assert_ne!(anomaly["event_id"], events[1]["event_id"]);
    // What the Sentinel is sent is the envelope the hub takes over REST, field for field.
    let parsed = parse_events(&Value::Array(events).to_string()).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].kind, "anomaly.anomaly");
    assert_eq!(parsed[0].model.as_deref(), Some("gpt-4o"));
}

#[test]
fn the_sentinels_answers_decide_retry_or_not() {
    let status = Arc::new(Mutex::new(503));
    let s = status.clone();
    let server =
        HttpServer::start(move |_| Reply::json(*s.lock().unwrap(), &json!({"error": "x"})));
    let mut h = host(&server);
    let a = [alert(
        "7",
        "threshold",
        AlertSeverity::Error,
        AlertState::Firing,
    )];
    let e = h.on_alerts(&a).unwrap_err().to_string();
    assert!(
        e.contains("unavailable") && e.contains("answered 503"),
        "{e}"
    );
    *status.lock().unwrap() = 401;
    let e = h.on_alerts(&a).unwrap_err().to_string();
    assert!(
        e.contains("bad configuration") && e.contains("answered 401"),
        "{e}"
    );
    // A host the tenant did not grant: a configuration to fix, named.
    let other = HttpServer::start(|_| Reply::status(200));
    h.configure(json!({"url": other.url("")})).unwrap();
    let e = h.on_alerts(&a).unwrap_err().to_string();
    assert!(e.contains("url: request denied"), "{e}");
}

/// A Sentinel with two pages of detections: the first has one detection the hub refuses (too
/// old), one the plugin cannot place (no id) and two good ones; the second, asked for with the
/// first's cursor, has one.
fn sentinel_with_detections() -> HttpServer {
    let now = hub_plugin_sdk::time::now_ms();
    let at = |ago_min: i64| hub_plugin_sdk::time::rfc3339(now - ago_min * 60_000);
    let page1 = json!({
        "detections": [
            {"id": "det-1", "detected_at": at(30), "threat_type": "prompt_injection",
             "threat_level": "high", "model": "gpt-4o", "environment": "production",
             "source_ip": "203.0.113.7"},
            {"id": "det-2", "detected_at": at(20), "threat_type": "jailbreak",
             "threat_level": "critical", "correlation_id": "req-42"},
            {"id": "det-old", "detected_at": at(60 * 24 * 30), "threat_type": "scan",
             "threat_level": "low"},
            {"detected_at": at(10), "threat_type": "unknown"},
        ],
        "cursor": "c1",
        "has_more": true,
    });
    let page2 = json!({
        "detections": [{"id": "det-3", "detected_at": at(5), "threat_type": "data_exfiltration",
                        "threat_level": "medium"}],
        "cursor": "c2",
        "has_more": false,
    });
    HttpServer::start(move |r| match r.query("cursor").as_deref() {
        None => Reply::json(200, &page1),
        Some("c1") => Reply::json(200, &page2),
        Some(_) => Reply::json(
            200,
            &json!({"detections": [], "cursor": "c2", "has_more": false}),
        ),
    })
}

#[test]
fn detections_come_in_as_security_threat_events_and_the_cursor_moves_on() {
    let server = sentinel_with_detections();
    let mut h = host(&server);
    let first = h.sync().unwrap();
    assert!(first.more, "the Sentinel said there is more");
    assert_eq!(first.report.items, 4);
    assert!(
        first.report.message.contains("1 without `id`"),
        "{}",
        first.report.message
    );
    // Checked as REST ingest checks: the 30-day-old one is refused with ingest's reason, the
    // others kept.
    assert_eq!(first.events.len(), 2);
    assert_eq!(first.rejected.len(), 1);
    assert_eq!(first.rejected[0].errors[0].field, "timestamp");
    let e = &first.events[0];
    assert_eq!(e.event_id, "sentinel-det-1");
    assert_eq!(e.kind, "security.threat");
    assert_eq!(e.severity.map(|s| s.as_str()), Some("error"));
    assert_eq!(e.model.as_deref(), Some("gpt-4o"));
    assert_eq!(e.environment.as_deref(), Some("production"));
    assert!(
        e.tags_json.contains(r#""hub.integration":"sentinel""#),
        "{}",
        e.tags_json
    );
    assert_eq!(first.events[1].correlation_id.as_deref(), Some("req-42"));
    assert_eq!(
        first.events[1].severity.map(|s| s.as_str()),
        Some("critical")
    );
    let asked = server.requests();
    assert!(asked[0].query("since").is_some() && asked[0].query("cursor").is_none());
    assert_eq!(
        asked[0].header("authorization"),
        Some("Bearer sentinel-token-1")
    );

    let second = h.sync().unwrap();
    assert!(!second.more);
    assert_eq!(second.events.len(), 1);
    assert_eq!(second.events[0].event_id, "sentinel-det-3");
    assert_eq!(server.requests()[1].query("cursor").as_deref(), Some("c1"));
    assert_eq!(
        h.kv().get("detections.cursor").map(|v| v.as_slice()),
        Some(&br#""c2""#[..])
    );
}

#[test]
fn an_answer_without_the_list_names_the_field_to_set() {
    let server = HttpServer::start(|_| Reply::json(200, &json!({"items": []})));
    let mut h = host(&server);
    let e = h.sync().unwrap_err().to_string();
    assert!(
        e.contains("fields.list") && e.contains("no `detections` array"),
        "{e}"
    );
    // Named otherwise by this Sentinel: configurable.
    h.configure(json!({"url": server.url(""), "fields": {"list": "items"}}))
        .unwrap();
    assert_eq!(h.sync().unwrap().report.items, 0);
}

#[test]
fn declared_as_the_other_version_it_is_refused_saying_which_it_is() {
    let (manifest, wasm) =
        hub_plugin_sdk::testing::built_plugin(env!("CARGO_MANIFEST_DIR")).unwrap();
    let wrong = manifest.replace("integration@0.3.0", "integration@0.1.0");
    let e = TestHost::from_parts(&wasm, &wrong, RuntimeConfig::default(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("built against hub:plugin@0.3.0: set `world` in plugin.toml"),
        "{e}"
    );
}
