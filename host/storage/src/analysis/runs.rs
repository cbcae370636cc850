//! Scheduled runs: one row per (tenant, plugin, period), which is also the run's lease.

use async_trait::async_trait;
use hub_core::TenantId;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::Result;
use crate::decode::HubRow;
use crate::sql::{Bind, Placeholders, SqlBuf, into_query, with_binds};

/// How a scheduled run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// `ok`, `failed` or `skipped`.
    pub outcome: String,
    pub series: i64,
    /// Anomalies stored (detectors) or forecasts stored (forecasters).
    pub found: i64,
    pub message: Option<String>,
}

/// A scheduled run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub plugin: String,
    pub period_ms: i64,
    pub owner: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub outcome: Option<RunOutcome>,
}

/// Scheduled runs and their leases, whatever the backend.
#[async_trait]
pub trait RunStorage: Send + Sync {
    /// Takes the lease of a run: true when this `owner` is to run it (no one had it, or its
    /// holder started more than `lease_ms` ago and never finished).
    async fn claim_run(
        &self,
        tenant: TenantId,
        plugin: &str,
        period_ms: i64,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool>;
    /// Records how the run ended (only while `owner` holds it).
    async fn finish_run(
        &self,
        tenant: TenantId,
        plugin: &str,
        period_ms: i64,
        owner: &str,
        now_ms: i64,
        outcome: &RunOutcome,
    ) -> Result<()>;
    /// The period of the plugin's newest run, if it ever ran (and its record was kept).
    async fn last_run(&self, tenant: TenantId, plugin: &str) -> Result<Option<i64>>;
    /// The runs of a plugin (or every plugin) from `from_period_ms` on, oldest first.
    async fn runs(
        &self,
        tenant: TenantId,
        plugin: Option<&str>,
        from_period_ms: i64,
    ) -> Result<Vec<RunRecord>>;
    /// Deletes one tenant's runs of periods older than a week.
    async fn forget_before(&self, tenant: TenantId, now_ms: i64) -> Result<()>;
}

pub(crate) struct SqlRuns<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlRuns<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

/// How long run records are kept: long enough to show a week of a plugin's runs.
const RUNS_KEPT_MS: i64 = 7 * 86_400_000;

fn run<R: HubRow>(row: &R) -> Result<RunRecord> {
    let outcome = match row.opt_text("outcome")? {
        None => None,
        Some(outcome) => Some(RunOutcome {
            outcome,
            series: row.opt_int("series")?.unwrap_or(0),
            found: row.opt_int("found")?.unwrap_or(0),
            message: row.opt_text("message")?,
        }),
    };
    Ok(RunRecord {
        plugin: row.text("plugin")?,
        period_ms: row.int("period_ms")?,
        owner: row.text("owner")?,
        started_at_ms: row.int("started_at")?,
        finished_at_ms: row.opt_int("finished_at")?,
        outcome,
    })
}

#[async_trait]
impl<DB> RunStorage for SqlRuns<DB>
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
    async fn claim_run(
        &self,
        tenant: TenantId,
        plugin: &str,
        period_ms: i64,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool> {
        let got = into_query::<DB>(with_binds(
            "INSERT INTO analysis_runs (tenant_id, plugin, period_ms, owner, started_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, plugin, period_ms) DO UPDATE SET \
             owner = excluded.owner, started_at = excluded.started_at \
             WHERE analysis_runs.finished_at IS NULL AND analysis_runs.started_at < $6 \
             RETURNING period_ms",
            vec![
                Bind::I64(tenant.get()),
                Bind::Text(plugin.into()),
                Bind::I64(period_ms),
                Bind::Text(owner.into()),
                Bind::I64(now_ms),
                Bind::I64(now_ms - lease_ms),
            ],
        ))
        .fetch_optional(&self.writer)
        .await?;
        Ok(got.is_some())
    }
    async fn finish_run(
        &self,
        tenant: TenantId,
        plugin: &str,
        period_ms: i64,
        owner: &str,
        now_ms: i64,
        o: &RunOutcome,
    ) -> Result<()> {
        into_query::<DB>(with_binds(
            "UPDATE analysis_runs SET finished_at = $1, outcome = $2, series = $3, found = $4, \
             message = $5 WHERE tenant_id = $6 AND plugin = $7 AND period_ms = $8 AND owner = $9",
            vec![
                Bind::I64(now_ms),
                Bind::Text(o.outcome.clone()),
                Bind::I64(o.series),
                Bind::I64(o.found),
                Bind::OptText(o.message.clone()),
                Bind::I64(tenant.get()),
                Bind::Text(plugin.into()),
                Bind::I64(period_ms),
                Bind::Text(owner.into()),
            ],
        ))
        .execute(&self.writer)
        .await?;
        Ok(())
    }
    async fn last_run(&self, tenant: TenantId, plugin: &str) -> Result<Option<i64>> {
        let row = into_query::<DB>(with_binds(
            "SELECT MAX(period_ms) AS last FROM analysis_runs WHERE tenant_id = $1 AND plugin = $2",
            vec![Bind::I64(tenant.get()), Bind::Text(plugin.into())],
        ))
        .fetch_one(&self.reader)
        .await?;
        row.opt_int("last")
    }
    async fn runs(
        &self,
        tenant: TenantId,
        plugin: Option<&str>,
        from_period_ms: i64,
    ) -> Result<Vec<RunRecord>> {
        let mut buf = SqlBuf::new(Placeholders::Dollar);
        buf.push(
            "SELECT plugin, period_ms, owner, started_at, finished_at, outcome, series, found, \
             message FROM analysis_runs WHERE tenant_id = ",
        )
        .bind(Bind::I64(tenant.get()))
        .push(" AND period_ms >= ")
        .bind(Bind::I64(from_period_ms));
        if let Some(p) = plugin {
            buf.push(" AND plugin = ").bind(Bind::Text(p.into()));
        }
        buf.push(" ORDER BY period_ms, plugin");
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(run).collect()
    }

    async fn forget_before(&self, tenant: TenantId, now_ms: i64) -> Result<()> {
        into_query::<DB>(with_binds(
            "DELETE FROM analysis_runs WHERE tenant_id = $1 AND period_ms < $2",
            vec![Bind::I64(tenant.get()), Bind::I64(now_ms - RUNS_KEPT_MS)],
        ))
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
