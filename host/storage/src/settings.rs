//! What a tenant's admins set for their own tenant: their retention (shorter than the operator's)
//! and their single sign-on rules. One implementation over any sqlx backend, reached through
//! [`crate::Storage::settings`].

use async_trait::async_trait;
use hub_core::TenantId;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::Result;
use crate::decode::HubRow;
use crate::model::{RetentionPolicy, TenantRetention};
use crate::sql::{Bind, into_query, with_binds};

#[async_trait]
pub trait SettingsStorage: Send + Sync {
    /// The tenant's own retention (all `None` when it has set none).
    async fn tenant_retention(&self, tenant: TenantId) -> Result<TenantRetention>;
    async fn set_tenant_retention(
        &self,
        tenant: TenantId,
        retention: &TenantRetention,
        now_ms: i64,
    ) -> Result<()>;

    /// The tenant's own single sign-on rules, as the JSON its admins saved.
    async fn tenant_sso_rules(&self, tenant: TenantId) -> Result<Option<String>>;
    async fn set_tenant_sso_rules(
        &self,
        tenant: TenantId,
        rules_json: &str,
        now_ms: i64,
    ) -> Result<()>;
    /// Every tenant's own rules, by tenant name (read at each single sign-on).
    async fn all_tenant_sso_rules(&self) -> Result<Vec<(String, String)>>;

    /// Every tenant with the retention that holds for it under the operator's `policy` (what
    /// retention enforcement deletes by).
    async fn retention_by_tenant(
        &self,
        policy: &RetentionPolicy,
    ) -> Result<Vec<(TenantId, RetentionPolicy)>>;
}

pub(crate) struct SqlSettings<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

/// A `tenant_retention` row's limits.
fn retention_row<R: HubRow>(r: &R) -> Result<TenantRetention> {
    Ok(TenantRetention {
        raw_ms: r.opt_int("raw_ms")?,
        minute_ms: r.opt_int("minute_ms")?,
        hour_ms: r.opt_int("hour_ms")?,
        day_ms: r.opt_int("day_ms")?,
    })
}

impl<DB: Database> SqlSettings<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

#[async_trait]
impl<DB> SettingsStorage for SqlSettings<DB>
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
    async fn tenant_retention(&self, t: TenantId) -> Result<TenantRetention> {
        let buf = with_binds(
            "SELECT raw_ms, minute_ms, hour_ms, day_ms FROM tenant_retention WHERE tenant_id = $1",
            vec![Bind::I64(t.get())],
        );
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        Ok(row
            .map(|r| retention_row(&r))
            .transpose()?
            .unwrap_or_default())
    }

    async fn set_tenant_retention(
        &self,
        t: TenantId,
        r: &TenantRetention,
        now_ms: i64,
    ) -> Result<()> {
        let buf = with_binds(
            "INSERT INTO tenant_retention (tenant_id, raw_ms, minute_ms, hour_ms, day_ms, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO UPDATE SET raw_ms = excluded.raw_ms, \
             minute_ms = excluded.minute_ms, hour_ms = excluded.hour_ms, day_ms = excluded.day_ms, \
             updated_at = excluded.updated_at",
            vec![
                Bind::I64(t.get()),
                Bind::OptI64(r.raw_ms),
                Bind::OptI64(r.minute_ms),
                Bind::OptI64(r.hour_ms),
                Bind::OptI64(r.day_ms),
                Bind::I64(now_ms),
            ],
        );
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(())
    }

    async fn tenant_sso_rules(&self, t: TenantId) -> Result<Option<String>> {
        let buf = with_binds(
            "SELECT rules FROM tenant_sso_rules WHERE tenant_id = $1",
            vec![Bind::I64(t.get())],
        );
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        row.map(|r| r.text("rules")).transpose()
    }

    async fn set_tenant_sso_rules(&self, t: TenantId, rules_json: &str, now_ms: i64) -> Result<()> {
        let buf = with_binds(
            "INSERT INTO tenant_sso_rules (tenant_id, rules, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET rules = excluded.rules, updated_at = excluded.updated_at",
            vec![
                Bind::I64(t.get()),
                Bind::Text(rules_json.into()),
                Bind::I64(now_ms),
            ],
        );
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(())
    }

    async fn all_tenant_sso_rules(&self) -> Result<Vec<(String, String)>> {
        let buf = with_binds(
            "SELECT t.name, r.rules FROM tenant_sso_rules r JOIN tenants t ON t.id = r.tenant_id",
            Vec::new(),
        );
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| Ok((r.text("name")?, r.text("rules")?)))
            .collect()
    }

    async fn retention_by_tenant(
        &self,
        policy: &RetentionPolicy,
    ) -> Result<Vec<(TenantId, RetentionPolicy)>> {
        let buf = with_binds(
            "SELECT t.id, r.raw_ms, r.minute_ms, r.hour_ms, r.day_ms FROM tenants t \
             LEFT JOIN tenant_retention r ON r.tenant_id = t.id",
            Vec::new(),
        );
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    TenantId::from_verified(r.int("id")?),
                    policy.for_tenant(&retention_row(r)?),
                ))
            })
            .collect()
    }
}
