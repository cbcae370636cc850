//! Nothing acknowledged is lost: kill -9 under load, SIGTERM draining in-flight batches, and the
//! same binary serving from PostgreSQL.

use super::*;

/// Sends unique batches from several clients until stopped; returns the ids of acknowledged ones.
async fn load(base: String, key: String, stop_after: Duration) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    let deadline = Instant::now() + stop_after;
    for w in 0..4 {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut seq = 0;
            while Instant::now() < deadline {
                let ids: Vec<String> = (0..200).map(|i| format!("w{w}-{seq}-{i}")).collect();
                seq += 1;
                let ts = hub_core_now();
                let events: Vec<Value> = ids.iter().map(|id| json!({"event_id": id, "timestamp": ts, "model": "m", "latency_ms": 5.0})).collect();
                let res = client.post(format!("{base}/v1/events")).bearer_auth(&key).json(&events).send().await;
                match res {
                    Ok(r) if r.status().as_u16() == 202 => acked.extend(ids),
                    _ => break, // the server is gone: this batch was never acknowledged
                }
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

async fn missing_events(data_dir: &Path, ids: &[String]) -> Vec<String> {
    let store = hub_storage::open(
        &format!("sqlite://{}/hub.db", data_dir.display()),
        &Default::default(),
    )
    .await
    .unwrap();
    let tenant = store
        .tenants()
        .tenant_by_name("demo")
        .await
        .unwrap()
        .unwrap()
        .id;
    let mut missing = Vec::new();
    for id in ids {
        if store.get_event(tenant, id).await.unwrap().is_none() {
            missing.push(id.clone());
        }
    }
    store.close().await;
    missing
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let key = server.key.clone().unwrap();
    let loader = tokio::spawn(load(server.base.clone(), key, Duration::from_secs(30)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    let acked = loader.await.unwrap();
    assert!(
        acked.len() >= 1000,
        "the load ran long enough to matter ({} acknowledged)",
        acked.len()
    );
    let missing = missing_events(dir.path(), &acked).await;
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    // And the hub starts again on the same data.
    let again = Server::start(dir.path(), &[]);
    assert!(
        reqwest::get(again.url("/readyz"))
            .await
            .unwrap()
            .status()
            .is_success()
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_batches_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let key = server.key.clone().unwrap();
    let loader = tokio::spawn(load(server.base.clone(), key, Duration::from_secs(30)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = tokio::task::spawn_blocking(move || server.sigterm())
        .await
        .unwrap();
    assert!(status.success(), "hub exits cleanly on SIGTERM: {status}");
    let acked = loader.await.unwrap();
    assert!(acked.len() >= 1000);
    assert!(missing_events(dir.path(), &acked).await.is_empty());
}

#[tokio::test]
async fn serves_from_postgres() {
    let url = hub_storage::testing::scratch_postgres_database().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--database-url", &url]);
    let key = server.key.clone().unwrap();
    let client = reqwest::Client::new();
    let (status, body) = post(
        &client,
        &server,
        &key,
        "application/x-ndjson",
        ENVELOPE.into(),
    )
    .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (202, Some(11)),
        "{body}"
    );
    let (_, body) = post(
        &client,
        &server,
        &key,
        "application/x-ndjson",
        ENVELOPE.into(),
    )
    .await;
    assert_eq!(body["duplicates"], 11);
    let series = get(&client, &server, &key, "/v1/metrics/timeseries?from=2026-11-25T10:00:00Z&to=2026-11-25T11:00:00Z&step=1h&metric=events&group_by=source_module").await;
    let total: f64 = series["series"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["points"].as_array().unwrap())
        .map(|p| p["value"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 11.0);
    let status = tokio::task::spawn_blocking(move || server.sigterm())
        .await
        .unwrap();
    assert!(status.success());
    // Restart: migrations are idempotent, no second bootstrap.
    let again = Server::start(dir.path(), &["--database-url", &url]);
    assert!(again.key.is_none());
}
