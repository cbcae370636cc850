//! `/v1/alerts/deliveries`: the delivery log, each alert notice handed to each of its rule's
//! targets, with every attempt. Whoever reads metrics reads it.

use axum::Json;
use axum::extract::{Query, State};
use hub_core::time::to_rfc3339;
use hub_storage::{Delivery, DeliveryAttempt, DeliveryFilter};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Right;
use crate::query::Params;
use crate::{ApiError, AppState, Principal};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_deliveries))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttemptDto {
    pub at: String,
    pub duration_ms: i64,
    /// `delivered`, `retry` (failed, tried again later) or `failed` (given up).
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDto {
    pub id: i64,
    pub alert_id: i64,
    pub rule_id: i64,
    /// The integration, by name.
    pub target: String,
    /// `firing`, `repeat` or `resolved`.
    pub notice: String,
    /// `queued`, `delivered`, `failed` (given up) or `silenced` (a silence matched it: never
    /// sent; `last_error` says which).
    pub state: String,
    pub attempts: i64,
    pub created_at: String,
    /// When a queued delivery is tried next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The alert as the target is handed it (rule, severity, summary, labels).
    #[schema(value_type = Object)]
    pub alert: serde_json::Value,
    /// Every attempt, oldest first.
    pub log: Vec<DeliveryAttemptDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryListDto {
    pub deliveries: Vec<DeliveryDto>,
}

fn delivery_dto(d: &Delivery, attempts: &[DeliveryAttempt]) -> DeliveryDto {
    DeliveryDto {
        id: d.id,
        alert_id: d.alert_id,
        rule_id: d.rule_id,
        target: d.target.clone(),
        notice: d.notice.clone(),
        state: d.state.clone(),
        attempts: d.attempts,
        created_at: to_rfc3339(d.created_at_ms),
        next_at: (d.state == "queued").then(|| to_rfc3339(d.next_at_ms)),
        finished_at: d.finished_at_ms.map(to_rfc3339),
        last_error: d.last_error.clone(),
        alert: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
        log: attempts
            .iter()
            .filter(|a| a.delivery_id == d.id)
            .map(|a| DeliveryAttemptDto {
                at: to_rfc3339(a.at_ms),
                duration_ms: a.duration_ms,
                outcome: a.outcome.clone(),
                error: a.error.clone(),
            })
            .collect(),
    }
}

#[utoipa::path(
    get, path = "/v1/alerts/deliveries", tag = "alerts",
    description = "The delivery log: each alert notice handed to each of its rule's targets, newest first, with every attempt (when, how long, what came of it). Whoever reads metrics.",
    params(
        ("alert" = Option<i64>, Query, description = "one alert's deliveries"),
        ("state" = Option<String>, Query, description = "queued, delivered, failed or silenced"),
        ("limit" = Option<u32>, Query, description = "1 to 500 (default 100)"),
    ),
    responses((status = 200, body = DeliveryListDto), (status = 400, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<DeliveryListDto>, ApiError> {
    principal.require(Right::ReadMetrics)?;
    let params = Params::new(pairs, &["alert", "state", "limit"])?;
    let alert_id = params.id("alert", "an alert id")?;
    let state_filter = params.choice("state", &["queued", "delivered", "failed", "silenced"])?;
    let limit = params.limit(100, 500)?;
    let store = state.storage.deliveries();
    let filter = DeliveryFilter {
        alert_id,
        state: state_filter,
    };
    let deliveries = store.deliveries(principal.tenant, &filter, limit).await?;
    let ids: Vec<i64> = deliveries.iter().map(|d| d.id).collect();
    let attempts = store.attempts(principal.tenant, &ids).await?;
    Ok(Json(DeliveryListDto {
        deliveries: deliveries
            .iter()
            .map(|d| delivery_dto(d, &attempts))
            .collect(),
    }))
}
