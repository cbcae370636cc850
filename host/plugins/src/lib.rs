//! The plugin host: which plugins each tenant runs, their live instances, and how every call to
//! one is made and accounted for. Three jobs, in rooms of their own:
//!
//! - **Instances** (`pool`): one per (tenant, plugin), created on first use with the plugin's
//!   `kv`, kept behind a lock and reused. At most `max_instances` live at once, and idle ones go
//!   when plugin memory passes three quarters of its cap or after the idle-release period.
//! - **Calls** (`call`): one path for every world (enrich, refresh, sync, detect, forecast and
//!   an integration's `on-alerts` and `sync`, in `integration`): on a blocking thread, in the slot's live instance, timed in wall and CPU
//!   time, then settled: counters and health, the tenant's CPU budget (`budget`), kv changes, and
//!   failures in a row (the install is disabled after `max_consecutive_failures`, with the reason
//!   recorded). The enricher world's passes (`enrich`) and the periodic refresh (`refresh`) are
//!   the callers today; a job apart from ingest (re-pricing) gets instances of its own
//!   (`sandbox`), charged to the same budgets.
//! - **Installs** (`installs`): installing, configuring, granting, ordering, enabling and removing,
//!   each checked before it is saved. Installs are read from storage per tenant and cached for a
//!   few seconds (other replicas' changes arrive within that time; this replica's changes
//!   invalidate at once).
//!
//! The marketplace service (publishing, catalogs, downloads) is `hub-catalog`, over this crate;
//! the pipeline's stages (`hub-pipeline`) call the enricher passes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub_core::TenantId;
use hub_marketplace::Manifest;
pub use hub_marketplace::PluginKind;
use hub_runtime::{Grants, LoadError, Plugin, Runtime};

mod analyse;
mod budget;
mod call;
mod enrich;
mod health;
mod installs;
mod integration;
mod pool;
mod refresh;
mod sandbox;
pub use analyse::{Analyser, SERIES_KEY, series_settings, split_config, watches_series};
use budget::CpuBudget;
pub use enrich::EnrichReport;
pub use health::{BudgetHealth, Health, PluginCounters, PluginStats};
/// What detectors and forecasters are given and answer (the WIT's records), and their settings.
pub use hub_marketplace::SeriesSettings;
pub use hub_marketplace::series::{
    DIMENSIONS as SERIES_DIMENSIONS, METRICS as SERIES_METRICS, step_name,
};
pub use hub_runtime::v3::{MAX_SYNC_CALLS, MAX_SYNC_EVENTS, SEVERITY_LABEL, STATE_LABEL, alert_v1};
pub use hub_runtime::{
    Alert, AlertSeverity, AlertState, Anomaly, CallError, DayCost, Forecast, GroupSpend,
    PluginError, Series, Severity as FindingSeverity, Spend, SyncContext, SyncOutput,
    ViolationCount,
};
use hub_storage::{Storage, StorageError};
pub use integration::Syncer;
use pool::Slot;
pub use refresh::spawn_refresh;
pub use sandbox::Sandbox;
use serde::{Deserialize, Serialize};

/// The host's version, checked against manifests' `min-host-version`.
pub fn host_version() -> hub_marketplace::manifest::Version {
    hub_marketplace::manifest::Version::parse(env!("CARGO_PKG_VERSION"))
        .expect("the crate version is semver")
}

#[derive(Debug, Clone)]
pub struct PluginHostConfig {
    /// Failures in a row after which an install is disabled.
    pub max_consecutive_failures: u32,
    /// How long a tenant's installs are cached before they are read again.
    pub installs_ttl: Duration,
    /// Live instances at most (keep below the runtime's pool size).
    pub max_instances: usize,
    /// Each tenant's plugin CPU time per second of wall time; zero turns budgets off.
    pub cpu_budget: Duration,
    /// Tenants with a budget of their own (the operator's overrides).
    pub tenant_cpu_budgets: HashMap<TenantId, Duration>,
    /// How long a tenant may be throttled without a break before its hungriest plugin is
    /// disabled; `None` throttles for ever.
    pub throttle_disable_after: Option<Duration>,
    /// Instances unused for this long are dropped, their memory given back; `None` keeps them.
    pub idle_release: Option<Duration>,
    /// Series a detector or forecaster may watch per install at most.
    pub max_series: u32,
}

