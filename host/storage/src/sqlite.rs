//! SQLite: the embedded default. One writer connection (SQLite allows one writer at a time, and a
//! single connection avoids lock upgrades between connections) and a pool of readers; WAL mode so
//! readers never block the writer.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use async_trait::async_trait;
use hub_core::time::Resolution;
use hub_core::{EventRecord, TenantId};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
use sqlx::{Row, Sqlite};

use crate::access::{AccessStorage, SqlAccess};
use crate::analysis::{
    AnomalyStorage, ForecastStorage, RunStorage, SqlAnomalies, SqlForecasts, SqlRuns,
};
use crate::audit::{AuditStorage, SqlAudit};
use crate::call_costs;
use crate::invites::{InvitationStorage, SqlInvitations};
use crate::market::{MarketStorage, SqlMarket};
use crate::model::*;
use crate::plugins::{PluginStorage, SqlPlugins};
use crate::reprice::{CostUpdate, RepriceStorage, Restated, SqlReprices};
use crate::restate;
use crate::rollup::{FastMap, RollupKey, add_all, deltas, take_back};
use crate::settings::{SettingsStorage, SqlSettings};
use crate::shared::{Shared, rollup_retention};
use crate::sql::upsert_statements;
use crate::sql::{self, BatchShapes, Placeholders, into_query};
use crate::sqlite_files::{checkpoint_at_close, checkpointer, connect_options};
use crate::sqlite_ids::{self, IdIndex};
use crate::tenants::{SqlTenants, TenantStorage};
use crate::throttle::{SqlThrottle, ThrottleStorage};
use crate::views::{SqlViews, ViewStorage};
use crate::{AlertStorage, DeliveryStorage, SilenceStorage};
use crate::{Result, Storage, StorageError, StorageOptions, decode, dedupe_in_batch, sqlite_raw};

pub struct SqliteStorage {
    writer: SqlitePool,
    /// Lookups by event id (see `sqlite_ids`).
    ids: std::sync::Arc<IdIndex>,
    readers: SqlitePool,
    /// Held for the whole write transaction: it serialises writers and guards the cache.
    rollups: tokio::sync::Mutex<RollupCache>,
    checkpointer: tokio::task::JoinHandle<()>,
    access: SqlAccess<Sqlite>,
    audit: SqlAudit<Sqlite>,
    views: SqlViews<Sqlite>,
    anomalies: SqlAnomalies<Sqlite>,
    alerts: crate::alerts::SqlAlerts<Sqlite>,
    deliveries: crate::deliveries::SqlDeliveries<Sqlite>,
    silences: crate::silences::SqlSilences<Sqlite>,
    forecasts: SqlForecasts<Sqlite>,
    runs: SqlRuns<Sqlite>,
    market: SqlMarket<Sqlite>,
    settings: SqlSettings<Sqlite>,
    reprices: SqlReprices<Sqlite>,
    tenants: SqlTenants<Sqlite>,
    plugins: SqlPlugins<Sqlite>,
    invitations: SqlInvitations<Sqlite>,
    throttle: SqlThrottle<Sqlite>,
}

/// Rollup rows as last committed by this process's writer, so that merging a delta needs no read.
///
/// Valid only while no other connection writes the file: `PRAGMA data_version` (which changes when
/// another connection commits) is checked at the start of every write, and the cache is dropped if
/// it moved. It is updated only after a commit succeeds.
#[derive(Default)]
struct RollupCache {
    data_version: Option<i64>,
    rows: FastMap<(TenantId, RollupKey), Aggregate>,
}

/// Past this many cached rows, rows of old buckets are dropped (each row holds a sketch of up to a
/// few kilobytes, so this bounds the cache to tens of megabytes).
const ROLLUP_CACHE_ROWS: usize = 50_000;

impl RollupCache {
    /// Keeps only rows of recent buckets: live traffic touches the newest minute, hour and day;
    /// a late event that misses the cache is read from the database instead.
    fn prune(&mut self) {
        if self.rows.len() <= ROLLUP_CACHE_ROWS {
            return;
        }
        let mut newest: HashMap<Resolution, i64> = HashMap::new();
        for (_, key) in self.rows.keys() {
            let n = newest.entry(key.res).or_insert(key.bucket);
            *n = (*n).max(key.bucket);
        }
        self.rows
            .retain(|(_, key), _| key.bucket >= newest[&key.res] - 2 * key.res.millis());
        if self.rows.len() > ROLLUP_CACHE_ROWS {
            // Very many tenants or dimension values: start again rather than grow.
            self.rows.clear();
        }
    }
}

