//! Enrichers in the pipeline, with real components built from plugins/: patches are applied before
//! the commit (so rollups see them), a misbehaving plugin leaves events stored without its
//! patches and is disabled after repeated failures, other tenants never notice, and a plugin
//! written in Python (plugins/examples/latency-slo-py, built by componentize-py) runs like the
//! Rust ones.

mod support;

use std::path::PathBuf;
use std::process::Command;

use hub_pipeline::Pipeline;
use hub_plugins::GrantsDoc;
use hub_plugins::PluginHostConfig;
use serde_json::json;
use support::{costs, events, ingest, plugin, setup, setup_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrichers_run_in_order_before_the_commit_for_their_tenant_only() {
    let (storage, host, _dir) = setup(5).await;
    let a = storage.tenants().create_tenant("a", 0).await.unwrap().id;
    let b = storage.tenants().create_tenant("b", 0).await.unwrap().id;
    let (m, w) = plugin("cost");
    host.install(a, &m, w, None, GrantsDoc::default(), true)
        .await
        .unwrap();
    let (m, w) = plugin("registry");
    host.install(
        a,
        &m,
        w,
        None,
        GrantsDoc {
            kv: true,
            http: vec![],
        },
        true,
    )
    .await
    .unwrap();

    ingest(
        &storage,
        &host,
        vec![
            (a, events("a", 50)),
            (b, events("b", 50)),
            (a, events("c", 10)),
        ],
    )
    .await;

    let ca = costs(&storage, a).await;
    assert_eq!(ca.len(), 60);
    // gpt-4o: 1000 × $2.50/M + 100 × $10/M
    assert!(
        ca.iter().all(|c| (c.unwrap() - 0.0035).abs() < 1e-12),
        "{ca:?}"
    );
    assert!(
        costs(&storage, b).await.iter().all(|c| c.is_none()),
        "tenant B has no plugins"
    );
    let e = storage.get_event(a, "a0").await.unwrap().unwrap();
    let tags: serde_json::Value = serde_json::from_str(&e.record.tags_json).unwrap();
    assert_eq!(tags["model_family"], "gpt-4o");
    assert_eq!(tags["model_owner"], "openai");
    // Stored with what each plugin filled in, in the order they ran.
    let by: Vec<(&str, &[String])> = e
        .record
        .enriched_by
        .iter()
        .map(|x| (x.plugin.as_str(), x.fields.as_slice()))
        .collect();
    assert_eq!(by[0], ("cost", &["cost_usd".to_string()][..]), "{by:?}");
    assert_eq!(by[1].0, "registry", "{by:?}");
    assert!(
        by[1].1.contains(&"tags.model_family".to_string())
            && !by[1].1.contains(&"cost_usd".to_string()),
        "{by:?}"
    );
    assert_eq!(by.len(), 2, "{by:?}");
    let plain = storage.get_event(b, "b0").await.unwrap().unwrap();
    assert!(
        plain.record.enriched_by.is_empty(),
        "tenant B's events are as sent"
    );

    // The rollups saw the patched cost.
    let s = hub_storage::analytics::summary(
        storage.as_ref(),
        a,
        &hub_storage::analytics::SummaryQuery {
            from_ms: 0,
            to_ms: hub_core::time::now_ms() + 60_000,
            group_by: vec![],
            filters: vec![],
        },
    )
    .await
    .unwrap();
    let total = s[0].agg.cost_usd;
    assert!((total - 60.0 * 0.0035).abs() < 1e-9, "{total}");

    let health = host.health(a);
    // Two batches of tenant A: one call each, or one for both when they share a group commit.
    assert!(
        (1..=2).contains(&health["cost"].calls),
        "{:?}",
        health["cost"]
    );
    assert_eq!(health["cost"].failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_plugin_loses_no_event_and_is_disabled_after_repeated_failures() {
    let (storage, host, _dir) = setup(3).await;
    let a = storage.tenants().create_tenant("a", 0).await.unwrap().id;
    let b = storage.tenants().create_tenant("b", 0).await.unwrap().id;
    let (m, w) = plugin("testing/misbehave");
    let grants = GrantsDoc {
        kv: true,
        http: vec![],
    };
    host.install(
        a,
        &m,
        w.clone(),
        Some(json!({"mode": "loop"})),
        grants.clone(),
        true,
    )
    .await
    .unwrap();
    host.install(b, &m, w, Some(json!({"mode": "ok"})), grants, true)
        .await
        .unwrap();
    let (m, w) = plugin("cost");
    host.install(a, &m, w, None, GrantsDoc::default(), true)
        .await
        .unwrap();

    for round in 0..4 {
        ingest(
            &storage,
            &host,
            vec![
                (a, events(&format!("a{round}-"), 20)),
                (b, events(&format!("b{round}-"), 20)),
            ],
        )
        .await;
    }
    // Every event is stored; A's carry cost's patch (cost runs after the looping plugin) but not
    // misbehave's; B's carry misbehave's patch ($0.001 each).
    let ca = costs(&storage, a).await;
    assert_eq!(ca.len(), 80);
    assert!(
        ca.iter().all(|c| (c.unwrap() - 0.0035).abs() < 1e-12),
        "{ca:?}"
    );
    let cb = costs(&storage, b).await;
    assert_eq!(cb.len(), 80);
    assert!(cb.iter().all(|c| *c == Some(0.001)), "{cb:?}");

    let installs = storage.plugins().plugin_installs(a).await.unwrap();
    let bad = installs.iter().find(|i| i.name == "misbehave").unwrap();
    assert!(!bad.enabled, "disabled after 3 failures in a row");
    assert_eq!(bad.consecutive_failures, 3);
    let reason = bad.disabled_reason.as_deref().unwrap();
    assert!(
        reason.contains("3 failures in a row") && reason.contains("deadline"),
        "{reason}"
    );
    let h = host.health(a);
    assert_eq!(
        h["misbehave"].failures, 3,
        "the fourth batch no longer called it"
    );
    assert!(storage.plugins().plugin_installs(b).await.unwrap()[0].enabled);
    let stats = host.stats.snapshot();
    assert_eq!(stats["misbehave"].failures.get("deadline"), Some(&3));
    assert_eq!(stats["misbehave"].auto_disabled, 1);

    // Enabling it again (after fixing the configuration) clears the streak.
    host.update(
        a,
        "misbehave",
        Some(true),
        Some(json!({"mode": "ok"})),
        None,
    )
    .await
    .unwrap();
    let i = storage.plugins().plugin_installs(a).await.unwrap();
    let m = i.iter().find(|i| i.name == "misbehave").unwrap();
    assert!(m.enabled && m.disabled_reason.is_none() && m.consecutive_failures == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_over_the_cap_are_evicted_and_made_again() {
    let (storage, host, _dir) = setup_with(PluginHostConfig {
        max_instances: 1,
        ..Default::default()
    })
    .await;
    let (m, w) = plugin("cost");
    let mut tenants = Vec::new();
    for name in ["t1", "t2", "t3"] {
        let t = storage.tenants().create_tenant(name, 0).await.unwrap().id;
        host.install(t, &m, w.clone(), None, GrantsDoc::default(), true)
            .await
            .unwrap();
        tenants.push(t);
    }
    for round in 0..2 {
        for (i, t) in tenants.iter().enumerate() {
            ingest(
                &storage,
                &host,
                vec![(*t, events(&format!("r{round}-{i}-"), 5))],
            )
            .await;
        }
    }
    for t in tenants {
        let c = costs(&storage, t).await;
        assert_eq!(c.len(), 10);
        assert!(c.iter().all(|c| c.is_some()), "{c:?}");
        assert_eq!(host.health(t)["cost"].failures, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_check_config_grants_and_order() {
    let (storage, host, _dir) = setup(5).await;
    let a = storage.tenants().create_tenant("a", 0).await.unwrap().id;
    let (m, w) = plugin("cost");
    let e = host
        .install(
            a,
            &m,
            w.clone(),
            Some(json!({"discounts": [{"percent": "ten"}]})),
            GrantsDoc::default(),
            true,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("/discounts/0/percent"), "{e}");
    let e = host
        .install(
            a,
            &m,
            w.clone(),
            None,
            GrantsDoc {
                kv: true,
                http: vec![],
            },
            true,
        )
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(e, "grants.kv: `cost` does not ask for kv");
    assert!(
        storage
            .plugins()
            .plugin_installs(a)
            .await
            .unwrap()
            .is_empty(),
        "nothing half-stored"
    );
    host.install(a, &m, w, None, GrantsDoc::default(), true)
        .await
        .unwrap();
    let (m, w) = plugin("registry");
    let e = host
        .install(
            a,
            &m,
            w.clone(),
            None,
            GrantsDoc {
                kv: true,
                http: vec!["http://x".into()],
            },
            true,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("grants.http[0]"), "{e}");
    host.install(
        a,
        &m,
        w,
        None,
        GrantsDoc {
            kv: true,
            http: vec![],
        },
        true,
    )
    .await
    .unwrap();
    let order =
        |v: Vec<hub_storage::PluginInstall>| v.into_iter().map(|i| i.name).collect::<Vec<_>>();
    assert_eq!(
        order(storage.plugins().plugin_installs(a).await.unwrap()),
        ["cost", "registry"]
    );
    host.reorder(a, &["registry".into()]).await.unwrap();
    assert_eq!(
        order(storage.plugins().plugin_installs(a).await.unwrap()),
        ["registry", "cost"]
    );
    host.uninstall(a, "registry", true).await.unwrap();
    assert_eq!(
        order(storage.plugins().plugin_installs(a).await.unwrap()),
        ["cost"]
    );
}

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
    let (storage, host, _dir) = setup(5).await;
    let t = storage.tenants().create_tenant("py", 0).await.unwrap().id;
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
    let (producer, consumer) = hub_bus::in_process(1000, 1000);
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
