//! The marketplace through the router, with real SQLite storage, the real runtime and real
//! components built from this repository: publishing and every way a package is refused (with
//! nothing half-stored), browsing, yanking, tenant installs, upgrades and downgrades, and
//! installing from another hub's catalog over HTTP with the digest and signature checked again.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use hub_api::ApiConfig;
use hub_catalog::{MarketConfig, RemoteCatalog};
use hub_core::{ApiKeyScope, Role};
use hub_marketplace::{Package, SecretKey};
use hub_storage::{NewUser, Storage};
use serde_json::{Value, json};

const PASSWORD: &str = "a long test password";

struct Hub {
    app: Router,
    storage: Arc<dyn Storage>,
    admin_key: String,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    body: Value,
}

fn built(path: &str) -> (String, Vec<u8>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins")
        .join(path);
    hub_plugin_sdk::testing::built_plugin(dir).unwrap()
}

fn readme(name: &str) -> String {
    format!("# {name}\n\nTags calls. <script>alert(1)</script>\n")
}

fn pack(manifest: &str, wasm: &[u8], key: &SecretKey) -> Package {
    let mut p = Package::new(manifest.into(), wasm.to_vec(), readme("tier-tagger"), None);
    p.sign(key);
    p
}

async fn hub(api: ApiConfig, market: MarketConfig) -> Hub {
    let (t, _) = common::plugin_hub_with_market(api, Default::default(), market).await;
    let admin_key = common::key_for(
        &t.storage,
        "acme",
        vec![ApiKeyScope::Admin, ApiKeyScope::Ingest, ApiKeyScope::Query],
    )
    .await;
    let h = Hub {
        app: t.app,
        storage: t.storage,
        admin_key,
        _dir: t.dir,
    };
    h.user("pub@example.com", true).await;
    h.user("rival@example.com", true).await;
    h.user("plain@example.com", false).await;
    h
}

impl Hub {
    async fn user(&self, email: &str, publisher: bool) {
        let t = self
            .storage
            .tenants()
            .tenant_by_name("acme")
            .await
            .unwrap()
            .unwrap();
        let a = self.storage.access();
        let u = a
            .create_user(
                &NewUser {
                    email: email.into(),
                    display_name: email.into(),
                    password_hash: Some(hub_api::credentials::passwords::hash_password(PASSWORD)),
                    must_change_password: false,
                    operator: false,
                    publisher,
                },
                0,
            )
            .await
            .unwrap();
        a.set_membership(u.id, t.id, Some(Role::Admin), 0)
            .await
            .unwrap();
    }

