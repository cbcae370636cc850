//! Restating stored events' cost after a re-pricing: each event takes its new estimate, the cost it
//! counts follows from it by the rules of [`crate::call_costs`] (a reported cost wins; one event
//! holds a call's cost), and the rollups change by the difference, in one transaction under the
//! tenant's writer lock, as a write would.
//!
//! Restating twice with the same estimates changes nothing the second time: an event whose cost
//! and estimate already are what the rules give is left alone. A call whose holder is not stored
//! (events from before call reconciliation existed, or a holder retention deleted) is settled
//! here: its first restated event holds it, and the call is counted once from then on.

use std::collections::{HashMap, HashSet};

use hub_core::{EventRecord, TenantId};
use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use crate::Result;
use crate::call_costs::{self, Holder, rank};
use crate::decode::{self, HubRow};
use crate::model::Aggregate;
use crate::reprice::{CostUpdate, Restated};
use crate::rollup::{FastMap, RollupKey};
use crate::sql::{self, Bind, Placeholders, SqlBuf, into_query};

/// Events per read statement (two binds each).
const CHUNK: usize = 200;

type Key = (i64, String);

/// The stored events of `keys`, and maybe a few others (the caller keeps only the keys): two `IN`
/// lists, which both backends answer from the unique index (tenant, ts, event_id) by point
/// lookups. (A chain of `(ts = ? AND event_id = ?) OR …` made SQLite scan the tenant's index:
/// 1.75 s for 200 events among 1.4 million.)
fn select_events(tenant: TenantId, keys: &[&CostUpdate]) -> SqlBuf {
    let mut times: Vec<i64> = keys.iter().map(|k| k.ts_ms).collect();
    times.sort_unstable();
    times.dedup();
    let mut buf = SqlBuf::new(Placeholders::Dollar);
    buf.push("SELECT ")
        .push(sql::EVENT_SELECT)
        .push(" FROM events WHERE tenant_id = ")
        .bind(Bind::I64(tenant.get()));
    buf.push(" AND ts IN (");
    for (i, ts) in times.iter().enumerate() {
        if i > 0 {
            buf.push(", ");
        }
        buf.bind(Bind::I64(*ts));
    }
    buf.push(") AND event_id IN (");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            buf.push(", ");
        }
        buf.bind(Bind::Text(k.event_id.clone()));
    }
    buf.push(")");
    buf
}

fn push_cost(buf: &mut SqlBuf, v: Option<f64>) {
    match v {
        Some(v) => {
            buf.bind(Bind::F64(v));
        }
        None => {
            buf.push("NULL");
        }
    }
}

/// Writes an event's three costs.
fn update_costs(tenant: TenantId, e: &EventRecord) -> SqlBuf {
    let mut buf = SqlBuf::new(Placeholders::Dollar);
    buf.push("UPDATE events SET cost_usd = ");
    push_cost(&mut buf, e.cost_usd);
    buf.push(", estimated_cost_usd = ");
    push_cost(&mut buf, e.estimated_cost_usd);
    buf.push(", reported_cost_usd = ");
    push_cost(&mut buf, e.reported_cost_usd);
    buf.push(" WHERE tenant_id = ")
        .bind(Bind::I64(tenant.get()));
    buf.push(" AND ts = ").bind(Bind::I64(e.ts_ms));
    buf.push(" AND event_id = ")
        .bind(Bind::Text(e.event_id.clone()));
    buf
}

/// The pure part: given the stored events, the calls' stored holders and the new estimates,
/// what each changed event becomes (before, after) and which holders change.
pub(crate) struct Plan {
    pub changes: Vec<(EventRecord, EventRecord)>,
    pub holders: Vec<(String, Holder)>,
    /// Updates whose event is stored.
    pub found: usize,
}

/// Keeps an event as it was before its first change, and the order events first changed in.
fn remember(
    before: &mut HashMap<Key, EventRecord>,
    order: &mut Vec<Key>,
    key: &Key,
    was: EventRecord,
) {
    if !before.contains_key(key) {
        before.insert(key.clone(), was);
        order.push(key.clone());
    }
}

/// What a stored event becomes with a new estimate, before its call is settled.
fn repriced(now: &EventRecord, estimate: Option<f64>) -> EventRecord {
    let mut next = now.clone();
    let reported = now.sender_cost();
    next.reported_cost_usd = reported;
    next.estimated_cost_usd = estimate;
    next.cost_usd = reported.or(estimate);
    next
}

