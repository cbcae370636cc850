//! The plugin runtime: the only crate that knows wasmtime.
//!
//! - One [`Runtime`] per process: one `Engine` (epoch interruption, pooling allocator, no async
//!   component-model machinery), four linkers (with or without `kv`, with or without outgoing HTTP),
//!   a ticker thread that advances the epoch every millisecond.
//! - [`Runtime::load`] checks a component against its manifest (a component, not a core module;
//!   exports the declared world; imports nothing undeclared; limits within the operator's maxima)
//!   and compiles it once: the artifact is cached on disk keyed by the component's digest and a
//!   fingerprint of the engine, so a restart deserializes instead of compiling.
//! - [`Runtime::instantiate`] makes the [`Instance`] of one (tenant, plugin), reused across calls.
//!   Every call runs under a deadline and a memory cap; a trap, a deadline or the cap becomes a
//!   [`CallError`], and the instance is marked broken so that the caller drops it and
//!   instantiates again.
//!
//! Nothing of wasmtime leaks out: callers see plain data (the WIT records) and this crate's errors.

mod batch;
mod bindings;
mod cache;
mod compile;
mod cpu;
mod heap;
mod host;
mod memory;
mod output;
mod patch;
mod v2;
mod world;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hub_marketplace::{Manifest, PluginKind};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap};

pub use batch::{BatchColumns, batch_from_events};
pub use bindings::EventBatch;
pub use bindings::types::{
    Alert, Anomaly, Enrichment, Field, Forecast, Patch, PluginError, Series, Severity, SyncReport,
    Value,
};
pub use compile::{CompileWorker, worker_main};
pub use cpu::thread_cpu_time;
pub use heap::{return_free_heap, trim_glibc};
pub use host::{MAX_KV_KEY_BYTES, MAX_LOG_BYTES, MAX_LOGS_PER_CALL, is_private};
pub use memory::{
    MemoryLedger, MemoryLimit, default_memory_cap, default_tenant_memory_cap, physical_memory,
};
pub use patch::{Applied, InvalidOutput, MAX_PATCHES_PER_ROW, apply_patches};

use crate::bindings::{detector, enricher, enricher_v2, forecaster, integration};
use crate::host::{HostState, HttpPolicy, KvState, Owner};
use crate::world::{check_component_header, check_world};

/// The wasmtime version artifacts are compiled by; part of every cache key.
pub const WASMTIME_VERSION: &str = "48";

/// Operator settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles on every start.
    pub cache_dir: Option<PathBuf>,
    /// Default deadline of `enrich` and `detect`.
    pub fast_deadline: Duration,
    /// Default deadline of `configure`, `refresh`, `forecast`, `sync` and `on-alerts`.
    pub slow_deadline: Duration,
    /// The most a manifest may ask for.
    pub max_deadline: Duration,
    pub default_memory_bytes: usize,
    /// The most a manifest may ask for.
    pub max_memory_bytes: usize,
    /// Bytes of keys and values one (tenant, plugin) may keep in `kv`.
    pub kv_quota_bytes: usize,
    /// Whether plugins may reach loopback and private addresses over HTTP (off in production).
    pub allow_private_http: bool,
    /// Cap on connect, first-byte and between-bytes timeouts of plugin HTTP requests.
    pub http_timeout: Duration,
    /// Live instances at most (the pooling allocator's size).
    pub max_instances: u32,
    /// Linear memory all live instances may hold together.
    pub memory_cap: usize,
    /// Linear memory the live instances of one tenant may hold together.
    pub tenant_memory_cap: usize,
    /// Largest component accepted.
    pub max_component_bytes: usize,
    /// A process to compile components in (`None`: on threads of this one).
    pub compile_worker: Option<CompileWorker>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            fast_deadline: Duration::from_millis(50),
            slow_deadline: Duration::from_secs(5),
            max_deadline: Duration::from_secs(2),
            default_memory_bytes: 64 << 20,
            max_memory_bytes: 256 << 20,
            kv_quota_bytes: 1 << 20,
            allow_private_http: false,
            http_timeout: Duration::from_secs(5),
            max_instances: 256,
            max_component_bytes: 64 << 20,
            memory_cap: default_memory_cap(),
            tenant_memory_cap: default_tenant_memory_cap(default_memory_cap()),
            compile_worker: None,
        }
    }
}

