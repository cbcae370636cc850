//! Accounts across tenants, as a hostile admin of one tenant would try them: adding another
//! tenant's person is an invitation that grants nothing until that person accepts, no tenant admin
//! sets or resets the credentials of an account other tenants share (or that holds a platform
//! right), a change of role in one tenant leaves the person's sessions elsewhere alone, and every
//! action on an account shows in the audit log of each tenant it belongs to.

mod common;

use axum::http::{Method, StatusCode};
use hub_core::Role;
use serde_json::{Value, json};

use common::people::{Hub, PASSWORD, hub, message};

async fn invite(hub: &Hub, token: &str, email: &str, role: &str) -> (StatusCode, Value) {
    let r = hub
        .call(
            Method::POST,
            "/v1/users",
            token,
            Some(json!({"email": email, "role": role})),
        )
        .await;
    (r.status, r.body)
}

async fn audit_actions(hub: &Hub, token: &str) -> Vec<(String, String)> {
    let r = hub
        .call(Method::GET, "/v1/audit?limit=500", token, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or("").to_string(),
                r["actor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn member_emails(hub: &Hub, token: &str) -> Vec<String> {
    let r = hub.call(Method::GET, "/v1/users", token, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_string())
        .collect()
}

/// The attack as it was found: tenant C's admin adds tenant B's owner by email, then resets the
/// password to sign in to B. Now the add is an invitation that says nothing about the account,
/// and nothing in C can touch it.
#[tokio::test]
async fn another_tenants_admin_cannot_take_over_an_account() {
    let hub = hub().await;
    let victim = hub
        .user("bob@globex.com", "globex", Role::Owner, false)
        .await;
    hub.user("mallory@evil.com", "evil", Role::Admin, false)
        .await;
    hub.user("owner@evil.com", "evil", Role::Owner, false).await;
    let mallory = hub.token("mallory@evil.com").await;

    // The answer to inviting an existing account and to inviting a stranger has the same shape,
    // and neither names an account, its id or its last sign-in.
    let (status, known) = invite(&hub, &mallory, "Bob@Globex.com", "admin").await;
    assert_eq!(status, StatusCode::CREATED, "{known}");
    let (status, unknown) = invite(&hub, &mallory, "nobody@nowhere.com", "admin").await;
    assert_eq!(status, StatusCode::CREATED, "{unknown}");
    let shape = |v: &Value| {
        let mut keys: Vec<String> = v["invitation"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.extend(v.as_object().unwrap().keys().cloned());
        keys.sort();
        keys
    };
    assert_eq!(shape(&known), shape(&unknown));
    for field in ["state", "role", "invited_by"] {
        assert_eq!(known["invitation"][field], unknown["invitation"][field]);
    }
    assert_eq!(known["invitation"]["state"], "pending");
    assert!(known.get("user").is_none() && known.get("one_time_password").is_none());

    // No access was granted: Bob is not a member of evil, so nothing there reaches him.
    assert_eq!(
        member_emails(&hub, &mallory).await,
        ["mallory@evil.com", "owner@evil.com"]
    );
    for (method, uri, body) in [
        (
            Method::POST,
            format!("/v1/users/{victim}/password-reset"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/users/{victim}"),
            Some(json!({"role": "viewer"})),
        ),
        (Method::DELETE, format!("/v1/users/{victim}"), None),
    ] {
        let r = hub.call(method.clone(), &uri, &mallory, body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {}",
            r.body
        );
    }
    // Holding the code, Mallory can neither redeem it without Bob's password nor accept it as
    // herself.
    let code = known["code"].as_str().unwrap();
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/invitations/redeem",
            "",
            Some(json!({"code": code, "password": "mallory's choice of password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/invitations/accept",
            &mallory,
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(message(&r).contains("another email"), "{}", r.body);
    // Bob's account is untouched and his tenant's log shows the failed attempt on it.
    let bob = hub.token("bob@globex.com").await;
    let me = hub.call(Method::GET, "/v1/auth/me", &bob, None).await.body;
    assert_eq!(me["memberships"].as_array().unwrap().len(), 1, "{me}");
    let globex_log = audit_actions(&hub, &bob).await;
    assert!(
        globex_log.contains(&("auth.login_failed".into(), "user:bob@globex.com".into())),
        "{globex_log:?}"
    );
    assert!(
        globex_log
            .iter()
            .all(|(_, actor)| !actor.contains("mallory")),
        "no action of Mallory's succeeded on Bob: {globex_log:?}"
    );
}

/// A person in two tenants: each joined by accepting; neither tenant's admin can reset the
/// password, a role change in one leaves the sessions in the other, and what an operator or the
/// person does to the account shows in both logs.
#[tokio::test]
async fn an_account_two_tenants_share_belongs_to_its_person() {
    let hub = hub().await;
    let bob_id = hub
        .user("bob@globex.com", "globex", Role::Admin, false)
        .await;
    hub.user("gina@globex.com", "globex", Role::Owner, false)
        .await;
    hub.user("ann@acme.com", "acme", Role::Owner, false).await;
    let ann = hub.token("ann@acme.com").await;
    let gina = hub.token("gina@globex.com").await;
    let bob = hub.token("bob@globex.com").await;

    let (_, inv) = invite(&hub, &ann, "bob@globex.com", "analyst").await;
    let code = inv["code"].as_str().unwrap().to_string();
    // The invited person, signed in, accepts, once.
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/invitations/accept",
            &bob,
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["tenant"].as_str(), r.body["role"].as_str()),
        (StatusCode::OK, Some("acme"), Some("analyst")),
        "{}",
        r.body
    );
    let bob_in_acme = r.body["access_token"].as_str().unwrap().to_string();
    let again = hub
        .call(
            Method::POST,
            "/v1/auth/invitations/accept",
            &bob,
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::NOT_FOUND,
        "used once: {}",
        again.body
    );
    let invitations = hub
        .call(Method::GET, "/v1/invitations", &ann, None)
        .await
        .body;
    assert_eq!(invitations["invitations"][0]["state"], "accepted");
    assert!(
        member_emails(&hub, &ann)
            .await
            .contains(&"bob@globex.com".to_string())
    );

    // Neither tenant's owner may reset the shared account's password.
    for token in [&ann, &gina] {
        let r = hub
            .call(
                Method::POST,
                &format!("/v1/users/{bob_id}/password-reset"),
                token,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert!(message(&r).contains("other tenants"), "{}", r.body);
    }
    assert_eq!(
        hub.login("bob@globex.com", PASSWORD).await.status,
        StatusCode::OK
    );

    // A role change in acme ends Bob's acme sessions only.
    let r = hub
        .call(
            Method::PUT,
            &format!("/v1/users/{bob_id}"),
            &ann,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        hub.call(Method::GET, "/v1/auth/me", &bob_in_acme, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        hub.call(Method::GET, "/v1/auth/me", &bob, None)
            .await
            .status,
        StatusCode::OK,
        "the globex session lives on"
    );

    // Bob changes his own password: both tenants' logs say so.
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/password",
            &bob,
            Some(json!({"current_password": PASSWORD, "new_password": "bob's brand new password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for token in [&ann, &gina] {
        let log = audit_actions(&hub, token).await;
        assert!(
            log.contains(&("auth.password".into(), "user:bob@globex.com".into())),
            "{log:?}"
        );
    }
    let acme_log = audit_actions(&hub, &ann).await;
    for action in ["member.invite", "member.join", "member.role"] {
        assert!(
            acme_log.iter().any(|(a, _)| a == action),
            "{action}: {acme_log:?}"
        );
    }

    // An operator may reset the shared account; both tenants' logs say who did.
    let root = hub
        .user("root@hub.example", "ops", Role::Owner, false)
        .await;
    hub.storage
        .access()
        .set_platform_rights(root, true, false)
        .await
        .unwrap();
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/login",
            "",
            Some(json!({"email": "root@hub.example", "password": PASSWORD, "tenant": "acme"})),
        )
        .await;
    let operator = r.body["access_token"].as_str().unwrap().to_string();
    let r = hub
        .call(
            Method::POST,
            &format!("/v1/users/{bob_id}/password-reset"),
            &operator,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for token in [&ann, &gina] {
        let log = audit_actions(&hub, token).await;
        assert!(
            log.contains(&(
                "member.password_reset".into(),
                "user:root@hub.example".into()
            )),
            "{log:?}"
        );
    }
}

#[tokio::test]
async fn platform_rights_and_roles_bound_who_invites_and_resets() {
    let hub = hub().await;
    let publ = hub.user("pub@acme.com", "acme", Role::Viewer, false).await;
    hub.storage
        .access()
        .set_platform_rights(publ, false, true)
        .await
        .unwrap();
    hub.user("admin@acme.com", "acme", Role::Admin, false).await;
    hub.user("ana@acme.com", "acme", Role::Analyst, false).await;
    let admin = hub.token("admin@acme.com").await;
    let analyst = hub.token("ana@acme.com").await;
    // A publisher's password is an operator's to reset, even in its only tenant.
    let r = hub
        .call(
            Method::POST,
            &format!("/v1/users/{publ}/password-reset"),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(message(&r).contains("platform right"), "{}", r.body);
    // Analysts invite nobody; admins invite up to admin.
    assert_eq!(
        invite(&hub, &analyst, "x@acme.com", "viewer").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        invite(&hub, &admin, "x@acme.com", "owner").await.0,
        StatusCode::FORBIDDEN
    );
    let r = hub
        .call(
            Method::POST,
            "/v1/users",
            &admin,
            Some(json!({"email": "not-an-email", "role": "viewer"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("email"))
    );
    // Inviting again replaces the pending code; revoking stops the new one.
    let (_, first) = invite(&hub, &admin, "x@acme.com", "viewer").await;
    let (_, second) = invite(&hub, &admin, "x@acme.com", "analyst").await;
    let redeem = |code: &str| json!({"code": code, "password": "a password for x at acme"});
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/invitations/redeem",
            "",
            Some(redeem(first["code"].as_str().unwrap())),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "replaced: {}", r.body);
    let id = second["invitation"]["id"].as_i64().unwrap();
    assert_eq!(
        hub.call(
            Method::DELETE,
            &format!("/v1/invitations/{id}"),
            &analyst,
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        hub.call(
            Method::DELETE,
            &format!("/v1/invitations/{id}"),
            &admin,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        hub.call(
            Method::DELETE,
            &format!("/v1/invitations/{id}"),
            &admin,
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/invitations/redeem",
            "",
            Some(redeem(second["code"].as_str().unwrap())),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "revoked: {}", r.body);
    // A fresh invitation, redeemed with too short a password, then properly.
    let (_, third) = invite(&hub, &admin, "x@acme.com", "analyst").await;
    let code = third["code"].as_str().unwrap();
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/invitations/redeem",
            "",
            Some(json!({"code": code, "password": "short"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("password"))
    );
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/invitations/redeem",
            "",
            Some(redeem(code)),
        )
        .await;
    assert_eq!(
        (r.status, r.body["tenant"].as_str(), r.body["role"].as_str()),
        (StatusCode::OK, Some("acme"), Some("analyst")),
        "{}",
        r.body
    );
    // Another tenant's invitation ids are 404 here.
    hub.user("o@other.com", "other", Role::Owner, false).await;
    let other = hub.token("o@other.com").await;
    let (_, theirs) = invite(&hub, &other, "y@other.com", "viewer").await;
    let tid = theirs["invitation"]["id"].as_i64().unwrap();
    assert_eq!(
        hub.call(
            Method::DELETE,
            &format!("/v1/invitations/{tid}"),
            &admin,
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let listed = hub
        .call(Method::GET, "/v1/invitations", &admin, None)
        .await
        .body;
    assert!(
        listed["invitations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["email"] == "x@acme.com"),
        "{listed}"
    );
}
