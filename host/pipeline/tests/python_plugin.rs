//! A plugin written in Python (plugins/examples/latency-slo-py, built by componentize-py) runs in
//! the same host, through the same pipeline, as the Rust ones.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use hub_pipeline::plugins::GrantsDoc;
use hub_pipeline::{Pipeline, PluginHost};
use serde_json::json;

fn python_plugin() -> (String, Vec<u8>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("dist/plugins/latency-slo");
    // Rebuilds only what changed (the script compares times).
    let status = Command::new(root.join("scripts/build-plugins"))
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success(), "scripts/build-plugins failed");
    (
        std::fs::read_to_string(dir.join("plugin.toml")).unwrap(),
        std::fs::read(dir.join("latency-slo.wasm")).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_enricher_tags_events_through_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let storage = hub_storage::open(
        &format!("sqlite://{}/hub.db", dir.path().display()),
        &Default::default(),
    )
    .await
    .unwrap();
    storage.migrate().await.unwrap();
    let runtime = hub_runtime::Runtime::new(hub_runtime::RuntimeConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..Default::default()
    })
    .unwrap();
    let host = Arc::new(PluginHost::new(
        runtime,
        storage.clone(),
        Default::default(),
    ));
    let t = storage.create_tenant("py", 0).await.unwrap().id;
    let (manifest, wasm) = python_plugin();
    // The plugin's own checks run at install: a bad value is refused with its message.
    let e = host
        .install(
            t,
            &manifest,
            wasm.clone(),
            Some(json!({"models": {"gpt-4o": "fast"}})),
            GrantsDoc::default(),
            true,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("/models/gpt-4o"), "{e}");
    host.install(
        t,
        &manifest,
        wasm,
        Some(json!({"default_slo_ms": 1000, "models": {"gpt-4o": 500}})),
        GrantsDoc::default(),
        true,
    )
    .await
    .unwrap();

    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    let events: Vec<_> = [("a", "gpt-4o", 700.0), ("b", "claude-sonnet-4", 700.0), ("c", "gpt-4o", 100.0)]
        .iter()
        .map(|(id, model, latency)| {
            let raw = format!(r#"{{"event_id": "{id}", "timestamp": {now}, "model": "{model}", "latency_ms": {latency}}}"#);
            hub_core::ingest::parse_event(&raw, &limits, now).unwrap()
        })
        .collect();
    let (producer, consumer) = hub_bus::in_process(1000);
    let pipeline = Pipeline::spawn(
        storage.clone(),
        consumer,
        Default::default(),
        Some(host.clone()),
    );
    producer
        .try_publish(t, events)
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    drop(producer);
    pipeline.join().await;

    let tags = |id: &'static str| {
        let storage = storage.clone();
        async move {
            let e = storage.get_event(t, id).await.unwrap().unwrap();
            serde_json::from_str::<serde_json::Value>(&e.record.tags_json).unwrap()
        }
    };
    assert_eq!(
        tags("a").await,
        json!({"latency_band": "slow", "slo_breach": "true"})
    );
    assert_eq!(tags("b").await, json!({"latency_band": "ok"}));
    assert_eq!(tags("c").await, json!({"latency_band": "fast"}));
    assert_eq!(host.health(t)["latency-slo"].failures, 0);
}