/// Why a component cannot be loaded or instantiated. Messages name the mismatch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("the component is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component does not implement hub:plugin/{kind}@{version}: {detail}")]
    WrongWorld {
        kind: PluginKind,
        version: String,
        detail: String,
    },
    #[error("the component imports `{import}`, which plugin.toml does not declare{hint}")]
    UndeclaredImport { import: String, hint: String },
    #[error("{field} asks for {asked}; this hub allows at most {max} (the operator's {setting})")]
    OverLimit {
        field: &'static str,
        asked: String,
        max: String,
        /// The operator's setting that holds the maximum.
        setting: &'static str,
    },
    #[error("the plugin needs the `{0}` capability, which the tenant has not granted")]
    NotGranted(String),
    #[error("instantiating the component failed: {0}")]
    Instantiate(String),
    #[error("the component cache failed: {0}")]
    Cache(String),
    #[error("compiling the component failed: {0}")]
    Compile(String),
}

/// Why a call did not produce an answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The plugin answered with an error.
    #[error("{}", plugin_error_text(.0))]
    Plugin(PluginError),
    #[error("the call exceeded its deadline of {0:?}")]
    Deadline(Duration),
    #[error("the plugin exceeded its memory cap of {0} MiB")]
    Memory(usize),
    /// Its tenant's plugins, or all plugins, hold all the memory they may.
    #[error("{0}")]
    MemoryShare(String),
    #[error("the plugin trapped: {0}")]
    Trap(String),
    /// The answer broke the contract (see [`InvalidOutput`]).
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    /// An earlier call trapped; drop this instance and instantiate again.
    #[error("the instance is unusable after an earlier failure ({0})")]
    Broken(String),
    #[error("the plugin is a {0}, which has no such function")]
    WrongKind(PluginKind),
    /// The hub could not make the call (its storage failed, say): not the plugin's doing, and
    /// never counted against it.
    #[error("the hub could not make the call: {0}")]
    Host(String),
}

impl CallError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Plugin(_) => "error",
            CallError::Deadline(_) => "deadline",
            CallError::Memory(_) | CallError::MemoryShare(_) => "memory",
            CallError::Trap(_) => "trap",
            CallError::InvalidOutput(_) => "invalid_output",
            CallError::Broken(_) => "broken",
            CallError::WrongKind(_) => "wrong_kind",
            CallError::Host(_) => "host",
        }
    }
}

fn plugin_error_text(e: &PluginError) -> String {
    match e {
        PluginError::BadConfig(m) => format!("bad configuration: {m}"),
        PluginError::Unavailable(m) => format!("unavailable: {m}"),
        PluginError::Internal(m) => format!("internal error: {m}"),
    }
}

/// What a tenant granted a plugin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    pub kv: bool,
    /// Hosts, as written in the manifest's `capabilities.http`.
    pub http: Vec<String>,
}

struct RuntimeInner {
    engine: Engine,
    config: RuntimeConfig,
    /// Indexed by `kv as usize | (http as usize) << 1`.
    linkers: [Linker<HostState>; 4],
    cache: Option<cache::ArtifactCache>,
    stop: Arc<AtomicBool>,
    memory: Arc<MemoryLedger>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The process's plugin runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish()
    }
}

/// The epoch advances every tick; deadlines are counted in ticks.
const TICK: Duration = Duration::from_millis(1);

