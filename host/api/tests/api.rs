//! The API through its router, with real SQLite storage and the real pipeline (no sockets).

mod common;

use std::io::Write;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::key_for;
use hub_api::ApiConfig;
use hub_core::ApiKeyScope;
use hub_storage::Storage;
use serde_json::{Value, json};

struct Hub {
    app: Router,
    storage: Arc<dyn Storage>,
    key: String,
    _dir: tempfile::TempDir,
}

async fn hub_with(config: ApiConfig, queue_capacity: usize) -> Hub {
    let h = common::test_hub(config, queue_capacity).await;
    let key = key_for(
        &h.storage,
        "acme",
        vec![ApiKeyScope::Ingest, ApiKeyScope::Query],
    )
    .await;
    Hub {
        app: h.app,
        storage: h.storage,
        key,
        _dir: h.dir,
    }
}

async fn hub() -> Hub {
    hub_with(ApiConfig::default(), 100_000).await
}

fn now() -> i64 {
    hub_core::time::now_ms()
}

fn event(id: &str, model: &str, latency: f64, input: i64) -> Value {
    json!({"event_id": id, "timestamp": hub_core::time::to_rfc3339(now() - 60_000), "model": model, "provider": "openai",
           "app": "bot", "latency_ms": latency, "input_tokens": input, "output_tokens": 10, "status": "ok"})
}

impl Hub {
    async fn call(&self, req: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
        let (status, headers, body) = common::send(&self.app, req).await;
        (status, body, headers)
    }

    async fn post(
        &self,
        key: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let req = Request::post("/v1/events")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap();
        let (s, b, _) = self.call(req).await;
        (s, b)
    }

    async fn send(&self, events: &Value) -> (StatusCode, Value) {
        self.post(&self.key, "application/json", events.to_string())
            .await
    }

    async fn get(&self, key: &str, uri: &str) -> (StatusCode, Value) {
        let req = Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let (s, b, _) = self.call(req).await;
        (s, b)
    }
}

#[tokio::test]
async fn ingest_then_read_back_through_every_query() {
    let hub = hub().await;
    let events: Vec<Value> = (0..50)
        .map(|i| {
            event(
                &format!("e{i}"),
                if i % 2 == 0 { "gpt-4o" } else { "o3" },
                100.0 + i as f64,
                i,
            )
        })
        .collect();
    let (status, body) = hub.send(&json!(events)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body,
        json!({"accepted": 50, "pending": 0, "duplicates": 0, "rejected": []})
    );

    let (status, body) = hub
        .get(&hub.key, "/v1/metrics/summary?from=now-1h&group_by=model")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let groups = body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let gpt = groups
        .iter()
        .find(|g| g["key"]["model"] == "gpt-4o")
        .unwrap();
    assert_eq!(gpt["requests"], 25);
    assert_eq!(gpt["input_tokens"], (0..50).step_by(2).sum::<i64>());
    assert_eq!(gpt["output_tokens"], 250);
    let p50 = gpt["latency_ms"]["p50"].as_f64().unwrap();
    assert!((p50 - 124.0).abs() / 124.0 <= 0.01, "{p50}");

    let (status, body) = hub
        .get(
            &hub.key,
            "/v1/metrics/timeseries?from=now-10m&step=1m&metric=requests",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let total: f64 = body["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 50.0);

    let (status, page) = hub.get(&hub.key, "/v1/events?limit=20&model=gpt-4o").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["events"].as_array().unwrap().len(), 20);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page2) = hub
        .get(
            &hub.key,
            &format!("/v1/events?limit=20&model=gpt-4o&cursor={cursor}"),
        )
        .await;
    assert_eq!(page2["events"].as_array().unwrap().len(), 5);
    assert!(page2.get("next_cursor").is_none());

    let (status, one) = hub.get(&hub.key, "/v1/events/e7").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["model"], "o3");
    assert_eq!(
        one["payload"]["event_id"], "e7",
        "the original payload comes back"
    );
    assert_eq!(one["enriched_by"], json!([]), "no plugin touched it");
    let (status, found) = hub.get(&hub.key, "/v1/events?id=e4").await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let ids: Vec<&str> = found["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|id| id.starts_with("e4")),
        "{ids:?}"
    );
    let long = "x".repeat(257);
    let (status, body) = hub.get(&hub.key, &format!("/v1/events?id={long}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("id"), "{body}");
    let (status, body) = hub.get(&hub.key, "/v1/events/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn resends_are_idempotent_and_bad_neighbours_do_not_sink_good_events() {
    let hub = hub().await;
    let batch =
        json!([event("a", "m", 1.0, 1), {"model": "no-timestamp"}, event("b", "m", 2.0, 2)]);
    let (status, body) = hub.send(&batch).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["accepted"], 2);
    assert_eq!(
        body["rejected"],
        json!([{"index": 1, "errors": [{"field": "timestamp", "message": "is required (RFC 3339, e.g. 2026-11-25T10:30:00Z, or epoch milliseconds)"}]}])
    );
    let (status, body) = hub.send(&batch).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        (body["accepted"].as_u64(), body["duplicates"].as_u64()),
        (Some(0), Some(2))
    );
    let (status, body) = hub.send(&json!([{"model": 1}])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["accepted"], 0);
    assert_eq!(body["rejected"][0]["errors"].as_array().unwrap().len(), 2);
    let (_, summary) = hub.get(&hub.key, "/v1/metrics/summary?from=now-1h").await;
    assert_eq!(
        summary["groups"][0]["events"], 2,
        "resends are not counted twice"
    );
}

