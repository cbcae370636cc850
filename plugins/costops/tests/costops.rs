//! The costops component, built for wasm32-wasip2 and run in the hub's own runtime, against a
//! real HTTP server on 127.0.0.1 playing LLM-CostOps.

use std::time::Duration;

use hub_plugin_sdk::testing::{
    Alert, AlertSeverity, AlertState, Grants, GroupSpend, HttpServer, Reply, RuntimeConfig,
    TestHost, quiet_month,
};
use hub_plugin_sdk::time;
use serde_json::json;

const DAY: i64 = 86_400_000;

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
    h.configure(json!({"url": server.url(""), "token": "t0k"}))
        .unwrap();
    h
}

/// CostOps with billing closed up to the day before yesterday (two lines a day), yesterday
/// still open, and one budget.
fn costops(now: i64) -> HttpServer {
    let today = now - now.rem_euclid(DAY);
    let yesterday = time::date(today - DAY);
    HttpServer::start(move |r| match r.path() {
        "/api/v1/costops/billing" => {
            let date = r.query("date").unwrap();
            if date == yesterday {
                return Reply::json(200, &json!({"date": date, "final": false, "lines": []}));
            }
            Reply::json(
                200,
                &json!({"date": date, "final": true, "lines": [
                    {"id": format!("{date}-a"), "provider": "openai", "model": "gpt-4o", "billed_usd": 12.5,
                     "requests": 300, "input_tokens": 250000},
                    {"provider": "anthropic", "model": "claude-sonnet-4", "billed_usd": 7.25},
                ]}),
            )
        }
        "/api/v1/costops/budgets" => Reply::json(
            200,
            &json!({"budgets": [
                {"id": "monthly-care", "name": "Team care monthly", "limit_usd": 10000,
                 "spent_usd": 8500, "period": "month", "scope": {"app": "support-bot"}},
                {"name": "no id: skipped"},
            ]}),
        ),
        "/api/v1/costops/projections" | "/api/v1/costops/alerts" => {
            Reply::json(202, &json!({"ok": true}))
        }
        _ => Reply::status(404),
    })
}

#[test]
fn finished_days_of_billing_and_the_budgets_come_in_and_the_projection_goes_out() {
    let now = time::now_ms();
    let server = costops(now);
    let mut h = host(&server);
    let mut context = quiet_month(now);
    context.spend.actual_usd = 812.0;
    context.spend.projected_usd = 2_430.5;
    context.spend.method = "forecast:ets".into();
    context.spend.by_model = vec![GroupSpend {
        key: "gpt-4o".into(),
        actual_usd: 600.0,
        projected_usd: 1_800.0,
    }];
    let out = h.sync_with(&context).unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    // Days 3 and 2 back are closed (2 lines each); yesterday is not final yet.
    let billing: Vec<_> = out
        .events
        .iter()
        .filter(|e| e.kind == "billing.daily")
        .collect();
    assert_eq!(billing.len(), 4);
    let today = now - now.rem_euclid(DAY);
    let first = time::date(today - 3 * DAY);
    assert_eq!(
        billing[0].event_id,
        format!("costops-billing-{first}-{first}-a")
    );
    assert_eq!(billing[0].model.as_deref(), Some("gpt-4o"));
    // Billed amounts never count as the hub's cost or usage: the calls are counted already.
    assert!(
        billing
            .iter()
            .all(|e| e.cost_usd.is_none() && e.input_tokens.is_none())
    );
    assert!(billing[0].payload_json.contains(r#""billed_usd":12.5"#));
    assert!(
        billing[0]
            .tags_json
            .contains(r#""hub.integration":"costops""#)
    );
    let budgets: Vec<_> = out
        .events
        .iter()
        .filter(|e| e.kind == "cost.budget")
        .collect();
    assert_eq!(budgets.len(), 1);
    assert!(budgets[0].cost_usd.is_none());
    assert!(
        budgets[0]
            .payload_json
            .contains(r#""budget_limit_usd":10000"#)
    );
    assert!(
        out.report.message.contains("not final yet"),
        "{}",
        out.report.message
    );
    // The projection CostOps received.
    let posted = server
        .requests()
        .into_iter()
        .find(|r| r.path() == "/api/v1/costops/projections")
        .unwrap();
    assert_eq!(posted.header("authorization"), Some("Bearer t0k"));
    let doc = posted.json();
    assert_eq!(doc["projected_usd"], 2430.5);
    assert_eq!(doc["method"], "forecast:ets");
    assert_eq!(doc["by_model"][0]["model"], "gpt-4o");
    assert_eq!(doc["daily"].as_array().unwrap().len(), 7);
    assert_eq!(
        h.kv().get("billing.last_day").map(|v| v.as_slice()),
        Some(format!("\"{}\"", time::date(today - 2 * DAY)).as_bytes())
    );

    // The next sync asks only for the day that was not final.
    let before = server.requests().len();
    h.sync_with(&context).unwrap();
    let asked: Vec<_> = server.requests()[before..]
        .iter()
        .filter(|r| r.path() == "/api/v1/costops/billing")
        .map(|r| r.query("date").unwrap())
        .collect();
    assert_eq!(asked, [time::date(today - DAY)]);
}

#[test]
fn alerts_are_posted_and_a_wrong_answer_names_what_to_fix() {
    let now = time::now_ms();
    let server = costops(now);
    let mut h = host(&server);
    h.on_alerts(&[Alert {
        id: "5".into(),
        rule: "month budget".into(),
        rule_kind: "budget".into(),
        state: AlertState::Firing,
        repeat: false,
        severity: AlertSeverity::Critical,
        ts_ms: now,
        summary: "projected spend is 104% of the budget".into(),
        group: vec![],
        labels: vec![],
        value: Some(10_400.0),
    }])
    .unwrap();
    let alerts = server
        .requests()
        .into_iter()
        .find(|r| r.path() == "/api/v1/costops/alerts")
        .unwrap()
        .json();
    assert_eq!(alerts["alerts"][0]["rule_kind"], "budget");
    assert_eq!(alerts["alerts"][0]["severity"], "critical");

    h.configure(json!({"url": server.url(""), "billing_path": "/nowhere"}))
        .unwrap();
    let e = h.sync().unwrap_err().to_string();
    assert!(
        e.contains("billing_path") && e.contains("answered 404"),
        "{e}"
    );
    // Parts can be turned off.
    h.configure(json!({"url": server.url(""), "billing_path": "", "projections_path": ""}))
        .unwrap();
    let out = h.sync().unwrap();
    assert_eq!(out.events.len(), 1, "the budget only");
}
