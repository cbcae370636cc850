//! The `kv` import: a small per-(tenant, plugin) store, within a quota, whose writes become
//! permanent only when the call that made them succeeds.

use std::collections::BTreeMap;

use crate::bindings::kv;

use super::HostState;

/// Longest kv key.
pub const MAX_KV_KEY_BYTES: usize = 256;

/// The per-instance key-value store: what is persisted (`committed`) plus what the running call
/// wrote (`pending`), which becomes committed only when the call succeeds.
#[derive(Debug, Default)]
pub struct KvState {
    pub granted: bool,
    pub quota_bytes: usize,
    committed: BTreeMap<String, Vec<u8>>,
    pending: BTreeMap<String, Option<Vec<u8>>>,
}

impl KvState {
    pub fn new(granted: bool, quota_bytes: usize, initial: BTreeMap<String, Vec<u8>>) -> Self {
        Self {
            granted,
            quota_bytes,
            committed: initial,
            pending: BTreeMap::new(),
        }
    }

    fn get(&self, key: &str) -> Option<&Vec<u8>> {
        match self.pending.get(key) {
            Some(v) => v.as_ref(),
            None => self.committed.get(key),
        }
    }

    fn used_bytes_with(&self, key: &str, len: usize) -> usize {
        let mut total = 0usize;
        for (k, v) in &self.committed {
            if k != key && !self.pending.contains_key(k) {
                total += k.len() + v.len();
            }
        }
        for (k, v) in &self.pending {
            if k != key
                && let Some(v) = v
            {
                total += k.len() + v.len();
            }
        }
        total + key.len() + len
    }

    /// Makes the running call's writes permanent and returns them for the host to persist
    /// (`None` = deleted).
    pub fn commit(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let changes: Vec<_> = std::mem::take(&mut self.pending).into_iter().collect();
        for (k, v) in &changes {
            match v {
                Some(v) => {
                    self.committed.insert(k.clone(), v.clone());
                }
                None => {
                    self.committed.remove(k);
                }
            }
        }
        changes
    }

    pub fn discard(&mut self) {
        self.pending.clear();
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        if !self.kv.granted {
            return None;
        }
        self.kv.get(&key).cloned()
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        if !self.kv.granted {
            return Err("kv is not granted to this plugin".into());
        }
        if key.is_empty() || key.len() > MAX_KV_KEY_BYTES {
            return Err(format!(
                "kv key must be 1 to {MAX_KV_KEY_BYTES} bytes; this one is {}",
                key.len()
            ));
        }
        let used = self.kv.used_bytes_with(&key, value.len());
        if used > self.kv.quota_bytes {
            return Err(format!(
                "kv quota exceeded: storing {} bytes under `{key}` would use {used} of {} bytes",
                value.len(),
                self.kv.quota_bytes
            ));
        }
        self.kv.pending.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: String) {
        if self.kv.granted {
            self.kv.pending.insert(key, None);
        }
    }

    fn keys(&mut self, prefix: String) -> Vec<String> {
        if !self.kv.granted {
            return Vec::new();
        }
        let mut keys: Vec<String> = self
            .kv
            .committed
            .keys()
            .filter(|k| k.starts_with(&prefix) && !self.kv.pending.contains_key(*k))
            .cloned()
            .collect();
        keys.extend(
            self.kv
                .pending
                .iter()
                .filter(|(k, v)| k.starts_with(&prefix) && v.is_some())
                .map(|(k, _)| k.clone()),
        );
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_quota_counts_pending_and_committed() {
        let mut kv = KvState::new(true, 100, BTreeMap::from([("a".to_string(), vec![0; 50])]));
        assert_eq!(kv.used_bytes_with("b", 40), 51 + 41);
        kv.pending.insert("a".into(), None);
        assert_eq!(kv.used_bytes_with("b", 40), 41);
        let changes = kv.commit();
        assert_eq!(changes, vec![("a".to_string(), None)]);
        assert!(kv.get("a").is_none());
    }
}
