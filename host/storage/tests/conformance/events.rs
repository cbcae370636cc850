//! Writing events (idempotent, group commits, concurrent writers), rollups and time series that
//! match the raw events, listing, tenants kept apart, and retention.

use super::*;

pub(crate) async fn writes_are_idempotent(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let batch = events(300, 1, HOUR_MS);
    let first = write(&store, t, batch.clone()).await;
    assert_eq!((first.inserted, first.duplicates), (300, 0));
    let mut again = batch[..100].to_vec();
    again.extend(events(50, 2, HOUR_MS));
    again.push(again[0].clone()); // a duplicate inside the batch too
    let second = write(&store, t, again).await;
    assert_eq!((second.inserted, second.duplicates), (50, 101));
    assert_eq!(store.count_events(t).await.unwrap(), 350);
    // Rollups counted each event once.
    assert_eq!(rolled_up_events(&store, t).await, 350);
}

/// One group commit holding new batches around a partial resend: the resend is told its
/// duplicates, and neither it nor its neighbours lose or double-count an event.
pub(crate) async fn a_resend_inside_a_group_commit_costs_only_itself(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let u = tenant(&store, "umbrella").await;
    let old = events(100, 11, HOUR_MS);
    write(&store, t, old.clone()).await;
    let mut resend = old[..20].to_vec();
    resend.extend(events(30, 12, HOUR_MS));
    let batches = [
        TenantBatch {
            tenant: t,
            events: events(50, 13, HOUR_MS),
        },
        TenantBatch {
            tenant: t,
            events: resend,
        },
        TenantBatch {
            tenant: u,
            events: old[..10].to_vec(),
        },
        TenantBatch {
            tenant: t,
            events: events(10, 14, HOUR_MS),
        },
    ];
    let outcomes = store.write_batches(&batches, NOW).await.unwrap();
    let counts: Vec<(usize, usize)> = outcomes
        .iter()
        .map(|o| (o.inserted, o.duplicates))
        .collect();
    assert_eq!(counts, [(50, 0), (30, 20), (10, 0), (10, 0)]);
    assert_eq!(store.count_events(t).await.unwrap(), 190);
    assert_eq!(store.count_events(u).await.unwrap(), 10);
    assert_eq!(rolled_up_events(&store, t).await, 190);
    assert_eq!(rolled_up_events(&store, u).await, 10);
}

pub(crate) async fn rollups_answer_like_raw_events(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let all = events(4000, 3, 3 * DAY_MS);
    for chunk in all.chunks(700) {
        write(&store, t, chunk.to_vec()).await;
    }
    // Aligned, unaligned, and sub-minute ranges all answer exactly.
    let ranges = [
        (NOW - 3 * DAY_MS, NOW),
        (
            NOW - 2 * DAY_MS - 7 * HOUR_MS - 13 * MINUTE_MS - 4_321,
            NOW - 5 * HOUR_MS - 59_999,
        ),
        (NOW - HOUR_MS - 30_000, NOW - HOUR_MS),
    ];
    for (from, to) in ranges {
        let q = SummaryQuery {
            from_ms: from,
            to_ms: to,
            group_by: vec![Dimension::Model, Dimension::Status],
            filters: vec![],
        };
        let groups = summary(store.as_ref(), t, &q).await.unwrap();
        let in_range = |e: &EventRecord| e.ts_ms >= from && e.ts_ms < to;
        let total: i64 = groups.iter().map(|g| g.agg.events).sum();
        assert_eq!(total, all.iter().filter(|e| in_range(e)).count() as i64);
        for g in &groups {
            let (want, lat) = exact(&all, |e| {
                in_range(e)
                    && e.model == g.key[0]
                    && e.status.map(|s| s.as_str().to_string()) == g.key[1]
            });
            assert_matches(
                &g.agg,
                &want,
                &lat,
                &format!("{:?} in [{from}, {to})", g.key),
            );
        }
    }
    // Filters.
    let q = SummaryQuery {
        from_ms: NOW - 3 * DAY_MS,
        to_ms: NOW,
        group_by: vec![Dimension::App],
        filters: vec![
            (Dimension::Provider, "openai".into()),
            (Dimension::Environment, "production".into()),
        ],
    };
    let groups = summary(store.as_ref(), t, &q).await.unwrap();
    assert_eq!(groups.len(), 3);
    for g in &groups {
        let (want, lat) = exact(&all, |e| {
            e.provider.as_deref() == Some("openai")
                && e.environment.as_deref() == Some("production")
                && e.app == g.key[0]
        });
        assert_matches(&g.agg, &want, &lat, "filtered");
    }
}

