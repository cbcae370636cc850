//! A tenant's plugins never hold up another tenant's batches: enrichment runs in a lane per
//! tenant, off the writers' path, and each tenant's plugin calls are charged to its own CPU
//! budget. Tested with the misbehaving test component, slow but always successful (the case
//! failure counting never catches).

mod support;

use std::time::{Duration, Instant};

use hub_bus::{Refused, Saturated};
use hub_pipeline::{Pipeline, PipelineConfig};
use hub_plugins::GrantsDoc;
use hub_plugins::PluginHostConfig;
use serde_json::json;
use support::{events, install_misbehave, plugin, setup_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tenant_is_throttled_and_disabled_while_its_neighbour_never_waits() {
    let busy = Duration::from_millis(400);
    let (storage, host, _dir) = setup_with(PluginHostConfig {
        cpu_budget: Duration::from_millis(100),
        throttle_disable_after: Some(Duration::from_secs(2)),
        ..Default::default()
    })
    .await;
    let hostile = storage
        .tenants()
        .create_tenant("hostile", 0)
        .await
        .unwrap()
        .id;
    let healthy = storage
        .tenants()
        .create_tenant("healthy", 0)
        .await
        .unwrap()
        .id;
    install_misbehave(
        &host,
        hostile,
        json!({"mode": "slow", "busy_ms": busy.as_millis() as u64}),
    )
    .await;
    let (m, w) = plugin("cost");
    host.install(healthy, &m, w, None, GrantsDoc::default(), true)
        .await
        .unwrap();

    // Each tenant may queue 500 events: the hostile one fills its share while it waits.
    let (producer, consumer) = hub_bus::in_process(100_000, 500);
    let pipeline = Pipeline::spawn(
        storage.clone(),
        consumer,
        PipelineConfig {
            lane_idle: Duration::from_millis(300),
            ..Default::default()
        },
        Some(host.clone()),
    );

    // The hostile tenant sends 10 events every 20 ms and keeps count of what was acknowledged.
    let sender = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let (mut acks, mut refused) = (Vec::new(), 0);
            let started = Instant::now();
            let mut i = 0;
            while started.elapsed() < Duration::from_millis(4500) {
                match producer.try_publish(hostile, events(&format!("h{i}-"), 10)) {
                    Ok(ack) => acks.push(ack),
                    Err(Refused::Saturated(Saturated::Tenant { .. })) => refused += 1,
                    Err(e) => panic!("the hub itself refused: {e}"),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut acknowledged = 0;
            for ack in acks {
                acknowledged += ack.await.unwrap().unwrap().inserted;
            }
            (acknowledged, refused)
        })
    };

    // Meanwhile the healthy tenant's batches, one after another, each timed to its ack.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let ack = producer
            .try_publish(healthy, events(&format!("ok{sent}-"), 100))
            .unwrap();
        assert_eq!(ack.await.unwrap().unwrap().inserted, 100);
        slowest = slowest.max(t.elapsed());
        sent += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (acknowledged, refused) = sender.await.unwrap();

    // Never as long as one hostile call: the healthy batches did not wait on them.
    assert!(
        slowest < busy,
        "the healthy tenant's slowest ack took {slowest:?}"
    );
    assert!(refused > 0, "the hostile tenant's own share filled up");
    let installs = storage.plugins().plugin_installs(hostile).await.unwrap();
    let reason = installs[0].disabled_reason.clone().unwrap_or_default();
    assert!(!installs[0].enabled, "disabled for its CPU use");
    assert!(
        reason.starts_with(
            "disabled for using more than this tenant's plugin CPU budget (100 ms per second)"
        ),
        "{reason}"
    );
    // Disabled after two seconds of throttling, which the reason says: the episode is counted
    // from its first wait, so it includes the calls between waits as well as the waits.
    let throttled_for: u64 = reason
        .split("throttled for ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(throttled_for >= 2, "{reason}");
    let budget = host.budget(hostile);
    assert!(budget.throttled >= Duration::from_secs(1), "{budget:?}");
    assert_eq!(host.budget(healthy).throttled, Duration::ZERO);

    // The lanes closed when idle open again for the next batch.
    tokio::time::sleep(Duration::from_millis(700)).await;
    producer
        .try_publish(healthy, events("late-", 5))
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    drop(producer);
    pipeline.join().await;

    // Nothing acknowledged was lost, on either side.
    assert_eq!(
        storage.count_events(hostile).await.unwrap(),
        acknowledged as i64
    );
    assert_eq!(storage.count_events(healthy).await.unwrap(), sent * 100 + 5);
}
