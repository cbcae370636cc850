//! PostgreSQL: the scale-out backend. Raw events live in a table partitioned by day on `ts`, so
//! retention drops whole partitions; events are written with one `UNNEST` statement per batch;
//! rollup rows are merged under a per-tenant advisory lock so replicas never lose each other's
//! sketch updates.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use hub_core::time::{DAY_MS, Resolution};
use hub_core::{EventRecord, TenantId};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row};
use std::str::FromStr;

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
use crate::postgres_ids;
use crate::reprice::{CostUpdate, RepriceStorage, Restated, SqlReprices};
use crate::restate;
use crate::rollup::{FastMap, RollupKey, add_all, deltas, take_back};
use crate::settings::{SettingsStorage, SqlSettings};
use crate::shared::{Shared, rollup_retention};
use crate::sql::upsert_statements;
use crate::sql::{BatchShapes, Placeholders, into_query};
use crate::tenants::{SqlTenants, TenantStorage};
use crate::throttle::{SqlThrottle, ThrottleStorage};
use crate::views::{SqlViews, ViewStorage};
use crate::{AlertStorage, DeliveryStorage, SilenceStorage};
use crate::{Result, Storage, StorageError, StorageOptions, decode, dedupe_in_batch};

pub struct PostgresStorage {
    pool: PgPool,
    /// Day starts whose partition is known to exist (or whose creation we gave up on for now).
    partitions: Mutex<HashSet<i64>>,
    access: SqlAccess<Postgres>,
    audit: SqlAudit<Postgres>,
    views: SqlViews<Postgres>,
    anomalies: SqlAnomalies<Postgres>,
    alerts: crate::alerts::SqlAlerts<Postgres>,
    deliveries: crate::deliveries::SqlDeliveries<Postgres>,
    silences: crate::silences::SqlSilences<Postgres>,
    forecasts: SqlForecasts<Postgres>,
    runs: SqlRuns<Postgres>,
    market: SqlMarket<Postgres>,
    settings: SqlSettings<Postgres>,
    reprices: SqlReprices<Postgres>,
    tenants: SqlTenants<Postgres>,
    plugins: SqlPlugins<Postgres>,
    invitations: SqlInvitations<Postgres>,
    throttle: SqlThrottle<Postgres>,
}

/// Advisory-lock namespace for rollup merges: the tenant id is added to it.
const ROLLUP_LOCK_BASE: i64 = 0x4855_4200_0000_0000;

/// The insert of one batch of events, the columns bound as arrays (see `bind_event_columns`).
macro_rules! insert_events_sql {
    () => {
        concat!("INSERT INTO events (", crate::sql::event_columns!(), ", enriched_by) \
    SELECT $1, u.event_id, u.ts, $2, u.event_type, u.kind, u.source_module, u.severity, u.environment, \
    u.app, u.model, u.provider, u.operation, u.input_tokens, u.output_tokens, u.latency_ms, u.ttft_ms, \
    u.status, u.error_type, u.cost_usd, u.user_id, u.session_id, u.trace_id, u.correlation_id, \
    u.parent_event_id, u.tags, u.payload, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens, \
    u.audio_input_tokens, u.audio_output_tokens, u.reported_cost_usd, u.estimated_cost_usd, u.service_tier, \
    u.enriched_by \
    FROM UNNEST($3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], \
    $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[], \
    $16::float8[], $17::float8[], $18::text[], $19::text[], $20::float8[], $21::text[], $22::text[], \
    $23::text[], $24::text[], $25::text[], $26::text[], $27::text[], $28::bigint[], $29::bigint[], \
    $30::bigint[], $31::bigint[], $32::bigint[], $33::float8[], $34::float8[], $35::text[], $36::bigint[]) \
    AS u(event_id, ts, event_type, kind, source_module, severity, environment, app, model, provider, \
    operation, input_tokens, output_tokens, latency_ms, ttft_ms, status, error_type, cost_usd, user_id, \
    session_id, trace_id, correlation_id, parent_event_id, tags, payload, cache_read_tokens, \
    cache_write_tokens, reasoning_tokens, audio_input_tokens, audio_output_tokens, reported_cost_usd, \
    estimated_cost_usd, service_tier, enriched_by)")
    };
}

