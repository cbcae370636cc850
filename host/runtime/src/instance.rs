//! Instances: the live instance of one plugin for one tenant, and every call into it under its
//! deadline and memory cap, where a trap, a deadline or the cap becomes a [`CallError`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Store, Trap};

use crate::bindings::{detector, enricher, enricher_v2, forecaster, integration, integration_v3};
use crate::host::{HostState, HttpPolicy, KvState, Owner};
use crate::plugin::Pre;
use crate::v3::{Alert, SyncContext, SyncOutput};
use crate::{
    Anomaly, CallError, Enrichment, EventBatch, Forecast, Grants, LoadError, Plugin, PluginError,
    Runtime, Series, SyncReport, error_text, findings, memory, output, ticks, v2, v3,
};

impl Runtime {
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
            Pre::IntegrationV3(p) => p.instantiate(&mut store).map(Exports::IntegrationV3),
        }
        .map_err(|e| match memory::memory_refusal(&store.data().memory, &store.data().owner.tenant) {
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

enum Exports {
    Enricher(enricher::Enricher),
    EnricherV2(enricher_v2::Enricher),
    Detector(detector::Detector),
    Forecaster(forecaster::Forecaster),
    Integration(integration::Integration),
    IntegrationV3(integration_v3::Integration),
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
        self.call_checked(deadline, f, |_| Ok(()))
    }

    /// A call whose answer must pass `check`: one that does not is refused whole, and the call's
    /// `kv` writes are discarded as for a failed call.
    fn call_checked<R>(
        &mut self,
        deadline: Duration,
        f: impl FnOnce(&Exports, &mut Store<HostState>) -> Option<CallResult<R>>,
        check: impl FnOnce(&R) -> Result<(), String>,
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
            output::log_output(&data.output, &data.owner.tenant, &data.owner.plugin, None);
        }
        let Some(result) = f(&self.exports, &mut self.store) else {
            return Err(CallError::WrongKind(self.plugin.inner.manifest.kind));
        };
        let trapped = result.is_err();
        let output = {
            let data = self.store.data();
            output::log_output(
                &data.output,
                &data.owner.tenant,
                &data.owner.plugin,
                Some(trapped),
            )
        };
        match result {
            Ok(Ok(r)) => {
                if let Err(why) = check(&r) {
                    self.store.data_mut().kv.discard();
                    return Err(CallError::InvalidOutput(why));
                }
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
                } else if let Some(refusal) = memory::memory_refusal(
                    &self.store.data().memory,
                    &self.store.data().owner.tenant,
                ) {
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
                Exports::IntegrationV3(b) => b.call_configure(s, config),
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

    /// An enricher's `refresh`.
    pub fn refresh(&mut self) -> Result<SyncReport, CallError> {
        let d = self.slow;
        self.call(d, |x, s| match x {
            Exports::Enricher(b) => Some(b.call_refresh(s)),
            Exports::EnricherV2(b) => Some(b.call_refresh(s)),
            _ => None,
        })
    }

    /// An integration's `sync`: a 0.1.0 integration's report with no events; a 0.3.0 answer
    /// with more than [`v3::MAX_SYNC_EVENTS`] is refused whole. The events are not checked here:
    /// the caller validates each as REST ingest does.
    pub fn sync(&mut self, context: &SyncContext) -> Result<SyncOutput, CallError> {
        let d = self.slow;
        self.call_checked(
            d,
            |x, s| match x {
                Exports::Integration(b) => Some(b.call_sync(s).map(|r| r.map(v3::sync_v1))),
                Exports::IntegrationV3(b) => Some(b.call_sync(s, context)),
                _ => None,
            },
            v3::check_sync,
        )
    }

    /// Runs a detector over the series; an answer that breaks the contract anywhere (see
    /// [`crate::check_anomalies`]) is refused whole. Off the ingest path, so under the slow
    /// deadline.
    pub fn detect(&mut self, series: &[Series]) -> Result<Vec<Anomaly>, CallError> {
        let d = self.slow;
        self.call_checked(
            d,
            |x, s| match x {
                Exports::Detector(b) => Some(b.call_detect(s, series)),
                _ => None,
            },
            |out| findings::check_anomalies(series, out),
        )
    }

    /// Runs a forecaster; an answer that breaks the contract anywhere (see
    /// [`crate::check_forecasts`]) is refused whole.
    pub fn forecast(
        &mut self,
        series: &[Series],
        horizon: u32,
    ) -> Result<Vec<Forecast>, CallError> {
        let d = self.slow;
        self.call_checked(
            d,
            |x, s| match x {
                Exports::Forecaster(b) => Some(b.call_forecast(s, series, horizon)),
                _ => None,
            },
            |out| findings::check_forecasts(series, horizon, out),
        )
    }

    /// Hands an integration a batch of alert notices (as 0.1.0's alerts to a 0.1.0 one).
    pub fn on_alerts(&mut self, alerts: &[Alert]) -> Result<(), CallError> {
        let d = self.slow;
        self.call(d, |x, s| match x {
            Exports::Integration(b) => {
                Some(b.call_on_alerts(s, &alerts.iter().map(v3::alert_v1).collect::<Vec<_>>()))
            }
            Exports::IntegrationV3(b) => Some(b.call_on_alerts(s, alerts)),
            _ => None,
        })
    }
}
