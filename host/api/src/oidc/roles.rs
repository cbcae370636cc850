//! Who gets which role when they sign in with single sign-on: the operator's rules
//! (`--oidc-domain-role`, `--oidc-group-role`) and each tenant's own (`/v1/settings/sso-rules`),
//! matched on the email's domain and the ID token's groups; the highest role per tenant wins.

use base64::Engine;
use hub_core::Role;

use super::OidcSettings;
use crate::settings::{TenantRuleDto, TenantSsoRulesDto};
use crate::{ApiError, AppState};

/// A mapping rule: people matching `pattern` get `role` in `tenant`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleRule {
    /// An email domain (`example.com`) or a group name, depending on the list it is in.
    pub pattern: String,
    pub tenant: String,
    pub role: Role,
}

impl RoleRule {
    /// Parses `pattern=tenant:role`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (pattern, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("'{s}' is not PATTERN=TENANT:ROLE"))?;
        let (tenant, role) = rest
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not PATTERN=TENANT:ROLE"))?;
        if pattern.is_empty() || tenant.is_empty() {
            return Err(format!("'{s}' is not PATTERN=TENANT:ROLE"));
        }
        Ok(RoleRule {
            pattern: pattern.to_lowercase(),
            tenant: tenant.into(),
            role: Role::parse(role)?,
        })
    }
}

/// The tenants and roles the rules give this person (the highest role per tenant): the operator's
/// and the tenants' own (`tenants`: domain rules, group rules).
pub(super) fn mapped_roles(
    settings: &OidcSettings,
    tenants: &(Vec<RoleRule>, Vec<RoleRule>),
    email: &str,
    groups: &[String],
) -> Vec<(String, Role)> {
    let domain = email
        .rsplit_once('@')
        .map(|(_, d)| d.to_lowercase())
        .unwrap_or_default();
    let mut out: Vec<(String, Role)> = Vec::new();
    let rules = settings
        .domain_roles
        .iter()
        .chain(&tenants.0)
        .filter(|r| r.pattern == domain)
        .chain(
            settings
                .group_roles
                .iter()
                .chain(&tenants.1)
                .filter(|r| groups.iter().any(|g| g.to_lowercase() == r.pattern)),
        );
    for r in rules {
        match out.iter_mut().find(|(t, _)| *t == r.tenant) {
            Some((_, role)) => *role = (*role).max(r.role),
            None => out.push((r.tenant.clone(), r.role)),
        }
    }
    out
}

/// The groups claim of a verified ID token (read from its payload; the signature was checked).
pub(super) fn groups_of(id_token: &str, claim: &str) -> Vec<String> {
    let Some(payload) = id_token.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    match &v[claim] {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|g| g.as_str().map(String::from))
            .collect(),
        serde_json::Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Every tenant's own rules as role rules naming their tenant: (domain rules, group rules). A
/// document that no longer reads is skipped with a warning rather than failing sign-ins.
pub(crate) async fn tenant_rules(
    state: &AppState,
) -> Result<(Vec<RoleRule>, Vec<RoleRule>), ApiError> {
    let mut out = (Vec::new(), Vec::new());
    for (tenant, json) in state.storage.settings().all_tenant_sso_rules().await? {
        let Ok(doc) = serde_json::from_str::<TenantSsoRulesDto>(&json) else {
            tracing::warn!(tenant = %tenant, "a tenant's SSO rules do not read; skipped");
            continue;
        };
        let rule = |r: TenantRuleDto| {
            Role::parse(&r.role).ok().map(|role| RoleRule {
                pattern: r.pattern,
                tenant: tenant.clone(),
                role,
            })
        };
        out.0.extend(doc.domain_roles.into_iter().filter_map(rule));
        out.1.extend(doc.group_roles.into_iter().filter_map(rule));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_map_to_the_highest_role() {
        assert_eq!(
            RoleRule::parse("Example.com=acme:analyst").unwrap(),
            RoleRule {
                pattern: "example.com".into(),
                tenant: "acme".into(),
                role: Role::Analyst
            }
        );
        assert!(RoleRule::parse("example.com=acme").is_err());
        assert!(RoleRule::parse("example.com=acme:root").is_err());
        let settings = OidcSettings {
            issuer: "http://x".into(),
            client_id: "c".into(),
            client_secret: None,
            redirect_url: "http://h/cb".into(),
            scopes: vec![],
            groups_claim: "groups".into(),
            domain_roles: vec![RoleRule::parse("example.com=acme:viewer").unwrap()],
            group_roles: vec![
                RoleRule::parse("hub-admins=acme:admin").unwrap(),
                RoleRule::parse("globex-team=globex:analyst").unwrap(),
            ],
            after_login_url: "/".into(),
        };
        let none = (Vec::new(), Vec::new());
        assert_eq!(
            mapped_roles(&settings, &none, "ada@EXAMPLE.com", &["Hub-Admins".into()]),
            [("acme".to_string(), Role::Admin)]
        );
        assert_eq!(
            mapped_roles(&settings, &none, "bob@other.org", &["globex-team".into()]),
            [("globex".to_string(), Role::Analyst)]
        );
        assert!(mapped_roles(&settings, &none, "eve@other.org", &[]).is_empty());
        // A tenant's own rules join the operator's; the higher role per tenant wins.
        let tenants = (
            vec![RoleRule::parse("other.org=initech:analyst").unwrap()],
            vec![RoleRule::parse("hub-admins=acme:viewer").unwrap()],
        );
        assert_eq!(
            mapped_roles(&settings, &tenants, "eve@other.org", &["hub-admins".into()]),
            [
                ("initech".to_string(), Role::Analyst),
                ("acme".to_string(), Role::Admin)
            ]
        );
    }
}
