//! One way to call a plugin, whatever its world. A call runs on a blocking thread in its slot's
//! live instance (made and configured when there is none), and is timed in wall and CPU time; its
//! kv changes are taken, a trapped instance is dropped, and plugin memory is brought back under
//! its high-water mark. Afterwards, off the blocking thread, the call is settled: the plugin's
//! counters and health, its tenant's CPU budget, its kv changes in storage, and its failures in a
//! row (the install is disabled after too many, with the last failure in the reason).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hub_core::TenantId;
use hub_runtime::{CallError, Instance};

use super::PluginHost;
use super::pool::Slot;

/// How a call is accounted for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallPolicy {
    /// Whether a failure counts towards disabling the install (false for a call that is not the
    /// plugin's main job, such as an enricher's refresh of its reference data).
    pub counts: bool,
    /// Whether its CPU time is charged to the tenant's plugin CPU budget, which paces the
    /// tenant's enrichment. Scheduled analysis is not: charging it would make the tenant's
    /// ingest wait for its detectors. It is bounded instead by its deadline, its schedule and the
    /// scheduler's concurrency, and its CPU time shows in the plugin's health all the same.
    pub charged: bool,
    /// Whether its `kv` writes wait for the caller's word (an integration's `sync`: until the
    /// events it answered are stored) instead of being persisted when the call settles.
    pub defer_kv: bool,
}

impl CallPolicy {
    /// A plugin's main job on the ingest side: enrich, an integration's sync.
    pub const MAIN: CallPolicy = CallPolicy {
        counts: true,
        charged: true,
        defer_kv: false,
    };
    /// A side job whose failure the plugin survives: an enricher's refresh.
    pub const SIDE: CallPolicy = CallPolicy {
        counts: false,
        charged: true,
        defer_kv: false,
    };
    /// A detector's or forecaster's scheduled run.
    pub const ANALYSIS: CallPolicy = CallPolicy {
        counts: true,
        charged: false,
        defer_kv: false,
    };
    /// An integration's delivery of alerts: its main job, off the ingest path like analysis.
    pub const DELIVERY: CallPolicy = CallPolicy::ANALYSIS;
    /// An integration's `sync`: its main job, charged like a refresh, its `kv` writes (its
    /// cursor) kept until the events it answered are stored.
    pub const SYNC: CallPolicy = CallPolicy {
        counts: true,
        charged: true,
        defer_kv: true,
    };
}

/// What one call did, until it is settled.
pub(crate) struct Called {
    pub slot: Arc<Slot>,
    pub policy: CallPolicy,
    pub kv: Vec<(String, Option<Vec<u8>>)>,
    pub wall: Duration,
    /// CPU time of the call on its thread, instantiating and the caller's own checks included.
    pub cpu: Duration,
}

