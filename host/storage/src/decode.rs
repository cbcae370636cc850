//! Row decoding shared by both backends (columns are read by position, in the order `sql.rs`
//! selects them).

use hub_core::{EventRecord, LatencySketch, Severity, Status, TokenDetails};

use crate::sql::USAGE_SUMS;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::model::{Aggregate, ScanRow, StoredEvent};
use crate::{Result, StorageError};

/// The trait bounds a backend's row type meets for the columns the hub uses.
pub(crate) trait HubRow: Row
where
    usize: ColumnIndex<Self>,
{
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn int(&self, i: usize) -> Result<i64>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn opt_float(&self, i: usize) -> Result<Option<f64>>;
    fn bytes(&self, i: usize) -> Result<Vec<u8>>;
}

impl<R> HubRow for R
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn opt_float(&self, i: usize) -> Result<Option<f64>> {
        Ok(self.try_get(i)?)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        Ok(self.try_get(i)?)
    }
}

fn status(s: Option<String>) -> Option<Status> {
    s.as_deref().and_then(Status::parse)
}

fn severity(s: Option<String>) -> Option<Severity> {
    s.as_deref().and_then(Severity::parse)
}

/// A row of `SELECT <EVENT_SELECT>`.
pub(crate) fn event<R: HubRow>(row: &R) -> Result<StoredEvent>
where
    usize: ColumnIndex<R>,
{
    Ok(StoredEvent {
        received_at_ms: row.int(3)?,
        record: EventRecord {
            event_id: row.text(1)?,
            ts_ms: row.int(2)?,
            event_type: row.text(4)?,
            kind: row.text(5)?,
            source_module: row.opt_text(6)?,
            severity: severity(row.opt_text(7)?),
            environment: row.opt_text(8)?,
            app: row.opt_text(9)?,
            model: row.opt_text(10)?,
            provider: row.opt_text(11)?,
            operation: row.opt_text(12)?,
            input_tokens: row.opt_int(13)?,
            output_tokens: row.opt_int(14)?,
            latency_ms: row.opt_float(15)?,
            ttft_ms: row.opt_float(16)?,
            status: status(row.opt_text(17)?),
            error_type: row.opt_text(18)?,
            cost_usd: row.opt_float(19)?,
            user_id: row.opt_text(20)?,
            session_id: row.opt_text(21)?,
            trace_id: row.opt_text(22)?,
            correlation_id: row.opt_text(23)?,
            parent_event_id: row.opt_text(24)?,
            tags_json: row.text(25)?,
            payload_json: row.text(26)?,
            details: TokenDetails([
                row.opt_int(27)?,
                row.opt_int(28)?,
                row.opt_int(29)?,
                row.opt_int(30)?,
                row.opt_int(31)?,
            ]),
            reported_cost_usd: row.opt_float(32)?,
            estimated_cost_usd: row.opt_float(33)?,
            service_tier: row.opt_text(34)?,
            enriched_by: hub_core::parse_enriched_by(row.opt_text(35)?.as_deref()),
        },
    })
}

fn group_key<R: HubRow>(row: &R, n: usize, empty_is_unset: bool) -> Result<Vec<Option<String>>>
where
    usize: ColumnIndex<R>,
{
    (0..n)
        .map(|i| {
            let v = row.opt_text(i)?;
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
    n_group: usize,
    by_bucket: bool,
    with_sketch: bool,
) -> Result<ScanRow>
where
    usize: ColumnIndex<R>,
{
    let key = group_key(row, n_group, true)?;
    let mut i = n_group;
    let bucket_ms = if by_bucket {
        i += 1;
        Some(row.int(i - 1)?)
    } else {
        None
    };
    let mut agg = aggregate_at(row, i, false)?;
    if with_sketch {
        // The group's sketches, hex-encoded and comma-separated (NULL when it has none).
        let all = row.opt_text(i + 8 + USAGE_SUMS.len())?.unwrap_or_default();
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

/// The aggregate columns (events … latency_sum, then the sketch when asked) from column `i` on.
pub(crate) fn aggregate_at<R: HubRow>(row: &R, mut i: usize, with_sketch: bool) -> Result<Aggregate>
where
    usize: ColumnIndex<R>,
{
    let next_int = |i: &mut usize| -> Result<i64> {
        *i += 1;
        Ok(row.opt_int(*i - 1)?.unwrap_or(0))
    };
    let events = next_int(&mut i)?;
    let requests = next_int(&mut i)?;
    let errors = next_int(&mut i)?;
    let input_tokens = next_int(&mut i)?;
    let output_tokens = next_int(&mut i)?;
    let cost_usd = row.opt_float(i)?.unwrap_or(0.0);
    i += 1;
    let latency_count = next_int(&mut i)?;
    let latency_sum = row.opt_float(i)?.unwrap_or(0.0);
    i += 1;
    let mut details = [0; 5];
    for d in &mut details {
        *d = next_int(&mut i)?;
    }
    let estimated_cost_usd = row.opt_float(i)?.unwrap_or(0.0);
    let reported_cost_usd = row.opt_float(i + 1)?.unwrap_or(0.0);
    i += 2;
    let unpriced_events = next_int(&mut i)?;
    let unpriced_tokens = next_int(&mut i)?;
    let latency = if with_sketch {
        LatencySketch::decode(&row.bytes(i)?).map_err(|e| StorageError::Corrupt(e.to_string()))?
    } else {
        LatencySketch::new()
    };
    Ok(Aggregate {
        events,
        requests,
        errors,
        input_tokens,
        output_tokens,
        cost_usd,
        latency_count,
        latency_sum,
        details,
        estimated_cost_usd,
        reported_cost_usd,
        unpriced_events,
        unpriced_tokens,
        latency,
    })
}

/// A row of [`crate::sql::raw_scan`]: the group key, the time, and the fields aggregates read.
pub(crate) fn raw_row<R: HubRow>(
    row: &R,
    n_group: usize,
) -> Result<(Vec<Option<String>>, EventRecord)>
where
    usize: ColumnIndex<R>,
{
    let key = group_key(row, n_group, false)?;
    let i = n_group;
    let record = EventRecord {
        ts_ms: row.int(i)?,
        event_id: row.text(i + 1)?,
        event_type: row.text(i + 2)?,
        kind: row.text(i + 3)?,
        status: status(row.opt_text(i + 4)?),
        input_tokens: row.opt_int(i + 5)?,
        output_tokens: row.opt_int(i + 6)?,
        cost_usd: row.opt_float(i + 7)?,
        latency_ms: row.opt_float(i + 8)?,
        details: TokenDetails([
            row.opt_int(i + 9)?,
            row.opt_int(i + 10)?,
            row.opt_int(i + 11)?,
            row.opt_int(i + 12)?,
            row.opt_int(i + 13)?,
        ]),
        reported_cost_usd: row.opt_float(i + 14)?,
        estimated_cost_usd: row.opt_float(i + 15)?,
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
