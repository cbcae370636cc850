//! The plugin's key-value store, scoped to (tenant, plugin) and persisted by the host. Needs
//! `kv = true` under `[capabilities]` in plugin.toml. Writes made during a call are kept only
//! if the call succeeds.

use crate::bindings::enricher::hub::plugin0_1_0::kv as raw;

pub fn get(key: &str) -> Option<Vec<u8>> {
    raw::get(key)
}

/// Fails when the key is longer than 256 bytes or the quota would be exceeded.
pub fn set(key: &str, value: &[u8]) -> Result<(), String> {
    raw::set(key, value)
}

pub fn delete(key: &str) {
    raw::delete(key)
}

/// Keys starting with `prefix`, ascending.
pub fn keys(prefix: &str) -> Vec<String> {
    raw::keys(prefix)
}

/// `get` + JSON decoding; `None` when missing or not decodable.
pub fn get_json<T: serde::de::DeserializeOwned>(key: &str) -> Option<T> {
    get(key).and_then(|v| serde_json::from_slice(&v).ok())
}

pub fn set_json<T: serde::Serialize>(key: &str, value: &T) -> Result<(), String> {
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    set(key, &bytes)
}
