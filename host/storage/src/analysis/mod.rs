//! What detectors found (anomalies), what forecasters predict (the newest forecast of each
//! series), and the scheduled runs that made them, whose rows are also the leases that let one
//! replica, and only one, run a (tenant, plugin, period). Three sub-stores over any sqlx backend,
//! reached through [`crate::Storage::anomalies`], [`crate::Storage::forecasts`] and
//! [`crate::Storage::analysis_runs`]; what they share (how a series is named, how rows are read
//! and filtered) is here.

use std::collections::BTreeMap;

use crate::decode::HubRow;
use crate::sql::{Bind, SqlBuf};
use crate::{Result, StorageError};

mod anomalies;
mod forecasts;
mod runs;

pub(crate) use anomalies::SqlAnomalies;
pub use anomalies::{Anomaly, AnomalyCursor, AnomalyFilter, AnomalyStorage, NewAnomaly};
pub(crate) use forecasts::SqlForecasts;
pub use forecasts::{ForecastFilter, ForecastPoint, ForecastStorage, StoredForecast};
pub(crate) use runs::SqlRuns;
pub use runs::{RunOutcome, RunRecord, RunStorage};

/// A series' dimensions and their values (`[]`: the total); read back sorted by name.
pub type SeriesDims = Vec<(String, String)>;

/// The stored name of a series: its dimensions as a JSON object with sorted keys.
pub fn series_key(dims: &[(String, String)]) -> String {
    let sorted: BTreeMap<&str, &str> = dims.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    serde_json::to_string(&sorted).expect("a map of strings serializes")
}

pub(crate) fn parse_key(text: &str) -> Result<SeriesDims> {
    let map: BTreeMap<String, String> = serde_json::from_str(text)
        .map_err(|e| StorageError::Corrupt(format!("series key {text:?}: {e}")))?;
    Ok(map.into_iter().collect())
}

pub(crate) fn float<R: HubRow>(row: &R, name: &str) -> Result<f64> {
    row.opt_float(name)?
        .ok_or_else(|| StorageError::Corrupt(format!("{name} is null")))
}

/// A value that may be missing: bound when there, `NULL` otherwise (no optional float binds).
pub(crate) fn push_opt(buf: &mut SqlBuf, v: Option<f64>) {
    match v {
        Some(v) => buf.bind(Bind::F64(v)),
        None => buf.push("NULL"),
    };
}

/// `AND series_key LIKE …` for each dimension value: the key's JSON holds `"name":"value"`
/// exactly (quotes and the escape character escaped, so a value cannot match a neighbour).
pub(crate) fn push_dims(buf: &mut SqlBuf, dims: &[(String, String)]) {
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
