//! `hub`: the LLM Analytics Hub server and its command line.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod author;
#[cfg(feature = "bench")]
mod bench;
mod bus;
mod config;
mod people;
mod plugin_args;
mod plugins;
mod serve;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use hub_core::ApiKeyScope;

#[derive(Debug, Parser)]
#[command(
    name = "hub",
    version,
    about = "LLM Analytics Hub: ingest LLM events, query analytics"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "HUB_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub (migrates the database first).
    Serve {
        #[command(flatten)]
        args: config::ServeArgs,
        /// What this replica runs: `all` (default), `ingest` (the API, publishing to the Kafka
        /// bus) or `worker` (the pipeline consuming it, and the scheduled work).
        #[arg(long, env = "HUB_ROLE")]
        role: Option<String>,
    },
    /// Run database migrations and exit.
    Migrate(config::ServeArgs),
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Manage users and their roles.
    User {
        #[command(subcommand)]
        command: people::UserCommand,
    },
    /// Read the audit log.
    Audit {
        #[command(subcommand)]
        command: people::AuditCommand,
    },
    /// Publisher keys: generate a key pair, register it with a hub.
    Keys {
        #[command(subcommand)]
        command: author::KeysCommand,
    },
    /// Write, build, test, pack and publish plugins; manage a tenant's installs.
    Plugin {
        #[command(subcommand)]
        command: plugins::PluginCommand,
    },
    /// The Kafka bus's dead letters: messages the workers could not read.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Print the API's OpenAPI document (what the admin UI's types are generated from).
    Openapi,
    /// Load generators and query benchmarks.
    #[cfg(feature = "bench")]
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Load generators and query benchmarks: not in this build (`--features bench` has them).
    #[cfg(not(feature = "bench"))]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// The hub's compile worker: a component on stdin, its compiled artifact on stdout.
    #[command(hide = true)]
    CompileComponent {
        #[arg(long)]
        max_memory_bytes: usize,
        #[arg(long)]
        max_instances: u32,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// The newest dead letters, each with its reason and where it was (JSON).
    List {
        #[command(flatten)]
        args: config::ServeArgs,
        /// How many (default 100).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Publishes every dead letter not replayed before to the ingest topic again (after the cause
    /// is fixed: a worker that reads a newer format, say); what still cannot be read comes back.
    Replay {
        #[command(flatten)]
        args: config::ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Lowercase letters, digits and dashes.
        name: String,
        #[command(flatten)]
        db: config::ServeArgs,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        db: config::ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create an API key; the key is printed alone on the last line of stdout, once.
    Create {
        #[arg(long)]
        tenant: String,
        /// Comma-separated: ingest, query, admin.
        #[arg(long, default_value = "ingest,query")]
        scopes: String,
        /// A name to recognise the key by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Lifetime such as 90d (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
        /// Requests per second this key may make (default: the server's --api-key-rate-limit).
        #[arg(long)]
        rate_limit: Option<u32>,
        #[command(flatten)]
        db: config::ServeArgs,
    },
    /// List a tenant's keys (prefix, scopes, state, created, last used, expiry); never secrets.
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        db: config::ServeArgs,
    },
    /// Revoke a key now. A running hub stops accepting it within 30 s (at once when revoked
    /// through DELETE /v1/api-keys on that hub).
    Revoke {
        #[arg(long)]
        tenant: String,
        /// The key's prefix (hub_xxxxxxxx) or id.
        key: String,
        #[command(flatten)]
        db: config::ServeArgs,
    },
    /// Replace a key with a new one (same name, scopes, expiry, rate limit), printed alone on the
    /// last line; the old key stops working after --grace (default: now).
    Rotate {
        #[arg(long)]
        tenant: String,
        /// The key's prefix (hub_xxxxxxxx) or id.
        key: String,
        /// How long the old key keeps working, such as 1h (at most 7d).
        #[arg(long)]
        grace: Option<String>,
        #[command(flatten)]
        db: config::ServeArgs,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn open_db(
    args: config::ServeArgs,
) -> Result<(std::sync::Arc<dyn hub_storage::Storage>, config::Settings)> {
    let settings = args.resolve()?;
    let storage = hub_storage::open(
        &settings.database_url,
        &hub_storage::StorageOptions {
            max_connections: settings.db_connections,
            cache_bytes: settings.db_cache_bytes,
        },
    )
    .await
    .with_context(|| format!("opening {}", redact(&settings.database_url)))?;
    storage.migrate().await.context("running migrations")?;
    Ok((storage, settings))
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(colon) => format!("{}:***{}", &url[..s + 3 + colon], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

pub(crate) fn valid_tenant_name(name: &str) -> Result<()> {
    hub_core::tenant::check_tenant_name(name).map_err(anyhow::Error::msg)
}

/// Creates a key and returns the secret.
pub(crate) async fn create_key(
    storage: &dyn hub_storage::Storage,
    tenant: hub_core::TenantId,
    name: &str,
    scopes: Vec<ApiKeyScope>,
    expires_at_ms: Option<i64>,
) -> Result<(String, hub_storage::ApiKeyRecord)> {
    let (secret, new_key) =
        hub_api::credentials::api_keys::generate_api_key(name, scopes, expires_at_ms);
    let record = storage
        .tenants()
        .create_api_key(tenant, &new_key, hub_core::time::now_ms())
        .await?;
    Ok((secret, record))
}

/// The tenant called `name`, or an error that says how to create it.
pub(crate) async fn tenant_named(
    storage: &dyn hub_storage::Storage,
    name: &str,
) -> Result<hub_storage::Tenant> {
    storage
        .tenants()
        .tenant_by_name(name)
        .await?
        .with_context(|| format!("no tenant named '{name}' (hub tenant create {name})"))
}

/// The tenant's key with this prefix or id.
async fn key_named(
    storage: &dyn hub_storage::Storage,
    tenant: &hub_storage::Tenant,
    key: &str,
) -> Result<hub_storage::ApiKeyRecord> {
    hub_api::credentials::api_keys::find_api_key(storage, tenant.id, key)
        .await?
        .with_context(|| {
            format!(
                "tenant '{}' has no API key '{key}' (hub api-key list --tenant {})",
                tenant.name, tenant.name
            )
        })
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve { mut args, role } => {
            args.role = role;
            serve::run(args).await
        }
        Command::Plugin { command } => plugins::run(command).await,
        Command::CompileComponent {
            max_memory_bytes,
            max_instances,
        } => std::process::exit(hub_runtime::worker_main(max_memory_bytes, max_instances)),
        Command::Keys { command } => author::keys(command).await,
        Command::Dlq { command } => match command {
            DlqCommand::List { args, limit } => bus::dlq(args, false, limit).await,
            DlqCommand::Replay { args } => bus::dlq(args, true, 0).await,
        },
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&hub_api::openapi_json())?
            );
            Ok(())
        }
        Command::Migrate(args) => {
            let (storage, settings) = open_db(args).await?;
            storage.close().await;
            println!("migrations applied to {}", redact(&settings.database_url));
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::Create { name, db },
        } => {
            valid_tenant_name(&name)?;
            let (storage, _) = open_db(db).await?;
            let tenant = storage
                .tenants()
                .create_tenant(&name, hub_core::time::now_ms())
                .await?;
            storage.close().await;
            println!("created tenant '{}' (id {})", tenant.name, tenant.id);
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::List { db },
        } => {
            let (storage, _) = open_db(db).await?;
            for t in storage.tenants().list_tenants().await? {
                println!(
                    "{:>6}  {:<24}  created {}",
                    t.id.get(),
                    t.name,
                    hub_core::time::to_rfc3339(t.created_at_ms)
                );
            }
            storage.close().await;
            Ok(())
        }
        Command::ApiKey {
            command:
                ApiKeyCommand::Create {
                    tenant,
                    scopes,
                    name,
                    expires_in,
                    rate_limit,
                    db,
                },
        } => {
            let scopes =
                ApiKeyScope::parse_list(&scopes).map_err(|e| anyhow::anyhow!("--scopes: {e}"))?;
            let expires_at = expires_in
                .map(|d| {
                    hub_core::time::parse_duration_ms(&d).map(|ms| hub_core::time::now_ms() + ms)
                })
                .transpose()
                .map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?;
            let (storage, _) = open_db(db).await?;
            let t = tenant_named(storage.as_ref(), &tenant).await?;
            if rate_limit == Some(0) {
                anyhow::bail!("--rate-limit: must be at least 1 request per second");
            }
            let (secret, mut new_key) =
                hub_api::credentials::api_keys::generate_api_key(&name, scopes, expires_at);
            new_key.rate_limit_per_s = rate_limit;
            let record = storage
                .tenants()
                .create_api_key(t.id, &new_key, hub_core::time::now_ms())
                .await?;
            storage.close().await;
            let scopes: Vec<_> = record.scopes.iter().map(|s| s.as_str()).collect();
            println!(
                "created API key {} for tenant '{}' with scopes {} (shown once):",
                record.prefix,
                t.name,
                scopes.join(",")
            );
            println!("{secret}");
            Ok(())
        }
        Command::ApiKey {
            command: ApiKeyCommand::List { tenant, db },
        } => {
            let (storage, _) = open_db(db).await?;
            let t = tenant_named(storage.as_ref(), &tenant).await?;
            let now = hub_core::time::now_ms();
            let when = |ms: Option<i64>| ms.map(hub_core::time::to_rfc3339).unwrap_or("-".into());
            println!(
                "{:>5}  {:<12}  {:<20}  {:<9}  {:<17}  {:<24}  {:<24}  {:<24}  name",
                "id", "prefix", "scopes", "state", "rate limit", "created", "last used", "expires"
            );
            for k in storage.tenants().list_api_keys(t.id).await? {
                let state = k.state(now);
                let scopes: Vec<_> = k.scopes.iter().map(|s| s.as_str()).collect();
                println!(
                    "{:>5}  {:<12}  {:<20}  {:<9}  {:<17}  {:<24}  {:<24}  {:<24}  {}",
                    k.id,
                    k.prefix,
                    scopes.join(","),
                    state,
                    k.rate_limit_per_s
                        .map(|r| format!("{r}/s"))
                        .unwrap_or("server default".into()),
                    hub_core::time::to_rfc3339(k.created_at_ms),
                    when(k.last_used_at_ms),
                    when(
                        k.expires_at_ms
                            .or(k.revoked_at_ms.filter(|_| state == "rotating"))
                    ),
                    k.name
                );
            }
            storage.close().await;
            Ok(())
        }
        Command::ApiKey {
            command: ApiKeyCommand::Revoke { tenant, key, db },
        } => {
            let (storage, _) = open_db(db).await?;
            let t = tenant_named(storage.as_ref(), &tenant).await?;
            let k = key_named(storage.as_ref(), &t, &key).await?;
            storage
                .tenants()
                .revoke_api_key(t.id, k.id, hub_core::time::now_ms())
                .await?;
            storage.close().await;
            println!("revoked API key {} of tenant '{}'", k.prefix, t.name);
            Ok(())
        }
        Command::ApiKey {
            command:
                ApiKeyCommand::Rotate {
                    tenant,
                    key,
                    grace,
                    db,
                },
        } => {
            let grace_ms = grace
                .map(|g| hub_core::time::parse_duration_ms(&g))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--grace: {e}"))?
                .unwrap_or(0);
            anyhow::ensure!(
                (0..=7 * 86_400_000).contains(&grace_ms),
                "--grace: at most 7d"
            );
            let (storage, _) = open_db(db).await?;
            let t = tenant_named(storage.as_ref(), &tenant).await?;
            let old = key_named(storage.as_ref(), &t, &key).await?;
            let now = hub_core::time::now_ms();
            anyhow::ensure!(
                old.works_at(now),
                "API key {} no longer works; create a new key instead",
                old.prefix
            );
            let (secret, record, _) = hub_api::credentials::api_keys::rotate_api_key(
                storage.as_ref(),
                &old,
                now,
                now + grace_ms,
            )
            .await?;
            storage.close().await;
            println!(
                "API key {} replaces {} of tenant '{}'; {} stops working {} (new key shown once):",
                record.prefix,
                old.prefix,
                t.name,
                old.prefix,
                if grace_ms == 0 {
                    "now".to_string()
                } else {
                    format!("at {}", hub_core::time::to_rfc3339(now + grace_ms))
                }
            );
            println!("{secret}");
            Ok(())
        }
        Command::User { command } => people::run_user(command).await,
        Command::Audit { command } => people::run_audit(command).await,
        #[cfg(feature = "bench")]
        Command::Bench { command } => bench::run(command).await,
        #[cfg(not(feature = "bench"))]
        Command::Bench { .. } => anyhow::bail!(
            "this hub was built without its benchmarks (they are not part of the production binary): \
             build one with them, `cargo build --release -p hub-server --features bench`, and run \
             target/release/hub bench …"
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords_and_checks_names() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(
            super::redact("sqlite://data/hub.db"),
            "sqlite://data/hub.db"
        );
        assert!(super::valid_tenant_name("acme-2").is_ok());
        assert!(super::valid_tenant_name("Acme").is_err());
        assert!(super::valid_tenant_name("-x").is_err());
    }
}
