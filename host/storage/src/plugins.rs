//! Plugin components, each tenant's installs with their health, and each plugin's kv: one
//! implementation over any sqlx backend, reached through [`crate::Storage::plugins`].

use async_trait::async_trait;
use hub_core::TenantId;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::decode::HubRow;
use crate::model::*;
use crate::sql::{Bind, into_query, with_binds};
use crate::{Result, StorageError};

#[async_trait]
pub trait PluginStorage: Send + Sync {
    /// Stores a component (a no-op when its digest is already there).
    async fn put_plugin_component(&self, component: &PluginComponent) -> Result<()>;
    async fn plugin_component(&self, digest: &str) -> Result<Option<PluginComponent>>;
    /// Inserts or replaces the tenant's install of `install.name`.
    async fn save_plugin_install(&self, install: &PluginInstall) -> Result<()>;
    /// The tenant's installs in running order.
    async fn plugin_installs(&self, tenant: TenantId) -> Result<Vec<PluginInstall>>;
    /// Tenants with an enabled install of a plugin of one of `kinds` (`detector`, `integration`,
    /// …): whom the scheduler and the sync look at.
    async fn tenants_with_kinds(&self, kinds: &[&str]) -> Result<Vec<TenantId>>;
    /// Whether there was such an install.
    async fn delete_plugin_install(&self, tenant: TenantId, name: &str) -> Result<bool>;
    /// Records the failure streak; with a reason, also disables the install.
    async fn record_plugin_health(
        &self,
        tenant: TenantId,
        name: &str,
        consecutive_failures: i64,
        disable_reason: Option<&str>,
        now_ms: i64,
    ) -> Result<()>;
    /// The plugin's `kv` for this tenant.
    async fn plugin_kv(
        &self,
        tenant: TenantId,
        plugin: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<u8>>>;
    /// Writes (`Some`) and deletes (`None`), in one transaction.
    async fn apply_plugin_kv(
        &self,
        tenant: TenantId,
        plugin: &str,
        changes: &[(String, Option<Vec<u8>>)],
    ) -> Result<()>;
    async fn delete_plugin_kv(&self, tenant: TenantId, plugin: &str) -> Result<()>;
}

pub(crate) struct SqlPlugins<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlPlugins<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

#[async_trait]
impl<DB> PluginStorage for SqlPlugins<DB>
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
    async fn put_plugin_component(&self, c: &PluginComponent) -> Result<()> {
        let buf = with_binds(
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
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(())
    }

    async fn plugin_component(&self, digest: &str) -> Result<Option<PluginComponent>> {
        let buf = with_binds(
            "SELECT digest, name, version, kind, manifest, component, created_at \
             FROM plugin_components WHERE digest = $1",
            vec![Bind::Text(digest.into())],
        );
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        row.map(|r| {
            Ok(PluginComponent {
                digest: r.text("digest")?,
                name: r.text("name")?,
                version: r.text("version")?,
                kind: r.text("kind")?,
                manifest: r.text("manifest")?,
                component: r.bytes("component")?,
                created_at_ms: r.int("created_at")?,
            })
        })
        .transpose()
    }

    async fn save_plugin_install(&self, i: &PluginInstall) -> Result<()> {
        let buf = with_binds(
            "INSERT INTO plugin_installs (tenant_id, name, digest, enabled, position, config, grants, \
             consecutive_failures, disabled_reason, installed_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET digest = excluded.digest, \
             enabled = excluded.enabled, position = excluded.position, config = excluded.config, \
             grants = excluded.grants, consecutive_failures = excluded.consecutive_failures, \
             disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
            vec![
                Bind::I64(i.tenant.get()),
                Bind::Text(i.name.clone()),
                Bind::Text(i.digest.clone()),
                Bind::I64(i.enabled as i64),
                Bind::I64(i.position),
                Bind::Text(i.config_json.clone()),
                Bind::Text(i.grants_json.clone()),
                Bind::I64(i.consecutive_failures),
                Bind::OptText(i.disabled_reason.clone()),
                Bind::I64(i.installed_at_ms),
                Bind::I64(i.updated_at_ms),
            ],
        );
        into_query::<DB>(buf)
            .execute(&self.writer)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                    StorageError::NotFound(format!("plugin component {}", i.digest))
                }
                _ => e.into(),
            })?;
        Ok(())
    }

    async fn tenants_with_kinds(&self, kinds: &[&str]) -> Result<Vec<TenantId>> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=kinds.len()).map(|i| format!("${i}")).collect();
        let buf = with_binds(
            &format!(
                "SELECT DISTINCT i.tenant_id FROM plugin_installs i \
                 JOIN plugin_components c ON c.digest = i.digest \
                 WHERE i.enabled = 1 AND c.kind IN ({}) ORDER BY i.tenant_id",
                marks.join(", ")
            ),
            kinds.iter().map(|k| Bind::Text((*k).into())).collect(),
        );
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| Ok(TenantId::from_verified(r.int("tenant_id")?)))
            .collect()
    }

    async fn plugin_installs(&self, t: TenantId) -> Result<Vec<PluginInstall>> {
        let buf = with_binds(
            "SELECT i.tenant_id, i.name, i.digest, c.version, c.kind, i.enabled, i.position, i.config, \
             i.grants, i.consecutive_failures, i.disabled_reason, i.installed_at, i.updated_at \
             FROM plugin_installs i JOIN plugin_components c ON c.digest = i.digest \
             WHERE i.tenant_id = $1 ORDER BY i.position, i.name",
            vec![Bind::I64(t.get())],
        );
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| {
                Ok(PluginInstall {
                    tenant: TenantId::from_verified(r.int("tenant_id")?),
                    name: r.text("name")?,
                    digest: r.text("digest")?,
                    version: r.text("version")?,
                    kind: r.text("kind")?,
                    enabled: r.int("enabled")? != 0,
                    position: r.int("position")?,
                    config_json: r.text("config")?,
                    grants_json: r.text("grants")?,
                    consecutive_failures: r.int("consecutive_failures")?,
                    disabled_reason: r.opt_text("disabled_reason")?,
                    installed_at_ms: r.int("installed_at")?,
                    updated_at_ms: r.int("updated_at")?,
                })
            })
            .collect()
    }

    async fn delete_plugin_install(&self, t: TenantId, name: &str) -> Result<bool> {
        let buf = with_binds(
            "DELETE FROM plugin_installs WHERE tenant_id = $1 AND name = $2 RETURNING name",
            vec![Bind::I64(t.get()), Bind::Text(name.into())],
        );
        Ok(into_query::<DB>(buf)
            .fetch_optional(&self.writer)
            .await?
            .is_some())
    }

    async fn record_plugin_health(
        &self,
        t: TenantId,
        name: &str,
        consecutive_failures: i64,
        disable_reason: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        let buf = with_binds(
            "UPDATE plugin_installs SET consecutive_failures = $1, \
             enabled = CASE WHEN $2 IS NULL THEN enabled ELSE 0 END, \
             disabled_reason = COALESCE($2, disabled_reason), updated_at = $3 \
             WHERE tenant_id = $4 AND name = $5",
            vec![
                Bind::I64(consecutive_failures),
                Bind::OptText(disable_reason.map(str::to_string)),
                Bind::I64(now_ms),
                Bind::I64(t.get()),
                Bind::Text(name.into()),
            ],
        );
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(())
    }

    async fn plugin_kv(
        &self,
        t: TenantId,
        plugin: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
        let buf = with_binds(
            "SELECT key, value FROM plugin_kv WHERE tenant_id = $1 AND plugin = $2",
            vec![Bind::I64(t.get()), Bind::Text(plugin.into())],
        );
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| Ok((r.text("key")?, r.bytes("value")?)))
            .collect()
    }

    /// Applies writes (`Some`) and deletes (`None`) in one transaction.
    async fn apply_plugin_kv(
        &self,
        t: TenantId,
        plugin: &str,
        changes: &[(String, Option<Vec<u8>>)],
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for (key, value) in changes {
            let buf = match value {
                Some(v) => with_binds(
                    "INSERT INTO plugin_kv (tenant_id, plugin, key, value) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id, plugin, key) DO UPDATE SET value = excluded.value",
                    vec![
                        Bind::I64(t.get()),
                        Bind::Text(plugin.into()),
                        Bind::Text(key.clone()),
                        Bind::Bytes(v.clone()),
                    ],
                ),
                None => with_binds(
                    "DELETE FROM plugin_kv WHERE tenant_id = $1 AND plugin = $2 AND key = $3",
                    vec![
                        Bind::I64(t.get()),
                        Bind::Text(plugin.into()),
                        Bind::Text(key.clone()),
                    ],
                ),
            };
            into_query::<DB>(buf).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_plugin_kv(&self, t: TenantId, plugin: &str) -> Result<()> {
        let buf = with_binds(
            "DELETE FROM plugin_kv WHERE tenant_id = $1 AND plugin = $2",
            vec![Bind::I64(t.get()), Bind::Text(plugin.into())],
        );
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(())
    }
}
