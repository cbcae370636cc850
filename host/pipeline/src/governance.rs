//! Policy violations counted: a period's `governance.policy_violation` events of a tenant, by
//! policy, resource and severity, for an integration that reports compliance (`policy`).

use std::collections::HashMap;

use hub_core::TenantId;
use hub_storage::{EventField, EventFilter, Storage, StorageError};

/// The kind of a policy violation's event.
pub const VIOLATION_KIND: &str = "governance.policy_violation";
/// Groups handed on at most (most violations first).
pub const MAX_GROUPS: usize = 1_000;
/// Events read at most for one period.
const MAX_READ: usize = 100_000;

/// One group's count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Violations {
    pub policy: String,
    pub policy_name: String,
    pub resource: String,
    pub severity: String,
    pub count: u32,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// The violations of `[from_ms, to_ms)`, most first, then by policy and resource.
pub async fn count(
    store: &dyn Storage,
    tenant: TenantId,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Violations>, StorageError> {
    let filter = EventFilter {
        from_ms: Some(from_ms),
        to_ms: Some(to_ms),
        fields: vec![(EventField::Kind, VIOLATION_KIND.into())],
        ..Default::default()
    };
    let mut groups: HashMap<(String, String, String), Violations> = HashMap::new();
    let (mut after, mut read) = (None, 0);
    loop {
        let page = store
            .list_events(tenant, &filter, after.as_ref(), 1_000)
            .await?;
        read += page.events.len();
        // Newest first: the first name seen for a policy is its newest.
        for e in &page.events {
            let r = &e.record;
            let data = serde_json::from_str::<serde_json::Value>(&r.payload_json)
                .ok()
                .and_then(|v| v.get("payload")?.get("data").cloned())
                .unwrap_or_default();
            let field = |k: &str| {
                data.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let severity = Some(field("severity"))
                .filter(|s| !s.is_empty())
                .or_else(|| r.severity.map(|s| s.as_str().to_string()))
                .unwrap_or_default();
            let key = (field("policy_id"), field("resource_id"), severity);
            let g = groups.entry(key.clone()).or_insert_with(|| Violations {
                policy: key.0.clone(),
                policy_name: field("policy_name"),
                resource: key.1.clone(),
                severity: key.2.clone(),
                first_ms: r.ts_ms,
                last_ms: r.ts_ms,
                ..Default::default()
            });
            g.count = g.count.saturating_add(1);
            g.first_ms = g.first_ms.min(r.ts_ms);
            g.last_ms = g.last_ms.max(r.ts_ms);
        }
        match page.next {
            Some(next) if read < MAX_READ => after = Some(next),
            _ => break,
        }
    }
    let mut out: Vec<Violations> = groups.into_values().collect();
    out.sort_by(|a, b| {
        b.count.cmp(&a.count).then_with(|| {
            (&a.policy, &a.resource, &a.severity).cmp(&(&b.policy, &b.resource, &b.severity))
        })
    });
    out.truncate(MAX_GROUPS);
    Ok(out)
}
