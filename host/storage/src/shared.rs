//! The statements that read and write the same way on both backends, written once. SQLite accepts
//! PostgreSQL's `$1` placeholders, so one SQL text serves both; the trait bounds that make a sqlx
//! database usable here are stated once, on the impl block.

use std::marker::PhantomData;

use futures::TryStreamExt;
use hub_core::time::Resolution;
use hub_core::{ApiKeyScope, TenantId};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::decode::{self, HubRow};
use crate::model::*;
use crate::sql::{self, Bind, Placeholders, SqlBuf, into_query, with_binds};
use crate::{Result, StorageError};

/// Shared statements for the database `DB` (SQLite or PostgreSQL).
pub(crate) struct Shared<DB>(PhantomData<DB>);

const API_KEY_COLUMNS: &str = "id, tenant_id, name, prefix, secret_hash, scopes, created_at, \
    expires_at, revoked_at, last_used_at, rate_limit_per_s, rotated_from";

fn stmt(sql: &str) -> SqlBuf {
    let mut buf = SqlBuf::new(Placeholders::Dollar);
    buf.push(sql);
    buf
}

/// Maps a unique violation to `Conflict(what)`, any other error as it is.
pub(crate) fn conflict(what: String) -> impl FnOnce(sqlx::Error) -> StorageError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StorageError::Conflict(what),
        _ => e.into(),
    }
}

fn api_key<R: HubRow>(row: &R) -> Result<ApiKeyRecord>
where
    usize: ColumnIndex<R>,
{
    let scopes = ApiKeyScope::parse_list(&row.text(5)?).map_err(StorageError::Corrupt)?;
    Ok(ApiKeyRecord {
        id: row.int(0)?,
        tenant: TenantId::from_verified(row.int(1)?),
        name: row.text(2)?,
        prefix: row.text(3)?,
        secret_hash: row.text(4)?,
        scopes,
        created_at_ms: row.int(6)?,
        expires_at_ms: row.opt_int(7)?,
        revoked_at_ms: row.opt_int(8)?,
        last_used_at_ms: row.opt_int(9)?,
        rate_limit_per_s: row
            .opt_int(10)?
            .map(|r| u32::try_from(r).map_err(|_| StorageError::Corrupt(format!("rate limit {r}"))))
            .transpose()?,
        rotated_from: row.opt_int(11)?,
    })
}

fn tenant<R: HubRow>(row: &R) -> Result<Tenant>
where
    usize: ColumnIndex<R>,
{
    Ok(Tenant {
        id: TenantId::from_verified(row.int(0)?),
        name: row.text(1)?,
        created_at_ms: row.int(2)?,
    })
}

/// Cuts a `limit + 1` result to `limit` and sets the cursor when there was more.
fn page(mut events: Vec<StoredEvent>, limit: usize) -> EventPage {
    let next = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|e| EventCursor {
            ts_ms: e.record.ts_ms,
            event_id: e.record.event_id.clone(),
        })
    } else {
        None
    };
    EventPage { events, next }
}

/// Rollup resolutions that the policy expires, with how long each is kept.
pub(crate) fn rollup_retention(policy: &RetentionPolicy) -> Vec<(Resolution, i64)> {
    [
        (Resolution::Minute, policy.minute_ms),
        (Resolution::Hour, policy.hour_ms),
        (Resolution::Day, policy.day_ms),
    ]
    .into_iter()
    .filter_map(|(r, keep)| keep.map(|k| (r, k)))
    .collect()
}

