//! First start (a key that works, both example shapes, the first admin) and the command line that
//! manages tenants, keys and people.

use super::*;

#[tokio::test]
async fn first_start_prints_a_working_key_and_accepts_both_example_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let key = server.key.clone().expect("first start prints a key");
    let client = reqwest::Client::new();
    let (status, body) = post(&client, &server, &key, "application/json", FLAT.into()).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (202, Some(3)),
        "{body}"
    );
    let (status, body) = post(
        &client,
        &server,
        &key,
        "application/x-ndjson",
        ENVELOPE.into(),
    )
    .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (202, Some(11)),
        "{body}"
    );
    let summary = get(&client, &server, &key, "/v1/metrics/summary?from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z&group_by=source_module").await;
    let total: i64 = summary["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["events"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 14);
    let one = get(
        &client,
        &server,
        &key,
        "/v1/events/9a1f6a44-0c55-4a43-8d52-3f0f3b1d2e01",
    )
    .await;
    assert_eq!(one["status"], "error");
    drop(server);
    // A second start on the same data prints no new key, and the old one still works.
    let again = Server::start(dir.path(), &[]);
    assert!(again.key.is_none());
    let page = get(&client, &again, &key, "/v1/events?limit=100").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 14);
}

#[tokio::test]
async fn cli_creates_tenants_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    assert!(hub_cli(dir.path(), &["migrate"]).contains("migrations applied"));
    assert!(hub_cli(dir.path(), &["tenant", "create", "acme"]).contains("created tenant 'acme'"));
    let out = hub_cli(
        dir.path(),
        &[
            "api-key",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "ingest,query",
        ],
    );
    let key = out.lines().last().unwrap().to_string();
    assert!(key.starts_with("hub_") && !key.contains(' '), "{out}");
    assert!(hub_cli(dir.path(), &["tenant", "list"]).contains("acme"));
    let bad = Command::new(HUB)
        .args([
            "api-key",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "write",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope 'write'"));
    let server = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let (status, _) = post(&client, &server, &key, "application/json", FLAT.into()).await;
    assert_eq!(status, 202);
    drop(server);

    // The key's lifecycle: list, rotate with a grace period, revoke.
    let prefix = &key[..12];
    let listed = hub_cli(dir.path(), &["api-key", "list", "--tenant", "acme"]);
    let row = listed.lines().find(|l| l.contains(prefix)).expect(&listed);
    assert!(
        row.contains("ingest,query") && row.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&key[13..]), "no secret in a listing");
    let out = hub_cli(
        dir.path(),
        &[
            "api-key", "rotate", "--tenant", "acme", prefix, "--grace", "1h",
        ],
    );
    let rotated = out.lines().last().unwrap().to_string();
    assert!(rotated.starts_with("hub_") && rotated != key, "{out}");
    let listed = hub_cli(dir.path(), &["api-key", "list", "--tenant", "acme"]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains(prefix) && l.contains("rotating")),
        "{listed}"
    );
    let server = Server::start(dir.path(), &[]);
    for k in [&key, &rotated] {
        let (status, _) = post(&client, &server, k, "application/json", FLAT.into()).await;
        assert_eq!(status, 202, "both keys work during the grace period");
    }
    drop(server);
    assert!(
        hub_cli(
            dir.path(),
            &["api-key", "revoke", "--tenant", "acme", prefix]
        )
        .contains("revoked API key")
    );
    let server = Server::start(dir.path(), &[]);
    let (status, body) = post(&client, &server, &key, "application/json", FLAT.into()).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = post(&client, &server, &rotated, "application/json", FLAT.into()).await;
    assert_eq!(status, 202);
    let unknown = Command::new(HUB)
        .args([
            "api-key",
            "revoke",
            "--tenant",
            "acme",
            "hub_zzzzzzzz",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("has no API key 'hub_zzzzzzzz'"));
}