    async fn send(&self, method: Method, uri: &str, token: &str, body: Body, json: bool) -> Reply {
        let mut req = Request::builder().method(method).uri(uri).header(
            header::CONTENT_TYPE,
            if json {
                "application/json"
            } else {
                "application/gzip"
            },
        );
        if !token.is_empty() {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let (status, _, body) = common::send(&self.app, req.body(body).unwrap()).await;
        Reply { status, body }
    }

    async fn call(&self, method: Method, uri: &str, token: &str, body: Option<Value>) -> Reply {
        self.send(
            method,
            uri,
            token,
            body.map(|b| Body::from(b.to_string())).unwrap_or_default(),
            true,
        )
        .await
    }

    async fn token(&self, email: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/auth/login",
                "",
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }

    async fn publish(&self, token: &str, bytes: Vec<u8>) -> Reply {
        self.send(
            Method::POST,
            "/v1/marketplace/packages",
            token,
            Body::from(bytes),
            false,
        )
        .await
    }

    async fn register(&self, token: &str, key: &SecretKey) -> Reply {
        self.call(
            Method::POST,
            "/v1/marketplace/keys",
            token,
            Some(json!({"public_key": key.public().to_string()})),
        )
        .await
    }

    /// Everything the marketplace holds: (package, version) pairs and component digests.
    async fn catalog(&self) -> (Vec<(String, String)>, usize) {
        let m = self.storage.market();
        let mut versions = Vec::new();
        for p in m.packages(None, None).await.unwrap() {
            for v in m.versions(&p.name).await.unwrap() {
                versions.push((p.name.clone(), v.version));
            }
        }
        versions.sort();
        let components = versions.len();
        (versions, components)
    }
}

fn message(r: &Reply) -> String {
    r.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn with_version(manifest: &str, v: &str) -> String {
    manifest.replacen("version = \"0.1.0\"", &format!("version = \"{v}\""), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_checks_everything_and_stores_nothing_it_refuses() {
    let h = hub(
        ApiConfig::default(),
        MarketConfig {
            max_package_bytes: 2 * 1024 * 1024,
            ..Default::default()
        },
    )
    .await;
    let (manifest, wasm) = built("examples/tier-tagger");
    let (registry_manifest, registry_wasm) = built("registry");
    let key = SecretKey::generate();
    let publisher = h.token("pub@example.com").await;
    let rival = h.token("rival@example.com").await;
    let plain = h.token("plain@example.com").await;
    let good = pack(&manifest, &wasm, &key).to_bytes();

    // Only publishers register keys and publish; API keys never do.
    let r = h.register(&plain, &key).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(message(&r).contains("publisher right"), "{}", r.body);
    let r = h.publish(&h.admin_key, good.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = h.publish(&plain, good.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    // An unknown key.
    let r = h.publish(&publisher, good.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(message(&r).contains("not registered"), "{}", r.body);

    let r = h.register(&publisher, &key).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["key_id"], key.public().key_id());
    let r = h.register(&publisher, &key).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let r = h
        .call(
            Method::POST,
            "/v1/marketplace/keys",
            &publisher,
            Some(json!({"public_key": "rsa:xyz"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["parameter"], "public_key");

    // Every refusal names its reason and stores nothing.
    let tampered_component = {
        let mut p = pack(&manifest, &wasm, &key);
        p.component[100] ^= 0xff;
        p.to_bytes()
    };
    let tampered_manifest = {
        let mut p = pack(&manifest, &wasm, &key);
        p.manifest = p.manifest.replace("price tier", "prize tier");
        p.to_bytes()
    };
    let forged = {
        // Contents and digest changed together: only the signature can tell.
        let mut p = pack(&manifest, &wasm, &key);
        p.readme.push_str("\nInstall me!\n");
        p.signature.as_mut().unwrap().digest = p.digest();
        p.to_bytes()
    };
    let unsigned = Package::new(manifest.clone(), wasm.clone(), readme("x"), None).to_bytes();
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let world_mismatch = manifest
        .replace("kind = \"enricher\"", "kind = \"detector\"")
        .replace("hub:plugin/enricher@0.2.0", "hub:plugin/detector@0.1.0");
    let undeclared = registry_manifest
        .replace("kv = true", "kv = false")
        .replace("http = [\"*\"]", "http = []");
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "tampered component",
            tampered_component,
            StatusCode::BAD_REQUEST,
            "do not match its signature",
        ),
        (
            "tampered manifest",
            tampered_manifest,
            StatusCode::BAD_REQUEST,
            "do not match its signature",
        ),
        (
            "forged digest",
            forged,
            StatusCode::BAD_REQUEST,
            "does not verify",
        ),
        ("unsigned", unsigned, StatusCode::BAD_REQUEST, "not signed"),
        (
            "not a package",
            b"PK\x03\x04 a zip".to_vec(),
            StatusCode::BAD_REQUEST,
            "not a .hubpkg",
        ),
        (
            "too large",
            vec![7u8; 3 * 1024 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit of 2097152 bytes",
        ),
        (
            "unknown manifest field",
            pack(
                &manifest.replace("[limits]", "[limits]\nspeed = 3"),
                &wasm,
                &key,
            )
            .to_bytes(),
            StatusCode::BAD_REQUEST,
            "unknown field `speed`",
        ),
        (
            "a deadline over the operator's maximum",
            pack(
                &manifest.replace("deadline-ms = 50", "deadline-ms = 30000"),
                &wasm,
                &key,
            )
            .to_bytes(),
            StatusCode::BAD_REQUEST,
            "limits.deadline-ms asks for 30000 ms; this hub allows at most 2000 ms (the operator's --plugin-max-deadline)",
        ),
        (
            "bad version syntax",
            pack(&with_version(&manifest, "1.0"), &wasm, &key).to_bytes(),
            StatusCode::BAD_REQUEST,
            "plugin.toml: version",
        ),
        (
            "core module",
            pack(&manifest, &core_module, &key).to_bytes(),
            StatusCode::BAD_REQUEST,
            "component",
        ),
        (
            "missing export",
            pack(&world_mismatch, &wasm, &key).to_bytes(),
            StatusCode::BAD_REQUEST,
            "detect",
        ),
        (
            "undeclared import",
            pack(&undeclared, &registry_wasm, &key).to_bytes(),
            StatusCode::BAD_REQUEST,
            "kv",
        ),
        (
            "example refused by configure",
            pack(
                &manifest.replace(
                    "additionalProperties = false\n",
                    "additionalProperties = false\nexamples = [{ premium = [7] }]\n",
                ),
                &wasm,
                &key,
            )
            .to_bytes(),
            StatusCode::BAD_REQUEST,
            "example configuration",
        ),
    ];
    for (what, bytes, status, needle) in cases {
        let r = h.publish(&publisher, bytes).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert!(message(&r).contains(needle), "{what}: {}", r.body);
        assert_eq!(h.catalog().await.0, vec![], "{what} left something behind");
    }
    let tier_component = hub_marketplace::plugin_digest(&manifest, &wasm);
    assert_eq!(
        h.storage
            .plugins()
            .plugin_component(&tier_component)
            .await
            .unwrap(),
        None
    );

    // A good package.
    let r = h.publish(&publisher, good.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        (r.body["name"].as_str(), r.body["version"].as_str()),
        (Some("tier-tagger"), Some("0.1.0"))
    );
    assert_eq!(r.body["publisher"], "pub@example.com");
    assert_eq!(r.body["plugin_digest"], tier_component);
    assert!(
        r.body["readme_html"]
            .as_str()
            .unwrap()
            .contains("&lt;script&gt;"),
        "{}",
        r.body
    );
    // Versions never change.
    let r = h.publish(&publisher, good.clone()).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(message(&r).contains("already published"), "{}", r.body);
    // The name belongs to its publisher.
    let rival_key = SecretKey::generate();
    assert_eq!(
        h.register(&rival, &rival_key).await.status,
        StatusCode::CREATED
    );
    let r = h
        .publish(
            &rival,
            pack(&with_version(&manifest, "9.0.0"), &wasm, &rival_key).to_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        message(&r).contains("belongs to publisher pub@example.com"),
        "{}",
        r.body
    );
    // A key of another publisher.
    let r = h
        .publish(
            &rival,
            pack(&with_version(&manifest, "9.0.0"), &wasm, &key).to_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // A revoked key signs nothing new.
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/marketplace/keys/{}", rival_key.public().key_id()),
            &rival,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .publish(
            &rival,
            pack(
                &manifest.replace("tier-tagger", "rival-tagger"),
                &wasm,
                &rival_key,
            )
            .to_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(message(&r).contains("revoked"), "{}", r.body);
    assert_eq!(
        h.catalog().await.0,
        vec![("tier-tagger".to_string(), "0.1.0".to_string())]
    );

    // The audit log has the publication and the refusals.
    let audit = h
        .storage
        .audit()
        .list_audit(None, &Default::default(), 100)
        .await
        .unwrap();
    let publishes: Vec<_> = audit
        .iter()
        .filter(|a| a.entry.action == "marketplace.publish")
        .collect();
    assert!(publishes.iter().any(|a| a.entry.outcome == "ok"
        && a.entry.target.as_deref() == Some("package:tier-tagger@0.1.0")));
    assert!(
        publishes
            .iter()
            .filter(|a| a.entry.outcome == "denied")
            .count()
            >= 12
    );
}

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
