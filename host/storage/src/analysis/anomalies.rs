//! Anomalies: one row per (plugin, series, metric, time), listed newest first with filters.

use async_trait::async_trait;
use hub_core::{Severity, TenantId};
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use super::{SeriesDims, float, parse_key, push_dims, push_opt, series_key};
use crate::decode::HubRow;
use crate::model::RetentionPolicy;
use crate::sql::{Bind, Placeholders, SqlBuf, into_query, with_binds};
use crate::{Result, StorageError};

/// A point a detector reported, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAnomaly {
    pub plugin: String,
    pub dims: SeriesDims,
    pub metric: String,
    pub step_ms: i64,
    pub ts_ms: i64,
    pub value: f64,
    pub expected: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub score: f64,
    /// Info, warning or critical.
    pub severity: Severity,
    pub reason: String,
}

/// A stored anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub id: i64,
    pub tenant: TenantId,
    pub found: NewAnomaly,
    pub detected_at_ms: i64,
}

/// Which anomalies to list; every part optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AnomalyFilter {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub metric: Option<String>,
    /// This severity or worse.
    pub min_severity: Option<Severity>,
    pub plugin: Option<String>,
    /// The series' key holds each of these dimension values.
    pub dims: SeriesDims,
}

/// Keyset position in the newest-first anomaly list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnomalyCursor {
    pub ts_ms: i64,
    pub id: i64,
}

