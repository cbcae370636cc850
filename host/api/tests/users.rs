//! People through the router, with real SQLite storage: login, lockout, sessions (refresh
//! rotation and reuse detection, logout, cookies and CSRF), bad tokens, the permission matrix for
//! every role, role escalation, tenant isolation and the audit log.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use hub_api::credentials::api_keys::generate_api_key;
use hub_core::{ApiKeyScope, Role};
use serde_json::{Value, json};

use common::people::{PASSWORD, hub, message};

#[tokio::test]
async fn login_me_and_a_first_password_change() {
    let hub = hub().await;
    hub.user("ada@example.com", "acme", Role::Owner, true).await;
    let r = hub.login("ADA@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["tenant"], "acme");
    assert_eq!(r.body["role"], "owner");
    assert_eq!(r.body["must_change_password"], true);
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let token = r.body["access_token"].as_str().unwrap().to_string();
    // Until the password changes, only /v1/auth works.
    let r = hub
        .call(Method::GET, "/v1/metrics/summary", &token, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(message(&r).contains("change your password first"));
    let me = hub.call(Method::GET, "/v1/auth/me", &token, None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["kind"], "user");
    assert_eq!(
        me.body["memberships"],
        json!([{"tenant": "acme", "role": "owner"}])
    );
    for (body, field) in [
        (
            json!({"current_password": "wrong wrong wrong", "new_password": "another long password"}),
            "current_password",
        ),
        (
            json!({"current_password": PASSWORD, "new_password": "short"}),
            "new_password",
        ),
        (
            json!({"current_password": PASSWORD, "new_password": PASSWORD}),
            "new_password",
        ),
    ] {
        let r = hub
            .call(Method::POST, "/v1/auth/password", &token, Some(body))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.body["error"]["parameter"], field);
    }
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/password",
            &token,
            Some(json!({"current_password": PASSWORD, "new_password": "another long password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["must_change_password"], false);
    let fresh = r.body["access_token"].as_str().unwrap();
    assert_eq!(
        hub.call(Method::GET, "/v1/metrics/summary", fresh, None)
            .await
            .status,
        StatusCode::OK
    );
    // The old session ended with the change.
    let r = hub.call(Method::GET, "/v1/auth/me", &token, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(message(&r), "the access token's session was revoked");
    assert_eq!(
        hub.login("ada@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        hub.login("ada@example.com", "another long password")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_login_input_is_400_and_every_failure_is_audited() {
    let hub = hub().await;
    hub.user("bob@example.com", "acme", Role::Viewer, false)
        .await;
    let r = hub.login("nobody@example.com", PASSWORD).await;
    assert_eq!(
        (r.status, message(&r).as_str()),
        (StatusCode::UNAUTHORIZED, "wrong email or password")
    );
    for _ in 0..5 {
        let r = hub.login("bob@example.com", "not the password").await;
        assert_eq!(
            (r.status, message(&r).as_str()),
            (StatusCode::UNAUTHORIZED, "wrong email or password"),
            "the same answer as an unknown email"
        );
    }
    for (body, status) in [
        (
            json!({"email": "x", "password": PASSWORD}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"email": "a@b.c", "password": "p".repeat(300)}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"email": "a@b.c"}), StatusCode::BAD_REQUEST),
        (
            json!({"email": "a@b.c", "password": "x", "admin": true}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = hub
            .call(Method::POST, "/v1/auth/login", "", Some(body.clone()))
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
    }
    // The audit log of the deployment saw every failure.
    let failures = hub
        .storage
        .access()
        .list_audit(
            None,
            &hub_storage::AuditFilter {
                action_prefix: Some("auth.login_failed".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(failures.len(), 6);
    // Bob's five are in his tenant's log too, where its admins see them.
    let acme = hub
        .storage
        .tenants()
        .tenant_by_name("acme")
        .await
        .unwrap()
        .unwrap();
    let in_acme = hub
        .storage
        .access()
        .list_audit(
            Some(acme.id),
            &hub_storage::AuditFilter {
                action_prefix: Some("auth.login_failed".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(in_acme.len(), 5);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replay_ends_the_session() {
    let hub = hub().await;
    hub.user("cy@example.com", "acme", Role::Analyst, false)
        .await;
    let first = hub.login("cy@example.com", PASSWORD).await.body;
    let refresh1 = first["refresh_token"].as_str().unwrap();
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/refresh",
            "",
            Some(json!({"refresh_token": refresh1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let access2 = r.body["access_token"].as_str().unwrap().to_string();
    let refresh2 = r.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(refresh2, refresh1);
    assert_eq!(
        hub.call(Method::GET, "/v1/auth/me", &access2, None)
            .await
            .status,
        StatusCode::OK
    );
    // Replaying the used token revokes the family: the new tokens die with it.
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/refresh",
            "",
            Some(json!({"refresh_token": refresh1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(message(&r).contains("already used; the session is revoked"));
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/refresh",
            "",
            Some(json!({"refresh_token": refresh2})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        hub.call(Method::GET, "/v1/auth/me", &access2, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/refresh",
            "",
            Some(json!({"refresh_token": "hrt_nope"})),
        )
        .await;
    assert_eq!(
        (r.status, message(&r).as_str()),
        (StatusCode::UNAUTHORIZED, "invalid refresh token")
    );

    // Logout ends the session at once.
    let s = hub.login("cy@example.com", PASSWORD).await.body;
    let token = s["access_token"].as_str().unwrap();
    let r = hub.call(Method::POST, "/v1/auth/logout", token, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        r.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("hub_access=;"))
    );
    assert_eq!(
        hub.call(Method::GET, "/v1/auth/me", token, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/refresh",
            "",
            Some(json!({"refresh_token": s["refresh_token"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // A member removed from the tenant cannot refresh into it.
    let s = hub.login("cy@example.com", PASSWORD).await.body;
    let acme = hub
        .storage
        .tenants()
        .tenant_by_name("acme")
        .await
        .unwrap()
        .unwrap();
    let cy = hub
        .storage
        .access()
        .user_by_email("cy@example.com")
        .await
        .unwrap()
        .unwrap();
    hub.storage
        .access()
        .set_membership(cy.id, acme.id, None, 0)
        .await
        .unwrap();
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/refresh",
            "",
            Some(json!({"refresh_token": s["refresh_token"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(message(&r).contains("no longer a member"));
}

/// Signs `claims` with the hub's current key (or `secret`), as an attacker or a clock would.
fn forge(kid: &str, secret: &[u8], claims: &Value) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap()
}

#[tokio::test]
async fn bad_access_tokens_get_401_with_a_reason() {
    let hub = hub().await;
    hub.user("dee@example.com", "acme", Role::Owner, false)
        .await;
    let good = hub.token("dee@example.com").await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = good.split('.').collect();
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    let key = &hub.storage.access().signing_keys().await.unwrap()[0];
    let secret = base64::engine::general_purpose::STANDARD
        .decode(&key.secret)
        .unwrap();
    let now = hub_core::time::now_ms() / 1000;
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        forge(&key.kid, &secret, &c)
    };
    // Sanity: a re-signed copy of the real claims works, so each case below fails for its reason.
    assert_eq!(
        hub.call(
            Method::GET,
            "/v1/auth/me",
            &forge(&key.kid, &secret, &claims),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let cases = [
        (
            none,
            "the access token uses an algorithm this hub does not accept",
        ),
        (
            forge(&key.kid, b"not the key", &claims),
            "the access token's signature is invalid",
        ),
        (
            forge("unknown-kid", &secret, &claims),
            "the access token's signature is invalid",
        ),
        (
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                &parts[2][..parts[2].len() - 2]
            ),
            "the access token's signature is invalid",
        ),
        (
            with("aud", json!("someone-else")),
            "the access token was issued for another audience or issuer",
        ),
        (
            with("iss", json!("evil")),
            "the access token was issued for another audience or issuer",
        ),
        (with("exp", json!(now - 60)), "the access token has expired"),
        (
            with("nbf", json!(now + 600)),
            "the access token is not valid yet",
        ),
    ];
    for (token, reason) in cases {
        let r = hub.call(Method::GET, "/v1/auth/me", &token, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{reason}");
        assert_eq!(message(&r), reason);
    }
    // Malformed or oversized credentials are 400.
    for token in ["a.b.c".to_string(), "garbage".to_string(), "x".repeat(5000)] {
        let r = hub.call(Method::GET, "/v1/auth/me", &token, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", &token[..5]);
    }
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512);
    h.kid = Some(key.kid.clone());
    let hs512 = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap();
    let r = hub.call(Method::GET, "/v1/auth/me", &hs512, None).await;
    assert_eq!(
        message(&r),
        "the access token uses an algorithm this hub does not accept"
    );
    // A role claim raised by hand fails the signature, so a viewer cannot make itself owner.
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(
            serde_json::to_vec(&{
                let mut c = claims.clone();
                c["role"] = json!("owner");
                c
            })
            .unwrap()
        ),
        parts[2]
    );
    assert_eq!(
        hub.call(Method::GET, "/v1/auth/me", &forged, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn browser_cookies_need_the_csrf_header_to_change_anything() {
    let hub = hub().await;
    hub.user("eve@example.com", "acme", Role::Admin, false)
        .await;
    let r = hub.login("eve@example.com", PASSWORD).await;
    let cookies: Vec<String> = r
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().to_string())
        .collect();
    let access = cookies
        .iter()
        .find(|c| c.starts_with("hub_access="))
        .unwrap();
    assert!(
        access.contains("HttpOnly") && access.contains("SameSite=Strict"),
        "{access}"
    );
    let csrf_cookie = cookies.iter().find(|c| c.starts_with("hub_csrf=")).unwrap();
    assert!(!csrf_cookie.contains("HttpOnly"), "the UI reads it");
    let jar: String = cookies
        .iter()
        .map(|c| c.split(';').next().unwrap())
        .collect::<Vec<_>>()
        .join("; ");
    let csrf = csrf_cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("hub_csrf=")
        .to_string();
    let with_cookies = |method: Method, uri: &str, csrf: Option<&str>| {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::COOKIE, jar.clone());
        if let Some(c) = csrf {
            b = b.header("x-csrf-token", c);
        }
        b.body(Body::empty()).unwrap()
    };
    assert_eq!(
        hub.send(with_cookies(Method::GET, "/v1/auth/me", None))
            .await
            .status,
        StatusCode::OK
    );
    let r = hub
        .send(with_cookies(Method::POST, "/v1/auth/logout", None))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(message(&r).contains("X-CSRF-Token"));
    assert_eq!(
        hub.send(with_cookies(Method::POST, "/v1/auth/logout", Some("wrong")))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // A planted hub_csrf cookie with a header to match does not pass: the token is the session's.
    let planted = jar.replace(&format!("hub_csrf={csrf}"), "hub_csrf=planted0123456789");
    assert_ne!(planted, jar);
    let forged = Request::builder()
        .method(Method::POST)
        .uri("/v1/auth/logout")
        .header(header::COOKIE, planted)
        .header("x-csrf-token", "planted0123456789")
        .body(Body::empty())
        .unwrap();
    assert_eq!(hub.send(forged).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        hub.send(with_cookies(Method::POST, "/v1/auth/logout", Some(&csrf)))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        hub.send(with_cookies(Method::GET, "/v1/auth/me", None))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

/// What each role may do, route by route: `true` where the role holds the route's right.
#[tokio::test]
async fn the_permission_matrix_holds_route_by_route() {
    let hub = hub().await;
    let mut tokens = Vec::new();
    for role in Role::ALL {
        let email = format!("{role}@example.com");
        hub.user(&email, "acme", role, false).await;
        tokens.push((role, hub.token(&email).await));
    }
    // (method, route, body, lowest role allowed; None: no role)
    let routes: Vec<(Method, &str, Option<Value>, Option<Role>)> = vec![
        (Method::POST, "/v1/events", Some(json!([])), None),
        (Method::GET, "/v1/metrics/summary", None, Some(Role::Viewer)),
        (
            Method::GET,
            "/v1/metrics/timeseries?metric=requests",
            None,
            Some(Role::Viewer),
        ),
        (Method::GET, "/v1/events", None, Some(Role::Analyst)),
        (Method::GET, "/v1/events/x", None, Some(Role::Analyst)),
        (Method::GET, "/v1/users", None, Some(Role::Analyst)),
        (
            Method::POST,
            "/v1/users",
            Some(json!({"email": "new@example.com", "role": "viewer"})),
            Some(Role::Admin),
        ),
        (
            Method::PUT,
            "/v1/users/999",
            Some(json!({"role": "viewer"})),
            Some(Role::Admin),
        ),
        (Method::DELETE, "/v1/users/999", None, Some(Role::Admin)),
        (
            Method::POST,
            "/v1/users/999/password-reset",
            None,
            Some(Role::Admin),
        ),
        (Method::GET, "/v1/invitations", None, Some(Role::Admin)),
        (
            Method::DELETE,
            "/v1/invitations/999",
            None,
            Some(Role::Admin),
        ),
        (Method::GET, "/v1/api-keys", None, Some(Role::Admin)),
        (
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "k", "scopes": ["query"]})),
            Some(Role::Admin),
        ),
        (Method::DELETE, "/v1/api-keys/999", None, Some(Role::Admin)),
        (
            Method::POST,
            "/v1/api-keys/999/rotate",
            None,
            Some(Role::Admin),
        ),
        (Method::GET, "/v1/audit", None, Some(Role::Admin)),
        (Method::GET, "/v1/auth/me", None, Some(Role::Viewer)),
        (Method::GET, "/v1/views", None, Some(Role::Viewer)),
        (
            Method::POST,
            "/v1/views",
            Some(json!({"name": "v", "query": {"route": "summary"}})),
            Some(Role::Analyst),
        ),
        (
            Method::PUT,
            "/v1/views/999",
            Some(json!({"name": "v", "query": {"route": "summary"}})),
            Some(Role::Analyst),
        ),
        (Method::DELETE, "/v1/views/999", None, Some(Role::Analyst)),
        // This hub runs no plugin host, so allowed calls answer 503; refused ones still 403.
        (Method::GET, "/v1/plugins", None, Some(Role::Analyst)),
        (Method::GET, "/v1/plugins/cost", None, Some(Role::Analyst)),
        (
            Method::PUT,
            "/v1/plugins",
            Some(json!({"plugins": []})),
            Some(Role::Admin),
        ),
        (
            Method::PUT,
            "/v1/plugins/cost",
            Some(json!({"enabled": true})),
            Some(Role::Admin),
        ),
        (Method::DELETE, "/v1/plugins/cost", None, Some(Role::Admin)),
        (Method::GET, "/v1/settings", None, Some(Role::Analyst)),
        (
            Method::GET,
            "/v1/settings/retention",
            None,
            Some(Role::Analyst),
        ),
        (
            Method::PUT,
            "/v1/settings/retention",
            Some(json!({})),
            Some(Role::Admin),
        ),
        (
            Method::GET,
            "/v1/settings/sso-rules",
            None,
            Some(Role::Analyst),
        ),
        (
            Method::PUT,
            "/v1/settings/sso-rules",
            Some(json!({})),
            Some(Role::Admin),
        ),
    ];
    for (method, uri, body, min) in &routes {
        for (role, token) in &tokens {
            let r = hub.call(method.clone(), uri, token, body.clone()).await;
            let allowed = min.is_some_and(|m| *role >= m);
            if allowed {
                assert_ne!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{role} {method} {uri}: {}",
                    r.body
                );
                assert!(
                    r.status.is_success()
                        || r.status == StatusCode::NOT_FOUND
                        || r.status == StatusCode::BAD_REQUEST
                        || (uri.starts_with("/v1/plugins")
                            && r.status == StatusCode::SERVICE_UNAVAILABLE),
                    "{role} {method} {uri}: {} {}",
                    r.status,
                    r.body
                );
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{role} {method} {uri}: {}",
                    r.body
                );
            }
        }
    }
    // Plugins need the plugin host; without one the read route still answers for its rights.
    let viewer = &tokens[0].1;
    let r = hub.call(Method::GET, "/v1/plugins", viewer, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        message(&r).contains(
            "your role 'viewer' cannot read configuration; that needs 'analyst' or higher"
        )
    );
}

#[tokio::test]
async fn roles_cannot_be_raised_past_ones_own_and_the_last_owner_stays() {
    let hub = hub().await;
    let owner = hub.user("o@example.com", "acme", Role::Owner, false).await;
    hub.user("a@example.com", "acme", Role::Admin, false).await;
    let v = hub.user("v@example.com", "acme", Role::Viewer, false).await;
    let admin = hub.token("a@example.com").await;
    let r = hub
        .call(
            Method::PUT,
            &format!("/v1/users/{v}"),
            &admin,
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(message(&r).contains("manage owners"));
    let r = hub
        .call(
            Method::POST,
            "/v1/users",
            &admin,
            Some(json!({"email": "x@example.com", "role": "owner"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = hub
        .call(
            Method::PUT,
            &format!("/v1/users/{owner}"),
            &admin,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "an admin cannot demote an owner"
    );
    let v_token = hub.token("v@example.com").await;
    assert_eq!(
        hub.call(Method::GET, "/v1/auth/me", &v_token, None)
            .await
            .body["role"],
        "viewer"
    );
    let r = hub
        .call(
            Method::PUT,
            &format!("/v1/users/{v}"),
            &admin,
            Some(json!({"role": "analyst"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["role"].as_str()),
        (StatusCode::OK, Some("analyst"))
    );
    // The old session carried the old role: it ends, the next sign-in has the new one.
    assert_eq!(
        hub.call(Method::GET, "/v1/auth/me", &v_token, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        hub.login("v@example.com", PASSWORD).await.body["role"],
        "analyst"
    );
    let r = hub
        .call(
            Method::PUT,
            &format!("/v1/users/{v}"),
            &admin,
            Some(json!({"role": "root"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("role"))
    );
    // Adding a new person is an invitation; redeemed with a password of their choosing.
    let r = hub
        .call(
            Method::POST,
            "/v1/users",
            &admin,
            Some(json!({"email": "New@Example.com", "role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["invitation"]["email"], "new@example.com");
    let code = r.body["code"].as_str().unwrap().to_string();
    let l = hub
        .call(
            Method::POST,
            "/v1/auth/invitations/redeem",
            "",
            Some(json!({"code": code, "password": "the new person's own"})),
        )
        .await;
    assert_eq!(
        (
            l.status,
            l.body["role"].as_str(),
            l.body["must_change_password"].as_bool()
        ),
        (StatusCode::OK, Some("viewer"), Some(false)),
        "{}",
        l.body
    );
    let r = hub
        .call(
            Method::POST,
            "/v1/users",
            &admin,
            Some(json!({"email": "new@example.com", "role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "already a member");
    // The owner is the last one: it cannot leave or be demoted, even by itself.
    let me = hub.token("o@example.com").await;
    let r = hub
        .call(
            Method::PUT,
            &format!("/v1/users/{owner}"),
            &me,
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(message(&r).contains("last owner"));
    assert_eq!(
        hub.call(Method::DELETE, &format!("/v1/users/{owner}"), &me, None)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // Reset: a one-time password, sessions ended.
    let r = hub
        .call(
            Method::POST,
            &format!("/v1/users/{v}/password-reset"),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        hub.login("v@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        hub.login(
            "v@example.com",
            r.body["one_time_password"].as_str().unwrap()
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        hub.call(Method::DELETE, &format!("/v1/users/{v}"), &admin, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        hub.login("v@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn another_tenants_people_keys_and_audit_are_invisible() {
    let hub = hub().await;
    hub.user("a@acme.com", "acme", Role::Owner, false).await;
    let theirs = hub.user("g@globex.com", "globex", Role::Owner, false).await;
    let globex = hub
        .storage
        .tenants()
        .tenant_by_name("globex")
        .await
        .unwrap()
        .unwrap();
    let (_, k) = generate_api_key("g", vec![ApiKeyScope::Ingest], None);
    let key = hub
        .storage
        .tenants()
        .create_api_key(globex.id, &k, 0)
        .await
        .unwrap();
    let g_token = hub.token("g@globex.com").await;
    let token = hub.token("a@acme.com").await;
    for (method, uri, body) in [
        (
            Method::PUT,
            format!("/v1/users/{theirs}"),
            Some(json!({"role": "viewer"})),
        ),
        (Method::DELETE, format!("/v1/users/{theirs}"), None),
        (
            Method::POST,
            format!("/v1/users/{theirs}/password-reset"),
            None,
        ),
        (Method::GET, format!("/v1/api-keys/{}", key.id), None),
        (Method::DELETE, format!("/v1/api-keys/{}", key.prefix), None),
        (
            Method::POST,
            format!("/v1/api-keys/{}/rotate", key.id),
            None,
        ),
        (Method::GET, "/v1/events/x".to_string(), None),
    ] {
        let r = hub.call(method.clone(), &uri, &token, body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {}",
            r.body
        );
    }
    let users = hub.call(Method::GET, "/v1/users", &token, None).await.body;
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
    // Logging in to a tenant one is not a member of is refused.
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/login",
            "",
            Some(json!({"email": "a@acme.com", "password": PASSWORD, "tenant": "globex"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Each tenant's audit log holds its own records only.
    let mine = hub.call(Method::GET, "/v1/audit", &token, None).await.body;
    let actors: Vec<&str> = mine["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["actor"].as_str().unwrap())
        .collect();
    assert!(
        !actors.is_empty() && actors.iter().all(|a| *a == "user:a@acme.com"),
        "{actors:?}"
    );
    let theirs = hub
        .call(Method::GET, "/v1/audit", &g_token, None)
        .await
        .body;
    assert!(
        theirs["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["actor"] == "user:g@globex.com")
    );
}

#[tokio::test]
async fn the_audit_log_records_changes_with_before_and_after_and_exports_ndjson() {
    let hub = hub().await;
    hub.user("o@example.com", "acme", Role::Owner, false).await;
    let v = hub.user("v@example.com", "acme", Role::Viewer, false).await;
    let token = hub.token("o@example.com").await;
    hub.call(
        Method::PUT,
        &format!("/v1/users/{v}"),
        &token,
        Some(json!({"role": "analyst"})),
    )
    .await;
    let created = hub
        .call(
            Method::POST,
            "/v1/api-keys",
            &token,
            Some(json!({"name": "ci", "scopes": ["ingest"]})),
        )
        .await;
    let prefix = created.body["api_key"]["prefix"]
        .as_str()
        .unwrap()
        .to_string();
    hub.call(
        Method::DELETE,
        &format!("/v1/api-keys/{prefix}"),
        &token,
        None,
    )
    .await;
    let r = hub.call(Method::GET, "/v1/audit", &token, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let actions: Vec<&str> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "api_key.revoke",
            "api_key.create",
            "member.role",
            "auth.login"
        ]
    );
    let role = &r.body["records"][2];
    assert_eq!(role["before"], json!({"role": "viewer"}));
    assert_eq!(role["after"], json!({"role": "analyst"}));
    assert_eq!(role["target"], "user:v@example.com");
    assert_eq!(r.body["records"][0]["target"], format!("key:{prefix}"));
    // Filters, paging and export.
    let r = hub
        .call(
            Method::GET,
            "/v1/audit?action=api_key.&limit=1",
            &token,
            None,
        )
        .await;
    assert_eq!(r.body["records"].as_array().unwrap().len(), 1);
    let next = r.body["next_cursor"].as_str().unwrap();
    let r = hub
        .call(
            Method::GET,
            &format!("/v1/audit?action=api_key.&limit=1&cursor={next}"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.body["records"][0]["action"], "api_key.create");
    assert!(r.body["next_cursor"].is_null());
    let r = hub
        .call(Method::GET, "/v1/audit?format=ndjson", &token, None)
        .await;
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/x-ndjson");
    let lines: Vec<Value> = r
        .body
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for (uri, field) in [
        ("/v1/audit?limit=0", "limit"),
        ("/v1/audit?from=yesterday", "from"),
        ("/v1/audit?format=csv", "format"),
        ("/v1/audit?cursor=x", "cursor"),
    ] {
        let r = hub.call(Method::GET, uri, &token, None).await;
        assert_eq!(
            (r.status, r.body["error"]["parameter"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{uri}"
        );
    }
}

/// For every route that takes an id, every role and every key scope of tenant acme gets 404 for
/// tenant globex's ids, or the same 403 it gets for acme's own ids when it lacks the right.
#[tokio::test]
async fn every_role_and_scope_gets_404_for_another_tenants_ids() {
    let hub = hub().await;
    let theirs_user = hub
        .user("g@globex.com", "globex", Role::Viewer, false)
        .await;
    let ours_user = hub.user("x@acme.com", "acme", Role::Viewer, false).await;
    let globex = hub
        .storage
        .tenants()
        .tenant_by_name("globex")
        .await
        .unwrap()
        .unwrap();
    let acme = hub
        .storage
        .tenants()
        .tenant_by_name("acme")
        .await
        .unwrap()
        .unwrap();
    let key_of = |t: hub_core::TenantId, scopes: Vec<ApiKeyScope>| {
        let storage = hub.storage.clone();
        async move {
            let (secret, k) = generate_api_key("k", scopes, None);
            (
                secret,
                storage.tenants().create_api_key(t, &k, 0).await.unwrap(),
            )
        }
    };
    let (g_ingest, g_key) = key_of(globex.id, vec![ApiKeyScope::Ingest]).await;
    let (_, a_key) = key_of(acme.id, vec![ApiKeyScope::Ingest]).await;
    let now = hub_core::time::to_rfc3339(hub_core::time::now_ms());
    for (key, id) in [(&g_ingest, "theirs-1")] {
        let r = hub
            .call(
                Method::POST,
                "/v1/events",
                key,
                Some(json!([{"event_id": id, "timestamp": now, "model": "m"}])),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }
    let mut principals: Vec<(String, String)> = Vec::new();
    for role in Role::ALL {
        let email = format!("{role}@acme.com");
        hub.user(&email, "acme", role, false).await;
        principals.push((format!("role {role}"), hub.token(&email).await));
    }
    for scope in ApiKeyScope::ALL {
        principals.push((format!("key {scope}"), key_of(acme.id, vec![scope]).await.0));
    }
    // (method, route with {} for the id, globex's id, acme's id, body)
    let routes: Vec<(Method, &str, String, String, Option<Value>)> = vec![
        (
            Method::GET,
            "/v1/events/{}",
            "theirs-1".into(),
            "ours-missing".into(),
            None,
        ),
        (
            Method::GET,
            "/v1/api-keys/{}",
            g_key.id.to_string(),
            a_key.id.to_string(),
            None,
        ),
        (
            Method::GET,
            "/v1/api-keys/{}",
            g_key.prefix.clone(),
            a_key.prefix.clone(),
            None,
        ),
        (
            Method::DELETE,
            "/v1/api-keys/{}",
            g_key.prefix.clone(),
            "hub_missing0".into(),
            None,
        ),
        (
            Method::POST,
            "/v1/api-keys/{}/rotate",
            g_key.id.to_string(),
            "999999".into(),
            None,
        ),
        (
            Method::PUT,
            "/v1/users/{}",
            theirs_user.to_string(),
            "999999".into(),
            Some(json!({"role": "viewer"})),
        ),
        (
            Method::DELETE,
            "/v1/users/{}",
            theirs_user.to_string(),
            "999999".into(),
            None,
        ),
        (
            Method::POST,
            "/v1/users/{}/password-reset",
            theirs_user.to_string(),
            "999999".into(),
            None,
        ),
    ];
    for (who, token) in &principals {
        for (method, route, theirs, ours, body) in &routes {
            let theirs_uri = route.replace("{}", theirs);
            let ours_uri = route.replace("{}", ours);
            let t = hub
                .call(method.clone(), &theirs_uri, token, body.clone())
                .await;
            let o = hub
                .call(method.clone(), &ours_uri, token, body.clone())
                .await;
            if o.status == StatusCode::FORBIDDEN {
                assert_eq!(
                    t.status,
                    StatusCode::FORBIDDEN,
                    "{who} {method} {theirs_uri}"
                );
                assert_eq!(
                    message(&t),
                    message(&o),
                    "the same refusal, whoever owns the id"
                );
            } else {
                assert_eq!(
                    t.status,
                    StatusCode::NOT_FOUND,
                    "{who} {method} {theirs_uri}: {}",
                    t.body
                );
            }
        }
    }
    // Nothing of globex changed, and acme's viewer is still a viewer.
    assert!(
        hub.storage
            .tenants()
            .list_api_keys(globex.id)
            .await
            .unwrap()[0]
            .revoked_at_ms
            .is_none()
    );
    assert_eq!(
        hub.storage.access().members(globex.id).await.unwrap()[0].1,
        Role::Viewer
    );
    assert!(
        hub.storage
            .access()
            .members(acme.id)
            .await
            .unwrap()
            .iter()
            .any(|(u, r)| u.id == ours_user && *r == Role::Viewer)
    );
}

#[tokio::test]
async fn operators_create_tenants_and_act_in_any_of_them() {
    let hub = hub().await;
    hub.user("member@acme.com", "acme", Role::Admin, false)
        .await;
    let op = hub.user("op@hub.local", "acme", Role::Viewer, false).await;
    hub.storage
        .access()
        .set_platform_rights(op, true, true)
        .await
        .unwrap();
    let op_token = hub.token("op@hub.local").await;
    let member = hub.token("member@acme.com").await;
    let me = hub
        .call(Method::GET, "/v1/auth/me", &op_token, None)
        .await
        .body;
    assert_eq!(
        (me["operator"].as_bool(), me["publisher"].as_bool()),
        (Some(true), Some(true))
    );
    let me = hub
        .call(Method::GET, "/v1/auth/me", &member, None)
        .await
        .body;
    assert_eq!(
        (me["operator"].as_bool(), me["publisher"].as_bool()),
        (Some(false), Some(false))
    );
    let r = hub
        .call(
            Method::POST,
            "/v1/tenants",
            &member,
            Some(json!({"name": "globex"})),
        )
        .await;
    assert_eq!(
        (r.status, message(&r).as_str()),
        (StatusCode::FORBIDDEN, "only operators create tenants")
    );
    for (name, field_error) in [("Bad Name", true), ("globex", false)] {
        let r = hub
            .call(
                Method::POST,
                "/v1/tenants",
                &op_token,
                Some(json!({"name": name})),
            )
            .await;
        if field_error {
            assert_eq!(r.body["error"]["parameter"], "name");
        } else {
            assert_eq!(
                (r.status, r.body["role"].as_str()),
                (StatusCode::CREATED, Some("owner"))
            );
        }
    }
    let r = hub
        .call(
            Method::POST,
            "/v1/tenants",
            &op_token,
            Some(json!({"name": "globex"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "exists");
    // The operator sees every tenant; the member only theirs.
    let names = |v: &Value| {
        v["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            &hub.call(Method::GET, "/v1/tenants", &op_token, None)
                .await
                .body
        ),
        ["acme", "globex"]
    );
    assert_eq!(
        names(
            &hub.call(Method::GET, "/v1/tenants", &member, None)
                .await
                .body
        ),
        ["acme"]
    );
    // An operator may sign in to a tenant without being a member, as owner; others may not.
    hub.storage
        .tenants()
        .create_tenant("initech", 0)
        .await
        .unwrap();
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/login",
            "",
            Some(json!({"email": "op@hub.local", "password": PASSWORD, "tenant": "initech"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["role"].as_str()),
        (StatusCode::OK, Some("owner"))
    );
    let r = hub
        .call(
            Method::POST,
            "/v1/auth/login",
            "",
            Some(json!({"email": "member@acme.com", "password": PASSWORD, "tenant": "initech"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The whole deployment's audit log is for operators only.
    let r = hub
        .call(Method::GET, "/v1/audit?all=true", &op_token, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let actions: Vec<&str> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"tenant.create") && actions.contains(&"auth.login"),
        "{actions:?}"
    );
    let r = hub
        .call(Method::GET, "/v1/audit?all=true", &member, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn analysts_keep_their_own_views_and_see_shared_ones() {
    let hub = hub().await;
    hub.user("ana@acme.com", "acme", Role::Analyst, false).await;
    hub.user("ben@acme.com", "acme", Role::Analyst, false).await;
    hub.user("vic@acme.com", "acme", Role::Viewer, false).await;
    hub.user("gus@globex.com", "globex", Role::Owner, false)
        .await;
    let ana = hub.token("ana@acme.com").await;
    let ben = hub.token("ben@acme.com").await;
    let vic = hub.token("vic@acme.com").await;
    let gus = hub.token("gus@globex.com").await;
    let view = |name: &str, shared: bool| json!({"name": name, "query": {"route": "timeseries", "params": {"metric": "cost_usd", "group_by": "model"}}, "shared": shared});
    let r = hub
        .call(
            Method::POST,
            "/v1/views",
            &ana,
            Some(view("cost by model", true)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        (r.body["mine"].as_bool(), r.body["owner"].as_str()),
        (Some(true), Some("ana@acme.com"))
    );
    assert_eq!(r.body["query"]["params"]["metric"], "cost_usd");
    let shared_id = r.body["id"].as_i64().unwrap();
    let r = hub
        .call(Method::POST, "/v1/views", &ana, Some(view("drafts", false)))
        .await;
    let private_id = r.body["id"].as_i64().unwrap();
    let r = hub
        .call(Method::POST, "/v1/views", &ana, Some(view("drafts", false)))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("name"))
    );
    // Ben sees the shared one, not the private one, and cannot change Ana's.
    let names = |v: &Value| {
        v["views"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&hub.call(Method::GET, "/v1/views", &ben, None).await.body),
        ["cost by model"]
    );
    assert_eq!(
        hub.call(
            Method::PUT,
            &format!("/v1/views/{shared_id}"),
            &ben,
            Some(view("mine", false))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        hub.call(
            Method::DELETE,
            &format!("/v1/views/{private_id}"),
            &ben,
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // A viewer reads shared views but saves none; another tenant sees nothing.
    assert_eq!(
        names(&hub.call(Method::GET, "/v1/views", &vic, None).await.body),
        ["cost by model"]
    );
    assert_eq!(
        hub.call(Method::POST, "/v1/views", &vic, Some(view("x", false)))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert!(names(&hub.call(Method::GET, "/v1/views", &gus, None).await.body).is_empty());
    assert_eq!(
        hub.call(
            Method::DELETE,
            &format!("/v1/views/{shared_id}"),
            &gus,
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // The owner changes and deletes; bad input names the field.
    let r = hub
        .call(
            Method::PUT,
            &format!("/v1/views/{private_id}"),
            &ana,
            Some(view("renamed", true)),
        )
        .await;
    assert_eq!(
        (
            r.status,
            r.body["name"].as_str(),
            r.body["shared"].as_bool()
        ),
        (StatusCode::OK, Some("renamed"), Some(true))
    );
    for (body, field) in [
        (json!({"name": "", "query": {"route": "summary"}}), "name"),
        (
            json!({"name": "x", "query": {"route": "sql"}}),
            "query.route",
        ),
        (
            json!({"name": "x", "query": {"route": "summary", "params": {"p": "x".repeat(5000)}}}),
            "query",
        ),
        (
            json!({"name": "x", "query": {"route": "summary", "params": {"p": 1}}}),
            "query.params.p",
        ),
    ] {
        let r = hub
            .call(Method::POST, "/v1/views", &ana, Some(body.clone()))
            .await;
        assert_eq!(
            (r.status, r.body["error"]["parameter"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}"
        );
    }
    assert_eq!(
        hub.call(
            Method::DELETE,
            &format!("/v1/views/{private_id}"),
            &ana,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    // Views belong to people: an API key is refused.
    let key = common::key_for(
        &hub.storage,
        "acme",
        vec![ApiKeyScope::Query, ApiKeyScope::Admin],
    )
    .await;
    let r = hub.call(Method::GET, "/v1/views", &key, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn admins_shorten_their_tenants_retention_within_the_operators() {
    let hub = hub().await;
    hub.user("o@example.com", "acme", Role::Owner, false).await;
    hub.user("x@example.com", "globex", Role::Owner, false)
        .await;
    let token = hub.token("o@example.com").await;
    const DAY: i64 = 86_400_000;
    let r = hub
        .call(Method::GET, "/v1/settings/retention", &token, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // ApiConfig::default() carries the default policy: raw 30 days, minute 14, hour 400, day forever.
    assert_eq!(r.body["operator"]["raw_ms"], 30 * DAY);
    assert_eq!(r.body["tenant"]["raw_ms"], Value::Null);
    assert_eq!(r.body["effective"], r.body["operator"]);

    // Each refusal names the field and says what would do; nothing is saved.
    for (body, field, says) in [
        (
            json!({"raw_ms": 60 * DAY}),
            "raw_ms",
            "60 days is longer than this hub keeps raw events (30 days)",
        ),
        (json!({"minute_ms": 1000}), "minute_ms", "at least an hour"),
        (json!({"raw_ms": "7d"}), "raw_ms", "invalid type"),
        (json!({"forever": true}), "forever", "unknown field"),
    ] {
        let r = hub
            .call(
                Method::PUT,
                "/v1/settings/retention",
                &token,
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        let text = r.body.to_string();
        assert!(
            text.contains(field) && text.contains(says),
            "{body}: {text}"
        );
    }
    let r = hub
        .call(Method::GET, "/v1/settings/retention", &token, None)
        .await;
    assert_eq!(r.body["tenant"]["raw_ms"], Value::Null, "nothing saved");

    // Seven days of raw events, and day rollups (forever for the operator) for two years.
    let r = hub
        .call(
            Method::PUT,
            "/v1/settings/retention",
            &token,
            Some(json!({"raw_ms": 7 * DAY, "day_ms": 730 * DAY})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["tenant"]["raw_ms"], 7 * DAY);
    assert_eq!(r.body["effective"]["raw_ms"], 7 * DAY);
    assert_eq!(
        r.body["effective"]["minute_ms"],
        14 * DAY,
        "as the operator's"
    );
    assert_eq!(r.body["effective"]["day_ms"], 730 * DAY);

    // Only this tenant's.
    let other = hub.token("x@example.com").await;
    let r = hub
        .call(Method::GET, "/v1/settings/retention", &other, None)
        .await;
    assert_eq!(r.body["tenant"]["raw_ms"], Value::Null);

    // Audited with before and after.
    let r = hub
        .call(Method::GET, "/v1/audit?action=settings.", &token, None)
        .await;
    let rec = &r.body["records"][0];
    assert_eq!(rec["action"], "settings.retention", "{}", r.body);
    assert_eq!(rec["after"]["raw_ms"], 7 * DAY, "{rec}");
    assert_eq!(rec["before"]["raw_ms"], Value::Null, "{rec}");
}

#[tokio::test]
async fn admins_keep_their_tenants_own_sso_rules() {
    let hub = hub().await;
    hub.user("o@example.com", "acme", Role::Owner, false).await;
    hub.user("x@example.com", "globex", Role::Owner, false)
        .await;
    let token = hub.token("o@example.com").await;
    let r = hub
        .call(Method::GET, "/v1/settings/sso-rules", &token, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"domain_roles": [], "group_roles": []}));

    let bad = json!({"domain_roles": [{"pattern": "acme.com", "role": "viewer"}],
                     "group_roles": [{"pattern": "ops", "role": "owner"}]});
    let r = hub
        .call(Method::PUT, "/v1/settings/sso-rules", &token, Some(bad))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body.to_string().contains("group_roles[0].role"),
        "{}",
        r.body
    );
    let r = hub
        .call(Method::GET, "/v1/settings/sso-rules", &token, None)
        .await;
    assert_eq!(r.body["domain_roles"], json!([]), "nothing saved");

    let good = json!({"domain_roles": [{"pattern": "ACME.com", "role": "viewer"}],
                      "group_roles": [{"pattern": "ops", "role": "admin"}]});
    let r = hub
        .call(Method::PUT, "/v1/settings/sso-rules", &token, Some(good))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["domain_roles"][0]["pattern"], "acme.com");
    let other = hub.token("x@example.com").await;
    let r = hub
        .call(Method::GET, "/v1/settings/sso-rules", &other, None)
        .await;
    assert_eq!(
        r.body["group_roles"],
        json!([]),
        "another tenant's are its own"
    );
    let r = hub
        .call(Method::GET, "/v1/audit?action=settings.sso", &token, None)
        .await;
    assert_eq!(
        r.body["records"][0]["after"]["group_roles"][0]["role"], "admin",
        "{}",
        r.body
    );
}
