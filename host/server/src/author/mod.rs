//! The plugin author's commands: `hub keys generate|register` and `hub plugin
//! new|build|test|pack|publish`. They work on a plugin crate (the current directory unless
//! `--path` says otherwise) and talk to a hub only to register keys and publish.

mod templates;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use hub_marketplace::{Manifest, Package, PluginKind, PublicKey, SecretKey};
use hub_plugin_sdk::testing::{Alert, Series, Severity, TestHost};

/// Where a hub is and how to sign in to it.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The hub's base URL.
    #[arg(long, env = "HUB_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// An access token (from POST /v1/auth/login); without it, HUB_EMAIL and HUB_PASSWORD sign in.
    #[arg(long, env = "HUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The publisher's email (the password comes from HUB_PASSWORD).
    #[arg(long, env = "HUB_EMAIL")]
    pub email: Option<String>,
    /// The tenant to act in (default: the user's first).
    #[arg(long, env = "HUB_TENANT")]
    pub tenant: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a publisher key pair: FILE holds the secret (mode 0600, keep it safe), FILE.pub the
    /// public key to register.
    Generate {
        #[arg(long, default_value = "publisher.key")]
        out: PathBuf,
    },
    /// Register a public key with a hub's marketplace (needs the publisher right).
    Register {
        /// A .pub file, a secret key file, or the key itself (ed25519:…).
        key: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// The author's plugin commands (see `hub plugin --help`).
#[derive(Debug, Subcommand)]
pub enum AuthorCommand {
    /// Scaffold a plugin crate on the SDK, with a manifest, code, tests, a README and an example
    /// input; it builds and its tests pass as generated.
    New {
        /// enricher, detector, forecaster or integration.
        kind: String,
        /// The plugin's name: 2 to 64 of a-z, 0-9 and -, starting with a letter.
        name: String,
        /// Where to make it (default ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The plugin SDK (default: the one this hub was built from).
        #[arg(long, env = "HUB_PLUGIN_SDK")]
        sdk: Option<PathBuf>,
    },
    /// Build the component for wasm32-wasip2 and check it against plugin.toml as a hub would.
    Build {
        #[arg(long, default_value = ".")]
        path: PathBuf,
    },
    /// Run the built component over an input file in the hub's runtime and print what it did:
    /// events (enricher), series (detector, forecaster) or alerts (integration), as JSON.
    Test {
        file: PathBuf,
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// The configuration (JSON or @FILE; default: the schema's example).
        #[arg(long = "plugin-config", value_name = "JSON")]
        plugin_config: Option<String>,
        /// Forecasters: steps to forecast.
        #[arg(long, default_value_t = 5)]
        horizon: u32,
    },
    /// Build, check and sign the plugin into NAME-VERSION.hubpkg.
    Pack {
        /// The secret key file from `hub keys generate`.
        #[arg(long, env = "HUB_PUBLISHER_KEY")]
        key: PathBuf,
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// Default: NAME-VERSION.hubpkg in the plugin's directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Publish a .hubpkg to a hub's marketplace.
    Publish {
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Install a package from a hub's marketplace (or a remote catalog it trusts) for the tenant
    /// you sign in to (needs the admin role there), through the hub's API.
    Add {
        package: String,
        /// Default: the newest version that is not yanked.
        #[arg(long)]
        version: Option<String>,
        /// A remote catalog configured on the hub.
        #[arg(long)]
        catalog: Option<String>,
        /// Configuration (JSON or @FILE; default: the schema's default).
        #[arg(long = "plugin-config", value_name = "JSON")]
        plugin_config: Option<String>,
        /// Capabilities granted: `kv`, `http:HOST[:PORT]`; repeat.
        #[arg(long = "grant")]
        grants: Vec<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn host_version() -> hub_marketplace::manifest::Version {
    hub_pipeline::plugins::host_version()
}

/// The SDK this binary was built with, when its sources are still there.
fn default_sdk() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugin-sdk");
    p.join("Cargo.toml")
        .is_file()
        .then(|| p.canonicalize().ok())
        .flatten()
}

fn rust_type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn new_plugin(kind: &str, name: &str, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> Result<()> {
    let kind = PluginKind::parse(kind).with_context(|| {
        format!("`{kind}` is not a plugin kind: enricher, detector, forecaster or integration")
    })?;
    if !hub_marketplace::manifest::valid_name(name) {
        bail!("`{name}` is not a plugin name: 2 to 64 of a-z, 0-9 and -, starting with a letter");
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!("{} exists already; pick another --dir", dir.display());
    }
    let sdk = match sdk.or_else(default_sdk) {
        Some(s) => s
            .canonicalize()
            .with_context(|| format!("the SDK at {}", s.display()))?,
        None => {
            bail!("where is the plugin SDK? pass --sdk PATH/TO/plugin-sdk (a checkout of the hub)")
        }
    };
    let t = match kind {
        PluginKind::Enricher => &templates::ENRICHER,
        PluginKind::Detector => &templates::DETECTOR,
        PluginKind::Forecaster => &templates::FORECASTER,
        PluginKind::Integration => &templates::INTEGRATION,
    };
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{type}}", &rust_type_name(name))
            .replace("{{kind}}", kind.as_str())
            .replace("{{sdk}}", &sdk.display().to_string())
            .replace("{{example}}", t.example.0)
            .replace("{{config_rows}}", t.config_rows)
    };
    let files = [
        ("Cargo.toml", fill(templates::CARGO_TOML)),
        // The versions this hub was built and tested with (cargo prunes what the crate does not use).
        ("Cargo.lock", templates::CARGO_LOCK.to_string()),
        ("plugin.toml", fill(t.plugin_toml)),
        ("src/lib.rs", fill(t.lib_rs)),
        ("tests/plugin.rs", fill(t.test_rs)),
        ("README.md", fill(templates::README)),
        (t.example.0, t.example.1.to_string()),
        (".gitignore", templates::GITIGNORE.to_string()),
    ];
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("files are in a directory"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    // The generated manifest must be one the hub takes.
    Manifest::parse(&fill(t.plugin_toml), &host_version())?;
    println!("created the {kind} `{name}` in {}", dir.display());
    println!(
        "next: cd {} && hub plugin build && hub plugin test {}",
        dir.display(),
        t.example.0
    );
    Ok(())
}

/// Builds the component and loads it with its manifest in the hub's runtime.
fn build(path: &Path) -> Result<(PathBuf, TestHost)> {
    let manifest_path = path.join("plugin.toml");
    let source = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    Manifest::parse(&source, &host_version())?;
    let wasm = hub_plugin_sdk::testing::build_component(path)?;
    let host = TestHost::load(&wasm, &manifest_path)?;
    Ok((wasm, host))
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

fn pairs(v: Option<&serde_json::Value>) -> Vec<(String, String)> {
    v.and_then(|v| v.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Series as JSON: `[{"key": {...}, "metric", "step_ms", "ts_ms": [...], "values": [...]}]`.
fn parse_series(text: &str) -> Result<Vec<Series>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct S {
        #[serde(default)]
        key: serde_json::Value,
        metric: String,
        step_ms: u32,
        ts_ms: Vec<i64>,
        values: Vec<f64>,
    }
    let list: Vec<S> = serde_json::from_str(text)
        .context("series: expected a JSON array of {key, metric, step_ms, ts_ms, values}")?;
    Ok(list
        .into_iter()
        .map(|s| Series {
            key: pairs(Some(&s.key)),
            metric: s.metric,
            step_ms: s.step_ms,
            ts_ms: s.ts_ms,
            values: s.values,
        })
        .collect())
}

/// Alerts as JSON: `[{"id", "rule", "severity", "ts_ms", "summary", "labels": {...}}]`.
fn parse_alerts(text: &str) -> Result<Vec<Alert>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct A {
        id: String,
        rule: String,
        severity: String,
        ts_ms: i64,
        summary: String,
        #[serde(default)]
        labels: serde_json::Value,
    }
    let list: Vec<A> = serde_json::from_str(text)
        .context("alerts: expected a JSON array of {id, rule, severity, ts_ms, summary, labels}")?;
    list.into_iter()
        .enumerate()
        .map(|(i, a)| {
            Ok(Alert {
                severity: match a.severity.as_str() {
                    "info" => Severity::Info,
                    "warning" => Severity::Warning,
                    "critical" => Severity::Critical,
                    other => {
                        bail!("alerts[{i}].severity: '{other}' is not info, warning or critical")
                    }
                },
                labels: pairs(Some(&a.labels)),
                id: a.id,
                rule: a.rule,
                ts_ms: a.ts_ms,
                summary: a.summary,
            })
        })
        .collect()
}

/// What an enricher changed in one event: the patchable columns and the tags it added.
fn changes(before: &hub_core::EventRecord, after: &hub_core::EventRecord) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let texts = [
        ("provider", &before.provider, &after.provider),
        ("operation", &before.operation, &after.operation),
        ("app", &before.app, &after.app),
        ("environment", &before.environment, &after.environment),
    ];
    for (field, b, a) in texts {
        if b != a {
            out.insert(field.into(), serde_json::json!(a));
        }
    }
    if before.cost_usd != after.cost_usd {
        out.insert("cost_usd".into(), serde_json::json!(after.cost_usd));
    }
    let tags = |s: &str| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s).unwrap_or_default()
    };
    let (b, a) = (tags(&before.tags_json), tags(&after.tags_json));
    let added: serde_json::Map<String, serde_json::Value> =
        a.into_iter().filter(|(k, v)| b.get(k) != Some(v)).collect();
    if !added.is_empty() {
        out.insert("tags".into(), added.into());
    }
    out.into()
}

fn test(file: &Path, path: &Path, config: Option<String>, horizon: u32) -> Result<()> {
    let (_, mut host) = build(path)?;
    let config = match config {
        Some(c) => crate::plugins::read_config(&c)?,
        None => host.manifest().example_config(),
    };
    host.configure(config.clone())
        .with_context(|| format!("configure {config}"))?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let output = match host.manifest().kind {
        PluginKind::Enricher => {
            let before = hub_plugin_sdk::testing::parse_events(&text)?;
            let out = host.enrich_events(before.clone())?;
            let events: Vec<serde_json::Value> = before
                .iter()
                .zip(&out.events)
                .enumerate()
                .map(|(i, (b, a))| {
                    serde_json::json!({"index": i, "model": a.model, "changed": changes(b, a)})
                })
                .collect();
            serde_json::json!({"events": events, "patches_applied": out.applied.applied, "patches_kept": out.applied.kept})
        }
        PluginKind::Detector => {
            let series = parse_series(&text)?;
            let found = host.detect(&series)?;
            serde_json::json!({"anomalies": found.iter().map(|a| serde_json::json!({
                "series": a.series, "ts_ms": a.ts_ms, "value": a.value, "expected": a.expected,
                "lower": a.lower, "upper": a.upper, "score": a.score,
                "severity": severity(a.severity), "reason": a.reason,
            })).collect::<Vec<_>>()})
        }
        PluginKind::Forecaster => {
            let series = parse_series(&text)?;
            let f = host.forecast(&series, horizon)?;
            serde_json::json!({"forecasts": f.iter().map(|f| serde_json::json!({
                "series": f.series, "ts_ms": f.ts_ms, "mean": f.mean, "lower": f.lower, "upper": f.upper,
            })).collect::<Vec<_>>()})
        }
        PluginKind::Integration => {
            let alerts = parse_alerts(&text)?;
            host.on_alerts(&alerts)?;
            let kv: serde_json::Map<String, serde_json::Value> = host
                .kv()
                .iter()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned().into()))
                .collect();
            serde_json::json!({"alerts_delivered": alerts.len(), "kv": kv})
        }
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

fn read_secret(path: &Path) -> Result<SecretKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SecretKey::parse(&text).with_context(|| format!("{}", path.display()))
}

fn pack(key: &Path, path: &Path, out: Option<PathBuf>) -> Result<()> {
    let key = read_secret(key)?;
    let (wasm, host) = build(path)?;
    let manifest = host.manifest().clone();
    let readme_path = path.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).with_context(|| {
        format!(
            "reading {}: a package carries a README for the marketplace",
            readme_path.display()
        )
    })?;
    let icon_path = path.join("icon.png");
    let icon = icon_path
        .is_file()
        .then(|| std::fs::read(&icon_path))
        .transpose()?;
    let mut package = Package::new(manifest.source.clone(), std::fs::read(&wasm)?, readme, icon);
    package.sign(&key);
    let bytes = package.to_bytes();
    // Read it back exactly as a hub will.
    Package::from_bytes(&bytes, hub_marketplace::package::DEFAULT_MAX_PACKAGE_BYTES)?
        .verify(&key.public())?;
    let out = out.unwrap_or_else(|| {
        path.join(format!(
            "{}-{}.{}",
            manifest.name,
            manifest.version,
            hub_marketplace::package::EXTENSION
        ))
    });
    std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "packed {} {} into {} ({} bytes, digest {}, signed by key {})",
        manifest.name,
        manifest.version,
        out.display(),
        bytes.len(),
        package.digest(),
        key.public().key_id()
    );
    Ok(())
}

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
async fn post_signed_in(
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

async fn publish(file: &Path, server: &ServerArgs) -> Result<()> {
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

async fn register(key: &str, server: &ServerArgs) -> Result<()> {
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

fn generate(out: &Path) -> Result<()> {
    let public_path = PathBuf::from(format!("{}.pub", out.display()));
    if out.exists() || public_path.exists() {
        bail!("{} exists already; a key is not overwritten", out.display());
    }
    let key = SecretKey::generate();
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options
            .open(out)
            .with_context(|| format!("creating {}", out.display()))?;
        writeln!(f, "{}", key.to_text())?;
    }
    std::fs::write(&public_path, format!("{}\n", key.public()))?;
    println!("secret key: {} (keep it private)", out.display());
    println!(
        "public key: {} ({})",
        public_path.display(),
        key.public().key_id()
    );
    println!("{}", key.public());
    Ok(())
}

pub async fn keys(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Generate { out } => generate(&out),
        KeysCommand::Register { key, server } => register(&key, &server).await,
    }
}

pub async fn run(command: AuthorCommand) -> Result<()> {
    match command {
        AuthorCommand::New {
            kind,
            name,
            dir,
            sdk,
        } => new_plugin(&kind, &name, dir, sdk),
        AuthorCommand::Build { path } => {
            let (wasm, host) = tokio::task::spawn_blocking(move || build(&path)).await??;
            let m = host.manifest();
            println!(
                "built {} {} ({}): {} ({} bytes); it exports the {} world and imports only what plugin.toml declares",
                m.name,
                m.version,
                m.kind,
                wasm.display(),
                std::fs::metadata(&wasm)?.len(),
                m.world
            );
            Ok(())
        }
        AuthorCommand::Test {
            file,
            path,
            plugin_config,
            horizon,
        } => {
            tokio::task::spawn_blocking(move || test(&file, &path, plugin_config, horizon)).await?
        }
        AuthorCommand::Pack { key, path, out } => {
            tokio::task::spawn_blocking(move || pack(&key, &path, out)).await?
        }
        AuthorCommand::Publish { file, server } => publish(&file, &server).await,
        AuthorCommand::Add {
            package,
            version,
            catalog,
            plugin_config,
            grants,
            server,
        } => {
            let grant = crate::plugins::parse_grants(&grants, None)?;
            let mut body = serde_json::json!({"package": package, "grants": grant});
            if let Some(v) = version {
                body["version"] = v.into();
            }
            if let Some(c) = catalog {
                body["catalog"] = c.into();
            }
            if let Some(c) = plugin_config {
                body["config"] = crate::plugins::read_config(&c)?;
            }
            let (_, body) = post_signed_in(
                &server,
                "/v1/plugins",
                &format!("installing {package}"),
                |r| r.json(&body),
            )
            .await?;
            println!(
                "installed {} {} ({}, position {})",
                body["name"].as_str().unwrap_or("?"),
                body["version"].as_str().unwrap_or("?"),
                if body["enabled"].as_bool() == Some(true) {
                    "enabled"
                } else {
                    "disabled"
                },
                body["position"]
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn type_names_and_inputs() {
        assert_eq!(
            super::rust_type_name("prompt-size-tagger"),
            "PromptSizeTagger"
        );
        let s = super::parse_series(
            r#"[{"key": {"model": "m"}, "metric": "x", "step_ms": 60000, "ts_ms": [1], "values": [2.0]}]"#,
        )
        .unwrap();
        assert_eq!(s[0].key, vec![("model".to_string(), "m".to_string())]);
        let e = super::parse_alerts(
            r#"[{"id": "a", "rule": "r", "severity": "loud", "ts_ms": 1, "summary": "s"}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("alerts[0].severity"), "{e}");
    }
}
