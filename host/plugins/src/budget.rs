//! Each tenant's plugin CPU-time budget: a token bucket refilled at the tenant's rate (CPU time
//! per second of wall time) and holding at most one second's worth. A pass of the tenant's plugins
//! is charged the CPU time it took; while the balance is negative the tenant's next pass waits
//! (throttled) until the bucket has refilled to zero. A tenant throttled without a break for
//! longer than the operator allows loses the plugin that used the most CPU meanwhile, disabled
//! with the figures in its reason.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hub_core::TenantId;

use super::{BudgetHealth, PluginHost};

impl PluginHost {
    /// The tenant's CPU time per second: the operator's override, or the default.
    fn budget_rate(&self, tenant: TenantId) -> Duration {
        self.config
            .tenant_cpu_budgets
            .get(&tenant)
            .copied()
            .unwrap_or(self.config.cpu_budget)
    }

    /// How long the tenant's next pass must wait for its budget (`None`: go now).
    pub fn budget_wait(&self, tenant: TenantId) -> Option<Duration> {
        let rate = self.budget_rate(tenant);
        if rate.is_zero() {
            return None;
        }
        let now = Instant::now();
        let wait = {
            let mut budgets = self.budgets.lock().unwrap();
            let b = budgets
                .entry(tenant)
                .or_insert_with(|| CpuBudget::new(rate, now));
            b.set_rate(rate);
            b.wait(now)
        };
        if let Some(w) = wait {
            self.stats.add_throttled(w);
            tracing::debug!(tenant = %tenant, wait_ms = w.as_millis() as u64, "tenant over its plugin CPU budget; throttled");
        }
        wait
    }

    /// Whether the tenant has budget left now (without waiting or counting a throttle): for
    /// calls that can be put off, such as a periodic refresh.
    pub fn in_budget(&self, tenant: TenantId) -> bool {
        let now = Instant::now();
        self.budgets
            .lock()
            .unwrap()
            .get_mut(&tenant)
            .is_none_or(|b| b.in_budget(now))
    }

    /// Charges a call's CPU time to its tenant.
    pub(super) fn charge(&self, tenant: TenantId, plugin: &str, cpu: Duration) {
        if self.budget_rate(tenant).is_zero() {
            return;
        }
        let now = Instant::now();
        let rate = self.budget_rate(tenant);
        self.budgets
            .lock()
            .unwrap()
            .entry(tenant)
            .or_insert_with(|| CpuBudget::new(rate, now))
            .charge(plugin, cpu);
    }

    /// Disables the tenant's hungriest plugin once it has been throttled for too long.
    pub(super) async fn disable_if_over_budget(&self, tenant: TenantId) {
        let verdict = self
            .budgets
            .lock()
            .unwrap()
            .get_mut(&tenant)
            .and_then(|b| b.over_budget(Instant::now(), self.config.throttle_disable_after));
        let Some(v) = verdict else { return };
        // The failure streak stays as it is: the reason says why it was disabled.
        let streak = self
            .tenants
            .lock()
            .unwrap()
            .get(&tenant)
            .and_then(|t| t.all.iter().find(|s| s.install.name == v.plugin).cloned())
            .map_or(0, |s| {
                s.failures.load(std::sync::atomic::Ordering::Relaxed) as i64
            });
        self.stats.over_budget(&v.plugin);
        self.record_health(tenant, &v.plugin, streak, Some(&v.reason))
            .await;
    }

    /// The tenant's budget and how much it was throttled, on this replica.
    pub fn budget(&self, tenant: TenantId) -> BudgetHealth {
        let rate = self.budget_rate(tenant);
        let budgets = self.budgets.lock().unwrap();
        let b = budgets.get(&tenant);
        BudgetHealth {
            cpu_per_second: rate,
            throttled: b.map_or(Duration::ZERO, |b| b.throttled),
            throttled_now: b.is_some_and(|b| b.episode.is_some()),
        }
    }
}

/// One tenant's bucket and its current throttling episode.
#[derive(Debug)]
pub(crate) struct CpuBudget {
    /// CPU microseconds per second of wall time.
    rate_us: u64,
    balance_us: i64,
    refilled: Instant,
    episode: Option<Episode>,
    /// Time spent throttled, in total (for health and `/metrics`).
    pub throttled: Duration,
}

/// A stretch of passes that each started over budget.
#[derive(Debug)]
struct Episode {
    since: Instant,
    /// CPU microseconds and calls per plugin during the episode.
    spent: HashMap<String, (u64, u64)>,
}

/// The plugin to disable, and why, in words a tenant's admin understands.
#[derive(Debug, PartialEq)]
pub(crate) struct OverBudget {
    pub plugin: String,
    pub reason: String,
}

impl CpuBudget {
    pub fn new(rate: Duration, now: Instant) -> Self {
        let rate_us = rate.as_micros().min(u128::from(u64::MAX)) as u64;
        Self {
            rate_us,
            balance_us: rate_us as i64,
            refilled: now,
            episode: None,
            throttled: Duration::ZERO,
        }
    }

