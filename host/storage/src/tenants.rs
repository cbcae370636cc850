//! Tenants and their API keys: one implementation over any sqlx backend, reached through
//! [`crate::Storage::tenants`].

use async_trait::async_trait;
use hub_core::TenantId;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::Result;
use crate::decode::HubRow;
use crate::model::*;
use crate::shared::{API_KEY_COLUMNS, api_key, conflict, stmt, tenant};
use crate::sql::{Bind, into_query, with_binds};

#[async_trait]
pub trait TenantStorage: Send + Sync {
    /// Fails with [`StorageError::Conflict`] when the name is taken.
    async fn create_tenant(&self, name: &str, now_ms: i64) -> Result<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    async fn create_api_key(
        &self,
        tenant: TenantId,
        key: &NewApiKey,
        now_ms: i64,
    ) -> Result<ApiKeyRecord>;
    /// The auth layer's lookup: by the visible prefix, across tenants (the key says whose it is).
    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyRecord>>;
    async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>>;
    async fn touch_api_key(&self, tenant: TenantId, key_id: i64, at_ms: i64) -> Result<()>;
    /// Makes `tenant`'s key `key_id` stop working at `at_ms` (or earlier, if it already does).
    /// `None` when the tenant has no such key.
    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        key_id: i64,
        at_ms: i64,
    ) -> Result<Option<ApiKeyRecord>>;
}

pub(crate) struct SqlTenants<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlTenants<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

#[async_trait]
impl<DB> TenantStorage for SqlTenants<DB>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
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
    async fn create_tenant(&self, name: &str, now_ms: i64) -> Result<Tenant> {
        let buf = with_binds(
            "INSERT INTO tenants (name, created_at) VALUES ($1, $2) RETURNING id, name, created_at",
            vec![Bind::Text(name.into()), Bind::I64(now_ms)],
        );
        let row = into_query::<DB>(buf)
            .fetch_one(&self.writer)
            .await
            .map_err(conflict(format!("tenant '{name}'")))?;
        tenant(&row)
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let buf = with_binds(
            "SELECT id, name, created_at FROM tenants WHERE name = $1",
            vec![Bind::Text(name.into())],
        );
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        row.as_ref().map(tenant).transpose()
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows = into_query::<DB>(stmt(
            "SELECT id, name, created_at FROM tenants ORDER BY name",
        ))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(tenant).collect()
    }

    async fn create_api_key(
        &self,
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
            .fetch_one(&self.writer)
            .await
            .map_err(conflict(format!("API key prefix '{}'", key.prefix)))?;
        api_key(&row)
    }

    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyRecord>> {
        let mut buf = stmt("SELECT ");
        buf.push(API_KEY_COLUMNS)
            .push(" FROM api_keys WHERE prefix = ")
            .bind(Bind::Text(prefix.into()));
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        row.as_ref().map(api_key).transpose()
    }

    async fn list_api_keys(&self, t: TenantId) -> Result<Vec<ApiKeyRecord>> {
        let mut buf = stmt("SELECT ");
        buf.push(API_KEY_COLUMNS)
            .push(" FROM api_keys WHERE tenant_id = ")
            .bind(Bind::I64(t.get()));
        buf.push(" ORDER BY created_at, id");
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(api_key).collect()
    }

    async fn touch_api_key(&self, t: TenantId, key_id: i64, at_ms: i64) -> Result<()> {
        let buf = with_binds(
            "UPDATE api_keys SET last_used_at = $1 WHERE tenant_id = $2 AND id = $3",
            vec![Bind::I64(at_ms), Bind::I64(t.get()), Bind::I64(key_id)],
        );
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(())
    }

    /// Sets when a key of `t` stops working (never later than it already does); `None` when `t`
    /// has no key `key_id`.
    async fn revoke_api_key(
        &self,
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
        let row = into_query::<DB>(buf).fetch_optional(&self.writer).await?;
        row.as_ref().map(api_key).transpose()
    }
}
