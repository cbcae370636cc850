//! What an integration's `sync` is handed: the time and the period it is for, the tenant's month
//! spend and its projection by model, the last seven days' cost, and the period's policy
//! violations counted: the hub's numbers an integration may send out (`costops` posts the
//! projection, `policy` the compliance report), read from the rollups and the raw events.

use hub_core::time::{DAY_MS, floor_to};
use hub_core::{Dimension, TenantId};
use hub_plugins::{DayCost, GroupSpend, Spend, SyncContext, ViolationCount};
use hub_storage::Storage;

use crate::spend::Method;

/// Groups of the month's spend a sync is handed at most.
const MAX_GROUPS: usize = 50;
/// Days of cost a sync is handed (today included).
const DAYS: i64 = 7;

/// What a sync for the period `[from_ms, to_ms)` is handed: the time, the month's spend and its
/// projection (as `GET /v1/forecasts/spend` gives them, by model), the last days' cost, and the
/// period's policy violations.
pub async fn context(
    store: &dyn Storage,
    tenant: TenantId,
    now_ms: i64,
    from_ms: i64,
    to_ms: i64,
) -> Result<SyncContext, hub_storage::StorageError> {
    let p = crate::spend::month_projection(store, tenant, now_ms, Some(Dimension::Model)).await?;
    let today = floor_to(now_ms, DAY_MS);
    let by_day = crate::billed::counted(store, tenant, today - (DAYS - 1) * DAY_MS, now_ms).await?;
    let days = (0..DAYS)
        .map(|i| {
            let day = today - (DAYS - 1 - i) * DAY_MS;
            let agg = by_day.get(&day).cloned().unwrap_or_default();
            DayCost {
                date: hub_core::time::to_rfc3339(day)[..10].to_string(),
                cost_usd: agg.cost_usd,
                requests: agg.requests.max(0) as u64,
            }
        })
        .collect();
    let method = |m: &Method| match m {
        Method::Forecast { plugin, .. } => format!("forecast:{plugin}"),
        Method::RunRate => "run-rate".to_string(),
    };
    let violations = crate::governance::count(store, tenant, from_ms, to_ms)
        .await?
        .into_iter()
        .map(|v| ViolationCount {
            policy: v.policy,
            policy_name: v.policy_name,
            resource: v.resource,
            severity: v.severity,
            count: v.count,
            first_ms: v.first_ms,
            last_ms: v.last_ms,
        })
        .collect();
    Ok(SyncContext {
        now_ms,
        period_start_ms: from_ms,
        period_end_ms: to_ms,
        violations,
        spend: Spend {
            month_start_ms: p.month_start_ms,
            month_end_ms: p.month_end_ms,
            actual_usd: p.total.actual_usd,
            projected_usd: p.total.projected_usd,
            lower_usd: p.total.lower_usd,
            upper_usd: p.total.upper_usd,
            method: method(&p.total.method),
            by_model: p
                .groups
                .iter()
                .take(MAX_GROUPS)
                .map(|g| GroupSpend {
                    key: g.key.clone().unwrap_or_default(),
                    actual_usd: g.actual_usd,
                    projected_usd: g.projected_usd,
                })
                .collect(),
            days,
        },
    })
}
