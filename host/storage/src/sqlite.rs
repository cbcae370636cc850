//! SQLite: the embedded default. One writer connection (SQLite allows one writer at a time, and a
//! single connection avoids lock upgrades between connections) and a pool of readers; WAL mode so
//! readers never block the writer.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use hub_core::time::Resolution;
use hub_core::{ApiKeyScope, EventRecord, TenantId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite};

use crate::model::*;
use crate::rollup::{RollupKey, deltas, upsert_statements};
use crate::sql::{self, EVENT_INSERT_CHUNK, Placeholders, into_query};
use crate::{Result, Storage, StorageError, StorageOptions, decode, dedupe_in_batch};

pub struct SqliteStorage {
    writer: SqlitePool,
    readers: SqlitePool,
    /// Held for the whole write transaction: it serialises writers and guards the cache.
    rollups: tokio::sync::Mutex<RollupCache>,
    checkpointer: tokio::task::JoinHandle<()>,
}

/// Copies the WAL back into the database file twice a second on a connection of its own. A
/// passive checkpoint never blocks the writer, so the copy and its fsync use the other core
/// instead of stalling commits (inline auto-checkpoints cost the writer about a fifth of its time).
async fn checkpointer(pool: SqlitePool) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::debug!(error = %e, "background checkpoint failed");
        }
    }
}

/// Rollup rows as last committed by this process's writer, so that merging a delta needs no read.
///
/// Valid only while no other connection writes the file: `PRAGMA data_version` (which changes when
/// another connection commits) is checked at the start of every write, and the cache is dropped if
/// it moved. It is updated only after a commit succeeds.
#[derive(Default)]
struct RollupCache {
    data_version: Option<i64>,
    rows: HashMap<(TenantId, RollupKey), Aggregate>,
}

/// Cached rollup rows at most; past this the cache starts again empty.
const ROLLUP_CACHE_ROWS: usize = 200_000;