#[tokio::test]
async fn the_first_admin_signs_in_and_the_cli_manages_people() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (email, otp) = server
        .admin
        .clone()
        .expect("first start prints an admin login");
    assert_eq!(email, "admin@localhost");
    let client = reqwest::Client::new();
    let login = |email: String, password: String| {
        let (client, url) = (client.clone(), server.url("/v1/auth/login"));
        async move {
            client
                .post(url)
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    let r = login(email.clone(), otp.clone()).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(
        (tokens["tenant"].as_str(), tokens["role"].as_str()),
        (Some("demo"), Some("owner"))
    );
    assert_eq!(tokens["must_change_password"], true);
    let token = tokens["access_token"].as_str().unwrap();
    let r = client
        .post(server.url("/v1/auth/password"))
        .bearer_auth(token)
        .json(&json!({"current_password": otp, "new_password": "the admin's own password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let audit = get(&client, &server, &token, "/v1/audit").await;
    let login_record = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "auth.login")
        .expect("the login is audited")
        .clone();
    assert_eq!(
        login_record["source"], "127.0.0.1",
        "the client's address is recorded"
    );
    drop(server);
    // A second start prints no new admin; a changed retention is audited.
    let server = Server::start(dir.path(), &["--retention-raw", "10d"]);
    assert!(server.admin.is_none());
    drop(server);
    let settings = hub_cli(dir.path(), &["audit", "tail", "--json"]);
    let retention: Vec<Value> = settings
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["action"] == "settings.retention")
        .collect();
    assert_eq!(retention.len(), 2, "{settings}");
    assert_eq!(retention[1]["after"]["raw_ms"], 10 * 86_400_000i64);
    assert_eq!(retention[1]["before"]["raw_ms"], 30 * 86_400_000i64);

    let out = hub_cli(
        dir.path(),
        &[
            "user",
            "create",
            "--email",
            "ana@example.com",
            "--tenant",
            "demo",
            "--role",
            "analyst",
        ],
    );
    let ana_otp = out.lines().last().unwrap().to_string();
    assert!(out.contains("analyst of 'demo'"), "{out}");
    let listed = hub_cli(dir.path(), &["user", "list", "--tenant", "demo"]);
    assert!(
        listed.contains("ana@example.com") && listed.contains("analyst"),
        "{listed}"
    );
    assert!(
        hub_cli(
            dir.path(),
            &[
                "user",
                "set-role",
                "--email",
                "ana@example.com",
                "--tenant",
                "demo",
                "--role",
                "viewer"
            ]
        )
        .contains("analyst -> viewer")
    );
    let last_owner = Command::new(HUB)
        .args([
            "user",
            "set-role",
            "--email",
            "admin@localhost",
            "--tenant",
            "demo",
            "--role",
            "admin",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!last_owner.status.success());
    assert!(String::from_utf8_lossy(&last_owner.stderr).contains("last owner"));
    let server = Server::start(dir.path(), &[]);
    let r = client
        .post(server.url("/v1/auth/login"))
        .json(&json!({"email": "ana@example.com", "password": ana_otp}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["role"], "viewer");
    drop(server);
    let tail = hub_cli(dir.path(), &["audit", "tail", "--tenant", "demo"]);
    for action in ["auth.login", "auth.password", "user.create", "member.role"] {
        assert!(tail.contains(action), "{action} missing from\n{tail}");
    }
    let json_tail = hub_cli(dir.path(), &["audit", "tail", "-n", "1", "--json"]);
    let last: Value = serde_json::from_str(json_tail.lines().last().unwrap()).unwrap();
    assert_eq!(last["action"], "auth.login");

    // The command line shares the lockout rules with the API: an email held back by failed
    // sign-ins is `locked` in its list, and its password reset lifts the lock, as an admin's does.
    let store = hub_storage::open(
        &format!("sqlite://{}/hub.db", dir.path().display()),
        &Default::default(),
    )
    .await
    .unwrap();
    for _ in 0..lockout::FREE_FAILURES_PER_EMAIL {
        lockout::failed(store.as_ref(), "ana@example.com", &None)
            .await
            .unwrap();
    }
    store.close().await;
    let ana = || {
        let listed = hub_cli(dir.path(), &["user", "list", "--tenant", "demo"]);
        listed
            .lines()
            .find(|l| l.contains("ana@example.com"))
            .unwrap()
            .to_string()
    };
    assert!(ana().contains(" locked "), "{}", ana());
    let reset = hub_cli(
        dir.path(),
        &["user", "reset-password", "--email", "ana@example.com"],
    );
    assert!(reset.contains("one-time password"), "{reset}");
    assert!(
        ana().contains(" new-pw ") && !ana().contains("locked"),
        "{}",
        ana()
    );
}
