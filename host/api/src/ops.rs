//! Operations: liveness, readiness, Prometheus metrics, and the OpenAPI document.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/settings", get(settings))
        .route("/v1/settings/retention", get(retention).put(set_retention))
}

/// How long each resolution is kept, in milliseconds (`null`: forever, or for a tenant's own
/// setting, as the operator's).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct RetentionMs {
    #[serde(default)]
    pub raw_ms: Option<i64>,
    #[serde(default)]
    pub minute_ms: Option<i64>,
    #[serde(default)]
    pub hour_ms: Option<i64>,
    #[serde(default)]
    pub day_ms: Option<i64>,
}

impl RetentionMs {
    fn fields(&self) -> [(&'static str, &'static str, Option<i64>); 4] {
        [
            ("raw_ms", "raw events", self.raw_ms),
            ("minute_ms", "per-minute rollups", self.minute_ms),
            ("hour_ms", "per-hour rollups", self.hour_ms),
            ("day_ms", "per-day rollups", self.day_ms),
        ]
    }
}

impl From<hub_storage::RetentionPolicy> for RetentionMs {
    fn from(p: hub_storage::RetentionPolicy) -> Self {
        Self {
            raw_ms: p.raw_ms,
            minute_ms: p.minute_ms,
            hour_ms: p.hour_ms,
            day_ms: p.day_ms,
        }
    }
}

impl From<hub_storage::TenantRetention> for RetentionMs {
    fn from(p: hub_storage::TenantRetention) -> Self {
        Self {
            raw_ms: p.raw_ms,
            minute_ms: p.minute_ms,
            hour_ms: p.hour_ms,
            day_ms: p.day_ms,
        }
    }
}

/// The tenant's retention: what the operator allows, what the tenant chose, and what holds.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RetentionDto {
    /// The operator's policy: the most any tenant keeps.
    pub operator: RetentionMs,
    /// This tenant's own choice (`null` fields: as the operator's).
    pub tenant: RetentionMs,
    /// What retention applies to this tenant: the shorter of the two.
    pub effective: RetentionMs,
}

/// The shortest retention a tenant may choose: the rollups of the last hour feed the live dashboard.
const MIN_RETENTION_MS: i64 = hub_core::time::HOUR_MS;

fn days(ms: i64) -> String {
    if ms % hub_core::time::DAY_MS == 0 {
        format!("{} days", ms / hub_core::time::DAY_MS)
    } else {
        format!("{} hours", ms / hub_core::time::HOUR_MS)
    }
}

async fn retention_dto(
    state: &AppState,
    tenant: hub_core::TenantId,
) -> Result<RetentionDto, ApiError> {
    let own = state.storage.settings().tenant_retention(tenant).await?;
    let operator = state.config.retention;
    Ok(RetentionDto {
        operator: operator.into(),
        tenant: own.into(),
        effective: operator.for_tenant(&own).into(),
    })
}