impl Runtime {
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Runtime> {
        let c = compile::engine_config(config.max_memory_bytes, config.max_instances);
        let engine = Engine::new(&c).map_err(|e| anyhow::anyhow!("wasmtime engine: {e}"))?;

        let linkers = [
            make_linker(&engine, false, false)?,
            make_linker(&engine, true, false)?,
            make_linker(&engine, false, true)?,
            make_linker(&engine, true, true)?,
        ];
        let cache = match &config.cache_dir {
            Some(dir) => Some(cache::ArtifactCache::open(dir, &engine)?),
            None => None,
        };

        let stop = Arc::new(AtomicBool::new(false));
        {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("plugin-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })?;
        }
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                memory: Arc::new(MemoryLedger::new(
                    config.memory_cap,
                    config.tenant_memory_cap,
                )),
                config,
                linkers,
                cache,
                stop,
            }),
        })
    }

    /// The plugin memory of all live instances, by tenant.
    pub fn memory(&self) -> &MemoryLedger {
        &self.inner.memory
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Checks `wasm` against `manifest` and compiles it (or loads the cached artifact).
    /// Compilation of a large or hostile component can take seconds: call this off the request
    /// path (a blocking thread).
    pub fn load(&self, manifest: Manifest, wasm: &[u8]) -> Result<Plugin, LoadError> {
        let cfg = &self.inner.config;
        if wasm.len() > cfg.max_component_bytes {
            return Err(LoadError::TooLarge {
                size: wasm.len(),
                limit: cfg.max_component_bytes,
            });
        }
        check_component_header(wasm)?;
        let digest = hub_marketplace::digest(wasm);

        let deadline = match manifest.limits.deadline_ms {
            Some(ms) => {
                let d = Duration::from_millis(ms.into());
                if d > cfg.max_deadline {
                    return Err(LoadError::OverLimit {
                        field: "limits.deadline-ms",
                        asked: format!("{ms} ms"),
                        max: format!("{} ms", cfg.max_deadline.as_millis()),
                        setting: "--plugin-max-deadline",
                    });
                }
                Some(d)
            }
            None => None,
        };
        let memory_bytes = match manifest.limits.memory_mib {
            Some(mib) => {
                let b = (mib as usize) << 20;
                if b > cfg.max_memory_bytes {
                    return Err(LoadError::OverLimit {
                        field: "limits.memory-mib",
                        asked: format!("{mib} MiB"),
                        max: format!("{} MiB", cfg.max_memory_bytes >> 20),
                        setting: "--plugin-max-memory-mib",
                    });
                }
                b
            }
            None => cfg.default_memory_bytes,
        };

        let started = Instant::now();
        let engine = &self.inner.engine;
        let compile = || {
            let settings = (cfg.max_memory_bytes, cfg.max_instances);
            compile::artifact(engine, wasm, cfg.compile_worker.as_ref(), settings)
        };
        let (component, cached) = match &self.inner.cache {
            Some(cache) => cache.get_or_compile(engine, &digest, compile)?,
            None => (compile::load(engine, &compile()?)?, false),
        };
        tracing::debug!(plugin = %manifest.name, digest = %&digest[..12], cached, elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "component loaded");

        check_world(&self.inner.engine, &component, &manifest)?;
        let plugin = Plugin {
            inner: Arc::new(PluginInner {
                linker: (manifest.capabilities.kv as usize)
                    | ((!manifest.capabilities.http.is_empty() as usize) << 1),
                manifest,
                digest,
                component,
                deadline,
                memory_bytes,
                from_cache: cached,
                pre: OnceLock::new(),
            }),
        };
        // Type-check every import and export now, so a mismatch is an install error.
        plugin.pre(self)?;
        Ok(plugin)
    }

    /// Makes the instance of `plugin` for one tenant. `kv` is what the host persisted for this
    /// (tenant, plugin).
    pub fn instantiate(
        &self,
        plugin: &Plugin,
        tenant: &str,
        grants: &Grants,
        kv: BTreeMap<String, Vec<u8>>,
    ) -> Result<Instance, LoadError> {
        let m = &plugin.inner.manifest;
        if m.capabilities.kv && !grants.kv {
            return Err(LoadError::NotGranted("kv".into()));
        }
        let owner = Arc::new(Owner {
            tenant: tenant.to_string(),
            plugin: m.name.clone(),
        });
        let http = HttpPolicy {
            allowed: if m.capabilities.http.iter().any(|h| h == "*") {
                grants.http.clone()
            } else {
                m.capabilities
                    .http
                    .iter()
                    .filter(|h| grants.http.contains(h))
                    .cloned()
                    .collect()
            },
            allow_private: self.inner.config.allow_private_http,
            owner: Some(owner.clone()),
            timeout: self.inner.config.http_timeout,
        };
        let kv = KvState::new(grants.kv, self.inner.config.kv_quota_bytes, kv);
        let mut store = Store::new(
            &self.inner.engine,
            HostState::new(
                owner,
                http,
                kv,
                self.inner.memory.account(tenant, plugin.inner.memory_bytes),
            ),
        );
        store.limiter(|s| &mut s.memory);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(self.inner.config.slow_deadline));
        let exports = match plugin.pre(self)? {
            Pre::Enricher(p) => p.instantiate(&mut store).map(Exports::Enricher),
            Pre::EnricherV2(p) => p.instantiate(&mut store).map(Exports::EnricherV2),
            Pre::Detector(p) => p.instantiate(&mut store).map(Exports::Detector),
            Pre::Forecaster(p) => p.instantiate(&mut store).map(Exports::Forecaster),
            Pre::Integration(p) => p.instantiate(&mut store).map(Exports::Integration),
        }
        .map_err(|e| match memory::memory_refusal(store.data()) {
            Some(CallError::Memory(mib)) => LoadError::Instantiate(format!(
                "the component needs more than its memory cap of {mib} MiB at start (raise limits.memory-mib)"
            )),
            Some(other) => LoadError::Instantiate(other.to_string()),
            None => LoadError::Instantiate(error_text(&e)),
        })?;
        Ok(Instance {
            store,
            exports,
            plugin: plugin.clone(),
            fast: plugin
                .inner
                .deadline
                .unwrap_or(self.inner.config.fast_deadline),
            // The manifest's deadline is for the hot calls; configuration, refresh, sync and
            // forecasting keep at least the slow default (an HTTP sync takes time).
            slow: plugin
                .inner
                .deadline
                .map_or(self.inner.config.slow_deadline, |d| {
                    d.max(self.inner.config.slow_deadline)
                }),
            broken: None,
            kv_changes: Vec::new(),
        })
    }
}