impl Default for PluginHostConfig {
    fn default() -> Self {
        Self {
            max_consecutive_failures: 5,
            installs_ttl: Duration::from_secs(5),
            max_instances: 200,
            cpu_budget: default_cpu_budget(),
            tenant_cpu_budgets: HashMap::new(),
            throttle_disable_after: Some(Duration::from_secs(60)),
            idle_release: Some(Duration::from_secs(300)),
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

/// Series per detector or forecaster install unless the operator says otherwise.
pub const DEFAULT_MAX_SERIES: u32 = 1_000;
/// The most an operator may allow (what a manifest may ask for).
pub const MAX_SERIES_LIMIT: u32 = hub_marketplace::manifest::MAX_SERIES;

/// A sixteenth of the machine's cores per tenant (125 ms per second on two cores). Measured on two
/// cores: the first-party enrichers take ~95 ms per second at 108k events/s (0.9 µs an event),
/// and a neighbour that spins at this budget costs a healthy tenant ~7% of its throughput.
pub fn default_cpu_budget() -> Duration {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    Duration::from_micros(62_500) * cores
}

/// What a tenant granted, as stored in `plugin_installs.grants`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsDoc {
    #[serde(default)]
    pub kv: bool,
    #[serde(default)]
    pub http: Vec<String>,
}

impl GrantsDoc {
    /// The capabilities a manifest asks for, as a grant of all of them (hosts named in it).
    pub fn everything_asked(manifest: &Manifest) -> GrantsDoc {
        GrantsDoc {
            kv: manifest.capabilities.kv,
            http: manifest
                .capabilities
                .http
                .iter()
                .filter(|h| *h != "*")
                .cloned()
                .collect(),
        }
    }

    pub fn to_grants(&self) -> Grants {
        Grants {
            kv: self.kv,
            http: self.http.clone(),
        }
    }
}

/// Why a plugin or marketplace operation was refused; the API maps these to 400/404/409.
#[derive(Debug, thiserror::Error)]
pub enum PluginAdminError {
    #[error("{0}")]
    Manifest(#[from] hub_marketplace::ManifestError),
    #[error("{0}")]
    Load(#[from] LoadError),
    /// Configuration that fails the plugin's schema, with JSON paths.
    #[error("the configuration does not match the plugin's schema: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Config(Vec<hub_marketplace::manifest::ConfigError>),
    /// The plugin refused the configuration (its own checks).
    #[error("the plugin refused the configuration: {0}")]
    Refused(String),
    #[error("{0}")]
    Grants(String),
    #[error("plugin `{0}` is not installed for this tenant")]
    NotInstalled(String),
    /// A package that is malformed, too large, unsigned or altered.
    #[error("{0}")]
    Package(#[from] hub_marketplace::PackageError),
    /// An unknown, revoked or untrusted signing key.
    #[error("{0}")]
    Key(String),
    /// A package name or key that belongs to another publisher.
    #[error("{0}")]
    Forbidden(String),
    /// A version that already exists (versions never change).
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Yanked(String),
    /// A remote catalog that could not be reached or answered nonsense.
    #[error("{0}")]
    Remote(String),
    #[error("{0}")]
    Storage(#[from] StorageError),
}

struct TenantPlugins {
    loaded: Instant,
    /// Set when this replica changed the tenant's installs: read them again at next use.
    stale: std::sync::atomic::AtomicBool,
    /// Enabled enrichers in running order.
    enrichers: Vec<Arc<Slot>>,
    /// Every enabled install (for refresh and health).
    all: Vec<Arc<Slot>>,
}

/// The process's plugin host. Cheap to share (`Arc`).
pub struct PluginHost {
    runtime: Runtime,
    storage: Arc<dyn Storage>,
    config: PluginHostConfig,
    components: Mutex<HashMap<String, Plugin>>,
    tenants: Mutex<HashMap<TenantId, Arc<TenantPlugins>>>,
    /// Health survives reloads of a tenant's installs.
    health: Mutex<HashMap<(TenantId, String), Health>>,
    live_instances: Arc<AtomicU64>,
    clock: AtomicU64,
    /// Each tenant's CPU budget on this replica.
    budgets: Mutex<HashMap<TenantId, CpuBudget>>,
    pub stats: Arc<PluginStats>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").finish_non_exhaustive()
    }
}

impl PluginHost {
    pub fn new(runtime: Runtime, storage: Arc<dyn Storage>, config: PluginHostConfig) -> Self {
        Self {
            runtime,
            storage,
            config,
            components: Mutex::new(HashMap::new()),
            tenants: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            live_instances: Arc::new(AtomicU64::new(0)),
            clock: AtomicU64::new(0),
            budgets: Mutex::new(HashMap::new()),
            stats: Arc::new(PluginStats::default()),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Makes the next use read the installs of `tenant` again (after a change through this
    /// replica). Live instances of unchanged installs are kept.
    pub fn invalidate(&self, tenant: TenantId) {
        if let Some(t) = self.tenants.lock().unwrap().get(&tenant) {
            t.stale.store(true, Ordering::Relaxed);
        }
    }

    /// The loaded plugin of a stored component (compiled or from the artifact cache).
    pub(crate) async fn plugin(&self, digest: &str) -> Result<Plugin, PluginAdminError> {
        if let Some(p) = self.components.lock().unwrap().get(digest) {
            return Ok(p.clone());
        }
        let c = self
            .storage
            .plugins()
            .plugin_component(digest)
            .await?
            .ok_or_else(|| StorageError::NotFound(format!("plugin component {digest}")))?;
        let manifest = Manifest::parse(&c.manifest, &host_version())?;
        let plugin = self.load(manifest, c.component).await?;
        self.components
            .lock()
            .unwrap()
            .insert(digest.to_string(), plugin.clone());
        Ok(plugin)
    }

    pub(crate) async fn tenant(
        &self,
        tenant: TenantId,
    ) -> Result<Arc<TenantPlugins>, PluginAdminError> {
        if let Some(t) = self.tenants.lock().unwrap().get(&tenant)
            && t.loaded.elapsed() < self.config.installs_ttl
            && !t.stale.load(Ordering::Relaxed)
        {
            return Ok(t.clone());
        }
        let installs = self.storage.plugins().plugin_installs(tenant).await?;
        let previous = self.tenants.lock().unwrap().get(&tenant).cloned();
        let mut all = Vec::new();
        for install in installs.into_iter().filter(|i| i.enabled) {
            // Keep the live instance when nothing about the install changed.
            if let Some(prev) = previous
                .as_ref()
                .and_then(|p| p.all.iter().find(|s| s.install.name == install.name))
                && prev.install.digest == install.digest
                && prev.install.config_json == install.config_json
                && prev.install.grants_json == install.grants_json
            {
                all.push(prev.clone());
                continue;
            }
            let plugin = match self.plugin(&install.digest).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(tenant = %tenant, plugin = %install.name, error = %e, "plugin cannot be loaded; skipping it");
                    continue;
                }
            };
            let grants: GrantsDoc = serde_json::from_str(&install.grants_json).unwrap_or_default();
            let (config, series) =
                analyse::read_config(&install, plugin.manifest(), self.config.max_series);
            all.push(Arc::new(Slot {
                config,
                series,
                failures: AtomicU64::new(install.consecutive_failures.max(0) as u64),
                grants: grants.to_grants(),
                install,
                plugin,
                instance: Mutex::new(None),
                last_used: AtomicU64::new(0),
                used_at_ms: AtomicU64::new(hub_core::time::now_ms() as u64),
                last_refresh: Mutex::new(None),
                pending_kv: Mutex::new(Vec::new()),
                live: self.live_instances.clone(),
            }));
        }
        let enrichers = all
            .iter()
            .filter(|s| s.plugin.manifest().kind == PluginKind::Enricher)
            .cloned()
            .collect();
        let t = Arc::new(TenantPlugins {
            loaded: Instant::now(),
            stale: std::sync::atomic::AtomicBool::new(false),
            enrichers,
            all,
        });
        self.tenants.lock().unwrap().insert(tenant, t.clone());
        Ok(t)
    }

    /// Whether any enricher would run over this tenant's events.
    pub async fn has_enrichers(&self, tenant: TenantId) -> bool {
        self.tenant(tenant)
            .await
            .is_ok_and(|p| !p.enrichers.is_empty())
    }

    /// Health of the tenant's plugins on this replica, by name.
    pub fn health(&self, tenant: TenantId) -> HashMap<String, Health> {
        self.health
            .lock()
            .unwrap()
            .iter()
            .filter(|((t, _), _)| *t == tenant)
            .map(|((_, n), h)| (n.clone(), h.clone()))
            .collect()
    }
}