pub(crate) async fn timeseries_match_raw_events(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let all = events(3000, 4, 6 * HOUR_MS);
    write(&store, t, all.clone()).await;
    for (step, metric) in [
        (MINUTE_MS, Metric::Requests),
        (5 * MINUTE_MS, Metric::InputTokens),
        (HOUR_MS, Metric::LatencyP95),
        (HOUR_MS, Metric::Tokens(hub_core::TokenDetail::CacheRead)),
        (5 * MINUTE_MS, Metric::UnpricedEvents),
        (HOUR_MS, Metric::ReportedCostUsd),
    ] {
        let q = TimeseriesQuery {
            from_ms: NOW - 6 * HOUR_MS - 1,
            to_ms: NOW,
            step_ms: step,
            metric,
            group_by: vec![Dimension::Provider],
            filters: vec![],
        };
        let series = timeseries(store.as_ref(), t, &q).await.unwrap();
        assert_eq!(series.len(), 2);
        for s in &series {
            let (from, to) = hub_storage::analytics::aligned_range(&q);
            assert_eq!(s.points.len() as i64, (to - from) / step);
            for &(ts, value) in &s.points {
                let (want, _) = exact(&all, |e| {
                    e.ts_ms >= ts && e.ts_ms < ts + step && e.provider == s.key[0]
                });
                let want_value = want.metric(metric);
                match (value, want_value) {
                    (Some(v), Some(w)) if metric.quantile().is_some() => {
                        assert!((v - w).abs() / w <= 0.011, "{metric:?} at {ts}: {v} vs {w}")
                    }
                    (Some(v), Some(w)) if metric == Metric::ReportedCostUsd => {
                        assert!((v - w).abs() < 1e-9, "{metric:?} at {ts}: {v} vs {w}")
                    }
                    (v, w) => assert_eq!(v, w, "{metric:?} at {ts}"),
                }
            }
        }
    }
}

pub(crate) async fn event_listing_pages_and_filters(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let all = events(250, 5, HOUR_MS);
    write(&store, t, all.clone()).await;
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_events(t, &EventFilter::default(), cursor.as_ref(), 60)
            .await
            .unwrap();
        seen.extend(
            page.events
                .iter()
                .map(|e| (e.record.ts_ms, e.record.event_id.clone())),
        );
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 250);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, no repeats");
    let filter = EventFilter {
        dims: vec![
            (Dimension::Model, "gpt-4o".into()),
            (Dimension::Status, "error".into()),
        ],
        fields: vec![(EventField::UserId, "u-1".into())],
        ..Default::default()
    };
    let page = store.list_events(t, &filter, None, 1000).await.unwrap();
    let want = all
        .iter()
        .filter(|e| {
            e.model.as_deref() == Some("gpt-4o")
                && e.status == Some(Status::Error)
                && e.user_id.as_deref() == Some("u-1")
        })
        .count();
    assert_eq!(page.events.len(), want);
    let one = &all[17];
    let got = store.get_event(t, &one.event_id).await.unwrap().unwrap();
    assert_eq!(got.record, *one);
    assert_eq!(got.received_at_ms, NOW);
    let corr = EventFilter {
        fields: vec![(EventField::CorrelationId, "c-4".into())],
        ..Default::default()
    };
    assert_eq!(
        store
            .list_events(t, &corr, None, 10)
            .await
            .unwrap()
            .events
            .len(),
        3
    );
    // Any id by its start: event ids e-5-1…, correlation ids c-1…, user ids u-1; case matters.
    for prefix in ["e-5-1", "c-1", "u-1", "C-1", "%", "e-5-249"] {
        let filter = EventFilter {
            id_prefix: Some(prefix.into()),
            ..Default::default()
        };
        let got = store.list_events(t, &filter, None, 1000).await.unwrap();
        let want = all
            .iter()
            .filter(|e| {
                [
                    Some(&e.event_id),
                    e.trace_id.as_ref(),
                    e.session_id.as_ref(),
                    e.correlation_id.as_ref(),
                    e.parent_event_id.as_ref(),
                    e.user_id.as_ref(),
                ]
                .into_iter()
                .flatten()
                .any(|id| id.starts_with(prefix))
            })
            .count();
        assert_eq!(got.events.len(), want, "{prefix}");
        assert_eq!(
            want == 0,
            ["C-1", "%"].contains(&prefix),
            "{prefix}: {want}"
        );
    }
}

