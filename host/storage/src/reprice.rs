//! Re-pricing jobs: a tenant asks for the cost of a range of stored events to be estimated again
//! (after changing a price, a discount or a custom model); the pipeline's runner works through it
//! page by page and records its progress here, so that any replica can report it and take up a job
//! whose replica stopped. One implementation over any sqlx backend, reached through
//! [`crate::Storage::reprices`]. The restatement of events and rollups itself is
//! [`crate::Storage::restate_costs`].

use async_trait::async_trait;
use hub_core::TenantId;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::decode::HubRow;
use crate::sql::{Bind, into_query, with_binds};
use crate::{EventCursor, Result, shared::conflict};

/// A new estimate of one stored event's cost (`None`: nothing priced it).
#[derive(Debug, Clone, PartialEq)]
pub struct CostUpdate {
    pub ts_ms: i64,
    pub event_id: String,
    pub estimated_cost_usd: Option<f64>,
}

/// What one restatement changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restated {
    /// Updates whose event was still stored.
    pub found: usize,
    /// Events whose stored cost changed (including holders of a call that lost it).
    pub changed: usize,
    /// The cost the changed events counted toward spend, before and after.
    pub counted_before_usd: f64,
    pub counted_after_usd: f64,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// A job as asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRepriceJob {
    pub requested_by: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// The event filter (dimensions), as the API stored it.
    pub filter_json: String,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RepriceJob {
    pub id: i64,
    pub tenant: TenantId,
    pub requested_by: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub filter_json: String,
    pub status: JobStatus,
    /// The last event done (newest first); `None` before the first page.
    pub cursor: Option<EventCursor>,
    pub events_examined: i64,
    pub events_changed: i64,
    pub cost_before_usd: f64,
    pub cost_after_usd: f64,
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub heartbeat_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// Progress through one page, added to the job's totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobProgress {
    pub cursor: Option<EventCursor>,
    pub examined: i64,
    pub changed: i64,
    pub cost_before_usd: f64,
    pub cost_after_usd: f64,
}

