//! Each UTC day's cost as the hub counts it (reported costs, else the cost plugins' estimates,
//! from the rollups) beside what was billed for it: the `billing.daily` events an integration
//! (`costops`) brought in, each a billing line whose amount is `payload.data.billed_usd`. Billed
//! amounts are never the hub's cost (the calls they bill are counted already), so they are read
//! from the events, not the rollups.

use std::collections::BTreeMap;

use hub_core::time::{DAY_MS, floor_to};
use hub_core::{Metric, TenantId};
use hub_storage::analytics::{TimeseriesQuery, buckets};
use hub_storage::{Aggregate, EventField, EventFilter, Storage, StorageError};

/// The kind of a billing line's event.
pub const BILLING_KIND: &str = "billing.daily";
/// Billing events read for one answer at most (a day has one per billed model and app).
const MAX_BILLING_EVENTS: usize = 50_000;

/// One day's costs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayCosts {
    /// Midnight UTC.
    pub day_ms: i64,
    /// What the hub counts: reported costs, else estimates.
    pub counted_usd: f64,
    /// The cost plugins' estimates (beside reported costs or alone).
    pub estimated_usd: f64,
    /// What senders reported.
    pub reported_usd: f64,
    pub requests: i64,
    /// The sum of the day's billing lines; `None` when none was brought in.
    pub billed_usd: Option<f64>,
    pub billed_lines: u32,
}

/// The rollups' sums per UTC day of `[from_ms, to_ms)`, by day (days without traffic absent).
pub async fn counted(
    store: &dyn Storage,
    tenant: TenantId,
    from_ms: i64,
    to_ms: i64,
) -> Result<BTreeMap<i64, Aggregate>, StorageError> {
    let q = TimeseriesQuery {
        from_ms: floor_to(from_ms, DAY_MS),
        to_ms: to_ms.max(from_ms + 1),
        step_ms: DAY_MS,
        metric: Metric::CostUsd,
        group_by: Vec::new(),
        filters: Vec::new(),
    };
    Ok(buckets(store, tenant, &q, false, None)
        .await?
        .remove(&Vec::new())
        .unwrap_or_default())
}

/// Every UTC day of `[from_ms, to_ms)`, oldest first, counted and billed.
pub async fn daily(
    store: &dyn Storage,
    tenant: TenantId,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DayCosts>, StorageError> {
    let (first, end) = (floor_to(from_ms, DAY_MS), to_ms.max(from_ms + 1));
    let sums = counted(store, tenant, first, end).await?;
    let mut days: BTreeMap<i64, DayCosts> = (first..end)
        .step_by(DAY_MS as usize)
        .map(|d| {
            let a = sums.get(&d).cloned().unwrap_or_default();
            let day = DayCosts {
                day_ms: d,
                counted_usd: a.cost_usd,
                estimated_usd: a.estimated_cost_usd,
                reported_usd: a.reported_cost_usd,
                requests: a.requests,
                ..Default::default()
            };
            (d, day)
        })
        .collect();
    let filter = EventFilter {
        from_ms: Some(first),
        to_ms: Some(end),
        fields: vec![(EventField::Kind, BILLING_KIND.into())],
        ..Default::default()
    };
    let (mut after, mut read) = (None, 0);
    loop {
        let page = store
            .list_events(tenant, &filter, after.as_ref(), 1_000)
            .await?;
        read += page.events.len();
        for e in &page.events {
            let Some((day, usd)) = billed(&e.record.payload_json, e.record.ts_ms) else {
                continue;
            };
            if let Some(d) = days.get_mut(&day) {
                *d.billed_usd.get_or_insert(0.0) += usd;
                d.billed_lines += 1;
            }
        }
        match page.next {
            Some(next) if read < MAX_BILLING_EVENTS => after = Some(next),
            _ => break,
        }
    }
    Ok(days.into_values().collect())
}

/// A billing line's day (its `date`, else the event's) and amount.
fn billed(payload_json: &str, ts_ms: i64) -> Option<(i64, f64)> {
    let v: serde_json::Value = serde_json::from_str(payload_json).ok()?;
    let data = v.get("payload")?.get("data")?;
    let usd = data.get("billed_usd")?.as_f64()?;
    let day = data
        .get("date")
        .and_then(|d| d.as_str())
        .and_then(|d| hub_core::time::parse_rfc3339(&format!("{d}T00:00:00Z")))
        .unwrap_or(ts_ms);
    Some((floor_to(day, DAY_MS), usd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_counts_on_its_billing_date() {
        let p = r#"{"payload": {"payload_type": "billing", "data": {"date": "2026-12-06", "billed_usd": 12.5}}}"#;
        let (day, usd) = billed(p, 0).unwrap();
        assert_eq!(hub_core::time::to_rfc3339(day), "2026-12-06T00:00:00.000Z");
        assert_eq!(usd, 12.5);
        assert!(billed(r#"{"payload": {"data": {"billed_usd": "x"}}}"#, 0).is_none());
    }
}
