//! Publishers' signing keys: registered, listed and revoked by the publisher (or an operator).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hub_storage::PublisherKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{audit_market, publisher_of};
use crate::plugins::{admin_error, catalog};
use crate::{ApiError, AppState, Principal};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// `ed25519:<base64>`, as `hub keys generate` prints it.
    pub public_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublisherKeyDto {
    pub key_id: String,
    pub publisher: String,
    pub public_key: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublisherKeyListDto {
    pub keys: Vec<PublisherKeyDto>,
}

fn key_dto(k: PublisherKey) -> PublisherKeyDto {
    PublisherKeyDto {
        key_id: k.key_id,
        publisher: k.publisher,
        public_key: k.public_key,
        created_at: hub_core::time::to_rfc3339(k.created_at_ms),
        revoked_at: k.revoked_at_ms.map(hub_core::time::to_rfc3339),
    }
}

#[utoipa::path(
    get, path = "/v1/marketplace/keys", tag = "marketplace",
    description = "The caller's publisher keys (an operator's listing also shows every publisher's keys and the hub's first-party key).",
    responses((status = 200, body = PublisherKeyListDto), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<PublisherKeyListDto>, ApiError> {
    let keys = if principal.is_operator() {
        state.storage.market().publisher_keys(None).await?
    } else {
        let p = publisher_of(&principal)?;
        state.storage.market().publisher_keys(p.user_id).await?
    };
    Ok(Json(PublisherKeyListDto {
        keys: keys.into_iter().map(key_dto).collect(),
    }))
}

#[utoipa::path(
    post, path = "/v1/marketplace/keys", tag = "marketplace",
    description = "Registers a public key the caller signs packages with. Needs the publisher right.",
    request_body = KeyRequest,
    responses((status = 201, body = PublisherKeyDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn register_key(
    State(state): State<AppState>,
    principal: Principal,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<PublisherKeyDto>), ApiError> {
    let publisher = publisher_of(&principal)?;
    let body: KeyRequest = crate::json_body(&body)?;
    let key = catalog(&state)?
        .register_key(&publisher, &body.public_key)
        .await
        .map_err(|e| match e {
            hub_plugins::PluginAdminError::Key(m) => ApiError::invalid("public_key", m),
            hub_plugins::PluginAdminError::Storage(hub_storage::StorageError::Conflict(_)) => {
                ApiError::Conflict("this key is already registered".into())
            }
            other => admin_error(other, ""),
        })?;
    audit_market(
        &state,
        &principal,
        "marketplace.key.register",
        format!("publisher_key:{}", key.key_id),
        "ok",
        None,
    )
    .await;
    Ok((StatusCode::CREATED, Json(key_dto(key))))
}

#[utoipa::path(
    delete, path = "/v1/marketplace/keys/{key_id}", tag = "marketplace",
    description = "Revokes one of the caller's keys (an operator: anyone's): it signs no new versions; versions it signed stay installable.",
    params(("key_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let market = state.storage.market();
    let key = market
        .publisher_key(&key_id)
        .await?
        .filter(|k| k.secret_key.is_none());
    let mine = match (&key, principal.is_operator()) {
        (Some(_), true) => true,
        (Some(k), false) => publisher_of(&principal)?.user_id == k.user_id,
        (None, _) => false,
    };
    if !mine
        || !market
            .revoke_publisher_key(&key_id, hub_core::time::now_ms())
            .await?
    {
        return Err(ApiError::NotFound(format!(
            "you have no live publisher key {key_id}"
        )));
    }
    audit_market(
        &state,
        &principal,
        "marketplace.key.revoke",
        format!("publisher_key:{key_id}"),
        "ok",
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