/// The fast path: a plain insert, run inside a savepoint. A duplicate (same tenant, id and
/// timestamp) fails it with a unique violation, and the batch is then written with
/// [`INSERT_EVENTS_SKIPPING_DUPLICATES`]. Without `ON CONFLICT` PostgreSQL skips the speculative
/// insertion it would otherwise do per row (a probe of the unique index before the insert, and an
/// extra WAL record after it).
const INSERT_EVENTS: &str = insert_events_sql!();

/// Inserts one batch, skipping duplicates. No `RETURNING`: the new rows are asked for (with
/// [`NEW_EVENTS_OF_THIS_TRANSACTION`]) only when `rows_affected` shows that some were duplicates.
const INSERT_EVENTS_SKIPPING_DUPLICATES: &str =
    concat!(insert_events_sql!(), " ON CONFLICT DO NOTHING");

/// Which of the given (event_id, ts) rows this transaction inserted: their `xmin` is its
/// transaction id (`txid_current()` carries an epoch above the low 32 bits that `xmin` holds). A
/// duplicate skipped by `ON CONFLICT` keeps the `xmin` of the transaction that first wrote it.
const NEW_EVENTS_OF_THIS_TRANSACTION: &str = "SELECT e.event_id, e.ts FROM events e \
    JOIN UNNEST($2::text[], $3::bigint[]) AS k(event_id, ts) ON e.event_id = k.event_id AND e.ts = k.ts \
    WHERE e.tenant_id = $1 AND e.xmin::text::bigint = (txid_current() & 4294967295)";

const SELECT_ROLLUPS_BY_KEY: &str = "SELECT r.res, r.grain, r.bucket, r.source_module, r.app, r.environment, \
    r.model, r.provider, r.operation, r.status, r.events, r.requests, r.errors, r.input_tokens, \
    r.output_tokens, r.cost_usd, r.latency_count, r.latency_sum, r.cache_read_tokens, r.cache_write_tokens, \
    r.reasoning_tokens, r.audio_input_tokens, r.audio_output_tokens, r.estimated_cost_usd, \
    r.reported_cost_usd, r.unpriced_events, r.unpriced_tokens, r.latency_sketch \
    FROM rollups r JOIN UNNEST($2::smallint[], $3::smallint[], $4::bigint[], $5::text[], $6::text[], $7::text[], \
    $8::text[], $9::text[], $10::text[], $11::text[]) \
    AS k(res, grain, bucket, source_module, app, environment, model, provider, operation, status) \
    ON r.res = k.res AND r.grain = k.grain AND r.bucket = k.bucket AND r.source_module = k.source_module AND r.app = k.app \
    AND r.environment = k.environment AND r.model = k.model AND r.provider = k.provider \
    AND r.operation = k.operation AND r.status = k.status \
    WHERE r.tenant_id = $1";

impl PostgresStorage {
    pub async fn connect(url: &str, options: &StorageOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await?;
        Ok(Self {
            access: SqlAccess::new(pool.clone(), pool.clone()),
            audit: SqlAudit::new(pool.clone(), pool.clone()),
            views: SqlViews::new(pool.clone(), pool.clone()),
            anomalies: SqlAnomalies::new(pool.clone(), pool.clone()),
            alerts: crate::alerts::SqlAlerts::new(pool.clone(), pool.clone()),
            deliveries: crate::deliveries::SqlDeliveries::new(pool.clone(), pool.clone()),
            silences: crate::silences::SqlSilences::new(pool.clone(), pool.clone()),
            forecasts: SqlForecasts::new(pool.clone(), pool.clone()),
            runs: SqlRuns::new(pool.clone(), pool.clone()),
            market: SqlMarket::new(pool.clone(), pool.clone()),
            settings: SqlSettings::new(pool.clone(), pool.clone()),
            reprices: SqlReprices::new(pool.clone(), pool.clone()),
            tenants: SqlTenants::new(pool.clone(), pool.clone()),
            plugins: SqlPlugins::new(pool.clone(), pool.clone()),
            throttle: SqlThrottle::new(pool.clone()),
            invitations: SqlInvitations::new(pool.clone(), pool.clone()),
            pool,
            partitions: Mutex::new(HashSet::new()),
        })
    }

