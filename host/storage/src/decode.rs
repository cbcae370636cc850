//! Row decoding shared by both backends, every column by its name.

use hub_core::{
    Dimension, EventRecord, LatencySketch, Severity, Status, TokenDetail, TokenDetails,
};

use crate::sql::{BUCKET_START, SKETCHES};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::model::{Aggregate, ScanRow, StoredEvent};
use crate::rollup::DimValues;
use crate::{Result, StorageError};

/// Reading a column of a backend's row by its name (as the query selects or aliases it), never by
/// position: a column added to or moved in a SELECT cannot shift what another field reads. The
/// bounds are the impl's, so code generic over a backend needs only `DB::Row: HubRow`.
pub(crate) trait HubRow {
    fn text(&self, name: &str) -> Result<String>;
    fn opt_text(&self, name: &str) -> Result<Option<String>>;
    fn int(&self, name: &str) -> Result<i64>;
    fn opt_int(&self, name: &str) -> Result<Option<i64>>;
    fn opt_float(&self, name: &str) -> Result<Option<f64>>;
    fn bytes(&self, name: &str) -> Result<Vec<u8>>;
}

impl<R> HubRow for R
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, name: &str) -> Result<String> {
        Ok(self.try_get(name)?)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>> {
        Ok(self.try_get(name)?)
    }
    fn int(&self, name: &str) -> Result<i64> {
        Ok(self.try_get(name)?)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.try_get(name)?)
    }
    fn opt_float(&self, name: &str) -> Result<Option<f64>> {
        Ok(self.try_get(name)?)
    }
    fn bytes(&self, name: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(name)?)
    }
}

fn status(s: Option<String>) -> Option<Status> {
    s.as_deref().and_then(Status::parse)
}

fn severity(s: Option<String>) -> Option<Severity> {
    s.as_deref().and_then(Severity::parse)
}

/// A row of `SELECT <EVENT_SELECT>`.
pub(crate) fn event<R: HubRow>(row: &R) -> Result<StoredEvent> {
    Ok(StoredEvent {
        received_at_ms: row.int("received_at")?,
        record: EventRecord {
            event_id: row.text("event_id")?,
            ts_ms: row.int("ts")?,
            event_type: row.text("event_type")?,
            kind: row.text("kind")?,
            source_module: row.opt_text("source_module")?,
            severity: severity(row.opt_text("severity")?),
            environment: row.opt_text("environment")?,
            app: row.opt_text("app")?,
            model: row.opt_text("model")?,
            provider: row.opt_text("provider")?,
            operation: row.opt_text("operation")?,
            input_tokens: row.opt_int("input_tokens")?,
            output_tokens: row.opt_int("output_tokens")?,
            latency_ms: row.opt_float("latency_ms")?,
            ttft_ms: row.opt_float("ttft_ms")?,
            status: status(row.opt_text("status")?),
            error_type: row.opt_text("error_type")?,
            cost_usd: row.opt_float("cost_usd")?,
            user_id: row.opt_text("user_id")?,
            session_id: row.opt_text("session_id")?,
            trace_id: row.opt_text("trace_id")?,
            correlation_id: row.opt_text("correlation_id")?,
            parent_event_id: row.opt_text("parent_event_id")?,
            tags_json: row.text("tags")?,
            payload_json: row.text("payload")?,
            details: token_details(row)?,
            reported_cost_usd: row.opt_float("reported_cost_usd")?,
            estimated_cost_usd: row.opt_float("estimated_cost_usd")?,
            service_tier: row.opt_text("service_tier")?,
            enriched_by: hub_core::parse_enriched_by(row.opt_text("enriched_by")?.as_deref()),
        },
    })
}

/// The usage details' columns, each under its [`TokenDetail::name`].
fn token_details<R: HubRow>(row: &R) -> Result<TokenDetails> {
    let mut details = [None; 5];
    for (d, detail) in details.iter_mut().zip(TokenDetail::ALL) {
        *d = row.opt_int(detail.name())?;
    }
    Ok(TokenDetails(details))
}

/// A stored rollup row's dimension values, in rollup-key order.
pub(crate) fn rollup_dims<R: HubRow>(row: &R) -> Result<DimValues> {
    let mut dims = DimValues::default();
    for (d, dim) in dims.iter_mut().zip(Dimension::ALL) {
        *d = row.text(dim.name())?;
    }
    Ok(dims)
}

/// The group's key: each grouping dimension's column, by its name.
fn group_key<R: HubRow>(
    row: &R,
    group_by: &[Dimension],
    empty_is_unset: bool,
) -> Result<Vec<Option<String>>> {
    group_by
        .iter()
        .map(|d| {
            let v = row.opt_text(d.name())?;
            Ok(if empty_is_unset {
                v.filter(|s| !s.is_empty())
            } else {
                v
            })
        })
        .collect()
}

/// A row of [`crate::sql::rollup_scan`].
pub(crate) fn rollup_row<R: HubRow>(
    row: &R,
    group_by: &[Dimension],
    by_bucket: bool,
    with_sketch: bool,
) -> Result<ScanRow> {
    let key = group_key(row, group_by, true)?;
    let bucket_ms = if by_bucket {
        Some(row.int(BUCKET_START)?)
    } else {
        None
    };
    let mut agg = aggregate(row, false)?;
    if with_sketch {
        // The group's sketches, hex-encoded and comma-separated (NULL when it has none).
        let all = row.opt_text(SKETCHES)?.unwrap_or_default();
        let mut bytes = Vec::new();
        for hex in all.split(',').filter(|h| !h.is_empty()) {
            bytes.clear();
            decode_hex(hex, &mut bytes)?;
            agg.latency
                .merge_encoded(&bytes)
                .map_err(|e| StorageError::Corrupt(e.to_string()))?;
        }
    }
    Ok(ScanRow {
        key,
        bucket_ms,
        agg,
    })
}

