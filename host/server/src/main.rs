//! `hub`: the LLM Analytics Hub server and its command line.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod bench_plugins;
mod config;
mod plugins;
mod serve;

use anyhow::{Context, Result, bail};
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
    Serve(config::ServeArgs),
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
    /// Manage a tenant's plugins.
    Plugin {
        #[command(subcommand)]
        command: plugins::PluginCommand,
    },
    /// Load generators and query benchmarks.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
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
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if !ok {
        bail!(
            "tenant name '{name}' must be 1-64 lowercase letters, digits or dashes, not starting with a dash"
        );
    }
    Ok(())
}

/// Creates a key and returns the secret.
pub(crate) async fn create_key(
    storage: &dyn hub_storage::Storage,
    tenant: hub_core::TenantId,
    name: &str,
    scopes: Vec<ApiKeyScope>,
    expires_at_ms: Option<i64>,
) -> Result<(String, hub_storage::ApiKeyRecord)> {
    let (secret, new_key) = hub_api::generate_api_key(name, scopes, expires_at_ms);
    let record = storage
        .create_api_key(tenant, &new_key, hub_core::time::now_ms())
        .await?;
    Ok((secret, record))
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Plugin { command } => plugins::run(command).await,
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
            for t in storage.list_tenants().await? {
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
            let t = storage.tenant_by_name(&tenant).await?.with_context(|| {
                format!("no tenant named '{tenant}' (hub tenant create {tenant})")
            })?;
            let (secret, record) =
                create_key(storage.as_ref(), t.id, &name, scopes, expires_at).await?;
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
        Command::Bench { command } => bench::run(command).await,
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
