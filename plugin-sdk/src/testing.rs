//! A local host for plugin tests: builds your crate for `wasm32-wasip2`, loads the component with
//! the hub's own runtime (same limits, same checks, same patch validation) and runs it over
//! events written as JSON, so `cargo test` exercises the real `.wasm`.
//!
//! ```ignore
//! #[test]
//! fn prices_gpt_4o() {
//!     let mut host = hub_plugin_sdk::testing::TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
//!     host.configure(serde_json::json!({})).unwrap();
//!     let out = host.enrich_json(r#"[{"model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100}]"#).unwrap();
//!     assert!(out.events[0].cost_usd.is_some());
//! }
//! ```
//!
//! Events without a `timestamp` get the current time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::test_server::{HttpServer, Reply, Request};
use anyhow::{Context, bail};
pub use hub_core::EventRecord;
pub use hub_core::ingest::Rejection;
use hub_marketplace::Manifest;
pub use hub_runtime::{
    Alert, AlertSeverity, AlertState, Anomaly, Applied, CallError, DayCost, Enrichment, Field,
    Forecast, Grants, GroupSpend, Patch, RuntimeConfig, Series, Severity, Spend, SyncContext,
    SyncReport, Value, ViolationCount,
};
use hub_runtime::{Instance, Plugin, Runtime};

/// What one `enrich` call did.
#[derive(Debug)]
pub struct Enriched {
    /// The events after the patches were applied, as the hub would store them.
    pub events: Vec<EventRecord>,
    /// The plugin's answer as it came back.
    pub answer: Enrichment,
    pub applied: Applied,
}

/// The context of a tenant that spent nothing yet this month and broke no policy: `now`, the
/// hour before it as the period, zeros, seven empty days.
pub fn quiet_month(now_ms: i64) -> SyncContext {
    let day = 86_400_000;
    let today = now_ms - now_ms.rem_euclid(day);
    SyncContext {
        now_ms,
        period_start_ms: now_ms - 3_600_000,
        period_end_ms: now_ms,
        violations: Vec::new(),
        spend: Spend {
            month_start_ms: today,
            month_end_ms: today + day,
            actual_usd: 0.0,
            projected_usd: 0.0,
            lower_usd: 0.0,
            upper_usd: 0.0,
            method: "run-rate".into(),
            by_model: Vec::new(),
            days: (0..7)
                .map(|i| DayCost {
                    date: hub_core::time::to_rfc3339(today - (6 - i) * day)[..10].to_string(),
                    cost_usd: 0.0,
                    requests: 0,
                })
                .collect(),
        },
    }
}

/// What one `sync` brought in.
#[derive(Debug)]
pub struct Synced {
    pub report: SyncReport,
    /// The plugin says there is more to bring in now.
    pub more: bool,
    /// The valid events, as the hub would store them (before enrichment).
    pub events: Vec<EventRecord>,
    /// The invalid ones, by position in the answer, with ingest's reasons.
    pub rejected: Vec<Rejection>,
}

/// A plugin loaded in a local host, for one tenant (`test`).
pub struct TestHost {
    runtime: Runtime,
    plugin: Plugin,
    instance: Instance,
    grants: Grants,
    kv: BTreeMap<String, Vec<u8>>,
    config: serde_json::Value,
}

impl std::fmt::Debug for TestHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHost")
            .field("plugin", &self.plugin)
            .finish()
    }
}