#[tokio::test]
async fn ndjson_wrapper_and_gzip_bodies() {
    let hub = hub().await;
    let ndjson = format!(
        "{}\n{}\n",
        event("n1", "m", 1.0, 1),
        event("n2", "m", 1.0, 1)
    );
    let (status, body) = hub.post(&hub.key, "application/x-ndjson", ndjson).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(2))
    );
    let (status, body) = hub
        .post(
            &hub.key,
            "application/json",
            json!({"events": [event("w1", "m", 1.0, 1)]}).to_string(),
        )
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(1))
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json!([event("g1", "m", 1.0, 1)]).to_string().as_bytes())
        .unwrap();
    let req = Request::post("/v1/events")
        .header(header::AUTHORIZATION, format!("Bearer {}", hub.key))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gz.finish().unwrap()))
        .unwrap();
    let (status, body, _) = hub.call(req).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(1)),
        "{body}"
    );
    assert_eq!(
        hub.storage
            .count_events(
                hub.storage
                    .tenants()
                    .tenant_by_name("acme")
                    .await
                    .unwrap()
                    .unwrap()
                    .id
            )
            .await
            .unwrap(),
        4
    );
}

#[tokio::test]
async fn whole_request_errors_have_the_right_status_and_message() {
    let config = ApiConfig {
        max_body_bytes: 4096,
        max_decompressed_bytes: 8192,
        ..Default::default()
    };
    let hub = hub_with(config, 100_000).await;
    // 401: missing, wrong, malformed.
    let req = Request::post("/v1/events").body(Body::from("[]")).unwrap();
    let (status, body, headers) = hub.call(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    // The key with its last character changed (to one it is not).
    let last = if hub.key.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &hub.key[..hub.key.len() - 1]);
    assert_eq!(
        hub.post(&wrong, "application/json", "[]").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        hub.post("garbage", "application/json", "[]").await.0,
        StatusCode::BAD_REQUEST,
        "not a key, so an access token, and a malformed one"
    );
    assert_eq!(
        hub.post(
            &format!("hub_{}", "x".repeat(300)),
            "application/json",
            "[]"
        )
        .await
        .0,
        StatusCode::BAD_REQUEST,
        "a key that long is malformed"
    );
    assert_eq!(
        hub.post(&"x".repeat(3000), "application/json", "[]")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    // 403: a query-only key cannot ingest.
    let reader = key_for(&hub.storage, "acme", vec![ApiKeyScope::Query]).await;
    let (status, body) = hub.post(&reader, "application/json", "[]").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'ingest' scope")
    );
    // 415.
    let (status, body) = hub.post(&hub.key, "text/csv", "a,b").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("application/x-ndjson")
    );
    // 413: body, decompressed body, batch size.
    let (status, body) = hub
        .post(&hub.key, "application/json", "x".repeat(5000))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4096 bytes"),
        "{body}"
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 100_000]).unwrap();
    let req = Request::post("/v1/events")
        .header(header::AUTHORIZATION, format!("Bearer {}", hub.key))
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gz.finish().unwrap()))
        .unwrap();
    let (status, body, _) = hub.call(req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("decompressed"),
        "{body}"
    );
    let many = format!("[{}]", vec!["{}"; 10_001].join(","));
    let big = hub_with(ApiConfig::default(), 100_000).await;
    let (status, body) = big.post(&big.key, "application/json", many).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit is 10000 events"),
        "{body}"
    );
    // 400: malformed JSON with line and column.
    let (status, body) = hub
        .post(&hub.key, "application/json", "{\n \"events\": [1,\n")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 3, column"),
        "{body}"
    );
}

