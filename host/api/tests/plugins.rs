//! `/v1/plugins` through the router, with real storage, the real pipeline and the real `cost`
//! component: listing, configuration errors with JSON paths, order, scopes, tenant isolation,
//! and events enriched end to end.

mod common;

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use hub_core::ApiKeyScope;
use hub_plugins::GrantsDoc;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Hub {
    app: Router,
    query: String,
    admin: String,
    other_admin: String,
    _dir: tempfile::TempDir,
}

fn plugin(name: &str) -> (String, Vec<u8>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins")
        .join(name);
    hub_plugin_sdk::testing::built_plugin(dir).unwrap()
}

async fn hub() -> Hub {
    let (t, host) = common::plugin_hub(Default::default(), Default::default()).await;
    let (app, storage, dir) = (t.app, t.storage, t.dir);
    let query = common::key_for(
        &storage,
        "acme",
        vec![ApiKeyScope::Ingest, ApiKeyScope::Query],
    )
    .await;
    let admin = common::key_for(&storage, "acme", vec![ApiKeyScope::Admin]).await;
    let other_admin = common::key_for(
        &storage,
        "globex",
        vec![ApiKeyScope::Admin, ApiKeyScope::Query],
    )
    .await;
    let acme = storage
        .tenants()
        .tenant_by_name("acme")
        .await
        .unwrap()
        .unwrap()
        .id;
    for name in ["cost", "registry"] {
        let (m, w) = plugin(name);
        let grants = GrantsDoc {
            kv: name == "registry",
            http: vec![],
        };
        host.install(acme, &m, w, None, grants, true).await.unwrap();
    }
    Hub {
        app,
        query,
        admin,
        other_admin,
        _dir: dir,
    }
}

impl Hub {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        key: &str,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, body)
    }
}

