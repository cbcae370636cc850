//! One call, one cost. The LLM DevOps envelope reports one LLM call as several events sharing a
//! `correlation_id`: telemetry (latency, token usage) from the observatory, a cost from CostOps.
//! The cost plugin estimates the usage event's cost while the cost event reports it, so summing
//! both counted the call twice. Here each call's cost is held by one event, whatever arrives and
//! in whatever order:
//!
//! - rank 2, a reported cost (the sender's or CostOps'), beats rank 1, an estimate, which beats
//!   rank 0, usage that nothing priced (counted as unpriced);
//! - the first event of a rank holds the call until one of a higher rank arrives;
//! - every other event of the call counts $0 (its `cost_usd` is set to 0; its estimate and its
//!   reported cost stay beside it, so estimated and reported can still be compared).
//!
//! When a later event takes a call over, the holder's contribution is taken back out of the
//! rollups at the holder's own time and dimensions, and its stored `cost_usd` set to 0, in the
//! same transaction as the new event: rollups and raw events keep answering alike. This runs only
//! for events that take part ([`EventRecord::shares_call_cost`]), under the writer's lock of the
//! tenant (SQLite's single writer, PostgreSQL's per-tenant advisory lock).

use std::collections::HashMap;

use hub_core::{EventRecord, TenantId};
use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use crate::Result;
use crate::decode::{self, HubRow};
use crate::sql::{self, Bind, Placeholders, SqlBuf, into_query};

/// Correlations per statement.
const CHUNK: usize = 500;

/// How strongly an event holds its call's cost.
pub(crate) fn rank(e: &EventRecord) -> i64 {
    if e.reported_cost_usd.is_some() {
        2
    } else if e.cost_usd.is_some() {
        1
    } else {
        0
    }
}

/// A call's holder as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Holder {
    pub rank: i64,
    pub ts_ms: i64,
    pub event_id: String,
}

/// What one write changes: the new holders, and the events (new or stored) that stop counting.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Decision<'a> {
    pub holders: Vec<(&'a str, Holder)>,
    /// New events of this write that count $0 from the start.
    pub demoted_new: Vec<&'a EventRecord>,
    /// Stored holders that lose their call: (ts, event_id).
    pub demoted_stored: Vec<(i64, String)>,
}

/// Decides, for the `new` events of one tenant (in arrival order) and the holders already stored
/// for their calls, who holds each call.
pub(crate) fn decide<'a>(
    new: &[&'a EventRecord],
    stored: &HashMap<String, Holder>,
) -> Decision<'a> {
    let mut current: HashMap<&'a str, (Holder, Option<&'a EventRecord>)> = HashMap::new();
    let mut out = Decision::default();
    for &e in new {
        let Some(call) = e.correlation_id.as_deref() else {
            continue;
        };
        let mine = Holder {
            rank: rank(e),
            ts_ms: e.ts_ms,
            event_id: e.event_id.clone(),
        };
        let held = current
            .remove(call)
            .or_else(|| stored.get(call).map(|h| (h.clone(), None)));
        let winner = match held {
            None => (mine, Some(e)),
            Some(held) if mine.rank > held.0.rank => {
                match held.1 {
                    Some(new_holder) => out.demoted_new.push(new_holder),
                    None => out
                        .demoted_stored
                        .push((held.0.ts_ms, held.0.event_id.clone())),
                }
                (mine, Some(e))
            }
            Some(held) => {
                out.demoted_new.push(e);
                held
            }
        };
        current.insert(call, winner);
    }
    let mut holders: Vec<(&'a str, Holder)> = current
        .into_iter()
        .filter(|(call, (h, _))| stored.get(*call) != Some(h))
        .map(|(call, (h, _))| (call, h))
        .collect();
    holders.sort_by(|a, b| a.0.cmp(b.0));
    out.holders = holders;
    out
}

/// The stored holders of `calls`.
fn select_holders(tenant: TenantId, calls: &[&str]) -> SqlBuf {
    let mut buf = SqlBuf::new(Placeholders::Dollar);
    buf.push(
        "SELECT correlation_id, rank, holder_ts, holder_event_id FROM call_costs WHERE tenant_id = ",
    )
    .bind(Bind::I64(tenant.get()));
    buf.push(" AND correlation_id IN (");
    for (i, c) in calls.iter().enumerate() {
        if i > 0 {
            buf.push(", ");
        }
        buf.bind(Bind::Text((*c).to_string()));
    }
    buf.push(")");
    buf
}

