//! Plugin memory is held to each tenant's share and to the hub's cap: a tenant that wants more
//! than its share gets its own failures, idle instances make room for others' (the least
//! recently used first) before anyone's growth is refused, and instances idle past the release period give
//! their memory back. Tested with the misbehaving component keeping memory between calls.

mod support;

use std::time::Duration;

use hub_core::TenantId;
use hub_plugins::PluginHost;
use hub_plugins::PluginHostConfig;
use hub_runtime::RuntimeConfig;
use serde_json::json;
use support::{events, install_misbehave, setup_full};

const MIB: usize = 1 << 20;

async fn holding(host: &PluginHost, tenant: TenantId, hold_mib: usize) {
    install_misbehave(host, tenant, json!({"mode": "hold", "hold_mib": hold_mib})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_memory_stays_within_each_tenants_share_and_the_hubs_cap() {
    let (storage, host, _dir) = setup_full(
        RuntimeConfig {
            memory_cap: 160 * MIB,
            tenant_memory_cap: 60 * MIB,
            ..Default::default()
        },
        PluginHostConfig {
            idle_release: Some(Duration::from_millis(300)),
            ..Default::default()
        },
    )
    .await;
    let mut tenants = Vec::new();
    for name in ["a", "b", "c", "greedy"] {
        tenants.push(storage.tenants().create_tenant(name, 0).await.unwrap().id);
    }
    let greedy = tenants[3];
    for &t in &tenants[..3] {
        holding(&host, t, 40).await;
    }
    // Under its instance cap (64 MiB), over its tenant's share.
    holding(&host, greedy, 62).await;
    let memory = host.runtime().memory();

    // Three tenants keep ~42 MiB each: 126 MiB passes three quarters of the 160 MiB cap, so the
    // idle instances make room (the least recently used first), and no tenant's call fails for the others.
    for (i, &t) in tenants[..3].iter().enumerate() {
        let mut ev = events(&format!("t{i}-"), 3);
        let report = host.enrich(t, &mut ev).await;
        assert_eq!((report.calls, report.failures), (1, 0), "tenant {i}");
        assert!(memory.used() <= 160 * MIB, "{} MiB", memory.used() / MIB);
        assert!(memory.tenant_used(&t.to_string()) >= 40 * MIB);
    }
    assert!(
        host.stats
            .memory_evictions
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert!(memory.used() <= 120 * MIB, "{} MiB", memory.used() / MIB);

    // The greedy tenant fails on its own share, saying so.
    let mut ev = events("g-", 3);
    let report = host.enrich(greedy, &mut ev).await;
    assert_eq!((report.calls, report.failures), (1, 1));
    let health = host.health(greedy);
    let error = health["misbehave"].last_error.clone().unwrap();
    assert!(
        error.starts_with("the tenant's plugins hold ")
            && error.contains("all of its plugin memory share of 60 MiB (the operator's --plugin-tenant-memory-mib)"),
        "{error}"
    );
    assert!(
        memory.tenant_used(&greedy.to_string()) == 0,
        "a failed instance gives it back"
    );
    assert!(memory.used() <= 160 * MIB);

    // Idle past the release period: everything comes back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    host.release_idle();
    assert_eq!(memory.used(), 0, "{} MiB still held", memory.used() / MIB);
    assert!(
        host.stats
            .idle_releases
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
    // And the next call makes a new instance, as after a restart.
    let mut ev = events("again-", 3);
    assert_eq!(host.enrich(tenants[0], &mut ev).await.failures, 0);
}
