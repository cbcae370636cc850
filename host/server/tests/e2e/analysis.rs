//! Detectors run by the scheduler of two real `hub serve` replicas on one PostgreSQL database:
//! each (tenant, plugin, period) is run once, by one of them, and what it found is stored once.

use super::*;

/// A replica's `hub_analysis_runs{outcome=...}` and `hub_analysis_anomalies`.
async fn analysis_metrics(client: &reqwest::Client, s: &Server) -> (u64, u64, u64) {
    let text = metrics_text(client, s).await;
    let value = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    (
        value("hub_analysis_runs{outcome=\"ok\"}"),
        value("hub_analysis_runs{outcome=\"skipped\"}"),
        value("hub_analysis_anomalies "),
    )
}

#[tokio::test]
async fn two_replicas_on_one_database_run_each_period_once() {
    let url = hub_storage::testing::scratch_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let plugins = super::plugins::plugins_dir(dir.path(), &["testing/misreport"]);
    let plugins_arg = plugins.to_str().unwrap().to_string();
    let common = [
        "--database-url",
        &url,
        "--plugins-dir",
        &plugins_arg,
        "--analysis-settle",
        "1s",
    ];
    let a = Server::start(&dir.path().join("a"), &common);
    let key = a.key.clone().expect("the first replica bootstraps");
    // The detector reports the newest point of each series it is given: one anomaly a period.
    let wasm = plugins.join("misreport/misreport.wasm");
    let out = Command::new(HUB)
        .args(["plugin", "install", "--tenant", "demo"])
        .arg(&wasm)
        .args([
            "--plugin-config",
            r#"{"mode": "ok"}"#,
            "--database-url",
            &url,
        ])
        .arg("--data-dir")
        .arg(dir.path().join("cli"))
        .env("HUB_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An alert rule on what the detector finds, evaluated once a minute by one replica or the
    // other (written in the database: the first-start key cannot manage rules).
    let store = hub_storage::open(&url, &Default::default()).await.unwrap();
    let demo = store
        .tenants()
        .tenant_by_name("demo")
        .await
        .unwrap()
        .unwrap()
        .id;
    let spec = r#"{"name": "found", "condition": {"kind": "anomaly", "min_severity": "info"}}"#;
    store
        .alerts()
        .create_rule(demo, "found", spec, true, "test", 0)
        .await
        .unwrap();
    let b = Server::start(&dir.path().join("b"), &common);
    assert!(
        b.key.is_none(),
        "the second replica finds the database bootstrapped"
    );

    // Until three periods have been run (the first at once, then one a minute).
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(200);
    let runs = loop {
        let runs = get(&client, &a, &key, "/v1/plugins/misreport/runs?from=now-1h").await;
        let done: Vec<Value> = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["outcome"] == "ok")
            .cloned()
            .collect();
        if done.len() >= 3 {
            break done;
        }
        assert!(Instant::now() < deadline, "three runs in 200 s: {runs}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let (ok_a, skipped_a, found_a) = analysis_metrics(&client, &a).await;
    let (ok_b, skipped_b, found_b) = analysis_metrics(&client, &b).await;
    let mut periods: Vec<&str> = runs.iter().map(|r| r["period"].as_str().unwrap()).collect();
    periods.dedup();
    assert_eq!(periods.len(), runs.len(), "one run per period: {runs:?}");
    // Every run made by one replica or the other, never both (a run may have finished after the
    // listing above: at most one more).
    let made = ok_a + ok_b;
    assert!(
        made == runs.len() as u64 || made == runs.len() as u64 + 1,
        "replica a ran {ok_a} (skipped {skipped_a}), b {ok_b} (skipped {skipped_b}); periods {}",
        runs.len()
    );
    // One anomaly per period, stored once, and its event once.
    let anomalies = get(
        &client,
        &a,
        &key,
        "/v1/anomalies?plugin=misreport&from=now-1h",
    )
    .await;
    let n = anomalies["anomalies"].as_array().unwrap().len() as u64;
    assert_eq!(n, found_a + found_b, "{anomalies}");
    assert!(n >= 3 && n <= made, "{n} anomalies for {made} runs");
    let events = get(
        &client,
        &b,
        &key,
        "/v1/events?event_type=anomaly&limit=1000",
    )
    .await;
    assert_eq!(
        events["events"].as_array().unwrap().len() as u64,
        n,
        "{events}"
    );
    // Each minute's alert evaluation made once, by one replica (one may finish after the
    // listing), and the detector's anomaly firing.
    let evaluations = store
        .analysis_runs()
        .runs(demo, Some(hub_pipeline::schedule::ALERTS_RUN), 0)
        .await
        .unwrap();
    let evaluated = evaluations
        .iter()
        .filter(|r| r.finished_at_ms.is_some())
        .count() as u64;
    let metric = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("hub_alert_evaluations "))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    let mut counted = 0;
    for s in [&a, &b] {
        let text = client
            .get(s.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        counted += metric(&text);
    }
    assert!(evaluated >= 2, "{evaluations:?}");
    assert!(
        counted == evaluated || counted == evaluated + 1,
        "{counted} evaluations counted by the replicas, {evaluated} leases finished"
    );
    let firing = get(&client, &b, &key, "/v1/alerts?state=firing").await;
    assert!(
        firing["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["summary"]
                .as_str()
                .unwrap_or("")
                .starts_with("unusual requests")),
        "{firing}"
    );
    eprintln!(
        "runs: a {ok_a} (skipped {skipped_a}), b {ok_b} (skipped {skipped_b}); anomalies {n}; alert evaluations {evaluated}"
    );
}
