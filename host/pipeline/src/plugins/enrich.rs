//! Running a tenant's enrichers over its events, and settling what each call did: health, kv,
//! failures in a row, the tenant's CPU budget.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hub_core::{EventRecord, TenantId};
use hub_runtime::{CallError, Instance, Plugin};

use super::PluginHost;
use super::pool::Slot;

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

/// What one call did, settled after the pass (off the blocking thread).
struct Outcome {
    slot: Arc<Slot>,
    failure: Option<CallError>,
    kv: Vec<(String, Option<Vec<u8>>)>,
    applied: usize,
    /// Wall time of the call, microseconds.
    micros: u64,
    /// CPU time of the call (with instantiating and applying its patches).
    cpu: std::time::Duration,
}

impl PluginHost {
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
        self.disable_if_over_budget(tenant).await;
        report
    }

    /// Runs on a blocking thread.
    fn run_enrichers(
        &self,
        handle: &tokio::runtime::Handle,
        tenant: TenantId,
        enrichers: &[Arc<Slot>],
        events: &mut [EventRecord],
    ) -> Vec<Outcome> {
        let columns = columns_for(enrichers.iter().map(|s| &s.plugin));
        let mut batch = hub_runtime::batch_from_events(events, columns);
        let mut out = Vec::with_capacity(enrichers.len());
        for slot in enrichers {
            let started = Instant::now();
            let cpu_started = hub_runtime::thread_cpu_time();
            let outcome = |failure, kv, applied| Outcome {
                slot: slot.clone(),
                failure,
                kv,
                applied,
                micros: started.elapsed().as_micros() as u64,
                cpu: hub_runtime::thread_cpu_time().saturating_sub(cpu_started),
            };
            let mut guard = slot.instance.lock().unwrap();
            let instance = match self.live_instance(handle, tenant, slot, &mut guard) {
                Ok(i) => i,
                Err(e) => {
                    out.push(outcome(Some(e), Vec::new(), 0));
                    continue;
                }
            };
            slot.last_used.store(
                self.clock.fetch_add(1, Ordering::Relaxed),
                Ordering::Relaxed,
            );
            slot.used_at_ms
                .store(hub_core::time::now_ms() as u64, Ordering::Relaxed);
            let result = call_enricher(instance, columns, &mut batch);
            let kv = instance.take_kv_changes();
            if instance.is_broken() {
                // A trapped instance is made again at its next call; its memory goes back now.
                self.forget_instance(&mut guard);
            }
            drop(guard);
            // A call may have grown its memory past the point where idle ones should go.
            self.evict_for_memory();
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
            out.push(outcome(failure, kv, applied));
        }
        out
    }

    async fn settle(&self, tenant: TenantId, o: Outcome, report: &mut EnrichReport) {
        let name = o.slot.install.name.clone();
        report.patches_applied += o.applied;
        self.stats.record(
            &name,
            o.micros,
            o.cpu,
            o.failure.as_ref().map(|f| f.kind()),
            o.applied,
        );
        {
            let mut all = self.health.lock().unwrap();
            let h = all.entry((tenant, name.clone())).or_default();
            h.calls += 1;
            h.call_micros.add(o.micros as f64);
            h.cpu_micros += o.cpu.as_micros() as u64;
            if let Some(f) = &o.failure {
                h.failures += 1;
                h.last_error = Some(f.to_string());
            }
        }
        self.charge(tenant, &name, o.cpu);
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
                self.record_health(tenant, &name, streak as i64, disable.as_deref())
                    .await;
            }
        }
    }

    /// Stores a plugin's failure streak (and, with a reason, disables it for the tenant).
    pub(super) async fn record_health(
        &self,
        tenant: TenantId,
        name: &str,
        streak: i64,
        disable: Option<&str>,
    ) {
        if let Err(e) = self
            .storage
            .record_plugin_health(tenant, name, streak, disable, hub_core::time::now_ms())
            .await
        {
            tracing::warn!(tenant = %tenant, plugin = %name, error = %e, "recording plugin health failed");
        }
        if let Some(reason) = disable {
            tracing::error!(tenant = %tenant, plugin = %name, reason, "plugin disabled for this tenant");
            self.stats.disabled(name);
            self.invalidate(tenant);
        }
    }
}