    /// Takes a new rate (an operator's change) without forgetting what was spent.
    pub fn set_rate(&mut self, rate: Duration) {
        self.rate_us = rate.as_micros().min(u128::from(u64::MAX)) as u64;
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled);
        self.refilled = now;
        let add =
            (elapsed.as_micros() * u128::from(self.rate_us) / 1_000_000).min(i64::MAX as u128);
        self.balance_us = self
            .balance_us
            .saturating_add(add as i64)
            .min(self.rate_us as i64);
    }

    /// Whether the balance is not negative (after refilling).
    pub fn in_budget(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.balance_us >= 0 || self.rate_us == 0
    }

    /// How long the next pass must wait, starting or ending a throttling episode.
    pub fn wait(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        if self.balance_us >= 0 || self.rate_us == 0 {
            self.episode = None;
            return None;
        }
        if self.episode.is_none() {
            self.episode = Some(Episode {
                since: now,
                spent: HashMap::new(),
            });
        }
        let wait = Duration::from_micros(
            ((-self.balance_us) as u128 * 1_000_000 / u128::from(self.rate_us)) as u64,
        );
        self.throttled += wait;
        Some(wait)
    }

    /// Charges one plugin call's CPU time.
    pub fn charge(&mut self, plugin: &str, cpu: Duration) {
        let us = cpu.as_micros().min(i64::MAX as u128) as i64;
        self.balance_us = self.balance_us.saturating_sub(us);
        if let Some(e) = &mut self.episode {
            let s = e.spent.entry(plugin.to_string()).or_default();
            s.0 += us as u64;
            s.1 += 1;
        }
    }

    /// After a pass: the plugin to disable when the tenant has been throttled for `limit` or
    /// longer (`None` as `limit` never disables). Ends the episode when it names one.
    pub fn over_budget(&mut self, now: Instant, limit: Option<Duration>) -> Option<OverBudget> {
        let limit = limit?;
        let e = self.episode.as_ref()?;
        let throttled_for = now.saturating_duration_since(e.since);
        if throttled_for < limit {
            return None;
        }
        let (plugin, (us, calls)) = e
            .spent
            .iter()
            .max_by(|a, b| a.1.0.cmp(&b.1.0).then_with(|| b.0.cmp(a.0)))
            .map(|(p, s)| (p.clone(), *s))?;
        let reason = format!(
            "disabled for using more than this tenant's plugin CPU budget ({} ms per second): \
             throttled for {} s, during which it used {} ms of CPU in {} call{} ({} ms each)",
            self.rate_us / 1000,
            throttled_for.as_secs(),
            us / 1000,
            calls,
            if calls == 1 { "" } else { "s" },
            us / 1000 / calls.max(1),
        );
        self.episode = None;
        Some(OverBudget { plugin, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_pass_within_budget_never_waits() {
        let t0 = Instant::now();
        let mut b = CpuBudget::new(250 * MS, t0);
        for i in 0..100 {
            let now = t0 + i * 100 * MS;
            assert_eq!(b.wait(now), None, "pass {i}");
            b.charge("cost", 20 * MS);
        }
        assert_eq!(b.throttled, Duration::ZERO);
    }

    #[test]
    fn a_pass_over_budget_waits_until_the_bucket_refills() {
        let t0 = Instant::now();
        let mut b = CpuBudget::new(250 * MS, t0);
        assert_eq!(b.wait(t0), None);
        b.charge("slow", 1000 * MS); // 250 - 1000 = -750 ms
        assert_eq!(b.wait(t0), Some(3000 * MS));
        // After the wait the balance is back at zero: the next pass runs.
        assert_eq!(b.wait(t0 + 3000 * MS), None);
        // A bucket holds at most one second's worth, however long the tenant was idle.
        let later = t0 + 3600 * 1000 * MS;
        assert_eq!(b.wait(later), None);
        b.charge("slow", 500 * MS);
        assert_eq!(b.wait(later), Some(1000 * MS));
    }

    #[test]
    fn a_tenant_throttled_too_long_loses_its_hungriest_plugin() {
        let t0 = Instant::now();
        let mut b = CpuBudget::new(250 * MS, t0);
        let limit = Some(10_000 * MS);
        let mut now = t0;
        let mut verdict = None;
        for _ in 0..10 {
            if let Some(w) = b.wait(now) {
                now += w;
                // The wait ends with the balance at zero: the episode goes on only if this pass
                // overspends again, which it does.
            }
            b.charge("cost", 5 * MS);
            b.charge("slow", 1000 * MS);
            verdict = b.over_budget(now, limit);
            if verdict.is_some() {
                break;
            }
        }
        let v = verdict.expect("disabled within ten passes");
        assert_eq!(v.plugin, "slow");
        assert!(
            v.reason.starts_with(
                "disabled for using more than this tenant's plugin CPU budget (250 ms per second): throttled for 1"
            ),
            "{}",
            v.reason
        );
        assert!(v.reason.contains("(1000 ms each)"), "{}", v.reason);
        // The next episode starts afresh.
        assert_eq!(b.over_budget(now, limit), None);
    }

    #[test]
    fn no_limit_throttles_but_never_disables() {
        let t0 = Instant::now();
        let mut b = CpuBudget::new(100 * MS, t0);
        let mut now = t0;
        for _ in 0..50 {
            if let Some(w) = b.wait(now) {
                now += w;
            }
            b.charge("slow", 1000 * MS);
            assert_eq!(b.over_budget(now, None), None);
        }
        assert!(b.throttled >= 400_000 * MS);
    }
}
