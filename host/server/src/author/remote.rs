//! The author's conversations with a hub: signing in, publishing a package, registering a key and
//! installing from its marketplace.

use std::path::Path;

use anyhow::{Context, Result, bail};
use hub_marketplace::{PublicKey, SecretKey};

use super::ServerArgs;

/// A signed-in client for a hub.
async fn sign_in(args: &ServerArgs) -> Result<(reqwest::Client, String, String)> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()?;
    let base = args.server.trim_end_matches('/').to_string();
    if let Some(t) = &args.token {
        return Ok((client, base, t.clone()));
    }
    let email = args
        .email
        .clone()
        .context("sign in: set HUB_TOKEN, or HUB_EMAIL (or --email) and HUB_PASSWORD")?;
    let password = std::env::var("HUB_PASSWORD").context("sign in: set HUB_PASSWORD")?;
    let resp = client
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password, "tenant": args.tenant}))
        .send()
        .await
        .with_context(|| format!("reaching {base}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "signing in to {base} as {email}: {status}: {}",
            error_message(&body)
        );
    }
    if body["must_change_password"].as_bool() == Some(true) {
        bail!("{email} must change the one-time password first (POST /v1/auth/password)");
    }
    let token = body["access_token"]
        .as_str()
        .context("the hub's login answer has no access_token")?;
    Ok((client, base, token.to_string()))
}

/// Signs in and POSTs to `path` (the request completed by `body`); the hub's base URL and its JSON
/// answer. A refusal is an error that says what `doing` was refused and the hub's reason.
pub async fn post_signed_in(
    server: &ServerArgs,
    path: &str,
    doing: &str,
    body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> Result<(String, serde_json::Value)> {
    let (client, base, token) = sign_in(server).await?;
    let resp = body(client.post(format!("{base}{path}")).bearer_auth(token))
        .send()
        .await
        .with_context(|| format!("reaching {base}"))?;
    let status = resp.status();
    let answer: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{doing} was refused ({status}): {}", error_message(&answer));
    }
    Ok((base, answer))
}

fn error_message(body: &serde_json::Value) -> String {
    body["error"]["message"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| body.to_string())
}

pub async fn publish(file: &Path, server: &ServerArgs) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (base, body) = post_signed_in(
        server,
        "/v1/marketplace/packages",
        &format!("publishing {}", file.display()),
        |r| r.header("content-type", "application/gzip").body(bytes),
    )
    .await?;
    println!(
        "published {} {} to {base} (digest {})",
        body["name"].as_str().unwrap_or("?"),
        body["version"].as_str().unwrap_or("?"),
        body["digest"].as_str().unwrap_or("?")
    );
    Ok(())
}

pub async fn register(key: &str, server: &ServerArgs) -> Result<()> {
    let public = if key.starts_with("ed25519:") {
        PublicKey::parse(key)?
    } else {
        let text = std::fs::read_to_string(key).with_context(|| format!("reading {key}"))?;
        match PublicKey::parse(&text) {
            Ok(k) => k,
            Err(_) => SecretKey::parse(&text)
                .with_context(|| format!("{key} holds neither a public nor a secret key"))?
                .public(),
        }
    };
    let (base, body) = post_signed_in(
        server,
        "/v1/marketplace/keys",
        &format!("registering key {}", public.key_id()),
        |r| r.json(&serde_json::json!({"public_key": public.to_string()})),
    )
    .await?;
    println!(
        "registered key {} for {} at {base}",
        public.key_id(),
        body["publisher"].as_str().unwrap_or("?")
    );
    Ok(())
}
