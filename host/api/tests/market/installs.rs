//! Browsing, installing, upgrading, downgrading, yanking and uninstalling in a tenant.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_install_upgrade_downgrade_yank_and_uninstall() {
    let h = hub(ApiConfig::default(), MarketConfig::default()).await;
    let (manifest, wasm) = built("examples/tier-tagger");
    let key = SecretKey::generate();
    let publisher = h.token("pub@example.com").await;
    assert_eq!(
        h.register(&publisher, &key).await.status,
        StatusCode::CREATED
    );
    let v1 = format!(
        "{manifest}\n[changelog]\n\"0.1.0\" = \"First.\"\n\"0.2.0\" = \"At most one premium model.\"\n"
    );
    // 0.2.0 allows one premium model only: 0.1.0's configuration of two does not fit it.
    let v2 = with_version(&v1, "0.2.0").replace(
        "items = { type = \"string\" }",
        "items = { type = \"string\" }\nmaxItems = 1",
    );
    for m in [&v1, &v2] {
        let r = h.publish(&publisher, pack(m, &wasm, &key).to_bytes()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let admin = &h.admin_key;

    // Browse: search by text and kind; details with versions and changelog.
    let r = h
        .call(
            Method::GET,
            "/v1/marketplace/packages?q=TIER&kind=enricher",
            admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["packages"][0]["name"], "tier-tagger");
    assert_eq!(r.body["packages"][0]["latest_version"], "0.2.0");
    let r = h
        .call(
            Method::GET,
            "/v1/marketplace/packages?q=nothing-like-it",
            admin,
            None,
        )
        .await;
    assert_eq!(r.body["packages"], json!([]));
    let r = h
        .call(
            Method::GET,
            "/v1/marketplace/packages?kind=mangler",
            admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["parameter"], "kind");
    let r = h
        .call(
            Method::GET,
            "/v1/marketplace/packages/tier-tagger",
            admin,
            None,
        )
        .await;
    assert_eq!(r.body["version"], "0.2.0");
    assert_eq!(r.body["versions"][0]["version"], "0.2.0");
    assert_eq!(
        r.body["versions"][0]["changelog"],
        "At most one premium model."
    );
    assert_eq!(r.body["versions"][1]["version"], "0.1.0");
    assert_eq!(r.body["capabilities"]["kv"], false);
    assert_eq!(r.body["example_config"], json!({}));
    // No credentials, no catalog (unless the operator makes it public).
    assert_eq!(
        h.call(Method::GET, "/v1/marketplace/packages", "", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // Install 0.1.0 with a configuration the schema refuses, then one it takes.
    let install = |body: Value| h.call(Method::POST, "/v1/plugins", admin, Some(body));
    let r = install(
        json!({"package": "tier-tagger", "version": "0.1.0", "config": {"premium": "gpt-4o"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"]["parameter"], "config/premium");
    let r = install(json!({"package": "tier-tagger", "version": "0.1.0", "grants": {"kv": true}}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"]["parameter"], "grants");
    let r = install(json!({"package": "no-such-plugin"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = install(json!({"package": "tier-tagger", "version": "0.1.0", "config": {"premium": ["gpt-4o", "o1"]}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["version"], "0.1.0");
    let r = install(json!({"package": "tier-tagger"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    // Upgrade: the configuration does not fit 0.2.0, so it must come with the request.
    let put = |body: Value| h.call(Method::PUT, "/v1/plugins/tier-tagger", admin, Some(body));
    let r = put(json!({"version": "0.2.0"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        message(&r).contains("does not fit tier-tagger 0.2.0"),
        "{}",
        r.body
    );
    let r = put(json!({"version": "0.2.0", "config": {"premium": ["gpt-4o"]}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["version"].as_str(), r.body["config"].clone()),
        (Some("0.2.0"), json!({"premium": ["gpt-4o"]}))
    );
    // Downgrade: the configuration fits 0.1.0 and is carried over.
    let r = put(json!({"version": "0.1.0", "enabled": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (
            r.body["version"].as_str(),
            r.body["config"].clone(),
            r.body["enabled"].clone()
        ),
        (Some("0.1.0"), json!({"premium": ["gpt-4o"]}), json!(false))
    );
    let r = put(json!({"version": "7.7.7"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = h
        .call(
            Method::PUT,
            "/v1/plugins",
            admin,
            Some(json!({"plugins": [{"name": "tier-tagger", "version": "0.2.0"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["parameter"], "plugins[0].version");

    // Yank 0.2.0: no new installs of it; installs on it keep working; latest falls back.
    let r = h
        .call(
            Method::PUT,
            "/v1/marketplace/packages/tier-tagger/versions/0.2.0/yank",
            &h.token("rival@example.com").await,
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = h
        .call(
            Method::PUT,
            "/v1/marketplace/packages/tier-tagger/versions/0.2.0/yank",
            &publisher,
            Some(json!({"reason": "tags the wrong tier for o1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["versions"][0]["yanked"], true);
    let r = put(json!({"version": "0.2.0"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        message(&r).contains("yanked (tags the wrong tier for o1)"),
        "{}",
        r.body
    );
    let r = h
        .call(Method::GET, "/v1/marketplace/packages", admin, None)
        .await;
    assert_eq!(r.body["packages"][0]["latest_version"], "0.1.0");
    assert_eq!(r.body["packages"][0]["installs"], 1);
    assert!(
        r.body["packages"][0]["downloads"].as_i64().unwrap() >= 3,
        "{}",
        r.body
    );
    let r = h
        .call(
            Method::DELETE,
            "/v1/marketplace/packages/tier-tagger/versions/0.2.0/yank",
            &publisher,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // Enable again, send events: tagged by the installed version.
    let r = put(json!({"enabled": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let now = hub_core::time::to_rfc3339(hub_core::time::now_ms());
    let r = h
        .call(
            Method::POST,
            "/v1/events",
            admin,
            Some(json!([{"timestamp": now, "event_id": "m-1", "model": "gpt-4o"}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let r = h.call(Method::GET, "/v1/events/m-1", admin, None).await;
    assert_eq!(r.body["tags"]["tier"], "premium", "{}", r.body);

    // Download: the signed package, byte for byte what was published.
    let req = Request::builder()
        .uri("/v1/marketplace/packages/tier-tagger/versions/0.1.0/package")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .body(Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(h.app.clone(), req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let digest = res.headers()["x-hub-digest"].to_str().unwrap().to_string();
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let p = Package::from_bytes(&bytes, 1 << 24).unwrap();
    p.verify(&key.public()).unwrap();
    assert_eq!(p.digest(), digest);

    // Uninstall, and every change is in the tenant's audit log.
    let r = h
        .call(
            Method::DELETE,
            "/v1/plugins/tier-tagger?purge_kv=true",
            admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let t = h
        .storage
        .tenants()
        .tenant_by_name("acme")
        .await
        .unwrap()
        .unwrap()
        .id;
    let audit = h
        .storage
        .audit()
        .list_audit(Some(t), &Default::default(), 100)
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.entry.action.as_str()).collect();
    for a in ["plugin.install", "plugin.change", "plugin.uninstall"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
}