fn make_linker(engine: &Engine, kv: bool, http: bool) -> anyhow::Result<Linker<HostState>> {
    let mut l = Linker::new(engine);
    let e = |e: wasmtime::Error| anyhow::anyhow!("linker: {e}");
    wasmtime_wasi::p2::add_to_linker_sync(&mut l).map_err(e)?;
    bindings::log::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s).map_err(e)?;
    bindings::types::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s).map_err(e)?;
    bindings::v2::types::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s)
        .map_err(e)?;
    if kv {
        bindings::kv::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s).map_err(e)?;
    }
    if http {
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut l).map_err(e)?;
    }
    Ok(l)
}

fn ticks(d: Duration) -> u64 {
    (d.as_micros() as u64).div_ceil(TICK.as_micros() as u64) + 1
}

/// The text of a wasmtime error without its backtrace.
pub(crate) fn error_text(e: &wasmtime::Error) -> String {
    if let Some(trap) = e.downcast_ref::<Trap>() {
        // Its text starts "wasm trap: " already.
        return trap.to_string();
    }
    let mut s = e.to_string();
    if let Some(source) = e.source() {
        s.push_str(": ");
        s.push_str(&source.to_string());
    }
    s.lines().next().unwrap_or_default().to_string()
}

enum Pre {
    Enricher(enricher::EnricherPre<HostState>),
    EnricherV2(enricher_v2::EnricherPre<HostState>),
    Detector(detector::DetectorPre<HostState>),
    Forecaster(forecaster::ForecasterPre<HostState>),
    Integration(integration::IntegrationPre<HostState>),
}

impl Clone for Pre {
    fn clone(&self) -> Self {
        match self {
            Pre::Enricher(p) => Pre::Enricher(p.clone()),
            Pre::EnricherV2(p) => Pre::EnricherV2(p.clone()),
            Pre::Detector(p) => Pre::Detector(p.clone()),
            Pre::Forecaster(p) => Pre::Forecaster(p.clone()),
            Pre::Integration(p) => Pre::Integration(p.clone()),
        }
    }
}

struct PluginInner {
    manifest: Manifest,
    digest: String,
    component: Component,
    deadline: Option<Duration>,
    memory_bytes: usize,
    from_cache: bool,
    linker: usize,
    pre: OnceLock<Pre>,
}

/// A loaded, checked component with its manifest. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.manifest.name)
            .field("version", &self.inner.manifest.version.to_string())
            .field("digest", &self.inner.digest)
            .finish()
    }
}

