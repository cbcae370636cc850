//! Plugin instance memory, held to three limits: each instance's cap (its manifest's
//! `memory-mib`), each tenant's share of all its instances, and the whole process's. Every linear
//! memory an instance grows is counted against its tenant and the process when it grows (wasm
//! memories never shrink) and given back when the instance goes, so a tenant that fills its share
//! gets its own plugins' memory failures, and no tenant can take what the others need.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::CallError;

/// Which limit refused a growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    /// The instance's own cap.
    Instance,
    /// The tenant's share.
    Tenant,
    /// The process's.
    Hub,
}

/// The process's plugin memory, by tenant.
#[derive(Debug)]
pub struct MemoryLedger {
    cap: usize,
    tenant_cap: usize,
    used: AtomicUsize,
    tenants: Mutex<HashMap<String, Arc<AtomicUsize>>>,
}

impl MemoryLedger {
    pub fn new(cap: usize, tenant_cap: usize) -> Self {
        Self {
            cap,
            tenant_cap: tenant_cap.min(cap),
            used: AtomicUsize::new(0),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// The process's cap and each tenant's, in bytes.
    pub fn caps(&self) -> (usize, usize) {
        (self.cap, self.tenant_cap)
    }

    /// Bytes of linear memory all live instances hold.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Bytes the live instances of `tenant` hold.
    pub fn tenant_used(&self, tenant: &str) -> usize {
        self.tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .map_or(0, |t| t.load(Ordering::Relaxed))
    }

    pub(crate) fn account(self: &Arc<Self>, tenant: &str, instance_cap: usize) -> Account {
        let share = self
            .tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.to_string())
            .or_default()
            .clone();
        Account {
            ledger: self.clone(),
            tenant: share,
            instance_cap,
            held: 0,
            refused: None,
        }
    }
}

/// Adds `delta` to `counter` unless that passes `cap`.
fn reserve(counter: &AtomicUsize, delta: usize, cap: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(delta).filter(|total| *total <= cap)
        })
        .is_ok()
}

/// One instance's memory: what it holds and which limit, if any, last refused it more. It is the
/// store's `ResourceLimiter`; dropping it (with the store) gives the memory back.
#[derive(Debug)]
pub struct Account {
    ledger: Arc<MemoryLedger>,
    tenant: Arc<AtomicUsize>,
    instance_cap: usize,
    held: usize,
    pub(crate) refused: Option<MemoryLimit>,
}

impl Account {
    /// Bytes this instance holds.
    pub fn held(&self) -> usize {
        self.held
    }

    pub(crate) fn ledger(&self) -> &MemoryLedger {
        &self.ledger
    }

    pub(crate) fn instance_cap(&self) -> usize {
        self.instance_cap
    }

    fn grow(&mut self, current: usize, desired: usize) -> bool {
        if desired > self.instance_cap {
            self.refused = Some(MemoryLimit::Instance);
            return false;
        }
        let delta = desired.saturating_sub(current);
        if !reserve(&self.tenant, delta, self.ledger.tenant_cap) {
            self.refused = Some(MemoryLimit::Tenant);
            return false;
        }
        if !reserve(&self.ledger.used, delta, self.ledger.cap) {
            self.tenant.fetch_sub(delta, Ordering::AcqRel);
            self.refused = Some(MemoryLimit::Hub);
            return false;
        }
        self.held += delta;
        true
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.tenant.fetch_sub(self.held, Ordering::AcqRel);
        self.ledger.used.fetch_sub(self.held, Ordering::AcqRel);
    }
}

impl wasmtime::ResourceLimiter for Account {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// What refused the memory a call or a start of `tenant`'s instance asked for, if anything did.
pub(crate) fn memory_refusal(account: &Account, tenant: &str) -> Option<CallError> {
    let ledger = account.ledger();
    let (cap, tenant_cap) = ledger.caps();
    let mib = |b: usize| b >> 20;
    Some(match account.refused? {
        MemoryLimit::Instance => CallError::Memory(mib(account.instance_cap())),
        MemoryLimit::Tenant => CallError::MemoryShare(format!(
            "the tenant's plugins hold {} MiB, all of its plugin memory share of {} MiB (the operator's --plugin-tenant-memory-mib); this instance held {} MiB",
            mib(ledger.tenant_used(tenant)),
            mib(tenant_cap),
            mib(account.held())
        )),
        MemoryLimit::Hub => CallError::MemoryShare(format!(
            "all plugins together hold {} MiB, the hub's plugin memory cap of {} MiB (the operator's --plugin-memory-mib); this instance held {} MiB",
            mib(ledger.used()),
            mib(cap),
            mib(account.held())
        )),
    })
}

/// The default cap of all plugin memory: a quarter of this machine's physical memory, at least
/// 256 MiB.
pub fn default_memory_cap() -> usize {
    (physical_memory() / 4).max(256 << 20)
}

/// The default share of one tenant: an eighth of the hub's cap.
pub fn default_tenant_memory_cap(cap: usize) -> usize {
    cap / 8
}

/// This machine's physical memory in bytes (1 GiB when it cannot be read).
pub fn physical_memory() -> usize {
    // SAFETY: sysconf has no preconditions; a negative answer means "unknown".
    #[allow(unsafe_code)]
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && size > 0 {
        (pages as usize).saturating_mul(size as usize)
    } else {
        1 << 30
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_refused_by_the_first_limit_it_passes_and_given_back_on_drop() {
        let ledger = Arc::new(MemoryLedger::new(100, 60));
        let mut a = ledger.account("a", 50);
        assert!(a.grow(0, 40));
        assert!(!a.grow(40, 51), "its own cap");
        assert_eq!(a.refused, Some(MemoryLimit::Instance));
        let mut a2 = ledger.account("a", 50);
        assert!(!a2.grow(0, 30), "tenant a holds 40 of its 60");
        assert_eq!(a2.refused, Some(MemoryLimit::Tenant));
        assert!(a2.grow(0, 20));
        let mut b = ledger.account("b", 50);
        assert!(b.grow(0, 40));
        assert_eq!((ledger.used(), ledger.tenant_used("a")), (100, 60));
        let mut c = ledger.account("c", 50);
        assert!(!c.grow(0, 1), "the hub is full");
        assert_eq!(c.refused, Some(MemoryLimit::Hub));
        assert_eq!(ledger.tenant_used("c"), 0, "a hub refusal takes nothing");
        drop(a);
        assert_eq!((ledger.used(), ledger.tenant_used("a")), (60, 20));
        assert!(c.grow(0, 40));
        drop((a2, b, c));
        assert_eq!(ledger.used(), 0);
    }

    #[test]
    fn the_default_cap_is_sized_from_the_machine() {
        assert!(physical_memory() >= 64 << 20);
        assert_eq!(default_memory_cap(), (physical_memory() / 4).max(256 << 20));
    }
}
