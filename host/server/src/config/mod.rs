//! Configuration: command-line flags, then `HUB_*` environment variables, then `hub.toml`, then
//! defaults (clap resolves flags and environment; the file fills what both left unset). The flags
//! and the file's names are `flags`; this module resolves them into [`Settings`].

pub mod bus;
mod flags;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hub_core::time::parse_duration_ms;

use flags::FileConfig;
pub use flags::ServeArgs;

/// A list flag: the command line's when given, else the file's.
fn list(cli: Vec<String>, file: Option<Vec<String>>) -> Vec<String> {
    if cli.is_empty() {
        file.unwrap_or_default()
    } else {
        cli
    }
}

/// `--remote-catalog NAME=URL` with `--remote-catalog-token NAME=TOKEN`, checked.
fn remote_catalogs(
    catalogs: Vec<String>,
    tokens: Vec<String>,
) -> Result<Vec<hub_catalog::RemoteCatalog>> {
    let pair = |flag: &str, s: &str| -> Result<(String, String)> {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--{flag} {s}: expected NAME=VALUE"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            anyhow::bail!("--{flag} {s}: the name must be letters, digits, - and _");
        }
        Ok((name.to_string(), value.trim().to_string()))
    };
    let tokens = tokens
        .iter()
        .map(|t| pair("remote-catalog-token", t))
        .collect::<Result<Vec<_>>>()?;
    let mut out: Vec<hub_catalog::RemoteCatalog> = Vec::new();
    for c in &catalogs {
        let (name, url) = pair("remote-catalog", c)?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!("--remote-catalog {c}: the URL must start with http:// or https://");
        }
        if out.iter().any(|r| r.name == name) {
            anyhow::bail!("--remote-catalog: '{name}' is given twice");
        }
        out.push(hub_catalog::RemoteCatalog {
            token: tokens
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.clone()),
            name,
            url,
        });
    }
    if let Some((n, _)) = tokens
        .iter()
        .find(|(n, _)| !out.iter().any(|r| &r.name == n))
    {
        anyhow::bail!("--remote-catalog-token {n}=…: there is no --remote-catalog named '{n}'");
    }
    Ok(out)
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub http: hub_api::listener::HttpLimits,
    pub database_url: String,
    pub api: hub_api::ApiConfig,
    pub retention: hub_storage::RetentionPolicy,
    pub retention_interval_ms: i64,
    pub queue_capacity: usize,
    pub tenant_queue_capacity: usize,
    pub writers: usize,
    /// The ingest bus, and what this replica runs.
    pub bus: bus::Bus,
    pub role: bus::Role,
    pub db_connections: u32,
    pub db_cache_bytes: usize,
    pub demo_tenant: String,
    pub admin_email: String,
    pub runtime: hub_runtime::RuntimeConfig,
    pub plugin_host: hub_plugins::PluginHostConfig,
    /// Package limits, remote catalogs and the keys trusted for them.
    pub market: hub_catalog::MarketConfig,
    /// Tenants' own CPU budgets by name (resolved to ids when storage is open).
    pub tenant_cpu_budgets: Vec<(String, std::time::Duration)>,
    pub plugins_dir: PathBuf,
    pub reprice: hub_pipeline::RepriceConfig,
    /// When detectors and forecasters run.
    pub analysis: hub_pipeline::schedule::SchedulerConfig,
    /// How alert notices reach their targets.
    pub delivery: hub_pipeline::alerts::deliver::DeliveryConfig,
}

/// Writers for PostgreSQL: one per core of this machine, 2 to 8. On the 2-core benchmark machine
/// (hub and database on the same cores) 2 writers ran at 108k events/s, 3 at 106k, 4 at 98–105k,
/// 8 at 75k and 1 at 88k: more transactions in flight than cores only contend.
fn postgres_writers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