fn names(v: &Value) -> Vec<String> {
    v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_configures_reorders_and_enriches() {
    let hub = hub().await;
    let (s, list) = hub.call("GET", "/v1/plugins", &hub.query, None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(names(&list), ["cost", "registry"]);
    let cost = &list["plugins"][0];
    assert_eq!(cost["kind"], "enricher");
    assert_eq!(cost["enabled"], true);
    assert_eq!(cost["config"], json!({}));
    assert_eq!(
        cost["config_schema"]["properties"]["discounts"]["type"],
        "array"
    );
    assert_eq!(cost["limits"]["deadline_ms"], 50);
    assert_eq!(
        list["plugins"][1]["grants"],
        json!({"kv": true, "http": []})
    );

    // Events through the API come back enriched.
    let now = hub_core::time::to_rfc3339(hub_core::time::now_ms());
    let events = json!([{"event_id": "e1", "timestamp": now, "model": "gpt-4o", "input_tokens": 1000000, "output_tokens": 0}]);
    let (s, body) = hub
        .call("POST", "/v1/events", &hub.query, Some(events.to_string()))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let (_, e) = hub.call("GET", "/v1/events/e1", &hub.query, None).await;
    assert!((e["cost_usd"].as_f64().unwrap() - 2.5).abs() < 1e-9, "{e}");
    assert_eq!(e["tags"]["model_family"], "gpt-4o", "{e}");
    assert_eq!(
        e["enriched_by"][0],
        json!({"plugin": "cost", "fields": ["cost_usd"]}),
        "the detail says which plugin filled what: {e}"
    );
    assert_eq!(e["enriched_by"][1]["plugin"], "registry", "{e}");

    // A configuration that fails the schema: 400 naming the JSON path; nothing changes.
    let bad = json!({"config": {"discounts": [{"provider": "openai", "percent": 150}]}});
    let (s, err) = hub
        .call("PUT", "/v1/plugins/cost", &hub.admin, Some(bad.to_string()))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(
        err["error"]["parameter"], "config/discounts/0/percent",
        "{err}"
    );
    assert!(
        err["error"]["message"].as_str().unwrap().contains("150"),
        "{err}"
    );
    let (s, err) = hub
        .call(
            "PUT",
            "/v1/plugins/cost",
            &hub.admin,
            Some(r#"{"enabled": "yes"}"#.into()),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["parameter"], "enabled", "{err}");
    let (s, _) = hub
        .call(
            "PUT",
            "/v1/plugins/cost",
            &hub.admin,
            Some("{not json".into()),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // A good one, then events priced with the discount.
    let good = json!({"config": {"discounts": [{"provider": "openai", "percent": 20}]}});
    let (s, p) = hub
        .call(
            "PUT",
            "/v1/plugins/cost",
            &hub.admin,
            Some(good.to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["config"]["discounts"][0]["percent"], 20);
    let events = json!([{"event_id": "e2", "timestamp": now, "model": "gpt-4o", "input_tokens": 1000000, "output_tokens": 0}]);
    hub.call("POST", "/v1/events", &hub.query, Some(events.to_string()))
        .await;
    let (_, e) = hub.call("GET", "/v1/events/e2", &hub.query, None).await;
    assert!((e["cost_usd"].as_f64().unwrap() - 2.0).abs() < 1e-9, "{e}");

    // Order and enabled, for the whole list; a bad entry changes nothing.
    let body = json!({"plugins": [{"name": "registry"}, {"name": "cost", "enabled": false}]});
    let (s, list) = hub
        .call("PUT", "/v1/plugins", &hub.admin, Some(body.to_string()))
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(names(&list), ["registry", "cost"]);
    assert_eq!(list["plugins"][1]["enabled"], false);
    let body = json!({"plugins": [{"name": "cost", "enabled": true}, {"name": "nope"}]});
    let (s, err) = hub
        .call("PUT", "/v1/plugins", &hub.admin, Some(body.to_string()))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["parameter"], "plugins[1].name");
    let body = json!({"plugins": [{"name": "cost", "enabled": true}, {"name": "registry", "config": {"deprecation_warning_days": -1}}]});
    let (s, err) = hub
        .call("PUT", "/v1/plugins", &hub.admin, Some(body.to_string()))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        err["error"]["parameter"], "plugins[1].config/deprecation_warning_days",
        "{err}"
    );
    let (_, list) = hub.call("GET", "/v1/plugins", &hub.query, None).await;
    assert_eq!(
        list["plugins"][1]["enabled"], false,
        "the first entry was not applied either"
    );

    // Health after calls.
    let (_, p) = hub
        .call("GET", "/v1/plugins/registry", &hub.query, None)
        .await;
    assert_eq!(p["health"]["calls"], 2, "{p}");
    assert!(p["health"]["p50_ms"].as_f64().unwrap() > 0.0, "{p}");

    // Metrics name the plugins.
    let (_, m) = hub.call("GET", "/metrics", &hub.query, None).await;
    assert!(
        m.as_str()
            .unwrap()
            .contains("hub_plugin_calls{plugin=\"registry\"} 2"),
        "{m}"
    );
    // And the memory the live instances hold, under the cap, and the process's.
    let gauge = |name: &str| -> f64 {
        m.as_str()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {m}"))
            .parse()
            .unwrap()
    };
    let held = gauge("hub_plugin_memory_bytes");
    assert!(
        held > 0.0 && held < gauge("hub_plugin_memory_cap_bytes"),
        "{m}"
    );
    assert!(gauge("hub_process_resident_bytes") > held, "{m}");

    // Uninstall.
    let (s, _) = hub
        .call("DELETE", "/v1/plugins/cost?purge_kv=true", &hub.admin, None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = hub.call("GET", "/v1/plugins", &hub.query, None).await;
    assert_eq!(names(&list), ["registry"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_and_tenants_are_enforced() {
    let hub = hub().await;
    let body = Some(json!({"enabled": false}).to_string());
    let (s, err) = hub
        .call("PUT", "/v1/plugins/cost", &hub.query, body.clone())
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{err}");
    let (s, _) = hub
        .call("DELETE", "/v1/plugins/cost", &hub.query, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = hub.call("GET", "/v1/plugins", "hub_nope_nope", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Another tenant sees none of acme's plugins, and cannot touch them.
    let (s, list) = hub.call("GET", "/v1/plugins", &hub.other_admin, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(names(&list), Vec::<String>::new());
    for (method, uri, body) in [
        ("GET", "/v1/plugins/cost", None),
        ("PUT", "/v1/plugins/cost", body.clone()),
        ("DELETE", "/v1/plugins/cost", None),
    ] {
        let (s, err) = hub.call(method, uri, &hub.other_admin, body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {uri}: {err}");
    }
    let (s, _) = hub.call("GET", "/v1/plugins/cost", &hub.admin, None).await;
    assert_eq!(s, StatusCode::OK, "admin may read");
}