#[tokio::test]
async fn a_saturated_pipeline_answers_429_with_retry_after() {
    let hub = hub_with(ApiConfig::default(), 5).await;
    let events: Vec<Value> = (0..6)
        .map(|i| event(&format!("s{i}"), "m", 1.0, 1))
        .collect();
    let req = Request::post("/v1/events")
        .header(header::AUTHORIZATION, format!("Bearer {}", hub.key))
        .body(Body::from(json!(events).to_string()))
        .unwrap();
    let (status, body, headers) = hub.call(req).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(
        hub.send(&json!(events[..5])).await.0,
        StatusCode::ACCEPTED,
        "a batch that fits still goes through"
    );
}

#[tokio::test]
async fn data_after_the_array_refuses_the_body_naming_where_it_starts() {
    let hub = hub().await;
    let (a, b) = (event("t1", "m", 1.0, 1), event("t2", "m", 1.0, 1));
    let body = format!("[{a}][{b}]");
    let (status, answer) = hub.post(&hub.key, "application/json", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let offset = a.to_string().len() + 2;
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "unexpected data at line 1, column {} (byte {offset})",
            offset + 1
        )),
        "{answer}"
    );
    let (_, page) = hub.get(&hub.key, "/v1/events").await;
    assert_eq!(page["events"], json!([]), "no half of the body is stored");
}

#[tokio::test]
async fn invalid_utf8_in_one_array_element_rejects_that_element_only() {
    let hub = hub().await;
    // The model's "@" becomes a byte that is not UTF-8.
    let mut line2 = event("u2", "m@", 1.0, 1).to_string().into_bytes();
    let at = line2.iter().position(|&b| b == b'@').unwrap();
    line2[at] = 0xff;
    let mut body = format!("[{},\n", event("u1", "m", 1.0, 1)).into_bytes();
    body.extend_from_slice(&line2);
    body.extend_from_slice(format!(",\n{}]", event("u3", "m", 1.0, 1)).as_bytes());
    let (status, answer) = hub.post(&hub.key, "application/json", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["accepted"], 2);
    assert_eq!(
        answer["rejected"],
        json!([{"index": 1, "errors": [{"field": "model",
            "message": format!("malformed JSON at line 2, column {}: not valid UTF-8", at + 1)}]}])
    );
    let (_, one) = hub.get(&hub.key, "/v1/events/u3").await;
    assert_eq!(one["event_id"], "u3", "{one}");
}

