//! The plugin author's commands: `hub keys generate|register` and `hub plugin
//! new|build|test|pack|publish`. They work on a plugin crate (the current directory unless
//! `--path` says otherwise) and talk to a hub only to register keys and publish.

mod local;
mod remote;
mod templates;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use hub_marketplace::{Manifest, Package, PluginKind, SecretKey};

use local::{LocalRules, PluginSource};
use remote::{post_signed_in, publish, register};

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
    /// Build the component for wasm32-wasip2 (or take --component) and check it against
    /// plugin.toml as a hub would.
    Build {
        #[command(flatten)]
        source: PluginSource,
    },
    /// Run the built component over an input file in the hub's runtime and print what it did:
    /// events (enricher), series (detector, forecaster) or alerts (integration), as JSON.
    Test {
        file: PathBuf,
        #[command(flatten)]
        source: PluginSource,
        #[command(flatten)]
        rules: LocalRules,
        /// The configuration (JSON or @FILE; default: the schema's example).
        #[arg(long = "plugin-config", value_name = "JSON")]
        plugin_config: Option<String>,
        /// Forecasters: steps to forecast.
        #[arg(long, default_value_t = 5)]
        horizon: u32,
    },
    /// Build (or take --component), check and sign the plugin into NAME-VERSION.hubpkg.
    Pack {
        /// The secret key file from `hub keys generate`.
        #[arg(long, env = "HUB_PUBLISHER_KEY")]
        key: PathBuf,
        #[command(flatten)]
        source: PluginSource,
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
    hub_plugins::host_version()
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
fn read_secret(path: &Path) -> Result<SecretKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SecretKey::parse(&text).with_context(|| format!("{}", path.display()))
}

fn pack(key: &Path, source: &PluginSource, out: Option<PathBuf>) -> Result<()> {
    let key = read_secret(key)?;
    let (wasm, host) = source.load(&LocalRules::default())?;
    let path = &source.path;
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
        AuthorCommand::Build { source } => {
            let done = if source.component.is_some() {
                "checked"
            } else {
                "built"
            };
            let (wasm, host) =
                tokio::task::spawn_blocking(move || source.load(&LocalRules::default())).await??;
            let m = host.manifest();
            println!(
                "{done} {} {} ({}): {} ({} bytes); it exports the {} world and imports only what plugin.toml declares",
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
            source,
            rules,
            plugin_config,
            horizon,
        } => {
            tokio::task::spawn_blocking(move || {
                local::test(&file, &source, &rules, plugin_config, horizon)
            })
            .await?
        }
        AuthorCommand::Pack { key, source, out } => {
            tokio::task::spawn_blocking(move || pack(&key, &source, out)).await?
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
            let grant = crate::plugin_args::parse_grants(&grants, None)?;
            let mut body = serde_json::json!({"package": package, "grants": grant});
            if let Some(v) = version {
                body["version"] = v.into();
            }
            if let Some(c) = catalog {
                body["catalog"] = c.into();
            }
            if let Some(c) = plugin_config {
                body["config"] = crate::plugin_args::read_config(&c)?;
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
        let s = super::local::parse_series(
            r#"[{"key": {"model": "m"}, "metric": "x", "step_ms": 60000, "ts_ms": [1], "values": [2.0]}]"#,
        )
        .unwrap();
        assert_eq!(s[0].key, vec![("model".to_string(), "m".to_string())]);
        let e = super::local::parse_alerts(
            r#"[{"id": "a", "rule": "r", "severity": "loud", "ts_ms": 1, "summary": "s"}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("alerts[0].severity"), "{e}");
    }
}