impl Plugin {
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// SHA-256 of the component, hex.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// Whether loading deserialized a cached artifact instead of compiling.
    pub fn from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// The memory cap every instance gets.
    pub fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes
    }

    fn pre(&self, rt: &Runtime) -> Result<Pre, LoadError> {
        if let Some(p) = self.inner.pre.get() {
            return Ok(p.clone());
        }
        let m = &self.inner.manifest;
        let linker = &rt.inner.linkers[self.inner.linker];
        let ip =
            linker
                .instantiate_pre(&self.inner.component)
                .map_err(|e| LoadError::WrongWorld {
                    kind: m.kind,
                    version: m.world_version.clone(),
                    detail: error_text(&e),
                })?;
        let wrong = |e: wasmtime::Error| LoadError::WrongWorld {
            kind: m.kind,
            version: m.world_version.clone(),
            detail: error_text(&e),
        };
        let pre = match m.kind {
            PluginKind::Enricher if m.world_version == "0.2.0" => {
                Pre::EnricherV2(enricher_v2::EnricherPre::new(ip).map_err(wrong)?)
            }
            PluginKind::Enricher => Pre::Enricher(enricher::EnricherPre::new(ip).map_err(wrong)?),
            PluginKind::Detector => Pre::Detector(detector::DetectorPre::new(ip).map_err(wrong)?),
            PluginKind::Forecaster => {
                Pre::Forecaster(forecaster::ForecasterPre::new(ip).map_err(wrong)?)
            }
            PluginKind::Integration => {
                Pre::Integration(integration::IntegrationPre::new(ip).map_err(wrong)?)
            }
        };
        let _ = self.inner.pre.set(pre.clone());
        Ok(pre)
    }
}

enum Exports {
    Enricher(enricher::Enricher),
    EnricherV2(enricher_v2::Enricher),
    Detector(detector::Detector),
    Forecaster(forecaster::Forecaster),
    Integration(integration::Integration),
}

/// The live instance of one plugin for one tenant. Not shareable between threads at once: the
/// host keeps it behind a lock and calls it from a blocking thread.
pub struct Instance {
    store: Store<HostState>,
    exports: Exports,
    plugin: Plugin,
    fast: Duration,
    slow: Duration,
    broken: Option<String>,
    kv_changes: Vec<(String, Option<Vec<u8>>)>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("plugin", &self.plugin)
            .field("tenant", &self.store.data().owner.tenant)
            .field("broken", &self.broken)
            .finish()
    }
}

type CallResult<R> = wasmtime::Result<Result<R, PluginError>>;

impl Instance {
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Bytes of linear memory this instance holds (counted against its tenant and the hub).
    pub fn memory_held(&self) -> usize {
        self.store.data().memory.held()
    }

