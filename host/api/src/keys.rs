//! `/v1/api-keys`: the tenant's API keys — list, create, revoke, rotate. Needs the `admin` scope.
//!
//! A key is named in the path by its id or its visible prefix (`hub_ab12cd34`). A key of another
//! tenant is a 404, whatever the caller's rights.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hub_core::ApiKeyScope;
use hub_storage::ApiKeyRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::credentials::api_keys::{find_api_key, generate_api_key, rotate_api_key};
use crate::{ApiError, AppState, Principal, Right, json_body};

/// Longest grace period of a rotation: the old key works this long at most after it.
const MAX_GRACE_MS: i64 = 7 * 86_400_000;
/// Highest per-key rate limit that can be set.
const MAX_RATE_LIMIT: u32 = 1_000_000;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, revoke_key))
        .routes(routes!(rotate_key))
}

/// An API key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyDto {
    pub id: i64,
    pub name: String,
    /// The visible part of the key (`hub_ab12cd34`).
    pub prefix: String,
    /// Subset of `ingest`, `query`, `admin`.
    pub scopes: Vec<String>,
    /// `active`, `expired`, `revoked`, or `rotating` (revoked at a set time, still working).
    pub state: &'static str,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Requests per second this key may make; `null`: the server's default.
    pub rate_limit_per_s: Option<u32>,
    /// The id of the key this one replaced by a rotation.
    pub rotated_from: Option<i64>,
}

fn dto(k: &ApiKeyRecord, now_ms: i64) -> ApiKeyDto {
    let t = hub_core::time::to_rfc3339;
    ApiKeyDto {
        id: k.id,
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        scopes: k.scopes.iter().map(|s| s.as_str().to_string()).collect(),
        state: k.state(now_ms),
        created_at: t(k.created_at_ms),
        expires_at: k.expires_at_ms.map(t),
        revoked_at: k.revoked_at_ms.map(t),
        last_used_at: k.last_used_at_ms.map(t),
        rate_limit_per_s: k.rate_limit_per_s,
        rotated_from: k.rotated_from,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyListDto {
    pub keys: Vec<ApiKeyDto>,
}

/// A new key: the secret, shown this once, and its record.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewApiKeyDto {
    /// The whole key: store it now, the hub keeps only its hash.
    pub key: String,
    pub api_key: ApiKeyDto,
    /// For a rotation: the key it replaces, with the time it stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<ApiKeyDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyDto {
    /// 1 to 64 characters to recognise the key by.
    pub name: String,
    /// Non-empty subset of `ingest`, `query`, `admin`.
    pub scopes: Vec<String>,
    /// Lifetime such as `90d` or `12h`; no expiry when absent.
    #[serde(default)]
    pub expires_in: Option<String>,
    /// Requests per second (1 to 1,000,000); the server's default when absent.
    #[serde(default)]
    pub rate_limit_per_s: Option<u32>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKeyDto {
    /// How long the old key keeps working, such as `1h` (at most `7d`); immediately when absent.
    #[serde(default)]
    pub grace: Option<String>,
}

fn admin(principal: &Principal) -> Result<(), ApiError> {
    principal.require(Right::ManageKeys)
}

/// The tenant's key named by id or prefix, or a 404 that says nothing of other tenants.
async fn find(
    state: &AppState,
    principal: &Principal,
    key: &str,
) -> Result<ApiKeyRecord, ApiError> {
    find_api_key(state.storage.as_ref(), principal.tenant, key)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no API key '{key}' in this tenant")))
}

fn parse_in(field: &str, value: &str) -> Result<i64, ApiError> {
    hub_core::time::parse_duration_ms(value).map_err(|e| ApiError::invalid(field, e))
}

#[utoipa::path(
    get, path = "/v1/api-keys", tag = "api-keys",
    description = "The tenant's API keys (never their secrets), oldest first. Needs the `admin` scope.",
    responses((status = 200, body = ApiKeyListDto), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ApiKeyListDto>, ApiError> {
    admin(&principal)?;
    let now = hub_core::time::now_ms();
    let keys = state
        .storage
        .tenants()
        .list_api_keys(principal.tenant)
        .await?;
    Ok(Json(ApiKeyListDto {
        keys: keys.iter().map(|k| dto(k, now)).collect(),
    }))
}

#[utoipa::path(
    get, path = "/v1/api-keys/{key}", tag = "api-keys",
    description = "One API key of the tenant. Needs the `admin` scope.",
    params(("key" = String, Path, description = "the key's id or prefix")),
    responses((status = 200, body = ApiKeyDto), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn get_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(key): Path<String>,
) -> Result<Json<ApiKeyDto>, ApiError> {
    admin(&principal)?;
    let k = find(&state, &principal, &key).await?;
    Ok(Json(dto(&k, hub_core::time::now_ms())))
}

#[utoipa::path(
    post, path = "/v1/api-keys", tag = "api-keys",
    description = "Creates an API key; the answer holds the key itself, once. Needs the `admin` scope.",
    request_body = CreateApiKeyDto,
    responses((status = 201, body = NewApiKeyDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<NewApiKeyDto>), ApiError> {
    admin(&principal)?;
    let req: CreateApiKeyDto = json_body(&body)?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "1 to 64 characters, no control characters",
        ));
    }
    let scopes = ApiKeyScope::parse_list(&req.scopes.join(","))
        .map_err(|e| ApiError::invalid("scopes", e))?;
    let now = hub_core::time::now_ms();
    let expires_at = match &req.expires_in {
        Some(d) => {
            let ms = parse_in("expires_in", d)?;
            if ms <= 0 {
                return Err(ApiError::invalid("expires_in", "must be longer than 0"));
            }
            Some(
                now.checked_add(ms)
                    .ok_or_else(|| ApiError::invalid("expires_in", "too long"))?,
            )
        }
        None => None,
    };
    if let Some(r) = req.rate_limit_per_s
        && !(1..=MAX_RATE_LIMIT).contains(&r)
    {
        return Err(ApiError::invalid(
            "rate_limit_per_s",
            format!("{r} is not between 1 and {MAX_RATE_LIMIT}"),
        ));
    }
    let (secret, mut new_key) = generate_api_key(name, scopes, expires_at);
    new_key.rate_limit_per_s = req.rate_limit_per_s;
    let record = state
        .storage
        .tenants()
        .create_api_key(principal.tenant, &new_key, now)
        .await?;
    principal
        .audit(
            &state,
            "api_key.create",
            Some(format!("key:{}", record.prefix)),
            None,
            Some(serde_json::to_value(dto(&record, now)).unwrap_or_default()),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(NewApiKeyDto {
            key: secret,
            api_key: dto(&record, now),
            replaces: None,
        }),
    ))
}

