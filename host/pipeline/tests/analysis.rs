//! Detectors and forecasters run by the scheduler over series built from real rollups: the
//! zscore and linear-forecast example components, a spike written as events, what is stored.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hub_core::TenantId;
use hub_core::time::{MINUTE_MS, floor_to};
use hub_pipeline::schedule::{SchedulerConfig, SchedulerStats, spawn_scheduler};
use hub_plugins::{GrantsDoc, PluginHost};
use hub_storage::{AnomalyFilter, EventField, EventFilter, ForecastFilter, Storage, TenantBatch};
use serde_json::json;
use support::{plugin, setup};

/// `per_minute[i]` calls of `model` in the minute that starts `i` minutes after `from`.
async fn traffic(
    storage: &Arc<dyn Storage>,
    t: TenantId,
    model: &str,
    from: i64,
    per_minute: &[usize],
) {
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    let mut events = Vec::new();
    for (m, n) in per_minute.iter().enumerate() {
        for i in 0..*n {
            let ts = from + m as i64 * MINUTE_MS + (i as i64 * 997) % MINUTE_MS;
            let raw = format!(
                r#"{{"event_id": "{model}-{m}-{i}", "timestamp": {ts}, "model": "{model}", "input_tokens": 100, "output_tokens": 10, "latency_ms": 800, "status": "ok"}}"#
            );
            events.push(hub_core::ingest::parse_event(&raw, &limits, now).unwrap());
        }
    }
    storage
        .write_batches(&[TenantBatch { tenant: t, events }], now)
        .await
        .unwrap();
}

/// The newest minute the scheduler takes as settled, at a moment when it will stay so for the
/// next 8 s (a test that starts just before a minute ends waits for the next).
async fn settled_minute() -> i64 {
    let into = hub_core::time::now_ms() % MINUTE_MS;
    if into > 52_000 {
        tokio::time::sleep(Duration::from_millis((MINUTE_MS - into + 2_000) as u64)).await;
    } else if into < 2_000 {
        tokio::time::sleep(Duration::from_millis((2_000 - into) as u64)).await;
    }
    floor_to(hub_core::time::now_ms() - 1_000, MINUTE_MS)
}

fn config() -> SchedulerConfig {
    support::scheduler_config()
}

