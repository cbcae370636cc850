//! What detectors found (anomalies), what forecasters predict (the newest forecast of each
//! series), and the scheduled runs that made them, whose rows are also the leases that let one
//! replica, and only one, run a (tenant, plugin, period). One implementation over any sqlx
//! backend, reached through [`crate::Storage::analysis`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use hub_core::{Severity, TenantId};
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::decode::HubRow;
use crate::model::RetentionPolicy;
use crate::sql::{Bind, Placeholders, SqlBuf, into_query, with_binds};
use crate::{Result, StorageError};

/// A series' dimensions and their values (`[]`: the total); read back sorted by name.
pub type SeriesDims = Vec<(String, String)>;

/// The stored name of a series: its dimensions as a JSON object with sorted keys.
pub fn series_key(dims: &[(String, String)]) -> String {
    let sorted: BTreeMap<&str, &str> = dims.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    serde_json::to_string(&sorted).expect("a map of strings serializes")
}

fn parse_key(text: &str) -> Result<SeriesDims> {
    let map: BTreeMap<String, String> = serde_json::from_str(text)
        .map_err(|e| StorageError::Corrupt(format!("series key {text:?}: {e}")))?;
    Ok(map.into_iter().collect())
}

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

/// One predicted point with its bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastPoint {
    pub ts_ms: i64,
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
}

/// The newest forecast of one (plugin, series, metric).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredForecast {
    pub plugin: String,
    pub dims: SeriesDims,
    pub metric: String,
    pub step_ms: i64,
    /// The level of `lower`/`upper` (0.95), as the plugin states it.
    pub level: f64,
    pub made_at_ms: i64,
    pub points: Vec<ForecastPoint>,
}

/// Which forecasts to list.
#[derive(Debug, Clone, Default)]
pub struct ForecastFilter {
    pub plugin: Option<String>,
    pub metric: Option<String>,
    /// The series' key holds each of these dimension values.
    pub dims: SeriesDims,
    /// Only the series with exactly these dimensions (`Some([])`: only totals).
    pub exact_dims: Option<Vec<String>>,
}

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

/// Findings and runs, whatever the backend.
#[async_trait]
pub trait AnalysisStorage: Send + Sync {
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
    /// Replaces the forecasts of the same (plugin, series, metric).
    async fn put_forecasts(&self, tenant: TenantId, forecasts: &[StoredForecast]) -> Result<()>;
    async fn list_forecasts(
        &self,
        tenant: TenantId,
        filter: &ForecastFilter,
    ) -> Result<Vec<StoredForecast>>;
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
    /// Deletes one tenant's anomalies as its rollups of their step expire, forecasts older than
    /// the minute rollups, and runs older than a week. Returns the anomalies deleted.
    async fn forget_before(
        &self,
        tenant: TenantId,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<u64>;
}

pub(crate) struct SqlAnalysis<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlAnalysis<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
}

const ANOMALY_COLUMNS: &str = "id, tenant_id, plugin, series_key, metric, step_ms, ts, value, \
    expected, lower_bound, upper_bound, score, severity, reason, detected_at";

/// How long run records are kept: long enough to show a week of a plugin's runs.
const RUNS_KEPT_MS: i64 = 7 * 86_400_000;

fn float<R: HubRow>(row: &R, name: &str) -> Result<f64> {
    row.opt_float(name)?
        .ok_or_else(|| StorageError::Corrupt(format!("{name} is null")))
}

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

fn forecast<R: HubRow>(row: &R) -> Result<StoredForecast> {
    let points: Vec<(i64, f64, f64, f64)> = serde_json::from_str(&row.text("points")?)
        .map_err(|e| StorageError::Corrupt(format!("forecast points: {e}")))?;
    Ok(StoredForecast {
        plugin: row.text("plugin")?,
        dims: parse_key(&row.text("series_key")?)?,
        metric: row.text("metric")?,
        step_ms: row.int("step_ms")?,
        level: float(row, "level")?,
        made_at_ms: row.int("made_at")?,
        points: points
            .into_iter()
            .map(|(ts_ms, mean, lower, upper)| ForecastPoint {
                ts_ms,
                mean,
                lower,
                upper,
            })
            .collect(),
    })
}

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

/// A value that may be missing: bound when there, `NULL` otherwise (no optional float binds).
fn push_opt(buf: &mut SqlBuf, v: Option<f64>) {
    match v {
        Some(v) => buf.bind(Bind::F64(v)),
        None => buf.push("NULL"),
    };
}

