//! Silences: a tenant's matchers (JSON, checked by the API) that hold back the alert notices they
//! match from a start until an end; expiring one early moves its end to then. Kept after they end
//! as long as raw events, for the record of what was not sent and why.

use async_trait::async_trait;
use hub_core::TenantId;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::Result;
use crate::decode::HubRow;
use crate::sql::{Bind, into_query, with_binds};

/// A silence as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSilence {
    pub id: i64,
    /// The matchers as JSON.
    pub matchers: String,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    /// Why, as its author wrote.
    pub comment: String,
    pub created_by: String,
    pub created_at_ms: i64,
}

/// A silence to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSilence {
    pub matchers: String,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub comment: String,
    pub created_by: String,
}

/// Silences, whatever the backend.
#[async_trait]
pub trait SilenceStorage: Send + Sync {
    async fn create_silence(
        &self,
        tenant: TenantId,
        s: &NewSilence,
        now_ms: i64,
    ) -> Result<StoredSilence>;
    /// The tenant's silences that have not ended at `now_ms` (active or to come), soonest end
    /// first, or (`ended`) those that have, newest end first; at most `limit`.
    async fn silences(
        &self,
        tenant: TenantId,
        now_ms: i64,
        ended: bool,
        limit: usize,
    ) -> Result<Vec<StoredSilence>>;
    /// Ends a silence at `now_ms`; `None` when the tenant has no such silence or it had ended.
    async fn expire_silence(
        &self,
        tenant: TenantId,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<StoredSilence>>;
    /// Deletes the tenant's silences that ended before `before_ms`; how many.
    async fn forget_silences_before(&self, tenant: TenantId, before_ms: i64) -> Result<u64>;
}

pub(crate) struct SqlSilences<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlSilences<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

const COLUMNS: &str = "id, matchers, starts_at, ends_at, comment, created_by, created_at";

fn silence<R: HubRow>(row: &R) -> Result<StoredSilence> {
    Ok(StoredSilence {
        id: row.int("id")?,
        matchers: row.text("matchers")?,
        starts_at_ms: row.int("starts_at")?,
        ends_at_ms: row.int("ends_at")?,
        comment: row.text("comment")?,
        created_by: row.text("created_by")?,
        created_at_ms: row.int("created_at")?,
    })
}

#[async_trait]
impl<DB> SilenceStorage for SqlSilences<DB>
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
    async fn create_silence(
        &self,
        tenant: TenantId,
        s: &NewSilence,
        now_ms: i64,
    ) -> Result<StoredSilence> {
        let mut buf = with_binds(
            "INSERT INTO alert_silences (tenant_id, matchers, starts_at, ends_at, comment, \
             created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            vec![
                Bind::I64(tenant.get()),
                Bind::Text(s.matchers.clone()),
                Bind::I64(s.starts_at_ms),
                Bind::I64(s.ends_at_ms),
                Bind::Text(s.comment.clone()),
                Bind::Text(s.created_by.clone()),
                Bind::I64(now_ms),
            ],
        );
        buf.push(COLUMNS);
        silence(&into_query::<DB>(buf).fetch_one(&self.writer).await?)
    }

    async fn silences(
        &self,
        tenant: TenantId,
        now_ms: i64,
        ended: bool,
        limit: usize,
    ) -> Result<Vec<StoredSilence>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(COLUMNS)
            .push(" FROM alert_silences WHERE tenant_id = ")
            .bind(Bind::I64(tenant.get()))
            .push(if ended {
                " AND ends_at <= "
            } else {
                " AND ends_at > "
            })
            .bind(Bind::I64(now_ms))
            .push(if ended {
                " ORDER BY ends_at DESC, id DESC LIMIT "
            } else {
                " ORDER BY ends_at, id LIMIT "
            })
            .bind(Bind::I64(limit as i64));
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(silence).collect()
    }

    async fn expire_silence(
        &self,
        tenant: TenantId,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<StoredSilence>> {
        let mut buf = with_binds(
            "UPDATE alert_silences SET ends_at = $1 WHERE tenant_id = $2 AND id = $3 \
             AND ends_at > $1 RETURNING ",
            vec![Bind::I64(now_ms), Bind::I64(tenant.get()), Bind::I64(id)],
        );
        buf.push(COLUMNS);
        into_query::<DB>(buf)
            .fetch_optional(&self.writer)
            .await?
            .as_ref()
            .map(silence)
            .transpose()
    }

    async fn forget_silences_before(&self, tenant: TenantId, before_ms: i64) -> Result<u64> {
        Ok(into_query::<DB>(with_binds(
            "DELETE FROM alert_silences WHERE tenant_id = $1 AND ends_at < $2 RETURNING id",
            vec![Bind::I64(tenant.get()), Bind::I64(before_ms)],
        ))
        .fetch_all(&self.writer)
        .await?
        .len() as u64)
    }
}
