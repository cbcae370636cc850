//! `hub bench`: a load generator for ingest, a query benchmark, a direct seeder for building
//! large data sets, and the plugin benchmark (`plugins`). Only in a build with `--features bench`:
//! the production binary links none of it (nor the native builds of the first-party plugins). Figures are printed for a person: units, aligned columns, a progress bar.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use hub_core::LatencySketch;
use indicatif::{ProgressBar, ProgressStyle};

mod alerts;
mod analysis;
mod detectors;
mod forecasters;
mod plugins;
mod query;
mod seed;
mod synth;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Send generated events to a running hub and report events/s and ack latency.
    Ingest(Box<IngestArgs>),
    /// Run a mix of summary, time-series and event queries against a running hub.
    Query(Box<query::QueryArgs>),
    /// Write generated events straight into a database (no HTTP) to build a large data set.
    Seed(Box<seed::SeedArgs>),
    /// Plugin overhead per event against native code, and cold-start load times.
    Plugins(Box<plugins::PluginBenchArgs>),
    /// The first-party detectors' precision, recall and F1 on the labeled synthetic set.
    Detectors(Box<detectors::DetectorBenchArgs>),
    /// The first-party forecasters' sMAPE and MASE on synthetic hourly traffic, against
    /// statsforecast's AutoETS and SeasonalNaive when a Python with it is given.
    Forecasters(Box<forecasters::ForecasterBenchArgs>),
    /// What one scheduled run of a detector and of a forecaster costs at a large tenant's sizes:
    /// series built from seeded rollups, the plugin's calls, the whole run.
    Analysis(Box<analysis::AnalysisBenchArgs>),
    /// What a minute of alert rules costs (10,000 by default, over many tenants), and how fast
    /// a burst of notices (1,000 at once) reaches a webhook.
    Alerts(Box<alerts::AlertBenchArgs>),
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The hub's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API key with the ingest scope.
    #[arg(long, env = "HUB_API_KEY")]
    key: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// How long to send, e.g. 60s.
    #[arg(long, default_value = "60s")]
    duration: String,
    /// Gzip request bodies.
    #[arg(long)]
    gzip: bool,
    /// Event ids: random UUIDs (as most SDKs send), or `<run>-<client>-<n>`, which a sorted
    /// index takes in a few places only.
    #[arg(long, value_enum, default_value_t = IdStyle::Uuid)]
    ids: IdStyle,
    /// Events per second to send at most, all workers together (0: as fast as the hub answers),
    /// for latency at a given share of the peak.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdStyle {
    Uuid,
    Sequential,
}

/// A version 4 (random) UUID made of two random words.
struct RandomUuid(u64, u64);

impl std::fmt::Display for RandomUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = (self.0, (self.1 & !(0xc000 << 48)) | (0x8000 << 48));
        let a = (a & !0xf000) | 0x4000;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Ingest(a) => ingest(*a).await,
        BenchCommand::Query(a) => query::run(*a).await,
        BenchCommand::Seed(a) => seed::run(*a).await,
        BenchCommand::Plugins(a) => plugins::run(*a).await,
        BenchCommand::Detectors(a) => detectors::run(*a).await,
        BenchCommand::Forecasters(a) => forecasters::run(*a).await,
        BenchCommand::Analysis(a) => analysis::run(*a).await,
        BenchCommand::Alerts(a) => alerts::run(*a).await,
    }
}

/// A small fast generator; benchmarks need variety, not cryptographic quality.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const MODELS: [(&str, &str); 6] = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4", "anthropic"),
    ("claude-haiku-4", "anthropic"),
    ("gemini-2.5-pro", "google"),
    ("mistral-large", "mistral"),
];
const APPS: [&str; 4] = ["support-bot", "search", "rag-indexer", "copilot"];

