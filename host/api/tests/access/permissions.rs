//! The permission matrix through the router, with real SQLite storage: every route for every
//! role, roles that cannot be raised past one's own, the last owner, and another tenant's people,
//! keys and audit kept out of sight.

use axum::http::{Method, StatusCode};
use hub_api::credentials::api_keys::generate_api_key;
use hub_core::{ApiKeyScope, Role};
use serde_json::{Value, json};

use crate::common::people::{PASSWORD, hub, message};

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
        (Method::GET, "/v1/alerts", None, Some(Role::Viewer)),
        (
            Method::GET,
            "/v1/alerts/deliveries",
            None,
            Some(Role::Viewer),
        ),
        (Method::GET, "/v1/alerts/rules", None, Some(Role::Viewer)),
        (
            Method::GET,
            "/v1/alerts/rules/999",
            None,
            Some(Role::Viewer),
        ),
        (
            Method::POST,
            "/v1/alerts/rules",
            Some(
                json!({"name": "x", "condition": {"kind": "threshold", "metric": "requests", "value": 1}}),
            ),
            Some(Role::Analyst),
        ),
        (
            Method::POST,
            "/v1/alerts/rules/preview",
            Some(
                json!({"name": "x", "condition": {"kind": "threshold", "metric": "requests", "value": 1}}),
            ),
            Some(Role::Analyst),
        ),
        (Method::GET, "/v1/costs/daily", None, Some(Role::Viewer)),
        (
            Method::PUT,
            "/v1/alerts/rules/999",
            Some(json!({"name": "x", "condition": {"kind": "anomaly"}})),
            Some(Role::Analyst),
        ),
        (
            Method::DELETE,
            "/v1/alerts/rules/999",
            None,
            Some(Role::Analyst),
        ),
        (
            Method::POST,
            "/v1/alerts/999/acknowledge",
            None,
            Some(Role::Analyst),
        ),
        (Method::GET, "/v1/silences", None, Some(Role::Viewer)),
        (
            Method::POST,
            "/v1/silences",
            Some(
                json!({"matchers": [{"name": "model", "value": "x"}], "duration": "1h", "comment": "c"}),
            ),
            Some(Role::Analyst),
        ),
        (
            Method::DELETE,
            "/v1/silences/999",
            None,
            Some(Role::Analyst),
        ),
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
