//! The marketplace through the router, with real SQLite storage, the real runtime and real
//! components built from this repository: publishing and every way a package is refused (with
//! nothing half-stored), browsing, yanking, tenant installs, upgrades and downgrades, and
//! installing from another hub's catalog over HTTP with the digest and signature checked again.
//! One binary: publishing (`publishing`), browsing to uninstalling (`installs`), another hub's
//! catalog (`remote`), around the hub they share (here).

#[path = "../common/mod.rs"]
mod common;

mod installs;
mod publishing;
mod remote;

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