/// The fields of one generated flat event after its id and timestamp, as JSON (no braces).
fn event_fields(rng: &mut Rng) -> String {
    let (model, provider) = MODELS[(rng.next() % MODELS.len() as u64) as usize];
    let error = rng.next().is_multiple_of(50);
    let latency = 50.0 + (rng.next() % 4000) as f64 + (rng.next() % 1000) as f64 / 1000.0;
    format!(
        r#""app":"{}","environment":"{}","model":"{model}","provider":"{provider}","operation":"chat","input_tokens":{},"output_tokens":{},"latency_ms":{latency},"status":"{}","user_id":"u-{}","tags":{{"team":"{}"}}"#,
        rng.pick(&APPS),
        if rng.next().is_multiple_of(4) {
            "staging"
        } else {
            "production"
        },
        rng.next() % 4000,
        rng.next() % 800,
        if error { "error" } else { "ok" },
        rng.next() % 1000,
        rng.pick(&["care", "growth", "platform"]),
    )
}

/// Pre-rendered event bodies, so that the load generator spends its share of the two cores
/// splicing in ids and timestamps rather than formatting every field.
pub(crate) struct EventTemplates(Vec<String>);

impl EventTemplates {
    pub(crate) fn new(rng: &mut Rng) -> Self {
        Self((0..4096).map(|_| event_fields(rng)).collect())
    }

