//! The integration world's calls: a tenant's alert notices handed to one of its enabled
//! integrations (`on-alerts`), and its `sync`, through the one call path.
//!
//! - `on-alerts`: a failure counts towards disabling the integration (delivering is its main
//!   job); its CPU time is not charged to the tenant's enrichment budget, so a slow target never
//!   makes the tenant's ingest wait (its deadline and the delivery worker's concurrency bound it
//!   instead).
//! - `sync`: called by the pipeline's sync job once per period across replicas (the events it
//!   answers go through ingest's checks there). A failure counts towards disabling; its CPU
//!   time is charged to the tenant's budget like an enricher's refresh, and a tenant over its
//!   budget has its sync put off. Its `kv` writes (where it got to) wait until the caller has
//!   stored its events ([`PluginHost::finish_sync`]): events not stored are asked for again.

use std::sync::Arc;

use hub_core::TenantId;
use hub_runtime::{Alert, CallError, SyncContext, SyncOutput};

use super::call::CallPolicy;
use super::pool::Slot;
use super::{PluginHost, PluginKind};

/// An enabled integration with a `sync` period (`refresh-interval-s` in its manifest).
#[derive(Debug, Clone)]
pub struct Syncer {
    pub name: String,
    pub every_s: u32,
}

impl PluginHost {
    async fn integration(
        self: &Arc<Self>,
        tenant: TenantId,
        name: &str,
    ) -> Result<Arc<Slot>, CallError> {
        let plugins = self
            .tenant(tenant)
            .await
            .map_err(|e| CallError::Host(e.to_string()))?;
        plugins
            .all
            .iter()
            .find(|s| s.install.name == name && s.plugin.manifest().kind == PluginKind::Integration)
            .cloned()
            .ok_or_else(|| {
                CallError::Host(format!(
                    "no enabled integration named `{name}` (removed, disabled, or disabled \
                     after failing)"
                ))
            })
    }

    /// Calls `on-alerts` of the tenant's enabled integration `target` with `alerts`.
    pub async fn notify(
        self: &Arc<Self>,
        tenant: TenantId,
        target: &str,
        alerts: Vec<Alert>,
    ) -> Result<(), CallError> {
        let slot = self.integration(tenant, target).await?;
        let n = alerts.len();
        self.call_slot(
            tenant,
            slot,
            CallPolicy::DELIVERY,
            move |i| i.on_alerts(&alerts),
            move |_| n,
        )
        .await
    }

    /// The tenant's enabled integrations that sync, and how often.
    pub async fn syncers(&self, tenant: TenantId) -> Vec<Syncer> {
        let Ok(plugins) = self.tenant(tenant).await else {
            return Vec::new();
        };
        plugins
            .all
            .iter()
            .filter(|s| s.plugin.manifest().kind == PluginKind::Integration)
            .filter_map(|s| {
                Some(Syncer {
                    name: s.install.name.clone(),
                    every_s: s.plugin.manifest().limits.refresh_interval_s?,
                })
            })
            .collect()
    }

    /// Calls `sync` of the tenant's enabled integration `name`. `Ok(None)` when the tenant is
    /// over its CPU budget now (try again later).
    pub async fn sync(
        self: &Arc<Self>,
        tenant: TenantId,
        name: &str,
        context: SyncContext,
    ) -> Result<Option<SyncOutput>, CallError> {
        if !self.in_budget(tenant) {
            return Ok(None);
        }
        let slot = self.integration(tenant, name).await?;
        self.call_slot(
            tenant,
            slot,
            CallPolicy::SYNC,
            move |i| i.sync(&context),
            |r: &SyncOutput| r.events.len().max(r.report.items as usize),
        )
        .await
        .map(Some)
    }

    /// After a `sync`: with `stored`, its `kv` writes are persisted; without, they are dropped
    /// with the live instance (the next one starts from the persisted `kv`), so the plugin asks
    /// for the same records again.
    pub async fn finish_sync(self: &Arc<Self>, tenant: TenantId, name: &str, stored: bool) {
        let Ok(slot) = self.integration(tenant, name).await else {
            return;
        };
        let kv = std::mem::take(&mut *slot.pending_kv.lock().unwrap());
        if stored {
            if !kv.is_empty()
                && let Err(e) = self
                    .storage
                    .plugins()
                    .apply_plugin_kv(tenant, name, &kv)
                    .await
            {
                tracing::warn!(tenant = %tenant, plugin = %name, error = %e, "persisting plugin kv after a sync failed");
                self.restart_instance(slot).await;
            }
        } else {
            self.restart_instance(slot).await;
        }
    }

    /// Drops the slot's live instance (waiting, off the async workers, for a call under way).
    async fn restart_instance(self: &Arc<Self>, slot: Arc<Slot>) {
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut guard = slot
                .instance
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            this.forget_instance(&mut guard);
        })
        .await;
    }
}
