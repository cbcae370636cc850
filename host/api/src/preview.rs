//! `POST /v1/alerts/rules/preview`: how often a rule not yet saved would have fired over the
//! last week (the rule form's preview), checked as a create checks it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use hub_core::time::to_rfc3339;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::alerts::checked;
use crate::auth::Right;
use crate::{ApiError, AppState, Principal};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(preview_rule))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EpisodeDto {
    /// The alert's group (empty for a rule that is not grouped).
    #[schema(value_type = Object)]
    pub group: serde_json::Value,
    pub fired_at: String,
    /// Absent while it would still be firing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RulePreviewDto {
    /// Whether this kind of rule is previewed (threshold and anomaly rules are).
    pub supported: bool,
    pub from: String,
    pub to: String,
    /// How far apart the replay's evaluations were (the rule itself runs every minute).
    pub every: String,
    /// Groups judged (the 100 busiest at most).
    pub groups: usize,
    /// Times an alert would have started firing.
    pub fired: usize,
    /// Time spent firing, summed over groups, milliseconds.
    pub firing_ms: i64,
    /// The newest 20 times it would have fired.
    pub episodes: Vec<EpisodeDto>,
    pub note: String,
}

#[utoipa::path(
    post, path = "/v1/alerts/rules/preview", tag = "alerts",
    description = "How often a rule (the body a create takes; not saved) would have fired over the last 7 days: a threshold rule replayed over the minute rollups, an anomaly rule over the stored anomalies. Budget, event and composite rules are not previewed (`supported: false`). Analysts and higher.",
    request_body(content = Object, description = "an alert rule"),
    responses((status = 200, body = RulePreviewDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn preview_rule(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<RulePreviewDto>, ApiError> {
    principal.require(Right::ManageAlerts)?;
    let (_, _, rule) = checked(&state, &principal, &body).await?;
    let now = hub_core::time::now_ms();
    let p = hub_pipeline::alerts::preview::preview(
        state.storage.as_ref(),
        principal.tenant,
        &rule,
        now,
    )
    .await?;
    let Some(p) = p else {
        return Ok(Json(RulePreviewDto {
            supported: false,
            from: to_rfc3339(now - hub_pipeline::alerts::preview::SPAN_MS),
            to: to_rfc3339(now),
            every: "1m".into(),
            groups: 0,
            fired: 0,
            firing_ms: 0,
            episodes: Vec::new(),
            note: format!(
                "a {} rule is not previewed: it depends on what only the live evaluation has",
                rule.condition.kind()
            ),
        }));
    };
    let note = match p.fired {
        0 => "it would not have fired over the last 7 days".to_string(),
        n => format!(
            "it would have fired {n} time{} over the last 7 days",
            if n == 1 { "" } else { "s" }
        ),
    };
    Ok(Json(RulePreviewDto {
        supported: true,
        from: to_rfc3339(p.from_ms),
        to: to_rfc3339(p.to_ms),
        every: hub_core::time::format_duration_ms(p.step_ms),
        groups: p.groups,
        fired: p.fired,
        firing_ms: p.firing_ms,
        episodes: p
            .episodes
            .iter()
            .map(|e| EpisodeDto {
                group: serde_json::Value::Object(
                    e.group
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone().into()))
                        .collect(),
                ),
                fired_at: to_rfc3339(e.fired_ms),
                resolved_at: e.resolved_ms.map(to_rfc3339),
            })
            .collect(),
        note,
    }))
}
