//! Authentication and the permission matrix: the only place a [`TenantId`] is minted from a
//! request.
//!
//! A request proves who it is with an API key (`Authorization: Bearer hub_…` or `X-API-Key`), a
//! user's access token (`Authorization: Bearer <JWT>`), or, from a browser, the `hub_access`
//! cookie together with an `X-CSRF-Token` header equal to the `hub_csrf` cookie on every
//! request that changes something. Each handler then asks [`Principal::require`] for one
//! [`Right`]; API-key scopes and user roles both map onto rights (see the matrix in README).
//!
//! What a key looks like and how it is stored is `credentials::api_keys`; the cookies' names are
//! `cookies`.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use hub_core::{ApiKeyScope, Role, TenantId};
use hub_storage::ApiKeyRecord;

use crate::cookies::{self, ACCESS_COOKIE};
use crate::credentials::api_keys::prefix_of;
use crate::credentials::{constant_time_eq, hash_key};
use crate::{ApiError, AppState};

/// What a route needs. Every route asks for exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Send events.
    Ingest,
    /// Metrics and time series (dashboards).
    ReadMetrics,
    /// Events with their payloads.
    ReadEvents,
    /// The tenant's plugins, members and settings, read only.
    ReadConfig,
    /// Install, configure, order and remove plugins.
    ManagePlugins,
    /// Create, revoke and rotate API keys.
    ManageKeys,
    /// Add and remove members and set roles up to admin; reset their passwords.
    ManageMembers,
    /// Make or unmake owners.
    ManageOwners,
    /// Read and export the audit log.
    ReadAudit,
    /// Save, change and delete one's own views.
    SaveViews,
    /// Browse the plugin marketplace.
    BrowseCatalog,
    /// Change the tenant's settings (its retention).
    ManageSettings,
    /// Add, change and delete alert rules.
    ManageAlerts,
}

impl Right {
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Ingest => "ingest",
            Right::ReadMetrics => "read metrics",
            Right::ReadEvents => "read events",
            Right::ReadConfig => "read configuration",
            Right::ManagePlugins => "manage plugins",
            Right::ManageKeys => "manage API keys",
            Right::ManageMembers => "manage members",
            Right::ManageOwners => "manage owners",
            Right::ReadAudit => "read the audit log",
            Right::SaveViews => "save views",
            Right::BrowseCatalog => "browse the marketplace",
            Right::ManageSettings => "change settings",
            Right::ManageAlerts => "manage alert rules",
        }
    }

    /// The key scopes that grant this right.
    pub fn scopes(self) -> &'static [ApiKeyScope] {
        use ApiKeyScope::*;
        match self {
            Right::Ingest => &[Ingest],
            Right::BrowseCatalog => &[Ingest, Query, Admin],
            Right::ReadMetrics | Right::ReadEvents => &[Query],
            Right::ReadConfig => &[Query, Admin],
            Right::ManagePlugins
            | Right::ManageKeys
            | Right::ReadAudit
            | Right::ManageSettings
            | Right::ManageAlerts => &[Admin],
            Right::ManageMembers | Right::ManageOwners | Right::SaveViews => &[],
        }
    }

    /// The lowest role that holds this right (`None`: no role; API keys only).
    pub fn min_role(self) -> Option<Role> {
        match self {
            Right::Ingest => None,
            Right::ReadMetrics | Right::BrowseCatalog => Some(Role::Viewer),
            Right::ReadEvents | Right::ReadConfig | Right::SaveViews | Right::ManageAlerts => {
                Some(Role::Analyst)
            }
            Right::ManagePlugins
            | Right::ManageKeys
            | Right::ManageMembers
            | Right::ReadAudit
            | Right::ManageSettings => Some(Role::Admin),
            Right::ManageOwners => Some(Role::Owner),
        }
    }
}

/// Who is behind a request.
#[derive(Debug, Clone)]
pub enum Actor {
    Key {
        id: i64,
        prefix: String,
        scopes: Vec<ApiKeyScope>,
    },
    User {
        id: i64,
        email: String,
        role: Role,
        /// The login session.
        session: String,
        operator: bool,
        /// May publish plugins to the marketplace.
        publisher: bool,
    },
}

