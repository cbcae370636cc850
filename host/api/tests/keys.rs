//! `/v1/api-keys` through the router, with real SQLite storage: the key lifecycle (create, list,
//! revoke, rotate with and without grace), scopes, tenant isolation and per-key rate limits.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::key_for;
use hub_api::ApiConfig;
use hub_core::ApiKeyScope;
use hub_storage::Storage;
use serde_json::{Value, json};

struct Hub {
    app: Router,
    storage: Arc<dyn Storage>,
    /// An `admin` key of tenant acme.
    admin: String,
    _dir: tempfile::TempDir,
}

async fn hub_with(config: ApiConfig) -> Hub {
    let h = common::test_hub(config, 10_000).await;
    let admin = key_for(&h.storage, "acme", vec![ApiKeyScope::Admin]).await;
    Hub {
        app: h.app,
        storage: h.storage,
        admin,
        _dir: h.dir,
    }
}

impl Hub {
    async fn call(
        &self,
        method: Method,
        uri: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
            .unwrap();
        let (status, headers, body) = common::send(&self.app, req).await;
        (status, body, headers)
    }

    async fn create(&self, body: Value) -> (StatusCode, Value) {
        let (s, b, _) = self
            .call(Method::POST, "/v1/api-keys", &self.admin, Some(body))
            .await;
        (s, b)
    }

    /// What a key may do right now: the status of a query route.
    async fn status_of(&self, key: &str) -> StatusCode {
        self.call(Method::GET, "/v1/events", key, None).await.0
    }
}

