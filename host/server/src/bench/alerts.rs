//! `hub bench alerts`: what a minute of alert rules costs, and how fast a burst of notices goes
//! out. Two parts:
//!
//! - **Evaluation.** `--rules` rules (by default 10,000) spread over `--tenants` tenants, each
//!   tenant with an hour of traffic of `--models` models over three apps: thresholds of five
//!   metrics over three windows, of the tenant, per model or per app (85%; about one in a hundred
//!   with a line the traffic crosses), anomaly rules (10%) and event rules (5%). One minute's evaluation is every tenant's rules evaluated once, as the
//!   scheduler does (one tenant at a time); the first minute (which makes the alerts) and the
//!   next (steady) are timed in wall and CPU time.
//! - **Fan-out.** `--fan-out` models (1,000) cross one per-model rule in the same minute, which
//!   notifies the first-party webhook pointed at a receiver in this process: the evaluation that
//!   queues the notices, then the delivery worker until every alert has reached the receiver.
//!
//! CPU time is the process's (user + system): "a share of one core-minute" is CPU seconds over 60.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use hub_core::TenantId;
use hub_core::time::{MINUTE_MS, floor_to};
use hub_pipeline::alerts::deliver::{DeliveryConfig, DeliveryStats, spawn_delivery};
use hub_pipeline::alerts::evaluate::evaluate_tenant;
use hub_plugins::{GrantsDoc, PluginHost, PluginHostConfig};
use hub_storage::{DeliveryFilter, Storage, TenantBatch};
use serde_json::json;

use super::{Rng, peak_rss_mib, timed};

#[derive(Debug, Args)]
pub struct AlertBenchArgs {
    /// Rules evaluated in one minute, all tenants together.
    #[arg(long, default_value_t = 10_000)]
    rules: usize,
    /// Tenants the rules are spread over.
    #[arg(long, default_value_t = 10)]
    tenants: usize,
    /// Models in each tenant's traffic (the groups of a per-model rule).
    #[arg(long, default_value_t = 50)]
    models: usize,
    /// Alerts that fire together in the fan-out part, all to one webhook.
    #[arg(long, default_value_t = 1_000)]
    fan_out: usize,
    /// Fail (exit 1) when one minute's evaluation takes more CPU than this share of a core-minute.
    #[arg(long)]
    max_core_share: Option<f64>,
    /// The database (default: SQLite in a temporary directory), and --plugins-dir: the built
    /// plugins as scripts/build-plugins lays them out (default dist/plugins).
    #[command(flatten)]
    db: crate::config::ServeArgs,
}

const METRICS: [&str; 5] = [
    "requests",
    "error_rate",
    "latency_p95_ms",
    "cost_usd",
    "input_tokens",
];
const WINDOWS: [&str; 3] = ["5m", "15m", "1h"];
const APPS: [&str; 3] = ["search", "support-bot", "summarizer"];

/// An hour of traffic before `minute`: one call of each model in each minute, one in twenty
/// failed, over three apps.
async fn seed(
    storage: &Arc<dyn Storage>,
    tenant: TenantId,
    models: usize,
    minutes: usize,
    minute: i64,
    rng: &mut Rng,
) -> Result<usize> {
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits::default();
    let mut events = Vec::with_capacity(models * minutes);
    for m in 0..minutes {
        let ts = minute - (minutes - m) as i64 * MINUTE_MS;
        for i in 0..models {
            let status = if rng.next().is_multiple_of(20) {
                "error"
            } else {
                "ok"
            };
            let raw = format!(
                r#"{{"timestamp": {}, "model": "model-{i}", "app": "{}", "input_tokens": {}, "output_tokens": 50, "latency_ms": {}, "cost_usd": {}, "status": "{status}"}}"#,
                ts + (i as i64 * 997) % MINUTE_MS,
                APPS[i % APPS.len()],
                500 + rng.next() % 500,
                200 + rng.next() % 800,
                0.001 * (1 + rng.next() % 10) as f64,
            );
            events.push(
                hub_core::ingest::parse_event(&raw, &limits, now)
                    .map_err(|e| anyhow::anyhow!("a seeded event: {e:?}"))?,
            );
        }
    }
    let n = events.len();
    for chunk in events.chunks(5_000) {
        storage
            .write_batches(
                &[TenantBatch {
                    tenant,
                    events: chunk.to_vec(),
                }],
                now,
            )
            .await?;
    }
    Ok(n)
}

