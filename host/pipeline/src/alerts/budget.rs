//! A budget rule's budget kept in another system: the newest limit an integration's sync brought
//! in for the budget's id, a `cost.budget` event tagged with the integration
//! (`payload.data.budget_id`, `payload.data.budget_limit_usd`), from the raw events of the last
//! week.

use hub_core::TenantId;
use hub_core::ingest::INTEGRATION_TAG;
use hub_core::time::DAY_MS;
use hub_storage::{EventField, EventFilter, Storage, StorageError};

use super::rule::BudgetFrom;

/// The kind of a budget's event.
pub const BUDGET_KIND: &str = "cost.budget";
/// Budget events looked through at most (newest first).
const MAX_READ: usize = 5_000;

/// The newest limit of `from`'s budget, `None` when none of the last week names it.
pub async fn limit(
    store: &dyn Storage,
    tenant: TenantId,
    from: &BudgetFrom,
    now_ms: i64,
) -> Result<Option<f64>, StorageError> {
    let filter = EventFilter {
        from_ms: Some(now_ms - 7 * DAY_MS),
        to_ms: Some(now_ms + 1),
        fields: vec![(EventField::Kind, BUDGET_KIND.into())],
        ..Default::default()
    };
    let (mut after, mut read) = (None, 0);
    loop {
        let page = store
            .list_events(tenant, &filter, after.as_ref(), 500)
            .await?;
        read += page.events.len();
        for e in &page.events {
            if let Some(l) = limit_of(&e.record.tags_json, &e.record.payload_json, from) {
                return Ok(Some(l));
            }
        }
        match page.next {
            Some(next) if read < MAX_READ => after = Some(next),
            _ => return Ok(None),
        }
    }
}

/// The limit an event gives, if it is `from`'s integration's and about its budget.
fn limit_of(tags_json: &str, payload_json: &str, from: &BudgetFrom) -> Option<f64> {
    let tags: serde_json::Value = serde_json::from_str(tags_json).ok()?;
    if tags.get(INTEGRATION_TAG)?.as_str()? != from.integration {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(payload_json).ok()?;
    let data = v.get("payload")?.get("data")?;
    (data.get("budget_id")?.as_str()? == from.budget_id)
        .then(|| data.get("budget_limit_usd")?.as_f64())
        .flatten()
        .filter(|l| l.is_finite() && *l > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_integrations_event_for_the_budget_counts() {
        let from = BudgetFrom {
            integration: "costops".into(),
            budget_id: "m".into(),
        };
        let p = r#"{"payload": {"data": {"budget_id": "m", "budget_limit_usd": 1000}}}"#;
        let ours = r#"{"hub.integration": "costops"}"#;
        assert_eq!(limit_of(ours, p, &from), Some(1000.0));
        // Sent over REST by anyone: not the integration's.
        assert_eq!(limit_of("{}", p, &from), None);
        assert_eq!(limit_of(r#"{"hub.integration": "other"}"#, p, &from), None);
        let other = r#"{"payload": {"data": {"budget_id": "x", "budget_limit_usd": 1000}}}"#;
        assert_eq!(limit_of(ours, other, &from), None);
    }
}