/// Stores the holders (one statement per [`CHUNK`]).
fn upsert_holders(tenant: TenantId, holders: &[(impl AsRef<str>, Holder)]) -> SqlBuf {
    let mut buf = SqlBuf::new(Placeholders::Dollar);
    buf.push(
        "INSERT INTO call_costs (tenant_id, correlation_id, rank, holder_ts, holder_event_id) VALUES ",
    );
    for (i, (call, h)) in holders.iter().enumerate() {
        buf.push(if i == 0 { "(" } else { ", (" });
        buf.bind(Bind::I64(tenant.get())).push(", ");
        buf.bind(Bind::Text(call.as_ref().to_string())).push(", ");
        buf.bind(Bind::I64(h.rank)).push(", ");
        buf.bind(Bind::I64(h.ts_ms)).push(", ");
        buf.bind(Bind::Text(h.event_id.clone())).push(")");
    }
    buf.push(
        " ON CONFLICT (tenant_id, correlation_id) DO UPDATE SET rank = excluded.rank, \
         holder_ts = excluded.holder_ts, holder_event_id = excluded.holder_event_id",
    );
    buf
}

/// One stored event by its identity.
pub(crate) fn select_event(tenant: TenantId, ts_ms: i64, event_id: &str) -> SqlBuf {
    let mut buf = SqlBuf::new(Placeholders::Dollar);
    buf.push("SELECT ")
        .push(sql::EVENT_SELECT)
        .push(" FROM events WHERE tenant_id = ")
        .bind(Bind::I64(tenant.get()));
    buf.push(" AND ts = ").bind(Bind::I64(ts_ms));
    buf.push(" AND event_id = ")
        .bind(Bind::Text(event_id.to_string()));
    buf
}

/// Makes one stored event count $0.
fn zero_cost(tenant: TenantId, ts_ms: i64, event_id: &str) -> SqlBuf {
    let mut buf = SqlBuf::new(Placeholders::Dollar);
    buf.push("UPDATE events SET cost_usd = 0 WHERE tenant_id = ")
        .bind(Bind::I64(tenant.get()));
    buf.push(" AND ts = ").bind(Bind::I64(ts_ms));
    buf.push(" AND event_id = ")
        .bind(Bind::Text(event_id.to_string()));
    buf
}

/// The stored holders of the calls of `events` (those with a `correlation_id`), by call.
pub(crate) async fn stored_holders<'e, DB>(
    conn: &mut DB::Connection,
    tenant: TenantId,
    events: impl Iterator<Item = &'e EventRecord>,
) -> Result<HashMap<String, Holder>>
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
    let mut calls: Vec<&str> = events.filter_map(|e| e.correlation_id.as_deref()).collect();
    calls.sort_unstable();
    calls.dedup();
    let mut stored = HashMap::new();
    for chunk in calls.chunks(CHUNK) {
        let rows = into_query::<DB>(select_holders(tenant, chunk))
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            stored.insert(
                row.text("correlation_id")?,
                Holder {
                    rank: row.int("rank")?,
                    ts_ms: row.int("holder_ts")?,
                    event_id: row.text("holder_event_id")?,
                },
            );
        }
    }
    Ok(stored)
}

/// Settles the calls of `inserted` (a tenant's new events of one write), inside the writer's
/// transaction. Returns the events that stopped counting, as they were counted: the rollup
/// deltas must take their contribution back out (see [`crate::rollup::take_back`]).
pub(crate) async fn settle<DB>(
    conn: &mut DB::Connection,
    tenant: TenantId,
    inserted: &[&EventRecord],
) -> Result<Vec<EventRecord>>
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
    let taking_part: Vec<&EventRecord> = inserted
        .iter()
        .copied()
        .filter(|e| e.shares_call_cost())
        .collect();
    if taking_part.is_empty() {
        return Ok(Vec::new());
    }
    let stored = stored_holders::<DB>(conn, tenant, taking_part.iter().copied()).await?;
    let decision = decide(&taking_part, &stored);
    let mut taken_back: Vec<EventRecord> =
        decision.demoted_new.iter().map(|e| (*e).clone()).collect();
    for (ts_ms, event_id) in &decision.demoted_stored {
        let row = into_query::<DB>(select_event(tenant, *ts_ms, event_id))
            .fetch_optional(&mut *conn)
            .await?;
        // Gone when retention deleted it: then there is nothing left to take back.
        if let Some(row) = row {
            taken_back.push(decode::event(&row)?.record);
        }
    }
    for e in &taken_back {
        into_query::<DB>(zero_cost(tenant, e.ts_ms, &e.event_id))
            .execute(&mut *conn)
            .await?;
    }
    store_holders::<DB>(conn, tenant, &decision.holders).await?;
    Ok(taken_back)
}

