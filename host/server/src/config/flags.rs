//! What can be set: `hub serve`'s flags (each with its `HUB_*` environment variable) and the same
//! names in `hub.toml`. What they resolve to, with defaults and checks, is the parent module.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

/// Settings of `hub serve` (and, for the database, of every command that opens it).
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Configuration file (TOML with the same names as the flags, in snake_case).
    #[arg(long, env = "HUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the embedded database lives.
    #[arg(long, env = "HUB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "HUB_LISTEN")]
    pub listen: Option<String>,
    /// Open HTTP connections at most; past it new ones wait in the listen backlog (default: the
    /// open-file limit less 512, at most 10000).
    #[arg(long, env = "HUB_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// How long a connection may take to send a request's head, counted from the accept or, on a
    /// kept-alive connection, from the end of the previous response: so also the keep-alive idle
    /// timeout (default 10s).
    #[arg(long, env = "HUB_HEADER_TIMEOUT")]
    pub header_timeout: Option<String>,
    /// How long a request's body may take to arrive, plus 1 s per 64 KiB received (default 30s).
    #[arg(long, env = "HUB_BODY_TIMEOUT")]
    pub body_timeout: Option<String>,
    /// sqlite://PATH or postgres://USER@HOST:PORT/DB (default: SQLite under the data dir).
    #[arg(long, env = "HUB_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Largest request body in bytes (default 10 MiB).
    #[arg(long, env = "HUB_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest body after gzip decompression in bytes (default 100 MiB).
    #[arg(long, env = "HUB_MAX_DECOMPRESSED_BYTES")]
    pub max_decompressed_bytes: Option<usize>,
    /// Most events per request (default 10000).
    #[arg(long, env = "HUB_MAX_BATCH_EVENTS")]
    pub max_batch_events: Option<usize>,
    /// Oldest accepted event timestamp, as a duration before now (default 7d).
    #[arg(long, env = "HUB_MAX_EVENT_AGE")]
    pub max_event_age: Option<String>,
    /// Furthest accepted event timestamp into the future (default 1h).
    #[arg(long, env = "HUB_MAX_EVENT_FUTURE")]
    pub max_event_future: Option<String>,
    /// How long raw events are kept (default 30d; "forever" keeps them).
    #[arg(long, env = "HUB_RETENTION_RAW")]
    pub retention_raw: Option<String>,
    /// How long per-minute rollups are kept (default 14d).
    #[arg(long, env = "HUB_RETENTION_MINUTE")]
    pub retention_minute: Option<String>,
    /// How long per-hour rollups are kept (default 400d).
    #[arg(long, env = "HUB_RETENTION_HOUR")]
    pub retention_hour: Option<String>,
    /// How long per-day rollups are kept (default forever).
    #[arg(long, env = "HUB_RETENTION_DAY")]
    pub retention_day: Option<String>,
    /// How often retention runs (default 1h).
    #[arg(long, env = "HUB_RETENTION_INTERVAL")]
    pub retention_interval: Option<String>,
    /// The longest range one re-pricing request may cover (default 92d).
    #[arg(long, env = "HUB_REPRICE_MAX_RANGE")]
    pub reprice_max_range: Option<String>,
    /// How long one re-pricing job may run before it stops (default 1h).
    #[arg(long, env = "HUB_REPRICE_MAX_JOB")]
    pub reprice_max_job: Option<String>,
    /// Events queued for storage before ingest answers 429 (default 200000).
    #[arg(long, env = "HUB_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Events one tenant may have queued before its own requests get 429 (default a quarter of
    /// --queue-capacity): a tenant whose plugins hold its batches back fills its own share.
    #[arg(long, env = "HUB_TENANT_QUEUE_CAPACITY")]
    pub tenant_queue_capacity: Option<usize>,
    /// The ingest bus: `memory` (the default: in-process, one replica) or
    /// `kafka://host:port[,host:port]` (a Kafka-protocol broker between ingest and the pipeline).
    #[arg(long, env = "HUB_BUS")]
    pub bus: Option<String>,
    /// What this replica runs (`hub serve --role`, which sets it; not a flag of the other
    /// commands, some of which have a `--role` of their own).
    #[arg(skip)]
    pub role: Option<String>,
    /// Kafka bus: the ingest topic (default hub.ingest; dead letters go to <topic>.dead-letters).
    #[arg(long, env = "HUB_BUS_TOPIC")]
    pub bus_topic: Option<String>,
    /// Kafka bus: the workers' consumer group (default hub-pipeline).
    #[arg(long, env = "HUB_BUS_GROUP")]
    pub bus_group: Option<String>,
    /// Kafka bus: partitions of the ingest topic when the hub creates it (default 12).
    #[arg(long, env = "HUB_BUS_PARTITIONS")]
    pub bus_partitions: Option<i32>,
    /// Kafka bus: replicas of each partition when the hub creates the topic (default 1).
    #[arg(long, env = "HUB_BUS_REPLICATION")]
    pub bus_replication: Option<i32>,
    /// Kafka bus: TENANT=PARTITIONS, repeatable: a tenant too large for one partition (one
    /// worker) has its batches go to this many partitions in turn.
    #[arg(long = "bus-spread", env = "HUB_BUS_SPREAD", value_delimiter = ',')]
    pub bus_spread: Vec<String>,
    /// Kafka bus: batches a partition may be behind (published, not yet stored) before its
    /// tenants' ingest is answered 429 (default 2000).
    #[arg(long, env = "HUB_BUS_MAX_LAG")]
    pub bus_max_lag: Option<i64>,
    /// Kafka bus: how long a batch may wait for the broker's acknowledgement before ingest
    /// answers 503 (default 10s).
    #[arg(long, env = "HUB_BUS_ACK_TIMEOUT")]
    pub bus_ack_timeout: Option<String>,
    /// Pipeline writer tasks (default 1 for SQLite, which has one write slot; for PostgreSQL, this
    /// machine's cores, at least 2 and at most 8).
    #[arg(long, env = "HUB_WRITERS")]
    pub writers: Option<usize>,
    /// Database connections (default 8).
    #[arg(long, env = "HUB_DB_CONNECTIONS")]
    pub db_connections: Option<u32>,
    /// SQLite's page caches, all connections together, MiB (default 64).
    #[arg(long, env = "HUB_DB_CACHE_MIB")]
    pub db_cache_mib: Option<usize>,
    /// Bearer token that /metrics requires (default: none, /metrics is open).
    #[arg(long, env = "HUB_METRICS_TOKEN")]
    pub metrics_token: Option<String>,
    /// Requests per second an API key may make unless it has its own limit; 0 for no limit
    /// (default 1000).
    #[arg(long, env = "HUB_API_KEY_RATE_LIMIT")]
    pub api_key_rate_limit: Option<u32>,
    /// Tenant created on first start, with an API key printed once (default "demo").
    #[arg(long, env = "HUB_DEMO_TENANT")]
    pub demo_tenant: Option<String>,
    /// The first user, created with a one-time password when the hub has no users (default
    /// admin@localhost): an operator and owner of the demo tenant.
    #[arg(long, env = "HUB_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Mark session cookies Secure (serve over TLS, directly or behind a proxy).
    #[arg(long, env = "HUB_SECURE_COOKIES")]
    pub secure_cookies: Option<bool>,
    /// Single sign-on: the OpenID Connect provider's issuer URL (SSO is off without it).
    #[arg(long, env = "HUB_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    #[arg(long, env = "HUB_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    #[arg(long, env = "HUB_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// This hub's callback as registered at the provider, e.g.
    /// https://hub.example.com/v1/auth/oidc/callback.
    #[arg(long, env = "HUB_OIDC_REDIRECT_URL")]
    pub oidc_redirect_url: Option<String>,
    /// Scopes besides openid (default "email profile"), space-separated.
    #[arg(long, env = "HUB_OIDC_SCOPES")]
    pub oidc_scopes: Option<String>,
    /// The ID-token claim with the user's groups (default "groups").
    #[arg(long, env = "HUB_OIDC_GROUPS_CLAIM")]
    pub oidc_groups_claim: Option<String>,
    /// DOMAIN=TENANT:ROLE, repeatable: people with this email domain get this role.
    #[arg(
        long = "oidc-domain-role",
        env = "HUB_OIDC_DOMAIN_ROLES",
        value_delimiter = ','
    )]
    pub oidc_domain_roles: Vec<String>,
    /// GROUP=TENANT:ROLE, repeatable: members of this group get this role.
    #[arg(
        long = "oidc-group-role",
        env = "HUB_OIDC_GROUP_ROLES",
        value_delimiter = ','
    )]
    pub oidc_group_roles: Vec<String>,
    /// Where the browser goes after signing in (default "/").
    #[arg(long, env = "HUB_OIDC_AFTER_LOGIN_URL")]
    pub oidc_after_login_url: Option<String>,
    /// Where compiled plugin components are cached (default <data-dir>/plugin-cache).
    #[arg(long, env = "HUB_PLUGIN_CACHE_DIR")]
    pub plugin_cache_dir: Option<PathBuf>,
    /// First-party plugins (<name>/plugin.toml + <name>/<name>.wasm) installed for the demo
    /// tenant on first start (default dist/plugins).
    #[arg(long, env = "HUB_PLUGINS_DIR")]
    pub plugins_dir: Option<PathBuf>,
    /// Failures in a row after which a plugin is disabled for the tenant (default 5).
    #[arg(long, env = "HUB_PLUGIN_MAX_FAILURES")]
    pub plugin_max_failures: Option<u32>,
    /// Let plugins reach loopback and private addresses over HTTP (default false).
    #[arg(long, env = "HUB_PLUGIN_ALLOW_PRIVATE_HTTP")]
    pub plugin_allow_private_http: Option<bool>,
    /// Each tenant's plugin CPU time per second, e.g. 250ms (default 125ms per core of this
    /// machine; 0 turns budgets off). A tenant over it waits; its neighbours do not.
    #[arg(long, env = "HUB_PLUGIN_CPU_BUDGET")]
    pub plugin_cpu_budget: Option<String>,
    /// TENANT=DURATION, repeatable: a tenant's own plugin CPU budget per second.
    #[arg(
        long = "plugin-tenant-cpu-budget",
        env = "HUB_PLUGIN_TENANT_CPU_BUDGETS",
        value_delimiter = ','
    )]
    pub plugin_tenant_cpu_budgets: Vec<String>,
    /// How long a tenant may stay over its plugin CPU budget before its hungriest plugin is
    /// disabled (default 60s; 0 never disables).
    #[arg(long, env = "HUB_PLUGIN_THROTTLE_DISABLE")]
    pub plugin_throttle_disable: Option<String>,
    /// The longest deadline a plugin's manifest may ask for (default 2s): publishing and
    /// installing refuse a manifest above it.
    #[arg(long, env = "HUB_PLUGIN_MAX_DEADLINE")]
    pub plugin_max_deadline: Option<String>,
    /// The most memory per instance a plugin's manifest may ask for, MiB (default 256).
    #[arg(long, env = "HUB_PLUGIN_MAX_MEMORY_MIB")]
    pub plugin_max_memory_mib: Option<usize>,
    /// Live plugin instances at most, all tenants together (default 200); the least recently
    /// used goes first.
    #[arg(long, env = "HUB_PLUGIN_MAX_INSTANCES")]
    pub plugin_max_instances: Option<usize>,
    /// Linear memory all live plugin instances may hold together, MiB (default: a quarter of
    /// this machine's memory). Past three quarters of it, idle instances are dropped, the
    /// least recently used first.
    #[arg(long, env = "HUB_PLUGIN_MEMORY_MIB")]
    pub plugin_memory_mib: Option<usize>,
    /// Linear memory the live plugin instances of one tenant may hold together, MiB (default:
    /// an eighth of --plugin-memory-mib); past it, that tenant's plugins fail for memory.
    #[arg(long, env = "HUB_PLUGIN_TENANT_MEMORY_MIB")]
    pub plugin_tenant_memory_mib: Option<usize>,
    /// Plugin instances unused for this long are dropped, giving their memory back (default 5m).
    #[arg(long, env = "HUB_PLUGIN_IDLE_RELEASE")]
    pub plugin_idle_release: Option<String>,
    /// Series a detector or forecaster may watch per install at most (default 1000); a tenant's
    /// `series.max_series` over it is refused.
    #[arg(long, env = "HUB_PLUGIN_MAX_SERIES")]
    pub plugin_max_series: Option<u32>,
    /// Detector and forecaster runs at once on this replica, all tenants together (default 1).
    #[arg(long, env = "HUB_ANALYSIS_CONCURRENCY")]
    pub analysis_concurrency: Option<usize>,
    /// How long after a step ends its rollups are taken as complete and its detectors run
    /// (default 20s): events that arrive later than this are not seen by that run.
    #[arg(long, env = "HUB_ANALYSIS_SETTLE")]
    pub analysis_settle: Option<String>,
    /// The first wait before an alert delivery that failed is tried again (default 10s); each
    /// later wait doubles, up to 10 minutes, jittered between half and all of it.
    #[arg(long, env = "HUB_ALERT_RETRY_BASE")]
    pub alert_retry_base: Option<String>,
    /// An alert delivery not made this long after its notice was raised is given up (default 6h).
    #[arg(long, env = "HUB_ALERT_GIVE_UP")]
    pub alert_give_up: Option<String>,
    /// The admin UI's built files, served at / (default web/dist when it exists).
    #[arg(long, env = "HUB_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Largest plugin package accepted or downloaded, in bytes (default 20 MiB).
    #[arg(long, env = "HUB_MAX_PACKAGE_BYTES")]
    pub max_package_bytes: Option<usize>,
    /// Serve the marketplace catalog (listing, details, package downloads) without credentials,
    /// so that other hubs can install from it (default false: any API key or user).
    #[arg(long, env = "HUB_PUBLIC_CATALOG")]
    pub public_catalog: Option<bool>,
    /// NAME=URL, repeatable: another hub's marketplace that tenants may install from.
    #[arg(
        long = "remote-catalog",
        env = "HUB_REMOTE_CATALOGS",
        value_delimiter = ','
    )]
    pub remote_catalogs: Vec<String>,
    /// NAME=TOKEN, repeatable: the credential (an API key of the remote hub) for a remote catalog
    /// that does not serve its catalog publicly.
    #[arg(
        long = "remote-catalog-token",
        env = "HUB_REMOTE_CATALOG_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub remote_catalog_tokens: Vec<String>,
    /// ed25519:BASE64, repeatable: publisher keys trusted for packages from remote catalogs.
    #[arg(
        long = "trusted-publisher-key",
        env = "HUB_TRUSTED_PUBLISHER_KEYS",
        value_delimiter = ','
    )]
    pub trusted_publisher_keys: Vec<String>,
}