/// Anomalies, whatever the backend.
#[async_trait]
pub trait AnomalyStorage: Send + Sync {
    /// Stores what a detector found; a point already stored (same plugin, series, metric and
    /// time) is left as it was. Returns the anomalies that are new.
    async fn insert_anomalies(
        &self,
        tenant: TenantId,
        found: &[NewAnomaly],
        now_ms: i64,
    ) -> Result<Vec<Anomaly>>;
    /// Newest first; the cursor of the next page when more match.
    async fn list_anomalies(
        &self,
        tenant: TenantId,
        filter: &AnomalyFilter,
        after: Option<AnomalyCursor>,
        limit: usize,
    ) -> Result<(Vec<Anomaly>, Option<AnomalyCursor>)>;
    async fn get_anomaly(&self, tenant: TenantId, id: i64) -> Result<Option<Anomaly>>;
    /// Deletes one tenant's anomalies as the rollups of their step expire; how many.
    async fn forget_before(
        &self,
        tenant: TenantId,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<u64>;
}

pub(crate) struct SqlAnomalies<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlAnomalies<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

const ANOMALY_COLUMNS: &str = "id, tenant_id, plugin, series_key, metric, step_ms, ts, value, \
    expected, lower_bound, upper_bound, score, severity, reason, detected_at";

fn anomaly<R: HubRow>(row: &R) -> Result<Anomaly> {
    let severity = row.text("severity")?;
    Ok(Anomaly {
        id: row.int("id")?,
        tenant: TenantId::from_verified(row.int("tenant_id")?),
        found: NewAnomaly {
            plugin: row.text("plugin")?,
            dims: parse_key(&row.text("series_key")?)?,
            metric: row.text("metric")?,
            step_ms: row.int("step_ms")?,
            ts_ms: row.int("ts")?,
            value: float(row, "value")?,
            expected: row.opt_float("expected")?,
            lower: row.opt_float("lower_bound")?,
            upper: row.opt_float("upper_bound")?,
            score: float(row, "score")?,
            severity: Severity::parse(&severity)
                .ok_or_else(|| StorageError::Corrupt(format!("severity {severity:?}")))?,
            reason: row.text("reason")?,
        },
        detected_at_ms: row.int("detected_at")?,
    })
}

#[async_trait]
impl<DB> AnomalyStorage for SqlAnomalies<DB>
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
    async fn insert_anomalies(
        &self,
        tenant: TenantId,
        found: &[NewAnomaly],
        now_ms: i64,
    ) -> Result<Vec<Anomaly>> {
        let mut tx = self.writer.begin().await?;
        let mut new = Vec::new();
        for a in found {
            let mut buf = SqlBuf::new(Placeholders::Dollar);
            buf.push(
                "INSERT INTO anomalies (tenant_id, plugin, series_key, metric, step_ms, ts, value, \
                 expected, lower_bound, upper_bound, score, severity, severity_rank, reason, \
                 detected_at) VALUES (",
            )
            .bind(Bind::I64(tenant.get()))
            .push(", ")
            .bind(Bind::Text(a.plugin.clone()))
            .push(", ")
            .bind(Bind::Text(series_key(&a.dims)))
            .push(", ")
            .bind(Bind::Text(a.metric.clone()))
            .push(", ")
            .bind(Bind::I64(a.step_ms))
            .push(", ")
            .bind(Bind::I64(a.ts_ms))
            .push(", ")
            .bind(Bind::F64(a.value))
            .push(", ");
            push_opt(&mut buf, a.expected);
            buf.push(", ");
            push_opt(&mut buf, a.lower);
            buf.push(", ");
            push_opt(&mut buf, a.upper);
            buf.push(", ")
                .bind(Bind::F64(a.score))
                .push(", ")
                .bind(Bind::Text(a.severity.as_str().into()))
                .push(", ")
                .bind(Bind::I64(a.severity as i64))
                .push(", ")
                .bind(Bind::Text(a.reason.clone()))
                .push(", ")
                .bind(Bind::I64(now_ms))
                .push(
                    ") ON CONFLICT (tenant_id, plugin, series_key, metric, ts) DO NOTHING RETURNING id",
                );
            if let Some(row) = into_query::<DB>(buf).fetch_optional(&mut *tx).await? {
                new.push(Anomaly {
                    id: row.int("id")?,
                    tenant,
                    found: a.clone(),
                    detected_at_ms: now_ms,
                });
            }
        }
        tx.commit().await?;
        Ok(new)
    }
    async fn list_anomalies(
        &self,
        tenant: TenantId,
        f: &AnomalyFilter,
        after: Option<AnomalyCursor>,
        limit: usize,
    ) -> Result<(Vec<Anomaly>, Option<AnomalyCursor>)> {
        let mut buf = SqlBuf::new(Placeholders::Dollar);
        buf.push("SELECT ")
            .push(ANOMALY_COLUMNS)
            .push(" FROM anomalies WHERE tenant_id = ")
            .bind(Bind::I64(tenant.get()));
        if let Some(from) = f.from_ms {
            buf.push(" AND ts >= ").bind(Bind::I64(from));
        }
        if let Some(to) = f.to_ms {
            buf.push(" AND ts < ").bind(Bind::I64(to));
        }
        if let Some(m) = &f.metric {
            buf.push(" AND metric = ").bind(Bind::Text(m.clone()));
        }
        if let Some(s) = f.min_severity {
            buf.push(" AND severity_rank >= ").bind(Bind::I64(s as i64));
        }
        if let Some(p) = &f.plugin {
            buf.push(" AND plugin = ").bind(Bind::Text(p.clone()));
        }
        push_dims(&mut buf, &f.dims);
        if let Some(c) = after {
            buf.push(" AND (ts < ")
                .bind(Bind::I64(c.ts_ms))
                .push(" OR (ts = ")
                .bind(Bind::I64(c.ts_ms))
                .push(" AND id < ")
                .bind(Bind::I64(c.id))
                .push("))");
        }
        buf.push(" ORDER BY ts DESC, id DESC LIMIT ")
            .bind(Bind::I64(limit as i64 + 1));
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        let mut out: Vec<Anomaly> = rows.iter().map(anomaly).collect::<Result<_>>()?;
        let next = if out.len() > limit {
            out.truncate(limit);
            out.last().map(|a| AnomalyCursor {
                ts_ms: a.found.ts_ms,
                id: a.id,
            })
        } else {
            None
        };
        Ok((out, next))
    }
    async fn get_anomaly(&self, tenant: TenantId, id: i64) -> Result<Option<Anomaly>> {
        let mut buf = SqlBuf::new(Placeholders::Dollar);
        buf.push("SELECT ")
            .push(ANOMALY_COLUMNS)
            .push(" FROM anomalies WHERE tenant_id = ")
            .bind(Bind::I64(tenant.get()))
            .push(" AND id = ")
            .bind(Bind::I64(id));
        into_query::<DB>(buf)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(anomaly)
            .transpose()
    }

    async fn forget_before(
        &self,
        tenant: TenantId,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<u64> {
        let mut deleted = 0;
        // An anomaly goes with the rollups its series was built from.
        let by_step = [
            (0, 3_600_000, policy.minute_ms),
            (3_600_000, 86_400_000, policy.hour_ms),
            (86_400_000, i64::MAX, policy.day_ms),
        ];
        for (from_step, to_step, keep) in by_step {
            let Some(keep) = keep else { continue };
            deleted += into_query::<DB>(with_binds(
                "DELETE FROM anomalies WHERE tenant_id = $1 AND step_ms >= $2 AND step_ms < $3 \
                 AND ts < $4 RETURNING id",
                vec![
                    Bind::I64(tenant.get()),
                    Bind::I64(from_step),
                    Bind::I64(to_step),
                    Bind::I64(now_ms - keep),
                ],
            ))
            .fetch_all(&self.writer)
            .await?
            .len() as u64;
        }
        Ok(deleted)
    }
}
