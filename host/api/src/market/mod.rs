//! `/v1/marketplace`: publishers register keys and publish signed packages; everyone signed in
//! (or anyone, with `--public-catalog`) browses the catalog, reads details and downloads
//! packages; publishers yank their versions. Remote catalogs configured on this hub are browsed
//! with `?catalog=NAME`. Browsing is here; publishing and yanking are `publishing`, publishers'
//! keys `keys`.

mod keys;
mod publishing;

use crate::ApiQuery;
use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hub_catalog::{Publisher, sort_versions};
use hub_marketplace::Manifest;
use hub_storage::{PackageRecord, VersionRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::plugins::{CapabilitiesDto, LimitsDto, admin_error, catalog};
use crate::{ApiError, AppState, Principal, Right};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // Publishing checks its own limit (so that the 413 names it), not axum.
        .routes(routes!(list_packages, publishing::publish).layer(DefaultBodyLimit::disable()))
        .routes(routes!(package_details))
        .routes(routes!(download))
        .routes(routes!(icon))
        .routes(routes!(publishing::yank, publishing::unyank))
        .routes(routes!(keys::list_keys, keys::register_key))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(list_catalogs))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PackageSummaryDto {
    pub name: String,
    /// enricher, detector, forecaster or integration.
    pub kind: String,
    pub publisher: String,
    pub description: String,
    /// The newest version that is not yanked.
    pub latest_version: Option<String>,
    pub downloads: i64,
    /// Tenants that have it installed.
    pub installs: i64,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PackageListDto {
    pub packages: Vec<PackageSummaryDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionDto {
    pub version: String,
    pub published_at: String,
    pub published_by: String,
    /// What changed, from the manifest's changelog.
    pub changelog: Option<String>,
    pub yanked: bool,
    pub yanked_reason: Option<String>,
    /// The package digest (SHA-256 over the entries), which the signature covers.
    pub digest: String,
    /// Bytes of the `.hubpkg`.
    pub size: i64,
    pub downloads: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PackageDetailDto {
    pub name: String,
    pub kind: String,
    pub publisher: String,
    /// The version these details describe.
    pub version: String,
    pub description: String,
    pub authors: Vec<String>,
    pub license: Option<String>,
    pub homepage: Option<String>,
    /// `hub:plugin/<kind>@<version>`.
    pub world: String,
    pub min_host_version: Option<String>,
    /// The README as written (Markdown).
    pub readme: String,
    /// The README rendered to HTML (raw HTML in it shown as text).
    pub readme_html: String,
    pub capabilities: CapabilitiesDto,
    pub limits: LimitsDto,
    /// JSON Schema of the configuration.
    #[schema(value_type = Object)]
    pub config_schema: serde_json::Value,
    /// The schema's example configuration.
    #[schema(value_type = Object)]
    pub example_config: serde_json::Value,
    pub digest: String,
    /// What installs of this version are named by (`digest` in /v1/plugins): SHA-256 over the
    /// manifest's and the component's SHA-256.
    pub plugin_digest: String,
    /// The publisher key that signed this version.
    pub key_id: String,
    pub icon_url: Option<String>,
    pub downloads: i64,
    pub installs: i64,
    /// Newest first.
    pub versions: Vec<VersionDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Text found in the name or description (case-insensitive).
    pub q: Option<String>,
    /// enricher, detector, forecaster or integration.
    pub kind: Option<String>,
    /// A remote catalog configured on this hub (default: this hub's own).
    pub catalog: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DetailParams {
    /// Default: the newest version that is not yanked (or the newest, if all are).
    pub version: Option<String>,
    pub catalog: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogDto {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogListDto {
    pub catalogs: Vec<CatalogDto>,
}

/// Catalog reads are open to anyone signed in, and to everyone with `--public-catalog`.
fn browse(state: &AppState, principal: Result<Principal, ApiError>) -> Result<(), ApiError> {
    match principal {
        Ok(p) => p.require(Right::BrowseCatalog),
        Err(_) if state.config.public_catalog => Ok(()),
        Err(e) => Err(e),
    }
}

fn version_dto(v: &VersionRecord) -> VersionDto {
    let changelog = Manifest::parse(&v.manifest, &hub_plugins::host_version())
        .ok()
        .and_then(|m| m.changelog.get(&v.version).cloned());
    VersionDto {
        version: v.version.clone(),
        published_at: hub_core::time::to_rfc3339(v.published_at_ms),
        published_by: v.published_by.clone(),
        changelog,
        yanked: v.yanked_at_ms.is_some(),
        yanked_reason: v.yank_reason.clone(),
        digest: v.digest.clone(),
        size: v.size,
        downloads: v.downloads,
    }
}

fn latest_of(versions: &[VersionRecord]) -> Option<&VersionRecord> {
    hub_catalog::latest(versions, |v| (&v.version, v.yanked_at_ms.is_some()))
}

fn summary(p: PackageRecord, versions: &[VersionRecord]) -> PackageSummaryDto {
    PackageSummaryDto {
        latest_version: latest_of(versions).map(|v| v.version.clone()),
        name: p.name,
        kind: p.kind,
        publisher: p.publisher,
        description: p.description,
        downloads: p.downloads,
        installs: p.installs,
        updated_at: hub_core::time::to_rfc3339(p.updated_at_ms),
    }
}

fn remote_path(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", urlencoding(v))))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[utoipa::path(
    get, path = "/v1/marketplace/packages", tag = "marketplace",
    description = "The catalog: packages whose name or description contains `q`, of `kind`, from this hub's marketplace or a configured remote `catalog`. Anyone signed in (any key scope, any role); everyone with --public-catalog.",
    params(ListParams),
    responses((status = 200, body = PackageListDto), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "no remote catalog of that name", body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn list_packages(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    browse(&state, principal)?;
    if let Some(k) = &params.kind
        && hub_marketplace::PluginKind::parse(k).is_none()
    {
        return Err(ApiError::invalid(
            "kind",
            format!("'{k}' is not a kind: enricher, detector, forecaster or integration"),
        ));
    }
    if let Some(c) = &params.catalog {
        let path = remote_path(
            "/v1/marketplace/packages",
            &[("q", params.q.as_deref()), ("kind", params.kind.as_deref())],
        );
        let json = catalog(&state)?
            .remote_json(c, &path)
            .await
            .map_err(|e| admin_error(e, ""))?;
        return Ok(Json(json).into_response());
    }
    let market = state.storage.market();
    let mut packages = Vec::new();
    for p in market
        .packages(params.q.as_deref(), params.kind.as_deref())
        .await?
    {
        let versions = market.versions(&p.name).await?;
        packages.push(summary(p, &versions));
    }
    Ok(Json(PackageListDto { packages }).into_response())
}

pub(super) async fn details(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<PackageDetailDto, ApiError> {
    let market = state.storage.market();
    let not_found = || ApiError::NotFound(format!("package '{name}' is not in this marketplace"));
    let package = market.package(name).await?.ok_or_else(not_found)?;
    let mut versions = market.versions(name).await?;
    sort_versions(&mut versions);
    let shown = match version {
        Some(v) => versions
            .iter()
            .find(|x| x.version == v)
            .ok_or_else(|| ApiError::NotFound(format!("'{name}' has no version {v}")))?,
        None => latest_of(&versions)
            .or(versions.first())
            .ok_or_else(not_found)?,
    };
    let manifest = Manifest::parse(&shown.manifest, &hub_plugins::host_version())
        .map_err(|e| ApiError::Internal(format!("stored manifest of {name}: {e}")))?;
    Ok(PackageDetailDto {
        name: package.name.clone(),
        kind: package.kind.clone(),
        publisher: package.publisher.clone(),
        version: shown.version.clone(),
        description: manifest.description.clone(),
        authors: manifest.authors.clone(),
        license: manifest.license.clone(),
        homepage: manifest.homepage.clone(),
        world: manifest.world.clone(),
        min_host_version: manifest.min_host_version.as_ref().map(|v| v.to_string()),
        readme_html: hub_marketplace::readme::to_html(&shown.readme),
        readme: shown.readme.clone(),
        capabilities: CapabilitiesDto::of(&manifest),
        limits: LimitsDto::of(&manifest),
        config_schema: manifest.config_schema.clone(),
        example_config: manifest.example_config(),
        digest: shown.digest.clone(),
        plugin_digest: shown.plugin_digest.clone(),
        key_id: shown.key_id.clone(),
        icon_url: shown.has_icon.then(|| {
            format!(
                "/v1/marketplace/packages/{name}/versions/{}/icon",
                shown.version
            )
        }),
        downloads: package.downloads,
        installs: package.installs,
        versions: versions.iter().map(version_dto).collect(),
    })
}

#[utoipa::path(
    get, path = "/v1/marketplace/packages/{name}", tag = "marketplace",
    description = "A package: its README (Markdown and rendered), capabilities, limits, configuration schema, publisher, digest, figures and every version with its changelog.",
    params(("name" = String, Path, description = "package name"), DetailParams),
    responses((status = 200, body = PackageDetailDto), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn package_details(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<DetailParams>,
) -> Result<Response, ApiError> {
    browse(&state, principal)?;
    if let Some(c) = &params.catalog {
        if !hub_marketplace::manifest::valid_name(&name) {
            return Err(ApiError::NotFound(format!(
                "'{name}' is not a package name"
            )));
        }
        let path = remote_path(
            &format!("/v1/marketplace/packages/{name}"),
            &[("version", params.version.as_deref())],
        );
        let json = catalog(&state)?
            .remote_json(c, &path)
            .await
            .map_err(|e| admin_error(e, ""))?;
        return Ok(Json(json).into_response());
    }
    Ok(Json(details(&state, &name, params.version.as_deref()).await?).into_response())
}

#[utoipa::path(
    get, path = "/v1/marketplace/packages/{name}/versions/{version}/package", tag = "marketplace",
    description = "The signed `.hubpkg` of a version (counts a download). `X-Hub-Digest` carries the package digest; yanked versions stay downloadable for hubs that run them.",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, content_type = "application/gzip"), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn download(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    browse(&state, principal)?;
    let market = state.storage.market();
    let record = market
        .version(&name, &version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("'{name}' has no version {version}")))?;
    let bytes = market
        .package_file(&name, &version, true)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("'{name}' has no version {version}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}-{version}.hubpkg\""),
            ),
            (
                header::HeaderName::from_static("x-hub-digest"),
                record.digest,
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

#[utoipa::path(
    get, path = "/v1/marketplace/packages/{name}/versions/{version}/icon", tag = "marketplace",
    description = "The version's icon (PNG), if it has one.",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, content_type = "image/png"), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []))
)]
pub(crate) async fn icon(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    browse(&state, principal)?;
    let bytes = state
        .storage
        .market()
        .icon(&name, &version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{name} {version} has no icon")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "public, max-age=86400, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Body::from(bytes),
    )
        .into_response())
}

pub(super) fn publisher_of(principal: &Principal) -> Result<Publisher, ApiError> {
    principal.require_publisher()?;
    match &principal.actor {
        crate::auth::Actor::User { id, email, .. } => Ok(Publisher {
            name: email.clone(),
            user_id: Some(*id),
            label: principal.actor_label(),
        }),
        crate::auth::Actor::Key { .. } => unreachable!("require_publisher refuses keys"),
    }
}

pub(super) async fn audit_market(
    state: &AppState,
    principal: &Principal,
    action: &str,
    target: String,
    outcome: &str,
    after: Option<serde_json::Value>,
) {
    crate::audit::record(
        state,
        hub_storage::AuditEntry {
            at_ms: hub_core::time::now_ms(),
            tenant: None,
            actor: principal.actor_label(),
            action: action.into(),
            target: Some(target),
            source: principal.source.clone(),
            outcome: outcome.into(),
            before: None,
            after: after.map(|v| v.to_string()),
        },
    )
    .await;
}

#[utoipa::path(
    get, path = "/v1/marketplace/catalogs", tag = "marketplace",
    description = "The remote catalogs this hub installs from (pass their name as `catalog`).",
    responses((status = 200, body = CatalogListDto)),
    security(("api_key" = []))
)]
pub(crate) async fn list_catalogs(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<CatalogListDto>, ApiError> {
    principal.require(Right::BrowseCatalog)?;
    let catalogs = state
        .catalog
        .as_ref()
        .map(|h| {
            h.remote_catalogs()
                .iter()
                .map(|r| CatalogDto {
                    name: r.name.clone(),
                    url: r.url.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(CatalogListDto { catalogs }))
}