/// Upper-case hex (SQLite's `hex`) or lower-case (PostgreSQL's `encode`) into `out`.
fn decode_hex(hex: &str, out: &mut Vec<u8>) -> Result<()> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(StorageError::Corrupt(format!(
            "'{}' in a sketch is not hex",
            c as char
        ))),
    };
    let b = hex.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(StorageError::Corrupt(
            "a sketch's hex has an odd length".into(),
        ));
    }
    out.reserve(b.len() / 2);
    for pair in b.chunks_exact(2) {
        out.push(digit(pair[0])? << 4 | digit(pair[1])?);
    }
    Ok(())
}

/// The aggregate columns of a rollup row, as stored or summed under the same names (events …
/// unpriced_tokens), and the stored sketch when asked.
pub(crate) fn aggregate<R: HubRow>(row: &R, with_sketch: bool) -> Result<Aggregate> {
    let int = |name: &str| -> Result<i64> { Ok(row.opt_int(name)?.unwrap_or(0)) };
    let float = |name: &str| -> Result<f64> { Ok(row.opt_float(name)?.unwrap_or(0.0)) };
    let mut details = [0; 5];
    for (d, detail) in details.iter_mut().zip(TokenDetail::ALL) {
        *d = int(detail.name())?;
    }
    let latency = if with_sketch {
        LatencySketch::decode(&row.bytes("latency_sketch")?)
            .map_err(|e| StorageError::Corrupt(e.to_string()))?
    } else {
        LatencySketch::new()
    };
    Ok(Aggregate {
        events: int("events")?,
        requests: int("requests")?,
        errors: int("errors")?,
        input_tokens: int("input_tokens")?,
        output_tokens: int("output_tokens")?,
        cost_usd: float("cost_usd")?,
        latency_count: int("latency_count")?,
        latency_sum: float("latency_sum")?,
        details,
        estimated_cost_usd: float("estimated_cost_usd")?,
        reported_cost_usd: float("reported_cost_usd")?,
        unpriced_events: int("unpriced_events")?,
        unpriced_tokens: int("unpriced_tokens")?,
        latency,
    })
}

/// A row of [`crate::sql::raw_scan`]: the group key, the time, and the fields aggregates read.
pub(crate) fn raw_row<R: HubRow>(
    row: &R,
    group_by: &[Dimension],
    tag: Option<&str>,
) -> Result<(Vec<Option<String>>, EventRecord)> {
    let mut key = group_key(row, group_by, false)?;
    if let Some(name) = tag {
        // Tags are a JSON object of strings (`{}` when none).
        let tags: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&row.text("tags")?).unwrap_or_default();
        key.push(tags.get(name).and_then(|v| v.as_str()).map(str::to_string));
    }
    let record = EventRecord {
        ts_ms: row.int("ts")?,
        event_id: row.text("event_id")?,
        event_type: row.text("event_type")?,
        kind: row.text("kind")?,
        status: status(row.opt_text("status")?),
        input_tokens: row.opt_int("input_tokens")?,
        output_tokens: row.opt_int("output_tokens")?,
        cost_usd: row.opt_float("cost_usd")?,
        latency_ms: row.opt_float("latency_ms")?,
        details: token_details(row)?,
        reported_cost_usd: row.opt_float("reported_cost_usd")?,
        estimated_cost_usd: row.opt_float("estimated_cost_usd")?,
        service_tier: None,
        source_module: None,
        severity: None,
        environment: None,
        app: None,
        model: None,
        provider: None,
        operation: None,
        ttft_ms: None,
        error_type: None,
        user_id: None,
        session_id: None,
        trace_id: None,
        correlation_id: None,
        parent_event_id: None,
        tags_json: String::new(),
        payload_json: String::new(),
        enriched_by: Vec::new(),
    };
    Ok((key, record))
}

/// Folds raw rows, as they stream in, into scan rows per group (and per bucket of `step_ms`).
pub(crate) struct RawFold {
    by_bucket: bool,
    step_ms: i64,
    groups: std::collections::HashMap<(Vec<Option<String>>, Option<i64>), Aggregate>,
}

impl RawFold {
    pub(crate) fn new(by_bucket: bool, step_ms: i64) -> Self {
        Self {
            by_bucket,
            step_ms: step_ms.max(1),
            groups: Default::default(),
        }
    }

    pub(crate) fn add(&mut self, (key, e): (Vec<Option<String>>, EventRecord)) {
        let bucket = self
            .by_bucket
            .then(|| hub_core::time::floor_to(e.ts_ms, self.step_ms));
        self.groups.entry((key, bucket)).or_default().add_event(&e);
    }

    pub(crate) fn finish(self) -> Vec<ScanRow> {
        self.groups
            .into_iter()
            .map(|((key, bucket_ms), agg)| ScanRow {
                key,
                bucket_ms,
                agg,
            })
            .collect()
    }
}
