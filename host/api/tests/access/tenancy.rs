//! Tenants kept apart through the router, with real SQLite storage: every role and scope gets a
//! 404 for another tenant's ids, and operators create tenants and act in any of them.

use axum::http::{Method, StatusCode};
use hub_api::credentials::api_keys::generate_api_key;
use hub_core::{ApiKeyScope, Role};
use serde_json::{Value, json};

use crate::common::people::{PASSWORD, hub, message};

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
