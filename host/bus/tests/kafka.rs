//! The Kafka bus against a real Kafka-protocol broker (tansu, started per test): publishing,
//! consuming as a group, committing only what is stored, redelivery to the next worker, dead
//! letters and their replay, readiness while the broker is down.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub_bus::kafka::testing::Broker;
use hub_bus::kafka::watch::Watch;
use hub_bus::kafka::{KafkaConfig, Publisher, dlq, worker};
use hub_bus::{BusConsumer, BusProducer, Committed, Refused};
use hub_core::{EventRecord, TenantId};

fn events(tenant: i64, batch: usize, n: usize) -> Vec<EventRecord> {
    let limits = hub_core::ingest::IngestLimits::default();
    let now = hub_core::time::now_ms();
    (0..n)
        .map(|i| {
            let raw = format!(
                r#"{{"event_id": "t{tenant}-b{batch}-e{i}", "timestamp": {now}, "model": "gpt-4o", "input_tokens": 3}}"#
            );
            hub_core::ingest::parse_event(&raw, &limits, now).unwrap()
        })
        .collect()
}

fn config(broker: &Broker, topic: &str) -> KafkaConfig {
    let mut c = KafkaConfig::from_url(&broker.url()).unwrap();
    c.topic = topic.into();
    c.group = format!("{topic}-workers");
    c.partitions = 3;
    c.ack_timeout = Duration::from_secs(5);
    c
}

