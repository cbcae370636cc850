//! One call, one cost, on both backends: an LLM call reported as telemetry, usage and cost
//! envelope events is counted once, whichever arrive, in whatever order and however they are split
//! into writes; rollups and raw events keep answering alike.

use std::sync::Arc;

use hub_core::EventRecord;
use hub_core::time::{DAY_MS, MINUTE_MS};
use hub_storage::{Aggregate, RetentionPolicy, Storage};

#[macro_use]
mod support;
use support::calls::{Call, Rng, call, close, stored, totals};
use support::{NOW, postgres, sqlite, tenant, write};

on_both!(
    each_call_counts_its_cost_once_in_any_order,
    retention_forgets_calls_with_their_events,
);

async fn each_call_counts_its_cost_once_in_any_order(store: Arc<dyn Storage>) {
    let calls: Vec<Call> = (0..24)
        .map(|n| call(n, NOW - 3 * 60 * MINUTE_MS + n as i64 * 5 * MINUTE_MS))
        .collect();
    let want_cost: f64 = calls.iter().filter_map(|c| c.cost).sum();
    let want_reported: f64 = calls.iter().filter_map(|c| c.reported).sum();
    let want_estimated: f64 = calls.iter().filter_map(|c| c.estimated).sum();
    let want_unpriced = calls.iter().filter(|c| c.cost.is_none()).count() as i64;
    let mut rng = Rng(7);
    for order in 0..4 {
        let t = tenant(&store, &format!("order-{order}")).await;
        let mut all: Vec<EventRecord> = calls.iter().flat_map(|c| c.events.clone()).collect();
        rng.shuffle(&mut all);
        // Split into writes of 1 to 7 events, so a call's events meet in one write or across many.
        let mut rest = &all[..];
        while !rest.is_empty() {
            let n = (1 + rng.next() % 7).min(rest.len() as u64) as usize;
            write(&store, t, rest[..n].to_vec()).await;
            rest = &rest[n..];
        }
        // A resend changes nothing.
        write(&store, t, all[..10].to_vec()).await;

        let got = &totals(&store, t, vec![]).await[0].1;
        let what = format!("order {order}");
        assert!(
            close(got.cost_usd, want_cost),
            "{what}: cost {} vs {want_cost}",
            got.cost_usd
        );
        assert!(close(got.reported_cost_usd, want_reported), "{what}");
        assert!(
            close(got.estimated_cost_usd, want_estimated),
            "{what}: estimates stay beside reports"
        );
        assert_eq!(got.unpriced_events, want_unpriced, "{what}: unpriced calls");
        assert_eq!(got.events, all.len() as i64, "{what}");
        assert_eq!(got.requests, calls.len() as i64, "{what}");

        // Raw events agree: one event per priced call counts, at the call's cost.
        let raw = stored(&store, t).await;
        assert_eq!(raw.len(), all.len());
        for c in &calls {
            let id = c.events[0].correlation_id.as_deref();
            let counting: Vec<&EventRecord> = raw
                .iter()
                .filter(|e| e.correlation_id.as_deref() == id && e.cost_usd.unwrap_or(0.0) > 0.0)
                .collect();
            match c.cost {
                Some(cost) => {
                    assert_eq!(counting.len(), 1, "{what}: {id:?} counted once");
                    assert!(close(counting[0].cost_usd.unwrap(), cost), "{what}: {id:?}");
                }
                None => assert!(counting.is_empty(), "{what}: {id:?} is unpriced"),
            }
        }
        assert_eq!(
            raw.iter().filter(|e| e.is_unpriced()).count() as i64,
            want_unpriced,
            "{what}: unpriced in raw events"
        );
        // And per group, where a taken-over cost moved from the observatory to CostOps.
        for (key, agg) in totals(&store, t, vec![hub_core::Dimension::SourceModule]).await {
            let mut want = Aggregate::default();
            for e in raw.iter().filter(|e| e.source_module == key[0]) {
                want.add_event(e);
            }
            assert!(
                close(agg.cost_usd, want.cost_usd),
                "{what}: {key:?} {} vs raw {}",
                agg.cost_usd,
                want.cost_usd
            );
            assert_eq!(
                (agg.unpriced_events, agg.unpriced_tokens),
                (want.unpriced_events, want.unpriced_tokens),
                "{what}: {key:?}"
            );
        }
    }
}

async fn retention_forgets_calls_with_their_events(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let old = call(0, NOW - 3 * DAY_MS);
    let young = call(2, NOW - DAY_MS / 2);
    write(&store, t, old.events[..2].to_vec()).await;
    write(&store, t, young.events[..2].to_vec()).await;
    let policy = RetentionPolicy {
        raw_ms: Some(2 * DAY_MS),
        minute_ms: Some(2 * DAY_MS),
        hour_ms: Some(2 * DAY_MS),
        day_ms: Some(2 * DAY_MS),
    };
    store.enforce_retention(&policy, NOW).await.unwrap();
    // The young call is still settled: its cost report takes the estimate's place.
    write(&store, t, young.events[2..].to_vec()).await;
    let got = &totals(&store, t, vec![]).await[0].1;
    assert!(
        close(got.cost_usd, young.cost.unwrap()),
        "{} vs {:?}",
        got.cost_usd,
        young.cost
    );
    // The old call's events are gone, and so is its holder: nothing of it is left to take back,
    // and its late report is counted on its own.
    let late = old.events[2].clone();
    let late_ts = late.ts_ms;
    assert!(late_ts < NOW - 2 * DAY_MS);
    write(&store, t, vec![late]).await;
    let raw = stored(&store, t).await;
    let late = raw
        .iter()
        .find(|e| e.event_id == "call-0-cost")
        .expect("the late report is stored");
    assert_eq!(late.cost_usd, old.reported);
}
