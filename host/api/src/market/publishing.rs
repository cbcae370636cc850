//! Publishing to this hub's marketplace: a signed package checked and stored, and its publisher's
//! (or an operator's) yanks.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{PackageDetailDto, audit_market, details, publisher_of};
use crate::plugins::{admin_error, catalog};
use crate::{ApiError, AppState, Principal};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct YankRequest {
    /// Why, shown to tenants (at most 500 characters).
    #[schema(min_length = 1, max_length = 500, pattern = "[^ ]")]
    pub reason: String,
}

// The publish body as the OpenAPI document shows it (a schema only: the handler streams the body
// under its size limit).
/// A signed `.hubpkg` (a gzip-compressed tar), as raw bytes.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct PackageBody(Vec<u8>);

#[utoipa::path(
    post, path = "/v1/marketplace/packages", tag = "marketplace",
    description = "Publishes a signed `.hubpkg` (the request body, `application/gzip` or `application/octet-stream`; at most --max-package-bytes, default 20 MiB). The signature, digest, manifest, component (world, exports, imports) and `configure` with the schema's example are checked before anything is stored. Needs a user with the publisher right whose key signed the package.",
    request_body(content((inline(PackageBody) = "application/gzip"), (inline(PackageBody) = "application/octet-stream"))),
    responses((status = 201, body = PackageDetailDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn publish(
    State(state): State<AppState>,
    principal: Principal,
    body: Body,
) -> Result<Response, ApiError> {
    let publisher = publisher_of(&principal)?;
    let catalog = catalog(&state)?.clone();
    let bytes = crate::ingest::read_limited(body, catalog.max_package_bytes())
        .await
        .map_err(|e| match e {
            ApiError::PayloadTooLarge(_) => ApiError::PayloadTooLarge(format!(
                "the package is larger than the limit of {} bytes",
                catalog.max_package_bytes()
            )),
            other => other,
        })?;
    let size = bytes.len();
    match catalog.publish(bytes.to_vec(), &publisher).await {
        Ok((manifest, version)) => {
            audit_market(
                &state,
                &principal,
                "marketplace.publish",
                format!("package:{}@{}", manifest.name, version.version),
                "ok",
                Some(serde_json::json!({"digest": version.digest, "key_id": version.key_id, "size": size})),
            )
            .await;
            let dto = details(&state, &manifest.name, Some(&version.version)).await?;
            Ok((StatusCode::CREATED, Json(dto)).into_response())
        }
        Err(e) => {
            audit_market(
                &state,
                &principal,
                "marketplace.publish",
                "package".into(),
                "denied",
                Some(serde_json::json!({"reason": e.to_string(), "size": size})),
            )
            .await;
            Err(admin_error(e, ""))
        }
    }
}

/// The package's publisher or an operator; 404 for a package or version that does not exist.
async fn may_manage(
    state: &AppState,
    principal: &Principal,
    name: &str,
    version: &str,
) -> Result<(), ApiError> {
    let publisher = if principal.is_operator() {
        None
    } else {
        Some(publisher_of(principal)?)
    };
    let market = state.storage.market();
    let package = market.package(name).await?.ok_or_else(|| {
        ApiError::NotFound(format!("package '{name}' is not in this marketplace"))
    })?;
    if let Some(p) = publisher
        && p.name != package.publisher
    {
        return Err(ApiError::Forbidden(format!(
            "package '{name}' belongs to publisher {}",
            package.publisher
        )));
    }
    if market.version(name, version).await?.is_none() {
        return Err(ApiError::NotFound(format!(
            "'{name}' has no version {version}"
        )));
    }
    Ok(())
}

#[utoipa::path(
    put, path = "/v1/marketplace/packages/{name}/versions/{version}/yank", tag = "marketplace",
    description = "Yanks a version with a reason: no new installs; tenants that run it keep it. The package's publisher or an operator.",
    params(("name" = String, Path), ("version" = String, Path)),
    request_body = YankRequest,
    responses((status = 200, body = PackageDetailDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn yank(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, version)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<PackageDetailDto>, ApiError> {
    let body: YankRequest = crate::json_body(&body)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid(
            "reason",
            "say why in 1 to 500 characters; tenants see it",
        ));
    }
    may_manage(&state, &principal, &name, &version).await?;
    state
        .storage
        .market()
        .set_yanked(&name, &version, Some((reason, hub_core::time::now_ms())))
        .await?;
    audit_market(
        &state,
        &principal,
        "marketplace.yank",
        format!("package:{name}@{version}"),
        "ok",
        Some(serde_json::json!({"reason": reason})),
    )
    .await;
    Ok(Json(details(&state, &name, Some(&version)).await?))
}

#[utoipa::path(
    delete, path = "/v1/marketplace/packages/{name}/versions/{version}/yank", tag = "marketplace",
    description = "Restores a yanked version.",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = PackageDetailDto), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn unyank(
    State(state): State<AppState>,
    principal: Principal,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<PackageDetailDto>, ApiError> {
    may_manage(&state, &principal, &name, &version).await?;
    state
        .storage
        .market()
        .set_yanked(&name, &version, None)
        .await?;
    audit_market(
        &state,
        &principal,
        "marketplace.unyank",
        format!("package:{name}@{version}"),
        "ok",
        None,
    )
    .await;
    Ok(Json(details(&state, &name, Some(&version)).await?))
}
