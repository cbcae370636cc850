//! API-key authentication: the only place a [`TenantId`] is minted from a request.
//!
//! Keys look like `hub_<8 chars>_<32 chars>`. The first part (`hub_<8 chars>`) is the visible,
//! unique prefix used to find the key; the database holds only the SHA-256 of the whole key. Keys
//! are 190 bits of randomness, so a fast hash is enough (no password hashing is needed).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use hub_core::{ApiKeyScope, TenantId};
use hub_storage::{ApiKeyRecord, NewApiKey};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// Who is calling: a tenant, through one of its keys, with these scopes.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantId,
    pub key_id: i64,
    pub key_prefix: String,
    pub scopes: Vec<ApiKeyScope>,
}

impl Principal {
    /// 403 unless the key carries `scope`.
    pub fn require(&self, scope: ApiKeyScope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this API key ({}) lacks the '{scope}' scope; create a key with --scopes {scope}",
                self.key_prefix
            )))
        }
    }
}

/// Longest credential we look at; anything longer is malformed, not merely wrong.
const MAX_CREDENTIAL_BYTES: usize = 256;
/// How long a verified key is trusted without asking the database again (revocation delay).
const CACHE_TTL: Duration = Duration::from_secs(30);
/// `last_used_at` is written at most this often per key.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Verified keys by the SHA-256 of the full key, with the time they were checked.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<String, (ApiKeyRecord, Instant, Instant)>>,
}

impl KeyCache {
    /// A key verified less than [`CACHE_TTL`] ago.
    fn get(&self, hash: &str) -> Option<ApiKeyRecord> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let (record, checked, _) = entries.get(hash)?;
        (checked.elapsed() < CACHE_TTL).then(|| record.clone())
    }

    /// Forgets a key (revoked or rotated here), so that the next request asks the database.
    pub fn forget(&self, key_id: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (record, _, _)| record.id != key_id);
    }

    /// Remembers a verified key; says whether its `last_used_at` is due for an update.
    fn put(&self, hash: String, record: ApiKeyRecord) -> bool {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() > 10_000 {
            entries.retain(|_, (_, checked, _)| checked.elapsed() < CACHE_TTL);
        }
        let now = Instant::now();
        let last_touch = entries.get(&hash).map(|(_, _, touched)| *touched);
        let touch = last_touch.is_none_or(|t| t.elapsed() >= TOUCH_EVERY);
        entries.insert(
            hash,
            (
                record,
                now,
                if touch {
                    now
                } else {
                    last_touch.unwrap_or(now)
                },
            ),
        );
        touch
    }
}

/// Per-key token buckets: a key may make `rate` requests per second on average and up to two
/// seconds' worth at once. Per replica: N replicas let a key make up to N times its rate.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: std::sync::Mutex<HashMap<i64, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one request from `key_id`'s bucket, or says how many seconds until one is there.
    pub fn take(&self, key_id: i64, rate_per_s: u32) -> Result<(), u64> {
        if rate_per_s == 0 {
            return Ok(());
        }
        let rate = f64::from(rate_per_s);
        let burst = rate * 2.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Full buckets are the same as no bucket.
            buckets.retain(|_, (tokens, at)| *tokens + at.elapsed().as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(key_id).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

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

/// Replaces `old` with a new key of the same name, scopes, expiry and rate limit; `old` stops
/// working at `until_ms`. Returns the new secret, the new record and the old one as updated.
pub async fn rotate_api_key(
    storage: &dyn hub_storage::Storage,
    old: &ApiKeyRecord,
    now_ms: i64,
    until_ms: i64,
) -> Result<(String, ApiKeyRecord, ApiKeyRecord), hub_storage::StorageError> {
    let (secret, mut new_key) = generate_api_key(&old.name, old.scopes.clone(), old.expires_at_ms);
    new_key.rate_limit_per_s = old.rate_limit_per_s;
    new_key.rotated_from = Some(old.id);
    let record = storage.create_api_key(old.tenant, &new_key, now_ms).await?;
    let replaced = storage
        .revoke_api_key(old.tenant, old.id, until_ms)
        .await?
        .unwrap_or_else(|| old.clone());
    Ok((secret, record, replaced))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn credential(parts: &Parts) -> Result<&str, ApiError> {
    let missing = || {
        ApiError::Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>' (or 'X-API-Key: <key>')".into(),
        )
    };
    let raw = if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| {
            ApiError::BadRequest("the Authorization header is not valid text".into())
        })?;
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must use the Bearer scheme".into())
            })?
    } else if let Some(v) = parts.headers.get("x-api-key") {
        v.to_str()
            .map_err(|_| ApiError::BadRequest("the X-API-Key header is not valid text".into()))?
    } else {
        return Err(missing());
    };
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(missing());
    }
    if raw.len() > MAX_CREDENTIAL_BYTES {
        return Err(ApiError::BadRequest(format!(
            "the API key is longer than {MAX_CREDENTIAL_BYTES} bytes; it is malformed"
        )));
    }
    Ok(raw)
}

/// The visible prefix of a well-formed key (`hub_xxxxxxxx`).
fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("hub_")?;
    let end = rest.find('_')?;
    Some(&key[..4 + end])
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = credential(parts)?;
        let invalid = || ApiError::Unauthorized("invalid API key".into());
        let hash = hash_key(key);
        let record = match state.keys.get(&hash) {
            Some(record) => record,
            None => {
                let prefix = prefix_of(key).ok_or_else(invalid)?;
                let record = state
                    .storage
                    .api_key_by_prefix(prefix)
                    .await?
                    .ok_or_else(invalid)?;
                if !constant_time_eq(record.secret_hash.as_bytes(), hash.as_bytes()) {
                    return Err(invalid());
                }
                if state.keys.put(hash, record.clone()) {
                    let (storage, tenant, id) = (state.storage.clone(), record.tenant, record.id);
                    tokio::spawn(async move {
                        if let Err(e) = storage
                            .touch_api_key(tenant, id, hub_core::time::now_ms())
                            .await
                        {
                            tracing::debug!(error = %e, "could not record key use");
                        }
                    });
                }
                record
            }
        };
        let now = hub_core::time::now_ms();
        if record.revoked_at_ms.is_some_and(|t| t <= now) {
            return Err(ApiError::Unauthorized("this API key was revoked".into()));
        }
        if record.expires_at_ms.is_some_and(|t| t <= now) {
            return Err(ApiError::Unauthorized("this API key has expired".into()));
        }
        let rate = record
            .rate_limit_per_s
            .unwrap_or(state.config.api_key_rate_limit_per_s);
        if let Err(retry_after_secs) = state.limiter.take(record.id, rate) {
            state.metrics.rate_limited.inc();
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "API key {} is over its limit of {rate} requests per second; retry after {retry_after_secs} s",
                    record.prefix
                ),
                retry_after_secs,
            });
        }
        Ok(Principal {
            tenant: record.tenant,
            key_id: record.id,
            key_prefix: record.prefix,
            scopes: record.scopes,
        })
    }
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
        assert!(
            constant_time_eq(b"ab", b"ab")
                && !constant_time_eq(b"ab", b"ac")
                && !constant_time_eq(b"a", b"ab")
        );
    }
}