    /// Whether an earlier call trapped; a broken instance refuses every call.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// `kv` writes of the successful calls since the last time this was asked, for the host to
    /// persist (`None` = deleted).
    pub fn take_kv_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        std::mem::take(&mut self.kv_changes)
    }

    /// Log messages dropped over the per-call limit, since the instance started.
    pub fn logs_dropped(&self) -> u64 {
        self.store.data().logs_dropped
    }

    fn call<R>(
        &mut self,
        deadline: Duration,
        f: impl FnOnce(&Exports, &mut Store<HostState>) -> Option<CallResult<R>>,
    ) -> Result<R, CallError> {
        if let Some(why) = &self.broken {
            return Err(CallError::Broken(why.clone()));
        }
        self.store.set_epoch_deadline(ticks(deadline));
        {
            let data = self.store.data_mut();
            data.logs_this_call = 0;
            data.memory.refused = None;
            // What it printed outside a call (at start) belongs to no call's error.
            output::log_output(data, None);
        }
        let Some(result) = f(&self.exports, &mut self.store) else {
            return Err(CallError::WrongKind(self.plugin.inner.manifest.kind));
        };
        let trapped = result.is_err();
        let output = output::log_output(self.store.data(), Some(trapped));
        match result {
            Ok(Ok(r)) => {
                let changes = self.store.data_mut().kv.commit();
                self.kv_changes.extend(changes);
                Ok(r)
            }
            Ok(Err(e)) => {
                self.store.data_mut().kv.discard();
                Err(CallError::Plugin(e))
            }
            Err(e) => {
                self.store.data_mut().kv.discard();
                let err = if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    CallError::Deadline(deadline)
                } else if let Some(refusal) = memory::memory_refusal(self.store.data()) {
                    refusal
                } else {
                    CallError::Trap(output::trap_text(error_text(&e), output.as_deref()))
                };
                self.broken = Some(err.to_string());
                Err(err)
            }
        }
    }

    /// Hands the tenant's configuration (JSON, already checked against the schema).
    pub fn configure(&mut self, config: &str) -> Result<(), CallError> {
        let d = self.slow;
        self.call(d, |x, s| {
            Some(match x {
                Exports::Enricher(b) => b.call_configure(s, config),
                Exports::EnricherV2(b) => b.call_configure(s, config),
                Exports::Detector(b) => b.call_configure(s, config),
                Exports::Forecaster(b) => b.call_configure(s, config),
                Exports::Integration(b) => b.call_configure(s, config),
            })
        })
    }

    /// Runs an enricher over a batch. The patches are not checked here: see [`apply_patches`].
    pub fn enrich(&mut self, batch: &EventBatch) -> Result<Enrichment, CallError> {
        let d = self.fast;
        self.call(d, |x, s| match x {
            Exports::Enricher(b) => Some(b.call_enrich(s, &v2::batch_v1(batch))),
            Exports::EnricherV2(b) => Some(b.call_enrich(s, batch)),
            _ => None,
        })
    }

    /// An enricher's `refresh` or an integration's `sync`.
    pub fn refresh(&mut self) -> Result<SyncReport, CallError> {
        let d = self.slow;
        self.call(d, |x, s| match x {
            Exports::Enricher(b) => Some(b.call_refresh(s)),
            Exports::EnricherV2(b) => Some(b.call_refresh(s)),
            Exports::Integration(b) => Some(b.call_sync(s)),
            _ => None,
        })
    }

    pub fn detect(&mut self, series: &[Series]) -> Result<Vec<Anomaly>, CallError> {
        let d = self.fast;
        let out = self.call(d, |x, s| match x {
            Exports::Detector(b) => Some(b.call_detect(s, series)),
            _ => None,
        })?;
        if let Some(a) = out.iter().find(|a| a.series as usize >= series.len()) {
            return Err(CallError::InvalidOutput(format!(
                "anomaly names series {} of {}",
                a.series,
                series.len()
            )));
        }
        Ok(out)
    }

    pub fn forecast(
        &mut self,
        series: &[Series],
        horizon: u32,
    ) -> Result<Vec<Forecast>, CallError> {
        let d = self.slow;
        let out = self.call(d, |x, s| match x {
            Exports::Forecaster(b) => Some(b.call_forecast(s, series, horizon)),
            _ => None,
        })?;
        for f in &out {
            if f.series as usize >= series.len() {
                return Err(CallError::InvalidOutput(format!(
                    "forecast names series {} of {}",
                    f.series,
                    series.len()
                )));
            }
            let n = f.ts_ms.len();
            if n > horizon as usize || f.mean.len() != n || f.lower.len() != n || f.upper.len() != n
            {
                return Err(CallError::InvalidOutput(format!(
                    "forecast for series {} has {} times, {} means, {} lower and {} upper bounds for a horizon of {horizon}",
                    f.series,
                    n,
                    f.mean.len(),
                    f.lower.len(),
                    f.upper.len()
                )));
            }
        }
        Ok(out)
    }

    pub fn on_alerts(&mut self, alerts: &[Alert]) -> Result<(), CallError> {
        let d = self.slow;
        self.call(d, |x, s| match x {
            Exports::Integration(b) => Some(b.call_on_alerts(s, alerts)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_modules_and_garbage() {
        assert!(matches!(
            check_component_header(b"hello world"),
            Err(LoadError::NotAComponent(m)) if m.contains("magic")
        ));
        let core = [0, b'a', b's', b'm', 1, 0, 0, 0];
        assert!(matches!(
            check_component_header(&core),
            Err(LoadError::NotAComponent(m)) if m.contains("core WebAssembly module")
        ));
        let component = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];
        assert!(check_component_header(&component).is_ok());
    }

    #[test]
    fn deadlines_round_up_to_ticks() {
        assert_eq!(ticks(Duration::from_millis(50)), 51);
        assert_eq!(ticks(Duration::from_micros(1500)), 3);
    }
}
