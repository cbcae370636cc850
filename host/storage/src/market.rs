//! The marketplace's tables: publisher keys, packages and their immutable versions. One
//! implementation over any sqlx backend, reached through [`crate::Storage::market`].

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::decode::HubRow;
use crate::model::PluginComponent;
use crate::shared::conflict;
use crate::sql::{Bind, into_query, with_binds};
use crate::{Result, StorageError};

/// An ed25519 key a publisher signs packages with.
#[derive(Debug, Clone, PartialEq)]
pub struct PublisherKey {
    /// First 16 hex digits of the SHA-256 of the public key.
    pub key_id: String,
    /// A user's email, or the hub's own name for first-party plugins.
    pub publisher: String,
    /// The user who registered it; `None` for the hub's first-party key.
    pub user_id: Option<i64>,
    /// `ed25519:<base64>`.
    pub public_key: String,
    /// Only for the hub's first-party key, which this deployment generated.
    pub secret_key: Option<String>,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// A version about to be published, with everything the catalog shows of it.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub name: String,
    pub version: String,
    pub kind: String,
    pub description: String,
    pub publisher: String,
    /// The package digest (what was signed).
    pub digest: String,
    pub key_id: String,
    pub readme: String,
    pub icon: Option<Vec<u8>>,
    /// The whole signed `.hubpkg`.
    pub package: Vec<u8>,
    /// `user:<email>` or `hub` (first-party).
    pub published_by: String,
    pub published_at_ms: i64,
}

/// A package (a name and its publisher) with figures over all its versions.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageRecord {
    pub name: String,
    pub publisher: String,
    pub kind: String,
    /// The description of the newest version published.
    pub description: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Package downloads and installs from the catalog, all versions.
    pub downloads: i64,
    /// Tenants that have it installed now.
    pub installs: i64,
}

/// One published version (without its package file).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRecord {
    pub name: String,
    pub version: String,
    pub digest: String,
    /// The stored plugin (manifest and component) installs use.
    pub plugin_digest: String,
    pub key_id: String,
    pub manifest: String,
    pub readme: String,
    pub has_icon: bool,
    pub size: i64,
    pub published_by: String,
    pub published_at_ms: i64,
    pub yanked_at_ms: Option<i64>,
    pub yank_reason: Option<String>,
    pub downloads: i64,
}

/// The marketplace, whatever the backend.
#[async_trait]
pub trait MarketStorage: Send + Sync {
    /// `Conflict` when the key is already registered.
    async fn add_publisher_key(&self, key: &PublisherKey) -> Result<()>;
    async fn publisher_key(&self, key_id: &str) -> Result<Option<PublisherKey>>;
    /// A user's keys (`Some`), or every key (`None`), newest first.
    async fn publisher_keys(&self, user_id: Option<i64>) -> Result<Vec<PublisherKey>>;
    /// Whether a live key was revoked.
    async fn revoke_publisher_key(&self, key_id: &str, now_ms: i64) -> Result<bool>;
    /// The key whose secret this deployment keeps for `publisher` (first-party plugins).
    async fn own_key(&self, publisher: &str) -> Result<Option<PublisherKey>>;

    /// Stores the component, the package (created on its first version) and the version, in one
    /// transaction. `Conflict` when the version exists.
    async fn publish(&self, version: &NewVersion, component: &PluginComponent) -> Result<()>;
    /// Packages whose name or description contains `text` (case-insensitive), of `kind`, by name.
    async fn packages(&self, text: Option<&str>, kind: Option<&str>) -> Result<Vec<PackageRecord>>;
    async fn package(&self, name: &str) -> Result<Option<PackageRecord>>;
    /// The package's versions, in no particular order.
    async fn versions(&self, name: &str) -> Result<Vec<VersionRecord>>;
    async fn version(&self, name: &str, version: &str) -> Result<Option<VersionRecord>>;
    /// The signed `.hubpkg` of a version; counts a download when asked to.
    async fn package_file(&self, name: &str, version: &str, count: bool)
    -> Result<Option<Vec<u8>>>;
    async fn icon(&self, name: &str, version: &str) -> Result<Option<Vec<u8>>>;
    /// Yanks (`Some((reason, at))`) or restores (`None`) a version; whether it exists.
    async fn set_yanked(
        &self,
        name: &str,
        version: &str,
        yank: Option<(&str, i64)>,
    ) -> Result<bool>;
}

