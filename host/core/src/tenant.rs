//! Tenants and the rights an API key carries.

use std::fmt;

/// The identity of one tenant.
///
/// Invariant: a `TenantId` is minted only by the auth layer, after it verified a credential, (or by
/// an operator command that names the tenant explicitly). Storage methods that read or write tenant
/// data take one, so no query can be written without saying whose data it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(i64);

impl TenantId {
    /// Wraps a database id that the caller has verified belongs to an authenticated principal.
    pub const fn from_verified(raw: i64) -> Self {
        Self(raw)
    }

    /// The raw database id, for binding into queries.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Checks a tenant name: 1 to 64 lowercase letters, digits or dashes, not starting with a dash.
pub fn check_tenant_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tenant name '{name}' must be 1-64 lowercase letters, digits or dashes, not starting with a dash"
        ))
    }
}

/// What an API key may do. A closed set: unknown scopes are refused when a key is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiKeyScope {
    /// `POST /v1/events`.
    Ingest,
    /// The metrics and event query routes.
    Query,
    /// Tenant administration through the API (keys, plugins, settings).
    Admin,
}

impl ApiKeyScope {
    pub const ALL: [ApiKeyScope; 3] = [Self::Ingest, Self::Query, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Query => "query",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// Parses a comma-separated list such as `ingest,query`, naming the first unknown entry.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        let mut scopes = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let scope = Self::parse(part)
                .ok_or_else(|| format!("unknown scope '{part}'; allowed: ingest, query, admin"))?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err("at least one scope is required (ingest, query, admin)".into());
        }
        scopes.sort();
        Ok(scopes)
    }
}

impl fmt::Display for ApiKeyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_lists_parse_and_name_the_bad_entry() {
        assert_eq!(
            ApiKeyScope::parse_list("query, ingest,query").unwrap(),
            vec![ApiKeyScope::Ingest, ApiKeyScope::Query]
        );
        let err = ApiKeyScope::parse_list("ingest,write").unwrap_err();
        assert!(err.contains("'write'"), "{err}");
        assert!(ApiKeyScope::parse_list(" , ").is_err());
    }
}

/// A user's role in one tenant. Ordered: a higher role holds every right of the lower ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Dashboards: metrics and time series, nothing else.
    Viewer,
    /// Reads everything of the tenant (events with payloads, plugins, keys' listing); changes
    /// nothing.
    Analyst,
    /// Changes everything of the tenant but its owners: plugins, keys, members up to admin.
    Admin,
    /// Everything, including other owners and the tenant's SSO and retention settings.
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Self::Viewer, Self::Analyst, Self::Admin, Self::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role '{s}'; allowed: owner, admin, analyst, viewer"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