#[utoipa::path(
    delete, path = "/v1/api-keys/{key}", tag = "api-keys",
    description = "Revokes an API key at once (on this replica at once; on others within 30 s). Revoking a revoked key changes nothing. Needs the `admin` scope.",
    params(("key" = String, Path, description = "the key's id or prefix")),
    responses((status = 200, body = ApiKeyDto), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(key): Path<String>,
) -> Result<Json<ApiKeyDto>, ApiError> {
    admin(&principal)?;
    let k = find(&state, &principal, &key).await?;
    let now = hub_core::time::now_ms();
    let revoked = state
        .storage
        .tenants()
        .revoke_api_key(principal.tenant, k.id, now)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no API key '{key}' in this tenant")))?;
    state.keys.forget(k.id);
    principal
        .audit(
            &state,
            "api_key.revoke",
            Some(format!("key:{}", k.prefix)),
            Some(serde_json::json!({"state": k.state(now)})),
            Some(serde_json::json!({"state": revoked.state(now)})),
        )
        .await;
    Ok(Json(dto(&revoked, now)))
}

#[utoipa::path(
    post, path = "/v1/api-keys/{key}/rotate", tag = "api-keys",
    description = "Replaces an API key with a new one of the same name, scopes, expiry and rate limit; the old key stops working now or after `grace`. Needs the `admin` scope.",
    params(("key" = String, Path, description = "the key's id or prefix")),
    request_body = RotateApiKeyDto,
    responses((status = 201, body = NewApiKeyDto), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn rotate_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<NewApiKeyDto>), ApiError> {
    admin(&principal)?;
    let req: RotateApiKeyDto = if body.iter().all(u8::is_ascii_whitespace) {
        RotateApiKeyDto::default()
    } else {
        json_body(&body)?
    };
    let old = find(&state, &principal, &key).await?;
    let now = hub_core::time::now_ms();
    if !old.works_at(now) {
        return Err(ApiError::BadRequest(format!(
            "API key {} no longer works; create a new key instead",
            old.prefix
        )));
    }
    let grace = match &req.grace {
        Some(g) => parse_in("grace", g)?,
        None => 0,
    };
    if grace > MAX_GRACE_MS {
        return Err(ApiError::invalid("grace", "at most 7d"));
    }
    let (secret, record, replaced) =
        rotate_api_key(state.storage.as_ref(), &old, now, now + grace).await?;
    state.keys.forget(old.id);
    principal
        .audit(
            &state,
            "api_key.rotate",
            Some(format!("key:{}", old.prefix)),
            Some(serde_json::json!({"key": old.prefix})),
            Some(serde_json::json!({"key": record.prefix, "old_key_stops": replaced.revoked_at_ms.map(hub_core::time::to_rfc3339)})),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(NewApiKeyDto {
            key: secret,
            api_key: dto(&record, now),
            replaces: Some(dto(&replaced, now)),
        }),
    ))
}