impl SqliteStorage {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: &Path, options: &StorageOptions) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::Database(sqlx::Error::Io(e)))?;
        }
        let connect = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses nothing when the process dies (kill -9): committed pages
            // are in the WAL file. Only an OS crash or power loss could lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory")
            // Checkpoints run on a background connection (see `checkpointer`), not inline in the
            // writer's commits; this only bounds the WAL should that task fall behind.
            .pragma("wal_autocheckpoint", "100000");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone())
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(connect.read_only(false))
            .await?;
        let checkpointer = tokio::spawn(checkpointer(readers.clone()));
        Ok(Self {
            writer,
            readers,
            rollups: tokio::sync::Mutex::new(RollupCache::default()),
            checkpointer,
        })
    }

    /// Builds the insert statements of one batch (binding every value) before any lock is taken.
    fn prepare(batch: &TenantBatch, received_at_ms: i64) -> PreparedBatch<'_> {
        let (unique, _) = dedupe_in_batch(&batch.events);
        let inserts = unique
            .chunks(EVENT_INSERT_CHUNK)
            .map(|chunk| {
                into_query::<Sqlite>(sql::insert_events_values(
                    batch.tenant,
                    received_at_ms,
                    chunk,
                ))
            })
            .collect();
        PreparedBatch {
            tenant: batch.tenant,
            unique,
            inserts,
        }
    }

    /// Runs a prepared batch; returns the indexes (into `unique`) of the events that were new.
    async fn insert_events(
        conn: &mut sqlx::SqliteConnection,
        batch: PreparedBatch<'_>,
    ) -> Result<Vec<usize>> {
        let mut inserted = Vec::with_capacity(batch.unique.len());
        for ((c, chunk), query) in batch
            .unique
            .chunks(EVENT_INSERT_CHUNK)
            .enumerate()
            .zip(batch.inserts)
        {
            let base = c * EVENT_INSERT_CHUNK;
            let result = query.execute(&mut *conn).await?;
            let affected = result.rows_affected() as usize;
            if affected == chunk.len() {
                inserted.extend(base..base + chunk.len());
                continue;
            }
            // Some were stored already (a resend). A multi-row INSERT gives the rows it adds
            // consecutive rowids ending at last_insert_rowid, so those rows are exactly the new
            // events. (RETURNING would say so directly, but costs about 4 µs per row on every
            // insert; this costs one read, and only here.)
            let last = result.last_insert_rowid();
            let new: HashSet<(String, i64)> = if affected == 0 {
                HashSet::new()
            } else {
                sqlx::query("SELECT event_id, ts FROM events WHERE rowid > ? AND rowid <= ?")
                    .bind(last - affected as i64)
                    .bind(last)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
                    .collect::<Result<_, sqlx::Error>>()?
            };
            if new.len() != affected {
                return Err(StorageError::Corrupt(format!(
                    "{affected} events inserted but {} found by rowid",
                    new.len()
                )));
            }
            for (i, e) in chunk.iter().enumerate() {
                if new.contains(&(e.event_id.clone(), e.ts_ms)) {
                    inserted.push(base + i);
                }
            }
        }
        Ok(inserted)
    }

    /// Merges deltas into stored rows: cached rows where this writer knows them, otherwise read
    /// per (resolution, bucket) in one statement. Returns the merged rows (for the cache).
    async fn merge_rollups(
        conn: &mut sqlx::SqliteConnection,
        tenant: TenantId,
        changes: HashMap<RollupKey, Aggregate>,
        cached: &HashMap<(TenantId, RollupKey), Aggregate>,
    ) -> Result<Vec<(RollupKey, Aggregate)>> {
        let mut missing: HashMap<(Resolution, i16), HashSet<i64>> = HashMap::new();
        for key in changes.keys() {
            if !cached.contains_key(&(tenant, key.clone())) {
                missing
                    .entry((key.res, key.grain))
                    .or_default()
                    .insert(key.bucket);
            }
        }
        let mut stored: HashMap<RollupKey, Aggregate> = HashMap::new();
        for ((res, grain), buckets) in missing {
            let buckets: Vec<i64> = buckets.into_iter().collect();
            for chunk in buckets.chunks(500) {
                let mut buf = sql::SqlBuf::new(Placeholders::Question);
                buf.push(
                    "SELECT bucket, source_module, app, environment, model, provider, operation, status, events, \
                     requests, errors, input_tokens, output_tokens, cost_usd, latency_count, latency_sum, \
                     latency_sketch FROM rollups WHERE tenant_id = ",
                )
                .bind(sql::Bind::I64(tenant.get()));
                buf.push(" AND res = ").bind(sql::Bind::I16(res.code()));
                buf.push(" AND grain = ").bind(sql::Bind::I16(grain));
                buf.push(" AND bucket IN (");
                for (i, b) in chunk.iter().enumerate() {
                    if i > 0 {
                        buf.push(", ");
                    }
                    buf.bind(sql::Bind::I64(*b));
                }
                buf.push(")");
                for row in into_query::<Sqlite>(buf).fetch_all(&mut *conn).await? {
                    let mut dims: [String; 7] = Default::default();
                    for (i, d) in dims.iter_mut().enumerate() {
                        *d = row.try_get(1 + i)?;
                    }
                    let key = RollupKey {
                        res,
                        grain,
                        bucket: row.try_get(0)?,
                        dims,
                    };
                    if changes.contains_key(&key) {
                        stored.insert(key, decode::aggregate_at(&row, 8, true)?);
                    }
                }
            }
        }
        let mut rows = Vec::with_capacity(changes.len());
        for (key, mut merged) in changes {
            let cache_key = (tenant, key);
            if let Some(before) = cached.get(&cache_key).or_else(|| stored.get(&cache_key.1)) {
                merged.merge(before);
            }
            rows.push((cache_key.1, merged));
        }
        for stmt in upsert_statements(Placeholders::Question, tenant, &rows) {
            into_query::<Sqlite>(stmt).execute(&mut *conn).await?;
        }
        Ok(rows)
    }
}

/// A batch with its statements already bound.
struct PreparedBatch<'a> {
    tenant: TenantId,
    unique: Vec<&'a EventRecord>,
    inserts: Vec<sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments>>,
}

fn api_key(row: &SqliteRow) -> Result<ApiKeyRecord> {
    api_key_from(row)
}

pub(crate) fn api_key_from<R: decode::HubRow>(row: &R) -> Result<ApiKeyRecord>
where
    usize: sqlx::ColumnIndex<R>,
{
    let scopes_text = row.text(5)?;
    let scopes = ApiKeyScope::parse_list(&scopes_text).map_err(StorageError::Corrupt)?;
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
    })
}