#[tokio::test]
async fn create_list_revoke_and_rotate() {
    let hub = hub_with(ApiConfig::default()).await;
    let (status, created) = hub
        .create(json!({"name": "collector", "scopes": ["query", "ingest"], "expires_in": "90d", "rate_limit_per_s": 50}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let record = &created["api_key"];
    assert!(key.starts_with(record["prefix"].as_str().unwrap()));
    assert_eq!(record["scopes"], json!(["ingest", "query"]));
    assert_eq!(record["state"], "active");
    assert_eq!(record["rate_limit_per_s"], 50);
    assert!(record["expires_at"].is_string());
    assert_eq!(hub.status_of(&key).await, StatusCode::OK);

    // Listed with prefix, scopes, state and times, never a secret or its hash.
    let (status, list, _) = hub
        .call(Method::GET, "/v1/api-keys", &hub.admin, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        !list.to_string().contains(&key[13..]),
        "no secret in {list}"
    );
    assert!(keys.iter().all(|k| k.get("secret_hash").is_none()));
    // The admin key was used, so it shows when (recorded in the background).
    let mut used = keys[0]["last_used_at"].clone();
    for _ in 0..50 {
        if used.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let (_, list, _) = hub
            .call(Method::GET, "/v1/api-keys", &hub.admin, None)
            .await;
        used = list["keys"][0]["last_used_at"].clone();
    }
    assert!(used.is_string(), "{list}");

    // Rotation with a grace period: both keys work until the old one's time comes.
    let id = record["id"].as_i64().unwrap();
    let (status, rotated, _) = hub
        .call(
            Method::POST,
            &format!("/v1/api-keys/{id}/rotate"),
            &hub.admin,
            Some(json!({"grace": "1h"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new_key = rotated["key"].as_str().unwrap().to_string();
    assert_eq!(rotated["api_key"]["rotated_from"], id);
    assert_eq!(rotated["api_key"]["scopes"], json!(["ingest", "query"]));
    assert_eq!(rotated["api_key"]["rate_limit_per_s"], 50);
    assert_eq!(rotated["api_key"]["expires_at"], record["expires_at"]);
    assert_eq!(rotated["replaces"]["state"], "rotating");
    assert_eq!(hub.status_of(&key).await, StatusCode::OK);
    assert_eq!(hub.status_of(&new_key).await, StatusCode::OK);

    // Revocation (by prefix) takes effect at once on this hub, despite the key cache.
    let prefix = record["prefix"].as_str().unwrap();
    let (status, revoked, _) = hub
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{prefix}"),
            &hub.admin,
            None,
        )
        .await;
    assert_eq!(
        (status, revoked["state"].as_str()),
        (StatusCode::OK, Some("revoked"))
    );
    let (status, body, _) = hub.call(Method::GET, "/v1/events", &key, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "this API key was revoked");
    assert_eq!(hub.status_of(&new_key).await, StatusCode::OK);
    // Revoking again changes nothing; a revoked key cannot be rotated.
    let (status, again, _) = hub
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            &hub.admin,
            None,
        )
        .await;
    assert_eq!(
        (status, &again["revoked_at"]),
        (StatusCode::OK, &revoked["revoked_at"])
    );
    let (status, body, _) = hub
        .call(
            Method::POST,
            &format!("/v1/api-keys/{id}/rotate"),
            &hub.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer works")
    );

    // Rotation without grace: the old key stops at once.
    let new_id = rotated["api_key"]["id"].as_i64().unwrap();
    let (status, _, _) = hub
        .call(
            Method::POST,
            &format!("/v1/api-keys/{new_id}/rotate"),
            &hub.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(hub.status_of(&new_key).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let hub = hub_with(ApiConfig::default()).await;
    for (body, field) in [
        (json!({"name": "x", "scopes": ["root"]}), "scopes"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "", "scopes": ["query"]}), "name"),
        (
            json!({"name": "x", "scopes": ["query"], "expires_in": "soon"}),
            "expires_in",
        ),
        (
            json!({"name": "x", "scopes": ["query"], "expires_in": "0d"}),
            "expires_in",
        ),
        (
            json!({"name": "x", "scopes": ["query"], "rate_limit_per_s": 0}),
            "rate_limit_per_s",
        ),
        (
            json!({"name": "x", "scopes": ["query"], "colour": "red"}),
            "colour",
        ),
        (json!({"name": "x", "scopes": "query"}), "scopes"),
    ] {
        let (status, err) = hub.create(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        let text = err["error"].to_string();
        assert!(text.contains(field), "{body}: {err}");
    }
    let (status, err, _) = hub
        .call(
            Method::POST,
            "/v1/api-keys/1/rotate",
            &hub.admin,
            Some(json!({"grace": "30d"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["parameter"], "grace");
}

#[tokio::test]
async fn scopes_and_tenants_are_enforced() {
    let hub = hub_with(ApiConfig::default()).await;
    let reader = key_for(
        &hub.storage,
        "acme",
        vec![ApiKeyScope::Query, ApiKeyScope::Ingest],
    )
    .await;
    for (method, uri) in [
        (Method::GET, "/v1/api-keys"),
        (Method::POST, "/v1/api-keys"),
        (Method::GET, "/v1/api-keys/1"),
        (Method::DELETE, "/v1/api-keys/1"),
        (Method::POST, "/v1/api-keys/1/rotate"),
    ] {
        let (status, body, _) = hub
            .call(
                method.clone(),
                uri,
                &reader,
                Some(json!({"name": "x", "scopes": ["admin"]})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("'admin' scope")
        );
        let (status, _, _) = hub.call(method.clone(), uri, "hub_nope_nope", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }

    // Tenant globex's key, by id or prefix, is a 404 for acme's admin on every route.
    let other_admin = key_for(&hub.storage, "globex", vec![ApiKeyScope::Admin]).await;
    let globex = hub
        .storage
        .tenants()
        .tenant_by_name("globex")
        .await
        .unwrap()
        .unwrap();
    let theirs = &hub
        .storage
        .tenants()
        .list_api_keys(globex.id)
        .await
        .unwrap()[0];
    for name in [theirs.id.to_string(), theirs.prefix.clone()] {
        for (method, uri) in [
            (Method::GET, format!("/v1/api-keys/{name}")),
            (Method::DELETE, format!("/v1/api-keys/{name}")),
            (Method::POST, format!("/v1/api-keys/{name}/rotate")),
        ] {
            let (status, _, _) = hub.call(method.clone(), &uri, &hub.admin, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}");
        }
    }
    assert_eq!(
        hub.status_of(&other_admin).await,
        StatusCode::FORBIDDEN,
        "admin alone cannot query"
    );
    let (_, list, _) = hub
        .call(Method::GET, "/v1/api-keys", &other_admin, None)
        .await;
    assert_eq!(
        list["keys"].as_array().unwrap().len(),
        1,
        "globex sees only its own key"
    );
    let still = hub
        .storage
        .tenants()
        .list_api_keys(globex.id)
        .await
        .unwrap();
    assert_eq!(still[0].revoked_at_ms, None, "nothing of globex changed");
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after() {
    let hub = hub_with(ApiConfig {
        api_key_rate_limit_per_s: 3,
        ..Default::default()
    })
    .await;
    let (_, created) = hub
        .create(json!({"name": "slow", "scopes": ["query"], "rate_limit_per_s": 1}))
        .await;
    let slow = created["key"].as_str().unwrap().to_string();
    // A burst of two seconds' worth, then 429 until a token is back.
    assert_eq!(hub.status_of(&slow).await, StatusCode::OK);
    assert_eq!(hub.status_of(&slow).await, StatusCode::OK);
    let (status, body, headers) = hub.call(Method::GET, "/v1/events", &slow, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 requests per second")
    );
    // Another key has its own bucket (the server default of 3/s: 6 at once).
    let other = key_for(&hub.storage, "acme", vec![ApiKeyScope::Query]).await;
    for _ in 0..6 {
        assert_eq!(hub.status_of(&other).await, StatusCode::OK);
    }
    assert_eq!(hub.status_of(&other).await, StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(hub.status_of(&slow).await, StatusCode::OK, "refilled");
}
