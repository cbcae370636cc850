//! Single sign-on end to end against a real OpenID Connect provider (the npm package
//! `oidc-provider`, started here as a Node process on 127.0.0.1): discovery, the code flow with
//! PKCE, state and nonce, ID-token verification, just-in-time provisioning from domain and group
//! rules, and the failures: a tampered or replayed state, a wrong nonce, an expired code.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hub_api::ApiConfig;
use hub_api::oidc::{OidcSettings, RoleRule};
use hub_storage::Storage;
use serde_json::{Value, json};

const CALLBACK: &str = "http://hub.test/v1/auth/oidc/callback";
/// Seconds an authorization code lives at the provider: long enough for a flow, short enough to
/// wait out.
const CODE_TTL: u64 = 3;

struct ProviderProcess(Child);

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the provider; returns it and its issuer URL.
fn start_provider() -> (ProviderProcess, String) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider");
    if !dir.join("node_modules/oidc-provider").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is needed for the SSO tests (scripts/test installs Node.js)");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    }
    let accounts = json!({
        "ada": {"email": "ada@example.com", "email_verified": true, "name": "Ada", "groups": ["hub-admins"]},
        "bob": {"email": "bob@example.com", "email_verified": true, "name": "Bob", "groups": []},
        "eve": {"email": "eve@elsewhere.org", "email_verified": true, "groups": []},
        "mal": {"email": "mal@example.com", "email_verified": false, "groups": []},
    });
    let mut child = Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("REDIRECT_URI", CALLBACK)
        .env("ACCOUNTS", accounts.to_string())
        .env("CODE_TTL", CODE_TTL.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node is needed for the SSO tests (scripts/test installs Node.js)");
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Keep reading: the provider logs to stdout and must not find the pipe closed.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let issuer = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("the provider said {line:?}"))
        .to_string();
    (ProviderProcess(child), issuer)
}

struct Hub {
    app: Router,
    storage: Arc<dyn Storage>,
    _dir: tempfile::TempDir,
}

async fn hub(oidc: Option<OidcSettings>) -> Hub {
    let config = ApiConfig {
        oidc,
        ..Default::default()
    };
    let h = common::test_hub(config, 1000).await;
    h.storage.tenants().create_tenant("acme", 0).await.unwrap();
    Hub {
        app: h.app,
        storage: h.storage,
        _dir: h.dir,
    }
}

