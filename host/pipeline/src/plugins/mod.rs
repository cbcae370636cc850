//! The plugin host: which plugins each tenant runs, their live instances, and what happens when
//! one misbehaves.
//!
//! - Installs are read from storage per tenant and cached for a few seconds (other replicas'
//!   changes arrive within that time; this replica's changes invalidate at once).
//! - One instance per (tenant, plugin), created on first use with the plugin's `kv`, kept behind a
//!   lock and reused. At most `max_instances` live at once; the least recently used is dropped.
//! - Enrichers run in the tenant's order on a blocking thread, each over the same columnar batch
//!   (which carries earlier enrichers' patches). A failed call leaves the events without that
//!   plugin's patches; after `max_consecutive_failures` failures in a row the install is disabled
//!   with the reason recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub_core::{EventRecord, LatencySketch, TenantId};
use hub_marketplace::{Manifest, PluginKind};
use hub_runtime::{CallError, Grants, Instance, LoadError, Plugin, Runtime};

mod admin;
pub mod market;
use hub_storage::{PluginInstall, Storage, StorageError};
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
    /// Package limits, remote catalogs and the keys trusted for them.
    pub market: market::MarketConfig,
}

impl Default for PluginHostConfig {
    fn default() -> Self {
        Self {
            max_consecutive_failures: 5,
            installs_ttl: Duration::from_secs(5),
            max_instances: 200,
            market: market::MarketConfig::default(),
        }
    }
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
    fn to_grants(&self) -> Grants {
        Grants {
            kv: self.kv,
            http: self.http.clone(),
        }
    }
}

/// Why a plugin operation was refused; the API maps these to 400/404/409.
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

/// In-memory health of one (tenant, plugin) on this replica.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub calls: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    pub call_micros: LatencySketch,
}

/// Counters by plugin (for `/metrics`).
#[derive(Debug, Default)]
pub struct PluginStats {
    inner: Mutex<BTreeMap<String, PluginCounters>>,
}

#[derive(Debug, Default, Clone)]
pub struct PluginCounters {
    pub calls: u64,
    pub call_micros: u64,
    /// By failure kind (`deadline`, `memory`, `trap`, `error`, `invalid_output`, ...).
    pub failures: BTreeMap<&'static str, u64>,
    pub auto_disabled: u64,
    pub patches_applied: u64,
}

impl PluginStats {
    pub fn snapshot(&self) -> BTreeMap<String, PluginCounters> {
        self.inner.lock().unwrap().clone()
    }

    fn record(&self, plugin: &str, micros: u64, failure: Option<&'static str>, applied: usize) {
        let mut m = self.inner.lock().unwrap();
        let c = m.entry(plugin.to_string()).or_default();
        c.calls += 1;
        c.call_micros += micros;
        c.patches_applied += applied as u64;
        if let Some(f) = failure {
            *c.failures.entry(f).or_default() += 1;
        }
    }

    fn disabled(&self, plugin: &str) {
        self.inner
            .lock()
            .unwrap()
            .entry(plugin.to_string())
            .or_default()
            .auto_disabled += 1;
    }
}

struct Slot {
    install: PluginInstall,
    plugin: Plugin,
    grants: Grants,
    instance: Mutex<Option<Instance>>,
    failures: AtomicU64,
    last_used: AtomicU64,
    last_refresh: Mutex<Option<Instant>>,
    /// The host's count of live instances, kept right when a slot goes away with its instance.
    live: Arc<AtomicU64>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(g) = self.instance.get_mut()
            && g.is_some()
        {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
    }
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

/// An enabled enricher as installed, for instances of its own (see [`PluginHost::enrichers_of`]).
#[derive(Clone)]
pub(crate) struct EnricherSpec {
    pub name: String,
    pub plugin: Plugin,
    pub grants: Grants,
    pub config_json: String,
}

/// The columns a batch carries for these enrichers: ids and tags only if one asks for them.
pub(crate) fn columns_for<'a>(
    plugins: impl Iterator<Item = &'a Plugin>,
) -> hub_runtime::BatchColumns {
    let mut columns = hub_runtime::BatchColumns {
        ids: false,
        tags: false,
    };
    for p in plugins {
        let caps = &p.manifest().capabilities;
        columns.ids |= caps.ids;
        columns.tags |= caps.tags;
    }
    columns
}

