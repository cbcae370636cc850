//! `/v1/plugins` through the router, with real storage, the real pipeline and the real `cost`
//! component: listing, configuration errors with JSON paths, order, scopes, tenant isolation,
//! events enriched end to end; detectors' anomalies and forecasts as the API serves them.

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
    storage: std::sync::Arc<dyn hub_storage::Storage>,
    host: std::sync::Arc<hub_plugins::PluginHost>,
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
    let storage = storage.clone();
    Hub {
        app,
        storage,
        host,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_and_forecasts_are_served_to_their_tenant_only() {
    use hub_core::time::{MINUTE_MS, floor_to};
    let hub = hub().await;
    let acme = hub
        .storage
        .tenants()
        .tenant_by_name("acme")
        .await
        .unwrap()
        .unwrap()
        .id;
    // A detector, with its series set through the configuration: a bad one is a 400 naming it.
    let (m, w) = plugin("examples/zscore");
    hub.host
        .install(
            acme,
            &m,
            w,
            Some(json!({"window": 20})),
            GrantsDoc::default(),
            true,
        )
        .await
        .unwrap();
    let bad = json!({"config": {"window": 20, "series": {"metrics": ["requests", "tokens"]}}});
    let (s, err) = hub
        .call(
            "PUT",
            "/v1/plugins/zscore",
            &hub.admin,
            Some(bad.to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(
        err["error"]["parameter"], "config/series/metrics/1",
        "{err}"
    );
    let good = json!({"config": {"window": 20, "series": {"metrics": ["requests", "cost_usd"], "group_by": ["model"], "history": "30m"}}});
    let (s, p) = hub
        .call(
            "PUT",
            "/v1/plugins/zscore",
            &hub.admin,
            Some(good.to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["series"]["group_by"], json!(["model"]), "{p}");
    assert_eq!(
        (
            p["series"]["step"].as_str(),
            p["series"]["every"].as_str(),
            p["series"]["history"].as_str()
        ),
        (Some("1m"), Some("1m"), Some("30m")),
        "{p}"
    );

    // Half an hour of calls over REST, ten times the usual in the newest complete minute.
    let end = floor_to(hub_core::time::now_ms(), MINUTE_MS);
    let mut events = Vec::new();
    for minute in 0..30 {
        let n = if minute == 29 { 50 } else { 5 };
        for i in 0..n {
            let ts = end - (30 - minute) * MINUTE_MS + i * 1_000;
            events.push(json!({"event_id": format!("c{minute}-{i}"), "timestamp": ts, "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100}));
        }
    }
    let (s, body) = hub
        .call(
            "POST",
            "/v1/events",
            &hub.query,
            Some(json!(events).to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let zscore = hub.host.analysers(acme).await.unwrap().remove(0);
    let run = hub_pipeline::analysis::run(
        &hub.host,
        &hub.storage,
        acme,
        &zscore,
        end,
        &hub_pipeline::grid::SeriesCache::default(),
    )
    .await;
    assert_eq!((run.outcome.as_str(), run.series), ("ok", 2), "{run:?}");
    assert_eq!(run.found, 2, "the spike in requests and in cost: {run:?}");

    let (s, list) = hub.call("GET", "/v1/anomalies", &hub.query, None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let found = list["anomalies"].as_array().unwrap();
    assert_eq!(found.len(), 2, "{list}");
    let requests = found.iter().find(|a| a["metric"] == "requests").unwrap();
    assert_eq!(requests["series"], json!({"model": "gpt-4o"}));
    assert_eq!(requests["value"], 50.0);
    assert_eq!(requests["step"], "1m");
    assert_eq!(requests["ts"], hub_core::time::to_rfc3339(end - MINUTE_MS));
    assert_eq!(requests["plugin"], "zscore");
    let id = requests["id"].as_i64().unwrap();
    for (query, n) in [
        ("metric=cost_usd", 1),
        ("filter=model:gpt-4o", 2),
        ("filter=model:gpt-4", 0),
        ("plugin=other", 0),
        ("severity=critical", 2),
        ("from=now-1m", 0),
        ("limit=1", 1),
    ] {
        let (s, l) = hub
            .call("GET", &format!("/v1/anomalies?{query}"), &hub.query, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{query}: {l}");
        assert_eq!(l["anomalies"].as_array().unwrap().len(), n, "{query}: {l}");
    }
    let (_, first) = hub
        .call("GET", "/v1/anomalies?limit=1", &hub.query, None)
        .await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = hub
        .call(
            "GET",
            &format!("/v1/anomalies?limit=1&cursor={cursor}"),
            &hub.query,
            None,
        )
        .await;
    assert_eq!(second["anomalies"].as_array().unwrap().len(), 1);
    assert_ne!(second["anomalies"][0]["id"], first["anomalies"][0]["id"]);
    assert!(second.get("next_cursor").is_none(), "{second}");
    for (query, parameter) in [
        ("metric=tokens", "metric"),
        ("severity=bad", "severity"),
        ("filter=region:eu", "filter"),
        ("cursor=xyz", "cursor"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
    ] {
        let (s, e) = hub
            .call("GET", &format!("/v1/anomalies?{query}"), &hub.query, None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {e}");
        assert_eq!(e["error"]["parameter"], parameter, "{query}: {e}");
    }

    // One, and the series around it for a chart.
    let (s, one) = hub
        .call("GET", &format!("/v1/anomalies/{id}"), &hub.query, None)
        .await;
    assert_eq!((s, &one["id"]), (StatusCode::OK, &json!(id)), "{one}");
    let (s, ctx) = hub
        .call(
            "GET",
            &format!("/v1/anomalies/{id}/context?before=10&after=5"),
            &hub.query,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{ctx}");
    let points = ctx["points"].as_array().unwrap();
    assert_eq!(points[10]["value"], 50.0, "{ctx}");
    assert_eq!(points[9]["value"], 5.0, "{ctx}");
    assert!(points.len() >= 11 && points.len() <= 16, "{ctx}");

    // Another tenant sees none of it: not the list, not the one, not its context.
    let (_, theirs) = hub
        .call("GET", "/v1/anomalies", &hub.other_admin, None)
        .await;
    assert_eq!(theirs["anomalies"], json!([]), "{theirs}");
    for uri in [
        format!("/v1/anomalies/{id}"),
        format!("/v1/anomalies/{id}/context"),
    ] {
        let (s, e) = hub.call("GET", &uri, &hub.other_admin, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}: {e}");
    }
    // An ingest-only key reads nothing.
    let (s, _) = hub.call("GET", "/v1/anomalies", &hub.admin, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The run is listed for the plugin.
    let (s, runs) = hub
        .call("GET", "/v1/plugins/zscore/runs?from=0", &hub.admin, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{runs}");
    assert!(
        runs["runs"].as_array().unwrap().is_empty(),
        "runs made outside the scheduler hold no lease: {runs}"
    );

    // Spend: without a forecaster, the month's run rate; with one, its forecast.
    let (s, spend) = hub
        .call(
            "GET",
            "/v1/forecasts/spend?period=month&group_by=model",
            &hub.query,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{spend}");
    assert_eq!(spend["total"]["method"], "run_rate", "{spend}");
    let actual = spend["total"]["actual_usd"].as_f64().unwrap();
    assert!(actual > 0.0, "the cost plugin priced the calls: {spend}");
    assert!(spend["total"]["projected_usd"].as_f64().unwrap() >= actual);
    assert_eq!(spend["groups"][0]["key"], "gpt-4o", "{spend}");
    let (m, w) = plugin("examples/linear-forecast");
    let series = json!({"metrics": ["cost_usd"], "step": "1m", "history": "30m", "horizon": 60});
    hub.host
        .install(
            acme,
            &m,
            w,
            Some(json!({"series": series})),
            GrantsDoc::default(),
            true,
        )
        .await
        .unwrap();
    let linear = hub
        .host
        .analysers(acme)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.name == "linear-forecast")
        .unwrap();
    let run = hub_pipeline::analysis::run(
        &hub.host,
        &hub.storage,
        acme,
        &linear,
        end,
        &hub_pipeline::grid::SeriesCache::default(),
    )
    .await;
    assert_eq!((run.outcome.as_str(), run.found), ("ok", 1), "{run:?}");
    let (s, f) = hub
        .call(
            "GET",
            "/v1/forecasts?metric=cost_usd&group_by=",
            &hub.query,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["forecasts"].as_array().unwrap().len(), 1, "{f}");
    assert_eq!(
        (
            f["forecasts"][0]["level"].as_f64(),
            f["forecasts"][0]["points"].as_array().map(Vec::len)
        ),
        (Some(0.95), Some(60)),
        "{f}"
    );
    let (_, spend) = hub
        .call("GET", "/v1/forecasts/spend", &hub.query, None)
        .await;
    assert_eq!(
        (
            spend["total"]["method"].as_str(),
            spend["total"]["plugin"].as_str()
        ),
        (Some("forecast"), Some("linear-forecast")),
        "{spend}"
    );
    let t = &spend["total"];
    assert!(
        t["lower_usd"].as_f64() <= t["projected_usd"].as_f64()
            && t["projected_usd"].as_f64() <= t["upper_usd"].as_f64(),
        "{spend}"
    );
    let (s, e) = hub
        .call("GET", "/v1/forecasts/spend?period=year", &hub.query, None)
        .await;
    assert_eq!(
        (s, e["error"]["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("period"))
    );
    let (_, theirs) = hub
        .call("GET", "/v1/forecasts", &hub.other_admin, None)
        .await;
    assert_eq!(theirs["forecasts"], json!([]));
}