impl SqliteStorage {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: &Path, options: &StorageOptions) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::Database(sqlx::Error::Io(e)))?;
        }
        let readers_n = options.max_connections.max(1);
        let quarter = options.cache_bytes / 4;
        let connect = connect_options(path, options.cache_bytes / 2)?
            .foreign_keys(true)
            .page_size(16384)
            .pragma("temp_store", "memory")
            // Checkpoints run on a background connection (see `checkpointer`), not inline in the
            // writer's commits; this only bounds the WAL should that task fall behind.
            .pragma("wal_autocheckpoint", "100000");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone())
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(readers_n)
            .connect_with(connect.read_only(false).pragma(
                "cache_size",
                format!("-{}", ((quarter / readers_n as usize) >> 10).max(256)),
            ))
            .await?;
        let checkpointer = tokio::spawn(checkpointer(readers.clone()));
        let ids = std::sync::Arc::new(IdIndex::open(&sqlite_ids::path_for(path), quarter).await?);
        Ok(Self {
            ids,
            access: SqlAccess::new(writer.clone(), readers.clone()),
            audit: SqlAudit::new(writer.clone(), readers.clone()),
            views: SqlViews::new(writer.clone(), readers.clone()),
            anomalies: SqlAnomalies::new(writer.clone(), readers.clone()),
            alerts: crate::alerts::SqlAlerts::new(writer.clone(), readers.clone()),
            deliveries: crate::deliveries::SqlDeliveries::new(writer.clone(), readers.clone()),
            silences: crate::silences::SqlSilences::new(writer.clone(), readers.clone()),
            forecasts: SqlForecasts::new(writer.clone(), readers.clone()),
            runs: SqlRuns::new(writer.clone(), readers.clone()),
            market: SqlMarket::new(writer.clone(), readers.clone()),
            settings: SqlSettings::new(writer.clone(), readers.clone()),
            throttle: SqlThrottle::new(writer.clone()),
            reprices: SqlReprices::new(writer.clone(), readers.clone()),
            tenants: SqlTenants::new(writer.clone(), readers.clone()),
            plugins: SqlPlugins::new(writer.clone(), readers.clone()),
            invitations: SqlInvitations::new(writer.clone(), readers.clone()),
            writer,
            readers,
            rollups: tokio::sync::Mutex::new(RollupCache::default()),
            checkpointer,
        })
    }

    /// Brings the id index up to date with the events table, holding the write lock so that
    /// nothing commits meanwhile.
    async fn catch_up_ids(&self) -> Result<()> {
        let _writers = self.rollups.lock().await;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        self.ids.catch_up(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Begins the writer's transaction (the caller holds the writers' lock, `cache`).
    async fn begin_write(
        &self,
        cache: &mut RollupCache,
    ) -> Result<sqlx::Transaction<'static, Sqlite>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let data_version: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut *tx)
            .await?;
        if cache.data_version != Some(data_version) {
            // The first write since the start, or another process wrote the file: let the id
            // index read what it has not seen, and forget the rollup rows we knew.
            self.ids.catch_up(&mut tx).await?;
            *cache = RollupCache {
                data_version: Some(data_version),
                rows: FastMap::default(),
            };
        }
        Ok(tx)
    }

    /// Everything about one batch's insert that needs no database, done before any lock.
    fn prepare(batch: &TenantBatch) -> PreparedBatch<'_> {
        let (unique, _) = dedupe_in_batch(&batch.events);
        let shapes = BatchShapes::of(&unique);
        PreparedBatch {
            tenant: batch.tenant,
            shape_insert: shapes
                .insert(Placeholders::Question)
                .map(into_query::<Sqlite>),
            shape_ids: shapes.ids,
            unique,
        }
    }

    /// Merges deltas into stored rows: cached rows where this writer knows them, otherwise read
    /// per (resolution, bucket) in one statement. With `only_existing`, a delta with no row is
    /// dropped rather than stored as a row of its own. Returns the merged rows (for the cache).
    async fn merge_rollups(
        conn: &mut sqlx::SqliteConnection,
        tenant: TenantId,
        changes: FastMap<RollupKey, Aggregate>,
        cached: &FastMap<(TenantId, RollupKey), Aggregate>,
        only_existing: bool,
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
        let mut stored: FastMap<RollupKey, Aggregate> = FastMap::default();
        for ((res, grain), buckets) in missing {
            let buckets: Vec<i64> = buckets.into_iter().collect();
            for chunk in buckets.chunks(500) {
                let mut buf = sql::SqlBuf::new(Placeholders::Question);
                buf.push(
                    "SELECT bucket, source_module, app, environment, model, provider, operation, status, ",
                )
                .push(sql::ROLLUP_AGGREGATE_COLUMNS)
                .push(" FROM rollups WHERE tenant_id = ")
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
                    let dims = decode::rollup_dims(&row)?;
                    let key = RollupKey {
                        res,
                        grain,
                        bucket: row.try_get("bucket")?,
                        dims,
                    };
                    if changes.contains_key(&key) {
                        stored.insert(key, decode::aggregate(&row, true)?);
                    }
                }
            }
        }
        let mut rows = Vec::with_capacity(changes.len());
        for (key, mut merged) in changes {
            let cache_key = (tenant, key);
            match cached.get(&cache_key).or_else(|| stored.get(&cache_key.1)) {
                Some(before) => merged.merge(before),
                None if only_existing => continue,
                None => {}
            }
            rows.push((cache_key.1, merged));
        }
        for stmt in upsert_statements(Placeholders::Question, tenant, &rows) {
            into_query::<Sqlite>(stmt).execute(&mut *conn).await?;
        }
        Ok(rows)
    }
}

