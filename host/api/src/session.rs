//! People's sessions: access tokens (HS256 JWTs signed with keys every
//! replica shares through storage, rotated daily, `kid` in the header) and refresh tokens
//! (random, stored hashed, single use, grouped in families that are login sessions).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::Engine;
use hub_core::{Role, TenantId};
use hub_storage::{NewRefreshToken, SigningKey, Storage, StorageError, User};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::credentials::{hash_key, hmac_hex, random_token};

/// How long an access token works.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a refresh token works if unused.
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 86_400);
/// A new signing key after this; older keys keep verifying for one more period.
const ROTATE_EVERY_MS: i64 = 86_400_000;
const ISSUER: &str = "llm-analytics-hub";
const AUDIENCE: &str = "hub-api";
/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user's id.
    pub sub: String,
    pub email: String,
    /// The tenant this token acts for, and the user's role there.
    pub ten: i64,
    pub role: String,
    /// The login session (refresh-token family); revoking it stops this token too.
    pub sid: String,
    /// Operator: platform-wide rights.
    #[serde(default)]
    pub op: bool,
    /// Publisher: may publish plugins to the marketplace.
    #[serde(default)]
    pub publ: bool,
    /// The password must be changed before anything else.
    #[serde(default)]
    pub pwc: bool,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// Why an access token was refused; the message is safe to show.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token uses an algorithm this hub does not accept")]
    Algorithm,
    #[error("the access token's signature is invalid")]
    Signature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token was issued for another audience or issuer")]
    WrongAudience,
    #[error("the access token's session was revoked")]
    Revoked,
}

/// The `alg` a token's header declares, if its header is JSON at all.
fn declared_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg")?.as_str().map(String::from)
}

const SECRET_META: &str = "auth.deployment_secret";

/// A fresh pair of tokens.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    /// What the browser must echo in `X-CSRF-Token` for this session.
    pub csrf_token: String,
    pub claims: Claims,
}

/// Signs and verifies access tokens, and tracks revoked sessions, for one replica.
#[derive(Debug, Default)]
pub struct Sessions {
    keys: RwLock<Vec<SigningKey>>,
    /// Sessions checked lately: (revoked, when checked, the user's id, the tenant's id).
    revoked: RwLock<HashMap<String, (bool, Instant, i64, i64)>>,
    last_reload: RwLock<Option<Instant>>,
    /// The deployment's secret for device cookies (see `throttle`) and CSRF tokens, read once
    /// from the database.
    secret: tokio::sync::OnceCell<Vec<u8>>,
}

/// How long a session's "not revoked" answer is trusted on a replica that did not revoke it.
const REVOCATION_CHECK_TTL: Duration = Duration::from_secs(5);

impl Sessions {
    async fn reload(&self, storage: &dyn Storage) -> Result<(), StorageError> {
        let keys = storage.access().signing_keys().await?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        *self.last_reload.write().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Ok(())
    }

    /// The key that signs now, creating (and retiring) keys as they age.
    async fn signing_key(
        &self,
        storage: &dyn Storage,
        now_ms: i64,
    ) -> Result<SigningKey, StorageError> {
        let newest = |keys: &[SigningKey]| {
            keys.first()
                .filter(|k| now_ms - k.created_at_ms < ROTATE_EVERY_MS)
                .cloned()
        };
        if let Some(k) = newest(&self.keys.read().unwrap_or_else(|p| p.into_inner())) {
            return Ok(k);
        }
        self.reload(storage).await?;
        if let Some(k) = newest(&self.keys.read().unwrap_or_else(|p| p.into_inner())) {
            return Ok(k);
        }
        let secret: [u8; 32] = rand::rng().random();
        let key = SigningKey {
            kid: random_token("k")[..17].to_string(),
            secret: base64::engine::general_purpose::STANDARD.encode(secret),
            created_at_ms: now_ms,
        };
        let a = storage.access();
        a.add_signing_key(&key).await?;
        // Keys older than two periods can no longer verify a live token.
        a.delete_signing_keys_before(now_ms - 2 * ROTATE_EVERY_MS)
            .await?;
        self.reload(storage).await?;
        Ok(key)
    }

    async fn verifying_key(&self, storage: &dyn Storage, kid: &str) -> Option<SigningKey> {
        let find = |keys: &[SigningKey]| keys.iter().find(|k| k.kid == kid).cloned();
        if let Some(k) = find(&self.keys.read().unwrap_or_else(|p| p.into_inner())) {
            return Some(k);
        }
        // Another replica may have rotated: reload, at most once a second.
        let recent = self
            .last_reload
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        if !recent && self.reload(storage).await.is_ok() {
            return find(&self.keys.read().unwrap_or_else(|p| p.into_inner()));
        }
        None
    }

