//! One set of stories, run against SQLite and PostgreSQL alike, as one test binary: tenants,
//! keys, plugins and the marketplace (`tenants`); people, sessions, invitations and sign-in
//! throttling (`people`); writing, rolling up, listing and keeping events (`events`); finding
//! events by id (`ids`); detectors' anomalies, forecasts and scheduled runs (`analysis`); alert rules, alerts,
//! their deliveries and silences (`alerts`). The helpers they share are here.

use std::sync::Arc;

use hub_core::Role;
use hub_core::time::{DAY_MS, HOUR_MS, MINUTE_MS};
use hub_core::{
    ApiKeyScope, Dimension, EnrichedBy, EventRecord, Metric, Status, TenantId, TokenDetails,
};
use hub_storage::analytics::{SummaryQuery, TimeseriesQuery, summary, timeseries};
use hub_storage::{
    Acceptance, Aggregate, AuditEntry, AuditFilter, EventField, EventFilter, NewApiKey,
    NewInvitation, NewRefreshToken, NewUser, PluginComponent, PluginInstall, RefreshUse,
    RetentionPolicy, SigningKey, Storage, StorageError, TenantBatch, TenantRetention,
    ThrottleState,
};

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod alerts;
mod analysis;
mod events;
mod ids;
mod people;
mod tenants;

use alerts::*;
use analysis::*;
use events::*;
use people::*;
use support::{NOW, postgres, sqlite, tenant, write};
use tenants::*;

on_both!(
    tenants_and_keys,
    users_memberships_sessions_and_audit,
    plugins_installs_health_and_kv,
    marketplace_keys_packages_and_versions,
    writes_are_idempotent,
    a_resend_inside_a_group_commit_costs_only_itself,
    rollups_answer_like_raw_events,
    timeseries_match_raw_events,
    event_listing_pages_and_filters,
    tenants_never_see_each_other,
    retention_deletes_only_what_expired,
    a_tenant_may_keep_less_than_the_operator,
    tenants_keep_their_own_sso_rules,
    invitations_grant_nothing_until_accepted_once,
    failed_sign_ins_are_counted_per_key_and_forgotten,
    concurrent_writers_lose_nothing,
    anomalies_are_stored_once_filtered_and_paged,
    forecasts_keep_the_newest_per_series,
    one_replica_runs_each_period,
    alert_rules_and_their_alerts_keep_their_history,
    alert_deliveries_are_queued_with_the_alert_taken_once_and_logged,
    silences_are_kept_per_tenant_and_end_when_expired,
);

/// Deterministic pseudo-random events over `span_ms` before NOW.
fn events(n: usize, seed: u64, span_ms: i64) -> Vec<EventRecord> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    let models = ["gpt-4o", "claude-sonnet-4", "gemini-2.5-pro"];
    let apps = ["support-bot", "search", "rag"];
    (0..n)
        .map(|i| {
            let model = models[(next() % 3) as usize];
            let error = next() % 10 == 0;
            EventRecord {
                event_id: format!("e-{seed}-{i}"),
                ts_ms: NOW - 1 - (next() as i64 % span_ms),
                event_type: "llm_call".into(),
                kind: "llm_call".into(),
                source_module: None,
                severity: None,
                environment: Some(
                    if next() % 2 == 0 {
                        "production"
                    } else {
                        "staging"
                    }
                    .into(),
                ),
                app: Some(apps[(next() % 3) as usize].into()),
                model: Some(model.into()),
                provider: Some(
                    if model.starts_with("gpt") {
                        "openai"
                    } else {
                        "other"
                    }
                    .into(),
                ),
                operation: Some("chat".into()),
                input_tokens: Some((next() % 5000) as i64),
                output_tokens: if i % 7 == 0 {
                    None
                } else {
                    Some((next() % 800) as i64)
                },
                latency_ms: if i % 11 == 0 {
                    None
                } else {
                    Some(1.0 + (next() % 100_000) as f64 / 7.0)
                },
                ttft_ms: None,
                status: Some(if error { Status::Error } else { Status::Ok }),
                error_type: error.then(|| "timeout".into()),
                // Every 13th unpriced; every 4th reported with an estimate 25% above it.
                cost_usd: Some((next() % 1000) as f64 / 1e5).filter(|_| i % 13 != 0),
                reported_cost_usd: None,
                estimated_cost_usd: None,
                service_tier: (i % 9 == 4).then(|| "batch".to_string()),
                details: TokenDetails([
                    (i % 3 == 0).then_some((i % 50) as i64),
                    (i % 4 == 1).then_some((i % 30) as i64),
                    (i % 5 == 0).then_some((i % 20) as i64),
                    (i % 6 == 1).then_some((i % 9) as i64),
                    (i % 8 == 3).then_some((i % 7) as i64),
                ]),
                user_id: Some(format!("u-{}", next() % 5)),
                session_id: None,
                trace_id: None,
                correlation_id: Some(format!("c-{}", i / 3)),
                parent_event_id: None,
                tags_json: "{}".into(),
                payload_json: format!(r#"{{"i":{i}}}"#),
                // Every other event as two enrichers left it, to check the column round-trips.
                enriched_by: if i % 2 == 1 {
                    vec![
                        Arc::new(EnrichedBy {
                            plugin: "cost".into(),
                            fields: vec!["cost_usd".into()],
                        }),
                        Arc::new(EnrichedBy {
                            plugin: "registry".into(),
                            fields: vec!["provider".into(), "tags.model \"family\"".into()],
                        }),
                    ]
                } else {
                    Vec::new()
                },
            }
        })
        .map(|mut e| {
            let i: usize = e.event_id.rsplit('-').next().unwrap().parse().unwrap();
            if i.is_multiple_of(4) {
                e.reported_cost_usd = e.cost_usd;
                e.estimated_cost_usd = e.cost_usd.map(|c| c * 1.25);
            } else {
                e.estimated_cost_usd = e.cost_usd;
            }
            e
        })
        .collect()
}

