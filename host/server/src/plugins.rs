//! `hub plugin …`: install, enable, disable, configure, list and uninstall a tenant's plugins
//! (until the marketplace lands, installs come from a built component and its plugin.toml).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use hub_catalog::Catalog;
use hub_plugins::PluginHost;
use hub_storage::Storage;

use crate::config::{ServeArgs, Settings};
use crate::plugin_args::{parse_grants, read_config};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    #[command(flatten)]
    Author(crate::author::AuthorCommand),
    /// Install (or upgrade) a plugin for a tenant from a built component and its manifest.
    Install {
        #[arg(long)]
        tenant: String,
        /// The component (.wasm).
        path: PathBuf,
        /// Its plugin.toml (default: plugin.toml beside the component).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Configuration as JSON, or @FILE (default: the schema's default, or {}).
        #[arg(long = "plugin-config", value_name = "JSON")]
        plugin_config: Option<String>,
        /// Capabilities granted: `kv`, `http:HOST[:PORT]`; repeat, or `all` for everything the
        /// manifest asks for (hosts listed in it).
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Install without enabling.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Enable an installed plugin (clears an automatic disable).
    Enable {
        #[arg(long)]
        tenant: String,
        name: String,
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Disable an installed plugin.
    Disable {
        #[arg(long)]
        tenant: String,
        name: String,
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Replace a plugin's configuration (JSON or @FILE), checked against its schema.
    Configure {
        #[arg(long)]
        tenant: String,
        name: String,
        /// JSON, or @FILE.
        #[arg(long = "plugin-config", value_name = "JSON")]
        plugin_config: String,
        #[command(flatten)]
        db: ServeArgs,
    },
    /// List a tenant's plugins in running order.
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Remove a plugin from a tenant.
    Uninstall {
        #[arg(long)]
        tenant: String,
        name: String,
        /// Also delete what the plugin stored in kv.
        #[arg(long)]
        purge_kv: bool,
        #[command(flatten)]
        db: ServeArgs,
    },
}

/// The longest a component may take to compile (the CPython one takes ~20 s on two cores).
const COMPILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The plugin host over `storage` with the configured runtime, compiling components in worker
/// processes of this executable (`hub compile-component`): all of a compile's memory goes back to
/// the system when its worker exits.
pub async fn host(storage: Arc<dyn Storage>, settings: &Settings) -> Result<Arc<PluginHost>> {
    let runtime = hub_runtime::Runtime::new(hub_runtime::RuntimeConfig {
        compile_worker: Some(hub_runtime::CompileWorker {
            program: std::env::current_exe()
                .context("finding this executable, to compile plugins with")?,
            args: vec!["compile-component".into()],
            timeout: COMPILE_TIMEOUT,
        }),
        ..settings.runtime.clone()
    })?;
    let mut config = settings.plugin_host.clone();
    for (name, budget) in &settings.tenant_cpu_budgets {
        let tenant = storage.tenants().tenant_by_name(name).await?.ok_or_else(|| {
            anyhow::anyhow!(
                "--plugin-tenant-cpu-budget {name}=…: there is no tenant named `{name}` (create it first)"
            )
        })?;
        config.tenant_cpu_budgets.insert(tenant.id, *budget);
    }
    Ok(Arc::new(PluginHost::new(runtime, storage, config)))
}

/// The marketplace service over `host`, with the configured limits, remotes and trusted keys.
pub fn catalog(
    host: Arc<PluginHost>,
    storage: Arc<dyn Storage>,
    settings: &Settings,
) -> Arc<Catalog> {
    Arc::new(Catalog::new(host, storage, settings.market.clone()))
}

async fn tenant_id(storage: &dyn Storage, name: &str) -> Result<hub_core::TenantId> {
    Ok(crate::tenant_named(storage, name).await?.id)
}

/// The first-party plugins laid out in `dir` (`<name>/plugin.toml`, `<name>/<name>.wasm`,
/// `<name>/README.md`, optionally `<name>/icon.png`), smallest component first: publishing checks
/// each (compiles it), so the small ones are in the catalog within seconds while a large one (the
/// Python example's runtime is 18 MB) is still being checked.
pub fn first_party_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("plugin.toml").is_file())
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let size = |name: &String| {
        std::fs::metadata(dir.join(name).join(format!("{name}.wasm"))).map_or(u64::MAX, |m| m.len())
    };
    names.sort_by_cached_key(|n| (size(n), n.clone()));
    names
}

