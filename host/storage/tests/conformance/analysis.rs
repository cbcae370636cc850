//! What detectors found and forecasters predict, and the leases of scheduled runs.

use hub_core::Severity;
use hub_storage::{
    AnomalyFilter, ForecastFilter, ForecastPoint, NewAnomaly, RunOutcome, StoredForecast,
};

use super::*;

fn found(
    plugin: &str,
    dims: &[(&str, &str)],
    metric: &str,
    ts_ms: i64,
    severity: Severity,
) -> NewAnomaly {
    NewAnomaly {
        plugin: plugin.into(),
        // As stored keys read back: by dimension name.
        dims: {
            let mut d: Vec<(String, String)> = dims
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            d.sort();
            d
        },
        metric: metric.into(),
        step_ms: MINUTE_MS,
        ts_ms,
        value: 42.0,
        expected: Some(10.0),
        lower: None,
        upper: Some(20.0),
        score: 5.5,
        severity,
        reason: format!("{metric} is 4.2× its usual"),
    }
}

pub(crate) async fn anomalies_are_stored_once_filtered_and_paged(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let other = tenant(&store, "globex").await;
    let a = store.anomalies();
    let batch: Vec<NewAnomaly> = (0..5)
        .map(|i| {
            found(
                "zscore",
                &[
                    ("model", if i % 2 == 0 { "gpt-4o" } else { "gpt-4o-mini" }),
                    ("app", "bot"),
                ],
                if i < 4 { "requests" } else { "cost_usd" },
                NOW - i * MINUTE_MS,
                if i == 0 {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
            )
        })
        .collect();
    let new = a.insert_anomalies(t, &batch, NOW).await.unwrap();
    assert_eq!(new.len(), 5);
    assert_eq!(new[0].found, batch[0]);
    // The same points again (another run, another replica): nothing new.
    let again = a.insert_anomalies(t, &batch[..3], NOW + 1).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    // Another plugin may report the same point.
    assert_eq!(
        a.insert_anomalies(
            t,
            &batch[..1]
                .iter()
                .map(|x| NewAnomaly {
                    plugin: "robust".into(),
                    ..x.clone()
                })
                .collect::<Vec<_>>(),
            NOW
        )
        .await
        .unwrap()
        .len(),
        1
    );

    let all = AnomalyFilter::default();
    let (page, next) = a.list_anomalies(t, &all, None, 4).await.unwrap();
    assert_eq!(page.len(), 4);
    assert!(
        page.windows(2)
            .all(|w| (w[0].found.ts_ms, w[0].id) > (w[1].found.ts_ms, w[1].id))
    );
    let (rest, end) = a.list_anomalies(t, &all, next, 4).await.unwrap();
    assert_eq!((rest.len(), end), (2, None));

    let count = |f: AnomalyFilter| {
        let a = store.anomalies();
        async move { a.list_anomalies(t, &f, None, 100).await.unwrap().0.len() }
    };
    assert_eq!(
        count(AnomalyFilter {
            metric: Some("cost_usd".into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        count(AnomalyFilter {
            min_severity: Some(Severity::Critical),
            ..Default::default()
        })
        .await,
        2
    );
    assert_eq!(
        count(AnomalyFilter {
            plugin: Some("robust".into()),
            ..Default::default()
        })
        .await,
        1
    );
    // A dimension value matches exactly: gpt-4o is not gpt-4o-mini.
    assert_eq!(
        count(AnomalyFilter {
            dims: vec![("model".into(), "gpt-4o".into())],
            ..Default::default()
        })
        .await,
        4
    );
    assert_eq!(
        count(AnomalyFilter {
            dims: vec![
                ("model".into(), "gpt-4o-mini".into()),
                ("app".into(), "bot".into())
            ],
            ..Default::default()
        })
        .await,
        2
    );
    assert_eq!(
        count(AnomalyFilter {
            dims: vec![("model".into(), "gpt%".into())],
            ..Default::default()
        })
        .await,
        0
    );
    assert_eq!(
        count(AnomalyFilter {
            from_ms: Some(NOW - MINUTE_MS),
            to_ms: Some(NOW),
            ..Default::default()
        })
        .await,
        1
    );

    let one = a.get_anomaly(t, new[2].id).await.unwrap().unwrap();
    assert_eq!(one.found, batch[2]);
    assert_eq!(one.detected_at_ms, NOW);
    // Another tenant sees none of it.
    assert!(a.get_anomaly(other, new[2].id).await.unwrap().is_none());
    assert!(
        a.list_anomalies(other, &all, None, 10)
            .await
            .unwrap()
            .0
            .is_empty()
    );

    // They go with the minute rollups.
    let policy = RetentionPolicy {
        minute_ms: Some(2 * MINUTE_MS + 1),
        ..RetentionPolicy::default()
    };
    let report = store.enforce_retention(&policy, NOW).await.unwrap();
    assert_eq!(report.anomalies_deleted, 2, "{report:?}");
}

pub(crate) async fn forecasts_keep_the_newest_per_series(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let other = tenant(&store, "globex").await;
    let a = store.forecasts();
    let fc = |dims: &[(&str, &str)], made: i64, mean: f64| StoredForecast {
        plugin: "ets".into(),
        dims: dims
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        metric: "cost_usd".into(),
        step_ms: HOUR_MS,
        level: 0.95,
        made_at_ms: made,
        points: (1..=3)
            .map(|i| ForecastPoint {
                ts_ms: NOW + i * HOUR_MS,
                mean,
                lower: mean - 1.0,
                upper: mean + 1.0,
            })
            .collect(),
    };
    a.put_forecasts(
        t,
        &[
            fc(&[], NOW - HOUR_MS, 1.0),
            fc(&[("app", "bot")], NOW - HOUR_MS, 2.0),
        ],
    )
    .await
    .unwrap();
    a.put_forecasts(t, &[fc(&[], NOW, 3.0)]).await.unwrap();
    let all = a
        .list_forecasts(t, &ForecastFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let total = a
        .list_forecasts(
            t,
            &ForecastFilter {
                exact_dims: Some(vec![]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(total, vec![fc(&[], NOW, 3.0)]);
    let bot = a
        .list_forecasts(
            t,
            &ForecastFilter {
                dims: vec![("app".into(), "bot".into())],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(bot, vec![fc(&[("app", "bot")], NOW - HOUR_MS, 2.0)]);
    assert!(
        a.list_forecasts(other, &ForecastFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    // Forecasts go with the minute rollups: one made an hour ago, under half an hour's keeping.
    let policy = RetentionPolicy {
        minute_ms: Some(HOUR_MS / 2),
        ..RetentionPolicy::default()
    };
    store.enforce_retention(&policy, NOW).await.unwrap();
    let kept = a
        .list_forecasts(t, &ForecastFilter::default())
        .await
        .unwrap();
    assert_eq!(kept, vec![fc(&[], NOW, 3.0)]);
}

pub(crate) async fn one_replica_runs_each_period(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let a = store.analysis_runs();
    let lease = 60_000;
    assert!(
        a.claim_run(t, "zscore", NOW, "replica-a", NOW, lease)
            .await
            .unwrap()
    );
    assert!(
        !a.claim_run(t, "zscore", NOW, "replica-b", NOW + 1, lease)
            .await
            .unwrap()
    );
    // Another plugin, another period: their own leases.
    assert!(
        a.claim_run(t, "ets", NOW, "replica-b", NOW, lease)
            .await
            .unwrap()
    );
    assert!(
        a.claim_run(t, "zscore", NOW + MINUTE_MS, "replica-b", NOW, lease)
            .await
            .unwrap()
    );
    // A holder that never finished loses the lease once it is old...
    assert!(
        a.claim_run(t, "zscore", NOW, "replica-b", NOW + lease + 1, lease)
            .await
            .unwrap()
    );
    // ...and cannot finish what it no longer holds.
    let ok = RunOutcome {
        outcome: "ok".into(),
        series: 3,
        found: 1,
        message: None,
    };
    a.finish_run(t, "zscore", NOW, "replica-a", NOW + lease + 2, &ok)
        .await
        .unwrap();
    a.finish_run(t, "zscore", NOW, "replica-b", NOW + lease + 3, &ok)
        .await
        .unwrap();
    // A finished run is never taken again.
    assert!(
        !a.claim_run(t, "zscore", NOW, "replica-a", NOW + 10 * lease, lease)
            .await
            .unwrap()
    );
    let runs = a.runs(t, Some("zscore"), NOW).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (
            runs[0].owner.as_str(),
            runs[0].finished_at_ms,
            runs[0].outcome.as_ref()
        ),
        ("replica-b", Some(NOW + lease + 3), Some(&ok))
    );
    assert_eq!(runs[1].outcome, None);
    assert_eq!(a.runs(t, None, NOW).await.unwrap().len(), 3);
    assert_eq!(
        a.last_run(t, "zscore").await.unwrap(),
        Some(NOW + MINUTE_MS)
    );
    assert_eq!(a.last_run(t, "nope").await.unwrap(), None);
}
