//! The marketplace's rules: what a publication must pass before it is stored, which version an
//! install gets, and how a package from another hub's catalog is checked again before it runs.
//!
//! Publishing checks, in order: size and archive layout, the signature's digest against the
//! contents, the signing key (registered, live, the publisher's own), the manifest, the package
//! name's owner, the version's novelty, the component in the runtime (a component, the declared
//! world's exports, nothing undeclared imported), and `configure` with the schema's example
//! configuration. Only then is anything stored, in one transaction.

use std::time::Duration;

use hub_core::TenantId;
use hub_marketplace::{Manifest, Package, PublicKey, SecretKey};
use hub_storage::{NewVersion, PluginComponent, PluginInstall, PublisherKey, VersionRecord};

use super::{GrantsDoc, PluginAdminError, PluginHost, host_version};

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

fn remote_error(what: &str, e: impl std::fmt::Display) -> PluginAdminError {
    PluginAdminError::Remote(format!("{what}: {e}"))
}

impl PluginHost {
    fn market_config(&self) -> &MarketConfig {
        &self.config.market
    }

    /// The remote catalogs this hub may install from.
    pub fn remote_catalogs(&self) -> &[RemoteCatalog] {
        &self.config.market.remotes
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
        let package = Package::from_bytes(&bytes, self.market_config().max_package_bytes)?;
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
            .load(manifest.clone(), package.component.clone())
            .await?;
        let example = manifest.example_config();
        self.check_config(&plugin, &example, &everything_asked(&manifest))
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

    /// Loads a component against its manifest, off the request path.
    pub(super) async fn load(
        &self,
        manifest: Manifest,
        wasm: Vec<u8>,
    ) -> Result<hub_runtime::Plugin, PluginAdminError> {
        let rt = self.runtime.clone();
        tokio::task::spawn_blocking(move || rt.load(manifest, &wasm))
            .await
            .map_err(|e| PluginAdminError::Refused(format!("loading panicked: {e}")))?
            .map_err(Into::into)
    }

    /// Finds, downloads and checks a package again (digest and signature), from this hub's
    /// marketplace or a remote catalog.
    pub async fn fetch_package(
        &self,
        name: &str,
        version: Option<&str>,
        catalog: Option<&str>,
    ) -> Result<Package, PluginAdminError> {
        if !hub_marketplace::manifest::valid_name(name) {
            return Err(PluginAdminError::NotFound(format!(
                "'{name}' is not a package name (2 to 64 of a-z, 0-9 and -)"
            )));
        }
        if let Some(v) = version
            && semver::Version::parse(v).is_err()
        {
            return Err(PluginAdminError::NotFound(format!(
                "'{v}' is not a version (like 1.2.3)"
            )));
        }
        match catalog {
            None => self.fetch_local(name, version).await,
            Some(c) => {
                let remote = self.remote(c)?.clone();
                self.fetch_remote(&remote, name, version).await
            }
        }
    }

    fn pick<'a>(
        name: &str,
        versions: &'a [(String, Option<String>)],
        version: Option<&str>,
    ) -> Result<&'a str, PluginAdminError> {
        match version {
            Some(v) => {
                let (found, yanked) = versions.iter().find(|(x, _)| x == v).ok_or_else(|| {
                    PluginAdminError::NotFound(format!(
                        "version {v} of '{name}' is not in the catalog"
                    ))
                })?;
                match yanked {
                    Some(reason) => Err(PluginAdminError::Yanked(format!(
                        "version {v} of '{name}' was yanked ({reason}); pick another version"
                    ))),
                    None => Ok(found.as_str()),
                }
            }
            None => latest(versions, |(v, y)| (v.as_str(), y.is_some()))
                .map(|(v, _)| v.as_str())
                .ok_or_else(|| {
                    PluginAdminError::NotFound(format!(
                        "'{name}' has no version that is not yanked"
                    ))
                }),
        }
    }

    async fn fetch_local(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Package, PluginAdminError> {
        let market = self.storage.market();
        let versions = market.versions(name).await?;
        if versions.is_empty() {
            return Err(PluginAdminError::NotFound(format!(
                "package '{name}' is not in this hub's marketplace"
            )));
        }
        let list: Vec<(String, Option<String>)> = versions
            .iter()
            .map(|v| {
                (
                    v.version.clone(),
                    v.yanked_at_ms
                        .map(|_| v.yank_reason.clone().unwrap_or_default()),
                )
            })
            .collect();
        let chosen = Self::pick(name, &list, version)?.to_string();
        let record = versions
            .iter()
            .find(|v| v.version == chosen)
            .expect("picked from the list");
        let bytes = market
            .package_file(name, &chosen, true)
            .await?
            .ok_or_else(|| PluginAdminError::NotFound(format!("version {chosen} of '{name}'")))?;
        let package = Package::from_bytes(&bytes, usize::MAX)?;
        let key = market.publisher_key(&record.key_id).await?.ok_or_else(|| {
            PluginAdminError::Key(format!("publisher key {} is missing", record.key_id))
        })?;
        let public = PublicKey::parse(&key.public_key).map_err(|e| PluginAdminError::Key(e.0))?;
        package.verify(&public)?;
        if package.digest() != record.digest {
            return Err(PluginAdminError::Package(
                hub_marketplace::PackageError::DigestMismatch {
                    signed: record.digest.clone(),
                    actual: package.digest(),
                },
            ));
        }
        Ok(package)
    }

    /// The remote catalog named `name`.
    pub fn remote(&self, name: &str) -> Result<&RemoteCatalog, PluginAdminError> {
        self.remote_catalogs()
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| {
                PluginAdminError::NotFound(format!(
                    "catalog '{name}' is not configured on this hub (configured: {})",
                    self.remote_catalogs()
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The largest package this hub accepts or downloads.
    pub fn max_package_bytes(&self) -> usize {
        self.market_config().max_package_bytes
    }

    /// A GET to a remote catalog: `path` (with its query) below its base URL.
    async fn remote_get(
        &self,
        remote: &RemoteCatalog,
        path: &str,
    ) -> Result<reqwest::Response, PluginAdminError> {
        let what = format!("catalog '{}' ({})", remote.name, remote.url);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| remote_error("HTTP client", e))?;
        let mut request = client.get(format!("{}{path}", remote.url.trim_end_matches('/')));
        if let Some(t) = &remote.token {
            request = request.bearer_auth(t);
        }
        let resp = request.send().await.map_err(|e| remote_error(&what, e))?;
        match resp.status() {
            s if s.is_success() => Ok(resp),
            reqwest::StatusCode::NOT_FOUND => Err(PluginAdminError::NotFound(format!(
                "{what} has no {}",
                path.split('?').next().unwrap_or(path)
            ))),
            s => Err(remote_error(&what, format!("answered {s} for {path}"))),
        }
    }

    /// A remote catalog's JSON answer to `path`, for browsing it through this hub.
    pub async fn remote_json(
        &self,
        catalog: &str,
        path: &str,
    ) -> Result<serde_json::Value, PluginAdminError> {
        let remote = self.remote(catalog)?.clone();
        self.remote_get(&remote, path)
            .await?
            .json()
            .await
            .map_err(|e| remote_error(&format!("catalog '{catalog}'"), e))
    }

    async fn fetch_remote(
        &self,
        remote: &RemoteCatalog,
        name: &str,
        version: Option<&str>,
    ) -> Result<Package, PluginAdminError> {
        #[derive(serde::Deserialize)]
        struct Details {
            versions: Vec<RemoteVersion>,
        }
        #[derive(serde::Deserialize)]
        struct RemoteVersion {
            version: String,
            digest: String,
            yanked_reason: Option<String>,
            yanked: bool,
        }
        let what = format!("catalog '{}' ({})", remote.name, remote.url);
        let details: Details = self
            .remote_get(remote, &format!("/v1/marketplace/packages/{name}"))
            .await?
            .json()
            .await
            .map_err(|e| remote_error(&what, e))?;
        let list: Vec<(String, Option<String>)> = details
            .versions
            .iter()
            .map(|v| {
                (
                    v.version.clone(),
                    v.yanked
                        .then(|| v.yanked_reason.clone().unwrap_or_default()),
                )
            })
            .collect();
        let chosen = Self::pick(name, &list, version)?.to_string();
        let advertised = &details
            .versions
            .iter()
            .find(|v| v.version == chosen)
            .expect("picked from the list")
            .digest;
        let max = self.market_config().max_package_bytes;
        let mut resp = self
            .remote_get(
                remote,
                &format!("/v1/marketplace/packages/{name}/versions/{chosen}/package"),
            )
            .await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| remote_error(&what, e))? {
            if bytes.len() + chunk.len() > max {
                return Err(PluginAdminError::Package(
                    hub_marketplace::PackageError::TooLarge {
                        size: bytes.len() + chunk.len(),
                        limit: max,
                    },
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        let package = Package::from_bytes(&bytes, max)?;
        let actual = package.digest();
        if &actual != advertised {
            return Err(PluginAdminError::Package(
                hub_marketplace::PackageError::DigestMismatch {
                    signed: advertised.clone(),
                    actual,
                },
            ));
        }
        let signature = package.signature()?;
        let trusted = self
            .market_config()
            .trusted_keys
            .iter()
            .filter_map(|k| PublicKey::parse(k).ok())
            .find(|k| k.key_id() == signature.key_id)
            .ok_or_else(|| {
                PluginAdminError::Key(format!(
                    "'{name}' {chosen} from {what} is signed by key {}, which this hub does not trust (add its public key with --trusted-publisher-key)",
                    signature.key_id
                ))
            })?;
        package.verify(&trusted)?;
        Ok(package)
    }

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
            .storage
            .plugin_installs(tenant)
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
        self.install(
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

/// The capabilities a manifest asks for, as a grant of all of them (hosts named in it).
pub fn everything_asked(manifest: &Manifest) -> GrantsDoc {
    GrantsDoc {
        kv: manifest.capabilities.kv,
        http: manifest
            .capabilities
            .http
            .iter()
            .filter(|h| *h != "*")
            .cloned()
            .collect(),
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