/// `AND series_key LIKE …` for each dimension value: the key's JSON holds `"name":"value"`
/// exactly (quotes and the escape character escaped, so a value cannot match a neighbour).
fn push_dims(buf: &mut SqlBuf, dims: &[(String, String)]) {
    for (k, v) in dims {
        let pair = serde_json::to_string(&BTreeMap::from([(k, v)])).expect("strings serialize");
        let inner = &pair[1..pair.len() - 1];
        let escaped: String = inner
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '!' => vec!['!', c],
                c => vec![c],
            })
            .collect();
        buf.push(" AND series_key LIKE ")
            .bind(Bind::Text(format!("%{escaped}%")))
            .push(" ESCAPE '!'");
    }
}

#[async_trait]
impl<DB> AnalysisStorage for SqlAnalysis<DB>
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

    async fn put_forecasts(&self, tenant: TenantId, forecasts: &[StoredForecast]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for f in forecasts {
            let (Some(first), Some(last)) = (f.points.first(), f.points.last()) else {
                continue;
            };
            let points: Vec<(i64, f64, f64, f64)> = f
                .points
                .iter()
                .map(|p| (p.ts_ms, p.mean, p.lower, p.upper))
                .collect();
            let points = serde_json::to_string(&points).expect("numbers serialize");
            into_query::<DB>(with_binds(
                "INSERT INTO forecasts (tenant_id, plugin, series_key, metric, step_ms, level, \
                 made_at, first_ts, last_ts, points) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (tenant_id, plugin, series_key, metric) DO UPDATE SET \
                 step_ms = excluded.step_ms, level = excluded.level, made_at = excluded.made_at, \
                 first_ts = excluded.first_ts, last_ts = excluded.last_ts, points = excluded.points",
                vec![
                    Bind::I64(tenant.get()),
                    Bind::Text(f.plugin.clone()),
                    Bind::Text(series_key(&f.dims)),
                    Bind::Text(f.metric.clone()),
                    Bind::I64(f.step_ms),
                    Bind::F64(f.level),
                    Bind::I64(f.made_at_ms),
                    Bind::I64(first.ts_ms),
                    Bind::I64(last.ts_ms),
                    Bind::Text(points),
                ],
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_forecasts(
        &self,
        tenant: TenantId,
        f: &ForecastFilter,
    ) -> Result<Vec<StoredForecast>> {
        let mut buf = SqlBuf::new(Placeholders::Dollar);
        buf.push(
            "SELECT plugin, series_key, metric, step_ms, level, made_at, points FROM forecasts \
             WHERE tenant_id = ",
        )
        .bind(Bind::I64(tenant.get()));
        if let Some(p) = &f.plugin {
            buf.push(" AND plugin = ").bind(Bind::Text(p.clone()));
        }
        if let Some(m) = &f.metric {
            buf.push(" AND metric = ").bind(Bind::Text(m.clone()));
        }
        push_dims(&mut buf, &f.dims);
        buf.push(" ORDER BY plugin, metric, series_key");
        let rows = into_query::<DB>(buf).fetch_all(&self.reader).await?;
        let all = rows.iter().map(forecast).collect::<Result<Vec<_>>>()?;
        Ok(match &f.exact_dims {
            None => all,
            Some(names) => all
                .into_iter()
                .filter(|fc| {
                    fc.dims.len() == names.len() && fc.dims.iter().all(|(k, _)| names.contains(k))
                })
                .collect(),
        })
    }

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
        if let Some(keep) = policy.minute_ms {
            into_query::<DB>(with_binds(
                "DELETE FROM forecasts WHERE tenant_id = $1 AND made_at < $2",
                vec![Bind::I64(tenant.get()), Bind::I64(now_ms - keep)],
            ))
            .execute(&self.writer)
            .await?;
        }
        into_query::<DB>(with_binds(
            "DELETE FROM analysis_runs WHERE tenant_id = $1 AND period_ms < $2",
            vec![Bind::I64(tenant.get()), Bind::I64(now_ms - RUNS_KEPT_MS)],
        ))
        .execute(&self.writer)
        .await?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_key_is_the_same_whatever_the_order() {
        let a = series_key(&[
            ("model".into(), "gpt-4o".into()),
            ("app".into(), "bot".into()),
        ]);
        let b = series_key(&[
            ("app".into(), "bot".into()),
            ("model".into(), "gpt-4o".into()),
        ]);
        assert_eq!(a, b);
        assert_eq!(a, r#"{"app":"bot","model":"gpt-4o"}"#);
        assert_eq!(series_key(&[]), "{}");
        assert_eq!(parse_key(&a).unwrap()[1], ("model".into(), "gpt-4o".into()));
    }
}
