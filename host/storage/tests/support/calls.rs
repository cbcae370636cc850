//! LLM calls as the LLM DevOps envelope reports them (telemetry, usage, cost events sharing a
//! `correlation_id`), and reading back what a tenant counts.
#![allow(dead_code)]

use std::sync::Arc;

use hub_core::EventRecord;
use hub_core::ingest::{IngestLimits, parse_event};
use hub_core::time::DAY_MS;
use hub_storage::analytics::{SummaryQuery, summary};
use hub_storage::{Aggregate, EventFilter, Storage};

use super::NOW;

/// What one call should count.
pub struct Call {
    pub events: Vec<EventRecord>,
    /// The cost it counts: reported, else estimated, else none (unpriced).
    pub cost: Option<f64>,
    pub reported: Option<f64>,
    pub estimated: Option<f64>,
}

pub fn envelope(id: &str, ts_ms: i64, call: &str, module: &str, payload: &str) -> EventRecord {
    let raw = format!(
        r#"{{"event_id": "{id}", "timestamp": {ts_ms}, "source_module": "{module}",
            "event_type": "{}", "correlation_id": "{call}", "payload": {payload}}}"#,
        if module == "llm-cost-ops" {
            "cost"
        } else {
            "telemetry"
        }
    );
    let limits = IngestLimits {
        max_age_ms: i64::MAX / 4,
        ..Default::default()
    };
    parse_event(&raw, &limits, NOW).unwrap()
}

/// Call `n`: latency telemetry always; usage that the cost plugin priced (every third call's
/// model has no price); a cost event from CostOps for every other call.
pub fn call(n: u64, ts_ms: i64) -> Call {
    let c = format!("call-{n}");
    let (prompt, completion) = (100 + n as i64 * 7, 20 + n as i64 * 3);
    let priced = n % 3 != 2;
    let reports = n.is_multiple_of(2);
    let mut events = vec![envelope(
        &format!("{c}-latency"),
        ts_ms,
        &c,
        "llm-observatory",
        r#"{"payload_type": "telemetry", "data": {"telemetry_type": "latency", "model_id": "gpt-4o", "total_latency_ms": 900}}"#,
    )];
    let mut usage = envelope(
        &format!("{c}-usage"),
        ts_ms + 1,
        &c,
        "llm-observatory",
        &format!(
            r#"{{"payload_type": "telemetry", "data": {{"telemetry_type": "token_usage", "model_id": "gpt-4o",
                "prompt_tokens": {prompt}, "completion_tokens": {completion}}}}}"#
        ),
    );
    let estimated = priced.then_some(prompt as f64 * 2.5e-6 + completion as f64 * 1e-5);
    // As the cost plugin's patch leaves it.
    usage.estimated_cost_usd = estimated;
    usage.cost_usd = estimated;
    events.push(usage);
    let reported = reports.then(|| 0.001 * (n + 1) as f64);
    if let Some(r) = reported {
        events.push(envelope(
            &format!("{c}-cost"),
            ts_ms + 2,
            &c,
            "llm-cost-ops",
            &format!(
                r#"{{"payload_type": "cost", "data": {{"cost_type": "token_cost", "model_id": "gpt-4o",
                    "prompt_tokens": {prompt}, "completion_tokens": {completion}, "total_cost_usd": {r}}}}}"#
            ),
        ));
    }
    Call {
        events,
        cost: reported.or(estimated),
        reported,
        estimated,
    }
}

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
    }
}

pub async fn stored(store: &Arc<dyn Storage>, t: hub_core::TenantId) -> Vec<EventRecord> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_events(t, &EventFilter::default(), cursor.as_ref(), 1000)
            .await
            .unwrap();
        out.extend(page.events.into_iter().map(|e| e.record));
        match page.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

pub async fn totals(
    store: &Arc<dyn Storage>,
    t: hub_core::TenantId,
    group_by: Vec<hub_core::Dimension>,
) -> Vec<(Vec<Option<String>>, Aggregate)> {
    let q = SummaryQuery {
        from_ms: NOW - DAY_MS,
        to_ms: NOW,
        group_by,
        filters: vec![],
    };
    summary(store.as_ref(), t, &q)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.key, g.agg))
        .collect()
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}