#[async_trait]
pub trait RepriceStorage: Send + Sync {
    /// Queues a job; [`crate::StorageError::Conflict`] when the tenant has one queued or running.
    async fn create_job(
        &self,
        tenant: TenantId,
        job: &NewRepriceJob,
        now_ms: i64,
    ) -> Result<RepriceJob>;
    async fn job(&self, tenant: TenantId, id: i64) -> Result<Option<RepriceJob>>;
    /// The tenant's jobs, newest first.
    async fn jobs(&self, tenant: TenantId, limit: usize) -> Result<Vec<RepriceJob>>;
    /// Claims for `owner` the oldest job that is queued, or running with no heartbeat since
    /// `stale_before_ms` (its replica stopped). `None` when there is none.
    async fn claim_job(
        &self,
        owner: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Option<RepriceJob>>;
    /// Adds a page's progress to a job `owner` holds. `false` when it no longer does (cancelled,
    /// or taken up by another replica): then the owner stops.
    async fn record_progress(
        &self,
        id: i64,
        owner: &str,
        progress: &JobProgress,
        now_ms: i64,
    ) -> Result<bool>;
    /// Ends a job `owner` holds as done or failed.
    async fn finish_job(
        &self,
        id: i64,
        owner: &str,
        status: JobStatus,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<()>;
    /// Cancels the tenant's job if it is still queued or running; the job as it then is.
    async fn cancel_job(
        &self,
        tenant: TenantId,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<RepriceJob>>;
}

pub(crate) struct SqlReprices<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlReprices<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

const JOB_COLUMNS: &str = "id, tenant_id, requested_by, from_ms, to_ms, filter_json, status, \
    cursor, events_examined, events_changed, cost_before_usd, cost_after_usd, error, created_at, \
    started_at, heartbeat_at, finished_at";

fn encode_cursor(c: &EventCursor) -> String {
    format!("{}:{}", c.ts_ms, c.event_id)
}

fn decode_cursor(s: &str) -> Option<EventCursor> {
    let (ts, id) = s.split_once(':')?;
    Some(EventCursor {
        ts_ms: ts.parse().ok()?,
        event_id: id.to_string(),
    })
}

fn job_row<R: HubRow>(r: &R) -> Result<RepriceJob> {
    let status = r.text("status")?;
    Ok(RepriceJob {
        id: r.int("id")?,
        tenant: TenantId::from_verified(r.int("tenant_id")?),
        requested_by: r.text("requested_by")?,
        from_ms: r.int("from_ms")?,
        to_ms: r.int("to_ms")?,
        filter_json: r.text("filter_json")?,
        status: JobStatus::parse(&status).ok_or_else(|| {
            crate::StorageError::Corrupt(format!("reprice job status `{status}`"))
        })?,
        cursor: r.opt_text("cursor")?.as_deref().and_then(decode_cursor),
        events_examined: r.int("events_examined")?,
        events_changed: r.int("events_changed")?,
        cost_before_usd: r.opt_float("cost_before_usd")?.unwrap_or(0.0),
        cost_after_usd: r.opt_float("cost_after_usd")?.unwrap_or(0.0),
        error: r.opt_text("error")?,
        created_at_ms: r.int("created_at")?,
        started_at_ms: r.opt_int("started_at")?,
        heartbeat_at_ms: r.opt_int("heartbeat_at")?,
        finished_at_ms: r.opt_int("finished_at")?,
    })
}

#[async_trait]
impl<DB> RepriceStorage for SqlReprices<DB>
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
    async fn create_job(
        &self,
        tenant: TenantId,
        job: &NewRepriceJob,
        now_ms: i64,
    ) -> Result<RepriceJob> {
        let buf = with_binds(
            &format!(
                "INSERT INTO reprice_jobs (tenant_id, requested_by, from_ms, to_ms, filter_json, \
                 status, created_at) VALUES ($1, $2, $3, $4, $5, 'queued', $6) RETURNING {JOB_COLUMNS}"
            ),
            vec![
                Bind::I64(tenant.get()),
                Bind::Text(job.requested_by.clone()),
                Bind::I64(job.from_ms),
                Bind::I64(job.to_ms),
                Bind::Text(job.filter_json.clone()),
                Bind::I64(now_ms),
            ],
        );
        let row = into_query::<DB>(buf)
            .fetch_one(&self.writer)
            .await
            .map_err(conflict("a re-pricing job of this tenant".into()))?;
        job_row(&row)
    }

    async fn job(&self, tenant: TenantId, id: i64) -> Result<Option<RepriceJob>> {
        let buf = with_binds(
            &format!("SELECT {JOB_COLUMNS} FROM reprice_jobs WHERE tenant_id = $1 AND id = $2"),
            vec![Bind::I64(tenant.get()), Bind::I64(id)],
        );
        let row = into_query::<DB>(buf).fetch_optional(&self.reader).await?;
        row.map(|r| job_row(&r)).transpose()
    }

    async fn jobs(&self, tenant: TenantId, limit: usize) -> Result<Vec<RepriceJob>> {
        let buf = with_binds(
            &format!(
                "SELECT {JOB_COLUMNS} FROM reprice_jobs WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2"
            ),
            vec![Bind::I64(tenant.get()), Bind::I64(limit as i64)],
        );
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(job_row).collect()
    }

    async fn claim_job(
        &self,
        owner: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Option<RepriceJob>> {
        // One statement: two replicas claiming at once cannot both get a job (the second's
        // condition no longer holds once the first has written its owner and heartbeat).
        let buf = with_binds(
            &format!(
                "UPDATE reprice_jobs SET status = 'running', owner = $1, heartbeat_at = $2, \
                 started_at = COALESCE(started_at, $2) WHERE id = (SELECT id FROM reprice_jobs \
                 WHERE status = 'queued' OR (status = 'running' AND heartbeat_at < $3) \
                 ORDER BY id LIMIT 1) AND (status = 'queued' OR (status = 'running' AND \
                 heartbeat_at < $3)) RETURNING {JOB_COLUMNS}"
            ),
            vec![
                Bind::Text(owner.to_string()),
                Bind::I64(now_ms),
                Bind::I64(stale_before_ms),
            ],
        );
        let row = into_query::<DB>(buf).fetch_optional(&self.writer).await?;
        row.map(|r| job_row(&r)).transpose()
    }

    async fn record_progress(
        &self,
        id: i64,
        owner: &str,
        p: &JobProgress,
        now_ms: i64,
    ) -> Result<bool> {
        let buf = with_binds(
            "UPDATE reprice_jobs SET cursor = COALESCE($1, cursor), \
             events_examined = events_examined + $2, events_changed = events_changed + $3, \
             cost_before_usd = cost_before_usd + $4, cost_after_usd = cost_after_usd + $5, \
             heartbeat_at = $6 WHERE id = $7 AND owner = $8 AND status = 'running' RETURNING id",
            vec![
                Bind::OptText(p.cursor.as_ref().map(encode_cursor)),
                Bind::I64(p.examined),
                Bind::I64(p.changed),
                Bind::F64(p.cost_before_usd),
                Bind::F64(p.cost_after_usd),
                Bind::I64(now_ms),
                Bind::I64(id),
                Bind::Text(owner.to_string()),
            ],
        );
        let held = into_query::<DB>(buf).fetch_optional(&self.writer).await?;
        Ok(held.is_some())
    }

    async fn finish_job(
        &self,
        id: i64,
        owner: &str,
        status: JobStatus,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        let buf = with_binds(
            "UPDATE reprice_jobs SET status = $1, error = $2, finished_at = $3, heartbeat_at = $3 \
             WHERE id = $4 AND owner = $5 AND status = 'running'",
            vec![
                Bind::Text(status.as_str().to_string()),
                Bind::OptText(error.map(str::to_string)),
                Bind::I64(now_ms),
                Bind::I64(id),
                Bind::Text(owner.to_string()),
            ],
        );
        into_query::<DB>(buf).execute(&self.writer).await?;
        Ok(())
    }

    async fn cancel_job(
        &self,
        tenant: TenantId,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<RepriceJob>> {
        let buf = with_binds(
            "UPDATE reprice_jobs SET status = 'cancelled', finished_at = $1 WHERE tenant_id = $2 \
             AND id = $3 AND status IN ('queued', 'running')",
            vec![Bind::I64(now_ms), Bind::I64(tenant.get()), Bind::I64(id)],
        );
        into_query::<DB>(buf).execute(&self.writer).await?;
        self.job(tenant, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_ids_with_colons() {
        let c = EventCursor {
            ts_ms: 1_700_000_000_123,
            event_id: "urn:uuid:1".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        assert_eq!(decode_cursor("nonsense"), None);
    }
}