    fn partition_name(day_start: i64) -> String {
        let date = DateTime::<Utc>::from_timestamp_millis(day_start).map(|t| t.date_naive());
        format!(
            "events_p{}",
            date.map(|d| d.format("%Y%m%d").to_string())
                .unwrap_or_else(|| day_start.to_string())
        )
    }

    fn day_of_partition(name: &str) -> Option<i64> {
        let date = NaiveDate::parse_from_str(name.strip_prefix("events_p")?, "%Y%m%d").ok()?;
        Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
    }

    /// Creates the day partitions not known to exist. Failure is not fatal: rows then land in the
    /// default partition, which retention also cleans.
    async fn ensure_partitions(&self, days: impl IntoIterator<Item = i64>) {
        let missing: Vec<i64> = {
            let known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
            days.into_iter()
                .filter(|d| !known.contains(d))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect()
        };
        for day in missing {
            let name = Self::partition_name(day);
            // Only digits and the fixed prefix go into this statement.
            let ddl = format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF events FOR VALUES FROM ({day}) TO ({})",
                day + DAY_MS
            );
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(ddl))
                .execute(&self.pool)
                .await
            {
                tracing::warn!(partition = %name, error = %e, "could not create partition; rows for that day go to events_default");
            }
            self.partitions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(day);
        }
    }

    /// Binds a batch's columns, borrowed from the events, to `sql` (one of the event inserts).
    fn bind_event_columns<'q>(
        sql: &'static str,
        tenant: TenantId,
        received_at_ms: i64,
        unique: &'q [&'q EventRecord],
        shapes: &'q [Option<i64>],
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        let text = |f: fn(&EventRecord) -> &str| unique.iter().map(|e| f(e)).collect::<Vec<_>>();
        let opt =
            |f: fn(&EventRecord) -> Option<&str>| unique.iter().map(|e| f(e)).collect::<Vec<_>>();
        let int =
            |f: fn(&EventRecord) -> Option<i64>| unique.iter().map(|e| f(e)).collect::<Vec<_>>();
        let num =
            |f: fn(&EventRecord) -> Option<f64>| unique.iter().map(|e| f(e)).collect::<Vec<_>>();
        sqlx::query(sql)
            .bind(tenant.get())
            .bind(received_at_ms)
            .bind(text(|e| &e.event_id))
            .bind(unique.iter().map(|e| e.ts_ms).collect::<Vec<_>>())
            .bind(text(|e| &e.event_type))
            .bind(text(|e| &e.kind))
            .bind(opt(|e| e.source_module.as_deref()))
            .bind(opt(|e| e.severity.map(|s| s.as_str())))
            .bind(opt(|e| e.environment.as_deref()))
            .bind(opt(|e| e.app.as_deref()))
            .bind(opt(|e| e.model.as_deref()))
            .bind(opt(|e| e.provider.as_deref()))
            .bind(opt(|e| e.operation.as_deref()))
            .bind(int(|e| e.input_tokens))
            .bind(int(|e| e.output_tokens))
            .bind(num(|e| e.latency_ms))
            .bind(num(|e| e.ttft_ms))
            .bind(opt(|e| e.status.map(|s| s.as_str())))
            .bind(opt(|e| e.error_type.as_deref()))
            .bind(num(|e| e.cost_usd))
            .bind(opt(|e| e.user_id.as_deref()))
            .bind(opt(|e| e.session_id.as_deref()))
            .bind(opt(|e| e.trace_id.as_deref()))
            .bind(opt(|e| e.correlation_id.as_deref()))
            .bind(opt(|e| e.parent_event_id.as_deref()))
            .bind(text(|e| &e.tags_json))
            .bind(text(|e| &e.payload_json))
            .bind(int(|e| e.details.0[0]))
            .bind(int(|e| e.details.0[1]))
            .bind(int(|e| e.details.0[2]))
            .bind(int(|e| e.details.0[3]))
            .bind(int(|e| e.details.0[4]))
            .bind(num(|e| e.reported_cost_usd))
            .bind(num(|e| e.estimated_cost_usd))
            .bind(opt(|e| e.service_tier.as_deref()))
            .bind(shapes)
    }

    async fn insert_events(
        conn: &mut sqlx::PgConnection,
        tenant: TenantId,
        received_at_ms: i64,
        unique: &[&EventRecord],
        shapes: &[Option<i64>],
    ) -> Result<Vec<usize>> {
        sqlx::query("SAVEPOINT hub_events")
            .execute(&mut *conn)
            .await?;
        match Self::bind_event_columns(INSERT_EVENTS, tenant, received_at_ms, unique, shapes)
            .execute(&mut *conn)
            .await
        {
            Ok(_) => {
                sqlx::query("RELEASE SAVEPOINT hub_events")
                    .execute(&mut *conn)
                    .await?;
                return Ok((0..unique.len()).collect());
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                // Some were stored already (a resend): undo, and write the batch skipping them,
                // outside the savepoint so that the new rows carry this transaction's id.
                for undo in [
                    "ROLLBACK TO SAVEPOINT hub_events",
                    "RELEASE SAVEPOINT hub_events",
                ] {
                    sqlx::query(undo).execute(&mut *conn).await?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        let inserted = Self::bind_event_columns(
            INSERT_EVENTS_SKIPPING_DUPLICATES,
            tenant,
            received_at_ms,
            unique,
            shapes,
        )
        .execute(&mut *conn)
        .await?
        .rows_affected() as usize;
        if inserted == unique.len() {
            return Ok((0..unique.len()).collect());
        }
        if inserted == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(NEW_EVENTS_OF_THIS_TRANSACTION)
            .bind(tenant.get())
            .bind(
                unique
                    .iter()
                    .map(|e| e.event_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(unique.iter().map(|e| e.ts_ms).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await?;
        if rows.len() != inserted {
            return Err(StorageError::Corrupt(format!(
                "{inserted} events inserted but {} found as this transaction's",
                rows.len()
            )));
        }
        let new: HashSet<(String, i64)> = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("event_id")?,
                    r.try_get::<i64, _>("ts")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(unique
            .iter()
            .enumerate()
            .filter(|(_, e)| new.contains(&(e.event_id.clone(), e.ts_ms)))
            .map(|(i, _)| i)
            .collect())
    }

    /// Merges deltas into stored rows. With `only_existing`, a delta with no row is dropped rather
    /// than stored as a row of its own.
    async fn merge_rollups(
        conn: &mut sqlx::PgConnection,
        tenant: TenantId,
        changes: FastMap<RollupKey, Aggregate>,
        only_existing: bool,
    ) -> Result<()> {
        let keys: Vec<&RollupKey> = changes.keys().collect();
        let dim = |i: usize| keys.iter().map(|k| k.dims[i].clone()).collect::<Vec<_>>();
        let rows = sqlx::query(SELECT_ROLLUPS_BY_KEY)
            .bind(tenant.get())
            .bind(keys.iter().map(|k| k.res.code()).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.grain).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.bucket).collect::<Vec<_>>())
            .bind(dim(0))
            .bind(dim(1))
            .bind(dim(2))
            .bind(dim(3))
            .bind(dim(4))
            .bind(dim(5))
            .bind(dim(6))
            .fetch_all(&mut *conn)
            .await?;
        let mut merged = changes;
        let mut existing: FastMap<RollupKey, ()> = FastMap::default();
        for row in rows {
            let code: i16 = row.try_get("res")?;
            let res = Resolution::from_code(code)
                .ok_or_else(|| StorageError::Corrupt(format!("rollup resolution {code}")))?;
            let grain: i16 = row.try_get("grain")?;
            let bucket: i64 = row.try_get("bucket")?;
            let dims = decode::rollup_dims(&row)?;
            let key = RollupKey {
                res,
                grain,
                bucket,
                dims,
            };
            let stored = decode::aggregate(&row, true)?;
            if let Some(delta) = merged.get_mut(&key) {
                delta.merge(&stored);
            }
            if only_existing {
                existing.insert(key, ());
            }
        }
        let rows: Vec<(RollupKey, Aggregate)> = merged
            .into_iter()
            .filter(|(k, _)| !only_existing || existing.contains_key(k))
            .collect();
        for stmt in upsert_statements(Placeholders::Dollar, tenant, &rows) {
            into_query::<Postgres>(stmt).execute(&mut *conn).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../../migrations/postgres")
            .run(&self.pool)
            .await?;
        postgres_ids::backfill(&self.pool).await
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn prepare_partitions(&self, now_ms: i64) -> Result<()> {
        let today = hub_core::time::floor_to(now_ms, DAY_MS);
        // Forget what we knew, so a partition someone dropped is made again.
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.ensure_partitions((-8..=2).map(|d| today + d * DAY_MS))
            .await;
        Ok(())
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        Shared::<Postgres>::get_meta(&self.pool, key).await
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        Shared::<Postgres>::set_meta(&self.pool, key, value).await
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
        let mut tx = self.pool.begin().await?;
        // The writers' lock of the tenant (see write_batches): event costs, call holders and
        // rollup rows change as one writer's would.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ROLLUP_LOCK_BASE + tenant.get())
            .execute(&mut *tx)
            .await?;
        let (restated, changes) = restate::restate::<Postgres>(&mut tx, tenant, updates).await?;
        if !changes.is_empty() {
            Self::merge_rollups(&mut tx, tenant, changes, true).await?;
        }
        tx.commit().await?;
        Ok(restated)
    }

    async fn write_batches(
        &self,
        batches: &[TenantBatch],
        received_at_ms: i64,
    ) -> Result<Vec<WriteOutcome>> {
        let days: Vec<i64> = batches
            .iter()
            .flat_map(|b| &b.events)
            .map(|e| hub_core::time::floor_to(e.ts_ms, DAY_MS))
            .collect();
        self.ensure_partitions(days).await;
        let uniques: Vec<Vec<&EventRecord>> = batches
            .iter()
            .map(|b| dedupe_in_batch(&b.events).0)
            .collect();
        let shapes: Vec<BatchShapes> = uniques.iter().map(|u| BatchShapes::of(u)).collect();
        let mut tx = self.pool.begin().await?;
        // All of the group's new shapes at once, in id order: two writers adding the same two
        // new shapes then wait for each other in one order, never deadlock.
        if let Some(insert) = BatchShapes::union(&shapes).insert(Placeholders::Dollar) {
            into_query::<Postgres>(insert).execute(&mut *tx).await?;
        }
        let mut outcomes = Vec::with_capacity(batches.len());
        let mut changes: HashMap<TenantId, Vec<&EventRecord>> = HashMap::new();
        for ((batch, unique), shapes) in batches.iter().zip(uniques).zip(&shapes) {
            let inserted =
                Self::insert_events(&mut tx, batch.tenant, received_at_ms, &unique, &shapes.ids)
                    .await?;
            outcomes.push(WriteOutcome {
                inserted: inserted.len(),
                duplicates: batch.events.len() - inserted.len(),
            });
            changes
                .entry(batch.tenant)
                .or_default()
                .extend(inserted.into_iter().map(|i| unique[i]));
        }
        // Only the rollup merge (read, add, write back) must not interleave with another writer of
        // the same tenant; event inserts above run in parallel. The lock is taken after them and
        // held to commit; a lock holder touches only rollup rows, which only lock holders write,
        // so it never waits on a writer that waits on it. Tenants are locked in id order.
        let mut tenants: Vec<TenantId> = changes
            .iter()
            .filter(|(_, e)| !e.is_empty())
            .map(|(t, _)| *t)
            .collect();
        tenants.sort();
        for t in &tenants {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(ROLLUP_LOCK_BASE + t.get())
                .execute(&mut *tx)
                .await?;
        }
        for tenant in tenants {
            let events = changes.remove(&tenant).unwrap_or_default();
            postgres_ids::write(&mut tx, tenant, &events).await?;
            let taken_back = call_costs::settle::<Postgres>(&mut tx, tenant, &events).await?;
            let mut changes = deltas(events.into_iter());
            add_all(&mut changes, take_back(&taken_back));
            Self::merge_rollups(&mut tx, tenant, changes, false).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn list_events(
        &self,
        tenant: TenantId,
        filter: &EventFilter,
        after: Option<&EventCursor>,
        limit: usize,
    ) -> Result<EventPage> {
        Shared::<Postgres>::list_events(&self.pool, tenant, filter, after, limit).await
    }

    async fn get_event(&self, tenant: TenantId, event_id: &str) -> Result<Option<StoredEvent>> {
        postgres_ids::get_event(&self.pool, tenant, event_id).await
    }

    async fn count_events(&self, tenant: TenantId) -> Result<i64> {
        Shared::<Postgres>::count_events(&self.pool, tenant).await
    }

    async fn scan_rollups(
        &self,
        tenant: TenantId,
        res: Resolution,
        scan: &Scan<'_>,
    ) -> Result<Vec<ScanRow>> {
        Shared::<Postgres>::scan_rollups(&self.pool, tenant, res, scan).await
    }

    async fn scan_raw(
        &self,
        tenant: TenantId,
        scan: &Scan<'_>,
        bucket_step_ms: i64,
    ) -> Result<Vec<ScanRow>> {
        Shared::<Postgres>::scan_raw(&self.pool, tenant, scan, bucket_step_ms).await
    }

    async fn enforce_retention(
        &self,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        if let Some(keep) = policy.raw_ms {
            let cutoff = now_ms - keep;
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'",
            )
            .fetch_all(&self.pool)
            .await?;
            for name in names {
                let Some(day) = Self::day_of_partition(&name) else {
                    continue;
                };
                if day + DAY_MS <= cutoff {
                    // The name matched events_pYYYYMMDD, so it is safe to splice in.
                    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {name}")))
                        .execute(&self.pool)
                        .await?;
                    self.partitions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&day);
                    report.partitions_dropped += 1;
                }
            }
        }
        // What is left: the partially expired day, the default partition, and tenants that keep
        // less than the operator's policy.
        for (tenant, own) in self.settings.retention_by_tenant(policy).await? {
            if let Some(keep) = own.raw_ms {
                report.events_deleted +=
                    sqlx::query("DELETE FROM events WHERE tenant_id = $1 AND ts < $2")
                        .bind(tenant.get())
                        .bind(now_ms - keep)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                // And the id blocks whose every event is past the limit.
                postgres_ids::delete_before(&self.pool, tenant, now_ms - keep).await?;
                call_costs::forget_before::<Postgres>(&self.pool, tenant, now_ms - keep).await?;
            }
            for (res, keep) in rollup_retention(&own) {
                report.rollups_deleted += sqlx::query(
                    "DELETE FROM rollups WHERE tenant_id = $1 AND res = $2 AND bucket < $3",
                )
                .bind(tenant.get())
                .bind(res.code())
                .bind(now_ms - keep)
                .execute(&self.pool)
                .await?
                .rows_affected();
            }
            report.anomalies_deleted += self.anomalies.forget_before(tenant, &own, now_ms).await?;
            if let Some(keep) = own.minute_ms {
                self.forecasts.forget_before(tenant, keep, now_ms).await?;
            }
            self.runs.forget_before(tenant, now_ms).await?;
            if let Some(keep) = own.raw_ms {
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
