//! Installing from another hub's catalog over HTTP, with the digest and signature checked again.

use super::*;

/// Serves `router` on a free local port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_from_another_hubs_catalog_check_digest_and_signature_again() {
    // Hub A publishes, and serves its catalog publicly.
    let a = hub(
        ApiConfig {
            public_catalog: true,
            ..Default::default()
        },
        MarketConfig::default(),
    )
    .await;
    let (manifest, wasm) = built("examples/tier-tagger");
    let key = SecretKey::generate();
    let publisher = a.token("pub@example.com").await;
    assert_eq!(
        a.register(&publisher, &key).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        a.publish(&publisher, pack(&manifest, &wasm, &key).to_bytes())
            .await
            .status,
        StatusCode::CREATED
    );
    let a_url = serve(a.app.clone()).await;

    // A hub that tampers: advertises one digest, serves other contents under the same signature.
    let good = pack(&manifest, &wasm, &key);
    let mut evil = good.clone();
    evil.component[200] ^= 1;
    let (evil_bytes, good_digest) = (evil.to_bytes(), good.digest());
    let mitm = Router::new()
        .route(
            "/v1/marketplace/packages/tier-tagger",
            axum::routing::get(move || {
                let d = good_digest.clone();
                async move { axum::Json(json!({"versions": [{"version": "0.1.0", "digest": d, "yanked": false, "yanked_reason": null}]})) }
            }),
        )
        .route(
            "/v1/marketplace/packages/tier-tagger/versions/0.1.0/package",
            axum::routing::get(move || {
                let b = evil_bytes.clone();
                async move { b }
            }),
        );
    let mitm_url = serve(mitm).await;

    let remotes = vec![
        RemoteCatalog {
            name: "upstream".into(),
            url: a_url.clone(),
            token: None,
        },
        RemoteCatalog {
            name: "mitm".into(),
            url: mitm_url,
            token: None,
        },
    ];
    let b = hub(
        ApiConfig::default(),
        MarketConfig {
            remotes: remotes.clone(),
            trusted_keys: vec![key.public().to_string()],
            ..Default::default()
        },
    )
    .await;
    let admin = &b.admin_key;
    let r = b
        .call(Method::GET, "/v1/marketplace/catalogs", admin, None)
        .await;
    assert_eq!(r.body["catalogs"][0]["name"], "upstream");
    let r = b
        .call(
            Method::GET,
            "/v1/marketplace/packages?catalog=upstream&q=tier",
            admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["packages"][0]["name"], "tier-tagger");
    let r = b
        .call(
            Method::GET,
            "/v1/marketplace/packages/tier-tagger?catalog=upstream",
            admin,
            None,
        )
        .await;
    assert_eq!(r.body["publisher"], "pub@example.com");
    let r = b
        .call(
            Method::GET,
            "/v1/marketplace/packages?catalog=nowhere",
            admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);

    let r = b
        .call(
            Method::POST,
            "/v1/plugins",
            admin,
            Some(json!({"package": "tier-tagger", "catalog": "mitm"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        message(&r).contains("do not match its signature"),
        "{}",
        r.body
    );
    let r = b
        .call(Method::POST, "/v1/plugins", admin, Some(json!({"package": "tier-tagger", "catalog": "upstream", "config": {"premium": ["gpt-4o"]}})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.body["digest"],
        hub_marketplace::plugin_digest(&manifest, &wasm)
    );
    // B's own marketplace did not gain the package: it was installed, not republished.
    assert_eq!(b.catalog().await.0, vec![]);

    // A hub that does not trust the publisher's key refuses the same package.
    let c = hub(
        ApiConfig::default(),
        MarketConfig {
            remotes,
            trusted_keys: vec![SecretKey::generate().public().to_string()],
            ..Default::default()
        },
    )
    .await;
    let r = c
        .call(
            Method::POST,
            "/v1/plugins",
            &c.admin_key,
            Some(json!({"package": "tier-tagger", "catalog": "upstream"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(message(&r).contains("does not trust"), "{}", r.body);
    assert!(
        c.storage
            .plugins()
            .plugin_installs(
                c.storage
                    .tenants()
                    .tenant_by_name("acme")
                    .await
                    .unwrap()
                    .unwrap()
                    .id
            )
            .await
            .unwrap()
            .is_empty()
    );
}
