//! `hub bench query`: a mix of summary, time-series and event queries against a running hub,
//! with the raw-events baseline the rollups are measured against.

use super::*;

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API key with the query scope.
    #[arg(long, env = "HUB_API_KEY")]
    key: String,
    /// Requests per query kind.
    #[arg(long, default_value_t = 100)]
    requests: usize,
    /// Also time the 24-hour summary computed from raw events (no rollups) on this tenant's
    /// database, as the baseline the rollups are measured against (needs --database-url or
    /// --data-dir of the hub being queried).
    #[arg(long)]
    raw_baseline_tenant: Option<String>,
    #[command(flatten)]
    db: crate::config::ServeArgs,
}

pub async fn run(a: QueryArgs) -> Result<()> {
    let client = reqwest::Client::new();
    let base = a.url.trim_end_matches('/');
    let queries = [
        (
            "summary 24h, no grouping",
            "/v1/metrics/summary?from=now-24h",
        ),
        (
            "summary 24h by model",
            "/v1/metrics/summary?from=now-24h&group_by=model",
        ),
        (
            "summary 24h by model,provider,app",
            "/v1/metrics/summary?from=now-24h&group_by=model,provider,app",
        ),
        (
            "timeseries 24h/1m requests",
            "/v1/metrics/timeseries?from=now-24h&step=1m&metric=requests",
        ),
        (
            "timeseries 24h/1m latency_p95",
            "/v1/metrics/timeseries?from=now-24h&step=1m&metric=latency_p95",
        ),
        (
            "timeseries 24h/5m cost by model",
            "/v1/metrics/timeseries?from=now-24h&step=5m&metric=cost_usd&group_by=model",
        ),
        (
            "timeseries 24h/1h p99 by model",
            "/v1/metrics/timeseries?from=now-24h&step=1h&metric=latency_p99&group_by=model",
        ),
        ("events, newest 100", "/v1/events?limit=100"),
    ];
    let mut queries: Vec<(&str, Vec<String>)> = queries
        .iter()
        .map(|(name, path)| (*name, vec![path.to_string()]))
        .collect();
    // Lookups by id, of events spread over the day (not only the newest).
    let mut by_id = Vec::new();
    for to in ["now-20h", "now-12h", "now-4h", "now"] {
        let page: serde_json::Value = client
            .get(format!("{base}/v1/events?limit=25&to={to}"))
            .bearer_auth(&a.key)
            .send()
            .await
            .context("listing events to look up")?
            .json()
            .await?;
        for e in page["events"].as_array().into_iter().flatten() {
            if let Some(id) = e["event_id"].as_str() {
                by_id.push(format!("/v1/events/{id}"));
            }
        }
    }
    if !by_id.is_empty() {
        queries.push(("event by id", by_id));
    }
    println!("query benchmark: {base}, {} requests per query", a.requests);
    println!(
        "  {:<36} {:>10} {:>10} {:>10}",
        "query", "p50 ms", "p99 ms", "max ms"
    );
    let mut worst_p99: f64 = 0.0;
    let mut summary_24h_p50 = 0.0;
    for (name, paths) in &queries {
        let path = &paths[0];
        let mut times = Vec::with_capacity(a.requests);
        for i in 0..a.requests {
            let t0 = Instant::now();
            let r = client
                .get(format!("{base}{}", paths[i % paths.len()]))
                .bearer_auth(&a.key)
                .send()
                .await
                .context("query request")?;
            let status = r.status();
            let body = r.bytes().await?;
            if !status.is_success() {
                bail!("{name}: HTTP {status}: {}", String::from_utf8_lossy(&body));
            }
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        worst_p99 = worst_p99.max(pct(0.99));
        if path.contains("summary?from=now-24h&group_by=model") && !path.contains(',') {
            summary_24h_p50 = pct(0.5);
        }
        println!(
            "  {:<36} {:>10.1} {:>10.1} {:>10.1}",
            name,
            pct(0.5),
            pct(0.99),
            times[times.len() - 1]
        );
    }
    println!("  worst p99: {worst_p99:.1} ms");
    if let Some(tenant) = a.raw_baseline_tenant {
        raw_baseline(a.db, &tenant, summary_24h_p50).await?;
    }
    Ok(())
}

/// The 24-hour summary grouped by model, aggregated from raw events instead of rollups.
async fn raw_baseline(
    db: crate::config::ServeArgs,
    tenant: &str,
    rollup_p50_ms: f64,
) -> Result<()> {
    let (storage, _) = crate::open_db(db).await?;
    let t = storage
        .tenants()
        .tenant_by_name(tenant)
        .await?
        .with_context(|| format!("no tenant '{tenant}'"))?;
    let now = hub_core::time::now_ms();
    let group_by = [hub_core::Dimension::Model];
    let scan = hub_storage::Scan {
        from_ms: now - hub_core::time::DAY_MS,
        to_ms: now,
        filters: &[],
        group_by: &group_by,
        by_bucket: false,
        bucket_step_ms: 0,
        with_sketch: true,
        tag: None,
    };
    let t0 = Instant::now();
    let rows = storage.scan_raw(t.id, &scan, 1).await?;
    let raw_ms = t0.elapsed().as_secs_f64() * 1e3;
    let events: i64 = rows.iter().map(|r| r.agg.events).sum();
    storage.close().await;
    println!(
        "  baseline: the same summary from {events} raw events took {raw_ms:.0} ms, {:.0}x the rollup p50",
        raw_ms / rollup_p50_ms.max(0.001)
    );
    Ok(())
}