/// Waits for `ok`; `Err` when it is not within `timeout` (most callers unwrap it).
async fn until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !ok() {
        if Instant::now() >= deadline {
            return Err(format!("{what}: not within {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn publisher(config: &KafkaConfig) -> Arc<Publisher> {
    let watch = Watch::spawn(config.clone(), Duration::from_millis(200)).unwrap();
    let w = watch.clone();
    until("the broker answers", Duration::from_secs(30), || {
        w.partitions().is_ok()
    })
    .await
    .unwrap();
    Arc::new(Publisher::new(config.clone(), watch).unwrap())
}

/// A stand-in for the pipeline: takes every batch, records its event ids, and acknowledges the
/// first `ack_first` batches (all when `None`), holding the rest unacknowledged.
fn pipeline(
    consumer: BusConsumer,
    ack_first: Option<usize>,
) -> (
    Arc<Mutex<Vec<String>>>,
    tokio::task::JoinHandle<Vec<hub_bus::Envelope>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        let mut acked = 0;
        while let Some(group) = consumer.next_group(10_000).await {
            for env in group {
                s.lock()
                    .unwrap()
                    .extend(env.events.iter().map(|e| e.event_id.clone()));
                if ack_first.is_none_or(|n| acked < n) {
                    acked += 1;
                    let n = env.events.len();
                    env.acknowledge(Ok(Committed {
                        inserted: n,
                        ..Default::default()
                    }));
                } else {
                    held.push(env);
                }
            }
        }
        held
    });
    (seen, task)
}

fn total_lag(p: &BusProducer) -> i64 {
    p.lag().iter().map(|l| l.lag).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_go_through_the_broker_and_offsets_follow_what_is_stored() {
    let broker = Broker::start();
    let config = config(&broker, "t1.ingest");
    let publisher = publisher(&config).await;
    let bus = BusProducer::kafka(publisher.clone());
    assert_eq!(bus.kind(), "kafka");
    assert!(bus.ready().is_ok());

    // 3 tenants x 5 batches x 10 events, acknowledged by the broker before any worker runs.
    let mut sent = HashSet::new();
    let mut acks = Vec::new();
    for t in 1..=3 {
        for b in 0..5 {
            let batch = events(t, b, 10);
            sent.extend(batch.iter().map(|e| e.event_id.clone()));
            acks.push(bus.try_publish(TenantId::from_verified(t), batch).unwrap());
        }
    }
    for ack in acks {
        let c = ack.await.unwrap().unwrap();
        assert_eq!((c.pending, c.inserted, c.duplicates), (10, 0, 0));
    }
    until("the lag is read", Duration::from_secs(10), || {
        total_lag(&bus) == 15
    })
    .await
    .map_err(|_| format!("{:?}", bus.lag()))
    .unwrap();

    let (consumer, w) = worker::spawn(&publisher, 10_000, 10_000).unwrap();
    let (seen, task) = pipeline(consumer, None);
    until(
        "every event reaches the pipeline",
        Duration::from_secs(60),
        || seen.lock().unwrap().len() >= 150,
    )
    .await
    .unwrap();
    let got: HashSet<String> = seen.lock().unwrap().iter().cloned().collect();
    assert_eq!(got, sent);
    until(
        "the group commits what is stored",
        Duration::from_secs(20),
        || total_lag(&bus) == 0,
    )
    .await
    .unwrap();
    assert_eq!(
        w.stats.stored.load(std::sync::atomic::Ordering::Relaxed),
        15
    );

    // A message this worker cannot read (a newer format) goes to the dead letters; the
    // partition goes on past it.
    hub_bus::kafka::testing::produce_raw(
        &config,
        0,
        &[("hub-schema", "2"), ("hub-tenant", "1")],
        b"[]",
    )
    .await;
    let c2 = config.clone();
    until("the dead letter is listed", Duration::from_secs(30), || {
        dlq::list(&c2, 10).is_ok_and(|l| l.len() == 1)
    })
    .await
    .unwrap();
    let letters = dlq::list(&config, 10).unwrap();
    assert!(
        letters[0].reason.contains("format version 2"),
        "{letters:?}"
    );
    assert_eq!(letters[0].tenant.as_deref(), Some("1"));
    assert!(letters[0].from.starts_with("t1.ingest/0@"), "{letters:?}");
    until(
        "committed past the dead letter",
        Duration::from_secs(20),
        || total_lag(&bus) == 0,
    )
    .await
    .unwrap();
    assert_eq!(
        w.stats
            .dead_letters
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // Replayed once (it still cannot be read, so it comes back); a second replay has nothing new
    // but what came back.
    let c3 = config.clone();
    let r = tokio::task::spawn_blocking(move || dlq::replay(&c3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.replayed, r.skipped), (1, 0));
    let c4 = config.clone();
    until(
        "the replayed letter comes back",
        Duration::from_secs(30),
        || dlq::list(&c4, 10).is_ok_and(|l| l.len() == 2),
    )
    .await
    .unwrap();
    let c5 = config.clone();
    let r = tokio::task::spawn_blocking(move || dlq::replay(&c5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.replayed, r.skipped), (1, 1));

    w.stop(Duration::from_secs(5)).await;
    let held = task.await.unwrap();
    assert!(held.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_worker_did_not_store_goes_to_the_next_one() {
    let broker = Broker::start();
    let config = config(&broker, "t2.ingest");
    let publisher = publisher(&config).await;
    let bus = BusProducer::kafka(publisher.clone());
    let mut sent = HashSet::new();
    for b in 0..20 {
        let batch = events(1 + (b as i64 % 4), b, 5);
        sent.extend(batch.iter().map(|e| e.event_id.clone()));
        bus.try_publish(TenantId::from_verified(1 + (b as i64 % 4)), batch)
            .unwrap()
            .await
            .unwrap()
            .unwrap();
    }
    // The first worker stores 5 batches and holds the other 15 when it goes.
    let (consumer, a) = worker::spawn(&publisher, 10_000, 10_000).unwrap();
    let (seen_a, task_a) = pipeline(consumer, Some(5));
    until(
        "the first worker has every batch",
        Duration::from_secs(60),
        || seen_a.lock().unwrap().len() >= 100,
    )
    .await
    .unwrap();
    a.stop(Duration::from_millis(500)).await;
    let held = task_a.await.unwrap();
    assert_eq!(held.len(), 15);
    let mut unstored: HashSet<String> = HashSet::new();
    for env in &held {
        unstored.extend(env.events.iter().map(|e| e.event_id.clone()));
    }
    drop(held);
    assert_eq!(unstored.len(), 75);

    // The next worker gets (at least) everything the first did not store.
    let (consumer, b) = worker::spawn(&publisher, 10_000, 10_000).unwrap();
    let (seen_b, task_b) = pipeline(consumer, None);
    until(
        "the next worker has what was not stored",
        Duration::from_secs(60),
        || {
            let seen: HashSet<String> = seen_b.lock().unwrap().iter().cloned().collect();
            unstored.is_subset(&seen)
        },
    )
    .await
    .unwrap();
    until("everything is committed", Duration::from_secs(20), || {
        total_lag(&bus) == 0
    })
    .await
    .unwrap();
    let seen: HashSet<String> = seen_b.lock().unwrap().iter().cloned().collect();
    assert!(seen.is_subset(&sent));
    b.stop(Duration::from_secs(5)).await;
    task_b.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_is_down_is_refused_at_once_and_readiness_says_so() {
    let mut broker = Broker::start();
    let config = config(&broker, "t3.ingest");
    let publisher = publisher(&config).await;
    let bus = BusProducer::kafka(publisher.clone());
    broker.kill();
    until("readiness notices", Duration::from_secs(20), || {
        bus.ready().is_err()
    })
    .await
    .unwrap();
    let started = Instant::now();
    match bus.try_publish(TenantId::from_verified(1), events(1, 0, 1)) {
        Err(Refused::Unavailable(reason)) => assert!(reason.contains("broker"), "{reason}"),
        other => panic!("expected Unavailable, got {:?}", other.map(|_| ())),
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    broker.restart();
    until("ready again", Duration::from_secs(30), || {
        bus.ready().is_ok()
    })
    .await
    .unwrap();
    let c = bus
        .try_publish(TenantId::from_verified(1), events(1, 1, 3))
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.pending, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_partition_gets_429_and_other_tenants_do_not() {
    let broker = Broker::start();
    let mut config = config(&broker, "t4.ingest");
    config.max_lag = 3;
    let publisher = publisher(&config).await;
    let bus = BusProducer::kafka(publisher.clone());
    let slow = TenantId::from_verified(1);
    let home = config.partition_of(slow, 3, 0);
    let other = (2..100)
        .map(TenantId::from_verified)
        .find(|t| config.partition_of(*t, 3, 0) != home)
        .unwrap();
    // No worker: each acknowledged batch adds to the lag of the slow tenant's partition, at once
    // (this replica knows where its batches went) and then by the broker's reading.
    for b in 0..4 {
        bus.try_publish(slow, events(1, b, 2))
            .unwrap()
            .await
            .unwrap()
            .unwrap();
    }
    until("the lag is read", Duration::from_secs(10), || {
        total_lag(&bus) == 4
    })
    .await
    .unwrap();
    match bus.try_publish(slow, events(1, 9, 1)) {
        Err(Refused::Saturated(s)) => {
            let m = s.to_string();
            assert!(
                m.contains("4 batches behind") && m.contains(&format!("partition {home}")),
                "{m}"
            );
        }
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    let c = bus
        .try_publish(other, events(other.get(), 0, 1))
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.pending, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_a_message_is_refused_by_name() {
    let broker = Broker::start();
    let config = config(&broker, "t5.ingest");
    let publisher = publisher(&config).await;
    let bus = BusProducer::kafka(publisher.clone());
    let mut batch = events(1, 0, 3);
    batch[2].payload_json = format!("{{\"prompt\": \"{}\"}}", "x".repeat(1_100_000));
    match bus.try_publish(TenantId::from_verified(1), batch) {
        Err(Refused::TooLarge(m)) => assert!(m.starts_with("event 2 is 1100"), "{m}"),
        other => panic!("expected TooLarge, got {:?}", other.map(|_| ())),
    }
    // Large batches of ordinary events go in pieces and are all acknowledged.
    let c = bus
        .try_publish(TenantId::from_verified(1), events(1, 1, 10_000))
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.pending, 10_000);
}
