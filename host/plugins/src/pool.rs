//! Live instances: one per (tenant, plugin), made on first use with the plugin's `kv`, kept behind
//! a lock and reused; at most `max_instances` at once, the least recently used dropped first. Past
//! three quarters of the plugin memory cap, idle instances are dropped, least recently used first; an
//! instance unused for the idle-release period is dropped, and its memory goes back to the system.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hub_core::TenantId;
use hub_runtime::{CallError, Grants, Instance, Plugin};
use hub_storage::PluginInstall;

use super::{PluginHost, TenantPlugins};

pub(super) struct Slot {
    pub(super) install: PluginInstall,
    pub(super) plugin: Plugin,
    pub(super) grants: Grants,
    /// What `configure` is given: the install's configuration less the host's part.
    pub(super) config: String,
    /// A detector's or forecaster's series, resolved when the slot was made.
    pub(super) series: Option<hub_marketplace::SeriesSettings>,
    pub(super) instance: Mutex<Option<Instance>>,
    pub(super) failures: AtomicU64,
    pub(super) last_used: AtomicU64,
    /// Wall-clock milliseconds of its last call.
    pub(super) used_at_ms: AtomicU64,
    pub(super) last_refresh: Mutex<Option<Instant>>,
    /// `kv` writes of a `sync` whose events are not stored yet (see `integration`).
    pub(super) pending_kv: Mutex<Vec<(String, Option<Vec<u8>>)>>,
    /// The host's count of live instances, kept right when a slot goes away with its instance.
    pub(super) live: Arc<AtomicU64>,
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

impl PluginHost {
    /// The slot's instance, made again (configured) when there is none or the last one trapped.
    pub(super) fn live_instance<'g>(
        &self,
        handle: &tokio::runtime::Handle,
        tenant: TenantId,
        slot: &Slot,
        current: &'g mut Option<Instance>,
    ) -> Result<&'g mut Instance, CallError> {
        if current.as_ref().is_none_or(|i| i.is_broken()) {
            self.forget_instance(current);
            *current = Some(self.instantiate(handle, tenant, slot)?);
        }
        Ok(current.as_mut().expect("instantiated above"))
    }

    /// A new instance for `slot`, configured; drops the least recently used one when at the cap.
    pub(super) fn instantiate(
        &self,
        handle: &tokio::runtime::Handle,
        tenant: TenantId,
        slot: &Slot,
    ) -> Result<Instance, CallError> {
        if self.live_instances.load(Ordering::Relaxed) as usize >= self.config.max_instances {
            self.evict_one();
        }
        self.evict_for_memory();
        let kv = handle
            .block_on(self.storage.plugins().plugin_kv(tenant, &slot.install.name))
            .map_err(|e| CallError::Host(format!("loading the plugin's kv: {e}")))?;
        let mut instance = self
            .runtime
            .instantiate(&slot.plugin, &tenant.to_string(), &slot.grants, kv)
            .map_err(CallError::Load)?;
        self.live_instances.fetch_add(1, Ordering::Relaxed);
        instance.configure(&slot.config)?;
        Ok(instance)
    }

    /// Slots whose instance is live and not in a call now.
    fn idle_slots(&self) -> Vec<Arc<Slot>> {
        let tenants: Vec<Arc<TenantPlugins>> =
            self.tenants.lock().unwrap().values().cloned().collect();
        tenants
            .iter()
            .flat_map(|t| t.all.iter())
            .filter(|s| s.instance.try_lock().map(|g| g.is_some()).unwrap_or(false))
            .cloned()
            .collect()
    }

    /// Drops the instance in `current` (its memory goes back at once), keeping the count of live
    /// instances right; false when there was none.
    pub(super) fn forget_instance(&self, current: &mut Option<Instance>) -> bool {
        let dropped = current.take().is_some();
        if dropped {
            self.live_instances.fetch_sub(1, Ordering::Relaxed);
        }
        dropped
    }

    /// Drops the slot's instance if it is still idle.
    fn drop_instance(&self, slot: &Slot) -> bool {
        slot.instance
            .try_lock()
            .is_ok_and(|mut g| self.forget_instance(&mut g))
    }

    fn evict_one(&self) {
        if let Some(s) = self
            .idle_slots()
            .into_iter()
            .min_by_key(|s| s.last_used.load(Ordering::Relaxed))
        {
            self.drop_instance(&s);
        }
    }

    /// Past three quarters of the plugin memory cap, drops idle instances, the least recently
    /// used first, until under it again: a tenant's new instance then finds room without anyone's
    /// call failing.
    pub(super) fn evict_for_memory(&self) {
        let memory = self.runtime.memory();
        let high = memory.caps().0 / 4 * 3;
        if memory.used() <= high {
            return;
        }
        let mut idle = self.idle_slots();
        idle.sort_by_key(|s| s.last_used.load(Ordering::Relaxed));
        for slot in idle {
            if memory.used() <= high {
                break;
            }
            if self.drop_instance(&slot) {
                self.stats.memory_evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Drops the instances unused for the idle-release period; the next call makes a new one
    /// (configured, with its `kv`), as after a restart.
    pub fn release_idle(&self) {
        let Some(idle) = self.config.idle_release else {
            return;
        };
        let before = hub_core::time::now_ms().saturating_sub(idle.as_millis() as i64);
        for slot in self.idle_slots() {
            if (slot.used_at_ms.load(Ordering::Relaxed) as i64) < before
                && self.drop_instance(&slot)
            {
                self.stats.idle_releases.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