/// Calls one enricher over the batch; columns it did not ask for are empty for it.
pub(crate) fn call_enricher(
    instance: &mut Instance,
    columns: hub_runtime::BatchColumns,
    batch: &mut hub_runtime::EventBatch,
) -> Result<hub_runtime::Enrichment, CallError> {
    let caps = &instance.plugin().manifest().capabilities;
    let hide_tags = columns.tags && !caps.tags;
    let hide_ids = columns.ids && !caps.ids;
    let tags = if hide_tags {
        std::mem::take(&mut batch.tags)
    } else {
        Vec::new()
    };
    let ids = if hide_ids {
        std::mem::take(&mut batch.ids)
    } else {
        Vec::new()
    };
    let result = instance.enrich(batch);
    if hide_tags {
        batch.tags = tags;
    }
    if hide_ids {
        batch.ids = ids;
    }
    result
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
    pub stats: Arc<PluginStats>,
    /// Publications checked at once.
    publishing: tokio::sync::Semaphore,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").finish_non_exhaustive()
    }
}

/// What one enrichment pass did, for the writer's logs and the pipeline's counters.
#[derive(Debug, Default)]
pub struct EnrichReport {
    pub calls: usize,
    pub failures: usize,
    pub patches_applied: usize,
}

struct Outcome {
    slot: Arc<Slot>,
    failure: Option<CallError>,
    kv: Vec<(String, Option<Vec<u8>>)>,
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
            stats: Arc::new(PluginStats::default()),
            publishing: tokio::sync::Semaphore::new(2),
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
    async fn plugin(&self, digest: &str) -> Result<Plugin, PluginAdminError> {
        if let Some(p) = self.components.lock().unwrap().get(digest) {
            return Ok(p.clone());
        }
        let c = self
            .storage
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

    async fn tenant(&self, tenant: TenantId) -> Result<Arc<TenantPlugins>, PluginAdminError> {
        if let Some(t) = self.tenants.lock().unwrap().get(&tenant)
            && t.loaded.elapsed() < self.config.installs_ttl
            && !t.stale.load(Ordering::Relaxed)
        {
            return Ok(t.clone());
        }
        let installs = self.storage.plugin_installs(tenant).await?;
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
            all.push(Arc::new(Slot {
                failures: AtomicU64::new(install.consecutive_failures.max(0) as u64),
                grants: grants.to_grants(),
                install,
                plugin,
                instance: Mutex::new(None),
                last_used: AtomicU64::new(0),
                last_refresh: Mutex::new(None),
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

    /// Runs the tenant's enabled enrichers over `events` (in place). Never fails: a plugin that
    /// cannot run leaves the events as they were and is counted.
    pub async fn enrich(
        self: &Arc<Self>,
        tenant: TenantId,
        events: &mut Vec<EventRecord>,
    ) -> EnrichReport {
        let plugins = match self.tenant(tenant).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(tenant = %tenant, error = %e, "reading the tenant's plugins failed; storing events unenriched");
                return EnrichReport::default();
            }
        };
        if plugins.enrichers.is_empty() || events.is_empty() {
            return EnrichReport::default();
        }
        let this = self.clone();
        let mut owned = std::mem::take(events);
        let handle = tokio::runtime::Handle::current();
        let joined = tokio::task::spawn_blocking(move || {
            // A bug in the host's own enrichment code must not lose the events it holds.
            let outcomes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                this.run_enrichers(&handle, tenant, &plugins.enrichers, &mut owned)
            }));
            (owned, outcomes)
        })
        .await;
        let (back, outcomes) = match joined {
            Ok((back, Ok(outcomes))) => (back, outcomes),
            Ok((back, Err(_))) => {
                tracing::error!(tenant = %tenant, "enrichment panicked; storing the events unenriched");
                *events = back;
                return EnrichReport {
                    failures: 1,
                    ..Default::default()
                };
            }
            Err(e) => {
                // Only a cancelled runtime gets here (shutdown after the drain): nothing to store.
                tracing::error!(tenant = %tenant, error = %e, "the enrichment task did not finish");
                return EnrichReport {
                    failures: 1,
                    ..Default::default()
                };
            }
        };
        *events = back;
        let mut report = EnrichReport::default();
        for o in outcomes {
            report.calls += 1;
            self.settle(tenant, o, &mut report).await;
        }
        report
    }

