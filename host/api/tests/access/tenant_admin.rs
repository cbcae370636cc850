//! What a tenant's people keep for themselves, through the router with real SQLite storage: the
//! audit log (before and after, NDJSON export), saved views, retention within the operator's,
//! and the tenant's own single sign-on rules.

use axum::http::{Method, StatusCode, header};
use hub_core::{ApiKeyScope, Role};
use serde_json::{Value, json};

use crate::common::people::hub;

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
    let key = crate::common::key_for(
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
