//! `/v1/silences`: a tenant's silences of alert notices. Analysts and higher make and expire them
//! (audited, with who and why); whoever reads metrics lists them. A notice a silence matches when
//! it is raised is recorded in the delivery log as silenced, not sent. Another tenant's silence is
//! a 404.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use hub_core::time::{parse_duration_ms, parse_query_time, to_rfc3339};
use hub_pipeline::alerts::silence::{self, MAX_ACTIVE, MAX_COMMENT};
use hub_storage::{NewSilence, StoredSilence};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Right;
use crate::query::Params;
use crate::{ApiError, AppState, Principal, json_body};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_silences, create_silence))
        .routes(routes!(expire_silence))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceDto {
    pub id: i64,
    /// `[{"name", "value", "op"}]` as written: a label of the notice (or `rule`) is (`=`, the
    /// default) or is not (`!=`) the value; all must hold.
    #[schema(value_type = Object)]
    pub matchers: serde_json::Value,
    pub starts_at: String,
    pub ends_at: String,
    /// Why, as its author wrote.
    pub comment: String,
    pub created_by: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceListDto {
    pub silences: Vec<SilenceDto>,
}

fn dto(s: &StoredSilence) -> SilenceDto {
    SilenceDto {
        id: s.id,
        matchers: serde_json::from_str(&s.matchers).unwrap_or(serde_json::Value::Null),
        starts_at: to_rfc3339(s.starts_at_ms),
        ends_at: to_rfc3339(s.ends_at_ms),
        comment: s.comment.clone(),
        created_by: s.created_by.clone(),
        created_at: to_rfc3339(s.created_at_ms),
    }
}

#[utoipa::path(
    get, path = "/v1/silences", tag = "alerts",
    description = "The tenant's silences: those that have not ended (active or to come), soonest end first, or with `ended=true` those that have, newest first. Whoever reads metrics.",
    params(
        ("ended" = Option<bool>, Query, description = "true: the ended ones"),
        ("limit" = Option<u32>, Query, description = "1 to 1000 (default 100)"),
    ),
    responses((status = 200, body = SilenceListDto), (status = 400, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_silences(
    State(state): State<AppState>,
    principal: Principal,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<SilenceListDto>, ApiError> {
    principal.require(Right::ReadMetrics)?;
    let params = Params::new(pairs, &["ended", "limit"])?;
    let ended = params.choice("ended", &["true", "false"])?.as_deref() == Some("true");
    let limit = params.limit(100, MAX_ACTIVE)?;
    let list = state
        .storage
        .silences()
        .silences(principal.tenant, hub_core::time::now_ms(), ended, limit)
        .await?;
    Ok(Json(SilenceListDto {
        silences: list.iter().map(dto).collect(),
    }))
}

/// A time field of the body: RFC 3339, epoch milliseconds or `now`-relative.
fn time(v: &serde_json::Value, field: &str, now: i64) -> Result<i64, ApiError> {
    match v {
        serde_json::Value::String(s) => parse_query_time(s, now),
        serde_json::Value::Number(n) => n.as_i64().ok_or_else(|| "not a whole number".to_string()),
        _ => Err("must be a time (RFC 3339 or epoch milliseconds)".to_string()),
    }
    .map_err(|e| ApiError::invalid(&format!("/{field}"), e))
}

#[utoipa::path(
    post, path = "/v1/silences", tag = "alerts",
    description = "Silences the alert notices whose labels match all `matchers` (`[{\"name\": \"model\", \"value\": \"gpt-4o\"}]`; `rule` matches the rule's name; `op` `=` or `!=`) from `starts_at` (default now) until `ends_at` or for `duration` (`2h`; at most 90 days), with a `comment` saying why. Analysts and higher; audited.",
    request_body(content = Object, description = "matchers, comment, and ends_at or duration; starts_at optional"),
    responses((status = 201, body = SilenceDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn create_silence(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<SilenceDto>), ApiError> {
    principal.require(Right::ManageAlerts)?;
    let v: serde_json::Value = json_body(&body)?;
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::invalid("/", "must be an object"))?;
    const FIELDS: [&str; 5] = ["matchers", "starts_at", "ends_at", "duration", "comment"];
    if let Some(k) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            &format!("/{k}"),
            format!("is not a field here; allowed: {}", FIELDS.join(", ")),
        ));
    }
    let matchers = o
        .get("matchers")
        .ok_or_else(|| ApiError::invalid("/matchers", "is required"))?;
    silence::parse_matchers(matchers).map_err(|e| ApiError::invalid(&e.path, e.message))?;
    let comment = match o.get("comment") {
        Some(serde_json::Value::String(c)) if !c.trim().is_empty() && c.len() <= MAX_COMMENT => {
            c.trim().to_string()
        }
        _ => {
            return Err(ApiError::invalid(
                "/comment",
                format!("say why, in 1 to {MAX_COMMENT} characters"),
            ));
        }
    };
    let now = hub_core::time::now_ms();
    let starts = o
        .get("starts_at")
        .map(|t| time(t, "starts_at", now))
        .transpose()?;
    let ends = match (o.get("ends_at"), o.get("duration")) {
        (Some(t), None) => time(t, "ends_at", now)?,
        (None, Some(serde_json::Value::String(d))) => {
            starts.unwrap_or(now)
                + parse_duration_ms(d).map_err(|e| ApiError::invalid("/duration", e))?
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "/duration",
                "must be a duration such as 2h",
            ));
        }
        _ => {
            return Err(ApiError::invalid(
                "/ends_at",
                "give ends_at or duration, not both or neither",
            ));
        }
    };
    let (starts_at_ms, ends_at_ms) =
        silence::span(starts, ends, now).map_err(|e| ApiError::invalid(&e.path, e.message))?;
    let store = state.storage.silences();
    if store
        .silences(principal.tenant, now, false, MAX_ACTIVE)
        .await?
        .len()
        >= MAX_ACTIVE
    {
        return Err(ApiError::BadRequest(format!(
            "the tenant has {MAX_ACTIVE} silences that have not ended, the most it may have"
        )));
    }
    let s = store
        .create_silence(
            principal.tenant,
            &NewSilence {
                matchers: matchers.to_string(),
                starts_at_ms,
                ends_at_ms,
                comment,
                created_by: principal.actor_label(),
            },
            now,
        )
        .await?;
    let dto = dto(&s);
    principal
        .audit(
            &state,
            "silence.create",
            Some(format!("silence {}", s.id)),
            None,
            serde_json::to_value(&dto).ok(),
        )
        .await;
    Ok((StatusCode::CREATED, Json(dto)))
}

#[utoipa::path(
    delete, path = "/v1/silences/{id}", tag = "alerts",
    description = "Ends a silence now (it stays in the list of ended ones). Analysts and higher; audited.",
    params(("id" = i64, Path, description = "the silence")),
    responses((status = 200, body = SilenceDto), (status = 404, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn expire_silence(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<SilenceDto>, ApiError> {
    principal.require(Right::ManageAlerts)?;
    let missing = || ApiError::NotFound(format!("no silence {id} in effect in this tenant"));
    let n: i64 = id.parse().map_err(|_| missing())?;
    let s = state
        .storage
        .silences()
        .expire_silence(principal.tenant, n, hub_core::time::now_ms())
        .await?
        .ok_or_else(missing)?;
    let dto = dto(&s);
    principal
        .audit(
            &state,
            "silence.expire",
            Some(format!("silence {}", s.id)),
            None,
            serde_json::to_value(&dto).ok(),
        )
        .await;
    Ok(Json(dto))
}
