//! Cost through the API, with the real pipeline and the real `cost` component: the envelope
//! example's call counted once, an OpenAI-style nested usage read with its cached and reasoning
//! tokens, unpriced models reported as unpriced (not $0), impossible counts refused by name, and
//! history priced again after a price changes.

mod common;

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hub_core::ApiKeyScope;
use hub_plugins::GrantsDoc;
use serde_json::{Value, json};

struct Hub {
    app: Router,
    key: String,
    storage: std::sync::Arc<dyn hub_storage::Storage>,
    host: std::sync::Arc<hub_plugins::PluginHost>,
    _dir: tempfile::TempDir,
}

async fn hub() -> Hub {
    let (t, host) = common::plugin_hub(Default::default(), Default::default()).await;
    let key = common::key_for(&t.storage, "acme", ApiKeyScope::ALL.to_vec()).await;
    install(&t.storage, &host, "cost", None, false).await;
    Hub {
        app: t.app,
        key,
        storage: t.storage,
        host,
        _dir: t.dir,
    }
}

/// Installs the plugin built from `plugins/<dir>` for acme, enabled, with `kv` granted or not.
async fn install(
    storage: &std::sync::Arc<dyn hub_storage::Storage>,
    host: &hub_plugins::PluginHost,
    dir: &str,
    config: Option<Value>,
    kv: bool,
) {
    let acme = storage
        .tenants()
        .tenant_by_name("acme")
        .await
        .unwrap()
        .unwrap()
        .id;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins")
        .join(dir);
    let (m, w) = hub_plugin_sdk::testing::built_plugin(path).unwrap();
    let grants = GrantsDoc { kv, http: vec![] };
    host.install(acme, &m, w, config, grants, true)
        .await
        .unwrap();
}