fn duration(name: &str, value: Option<String>, default: &str) -> Result<i64> {
    let v = value.unwrap_or_else(|| default.to_string());
    parse_duration_ms(&v).map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

/// A timeout: a duration above zero.
fn timeout(name: &str, value: Option<String>, default: &str) -> Result<std::time::Duration> {
    let ms = duration(name, value, default)?;
    if ms <= 0 {
        anyhow::bail!("{name}: must be above zero");
    }
    Ok(std::time::Duration::from_millis(ms as u64))
}

/// A duration that may be zero ("0" or "off").
fn duration_or_zero(
    name: &str,
    value: Option<String>,
    default: &str,
) -> Result<std::time::Duration> {
    let v = value.unwrap_or_else(|| default.to_string());
    if v == "0" || v == "off" {
        return Ok(std::time::Duration::ZERO);
    }
    let ms = duration(name, Some(v), default)?;
    Ok(std::time::Duration::from_millis(ms.max(0) as u64))
}

/// `TENANT=DURATION` pairs.
fn tenant_budgets(values: Vec<String>) -> Result<Vec<(String, std::time::Duration)>> {
    values
        .into_iter()
        .map(|v| {
            let (tenant, d) = v.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--plugin-tenant-cpu-budget {v}: expected TENANT=DURATION")
            })?;
            let d = duration_or_zero("--plugin-tenant-cpu-budget", Some(d.to_string()), "0")?;
            Ok((tenant.to_string(), d))
        })
        .collect()
}

fn keep(name: &str, value: Option<String>, default: &str) -> Result<Option<i64>> {
    let v = value.unwrap_or_else(|| default.to_string());
    if v == "forever" || v == "0" {
        return Ok(None);
    }
    parse_duration_ms(&v)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{name}: {e} (or 'forever')"))
}