async fn wait_for(stats: &SchedulerStats, runs: u64) {
    for _ in 0..300 {
        let s = &stats.runs_ok;
        if s.load(std::sync::atomic::Ordering::Relaxed)
            + stats.runs_failed.load(std::sync::atomic::Ordering::Relaxed)
            >= runs
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the scheduler did not make {runs} runs in 15 s: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spike_is_found_once_kept_as_an_event_and_never_reported_again() {
    let (storage, host, _dir) = setup(5).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let other = storage
        .tenants()
        .create_tenant("other", 0)
        .await
        .unwrap()
        .id;
    // An hour of steady traffic for two models; gpt-4o's newest settled minute has 10× its usual.
    let newest = settled_minute().await;
    let from = newest - 60 * MINUTE_MS;
    let steady: Vec<usize> = (0..60).map(|i| 10 + i % 3).collect();
    let mut spiked = steady.clone();
    *spiked.last_mut().unwrap() = 120;
    traffic(&storage, acme, "gpt-4o", from, &spiked).await;
    traffic(&storage, acme, "claude-sonnet-4", from, &steady).await;
    traffic(&storage, other, "gpt-4o", from, &spiked).await;

    let (m, w) = plugin("examples/zscore");
    let series = json!({"metrics": ["requests"], "group_by": ["model"], "history": "1h"});
    host.install(
        acme,
        &m,
        w,
        Some(json!({"window": 30, "check_last": 3, "series": series})),
        GrantsDoc::default(),
        true,
    )
    .await
    .unwrap();

    let stats = Arc::new(SchedulerStats::default());
    let scheduler = spawn_scheduler(host.clone(), storage.clone(), config(), stats.clone());
    wait_for(&stats, 1).await;
    // Ticks go on; nothing new is due until the next minute, and nothing is reported twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    scheduler.abort();

    let (found, _) = storage
        .anomalies()
        .list_anomalies(acme, &AnomalyFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let a = &found[0].found;
    assert_eq!(
        (a.plugin.as_str(), a.metric.as_str(), a.value),
        ("zscore", "requests", 120.0)
    );
    assert_eq!(a.dims, vec![("model".to_string(), "gpt-4o".to_string())]);
    assert_eq!(a.ts_ms, newest - MINUTE_MS);
    assert_eq!(a.step_ms, MINUTE_MS);
    assert!(
        a.reason.contains("standard deviations above"),
        "{}",
        a.reason
    );
    // The tenant without the detector has nothing, though its traffic spiked too.
    assert!(
        storage
            .anomalies()
            .list_anomalies(other, &AnomalyFilter::default(), None, 100)
            .await
            .unwrap()
            .0
            .is_empty()
    );

    // The anomaly is an event of the tenant's too.
    let page = storage
        .list_events(
            acme,
            &EventFilter {
                fields: vec![(EventField::EventType, "anomaly".into())],
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    let e = &page.events[0].record;
    assert_eq!(
        (e.kind.as_str(), e.model.as_deref()),
        ("anomaly.requests", Some("gpt-4o"))
    );

    // The run is recorded; running the same period again (another replica whose lease ran out)
    // stores nothing new.
    let runs = storage
        .analysis_runs()
        .runs(acme, Some("zscore"), 0)
        .await
        .unwrap();
    assert!(
        !runs.is_empty()
            && runs
                .iter()
                .all(|r| r.outcome.as_ref().is_some_and(|o| o.outcome == "ok")),
        "{runs:?}"
    );
    let analyser = host.analysers(acme).await.unwrap().remove(0);
    let again = hub_pipeline::analysis::run(
        &host,
        &storage,
        acme,
        &analyser,
        runs[0].period_ms,
        &hub_pipeline::grid::SeriesCache::default(),
    )
    .await;
    assert_eq!(
        (again.outcome.as_str(), again.found, again.series),
        ("ok", 0, 2)
    );
    assert_eq!(
        storage
            .anomalies()
            .list_anomalies(acme, &AnomalyFilter::default(), None, 100)
            .await
            .unwrap()
            .0
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forecaster_keeps_the_newest_forecast_of_each_series() {
    let (storage, host, _dir) = setup(5).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let newest = settled_minute().await;
    let from = newest - 30 * MINUTE_MS;
    // A straight line: 10, 11, 12, … calls a minute.
    let rising: Vec<usize> = (0..30).map(|i| 10 + i).collect();
    traffic(&storage, acme, "gpt-4o", from, &rising).await;

    let (m, w) = plugin("examples/linear-forecast");
    let series = json!({"metrics": ["requests", "latency_p95_ms"], "step": "1m", "history": "30m", "horizon": 5, "every": "1m"});
    host.install(
        acme,
        &m,
        w,
        Some(json!({"series": series})),
        GrantsDoc::default(),
        true,
    )
    .await
    .unwrap();
    let stats = Arc::new(SchedulerStats::default());
    let scheduler = spawn_scheduler(host.clone(), storage.clone(), config(), stats.clone());
    wait_for(&stats, 1).await;
    scheduler.abort();

    let all = storage
        .forecasts()
        .list_forecasts(acme, &ForecastFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let requests = all.iter().find(|f| f.metric == "requests").unwrap();
    assert_eq!(
        (requests.level, requests.step_ms, requests.points.len()),
        (0.95, MINUTE_MS, 5)
    );
    assert!(requests.dims.is_empty());
    let last = rising.len() as f64 + 9.0;
    for (i, p) in requests.points.iter().enumerate() {
        // The line goes on: 40, 41, … (the run may have been for a minute later than `newest`).
        assert!(p.ts_ms > newest - MINUTE_MS);
        assert!((p.mean - (last + 1.0 + i as f64)).abs() < 2.5, "{p:?}");
        assert!(p.lower <= p.mean && p.mean <= p.upper);
    }
    assert_eq!(
        stats.anomalies.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(
        stats.forecasts.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_settings_are_checked_like_any_configuration() {
    let (storage, host, _dir) = setup(5).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let (m, w) = plugin("examples/zscore");
    let cases = [
        (
            json!({"series": {"metrics": ["tokens"]}}),
            "/series/metrics/0",
        ),
        (
            json!({"series": {"group_by": ["region"]}}),
            "/series/group_by/0",
        ),
        (
            json!({"series": {"max_series": 100000}}),
            "/series/max_series",
        ),
        (json!({"window": 2}), "/window"),
    ];
    for (config, path) in cases {
        let e = host
            .install(
                acme,
                &m,
                w.clone(),
                Some(config.clone()),
                GrantsDoc::default(),
                true,
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(path), "{config}: {e}");
    }
    assert!(host.installed(acme).await.unwrap().is_empty());
    let _: Arc<PluginHost> = host;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_party_detectors_find_what_they_are_for() {
    let (storage, host, _dir) = setup(5).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let newest = settled_minute().await;
    let from = newest - 60 * MINUTE_MS;
    // An hour of 40 calls a minute; in the newest minute the same calls cost five times as much.
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    let mut events = Vec::new();
    for m in 0..60 {
        for i in 0..40 {
            let ts = from + m * MINUTE_MS + i * 1_000;
            let cost = if m == 59 { 0.05 } else { 0.01 };
            let raw = format!(
                r#"{{"event_id": "e-{m}-{i}", "timestamp": {ts}, "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100, "latency_ms": 800, "cost_usd": {cost}, "status": "ok"}}"#
            );
            events.push(hub_core::ingest::parse_event(&raw, &limits, now).unwrap());
        }
    }
    support::write(&storage, acme, events).await;
    let minute = json!({"step": "1m", "history": "1h"});
    for name in ["robust-level", "change-point", "llm-signals"] {
        let (m, w) = plugin(name);
        let mut series = minute.clone();
        series["group_by"] = json!(["model"]);
        let config = match name {
            "llm-signals" => json!({"window": 30, "series": series}),
            "change-point" => json!({"recent": 10, "reference": 40, "series": series}),
            _ => json!({"series": series}),
        };
        host.install(acme, &m, w, Some(config), GrantsDoc::default(), true)
            .await
            .unwrap();
    }
    let mut found = Vec::new();
    for analyser in host.analysers(acme).await.unwrap() {
        let run = hub_pipeline::analysis::run(
            &host,
            &storage,
            acme,
            &analyser,
            newest,
            &hub_pipeline::grid::SeriesCache::default(),
        )
        .await;
        assert_eq!(run.outcome, "ok", "{}: {run:?}", analyser.name);
        found.push((analyser.name.clone(), run.found));
    }
    let (all, _) = storage
        .anomalies()
        .list_anomalies(acme, &AnomalyFilter::default(), None, 100)
        .await
        .unwrap();
    let by = |plugin: &str| {
        all.iter()
            .filter(|a| a.found.plugin == plugin)
            .collect::<Vec<_>>()
    };
    let level = by("robust-level");
    assert_eq!(level.len(), 1, "{all:?}");
    assert_eq!(level[0].found.metric, "cost_usd");
    assert!(
        level[0]
            .found
            .reason
            .starts_with("cost_usd for model=gpt-4o is 5.0× its usual"),
        "{}",
        level[0].found.reason
    );
    let signals = by("llm-signals");
    assert_eq!(signals.len(), 1, "{all:?}");
    assert!(
        signals[0].found.reason.starts_with(
            "cost per request for model=gpt-4o is 5.0× its usual ($0.050 against $0.010)"
        ),
        "{}",
        signals[0].found.reason
    );
    assert!(
        by("change-point").is_empty(),
        "one minute is not a lasting change: {all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_answer_is_refused_whole_counted_and_nothing_is_stored() {
    let (storage, host, _dir) = setup(3).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let newest = settled_minute().await;
    let steady: Vec<usize> = vec![10; 60];
    traffic(&storage, acme, "gpt-4o", newest - 60 * MINUTE_MS, &steady).await;
    let (dm, dw) = plugin("testing/misreport");
    let (fm, fw) = plugin("testing/misforecast");
    let count = |storage: &Arc<dyn Storage>| {
        let s = storage.clone();
        async move {
            let a = s
                .anomalies()
                .list_anomalies(acme, &AnomalyFilter::default(), None, 1000)
                .await
                .unwrap()
                .0
                .len();
            let f = s
                .forecasts()
                .list_forecasts(acme, &ForecastFilter::default())
                .await
                .unwrap()
                .len();
            (a, f)
        }
    };
    let wrong = [
        ("misreport", "foreign-time", "not a point of series 0"),
        ("misreport", "foreign-series", "names series 1 of 1"),
        ("misreport", "nan", "value = NaN"),
        ("misreport", "infinite", "upper = inf"),
        ("misreport", "flood", "62 anomalies for 60 points"),
        ("misreport", "error", "asked to fail"),
        ("misforecast", "short", "4 times, 4 means"),
        ("misforecast", "off-step", "point 0 at"),
        ("misforecast", "nan", "not finite at point 0"),
    ];
    for (name, mode, message) in wrong {
        let (m, w) = if name == "misreport" {
            (&dm, &dw)
        } else {
            (&fm, &fw)
        };
        host.install(
            acme,
            m,
            w.clone(),
            Some(json!({"mode": mode})),
            GrantsDoc::default(),
            true,
        )
        .await
        .unwrap();
        let analyser = host
            .analysers(acme)
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.name == name)
            .unwrap();
        let run = hub_pipeline::analysis::run(
            &host,
            &storage,
            acme,
            &analyser,
            newest,
            &hub_pipeline::grid::SeriesCache::default(),
        )
        .await;
        assert_eq!(run.outcome, "failed", "{mode}: {run:?}");
        assert!(
            run.message.as_deref().unwrap_or("").contains(message),
            "{mode}: {run:?}"
        );
        assert_eq!(count(&storage).await, (0, 0), "{mode}: nothing is kept");
        let health = host.health(acme);
        assert!(health[name].failures >= 1, "{mode}: counted");
        host.uninstall(acme, name, false).await.unwrap();
    }
    // Three failures in a row disable it, with the last one as the reason.
    host.install(
        acme,
        &dm,
        dw.clone(),
        Some(json!({"mode": "nan"})),
        GrantsDoc::default(),
        true,
    )
    .await
    .unwrap();
    for _ in 0..3 {
        if let Some(analyser) = host.analysers(acme).await.unwrap().into_iter().next() {
            hub_pipeline::analysis::run(
                &host,
                &storage,
                acme,
                &analyser,
                newest,
                &hub_pipeline::grid::SeriesCache::default(),
            )
            .await;
        }
    }
    let install = host.installed(acme).await.unwrap().remove(0);
    assert!(!install.enabled, "{install:?}");
    assert!(install.disabled_reason.unwrap().contains("value = NaN"));
    assert!(host.analysers(acme).await.unwrap().is_empty());
    // Answered rightly, the same plugins' findings are kept.
    host.update(
        acme,
        "misreport",
        Some(true),
        Some(json!({"mode": "ok"})),
        None,
    )
    .await
    .unwrap();
    host.install(
        acme,
        &fm,
        fw,
        Some(json!({"mode": "ok"})),
        GrantsDoc::default(),
        true,
    )
    .await
    .unwrap();
    for analyser in host.analysers(acme).await.unwrap() {
        let run = hub_pipeline::analysis::run(
            &host,
            &storage,
            acme,
            &analyser,
            newest,
            &hub_pipeline::grid::SeriesCache::default(),
        )
        .await;
        assert_eq!(run.outcome, "ok", "{run:?}");
    }
    assert_eq!(count(&storage).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_grouped_by_a_tag_come_from_the_raw_events() {
    let (storage, host, _dir) = setup(5).await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let newest = settled_minute().await;
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    let mut events = Vec::new();
    for m in 0..30 {
        for (team, n) in [("care", if m == 29 { 90 } else { 9 }), ("search", 9)] {
            for i in 0..n {
                let ts = newest - (30 - m) * MINUTE_MS + i * 500;
                let raw = format!(
                    r#"{{"event_id": "{team}-{m}-{i}", "timestamp": {ts}, "model": "gpt-4o", "tags": {{"team": "{team}"}}, "status": "ok"}}"#
                );
                events.push(hub_core::ingest::parse_event(&raw, &limits, now).unwrap());
            }
        }
    }
    support::write(&storage, acme, events).await;
    let (m, w) = plugin("examples/zscore");
    let series =
        json!({"metrics": ["requests"], "group_by": ["model", "tag.team"], "history": "30m"});
    host.install(
        acme,
        &m,
        w,
        Some(json!({"window": 20, "series": series})),
        GrantsDoc::default(),
        true,
    )
    .await
    .unwrap();
    let analyser = host.analysers(acme).await.unwrap().remove(0);
    let run = hub_pipeline::analysis::run(
        &host,
        &storage,
        acme,
        &analyser,
        newest,
        &hub_pipeline::grid::SeriesCache::default(),
    )
    .await;
    assert_eq!(
        (run.outcome.as_str(), run.series, run.found),
        ("ok", 2, 1),
        "{run:?}"
    );
    let (found, _) = storage
        .anomalies()
        .list_anomalies(acme, &AnomalyFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(
        found[0].found.dims,
        vec![
            ("model".to_string(), "gpt-4o".to_string()),
            ("tag.team".to_string(), "care".to_string())
        ]
    );
    assert_eq!(found[0].found.value, 90.0);
    // Its event carries the tag.
    let page = storage
        .list_events(
            acme,
            &EventFilter {
                fields: vec![(EventField::EventType, "anomaly".into())],
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.events[0].record.tags_json, r#"{"team":"care"}"#);
}
