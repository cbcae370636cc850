//! Alert notices on their way to integrations: one row per (notice, target), queued in the
//! transaction that stores the alert's change (so a notice raised is never lost), taken by one
//! replica at a time (`claimed_until`), attempted until delivered or given up, and every attempt
//! kept beside it for the delivery log.

use async_trait::async_trait;
use hub_core::TenantId;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::Result;
use crate::analysis::SeriesDims;
use crate::decode::HubRow;
use crate::sql::{Bind, SqlBuf, into_query, with_binds};

/// A notice for one target, queued with the change of the alert of its `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub group: SeriesDims,
    /// The installed integration, by name.
    pub target: String,
    /// `firing`, `repeat` or `resolved`.
    pub notice: String,
    /// The alert as the target is handed it (JSON), fixed when the notice was raised.
    pub payload: String,
    /// Why it is not sent (a silence matched it): stored as `silenced`, finished, with this.
    pub silenced: Option<String>,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub tenant: TenantId,
    pub alert_id: i64,
    pub rule_id: i64,
    pub target: String,
    pub notice: String,
    pub payload: String,
    /// `queued`, `delivered`, `failed` (given up) or `silenced` (never sent).
    pub state: String,
    pub attempts: i64,
    pub created_at_ms: i64,
    /// When a queued delivery is next tried.
    pub next_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub delivery_id: i64,
    pub at_ms: i64,
    pub duration_ms: i64,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    /// Tried again at this time.
    Retry {
        at_ms: i64,
    },
    /// Given up.
    Failed,
}

impl AfterAttempt {
    pub fn outcome(self) -> &'static str {
        match self {
            AfterAttempt::Delivered => "delivered",
            AfterAttempt::Retry { .. } => "retry",
            AfterAttempt::Failed => "failed",
        }
    }
}

/// Which deliveries to list; both parts optional.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub alert_id: Option<i64>,
    /// `queued`, `delivered`, `failed` or `silenced`.
    pub state: Option<String>,
}