/// A batch ready to insert: unique events, their enrichment shape ids, and the statement that
/// stores the batch's shapes (when any event has one).
struct PreparedBatch<'a> {
    tenant: TenantId,
    unique: Vec<&'a EventRecord>,
    shape_ids: Vec<Option<i64>>,
    shape_insert: Option<sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments>>,
}

/// Each tenant's rollup deltas over the unique events of its batches.
fn expected_deltas(
    prepared: &[PreparedBatch<'_>],
) -> HashMap<TenantId, FastMap<RollupKey, Aggregate>> {
    let mut by_tenant: HashMap<TenantId, Vec<&EventRecord>> = HashMap::new();
    for prep in prepared {
        by_tenant
            .entry(prep.tenant)
            .or_default()
            .extend(prep.unique.iter().copied());
    }
    by_tenant
        .into_iter()
        .map(|(tenant, events)| (tenant, deltas(events.into_iter())))
        .collect()
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
        self.ids.close().await;
        checkpoint_at_close(&self.writer, "hub.db").await;
        self.readers.close().await;
        self.writer.close().await;
    }

    /// SQLite has no partitions; this is the moment (at the start, then now and then) to bring
    /// the id index up to date with the events table and write what it holds in memory.
    async fn prepare_partitions(&self, _now_ms: i64) -> Result<()> {
        self.catch_up_ids().await?;
        if self.ids.due() {
            self.ids.write().await?;
        }
        Ok(())
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        Shared::<Sqlite>::get_meta(&self.readers, key).await
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        Shared::<Sqlite>::set_meta(&self.writer, key, value).await
    }

    fn access(&self) -> &dyn AccessStorage {
        &self.access
    }

    fn audit(&self) -> &dyn AuditStorage {
        &self.audit
    }

    fn views(&self) -> &dyn ViewStorage {
        &self.views
    }

    fn alerts(&self) -> &dyn AlertStorage {
        &self.alerts
    }

    fn deliveries(&self) -> &dyn DeliveryStorage {
        &self.deliveries
    }

    fn silences(&self) -> &dyn SilenceStorage {
        &self.silences
    }

    fn anomalies(&self) -> &dyn AnomalyStorage {
        &self.anomalies
    }

    fn forecasts(&self) -> &dyn ForecastStorage {
        &self.forecasts
    }

    fn analysis_runs(&self) -> &dyn RunStorage {
        &self.runs
    }

    fn market(&self) -> &dyn MarketStorage {
        &self.market
    }

    fn settings(&self) -> &dyn SettingsStorage {
        &self.settings
    }

    fn invitations(&self) -> &dyn InvitationStorage {
        &self.invitations
    }

    fn login_throttle(&self) -> &dyn ThrottleStorage {
        &self.throttle
    }

    fn reprices(&self) -> &dyn RepriceStorage {
        &self.reprices
    }

    fn tenants(&self) -> &dyn TenantStorage {
        &self.tenants
    }

    fn plugins(&self) -> &dyn PluginStorage {
        &self.plugins
    }

    async fn restate_costs(&self, tenant: TenantId, updates: &[CostUpdate]) -> Result<Restated> {
        let mut cache = self.rollups.lock().await;
        let mut tx = self.begin_write(&mut cache).await?;
        let (restated, changes) = restate::restate::<Sqlite>(&mut tx, tenant, updates).await?;
        let rows = if changes.is_empty() {
            Vec::new()
        } else {
            Self::merge_rollups(&mut tx, tenant, changes, &cache.rows, true).await?
        };
        tx.commit().await?;
        cache
            .rows
            .extend(rows.into_iter().map(|(k, v)| ((tenant, k), v)));
        cache.prune();
        Ok(restated)
    }

    async fn write_batches(
        &self,
        batches: &[TenantBatch],
        received_at_ms: i64,
    ) -> Result<Vec<WriteOutcome>> {
        let mut prepared: Vec<PreparedBatch<'_>> = batches.iter().map(Self::prepare).collect();
        let mut cache = self.rollups.lock().await;
        let mut tx = self.begin_write(&mut cache).await?;
        for prep in &mut prepared {
            if let Some(shapes) = prep.shape_insert.take() {
                shapes.execute(&mut *tx).await?;
            }
        }
        let (inserted, mut expected) = {
            let mut handle = tx.lock_handle().await?;
            let raw = sqlite_raw::RawConnection::new(&mut handle);
            let prepared = &prepared;
            // A group takes tens of milliseconds of synchronous SQLite work. Meanwhile another
            // thread computes the rollup deltas, on the bet that every event is new (a resend is
            // rare): when a tenant's inserts skip any, its deltas are computed again below.
            sqlite_raw::blocking(|| {
                std::thread::scope(|s| {
                    let deltas = s.spawn(|| expected_deltas(prepared));
                    let inserted: Result<Vec<sqlite_raw::Inserted>> = prepared
                        .iter()
                        .map(|p| {
                            sqlite_raw::insert_events(
                                &raw,
                                p.tenant,
                                received_at_ms,
                                &p.unique,
                                &p.shape_ids,
                            )
                        })
                        .collect();
                    let deltas = deltas
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (inserted, deltas)
                })
            })
        };
        let mut outcomes = Vec::with_capacity(batches.len());
        let mut stored: HashMap<TenantId, Vec<&EventRecord>> = HashMap::new();
        let mut resent: HashSet<TenantId> = HashSet::new();
        let mut last_rowid = None;
        for ((batch, prep), inserted) in batches.iter().zip(&prepared).zip(inserted?) {
            last_rowid = last_rowid.max(inserted.last_rowid);
            let inserted = inserted.rows;
            if inserted.len() < prep.unique.len() {
                resent.insert(prep.tenant);
            }
            outcomes.push(WriteOutcome {
                inserted: inserted.len(),
                duplicates: batch.events.len() - inserted.len(),
            });
            stored
                .entry(prep.tenant)
                .or_default()
                .extend(inserted.into_iter().map(|i| prep.unique[i]));
        }
        let mut merged = Vec::new();
        for (&tenant, events) in &stored {
            let mut changes = match expected.remove(&tenant) {
                Some(d) if !resent.contains(&tenant) => d,
                _ => deltas(events.iter().copied()),
            };
            let taken_back = call_costs::settle::<Sqlite>(&mut tx, tenant, events).await?;
            add_all(&mut changes, take_back(&taken_back));
            if !changes.is_empty() {
                let rows =
                    Self::merge_rollups(&mut tx, tenant, changes, &cache.rows, false).await?;
                merged.extend(rows.into_iter().map(|(k, v)| ((tenant, k), v)));
            }
        }
        tx.commit().await?;
        // Only now, with the rows durable, do the cache and the id index learn them (while the
        // writers' lock is held, so that the index notes groups in commit order).
        cache.rows.extend(merged);
        cache.prune();
        if let Some(last_rowid) = last_rowid {
            let noted = stored.iter().flat_map(|(tenant, events)| {
                events
                    .iter()
                    .map(|e| (*tenant, e.event_id.as_str(), e.ts_ms))
            });
            match self.ids.note(noted, last_rowid) {
                sqlite_ids::Write::Later => {}
                sqlite_ids::Write::Soon => self.ids.schedule_write(),
                sqlite_ids::Write::Now => self.ids.write().await?,
            }
        }
        Ok(outcomes)
    }

    async fn list_events(
        &self,
        tenant: TenantId,
        filter: &EventFilter,
        after: Option<&EventCursor>,
        limit: usize,
    ) -> Result<EventPage> {
        Shared::<Sqlite>::list_events(&self.readers, tenant, filter, after, limit).await
    }

    /// The id index gives the times the id was stored at; the newest such event is the answer.
    async fn get_event(&self, tenant: TenantId, event_id: &str) -> Result<Option<StoredEvent>> {
        if !self.ids.caught_up() {
            // A handle that has not written yet (a tool opening the file after a crash).
            self.catch_up_ids().await?;
        }
        let times = self.ids.lookup(tenant, event_id).await?;
        Shared::<Sqlite>::event_at_times(&self.readers, tenant, event_id, &times).await
    }

    async fn count_events(&self, tenant: TenantId) -> Result<i64> {
        Shared::<Sqlite>::count_events(&self.readers, tenant).await
    }

    async fn scan_rollups(
        &self,
        tenant: TenantId,
        res: Resolution,
        scan: &Scan<'_>,
    ) -> Result<Vec<ScanRow>> {
        Shared::<Sqlite>::scan_rollups(&self.readers, tenant, res, scan).await
    }

    async fn scan_raw(
        &self,
        tenant: TenantId,
        scan: &Scan<'_>,
        bucket_step_ms: i64,
    ) -> Result<Vec<ScanRow>> {
        Shared::<Sqlite>::scan_raw(&self.readers, tenant, scan, bucket_step_ms).await
    }

    async fn enforce_retention(
        &self,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        let tenants = self.settings.retention_by_tenant(policy).await?;
        for (tenant, policy) in tenants {
            if let Some(keep) = policy.raw_ms {
                // Small transactions, so that ingest never waits long for the write lock.
                loop {
                    let n = sqlx::query(
                        "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE tenant_id = ? AND ts < ? LIMIT 5000)",
                    )
                    .bind(tenant.get())
                    .bind(now_ms - keep)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                    report.events_deleted += n;
                    if n == 0 {
                        break;
                    }
                }
                self.ids.delete_before(tenant, now_ms - keep).await?;
                call_costs::forget_before::<Sqlite>(&self.writer, tenant, now_ms - keep).await?;
            }
            for (res, keep) in rollup_retention(&policy) {
                report.rollups_deleted += sqlx::query(
                    "DELETE FROM rollups WHERE tenant_id = ? AND res = ? AND bucket < ?",
                )
                .bind(tenant.get())
                .bind(res.code())
                .bind(now_ms - keep)
                .execute(&self.writer)
                .await?
                .rows_affected();
            }
            report.anomalies_deleted += self
                .anomalies
                .forget_before(tenant, &policy, now_ms)
                .await?;
            if let Some(keep) = policy.minute_ms {
                self.forecasts.forget_before(tenant, keep, now_ms).await?;
            }
            self.runs.forget_before(tenant, now_ms).await?;
            if let Some(keep) = policy.raw_ms {
                report.alerts_deleted += self
                    .alerts
                    .forget_resolved_before(tenant, now_ms - keep)
                    .await?;
                self.silences
                    .forget_silences_before(tenant, now_ms - keep)
                    .await?;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rollup_cache_keeps_only_recent_buckets_once_large() {
        let mut cache = RollupCache::default();
        let key = |res: Resolution, bucket: i64| {
            (
                TenantId::from_verified(1),
                RollupKey {
                    res,
                    grain: 0,
                    bucket,
                    dims: Default::default(),
                },
            )
        };
        for i in 0..(ROLLUP_CACHE_ROWS as i64 + 10) {
            cache
                .rows
                .insert(key(Resolution::Minute, i * 60_000), Aggregate::default());
        }
        cache
            .rows
            .insert(key(Resolution::Day, 0), Aggregate::default());
        cache.prune();
        let newest = (ROLLUP_CACHE_ROWS as i64 + 9) * 60_000;
        let mut left: Vec<_> = cache.rows.keys().map(|(_, k)| (k.res, k.bucket)).collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                (Resolution::Minute, newest - 120_000),
                (Resolution::Minute, newest - 60_000),
                (Resolution::Minute, newest),
                (Resolution::Day, 0),
            ]
        );
        // Small caches are left alone.
        cache.prune();
        assert_eq!(cache.rows.len(), 4);
    }
}
