//! The marketplace service, over the plugin host: what a publication must pass before it is
//! stored (`publish`), which version an install gets and how a package from this hub's or another
//! hub's catalog is checked again before it runs (`fetch`, the plugin side's only HTTP client),
//! and installing it into a tenant (`install`). The package format, keys and signatures are
//! `hub-marketplace`'s; loading, configuring and installing a component are `hub-plugins`'.
//!
//! Publishing checks, in order: size and archive layout, the signature's digest against the
//! contents, the signing key (registered, live, the publisher's own), the manifest, the package
//! name's owner, the version's novelty, the component in the runtime (a component, the declared
//! world's exports, nothing undeclared imported), and `configure` with the schema's example
//! configuration. Only then is anything stored, in one transaction.

use std::sync::Arc;

use hub_marketplace::{PublicKey, SecretKey};
use hub_plugins::{GrantsDoc, PluginAdminError, PluginHost};
use hub_storage::{PublisherKey, Storage, VersionRecord};

mod fetch;
mod install;
mod publish;

/// The publisher name of the plugins this repository ships, signed by the deployment's own key.
pub const FIRST_PARTY: &str = "llm-analytics-hub";

/// Another hub whose marketplace this one installs from.
#[derive(Debug, Clone)]
pub struct RemoteCatalog {
    pub name: String,
    /// Its base URL (`https://hub.example.com`).
    pub url: String,
    /// A credential for it, if it does not serve its catalog publicly.
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MarketConfig {
    pub max_package_bytes: usize,
    pub remotes: Vec<RemoteCatalog>,
    /// Publisher keys (`ed25519:…`) trusted for packages from remote catalogs.
    pub trusted_keys: Vec<String>,
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            max_package_bytes: hub_marketplace::package::DEFAULT_MAX_PACKAGE_BYTES,
            remotes: Vec::new(),
            trusted_keys: Vec::new(),
        }
    }
}

/// Who is publishing.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// A user's email, or [`FIRST_PARTY`].
    pub name: String,
    pub user_id: Option<i64>,
    /// How the audit log and the catalog name them (`user:<email>`, `hub`).
    pub label: String,
}

/// A tenant's request to install a package, or to move an install to another version.
#[derive(Debug, Clone, Default)]
pub struct InstallRequest {
    pub package: String,
    /// `None`: the newest version that is not yanked.
    pub version: Option<String>,
    /// `None`: this hub's own marketplace; else a configured remote catalog's name.
    pub catalog: Option<String>,
    pub config: Option<serde_json::Value>,
    pub grants: Option<GrantsDoc>,
    pub enabled: Option<bool>,
}

/// The newest version that is not yanked (pre-releases only when nothing else is left).
pub fn latest<V>(versions: &[V], version: impl Fn(&V) -> (&str, bool)) -> Option<&V> {
    let parsed = versions
        .iter()
        .filter(|v| !version(v).1)
        .filter_map(|v| semver::Version::parse(version(v).0).ok().map(|s| (s, v)));
    let (stable, pre): (Vec<_>, Vec<_>) = parsed.partition(|(s, _)| s.pre.is_empty());
    let pick = if stable.is_empty() { pre } else { stable };
    pick.into_iter()
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, v)| v)
}

/// The marketplace service of this hub. Cheap to share (`Arc`).
pub struct Catalog {
    host: Arc<PluginHost>,
    storage: Arc<dyn Storage>,
    config: MarketConfig,
    /// Publications checked at once.
    publishing: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

impl Catalog {
    /// At most two publications are checked at once (compiling a hostile component can be slow);
    /// others wait.
    pub fn new(host: Arc<PluginHost>, storage: Arc<dyn Storage>, config: MarketConfig) -> Self {
        Self {
            host,
            storage,
            config,
            publishing: tokio::sync::Semaphore::new(2),
        }
    }

    /// The plugin host that installs and runs what this catalog serves.
    pub fn host(&self) -> &Arc<PluginHost> {
        &self.host
    }

    /// The remote catalogs this hub may install from.
    pub fn remote_catalogs(&self) -> &[RemoteCatalog] {
        &self.config.remotes
    }

    /// The deployment's own signing key for [`FIRST_PARTY`] plugins, made on first use. Replicas
    /// racing to make it agree on the one stored first.
    pub async fn own_key(&self) -> Result<SecretKey, PluginAdminError> {
        let m = self.storage.market();
        let parse = |k: PublisherKey| {
            SecretKey::parse(k.secret_key.as_deref().unwrap_or_default()).map_err(|e| {
                PluginAdminError::Key(format!("the stored first-party key is unusable: {e}"))
            })
        };
        if let Some(k) = m.own_key(FIRST_PARTY).await? {
            return parse(k);
        }
        let key = SecretKey::generate();
        let record = PublisherKey {
            key_id: key.public().key_id(),
            publisher: FIRST_PARTY.into(),
            user_id: None,
            public_key: key.public().to_string(),
            secret_key: Some(key.to_text()),
            created_at_ms: hub_core::time::now_ms(),
            revoked_at_ms: None,
        };
        match m.add_publisher_key(&record).await {
            Ok(()) => Ok(key),
            Err(hub_storage::StorageError::Conflict(_)) => match m.own_key(FIRST_PARTY).await? {
                Some(k) => parse(k),
                None => Err(PluginAdminError::Key("the first-party key vanished".into())),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Whether this hub's marketplace has `version` of `name`.
    pub async fn catalog_has(&self, name: &str, version: &str) -> Result<bool, PluginAdminError> {
        Ok(self
            .storage
            .market()
            .version(name, version)
            .await?
            .is_some())
    }

    /// Whether this hub's marketplace has any version of `name`.
    pub async fn catalog_has_any(&self, name: &str) -> Result<bool, PluginAdminError> {
        Ok(self.storage.market().package(name).await?.is_some())
    }

    /// Registers a publisher's public key.
    pub async fn register_key(
        &self,
        publisher: &Publisher,
        public_key: &str,
    ) -> Result<PublisherKey, PluginAdminError> {
        let key = PublicKey::parse(public_key).map_err(|e| PluginAdminError::Key(e.0))?;
        let record = PublisherKey {
            key_id: key.key_id(),
            publisher: publisher.name.clone(),
            user_id: publisher.user_id,
            public_key: key.to_string(),
            secret_key: None,
            created_at_ms: hub_core::time::now_ms(),
            revoked_at_ms: None,
        };
        self.storage.market().add_publisher_key(&record).await?;
        Ok(record)
    }
}

/// Versions as the catalog lists them: newest first by semantic version.
pub fn sort_versions(versions: &mut [VersionRecord]) {
    versions.sort_by(|a, b| {
        let parse = |v: &str| semver::Version::parse(v).ok();
        parse(&b.version).cmp(&parse(&a.version))
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn latest_skips_yanked_and_prereleases() {
        let v = [
            ("0.1.0", false),
            ("0.3.0", true),
            ("0.2.0", false),
            ("1.0.0-rc.1", false),
        ];
        assert_eq!(super::latest(&v, |x| *x).unwrap().0, "0.2.0");
        let only_pre = [("1.0.0-rc.1", false), ("0.9.0", true)];
        assert_eq!(super::latest(&only_pre, |x| *x).unwrap().0, "1.0.0-rc.1");
        assert!(super::latest(&[("0.1.0", true)], |x| *x).is_none());
    }
}