/// Packs `<dir>/<name>` into a package signed with `key`.
pub fn pack_dir(
    dir: &Path,
    name: &str,
    key: &hub_marketplace::SecretKey,
) -> Result<hub_marketplace::Package> {
    let read = |file: &str| {
        let path = dir.join(name).join(file);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    let manifest = String::from_utf8(read("plugin.toml")?).context("plugin.toml is not UTF-8")?;
    let readme = String::from_utf8(read("README.md")?).context("README.md is not UTF-8")?;
    let icon = dir
        .join(name)
        .join("icon.png")
        .is_file()
        .then(|| read("icon.png"))
        .transpose()?;
    let mut package =
        hub_marketplace::Package::new(manifest, read(&format!("{name}.wasm"))?, readme, icon);
    package.sign(key);
    Ok(package)
}

/// Publishes the first-party plugins in `dir` whose version the marketplace does not have yet,
/// signed with the deployment's own key, through the same checks as any publication. Returns
/// "name version" for each one published; failures are logged and skipped.
pub async fn publish_first_party(catalog: &Catalog, dir: &Path, names: &[String]) -> Vec<String> {
    use hub_catalog::{FIRST_PARTY, Publisher};
    let key = match catalog.own_key().await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "no first-party signing key; first-party plugins are not published");
            return Vec::new();
        }
    };
    let publisher = Publisher {
        name: FIRST_PARTY.into(),
        user_id: None,
        label: "hub".into(),
    };
    let mut published = Vec::new();
    for name in names {
        // Only the manifest is read to learn the version; a plugin is packed and signed only when
        // the catalog lacks that version (every start runs this).
        let version = std::fs::read_to_string(dir.join(name).join("plugin.toml"))
            .ok()
            .and_then(|m| hub_marketplace::Manifest::parse(&m, &hub_plugins::host_version()).ok())
            .map(|m| m.version.to_string())
            .unwrap_or_default();
        match catalog.catalog_has(name, &version).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(plugin = %name, error = %e, "catalog unreadable");
                continue;
            }
        }
        let package = match pack_dir(dir, name, &key) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(plugin = %name, error = %format!("{e:#}"), "first-party plugin not packed");
                continue;
            }
        };
        match catalog.publish(package.to_bytes(), &publisher).await {
            Ok((m, _)) => {
                tracing::info!(plugin = %m.name, version = %m.version, "published first-party plugin");
                published.push(format!("{} {}", m.name, m.version));
            }
            Err(e) => {
                tracing::error!(plugin = %name, error = %e, "publishing a first-party plugin failed")
            }
        }
    }
    published
}

/// Installs a first-party plugin from the marketplace for `tenant`, granting what it asks for.
pub async fn install_first_party(
    catalog: &Catalog,
    tenant: hub_core::TenantId,
    name: &str,
) -> Result<hub_storage::PluginInstall> {
    let package = catalog.fetch_package(name, None, None).await?;
    let manifest =
        hub_marketplace::Manifest::parse(&package.manifest, &hub_plugins::host_version())?;
    Ok(catalog
        .host()
        .install(
            tenant,
            &package.manifest,
            package.component,
            None,
            hub_plugins::GrantsDoc::everything_asked(&manifest),
            true,
        )
        .await?)
}

