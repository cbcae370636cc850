//! Publishing: every check a package passes before anything is stored, then one transaction.

use hub_marketplace::{Manifest, Package, PublicKey};
use hub_plugins::{GrantsDoc, PluginAdminError, host_version};
use hub_storage::{NewVersion, PluginComponent, VersionRecord};

use crate::{Catalog, Publisher};

impl Catalog {
    /// Checks a package from a publisher and stores it as a new version. At most two
    /// publications are checked at once (compiling a hostile component can be slow); others wait.
    pub async fn publish(
        &self,
        bytes: Vec<u8>,
        publisher: &Publisher,
    ) -> Result<(Manifest, VersionRecord), PluginAdminError> {
        let _permit = self
            .publishing
            .acquire()
            .await
            .map_err(|_| PluginAdminError::Refused("the hub is shutting down".into()))?;
        let package = Package::from_bytes(&bytes, self.config.max_package_bytes)?;
        let signature = package.signature()?;
        let market = self.storage.market();
        let key = market.publisher_key(&signature.key_id).await?.ok_or_else(|| {
            PluginAdminError::Key(format!(
                "the package is signed by key {}, which is not registered with this marketplace (register its public key first: `hub keys register`)",
                signature.key_id
            ))
        })?;
        if key.revoked_at_ms.is_some() {
            return Err(PluginAdminError::Key(format!(
                "key {} was revoked; sign with a live key",
                key.key_id
            )));
        }
        if key.publisher != publisher.name {
            return Err(PluginAdminError::Forbidden(format!(
                "key {} belongs to another publisher",
                key.key_id
            )));
        }
        let public = PublicKey::parse(&key.public_key)
            .map_err(|e| PluginAdminError::Key(format!("stored key {}: {e}", key.key_id)))?;
        package.verify(&public)?;
        let manifest = Manifest::parse(&package.manifest, &host_version())?;
        if let Some(existing) = market.package(&manifest.name).await? {
            if existing.publisher != publisher.name {
                return Err(PluginAdminError::Forbidden(format!(
                    "package '{}' belongs to publisher {}",
                    manifest.name, existing.publisher
                )));
            }
            if existing.kind != manifest.kind.as_str() {
                return Err(PluginAdminError::Exists(format!(
                    "package '{}' is a {}; a version cannot make it a {}",
                    manifest.name, existing.kind, manifest.kind
                )));
            }
            let version = manifest.version.to_string();
            if self.catalog_has(&manifest.name, &version).await? {
                return Err(PluginAdminError::Exists(format!(
                    "version {version} of '{}' is already published; versions never change: publish a new version",
                    manifest.name
                )));
            }
        }
        let plugin = self
            .host
            .load(manifest.clone(), package.component.clone())
            .await?;
        let example = manifest.example_config();
        self.host
            .check_config(&plugin, &example, &GrantsDoc::everything_asked(&manifest))
            .await
            .map_err(|e| match e {
                PluginAdminError::Config(errors) => PluginAdminError::Refused(format!(
                    "the schema's example configuration does not match the schema: {}",
                    errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
                PluginAdminError::Refused(m) => PluginAdminError::Refused(format!(
                    "`configure` refused the schema's example configuration {example}: {m}"
                )),
                other => other,
            })?;
        let now = hub_core::time::now_ms();
        let version = NewVersion {
            name: manifest.name.clone(),
            version: manifest.version.to_string(),
            kind: manifest.kind.to_string(),
            description: manifest.description.clone(),
            publisher: publisher.name.clone(),
            digest: signature.digest.clone(),
            key_id: signature.key_id.clone(),
            readme: package.readme.clone(),
            icon: package.icon.clone(),
            package: bytes,
            published_by: publisher.label.clone(),
            published_at_ms: now,
        };
        let component = PluginComponent {
            digest: hub_marketplace::plugin_digest(&package.manifest, &package.component),
            name: manifest.name.clone(),
            version: manifest.version.to_string(),
            kind: manifest.kind.to_string(),
            manifest: package.manifest.clone(),
            component: package.component,
            created_at_ms: now,
        };
        market
            .publish(&version, &component)
            .await
            .map_err(|e| match e {
                hub_storage::StorageError::Conflict(what) => {
                    PluginAdminError::Exists(format!("{what} was published meanwhile"))
                }
                other => other.into(),
            })?;
        let stored = market
            .version(&manifest.name, &version.version)
            .await?
            .ok_or_else(|| PluginAdminError::NotFound("the version just published".into()))?;
        Ok((manifest, stored))
    }
}
