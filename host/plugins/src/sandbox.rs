//! A tenant's enrichers for a job apart from ingest (re-pricing stored events): instances of the
//! job's own, outside the pool, configured as installed when the job starts, with the plugins'
//! `kv` as stored then and their kv changes dropped. Their calls do not count in the plugins'
//! health or failures in a row (a failure stops the job instead, saying which plugin failed), but
//! their CPU time is charged to the tenant's budget like any other call, and their memory to the
//! tenant's share.

use std::collections::BTreeMap;
use std::sync::Arc;

use hub_core::{EventRecord, TenantId};
use hub_runtime::Instance;

use super::PluginHost;
use super::enrich::{EnricherSpec, call_enricher, columns_for};

/// The tenant's enabled enrichers, instantiated for one job.
pub struct Sandbox {
    host: Arc<PluginHost>,
    tenant: TenantId,
    instances: Vec<(String, Instance)>,
    columns: hub_runtime::BatchColumns,
}

impl PluginHost {
    /// The tenant's enabled enrichers in their order, instantiated for one job. An error says
    /// which plugin could not be started (or that there is none).
    pub async fn sandbox(self: &Arc<Self>, tenant: TenantId) -> Result<Sandbox, String> {
        let specs = self
            .enrichers_of(tenant)
            .await
            .map_err(|e| format!("reading the tenant's plugins: {e}"))?;
        if specs.is_empty() {
            return Err(
                "the tenant has no enabled enricher to estimate cost with (install the cost plugin)"
                    .into(),
            );
        }
        let mut with_kv = Vec::with_capacity(specs.len());
        for spec in specs {
            let kv = self
                .storage
                .plugins()
                .plugin_kv(tenant, &spec.name)
                .await
                .map_err(|e| format!("reading plugin `{}` kv: {e}", spec.name))?;
            with_kv.push((spec, kv));
        }
        let host = self.clone();
        tokio::task::spawn_blocking(move || Sandbox::new(host, tenant, with_kv))
            .await
            .map_err(|e| format!("starting the tenant's plugins failed: {e}"))?
    }
}

impl Sandbox {
    fn new(
        host: Arc<PluginHost>,
        tenant: TenantId,
        specs: Vec<(EnricherSpec, BTreeMap<String, Vec<u8>>)>,
    ) -> Result<Self, String> {
        let columns = columns_for(specs.iter().map(|(s, _)| &s.plugin));
        let mut instances = Vec::with_capacity(specs.len());
        for (spec, kv) in specs {
            let mut i = host
                .runtime()
                .instantiate(&spec.plugin, &tenant.to_string(), &spec.grants, kv)
                .map_err(|e| format!("plugin `{}` could not be started: {e}", spec.name))?;
            i.configure(&spec.config_json)
                .map_err(|e| format!("plugin `{}` refused its configuration: {e}", spec.name))?;
            instances.push((spec.name, i));
        }
        Ok(Self {
            host,
            tenant,
            instances,
            columns,
        })
    }

    /// Whether the tenant has plugin CPU budget left now; a job should put its next page off
    /// while it has not.
    pub fn in_budget(&self) -> bool {
        self.host.in_budget(self.tenant)
    }

    /// Runs the enrichers over `events` in their order, as an ingest pass would (on a blocking
    /// thread). An error names the plugin that failed or answered nonsense.
    pub fn enrich(&mut self, events: &mut [EventRecord]) -> Result<(), String> {
        let mut batch = hub_runtime::batch_from_events(events, self.columns);
        for (name, instance) in &mut self.instances {
            let cpu_started = hub_runtime::thread_cpu_time();
            let answer = call_enricher(instance, self.columns, &mut batch);
            // Only the answer matters here: the instance is the job's own.
            let _ = instance.take_kv_changes();
            self.host.charge(
                self.tenant,
                name,
                hub_runtime::thread_cpu_time().saturating_sub(cpu_started),
            );
            let answer = answer.map_err(|e| format!("plugin `{name}` failed: {e}"))?;
            hub_runtime::apply_patches(events, &mut batch, &answer, name)
                .map_err(|e| format!("plugin `{name}` answered nonsense: {e}"))?;
        }
        Ok(())
    }
}