/// Stores calls' new holders.
pub(crate) async fn store_holders<DB>(
    conn: &mut DB::Connection,
    tenant: TenantId,
    holders: &[(impl AsRef<str> + Sync, Holder)],
) -> Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    for<'t> i16: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
{
    for chunk in holders.chunks(CHUNK) {
        into_query::<DB>(upsert_holders(tenant, chunk))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Forgets the calls whose holder is older than `cutoff_ms` (deleted with the raw events).
pub(crate) async fn forget_before<DB>(
    pool: &sqlx::Pool<DB>,
    tenant: TenantId,
    cutoff_ms: i64,
) -> Result<()>
where
    DB: Database,
    for<'c> &'c sqlx::Pool<DB>: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    for<'t> i16: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
{
    let buf = sql::with_binds(
        "DELETE FROM call_costs WHERE tenant_id = $1 AND holder_ts < $2",
        vec![Bind::I64(tenant.get()), Bind::I64(cutoff_ms)],
    );
    into_query::<DB>(buf).execute(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, call: &str, reported: Option<f64>, estimated: Option<f64>) -> EventRecord {
        let mut e = hub_core::ingest::parse_event(
            &format!(
                r#"{{"event_id": "{id}", "timestamp": 1000, "source_module": "m", "event_type": "t",
                    "correlation_id": "{call}", "payload": {{"payload_type": "telemetry",
                    "data": {{"telemetry_type": "token_usage", "model_id": "x", "prompt_tokens": 10}}}}}}"#
            ),
            &hub_core::ingest::IngestLimits {
                max_age_ms: i64::MAX / 4,
                ..Default::default()
            },
            0,
        )
        .unwrap();
        e.reported_cost_usd = reported;
        e.estimated_cost_usd = estimated;
        e.cost_usd = reported.or(estimated);
        e
    }

    #[test]
    fn the_best_rank_holds_the_call_whatever_the_order() {
        let usage = ev("u", "c", None, Some(0.004));
        let cost = ev("k", "c", Some(0.00425), None);
        let unpriced = ev("n", "c", None, None);
        let orders: [[&EventRecord; 3]; 3] = [
            [&usage, &cost, &unpriced],
            [&cost, &unpriced, &usage],
            [&unpriced, &usage, &cost],
        ];
        for order in orders {
            let d = decide(&order, &HashMap::new());
            assert_eq!(d.holders.len(), 1);
            assert_eq!(d.holders[0].1.event_id, "k", "{order:?}");
            let mut demoted: Vec<&str> =
                d.demoted_new.iter().map(|e| e.event_id.as_str()).collect();
            demoted.sort();
            assert_eq!(demoted, ["n", "u"]);
        }
    }

    #[test]
    fn a_stored_holder_is_demoted_only_by_a_better_rank() {
        let stored: HashMap<String, Holder> = [(
            "c".to_string(),
            Holder {
                rank: 1,
                ts_ms: 5,
                event_id: "old".into(),
            },
        )]
        .into();
        let same = ev("again", "c", None, Some(1.0));
        let d = decide(&[&same], &stored);
        assert!(d.holders.is_empty() && d.demoted_stored.is_empty());
        assert_eq!(d.demoted_new.len(), 1);
        let report = ev("k", "c", Some(2.0), None);
        let d = decide(&[&report], &stored);
        assert_eq!(d.demoted_stored, vec![(5, "old".to_string())]);
        assert!(d.demoted_new.is_empty());
        assert_eq!(d.holders[0].1.rank, 2);
    }
}
