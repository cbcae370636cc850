//! `/v1/views`: saved views, a named query of the metrics or event routes kept per user and tenant
//! and optionally shared with the tenant. Analysts and higher save their own; everybody who can
//! read metrics sees their own and the shared ones; only a view's owner changes or deletes it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hub_storage::{SavedView, StorageError, ViewSpec};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{Actor, Right};
use crate::{ApiError, AppState, Principal, json_body};

const ROUTES: [&str; 3] = ["summary", "timeseries", "events"];
const MAX_QUERY_BYTES: usize = 4096;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_views, create_view))
        .routes(routes!(update_view, delete_view))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewQuery {
    /// `summary`, `timeseries` or `events`.
    pub route: String,
    /// The route's query parameters as text, e.g. `{"group_by": "model", "from": "now-24h"}`.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewDto {
    /// 1 to 100 characters, unique among the user's views in the tenant.
    pub name: String,
    pub query: ViewQuery,
    /// Show it to the tenant's other members.
    #[serde(default)]
    pub shared: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SavedViewDto {
    pub id: i64,
    pub name: String,
    pub owner: String,
    /// Whether the caller owns it (and may change it).
    pub mine: bool,
    pub shared: bool,
    pub query: ViewQuery,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ViewListDto {
    pub views: Vec<SavedViewDto>,
}

fn dto(v: &SavedView, me: i64) -> SavedViewDto {
    SavedViewDto {
        id: v.id,
        name: v.name.clone(),
        owner: v.owner.clone(),
        mine: v.user_id == me,
        shared: v.shared,
        query: serde_json::from_str(&v.query).unwrap_or(ViewQuery {
            route: "summary".into(),
            params: Default::default(),
        }),
        created_at: hub_core::time::to_rfc3339(v.created_at_ms),
        updated_at: hub_core::time::to_rfc3339(v.updated_at_ms),
    }
}

/// The caller's user id: views belong to people, not keys.
fn user(principal: &Principal) -> Result<i64, ApiError> {
    match &principal.actor {
        Actor::User { id, .. } => Ok(*id),
        Actor::Key { .. } => Err(ApiError::Forbidden(
            "saved views belong to users; sign in instead of using an API key".into(),
        )),
    }
}

/// Checks a view and returns it as stored.
fn checked(v: &ViewDto) -> Result<ViewSpec, ApiError> {
    let name = v.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "1 to 100 characters"));
    }
    if !ROUTES.contains(&v.query.route.as_str()) {
        return Err(ApiError::invalid(
            "query.route",
            format!("'{}' is not summary, timeseries or events", v.query.route),
        ));
    }
    let query = serde_json::to_string(&v.query).map_err(|e| ApiError::Internal(e.to_string()))?;
    if query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::invalid(
            "query",
            format!("{} bytes; the limit is {MAX_QUERY_BYTES}", query.len()),
        ));
    }
    Ok(ViewSpec {
        name: name.to_string(),
        query,
        shared: v.shared,
    })
}

fn conflict(e: StorageError, name: &str) -> ApiError {
    match e {
        StorageError::Conflict(_) => {
            ApiError::invalid("name", format!("you already have a view named '{name}'"))
        }
        e => e.into(),
    }
}

#[utoipa::path(
    get, path = "/v1/views", tag = "views",
    description = "The caller's saved views and the tenant's shared ones. Users who can read metrics.",
    responses((status = 200, body = ViewListDto), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_views(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ViewListDto>, ApiError> {
    principal.require(Right::ReadMetrics)?;
    let me = user(&principal)?;
    let views = state
        .storage
        .views()
        .list_views(principal.tenant, me)
        .await?;
    Ok(Json(ViewListDto {
        views: views.iter().map(|v| dto(v, me)).collect(),
    }))
}

#[utoipa::path(
    post, path = "/v1/views", tag = "views",
    description = "Saves a view of the caller's. Analysts and higher.",
    request_body = ViewDto,
    responses((status = 201, body = SavedViewDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn create_view(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<SavedViewDto>), ApiError> {
    principal.require(Right::SaveViews)?;
    let me = user(&principal)?;
    let req: ViewDto = json_body(&body)?;
    let spec = checked(&req)?;
    let v = state
        .storage
        .views()
        .create_view(principal.tenant, me, &spec, hub_core::time::now_ms())
        .await
        .map_err(|e| conflict(e, &spec.name))?;
    Ok((StatusCode::CREATED, Json(dto(&v, me))))
}

#[utoipa::path(
    put, path = "/v1/views/{id}", tag = "views",
    description = "Replaces one of the caller's own views (name, query, shared). Another person's view is a 404.",
    params(("id" = i64, Path, description = "the view's id")),
    request_body = ViewDto,
    responses((status = 200, body = SavedViewDto), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn update_view(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<SavedViewDto>, ApiError> {
    principal.require(Right::SaveViews)?;
    let me = user(&principal)?;
    let req: ViewDto = json_body(&body)?;
    let spec = checked(&req)?;
    let missing = || ApiError::NotFound(format!("you have no view {id} in this tenant"));
    let id_num: i64 = id.parse().map_err(|_| missing())?;
    let v = state
        .storage
        .views()
        .update_view(
            principal.tenant,
            me,
            id_num,
            &spec,
            hub_core::time::now_ms(),
        )
        .await
        .map_err(|e| conflict(e, &spec.name))?
        .ok_or_else(missing)?;
    Ok(Json(dto(&v, me)))
}

#[utoipa::path(
    delete, path = "/v1/views/{id}", tag = "views",
    description = "Deletes one of the caller's own views. Another person's view is a 404.",
    params(("id" = i64, Path, description = "the view's id")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn delete_view(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Right::SaveViews)?;
    let me = user(&principal)?;
    let missing = || ApiError::NotFound(format!("you have no view {id} in this tenant"));
    let id_num: i64 = id.parse().map_err(|_| missing())?;
    if state
        .storage
        .views()
        .delete_view(principal.tenant, me, id_num)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(missing())
    }
}