impl<DB> Shared<DB>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    DB::Row: HubRow,
    usize: ColumnIndex<DB::Row>,
    for<'t> i16: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
{
    pub(crate) async fn get_meta(pool: &Pool<DB>, key: &str) -> Result<Option<String>> {
        let buf = with_binds(
            "SELECT value FROM hub_meta WHERE key = $1",
            vec![Bind::Text(key.into())],
        );
        let row = into_query::<DB>(buf).fetch_optional(pool).await?;
        row.map(|r| r.text(0)).transpose()
    }

    pub(crate) async fn set_meta(pool: &Pool<DB>, key: &str, value: &str) -> Result<()> {
        let buf = with_binds(
            "INSERT INTO hub_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![Bind::Text(key.into()), Bind::Text(value.into())],
        );
        into_query::<DB>(buf).execute(pool).await?;
        Ok(())
    }

    pub(crate) async fn create_tenant(pool: &Pool<DB>, name: &str, now_ms: i64) -> Result<Tenant> {
        let buf = with_binds(
            "INSERT INTO tenants (name, created_at) VALUES ($1, $2) RETURNING id, name, created_at",
            vec![Bind::Text(name.into()), Bind::I64(now_ms)],
        );
        let row = into_query::<DB>(buf)
            .fetch_one(pool)
            .await
            .map_err(conflict(format!("tenant '{name}'")))?;
        tenant(&row)
    }

    pub(crate) async fn tenant_by_name(pool: &Pool<DB>, name: &str) -> Result<Option<Tenant>> {
        let buf = with_binds(
            "SELECT id, name, created_at FROM tenants WHERE name = $1",
            vec![Bind::Text(name.into())],
        );
        let row = into_query::<DB>(buf).fetch_optional(pool).await?;
        row.as_ref().map(tenant).transpose()
    }

    pub(crate) async fn list_tenants(pool: &Pool<DB>) -> Result<Vec<Tenant>> {
        let rows = into_query::<DB>(stmt(
            "SELECT id, name, created_at FROM tenants ORDER BY name",
        ))
        .fetch_all(pool)
        .await?;
        rows.iter().map(tenant).collect()
    }

    pub(crate) async fn create_api_key(
        pool: &Pool<DB>,
        t: TenantId,
        key: &NewApiKey,
        now_ms: i64,
    ) -> Result<ApiKeyRecord> {
        let mut buf = stmt(
            "INSERT INTO api_keys (tenant_id, name, prefix, secret_hash, scopes, created_at, expires_at, \
             rate_limit_per_s, rotated_from) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
        );
        buf.push(API_KEY_COLUMNS);
        let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
        buf.binds = vec![
            Bind::I64(t.get()),
            Bind::Text(key.name.clone()),
            Bind::Text(key.prefix.clone()),
            Bind::Text(key.secret_hash.clone()),
            Bind::Text(scopes.join(",")),
            Bind::I64(now_ms),
            Bind::OptI64(key.expires_at_ms),
            Bind::OptI64(key.rate_limit_per_s.map(i64::from)),
            Bind::OptI64(key.rotated_from),
        ];
        let row = into_query::<DB>(buf)
            .fetch_one(pool)
            .await
            .map_err(conflict(format!("API key prefix '{}'", key.prefix)))?;
        api_key(&row)
    }

    pub(crate) async fn api_key_by_prefix(
        pool: &Pool<DB>,
        prefix: &str,
    ) -> Result<Option<ApiKeyRecord>> {
        let mut buf = stmt("SELECT ");
        buf.push(API_KEY_COLUMNS)
            .push(" FROM api_keys WHERE prefix = ")
            .bind(Bind::Text(prefix.into()));
        let row = into_query::<DB>(buf).fetch_optional(pool).await?;
        row.as_ref().map(api_key).transpose()
    }

    pub(crate) async fn list_api_keys(pool: &Pool<DB>, t: TenantId) -> Result<Vec<ApiKeyRecord>> {
        let mut buf = stmt("SELECT ");
        buf.push(API_KEY_COLUMNS)
            .push(" FROM api_keys WHERE tenant_id = ")
            .bind(Bind::I64(t.get()));
        buf.push(" ORDER BY created_at, id");
        let rows = into_query::<DB>(buf).fetch_all(pool).await?;
        rows.iter().map(api_key).collect()
    }

    /// Sets when a key of `t` stops working (never later than it already does); `None` when `t`
    /// has no key `key_id`.
    pub(crate) async fn revoke_api_key(
        pool: &Pool<DB>,
        t: TenantId,
        key_id: i64,
        at_ms: i64,
    ) -> Result<Option<ApiKeyRecord>> {
        let mut buf = stmt(
            "UPDATE api_keys SET revoked_at = CASE WHEN revoked_at IS NOT NULL AND revoked_at <= $1 \
             THEN revoked_at ELSE $1 END WHERE tenant_id = $2 AND id = $3 RETURNING ",
        );
        buf.push(API_KEY_COLUMNS);
        buf.binds = vec![Bind::I64(at_ms), Bind::I64(t.get()), Bind::I64(key_id)];
        let row = into_query::<DB>(buf).fetch_optional(pool).await?;
        row.as_ref().map(api_key).transpose()
    }

    pub(crate) async fn touch_api_key(
        pool: &Pool<DB>,
        t: TenantId,
        key_id: i64,
        at_ms: i64,
    ) -> Result<()> {
        let buf = with_binds(
            "UPDATE api_keys SET last_used_at = $1 WHERE tenant_id = $2 AND id = $3",
            vec![Bind::I64(at_ms), Bind::I64(t.get()), Bind::I64(key_id)],
        );
        into_query::<DB>(buf).execute(pool).await?;
        Ok(())
    }

    pub(crate) async fn put_plugin_component(pool: &Pool<DB>, c: &PluginComponent) -> Result<()> {
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
        into_query::<DB>(buf).execute(pool).await?;
        Ok(())
    }

    pub(crate) async fn plugin_component(
        pool: &Pool<DB>,
        digest: &str,
    ) -> Result<Option<PluginComponent>> {
        let buf = with_binds(
            "SELECT digest, name, version, kind, manifest, component, created_at \
             FROM plugin_components WHERE digest = $1",
            vec![Bind::Text(digest.into())],
        );
        let row = into_query::<DB>(buf).fetch_optional(pool).await?;
        row.map(|r| {
            Ok(PluginComponent {
                digest: r.text(0)?,
                name: r.text(1)?,
                version: r.text(2)?,
                kind: r.text(3)?,
                manifest: r.text(4)?,
                component: r.bytes(5)?,
                created_at_ms: r.int(6)?,
            })
        })
        .transpose()
    }

    pub(crate) async fn save_plugin_install(pool: &Pool<DB>, i: &PluginInstall) -> Result<()> {
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
            .execute(pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                    StorageError::NotFound(format!("plugin component {}", i.digest))
                }
                _ => e.into(),
            })?;
        Ok(())
    }

    pub(crate) async fn plugin_installs(
        pool: &Pool<DB>,
        t: TenantId,
    ) -> Result<Vec<PluginInstall>> {
        let buf = with_binds(
            "SELECT i.tenant_id, i.name, i.digest, c.version, c.kind, i.enabled, i.position, i.config, \
             i.grants, i.consecutive_failures, i.disabled_reason, i.installed_at, i.updated_at \
             FROM plugin_installs i JOIN plugin_components c ON c.digest = i.digest \
             WHERE i.tenant_id = $1 ORDER BY i.position, i.name",
            vec![Bind::I64(t.get())],
        );
        let rows = into_query::<DB>(buf).fetch_all(pool).await?;
        rows.iter()
            .map(|r| {
                Ok(PluginInstall {
                    tenant: TenantId::from_verified(r.int(0)?),
                    name: r.text(1)?,
                    digest: r.text(2)?,
                    version: r.text(3)?,
                    kind: r.text(4)?,
                    enabled: r.int(5)? != 0,
                    position: r.int(6)?,
                    config_json: r.text(7)?,
                    grants_json: r.text(8)?,
                    consecutive_failures: r.int(9)?,
                    disabled_reason: r.opt_text(10)?,
                    installed_at_ms: r.int(11)?,
                    updated_at_ms: r.int(12)?,
                })
            })
            .collect()
    }

    pub(crate) async fn delete_plugin_install(
        pool: &Pool<DB>,
        t: TenantId,
        name: &str,
    ) -> Result<bool> {
        let buf = with_binds(
            "DELETE FROM plugin_installs WHERE tenant_id = $1 AND name = $2 RETURNING name",
            vec![Bind::I64(t.get()), Bind::Text(name.into())],
        );
        Ok(into_query::<DB>(buf).fetch_optional(pool).await?.is_some())
    }

    pub(crate) async fn record_plugin_health(
        pool: &Pool<DB>,
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
        into_query::<DB>(buf).execute(pool).await?;
        Ok(())
    }

    pub(crate) async fn plugin_kv(
        pool: &Pool<DB>,
        t: TenantId,
        plugin: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
        let buf = with_binds(
            "SELECT key, value FROM plugin_kv WHERE tenant_id = $1 AND plugin = $2",
            vec![Bind::I64(t.get()), Bind::Text(plugin.into())],
        );
        let rows = into_query::<DB>(buf).fetch_all(pool).await?;
        rows.iter().map(|r| Ok((r.text(0)?, r.bytes(1)?))).collect()
    }

    /// Applies writes (`Some`) and deletes (`None`) in one transaction.
    pub(crate) async fn apply_plugin_kv(
        pool: &Pool<DB>,
        t: TenantId,
        plugin: &str,
        changes: &[(String, Option<Vec<u8>>)],
    ) -> Result<()>
    where
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        let mut tx = pool.begin().await?;
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

    pub(crate) async fn delete_plugin_kv(pool: &Pool<DB>, t: TenantId, plugin: &str) -> Result<()> {
        let buf = with_binds(
            "DELETE FROM plugin_kv WHERE tenant_id = $1 AND plugin = $2",
            vec![Bind::I64(t.get()), Bind::Text(plugin.into())],
        );
        into_query::<DB>(buf).execute(pool).await?;
        Ok(())
    }

    pub(crate) async fn list_events(
        pool: &Pool<DB>,
        t: TenantId,
        filter: &EventFilter,
        after: Option<&EventCursor>,
        limit: usize,
    ) -> Result<EventPage> {
        let buf = sql::list_events(Placeholders::Dollar, t, filter, after, limit + 1);
        let rows = into_query::<DB>(buf).fetch_all(pool).await?;
        Ok(page(
            rows.iter().map(decode::event).collect::<Result<Vec<_>>>()?,
            limit,
        ))
    }

    /// The first event with this id stored at one of `times` (which a backend's id index gave,
    /// newest first), read through the unique index `(tenant_id, ts, event_id)`.
    pub(crate) async fn event_at_times(
        pool: &Pool<DB>,
        t: TenantId,
        event_id: &str,
        times: &[i64],
    ) -> Result<Option<StoredEvent>> {
        for &ts in times {
            let mut buf = stmt("SELECT ");
            buf.push(sql::EVENT_SELECT)
                .push(" FROM events WHERE tenant_id = ")
                .bind(Bind::I64(t.get()));
            buf.push(" AND ts = ").bind(Bind::I64(ts));
            buf.push(" AND event_id = ")
                .bind(Bind::Text(event_id.into()));
            if let Some(row) = into_query::<DB>(buf).fetch_optional(pool).await? {
                return decode::event(&row).map(Some);
            }
        }
        Ok(None)
    }

    pub(crate) async fn count_events(pool: &Pool<DB>, t: TenantId) -> Result<i64> {
        let buf = with_binds(
            "SELECT COUNT(*) FROM events WHERE tenant_id = $1",
            vec![Bind::I64(t.get())],
        );
        into_query::<DB>(buf).fetch_one(pool).await?.int(0)
    }

    pub(crate) async fn scan_rollups(
        pool: &Pool<DB>,
        t: TenantId,
        res: Resolution,
        scan: &Scan<'_>,
    ) -> Result<Vec<ScanRow>> {
        let buf = sql::rollup_scan(Placeholders::Dollar, sql::Dialect::of::<DB>(), t, res, scan);
        let rows = into_query::<DB>(buf).fetch_all(pool).await?;
        rows.iter()
            .map(|r| decode::rollup_row(r, scan.group_by.len(), scan.by_bucket, scan.with_sketch))
            .collect()
    }

    pub(crate) async fn scan_raw(
        pool: &Pool<DB>,
        t: TenantId,
        scan: &Scan<'_>,
        bucket_step_ms: i64,
    ) -> Result<Vec<ScanRow>> {
        let buf = sql::raw_scan(Placeholders::Dollar, t, scan);
        // Streamed and folded row by row: memory stays bounded by the number of groups.
        let mut rows = into_query::<DB>(buf).fetch(pool);
        let mut fold = decode::RawFold::new(scan.by_bucket, bucket_step_ms);
        while let Some(row) = rows.try_next().await? {
            fold.add(decode::raw_row(&row, scan.group_by.len())?);
        }
        Ok(fold.finish())
    }
}
