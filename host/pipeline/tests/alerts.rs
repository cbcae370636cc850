//! Alert rules evaluated over real rollups (SQLite): a threshold per model goes pending, fires
//! after its `for`, resolves when the metric recovers; an anomaly rule fires on what a detector
//! stored; another tenant's traffic raises nothing; the scheduler evaluates once a minute.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hub_core::time::{MINUTE_MS, floor_to};
use hub_core::{Severity, TenantId};
use hub_pipeline::alerts::NoticeKind;
use hub_pipeline::alerts::evaluate::evaluate_tenant;
use hub_pipeline::schedule::{ALERTS_RUN, SchedulerStats, spawn_scheduler};
use hub_storage::{AlertFilter, Storage, TenantBatch};
use serde_json::json;
use support::setup;

/// `n` calls of `model` in each minute of `[from, to)`, the first `errors` of each minute failed.
async fn calls(
    storage: &Arc<dyn Storage>,
    t: TenantId,
    model: &str,
    from: i64,
    to: i64,
    n: usize,
    errors: usize,
) {
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    let mut events = Vec::new();
    for minute in (from..to).step_by(MINUTE_MS as usize) {
        for i in 0..n {
            let status = if i < errors { "error" } else { "ok" };
            let raw = format!(
                r#"{{"event_id": "{model}-{minute}-{i}", "timestamp": {}, "model": "{model}", "latency_ms": 300, "status": "{status}"}}"#,
                minute + i as i64 * 1_000
            );
            events.push(hub_core::ingest::parse_event(&raw, &limits, now).unwrap());
        }
    }
    storage
        .write_batches(&[TenantBatch { tenant: t, events }], now)
        .await
        .unwrap();
}

async fn rule(storage: &Arc<dyn Storage>, t: TenantId, spec: serde_json::Value) -> i64 {
    let name = spec["name"].as_str().unwrap().to_string();
    storage
        .alerts()
        .create_rule(t, &name, &spec.to_string(), true, "test", 0)
        .await
        .unwrap()
        .id
}