pub(crate) struct SqlMarket<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlMarket<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

const KEY_COLUMNS: &str =
    "key_id, publisher, user_id, public_key, secret_key, created_at, revoked_at";
const PACKAGE_COLUMNS: &str = "p.name, p.publisher, p.kind, p.description, p.created_at, p.updated_at, \
    (SELECT CAST(COALESCE(SUM(v.downloads), 0) AS BIGINT) FROM market_versions v WHERE v.name = p.name) \
    AS downloads, (SELECT COUNT(*) FROM plugin_installs i WHERE i.name = p.name) AS installs";
const VERSION_COLUMNS: &str = "name, version, digest, plugin_digest, key_id, manifest, readme, \
    CAST(CASE WHEN icon IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_icon, size, published_by, published_at, yanked_at, \
    yank_reason, downloads";

fn key<R: HubRow>(row: &R) -> Result<PublisherKey> {
    Ok(PublisherKey {
        key_id: row.text("key_id")?,
        publisher: row.text("publisher")?,
        user_id: row.opt_int("user_id")?,
        public_key: row.text("public_key")?,
        secret_key: row.opt_text("secret_key")?,
        created_at_ms: row.int("created_at")?,
        revoked_at_ms: row.opt_int("revoked_at")?,
    })
}

fn package<R: HubRow>(row: &R) -> Result<PackageRecord> {
    Ok(PackageRecord {
        name: row.text("name")?,
        publisher: row.text("publisher")?,
        kind: row.text("kind")?,
        description: row.text("description")?,
        created_at_ms: row.int("created_at")?,
        updated_at_ms: row.int("updated_at")?,
        downloads: row.int("downloads")?,
        installs: row.int("installs")?,
    })
}

fn version<R: HubRow>(row: &R) -> Result<VersionRecord> {
    Ok(VersionRecord {
        name: row.text("name")?,
        version: row.text("version")?,
        digest: row.text("digest")?,
        plugin_digest: row.text("plugin_digest")?,
        key_id: row.text("key_id")?,
        manifest: row.text("manifest")?,
        readme: row.text("readme")?,
        has_icon: row.int("has_icon")? != 0,
        size: row.int("size")?,
        published_by: row.text("published_by")?,
        published_at_ms: row.int("published_at")?,
        yanked_at_ms: row.opt_int("yanked_at")?,
        yank_reason: row.opt_text("yank_reason")?,
        downloads: row.int("downloads")?,
    })
}

