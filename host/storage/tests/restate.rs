//! Re-pricing on both backends: stored events given new estimates count what a write at those
//! estimates would have counted (events, calls, rollups at every grain), a second restatement
//! changes nothing, and re-pricing jobs queue, progress, move between replicas and cancel.

use std::sync::Arc;

use hub_core::time::MINUTE_MS;
use hub_core::{Dimension, EventRecord};
use hub_storage::{CostUpdate, JobProgress, JobStatus, NewRepriceJob, Storage, StorageError};

#[macro_use]
mod support;
use support::calls::{Rng, call, close, envelope, stored, totals};
use support::{NOW, postgres, sqlite, tenant, write};

on_both!(
    restated_costs_count_what_a_write_at_the_new_prices_counts,
    reprice_jobs_queue_move_between_replicas_and_cancel,
);

/// Calls as in `call_costs.rs`, and calls that reach the hub as one flat event.
fn history() -> Vec<EventRecord> {
    let mut all: Vec<EventRecord> = (0..18)
        .flat_map(|n| call(n, NOW - 3 * 60 * MINUTE_MS + n as i64 * 7 * MINUTE_MS).events)
        .collect();
    for n in 0..12 {
        let mut e = envelope(
            &format!("flat-{n}"),
            NOW - 2 * 60 * MINUTE_MS + n * 3 * MINUTE_MS,
            &format!("flat-call-{n}"),
            "llm-observatory",
            &format!(
                r#"{{"payload_type": "telemetry", "data": {{"telemetry_type": "token_usage",
                    "model_id": "{}", "prompt_tokens": {}, "completion_tokens": 40}}}}"#,
                if n % 4 == 0 {
                    "custom-llm"
                } else {
                    "gpt-4o-mini"
                },
                300 + n * 11
            ),
        );
        e.correlation_id = None;
        all.push(e);
    }
    all
}

/// A price for an event: `old` leaves `custom-llm` and every third call unpriced (as `call`
/// does), `new` prices everything, at other prices.
fn estimate(e: &EventRecord, new: bool) -> Option<f64> {
    if !e.is_priceable() {
        return None;
    }
    let tokens = (e.input_tokens.unwrap_or(0), e.output_tokens.unwrap_or(0));
    if new {
        return Some(tokens.0 as f64 * 1.25e-6 + tokens.1 as f64 * 5e-6);
    }
    let unpriced_call = e
        .correlation_id
        .as_deref()
        .and_then(|c| c.strip_prefix("call-"))
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n % 3 == 2);
    if unpriced_call || e.model.as_deref() == Some("custom-llm") {
        return None;
    }
    Some(tokens.0 as f64 * 2.5e-6 + tokens.1 as f64 * 1e-5)
}

/// The events as the cost enricher leaves them at ingest.
fn priced(events: &[EventRecord], new: bool) -> Vec<EventRecord> {
    events
        .iter()
        .cloned()
        .map(|mut e| {
            e.estimated_cost_usd = estimate(&e, new);
            e.cost_usd = e.reported_cost_usd.or(e.estimated_cost_usd);
            e
        })
        .collect()
}

async fn restated_costs_count_what_a_write_at_the_new_prices_counts(store: Arc<dyn Storage>) {
    let mut events = history();
    Rng(7).shuffle(&mut events);
    let (then, now) = (
        tenant(&store, "priced-then").await,
        tenant(&store, "priced-now").await,
    );
    for chunk in priced(&events, false).chunks(5) {
        write(&store, then, chunk.to_vec()).await;
    }
    for chunk in priced(&events, true).chunks(5) {
        write(&store, now, chunk.to_vec()).await;
    }
    let before = totals(&store, then, vec![]).await[0].1.clone();
    assert!(before.unpriced_events > 0);

    // Re-price as the runner does: a page at a time, newest first, from the stored events.
    let stored_then = stored(&store, then).await;
    let updates: Vec<CostUpdate> = stored_then
        .iter()
        .map(|e| CostUpdate {
            ts_ms: e.ts_ms,
            event_id: e.event_id.clone(),
            estimated_cost_usd: estimate(e, true),
        })
        .collect();
    let mut changed = 0;
    for page in updates.chunks(7) {
        let r = store.restate_costs(then, page).await.unwrap();
        assert_eq!(r.found, page.len());
        changed += r.changed;
    }
    assert!(changed > 0);

    // Raw events agree with the tenant that was priced right from the start, event by event.
    let mut got = stored(&store, then).await;
    let mut want = stored(&store, now).await;
    got.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    want.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            (g.cost_usd, g.estimated_cost_usd, g.reported_cost_usd),
            (w.cost_usd, w.estimated_cost_usd, w.reported_cost_usd),
            "{}",
            g.event_id
        );
    }

    for group_by in [
        vec![],
        vec![Dimension::SourceModule],
        vec![Dimension::Model],
    ] {
        let (got, want) = (
            totals(&store, then, group_by.clone()).await,
            totals(&store, now, group_by.clone()).await,
        );
        assert_eq!(got.len(), want.len(), "{group_by:?}");
        for ((gk, g), (wk, w)) in got.iter().zip(&want) {
            assert_eq!(gk, wk);
            assert!(
                close(g.cost_usd, w.cost_usd),
                "{group_by:?} {gk:?}: cost {} vs {}",
                g.cost_usd,
                w.cost_usd
            );
            assert!(close(g.estimated_cost_usd, w.estimated_cost_usd), "{gk:?}");
            assert!(close(g.reported_cost_usd, w.reported_cost_usd), "{gk:?}");
            assert_eq!(
                (g.unpriced_events, g.unpriced_tokens, g.events),
                (w.unpriced_events, w.unpriced_tokens, w.events),
                "{group_by:?} {gk:?}"
            );
        }
    }
    // Again: nothing changes.
    let again = store.restate_costs(then, &updates).await.unwrap();
    assert_eq!((again.found, again.changed), (updates.len(), 0));
    let after = totals(&store, then, vec![]).await[0].1.clone();
    assert!(close(
        after.cost_usd,
        totals(&store, now, vec![]).await[0].1.cost_usd
    ));
    // An event no longer stored is skipped.
    let gone = CostUpdate {
        ts_ms: NOW - 1,
        event_id: "never-stored".into(),
        estimated_cost_usd: Some(1.0),
    };
    let r = store.restate_costs(then, &[gone]).await.unwrap();
    assert_eq!((r.found, r.changed), (0, 0));
    // Nor does another tenant's restatement reach this one.
    let r = store.restate_costs(now, &updates[..3]).await.unwrap();
    assert_eq!(r.changed, 0);
}