    /// Runs on a blocking thread.
    fn run_enrichers(
        &self,
        handle: &tokio::runtime::Handle,
        tenant: TenantId,
        enrichers: &[Arc<Slot>],
        events: &mut [EventRecord],
    ) -> Vec<(Outcome, usize, u64)> {
        let columns = columns_for(enrichers.iter().map(|s| &s.plugin));
        let mut batch = hub_runtime::batch_from_events(events, columns);
        let mut out = Vec::with_capacity(enrichers.len());
        for slot in enrichers {
            let started = Instant::now();
            let mut guard = slot.instance.lock().unwrap();
            let instance = match self.live_instance(handle, tenant, slot, &mut guard) {
                Ok(i) => i,
                Err(e) => {
                    out.push((
                        Outcome {
                            slot: slot.clone(),
                            failure: Some(e),
                            kv: Vec::new(),
                        },
                        0,
                        started.elapsed().as_micros() as u64,
                    ));
                    continue;
                }
            };
            slot.last_used.store(
                self.clock.fetch_add(1, Ordering::Relaxed),
                Ordering::Relaxed,
            );
            let result = call_enricher(instance, columns, &mut batch);
            let kv = instance.take_kv_changes();
            drop(guard);
            let (failure, applied) = match result {
                Ok(patches) => match hub_runtime::apply_patches(
                    events,
                    &mut batch,
                    &patches,
                    &slot.install.name,
                ) {
                    Ok(a) => (None, a.applied),
                    Err(e) => (Some(CallError::InvalidOutput(e.to_string())), 0),
                },
                Err(e) => (Some(e), 0),
            };
            out.push((
                Outcome {
                    slot: slot.clone(),
                    failure,
                    kv,
                },
                applied,
                started.elapsed().as_micros() as u64,
            ));
        }
        out
    }