/// Who is calling, for which tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantId,
    pub actor: Actor,
    /// The client's address, for the audit log.
    pub source: Option<String>,
}

impl Principal {
    pub fn has(&self, right: Right) -> bool {
        match &self.actor {
            Actor::Key { scopes, .. } => right.scopes().iter().any(|s| scopes.contains(s)),
            Actor::User { role, .. } => right.min_role().is_some_and(|min| *role >= min),
        }
    }

    /// 403 unless the caller holds `right`, saying what would.
    pub fn require(&self, right: Right) -> Result<(), ApiError> {
        if self.has(right) {
            return Ok(());
        }
        Err(ApiError::Forbidden(match &self.actor {
            Actor::Key { prefix, .. } => match right.scopes() {
                [] => format!(
                    "API keys cannot {}; sign in as a user with that right",
                    right.as_str()
                ),
                scopes => format!(
                    "this API key ({prefix}) lacks the '{}' scope needed to {}",
                    scopes.last().map(|s| s.as_str()).unwrap_or_default(),
                    right.as_str()
                ),
            },
            Actor::User { role, .. } => match right.min_role() {
                Some(min) => format!(
                    "your role '{role}' cannot {}; that needs '{min}' or higher",
                    right.as_str()
                ),
                None => format!("users cannot {}; use an API key", right.as_str()),
            },
        }))
    }

    /// 403 unless the caller is a user with the publisher right.
    pub fn require_publisher(&self) -> Result<(), ApiError> {
        match &self.actor {
            Actor::User {
                publisher: true, ..
            } => Ok(()),
            Actor::User { .. } => Err(ApiError::Forbidden(
                "publishing plugins needs the publisher right, which an operator grants (`hub user create --publisher`)".into(),
            )),
            Actor::Key { .. } => Err(ApiError::Forbidden(
                "API keys cannot publish plugins; sign in as a user with the publisher right".into(),
            )),
        }
    }

    /// A user with the deployment-wide operator right.
    pub fn is_operator(&self) -> bool {
        matches!(self.actor, Actor::User { operator: true, .. })
    }

    /// `key:<prefix>` or `user:<email>`, as the audit log names actors.
    pub fn actor_label(&self) -> String {
        match &self.actor {
            Actor::Key { prefix, .. } => format!("key:{prefix}"),
            Actor::User { email, .. } => format!("user:{email}"),
        }
    }