fn job(by: &str) -> NewRepriceJob {
    NewRepriceJob {
        requested_by: by.into(),
        from_ms: NOW - 86_400_000,
        to_ms: NOW,
        filter_json: r#"{"model":"gpt-4o"}"#.into(),
    }
}

async fn reprice_jobs_queue_move_between_replicas_and_cancel(store: Arc<dyn Storage>) {
    let jobs = store.reprices();
    let (a, b) = (tenant(&store, "a").await, tenant(&store, "b").await);
    let first = jobs.create_job(a, &job("ana@a"), 1_000).await.unwrap();
    assert_eq!(first.status, JobStatus::Queued);
    assert!(matches!(
        jobs.create_job(a, &job("ana@a"), 1_001).await,
        Err(StorageError::Conflict(_))
    ));
    let other = jobs.create_job(b, &job("bo@b"), 1_002).await.unwrap();
    assert!(
        jobs.job(b, first.id).await.unwrap().is_none(),
        "tenants' jobs are apart"
    );

    let claimed = jobs.claim_job("r1", 2_000, 0).await.unwrap().unwrap();
    assert_eq!((claimed.id, claimed.status), (first.id, JobStatus::Running));
    let page = JobProgress {
        cursor: Some(hub_storage::EventCursor {
            ts_ms: NOW - 5,
            event_id: "e:5".into(),
        }),
        examined: 500,
        changed: 20,
        cost_before_usd: 1.5,
        cost_after_usd: 1.25,
    };
    assert!(
        jobs.record_progress(first.id, "r1", &page, 3_000)
            .await
            .unwrap()
    );
    // r1 goes quiet; r2 takes the job up where it was, and r1 learns it no longer holds it.
    assert_eq!(
        jobs.claim_job("r2", 4_000, 2_500)
            .await
            .unwrap()
            .unwrap()
            .id,
        other.id,
        "the queued job first"
    );
    let taken = jobs.claim_job("r2", 5_000, 4_000).await.unwrap().unwrap();
    assert_eq!(taken.id, first.id);
    assert_eq!(taken.cursor, page.cursor);
    assert_eq!((taken.events_examined, taken.events_changed), (500, 20));
    assert!(
        !jobs
            .record_progress(first.id, "r1", &page, 5_001)
            .await
            .unwrap()
    );
    assert!(jobs.claim_job("r3", 5_002, 4_000).await.unwrap().is_none());
    jobs.finish_job(first.id, "r2", JobStatus::Done, None, 6_000)
        .await
        .unwrap();
    let done = jobs.job(a, first.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!(done.finished_at_ms, Some(6_000));
    assert!(close(done.cost_before_usd, 1.5) && close(done.cost_after_usd, 1.25));

    // A finished job frees the tenant for another; cancelling stops it.
    let next = jobs.create_job(a, &job("ana@a"), 7_000).await.unwrap();
    let cancelled = jobs.cancel_job(a, next.id, 7_500).await.unwrap().unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(jobs.cancel_job(b, next.id, 7_600).await.unwrap().is_none());
    let listed = jobs.jobs(a, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![next.id, first.id]
    );
    // The other tenant's running job is cancelled under its replica: its next progress says so.
    jobs.cancel_job(b, other.id, 8_000).await.unwrap();
    assert!(
        !jobs
            .record_progress(other.id, "r2", &page, 8_100)
            .await
            .unwrap()
    );
}