/// Works out the restatement. `stored` holds the updated events and those stored holders of
/// their calls that an update may take the call from.
pub(crate) fn plan(
    updates: &[CostUpdate],
    stored: &HashMap<Key, EventRecord>,
    mut holders: HashMap<String, Holder>,
) -> Plan {
    let mut current: HashMap<Key, EventRecord> = HashMap::new();
    let mut before: HashMap<Key, EventRecord> = HashMap::new();
    let mut order: Vec<Key> = Vec::new();
    let mut changed_holders: HashSet<String> = HashSet::new();
    let mut found = 0;
    let get = |current: &HashMap<Key, EventRecord>, k: &Key| -> Option<EventRecord> {
        current.get(k).or_else(|| stored.get(k)).cloned()
    };
    for u in updates {
        let key = (u.ts_ms, u.event_id.clone());
        let Some(now) = get(&current, &key) else {
            continue;
        };
        found += 1;
        let mut next = repriced(&now, u.estimated_cost_usd);
        if next.shares_call_cost() {
            let call = next.correlation_id.clone().unwrap_or_default();
            let mine = Holder {
                rank: rank(&next),
                ts_ms: next.ts_ms,
                event_id: next.event_id.clone(),
            };
            match holders.get(&call) {
                None => {
                    holders.insert(call.clone(), mine);
                    changed_holders.insert(call);
                }
                Some(h) if h.ts_ms == mine.ts_ms && h.event_id == mine.event_id => {
                    if h.rank != mine.rank {
                        holders.insert(call.clone(), mine);
                        changed_holders.insert(call);
                    }
                }
                Some(h) if mine.rank > h.rank => {
                    let hkey = (h.ts_ms, h.event_id.clone());
                    // A holder that is no longer stored has nothing left to take back.
                    if let Some(held) = get(&current, &hkey) {
                        let mut demoted = held.clone();
                        demoted.cost_usd = Some(0.0);
                        remember(&mut before, &mut order, &hkey, held);
                        current.insert(hkey, demoted);
                    }
                    holders.insert(call.clone(), mine);
                    changed_holders.insert(call);
                }
                Some(_) => next.cost_usd = Some(0.0),
            }
        }
        remember(&mut before, &mut order, &key, now);
        current.insert(key, next);
    }
    let changes = order
        .into_iter()
        .filter_map(|k| {
            let after = current.remove(&k)?;
            let before = before.remove(&k)?;
            let same = before.cost_usd == after.cost_usd
                && before.estimated_cost_usd == after.estimated_cost_usd
                && before.reported_cost_usd == after.reported_cost_usd;
            (!same).then_some((before, after))
        })
        .collect();
    let mut holders: Vec<(String, Holder)> = holders
        .into_iter()
        .filter(|(call, _)| changed_holders.contains(call))
        .collect();
    holders.sort_by(|a, b| a.0.cmp(&b.0));
    Plan {
        changes,
        holders,
        found,
    }
}