    /// The tenant's enabled enrichers in running order, for running apart from ingest (re-pricing).
    pub(crate) async fn enrichers_of(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<EnricherSpec>, PluginAdminError> {
        Ok(self
            .tenant(tenant)
            .await?
            .enrichers
            .iter()
            .map(|s| EnricherSpec {
                name: s.install.name.clone(),
                plugin: s.plugin.clone(),
                grants: s.grants.clone(),
                config_json: s.install.config_json.clone(),
            })
            .collect())
    }

    /// The slot's instance, made again (configured) when there is none or the last one trapped.
    fn live_instance<'g>(
        &self,
        handle: &tokio::runtime::Handle,
        tenant: TenantId,
        slot: &Slot,
        current: &'g mut Option<Instance>,
    ) -> Result<&'g mut Instance, CallError> {
        if current.as_ref().is_none_or(|i| i.is_broken()) {
            if current.take().is_some() {
                self.live_instances.fetch_sub(1, Ordering::Relaxed);
            }
            *current = Some(self.instantiate(handle, tenant, slot)?);
        }
        Ok(current.as_mut().expect("instantiated above"))
    }

    /// A new instance for `slot`, configured; drops the least recently used one when at the cap.
    fn instantiate(
        &self,
        handle: &tokio::runtime::Handle,
        tenant: TenantId,
        slot: &Slot,
    ) -> Result<Instance, CallError> {
        if self.live_instances.load(Ordering::Relaxed) as usize >= self.config.max_instances {
            self.evict_one();
        }
        let kv = handle
            .block_on(self.storage.plugin_kv(tenant, &slot.install.name))
            .map_err(|e| {
                CallError::Plugin(hub_runtime::PluginError::Unavailable(format!(
                    "loading kv: {e}"
                )))
            })?;
        let mut instance = self
            .runtime
            .instantiate(&slot.plugin, &tenant.to_string(), &slot.grants, kv)
            .map_err(|e| CallError::Trap(e.to_string()))?;
        self.live_instances.fetch_add(1, Ordering::Relaxed);
        instance.configure(&slot.install.config_json)?;
        Ok(instance)
    }

    fn evict_one(&self) {
        let tenants: Vec<Arc<TenantPlugins>> =
            self.tenants.lock().unwrap().values().cloned().collect();
        let victim = tenants
            .iter()
            .flat_map(|t| t.all.iter())
            .filter(|s| s.instance.try_lock().map(|g| g.is_some()).unwrap_or(false))
            .min_by_key(|s| s.last_used.load(Ordering::Relaxed))
            .cloned();
        if let Some(s) = victim
            && let Ok(mut g) = s.instance.try_lock()
            && g.take().is_some()
        {
            self.live_instances.fetch_sub(1, Ordering::Relaxed);
        }
    }

    async fn settle(
        &self,
        tenant: TenantId,
        (o, applied, micros): (Outcome, usize, u64),
        report: &mut EnrichReport,
    ) {
        let name = o.slot.install.name.clone();
        report.patches_applied += applied;
        self.stats
            .record(&name, micros, o.failure.as_ref().map(|f| f.kind()), applied);
        {
            let mut all = self.health.lock().unwrap();
            let h = all.entry((tenant, name.clone())).or_default();
            h.calls += 1;
            h.call_micros.add(micros as f64);
            if let Some(f) = &o.failure {
                h.failures += 1;
                h.last_error = Some(f.to_string());
            }
        }
        if !o.kv.is_empty()
            && let Err(e) = self.storage.apply_plugin_kv(tenant, &name, &o.kv).await
        {
            tracing::warn!(tenant = %tenant, plugin = %name, error = %e, "persisting plugin kv failed");
        }
        match o.failure {
            None => {
                if o.slot.failures.swap(0, Ordering::Relaxed) > 0 {
                    let _ = self
                        .storage
                        .record_plugin_health(tenant, &name, 0, None, hub_core::time::now_ms())
                        .await;
                }
            }
            Some(f) => {
                report.failures += 1;
                let streak = o.slot.failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(tenant = %tenant, plugin = %name, failure = f.kind(), streak, error = %f, "plugin call failed; events stored without its patches");
                let disable = (streak >= u64::from(self.config.max_consecutive_failures))
                    .then(|| format!("disabled after {streak} failures in a row; the last: {f}"));
                if let Err(e) = self
                    .storage
                    .record_plugin_health(
                        tenant,
                        &name,
                        streak as i64,
                        disable.as_deref(),
                        hub_core::time::now_ms(),
                    )
                    .await
                {
                    tracing::warn!(tenant = %tenant, plugin = %name, error = %e, "recording plugin health failed");
                }
                if let Some(reason) = disable {
                    tracing::error!(tenant = %tenant, plugin = %name, reason, "plugin disabled for this tenant");
                    self.stats.disabled(&name);
                    self.invalidate(tenant);
                }
            }
        }
    }

    /// Calls `refresh` on every loaded enricher (and `sync` on integrations) whose interval has
    /// passed. Runs from a background task, off the ingest path.
    pub async fn refresh_due(self: &Arc<Self>) {
        let tenants: Vec<(TenantId, Arc<TenantPlugins>)> = self
            .tenants
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (tenant, plugins) in tenants {
            for slot in &plugins.all {
                let Some(every) = slot.plugin.manifest().limits.refresh_interval_s else {
                    continue;
                };
                let due = slot
                    .last_refresh
                    .lock()
                    .unwrap()
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(every.into()));
                if !due {
                    continue;
                }
                *slot.last_refresh.lock().unwrap() = Some(Instant::now());
                let (this, slot2) = (self.clone(), slot.clone());
                let handle = tokio::runtime::Handle::current();
                let r = tokio::task::spawn_blocking(move || {
                    let mut guard = slot2.instance.lock().unwrap();
                    let i = this.live_instance(&handle, tenant, &slot2, &mut guard)?;
                    let r = i.refresh();
                    Ok::<_, CallError>((r, i.take_kv_changes()))
                })
                .await;
                match r {
                    Ok(Ok((Ok(report), kv))) => {
                        if !kv.is_empty()
                            && let Err(e) = self
                                .storage
                                .apply_plugin_kv(tenant, &slot.install.name, &kv)
                                .await
                        {
                            tracing::warn!(tenant = %tenant, plugin = %slot.install.name, error = %e, "persisting plugin kv failed");
                        }
                        tracing::info!(tenant = %tenant, plugin = %slot.install.name, items = report.items, message = %report.message, "plugin refreshed");
                    }
                    Ok(Ok((Err(e), _))) | Ok(Err(e)) => {
                        tracing::warn!(tenant = %tenant, plugin = %slot.install.name, error = %e, "plugin refresh failed");
                        self.health
                            .lock()
                            .unwrap()
                            .entry((tenant, slot.install.name.clone()))
                            .or_default()
                            .last_error = Some(format!("refresh: {e}"));
                    }
                    Err(e) => tracing::error!(error = %e, "plugin refresh panicked"),
                }
            }
        }
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