fn notices(out: &[hub_pipeline::alerts::evaluate::RuleOutcome]) -> Vec<(NoticeKind, String)> {
    out.iter()
        .flat_map(|r| r.notices.iter().map(|(n, text)| (n.kind, text.clone())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_goes_pending_fires_and_resolves_per_model() {
    let (storage, _host, _dir) = setup(5).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let other = storage
        .tenants()
        .create_tenant("other", 0)
        .await
        .unwrap()
        .id;
    let t = floor_to(hub_core::time::now_ms(), MINUTE_MS) - 60 * MINUTE_MS;
    // Ten calls a minute each: gpt-4o fails half of them from t - 5m on; claude never; a quiet
    // model fails its only call (below the rule's volume floor).
    calls(
        &storage,
        acme,
        "gpt-4o",
        t - 30 * MINUTE_MS,
        t - 5 * MINUTE_MS,
        10,
        0,
    )
    .await;
    calls(
        &storage,
        acme,
        "gpt-4o",
        t - 5 * MINUTE_MS,
        t + 3 * MINUTE_MS,
        10,
        5,
    )
    .await;
    calls(
        &storage,
        acme,
        "claude",
        t - 30 * MINUTE_MS,
        t + 10 * MINUTE_MS,
        10,
        0,
    )
    .await;
    calls(
        &storage,
        acme,
        "quiet",
        t - 5 * MINUTE_MS,
        t + 3 * MINUTE_MS,
        1,
        1,
    )
    .await;
    calls(
        &storage,
        other,
        "gpt-4o",
        t - 5 * MINUTE_MS,
        t + 3 * MINUTE_MS,
        10,
        10,
    )
    .await;
    let id = rule(
        &storage,
        acme,
        json!({"name": "errors", "severity": "critical", "condition": {"kind": "threshold",
            "metric": "error_rate", "op": ">", "value": 0.1, "window": "5m", "for": "2m",
            "group_by": ["model"], "min_requests": 20}}),
    )
    .await;

    let out = evaluate_tenant(storage.as_ref(), acme, t).await.unwrap();
    assert!(notices(&out).is_empty());
    assert_eq!(out[0].open, 1);
    let open = storage.alerts().open_alerts(acme, id).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (
            open[0].state.as_str(),
            open[0].group[0].1.as_str(),
            open[0].value
        ),
        ("pending", "gpt-4o", 0.5)
    );
    // Held for its two minutes: firing, one notice saying what and where.
    let out = evaluate_tenant(storage.as_ref(), acme, t + MINUTE_MS)
        .await
        .unwrap();
    assert!(notices(&out).is_empty());
    let out = evaluate_tenant(storage.as_ref(), acme, t + 2 * MINUTE_MS)
        .await
        .unwrap();
    assert_eq!(
        notices(&out),
        [(
            NoticeKind::Firing,
            "error_rate of model=gpt-4o is 0.5 (> 0.1 over 5m)".to_string()
        )]
    );
    assert!(
        notices(
            &evaluate_tenant(storage.as_ref(), acme, t + 3 * MINUTE_MS)
                .await
                .unwrap()
        )
        .is_empty()
    );
    // gpt-4o recovers at t + 3m: five minutes later its window is clean again.
    calls(
        &storage,
        acme,
        "gpt-4o",
        t + 3 * MINUTE_MS,
        t + 10 * MINUTE_MS,
        10,
        0,
    )
    .await;
    let out = evaluate_tenant(storage.as_ref(), acme, t + 8 * MINUTE_MS)
        .await
        .unwrap();
    assert_eq!(notices(&out)[0].0, NoticeKind::Resolved);
    assert_eq!(out[0].open, 0);
    let (history, _) = storage
        .alerts()
        .list_alerts(acme, &AlertFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    let a = &history[0];
    assert_eq!(
        (
            a.state.as_str(),
            a.since_ms,
            a.fired_at_ms,
            a.resolved_at_ms
        ),
        (
            "resolved",
            t,
            Some(t + 2 * MINUTE_MS),
            Some(t + 8 * MINUTE_MS)
        )
    );
    assert_eq!(a.severity, Severity::Critical);
    // The other tenant's failures raised nothing: it has no rule.
    assert!(
        evaluate_tenant(storage.as_ref(), other, t)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anomaly_rule_fires_on_what_a_detector_stored_and_the_scheduler_runs_it() {
    let (storage, host, _dir) = setup(5).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    // Clear of a minute's end: a minute settling while the scheduler runs would be a second
    // evaluation (CI caught one at xx:59).
    let into = hub_core::time::now_ms() % MINUTE_MS;
    if into > 50_000 {
        tokio::time::sleep(Duration::from_millis((MINUTE_MS - into + 2_000) as u64)).await;
    }
    let now = hub_core::time::now_ms();
    let minute = floor_to(now, MINUTE_MS) - MINUTE_MS;
    let found = support::spike;
    storage
        .anomalies()
        .insert_anomalies(
            acme,
            &[
                found("gpt-4o", Severity::Critical),
                found("claude", Severity::Info),
            ],
            now,
        )
        .await
        .unwrap();
    rule(
        &storage,
        acme,
        json!({"name": "spikes", "condition": {"kind": "anomaly", "min_severity": "warning"}}),
    )
    .await;
    // The scheduler evaluates the tenant's rules within a tick, once for the minute.
    let stats = Arc::new(SchedulerStats::default());
    let scheduler = spawn_scheduler(
        host.clone(),
        storage.clone(),
        support::scheduler_config(),
        stats.clone(),
    );
    for _ in 0..100 {
        if stats
            .alert_evaluations
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    scheduler.abort();
    assert_eq!(
        stats
            .alert_evaluations
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats
            .alert_notices
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let runs = storage
        .analysis_runs()
        .runs(acme, Some(ALERTS_RUN), 0)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    let (open, _) = storage
        .alerts()
        .list_alerts(
            acme,
            &AlertFilter {
                state: Some("firing".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].summary, "unusual requests of model=gpt-4o: 240");
    // Five minutes after its step the anomaly no longer holds: the alert resolves.
    let out = evaluate_tenant(storage.as_ref(), acme, minute + 7 * MINUTE_MS)
        .await
        .unwrap();
    assert_eq!(notices(&out)[0].0, NoticeKind::Resolved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_rule_fires_when_the_month_reaches_its_share() {
    let (storage, _host, _dir) = setup(5).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let now = hub_core::time::now_ms();
    let (month_start, _) = hub_pipeline::spend::month_of(now);
    // Ten calls at $10 each this month: $100 spent.
    let limits = hub_core::ingest::IngestLimits::default();
    let events = (0..10)
        .map(|i| {
            let ts = (now - 3_600_000).max(month_start) + i * 1_000;
            let raw = format!(
                r#"{{"event_id": "paid-{i}", "timestamp": {ts}, "model": "gpt-4o", "app": "search", "cost_usd": 10, "status": "ok"}}"#
            );
            hub_core::ingest::parse_event(&raw, &limits, now).unwrap()
        })
        .collect();
    support::write(&storage, acme, events).await;
    rule(
        &storage,
        acme,
        json!({"name": "spent", "condition": {"kind": "budget", "budget_usd": 120, "percent": 80,
            "basis": "spent", "group_by": "app"}}),
    )
    .await;
    rule(
        &storage,
        acme,
        json!({"name": "far", "condition": {"kind": "budget", "budget_usd": 1000000}}),
    )
    .await;
    let out = evaluate_tenant(storage.as_ref(), acme, now).await.unwrap();
    assert_eq!(
        notices(&out),
        [(
            NoticeKind::Firing,
            "spend so far this month of app=search is $100.00 (at least 80% of the $120 budget)"
                .to_string()
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_rule_fires_on_a_sentinel_threat() {
    let (storage, _host, _dir) = setup(5).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    // Two critical threats and a warning one from the Sentinel, and a policy violation.
    let envelope = |i: usize, severity: &str, payload: &str, ts: i64| {
        let raw = format!(
            r#"{{"event_id": "sec-{i}", "timestamp": {ts}, "source_module": "llm-sentinel", "event_type": "security", "schema_version": "1.0.0", "severity": "{severity}", "payload": {payload}}}"#
        );
        hub_core::ingest::parse_event(&raw, &limits, now).unwrap()
    };
    let threat = r#"{"payload_type": "security", "data": {"security_type": "threat", "threat_level": "high"}}"#;
    let violation =
        r#"{"payload_type": "governance", "data": {"governance_type": "policy_violation"}}"#;
    let events = vec![
        envelope(1, "critical", threat, now - 60_000),
        envelope(2, "critical", threat, now - 30_000),
        envelope(3, "warning", threat, now - 20_000),
        envelope(4, "critical", violation, now - 10_000),
        // Older than the window.
        envelope(5, "critical", threat, now - 20 * MINUTE_MS),
    ];
    support::write(&storage, acme, events).await;
    rule(
        &storage,
        acme,
        json!({"name": "threats", "severity": "critical", "condition": {"kind": "event",
            "event_kind": "security.threat", "min_severity": "error", "group_by": "source_module"}}),
    )
    .await;
    rule(
        &storage,
        acme,
        json!({"name": "many", "condition": {"kind": "event", "event_kind": "security.threat",
            "min_count": 4}}),
    )
    .await;
    let out = evaluate_tenant(storage.as_ref(), acme, now).await.unwrap();
    assert_eq!(
        notices(&out),
        [(
            NoticeKind::Firing,
            "2 security.threat events at error or worse from source_module=llm-sentinel in the last 5m"
                .to_string()
        )]
    );
    // Ten minutes on, the window holds none: resolved.
    let later = evaluate_tenant(storage.as_ref(), acme, now + 10 * MINUTE_MS)
        .await
        .unwrap();
    assert_eq!(notices(&later)[0].0, NoticeKind::Resolved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_rule_counts_the_newest_thousand_of_its_window() {
    let (storage, _host, _dir) = setup(5).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    let events = (0..1_100)
        .map(|i| {
            let raw = format!(
                r#"{{"event_id": "t-{i}", "timestamp": {}, "source_module": "llm-sentinel", "event_type": "security", "schema_version": "1.0.0", "severity": "critical", "payload": {{"payload_type": "security", "data": {{"security_type": "threat"}}}}}}"#,
                now - 60_000 - i
            );
            hub_core::ingest::parse_event(&raw, &limits, now).unwrap()
        })
        .collect();
    support::write(&storage, acme, events).await;
    rule(
        &storage,
        acme,
        json!({"name": "flood", "condition": {"kind": "event", "event_kind": "security.threat",
            "min_count": 1000}}),
    )
    .await;
    let out = evaluate_tenant(storage.as_ref(), acme, now).await.unwrap();
    assert_eq!(
        notices(&out),
        [(
            NoticeKind::Firing,
            "1000 security.threat events from all traffic in the last 5m".to_string()
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composite_fires_when_all_or_any_of_its_rules_fire_in_the_same_minute() {
    let (storage, _host, _dir) = setup(5).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    let envelope = |id: &str, ts: i64, payload_type: &str, family: &str| {
        let raw = json!({"event_id": id, "timestamp": ts, "source_module": "llm-sentinel",
            "event_type": payload_type, "severity": "critical", "payload": {
                "payload_type": payload_type,
                "data": {format!("{payload_type}_type"): family}}});
        hub_core::ingest::parse_event(&raw.to_string(), &limits, now).unwrap()
    };
    let write = |events: Vec<hub_core::EventRecord>| {
        let storage = storage.clone();
        async move {
            storage
                .write_batches(
                    &[TenantBatch {
                        tenant: acme,
                        events,
                    }],
                    now,
                )
                .await
                .unwrap();
        }
    };
    for (name, kind) in [
        ("threats", "security.threat"),
        ("violations", "governance.policy_violation"),
    ] {
        rule(
            &storage,
            acme,
            json!({"name": name, "condition": {"kind": "event", "event_kind": kind}}),
        )
        .await;
    }
    // Written first, evaluated after the rules they name all the same.
    rule(
        &storage,
        acme,
        json!({"name": "both", "severity": "critical", "condition": {"kind": "composite",
            "op": "and", "rules": ["threats", "violations"]}}),
    )
    .await;
    rule(
        &storage,
        acme,
        json!({"name": "either", "condition": {"kind": "composite", "op": "or",
            "rules": ["threats", "violations"]}}),
    )
    .await;
    write(vec![envelope("t1", now - 60_000, "security", "threat")]).await;
    let out = evaluate_tenant(storage.as_ref(), acme, now).await.unwrap();
    let fired: Vec<&str> = out
        .iter()
        .filter(|r| !r.notices.is_empty())
        .map(|r| r.rule.as_str())
        .collect();
    assert_eq!(fired, ["threats", "either"]);
    let either = out.iter().find(|r| r.rule == "either").unwrap();
    assert_eq!(
        either.notices[0].1,
        "1 of 2 rules fire (any of threats, violations)"
    );
    write(vec![envelope(
        "v1",
        now - 30_000,
        "governance",
        "policy_violation",
    )])
    .await;
    let out = evaluate_tenant(storage.as_ref(), acme, now + 1)
        .await
        .unwrap();
    let both = out.iter().find(|r| r.rule == "both").unwrap();
    assert_eq!(both.notices.len(), 1, "{out:?}");
    assert_eq!(
        both.notices[0].1,
        "2 of 2 rules fire (all of threats, violations)"
    );
    assert_eq!(both.firing, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_replays_a_threshold_over_the_week_and_counts_an_anomaly_rules_firings() {
    use hub_pipeline::alerts::preview::preview;
    let (storage, _host, _dir) = setup(5).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let now = hub_core::time::now_ms();
    // Two days ago, 30 minutes of 4 calls a minute per model; gpt-4o's minutes 10 to 19 all
    // errors.
    let start = hub_core::time::floor_to(now - 2 * 86_400_000, MINUTE_MS);
    let limits = hub_core::ingest::IngestLimits::default();
    let mut events = Vec::new();
    for minute in 0..30 {
        for (model, i) in [
            ("gpt-4o", 0),
            ("gpt-4o", 1),
            ("gpt-4o", 2),
            ("gpt-4o", 3),
            ("claude", 0),
            ("claude", 1),
        ] {
            let ts = start + minute * MINUTE_MS + i * 1_000;
            let status = if model == "gpt-4o" && (10..20).contains(&minute) {
                "error"
            } else {
                "ok"
            };
            let raw = format!(
                r#"{{"event_id": "{model}-{minute}-{i}", "timestamp": {ts}, "model": "{model}", "status": "{status}"}}"#
            );
            events.push(hub_core::ingest::parse_event(&raw, &limits, ts + 1).unwrap());
        }
    }
    support::write(&storage, acme, events).await;
    let rule = hub_pipeline::alerts::rule::parse(&json!({"name": "errors", "condition": {
        "kind": "threshold", "metric": "error_rate", "op": ">", "value": 0.5, "window": "5m",
        "for": "2m", "group_by": ["model"], "min_requests": 1}}))
    .unwrap();
    let p = preview(storage.as_ref(), acme, &rule, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p.groups, p.fired, p.step_ms), (2, 1, MINUTE_MS), "{p:?}");
    let e = &p.episodes[0];
    assert_eq!(e.group, [("model".to_string(), "gpt-4o".to_string())]);
    // The window's error rate passes 0.5 three minutes into the errors, and it holds two
    // minutes more; it falls back three minutes after they stop.
    let burst = start + 10 * MINUTE_MS;
    assert_eq!(e.fired_ms, burst + 5 * MINUTE_MS, "{p:?}");
    assert_eq!(e.resolved_ms, Some(start + 23 * MINUTE_MS), "{p:?}");
    assert_eq!(p.firing_ms, 8 * MINUTE_MS);
    // The same rule without `for`, and above 0.9: fires when the window is all errors.
    let strict = hub_pipeline::alerts::rule::parse(&json!({"name": "errors", "condition": {
        "kind": "threshold", "metric": "error_rate", "op": ">", "value": 0.9, "window": "5m",
        "group_by": ["model"]}}))
    .unwrap();
    let p = preview(storage.as_ref(), acme, &strict, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.fired, 1);
    assert_eq!(p.episodes[0].fired_ms, burst + 5 * MINUTE_MS);

    // Anomalies: two of one series a minute apart are one firing; another series another.
    let mut a = support::spike("gpt-4o", hub_core::Severity::Critical);
    a.ts_ms = burst;
    let mut b = a.clone();
    b.ts_ms = burst + MINUTE_MS;
    let mut c = support::spike("claude", hub_core::Severity::Critical);
    c.ts_ms = burst;
    storage
        .anomalies()
        .insert_anomalies(acme, &[a, b, c], now)
        .await
        .unwrap();
    let anomaly =
        hub_pipeline::alerts::rule::parse(&json!({"name": "a", "condition": {"kind": "anomaly"}}))
            .unwrap();
    let p = preview(storage.as_ref(), acme, &anomaly, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p.groups, p.fired), (2, 2), "{p:?}");
    // Budget rules are not previewed.
    let budget = hub_pipeline::alerts::rule::parse(
        &json!({"name": "b", "condition": {"kind": "budget", "budget_usd": 1}}),
    )
    .unwrap();
    assert!(
        preview(storage.as_ref(), acme, &budget, now)
            .await
            .unwrap()
            .is_none()
    );
}
