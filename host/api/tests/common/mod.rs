//! What the API's integration tests share: a hub on a fresh SQLite file with the real pipeline,
//! driven through its router without a socket, and keys made directly in storage.

#![allow(dead_code)] // each test binary uses part of it

pub mod people;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hub_api::credentials::api_keys::generate_api_key;
use hub_api::{ApiConfig, AppState, app};
use hub_core::ApiKeyScope;
use hub_storage::Storage;
use serde_json::Value;
use tower::ServiceExt;

pub struct TestHub {
    pub app: Router,
    pub storage: Arc<dyn Storage>,
    pub dir: tempfile::TempDir,
}

/// Fresh, migrated SQLite storage in a temporary directory.
async fn fresh_storage() -> (Arc<dyn Storage>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage = hub_storage::testing::scratch_sqlite(dir.path()).await;
    (storage, dir)
}

/// A hub with `config`, its ingest queue holding `queue_capacity` events.
pub async fn test_hub(config: ApiConfig, queue_capacity: usize) -> TestHub {
    let (storage, dir) = fresh_storage().await;
    let (producer, consumer) = hub_bus::in_process(queue_capacity, queue_capacity);
    let pipeline =
        hub_pipeline::Pipeline::spawn(storage.clone(), consumer, Default::default(), None);
    let state = AppState::new(storage.clone(), producer, config, pipeline.stats.clone());
    TestHub {
        app: app(state),
        storage,
        dir,
    }
}

/// A hub whose pipeline runs plugins, with a plugin host of `host_config` (default runtime).
pub async fn plugin_hub(
    config: ApiConfig,
    host_config: hub_plugins::PluginHostConfig,
) -> (TestHub, Arc<hub_plugins::PluginHost>) {
    plugin_hub_with_market(config, host_config, Default::default()).await
}

/// [`plugin_hub`] with a marketplace of `market` (remote catalogs, trusted keys, limits).
pub async fn plugin_hub_with_market(
    config: ApiConfig,
    host_config: hub_plugins::PluginHostConfig,
    market: hub_catalog::MarketConfig,
) -> (TestHub, Arc<hub_plugins::PluginHost>) {
    let (storage, dir) = fresh_storage().await;
    let runtime = hub_runtime::Runtime::new(Default::default()).unwrap();
    let host = Arc::new(hub_plugins::PluginHost::new(
        runtime,
        storage.clone(),
        host_config,
    ));
    let (producer, consumer) = hub_bus::in_process(100_000, 100_000);
    let pipeline = hub_pipeline::Pipeline::spawn(
        storage.clone(),
        consumer,
        Default::default(),
        Some(host.clone()),
    );
    let catalog = Arc::new(hub_catalog::Catalog::new(
        host.clone(),
        storage.clone(),
        market,
    ));
    let state = AppState::new(storage.clone(), producer, config, pipeline.stats.clone())
        .with_plugins(catalog);
    let hub = TestHub {
        app: app(state),
        storage,
        dir,
    };
    (hub, host)
}

/// A new key of `tenant` (created if missing) with `scopes`.
pub async fn key_for(storage: &Arc<dyn Storage>, tenant: &str, scopes: Vec<ApiKeyScope>) -> String {
    let t = match storage.tenants().tenant_by_name(tenant).await.unwrap() {
        Some(t) => t,
        None => storage.tenants().create_tenant(tenant, 0).await.unwrap(),
    };
    let (secret, new_key) = generate_api_key("test", scopes, None);
    storage
        .tenants()
        .create_api_key(t.id, &new_key, 0)
        .await
        .unwrap();
    secret
}

/// Sends a request through the router: status, headers, and the body as JSON (or as a JSON
/// string when it is not JSON).
pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, body)
}
