//! The periodic refresh: an enricher's `refresh`, on each replica that runs the enricher, when
//! the interval its manifest asks for has passed, made through the one call path (so it counts in
//! the plugin's health and its tenant's CPU budget like any other call). A failing `refresh`
//! does not count towards disabling (the enricher goes on with the data it has). A tenant over
//! its budget has its refreshes put off to a later tick. The same tick drops instances idle past
//! the idle-release period. (An integration's `sync` brings events in, so it runs once per period
//! across replicas: the pipeline's sync job, through `integration`.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use hub_core::TenantId;
use tokio::task::JoinHandle;

use super::call::CallPolicy;
use super::{PluginHost, TenantPlugins};

/// Calls due `refresh`/`sync` functions of loaded plugins and releases idle instances every
/// `every`, until aborted.
pub fn spawn_refresh(host: Arc<PluginHost>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            host.refresh_due().await;
            host.release_idle();
        }
    })
}

impl PluginHost {
    /// Calls `refresh` on every loaded enricher whose interval has passed. Runs from a background
    /// task, off the ingest path.
    pub async fn refresh_due(self: &Arc<Self>) {
        let tenants: Vec<(TenantId, Arc<TenantPlugins>)> = self
            .tenants
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (tenant, plugins) in tenants {
            for slot in &plugins.enrichers {
                let Some(every) = slot.plugin.manifest().limits.refresh_interval_s else {
                    continue;
                };
                let due = slot
                    .last_refresh
                    .lock()
                    .unwrap()
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(every.into()));
                if !due || !self.in_budget(tenant) {
                    continue;
                }
                *slot.last_refresh.lock().unwrap() = Some(Instant::now());
                let name = slot.install.name.clone();
                match self
                    .call_slot(
                        tenant,
                        slot.clone(),
                        CallPolicy::SIDE,
                        |i| i.refresh(),
                        |r| r.items as usize,
                    )
                    .await
                {
                    Ok(report) => {
                        tracing::info!(tenant = %tenant, plugin = %name, items = report.items, message = %report.message, "plugin refreshed");
                    }
                    Err(e) => {
                        // Settling recorded it (health, failures in a row).
                        tracing::warn!(tenant = %tenant, plugin = %name, error = %e, "plugin refresh failed");
                    }
                }
            }
        }
    }
}