/// Restates `updates` inside the writer's transaction. Returns what changed and the rollup deltas
/// (to be merged into existing rows only: see [`crate::rollup::restate`]).
pub(crate) async fn restate<DB>(
    conn: &mut DB::Connection,
    tenant: TenantId,
    updates: &[CostUpdate],
) -> Result<(Restated, FastMap<RollupKey, Aggregate>)>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    DB::Row: HubRow,
    for<'t> i16: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
{
    let mut stored: HashMap<Key, EventRecord> = HashMap::new();
    let refs: Vec<&CostUpdate> = updates.iter().collect();
    let wanted: HashSet<Key> = updates
        .iter()
        .map(|u| (u.ts_ms, u.event_id.clone()))
        .collect();
    for chunk in refs.chunks(CHUNK) {
        for row in into_query::<DB>(select_events(tenant, chunk))
            .fetch_all(&mut *conn)
            .await?
        {
            let e = decode::event(&row)?.record;
            let key = (e.ts_ms, e.event_id.clone());
            if wanted.contains(&key) {
                stored.insert(key, e);
            }
        }
    }
    let holders = call_costs::stored_holders::<DB>(conn, tenant, stored.values()).await?;
    // Holders outside the updates that an update outranks are read now (planning needs no
    // database); most calls have their holder among the updates or keep it.
    let mut outranked: Vec<Key> = Vec::new();
    for u in updates {
        let Some(now) = stored.get(&(u.ts_ms, u.event_id.clone())) else {
            continue;
        };
        let next = repriced(now, u.estimated_cost_usd);
        if let Some(h) = next.correlation_id.as_deref().and_then(|c| holders.get(c))
            && rank(&next) > h.rank
        {
            outranked.push((h.ts_ms, h.event_id.clone()));
        }
    }
    for (ts_ms, event_id) in outranked {
        if !stored.contains_key(&(ts_ms, event_id.clone()))
            && let Some(row) = into_query::<DB>(call_costs::select_event(tenant, ts_ms, &event_id))
                .fetch_optional(&mut *conn)
                .await?
        {
            stored.insert((ts_ms, event_id), decode::event(&row)?.record);
        }
    }
    let plan = plan(updates, &stored, holders);
    for (_, after) in &plan.changes {
        into_query::<DB>(update_costs(tenant, after))
            .execute(&mut *conn)
            .await?;
    }
    call_costs::store_holders::<DB>(conn, tenant, &plan.holders).await?;
    let restated = Restated {
        found: plan.found,
        changed: plan.changes.len(),
        counted_before_usd: plan
            .changes
            .iter()
            .map(|(b, _)| b.cost_usd.unwrap_or(0.0))
            .sum(),
        counted_after_usd: plan
            .changes
            .iter()
            .map(|(_, a)| a.cost_usd.unwrap_or(0.0))
            .sum(),
    };
    Ok((
        restated,
        crate::rollup::restate(plan.changes.iter().map(|(b, a)| (b, a))),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hub_core::EnrichedBy;

    use super::*;

    fn ev(id: &str, kind_payload: &str) -> EventRecord {
        hub_core::ingest::parse_event(
            &format!(
                r#"{{"event_id": "{id}", "timestamp": 1000, "source_module": "m", "event_type": "t",
                    "correlation_id": "c", "payload": {kind_payload}}}"#
            ),
            &hub_core::ingest::IngestLimits {
                max_age_ms: i64::MAX / 4,
                ..Default::default()
            },
            0,
        )
        .unwrap()
    }

    #[test]
    fn a_call_stored_before_reconciliation_is_counted_once_and_keeps_its_report() {
        // As stored before migration 0015: the enricher's estimate and the sender's cost both in
        // cost_usd, nothing beside them, and no holder for the call.
        let mut usage = ev(
            "u",
            r#"{"payload_type": "telemetry", "data": {"telemetry_type": "token_usage",
                "model_id": "gpt-4o", "prompt_tokens": 1000, "completion_tokens": 100}}"#,
        );
        usage.cost_usd = Some(0.004);
        usage.enriched_by = vec![Arc::new(EnrichedBy {
            plugin: "cost".into(),
            fields: vec!["cost_usd".into()],
        })];
        let mut cost = ev(
            "k",
            r#"{"payload_type": "cost", "data": {"cost_type": "token_cost", "model_id": "gpt-4o",
                "total_cost_usd": 0.00425}}"#,
        );
        cost.reported_cost_usd = None;
        cost.cost_usd = Some(0.00425);
        let stored: HashMap<Key, EventRecord> = [&usage, &cost]
            .into_iter()
            .map(|e| ((e.ts_ms, e.event_id.clone()), e.clone()))
            .collect();
        let updates = [
            CostUpdate {
                ts_ms: usage.ts_ms,
                event_id: "u".into(),
                estimated_cost_usd: Some(0.005),
            },
            CostUpdate {
                ts_ms: cost.ts_ms,
                event_id: "k".into(),
                estimated_cost_usd: None,
            },
        ];
        let p = plan(&updates, &stored, HashMap::new());
        assert_eq!(p.found, 2);
        let after: HashMap<&str, &EventRecord> = p
            .changes
            .iter()
            .map(|(_, a)| (a.event_id.as_str(), a))
            .collect();
        assert_eq!(
            after["k"].reported_cost_usd,
            Some(0.00425),
            "the report is kept"
        );
        assert_eq!(after["k"].cost_usd, Some(0.00425), "and counts");
        assert_eq!(
            after["u"].cost_usd,
            Some(0.0),
            "the estimate no longer counts"
        );
        assert_eq!(after["u"].estimated_cost_usd, Some(0.005));
        assert_eq!(p.holders.len(), 1);
        assert_eq!(
            (p.holders[0].1.rank, p.holders[0].1.event_id.as_str()),
            (2, "k")
        );

        // Planned again over the result, nothing changes.
        let stored: HashMap<Key, EventRecord> = p
            .changes
            .iter()
            .map(|(_, a)| ((a.ts_ms, a.event_id.clone()), a.clone()))
            .collect();
        let holders = p.holders.into_iter().collect();
        let again = plan(&updates, &stored, holders);
        assert!(again.changes.is_empty() && again.holders.is_empty());
    }
}