/// Rule `i` of a tenant: one of the shapes above, with a line that a few groups cross.
fn rule(i: usize) -> serde_json::Value {
    let name = format!("rule-{i}");
    match i % 20 {
        0 | 1 => json!({"name": name, "condition": {"kind": "anomaly", "min_severity": "warning"}}),
        2 => json!({"name": name, "condition": {"kind": "event", "event_kind": "security.threat",
            "min_severity": "error", "window": "5m"}}),
        _ => {
            let metric = METRICS[i % METRICS.len()];
            let window = WINDOWS[(i / METRICS.len()) % WINDOWS.len()];
            let group_by: Vec<&str> = match (i / 15) % 3 {
                0 => vec![],
                1 => vec!["model"],
                _ => vec!["app"],
            };
            // About one rule in a hundred has a line the traffic crosses.
            let crossed = i % 100 == 7;
            let value = match (metric, crossed) {
                ("requests", false) => 10_000.0 + (i % 7) as f64 * 100.0,
                ("requests", true) => 10.0,
                ("error_rate", false) => 0.3 + (i % 5) as f64 * 0.02,
                ("error_rate", true) => 0.01,
                ("latency_p95_ms", false) => 1_500.0 + (i % 4) as f64 * 50.0,
                ("latency_p95_ms", true) => 100.0,
                ("cost_usd", false) => 50.0 + (i % 3) as f64,
                ("cost_usd", true) => 0.001,
                (_, false) => 1e9,
                (_, true) => 1.0,
            };
            json!({"name": name, "condition": {"kind": "threshold", "metric": metric, "op": ">",
                "value": value, "window": window, "group_by": group_by}})
        }
    }
}

/// A receiver on 127.0.0.1 that answers every POST with 204 and counts the requests and the
/// alerts in their bodies.
fn receiver(posts: Arc<AtomicU64>, alerts: Arc<AtomicU64>) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (posts, alerts) = (posts.clone(), alerts.clone());
            std::thread::spawn(move || {
                let Ok(clone) = stream.try_clone() else {
                    return;
                };
                let mut reader = BufReader::new(clone);
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let n = doc["alerts"].as_array().map_or(0, |a| a.len());
                posts.fetch_add(1, Ordering::Relaxed);
                alerts.fetch_add(n as u64, Ordering::Relaxed);
                let mut s = stream;
                let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
            });
        }
    });
    Ok(port)
}

fn row(what: &str, wall: Duration, cpu: Duration, per: usize, unit: &str) {
    println!(
        "  {what:<34} wall {:>8.3} s   CPU {:>8.3} s = {:>5.2}% of a core-minute   {:>8.1} µs CPU a {unit}",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() / 60.0 * 100.0,
        cpu.as_secs_f64() * 1e6 / per.max(1) as f64
    );
}

