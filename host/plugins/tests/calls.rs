//! The one call path, for worlds other than the enricher's: a detector (the zscore example,
//! built from plugins/) called through `PluginHost::call` is counted in its health and its
//! tenant's CPU budget, disabled after failures in a row with the last one in its reason; an
//! enricher's failing refresh is recorded without counting towards disabling it, and a storage
//! failure under a call is the hub's, never the plugin's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hub_core::TenantId;
use hub_plugins::{GrantsDoc, PluginHost, PluginHostConfig};
use hub_runtime::{CallError, Series};
use hub_storage::Storage;
use serde_json::json;

fn plugin(name: &str) -> (String, Vec<u8>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins")
        .join(name);
    hub_plugin_sdk::testing::built_plugin(dir).unwrap()
}

async fn setup(config: PluginHostConfig) -> (Arc<dyn Storage>, Arc<PluginHost>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage = hub_storage::testing::scratch_sqlite(dir.path()).await;
    let runtime = hub_runtime::Runtime::new(hub_runtime::RuntimeConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..Default::default()
    })
    .unwrap();
    let host = Arc::new(PluginHost::new(runtime, storage.clone(), config));
    (storage, host, dir)
}

/// A minute series with a spike in its last point.
fn spiky() -> Vec<Series> {
    let n = 60;
    let mut values: Vec<f64> = (0..n).map(|i| 100.0 + (i % 5) as f64).collect();
    values[n - 1] = 1000.0;
    vec![Series {
        key: vec![("model".into(), "gpt-4o".into())],
        metric: "requests".into(),
        step_ms: 60_000,
        ts_ms: (0..n as i64).map(|i| i * 60_000).collect(),
        values,
    }]
}

async fn tenant(storage: &Arc<dyn Storage>, name: &str) -> TenantId {
    storage.tenants().create_tenant(name, 0).await.unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detector_is_called_settled_and_disabled_through_the_one_path() {
    let (storage, host, _dir) = setup(PluginHostConfig {
        max_consecutive_failures: 2,
        cpu_budget: Duration::from_micros(1),
        ..Default::default()
    })
    .await;
    let acme = tenant(&storage, "acme").await;
    let (m, w) = plugin("examples/zscore");
    host.install(
        acme,
        &m,
        w,
        Some(json!({"window": 30, "threshold": 3.0, "critical": 5.0, "check_last": 1})),
        GrantsDoc::default(),
        true,
    )
    .await
    .unwrap();

    // Not installed: nothing is called.
    assert!(
        host.call(acme, "nope", |i| i.detect(&[]), |a| a.len())
            .await
            .is_none()
    );
    let series = spiky();
    let found = host
        .call(acme, "zscore", move |i| i.detect(&series), |a| a.len())
        .await
        .expect("installed")
        .expect("a detector's answer");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].ts_ms, 59 * 60_000);
    let health = host.health(acme);
    let h = &health["zscore"];
    assert_eq!((h.calls, h.failures), (1, 0));
    assert!(h.cpu_micros > 0);
    let counters = host.stats.snapshot();
    assert_eq!(counters["zscore"].calls, 1);
    assert_eq!(counters["zscore"].items, 1, "items counted");
    // The call was charged to the tenant's (one microsecond a second) budget.
    assert!(host.budget_wait(acme).is_some());

    // A bug on the host's side (here: the caller's closure panics) is the hub's failure, not the
    // plugin's, and the next call gets a working instance.
    let r = host
        .call(
            acme,
            "zscore",
            |_| -> Result<Vec<hub_runtime::Anomaly>, CallError> { panic!("a host bug") },
            |a| a.len(),
        )
        .await
        .expect("installed");
    assert!(
        matches!(&r, Err(CallError::Host(m)) if m.contains("did not finish")),
        "{r:?}"
    );
    let h = &host.health(acme)["zscore"];
    assert_eq!(
        (h.calls, h.failures),
        (2, 0),
        "not counted against the plugin"
    );
    assert_eq!(host.stats.snapshot()["zscore"].failures["host"], 1);
    let series = spiky();
    let again = host
        .call(acme, "zscore", move |i| i.detect(&series), |a| a.len())
        .await
        .expect("installed");
    assert_eq!(again.map(|a| a.len()), Ok(1));

    // A call the world does not have fails like any call, and failures in a row disable it.
    for _ in 0..2 {
        let r = host
            .call(acme, "zscore", |i| i.forecast(&[], 1), |f| f.len())
            .await
            .expect("still installed");
        assert!(matches!(r, Err(CallError::WrongKind(_))), "{r:?}");
    }
    let install = &storage.plugins().plugin_installs(acme).await.unwrap()[0];
    assert!(!install.enabled);
    assert_eq!(
        install.disabled_reason.as_deref(),
        Some(
            "disabled after 2 failures in a row; the last: the plugin is a detector, which has no such function"
        )
    );
    assert_eq!(host.health(acme)["zscore"].failures, 2);
    // Disabled: the next call finds nothing to call.
    assert!(
        host.call(acme, "zscore", |i| i.detect(&[]), |a| a.len())
            .await
            .is_none()
    );
    // Another tenant's calls and health are its own.
    let other = tenant(&storage, "other").await;
    assert!(host.health(other).is_empty());
    assert!(host.budget_wait(other).is_none());
}