/// `hub.toml`: every field optional; unknown fields are errors.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) data_dir: Option<PathBuf>,
    pub(super) listen: Option<String>,
    pub(super) max_connections: Option<usize>,
    pub(super) header_timeout: Option<String>,
    pub(super) body_timeout: Option<String>,
    pub(super) database_url: Option<String>,
    pub(super) max_body_bytes: Option<usize>,
    pub(super) max_decompressed_bytes: Option<usize>,
    pub(super) max_batch_events: Option<usize>,
    pub(super) max_event_age: Option<String>,
    pub(super) max_event_future: Option<String>,
    pub(super) retention_raw: Option<String>,
    pub(super) retention_minute: Option<String>,
    pub(super) retention_hour: Option<String>,
    pub(super) retention_day: Option<String>,
    pub(super) retention_interval: Option<String>,
    pub(super) reprice_max_range: Option<String>,
    pub(super) reprice_max_job: Option<String>,
    pub(super) queue_capacity: Option<usize>,
    pub(super) tenant_queue_capacity: Option<usize>,
    pub(super) writers: Option<usize>,
    pub(super) bus: Option<String>,
    pub(super) role: Option<String>,
    pub(super) bus_topic: Option<String>,
    pub(super) bus_group: Option<String>,
    pub(super) bus_partitions: Option<i32>,
    pub(super) bus_replication: Option<i32>,
    pub(super) bus_spread: Option<Vec<String>>,
    pub(super) bus_max_lag: Option<i64>,
    pub(super) bus_ack_timeout: Option<String>,
    pub(super) db_connections: Option<u32>,
    pub(super) db_cache_mib: Option<usize>,
    pub(super) metrics_token: Option<String>,
    pub(super) api_key_rate_limit: Option<u32>,
    pub(super) demo_tenant: Option<String>,
    pub(super) admin_email: Option<String>,
    pub(super) secure_cookies: Option<bool>,
    pub(super) oidc_issuer: Option<String>,
    pub(super) oidc_client_id: Option<String>,
    pub(super) oidc_client_secret: Option<String>,
    pub(super) oidc_redirect_url: Option<String>,
    pub(super) oidc_scopes: Option<String>,
    pub(super) oidc_groups_claim: Option<String>,
    pub(super) oidc_domain_roles: Option<Vec<String>>,
    pub(super) oidc_group_roles: Option<Vec<String>>,
    pub(super) oidc_after_login_url: Option<String>,
    pub(super) plugin_cache_dir: Option<PathBuf>,
    pub(super) plugins_dir: Option<PathBuf>,
    pub(super) plugin_max_failures: Option<u32>,
    pub(super) plugin_allow_private_http: Option<bool>,
    pub(super) plugin_cpu_budget: Option<String>,
    pub(super) plugin_tenant_cpu_budgets: Option<Vec<String>>,
    pub(super) plugin_throttle_disable: Option<String>,
    pub(super) plugin_max_deadline: Option<String>,
    pub(super) plugin_max_memory_mib: Option<usize>,
    pub(super) plugin_max_instances: Option<usize>,
    pub(super) plugin_memory_mib: Option<usize>,
    pub(super) plugin_tenant_memory_mib: Option<usize>,
    pub(super) plugin_idle_release: Option<String>,
    pub(super) plugin_max_series: Option<u32>,
    pub(super) analysis_concurrency: Option<usize>,
    pub(super) analysis_settle: Option<String>,
    pub(super) alert_retry_base: Option<String>,
    pub(super) alert_give_up: Option<String>,
    pub(super) web_dir: Option<PathBuf>,
    pub(super) max_package_bytes: Option<usize>,
    pub(super) public_catalog: Option<bool>,
    pub(super) remote_catalogs: Option<Vec<String>>,
    pub(super) remote_catalog_tokens: Option<Vec<String>>,
    pub(super) trusted_publisher_keys: Option<Vec<String>>,
}