/// `%text%` for LIKE, lowercased, with `\` escaping LIKE's own wildcards.
fn like_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[async_trait]
impl<DB> MarketStorage for SqlMarket<DB>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    DB::Row: HubRow,
    for<'t> i16: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
{
    async fn add_publisher_key(&self, k: &PublisherKey) -> Result<()> {
        let buf = with_binds(
            "INSERT INTO publisher_keys (key_id, publisher, user_id, public_key, secret_key, \
             created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                Bind::Text(k.key_id.clone()),
                Bind::Text(k.publisher.clone()),
                Bind::OptI64(k.user_id),
                Bind::Text(k.public_key.clone()),
                Bind::OptText(k.secret_key.clone()),
                Bind::I64(k.created_at_ms),
                Bind::OptI64(k.revoked_at_ms),
            ],
        );
        into_query::<DB>(buf)
            .execute(&self.writer)
            .await
            .map_err(conflict(format!("publisher key {}", k.key_id)))?;
        Ok(())
    }

    async fn publisher_key(&self, key_id: &str) -> Result<Option<PublisherKey>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(KEY_COLUMNS)
            .push(" FROM publisher_keys WHERE key_id = ")
            .bind(Bind::Text(key_id.into()));
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        row.as_ref().map(key).transpose()
    }

    async fn publisher_keys(&self, user_id: Option<i64>) -> Result<Vec<PublisherKey>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(KEY_COLUMNS).push(" FROM publisher_keys");
        if let Some(u) = user_id {
            buf.push(" WHERE user_id = ").bind(Bind::I64(u));
        }
        buf.push(" ORDER BY created_at DESC, key_id");
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(key).collect()
    }

    async fn revoke_publisher_key(&self, key_id: &str, now_ms: i64) -> Result<bool> {
        let buf = with_binds(
            "UPDATE publisher_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL \
             RETURNING key_id",
            vec![Bind::I64(now_ms), Bind::Text(key_id.into())],
        );
        Ok(into_query::<DB>(buf)
            .fetch_optional(&self.writer)
            .await?
            .is_some())
    }

    async fn own_key(&self, publisher: &str) -> Result<Option<PublisherKey>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(KEY_COLUMNS)
            .push(" FROM publisher_keys WHERE secret_key IS NOT NULL AND publisher = ")
            .bind(Bind::Text(publisher.into()));
        let row = into_query::<DB>(buf).fetch_optional(&self.writer).await?;
        row.as_ref().map(key).transpose()
    }

    async fn publish(&self, v: &NewVersion, c: &PluginComponent) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let component = with_binds(
            "INSERT INTO plugin_components (digest, name, version, kind, manifest, component, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (digest) DO NOTHING",
            vec![
                Bind::Text(c.digest.clone()),
                Bind::Text(c.name.clone()),
                Bind::Text(c.version.clone()),
                Bind::Text(c.kind.clone()),
                Bind::Text(c.manifest.clone()),
                Bind::Bytes(c.component.clone()),
                Bind::I64(c.created_at_ms),
            ],
        );
        into_query::<DB>(component).execute(&mut *tx).await?;
        let package = with_binds(
            "INSERT INTO market_packages (name, publisher, kind, description, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO UPDATE SET \
             description = excluded.description, updated_at = excluded.updated_at \
             WHERE market_packages.publisher = excluded.publisher \
             AND market_packages.kind = excluded.kind RETURNING name",
            vec![
                Bind::Text(v.name.clone()),
                Bind::Text(v.publisher.clone()),
                Bind::Text(v.kind.clone()),
                Bind::Text(v.description.clone()),
                Bind::I64(v.published_at_ms),
            ],
        );
        if into_query::<DB>(package)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            // The name belongs to another publisher or is of another kind (checked before; this
            // is the race between two first publications).
            return Err(StorageError::Conflict(format!(
                "package '{}' of another publisher or kind",
                v.name
            )));
        }
        // A NULL icon is written as a literal: a bound NULL would be typed text, not bytes.
        let version = with_binds(
            if v.icon.is_some() {
                "INSERT INTO market_versions (name, version, digest, plugin_digest, key_id, manifest, \
                 readme, package, size, published_by, published_at, icon) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            } else {
                "INSERT INTO market_versions (name, version, digest, plugin_digest, key_id, manifest, \
                 readme, package, size, published_by, published_at, icon) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)"
            },
            vec![
                Bind::Text(v.name.clone()),
                Bind::Text(v.version.clone()),
                Bind::Text(v.digest.clone()),
                Bind::Text(c.digest.clone()),
                Bind::Text(v.key_id.clone()),
                Bind::Text(c.manifest.clone()),
                Bind::Text(v.readme.clone()),
                Bind::Bytes(v.package.clone()),
                Bind::I64(v.package.len() as i64),
                Bind::Text(v.published_by.clone()),
                Bind::I64(v.published_at_ms),
            ]
            .into_iter()
            .chain(v.icon.clone().map(Bind::Bytes))
            .collect(),
        );
        into_query::<DB>(version)
            .execute(&mut *tx)
            .await
            .map_err(conflict(format!("version {} of '{}'", v.version, v.name)))?;
        tx.commit().await?;
        Ok(())
    }

    async fn packages(&self, text: Option<&str>, kind: Option<&str>) -> Result<Vec<PackageRecord>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(PACKAGE_COLUMNS)
            .push(" FROM market_packages p WHERE 1 = 1");
        if let Some(t) = text.filter(|t| !t.trim().is_empty()) {
            let p = like_pattern(t.trim());
            buf.push(" AND (LOWER(p.name) LIKE ")
                .bind(Bind::Text(p.clone()))
                .push(" ESCAPE '\\' OR LOWER(p.description) LIKE ")
                .bind(Bind::Text(p))
                .push(" ESCAPE '\\')");
        }
        if let Some(k) = kind {
            buf.push(" AND p.kind = ").bind(Bind::Text(k.into()));
        }
        buf.push(" ORDER BY p.name");
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(package).collect()
    }

    async fn package(&self, name: &str) -> Result<Option<PackageRecord>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(PACKAGE_COLUMNS)
            .push(" FROM market_packages p WHERE p.name = ")
            .bind(Bind::Text(name.into()));
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        row.as_ref().map(package).transpose()
    }

    async fn versions(&self, name: &str) -> Result<Vec<VersionRecord>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(VERSION_COLUMNS)
            .push(" FROM market_versions WHERE name = ")
            .bind(Bind::Text(name.into()));
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(version).collect()
    }

    async fn version(&self, name: &str, version: &str) -> Result<Option<VersionRecord>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(VERSION_COLUMNS)
            .push(" FROM market_versions WHERE name = ")
            .bind(Bind::Text(name.into()))
            .push(" AND version = ")
            .bind(Bind::Text(version.into()));
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        row.as_ref().map(self::version).transpose()
    }

    async fn package_file(
        &self,
        name: &str,
        version: &str,
        count: bool,
    ) -> Result<Option<Vec<u8>>> {
        let binds = || vec![Bind::Text(name.into()), Bind::Text(version.into())];
        if count {
            let buf = with_binds(
                "UPDATE market_versions SET downloads = downloads + 1 WHERE name = $1 AND version = $2",
                binds(),
            );
            into_query::<DB>(buf).execute(&self.writer).await?;
        }
        let buf = with_binds(
            "SELECT package FROM market_versions WHERE name = $1 AND version = $2",
            binds(),
        );
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        row.map(|r| r.bytes("package")).transpose()
    }

    async fn icon(&self, name: &str, version: &str) -> Result<Option<Vec<u8>>> {
        let buf = with_binds(
            "SELECT icon FROM market_versions WHERE name = $1 AND version = $2 AND icon IS NOT NULL",
            vec![Bind::Text(name.into()), Bind::Text(version.into())],
        );
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        row.map(|r| r.bytes("icon")).transpose()
    }

    async fn set_yanked(
        &self,
        name: &str,
        version: &str,
        yank: Option<(&str, i64)>,
    ) -> Result<bool> {
        let buf = with_binds(
            "UPDATE market_versions SET yank_reason = $1, yanked_at = $2 WHERE name = $3 AND version = $4 \
             RETURNING name",
            vec![
                Bind::OptText(yank.map(|(r, _)| r.to_string())),
                Bind::OptI64(yank.map(|(_, at)| at)),
                Bind::Text(name.into()),
                Bind::Text(version.into()),
            ],
        );
        Ok(into_query::<DB>(buf)
            .fetch_optional(&self.writer)
            .await?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(super::like_pattern("Cost_%"), "%cost\\_\\%%");
    }
}
