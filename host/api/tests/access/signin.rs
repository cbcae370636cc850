//! Signing in through the router, with real SQLite storage: login and a first password change,
//! bad input and its audit, refresh rotation and reuse detection, bad access tokens, and browser
//! cookies with their CSRF header.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use hub_core::Role;
use serde_json::{Value, json};

use crate::common::people::{PASSWORD, hub, message};

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
        .audit()
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
        .audit()
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