#[utoipa::path(get, path = "/v1/settings/retention", tag = "ops",
    description = "How long this tenant's raw events and rollups are kept: the operator's policy, the tenant's own choice, and the shorter of the two that applies. Needs the `query` or `admin` scope, or analyst and up.",
    responses((status = 200, body = RetentionDto), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn retention(
    State(state): State<AppState>,
    principal: crate::Principal,
) -> Result<Json<RetentionDto>, ApiError> {
    principal.require(crate::Right::ReadConfig)?;
    Ok(Json(retention_dto(&state, principal.tenant).await?))
}

#[utoipa::path(put, path = "/v1/settings/retention", tag = "ops", request_body = RetentionMs,
    description = "Sets how long this tenant keeps each resolution, at least an hour and at most what the operator keeps (`null`: as the operator's). Shorter retention deletes older data at the next retention run. Needs the `admin` scope, or admin and up; audited.",
    responses((status = 200, body = RetentionDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn set_retention(
    State(state): State<AppState>,
    principal: crate::Principal,
    body: axum::body::Bytes,
) -> Result<Json<RetentionDto>, ApiError> {
    principal.require(crate::Right::ManageSettings)?;
    let wanted: RetentionMs = crate::json_body(&body)?;
    let operator = RetentionMs::from(state.config.retention);
    for ((field, what, own), (_, _, most)) in wanted.fields().into_iter().zip(operator.fields()) {
        let Some(ms) = own else { continue };
        if ms < MIN_RETENTION_MS {
            return Err(ApiError::invalid(
                field,
                format!(
                    "keep {what} for at least an hour ({MIN_RETENTION_MS} ms), or null for as long as the hub keeps them"
                ),
            ));
        }
        if let Some(most) = most
            && ms > most
        {
            return Err(ApiError::invalid(
                field,
                format!(
                    "{} is longer than this hub keeps {what} ({}); choose at most that, or ask the operator to keep more",
                    days(ms),
                    days(most)
                ),
            ));
        }
    }
    let before = RetentionMs::from(
        state
            .storage
            .settings()
            .tenant_retention(principal.tenant)
            .await?,
    );
    let own = hub_storage::TenantRetention {
        raw_ms: wanted.raw_ms,
        minute_ms: wanted.minute_ms,
        hour_ms: wanted.hour_ms,
        day_ms: wanted.day_ms,
    };
    state
        .storage
        .settings()
        .set_tenant_retention(principal.tenant, &own, hub_core::time::now_ms())
        .await?;
    principal
        .audit(
            &state,
            "settings.retention",
            None,
            serde_json::to_value(before).ok(),
            serde_json::to_value(wanted).ok(),
        )
        .await;
    Ok(Json(retention_dto(&state, principal.tenant).await?))
}

/// The operator's settings as tenants may read them.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SettingsDto {
    /// Single sign-on: `enabled`, and when on the issuer, client id, redirect URL, scopes, groups
    /// claim and the domain and group rules (`PATTERN=TENANT:ROLE`); never the client secret.
    #[schema(value_type = Object)]
    pub sso: serde_json::Value,
    /// How long each resolution is kept, in milliseconds (`null`: forever).
    #[schema(value_type = Object)]
    pub retention: serde_json::Value,
    /// Whether the marketplace catalog is served without credentials.
    pub public_catalog: bool,
}

#[utoipa::path(get, path = "/v1/settings", tag = "ops",
    description = "Single sign-on and retention as the operator set them (flags, env or hub.toml; changes between starts are in the audit log). Needs the `query` or `admin` scope, or analyst and up.",
    responses((status = 200, body = SettingsDto), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn settings(
    State(state): State<AppState>,
    principal: crate::Principal,
) -> Result<Json<SettingsDto>, ApiError> {
    principal.require(crate::Right::ReadConfig)?;
    let s = &state.config.settings;
    Ok(Json(SettingsDto {
        sso: s
            .get("sso")
            .cloned()
            .unwrap_or(serde_json::json!({"enabled": false})),
        retention: s
            .get("retention")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
        public_catalog: state.config.public_catalog,
    }))
}

#[utoipa::path(get, path = "/healthz", tag = "ops", description = "The process is up.", responses((status = 200, description = "ok")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "ops", description = "The database answers.",
    responses((status = 200, description = "ready"), (status = 503, body = crate::error::ErrorBody)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.storage.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::Unavailable("the database does not answer".into())
    })?;
    Ok("ready")
}

#[utoipa::path(get, path = "/metrics", tag = "ops",
    description = "Prometheus text format. Requires 'Authorization: Bearer <token>' when the operator set a metrics token.",
    responses((status = 200, description = "metrics", content_type = "text/plain")))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.config.metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(token.as_str()) {
            return Err(ApiError::Unauthorized(
                "this hub requires the metrics token for /metrics".into(),
            ));
        }
    }
    let m = &state.metrics;
    m.queue_depth.set(state.bus.depth() as i64);
    m.queue_capacity.set(state.bus.capacity() as i64);
    let p = &state.pipeline;
    m.pipeline_commits
        .set(p.commits.load(Ordering::Relaxed) as i64);
    m.pipeline_write_failures
        .set(p.write_failures.load(Ordering::Relaxed) as i64);
    m.pipeline_commit_seconds_sum
        .set(p.commit_micros.load(Ordering::Relaxed) as f64 / 1e6);
    if let Some(host) = &state.plugins {
        use crate::metrics::{PluginFailureLabel, PluginLabel};
        for (plugin, c) in host.stats.snapshot() {
            let l = PluginLabel {
                plugin: plugin.clone(),
            };
            m.plugin_calls.get_or_create(&l).set(c.calls as i64);
            m.plugin_call_seconds_sum
                .get_or_create(&l)
                .set(c.call_micros as f64 / 1e6);
            m.plugin_auto_disabled
                .get_or_create(&l)
                .set(c.auto_disabled as i64);
            m.plugin_patches_applied
                .get_or_create(&l)
                .set(c.patches_applied as i64);
            for (reason, n) in c.failures {
                m.plugin_failures
                    .get_or_create(&PluginFailureLabel {
                        plugin: plugin.clone(),
                        reason: reason.to_string(),
                    })
                    .set(n as i64);
            }
        }
    }
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response())
}

#[utoipa::path(get, path = "/openapi.json", tag = "ops", description = "This document.", responses((status = 200, description = "OpenAPI 3.1")))]
pub(crate) async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi_json())
}