impl ServeArgs {
    pub fn resolve(self) -> Result<Settings> {
        let file = match self
            .config
            .clone()
            .or_else(|| Path::new("hub.toml").exists().then(|| "hub.toml".into()))
        {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("in {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| "data".into());
        let database_url = self
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("hub.db").display()));
        let postgres = database_url.starts_with("postgres");
        let defaults = hub_api::ApiConfig::default();
        let ingest = hub_core::ingest::IngestLimits {
            max_events: self
                .max_batch_events
                .or(file.max_batch_events)
                .unwrap_or(defaults.ingest.max_events),
            max_age_ms: duration(
                "max_event_age",
                self.max_event_age.or(file.max_event_age),
                "7d",
            )?,
            max_future_ms: duration(
                "max_event_future",
                self.max_event_future.or(file.max_event_future),
                "1h",
            )?,
            ..defaults.ingest.clone()
        };
        let oidc = match self.oidc_issuer.clone().or(file.oidc_issuer.clone()) {
            None => None,
            Some(issuer) => {
                let need = |name: &str, v: Option<String>| {
                    v.ok_or_else(|| {
                        anyhow::anyhow!("--oidc-issuer is set, so --{name} is needed too")
                    })
                };
                let rules = |flag: &str, cli: &[String], file: &Option<Vec<String>>| {
                    let list = if cli.is_empty() {
                        file.clone().unwrap_or_default()
                    } else {
                        cli.to_vec()
                    };
                    list.iter()
                        .map(|r| {
                            hub_api::oidc::RoleRule::parse(r)
                                .map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
                        })
                        .collect::<Result<Vec<_>>>()
                };
                let settings = hub_api::oidc::OidcSettings {
                    issuer,
                    client_id: need(
                        "oidc-client-id",
                        self.oidc_client_id.clone().or(file.oidc_client_id.clone()),
                    )?,
                    client_secret: self
                        .oidc_client_secret
                        .clone()
                        .or(file.oidc_client_secret.clone()),
                    redirect_url: need(
                        "oidc-redirect-url",
                        self.oidc_redirect_url
                            .clone()
                            .or(file.oidc_redirect_url.clone()),
                    )?,
                    scopes: self
                        .oidc_scopes
                        .clone()
                        .or(file.oidc_scopes.clone())
                        .unwrap_or_else(|| "email profile".into())
                        .split_whitespace()
                        .filter(|s| *s != "openid")
                        .map(String::from)
                        .collect(),
                    groups_claim: self
                        .oidc_groups_claim
                        .clone()
                        .or(file.oidc_groups_claim.clone())
                        .unwrap_or_else(|| "groups".into()),
                    domain_roles: rules(
                        "oidc-domain-role",
                        &self.oidc_domain_roles,
                        &file.oidc_domain_roles,
                    )?,
                    group_roles: rules(
                        "oidc-group-role",
                        &self.oidc_group_roles,
                        &file.oidc_group_roles,
                    )?,
                    after_login_url: self
                        .oidc_after_login_url
                        .clone()
                        .or(file.oidc_after_login_url.clone())
                        .unwrap_or_else(|| "/".into()),
                };
                hub_api::oidc::Oidc::new(settings.clone()).map_err(|e| anyhow::anyhow!(e))?;
                Some(settings)
            }
        };
        let bus = bus::resolve(bus::BusArgs {
            bus: self.bus.or(file.bus),
            role: self.role.or(file.role),
            topic: self.bus_topic.or(file.bus_topic),
            group: self.bus_group.or(file.bus_group),
            partitions: self.bus_partitions.or(file.bus_partitions),
            replication: self.bus_replication.or(file.bus_replication),
            spread: list(self.bus_spread, file.bus_spread),
            max_lag: self.bus_max_lag.or(file.bus_max_lag),
            ack_timeout: self.bus_ack_timeout.or(file.bus_ack_timeout),
        })?;
        let queue_capacity = self
            .queue_capacity
            .or(file.queue_capacity)
            .unwrap_or(200_000);
        let memory_cap = self
            .plugin_memory_mib
            .or(file.plugin_memory_mib)
            .map_or_else(hub_runtime::default_memory_cap, |m| m.max(1) << 20);
        let tenant_memory_cap = self
            .plugin_tenant_memory_mib
            .or(file.plugin_tenant_memory_mib)
            .map_or_else(
                || hub_runtime::default_tenant_memory_cap(memory_cap),
                |m| m.max(1) << 20,
            );
        let max_instances = self
            .plugin_max_instances
            .or(file.plugin_max_instances)
            .unwrap_or(200)
            .max(1);
        Ok(Settings {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            http: hub_api::listener::HttpLimits {
                max_connections: match self.max_connections.or(file.max_connections) {
                    Some(0) => anyhow::bail!("max_connections: must be at least 1"),
                    cap => cap,
                },
                header_timeout: timeout(
                    "header_timeout",
                    self.header_timeout.or(file.header_timeout),
                    "10s",
                )?,
                body_timeout: timeout(
                    "body_timeout",
                    self.body_timeout.or(file.body_timeout),
                    "30s",
                )?,
            },
            database_url,
            api: hub_api::ApiConfig {
                max_body_bytes: self
                    .max_body_bytes
                    .or(file.max_body_bytes)
                    .unwrap_or(defaults.max_body_bytes),
                max_decompressed_bytes: self
                    .max_decompressed_bytes
                    .or(file.max_decompressed_bytes)
                    .unwrap_or(defaults.max_decompressed_bytes),
                ingest,
                metrics_token: self.metrics_token.or(file.metrics_token),
                api_key_rate_limit_per_s: self
                    .api_key_rate_limit
                    .or(file.api_key_rate_limit)
                    .unwrap_or(defaults.api_key_rate_limit_per_s),
                secure_cookies: self
                    .secure_cookies
                    .or(file.secure_cookies)
                    .unwrap_or(defaults.secure_cookies),
                oidc,
                public_catalog: self.public_catalog.or(file.public_catalog).unwrap_or(false),
                // Both filled by `hub serve` from the resolved settings (GET /v1/settings and
                // the most a tenant may keep).
                settings: serde_json::Value::Null,
                retention: defaults.retention,
                reprice_max_range_ms: timeout(
                    "reprice_max_range",
                    self.reprice_max_range.or(file.reprice_max_range),
                    &format!("{}d", hub_api::DEFAULT_REPRICE_MAX_RANGE_DAYS),
                )?
                .as_millis() as i64,
                web_dir: match self.web_dir.or(file.web_dir) {
                    Some(d) => {
                        if !d.join("index.html").is_file() {
                            anyhow::bail!(
                                "--web-dir {}: no index.html there (build the UI: npm --prefix web run build)",
                                d.display()
                            );
                        }
                        Some(d)
                    }
                    None => {
                        Some(PathBuf::from("web/dist")).filter(|d| d.join("index.html").is_file())
                    }
                },
            },
            retention: hub_storage::RetentionPolicy {
                raw_ms: keep(
                    "retention_raw",
                    self.retention_raw.or(file.retention_raw),
                    "30d",
                )?,
                minute_ms: keep(
                    "retention_minute",
                    self.retention_minute.or(file.retention_minute),
                    "14d",
                )?,
                hour_ms: keep(
                    "retention_hour",
                    self.retention_hour.or(file.retention_hour),
                    "400d",
                )?,
                day_ms: keep(
                    "retention_day",
                    self.retention_day.or(file.retention_day),
                    "forever",
                )?,
            },
            retention_interval_ms: duration(
                "retention_interval",
                self.retention_interval.or(file.retention_interval),
                "1h",
            )?,
            queue_capacity,
            tenant_queue_capacity: self
                .tenant_queue_capacity
                .or(file.tenant_queue_capacity)
                .unwrap_or(queue_capacity / 4)
                .max(1),
            writers: self.writers.or(file.writers).unwrap_or(if postgres {
                postgres_writers()
            } else {
                1
            }),
            db_connections: self.db_connections.or(file.db_connections).unwrap_or(8),
            db_cache_bytes: self
                .db_cache_mib
                .or(file.db_cache_mib)
                .map_or(hub_storage::DEFAULT_CACHE_BYTES, |m| m.max(1) << 20),
            demo_tenant: self
                .demo_tenant
                .or(file.demo_tenant)
                .unwrap_or_else(|| "demo".into()),
            admin_email: self
                .admin_email
                .or(file.admin_email)
                .unwrap_or_else(|| "admin@localhost".into()),
            runtime: hub_runtime::RuntimeConfig {
                cache_dir: Some(
                    self.plugin_cache_dir
                        .or(file.plugin_cache_dir)
                        .unwrap_or_else(|| data_dir.join("plugin-cache")),
                ),
                allow_private_http: self
                    .plugin_allow_private_http
                    .or(file.plugin_allow_private_http)
                    .unwrap_or(false),
                max_deadline: timeout(
                    "plugin_max_deadline",
                    self.plugin_max_deadline.or(file.plugin_max_deadline),
                    "2s",
                )?,
                max_memory_bytes: self
                    .plugin_max_memory_mib
                    .or(file.plugin_max_memory_mib)
                    .unwrap_or(256)
                    .max(1)
                    << 20,
                // The pooling allocator keeps a slot for every live instance, and a few more for
                // the instances re-pricing makes.
                max_instances: (max_instances + 56) as u32,
                memory_cap,
                tenant_memory_cap,
                ..Default::default()
            },
            analysis: hub_pipeline::schedule::SchedulerConfig {
                concurrency: self
                    .analysis_concurrency
                    .or(file.analysis_concurrency)
                    .unwrap_or(1)
                    .max(1),
                settle: timeout(
                    "analysis_settle",
                    self.analysis_settle.or(file.analysis_settle),
                    "20s",
                )?,
                ..Default::default()
            },
            delivery: hub_pipeline::alerts::deliver::DeliveryConfig {
                retry_base: timeout(
                    "alert_retry_base",
                    self.alert_retry_base.or(file.alert_retry_base),
                    "10s",
                )?,
                give_up: timeout(
                    "alert_give_up",
                    self.alert_give_up.or(file.alert_give_up),
                    "6h",
                )?,
                ..Default::default()
            },
            reprice: hub_pipeline::RepriceConfig {
                max_job: timeout(
                    "reprice_max_job",
                    self.reprice_max_job.or(file.reprice_max_job),
                    "1h",
                )?,
                ..Default::default()
            },
            plugin_host: hub_plugins::PluginHostConfig {
                max_consecutive_failures: self
                    .plugin_max_failures
                    .or(file.plugin_max_failures)
                    .unwrap_or(5)
                    .max(1),
                max_instances,
                max_series: self
                    .plugin_max_series
                    .or(file.plugin_max_series)
                    .unwrap_or(hub_plugins::DEFAULT_MAX_SERIES)
                    .clamp(1, hub_plugins::MAX_SERIES_LIMIT),
                cpu_budget: match self.plugin_cpu_budget.or(file.plugin_cpu_budget) {
                    Some(v) => duration_or_zero("plugin_cpu_budget", Some(v), "0")?,
                    None => hub_plugins::default_cpu_budget(),
                },
                throttle_disable_after: Some(duration_or_zero(
                    "plugin_throttle_disable",
                    self.plugin_throttle_disable
                        .or(file.plugin_throttle_disable),
                    "60s",
                )?)
                .filter(|d| !d.is_zero()),
                idle_release: Some(duration_or_zero(
                    "plugin_idle_release",
                    self.plugin_idle_release.or(file.plugin_idle_release),
                    "5m",
                )?)
                .filter(|d| !d.is_zero()),
                ..Default::default()
            },
            market: hub_catalog::MarketConfig {
                max_package_bytes: self
                    .max_package_bytes
                    .or(file.max_package_bytes)
                    .unwrap_or(hub_marketplace::package::DEFAULT_MAX_PACKAGE_BYTES),
                remotes: remote_catalogs(
                    list(self.remote_catalogs, file.remote_catalogs),
                    list(self.remote_catalog_tokens, file.remote_catalog_tokens),
                )?,
                trusted_keys: {
                    let keys = list(self.trusted_publisher_keys, file.trusted_publisher_keys);
                    for k in &keys {
                        hub_marketplace::PublicKey::parse(k)
                            .map_err(|e| anyhow::anyhow!("--trusted-publisher-key {k}: {e}"))?;
                    }
                    keys
                },
            },
            bus: bus.0,
            role: bus.1,
            tenant_cpu_budgets: tenant_budgets(list(
                self.plugin_tenant_cpu_budgets,
                file.plugin_tenant_cpu_budgets,
            ))?,
            plugins_dir: self
                .plugins_dir
                .or(file.plugins_dir)
                .unwrap_or_else(|| "dist/plugins".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nretention_raw = \"2d\"\nmax_batch_events = 50\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            max_batch_events: Some(7),
            ..Default::default()
        };
        let s = args.resolve().unwrap();
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.api.ingest.max_events, 7);
        assert_eq!(s.retention.raw_ms, Some(2 * hub_core::time::DAY_MS));
        assert_eq!(s.retention.day_ms, None);
        assert!(s.database_url.starts_with("sqlite://data"));
        std::fs::write(&path, "lisen = 1\n").unwrap();
        let err = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
        let err = ServeArgs {
            retention_raw: Some("3 weeks".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("retention_raw"), "{err}");
    }

    #[test]
    fn connection_limits_resolve_like_the_rest() {
        let s = ServeArgs::default().resolve().unwrap();
        assert_eq!(
            s.http.max_connections, None,
            "derived from the open-file limit at start"
        );
        assert_eq!(s.http.header_timeout, std::time::Duration::from_secs(10));
        assert_eq!(s.http.body_timeout, std::time::Duration::from_secs(30));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(
            &path,
            "max_connections = 300\nheader_timeout = \"5s\"\nbody_timeout = \"1m\"\n",
        )
        .unwrap();
        let s = ServeArgs {
            config: Some(path.clone()),
            header_timeout: Some("1500ms".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.http.max_connections, Some(300));
        assert_eq!(
            s.http.header_timeout,
            std::time::Duration::from_millis(1500)
        );
        assert_eq!(s.http.body_timeout, std::time::Duration::from_secs(60));
        for (args, name) in [
            (
                ServeArgs {
                    header_timeout: Some("0s".into()),
                    ..Default::default()
                },
                "header_timeout",
            ),
            (
                ServeArgs {
                    body_timeout: Some("soon".into()),
                    ..Default::default()
                },
                "body_timeout",
            ),
            (
                ServeArgs {
                    max_connections: Some(0),
                    ..Default::default()
                },
                "max_connections",
            ),
        ] {
            let err = args.resolve().unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
