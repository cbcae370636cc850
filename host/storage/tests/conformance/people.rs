//! Users, memberships, sessions, signing keys, the audit log and saved views; a tenant's own SSO
//! rules; invitations; failed sign-ins.

use super::*;

pub(crate) async fn users_memberships_sessions_and_audit(store: Arc<dyn Storage>) {
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

pub(crate) async fn tenants_keep_their_own_sso_rules(store: Arc<dyn Storage>) {
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

pub(crate) async fn invitations_grant_nothing_until_accepted_once(store: Arc<dyn Storage>) {
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

pub(crate) async fn failed_sign_ins_are_counted_per_key_and_forgotten(store: Arc<dyn Storage>) {
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
