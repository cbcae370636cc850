//! `hub bench seed`: generated events written straight into a database (no HTTP), to build
//! large data sets.

use super::*;

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Events to write.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Spread timestamps uniformly over this span before now.
    #[arg(long, default_value = "24h")]
    span: String,
    /// Tenant to write into (created if missing).
    #[arg(long, default_value = "bench")]
    tenant: String,
    /// Events per transaction.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    #[command(flatten)]
    db: crate::config::ServeArgs,
}

pub async fn run(a: SeedArgs) -> Result<()> {
    let span =
        hub_core::time::parse_duration_ms(&a.span).map_err(|e| anyhow::anyhow!("--span: {e}"))?;
    let (storage, _) = crate::open_db(a.db).await?;
    let tenant = match storage.tenants().tenant_by_name(&a.tenant).await? {
        Some(t) => t,
        None => {
            storage
                .tenants()
                .create_tenant(&a.tenant, hub_core::time::now_ms())
                .await?
        }
    };
    let limits = hub_core::ingest::IngestLimits {
        max_age_ms: span + hub_core::time::HOUR_MS,
        ..Default::default()
    };
    let now = hub_core::time::now_ms();
    let pb = bar(
        Some(a.events),
        "{spinner} [{elapsed_precise}] {bar:30} {human_pos}/{human_len} events {msg}",
    );
    let started = Instant::now();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let templates = EventTemplates::new(&mut rng);
    let mut written = 0u64;
    let mut body = String::new();
    let (mut parse_time, mut write_time) = (Duration::ZERO, Duration::ZERO);
    while written < a.events {
        let n = (a.events - written).min(a.batch as u64) as usize;
        body.clear();
        body.push('[');
        for i in 0..n {
            if i > 0 {
                body.push(',');
            }
            let seq = written + i as u64;
            // Uniform over the span, in time order so that rollup rows are reused like live data.
            let ts = now - span + (seq as i128 * span as i128 / a.events as i128) as i64;
            templates.push(&mut body, &mut rng, format_args!("s-{seq}"), ts);
        }
        body.push(']');
        let t0 = Instant::now();
        let parsed = hub_core::ingest::parse_body(
            body.as_bytes(),
            hub_core::ingest::BodyFormat::Json,
            &hub_core::ingest::IngestLimits {
                max_events: usize::MAX,
                ..limits.clone()
            },
            now,
        )?;
        if !parsed.rejected.is_empty() {
            bail!(
                "generated events were rejected: {:?}",
                &parsed.rejected[..1]
            );
        }
        let t1 = Instant::now();
        parse_time += t1 - t0;
        storage
            .write_batches(
                &[hub_storage::TenantBatch {
                    tenant: tenant.id,
                    events: parsed.events,
                }],
                now,
            )
            .await?;
        write_time += t1.elapsed();
        written += n as u64;
        pb.set_position(written);
        pb.set_message(format!(
            "{} events/s",
            fmt_rate(written as f64 / started.elapsed().as_secs_f64())
        ));
    }
    pb.finish_and_clear();
    storage.close().await;
    println!(
        "seeded {written} events into tenant '{}' over the last {} in {:.1} s ({} events/s, parse + write, one writer)",
        a.tenant,
        a.span,
        started.elapsed().as_secs_f64(),
        fmt_rate(written as f64 / started.elapsed().as_secs_f64())
    );
    println!(
        "  parse {:.2} µs/event ({} events/s on one core), write {:.2} µs/event ({} events/s on one writer)",
        parse_time.as_secs_f64() * 1e6 / written as f64,
        fmt_rate(written as f64 / parse_time.as_secs_f64()),
        write_time.as_secs_f64() * 1e6 / written as f64,
        fmt_rate(written as f64 / write_time.as_secs_f64()),
    );
    Ok(())
}
