//! Alert notices delivered by the real webhook component (built from plugins/webhook) to a real
//! HTTP server on 127.0.0.1: the notices of one evaluation arrive as one signed POST; a target
//! that answers 503 is retried with backoff and the log keeps both attempts; one that answers 404
//! is given up at once; a target that is not installed any more is retried, not lost; another
//! tenant's deliveries go on while one tenant's target hangs.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hub_core::TenantId;
use hub_pipeline::alerts::deliver::{DeliveryConfig, DeliveryStats, spawn_delivery};
use hub_pipeline::alerts::evaluate::evaluate_tenant;
use hub_plugins::{GrantsDoc, PluginHost, PluginHostConfig};
use hub_storage::{DeliveryFilter, Storage};
use serde_json::{Value, json};

/// A server answering each request with the next of `statuses` (0: never answers), sending the
/// body and the signature header it read to the returned channel.
fn serve(statuses: Vec<u16>) -> (u16, mpsc::Receiver<(Value, Option<String>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for status in statuses {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut len, mut signature) = (0usize, None);
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end().to_string();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap(),
                        "x-hub-signature" => signature = Some(v.trim().to_string()),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let _ = tx.send((serde_json::from_slice(&body).unwrap(), signature));
            if status == 0 {
                std::thread::sleep(Duration::from_secs(30));
                continue;
            }
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"
            );
        }
    });
    (port, rx)
}

async fn hub() -> (Arc<dyn Storage>, Arc<PluginHost>, tempfile::TempDir) {
    support::setup_full(
        hub_runtime::RuntimeConfig {
            allow_private_http: true,
            http_timeout: Duration::from_secs(4),
            ..Default::default()
        },
        PluginHostConfig {
            max_consecutive_failures: 50,
            ..Default::default()
        },
    )
    .await
}

async fn install_webhook(host: &PluginHost, t: TenantId, port: u16) {
    let (m, w) = support::plugin("webhook");
    let grants = GrantsDoc {
        kv: false,
        http: vec![format!("127.0.0.1:{port}")],
    };
    let config =
        json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": "0123456789abcdef"});
    host.install(t, &m, w, Some(config), grants, true)
        .await
        .unwrap();
}

/// Two critical anomalies (gpt-4o and claude) and a rule on them sending to `webhook`; one
/// evaluation fires both.
async fn fire_two(storage: &Arc<dyn Storage>, t: TenantId) {
    let now = hub_core::time::now_ms();
    let found = |model: &str| support::spike(model, hub_core::Severity::Critical);
    storage
        .anomalies()
        .insert_anomalies(t, &[found("gpt-4o"), found("claude")], now)
        .await
        .unwrap();
    let spec = json!({"name": "spikes", "severity": "critical", "labels": {"team": "search"},
        "targets": ["webhook"], "condition": {"kind": "anomaly"}});
    storage
        .alerts()
        .create_rule(t, "spikes", &spec.to_string(), true, "test", 0)
        .await
        .unwrap();
    let out = evaluate_tenant(storage.as_ref(), t, now).await.unwrap();
    assert_eq!(out[0].notices.len(), 2);
}

fn config() -> DeliveryConfig {
    DeliveryConfig {
        tick: Duration::from_millis(50),
        retry_base: Duration::from_millis(400),
        retry_max: Duration::from_secs(2),
        give_up: Duration::from_secs(60),
        ..Default::default()
    }
}