#[tokio::test]
async fn query_parameters_are_checked_and_named() {
    let hub = hub().await;
    let cases = [
        (
            "/v1/metrics/summary?group_by=region",
            "group_by",
            "allowed: source_module",
        ),
        ("/v1/metrics/summary?from=yesterday", "from", "RFC 3339"),
        (
            "/v1/metrics/summary?from=now&to=now-1h",
            "from",
            "before to",
        ),
        (
            "/v1/metrics/summary?filter=model",
            "filter",
            "dimension:value",
        ),
        (
            "/v1/metrics/summary?colour=red",
            "colour",
            "unknown parameter",
        ),
        ("/v1/metrics/timeseries?metric=p99", "metric", "latency_p99"),
        (
            "/v1/metrics/timeseries?step=30s",
            "step",
            "whole number of minutes",
        ),
        (
            "/v1/metrics/timeseries?step=1m&from=now-30d",
            "step",
            "larger step",
        ),
        ("/v1/events?limit=0", "limit", "1 to 1000"),
        ("/v1/events?cursor=%21", "cursor", "start again"),
    ];
    for (uri, param, needle) in cases {
        let (status, body) = hub.get(&hub.key, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["parameter"], param, "{uri}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{uri}: {body}"
        );
    }
    let ingest_only = key_for(&hub.storage, "acme", vec![ApiKeyScope::Ingest]).await;
    assert_eq!(
        hub.get(&ingest_only, "/v1/metrics/summary").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn another_tenants_data_is_invisible() {
    let hub = hub().await;
    hub.send(&json!([event("secret-1", "gpt-4o", 5.0, 5)]))
        .await;
    let other = key_for(
        &hub.storage,
        "globex",
        vec![ApiKeyScope::Ingest, ApiKeyScope::Query],
    )
    .await;
    assert_eq!(
        hub.get(&other, "/v1/events/secret-1").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(hub.get(&other, "/v1/events").await.1["events"], json!([]));
    assert_eq!(
        hub.get(&other, "/v1/metrics/summary?from=now-1h").await.1["groups"][0]["events"],
        0
    );
    // The same id sent by the other tenant is its own event.
    let (status, body) = hub
        .post(
            &other,
            "application/json",
            json!([event("secret-1", "x", 1.0, 1)]).to_string(),
        )
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(1))
    );
    assert_eq!(
        hub.get(&hub.key, "/v1/events/secret-1").await.1["model"],
        "gpt-4o"
    );
}

#[tokio::test]
async fn ops_routes_and_openapi_cover_everything() {
    let hub = hub().await;
    hub.send(&json!([event("m1", "m", 1.0, 1), {"bad": true}]))
        .await;
    let (status, _, _) = hub
        .call(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = hub
        .call(Request::get("/readyz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, text, _) = hub
        .call(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    for needle in [
        "hub_ingest_events_accepted_total 1",
        "hub_ingest_events_rejected_total{reason=\"timestamp\"} 1",
        "hub_ingest_ack_seconds_count 1",
        "hub_queue_depth_events",
        "hub_pipeline_commits",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let (status, doc, _) = hub
        .call(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    // Routes and their entries come from one declaration; every documented operation is served
    // (no 404 or 405 from the router), whatever its path parameters.
    assert_eq!(doc, hub_api::openapi_json());
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let uri = path
                .replace("{version}", "1.0.0")
                .split('/')
                .map(|part| if part.starts_with('{') { "x" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            let (status, body, _) = hub.call(req).await;
            let message = body["error"]["message"].as_str().unwrap_or("");
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED
                    && (status != StatusCode::NOT_FOUND || !message.contains("no such route")),
                "{method} {path}: {status} {body}"
            );
        }
    }
    // Every annotated handler is routed, and no route is added beside `routes!`.
    let (mut annotated, mut bare) = (0, Vec::new());
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            annotated += text.matches("#[utoipa::path(").count();
            if text.contains(".route(") || text.contains(".route_service(") {
                bare.push(path);
            }
        }
    }
    assert_eq!(operations, annotated, "handlers annotated but not routed");
    assert!(bare.is_empty(), "routes declared without routes!: {bare:?}");
    let (status, body, _) = hub
        .call(Request::get("/v2/nothing").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("openapi.json")
    );
}

#[tokio::test]
async fn the_admin_ui_is_served_outside_the_api_with_its_own_headers() {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(
        web.path().join("index.html"),
        "<!doctype html><div id=root></div>",
    )
    .unwrap();
    std::fs::create_dir(web.path().join("assets")).unwrap();
    std::fs::write(web.path().join("assets/app-123.js"), "console.log(1)").unwrap();
    let hub = common::test_hub(
        ApiConfig {
            web_dir: Some(web.path().to_path_buf()),
            ..Default::default()
        },
        1000,
    )
    .await;
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    for path in ["/", "/plugins", "/settings/keys?x=1"] {
        let (status, headers, body) = common::send(&hub.app, get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.as_str().unwrap().contains("id=root"), "{path}: {body}");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-cache");
    }
    let (status, headers, _) = common::send(&hub.app, get("/assets/app-123.js")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    // The API keeps its JSON 404s; nothing but GET reaches the UI.
    let (status, _, body) = common::send(&hub.app, get("/v1/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("openapi.json")
    );
    let post = Request::post("/plugins").body(Body::empty()).unwrap();
    assert_eq!(common::send(&hub.app, post).await.0, StatusCode::NOT_FOUND);
    // A path that climbs out of the directory gets the page, never a file outside it.
    let (_, _, body) = common::send(&hub.app, get("/../../etc/passwd")).await;
    assert!(!body.to_string().contains("root:"), "{body}");
}

#[tokio::test]
async fn settings_show_the_operators_choices_to_readers_of_configuration() {
    let hub = common::test_hub(
        ApiConfig {
            settings: serde_json::json!({"sso": {"enabled": false}, "retention": {"raw_ms": 86_400_000, "day_ms": null}}),
            ..Default::default()
        },
        1000,
    )
    .await;
    let query = key_for(&hub.storage, "acme", vec![ApiKeyScope::Query]).await;
    let ingest = key_for(&hub.storage, "acme", vec![ApiKeyScope::Ingest]).await;
    let get = |path: &str, key: &str| {
        let mut r = Request::get(path);
        if !key.is_empty() {
            r = r.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        r.body(Body::empty()).unwrap()
    };
    let (status, _, body) = common::send(&hub.app, get("/v1/settings", &query)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["retention"]["raw_ms"], 86_400_000);
    assert_eq!(body["sso"]["enabled"], false);
    assert_eq!(body["public_catalog"], false);
    let (status, _, _) = common::send(&hub.app, get("/v1/settings", &ingest)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = common::send(&hub.app, get("/v1/settings", "")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // How to sign in is public: the login page asks before anyone has a session.
    let (status, _, body) = common::send(&hub.app, get("/v1/auth/providers", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!({"password": true, "sso": false}));
}
