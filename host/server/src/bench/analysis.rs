//! `hub bench analysis`: what one scheduled run of a detector and of a forecaster costs at the
//! sizes a large tenant asks for (by default 10,000 series × 1,440 minutes for the detector,
//! 1,000 series × 90 days of hours for the forecaster), as the scheduler runs it: a database
//! seeded with one event per series and step (so every point comes from a rollup row), the
//! built components installed in a plugin host, and each part timed apart: building the series
//! from the rollups, the plugin's calls (split at `POINTS_PER_CALL`), the whole first run with
//! storing what it found, and the next run, whose series come from the grid the first one kept. CPU time is the process's (user + system), so "a share of one
//! core-minute" is CPU seconds over 60.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use hub_core::TenantId;
use hub_core::time::{HOUR_MS, MINUTE_MS, floor_to};
use hub_pipeline::analysis::{self, chunks};
use hub_pipeline::grid::SeriesCache;
use hub_plugins::{Analyser, GrantsDoc, PluginHost, PluginHostConfig, PluginKind};
use hub_storage::{Storage, TenantBatch};

use super::{Rng, peak_rss_mib, timed};

#[derive(Debug, Args)]
pub struct AnalysisBenchArgs {
    #[arg(long, default_value = "robust-level")]
    detector: String,
    /// Series the detector is given (one per model).
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Minutes in each of the detector's series.
    #[arg(long, default_value_t = 1_440)]
    minutes: usize,
    #[arg(long, default_value = "ets")]
    forecaster: String,
    /// Series the forecaster is given (one per model).
    #[arg(long, default_value_t = 1_000)]
    forecast_series: usize,
    /// Days of hourly points in each of the forecaster's series.
    #[arg(long, default_value_t = 90)]
    days: usize,
    /// Fail (exit 1) when a plugin's calls in one run take more CPU than this share of a
    /// core-minute.
    #[arg(long)]
    max_core_share: Option<f64>,
    /// The database to seed (default: SQLite in a temporary directory), and --plugins-dir: the
    /// built plugins as scripts/build-plugins lays them out (default dist/plugins).
    #[command(flatten)]
    db: crate::config::ServeArgs,
}

/// One event per model and step over `steps` steps ending at `end`: input tokens on a daily
/// curve with noise, each model at its own level.
async fn seed(
    storage: &Arc<dyn Storage>,
    tenant: TenantId,
    prefix: &str,
    models: usize,
    steps: usize,
    step_ms: i64,
    end: i64,
) -> Result<(usize, Duration)> {
    let started = Instant::now();
    let now = hub_core::time::now_ms();
    let limits = hub_core::ingest::IngestLimits {
        max_age_ms: end - now + (steps as i64 + 2) * step_ms + HOUR_MS,
        ..Default::default()
    };
    let total = (models * steps) as u64;
    let pb = super::bar(
        Some(total),
        "{spinner} [{elapsed_precise}] {bar:30} {human_pos}/{human_len} events seeded",
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ step_ms as u64);
    let levels: Vec<f64> = (0..models)
        .map(|_| 100.0 + (rng.next() % 10_000) as f64)
        .collect();
    let mut events = Vec::with_capacity(20_000);
    for s in 0..steps {
        let ts = end - (steps - s) as i64 * step_ms;
        let day = (ts % 86_400_000) as f64 / 86_400_000.0;
        let curve = 1.0 + 0.5 * (std::f64::consts::TAU * day).sin();
        for (m, level) in levels.iter().enumerate() {
            let noise = 0.9 + (rng.next() % 200) as f64 / 1000.0;
            let raw = format!(
                r#"{{"event_id": "{prefix}-{m}-{s}", "timestamp": {ts}, "model": "m{m:05}", "provider": "bench", "input_tokens": {}, "output_tokens": 10, "latency_ms": 300}}"#,
                (level * curve * noise).round()
            );
            events.push(
                hub_core::ingest::parse_event(&raw, &limits, now)
                    .map_err(|e| anyhow::anyhow!("a seeded event was refused: {e:?}"))?,
            );
            if events.len() == 20_000 {
                let batch = std::mem::take(&mut events);
                pb.inc(batch.len() as u64);
                storage
                    .write_batches(
                        &[TenantBatch {
                            tenant,
                            events: batch,
                        }],
                        now,
                    )
                    .await?;
            }
        }
    }
    if !events.is_empty() {
        pb.inc(events.len() as u64);
        storage
            .write_batches(&[TenantBatch { tenant, events }], now)
            .await?;
    }
    pb.finish_and_clear();
    Ok((total as usize, started.elapsed()))
}

/// Installs `name` from the built plugins with these series settings and returns it as the
/// scheduler sees it.
async fn install(
    host: &Arc<PluginHost>,
    dir: &std::path::Path,
    tenant: TenantId,
    name: &str,
    series: serde_json::Value,
) -> Result<Analyser> {
    let (m, w) = super::built_plugin(dir, name)?;
    host.install(
        tenant,
        &m,
        w,
        Some(serde_json::json!({ "series": series })),
        GrantsDoc::default(),
        true,
    )
    .await?;
    host.analysers(tenant)
        .await?
        .into_iter()
        .find(|a| a.name == name)
        .with_context(|| format!("{name} is not a detector or forecaster"))
}

