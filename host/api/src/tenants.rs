//! Tenants: the ones a caller may act in (`GET /v1/tenants`), and new ones (`POST /v1/tenants`,
//! operators only); a tenant's name by its id.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use hub_core::{Role, TenantId};
use hub_storage::AuditEntry;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Actor;
use crate::{ApiError, AppState, Principal, json_body};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_tenants, create_tenant))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantDto {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    /// The caller's role there (`owner` for operators who are not members).
    pub role: Option<String>,
}

fn tenant_dto(t: &hub_storage::Tenant, role: Option<Role>) -> TenantDto {
    TenantDto {
        id: t.id.get(),
        name: t.name.clone(),
        created_at: hub_core::time::to_rfc3339(t.created_at_ms),
        role: role.map(|r| r.as_str().into()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantListDto {
    pub tenants: Vec<TenantDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantDto {
    /// Lowercase letters, digits and dashes, 1 to 64.
    pub name: String,
}

#[utoipa::path(
    get, path = "/v1/tenants", tag = "users",
    description = "The tenants the caller may act in: every tenant for an operator, the user's memberships otherwise, the key's own tenant for an API key.",
    responses((status = 200, body = TenantListDto)),
    security(("api_key" = []))
)]
pub(crate) async fn list_tenants(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<TenantListDto>, ApiError> {
    let all = state.storage.tenants().list_tenants().await?;
    let tenants = match &principal.actor {
        Actor::Key { .. } => all
            .iter()
            .filter(|t| t.id == principal.tenant)
            .map(|t| tenant_dto(t, None))
            .collect(),
        Actor::User { id, operator, .. } => {
            let ms = state.storage.access().memberships(*id).await?;
            all.iter()
                .filter_map(|t| {
                    let role = ms.iter().find(|m| m.tenant == t.id).map(|m| m.role);
                    match (role, operator) {
                        (Some(r), _) => Some(tenant_dto(t, Some(r))),
                        (None, true) => Some(tenant_dto(t, Some(Role::Owner))),
                        (None, false) => None,
                    }
                })
                .collect()
        }
    };
    Ok(Json(TenantListDto { tenants }))
}

#[utoipa::path(
    post, path = "/v1/tenants", tag = "users",
    description = "Creates a tenant. Operators only; the operator becomes its owner.",
    request_body = CreateTenantDto,
    responses((status = 201, body = TenantDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<TenantDto>), ApiError> {
    if !principal.is_operator() {
        return Err(ApiError::Forbidden("only operators create tenants".into()));
    }
    let req: CreateTenantDto = json_body(&body)?;
    let name = req.name.trim();
    hub_core::tenant::check_tenant_name(name).map_err(|e| ApiError::invalid("name", e))?;
    let now = hub_core::time::now_ms();
    let t = state
        .storage
        .tenants()
        .create_tenant(name, now)
        .await
        .map_err(|e| match e {
            hub_storage::StorageError::Conflict(_) => {
                ApiError::BadRequest(format!("a tenant named '{name}' exists"))
            }
            e => e.into(),
        })?;
    if let Actor::User { id, .. } = &principal.actor {
        state
            .storage
            .access()
            .set_membership(*id, t.id, Some(Role::Owner), now)
            .await?;
    }
    crate::audit::record(
        &state,
        AuditEntry {
            at_ms: now,
            tenant: Some(t.id),
            actor: principal.actor_label(),
            action: "tenant.create".into(),
            target: Some(format!("tenant:{name}")),
            source: principal.source.clone(),
            outcome: "ok".into(),
            ..Default::default()
        },
    )
    .await;
    Ok((StatusCode::CREATED, Json(tenant_dto(&t, Some(Role::Owner)))))
}

/// The name of the tenant with this id, if it still exists.
pub(crate) async fn tenant_name(
    state: &AppState,
    tenant: TenantId,
) -> Result<Option<String>, ApiError> {
    Ok(state
        .storage
        .tenants()
        .list_tenants()
        .await?
        .into_iter()
        .find(|t| t.id == tenant)
        .map(|t| t.name))
}
