//! `/v1/alerts`: alert rules (analysts and higher write them; whoever reads metrics reads them)
//! and the alerts they raised, open and past. A rule is checked whole and every error names its
//! JSON pointer; a rule that names a detector, a target or a budget's integration the tenant has
//! not installed is a 400.
//! Another tenant's rule is a 404. Every change is audited. (A rule not yet saved is previewed
//! in `preview`; the delivery log of the notices is `deliveries`.)

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use hub_core::time::{parse_query_time, to_rfc3339};
use hub_pipeline::alerts::rule::{self, Condition, Rule};
use hub_plugins::PluginKind;
use hub_storage::{
    Acknowledgement, AlertCursor, AlertFilter, AlertRecord, StorageError, StoredRule,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Right;
use crate::query::Params;
use crate::{ApiError, AppState, Principal, json_body};

const MAX_RULES: usize = 1_000;
const MAX_RULE_BYTES: usize = 16 * 1024;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, update_rule, delete_rule))
        .routes(routes!(list_alerts))
        .routes(routes!(acknowledge))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertRuleDto {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    /// The rule as written (name, severity, condition, labels, targets, renotify, description).
    #[schema(value_type = Object)]
    pub rule: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
    pub updated_by: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertRuleListDto {
    pub rules: Vec<AlertRuleDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertDto {
    pub id: i64,
    pub rule_id: i64,
    /// The dimension values the alert is about (`{}`: all traffic).
    #[schema(value_type = Object)]
    pub group: std::collections::BTreeMap<String, String>,
    /// `pending`, `firing` or `resolved`.
    pub state: String,
    pub severity: String,
    /// The newest value judged.
    pub value: f64,
    pub summary: String,
    /// When the condition started holding.
    pub since: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// Someone on it (no more reminders): who, when, what they said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<AcknowledgementDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcknowledgementDto {
    pub at: String,
    pub by: String,
    pub comment: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPageDto {
    pub alerts: Vec<AlertDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn rule_dto(r: &StoredRule) -> AlertRuleDto {
    AlertRuleDto {
        id: r.id,
        name: r.name.clone(),
        enabled: r.enabled,
        rule: serde_json::from_str(&r.spec).unwrap_or(serde_json::Value::Null),
        created_at: to_rfc3339(r.created_at_ms),
        updated_at: to_rfc3339(r.updated_at_ms),
        updated_by: r.updated_by.clone(),
    }
}

fn alert_dto(a: &AlertRecord) -> AlertDto {
    AlertDto {
        id: a.id,
        rule_id: a.rule_id,
        group: a.group.iter().cloned().collect(),
        state: a.state.clone(),
        severity: a.severity.as_str().into(),
        value: a.value,
        summary: a.summary.clone(),
        since: to_rfc3339(a.since_ms),
        fired_at: a.fired_at_ms.map(to_rfc3339),
        resolved_at: a.resolved_at_ms.map(to_rfc3339),
        acknowledged: a.acknowledged.as_ref().map(|k| AcknowledgementDto {
            at: to_rfc3339(k.at_ms),
            by: k.by.clone(),
            comment: k.comment.clone(),
        }),
    }
}

/// The body checked: the rule (with `enabled` taken out) as stored, and the rule read.
pub(crate) async fn checked(
    state: &AppState,
    principal: &Principal,
    body: &[u8],
) -> Result<(String, bool, Rule), ApiError> {
    if body.len() > MAX_RULE_BYTES {
        return Err(ApiError::BadRequest(format!(
            "the rule is {} bytes; at most {MAX_RULE_BYTES}",
            body.len()
        )));
    }
    let mut v: serde_json::Value = json_body(body)?;
    let enabled = match v.as_object_mut().and_then(|o| o.remove("enabled")) {
        None => true,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => return Err(ApiError::invalid("/enabled", "must be true or false")),
    };
    let rule = rule::parse(&v).map_err(|e| ApiError::invalid(&e.path, e.message))?;
    if matches!(rule.condition, Condition::Composite { .. }) {
        let others: Vec<(String, Option<Rule>)> = state
            .storage
            .alerts()
            .rules(principal.tenant)
            .await?
            .into_iter()
            .filter(|r| r.name != rule.name)
            .map(|r| {
                let read = serde_json::from_str(&r.spec).ok();
                (r.name, read.and_then(|v| rule::parse(&v).ok()))
            })
            .collect();
        rule::check_composition(&rule.name, &rule.condition, &others)
            .map_err(|e| ApiError::invalid(&e.path, e.message))?;
    }
    // What the rule names must be installed for the tenant: its detector, its targets.
    let installs = state
        .storage
        .plugins()
        .plugin_installs(principal.tenant)
        .await?;
    let installed = |name: &str, kind: PluginKind| {
        installs
            .iter()
            .any(|i| i.name == name && i.kind == kind.as_str())
    };
    if let Condition::Anomaly {
        detector: Some(d), ..
    } = &rule.condition
        && !installed(d, PluginKind::Detector)
    {
        return Err(ApiError::invalid(
            "/condition/detector",
            format!("no detector named `{d}` is installed for this tenant"),
        ));
    }
    if let Condition::Budget { from: Some(f), .. } = &rule.condition
        && !installed(&f.integration, PluginKind::Integration)
    {
        return Err(ApiError::invalid(
            "/condition/budget_from/integration",
            format!(
                "no integration named `{}` is installed for this tenant",
                f.integration
            ),
        ));
    }
    for (i, t) in rule.targets.iter().enumerate() {
        if !installed(t, PluginKind::Integration) {
            return Err(ApiError::invalid(
                &format!("/targets/{i}"),
                format!("no integration named `{t}` is installed for this tenant"),
            ));
        }
    }
    Ok((v.to_string(), enabled, rule))
}

fn name_conflict(e: StorageError, name: &str) -> ApiError {
    match e {
        StorageError::Conflict(_) => ApiError::invalid(
            "/name",
            format!("the tenant has a rule named '{name}' already"),
        ),
        e => e.into(),
    }
}

fn missing(id: &str) -> ApiError {
    ApiError::NotFound(format!("no alert rule {id} in this tenant"))
}

/// The tenant's rule `id` (a path segment): its number and the rule, or a 404.
async fn stored(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<(i64, StoredRule), ApiError> {
    let n: i64 = id.parse().map_err(|_| missing(id))?;
    let rule = state.storage.alerts().rule(principal.tenant, n).await?;
    Ok((n, rule.ok_or_else(|| missing(id))?))
}

#[utoipa::path(
    get, path = "/v1/alerts/rules", tag = "alerts",
    description = "The tenant's alert rules, by name. Whoever reads metrics.",
    responses((status = 200, body = AlertRuleListDto), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_rules(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<AlertRuleListDto>, ApiError> {
    principal.require(Right::ReadMetrics)?;
    let rules = state.storage.alerts().rules(principal.tenant).await?;
    Ok(Json(AlertRuleListDto {
        rules: rules.iter().map(rule_dto).collect(),
    }))
}

#[utoipa::path(
    post, path = "/v1/alerts/rules", tag = "alerts",
    description = "Adds an alert rule (`threshold`: a metric over a window per group, held for a while; `anomaly`: what a detector found; `budget`: the month's spend against a budget, fixed or from an integration; `event`: events of an envelope kind; `composite`: AND/OR of other rules). Its first evaluation is within a minute. Analysts and higher.",
    request_body(content = Object, description = "the rule, and optionally `enabled` (default true)"),
    responses((status = 201, body = AlertRuleDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn create_rule(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<AlertRuleDto>), ApiError> {
    principal.require(Right::ManageAlerts)?;
    let (spec, enabled, rule) = checked(&state, &principal, &body).await?;
    let store = state.storage.alerts();
    if store.rules(principal.tenant).await?.len() >= MAX_RULES {
        return Err(ApiError::BadRequest(format!(
            "the tenant has {MAX_RULES} alert rules, the most it may have"
        )));
    }
    let who = principal.actor_label();
    let r = store
        .create_rule(
            principal.tenant,
            &rule.name,
            &spec,
            enabled,
            &who,
            hub_core::time::now_ms(),
        )
        .await
        .map_err(|e| name_conflict(e, &rule.name))?;
    let dto = rule_dto(&r);
    principal
        .audit(
            &state,
            "alert_rule.create",
            Some(format!("alert rule {}", r.id)),
            None,
            serde_json::to_value(&dto).ok(),
        )
        .await;
    Ok((StatusCode::CREATED, Json(dto)))
}

#[utoipa::path(
    get, path = "/v1/alerts/rules/{id}", tag = "alerts",
    description = "One alert rule. Another tenant's is a 404.",
    params(("id" = i64, Path, description = "the rule's id")),
    responses((status = 200, body = AlertRuleDto), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn get_rule(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<AlertRuleDto>, ApiError> {
    principal.require(Right::ReadMetrics)?;
    let (_, rule) = stored(&state, &principal, &id).await?;
    Ok(Json(rule_dto(&rule)))
}

#[utoipa::path(
    put, path = "/v1/alerts/rules/{id}", tag = "alerts",
    description = "Replaces an alert rule. Its open alerts end without a notice (the new rule judges afresh). Analysts and higher.",
    params(("id" = i64, Path, description = "the rule's id")),
    request_body(content = Object, description = "the rule, and optionally `enabled` (default true)"),
    responses((status = 200, body = AlertRuleDto), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn update_rule(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<AlertRuleDto>, ApiError> {
    principal.require(Right::ManageAlerts)?;
    let (n, before) = stored(&state, &principal, &id).await?;
    let (spec, enabled, rule) = checked(&state, &principal, &body).await?;
    let who = principal.actor_label();
    let r = state
        .storage
        .alerts()
        .update_rule(
            principal.tenant,
            n,
            &rule.name,
            &spec,
            enabled,
            &who,
            hub_core::time::now_ms(),
        )
        .await
        .map_err(|e| name_conflict(e, &rule.name))?
        .ok_or_else(|| missing(&id))?;
    let dto = rule_dto(&r);
    principal
        .audit(
            &state,
            "alert_rule.change",
            Some(format!("alert rule {n}")),
            serde_json::to_value(rule_dto(&before)).ok(),
            serde_json::to_value(&dto).ok(),
        )
        .await;
    Ok(Json(dto))
}

#[utoipa::path(
    delete, path = "/v1/alerts/rules/{id}", tag = "alerts",
    description = "Deletes an alert rule and its alerts. Analysts and higher.",
    params(("id" = i64, Path, description = "the rule's id")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn delete_rule(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Right::ManageAlerts)?;
    let (n, before) = stored(&state, &principal, &id).await?;
    if !state
        .storage
        .alerts()
        .delete_rule(principal.tenant, n)
        .await?
    {
        return Err(missing(&id));
    }
    principal
        .audit(
            &state,
            "alert_rule.delete",
            Some(format!("alert rule {n}")),
            serde_json::to_value(rule_dto(&before)).ok(),
            None,
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get, path = "/v1/alerts", tag = "alerts",
    description = "Alerts, newest first: open ones (`state=open`: pending and firing) and past ones. Whoever reads metrics.",
    params(
        ("state" = Option<String>, Query, description = "open, pending, firing or resolved"),
        ("rule" = Option<i64>, Query, description = "one rule's alerts"),
        ("from" = Option<String>, Query, description = "alerts that started at or after (RFC 3339, epoch ms, now-24h)"),
        ("to" = Option<String>, Query, description = "alerts that started before"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 500 (default 100)"),
    ),
    responses((status = 200, body = AlertPageDto), (status = 400, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_alerts(
    State(state): State<AppState>,
    principal: Principal,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<AlertPageDto>, ApiError> {
    principal.require(Right::ReadMetrics)?;
    let params = Params::new(pairs, &["state", "rule", "from", "to", "cursor", "limit"])?;
    let now = hub_core::time::now_ms();
    let time = |name: &str| -> Result<Option<i64>, ApiError> {
        params
            .one(name)
            .map(|v| parse_query_time(v, now).map_err(|e| ApiError::invalid(name, e)))
            .transpose()
    };
    let state_filter = params.choice("state", &["open", "pending", "firing", "resolved"])?;
    let rule = params.id("rule", "a rule id")?;
    let limit = params.limit(100, 500)?;
    let after = params
        .one("cursor")
        .map(crate::wire::decode_id_cursor)
        .transpose()?
        .map(|(since_ms, id)| AlertCursor { since_ms, id });
    let filter = AlertFilter {
        state: state_filter,
        rule_id: rule,
        from_ms: time("from")?,
        to_ms: time("to")?,
    };
    let (alerts, next) = state
        .storage
        .alerts()
        .list_alerts(principal.tenant, &filter, after, limit)
        .await?;
    Ok(Json(AlertPageDto {
        alerts: alerts.iter().map(alert_dto).collect(),
        next_cursor: next.map(|c| crate::wire::encode_cursor(c.since_ms, &c.id.to_string())),
    }))
}

#[utoipa::path(
    post, path = "/v1/alerts/{id}/acknowledge", tag = "alerts",
    description = "Says someone is on an open (pending or firing) alert, with an optional `comment`: it gets no more reminders (its resolution is still notified). Analysts and higher; audited. A resolved alert, or another tenant's, is a 404.",
    params(("id" = i64, Path, description = "the alert")),
    request_body(content = Object, description = "`{\"comment\": \"…\"}` (optional, at most 1,000 characters)"),
    responses((status = 200, body = AlertDto), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn acknowledge(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<AlertDto>, ApiError> {
    principal.require(Right::ManageAlerts)?;
    let comment = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        let v: serde_json::Value = json_body(&body)?;
        let o = v
            .as_object()
            .ok_or_else(|| ApiError::invalid("/", "must be an object"))?;
        if let Some(k) = o.keys().find(|k| *k != "comment") {
            return Err(ApiError::invalid(
                &format!("/{k}"),
                "is not a field here; allowed: comment",
            ));
        }
        match o.get("comment") {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(c)) if c.len() <= 1_000 => c.trim().to_string(),
            Some(_) => {
                return Err(ApiError::invalid(
                    "/comment",
                    "a text of at most 1,000 characters",
                ));
            }
        }
    };
    let missing = || ApiError::NotFound(format!("no open alert {id} in this tenant"));
    let n: i64 = id.parse().map_err(|_| missing())?;
    let ack = Acknowledgement {
        at_ms: hub_core::time::now_ms(),
        by: principal.actor_label(),
        comment,
    };
    let a = state
        .storage
        .alerts()
        .acknowledge(principal.tenant, n, &ack)
        .await?
        .ok_or_else(missing)?;
    let dto = alert_dto(&a);
    principal
        .audit(
            &state,
            "alert.acknowledge",
            Some(format!("alert {n}")),
            None,
            serde_json::to_value(&dto).ok(),
        )
        .await;
    Ok(Json(dto))
}