    /// Appends one event with this id and timestamp.
    pub(crate) fn push(
        &self,
        out: &mut String,
        rng: &mut Rng,
        id: impl std::fmt::Display,
        ts_ms: i64,
    ) {
        let _ = write!(out, r#"{{"event_id":"{id}","timestamp":{ts_ms},"#);
        out.push_str(&self.0[(rng.next() % self.0.len() as u64) as usize]);
        out.push('}');
    }
}

/// A built first-party plugin's manifest text and component, as scripts/build-plugins lays
/// them out (`DIR/NAME/plugin.toml`, `DIR/NAME/NAME.wasm`).
fn built_plugin(dir: &std::path::Path, name: &str) -> Result<(String, Vec<u8>)> {
    let m = std::fs::read_to_string(dir.join(name).join("plugin.toml")).with_context(|| {
        format!(
            "{}/{name}/plugin.toml (run scripts/build-plugins)",
            dir.display()
        )
    })?;
    let w = std::fs::read(dir.join(name).join(format!("{name}.wasm")))?;
    Ok((m, w))
}

fn bar(len: Option<u64>, template: &str) -> ProgressBar {
    let pb = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    pb.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

fn fmt_rate(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

async fn ingest(a: IngestArgs) -> Result<()> {
    let duration = Duration::from_millis(
        hub_core::time::parse_duration_ms(&a.duration)
            .map_err(|e| anyhow::anyhow!("--duration: {e}"))? as u64,
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    let url = format!("{}/v1/events", a.url.trim_end_matches('/'));
    let sent = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let throttled = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let pb = bar(
        Some(duration.as_secs()),
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len}s {msg}",
    );
    let mut tasks = Vec::new();
    let run_id = hub_core::time::now_ms();
    for worker in 0..a.concurrency {
        let (client, url, key) = (client.clone(), url.clone(), a.key.clone());
        let (sent, accepted, failed, throttled) = (
            sent.clone(),
            accepted.clone(),
            failed.clone(),
            throttled.clone(),
        );
        let (batch, gzip, ids) = (a.batch, a.gzip, a.ids);
        // Paced: each worker sends its batch every `pace`, the workers spread over it.
        let pace = (a.rate > 0.0)
            .then(|| Duration::from_secs_f64(batch as f64 * a.concurrency as f64 / a.rate));
        let mut next = tokio::time::Instant::from_std(started)
            + pace.map_or(Duration::ZERO, |p| {
                p.mul_f64(worker as f64 / a.concurrency as f64)
            });
        tasks.push(tokio::spawn(async move {
            let mut rng =
                Rng(0x9e37_79b9_7f4a_7c15 ^ (worker as u64 + 1).wrapping_mul(run_id as u64));
            let mut latency = LatencySketch::new();
            let templates = EventTemplates::new(&mut rng);
            let id_prefix = format!("b{run_id}-{worker}-");
            let mut next_id = 0u64;
            while Instant::now() < deadline {
                if let Some(pace) = pace {
                    tokio::time::sleep_until(next).await;
                    next += pace;
                }
                let mut body = String::with_capacity(batch * 340);
                body.push('[');
                let now = hub_core::time::now_ms();
                for i in 0..batch {
                    if i > 0 {
                        body.push(',');
                    }
                    let ts = now - (rng.next() % 5_000) as i64;
                    match ids {
                        IdStyle::Uuid => {
                            let id = RandomUuid(rng.next(), rng.next());
                            templates.push(&mut body, &mut rng, id, ts)
                        }
                        IdStyle::Sequential => templates.push(
                            &mut body,
                            &mut rng,
                            format_args!("{id_prefix}{next_id}"),
                            ts,
                        ),
                    }
                    next_id += 1;
                }
                body.push(']');
                let mut req = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json");
                req = if gzip {
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    std::io::Write::write_all(&mut enc, body.as_bytes())?;
                    req.header("content-encoding", "gzip").body(enc.finish()?)
                } else {
                    req.body(body)
                };
                let t0 = Instant::now();
                let res = req.send().await;
                let elapsed = t0.elapsed().as_secs_f64() * 1e3;
                sent.fetch_add(batch as u64, Ordering::Relaxed);
                match res {
                    Ok(r) if r.status().as_u16() == 202 => {
                        latency.add(elapsed);
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        accepted.fetch_add(v["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                    }
                    Ok(r) if r.status().as_u16() == 429 => {
                        throttled.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok(r) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        eprintln!(
                            "HTTP {status}: {}",
                            text.chars().take(300).collect::<String>()
                        );
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("request failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            anyhow::Ok(latency)
        }));
    }
    let progress = {
        let (pb, accepted) = (pb.clone(), accepted.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let secs = started.elapsed().as_secs_f64();
                pb.set_position(secs as u64);
                pb.set_message(format!(
                    "{} events/s",
                    fmt_rate(accepted.load(Ordering::Relaxed) as f64 / secs)
                ));
            }
        })
    };
    let mut latency = LatencySketch::new();
    for t in tasks {
        latency.merge(&t.await??);
    }
    progress.abort();
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let acc = accepted.load(Ordering::Relaxed);
    println!(
        "ingest benchmark: {} for {:.1} s, {} workers x {} events/request{}{}",
        a.url,
        secs,
        a.concurrency,
        a.batch,
        if a.gzip { ", gzip" } else { "" },
        if a.rate > 0.0 {
            format!(", paced at {} events/s", fmt_rate(a.rate))
        } else {
            String::new()
        }
    );
    println!("  {:<22} {:>14}", "events accepted", acc);
    println!(
        "  {:<22} {:>14}",
        "events sent",
        sent.load(Ordering::Relaxed)
    );
    println!(
        "  {:<22} {:>14}",
        "requests 429",
        throttled.load(Ordering::Relaxed)
    );
    println!(
        "  {:<22} {:>14}",
        "requests failed",
        failed.load(Ordering::Relaxed)
    );
    println!(
        "  {:<22} {:>14}",
        "throughput",
        format!("{} events/s", fmt_rate(acc as f64 / secs))
    );
    println!(
        "  {:<22} {:>14}",
        "ack latency p50",
        format!("{:.1} ms", latency.quantile(0.5).unwrap_or(0.0))
    );
    println!(
        "  {:<22} {:>14}",
        "ack latency p99",
        format!("{:.1} ms", latency.quantile(0.99).unwrap_or(0.0))
    );
    if failed.load(Ordering::Relaxed) > 0 {
        bail!("some requests failed");
    }
    Ok(())
}

/// The process's CPU time so far (user + system), from /proc/self/stat (Linux).
pub(super) fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    // Clock ticks are 100 a second on Linux unless the kernel was built otherwise.
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

/// Wall and CPU time of `f`.
pub(super) async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration, Duration) {
    let (w, c) = (Instant::now(), cpu());
    let out = f.await;
    (out, w.elapsed(), cpu() - c)
}

/// The process's peak resident memory (VmHWM), MiB.
pub(super) fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::RandomUuid;

    #[test]
    fn random_ids_are_version_4_uuids() {
        for (a, b) in [(0, 0), (u64::MAX, u64::MAX), (0x0123_4567_89ab_cdef, 42)] {
            let id = RandomUuid(a, b).to_string();
            let parts: Vec<&str> = id.split('-').collect();
            let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
            assert!(parts[2].starts_with('4'), "version 4: {id}");
            assert!(
                matches!(&parts[3][..1], "8" | "9" | "a" | "b"),
                "RFC variant: {id}"
            );
        }
    }
}
