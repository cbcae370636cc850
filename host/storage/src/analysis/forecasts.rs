//! Forecasts: the newest of each (plugin, series, metric), with its points and their bounds.

use async_trait::async_trait;
use hub_core::TenantId;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use super::{SeriesDims, float, parse_key, push_dims, series_key};
use crate::decode::HubRow;
use crate::sql::{Bind, Placeholders, SqlBuf, into_query, with_binds};
use crate::{Result, StorageError};

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

/// Forecasts, whatever the backend.
#[async_trait]
pub trait ForecastStorage: Send + Sync {
    /// Replaces the forecasts of the same (plugin, series, metric).
    async fn put_forecasts(&self, tenant: TenantId, forecasts: &[StoredForecast]) -> Result<()>;
    async fn list_forecasts(
        &self,
        tenant: TenantId,
        filter: &ForecastFilter,
    ) -> Result<Vec<StoredForecast>>;
    /// Deletes one tenant's forecasts made longer ago than `keep_ms` (the minute rollups').
    async fn forget_before(&self, tenant: TenantId, keep_ms: i64, now_ms: i64) -> Result<()>;
}

pub(crate) struct SqlForecasts<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> SqlForecasts<DB> {
    pub(crate) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self { writer, reader }
    }
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

#[async_trait]
impl<DB> ForecastStorage for SqlForecasts<DB>
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

    async fn forget_before(&self, tenant: TenantId, keep_ms: i64, now_ms: i64) -> Result<()> {
        into_query::<DB>(with_binds(
            "DELETE FROM forecasts WHERE tenant_id = $1 AND made_at < $2",
            vec![Bind::I64(tenant.get()), Bind::I64(now_ms - keep_ms)],
        ))
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
