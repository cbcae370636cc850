//! What the pipeline's plugin tests share: a SQLite hub with a plugin host, first-party and test
//! components built from plugins/, events, and a pipeline run over some batches.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use hub_core::{EventRecord, TenantId};
use hub_pipeline::{Pipeline, PipelineConfig};
use hub_plugins::{PluginHost, PluginHostConfig};
use hub_storage::{EventFilter, Storage};

/// A scheduler that looks every 100 ms and takes a minute as settled a second after it ends.
pub fn scheduler_config() -> hub_pipeline::schedule::SchedulerConfig {
    hub_pipeline::schedule::SchedulerConfig {
        tick: std::time::Duration::from_millis(100),
        settle: std::time::Duration::from_secs(1),
        owner: "test".into(),
        ..Default::default()
    }
}

pub fn plugin(name: &str) -> (String, Vec<u8>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins")
        .join(name);
    hub_plugin_sdk::testing::built_plugin(dir).unwrap()
}

/// Installs and enables the misbehaving test component for `tenant` with this configuration
/// (granted `kv`, which it asks for).
pub async fn install_misbehave(host: &PluginHost, tenant: TenantId, config: serde_json::Value) {
    let (m, w) = plugin("testing/misbehave");
    let grants = hub_plugins::GrantsDoc {
        kv: true,
        http: vec![],
    };
    host.install(tenant, &m, w, Some(config), grants, true)
        .await
        .unwrap();
}

pub async fn setup(max_failures: u32) -> (Arc<dyn Storage>, Arc<PluginHost>, tempfile::TempDir) {
    setup_with(PluginHostConfig {
        max_consecutive_failures: max_failures,
        ..Default::default()
    })
    .await
}

pub async fn setup_with(
    config: PluginHostConfig,
) -> (Arc<dyn Storage>, Arc<PluginHost>, tempfile::TempDir) {
    setup_full(hub_runtime::RuntimeConfig::default(), config).await
}

/// A hub with these runtime settings (its cache in the temporary directory) and plugin host.
pub async fn setup_full(
    runtime: hub_runtime::RuntimeConfig,
    config: PluginHostConfig,
) -> (Arc<dyn Storage>, Arc<PluginHost>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage = hub_storage::testing::scratch_sqlite(dir.path()).await;
    let runtime = hub_runtime::Runtime::new(hub_runtime::RuntimeConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..runtime
    })
    .unwrap();
    let host = Arc::new(PluginHost::new(runtime, storage.clone(), config));
    (storage, host, dir)
}

pub fn events(prefix: &str, n: usize) -> Vec<EventRecord> {
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    (0..n)
        .map(|i| {
            let raw = format!(
                r#"{{"event_id": "{prefix}{i}", "timestamp": {now}, "model": "gpt-4o-2024-08-06", "input_tokens": 1000, "output_tokens": 100, "status": "ok"}}"#
            );
            hub_core::ingest::parse_event(&raw, &limits, now).unwrap()
        })
        .collect()
}

pub async fn ingest(
    storage: &Arc<dyn Storage>,
    host: &Arc<PluginHost>,
    batches: Vec<(TenantId, Vec<EventRecord>)>,
) {
    let (producer, consumer) = hub_bus::in_process(100_000, 100_000);
    let pipeline = Pipeline::spawn(
        storage.clone(),
        consumer,
        PipelineConfig::default(),
        Some(host.clone()),
    );
    let mut acks = Vec::new();
    for (t, ev) in batches {
        acks.push(producer.try_publish(t, ev).unwrap());
    }
    drop(producer);
    for a in acks {
        a.await.unwrap().unwrap();
    }
    pipeline.join().await;
}

pub async fn costs(storage: &Arc<dyn Storage>, t: TenantId) -> Vec<Option<f64>> {
    let page = storage
        .list_events(t, &EventFilter::default(), None, 1000)
        .await
        .unwrap();
    page.events.into_iter().map(|e| e.record.cost_usd).collect()
}

/// A requests spike of `model` in the minute before now (240 against 12), as robust-level would
/// store it.
pub fn spike(model: &str, severity: hub_core::Severity) -> hub_storage::NewAnomaly {
    use hub_core::time::{MINUTE_MS, floor_to};
    hub_storage::NewAnomaly {
        plugin: "robust-level".into(),
        dims: vec![("model".into(), model.into())],
        metric: "requests".into(),
        step_ms: MINUTE_MS,
        ts_ms: floor_to(hub_core::time::now_ms(), MINUTE_MS) - MINUTE_MS,
        value: 240.0,
        expected: Some(12.0),
        lower: None,
        upper: Some(20.0),
        score: 20.0,
        severity,
        reason: "requests is 20× its usual".into(),
    }
}

/// Writes `events` as one of the tenant's batches, straight into storage (raw events and rollups,
/// no pipeline).
pub async fn write(storage: &Arc<dyn Storage>, tenant: TenantId, events: Vec<EventRecord>) {
    storage
        .write_batches(
            &[hub_storage::TenantBatch { tenant, events }],
            hub_core::time::now_ms(),
        )
        .await
        .unwrap();
}
