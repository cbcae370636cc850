//! One set of stories, run against SQLite and PostgreSQL alike.

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
mod support;
use support::{NOW, postgres, sqlite, tenant, write};

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

async fn tenants_and_keys(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    assert!(matches!(
        store.tenants().create_tenant("acme", NOW).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        store
            .tenants()
            .tenant_by_name("acme")
            .await
            .unwrap()
            .unwrap()
            .id,
        t
    );
    assert!(
        store
            .tenants()
            .tenant_by_name("nope")
            .await
            .unwrap()
            .is_none()
    );
    let key = NewApiKey {
        name: "ci".into(),
        prefix: "hub_abc123".into(),
        secret_hash: "ff".repeat(32),
        scopes: vec![ApiKeyScope::Ingest, ApiKeyScope::Query],
        expires_at_ms: None,
        rate_limit_per_s: Some(50),
        rotated_from: None,
    };
    let created = store.tenants().create_api_key(t, &key, NOW).await.unwrap();
    assert!(matches!(
        store.tenants().create_api_key(t, &key, NOW).await,
        Err(StorageError::Conflict(_))
    ));
    let found = store
        .tenants()
        .api_key_by_prefix("hub_abc123")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, created);
    assert_eq!(found.tenant, t);
    store
        .tenants()
        .touch_api_key(t, found.id, NOW + 5)
        .await
        .unwrap();
    let listed = store.tenants().list_api_keys(t).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at_ms, Some(NOW + 5));
    assert_eq!(listed[0].rate_limit_per_s, Some(50));

    // Revocation: scheduled, brought forward, never pushed back; another tenant's id is unknown.
    let other = tenant(&store, "globex").await;
    assert!(
        store
            .tenants()
            .revoke_api_key(other, found.id, NOW)
            .await
            .unwrap()
            .is_none()
    );
    let later = store
        .tenants()
        .revoke_api_key(t, found.id, NOW + 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(later.revoked_at_ms, Some(NOW + 100));
    let now = store
        .tenants()
        .revoke_api_key(t, found.id, NOW + 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.revoked_at_ms, Some(NOW + 10));
    let again = store
        .tenants()
        .revoke_api_key(t, found.id, NOW + 50)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at_ms, Some(NOW + 10));
    let rotated = store
        .tenants()
        .create_api_key(
            t,
            &NewApiKey {
                prefix: "hub_def456".into(),
                rotated_from: Some(found.id),
                ..key.clone()
            },
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(rotated.rotated_from, Some(found.id));
    store.set_meta("k", "v1").await.unwrap();
    store.set_meta("k", "v2").await.unwrap();
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v2"));
}