    /// Changing `from` into `to` (`None`: no role, as before an invitation or after a removal)
    /// needs the right to manage members, and to manage owners when either is an owner.
    pub fn require_role_change(
        &self,
        from: Option<Role>,
        to: Option<Role>,
    ) -> Result<(), ApiError> {
        self.require(Right::ManageMembers)?;
        if from == Some(Role::Owner) || to == Some(Role::Owner) {
            self.require(Right::ManageOwners)?;
        }
        Ok(())
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
#[derive(Debug)]
pub struct RateLimiter<K = i64> {
    buckets: std::sync::Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K> Default for RateLimiter<K> {
    fn default() -> Self {
        Self {
            buckets: Default::default(),
        }
    }
}

impl<K: std::hash::Hash + Eq> RateLimiter<K> {
    /// Takes one request from `key_id`'s bucket, or says how many seconds until one is there.
    pub fn take(&self, key_id: K, rate_per_s: u32) -> Result<(), u64> {
        if rate_per_s == 0 {
            return Ok(());
        }
        self.take_at(key_id, f64::from(rate_per_s), f64::from(rate_per_s) * 2.0)
    }

    /// Takes one from a bucket refilled at `rate` per second that holds `burst` at most.
    pub fn take_at(&self, key_id: K, rate: f64, burst: f64) -> Result<(), u64> {
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

/// The client's address (when the server knows it), for the audit log and login throttling.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub Option<String>);

fn client_addr(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(parts)))
    }
}

/// What a request presents: a bearer credential, or the browser's session cookie.
enum Credential<'a> {
    Bearer(&'a str),
    Cookie(&'a str),
}

fn presented(parts: &Parts) -> Result<Credential<'_>, ApiError> {
    if parts.headers.contains_key(header::AUTHORIZATION) || parts.headers.contains_key("x-api-key")
    {
        return credential(parts).map(Credential::Bearer);
    }
    match cookies::read(&parts.headers, ACCESS_COOKIE) {
        Some(token) if !token.is_empty() && token.len() <= MAX_CREDENTIAL_BYTES * 8 => {
            Ok(Credential::Cookie(token))
        }
        Some(_) => Err(ApiError::BadRequest(
            "the session cookie is malformed".into(),
        )),
        None => credential(parts).map(Credential::Bearer),
    }
}

fn credential(parts: &Parts) -> Result<&str, ApiError> {
    let missing = || {
        ApiError::Unauthorized(
            "missing credentials: send 'Authorization: Bearer <API key or access token>' (or 'X-API-Key: <key>')".into(),
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
    // Access tokens are longer than keys; neither comes near 2 KiB.
    if raw.len() > MAX_CREDENTIAL_BYTES * 8 {
        return Err(ApiError::BadRequest(format!(
            "the credential is longer than {} bytes; it is malformed",
            MAX_CREDENTIAL_BYTES * 8
        )));
    }
    Ok(raw)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let source = client_addr(parts);
        let (token, via_cookie) = match presented(parts)? {
            Credential::Bearer(t) => (t, false),
            Credential::Cookie(t) => (t, true),
        };
        if via_cookie || !token.starts_with("hub_") {
            return user_principal(parts, state, token, via_cookie, source).await;
        }
        let key = token;
        if key.len() > MAX_CREDENTIAL_BYTES {
            return Err(ApiError::BadRequest(format!(
                "the API key is longer than {MAX_CREDENTIAL_BYTES} bytes; it is malformed"
            )));
        }
        let invalid = || ApiError::Unauthorized("invalid API key".into());
        let hash = hash_key(key);
        let record = match state.keys.get(&hash) {
            Some(record) => record,
            None => {
                let prefix = prefix_of(key).ok_or_else(invalid)?;
                let record = state
                    .storage
                    .tenants()
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
                            .tenants()
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
            actor: Actor::Key {
                id: record.id,
                prefix: record.prefix,
                scopes: record.scopes,
            },
            source,
        })
    }
}

/// A user's principal from an access token (header or cookie).
async fn user_principal(
    parts: &Parts,
    state: &AppState,
    token: &str,
    via_cookie: bool,
    source: Option<String>,
) -> Result<Principal, ApiError> {
    let claims = state
        .sessions
        .verify(state.storage.as_ref(), token)
        .await
        .map_err(|e| match e {
            crate::session::TokenError::Malformed => ApiError::BadRequest(e.to_string()),
            e => ApiError::Unauthorized(e.to_string()),
        })?;
    let unsafe_method = !matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if via_cookie && unsafe_method {
        let sent = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The token is bound to the session (an HMAC of its id), not merely equal to a cookie
        // that whoever can plant cookies could set too.
        let expected = state
            .sessions
            .csrf_token(state.storage.as_ref(), &claims.sid)
            .await?;
        if !constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
            return Err(ApiError::Forbidden(
                "missing or wrong X-CSRF-Token header: send the value of the hub_csrf cookie"
                    .into(),
            ));
        }
    }
    if claims.pwc && !parts.uri.path().starts_with("/v1/auth/") {
        return Err(ApiError::Forbidden(
            "change your password first (POST /v1/auth/password)".into(),
        ));
    }
    let (Ok(id), Ok(role)) = (claims.sub.parse::<i64>(), Role::parse(&claims.role)) else {
        return Err(ApiError::Unauthorized(
            "the access token is malformed".into(),
        ));
    };
    Ok(Principal {
        tenant: TenantId::from_verified(claims.ten),
        actor: Actor::User {
            id,
            email: claims.email,
            role,
            session: claims.sid,
            operator: claims.op,
            publisher: claims.publ,
        },
        source,
    })
}
