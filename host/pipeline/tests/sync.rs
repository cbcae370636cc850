//! Integrations' `sync` bringing events in: the real sentinel component (built from
//! plugins/sentinel, hub:plugin@0.3.0) reads a real HTTP server playing LLM-Sentinel, and its
//! detections are stored through the bus and the pipeline as REST ingest's events are: checked
//! (an invalid one rejected with ingest's reason, its neighbours kept), tagged with the
//! integration, stored once across syncs and replicas, and the cursor persisted only once its
//! events are stored.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hub_core::TenantId;
use hub_pipeline::sync::{SyncConfig, SyncJob, SyncStats};
use hub_pipeline::{Pipeline, PipelineConfig};
use hub_plugin_sdk::testing::{HttpServer, Reply};
use hub_plugins::{GrantsDoc, PluginHost, PluginHostConfig};
use hub_storage::{EventFilter, Storage};
use serde_json::json;

async fn hub() -> (Arc<dyn Storage>, Arc<PluginHost>, tempfile::TempDir) {
    support::setup_full(
        hub_runtime::RuntimeConfig {
            allow_private_http: true,
            http_timeout: Duration::from_secs(4),
            ..Default::default()
        },
        PluginHostConfig::default(),
    )
    .await
}

async fn install_sentinel(host: &PluginHost, t: TenantId, server: &HttpServer) {
    let (m, w) = support::plugin("sentinel");
    let grants = GrantsDoc {
        kv: true,
        http: vec![server.host()],
    };
    host.install(t, &m, w, Some(json!({"url": server.url("")})), grants, true)
        .await
        .unwrap();
}

/// A Sentinel whose detections are two pages: three detections (one 30 days old, which ingest
/// refuses) then, asked with the cursor `c1`, one more.
fn sentinel() -> HttpServer {
    let now = hub_core::time::now_ms();
    let at = |ago_min: i64| hub_core::time::to_rfc3339(now - ago_min * 60_000);
    let page1 = json!({
        "detections": [
            {"id": "det-1", "detected_at": at(30), "threat_type": "prompt_injection",
             "threat_level": "high", "model": "gpt-4o"},
            {"id": "det-old", "detected_at": at(60 * 24 * 30), "threat_level": "low"},
            {"id": "det-2", "detected_at": at(20), "threat_level": "critical"},
        ],
        "cursor": "c1", "has_more": true,
    });
    let page2 = json!({
        "detections": [{"id": "det-3", "detected_at": at(5), "threat_level": "medium"}],
        "cursor": "c2", "has_more": false,
    });
    HttpServer::start(move |r| match r.query("cursor").as_deref() {
        None => Reply::json(200, &page1),
        Some("c1") => Reply::json(200, &page2),
        // Asked again from the end: the newest one again (a Sentinel's cursor may overlap).
        Some(_) => Reply::json(200, &page2),
    })
}

fn job(
    storage: &Arc<dyn Storage>,
    host: &Arc<PluginHost>,
    bus: hub_bus::BusProducer,
    owner: &str,
    patience: Duration,
) -> (Arc<SyncJob>, Arc<SyncStats>) {
    let stats = Arc::new(SyncStats::default());
    let job = Arc::new(SyncJob::new(
        host.clone(),
        storage.clone(),
        bus,
        SyncConfig {
            owner: owner.into(),
            publish_patience: patience,
            ..Default::default()
        },
        stats.clone(),
    ));
    (job, stats)
}

