//! Finding a package and checking it again before it runs: from this hub's marketplace (digest
//! and signature against the stored key) or from another hub's catalog over HTTP (size while
//! downloading, the advertised digest, a key this hub trusts).

use std::time::Duration;

use hub_marketplace::{Package, PublicKey};
use hub_plugins::PluginAdminError;

use crate::{Catalog, RemoteCatalog, latest};

fn remote_error(what: &str, e: impl std::fmt::Display) -> PluginAdminError {
    PluginAdminError::Remote(format!("{what}: {e}"))
}

impl Catalog {
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
        self.config.max_package_bytes
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
        let max = self.config.max_package_bytes;
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
            .config
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
}
