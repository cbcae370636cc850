//! The plugin runtime: the only crate that knows wasmtime.
//!
//! - One [`Runtime`] per process: one `Engine` (epoch interruption, pooling allocator, no async
//!   component-model machinery), four linkers (with or without `kv`, with or without outgoing HTTP),
//!   a ticker thread that advances the epoch every millisecond.
//! - [`Runtime::load`] (`plugin`) checks a component against its manifest (a component, not a core module;
//!   exports the declared world; imports nothing undeclared; limits within the operator's maxima)
//!   and compiles it once: the artifact is cached on disk keyed by the component's digest and a
//!   fingerprint of the engine, so a restart deserializes instead of compiling.
//! - [`Runtime::instantiate`] (`instance`) makes the [`Instance`] of one (tenant, plugin), reused across calls.
//!   Every call runs under a deadline and a memory cap; a trap, a deadline or the cap becomes a
//!   [`CallError`], and the instance is marked broken so that the caller drops it and
//!   instantiates again.
//!
//! - The host side of a plugin's imports is one module per capability under `host`.
//!
//! Nothing of wasmtime leaks out: callers see plain data (the WIT records) and this crate's errors
//! (`error`).

mod batch;
mod bindings;
mod cache;
mod compile;
mod cpu;
mod error;
mod findings;
mod heap;
mod host;
mod instance;
mod memory;
mod output;
mod patch;
mod plugin;
mod v2;
pub mod v3;
mod world;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

pub use batch::{BatchColumns, batch_from_events};
pub use bindings::EventBatch;
pub use bindings::types::{
    Anomaly, Enrichment, Field, Forecast, Patch, PluginError, Series, Severity, SyncReport, Value,
};
pub use compile::{CompileWorker, worker_main};
pub use cpu::thread_cpu_time;
pub(crate) use error::error_text;
pub use error::{CallError, LoadError};
pub use findings::{MAX_ANOMALIES_PER_CALL, MAX_REASON_BYTES, check_anomalies, check_forecasts};
pub use heap::{return_free_heap, trim_glibc};
pub use host::{MAX_KV_KEY_BYTES, MAX_LOG_BYTES, MAX_LOGS_PER_CALL, is_private};
pub use instance::Instance;
pub use memory::{
    MemoryLedger, MemoryLimit, default_memory_cap, default_tenant_memory_cap, physical_memory,
};
pub use patch::{Applied, InvalidOutput, MAX_PATCHES_PER_ROW, apply_patches};
pub use plugin::Plugin;
/// Alerts are handed to integrations as 0.3.0's (0.1.0 integrations get them converted).
pub use v3::{
    Alert, AlertSeverity, AlertState, DayCost, GroupSpend, Spend, SyncContext, SyncOutput,
    ViolationCount,
};

use crate::host::HostState;

/// The wasmtime version artifacts are compiled by; part of every cache key.
pub const WASMTIME_VERSION: &str = "48";

/// Operator settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles on every start.
    pub cache_dir: Option<PathBuf>,
    /// Default deadline of `enrich`.
    pub fast_deadline: Duration,
    /// Default deadline of `configure`, `refresh`, `detect`, `forecast`, `sync` and `on-alerts`.
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
}

fn make_linker(engine: &Engine, kv: bool, http: bool) -> anyhow::Result<Linker<HostState>> {
    let mut l = Linker::new(engine);
    let e = |e: wasmtime::Error| anyhow::anyhow!("linker: {e}");
    wasmtime_wasi::p2::add_to_linker_sync(&mut l).map_err(e)?;
    bindings::log::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s).map_err(e)?;
    bindings::types::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s).map_err(e)?;
    bindings::v2::types::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s)
        .map_err(e)?;
    bindings::v3::types::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s)
        .map_err(e)?;
    if kv {
        bindings::kv::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s).map_err(e)?;
    }
    if http {
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut l).map_err(e)?;
    }
    Ok(l)
}

pub(crate) fn ticks(d: Duration) -> u64 {
    (d.as_micros() as u64).div_ceil(TICK.as_micros() as u64) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::check_component_header;

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