pub(crate) fn scopes_text(scopes: &[ApiKeyScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[async_trait]
impl Storage for SqliteStorage {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../../migrations/sqlite")
            .run(&self.writer)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    async fn close(&self) {
        self.checkpointer.abort();
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint at shutdown failed");
        }
        self.readers.close().await;
        self.writer.close().await;
    }

    async fn prepare_partitions(&self, _now_ms: i64) -> Result<()> {
        Ok(())
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM hub_meta WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.readers)
                .await?,
        )
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO hub_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn create_tenant(&self, name: &str, now_ms: i64) -> Result<Tenant> {
        let id: i64 =
            sqlx::query_scalar("INSERT INTO tenants (name, created_at) VALUES (?, ?) RETURNING id")
                .bind(name)
                .bind(now_ms)
                .fetch_one(&self.writer)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StorageError::Conflict(format!("tenant '{name}'"))
                    } else {
                        e.into()
                    }
                })?;
        Ok(Tenant {
            id: TenantId::from_verified(id),
            name: name.to_string(),
            created_at_ms: now_ms,
        })
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.readers)
            .await?;
        row.map(|r| tenant_from(&r)).transpose()
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY name")
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(tenant_from).collect()
    }

    async fn create_api_key(
        &self,
        tenant: TenantId,
        key: &NewApiKey,
        now_ms: i64,
    ) -> Result<ApiKeyRecord> {
        let row = sqlx::query(
            "INSERT INTO api_keys (tenant_id, name, prefix, secret_hash, scopes, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id, tenant_id, name, prefix, secret_hash, scopes, \
             created_at, expires_at, revoked_at, last_used_at",
        )
        .bind(tenant.get())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.secret_hash)
        .bind(scopes_text(&key.scopes))
        .bind(now_ms)
        .bind(key.expires_at_ms)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| if is_unique_violation(&e) { StorageError::Conflict(format!("API key prefix '{}'", key.prefix)) } else { e.into() })?;
        api_key(&row)
    }

    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name, prefix, secret_hash, scopes, created_at, expires_at, revoked_at, \
             last_used_at FROM api_keys WHERE prefix = ?",
        )
        .bind(prefix)
        .fetch_optional(&self.readers)
        .await?;
        row.as_ref().map(api_key).transpose()
    }

    async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, prefix, secret_hash, scopes, created_at, expires_at, revoked_at, \
             last_used_at FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id",
        )
        .bind(tenant.get())
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(api_key).collect()
    }

    async fn touch_api_key(&self, tenant: TenantId, key_id: i64, at_ms: i64) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE tenant_id = ? AND id = ?")
            .bind(at_ms)
            .bind(tenant.get())
            .bind(key_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn write_batches(
        &self,
        batches: &[TenantBatch],
        received_at_ms: i64,
    ) -> Result<Vec<WriteOutcome>> {
        // Everything that needs no database happens before the lock, so that with two writers one
        // prepares the next group while the other holds SQLite's single write slot.
        let prepared: Vec<PreparedBatch<'_>> = batches
            .iter()
            .map(|b| Self::prepare(b, received_at_ms))
            .collect();
        let mut cache = self.rollups.lock().await;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let data_version: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut *tx)
            .await?;
        if cache.data_version != Some(data_version) || cache.rows.len() > ROLLUP_CACHE_ROWS {
            // Another process wrote the file (or the cache grew too big): forget what we knew.
            *cache = RollupCache {
                data_version: Some(data_version),
                rows: HashMap::new(),
            };
        }
        let mut outcomes = Vec::with_capacity(batches.len());
        let mut changes: HashMap<TenantId, Vec<&EventRecord>> = HashMap::new();
        for (batch, prep) in batches.iter().zip(prepared) {
            let unique = prep.unique.clone();
            let tenant = prep.tenant;
            let inserted = Self::insert_events(&mut tx, prep).await?;
            outcomes.push(WriteOutcome {
                inserted: inserted.len(),
                duplicates: batch.events.len() - inserted.len(),
            });
            changes
                .entry(tenant)
                .or_default()
                .extend(inserted.into_iter().map(|i| unique[i]));
        }
        let mut merged = Vec::new();
        for (tenant, events) in changes {
            if !events.is_empty() {
                let rows =
                    Self::merge_rollups(&mut tx, tenant, deltas(events.into_iter()), &cache.rows)
                        .await?;
                merged.extend(rows.into_iter().map(|(k, v)| ((tenant, k), v)));
            }
        }
        tx.commit().await?;
        // Only now, with the rows durable, does the cache learn them.
        cache.rows.extend(merged);
        Ok(outcomes)
    }

    async fn list_events(
        &self,
        tenant: TenantId,
        filter: &EventFilter,
        after: Option<&EventCursor>,
        limit: usize,
    ) -> Result<EventPage> {
        let buf = sql::list_events(Placeholders::Question, tenant, filter, after, limit + 1);
        let rows = into_query::<Sqlite>(buf).fetch_all(&self.readers).await?;
        page(
            rows.iter().map(decode::event).collect::<Result<Vec<_>>>()?,
            limit,
        )
    }

    async fn get_event(&self, tenant: TenantId, event_id: &str) -> Result<Option<StoredEvent>> {
        let row = sqlx::query(
            "SELECT tenant_id, event_id, ts, received_at, event_type, kind, source_module, severity, \
             environment, app, model, provider, operation, input_tokens, output_tokens, latency_ms, \
             ttft_ms, status, error_type, cost_usd, user_id, session_id, trace_id, correlation_id, \
             parent_event_id, tags, payload FROM events WHERE tenant_id = ? AND event_id = ? \
             ORDER BY ts DESC LIMIT 1",
        )
        .bind(tenant.get())
        .bind(event_id)
        .fetch_optional(&self.readers)
        .await?;
        row.as_ref().map(decode::event).transpose()
    }

    async fn count_events(&self, tenant: TenantId) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE tenant_id = ?")
                .bind(tenant.get())
                .fetch_one(&self.readers)
                .await?,
        )
    }

    async fn scan_rollups(
        &self,
        tenant: TenantId,
        res: Resolution,
        scan: &Scan<'_>,
    ) -> Result<Vec<ScanRow>> {
        let buf = sql::rollup_scan(Placeholders::Question, tenant, res, scan);
        let rows = into_query::<Sqlite>(buf).fetch_all(&self.readers).await?;
        rows.iter()
            .map(|r| decode::rollup_row(r, scan.group_by.len(), scan.by_bucket, scan.with_sketch))
            .collect()
    }

    async fn scan_raw(
        &self,
        tenant: TenantId,
        scan: &Scan<'_>,
        bucket_step_ms: i64,
    ) -> Result<Vec<ScanRow>> {
        let buf = sql::raw_scan(Placeholders::Question, tenant, scan);
        // Streamed and folded row by row: memory stays bounded by the number of groups.
        let mut rows = into_query::<Sqlite>(buf).fetch(&self.readers);
        let mut fold = decode::RawFold::new(scan.by_bucket, bucket_step_ms);
        while let Some(row) = rows.try_next().await? {
            fold.add(decode::raw_row(&row, scan.group_by.len())?);
        }
        Ok(fold.finish())
    }

    async fn enforce_retention(
        &self,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        let tenants: Vec<i64> = sqlx::query_scalar("SELECT id FROM tenants")
            .fetch_all(&self.readers)
            .await?;
        for tenant in tenants {
            if let Some(keep) = policy.raw_ms {
                // Small transactions, so that ingest never waits long for the write lock.
                loop {
                    let n = sqlx::query(
                        "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE tenant_id = ? AND ts < ? LIMIT 5000)",
                    )
                    .bind(tenant)
                    .bind(now_ms - keep)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                    report.events_deleted += n;
                    if n == 0 {
                        break;
                    }
                }
            }
            for (res, keep) in rollup_retention(policy) {
                report.rollups_deleted += sqlx::query(
                    "DELETE FROM rollups WHERE tenant_id = ? AND res = ? AND bucket < ?",
                )
                .bind(tenant)
                .bind(res.code())
                .bind(now_ms - keep)
                .execute(&self.writer)
                .await?
                .rows_affected();
            }
        }
        Ok(report)
    }
}

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

pub(crate) fn tenant_from<R: decode::HubRow>(row: &R) -> Result<Tenant>
where
    usize: sqlx::ColumnIndex<R>,
{
    Ok(Tenant {
        id: TenantId::from_verified(row.int(0)?),
        name: row.text(1)?,
        created_at_ms: row.int(2)?,
    })
}

/// Cuts a `limit + 1` result to `limit` and sets the cursor when there was more.
pub(crate) fn page(mut events: Vec<StoredEvent>, limit: usize) -> Result<EventPage> {
    let next = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|e| EventCursor {
            ts_ms: e.record.ts_ms,
            event_id: e.record.event_id.clone(),
        })
    } else {
        None
    };
    Ok(EventPage { events, next })
}