impl PluginHost {
    /// Calls `f` with the slot's live instance, on this thread (a blocking one): the one place a
    /// plugin of any world is called from.
    pub(crate) fn call_blocking<T>(
        &self,
        handle: &tokio::runtime::Handle,
        tenant: TenantId,
        slot: &Arc<Slot>,
        policy: CallPolicy,
        f: impl FnOnce(&mut Instance) -> Result<T, CallError>,
    ) -> (Result<T, CallError>, Called) {
        let started = Instant::now();
        let cpu_started = hub_runtime::thread_cpu_time();
        let mut guard = match slot.instance.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                // A bug of the host's panicked in an earlier call: that instance may have been
                // left half-way through something, so the next call gets a new one.
                slot.instance.clear_poison();
                let mut g = poisoned.into_inner();
                self.forget_instance(&mut g);
                g
            }
        };
        let (result, kv) = match self.live_instance(handle, tenant, slot, &mut guard) {
            Ok(instance) => {
                slot.last_used.store(
                    self.clock.fetch_add(1, Ordering::Relaxed),
                    Ordering::Relaxed,
                );
                slot.used_at_ms
                    .store(hub_core::time::now_ms() as u64, Ordering::Relaxed);
                let result = f(instance);
                let kv = instance.take_kv_changes();
                if instance.is_broken() {
                    // A trapped instance is made again at its next call; its memory goes back now.
                    self.forget_instance(&mut guard);
                }
                (result, kv)
            }
            Err(e) => (Err(e), Vec::new()),
        };
        drop(guard);
        // A call may have grown its memory past the point where idle ones should go.
        self.evict_for_memory();
        let called = Called {
            slot: slot.clone(),
            policy,
            kv,
            wall: started.elapsed(),
            cpu: hub_runtime::thread_cpu_time().saturating_sub(cpu_started),
        };
        (result, called)
    }

    /// Calls the tenant's enabled plugin `name`, of any world, under its limits, and settles the
    /// call; `items` counts what a successful answer produced (for the plugin's counters). `None`
    /// when the tenant has no such plugin enabled.
    pub async fn call<T, F>(
        self: &Arc<Self>,
        tenant: TenantId,
        name: &str,
        f: F,
        items: impl FnOnce(&T) -> usize,
    ) -> Option<Result<T, CallError>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Instance) -> Result<T, CallError> + Send + 'static,
    {
        let slot = match self.tenant(tenant).await {
            Ok(plugins) => plugins
                .all
                .iter()
                .find(|s| s.install.name == name)
                .cloned()?,
            Err(e) => {
                return Some(Err(CallError::Host(format!(
                    "reading the tenant's plugins: {e}"
                ))));
            }
        };
        Some(
            self.call_slot(tenant, slot, CallPolicy::MAIN, f, items)
                .await,
        )
    }

    /// [`PluginHost::call`] for a slot at hand, accounted for as `policy` says.
    pub(crate) async fn call_slot<T, F>(
        self: &Arc<Self>,
        tenant: TenantId,
        slot: Arc<Slot>,
        policy: CallPolicy,
        f: F,
        items: impl FnOnce(&T) -> usize,
    ) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Instance) -> Result<T, CallError> + Send + 'static,
    {
        let (this, handle, mine) = (
            self.clone(),
            tokio::runtime::Handle::current(),
            slot.clone(),
        );
        let started = std::time::Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            this.call_blocking(&handle, tenant, &mine, policy, f)
        })
        .await;
        let (result, called) = match joined {
            Ok(c) => c,
            // A panic of the host's own code around the call (the slot recovers at its next call).
            Err(e) => {
                let called = Called {
                    slot,
                    policy,
                    kv: Vec::new(),
                    wall: started.elapsed(),
                    cpu: Duration::ZERO,
                };
                (
                    Err(CallError::Host(format!("the call did not finish: {e}"))),
                    called,
                )
            }
        };
        let n = result.as_ref().map_or(0, items);
        self.settle(tenant, called, result.as_ref().err(), n).await;
        result
    }

    /// Records what a call did (`failure` as the caller judged it, after its own checks of the
    /// answer; `items` what it produced).
    pub(crate) async fn settle(
        &self,
        tenant: TenantId,
        called: Called,
        failure: Option<&CallError>,
        items: usize,
    ) {
        let name = called.slot.install.name.clone();
        let micros = called.wall.as_micros() as u64;
        self.stats
            .record(&name, micros, called.cpu, failure.map(|f| f.kind()), items);
        {
            let mut all = self.health.lock().unwrap();
            let h = all.entry((tenant, name.clone())).or_default();
            h.calls += 1;
            h.call_micros.add(micros as f64);
            h.cpu_micros += called.cpu.as_micros() as u64;
            // The hub's own failures are logged as such, not shown as the plugin's.
            if let Some(f) = failure.filter(|f| !matches!(f, CallError::Host(_))) {
                h.failures += 1;
                h.last_error = Some(f.to_string());
            }
        }
        if called.policy.charged {
            self.charge(tenant, &name, called.cpu);
        }
        if called.policy.defer_kv {
            called
                .slot
                .pending_kv
                .lock()
                .unwrap()
                .extend(called.kv.iter().cloned());
        } else if !called.kv.is_empty()
            && let Err(e) = self
                .storage
                .plugins()
                .apply_plugin_kv(tenant, &name, &called.kv)
                .await
        {
            tracing::warn!(tenant = %tenant, plugin = %name, error = %e, "persisting plugin kv failed");
        }
        match failure {
            None => {
                if called.slot.failures.swap(0, Ordering::Relaxed) > 0 {
                    let _ = self
                        .storage
                        .plugins()
                        .record_plugin_health(tenant, &name, 0, None, hub_core::time::now_ms())
                        .await;
                }
            }
            Some(f @ CallError::Host(_)) => {
                tracing::error!(tenant = %tenant, plugin = %name, error = %f, "a plugin call failed on the hub's side; not counted against the plugin");
            }
            Some(f) if !called.policy.counts => {
                tracing::warn!(tenant = %tenant, plugin = %name, failure = f.kind(), error = %f, "plugin call failed (not counted towards disabling it)");
            }
            Some(f) => {
                let streak = called.slot.failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(tenant = %tenant, plugin = %name, failure = f.kind(), streak, error = %f, "plugin call failed");
                let disable = (streak >= u64::from(self.config.max_consecutive_failures))
                    .then(|| format!("disabled after {streak} failures in a row; the last: {f}"));
                self.record_health(tenant, &name, streak as i64, disable.as_deref())
                    .await;
            }
        }
        self.disable_if_over_budget(tenant).await;
    }

    /// Stores a plugin's failure streak (and, with a reason, disables it for the tenant).
    pub(crate) async fn record_health(
        &self,
        tenant: TenantId,
        name: &str,
        streak: i64,
        disable: Option<&str>,
    ) {
        if let Err(e) = self
            .storage
            .plugins()
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
