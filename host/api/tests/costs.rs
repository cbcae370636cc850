//! Cost through the API, with the real pipeline and the real `cost` component: the envelope
//! example's call counted once, an OpenAI-style nested usage read with its cached and reasoning
//! tokens, unpriced models reported as unpriced (not $0), and impossible counts refused by name.

mod common;

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hub_core::ApiKeyScope;
use hub_pipeline::plugins::GrantsDoc;
use serde_json::{Value, json};

struct Hub {
    app: Router,
    key: String,
    _dir: tempfile::TempDir,
}

async fn hub() -> Hub {
    let (t, host) = common::plugin_hub(Default::default(), Default::default()).await;
    let key = common::key_for(
        &t.storage,
        "acme",
        vec![ApiKeyScope::Ingest, ApiKeyScope::Query],
    )
    .await;
    let acme = t.storage.tenant_by_name("acme").await.unwrap().unwrap().id;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/cost");
    let (m, w) = hub_plugin_sdk::testing::built_plugin(dir).unwrap();
    host.install(acme, &m, w, None, GrantsDoc::default(), true)
        .await
        .unwrap();
    Hub {
        app: t.app,
        key,
        _dir: t.dir,
    }
}

impl Hub {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        ctype: &str,
        body: String,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::CONTENT_TYPE, ctype)
            .body(Body::from(body))
            .unwrap();
        let (s, _, v) = common::send(&self.app, req).await;
        (s, v)
    }

    async fn get(&self, uri: &str) -> Value {
        let (s, v) = self
            .call("GET", uri, "application/json", String::new())
            .await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
        v
    }

    async fn send(&self, events: &Value) -> Value {
        let (s, v) = self
            .call("POST", "/v1/events", "application/json", events.to_string())
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        v
    }
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-12)
}