pub(crate) async fn tenants_never_see_each_other(store: Arc<dyn Storage>) {
    let a = tenant(&store, "a").await;
    let b = tenant(&store, "b").await;
    let events_a = events(100, 6, HOUR_MS);
    write(&store, a, events_a.clone()).await;
    // The same event ids in another tenant are different events, not duplicates.
    let outcome = write(&store, b, events_a[..10].to_vec()).await;
    assert_eq!(outcome.inserted, 10);
    not_found(&store, b, &events_a[50].event_id).await;
    assert_eq!(
        store
            .list_events(b, &EventFilter::default(), None, 1000)
            .await
            .unwrap()
            .events
            .len(),
        10
    );
    assert_eq!(rolled_up_events(&store, b).await, 10);
    assert_eq!(rolled_up_events(&store, a).await, 100);
}

pub(crate) async fn retention_deletes_only_what_expired(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let all = events(500, 7, 6 * DAY_MS);
    write(&store, t, all.clone()).await;
    let policy = RetentionPolicy {
        raw_ms: Some(2 * DAY_MS),
        minute_ms: Some(DAY_MS),
        hour_ms: Some(3 * DAY_MS),
        day_ms: None,
    };
    let report = store.enforce_retention(&policy, NOW).await.unwrap();
    let kept = all.iter().filter(|e| e.ts_ms >= NOW - 2 * DAY_MS).count();
    assert_eq!(store.count_events(t).await.unwrap(), kept as i64);
    assert!(
        report.events_deleted + report.partitions_dropped > 0,
        "{report:?}"
    );
    // Day rollups are kept forever: a 6-day summary at day resolution still sees everything.
    let q = SummaryQuery {
        from_ms: hub_core::time::floor_to(NOW - 7 * DAY_MS, DAY_MS),
        to_ms: hub_core::time::floor_to(NOW, DAY_MS),
        group_by: vec![],
        filters: vec![],
    };
    let want = all.iter().filter(|e| e.ts_ms < q.to_ms).count() as i64;
    assert_eq!(
        summary(store.as_ref(), t, &q).await.unwrap()[0].agg.events,
        want
    );
    // Minute rollups older than a day are gone.
    let old = hub_storage::Scan {
        from_ms: 0,
        to_ms: NOW - DAY_MS,
        filters: &[],
        group_by: &[],
        by_bucket: false,
        bucket_step_ms: 0,
        with_sketch: false,
        tag: None,
    };
    let rows = store
        .scan_rollups(t, hub_core::time::Resolution::Minute, &old)
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.agg.events == 0), "{rows:?}");
}

