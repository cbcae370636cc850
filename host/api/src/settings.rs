//! What a tenant reads and sets about itself: the operator's sign-in and retention settings as
//! they stand (`GET /v1/settings`), and the tenant's own retention and single sign-on rules.

use axum::Json;
use axum::extract::State;
use hub_core::Role;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{ApiError, AppState};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(settings))
        .routes(routes!(retention, set_retention))
        .routes(routes!(get_tenant_rules, set_tenant_rules))
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

/// A tenant's own rule: people whose email domain (or group) is `pattern` get `role` here.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantRuleDto {
    pub pattern: String,
    /// `viewer`, `analyst` or `admin`.
    pub role: String,
}

/// The single sign-on rules a tenant's admins keep for their tenant.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSsoRulesDto {
    /// Email domain (`example.com`) → role in this tenant.
    #[serde(default)]
    pub domain_roles: Vec<TenantRuleDto>,
    /// Identity-provider group → role in this tenant.
    #[serde(default)]
    pub group_roles: Vec<TenantRuleDto>,
}

/// Rules per list a tenant may keep.
const MAX_TENANT_RULES: usize = 100;

impl TenantSsoRulesDto {
    /// The rules normalized (lowercase patterns), or the first one that cannot be kept, by path.
    fn checked(self) -> Result<Self, ApiError> {
        let check = |list: &'static str, rules: Vec<TenantRuleDto>| {
            if rules.len() > MAX_TENANT_RULES {
                return Err(ApiError::invalid(
                    list,
                    format!(
                        "{} rules; a tenant keeps at most {MAX_TENANT_RULES}",
                        rules.len()
                    ),
                ));
            }
            let mut out: Vec<TenantRuleDto> = Vec::with_capacity(rules.len());
            for (i, r) in rules.into_iter().enumerate() {
                let at = |f: &str| format!("{list}[{i}].{f}");
                let pattern = r.pattern.trim().to_lowercase();
                let bad = if list == "domain_roles" {
                    let labels_ok = pattern.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    });
                    (!pattern.contains('.') || !labels_ok || pattern.len() > 253)
                        .then_some("is not an email domain such as example.com")
                } else {
                    (pattern.is_empty()
                        || pattern.len() > 256
                        || pattern.chars().any(char::is_control))
                    .then_some("is not a group name (1 to 256 printable characters)")
                };
                if let Some(why) = bad {
                    return Err(ApiError::invalid(
                        &at("pattern"),
                        format!("'{}' {why}", r.pattern),
                    ));
                }
                let role = match Role::parse(&r.role) {
                    Ok(Role::Owner) => {
                        return Err(ApiError::invalid(
                            &at("role"),
                            "a rule gives viewer, analyst or admin; owners are made by owners",
                        ));
                    }
                    Ok(role) => role,
                    Err(e) => return Err(ApiError::invalid(&at("role"), e)),
                };
                if out.iter().any(|o| o.pattern == pattern) {
                    return Err(ApiError::invalid(
                        &at("pattern"),
                        format!("'{pattern}' has a rule already in this list"),
                    ));
                }
                out.push(TenantRuleDto {
                    pattern,
                    role: role.as_str().into(),
                });
            }
            Ok(out)
        };
        Ok(Self {
            domain_roles: check("domain_roles", self.domain_roles)?,
            group_roles: check("group_roles", self.group_roles)?,
        })
    }
}

#[utoipa::path(get, path = "/v1/settings/sso-rules", tag = "auth",
    description = "This tenant's own single sign-on rules: email domains and identity-provider groups that get a role here when they sign in with the deployment's provider (alongside the operator's rules; the higher role wins). Needs the `query` or `admin` scope, or analyst and up.",
    responses((status = 200, body = TenantSsoRulesDto), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn get_tenant_rules(
    State(state): State<AppState>,
    principal: crate::Principal,
) -> Result<axum::Json<TenantSsoRulesDto>, ApiError> {
    principal.require(crate::Right::ReadConfig)?;
    let doc = match state
        .storage
        .settings()
        .tenant_sso_rules(principal.tenant)
        .await?
    {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| ApiError::Internal(format!("stored SSO rules do not read: {e}")))?,
        None => TenantSsoRulesDto::default(),
    };
    Ok(axum::Json(doc))
}

#[utoipa::path(put, path = "/v1/settings/sso-rules", tag = "auth", request_body = TenantSsoRulesDto,
    description = "Replaces this tenant's single sign-on rules. Patterns are email domains or group names (compared without case); roles are viewer, analyst or admin; at most 100 rules per list. They give roles in this tenant only, at the next sign-in of each person. Needs the `admin` scope, or admin and up; audited.",
    responses((status = 200, body = TenantSsoRulesDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn set_tenant_rules(
    State(state): State<AppState>,
    principal: crate::Principal,
    body: axum::body::Bytes,
) -> Result<axum::Json<TenantSsoRulesDto>, ApiError> {
    principal.require(crate::Right::ManageSettings)?;
    let doc = crate::json_body::<TenantSsoRulesDto>(&body)?.checked()?;
    let before = state
        .storage
        .settings()
        .tenant_sso_rules(principal.tenant)
        .await?;
    let json = serde_json::to_string(&doc).expect("strings serialize");
    state
        .storage
        .settings()
        .set_tenant_sso_rules(principal.tenant, &json, hub_core::time::now_ms())
        .await?;
    principal
        .audit(
            &state,
            "settings.sso_rules",
            None,
            before.and_then(|b| serde_json::from_str(&b).ok()),
            serde_json::to_value(&doc).ok(),
        )
        .await;
    Ok(axum::Json(doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_rules_are_checked_and_normalized() {
        let rules = |d: serde_json::Value, g: serde_json::Value| {
            serde_json::from_value::<TenantSsoRulesDto>(
                serde_json::json!({"domain_roles": d, "group_roles": g}),
            )
            .unwrap()
            .checked()
        };
        let ok = rules(
            serde_json::json!([{"pattern": " Example.COM ", "role": "analyst"}]),
            serde_json::json!([{"pattern": "Data Team", "role": "admin"}]),
        )
        .unwrap();
        assert_eq!(ok.domain_roles[0].pattern, "example.com");
        assert_eq!(ok.group_roles[0].pattern, "data team");
        for (d, g, path, says) in [
            (
                serde_json::json!([{"pattern": "example", "role": "viewer"}]),
                serde_json::json!([]),
                "domain_roles[0].pattern",
                "not an email domain",
            ),
            (
                serde_json::json!([{"pattern": "a@example.com", "role": "viewer"}]),
                serde_json::json!([]),
                "domain_roles[0].pattern",
                "not an email domain",
            ),
            (
                serde_json::json!([]),
                serde_json::json!([{"pattern": "x", "role": "owner"}]),
                "group_roles[0].role",
                "owners are made by owners",
            ),
            (
                serde_json::json!([]),
                serde_json::json!([{"pattern": "x", "role": "root"}]),
                "group_roles[0].role",
                "root",
            ),
            (
                serde_json::json!([{"pattern": "a.io", "role": "viewer"}, {"pattern": "A.io", "role": "admin"}]),
                serde_json::json!([]),
                "domain_roles[1].pattern",
                "already",
            ),
        ] {
            let e = rules(d, g).unwrap_err().to_string();
            assert!(e.contains(path) && e.contains(says), "{e}");
        }
    }
}