/// `examples/upstream-envelope.ndjson`, moved to the last hour (it is dated the examples' morning).
fn envelope_example() -> String {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/upstream-envelope.ndjson"),
    )
    .unwrap();
    let start = hub_core::time::now_ms() - 3_600_000;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            v["timestamp"] = json!(start + i as i64 * 60_000);
            v.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_envelope_examples_call_costs_what_costops_reported_once() {
    let hub = hub().await;
    let (s, body) = hub
        .call(
            "POST",
            "/v1/events",
            "application/x-ndjson",
            envelope_example(),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["rejected"], json!([]), "{body}");
    let summary = hub.get("/v1/metrics/summary?from=now-2h").await;
    let g = &summary["groups"][0];
    // req-1: 500 prompt and 300 completion tokens of gpt-4o, which CostOps reported at $0.00425
    // and the cost plugin estimated at 500 × $2.50/M + 300 × $10/M = $0.00425.
    assert!(close(&g["cost_usd"], 0.00425), "counted once: {g}");
    assert!(close(&g["reported_cost_usd"], 0.00425), "{g}");
    assert!(close(&g["estimated_cost_usd"], 0.00425), "{g}");
    assert_eq!(g["unpriced_events"], 0, "{g}");

    // The usage event keeps its estimate but no longer counts it; the cost event holds the call.
    let usage = hub
        .get("/v1/events/5eed0000-0000-0000-0000-000000000002")
        .await;
    assert_eq!(usage["cost_usd"], 0.0, "{usage}");
    assert!(close(&usage["estimated_cost_usd"], 0.00425), "{usage}");
    assert_eq!(usage["unpriced"], false);
    let cost = hub
        .get("/v1/events/5eed0000-0000-0000-0000-000000000007")
        .await;
    assert!(close(&cost["cost_usd"], 0.00425), "{cost}");
    assert!(close(&cost["reported_cost_usd"], 0.00425), "{cost}");

    // Per module, the spend sits with CostOps.
    let by_module = hub
        .get("/v1/metrics/summary?from=now-2h&group_by=source_module")
        .await;
    for g in by_module["groups"].as_array().unwrap() {
        let want = if g["key"]["source_module"] == "llm-cost-ops" {
            0.00425
        } else {
            0.0
        };
        assert!(close(&g["cost_usd"], want), "{g}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_usage_details_and_unpriced_models_reach_the_summary() {
    let hub = hub().await;
    let now = hub_core::time::now_ms();
    hub.send(&json!([
        {"event_id": "openai", "timestamp": now, "model": "gpt-4o", "usage": {
            "prompt_tokens": 1000, "completion_tokens": 100,
            "prompt_tokens_details": {"cached_tokens": 800},
            "completion_tokens_details": {"reasoning_tokens": 40}}},
        {"event_id": "anthropic", "timestamp": now, "model": "claude-sonnet-4-5", "usage": {
            "input_tokens": 10, "output_tokens": 20,
            "cache_read_input_tokens": 300, "cache_creation_input_tokens": 50}},
        {"event_id": "unknown", "timestamp": now, "model": "acme-private-llm",
         "input_tokens": 70, "output_tokens": 5},
        {"event_id": "batch", "timestamp": now, "model": "gpt-4o", "service_tier": "batch",
         "input_tokens": 10000, "output_tokens": 500},
    ]))
    .await;
    let e = hub.get("/v1/events/openai").await;
    assert_eq!(
        (
            &e["input_tokens"],
            &e["output_tokens"],
            &e["cache_read_tokens"],
            &e["reasoning_tokens"]
        ),
        (&json!(1000), &json!(100), &json!(800), &json!(40)),
        "{e}"
    );
    // Priced part by part through hub:plugin@0.2.0: 200 input at $2.50/M, 800 cache reads at
    // $1.25/M, 100 output (40 of them reasoning) at $10/M.
    let want = 200.0 * 2.5e-6 + 800.0 * 1.25e-6 + 100.0 * 10e-6;
    assert!(close(&e["cost_usd"], want), "{e}");
    let e = hub.get("/v1/events/anthropic").await;
    // 10 input at $3/M, 300 cache reads at $0.30/M, 50 cache writes at $3.75/M, 20 output at $15/M.
    let want = 10.0 * 3e-6 + 300.0 * 0.3e-6 + 50.0 * 3.75e-6 + 20.0 * 15e-6;
    assert!(close(&e["cost_usd"], want), "{e}");
    assert_eq!(
        (
            &e["input_tokens"],
            &e["cache_read_tokens"],
            &e["cache_write_tokens"]
        ),
        (&json!(360), &json!(300), &json!(50)),
        "Anthropic's cache counts are added to the input: {e}"
    );
    let e = hub.get("/v1/events/batch").await;
    assert_eq!(e["service_tier"], "batch", "{e}");
    let want = 10_000.0 * 1.25e-6 + 500.0 * 5e-6;
    assert!(
        close(&e["cost_usd"], want),
        "a batch call at batch prices: {e}"
    );
    let e = hub.get("/v1/events/unknown").await;
    assert_eq!(
        (&e["cost_usd"], &e["unpriced"]),
        (&Value::Null, &json!(true)),
        "{e}"
    );

    let summary = hub
        .get("/v1/metrics/summary?from=now-1h&group_by=model")
        .await;
    let group = |m: &str| {
        summary["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"]["model"] == m)
            .unwrap_or_else(|| panic!("{m}: {summary}"))
            .clone()
    };
    let g = group("gpt-4o");
    assert_eq!(
        (&g["cache_read_tokens"], &g["reasoning_tokens"]),
        (&json!(800), &json!(40))
    );
    assert_eq!(g["unpriced_events"], 0);
    let g = group("acme-private-llm");
    assert_eq!(
        (&g["unpriced_events"], &g["unpriced_tokens"], &g["cost_usd"]),
        (&json!(1), &json!(75), &json!(0.0)),
        "{g}"
    );
    let series = hub
        .get("/v1/metrics/timeseries?from=now-1h&step=1h&metric=unpriced_events")
        .await;
    let total: f64 = series["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["value"].as_f64())
        .sum();
    assert_eq!(total, 1.0, "{series}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_counts_are_refused_naming_the_field() {
    let hub = hub().await;
    let now = hub_core::time::now_ms();
    let body = hub
        .send(&json!([
            {"timestamp": now, "model": "gpt-4o", "usage": {"prompt_tokens": 10,
                "prompt_tokens_details": {"cached_tokens": 11}}},
            {"timestamp": now, "model": "gpt-4o", "input_tokens": 5, "cache_read_tokens": 1.5},
            {"timestamp": now, "model": "gpt-4o", "input_tokens": 5, "output_tokens": 1},
        ]))
        .await;
    assert_eq!(body["accepted"], 1, "the good neighbour is kept: {body}");
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!(
        rejected[0]["errors"][0]["field"], "usage.prompt_tokens_details.cached_tokens",
        "{body}"
    );
    assert_eq!(
        rejected[1]["errors"][0]["field"], "cache_read_tokens",
        "{body}"
    );
}