    /// Issues an access token and a refresh token for `user` acting in `tenant` as `role`, in
    /// session `family` (a new one at login, the same one on refresh).
    pub async fn issue(
        &self,
        storage: &dyn Storage,
        user: &User,
        tenant: TenantId,
        role: Role,
        family: Option<String>,
        now_ms: i64,
    ) -> Result<IssuedTokens, StorageError> {
        let key = self.signing_key(storage, now_ms).await?;
        let sid = family.unwrap_or_else(|| random_token("s")[..23].to_string());
        let now_s = now_ms / 1000;
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user.id.to_string(),
            email: user.email.clone(),
            ten: tenant.get(),
            role: role.as_str().into(),
            sid: sid.clone(),
            op: user.operator,
            publ: user.publisher,
            pwc: user.must_change_password,
            iat: now_s,
            nbf: now_s,
            exp: now_s + ACCESS_TTL.as_secs() as i64,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let secret = base64::engine::general_purpose::STANDARD
            .decode(&key.secret)
            .map_err(|_| StorageError::Corrupt(format!("signing key {} is not base64", key.kid)))?;
        let access_token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret))
                .map_err(|e| StorageError::Corrupt(format!("signing an access token: {e}")))?;
        let refresh_token = random_token("hrt_");
        storage
            .access()
            .insert_refresh_token(
                &NewRefreshToken {
                    family: sid,
                    user_id: user.id,
                    tenant,
                    token_hash: hash_key(&refresh_token),
                    expires_at_ms: now_ms + REFRESH_TTL.as_millis() as i64,
                },
                now_ms,
            )
            .await?;
        let csrf_token = self.csrf_token(storage, &claims.sid).await?;
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            csrf_token,
            claims,
        })
    }

    /// The deployment's secret, made once and kept in the database (`hub_meta`) so that every
    /// replica signs and checks the same way.
    pub async fn deployment_secret(&self, storage: &dyn Storage) -> Result<Vec<u8>, StorageError> {
        self.secret
            .get_or_try_init(|| async {
                if let Some(s) = storage.get_meta(SECRET_META).await? {
                    return Ok(s.into_bytes());
                }
                let fresh: [u8; 32] = rand::rng().random();
                storage.set_meta(SECRET_META, &hex::encode(fresh)).await?;
                // Another replica may have written its own a moment ago: use what is stored.
                Ok::<_, StorageError>(
                    storage
                        .get_meta(SECRET_META)
                        .await?
                        .unwrap_or_else(|| hex::encode(fresh))
                        .into_bytes(),
                )
            })
            .await
            .cloned()
    }

    /// The CSRF token of session `sid`: an HMAC of the session id, so that a cookie planted by
    /// someone else (who knows neither) never matches.
    pub async fn csrf_token(
        &self,
        storage: &dyn Storage,
        sid: &str,
    ) -> Result<String, StorageError> {
        let secret = self.deployment_secret(storage).await?;
        Ok(hmac_hex(&secret, &format!("csrf\0{sid}"))[..32].to_string())
    }

    /// Checks an access token: algorithm, `kid`, signature, time, issuer, audience, and that its
    /// session was not revoked.
    pub async fn verify(&self, storage: &dyn Storage, token: &str) -> Result<Claims, TokenError> {
        let header = match jsonwebtoken::decode_header(token) {
            Ok(h) => h,
            // An algorithm the library does not even know, `none` included, is a refusal, not a
            // malformed token.
            Err(_) if declared_alg(token).is_some() => return Err(TokenError::Algorithm),
            Err(_) => return Err(TokenError::Malformed),
        };
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let key = self
            .verifying_key(storage, &kid)
            .await
            .ok_or(TokenError::Signature)?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(&key.secret)
            .map_err(|_| TokenError::Signature)?;
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.validate_nbf = true;
        v.leeway = 5;
        v.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&secret), &v)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::ExpiredSignature => TokenError::Expired,
                    K::ImmatureSignature => TokenError::NotYetValid,
                    K::InvalidAudience | K::InvalidIssuer => TokenError::WrongAudience,
                    K::InvalidSignature => TokenError::Signature,
                    K::InvalidAlgorithm => TokenError::Algorithm,
                    _ => TokenError::Malformed,
                }
            })?;
        let user = data
            .claims
            .sub
            .parse::<i64>()
            .map_err(|_| TokenError::Malformed)?;
        if self
            .is_revoked(storage, &data.claims.sid, user, data.claims.ten)
            .await
        {
            return Err(TokenError::Revoked);
        }
        Ok(data.claims)
    }

    async fn is_revoked(&self, storage: &dyn Storage, sid: &str, user: i64, tenant: i64) -> bool {
        if let Some((revoked, at, _, _)) = self
            .revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(sid)
            && (*revoked || at.elapsed() < REVOCATION_CHECK_TTL)
        {
            return *revoked;
        }
        // A database error counts as revoked: fail closed.
        let revoked = storage.access().session_revoked(sid).await.unwrap_or(true);
        let mut map = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (r, at, _, _)| *r || at.elapsed() < REVOCATION_CHECK_TTL);
        }
        map.insert(sid.to_string(), (revoked, Instant::now(), user, tenant));
        revoked
    }

    /// Notes a session revoked on this replica (its access tokens stop at once here).
    pub fn forget_session(&self, sid: &str) {
        let mut map = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        let (user, tenant) = map.get(sid).map(|e| (e.2, e.3)).unwrap_or_default();
        map.insert(sid.to_string(), (true, Instant::now(), user, tenant));
    }

    /// Notes the sessions of a user revoked on this replica (after `revoke_user_sessions`): all
    /// of them, or those in `tenant` only.
    pub fn forget_user(&self, user: i64, tenant: Option<TenantId>) {
        let mut map = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        for (revoked, _, u, t) in map.values_mut() {
            if *u == user && tenant.is_none_or(|want| want.get() == *t) {
                *revoked = true;
            }
        }
    }
}