pub async fn run(command: PluginCommand) -> Result<()> {
    match command {
        PluginCommand::Author(c) => crate::author::run(c).await,
        PluginCommand::Install {
            tenant,
            path,
            manifest,
            plugin_config: config,
            grants,
            disabled,
            db,
        } => {
            let (storage, settings) = crate::open_db(db).await?;
            let t = tenant_id(storage.as_ref(), &tenant).await?;
            let manifest_path = manifest.unwrap_or_else(|| path.with_file_name("plugin.toml"));
            let source = std::fs::read_to_string(&manifest_path)
                .with_context(|| format!("reading {}", manifest_path.display()))?;
            let wasm =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let parsed = hub_marketplace::Manifest::parse(&source, &hub_plugins::host_version())?;
            let grants = parse_grants(&grants, Some(&parsed))?;
            let config = config.as_deref().map(read_config).transpose()?;
            let host = host(storage.clone(), &settings).await?;
            let install = host
                .install(t, &source, wasm, config, grants, !disabled)
                .await?;
            audit_plugin(storage.as_ref(), t, "plugin.install", &install.name, serde_json::json!({"version": install.version, "digest": install.digest, "enabled": install.enabled, "grants": install.grants_json})).await?;
            storage.close().await;
            println!(
                "installed {} {} for tenant '{tenant}' ({}, position {}, digest {})",
                install.name,
                install.version,
                if install.enabled {
                    "enabled"
                } else {
                    "disabled"
                },
                install.position,
                &install.digest[..12]
            );
            Ok(())
        }
        PluginCommand::Enable { tenant, name, db } => set_enabled(tenant, name, db, true).await,
        PluginCommand::Disable { tenant, name, db } => set_enabled(tenant, name, db, false).await,
        PluginCommand::Configure {
            tenant,
            name,
            plugin_config: config,
            db,
        } => {
            let (storage, settings) = crate::open_db(db).await?;
            let t = tenant_id(storage.as_ref(), &tenant).await?;
            let config = read_config(&config)?;
            host(storage.clone(), &settings)
                .await?
                .update(t, &name, None, Some(config.clone()), None)
                .await?;
            audit_plugin(
                storage.as_ref(),
                t,
                "plugin.change",
                &name,
                serde_json::json!({ "config": config }),
            )
            .await?;
            storage.close().await;
            println!("configured {name} for tenant '{tenant}'");
            Ok(())
        }
        PluginCommand::List { tenant, db } => {
            let (storage, _) = crate::open_db(db).await?;
            let t = tenant_id(storage.as_ref(), &tenant).await?;
            for i in storage.plugins().plugin_installs(t).await? {
                println!(
                    "{:>3}  {:<20} {:<10} {:<11} {:<8} failures {}{}",
                    i.position,
                    i.name,
                    i.version,
                    i.kind,
                    if i.enabled { "enabled" } else { "disabled" },
                    i.consecutive_failures,
                    i.disabled_reason
                        .map(|r| format!("  ({r})"))
                        .unwrap_or_default()
                );
            }
            storage.close().await;
            Ok(())
        }
        PluginCommand::Uninstall {
            tenant,
            name,
            purge_kv,
            db,
        } => {
            let (storage, settings) = crate::open_db(db).await?;
            let t = tenant_id(storage.as_ref(), &tenant).await?;
            host(storage.clone(), &settings)
                .await?
                .uninstall(t, &name, purge_kv)
                .await?;
            audit_plugin(
                storage.as_ref(),
                t,
                "plugin.uninstall",
                &name,
                serde_json::json!({ "purge_kv": purge_kv }),
            )
            .await?;
            storage.close().await;
            println!("uninstalled {name} from tenant '{tenant}'");
            Ok(())
        }
    }
}

async fn set_enabled(tenant: String, name: String, db: ServeArgs, enabled: bool) -> Result<()> {
    let (storage, settings) = crate::open_db(db).await?;
    let t = tenant_id(storage.as_ref(), &tenant).await?;
    host(storage.clone(), &settings)
        .await?
        .update(t, &name, Some(enabled), None, None)
        .await?;
    audit_plugin(
        storage.as_ref(),
        t,
        "plugin.change",
        &name,
        serde_json::json!({ "enabled": enabled }),
    )
    .await?;
    storage.close().await;
    println!(
        "{} {name} for tenant '{tenant}'",
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}

/// Records a plugin change made with the CLI in the tenant's audit log.
async fn audit_plugin(
    storage: &dyn Storage,
    tenant: hub_core::TenantId,
    action: &str,
    name: &str,
    after: serde_json::Value,
) -> Result<()> {
    crate::people::audit_cli(
        storage,
        Some(tenant),
        action,
        format!("plugin:{name}"),
        None,
        Some(after.to_string()),
    )
    .await
}