/// Deliveries of alert notices, whatever the backend.
#[async_trait]
pub trait DeliveryStorage: Send + Sync {
    /// Tenants with a delivery due at `now_ms` that no replica holds.
    async fn tenants_with_due(&self, now_ms: i64) -> Result<Vec<TenantId>>;
    /// Takes up to `limit` of the tenant's due deliveries, oldest due first, for `lease_ms`:
    /// no other replica takes them until then (a replica that dies leaves them to another).
    async fn claim_due(
        &self,
        tenant: TenantId,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>>;
    /// Records an attempt and what becomes of the delivery; the lease is let go.
    async fn record_attempt(
        &self,
        tenant: TenantId,
        attempt: &DeliveryAttempt,
        after: AfterAttempt,
        error: Option<&str>,
    ) -> Result<()>;
    /// The tenant's deliveries, newest first.
    async fn deliveries(
        &self,
        tenant: TenantId,
        filter: &DeliveryFilter,
        limit: usize,
    ) -> Result<Vec<Delivery>>;
    /// The attempts of these deliveries, oldest first.
    async fn attempts(
        &self,
        tenant: TenantId,
        delivery_ids: &[i64],
    ) -> Result<Vec<DeliveryAttempt>>;
}

pub(crate) struct SqlDeliveries<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlDeliveries<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

const COLUMNS: &str = "id, tenant_id, alert_id, rule_id, target, notice, payload, state, attempts, \
    created_at, next_at, finished_at, last_error";

fn delivery<R: HubRow>(row: &R) -> Result<Delivery> {
    Ok(Delivery {
        id: row.int("id")?,
        tenant: TenantId::from_verified(row.int("tenant_id")?),
        alert_id: row.int("alert_id")?,
        rule_id: row.int("rule_id")?,
        target: row.text("target")?,
        notice: row.text("notice")?,
        payload: row.text("payload")?,
        state: row.text("state")?,
        attempts: row.int("attempts")?,
        created_at_ms: row.int("created_at")?,
        next_at_ms: row.int("next_at")?,
        finished_at_ms: row.opt_int("finished_at")?,
        last_error: row.opt_text("last_error")?,
    })
}

/// The statement that queues `d` for the alert `alert_id` (run in the alert's transaction).
pub(crate) fn queue(
    tenant: TenantId,
    alert_id: i64,
    rule_id: i64,
    d: &NewDelivery,
    now_ms: i64,
) -> SqlBuf {
    let state = if d.silenced.is_some() {
        "silenced"
    } else {
        "queued"
    };
    with_binds(
        "INSERT INTO alert_deliveries (tenant_id, alert_id, rule_id, target, notice, payload, \
         state, attempts, created_at, next_at, claimed_until, finished_at, last_error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8, 0, $9, $10)",
        vec![
            Bind::I64(tenant.get()),
            Bind::I64(alert_id),
            Bind::I64(rule_id),
            Bind::Text(d.target.clone()),
            Bind::Text(d.notice.clone()),
            Bind::Text(d.payload.clone()),
            Bind::Text(state.into()),
            Bind::I64(now_ms),
            Bind::OptI64(d.silenced.is_some().then_some(now_ms)),
            Bind::OptText(d.silenced.clone()),
        ],
    )
}

/// The statements that delete a rule's deliveries and their attempts.
pub(crate) fn forget_rule(tenant: TenantId, rule_id: i64) -> [SqlBuf; 2] {
    let b = || vec![Bind::I64(tenant.get()), Bind::I64(rule_id)];
    [
        with_binds(
            "DELETE FROM alert_delivery_attempts WHERE tenant_id = $1 AND delivery_id IN \
             (SELECT id FROM alert_deliveries WHERE tenant_id = $1 AND rule_id = $2)",
            b(),
        ),
        with_binds(
            "DELETE FROM alert_deliveries WHERE tenant_id = $1 AND rule_id = $2",
            b(),
        ),
    ]
}

/// The statements that delete the deliveries finished before `before_ms`, and their attempts
/// (retention: they go with the resolved alerts).
pub(crate) fn forget_finished_before(tenant: TenantId, before_ms: i64) -> [SqlBuf; 2] {
    let b = || vec![Bind::I64(tenant.get()), Bind::I64(before_ms)];
    [
        with_binds(
            "DELETE FROM alert_delivery_attempts WHERE tenant_id = $1 AND delivery_id IN \
             (SELECT id FROM alert_deliveries WHERE tenant_id = $1 AND state <> 'queued' \
             AND finished_at < $2)",
            b(),
        ),
        with_binds(
            "DELETE FROM alert_deliveries WHERE tenant_id = $1 AND state <> 'queued' \
             AND finished_at < $2",
            b(),
        ),
    ]
}

#[async_trait]
impl<DB> DeliveryStorage for SqlDeliveries<DB>
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
    async fn tenants_with_due(&self, now_ms: i64) -> Result<Vec<TenantId>> {
        let rows = into_query::<DB>(with_binds(
            "SELECT DISTINCT tenant_id FROM alert_deliveries WHERE state = 'queued' \
             AND next_at <= $1 AND claimed_until <= $1 ORDER BY tenant_id",
            vec![Bind::I64(now_ms)],
        ))
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|r| Ok(TenantId::from_verified(r.int("tenant_id")?)))
            .collect()
    }

    async fn claim_due(
        &self,
        tenant: TenantId,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        // The outer conditions are checked again on the row a concurrent claim left (PostgreSQL
        // re-reads a row it waited for), so two replicas never take the same delivery.
        let mut buf = with_binds(
            "UPDATE alert_deliveries SET claimed_until = $1 WHERE id IN (SELECT id FROM \
             alert_deliveries WHERE tenant_id = $2 AND state = 'queued' AND next_at <= $3 \
             AND claimed_until <= $3 ORDER BY next_at, id LIMIT $4) \
             AND state = 'queued' AND claimed_until <= $3 RETURNING ",
            vec![
                Bind::I64(now_ms + lease_ms),
                Bind::I64(tenant.get()),
                Bind::I64(now_ms),
                Bind::I64(limit as i64),
            ],
        );
        buf.push(COLUMNS);
        let rows = into_query::<DB>(buf).fetch_all(&self.writer).await?;
        let mut out: Vec<Delivery> = rows.iter().map(delivery).collect::<Result<_>>()?;
        out.sort_by_key(|d| (d.next_at_ms, d.id));
        Ok(out)
    }

    async fn record_attempt(
        &self,
        tenant: TenantId,
        a: &DeliveryAttempt,
        after: AfterAttempt,
        error: Option<&str>,
    ) -> Result<()> {
        let (state, next_at, finished_at) = match after {
            AfterAttempt::Delivered => ("delivered", a.at_ms, Some(a.at_ms)),
            AfterAttempt::Retry { at_ms } => ("queued", at_ms, None),
            AfterAttempt::Failed => ("failed", a.at_ms, Some(a.at_ms)),
        };
        let mut tx = self.writer.begin().await?;
        into_query::<DB>(with_binds(
            "UPDATE alert_deliveries SET state = $1, attempts = attempts + 1, next_at = $2, \
             claimed_until = 0, finished_at = $3, last_error = $4 \
             WHERE tenant_id = $5 AND id = $6",
            vec![
                Bind::Text(state.into()),
                Bind::I64(next_at),
                Bind::OptI64(finished_at),
                Bind::OptText(error.map(str::to_string)),
                Bind::I64(tenant.get()),
                Bind::I64(a.delivery_id),
            ],
        ))
        .execute(&mut *tx)
        .await?;
        into_query::<DB>(with_binds(
            "INSERT INTO alert_delivery_attempts (tenant_id, delivery_id, at, duration_ms, \
             outcome, error) VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                Bind::I64(tenant.get()),
                Bind::I64(a.delivery_id),
                Bind::I64(a.at_ms),
                Bind::I64(a.duration_ms),
                Bind::Text(a.outcome.clone()),
                Bind::OptText(a.error.clone()),
            ],
        ))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn deliveries(
        &self,
        tenant: TenantId,
        f: &DeliveryFilter,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let mut buf = with_binds("SELECT ", vec![]);
        buf.push(COLUMNS)
            .push(" FROM alert_deliveries WHERE tenant_id = ")
            .bind(Bind::I64(tenant.get()));
        if let Some(a) = f.alert_id {
            buf.push(" AND alert_id = ").bind(Bind::I64(a));
        }
        if let Some(s) = &f.state {
            buf.push(" AND state = ").bind(Bind::Text(s.clone()));
        }
        buf.push(" ORDER BY id DESC LIMIT ")
            .bind(Bind::I64(limit as i64));
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        rows.iter().map(delivery).collect()
    }

    async fn attempts(
        &self,
        tenant: TenantId,
        delivery_ids: &[i64],
    ) -> Result<Vec<DeliveryAttempt>> {
        let mut out = Vec::new();
        for ids in delivery_ids.chunks(500) {
            let mut buf = with_binds(
                "SELECT delivery_id, at, duration_ms, outcome, error \
                 FROM alert_delivery_attempts WHERE tenant_id = $1 AND delivery_id IN (",
                vec![Bind::I64(tenant.get())],
            );
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    buf.push(", ");
                }
                buf.bind(Bind::I64(*id));
            }
            buf.push(") ORDER BY id");
            for r in into_query::<DB>(buf).fetch_all(&self.reader).await? {
                out.push(DeliveryAttempt {
                    delivery_id: r.int("delivery_id")?,
                    at_ms: r.int("at")?,
                    duration_ms: r.int("duration_ms")?,
                    outcome: r.text("outcome")?,
                    error: r.opt_text("error")?,
                });
            }
        }
        Ok(out)
    }
}
