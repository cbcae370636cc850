//! The audit log: `record` appends (`audit_account` in every tenant of an account,
//! `audit_anonymous` before anyone is signed in); `GET /v1/audit` lists and exports a tenant's
//! records.

use crate::ApiQuery;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use hub_core::TenantId;
use hub_storage::{AuditEntry, AuditFilter, AuditRecord, User};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Right;
use crate::{ApiError, AppState, Principal};

/// Rows per page at most; an NDJSON export reads pages of this size until done.
const MAX_PAGE: usize = 1000;
/// Rows an NDJSON export holds at most (narrow the filter for more).
const MAX_EXPORT: usize = 100_000;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// Appends an entry; a storage failure is logged at error level (the action already happened).
pub async fn record(state: &AppState, entry: AuditEntry) {
    tracing::info!(
        tenant = ?entry.tenant.map(|t| t.get()),
        actor = %entry.actor,
        action = %entry.action,
        target = ?entry.target,
        outcome = %entry.outcome,
        "audit"
    );
    if let Err(e) = state.storage.audit().append_audit(&entry).await {
        tracing::error!(error = %e, action = %entry.action, "could not write the audit log");
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecordDto {
    pub id: i64,
    pub at: String,
    pub actor: String,
    /// `auth.login`, `auth.login_failed`, `auth.refresh_reuse`, `auth.logout`, `auth.password`,
    /// `api_key.create|revoke|rotate`, `member.add|role|remove|password_reset`,
    /// `plugin.change|uninstall`, `alert_rule.create|change|delete`.
    pub action: String,
    pub target: Option<String>,
    /// The client's address.
    pub source: Option<String>,
    /// `ok` or `failed`.
    pub outcome: String,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

fn dto(r: &AuditRecord) -> AuditRecordDto {
    let json = |s: &Option<String>| {
        s.as_deref()
            .map(|s| serde_json::from_str(s).unwrap_or(serde_json::Value::String(s.into())))
    };
    AuditRecordDto {
        id: r.id,
        at: hub_core::time::to_rfc3339(r.entry.at_ms),
        actor: r.entry.actor.clone(),
        action: r.entry.action.clone(),
        target: r.entry.target.clone(),
        source: r.entry.source.clone(),
        outcome: r.entry.outcome.clone(),
        before: json(&r.entry.before),
        after: json(&r.entry.after),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageDto {
    pub records: Vec<AuditRecordDto>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only actions starting with this, e.g. `auth.` or `api_key.revoke`.
    pub action: Option<String>,
    /// Only this actor, e.g. `user:ada@example.com` or `key:hub_ab12cd34`.
    pub actor: Option<String>,
    /// RFC 3339, Unix milliseconds or `now-24h`.
    pub from: Option<String>,
    pub to: Option<String>,
    pub cursor: Option<String>,
    /// Records per page, 1 to 1000 (default 100).
    pub limit: Option<usize>,
    /// `ndjson` exports every matching record (up to 100,000) as NDJSON.
    pub format: Option<String>,
    /// Operators: the whole deployment's records (every tenant's, and sign-ins of unknown
    /// people), not only this tenant's.
    pub all: Option<bool>,
}

#[utoipa::path(
    get, path = "/v1/audit", tag = "audit",
    description = "The tenant's audit log, newest first: logins, key and role changes, plugin changes, with actor, time, source address and before/after values. `format=ndjson` (or `Accept: application/x-ndjson`) exports it. Needs the right to read the audit log (owner, admin, or an `admin` key).",
    params(AuditParams),
    responses((status = 200, body = AuditPageDto), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let scope = if p.all == Some(true) {
        if !principal.is_operator() {
            return Err(ApiError::Forbidden(
                "only operators read the whole deployment's audit log".into(),
            ));
        }
        None
    } else {
        principal.require(Right::ReadAudit)?;
        Some(principal.tenant)
    };
    let now = hub_core::time::now_ms();
    let time = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| {
                hub_core::time::parse_query_time(s, now).map_err(|e| ApiError::invalid(name, e))
            })
            .transpose()
    };
    let before_id = p
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid("cursor", "not a cursor this route returned"))
        })
        .transpose()?;
    let filter = AuditFilter {
        action_prefix: p.action.clone(),
        actor: p.actor.clone(),
        from_ms: time("from", &p.from)?,
        to_ms: time("to", &p.to)?,
        before_id,
    };
    crate::query::check_order(filter.from_ms, filter.to_ms)?;
    let ndjson = match p.format.as_deref() {
        Some("ndjson") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                format!("'{other}' is not json or ndjson"),
            ));
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/x-ndjson")),
    };
    let log = state.storage.audit();
    if ndjson {
        let mut out = String::new();
        let mut filter = filter;
        let mut total = 0;
        loop {
            let page = log.list_audit(scope, &filter, MAX_PAGE).await?;
            for r in &page {
                out.push_str(&serde_json::to_string(&dto(r)).unwrap_or_default());
                out.push('\n');
            }
            total += page.len();
            match page.last() {
                Some(last) if page.len() == MAX_PAGE && total < MAX_EXPORT => {
                    filter.before_id = Some(last.id)
                }
                _ => break,
            }
        }
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response());
    }
    let limit = p.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 1000"));
    }
    let mut page = log.list_audit(scope, &filter, limit + 1).await?;
    let next_cursor = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|r| r.id.to_string()).unwrap_or_default()
    });
    Ok(Json(AuditPageDto {
        records: page.iter().map(dto).collect(),
        next_cursor,
    })
    .into_response())
}