impl Hub {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        ctype: &str,
        body: String,
    ) -> (StatusCode, Value) {
        self.call_as(&self.key, method, uri, ctype, body).await
    }

    /// As [`Hub::call`], with another key.
    async fn call_as(
        &self,
        key: &str,
        method: &str,
        uri: &str,
        ctype: &str,
        body: String,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
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

impl Hub {
    /// Works the queued re-pricing jobs to their end, as `hub serve`'s runner does.
    async fn run_reprices(&self) {
        hub_pipeline::Repricer::new(self.storage.clone(), self.host.clone(), Default::default())
            .run_until_idle()
            .await
            .unwrap();
    }

    async fn reprice(&self, body: Value) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/v1/costs/reprice",
            "application/json",
            body.to_string(),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_price_reprices_history_once_and_only_when_asked() {
    let hub = hub().await;
    let now = hub_core::time::now_ms();
    let (s, body) = hub
        .call(
            "POST",
            "/v1/events",
            "application/x-ndjson",
            envelope_example(),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    hub.send(&json!([
        {"event_id": "a", "timestamp": now - 600_000, "model": "gpt-4o", "provider": "openai",
         "input_tokens": 1000, "output_tokens": 100},
        {"event_id": "b", "timestamp": now - 300_000, "model": "gpt-4o", "provider": "openai",
         "input_tokens": 2000, "output_tokens": 300},
        {"event_id": "c", "timestamp": now - 200_000, "model": "acme-support-llm",
         "input_tokens": 4000, "output_tokens": 1000},
        {"event_id": "d", "timestamp": now - 100_000, "model": "claude-sonnet-4-5",
         "provider": "anthropic", "input_tokens": 100, "output_tokens": 10},
    ]))
    .await;
    let list_price = |i: f64, o: f64| i * 2.5e-6 + o * 10e-6;
    let claude = 100.0 * 3e-6 + 10.0 * 15e-6;
    let before = hub.get("/v1/metrics/summary?from=now-2h").await["groups"][0].clone();
    let want_before = 0.00425 + list_price(1000.0, 100.0) + list_price(2000.0, 300.0) + claude;
    assert!(close(&before["cost_usd"], want_before), "{before}");
    assert_eq!(before["unpriced_events"], 1, "{before}");

    // The tenant negotiates 10% off OpenAI and prices its own model.
    let (s, body) = hub
        .call(
            "PUT",
            "/v1/plugins/cost",
            "application/json",
            json!({"config": {
                "discounts": [{"provider": "openai", "percent": 10}],
                "models": [{"model": "acme-support-llm", "input_usd_per_million": 0.5,
                            "output_usd_per_million": 1.5}]}})
            .to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    hub.run_reprices().await;
    let unchanged = hub.get("/v1/metrics/summary?from=now-2h").await["groups"][0].clone();
    assert_eq!(
        unchanged["cost_usd"], before["cost_usd"],
        "new prices price new events only"
    );

    let (s, job) = hub.reprice(json!({"from": "now-1d", "filters": {}})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["status"], "queued");
    let id = job["id"].as_i64().unwrap();
    hub.run_reprices().await;
    let job = hub.get(&format!("/v1/costs/reprice/{id}")).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["error"], Value::Null, "{job}");
    assert!(job["events_examined"].as_i64().unwrap() >= 4, "{job}");
    // a, b and c changed; d (Anthropic) and the envelope's call (reported by CostOps; the usage
    // event's estimate changes beside it) are as they were except for that estimate.
    assert_eq!(job["events_changed"], 4, "{job}");

    let after = hub.get("/v1/metrics/summary?from=now-2h").await["groups"][0].clone();
    let custom = 4000.0 * 0.5e-6 + 1000.0 * 1.5e-6;
    let want_after =
        0.00425 + 0.9 * (list_price(1000.0, 100.0) + list_price(2000.0, 300.0)) + custom + claude;
    assert!(
        close(&after["cost_usd"], want_after),
        "{after} vs {want_after}"
    );
    assert_eq!(after["unpriced_events"], 0, "{after}");
    assert!(close(&after["reported_cost_usd"], 0.00425), "{after}");
    assert!(
        close(
            &job["cost_after_usd"],
            job["cost_before_usd"].as_f64().unwrap() + want_after - want_before
        ),
        "{job}"
    );
    // Per model, as the overview's breakdown reads it.
    let by_model = hub
        .get("/v1/metrics/summary?from=now-2h&group_by=model")
        .await;
    let custom_group = by_model["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"]["model"] == "acme-support-llm")
        .unwrap()
        .clone();
    assert!(close(&custom_group["cost_usd"], custom), "{custom_group}");
    assert_eq!(custom_group["unpriced_events"], 0);
    let e = hub.get("/v1/events/a").await;
    assert!(
        close(&e["cost_usd"], 0.9 * list_price(1000.0, 100.0)),
        "{e}"
    );
    assert!(
        close(&e["estimated_cost_usd"], 0.9 * list_price(1000.0, 100.0)),
        "{e}"
    );
    // The envelope's call still counts once, at what CostOps reported.
    let usage = hub
        .get("/v1/events/5eed0000-0000-0000-0000-000000000002")
        .await;
    assert_eq!(usage["cost_usd"], 0.0, "{usage}");
    assert!(
        close(&usage["estimated_cost_usd"], 0.9 * 0.00425),
        "{usage}"
    );

    // Asked again, nothing changes.
    let (s, again) = hub.reprice(json!({"from": "now-1d"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{again}");
    hub.run_reprices().await;
    let again = hub.get(&format!("/v1/costs/reprice/{}", again["id"])).await;
    assert_eq!(
        (&again["status"], &again["events_changed"]),
        (&json!("done"), &json!(0)),
        "{again}"
    );
    let still = hub.get("/v1/metrics/summary?from=now-2h").await["groups"][0].clone();
    assert!(close(&still["cost_usd"], want_after), "{still}");
    let jobs = hub.get("/v1/costs/reprice").await;
    assert_eq!(jobs.as_array().unwrap().len(), 2);

    // Audited, with what was asked.
    let audit = hub.get("/v1/audit?action=costs.reprice").await;
    let entries = audit["records"].as_array().unwrap().clone();
    assert!(
        entries
            .iter()
            .filter(|e| e["action"] == "costs.reprice")
            .count()
            >= 2,
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repricing_refuses_what_it_cannot_do_by_name() {
    let hub = hub().await;
    let (s, body) = hub.reprice(json!({"from": "now-200d"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("200 days")
            && text.contains("92 days")
            && text.contains("--reprice-max-range"),
        "{body}"
    );
    assert_eq!(body["error"]["parameter"], "from", "{body}");
    let (s, body) = hub.reprice(json!({"from": "now-1d", "to": "now-2d"})).await;
    assert_eq!(
        (s, &body["error"]["parameter"]),
        (StatusCode::BAD_REQUEST, &json!("to")),
        "{body}"
    );
    let (s, body) = hub
        .reprice(json!({"from": "now-1d", "filters": {"colour": "red"}}))
        .await;
    assert_eq!(
        (s, &body["error"]["parameter"]),
        (StatusCode::BAD_REQUEST, &json!("filters.colour")),
        "{body}"
    );
    let (s, body) = hub.reprice(json!({"from": "yesterday"})).await;
    assert_eq!(
        (s, &body["error"]["parameter"]),
        (StatusCode::BAD_REQUEST, &json!("from")),
        "{body}"
    );
    let (s, body) = hub.reprice(json!({"from": "now-1d", "extra": 1})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

    // One job at a time per tenant.
    let (s, first) = hub
        .reprice(json!({"from": "now-1d", "filters": {"model": "gpt-4o"}}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["filters"], json!({"model": "gpt-4o"}));
    let (s, body) = hub.reprice(json!({"from": "now-1d"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(
        body.to_string().contains(&format!("job {}", first["id"])),
        "{body}"
    );
    let (s, cancelled) = hub
        .call(
            "POST",
            &format!("/v1/costs/reprice/{}/cancel", first["id"]),
            "application/json",
            String::new(),
        )
        .await;
    assert_eq!(
        (s, &cancelled["status"]),
        (StatusCode::OK, &json!("cancelled")),
        "{cancelled}"
    );
    let (s, _) = hub.reprice(json!({"from": "now-1d"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "a cancelled job frees the tenant");

    // Another tenant sees none of it, and cannot re-price without an enricher; a query key
    // cannot start a job.
    let other = common::key_for(&hub.storage, "globex", ApiKeyScope::ALL.to_vec()).await;
    let reader = common::key_for(&hub.storage, "acme", vec![ApiKeyScope::Query]).await;
    let (job, cancel) = (
        format!("/v1/costs/reprice/{}", first["id"]),
        format!("/v1/costs/reprice/{}/cancel", first["id"]),
    );
    let start = json!({"from": "now-1d"}).to_string();
    for (key, method, uri, body, want) in [
        (&other, "GET", job.as_str(), "", StatusCode::NOT_FOUND),
        (&other, "POST", cancel.as_str(), "", StatusCode::NOT_FOUND),
        (
            &other,
            "POST",
            "/v1/costs/reprice",
            start.as_str(),
            StatusCode::CONFLICT,
        ),
        (
            &reader,
            "POST",
            "/v1/costs/reprice",
            start.as_str(),
            StatusCode::FORBIDDEN,
        ),
        (&reader, "GET", "/v1/costs/reprice", "", StatusCode::OK),
    ] {
        let (s, body) = hub
            .call_as(key, method, uri, "application/json", body.to_string())
            .await;
        assert_eq!(s, want, "{method} {uri}: {body}");
        if s == StatusCode::CONFLICT {
            assert!(body.to_string().contains("cost plugin"), "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enricher_that_fails_fails_the_job_and_changes_nothing() {
    let hub = hub().await;
    let now = hub_core::time::now_ms();
    hub.send(&json!([
        {"event_id": "a", "timestamp": now - 60_000, "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100},
        {"event_id": "b", "timestamp": now - 30_000, "model": "acme-support-llm", "input_tokens": 10, "output_tokens": 1},
    ]))
    .await;
    let before = hub.get("/v1/metrics/summary?from=now-1h").await["groups"][0].clone();
    // A plugin that panics on every batch, after the cost plugin (a new one runs last).
    install(
        &hub.storage,
        &hub.host,
        "testing/misbehave",
        Some(json!({"mode": "panic"})),
        true,
    )
    .await;
    let (s, job) = hub.reprice(json!({"from": "now-1h"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    hub.run_reprices().await;
    let job = hub.get(&format!("/v1/costs/reprice/{}", job["id"])).await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("plugin `misbehave` failed")
            && error.contains("nothing of that page was changed"),
        "{job}"
    );
    assert_eq!(
        (&job["events_examined"], &job["events_changed"]),
        (&json!(0), &json!(0))
    );
    let after = hub.get("/v1/metrics/summary?from=now-1h").await["groups"][0].clone();
    assert_eq!(
        (&after["cost_usd"], &after["unpriced_events"]),
        (&before["cost_usd"], &before["unpriced_events"]),
        "a failed estimate is not \"unpriced\""
    );
    // The tenant is free to ask again once the plugin is fixed.
    let (s, _) = hub.reprice(json!({"from": "now-1h"})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_day_shows_what_the_hub_counts_beside_what_was_billed() {
    let hub = hub().await;
    let now = hub_core::time::now_ms();
    let today = hub_core::time::to_rfc3339(now)[..10].to_string();
    hub.send(&json!([
        // Reported by the sender, and estimated by the cost plugin.
        {"event_id": "paid", "timestamp": now, "model": "gpt-4o", "cost_usd": 3.0},
        {"event_id": "estimated", "timestamp": now, "model": "gpt-4o",
         "input_tokens": 1_000_000, "output_tokens": 0},
        // A billing line (as CostOps's integration brings them, or CostOps sends them): its
        // amount is not the hub's cost.
        {"event_id": "bill-1", "timestamp": now, "source_module": "llm-cost-ops",
         "event_type": "billing", "payload": {"payload_type": "billing", "data": {
            "billing_type": "daily", "date": today, "model": "gpt-4o", "billed_usd": 6.0}}},
    ]))
    .await;
    let v = hub.get("/v1/costs/daily").await;
    let days = v["days"].as_array().unwrap();
    assert_eq!(days.len(), 7, "the seven days ending with today: {v}");
    let d = days.last().unwrap();
    assert_eq!(d["date"], today.as_str());
    // 1M input tokens of gpt-4o at $2.50/M, and the $3 reported.
    assert!(close(&d["counted_usd"], 5.5), "{d}");
    assert!(close(&d["estimated_usd"], 2.5), "{d}");
    assert!(close(&d["reported_usd"], 3.0), "{d}");
    assert!(close(&d["billed_usd"], 6.0), "{d}");
    assert!(close(&d["difference_usd"], 0.5), "{d}");
    assert_eq!(d["billed_lines"], 1);
    assert!(days[0]["billed_usd"].is_null(), "{v}");
    let (s, e) = hub
        .call(
            "GET",
            "/v1/costs/daily?from=now-100d",
            "application/json",
            String::new(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(e.to_string().contains("92 days"), "{e}");
}