async fn stored(storage: &Arc<dyn Storage>, t: TenantId) -> Vec<hub_storage::StoredEvent> {
    storage
        .list_events(t, &EventFilter::default(), None, 1000)
        .await
        .unwrap()
        .events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detections_are_stored_as_ingest_stores_events_once_per_period_and_once_each() {
    let (storage, host, _dir) = hub().await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let server = sentinel();
    install_sentinel(&host, acme, &server).await;
    let (producer, consumer) = hub_bus::in_process(10_000, 5_000);
    let pipeline = Pipeline::spawn(
        storage.clone(),
        consumer,
        PipelineConfig::default(),
        Some(host.clone()),
    );
    let (a, stats) = job(
        &storage,
        &host,
        producer.clone(),
        "replica-a",
        Duration::from_secs(5),
    );
    let (b, _) = job(
        &storage,
        &host,
        producer.clone(),
        "replica-b",
        Duration::from_secs(5),
    );

    let syncers = host.syncers(acme).await;
    assert_eq!(syncers.len(), 1);
    assert_eq!(
        (syncers[0].name.as_str(), syncers[0].every_s),
        ("sentinel", 60)
    );
    let period = 1_800_000_000_000;
    // Two replicas, one period: one of them syncs it.
    tokio::join!(
        a.run_period(acme, &syncers[0], period),
        b.run_period(acme, &syncers[0], period)
    );
    // The answer said `more`: both pages were read in the one period.
    let gets = server.requests().len();
    assert_eq!(gets, 2, "two pages, read once");
    let events = stored(&storage, acme).await;
    let mut ids: Vec<&str> = events.iter().map(|e| e.record.event_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["sentinel-det-1", "sentinel-det-2", "sentinel-det-3"]);
    for e in &events {
        assert_eq!(e.record.kind, "security.threat");
        assert_eq!(e.record.source_module.as_deref(), Some("llm-sentinel"));
        assert!(
            e.record
                .tags_json
                .contains(r#""hub.integration":"sentinel""#),
            "{}",
            e.record.tags_json
        );
    }
    let run = storage
        .analysis_runs()
        .runs(acme, Some("sentinel"), 0)
        .await
        .unwrap();
    assert_eq!(run.len(), 1);
    let outcome = run[0].outcome.as_ref().unwrap();
    assert_eq!(outcome.outcome, "ok");
    assert_eq!((outcome.series, outcome.found), (4, 3));
    let message = outcome.message.as_deref().unwrap();
    assert!(
        message.contains("1 rejected; event 1: timestamp:"),
        "the rejection and ingest's reason are in the run's record: {message}"
    );
    assert_eq!(stats.events_rejected.load(Ordering::Relaxed), 1);
    // The cursor is persisted, now that the events are stored.
    let kv = storage.plugins().plugin_kv(acme, "sentinel").await.unwrap();
    assert_eq!(
        kv.get("detections.cursor").map(|v| v.as_slice()),
        Some(&br#""c2""#[..])
    );

    // The next period reads from the cursor; what it gets again is stored once.
    a.run_period(acme, &syncers[0], period + 60_000).await;
    assert_eq!(server.requests().len(), gets + 1);
    assert_eq!(stored(&storage, acme).await.len(), 3);
    assert_eq!(stats.events_duplicate.load(Ordering::Relaxed), 1);

    drop((a, b, producer));
    pipeline.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_that_cannot_be_stored_leave_the_cursor_where_it_was() {
    let (storage, host, _dir) = hub().await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let server = sentinel();
    install_sentinel(&host, acme, &server).await;
    // A bus with no pipeline behind it, already full: nothing the sync answers can be stored.
    let (producer, _consumer) = hub_bus::in_process(10, 10);
    let _held = producer
        .try_publish(acme, support::events("filler-", 10))
        .unwrap();
    let (a, stats) = job(
        &storage,
        &host,
        producer.clone(),
        "replica-a",
        Duration::ZERO,
    );
    let syncers = host.syncers(acme).await;
    a.run_period(acme, &syncers[0], 1_800_000_000_000).await;
    let run = storage
        .analysis_runs()
        .runs(acme, Some("sentinel"), 0)
        .await
        .unwrap();
    let outcome = run[0].outcome.as_ref().unwrap();
    assert_eq!(outcome.outcome, "failed");
    assert!(
        outcome
            .message
            .as_deref()
            .unwrap()
            .contains("asked for again next period"),
        "{outcome:?}"
    );
    assert_eq!(stats.runs_failed.load(Ordering::Relaxed), 1);
    let kv = storage.plugins().plugin_kv(acme, "sentinel").await.unwrap();
    assert!(
        !kv.contains_key("detections.cursor"),
        "the cursor did not move"
    );
    // The next call starts from the beginning again (no cursor): nothing was skipped.
    a.run_period(acme, &syncers[0], 1_800_000_060_000).await;
    let asked = server.requests();
    assert_eq!(asked.len(), 2);
    assert!(asked[1].query("cursor").is_none() && asked[1].query("since").is_some());
}

/// CostOps with two closed days of billing ($12.50 + $7.25 each), yesterday open, one budget of
/// $120.
fn costops_server(now: i64) -> HttpServer {
    use hub_core::time::DAY_MS;
    let today = now - now.rem_euclid(DAY_MS);
    let yesterday = hub_core::time::to_rfc3339(today - DAY_MS)[..10].to_string();
    HttpServer::start(move |r| match r.path() {
        "/api/v1/costops/billing" => {
            let date = r.query("date").unwrap();
            let done = date != yesterday;
            Reply::json(
                200,
                &json!({"date": date, "final": done, "lines": if done { json!([
                {"provider": "openai", "model": "gpt-4o", "billed_usd": 12.5},
                {"provider": "anthropic", "model": "claude-sonnet-4", "billed_usd": 7.25},
            ]) } else { json!([]) }}),
            )
        }
        "/api/v1/costops/budgets" => Reply::json(
            200,
            &json!({"budgets": [
                {"id": "monthly-care", "name": "Team care", "limit_usd": 120, "spent_usd": 100},
            ]}),
        ),
        _ => Reply::json(202, &json!({})),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costops_billing_sits_beside_the_hubs_cost_and_its_budget_drives_a_budget_rule() {
    use hub_core::time::DAY_MS;
    let (storage, host, _dir) = hub().await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let now = hub_core::time::now_ms();
    let server = costops_server(now);
    let (m, w) = support::plugin("costops");
    let grants = GrantsDoc {
        kv: true,
        http: vec![server.host()],
    };
    host.install(
        acme,
        &m,
        w,
        Some(json!({"url": server.url("")})),
        grants,
        true,
    )
    .await
    .unwrap();
    // $100 of calls this month, $10 of them two days ago (when the month allows).
    let (month_start, _) = hub_pipeline::spend::month_of(now);
    let limits = hub_core::ingest::IngestLimits::default();
    let two_days_ago = now - 2 * DAY_MS;
    let calls = (0..10)
        .map(|i| {
            let ts = if i == 0 && two_days_ago >= month_start {
                two_days_ago
            } else {
                (now - 60_000).max(month_start)
            };
            let raw = format!(
                r#"{{"event_id": "call-{i}", "timestamp": {ts}, "model": "gpt-4o", "cost_usd": 10, "status": "ok"}}"#
            );
            hub_core::ingest::parse_event(&raw, &limits, now).unwrap()
        })
        .collect();
    support::ingest(&storage, &host, vec![(acme, calls)]).await;

    let (producer, consumer) = hub_bus::in_process(10_000, 5_000);
    let pipeline = Pipeline::spawn(
        storage.clone(),
        consumer,
        PipelineConfig::default(),
        Some(host.clone()),
    );
    let (job, _) = job(
        &storage,
        &host,
        producer.clone(),
        "a",
        Duration::from_secs(5),
    );
    let syncers = host.syncers(acme).await;
    job.run_period(acme, &syncers[0], 1_800_000_000_000).await;
    let run = storage
        .analysis_runs()
        .runs(acme, Some("costops"), 0)
        .await
        .unwrap();
    let outcome = run[0].outcome.as_ref().unwrap();
    assert_eq!(
        (outcome.outcome.as_str(), outcome.found),
        ("ok", 5),
        "{outcome:?}"
    );
    // The projection CostOps was sent is the hub's: $100 spent this month.
    let projection = server
        .requests()
        .into_iter()
        .find(|r| r.path() == "/api/v1/costops/projections")
        .unwrap()
        .json();
    assert_eq!(projection["actual_usd"], 100.0);

    // Billed beside counted, per day; the billing lines added nothing to the hub's cost.
    let today = now - now.rem_euclid(DAY_MS);
    let days = hub_pipeline::billed::daily(storage.as_ref(), acme, today - 3 * DAY_MS, now)
        .await
        .unwrap();
    assert_eq!(days.len(), 4);
    let billed: Vec<Option<f64>> = days.iter().map(|d| d.billed_usd).collect();
    assert_eq!(billed, [Some(19.75), Some(19.75), None, None]);
    if two_days_ago >= month_start {
        assert_eq!(days[1].counted_usd, 10.0, "{days:?}");
    }

    // A budget rule on CostOps's budget ($120): $100 is 83% of it.
    let rule = json!({"name": "care", "condition": {"kind": "budget", "percent": 80,
        "basis": "spent", "budget_from": {"integration": "costops", "budget_id": "monthly-care"}}});
    let parsed = hub_pipeline::alerts::rule::parse(&rule).unwrap();
    storage
        .alerts()
        .create_rule(acme, &parsed.name, &rule.to_string(), true, "test", now)
        .await
        .unwrap();
    let out = hub_pipeline::alerts::evaluate::evaluate_tenant(storage.as_ref(), acme, now)
        .await
        .unwrap();
    let texts: Vec<&str> = out
        .iter()
        .flat_map(|r| r.notices.iter().map(|(_, t)| t.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            "spend so far this month of all traffic is $100.00 (at least 80% of the budget `monthly-care` in costops)"
        ]
    );
    drop((job, producer));
    pipeline.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_engine_gets_the_hours_violations_counted_from_governance_events() {
    let (storage, host, _dir) = hub().await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let server = HttpServer::start(|_| Reply::json(202, &json!({})));
    let (m, w) = support::plugin("policy");
    let grants = GrantsDoc {
        kv: false,
        http: vec![server.host()],
    };
    host.install(
        acme,
        &m,
        w,
        Some(json!({"url": server.url("")})),
        grants,
        true,
    )
    .await
    .unwrap();
    let now = hub_core::time::now_ms();
    let period = hub_core::time::floor_to(now, 3_600_000);
    let limits = hub_core::ingest::IngestLimits::default();
    let violation = |id: &str, ts: i64, policy: &str, resource: &str, severity: &str| {
        let raw = json!({"event_id": id, "timestamp": ts, "source_module": "llm-governance-dashboard",
            "event_type": "governance", "severity": "error", "payload": {"payload_type": "governance",
            "data": {"governance_type": "policy_violation", "policy_id": policy,
                     "policy_name": format!("{policy} name"), "resource_id": resource,
                     "severity": severity}}});
        hub_core::ingest::parse_event(&raw.to_string(), &limits, now).unwrap()
    };
    let events = vec![
        violation("v1", period - 50 * 60_000, "pol-7", "support-bot", "high"),
        violation("v2", period - 40 * 60_000, "pol-7", "support-bot", "high"),
        violation("v3", period - 30 * 60_000, "pol-2", "search", "low"),
        // Before the hour, and in this sync's own hour: not in this report.
        violation("v0", period - 61 * 60_000, "pol-7", "support-bot", "high"),
        violation("v4", period + 1, "pol-7", "support-bot", "high"),
    ];
    // In the future (v4) only when the hour has begun a moment ago.
    let events: Vec<_> = events.into_iter().filter(|e| e.ts_ms <= now).collect();
    support::ingest(&storage, &host, vec![(acme, events)]).await;
    let (producer, _consumer) = hub_bus::in_process(100, 100);
    let (job, _) = job(&storage, &host, producer, "a", Duration::from_secs(1));
    let syncers = host.syncers(acme).await;
    assert_eq!(syncers[0].every_s, 3_600);
    job.run_period(acme, &syncers[0], period).await;
    let doc = server.requests()[0].json();
    assert_eq!(doc["total_violations"], 3, "{doc}");
    assert_eq!(doc["by_severity"], json!({"high": 2, "low": 1}));
    assert_eq!(doc["violations"][0]["policy_id"], "pol-7");
    assert_eq!(doc["violations"][0]["count"], 2);
    assert_eq!(
        doc["period_end"].as_str().unwrap(),
        hub_core::time::to_rfc3339(period)
    );
}