pub async fn run(a: AlertBenchArgs) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut db = a.db;
    let plugins_dir = db
        .plugins_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("dist/plugins"));
    if db.database_url.is_none() && db.data_dir.is_none() {
        db.data_dir = Some(tmp.path().join("data"));
    }
    let (storage, _) = crate::open_db(db).await?;
    let now = hub_core::time::now_ms();
    let minute = floor_to(now, MINUTE_MS);
    let name = format!("bench-alerts-{now}");
    println!(
        "machine: {} CPUs; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if tmp.path().join("data").exists() {
            "SQLite in a temporary directory"
        } else {
            "the given database"
        }
    );

    // Evaluation: the tenants, their traffic and their rules.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let tenants = a.tenants.max(1);
    let mut ids = Vec::with_capacity(tenants);
    let mut seeded = 0;
    for t in 0..tenants {
        let id = storage
            .tenants()
            .create_tenant(&format!("{name}-{t}"), now)
            .await?
            .id;
        seeded += seed(&storage, id, a.models, 60, minute, &mut rng).await?;
        let rules = a.rules / tenants + usize::from(t < a.rules % tenants);
        for i in 0..rules {
            let spec = rule(i);
            storage
                .alerts()
                .create_rule(
                    id,
                    &format!("rule-{i}"),
                    &spec.to_string(),
                    true,
                    "bench",
                    now,
                )
                .await?;
        }
        ids.push(id);
    }
    println!(
        "evaluation: {} rules over {tenants} tenants ({} models, 3 apps, {seeded} events in the last hour)",
        a.rules, a.models
    );
    let minute_of = |at: i64| {
        let storage = storage.clone();
        let ids = ids.clone();
        async move {
            let (mut notices, mut open) = (0, 0);
            for t in &ids {
                for r in evaluate_tenant(storage.as_ref(), *t, at).await? {
                    notices += r.notices.len();
                    open += r.open;
                }
            }
            Ok::<_, hub_storage::StorageError>((notices, open))
        }
    };
    let (first, wall1, cpu1) = timed(minute_of(minute)).await;
    let (first_notices, first_open) = first?;
    let (next, wall2, cpu2) = timed(minute_of(minute + MINUTE_MS)).await;
    let (next_notices, next_open) = next?;
    println!("  the first minute: {first_notices} notices, {first_open} alerts open");
    row(
        "the first minute's evaluation",
        wall1,
        cpu1,
        a.rules,
        "rule",
    );
    println!("  the next minute: {next_notices} notices, {next_open} alerts open");
    row("the next minute's evaluation", wall2, cpu2, a.rules, "rule");
    let share = cpu2.as_secs_f64().max(cpu1.as_secs_f64()) / 60.0;

    // Fan-out: one rule, `fan_out` groups crossing it together, one webhook.
    let runtime = hub_runtime::Runtime::new(hub_runtime::RuntimeConfig {
        cache_dir: Some(tmp.path().join("cache")),
        allow_private_http: true,
        ..Default::default()
    })?;
    let host = Arc::new(PluginHost::new(
        runtime,
        storage.clone(),
        PluginHostConfig::default(),
    ));
    let (posts, received) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let port = receiver(posts.clone(), received.clone())?;
    let fan = storage
        .tenants()
        .create_tenant(&format!("{name}-fan-out"), now)
        .await?
        .id;
    seed(&storage, fan, a.fan_out, 5, minute, &mut rng).await?;
    let (m, w) = super::built_plugin(&plugins_dir, "webhook")?;
    host.install(
        fan,
        &m,
        w,
        Some(json!({"url": format!("http://127.0.0.1:{port}/alerts"), "secret": "bench-secret-0123456789"})),
        GrantsDoc {
            kv: false,
            http: vec![format!("127.0.0.1:{port}")],
        },
        true,
    )
    .await?;
    let spec = json!({"name": "every model", "targets": ["webhook"], "condition": {"kind": "threshold",
        "metric": "requests", "op": ">=", "value": 1, "window": "5m", "group_by": ["model"]}});
    storage
        .alerts()
        .create_rule(fan, "every model", &spec.to_string(), true, "bench", now)
        .await?;
    let (out, qwall, qcpu) = timed(evaluate_tenant(storage.as_ref(), fan, minute)).await;
    let queued: usize = out?.iter().map(|r| r.notices.len()).sum();
    let stats = Arc::new(DeliveryStats::default());
    let started = Instant::now();
    let c0 = super::cpu();
    let worker = spawn_delivery(
        host.clone(),
        storage.clone(),
        DeliveryConfig {
            tick: Duration::from_millis(20),
            ..Default::default()
        },
        stats.clone(),
    );
    let delivered_filter = DeliveryFilter {
        state: Some("delivered".into()),
        ..Default::default()
    };
    loop {
        if received.load(Ordering::Relaxed) as usize >= queued {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            worker.abort();
            bail!(
                "only {} of {queued} alerts reached the receiver in 5 minutes ({} failed)",
                received.load(Ordering::Relaxed),
                stats.failed.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (dwall, dcpu) = (started.elapsed(), super::cpu() - c0);
    // Until the worker has recorded every attempt.
    while storage
        .deliveries()
        .deliveries(fan, &delivered_filter, queued + 1)
        .await?
        .len()
        < queued
        && started.elapsed() < Duration::from_secs(300)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recorded = started.elapsed();
    worker.abort();
    println!(
        "fan-out: {} models over one per-model rule notifying the webhook",
        a.fan_out
    );
    row(
        "evaluating and queueing the notices",
        qwall,
        qcpu,
        queued,
        "notice",
    );
    row(
        "delivering until all were received",
        dwall,
        dcpu,
        queued,
        "alert",
    );
    println!(
        "  {} alerts received in {} POSTs; every delivery recorded after {:.3} s",
        received.load(Ordering::Relaxed),
        posts.load(Ordering::Relaxed),
        recorded.as_secs_f64()
    );
    println!("peak resident memory: {:.0} MiB", peak_rss_mib());
    if let Some(max) = a.max_core_share
        && share > max
    {
        bail!(
            "a minute's evaluation took {:.1}% of a core-minute, more than --max-core-share {:.1}%",
            share * 100.0,
            max * 100.0
        );
    }
    Ok(())
}