pub(crate) async fn a_tenant_may_keep_less_than_the_operator(store: Arc<dyn Storage>) {
    let short = tenant(&store, "short").await;
    let long = tenant(&store, "long").await;
    let all = events(300, 8, 6 * DAY_MS);
    write(&store, short, all.clone()).await;
    write(&store, long, all.clone()).await;
    assert_eq!(
        store.settings().tenant_retention(short).await.unwrap(),
        TenantRetention::default(),
        "none set"
    );
    // Raw events for one day; a longer minute retention than the operator's does not extend it.
    let own = TenantRetention {
        raw_ms: Some(DAY_MS),
        minute_ms: Some(30 * DAY_MS),
        hour_ms: None,
        day_ms: Some(2 * DAY_MS),
    };
    store
        .settings()
        .set_tenant_retention(short, &own, NOW)
        .await
        .unwrap();
    assert_eq!(store.settings().tenant_retention(short).await.unwrap(), own);
    let policy = RetentionPolicy {
        raw_ms: Some(3 * DAY_MS),
        minute_ms: Some(DAY_MS),
        hour_ms: None,
        day_ms: None,
    };
    store.enforce_retention(&policy, NOW).await.unwrap();
    let within = |d: i64| all.iter().filter(|e| e.ts_ms >= NOW - d * DAY_MS).count() as i64;
    assert_eq!(store.count_events(short).await.unwrap(), within(1));
    assert_eq!(
        store.count_events(long).await.unwrap(),
        within(3),
        "the other tenant keeps the operator's 3 days"
    );
    // Day rollups: the short tenant's older than two days are gone, the other's all kept.
    let q = SummaryQuery {
        from_ms: hub_core::time::floor_to(NOW - 7 * DAY_MS, DAY_MS),
        to_ms: hub_core::time::floor_to(NOW - 3 * DAY_MS, DAY_MS),
        group_by: vec![],
        filters: vec![],
    };
    let old_events = |t| {
        let store = store.clone();
        let q = q.clone();
        async move {
            summary(store.as_ref(), t, &q)
                .await
                .unwrap()
                .first()
                .map_or(0, |r| r.agg.events)
        }
    };
    assert_eq!(old_events(short).await, 0);
    assert!(old_events(long).await > 0);
    // Setting it back to the operator's.
    store
        .settings()
        .set_tenant_retention(short, &TenantRetention::default(), NOW)
        .await
        .unwrap();
    assert_eq!(
        store.settings().tenant_retention(short).await.unwrap(),
        TenantRetention::default()
    );
}

pub(crate) async fn concurrent_writers_lose_nothing(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..5u64 {
                write(&store, t, events(200, 100 + w * 10 + round, 10 * MINUTE_MS)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let q = SummaryQuery {
        from_ms: NOW - HOUR_MS,
        to_ms: NOW,
        group_by: vec![],
        filters: vec![],
    };
    let g = &summary(store.as_ref(), t, &q).await.unwrap()[0];
    assert_eq!(g.agg.events, 4000);
    assert_eq!(g.agg.latency.count() as i64, g.agg.latency_count);
}

/// The SQLite writer caches rollup rows; a second handle on the same file (another process, such
/// as `hub bench seed` beside a running server) must make it forget them, or totals would drift.
#[tokio::test]
async fn sqlite_rollup_cache_notices_another_writer() {
    let (first, dir) = sqlite().await;
    let url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let second = hub_storage::open(&url, &Default::default()).await.unwrap();
    let t = tenant(&first, "acme").await;
    let mut all = Vec::new();
    for round in 0..6u64 {
        let batch = events(300, 500 + round, 10 * MINUTE_MS);
        all.extend(batch.clone());
        let store = if round % 2 == 0 { &first } else { &second };
        write(store, t, batch).await;
    }
    let q = SummaryQuery {
        from_ms: NOW - HOUR_MS,
        to_ms: NOW,
        group_by: vec![Dimension::Model],
        filters: vec![],
    };
    for store in [&first, &second] {
        for g in summary(store.as_ref(), t, &q).await.unwrap() {
            let (want, lat) = exact(&all, |e| e.model == g.key[0]);
            assert_matches(&g.agg, &want, &lat, "after alternating writers");
        }
    }
}
