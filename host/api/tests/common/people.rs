//! People through the router: a hub on fresh SQLite, users made directly in storage, and calls
//! with a bearer token, shared by the tests of sign-in, members and invitations.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use hub_api::ApiConfig;
use hub_core::Role;
use hub_storage::{NewUser, Storage};
use serde_json::{Value, json};

pub const PASSWORD: &str = "a long test password";

pub struct Hub {
    pub app: Router,
    pub storage: Arc<dyn Storage>,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: axum::http::HeaderMap,
}

pub async fn hub() -> Hub {
    let h = super::test_hub(ApiConfig::default(), 10_000).await;
    Hub {
        app: h.app,
        storage: h.storage,
        _dir: h.dir,
    }
}

impl Hub {
    /// A user with `PASSWORD` and `role` in `tenant` (created if needed); returns the user id.
    pub async fn user(&self, email: &str, tenant: &str, role: Role, must_change: bool) -> i64 {
        let t = match self.storage.tenants().tenant_by_name(tenant).await.unwrap() {
            Some(t) => t,
            None => self
                .storage
                .tenants()
                .create_tenant(tenant, 0)
                .await
                .unwrap(),
        };
        let a = self.storage.access();
        let u = match a.user_by_email(email).await.unwrap() {
            Some(u) => u,
            None => a
                .create_user(
                    &NewUser {
                        email: email.into(),
                        display_name: email.into(),
                        password_hash: Some(hub_api::credentials::passwords::hash_password(
                            PASSWORD,
                        )),
                        must_change_password: must_change,
                        operator: false,
                        publisher: false,
                    },
                    0,
                )
                .await
                .unwrap(),
        };
        a.set_membership(u.id, t.id, Some(role), 0).await.unwrap();
        u.id
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let (status, headers, body) = super::send(&self.app, req).await;
        Reply {
            status,
            body,
            headers,
        }
    }

    pub async fn call(&self, method: Method, uri: &str, token: &str, body: Option<Value>) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        if !token.is_empty() {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(
            req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
                .unwrap(),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.call(
            Method::POST,
            "/v1/auth/login",
            "",
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    /// An access token for a user in good standing.
    pub async fn token(&self, email: &str) -> String {
        let r = self.login(email, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }
}

pub fn message(r: &Reply) -> String {
    r.body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}