pub(crate) async fn audit_anonymous(
    state: &AppState,
    tenant: Option<TenantId>,
    actor: String,
    action: &str,
    outcome: &str,
    source: Option<String>,
) {
    crate::audit::record(
        state,
        AuditEntry {
            at_ms: hub_core::time::now_ms(),
            tenant,
            actor,
            action: action.into(),
            target: None,
            source,
            outcome: outcome.into(),
            before: None,
            after: None,
        },
    )
    .await;
}

/// Where an action on an account is audited: each tenant it belongs to, or the deployment's log
/// when it belongs to none.
pub(crate) async fn account_tenants(
    state: &AppState,
    user: i64,
) -> Result<Vec<Option<TenantId>>, ApiError> {
    let tenants: Vec<Option<TenantId>> = state
        .storage
        .access()
        .memberships(user)
        .await?
        .iter()
        .map(|m| Some(m.tenant))
        .collect();
    Ok(if tenants.is_empty() {
        vec![None]
    } else {
        tenants
    })
}

/// Records an action on an account (its password, its sessions, a failed sign-in) by `actor` in
/// every tenant the account belongs to, so that no tenant's admins miss what another tenant's did
/// to their member.
pub(crate) async fn audit_account(
    state: &AppState,
    user: &User,
    actor: String,
    action: &str,
    outcome: &str,
    source: Option<String>,
) -> Result<(), ApiError> {
    for tenant in account_tenants(state, user.id).await? {
        crate::audit::record(
            state,
            AuditEntry {
                at_ms: hub_core::time::now_ms(),
                tenant,
                actor: actor.clone(),
                action: action.into(),
                target: Some(format!("user:{}", user.email)),
                source: source.clone(),
                outcome: outcome.into(),
                ..Default::default()
            },
        )
        .await;
    }
    Ok(())
}

impl Principal {
    /// Records a security-relevant action of this caller in its tenant's audit log. A failure
    /// to record is logged, never hidden from operators, but does not undo the action.
    pub async fn audit(
        &self,
        state: &AppState,
        action: &str,
        target: Option<String>,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) {
        record(
            state,
            AuditEntry {
                at_ms: hub_core::time::now_ms(),
                tenant: Some(self.tenant),
                actor: self.actor_label(),
                action: action.into(),
                target,
                source: self.source.clone(),
                outcome: "ok".into(),
                before: before.map(|v| v.to_string()),
                after: after.map(|v| v.to_string()),
            },
        )
        .await;
    }
}
