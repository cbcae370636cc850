//! `hub bench plugins`: what a plugin costs per event against the same logic compiled natively,
//! at batch sizes 1, 100 and 1,000, how long a cold start takes to load cached components, and
//! what packages cost: size, verification, publishing and installing through a marketplace.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use hub_core::EventRecord;
use hub_plugin_sdk::Enricher;
use hub_runtime::{Grants, Runtime, RuntimeConfig};

#[derive(Debug, Args)]
pub struct PluginBenchArgs {
    /// Built plugins, as laid out by scripts/build-plugins.
    #[arg(long, default_value = "dist/plugins")]
    plugins_dir: PathBuf,
    /// Time spent measuring each case.
    #[arg(long, default_value = "1s")]
    per_case: String,
}

fn events(n: usize) -> Result<Vec<EventRecord>> {
    let mut rng = super::Rng(0x5eed);
    let templates = super::EventTemplates::new(&mut rng);
    let now = hub_core::time::now_ms();
    let mut body = String::from("[");
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        templates.push(&mut body, &mut rng, format_args!("bench-{i}"), now);
    }
    body.push(']');
    let parsed = hub_core::ingest::parse_body(
        body.as_bytes(),
        hub_core::ingest::BodyFormat::Json,
        &Default::default(),
        now,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(parsed.events)
}

/// The guest-side batch type from the host-side one (identical fields).
fn guest_batch(b: &hub_runtime::EventBatch) -> hub_plugin_sdk::Batch {
    use hub_plugin_sdk::bindings::enricher::hub::plugin0_2_0::types::EventBatch as G;
    hub_plugin_sdk::Batch::new(G {
        len: b.len,
        strings: b.strings.clone(),
        ids: b.ids.clone(),
        ts_ms: b.ts_ms.clone(),
        kinds: b.kinds.clone(),
        source_modules: b.source_modules.clone(),
        environments: b.environments.clone(),
        apps: b.apps.clone(),
        models: b.models.clone(),
        providers: b.providers.clone(),
        operations: b.operations.clone(),
        input_tokens: b.input_tokens.clone(),
        output_tokens: b.output_tokens.clone(),
        cache_read_tokens: b.cache_read_tokens.clone(),
        cache_write_tokens: b.cache_write_tokens.clone(),
        reasoning_tokens: b.reasoning_tokens.clone(),
        audio_input_tokens: b.audio_input_tokens.clone(),
        audio_output_tokens: b.audio_output_tokens.clone(),
        latency_ms: b.latency_ms.clone(),
        cost_usd: b.cost_usd.clone(),
        reported_cost_usd: b.reported_cost_usd.clone(),
        service_tiers: b.service_tiers.clone(),
        statuses: b.statuses.clone(),
        tags: b.tags.clone(),
    })
}

/// Runs `f` repeatedly for about `budget` (at least 20 times) and returns the mean time of one run.
fn time(budget: Duration, mut f: impl FnMut()) -> Duration {
    for _ in 0..5 {
        f();
    }
    let started = Instant::now();
    let mut runs = 0u32;
    while runs < 20 || started.elapsed() < budget {
        f();
        runs += 1;
    }
    started.elapsed() / runs
}

