//! A grid the scheduler keeps and moves forward holds what a grid read whole holds: new steps,
//! an event that arrived late within the re-read window, a group that appears, and a group
//! whose traffic has left the history.

mod support;

use hub_core::time::{MINUTE_MS, floor_to};
use hub_pipeline::grid::{Grid, SeriesCache};
use hub_pipeline::series;
use hub_plugins::SeriesSettings;
use hub_storage::{Storage, TenantBatch};

async fn write(storage: &dyn Storage, t: hub_core::TenantId, calls: &[(&str, i64, u32)]) {
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    let events = calls
        .iter()
        .enumerate()
        .map(|(i, (model, ts, latency))| {
            let status = if i % 4 == 0 { "error" } else { "ok" };
            let raw = format!(
                r#"{{"event_id": "{model}-{ts}-{i}-{latency}", "timestamp": {ts}, "model": "{model}", "latency_ms": {latency}, "status": "{status}"}}"#
            );
            hub_core::ingest::parse_event(&raw, &limits, now).unwrap()
        })
        .collect();
    storage
        .write_batches(&[TenantBatch { tenant: t, events }], now)
        .await
        .unwrap();
}

fn same(a: &series::Built, b: &series::Built) -> bool {
    a.groups == b.groups
        && a.series.len() == b.series.len()
        && a.series.iter().zip(&b.series).all(|(x, y)| {
            x.key == y.key
                && x.metric == y.metric
                && x.ts_ms == y.ts_ms
                && x.values
                    .iter()
                    .map(|v| v.to_bits())
                    .eq(y.values.iter().map(|v| v.to_bits()))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_grid_moved_forward_equals_one_read_whole() {
    let (storage, _host, _dir) = support::setup(5).await;
    let t = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let end = floor_to(hub_core::time::now_ms(), MINUTE_MS) - 20 * MINUTE_MS;
    let settings = SeriesSettings {
        metrics: vec![
            "requests".into(),
            "error_rate".into(),
            "latency_p95_ms".into(),
        ],
        group_by: vec!["model".into()],
        step_ms: MINUTE_MS,
        history_ms: 30 * MINUTE_MS,
        max_series: 30,
        every_ms: MINUTE_MS,
        horizon: 0,
        level: 0.0,
    };
    // gpt-4o every minute of the history, twice in some; "old" only in its first minute.
    let mut calls: Vec<(&str, i64, u32)> = (1..=30)
        .flat_map(|m| {
            let ts = end - m * MINUTE_MS + 1_000;
            std::iter::repeat_n(("gpt-4o", ts, 100 + m as u32 * 10), 1 + (m % 2) as usize)
        })
        .collect();
    calls.push(("old", end - 30 * MINUTE_MS, 50));
    write(storage.as_ref(), t, &calls).await;

    let cache = SeriesCache::default();
    let first = cache
        .grid(storage.as_ref(), t, "p", &settings, end)
        .await
        .unwrap();
    let whole = Grid::read(storage.as_ref(), t, &settings, end)
        .await
        .unwrap();
    assert!(same(
        &series::from_grid(&first, &settings),
        &series::from_grid(&whole, &settings)
    ));
    assert_eq!(first.groups.len(), 2);
    cache.keep(t, "p", first);

    // Five new minutes, a new model in one of them, and a call that arrived late for a minute
    // the first grid already held (within the re-read window).
    let later = end + 5 * MINUTE_MS;
    let mut calls: Vec<(&str, i64, u32)> = (0..5)
        .map(|m| ("gpt-4o", end + m * MINUTE_MS + 2_000, 900))
        .collect();
    calls.push(("claude", end + 2 * MINUTE_MS, 300));
    calls.push(("gpt-4o", end - 3 * MINUTE_MS + 5_000, 5_000));
    write(storage.as_ref(), t, &calls).await;

    let moved = cache
        .grid(storage.as_ref(), t, "p", &settings, later)
        .await
        .unwrap();
    let whole = Grid::read(storage.as_ref(), t, &settings, later)
        .await
        .unwrap();
    let (a, b) = (
        series::from_grid(&moved, &settings),
        series::from_grid(&whole, &settings),
    );
    assert!(same(&a, &b), "kept: {a:?}\nread whole: {b:?}");
    // "old" left the history; claude joined it.
    let models: Vec<_> = a.series.iter().map(|s| s.key[0].1.clone()).collect();
    assert_eq!(
        models,
        ["gpt-4o", "gpt-4o", "gpt-4o", "claude", "claude", "claude"]
    );
    // The late call is counted in its minute, 8 steps before the newest.
    let requests = &a.series[0].values;
    assert_eq!(a.series[0].metric, "requests");
    assert_eq!(requests[requests.len() - 8], 3.0, "{requests:?}");
    assert_eq!(moved.from, later - 30 * MINUTE_MS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_read_in_slices_equals_the_rollups_read_at_once() {
    let (storage, _host, _dir) = support::setup(5).await;
    let t = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let end = floor_to(hub_core::time::now_ms(), MINUTE_MS) - 5 * MINUTE_MS;
    // 300 minutes: read in slices of at most 60 steps.
    let calls: Vec<(&str, i64, u32)> = (1..=300)
        .map(|m| {
            (
                if m % 3 == 0 { "a" } else { "b" },
                end - m * MINUTE_MS,
                m as u32,
            )
        })
        .collect();
    write(storage.as_ref(), t, &calls).await;
    let settings = SeriesSettings {
        metrics: vec!["requests".into()],
        group_by: vec!["model".into()],
        step_ms: MINUTE_MS,
        history_ms: 300 * MINUTE_MS,
        max_series: 10,
        every_ms: MINUTE_MS,
        horizon: 0,
        level: 0.0,
    };
    let built = series::build(storage.as_ref(), t, &settings, end)
        .await
        .unwrap();
    let q = hub_storage::analytics::TimeseriesQuery {
        from_ms: end - 300 * MINUTE_MS,
        to_ms: end,
        step_ms: MINUTE_MS,
        metric: hub_core::Metric::Requests,
        group_by: vec![hub_core::Dimension::Model],
        filters: Vec::new(),
    };
    let mut direct = hub_storage::analytics::timeseries(storage.as_ref(), t, &q)
        .await
        .unwrap();
    direct.sort_by_key(|s| {
        std::cmp::Reverse(
            s.points
                .iter()
                .map(|p| p.1.unwrap_or(0.0) as i64)
                .sum::<i64>(),
        )
    });
    assert_eq!(built.series.len(), 2);
    for (s, d) in built.series.iter().zip(&direct) {
        let want: Vec<f64> = d.points.iter().map(|p| p.1.unwrap_or(0.0)).collect();
        assert_eq!(s.values, want, "{:?}", s.key);
        assert_eq!(
            s.values.iter().sum::<f64>(),
            if s.key[0].1 == "b" { 200.0 } else { 100.0 }
        );
    }
}
