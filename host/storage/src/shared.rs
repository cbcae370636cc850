//! The statements that read and write the same way on both backends, written once. SQLite accepts
//! PostgreSQL's `$1` placeholders, so one SQL text serves both; the trait bounds that make a sqlx
//! database usable here are stated once, on the impl block.

use std::marker::PhantomData;

use futures::TryStreamExt;
use hub_core::time::Resolution;
use hub_core::{ApiKeyScope, TenantId};
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::decode::{self, HubRow};
use crate::model::*;
use crate::sql::{self, Bind, Placeholders, SqlBuf, into_query, with_binds};
use crate::{Result, StorageError};

/// Shared statements for the database `DB` (SQLite or PostgreSQL).
pub(crate) struct Shared<DB>(PhantomData<DB>);

pub(crate) const API_KEY_COLUMNS: &str = "id, tenant_id, name, prefix, secret_hash, scopes, created_at, \
    expires_at, revoked_at, last_used_at, rate_limit_per_s, rotated_from";

pub(crate) fn stmt(sql: &str) -> SqlBuf {
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

pub(crate) fn api_key<R: HubRow>(row: &R) -> Result<ApiKeyRecord> {
    let scopes = ApiKeyScope::parse_list(&row.text("scopes")?).map_err(StorageError::Corrupt)?;
    Ok(ApiKeyRecord {
        id: row.int("id")?,
        tenant: TenantId::from_verified(row.int("tenant_id")?),
        name: row.text("name")?,
        prefix: row.text("prefix")?,
        secret_hash: row.text("secret_hash")?,
        scopes,
        created_at_ms: row.int("created_at")?,
        expires_at_ms: row.opt_int("expires_at")?,
        revoked_at_ms: row.opt_int("revoked_at")?,
        last_used_at_ms: row.opt_int("last_used_at")?,
        rate_limit_per_s: row
            .opt_int("rate_limit_per_s")?
            .map(|r| u32::try_from(r).map_err(|_| StorageError::Corrupt(format!("rate limit {r}"))))
            .transpose()?,
        rotated_from: row.opt_int("rotated_from")?,
    })
}

pub(crate) fn tenant<R: HubRow>(row: &R) -> Result<Tenant> {
    Ok(Tenant {
        id: TenantId::from_verified(row.int("id")?),
        name: row.text("name")?,
        created_at_ms: row.int("created_at")?,
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
        row.map(|r| r.text("value")).transpose()
    }

    pub(crate) async fn set_meta(pool: &Pool<DB>, key: &str, value: &str) -> Result<()> {
        let buf = with_binds(
            "INSERT INTO hub_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![Bind::Text(key.into()), Bind::Text(value.into())],
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
        let sqlite = DB::NAME == "SQLite";
        let buf = sql::list_events(Placeholders::Dollar, t, filter, after, limit + 1, sqlite);
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
            "SELECT COUNT(*) AS n FROM events WHERE tenant_id = $1",
            vec![Bind::I64(t.get())],
        );
        into_query::<DB>(buf).fetch_one(pool).await?.int("n")
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
            .map(|r| decode::rollup_row(r, scan.group_by, scan.by_bucket, scan.with_sketch))
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
            fold.add(decode::raw_row(&row, scan.group_by, scan.tag)?);
        }
        Ok(fold.finish())
    }
}
