//! The enricher world: a pass of a tenant's enrichers over its events, in the tenant's order,
//! each over the same columnar batch (which carries earlier enrichers' patches), each call made
//! and settled through the one call path (`call`).

use std::sync::Arc;

use hub_core::{EventRecord, TenantId};
use hub_runtime::{CallError, Grants, Instance, Plugin};

use super::call::{CallPolicy, Called};
use super::pool::Slot;
use super::{PluginAdminError, PluginHost};

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

/// What one enrichment pass did, for the writer's logs and the pipeline's counters.
#[derive(Debug, Default)]
pub struct EnrichReport {
    pub calls: usize,
    pub failures: usize,
    pub patches_applied: usize,
}

impl PluginHost {
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
        for (result, called) in outcomes {
            report.calls += 1;
            let applied = *result.as_ref().unwrap_or(&0);
            report.patches_applied += applied;
            if let Err(e) = &result {
                report.failures += 1;
                tracing::debug!(tenant = %tenant, plugin = %called.slot.install.name, error = %e, "events stored without the plugin's patches");
            }
            self.settle(tenant, called, result.as_ref().err(), applied)
                .await;
        }
        report
    }

    /// Runs on a blocking thread: each call's patches are applied (and checked) before the next
    /// enricher sees the batch; a call whose patches are refused counts as its failure.
    fn run_enrichers(
        &self,
        handle: &tokio::runtime::Handle,
        tenant: TenantId,
        enrichers: &[Arc<Slot>],
        events: &mut [EventRecord],
    ) -> Vec<(Result<usize, CallError>, Called)> {
        let columns = columns_for(enrichers.iter().map(|s| &s.plugin));
        let mut batch = hub_runtime::batch_from_events(events, columns);
        enrichers
            .iter()
            .map(|slot| {
                self.call_blocking(handle, tenant, slot, CallPolicy::MAIN, |instance| {
                    let patches = call_enricher(instance, columns, &mut batch)?;
                    hub_runtime::apply_patches(events, &mut batch, &patches, &slot.install.name)
                        .map(|a| a.applied)
                        .map_err(|e| CallError::InvalidOutput(e.to_string()))
                })
            })
            .collect()
    }
}