/// Times one plugin at one size and prints a block of figures; returns the calls' CPU share of
/// a core-minute.
async fn measure(
    host: &Arc<PluginHost>,
    storage: &Arc<dyn Storage>,
    tenant: TenantId,
    a: &Analyser,
    period: i64,
    seeded: (usize, Duration),
) -> Result<f64> {
    let build = || hub_pipeline::series::build(storage.as_ref(), tenant, &a.series, period);
    // The first build and call warm the caches and compile the component; the second counts.
    build().await?;
    let (built, build_wall, build_cpu) = timed(build()).await;
    let built = built?;
    let points: usize = built.series.iter().map(|s| s.values.len()).sum();
    let call = || async {
        let mut found = 0;
        for (_, part) in chunks(&built.series) {
            found += match a.kind {
                PluginKind::Forecaster => host
                    .forecast(tenant, a, part, a.series.horizon)
                    .await
                    .map(|f| f.len())?,
                _ => host.detect(tenant, a, part).await.map(|f| f.len())?,
            };
        }
        Ok::<_, hub_plugins::CallError>(found)
    };
    call().await?;
    let (found, call_wall, call_cpu) = timed(call()).await;
    let found = found?;
    // As the scheduler runs it: the first run of an install reads its whole grid, the next one
    // (a step later) moves the kept grid forward and reads the new step and a few before.
    let cache = SeriesCache::default();
    let (outcome, run_wall, run_cpu) =
        timed(analysis::run(host, storage, tenant, a, period, &cache)).await;
    if outcome.outcome != "ok" {
        bail!(
            "the scheduled run of {} failed: {:?}",
            a.name,
            outcome.message
        );
    }
    let next = period + a.series.step_ms;
    let (outcome, next_wall, next_cpu) =
        timed(analysis::run(host, storage, tenant, a, next, &cache)).await;
    if outcome.outcome != "ok" {
        bail!("the next run of {} failed: {:?}", a.name, outcome.message);
    }
    let (_, kept_wall, kept_cpu) = timed(async {
        let grid = cache
            .grid(
                storage.as_ref(),
                tenant,
                &a.name,
                &a.series,
                next + a.series.step_ms,
            )
            .await?;
        cache.keep(tenant, &a.name, grid);
        Ok::<_, hub_storage::StorageError>(())
    })
    .await;
    let share = call_cpu.as_secs_f64() / 60.0;
    println!(
        "{} ({}): {} series × {} points ({} points, {} calls), {} found",
        a.name,
        a.kind,
        built.series.len(),
        points / built.series.len().max(1),
        points,
        chunks(&built.series).len(),
        found
    );
    println!(
        "  seeded {} events in {:.1} s",
        seeded.0,
        seeded.1.as_secs_f64()
    );
    let row = |what: &str, wall: Duration, cpu: Duration| {
        println!(
            "  {what:<28} {:>8.2} s wall {:>8.2} s CPU {:>6.1}% of a core-minute {:>8.3} µs CPU a point",
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            cpu.as_secs_f64() / 60.0 * 100.0,
            cpu.as_secs_f64() * 1e6 / points.max(1) as f64
        )
    };
    row("series from the rollups", build_wall, build_cpu);
    row("the plugin's calls", call_wall, call_cpu);
    row("the whole scheduled run", run_wall, run_cpu);
    row("the next run, grid kept", next_wall, next_cpu);
    row("  of which its series", kept_wall, kept_cpu);
    Ok(share)
}

pub async fn run(a: AnalysisBenchArgs) -> Result<()> {
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
    let runtime = hub_runtime::Runtime::new(hub_runtime::RuntimeConfig {
        cache_dir: Some(tmp.path().join("cache")),
        ..Default::default()
    })?;
    let host = Arc::new(PluginHost::new(
        runtime,
        storage.clone(),
        PluginHostConfig {
            max_series: hub_plugins::MAX_SERIES_LIMIT,
            ..Default::default()
        },
    ));
    let name = format!("bench-analysis-{}", hub_core::time::now_ms());
    let tenant = storage
        .tenants()
        .create_tenant(&name, hub_core::time::now_ms())
        .await?
        .id;
    let now = hub_core::time::now_ms();
    println!(
        "machine: {} CPUs; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if tmp.path().join("data").exists() {
            "SQLite in a temporary directory"
        } else {
            "the given database"
        }
    );
    let mut worst: f64 = 0.0;

    let minute = floor_to(now, MINUTE_MS);
    let seeded = seed(
        &storage, tenant, "d", a.series, a.minutes, MINUTE_MS, minute,
    )
    .await?;
    let detector = install(
        &host,
        &plugins_dir,
        tenant,
        &a.detector,
        serde_json::json!({"metrics": ["input_tokens"], "group_by": ["model"], "step": "1m",
            "history": format!("{}m", a.minutes), "max_series": a.series, "every": "1m"}),
    )
    .await?;
    worst = worst.max(measure(&host, &storage, tenant, &detector, minute, seeded).await?);

    let hour = floor_to(now, HOUR_MS);
    let hours = a.days * 24;
    let other = storage
        .tenants()
        .create_tenant(&format!("{name}-f"), now)
        .await?
        .id;
    let seeded = seed(
        &storage,
        other,
        "f",
        a.forecast_series,
        hours,
        HOUR_MS,
        hour,
    )
    .await?;
    let forecaster = install(
        &host,
        &plugins_dir,
        other,
        &a.forecaster,
        serde_json::json!({"metrics": ["input_tokens"], "group_by": ["model"], "step": "1h",
            "history": format!("{}d", a.days), "max_series": a.forecast_series, "every": "1h"}),
    )
    .await?;
    worst = worst.max(measure(&host, &storage, other, &forecaster, hour, seeded).await?);
    println!("peak resident memory: {:.0} MiB", peak_rss_mib());
    if let Some(max) = a.max_core_share
        && worst > max
    {
        bail!(
            "a plugin's calls took {:.1}% of a core-minute, more than --max-core-share {:.1}%",
            worst * 100.0,
            max * 100.0
        );
    }
    Ok(())
}