fn settings(issuer: &str) -> OidcSettings {
    OidcSettings {
        issuer: issuer.into(),
        client_id: "hub".into(),
        client_secret: Some("hub-test-secret".into()),
        redirect_url: CALLBACK.into(),
        scopes: vec!["email".into(), "profile".into(), "groups".into()],
        groups_claim: "groups".into(),
        domain_roles: vec![RoleRule::parse("example.com=acme:viewer").unwrap()],
        group_roles: vec![RoleRule::parse("hub-admins=acme:admin").unwrap()],
        after_login_url: "/ui/".into(),
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Hub {
    async fn get(&self, uri: &str, cookie: Option<&str>) -> Reply {
        let mut req = Request::get(uri);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        let (status, headers, body) =
            common::send(&self.app, req.body(Body::empty()).unwrap()).await;
        Reply {
            status,
            headers,
            body: if body.is_string() { Value::Null } else { body },
        }
    }

    /// The provider's authorization URL for a fresh sign-in.
    async fn start(&self, login_hint: &str) -> String {
        let r = self
            .get(
                &format!("/v1/auth/oidc/login?login_hint={login_hint}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        r.headers[header::LOCATION].to_str().unwrap().to_string()
    }
}

/// Follows the provider's redirects (as a browser would, cookies included) until it sends the
/// browser back to the hub; returns that callback URL's path and query.
async fn through_provider(auth_url: &str) -> String {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = reqwest::Url::parse(auth_url).unwrap();
    for _ in 0..10 {
        let res = client.get(url.clone()).send().await.unwrap();
        assert!(
            res.status().is_redirection(),
            "{url}: {} {}",
            res.status(),
            res.text().await.unwrap_or_default()
        );
        let to = res.headers()[reqwest::header::LOCATION]
            .to_str()
            .unwrap()
            .to_string();
        if let Some(rest) = to.strip_prefix("http://hub.test") {
            return rest.to_string();
        }
        url = url.join(&to).unwrap();
    }
    panic!("the provider never sent the browser back");
}

/// The session cookies of a sign-in answer, as a `Cookie` header.
fn cookie_jar(headers: &axum::http::HeaderMap) -> String {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn replace_param(url: &str, name: &str, value: &str) -> String {
    let relative = url.starts_with('/');
    let mut u = if relative {
        reqwest::Url::parse(&format!("http://x{url}")).unwrap()
    } else {
        reqwest::Url::parse(url).unwrap()
    };
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    if relative {
        format!("{}?{}", u.path(), u.query().unwrap_or_default())
    } else {
        u.to_string()
    }
}

#[tokio::test]
async fn sign_in_with_a_real_provider_provisions_users_from_rules() {
    let (_provider, issuer) = start_provider();
    let hub = hub(Some(settings(&issuer))).await;

    // Ada is in the hub-admins group: admin of acme (the group rule beats the domain's viewer).
    let auth = hub.start("ada").await;
    assert!(auth.starts_with(&issuer), "{auth}");
    for p in [
        "code_challenge_method=S256",
        "code_challenge=",
        "state=",
        "nonce=",
        "login_hint=ada",
    ] {
        assert!(auth.contains(p), "{p} missing from {auth}");
    }
    let callback = through_provider(&auth).await;
    let r = hub.get(&callback, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], "/ui/");
    let jar = cookie_jar(&r.headers);
    assert!(
        jar.contains("hub_access=") && jar.contains("hub_csrf="),
        "{jar}"
    );
    let me = hub.get("/v1/auth/me", Some(&jar)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        (me.body["name"].as_str(), me.body["role"].as_str()),
        (Some("ada@example.com"), Some("admin"))
    );
    let ada = hub
        .storage
        .access()
        .user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(ada.password_hash.is_none(), "provisioned for SSO only");
    assert_eq!(ada.display_name, "Ada");
    // The state was used once: the same callback again is refused.
    let again = hub.get(&callback, None).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);

    // Bob matches only the domain rule.
    let callback = through_provider(&hub.start("bob").await).await;
    let r = hub.get(&callback, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let me = hub.get("/v1/auth/me", Some(&cookie_jar(&r.headers))).await;
    assert_eq!(me.body["role"], "viewer");

    // Nobody's rule matches Eve; Mal's email is not verified.
    let r = hub
        .get(&through_provider(&hub.start("eve").await).await, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a member of any tenant")
    );
    let r = hub
        .get(&through_provider(&hub.start("mal").await).await, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not verified")
    );

    // A tenant's admins add their own rule for Eve's domain: her next sign-in makes her an analyst
    // there (and only there).
    let globex = hub
        .storage
        .tenants()
        .create_tenant("globex", 0)
        .await
        .unwrap()
        .id;
    hub.storage
        .settings()
        .set_tenant_sso_rules(
            globex,
            r#"{"domain_roles":[{"pattern":"elsewhere.org","role":"analyst"}],"group_roles":[]}"#,
            0,
        )
        .await
        .unwrap();
    let r = hub
        .get(&through_provider(&hub.start("eve").await).await, None)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let me = hub.get("/v1/auth/me", Some(&cookie_jar(&r.headers))).await;
    assert_eq!(
        (me.body["tenant"].as_str(), me.body["role"].as_str()),
        (Some("globex"), Some("analyst")),
        "{}",
        me.body
    );
    assert_eq!(
        me.body["memberships"].as_array().map(Vec::len),
        Some(1),
        "{}",
        me.body
    );

    // The audit log has the sign-ins and the role the rules gave.
    let log = hub
        .storage
        .audit()
        .list_audit(None, &Default::default(), 100)
        .await
        .unwrap();
    let actions: Vec<&str> = log.iter().map(|r| r.entry.action.as_str()).collect();
    assert!(
        actions.contains(&"auth.sso_login")
            && actions.contains(&"member.role")
            && actions.contains(&"auth.sso_failed"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_tampered_state_a_wrong_nonce_and_an_expired_code_are_refused() {
    let (_provider, issuer) = start_provider();
    let hub = hub(Some(settings(&issuer))).await;

    // Tampered state: the hub never issued it.
    let callback = through_provider(&hub.start("ada").await).await;
    let r = hub
        .get(&replace_param(&callback, "state", "forged-state"), None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown or expired sign-in state")
    );

    // Wrong nonce: the provider is asked with another nonce than the hub's, so the ID token it
    // signs carries that one.
    let auth = replace_param(&hub.start("ada").await, "nonce", "not-the-hubs-nonce");
    let r = hub.get(&through_provider(&auth).await, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        r.body["error"]["message"],
        "the ID token's nonce does not match this sign-in"
    );

    // Expired code: wait out its lifetime at the provider.
    let callback = through_provider(&hub.start("ada").await).await;
    tokio::time::sleep(Duration::from_secs(CODE_TTL + 1)).await;
    let r = hub.get(&callback, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        r.body["error"]["message"],
        "the identity provider refused the authorization code: invalid_grant"
    );
    // Nobody was signed in by any of these.
    assert!(
        hub.storage
            .access()
            .user_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // The provider refusing (an error in the callback) is reported as such.
    let callback = through_provider(&hub.start("ada").await).await;
    let state = reqwest::Url::parse(&format!("http://x{callback}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let r = hub
        .get(
            &format!("/v1/auth/oidc/callback?state={state}&error=access_denied"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("access_denied")
    );
}

#[tokio::test]
async fn without_sso_settings_the_routes_say_so() {
    let hub = hub(None).await;
    let r = hub.get("/v1/auth/oidc/login", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body["error"]["message"],
        "single sign-on is not configured on this hub"
    );
}