/// Installs `registry` with a sync URL on loopback: the runtime refuses it (a private address), so
/// every refresh fails.
async fn install_failing_registry(host: &PluginHost, tenant: TenantId) {
    let (m, w) = plugin("registry");
    host.install(
        tenant,
        &m,
        w,
        Some(json!({"sync_url": "http://127.0.0.1:9/models"})),
        GrantsDoc {
            kv: true,
            http: vec!["127.0.0.1:9".into()],
        },
        true,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_refresh_is_recorded_but_never_disables_an_enricher() {
    let (storage, host, _dir) = setup(PluginHostConfig {
        max_consecutive_failures: 1,
        cpu_budget: Duration::from_micros(1),
        ..Default::default()
    })
    .await;
    let acme = tenant(&storage, "acme").await;
    install_failing_registry(&host, acme).await;
    assert!(
        host.has_enrichers(acme).await,
        "loads the tenant's installs"
    );
    host.refresh_due().await;
    let health = host.health(acme);
    let h = &health["registry"];
    assert_eq!((h.calls, h.failures), (1, 1));
    let error = h.last_error.as_deref().unwrap();
    assert!(error.contains("private or loopback address"), "{error}");
    // The refresh was charged to the tenant's (one microsecond a second) budget.
    assert!(host.budget_wait(acme).is_some());
    // Not due again within its interval.
    host.refresh_due().await;
    assert_eq!(host.health(acme)["registry"].calls, 1);
    let install = &storage.plugins().plugin_installs(acme).await.unwrap()[0];
    assert!(install.enabled, "{:?}", install.disabled_reason);
    assert_eq!(install.consecutive_failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_sandbox_is_charged_to_its_tenants_budget() {
    let (storage, host, _dir) = setup(PluginHostConfig {
        cpu_budget: Duration::from_micros(1),
        ..Default::default()
    })
    .await;
    let acme = tenant(&storage, "acme").await;
    let (m, w) = plugin("cost");
    host.install(acme, &m, w, None, GrantsDoc::default(), true)
        .await
        .unwrap();
    let mut sandbox = host.sandbox(acme).await.unwrap();
    assert!(sandbox.in_budget(), "nothing spent yet");
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    let mut events: Vec<_> = (0..100)
        .map(|i| {
            let raw = format!(
                r#"{{"event_id": "e{i}", "timestamp": {now}, "model": "gpt-4o-2024-08-06", "input_tokens": 1000, "output_tokens": 100}}"#
            );
            hub_core::ingest::parse_event(&raw, &limits, now).unwrap()
        })
        .collect();
    let sandbox = tokio::task::spawn_blocking(move || {
        sandbox.enrich(&mut events).unwrap();
        assert!(events.iter().all(|e| e.estimated_cost_usd.is_some()));
        sandbox
    })
    .await
    .unwrap();
    // Its calls were charged: the tenant is over its (one microsecond a second) budget now, and
    // its health and failure streak are untouched (a job's calls are not the install's).
    assert!(!sandbox.in_budget());
    assert!(host.budget_wait(acme).is_some());
    assert!(host.health(acme).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_waits_while_its_tenant_is_over_budget() {
    let (storage, host, _dir) = setup(PluginHostConfig {
        cpu_budget: Duration::from_millis(1),
        ..Default::default()
    })
    .await;
    let acme = tenant(&storage, "acme").await;
    let (m, w) = plugin("cost");
    host.install(acme, &m, w, None, GrantsDoc::default(), true)
        .await
        .unwrap();
    install_failing_registry(&host, acme).await;
    assert!(host.has_enrichers(acme).await);

    // Spend the tenant's budget (a millisecond a second, a second's worth banked) on enrichment.
    let mut sandbox = host.sandbox(acme).await.unwrap();
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    let raw = format!(
        r#"{{"timestamp": {now}, "model": "gpt-4o-2024-08-06", "input_tokens": 1000, "output_tokens": 100}}"#
    );
    let event = hub_core::ingest::parse_event(&raw, &limits, now).unwrap();
    let sandbox = tokio::task::spawn_blocking(move || {
        for _ in 0..10_000 {
            if !sandbox.in_budget() {
                break;
            }
            let mut events = vec![event.clone(); 200];
            sandbox.enrich(&mut events).unwrap();
        }
        sandbox
    })
    .await
    .unwrap();
    assert!(
        !sandbox.in_budget(),
        "10,000 passes stayed within a millisecond"
    );

    // Due, but put off: not called while the tenant is over.
    host.refresh_due().await;
    assert!(!host.health(acme).contains_key("registry"));

    // Once the bucket has refilled, the refresh that was put off runs.
    let started = std::time::Instant::now();
    while !sandbox.in_budget() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the budget never refilled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    host.refresh_due().await;
    assert_eq!(host.health(acme)["registry"].calls, 1);
}

/// When the hub's storage fails under a call (here: it is closed before the call reads the
/// tenant's plugins and the first instance loads its kv), the call fails as the host's, never as
/// the plugin's: nothing counts towards disabling it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_is_the_hubs_not_the_plugins() {
    let (storage, host, dir) = setup(PluginHostConfig {
        max_consecutive_failures: 1,
        ..Default::default()
    })
    .await;
    let acme = tenant(&storage, "acme").await;
    let (m, w) = plugin("examples/zscore");
    host.install(
        acme,
        &m,
        w,
        Some(json!({"window": 30, "threshold": 3.0, "critical": 5.0, "check_last": 1})),
        GrantsDoc::default(),
        true,
    )
    .await
    .unwrap();
    storage.close().await;
    for _ in 0..3 {
        let series = spiky();
        let r = host
            .call(acme, "zscore", move |i| i.detect(&series), |a| a.len())
            .await
            .expect("installed");
        assert!(
            matches!(&r, Err(CallError::Host(m)) if m.contains("database error")),
            "{r:?}"
        );
    }
    let health = host.health(acme);
    assert_eq!(
        health.get("zscore").map_or(0, |h| h.failures),
        0,
        "not counted against the plugin"
    );
    // Reopened, the database still has the plugin enabled, with no failures and no reason.
    let reopened = hub_storage::testing::scratch_sqlite(dir.path()).await;
    let install = reopened
        .plugins()
        .plugin_installs(acme)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.name == "zscore")
        .unwrap();
    assert!(install.enabled, "{install:?}");
    assert_eq!(
        (install.consecutive_failures, install.disabled_reason),
        (0, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_analysis_is_not_charged_to_the_enrichment_budget() {
    // A budget of a microsecond a second: any charged call puts the tenant over it.
    let (storage, host, _dir) = setup(PluginHostConfig {
        cpu_budget: Duration::from_micros(1),
        ..Default::default()
    })
    .await;
    let acme = tenant(&storage, "acme").await;
    let (m, w) = plugin("examples/zscore");
    host.install(
        acme,
        &m,
        w,
        Some(json!({"window": 30})),
        GrantsDoc::default(),
        true,
    )
    .await
    .unwrap();
    let analyser = host.analysers(acme).await.unwrap().remove(0);
    let found = host
        .detect(acme, &analyser, Arc::new(spiky()))
        .await
        .expect("a detector's answer");
    assert_eq!(found.len(), 1);
    // Counted in its health, with its CPU time, but the tenant's enrichment does not wait for it.
    let h = &host.health(acme)["zscore"];
    assert_eq!((h.calls, h.failures), (1, 0));
    assert!(h.cpu_micros > 0);
    assert_eq!(host.budget_wait(acme), None, "analysis is not charged");
    // The same detector called as a main job is charged (the budget is real).
    let series = spiky();
    host.call(acme, "zscore", move |i| i.detect(&series), |a| a.len())
        .await
        .unwrap()
        .unwrap();
    assert!(host.budget_wait(acme).is_some());
}
