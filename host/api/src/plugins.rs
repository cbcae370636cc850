//! `/v1/plugins`: the tenant's plugins, their order, configuration, grants and health.

use std::sync::Arc;

use crate::ApiQuery;
use axum::Json;
use axum::extract::{Path, State};
use hub_catalog::InstallRequest;
use hub_plugins::PluginHost;
use hub_plugins::{GrantsDoc, PluginAdminError};
use hub_storage::PluginInstall;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{ApiError, AppState, Principal, Right};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plugins, put_plugins, install_plugin))
        .routes(routes!(get_plugin, put_plugin, delete_plugin))
}

/// Capabilities granted to a plugin.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantsDto {
    /// The `kv` interface.
    #[serde(default)]
    pub kv: bool,
    /// Hosts (`host` or `host:port`) the plugin may call.
    #[serde(default)]
    pub http: Vec<String>,
}

impl From<GrantsDto> for GrantsDoc {
    fn from(g: GrantsDto) -> Self {
        GrantsDoc {
            kv: g.kv,
            http: g.http,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CapabilitiesDto {
    pub kv: bool,
    /// Hosts the manifest asks for; `*` means hosts the tenant chooses.
    pub http: Vec<String>,
    pub tags: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LimitsDto {
    pub deadline_ms: Option<u32>,
    pub memory_mib: Option<u32>,
    pub refresh_interval_s: Option<u32>,
}

impl CapabilitiesDto {
    pub(crate) fn of(m: &hub_marketplace::Manifest) -> Self {
        Self {
            kv: m.capabilities.kv,
            http: m.capabilities.http.clone(),
            tags: m.capabilities.tags,
        }
    }
}

impl LimitsDto {
    pub(crate) fn of(m: &hub_marketplace::Manifest) -> Self {
        Self {
            deadline_ms: m.limits.deadline_ms,
            memory_mib: m.limits.memory_mib,
            refresh_interval_s: m.limits.refresh_interval_s,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthDto {
    /// Failures in a row (stored; reset by a success).
    pub consecutive_failures: i64,
    /// Why the hub disabled the plugin, if it did.
    pub disabled_reason: Option<String>,
    /// Calls, failures and call times since this replica started.
    pub calls: u64,
    pub failures: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// CPU time of the calls (what the tenant's plugin budget is charged), in total and per call.
    pub cpu_ms: f64,
    pub cpu_ms_per_call: Option<f64>,
    pub last_error: Option<String>,
}

/// The tenant's plugin CPU budget on this replica.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetDto {
    /// CPU time the tenant's plugins may use per second (0: no budget).
    pub cpu_ms_per_second: u64,
    /// Time the tenant's events waited for budget since this replica started.
    pub throttled_s: f64,
    /// Whether the tenant is over its budget now (its events wait; other tenants' do not).
    pub throttled_now: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginDto {
    pub name: String,
    pub version: String,
    /// enricher, detector, forecaster or integration.
    pub kind: String,
    pub description: String,
    pub enabled: bool,
    /// Enrichers run in ascending position.
    pub position: i64,
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// JSON Schema of `config`.
    #[schema(value_type = Object)]
    pub config_schema: serde_json::Value,
    pub grants: GrantsDto,
    pub capabilities: CapabilitiesDto,
    pub limits: LimitsDto,
    /// The plugin's digest: SHA-256 over its manifest's and component's SHA-256.
    pub digest: String,
    pub installed_at: String,
    pub updated_at: String,
    pub health: HealthDto,
    /// Detectors and forecasters: the series they watch, resolved (the manifest's `[series]`
    /// with the tenant's `config.series` over it): metrics, group_by, step, history,
    /// max_series, every, and for forecasters horizon and level. Absent for other kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub series: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginListDto {
    pub plugins: Vec<PluginDto>,
    pub budget: BudgetDto,
}

/// Installs a package from a catalog for the tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginInstallRequest {
    /// The package name in the catalog.
    pub package: String,
    /// Default: the newest version that is not yanked.
    pub version: Option<String>,
    /// A remote catalog configured on this hub (`GET /v1/marketplace/catalogs`); default: this
    /// hub's own marketplace.
    pub catalog: Option<String>,
    /// Checked against the plugin's schema and by the plugin; default: the schema's `default`.
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    /// Capabilities granted; default: none. Only what the manifest asks for can be granted.
    pub grants: Option<GrantsDto>,
    /// Default: true.
    pub enabled: Option<bool>,
}

/// Changes to one plugin; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginUpdate {
    /// Moves the install to this version of its package (upgrade or downgrade). The
    /// configuration is carried over when it still fits (else send `config`); grants the new
    /// version still asks for are kept.
    pub version: Option<String>,
    /// The catalog to take `version` from (default: this hub's own).
    pub catalog: Option<String>,
    /// Enabling clears an automatic disable.
    pub enabled: Option<bool>,
    /// The whole configuration, checked against the plugin's schema and by the plugin.
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    pub grants: Option<GrantsDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginListUpdateItem {
    pub name: String,
    #[serde(flatten)]
    pub update: PluginUpdate,
}

/// The listed plugins run first, in this order; each entry may also change the plugin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginListUpdate {
    pub plugins: Vec<PluginListUpdateItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// Also delete what the plugin stored in kv (`true` to confirm).
    #[serde(default)]
    pub purge_kv: bool,
}

pub(crate) fn host(state: &AppState) -> Result<&Arc<PluginHost>, ApiError> {
    state
        .plugins()
        .ok_or_else(|| ApiError::Unavailable("plugins are not enabled on this hub".into()))
}

pub(crate) fn catalog(state: &AppState) -> Result<&Arc<hub_catalog::Catalog>, ApiError> {
    state
        .catalog
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("plugins are not enabled on this hub".into()))
}

/// Maps plugin administration errors, prefixing field paths with `at` (`plugins[2].`).
pub(crate) fn admin_error(e: PluginAdminError, at: &str) -> ApiError {
    match e {
        PluginAdminError::Config(errors) => {
            let first = &errors[0];
            let rest = errors.len() - 1;
            ApiError::invalid(
                &format!("{at}config{}", first.path),
                format!(
                    "{}{}",
                    first.message,
                    if rest > 0 {
                        format!(" (and {rest} more)")
                    } else {
                        String::new()
                    }
                ),
            )
        }
        PluginAdminError::Refused(m) => ApiError::invalid(&format!("{at}config"), m),
        PluginAdminError::Grants(m) => ApiError::invalid(&format!("{at}grants"), m),
        PluginAdminError::NotInstalled(n) => {
            ApiError::NotFound(format!("plugin '{n}' is not installed for this tenant"))
        }
        PluginAdminError::Manifest(m) => ApiError::BadRequest(m.to_string()),
        PluginAdminError::Load(l) => ApiError::BadRequest(l.to_string()),
        PluginAdminError::Package(p) => match p {
            hub_marketplace::PackageError::TooLarge { .. } => {
                ApiError::PayloadTooLarge(p.to_string())
            }
            other => ApiError::BadRequest(other.to_string()),
        },
        PluginAdminError::Key(m) | PluginAdminError::Yanked(m) => ApiError::BadRequest(m),
        PluginAdminError::Forbidden(m) => ApiError::Forbidden(m),
        PluginAdminError::Exists(m) => ApiError::Conflict(m),
        PluginAdminError::NotFound(m) => ApiError::NotFound(m),
        PluginAdminError::Remote(m) => ApiError::BadGateway(m),
        PluginAdminError::Storage(s) => s.into(),
    }
}

async fn dto(
    host: &PluginHost,
    i: PluginInstall,
    health: Option<&hub_plugins::Health>,
) -> Result<PluginDto, ApiError> {
    let manifest = host.manifest_of(&i).await.map_err(|e| admin_error(e, ""))?;
    let grants: GrantsDoc = serde_json::from_str(&i.grants_json).unwrap_or_default();
    let q = |q: f64| {
        health
            .and_then(|h| h.call_micros.quantile(q))
            .map(|us| (us / 1e3 * 1000.0).round() / 1000.0)
    };
    let config: serde_json::Value = serde_json::from_str(&i.config_json).unwrap_or_default();
    let series = hub_plugins::series_settings(&manifest, &config, u32::MAX)
        .ok()
        .flatten()
        .map(|s| s.to_config());
    Ok(PluginDto {
        series,
        name: i.name,
        version: i.version,
        kind: i.kind,
        description: manifest.description.clone(),
        enabled: i.enabled,
        position: i.position,
        config,
        config_schema: manifest.config_schema.clone(),
        grants: GrantsDto {
            kv: grants.kv,
            http: grants.http,
        },
        capabilities: CapabilitiesDto::of(&manifest),
        limits: LimitsDto::of(&manifest),
        digest: i.digest,
        installed_at: hub_core::time::to_rfc3339(i.installed_at_ms),
        updated_at: hub_core::time::to_rfc3339(i.updated_at_ms),
        health: HealthDto {
            consecutive_failures: i.consecutive_failures,
            disabled_reason: i.disabled_reason,
            calls: health.map(|h| h.calls).unwrap_or(0),
            failures: health.map(|h| h.failures).unwrap_or(0),
            p50_ms: q(0.5),
            p99_ms: q(0.99),
            cpu_ms: health.map_or(0.0, |h| h.cpu_micros as f64 / 1e3),
            cpu_ms_per_call: health
                .filter(|h| h.calls > 0)
                .map(|h| (h.cpu_micros as f64 / h.calls as f64).round() / 1e3),
            last_error: health.and_then(|h| h.last_error.clone()),
        },
    })
}

async fn list(state: &AppState, principal: &Principal) -> Result<PluginListDto, ApiError> {
    let host = host(state)?;
    let health = host.health(principal.tenant);
    let mut plugins = Vec::new();
    for i in state
        .storage
        .plugins()
        .plugin_installs(principal.tenant)
        .await?
    {
        let h = health.get(&i.name);
        plugins.push(dto(host, i, h).await?);
    }
    let budget = host.budget(principal.tenant);
    Ok(PluginListDto {
        plugins,
        budget: BudgetDto {
            cpu_ms_per_second: budget.cpu_per_second.as_millis() as u64,
            throttled_s: (budget.throttled.as_secs_f64() * 1000.0).round() / 1000.0,
            throttled_now: budget.throttled_now,
        },
    })
}

/// The tenant's plugin settings as the audit log shows them (config, grants, order, state).
async fn settings(state: &AppState, principal: &Principal) -> Result<serde_json::Value, ApiError> {
    let installs = state
        .storage
        .plugins()
        .plugin_installs(principal.tenant)
        .await?;
    Ok(serde_json::Value::Object(
        installs
            .into_iter()
            .map(|i| {
                let json = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
                (
                    i.name,
                    serde_json::json!({
                        "version": i.version,
                        "enabled": i.enabled,
                        "position": i.position,
                        "config": json(&i.config_json),
                        "grants": json(&i.grants_json),
                    }),
                )
            })
            .collect(),
    ))
}

/// Records a change of plugin settings with the settings before and after (only what changed).
async fn audit_change(
    state: &AppState,
    principal: &Principal,
    action: &str,
    target: Option<String>,
    before: serde_json::Value,
) -> Result<(), ApiError> {
    let after = settings(state, principal).await?;
    let (mut b, mut a) = (serde_json::Map::new(), serde_json::Map::new());
    if let (Some(before), Some(after)) = (before.as_object(), after.as_object()) {
        for name in before.keys().chain(after.keys()) {
            if before.get(name) != after.get(name) {
                if let Some(v) = before.get(name) {
                    b.insert(name.clone(), v.clone());
                }
                if let Some(v) = after.get(name) {
                    a.insert(name.clone(), v.clone());
                }
            }
        }
    }
    principal
        .audit(state, action, target, Some(b.into()), Some(a.into()))
        .await;
    Ok(())
}

fn read_scope(principal: &Principal) -> Result<(), ApiError> {
    principal.require(Right::ReadConfig)
}

#[utoipa::path(
    get, path = "/v1/plugins", tag = "plugins",
    description = "The tenant's plugins in running order, with configuration, grants and health. Needs the `query` or `admin` scope.",
    responses((status = 200, body = PluginListDto), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_plugins(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<PluginListDto>, ApiError> {
    read_scope(&principal)?;
    Ok(Json(list(&state, &principal).await?))
}

#[utoipa::path(
    get, path = "/v1/plugins/{name}", tag = "plugins",
    description = "One of the tenant's plugins. Needs the `query` or `admin` scope.",
    params(("name" = String, Path, description = "plugin name")),
    responses((status = 200, body = PluginDto), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn get_plugin(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<PluginDto>, ApiError> {
    read_scope(&principal)?;
    list(&state, &principal)
        .await?
        .plugins
        .into_iter()
        .find(|p| p.name == name)
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!("plugin '{name}' is not installed for this tenant"))
        })
}

async fn prepare(
    catalog: &hub_catalog::Catalog,
    principal: &Principal,
    name: &str,
    u: PluginUpdate,
    at: &str,
) -> Result<PluginInstall, ApiError> {
    let host = catalog.host();
    if u.catalog.is_some() && u.version.is_none() {
        return Err(ApiError::invalid(
            &format!("{at}catalog"),
            "a catalog goes with a `version` to move to",
        ));
    }
    if let Some(version) = u.version {
        // A version change installs the other version (saved at once), then applies the rest.
        if !host
            .installed(principal.tenant)
            .await
            .map_err(|e| admin_error(e, at))?
            .iter()
            .any(|i| i.name == name)
        {
            return Err(ApiError::NotFound(format!(
                "plugin '{name}' is not installed for this tenant"
            )));
        }
        return catalog
            .install_package(
                principal.tenant,
                InstallRequest {
                    package: name.to_string(),
                    version: Some(version),
                    catalog: u.catalog,
                    config: u.config,
                    grants: u.grants.map(GrantsDoc::from),
                    enabled: u.enabled,
                },
            )
            .await
            .map_err(|e| admin_error(e, at));
    }
    host.prepare_update(
        principal.tenant,
        name,
        u.enabled,
        u.config,
        u.grants.map(GrantsDoc::from),
    )
    .await
    .map_err(|e| admin_error(e, at))
}

#[utoipa::path(
    put, path = "/v1/plugins", tag = "plugins",
    description = "Sets the running order (listed plugins first, in the order given) and changes the listed plugins. Every entry is checked before anything changes. Needs the `admin` scope.",
    request_body = PluginListUpdate,
    responses((status = 200, body = PluginListDto), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn put_plugins(
    State(state): State<AppState>,
    principal: Principal,
    body: axum::body::Bytes,
) -> Result<Json<PluginListDto>, ApiError> {
    principal.require(Right::ManagePlugins)?;
    let body: PluginListUpdate = crate::json_body(&body)?;
    let catalog = catalog(&state)?;
    let host = catalog.host();
    let installed = state
        .storage
        .plugins()
        .plugin_installs(principal.tenant)
        .await?;
    for (i, item) in body.plugins.iter().enumerate() {
        if !installed.iter().any(|p| p.name == item.name) {
            return Err(ApiError::invalid(
                &format!("plugins[{i}].name"),
                format!("plugin '{}' is not installed for this tenant", item.name),
            ));
        }
        if item.update.version.is_some() || item.update.catalog.is_some() {
            return Err(ApiError::invalid(
                &format!("plugins[{i}].version"),
                "change versions one plugin at a time, with PUT /v1/plugins/{name}",
            ));
        }
        if body.plugins[..i].iter().any(|p| p.name == item.name) {
            return Err(ApiError::invalid(
                &format!("plugins[{i}].name"),
                format!("'{}' is listed twice", item.name),
            ));
        }
    }
    let names: Vec<String> = body.plugins.iter().map(|p| p.name.clone()).collect();
    let before = settings(&state, &principal).await?;
    let mut changed = Vec::new();
    for (i, item) in body.plugins.into_iter().enumerate() {
        let u = item.update;
        if u.enabled.is_some() || u.config.is_some() || u.grants.is_some() {
            changed.push(
                prepare(
                    catalog,
                    &principal,
                    &item.name,
                    u,
                    &format!("plugins[{i}]."),
                )
                .await?,
            );
        }
    }
    host.save(&changed).await.map_err(|e| admin_error(e, ""))?;
    host.reorder(principal.tenant, &names)
        .await
        .map_err(|e| admin_error(e, ""))?;
    audit_change(&state, &principal, "plugin.change", None, before).await?;
    Ok(Json(list(&state, &principal).await?))
}

#[utoipa::path(
    post, path = "/v1/plugins", tag = "plugins",
    description = "Installs a package from this hub's marketplace or a remote catalog (whose package digest and signature are checked again here) with its configuration and grants. Enrichers run after the ones installed before (reorder with PUT /v1/plugins). Needs the `admin` scope.",
    request_body = PluginInstallRequest,
    responses((status = 201, body = PluginDto), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 502, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn install_plugin(
    State(state): State<AppState>,
    principal: Principal,
    body: axum::body::Bytes,
) -> Result<(axum::http::StatusCode, Json<PluginDto>), ApiError> {
    principal.require(Right::ManagePlugins)?;
    let body: PluginInstallRequest = crate::json_body(&body)?;
    let catalog = catalog(&state)?;
    if state
        .storage
        .plugins()
        .plugin_installs(principal.tenant)
        .await?
        .iter()
        .any(|i| i.name == body.package)
    {
        return Err(ApiError::Conflict(format!(
            "'{}' is already installed; change its version with PUT /v1/plugins/{}",
            body.package, body.package
        )));
    }
    let before = settings(&state, &principal).await?;
    let name = body.package.clone();
    catalog
        .install_package(
            principal.tenant,
            InstallRequest {
                package: body.package,
                version: body.version,
                catalog: body.catalog,
                config: body.config,
                grants: body.grants.map(GrantsDoc::from),
                enabled: body.enabled,
            },
        )
        .await
        .map_err(|e| admin_error(e, ""))?;
    audit_change(
        &state,
        &principal,
        "plugin.install",
        Some(format!("plugin:{name}")),
        before,
    )
    .await?;
    let Json(dto) = get_plugin(State(state), principal, Path(name)).await?;
    Ok((axum::http::StatusCode::CREATED, Json(dto)))
}

#[utoipa::path(
    put, path = "/v1/plugins/{name}", tag = "plugins",
    description = "Enables, disables, configures, changes the grants of, or moves to another version (upgrade or downgrade) one plugin. Needs the `admin` scope.",
    params(("name" = String, Path, description = "plugin name")),
    request_body = PluginUpdate,
    responses((status = 200, body = PluginDto), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn put_plugin(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<PluginDto>, ApiError> {
    principal.require(Right::ManagePlugins)?;
    let body: PluginUpdate = crate::json_body(&body)?;
    let catalog = catalog(&state)?;
    let host = catalog.host();
    let before = settings(&state, &principal).await?;
    let install = prepare(catalog, &principal, &name, body, "").await?;
    host.save(&[install])
        .await
        .map_err(|e| admin_error(e, ""))?;
    audit_change(
        &state,
        &principal,
        "plugin.change",
        Some(format!("plugin:{name}")),
        before,
    )
    .await?;
    get_plugin(State(state), principal, Path(name)).await
}

#[utoipa::path(
    delete, path = "/v1/plugins/{name}", tag = "plugins",
    description = "Uninstalls a plugin; `purge_kv=true` also deletes what it stored. Needs the `admin` scope.",
    params(("name" = String, Path, description = "plugin name"), ("purge_kv" = Option<bool>, Query, description = "delete the plugin's kv too")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn delete_plugin(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> Result<axum::http::StatusCode, ApiError> {
    principal.require(Right::ManagePlugins)?;
    let before = settings(&state, &principal).await?;
    host(&state)?
        .uninstall(principal.tenant, &name, params.purge_kv)
        .await
        .map_err(|e| admin_error(e, ""))?;
    audit_change(
        &state,
        &principal,
        "plugin.uninstall",
        Some(format!("plugin:{name}")),
        before,
    )
    .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