/// Builds the plugin crate in `crate_dir` for `wasm32-wasip2` (release, no debug info) and
/// returns the component's path. The build uses its own target directory
/// (`<workspace target>/hub-plugin-wasm`, or `$HUB_PLUGIN_TARGET_DIR`) so that it never waits on
/// the `cargo test` that called it.
pub fn build_component(crate_dir: impl AsRef<Path>) -> anyhow::Result<PathBuf> {
    let crate_dir = crate_dir.as_ref();
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml"))
        .with_context(|| format!("reading {}/Cargo.toml", crate_dir.display()))?;
    let name = manifest
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("name")
                .and_then(|r| r.trim().strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_string())
        })
        .context("Cargo.toml has no package name")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = match std::env::var_os("HUB_PLUGIN_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let out = Command::new(&cargo)
                .args(["locate-project", "--workspace", "--message-format", "plain"])
                .current_dir(crate_dir)
                .output()
                .context("running cargo locate-project")?;
            let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            root.parent()
                .context("no workspace root")?
                .join("target/hub-plugin-wasm")
        }
    };
    let status = Command::new(&cargo)
        .args([
            "rustc",
            "--lib",
            "--crate-type",
            "cdylib",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--config",
            "profile.release.debug=false",
            "--config",
            "profile.release.strip=\"debuginfo\"",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(crate_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .context("running cargo build --target wasm32-wasip2")?;
    if !status.success() {
        bail!(
            "building {name} for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
        );
    }
    let path = target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !path.exists() {
        bail!("{} was not produced", path.display());
    }
    Ok(path)
}

/// Builds the plugin crate in `crate_dir` and returns its `plugin.toml` text and component bytes,
/// as `hub plugin install` takes them.
pub fn built_plugin(crate_dir: impl AsRef<Path>) -> anyhow::Result<(String, Vec<u8>)> {
    let crate_dir = crate_dir.as_ref();
    let wasm = build_component(crate_dir)?;
    let manifest = crate_dir.join("plugin.toml");
    Ok((
        std::fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?,
        std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?,
    ))
}

impl TestHost {
    /// Builds the crate in `crate_dir` and loads it with its `plugin.toml`, every capability the
    /// manifest asks for granted, and private HTTP addresses allowed (tests talk to 127.0.0.1).
    pub fn build(crate_dir: impl AsRef<Path>) -> anyhow::Result<Self> {
        let crate_dir = crate_dir.as_ref();
        let wasm = build_component(crate_dir)?;
        Self::load(&wasm, &crate_dir.join("plugin.toml"))
    }

    /// Loads a built component and its manifest.
    pub fn load(wasm: &Path, manifest: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
        let source = std::fs::read_to_string(manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let config = RuntimeConfig {
            allow_private_http: true,
            ..RuntimeConfig::default()
        };
        Self::from_parts(&bytes, &source, config, None)
    }

    /// Full control: component bytes, manifest text, runtime settings and grants (`None` = all
    /// the manifest asks for).
    pub fn from_parts(
        wasm: &[u8],
        manifest: &str,
        config: RuntimeConfig,
        grants: Option<Grants>,
    ) -> anyhow::Result<Self> {
        let host_version = semver_of(env!("CARGO_PKG_VERSION"));
        let manifest = Manifest::parse(manifest, &host_version)?;
        let grants = grants.unwrap_or_else(|| Grants {
            kv: manifest.capabilities.kv,
            http: manifest.capabilities.http.clone(),
        });
        let runtime = Runtime::new(config)?;
        let plugin = runtime.load(manifest, wasm)?;
        let instance = runtime.instantiate(&plugin, "test", &grants, BTreeMap::new())?;
        Ok(Self {
            runtime,
            plugin,
            instance,
            grants,
            kv: BTreeMap::new(),
            config: serde_json::json!({}),
        })
    }

    fn columns(&self) -> hub_runtime::BatchColumns {
        let c = &self.plugin.manifest().capabilities;
        hub_runtime::BatchColumns {
            ids: c.ids,
            tags: c.tags,
        }
    }

    pub fn manifest(&self) -> &Manifest {
        self.plugin.manifest()
    }

    /// What the plugin has persisted in `kv` so far.
    pub fn kv(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.kv
    }

    /// After a trap the hub drops the instance and makes a new one (configured again); so
    /// does this.
    fn ensure_live(&mut self) -> anyhow::Result<()> {
        if self.instance.is_broken() {
            self.instance =
                self.runtime
                    .instantiate(&self.plugin, "test", &self.grants, self.kv.clone())?;
            self.instance.configure(&self.config.to_string())?;
        }
        Ok(())
    }

    fn persist_kv(&mut self) {
        for (k, v) in self.instance.take_kv_changes() {
            match v {
                Some(v) => {
                    self.kv.insert(k, v);
                }
                None => {
                    self.kv.remove(&k);
                }
            }
        }
    }

    /// Checks `config` against the manifest's schema (like the hub's API does), then calls
    /// `configure`.
    pub fn configure(&mut self, config: serde_json::Value) -> anyhow::Result<()> {
        if let Err(errors) = self.plugin.manifest().validate_config(&config) {
            let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            bail!("configuration fails the schema: {}", list.join("; "));
        }
        self.ensure_live()?;
        self.instance.configure(&config.to_string())?;
        self.config = config;
        self.persist_kv();
        Ok(())
    }

    /// Parses `events` (a JSON array, `{"events": [...]}` or NDJSON, in either event shape the
    /// hub accepts), runs `enrich` and applies the answer exactly as the hub's pipeline does.
    pub fn enrich_json(&mut self, events: &str) -> anyhow::Result<Enriched> {
        let events = parse_events(events)?;
        self.enrich_events(events)
    }

    /// `enrich` over events already parsed.
    pub fn enrich_events(&mut self, mut events: Vec<EventRecord>) -> anyhow::Result<Enriched> {
        self.ensure_live()?;
        let mut batch = hub_runtime::batch_from_events(&events, self.columns());
        let answer = self.instance.enrich(&batch)?;
        self.persist_kv();
        let applied = hub_runtime::apply_patches(
            &mut events,
            &mut batch,
            &answer,
            &self.plugin.manifest().name,
        )
        .map_err(|e| CallError::InvalidOutput(e.to_string()))?;
        Ok(Enriched {
            events,
            answer,
            applied,
        })
    }

    /// Only the raw call, for tests about failures: the error as the hub sees it.
    pub fn call_enrich(&mut self, events: &str) -> Result<Enrichment, CallError> {
        let events = parse_events(events).map_err(|e| CallError::InvalidOutput(e.to_string()))?;
        let batch = hub_runtime::batch_from_events(&events, self.columns());
        let r = self.instance.enrich(&batch);
        self.persist_kv();
        r
    }

    pub fn refresh(&mut self) -> anyhow::Result<SyncReport> {
        self.ensure_live()?;
        let r = self.instance.refresh()?;
        self.persist_kv();
        Ok(r)
    }

    /// An integration's `sync`, its events validated as the hub validates them (REST ingest's
    /// checks and default limits) and tagged as the hub tags them.
    pub fn sync(&mut self) -> anyhow::Result<Synced> {
        self.sync_with(&quiet_month(hub_core::time::now_ms()))
    }

    /// [`TestHost::sync`] handed this context (the month's spend, the last days' cost).
    pub fn sync_with(&mut self, context: &SyncContext) -> anyhow::Result<Synced> {
        self.ensure_live()?;
        let out = self.instance.sync(context)?;
        self.persist_kv();
        let now = hub_core::time::now_ms();
        let parsed = hub_core::ingest::parse_documents(
            &out.events,
            &hub_core::ingest::IngestLimits::default(),
            now,
        );
        let mut events = parsed.events;
        for e in &mut events {
            hub_core::ingest::tag_integration(e, &self.plugin.manifest().name);
        }
        Ok(Synced {
            report: out.report,
            more: out.more,
            events,
            rejected: parsed.rejected,
        })
    }

    pub fn detect(&mut self, series: &[Series]) -> anyhow::Result<Vec<Anomaly>> {
        self.ensure_live()?;
        let r = self.instance.detect(series)?;
        self.persist_kv();
        Ok(r)
    }

    pub fn forecast(&mut self, series: &[Series], horizon: u32) -> anyhow::Result<Vec<Forecast>> {
        self.ensure_live()?;
        Ok(self.instance.forecast(series, horizon)?)
    }

    pub fn on_alerts(&mut self, alerts: &[Alert]) -> anyhow::Result<()> {
        self.ensure_live()?;
        self.instance.on_alerts(alerts)?;
        self.persist_kv();
        Ok(())
    }
}

fn semver_of(v: &str) -> hub_marketplace::manifest::Version {
    hub_marketplace::manifest::Version::parse(v).expect("the SDK's own version is semver")
}

/// Parses events the way `POST /v1/events` does; events without a timestamp get "now".
pub fn parse_events(body: &str) -> anyhow::Result<Vec<EventRecord>> {
    let now = hub_core::time::now_ms();
    let stamp = hub_core::time::to_rfc3339(now);
    let value: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => {
            // NDJSON
            let items: Result<Vec<serde_json::Value>, _> = body
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect();
            serde_json::Value::Array(items.context("events are neither JSON nor NDJSON")?)
        }
    };
    let mut items = match value {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(mut o) if o.contains_key("events") => match o.remove("events") {
            Some(serde_json::Value::Array(a)) => a,
            _ => bail!("`events` must be an array"),
        },
        other => vec![other],
    };
    for item in &mut items {
        if let Some(o) = item.as_object_mut()
            && !o.contains_key("timestamp")
        {
            o.insert("timestamp".into(), stamp.clone().into());
        }
    }
    let body = serde_json::to_vec(&items)?;
    let parsed = hub_core::ingest::parse_body(
        &body,
        hub_core::ingest::BodyFormat::Json,
        // Tests may use any date: no time window here.
        &hub_core::ingest::IngestLimits {
            max_events: usize::MAX,
            max_age_ms: i64::MAX / 4,
            max_future_ms: i64::MAX / 4,
            ..Default::default()
        },
        now,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(r) = parsed.rejected.first() {
        bail!("event {} is invalid: {:?}", r.index, r.errors);
    }
    Ok(parsed.events)
}