/// Events counted by the rollups of `tenant` over the last day.
async fn rolled_up_events(store: &Arc<dyn Storage>, tenant: TenantId) -> i64 {
    let q = SummaryQuery {
        from_ms: NOW - DAY_MS,
        to_ms: NOW,
        group_by: vec![],
        filters: vec![],
    };
    summary(store.as_ref(), tenant, &q).await.unwrap()[0]
        .agg
        .events
}

fn exact(events: &[EventRecord], keep: impl Fn(&EventRecord) -> bool) -> (Aggregate, Vec<f64>) {
    let mut agg = Aggregate::default();
    let mut lat = Vec::new();
    for e in events.iter().filter(|e| keep(e)) {
        agg.add_event(e);
        lat.extend(e.latency_ms);
    }
    lat.sort_by(f64::total_cmp);
    (agg, lat)
}

fn assert_matches(got: &Aggregate, want: &Aggregate, lat: &[f64], what: &str) {
    assert_eq!(
        (
            got.events,
            got.requests,
            got.errors,
            got.input_tokens,
            got.output_tokens,
            got.latency_count
        ),
        (
            want.events,
            want.requests,
            want.errors,
            want.input_tokens,
            want.output_tokens,
            want.latency_count
        ),
        "{what}"
    );
    assert_eq!(
        (got.details, got.unpriced_events, got.unpriced_tokens),
        (want.details, want.unpriced_events, want.unpriced_tokens),
        "{what}: token details and unpriced"
    );
    for (name, g, w) in [
        ("cost", got.cost_usd, want.cost_usd),
        ("estimated", got.estimated_cost_usd, want.estimated_cost_usd),
        ("reported", got.reported_cost_usd, want.reported_cost_usd),
    ] {
        assert!((g - w).abs() < 1e-6, "{what}: {name} {g} vs {w}");
    }
    for q in [0.5, 0.95, 0.99] {
        if lat.is_empty() {
            break;
        }
        let truth = lat[(q * (lat.len() - 1) as f64).floor() as usize];
        let est = got.latency.quantile(q).unwrap();
        assert!(
            (est - truth).abs() / truth <= 0.01 + 1e-9,
            "{what}: p{q} {est} vs {truth}"
        );
    }
}

/// Every one of `want` is found by id in tenant `t`, as stored.
async fn found<'a>(
    store: &Arc<dyn Storage>,
    t: TenantId,
    want: impl IntoIterator<Item = &'a EventRecord>,
) {
    for e in want {
        let got = store.get_event(t, &e.event_id).await.unwrap();
        assert_eq!(got.map(|g| g.record).as_ref(), Some(e), "{}", e.event_id);
    }
}

/// No event with this id is found in tenant `t`.
async fn not_found(store: &Arc<dyn Storage>, t: TenantId, id: &str) {
    let got = store.get_event(t, id).await.unwrap();
    assert!(got.is_none(), "{id} found in tenant {}", t.get());
}
