//! Installing a package from a catalog into a tenant, or moving an install to another version.

use hub_core::TenantId;
use hub_marketplace::Manifest;
use hub_plugins::{GrantsDoc, PluginAdminError, host_version};
use hub_storage::PluginInstall;

use crate::{Catalog, InstallRequest};

impl Catalog {
    /// Installs a package from a catalog for `tenant`, or moves an existing install to the
    /// requested version. On a version change, the configuration is carried over when it still
    /// fits the new version (else the request must bring one), and grants the new version still
    /// asks for are kept.
    pub async fn install_package(
        &self,
        tenant: TenantId,
        req: InstallRequest,
    ) -> Result<PluginInstall, PluginAdminError> {
        let package = self
            .fetch_package(&req.package, req.version.as_deref(), req.catalog.as_deref())
            .await?;
        let manifest = Manifest::parse(&package.manifest, &host_version())?;
        if manifest.name != req.package {
            return Err(PluginAdminError::Refused(format!(
                "the catalog's package '{}' holds a plugin named '{}'",
                req.package, manifest.name
            )));
        }
        let previous = self
            .host
            .installed(tenant)
            .await?
            .into_iter()
            .find(|i| i.name == manifest.name);
        let (config, grants, enabled) = match &previous {
            None => (
                req.config,
                req.grants.unwrap_or_default(),
                req.enabled.unwrap_or(true),
            ),
            Some(p) => {
                let config = match req.config {
                    Some(c) => c,
                    None => {
                        let old: serde_json::Value =
                            serde_json::from_str(&p.config_json).unwrap_or_default();
                        manifest.validate_config(&old).map_err(|errors| {
                            PluginAdminError::Refused(format!(
                                "the current configuration does not fit {} {}: {}; send a `config` that does",
                                manifest.name,
                                manifest.version,
                                errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
                            ))
                        })?;
                        old
                    }
                };
                let grants = match req.grants {
                    Some(g) => g,
                    None => {
                        let old: GrantsDoc =
                            serde_json::from_str(&p.grants_json).unwrap_or_default();
                        let any = manifest.capabilities.http.iter().any(|h| h == "*");
                        GrantsDoc {
                            kv: old.kv && manifest.capabilities.kv,
                            http: old
                                .http
                                .into_iter()
                                .filter(|h| any || manifest.capabilities.http.contains(h))
                                .collect(),
                        }
                    }
                };
                (Some(config), grants, req.enabled.unwrap_or(p.enabled))
            }
        };
        self.host
            .install(
                tenant,
                &package.manifest,
                package.component,
                config,
                grants,
                enabled,
            )
            .await
    }
}