async fn users_memberships_sessions_and_audit(store: Arc<dyn Storage>) {
    let acme = tenant(&store, "acme").await;
    let globex = tenant(&store, "globex").await;
    let a = store.access();
    assert_eq!(a.count_users().await.unwrap(), 0);
    let new = NewUser {
        email: "Ada@Example.com".into(),
        display_name: "Ada".into(),
        password_hash: Some("$argon2id$x".into()),
        must_change_password: true,
        operator: false,
        publisher: true,
    };
    let ada = a.create_user(&new, NOW).await.unwrap();
    assert_eq!(ada.email, "ada@example.com");
    assert!(ada.must_change_password && ada.publisher && !ada.operator);
    assert!(matches!(
        a.create_user(
            &NewUser {
                email: "ADA@example.com".into(),
                ..new.clone()
            },
            NOW
        )
        .await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        a.user_by_email(" ada@EXAMPLE.com ")
            .await
            .unwrap()
            .unwrap()
            .id,
        ada.id
    );
    a.set_password(ada.id, "$argon2id$y", false).await.unwrap();
    a.set_platform_rights(ada.id, true, false).await.unwrap();
    let u = a.user_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(u.password_hash.as_deref(), Some("$argon2id$y"));
    assert!(u.operator && !u.publisher && !u.must_change_password);

    // A success records the time (failed sign-ins are counted by email: see the throttle story).
    a.record_login_success(ada.id, NOW + 1).await.unwrap();
    let u = a.user_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(u.last_login_at_ms, Some(NOW + 1));

    // Memberships: a role per tenant, the old role returned, removal.
    assert_eq!(
        a.set_membership(ada.id, acme, Some(Role::Admin), NOW)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        a.set_membership(ada.id, acme, Some(Role::Owner), NOW)
            .await
            .unwrap(),
        Some(Role::Admin)
    );
    a.set_membership(ada.id, globex, Some(Role::Viewer), NOW)
        .await
        .unwrap();
    let ms = a.memberships(ada.id).await.unwrap();
    assert_eq!(
        ms.iter()
            .map(|m| (m.tenant_name.as_str(), m.role))
            .collect::<Vec<_>>(),
        [("acme", Role::Owner), ("globex", Role::Viewer)]
    );
    assert_eq!(a.members(acme).await.unwrap()[0].1, Role::Owner);
    assert_eq!(
        a.set_membership(ada.id, globex, None, NOW).await.unwrap(),
        Some(Role::Viewer)
    );
    assert!(a.members(globex).await.unwrap().is_empty());

    // Refresh tokens: used once; a replay revokes the family; expired ones are dead.
    let token = |hash: &str, family: &str, expires: i64| NewRefreshToken {
        family: family.into(),
        user_id: ada.id,
        tenant: acme,
        token_hash: hash.into(),
        expires_at_ms: expires,
    };
    a.insert_refresh_token(&token("h1", "f1", NOW + 1000), NOW)
        .await
        .unwrap();
    a.insert_refresh_token(&token("h2", "f1", NOW + 1000), NOW)
        .await
        .unwrap();
    a.insert_refresh_token(&token("h3", "f2", NOW + 10), NOW)
        .await
        .unwrap();
    assert!(
        matches!(a.use_refresh_token("h1", NOW).await.unwrap(), RefreshUse::Fresh(t) if t.family == "f1")
    );
    assert!(!a.session_revoked("f1").await.unwrap());
    assert!(matches!(
        a.use_refresh_token("h1", NOW).await.unwrap(),
        RefreshUse::Reused(_)
    ));
    assert!(a.session_revoked("f1").await.unwrap());
    assert!(
        matches!(
            a.use_refresh_token("h2", NOW).await.unwrap(),
            RefreshUse::Dead(_)
        ),
        "its family went with it"
    );
    assert!(
        matches!(
            a.use_refresh_token("h3", NOW + 10).await.unwrap(),
            RefreshUse::Dead(_)
        ),
        "expired"
    );
    assert!(matches!(
        a.use_refresh_token("nope", NOW).await.unwrap(),
        RefreshUse::Unknown
    ));
    a.insert_refresh_token(&token("h4", "f3", NOW + 1000), NOW)
        .await
        .unwrap();
    assert!(a.revoke_session("f3", NOW).await.unwrap());
    assert!(!a.revoke_session("f3", NOW).await.unwrap());
    a.insert_refresh_token(&token("h5", "f4", NOW + 1000), NOW)
        .await
        .unwrap();
    a.revoke_user_sessions(ada.id, None, NOW).await.unwrap();
    assert!(a.session_revoked("f4").await.unwrap());

    // Signing keys, newest first.
    for (kid, at) in [("k1", NOW), ("k2", NOW + 5)] {
        a.add_signing_key(&SigningKey {
            kid: kid.into(),
            secret: "s".into(),
            created_at_ms: at,
        })
        .await
        .unwrap();
    }
    let keys = a.signing_keys().await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        ["k2", "k1"]
    );
    a.delete_signing_keys_before(NOW + 1).await.unwrap();
    assert_eq!(a.signing_keys().await.unwrap().len(), 1);

    // Audit: per tenant, filtered, newest first, paged by id.
    let log = store.audit();
    for (i, (tenant, action)) in [
        (Some(acme), "auth.login"),
        (Some(acme), "api_key.revoke"),
        (Some(globex), "auth.login"),
        (None, "user.create"),
    ]
    .into_iter()
    .enumerate()
    {
        log.append_audit(&AuditEntry {
            at_ms: NOW + i as i64,
            tenant,
            actor: "user:ada@example.com".into(),
            action: action.into(),
            target: Some("x".into()),
            source: Some("127.0.0.1".into()),
            outcome: "ok".into(),
            before: Some("{\"role\":\"viewer\"}".into()),
            after: None,
        })
        .await
        .unwrap();
    }
    let mine = log
        .list_audit(Some(acme), &AuditFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(
        mine.iter()
            .map(|r| r.entry.action.as_str())
            .collect::<Vec<_>>(),
        ["api_key.revoke", "auth.login"]
    );
    assert_eq!(
        mine[0].entry.before.as_deref(),
        Some("{\"role\":\"viewer\"}")
    );
    let logins = log
        .list_audit(
            None,
            &AuditFilter {
                action_prefix: Some("auth.".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(logins.len(), 2);
    let page = log
        .list_audit(
            None,
            &AuditFilter {
                before_id: Some(logins[0].id),
                ..Default::default()
            },
            1,
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert!(page[0].id < logins[0].id);
    let window = log
        .list_audit(
            Some(acme),
            &AuditFilter {
                from_ms: Some(NOW + 1),
                to_ms: Some(NOW + 2),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(window.len(), 1);

    // Saved views: own and shared ones listed; only the owner changes or deletes.
    let views = store.views();
    let bob = a
        .create_user(
            &NewUser {
                email: "bob@example.com".into(),
                ..new.clone()
            },
            NOW,
        )
        .await
        .unwrap();
    let q = r#"{"route":"summary","params":{"group_by":"model"}}"#;
    let spec = |name: &str, shared: bool| hub_storage::ViewSpec {
        name: name.into(),
        query: q.into(),
        shared,
    };
    let mine = views
        .create_view(acme, ada.id, &spec("by model", false), NOW)
        .await
        .unwrap();
    assert_eq!(
        (mine.owner.as_str(), mine.shared),
        ("ada@example.com", false)
    );
    assert!(matches!(
        views
            .create_view(acme, ada.id, &spec("by model", false), NOW)
            .await,
        Err(StorageError::Conflict(_))
    ));
    let shared = views
        .create_view(acme, bob.id, &spec("team", true), NOW)
        .await
        .unwrap();
    views
        .create_view(acme, bob.id, &spec("private", false), NOW)
        .await
        .unwrap();
    let names = |v: Vec<hub_storage::SavedView>| v.into_iter().map(|v| v.name).collect::<Vec<_>>();
    assert_eq!(
        names(views.list_views(acme, ada.id).await.unwrap()),
        ["by model", "team"]
    );
    assert!(views.list_views(globex, ada.id).await.unwrap().is_empty());
    assert!(
        views
            .update_view(acme, ada.id, shared.id, &spec("mine now", false), NOW)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!views.delete_view(acme, ada.id, shared.id).await.unwrap());
    assert!(
        views
            .update_view(globex, ada.id, mine.id, &spec("x", false), NOW)
            .await
            .unwrap()
            .is_none()
    );
    let renamed = views
        .update_view(acme, ada.id, mine.id, &spec("renamed", true), NOW + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.shared, renamed.updated_at_ms),
        ("renamed", true, NOW + 1)
    );
    assert!(views.delete_view(acme, ada.id, mine.id).await.unwrap());

    // SSO logins in progress: taken once, expired ones purged.
    let login = |state: &str, at: i64| hub_storage::OidcLogin {
        state: state.into(),
        verifier: "v".into(),
        nonce: "n".into(),
        tenant: Some("acme".into()),
        created_at_ms: at,
    };
    a.save_oidc_login(&login("s1", NOW)).await.unwrap();
    a.save_oidc_login(&login("s2", NOW - 10)).await.unwrap();
    assert_eq!(
        a.take_oidc_login("s1", NOW - 5).await.unwrap(),
        Some(login("s1", NOW))
    );
    assert_eq!(
        a.take_oidc_login("s1", NOW - 5).await.unwrap(),
        None,
        "used once"
    );
    assert_eq!(
        a.take_oidc_login("s2", NOW - 5).await.unwrap(),
        None,
        "expired"
    );
}

async fn writes_are_idempotent(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let batch = events(300, 1, HOUR_MS);
    let first = write(&store, t, batch.clone()).await;
    assert_eq!((first.inserted, first.duplicates), (300, 0));
    let mut again = batch[..100].to_vec();
    again.extend(events(50, 2, HOUR_MS));
    again.push(again[0].clone()); // a duplicate inside the batch too
    let second = write(&store, t, again).await;
    assert_eq!((second.inserted, second.duplicates), (50, 101));
    assert_eq!(store.count_events(t).await.unwrap(), 350);
    // Rollups counted each event once.
    assert_eq!(rolled_up_events(&store, t).await, 350);
}

/// One group commit holding new batches around a partial resend: the resend is told its
/// duplicates, and neither it nor its neighbours lose or double-count an event.
async fn a_resend_inside_a_group_commit_costs_only_itself(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let u = tenant(&store, "umbrella").await;
    let old = events(100, 11, HOUR_MS);
    write(&store, t, old.clone()).await;
    let mut resend = old[..20].to_vec();
    resend.extend(events(30, 12, HOUR_MS));
    let batches = [
        TenantBatch {
            tenant: t,
            events: events(50, 13, HOUR_MS),
        },
        TenantBatch {
            tenant: t,
            events: resend,
        },
        TenantBatch {
            tenant: u,
            events: old[..10].to_vec(),
        },
        TenantBatch {
            tenant: t,
            events: events(10, 14, HOUR_MS),
        },
    ];
    let outcomes = store.write_batches(&batches, NOW).await.unwrap();
    let counts: Vec<(usize, usize)> = outcomes
        .iter()
        .map(|o| (o.inserted, o.duplicates))
        .collect();
    assert_eq!(counts, [(50, 0), (30, 20), (10, 0), (10, 0)]);
    assert_eq!(store.count_events(t).await.unwrap(), 190);
    assert_eq!(store.count_events(u).await.unwrap(), 10);
    assert_eq!(rolled_up_events(&store, t).await, 190);
    assert_eq!(rolled_up_events(&store, u).await, 10);
}

async fn rollups_answer_like_raw_events(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let all = events(4000, 3, 3 * DAY_MS);
    for chunk in all.chunks(700) {
        write(&store, t, chunk.to_vec()).await;
    }
    // Aligned, unaligned, and sub-minute ranges all answer exactly.
    let ranges = [
        (NOW - 3 * DAY_MS, NOW),
        (
            NOW - 2 * DAY_MS - 7 * HOUR_MS - 13 * MINUTE_MS - 4_321,
            NOW - 5 * HOUR_MS - 59_999,
        ),
        (NOW - HOUR_MS - 30_000, NOW - HOUR_MS),
    ];
    for (from, to) in ranges {
        let q = SummaryQuery {
            from_ms: from,
            to_ms: to,
            group_by: vec![Dimension::Model, Dimension::Status],
            filters: vec![],
        };
        let groups = summary(store.as_ref(), t, &q).await.unwrap();
        let in_range = |e: &EventRecord| e.ts_ms >= from && e.ts_ms < to;
        let total: i64 = groups.iter().map(|g| g.agg.events).sum();
        assert_eq!(total, all.iter().filter(|e| in_range(e)).count() as i64);
        for g in &groups {
            let (want, lat) = exact(&all, |e| {
                in_range(e)
                    && e.model == g.key[0]
                    && e.status.map(|s| s.as_str().to_string()) == g.key[1]
            });
            assert_matches(
                &g.agg,
                &want,
                &lat,
                &format!("{:?} in [{from}, {to})", g.key),
            );
        }
    }
    // Filters.
    let q = SummaryQuery {
        from_ms: NOW - 3 * DAY_MS,
        to_ms: NOW,
        group_by: vec![Dimension::App],
        filters: vec![
            (Dimension::Provider, "openai".into()),
            (Dimension::Environment, "production".into()),
        ],
    };
    let groups = summary(store.as_ref(), t, &q).await.unwrap();
    assert_eq!(groups.len(), 3);
    for g in &groups {
        let (want, lat) = exact(&all, |e| {
            e.provider.as_deref() == Some("openai")
                && e.environment.as_deref() == Some("production")
                && e.app == g.key[0]
        });
        assert_matches(&g.agg, &want, &lat, "filtered");
    }
}

async fn timeseries_match_raw_events(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let all = events(3000, 4, 6 * HOUR_MS);
    write(&store, t, all.clone()).await;
    for (step, metric) in [
        (MINUTE_MS, Metric::Requests),
        (5 * MINUTE_MS, Metric::InputTokens),
        (HOUR_MS, Metric::LatencyP95),
        (HOUR_MS, Metric::Tokens(hub_core::TokenDetail::CacheRead)),
        (5 * MINUTE_MS, Metric::UnpricedEvents),
        (HOUR_MS, Metric::ReportedCostUsd),
    ] {
        let q = TimeseriesQuery {
            from_ms: NOW - 6 * HOUR_MS - 1,
            to_ms: NOW,
            step_ms: step,
            metric,
            group_by: vec![Dimension::Provider],
            filters: vec![],
        };
        let series = timeseries(store.as_ref(), t, &q).await.unwrap();
        assert_eq!(series.len(), 2);
        for s in &series {
            let (from, to) = hub_storage::analytics::aligned_range(&q);
            assert_eq!(s.points.len() as i64, (to - from) / step);
            for &(ts, value) in &s.points {
                let (want, _) = exact(&all, |e| {
                    e.ts_ms >= ts && e.ts_ms < ts + step && e.provider == s.key[0]
                });
                let want_value = want.metric(metric);
                match (value, want_value) {
                    (Some(v), Some(w)) if metric.quantile().is_some() => {
                        assert!((v - w).abs() / w <= 0.011, "{metric:?} at {ts}: {v} vs {w}")
                    }
                    (Some(v), Some(w)) if metric == Metric::ReportedCostUsd => {
                        assert!((v - w).abs() < 1e-9, "{metric:?} at {ts}: {v} vs {w}")
                    }
                    (v, w) => assert_eq!(v, w, "{metric:?} at {ts}"),
                }
            }
        }
    }
}

async fn event_listing_pages_and_filters(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let all = events(250, 5, HOUR_MS);
    write(&store, t, all.clone()).await;
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_events(t, &EventFilter::default(), cursor.as_ref(), 60)
            .await
            .unwrap();
        seen.extend(
            page.events
                .iter()
                .map(|e| (e.record.ts_ms, e.record.event_id.clone())),
        );
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 250);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, no repeats");
    let filter = EventFilter {
        dims: vec![
            (Dimension::Model, "gpt-4o".into()),
            (Dimension::Status, "error".into()),
        ],
        fields: vec![(EventField::UserId, "u-1".into())],
        ..Default::default()
    };
    let page = store.list_events(t, &filter, None, 1000).await.unwrap();
    let want = all
        .iter()
        .filter(|e| {
            e.model.as_deref() == Some("gpt-4o")
                && e.status == Some(Status::Error)
                && e.user_id.as_deref() == Some("u-1")
        })
        .count();
    assert_eq!(page.events.len(), want);
    let one = &all[17];
    let got = store.get_event(t, &one.event_id).await.unwrap().unwrap();
    assert_eq!(got.record, *one);
    assert_eq!(got.received_at_ms, NOW);
    let corr = EventFilter {
        fields: vec![(EventField::CorrelationId, "c-4".into())],
        ..Default::default()
    };
    assert_eq!(
        store
            .list_events(t, &corr, None, 10)
            .await
            .unwrap()
            .events
            .len(),
        3
    );
    // Any id by its start: event ids e-5-1…, correlation ids c-1…, user ids u-1; case matters.
    for prefix in ["e-5-1", "c-1", "u-1", "C-1", "%", "e-5-249"] {
        let filter = EventFilter {
            id_prefix: Some(prefix.into()),
            ..Default::default()
        };
        let got = store.list_events(t, &filter, None, 1000).await.unwrap();
        let want = all
            .iter()
            .filter(|e| {
                [
                    Some(&e.event_id),
                    e.trace_id.as_ref(),
                    e.session_id.as_ref(),
                    e.correlation_id.as_ref(),
                    e.parent_event_id.as_ref(),
                    e.user_id.as_ref(),
                ]
                .into_iter()
                .flatten()
                .any(|id| id.starts_with(prefix))
            })
            .count();
        assert_eq!(got.events.len(), want, "{prefix}");
        assert_eq!(
            want == 0,
            ["C-1", "%"].contains(&prefix),
            "{prefix}: {want}"
        );
    }
}

async fn tenants_never_see_each_other(store: Arc<dyn Storage>) {
    let a = tenant(&store, "a").await;
    let b = tenant(&store, "b").await;
    let events_a = events(100, 6, HOUR_MS);
    write(&store, a, events_a.clone()).await;
    // The same event ids in another tenant are different events, not duplicates.
    let outcome = write(&store, b, events_a[..10].to_vec()).await;
    assert_eq!(outcome.inserted, 10);
    not_found(&store, b, &events_a[50].event_id).await;
    assert_eq!(
        store
            .list_events(b, &EventFilter::default(), None, 1000)
            .await
            .unwrap()
            .events
            .len(),
        10
    );
    assert_eq!(rolled_up_events(&store, b).await, 10);
    assert_eq!(rolled_up_events(&store, a).await, 100);
}

async fn retention_deletes_only_what_expired(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let all = events(500, 7, 6 * DAY_MS);
    write(&store, t, all.clone()).await;
    let policy = RetentionPolicy {
        raw_ms: Some(2 * DAY_MS),
        minute_ms: Some(DAY_MS),
        hour_ms: Some(3 * DAY_MS),
        day_ms: None,
    };
    let report = store.enforce_retention(&policy, NOW).await.unwrap();
    let kept = all.iter().filter(|e| e.ts_ms >= NOW - 2 * DAY_MS).count();
    assert_eq!(store.count_events(t).await.unwrap(), kept as i64);
    assert!(
        report.events_deleted + report.partitions_dropped > 0,
        "{report:?}"
    );
    // Day rollups are kept forever: a 6-day summary at day resolution still sees everything.
    let q = SummaryQuery {
        from_ms: hub_core::time::floor_to(NOW - 7 * DAY_MS, DAY_MS),
        to_ms: hub_core::time::floor_to(NOW, DAY_MS),
        group_by: vec![],
        filters: vec![],
    };
    let want = all.iter().filter(|e| e.ts_ms < q.to_ms).count() as i64;
    assert_eq!(
        summary(store.as_ref(), t, &q).await.unwrap()[0].agg.events,
        want
    );
    // Minute rollups older than a day are gone.
    let old = hub_storage::Scan {
        from_ms: 0,
        to_ms: NOW - DAY_MS,
        filters: &[],
        group_by: &[],
        by_bucket: false,
        bucket_step_ms: 0,
        with_sketch: false,
    };
    let rows = store
        .scan_rollups(t, hub_core::time::Resolution::Minute, &old)
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.agg.events == 0), "{rows:?}");
}

async fn a_tenant_may_keep_less_than_the_operator(store: Arc<dyn Storage>) {
    let short = tenant(&store, "short").await;
    let long = tenant(&store, "long").await;
    let all = events(300, 8, 6 * DAY_MS);
    write(&store, short, all.clone()).await;
    write(&store, long, all.clone()).await;
    assert_eq!(
        store.settings().tenant_retention(short).await.unwrap(),
        TenantRetention::default(),
        "none set"
    );
    // Raw events for one day; a longer minute retention than the operator's does not extend it.
    let own = TenantRetention {
        raw_ms: Some(DAY_MS),
        minute_ms: Some(30 * DAY_MS),
        hour_ms: None,
        day_ms: Some(2 * DAY_MS),
    };
    store
        .settings()
        .set_tenant_retention(short, &own, NOW)
        .await
        .unwrap();
    assert_eq!(store.settings().tenant_retention(short).await.unwrap(), own);
    let policy = RetentionPolicy {
        raw_ms: Some(3 * DAY_MS),
        minute_ms: Some(DAY_MS),
        hour_ms: None,
        day_ms: None,
    };
    store.enforce_retention(&policy, NOW).await.unwrap();
    let within = |d: i64| all.iter().filter(|e| e.ts_ms >= NOW - d * DAY_MS).count() as i64;
    assert_eq!(store.count_events(short).await.unwrap(), within(1));
    assert_eq!(
        store.count_events(long).await.unwrap(),
        within(3),
        "the other tenant keeps the operator's 3 days"
    );
    // Day rollups: the short tenant's older than two days are gone, the other's all kept.
    let q = SummaryQuery {
        from_ms: hub_core::time::floor_to(NOW - 7 * DAY_MS, DAY_MS),
        to_ms: hub_core::time::floor_to(NOW - 3 * DAY_MS, DAY_MS),
        group_by: vec![],
        filters: vec![],
    };
    let old_events = |t| {
        let store = store.clone();
        let q = q.clone();
        async move {
            summary(store.as_ref(), t, &q)
                .await
                .unwrap()
                .first()
                .map_or(0, |r| r.agg.events)
        }
    };
    assert_eq!(old_events(short).await, 0);
    assert!(old_events(long).await > 0);
    // Setting it back to the operator's.
    store
        .settings()
        .set_tenant_retention(short, &TenantRetention::default(), NOW)
        .await
        .unwrap();
    assert_eq!(
        store.settings().tenant_retention(short).await.unwrap(),
        TenantRetention::default()
    );
}

async fn tenants_keep_their_own_sso_rules(store: Arc<dyn Storage>) {
    let a = tenant(&store, "a").await;
    let b = tenant(&store, "b").await;
    assert_eq!(store.settings().tenant_sso_rules(a).await.unwrap(), None);
    store
        .settings()
        .set_tenant_sso_rules(a, r#"{"v":1}"#, 1)
        .await
        .unwrap();
    store
        .settings()
        .set_tenant_sso_rules(a, r#"{"v":2}"#, 2)
        .await
        .unwrap();
    store
        .settings()
        .set_tenant_sso_rules(b, r#"{"v":3}"#, 3)
        .await
        .unwrap();
    assert_eq!(
        store
            .settings()
            .tenant_sso_rules(a)
            .await
            .unwrap()
            .as_deref(),
        Some(r#"{"v":2}"#),
        "replaced, not added"
    );
    let mut all = store.settings().all_tenant_sso_rules().await.unwrap();
    all.sort();
    assert_eq!(
        all,
        [
            ("a".to_string(), r#"{"v":2}"#.to_string()),
            ("b".to_string(), r#"{"v":3}"#.to_string())
        ]
    );
}

async fn invitations_grant_nothing_until_accepted_once(store: Arc<dyn Storage>) {
    let acme = tenant(&store, "acme").await;
    let globex = tenant(&store, "globex").await;
    let a = store.access();
    let inv = store.invitations();
    let bob = a
        .create_user(
            &NewUser {
                email: "bob@example.com".into(),
                display_name: "Bob".into(),
                password_hash: None,
                must_change_password: false,
                operator: false,
                publisher: false,
            },
            NOW,
        )
        .await
        .unwrap();
    a.set_membership(bob.id, globex, Some(Role::Viewer), NOW)
        .await
        .unwrap();
    let new = |code: &str, role: Role| NewInvitation {
        tenant: acme,
        email: " Bob@Example.com".into(),
        role,
        display_name: None,
        code_hash: code.into(),
        invited_by: "user:admin@acme.com".into(),
        expires_at_ms: NOW + 1000,
    };
    let first = inv
        .create_invitation(&new("c1", Role::Admin), NOW)
        .await
        .unwrap();
    assert_eq!(
        (first.email.as_str(), first.state(NOW)),
        ("bob@example.com", "pending")
    );
    assert_eq!(
        a.memberships(bob.id).await.unwrap().len(),
        1,
        "no access yet"
    );
    // A second invitation to the same person replaces the first.
    let second = inv
        .create_invitation(&new("c2", Role::Analyst), NOW + 1)
        .await
        .unwrap();
    let listed = inv.list_invitations(acme).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|i| (i.id, i.state(NOW + 2)))
            .collect::<Vec<_>>(),
        [(second.id, "pending"), (first.id, "revoked")]
    );
    assert!(inv.list_invitations(globex).await.unwrap().is_empty());
    assert_eq!(
        inv.invitation_by_code("c2").await.unwrap().unwrap().id,
        second.id
    );
    assert_eq!(inv.invitation_by_code("nope").await.unwrap(), None);
    assert_eq!(
        inv.accept_invitation(first.id, bob.id, NOW + 2)
            .await
            .unwrap(),
        Acceptance::Gone,
        "revoked"
    );
    assert_eq!(
        inv.accept_invitation(second.id, bob.id, NOW + 5000)
            .await
            .unwrap(),
        Acceptance::Gone,
        "expired"
    );
    let Acceptance::Joined(joined) = inv
        .accept_invitation(second.id, bob.id, NOW + 3)
        .await
        .unwrap()
    else {
        panic!("not joined")
    };
    assert_eq!(
        (joined.accepted_by, joined.state(NOW + 4)),
        (Some(bob.id), "accepted")
    );
    let roles: Vec<_> = a
        .memberships(bob.id)
        .await
        .unwrap()
        .iter()
        .map(|m| (m.tenant_name.clone(), m.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("acme".to_string(), Role::Analyst),
            ("globex".to_string(), Role::Viewer)
        ]
    );
    assert_eq!(
        inv.accept_invitation(second.id, bob.id, NOW + 4)
            .await
            .unwrap(),
        Acceptance::Gone,
        "used once"
    );
    // Already a member: the role stays, the invitation is used up.
    let third = inv
        .create_invitation(&new("c3", Role::Owner), NOW + 5)
        .await
        .unwrap();
    assert!(matches!(
        inv.accept_invitation(third.id, bob.id, NOW + 6)
            .await
            .unwrap(),
        Acceptance::AlreadyMember(_, Role::Analyst)
    ));
    // Revoking is per tenant and only while pending.
    let fourth = inv
        .create_invitation(&new("c4", Role::Viewer), NOW + 7)
        .await
        .unwrap();
    assert_eq!(
        inv.revoke_invitation(globex, fourth.id, NOW + 8)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        inv.revoke_invitation(acme, fourth.id, NOW + 8)
            .await
            .unwrap()
            .map(|i| i.state(NOW + 9)),
        Some("revoked")
    );
    assert_eq!(
        inv.revoke_invitation(acme, fourth.id, NOW + 9)
            .await
            .unwrap(),
        None
    );

    // Ending a person's sessions in one tenant leaves the others alone.
    for (hash, family, t) in [("s1", "fa", acme), ("s2", "fg", globex)] {
        a.insert_refresh_token(
            &NewRefreshToken {
                family: family.into(),
                user_id: bob.id,
                tenant: t,
                token_hash: hash.into(),
                expires_at_ms: NOW + 100_000,
            },
            NOW,
        )
        .await
        .unwrap();
    }
    a.revoke_user_sessions(bob.id, Some(acme), NOW)
        .await
        .unwrap();
    assert!(a.session_revoked("fa").await.unwrap());
    assert!(!a.session_revoked("fg").await.unwrap());
}

async fn failed_sign_ins_are_counted_per_key_and_forgotten(store: Arc<dyn Storage>) {
    let t = store.login_throttle();
    let keys = ["a".to_string(), "b".to_string()];
    assert_eq!(
        t.throttle_states(&keys).await.unwrap(),
        [ThrottleState::default(); 2]
    );
    for n in 1..=3 {
        assert_eq!(t.count_failure("a", NOW + n, 1000).await.unwrap(), n);
    }
    t.block("a", NOW + 60_000).await.unwrap();
    assert_eq!(
        t.throttle_states(&keys).await.unwrap(),
        [
            ThrottleState {
                failures: 3,
                blocked_until_ms: Some(NOW + 60_000)
            },
            ThrottleState::default()
        ]
    );
    // A failure long after the last one starts again from one.
    assert_eq!(t.count_failure("a", NOW + 5000, 1000).await.unwrap(), 1);
    assert_eq!(t.count_failure("b", NOW, 1000).await.unwrap(), 1);
    t.clear(&["a".to_string()]).await.unwrap();
    assert_eq!(
        t.throttle_states(&keys).await.unwrap()[0],
        ThrottleState::default()
    );
    assert_eq!(t.forget_before(NOW + 1).await.unwrap(), 1, "b");
    assert_eq!(
        t.throttle_states(&keys).await.unwrap(),
        [ThrottleState::default(); 2]
    );
}

async fn concurrent_writers_lose_nothing(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..5u64 {
                write(&store, t, events(200, 100 + w * 10 + round, 10 * MINUTE_MS)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let q = SummaryQuery {
        from_ms: NOW - HOUR_MS,
        to_ms: NOW,
        group_by: vec![],
        filters: vec![],
    };
    let g = &summary(store.as_ref(), t, &q).await.unwrap()[0];
    assert_eq!(g.agg.events, 4000);
    assert_eq!(g.agg.latency.count() as i64, g.agg.latency_count);
}

/// The SQLite writer caches rollup rows; a second handle on the same file (another process, such
/// as `hub bench seed` beside a running server) must make it forget them, or totals would drift.
#[tokio::test]
async fn sqlite_rollup_cache_notices_another_writer() {
    let (first, dir) = sqlite().await;
    let url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let second = hub_storage::open(&url, &Default::default()).await.unwrap();
    let t = tenant(&first, "acme").await;
    let mut all = Vec::new();
    for round in 0..6u64 {
        let batch = events(300, 500 + round, 10 * MINUTE_MS);
        all.extend(batch.clone());
        let store = if round % 2 == 0 { &first } else { &second };
        write(store, t, batch).await;
    }
    let q = SummaryQuery {
        from_ms: NOW - HOUR_MS,
        to_ms: NOW,
        group_by: vec![Dimension::Model],
        filters: vec![],
    };
    for store in [&first, &second] {
        for g in summary(store.as_ref(), t, &q).await.unwrap() {
            let (want, lat) = exact(&all, |e| e.model == g.key[0]);
            assert_matches(&g.agg, &want, &lat, "after alternating writers");
        }
    }
}

async fn plugins_installs_health_and_kv(store: Arc<dyn Storage>) {
    let a = tenant(&store, "plug-a").await;
    let b = tenant(&store, "plug-b").await;
    let component = PluginComponent {
        digest: "d1".into(),
        name: "cost".into(),
        version: "0.1.0".into(),
        kind: "enricher".into(),
        manifest: "name = \"cost\"".into(),
        component: vec![0, 97, 115, 109, 255, 0, 1],
        created_at_ms: NOW,
    };
    store
        .plugins()
        .put_plugin_component(&component)
        .await
        .unwrap();
    store
        .plugins()
        .put_plugin_component(&component)
        .await
        .unwrap(); // idempotent
    assert_eq!(
        store.plugins().plugin_component("d1").await.unwrap(),
        Some(component.clone())
    );
    assert_eq!(
        store.plugins().plugin_component("nope").await.unwrap(),
        None
    );

    let install = |name: &str, position: i64| PluginInstall {
        tenant: a,
        name: name.into(),
        digest: "d1".into(),
        version: "0.1.0".into(),
        kind: "enricher".into(),
        enabled: true,
        position,
        config_json: "{}".into(),
        grants_json: "{}".into(),
        consecutive_failures: 0,
        disabled_reason: None,
        installed_at_ms: NOW,
        updated_at_ms: NOW,
    };
    store
        .plugins()
        .save_plugin_install(&install("zeta", 1))
        .await
        .unwrap();
    store
        .plugins()
        .save_plugin_install(&install("alpha", 2))
        .await
        .unwrap();
    let mut dangling = install("ghost", 3);
    dangling.digest = "missing".into();
    assert!(matches!(
        store.plugins().save_plugin_install(&dangling).await,
        Err(StorageError::NotFound(_))
    ));
    let names: Vec<String> = store
        .plugins()
        .plugin_installs(a)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["zeta", "alpha"], "running order is by position");
    assert!(
        store.plugins().plugin_installs(b).await.unwrap().is_empty(),
        "tenant B sees nothing"
    );

    store
        .plugins()
        .record_plugin_health(a, "zeta", 3, None, NOW + 1)
        .await
        .unwrap();
    store
        .plugins()
        .record_plugin_health(
            a,
            "alpha",
            5,
            Some("5 failures in a row: deadline"),
            NOW + 2,
        )
        .await
        .unwrap();
    store
        .plugins()
        .record_plugin_health(b, "zeta", 9, Some("other tenant"), NOW)
        .await
        .unwrap();
    let installs = store.plugins().plugin_installs(a).await.unwrap();
    assert_eq!(
        (installs[0].consecutive_failures, installs[0].enabled),
        (3, true)
    );
    assert_eq!(
        (installs[1].consecutive_failures, installs[1].enabled),
        (5, false)
    );
    assert_eq!(
        installs[1].disabled_reason.as_deref(),
        Some("5 failures in a row: deadline")
    );

    store
        .plugins()
        .apply_plugin_kv(
            a,
            "zeta",
            &[
                ("k1".into(), Some(b"v1".to_vec())),
                ("k2".into(), Some(vec![0, 1])),
            ],
        )
        .await
        .unwrap();
    store
        .plugins()
        .apply_plugin_kv(
            a,
            "zeta",
            &[("k1".into(), Some(b"v1b".to_vec())), ("k2".into(), None)],
        )
        .await
        .unwrap();
    let kv = store.plugins().plugin_kv(a, "zeta").await.unwrap();
    assert_eq!(
        kv.into_iter().collect::<Vec<_>>(),
        vec![("k1".to_string(), b"v1b".to_vec())]
    );
    assert!(
        store
            .plugins()
            .plugin_kv(b, "zeta")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .plugins()
            .plugin_kv(a, "alpha")
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        !store
            .plugins()
            .delete_plugin_install(b, "zeta")
            .await
            .unwrap(),
        "B cannot delete A's"
    );
    assert!(
        store
            .plugins()
            .delete_plugin_install(a, "zeta")
            .await
            .unwrap()
    );
    store.plugins().delete_plugin_kv(a, "zeta").await.unwrap();
    assert!(
        store
            .plugins()
            .plugin_kv(a, "zeta")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.plugins().plugin_installs(a).await.unwrap().len(), 1);
}

async fn marketplace_keys_packages_and_versions(store: Arc<dyn Storage>) {
    use hub_storage::{NewVersion, PublisherKey};
    let m = store.market();
    let key = |id: &str, publisher: &str, secret: Option<&str>| PublisherKey {
        key_id: id.into(),
        publisher: publisher.into(),
        user_id: None,
        public_key: format!("ed25519:{id}"),
        secret_key: secret.map(Into::into),
        created_at_ms: NOW,
        revoked_at_ms: None,
    };
    m.add_publisher_key(&key("k1", "hub", Some("s1")))
        .await
        .unwrap();
    assert!(matches!(
        m.add_publisher_key(&key("k1", "hub", None)).await,
        Err(StorageError::Conflict(_))
    ));
    // One kept secret per publisher: a second replica's key loses the race.
    assert!(matches!(
        m.add_publisher_key(&key("k2", "hub", Some("s2"))).await,
        Err(StorageError::Conflict(_))
    ));
    m.add_publisher_key(&key("k3", "ann@example.com", None))
        .await
        .unwrap();
    assert_eq!(m.own_key("hub").await.unwrap().unwrap().key_id, "k1");
    assert_eq!(m.own_key("ann@example.com").await.unwrap(), None);
    assert_eq!(m.publisher_keys(None).await.unwrap().len(), 2);
    assert!(m.revoke_publisher_key("k3", NOW + 1).await.unwrap());
    assert!(!m.revoke_publisher_key("k3", NOW + 2).await.unwrap());
    assert_eq!(
        m.publisher_key("k3").await.unwrap().unwrap().revoked_at_ms,
        Some(NOW + 1)
    );

    let component = |digest: &str| PluginComponent {
        digest: digest.into(),
        name: "tagger".into(),
        version: "0.1.0".into(),
        kind: "enricher".into(),
        manifest: "name = \"tagger\"".into(),
        component: vec![0, 97, 115, 109],
        created_at_ms: NOW,
    };
    let version = |v: &str, publisher: &str, kind: &str, icon: Option<Vec<u8>>| NewVersion {
        name: "tagger".into(),
        version: v.into(),
        kind: kind.into(),
        description: format!("Tags calls ({v})"),
        publisher: publisher.into(),
        digest: format!("pkg-{v}"),
        key_id: "k1".into(),
        readme: "# Tagger".into(),
        icon,
        package: vec![1, 2, 3],
        published_by: "hub".into(),
        published_at_ms: NOW,
    };
    m.publish(&version("0.1.0", "hub", "enricher", None), &component("c1"))
        .await
        .unwrap();
    m.publish(
        &version("0.2.0", "hub", "enricher", Some(vec![137, 80])),
        &component("c2"),
    )
    .await
    .unwrap();
    // Versions are immutable, names belong to their publisher, kinds do not change: nothing of
    // a refused publication is stored.
    for (v, publisher, kind, digest) in [
        ("0.2.0", "hub", "enricher", "c3"),
        ("0.3.0", "mallory", "enricher", "c4"),
        ("0.3.0", "hub", "detector", "c5"),
    ] {
        assert!(matches!(
            m.publish(&version(v, publisher, kind, None), &component(digest))
                .await,
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(
            store.plugins().plugin_component(digest).await.unwrap(),
            None
        );
    }
    let p = m.package("tagger").await.unwrap().unwrap();
    assert_eq!(
        (p.publisher.as_str(), p.description.as_str()),
        ("hub", "Tags calls (0.2.0)")
    );
    assert_eq!((p.downloads, p.installs), (0, 0));
    let mut versions = m.versions("tagger").await.unwrap();
    versions.sort_by(|a, b| a.version.cmp(&b.version));
    assert_eq!(versions.len(), 2);
    assert_eq!((versions[0].has_icon, versions[1].has_icon), (false, true));
    assert_eq!(versions[1].plugin_digest, "c2");
    assert_eq!(
        m.version("tagger", "0.2.0").await.unwrap().as_ref(),
        Some(&versions[1])
    );
    assert_eq!(m.version("tagger", "9.9.9").await.unwrap(), None);
    assert_eq!(
        m.icon("tagger", "0.2.0").await.unwrap(),
        Some(vec![137, 80])
    );
    assert_eq!(m.icon("tagger", "0.1.0").await.unwrap(), None);
    assert_eq!(
        m.package_file("tagger", "0.1.0", true).await.unwrap(),
        Some(vec![1, 2, 3])
    );
    assert_eq!(m.package_file("tagger", "9.9.9", true).await.unwrap(), None);
    assert_eq!(m.package("tagger").await.unwrap().unwrap().downloads, 1);

    // Search by text (case-insensitive, wildcards literal) and kind.
    let names =
        |ps: Vec<hub_storage::PackageRecord>| ps.into_iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(
        names(m.packages(Some("TAG"), None).await.unwrap()),
        ["tagger"]
    );
    assert_eq!(
        names(
            m.packages(Some("calls (0.2"), Some("enricher"))
                .await
                .unwrap()
        ),
        ["tagger"]
    );
    assert!(m.packages(Some("%"), None).await.unwrap().is_empty());
    assert!(m.packages(None, Some("detector")).await.unwrap().is_empty());

    // Installs count.
    let t = tenant(&store, "market-t").await;
    store
        .plugins()
        .save_plugin_install(&PluginInstall {
            tenant: t,
            name: "tagger".into(),
            digest: "c2".into(),
            version: "0.2.0".into(),
            kind: "enricher".into(),
            enabled: true,
            position: 1,
            config_json: "{}".into(),
            grants_json: "{}".into(),
            consecutive_failures: 0,
            disabled_reason: None,
            installed_at_ms: NOW,
            updated_at_ms: NOW,
        })
        .await
        .unwrap();
    assert_eq!(m.package("tagger").await.unwrap().unwrap().installs, 1);

    // Yank and restore.
    assert!(
        m.set_yanked("tagger", "0.1.0", Some(("broken", NOW + 5)))
            .await
            .unwrap()
    );
    let v = m
        .versions("tagger")
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.version == "0.1.0")
        .unwrap();
    assert_eq!(
        (v.yanked_at_ms, v.yank_reason.as_deref()),
        (Some(NOW + 5), Some("broken"))
    );
    assert!(m.set_yanked("tagger", "0.1.0", None).await.unwrap());
    assert!(!m.set_yanked("tagger", "7.0.0", None).await.unwrap());
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

/// Keeps raw events for `keep` (at NOW), then checks that of `events` (in tenant `t`) exactly those
/// not older than that are still found by id.
async fn retention_forgets_expired_ids<'a>(
    store: &Arc<dyn Storage>,
    t: TenantId,
    keep: i64,
    events: impl IntoIterator<Item = &'a EventRecord>,
) {
    let policy = RetentionPolicy {
        raw_ms: Some(keep),
        ..Default::default()
    };
    store.enforce_retention(&policy, NOW).await.unwrap();
    for e in events {
        let got = store.get_event(t, &e.event_id).await.unwrap();
        assert_eq!(
            got.is_some(),
            e.ts_ms >= NOW - keep,
            "{} at {}",
            e.event_id,
            e.ts_ms
        );
    }
}

/// SQLite finds events by id through an index of its own (`hub-ids.db`) that holds the newest ids
/// in memory and writes them in batches. Every stored event must be found by id: fresh ones (in
/// memory), after a clean restart (written at close), after a crash (read back from the events
/// table), after the file is lost (rebuilt), and after retention (gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_finds_every_event_by_id_across_restarts_crashes_and_loss() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let open = || async {
        let store = hub_storage::open(&url, &Default::default()).await.unwrap();
        store.migrate().await.unwrap();
        store.prepare_partitions(NOW).await.unwrap();
        store
    };

    let store = open().await;
    let t = tenant(&store, "acme").await;
    let u = tenant(&store, "umbrella").await;
    let mut first = events(300, 71, 3 * HOUR_MS);
    // Years apart: a lookup probes only the hours that have ids, not every hour between.
    first[7].ts_ms = NOW - 3 * 365 * DAY_MS;
    write(&store, t, first.clone()).await;
    // The same id at another time is another event; the newer one answers.
    let mut later = first[0].clone();
    later.ts_ms += 1;
    later.app = Some("later".into());
    write(&store, t, vec![later.clone()]).await;
    found(&store, t, &first[1..]).await;
    found(&store, t, [&later]).await;
    not_found(&store, u, &first[1].event_id).await;
    store.close().await;
    drop(store);

    // Clean restart: read from the file.
    let store = open().await;
    found(&store, t, [&later, &first[5]]).await;
    // A crash: these ids were only in memory when the process went.
    let second = events(200, 72, HOUR_MS);
    write(&store, t, second.clone()).await;
    drop(store);
    // A tool opening the file after the crash looks up at once (no start-up step first).
    let tool = hub_storage::open(&url, &Default::default()).await.unwrap();
    found(&tool, t, &second).await;
    tool.close().await;
    drop(tool);
    let store = open().await;
    found(&store, t, &second).await;
    found(&store, t, &first[1..]).await;
    store.close().await;
    drop(store);

    // The file lost: rebuilt from the events at the next start.
    std::fs::remove_file(dir.path().join("hub-ids.db")).unwrap();
    let store = open().await;
    found(&store, t, &second).await;
    found(&store, t, [&later]).await;
    not_found(&store, t, "no-such-id").await;

    // Retention: events past the raw horizon are gone, by id too; the rest stay found.
    retention_forgets_expired_ids(&store, t, HOUR_MS, second.iter().chain(&first[1..])).await;
}

/// PostgreSQL finds events by id through blocks of ids with a Bloom filter each
/// (`event_id_blocks`), written with the events. Every stored event must be found by id, in
/// blocks of any fill, in the right tenant; the blocks of a database from before them are
/// backfilled once at start; retention removes the blocks of expired events and no others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_finds_every_event_by_id_in_blocks_and_after_backfill() {
    let url = hub_storage::testing::scratch_postgres_database().await;
    let store = hub_storage::open(&url, &Default::default()).await.unwrap();
    store.migrate().await.unwrap();
    store.prepare_partitions(NOW).await.unwrap();
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    let blocks = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM event_id_blocks")
            .fetch_one(&db)
            .await
            .unwrap()
    };

    let t = tenant(&store, "acme").await;
    let u = tenant(&store, "umbrella").await;
    // 4,200 events: two full blocks of 2,048 and one partial; one outside every partition.
    let mut first = events(4200, 81, 3 * HOUR_MS);
    first[9].ts_ms = NOW - 3 * 365 * DAY_MS;
    write(&store, t, first.clone()).await;
    assert_eq!(blocks().await, 3);
    // A resend adds no block; the same id at another time is another event, and the newer wins.
    write(&store, t, first[..100].to_vec()).await;
    assert_eq!(blocks().await, 3);
    let mut later = first[0].clone();
    later.ts_ms += 1;
    later.app = Some("later".into());
    write(&store, t, vec![later.clone()]).await;
    // The same ids in another tenant are that tenant's own events.
    let mut theirs = first[1..4].to_vec();
    for e in &mut theirs {
        e.app = Some("umbrella".into());
    }
    write(&store, u, theirs.clone()).await;
    found(&store, t, &first[1..]).await;
    found(&store, t, [&later]).await;
    found(&store, u, &theirs).await;
    not_found(&store, u, &first[5].event_id).await;
    not_found(&store, t, "no-such-id").await;

    // A database from before the blocks: the next start gives every event its block, once.
    sqlx::query("DELETE FROM event_id_blocks")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM hub_meta WHERE key = 'event_id_blocks_backfilled'")
        .execute(&db)
        .await
        .unwrap();
    not_found(&store, t, &first[1].event_id).await;
    store.migrate().await.unwrap();
    let after_backfill = blocks().await;
    assert!(after_backfill >= 4, "{after_backfill} blocks");
    store.migrate().await.unwrap();
    assert_eq!(blocks().await, after_backfill);
    found(&store, t, first[1..].iter().step_by(7)).await;
    found(&store, t, [&later]).await;
    found(&store, u, &theirs).await;

    // Retention: events past the raw horizon are gone, by id too, with the blocks that held only
    // them; the rest stay found.
    let keep = HOUR_MS;
    let sample = first[1..].iter().step_by(7).chain([&later, &first[9]]);
    retention_forgets_expired_ids(&store, t, keep, sample).await;
    let stale: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM event_id_blocks WHERE ts_max < $1")
        .bind(NOW - keep)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stale, 0);
    db.close().await;
    store.close().await;
}
