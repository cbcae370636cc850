//! What each (tenant, plugin) did on this replica: calls, failures, call and CPU times, for the
//! plugins page; and the same by plugin for `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hub_core::LatencySketch;

/// In-memory health of one (tenant, plugin) on this replica.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub calls: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    pub call_micros: LatencySketch,
    /// CPU time of its calls, microseconds.
    pub cpu_micros: u64,
}

/// A tenant's plugin CPU budget and how it was used on this replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetHealth {
    /// CPU time per second of wall time (zero: no budget).
    pub cpu_per_second: Duration,
    /// Time the tenant's plugin passes waited for budget, in total.
    pub throttled: Duration,
    /// Whether the tenant is over its budget now.
    pub throttled_now: bool,
}

/// Counters by plugin (for `/metrics`).
#[derive(Debug, Default)]
pub struct PluginStats {
    inner: Mutex<BTreeMap<String, PluginCounters>>,
    /// Time tenants' plugin passes waited for budget, microseconds, all tenants together.
    throttled_micros: AtomicU64,
    /// Idle instances dropped because plugin memory passed three quarters of its cap.
    pub memory_evictions: AtomicU64,
    /// Instances dropped after going unused for the idle-release period.
    pub idle_releases: AtomicU64,
}

#[derive(Debug, Default, Clone)]
pub struct PluginCounters {
    pub calls: u64,
    pub call_micros: u64,
    /// By failure kind (`deadline`, `memory`, `trap`, `error`, `invalid_output`, ...).
    pub failures: BTreeMap<&'static str, u64>,
    pub auto_disabled: u64,
    /// Of those, disabled for using more than their tenant's CPU budget.
    pub over_budget: u64,
    /// What successful calls produced: patches applied, anomalies found, items synced.
    pub items: u64,
    /// CPU time of the calls, microseconds.
    pub cpu_micros: u64,
}

impl PluginStats {
    pub fn snapshot(&self) -> BTreeMap<String, PluginCounters> {
        self.inner.lock().unwrap().clone()
    }

    /// Time tenants' plugin passes waited for budget, all tenants together.
    pub fn throttled(&self) -> Duration {
        Duration::from_micros(self.throttled_micros.load(Ordering::Relaxed))
    }

    pub(super) fn add_throttled(&self, wait: Duration) {
        self.throttled_micros
            .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
    }

    pub(super) fn record(
        &self,
        plugin: &str,
        micros: u64,
        cpu: Duration,
        failure: Option<&'static str>,
        items: usize,
    ) {
        let mut m = self.inner.lock().unwrap();
        let c = m.entry(plugin.to_string()).or_default();
        c.calls += 1;
        c.call_micros += micros;
        c.cpu_micros += cpu.as_micros() as u64;
        c.items += items as u64;
        if let Some(f) = failure {
            *c.failures.entry(f).or_default() += 1;
        }
    }

    pub(super) fn over_budget(&self, plugin: &str) {
        self.inner
            .lock()
            .unwrap()
            .entry(plugin.to_string())
            .or_default()
            .over_budget += 1;
    }

    pub(super) fn disabled(&self, plugin: &str) {
        self.inner
            .lock()
            .unwrap()
            .entry(plugin.to_string())
            .or_default()
            .auto_disabled += 1;
    }
}
