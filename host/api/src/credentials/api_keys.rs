//! API keys: `hub_<8 chars>_<32 chars>`. The first part (`hub_<8 chars>`) is the visible, unique
//! prefix used to find the key; storage holds only the SHA-256 of the whole key ([`hash_key`]).
//! Keys are 190 bits of randomness, so a fast hash is enough.

use hub_core::{ApiKeyScope, TenantId};
use hub_storage::{ApiKeyRecord, NewApiKey, Storage, StorageError};
use rand::Rng;

use super::hash_key;

/// A new random key: the full secret (shown once) and what storage keeps.
pub fn generate_api_key(
    name: &str,
    scopes: Vec<ApiKeyScope>,
    expires_at_ms: Option<i64>,
) -> (String, NewApiKey) {
    let mut rng = rand::rng();
    let mut part = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
            .collect()
    };
    let prefix = format!("hub_{}", part(8));
    let full = format!("{prefix}_{}", part(32));
    let key = NewApiKey {
        name: name.to_string(),
        prefix,
        secret_hash: hash_key(&full),
        scopes,
        expires_at_ms,
        rate_limit_per_s: None,
        rotated_from: None,
    };
    (full, key)
}

/// The visible prefix of a well-formed key (`hub_xxxxxxxx`).
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("hub_")?;
    let end = rest.find('_')?;
    Some(&key[..4 + end])
}

/// Replaces `old` with a new key of the same name, scopes, expiry and rate limit; `old` stops
/// working at `until_ms`. Returns the new secret, the new record and the old one as updated.
pub async fn rotate_api_key(
    storage: &dyn Storage,
    old: &ApiKeyRecord,
    now_ms: i64,
    until_ms: i64,
) -> Result<(String, ApiKeyRecord, ApiKeyRecord), StorageError> {
    let (secret, mut new_key) = generate_api_key(&old.name, old.scopes.clone(), old.expires_at_ms);
    new_key.rate_limit_per_s = old.rate_limit_per_s;
    new_key.rotated_from = Some(old.id);
    let record = storage
        .tenants()
        .create_api_key(old.tenant, &new_key, now_ms)
        .await?;
    let replaced = storage
        .tenants()
        .revoke_api_key(old.tenant, old.id, until_ms)
        .await?
        .unwrap_or_else(|| old.clone());
    Ok((secret, record, replaced))
}

/// The tenant's key named by its id or its visible prefix (`hub_ab12cd34`).
pub async fn find_api_key(
    storage: &dyn Storage,
    tenant: TenantId,
    name: &str,
) -> Result<Option<ApiKeyRecord>, StorageError> {
    let id: Option<i64> = name.parse().ok();
    Ok(storage
        .tenants()
        .list_api_keys(tenant)
        .await?
        .into_iter()
        .find(|k| Some(k.id) == id || k.prefix == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_prefix_and_hash() {
        let (full, key) = generate_api_key("k", vec![ApiKeyScope::Ingest], None);
        assert_eq!(prefix_of(&full), Some(key.prefix.as_str()));
        assert_eq!(full.len(), 4 + 8 + 1 + 32);
        assert_eq!(key.secret_hash, hash_key(&full));
        assert_ne!(generate_api_key("k", vec![], None).0, full);
        assert_eq!(prefix_of("nope"), None);
        assert_eq!(prefix_of("hub_abc"), None);
    }
}