/// Waits until `f` holds of the tenant's deliveries, or panics after 20 s.
async fn until(
    storage: &Arc<dyn Storage>,
    t: TenantId,
    what: &str,
    f: impl Fn(&[hub_storage::Delivery]) -> bool,
) -> Vec<hub_storage::Delivery> {
    let started = Instant::now();
    loop {
        let d = storage
            .deliveries()
            .deliveries(t, &DeliveryFilter::default(), 100)
            .await
            .unwrap();
        if f(&d) {
            return d;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: {d:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notices_of_an_evaluation_arrive_as_one_signed_post() {
    let (storage, host, _dir) = hub().await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let (port, got) = serve(vec![200]);
    install_webhook(&host, acme, port).await;
    fire_two(&storage, acme).await;
    let stats = Arc::new(DeliveryStats::default());
    let worker = spawn_delivery(host.clone(), storage.clone(), config(), stats.clone());
    let done = until(&storage, acme, "delivered", |d| {
        d.len() == 2 && d.iter().all(|x| x.state == "delivered")
    })
    .await;
    worker.abort();
    let (doc, signature) = got.recv_timeout(Duration::from_secs(1)).unwrap();
    assert!(signature.unwrap().starts_with("t="));
    let alerts = doc["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "one POST for both: {doc}");
    let mut models: Vec<&str> = alerts
        .iter()
        .map(|a| a["labels"]["model"].as_str().unwrap())
        .collect();
    models.sort();
    assert_eq!(models, ["claude", "gpt-4o"]);
    let a = &alerts[0];
    assert_eq!(
        (
            &a["rule"],
            &a["state"],
            &a["severity"],
            &a["labels"]["team"]
        ),
        (
            &json!("spikes"),
            &json!("firing"),
            &json!("critical"),
            &json!("search")
        )
    );
    assert!(a["summary"].as_str().unwrap().contains("requests"), "{a}");
    // The alert's id is the stored alert's.
    let ids: Vec<String> = done.iter().map(|d| d.alert_id.to_string()).collect();
    assert!(ids.contains(&a["id"].as_str().unwrap().to_string()));
    assert_eq!(stats.delivered.load(Ordering::Relaxed), 2);
    let log = storage
        .deliveries()
        .attempts(acme, &[done[0].id])
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].outcome, "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_target_is_retried_with_backoff_and_a_wrong_one_given_up() {
    let (storage, host, _dir) = hub().await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let (port, got) = serve(vec![503, 503, 200]);
    install_webhook(&host, acme, port).await;
    fire_two(&storage, acme).await;
    let stats = Arc::new(DeliveryStats::default());
    let worker = spawn_delivery(host.clone(), storage.clone(), config(), stats.clone());
    let done = until(&storage, acme, "delivered after two 503s", |d| {
        d.len() == 2 && d.iter().all(|x| x.state == "delivered")
    })
    .await;
    worker.abort();
    assert!(done.iter().all(|d| d.attempts == 3), "{done:#?}");
    let log = storage
        .deliveries()
        .attempts(acme, &[done[0].id])
        .await
        .unwrap();
    let outcomes: Vec<&str> = log.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "delivered"]);
    assert!(log[0].error.as_deref().unwrap().contains("503"), "{log:?}");
    // Backed off: at least half the base, then half of twice the base, between the attempts.
    assert!(log[1].at_ms - log[0].at_ms >= 200, "{log:?}");
    assert!(log[2].at_ms - log[1].at_ms >= 400, "{log:?}");
    for _ in 0..3 {
        assert_eq!(
            got.recv_timeout(Duration::from_secs(1)).unwrap().0["alerts"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
    assert_eq!(stats.retried.load(Ordering::Relaxed), 4);

    // A 404 is a configuration to fix: given up at the first attempt, the reason kept.
    let other = storage
        .tenants()
        .create_tenant("other", 0)
        .await
        .unwrap()
        .id;
    let (port, _got) = serve(vec![404]);
    install_webhook(&host, other, port).await;
    fire_two(&storage, other).await;
    let worker = spawn_delivery(host.clone(), storage.clone(), config(), stats.clone());
    let failed = until(&storage, other, "given up", |d| {
        d.len() == 2 && d.iter().all(|x| x.state == "failed")
    })
    .await;
    worker.abort();
    assert_eq!(failed[0].attempts, 1);
    let why = failed[0].last_error.as_deref().unwrap();
    assert!(
        why.contains("404") && why.contains("bad configuration"),
        "{why}"
    );
    // The alerts fire on whatever their deliveries did.
    let open = storage
        .alerts()
        .list_alerts(
            other,
            &hub_storage::AlertFilter {
                state: Some("firing".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap()
        .0;
    assert_eq!(open.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_target_does_not_hold_up_another_tenants_deliveries() {
    let (storage, host, _dir) = hub().await;
    let slow = storage.tenants().create_tenant("slow", 0).await.unwrap().id;
    let fast = storage.tenants().create_tenant("fast", 0).await.unwrap().id;
    let (hang_port, _hung) = serve(vec![0, 0, 0, 0]);
    let (port, got) = serve(vec![200]);
    install_webhook(&host, slow, hang_port).await;
    install_webhook(&host, fast, port).await;
    fire_two(&storage, slow).await;
    fire_two(&storage, fast).await;
    let stats = Arc::new(DeliveryStats::default());
    let started = Instant::now();
    let worker = spawn_delivery(host.clone(), storage.clone(), config(), stats.clone());
    until(&storage, fast, "the fast tenant's delivery", |d| {
        d.iter().all(|x| x.state == "delivered")
    })
    .await;
    let fast_took = started.elapsed();
    eprintln!("the fast tenant's alerts were delivered {fast_took:?} after the worker started");
    assert!(got.recv_timeout(Duration::from_secs(1)).is_ok());
    // The hung one times out (the HTTP timeout, 4 s) as unavailable, and is queued again.
    let slow_d = until(&storage, slow, "the hung delivery retried", |d| {
        d.iter().all(|x| x.attempts >= 1 && x.state == "queued")
    })
    .await;
    worker.abort();
    // Well before the hung call's 4 s timeout.
    assert!(
        fast_took < Duration::from_secs(3),
        "the fast tenant waited {fast_took:?} for the slow one's target"
    );
    let why = slow_d[0].last_error.as_deref().unwrap();
    assert!(
        why.contains("unavailable") || why.contains("deadline"),
        "{why}"
    );

    // Removing the target: its deliveries are not lost but retried (the tenant may install
    // it again) until the give-up time.
    host.uninstall(slow, "webhook", false).await.unwrap();
    let worker = spawn_delivery(host.clone(), storage.clone(), config(), stats.clone());
    let retried = until(&storage, slow, "a missing target retried", |d| {
        d.iter().all(|x| {
            x.last_error
                .as_deref()
                .is_some_and(|e| e.contains("no enabled integration named `webhook`"))
        })
    })
    .await;
    worker.abort();
    assert!(retried.iter().all(|d| d.state == "queued"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_a_silence_matches_is_recorded_and_not_sent() {
    let (storage, host, _dir) = hub().await;
    let acme = storage.tenants().create_tenant("acme", 0).await.unwrap().id;
    let (port, got) = serve(vec![200, 200]);
    install_webhook(&host, acme, port).await;
    let now = hub_core::time::now_ms();
    // gpt-4o's notices are held back for an hour; a silence that ended does nothing.
    for (matchers, ends) in [
        (
            json!([{"name": "model", "value": "gpt-4o"}, {"name": "rule", "value": "spikes"}]),
            now + 3_600_000,
        ),
        (json!([{"name": "model", "value": "claude"}]), now - 1),
    ] {
        storage
            .silences()
            .create_silence(
                acme,
                &hub_storage::NewSilence {
                    matchers: matchers.to_string(),
                    starts_at_ms: now - 60_000,
                    ends_at_ms: ends,
                    comment: "rolling out the new prompt".into(),
                    created_by: "user:ann@acme".into(),
                },
                now,
            )
            .await
            .unwrap();
    }
    fire_two(&storage, acme).await;
    let worker = spawn_delivery(
        host.clone(),
        storage.clone(),
        config(),
        Arc::new(DeliveryStats::default()),
    );
    let done = until(&storage, acme, "one delivered, one silenced", |d| {
        d.iter().any(|x| x.state == "delivered") && d.iter().any(|x| x.state == "silenced")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.abort();
    let (doc, _) = got.recv_timeout(Duration::from_secs(1)).unwrap();
    let alerts = doc["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{doc}");
    assert_eq!(alerts[0]["labels"]["model"], "claude");
    assert!(
        got.recv_timeout(Duration::from_millis(200)).is_err(),
        "nothing else sent"
    );
    let silenced = done.iter().find(|d| d.state == "silenced").unwrap();
    assert_eq!(silenced.attempts, 0);
    let note = silenced.last_error.as_deref().unwrap();
    assert!(note.starts_with("silenced by silence 1 until "), "{note}");
    assert!(note.ends_with(": rolling out the new prompt"), "{note}");
}