fn ns_per_event(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

pub async fn run(a: PluginBenchArgs) -> Result<()> {
    let budget = Duration::from_millis(
        hub_core::time::parse_duration_ms(&a.per_case).map_err(anyhow::Error::msg)? as u64,
    );
    let dir = a.plugins_dir.clone();
    tokio::task::spawn_blocking(move || bench(&dir, budget)).await??;
    packages(&a.plugins_dir).await
}

fn bench(dir: &std::path::Path, budget: Duration) -> Result<()> {
    let host_version = hub_plugins::host_version();
    let runtime = Runtime::new(RuntimeConfig::default())?;
    println!(
        "plugin overhead per event: the wasm call (lowering the batch, running, lifting the patches) against the same Rust compiled natively"
    );
    println!(
        "{:<10} {:>6} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "plugin", "batch", "native", "wasm call", "overhead", "batch build", "apply"
    );
    let all = events(1000)?;
    for name in ["cost", "registry"] {
        let (m, w) = super::built_plugin(dir, name)?;
        let manifest = hub_marketplace::Manifest::parse(&m, &host_version)?;
        let plugin = runtime.load(manifest, &w)?;
        let grants = Grants {
            kv: name == "registry",
            http: vec![],
        };
        let mut instance = runtime.instantiate(&plugin, "bench", &grants, BTreeMap::new())?;
        instance.configure("{}")?;
        let mut native_cost =
            cost::Cost::new(cost::Config::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut native_registry = registry::Registry::with_synced(
            hub_plugin_sdk::parse_config("{}").map_err(|e| anyhow::anyhow!("{e}"))?,
            &[],
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        for n in [1usize, 100, 1000] {
            let evs = &all[..n];
            let batch = hub_runtime::batch_from_events(evs, Default::default());
            let guest = guest_batch(&batch);
            let native = time(budget, || {
                let mut out = hub_plugin_sdk::Patches::with_capacity(n);
                match name {
                    "cost" => native_cost.enrich(&guest, &mut out).unwrap(),
                    _ => native_registry.enrich(&guest, &mut out).unwrap(),
                }
                std::hint::black_box(out);
            });
            let mut patches = hub_runtime::Enrichment {
                strings: vec![],
                patches: vec![],
                groups: vec![],
            };
            let wasm = time(budget, || {
                patches = instance.enrich(&batch).unwrap();
            });
            let build = time(budget, || {
                std::hint::black_box(hub_runtime::batch_from_events(evs, Default::default()));
            });
            let apply = time(budget, || {
                let mut evs = evs.to_vec();
                let mut b = batch.clone();
                hub_runtime::apply_patches(&mut evs, &mut b, &patches, "bench").unwrap();
                std::hint::black_box(evs);
            });
            // `apply` includes cloning the events and batch it patches; measure that and subtract.
            let clone = time(budget, || {
                std::hint::black_box((evs.to_vec(), batch.clone()));
            });
            println!(
                "{:<10} {:>6} {:>9.0} ns {:>9.0} ns {:>9.0} ns {:>9.0} ns {:>9.0} ns",
                name,
                n,
                ns_per_event(native, n),
                ns_per_event(wasm, n),
                ns_per_event(wasm.saturating_sub(native), n),
                ns_per_event(build, n),
                ns_per_event(apply.saturating_sub(clone), n),
            );
        }
    }

    // Cold start: ten distinct components (cost with ten different custom sections), compiled
    // once into a cache, then loaded by a fresh runtime as a restarted hub would.
    let cache = tempfile::tempdir()?;
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let (m, w) = super::built_plugin(dir, "cost")?;
    let variants: Vec<Vec<u8>> = (0..10u8)
        .map(|i| {
            let mut v = w.clone();
            // A custom section (id 0): size, name length, name, one byte of payload.
            let name = format!("hub-bench-{i}");
            v.push(0);
            v.push((1 + name.len() + 1) as u8);
            v.push(name.len() as u8);
            v.extend_from_slice(name.as_bytes());
            v.push(i);
            v
        })
        .collect();
    let started = Instant::now();
    let rt = Runtime::new(config.clone())?;
    for v in &variants {
        let p = rt.load(hub_marketplace::Manifest::parse(&m, &host_version)?, v)?;
        anyhow::ensure!(!p.from_cache(), "expected a compile");
    }
    let compile = started.elapsed();
    drop(rt);
    let manifests: Vec<_> = (0..10)
        .map(|_| hub_marketplace::Manifest::parse(&m, &host_version))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let rt = Runtime::new(config)?;
    let engine = started.elapsed();
    let mut plugins = Vec::new();
    for (v, manifest) in variants.iter().zip(manifests) {
        let p = rt.load(manifest, v)?;
        anyhow::ensure!(p.from_cache(), "expected the cache to answer");
        plugins.push(p);
    }
    let cold = started.elapsed();
    let started = Instant::now();
    for p in &plugins {
        let mut i = rt.instantiate(p, "bench", &Grants::default(), BTreeMap::new())?;
        i.configure("{}")?;
    }
    let inst = started.elapsed();
    println!(
        "cold start: 10 cached components ({} KB each) loaded in {:.1} ms (engine {:.1} ms); compiling them took {:.0} ms; instantiating + configuring all 10: {:.1} ms",
        w.len() / 1024,
        cold.as_secs_f64() * 1e3,
        engine.as_secs_f64() * 1e3,
        compile.as_secs_f64() * 1e3,
        inst.as_secs_f64() * 1e3
    );
    if let Ok((m, w)) = super::built_plugin(dir, "latency-slo") {
        let started = Instant::now();
        let p = Runtime::new(RuntimeConfig::default())?
            .load(hub_marketplace::Manifest::parse(&m, &host_version)?, &w)?;
        println!(
            "python component ({:.1} MB): compiled in {:.2} s",
            w.len() as f64 / 1048576.0,
            started.elapsed().as_secs_f64()
        );
        drop(p);
    }
    Ok(())
}

/// Packages: size against the component, reading and verifying, and a publication (with its
/// compile) and an install through a fresh marketplace on SQLite.
async fn packages(dir: &std::path::Path) -> Result<()> {
    let key = hub_marketplace::SecretKey::generate();
    for name in crate::plugins::first_party_names(dir) {
        let package = crate::plugins::pack_dir(dir, &name, &key)?;
        let bytes = package.to_bytes();
        let reps = 10;
        let started = Instant::now();
        for _ in 0..reps {
            let p = hub_marketplace::Package::from_bytes(&bytes, usize::MAX)?;
            p.verify(&key.public())?;
        }
        let verify = started.elapsed() / reps;
        println!(
            "package {name}: component {} KB, .hubpkg {} KB ({:.0}%); read + digest + verify {:.1} ms",
            package.component.len() / 1024,
            bytes.len() / 1024,
            bytes.len() as f64 * 100.0 / package.component.len() as f64,
            verify.as_secs_f64() * 1e3
        );
    }
    let tmp = tempfile::tempdir()?;
    let storage = hub_storage::open(
        &format!("sqlite://{}/hub.db", tmp.path().display()),
        &Default::default(),
    )
    .await?;
    storage.migrate().await?;
    let host = std::sync::Arc::new(hub_plugins::PluginHost::new(
        Runtime::new(RuntimeConfig {
            cache_dir: Some(tmp.path().join("cache")),
            ..Default::default()
        })?,
        storage.clone(),
        Default::default(),
    ));
    let host = hub_catalog::Catalog::new(host, storage.clone(), Default::default());
    let tenant = storage.tenants().create_tenant("bench", 0).await?.id;
    for name in ["cost", "registry"] {
        let started = Instant::now();
        let published = crate::plugins::publish_first_party(&host, dir, &[name.to_string()]).await;
        let publish = started.elapsed();
        anyhow::ensure!(published.len() == 1, "publishing {name} failed");
        let started = Instant::now();
        crate::plugins::install_first_party(&host, tenant, name).await?;
        println!(
            "marketplace {name}: published (checks, compile, configure, store) in {:.0} ms; installed from the catalog (fetch, verify, load from cache, configure, store) in {:.1} ms",
            publish.as_secs_f64() * 1e3,
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    storage.close().await;
    Ok(())
}
