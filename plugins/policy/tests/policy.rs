//! The policy component, built for wasm32-wasip2 and run in the hub's own runtime, against a real
//! HTTP server on 127.0.0.1 playing the Policy Engine.

use std::time::Duration;

use hub_plugin_sdk::testing::{
    Grants, HttpServer, Reply, RuntimeConfig, TestHost, ViolationCount, quiet_month,
};
use serde_json::json;

fn host(server: &HttpServer, config: serde_json::Value) -> TestHost {
    let (manifest, wasm) =
        hub_plugin_sdk::testing::built_plugin(env!("CARGO_MANIFEST_DIR")).unwrap();
    let grants = Grants {
        kv: false,
        http: vec![server.host()],
    };
    let runtime = RuntimeConfig {
        allow_private_http: true,
        http_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let mut h = TestHost::from_parts(&wasm, &manifest, runtime, Some(grants)).unwrap();
    h.configure(config).unwrap();
    h
}

fn violation(policy: &str, resource: &str, severity: &str, count: u32) -> ViolationCount {
    ViolationCount {
        policy: policy.into(),
        policy_name: format!("{policy} name"),
        resource: resource.into(),
        severity: severity.into(),
        count,
        first_ms: 1_790_000_000_000,
        last_ms: 1_790_000_600_000,
    }
}

#[test]
fn the_hours_violations_are_reported_by_policy_resource_and_severity() {
    let server = HttpServer::start(|_| Reply::json(201, &json!({"id": "rep-1"})));
    let mut h = host(&server, json!({"url": server.url(""), "token": "pe"}));
    let mut c = quiet_month(1_790_003_600_000);
    c.violations = vec![
        violation("pol-7", "support-bot", "high", 3),
        violation("pol-7", "search", "high", 1),
        violation("pol-2", "support-bot", "low", 2),
    ];
    let out = h.sync_with(&c).unwrap();
    assert!(out.events.is_empty());
    assert_eq!(
        out.report.message,
        "report sent: 6 violations of 2 policies"
    );
    let r = &server.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path()),
        ("POST", "/api/v1/compliance/reports")
    );
    assert_eq!(r.header("authorization"), Some("Bearer pe"));
    let doc = r.json();
    assert_eq!(doc["compliant"], false);
    assert_eq!(doc["total_violations"], 6);
    assert_eq!(doc["by_severity"], json!({"high": 4, "low": 2}));
    assert_eq!(
        doc["by_policy"][1],
        json!({"policy_id": "pol-7", "policy_name": "pol-7 name", "violations": 4})
    );
    assert_eq!(doc["violations"][0]["resource_id"], "support-bot");
    assert_eq!(doc["period_start"], "2026-09-21T14:13:20.000Z");
    assert_eq!(doc["period_end"], "2026-09-21T15:13:20.000Z");
}

#[test]
fn a_clean_hour_is_reported_unless_asked_not_to_and_errors_say_what_to_fix() {
    let server = HttpServer::start(|r| match r.path() {
        "/api/v1/compliance/reports" => Reply::json(202, &json!({})),
        _ => Reply::status(404),
    });
    let mut h = host(&server, json!({"url": server.url("")}));
    h.sync().unwrap();
    assert_eq!(server.requests()[0].json()["compliant"], true);
    h.configure(json!({"url": server.url(""), "skip_empty": true}))
        .unwrap();
    assert!(h.sync().unwrap().report.message.contains("no report"));
    assert_eq!(server.requests().len(), 1);
    h.configure(json!({"url": server.url(""), "reports_path": "/wrong"}))
        .unwrap();
    let e = h.sync().unwrap_err().to_string();
    assert!(e.contains("reports_path") && e.contains("404"), "{e}");
}
