//! SQL text shared by both backends. Statements are assembled only from the static column names
//! below and from enum-derived names (never from request strings); every value is a bind
//! parameter. That is what makes the `AssertSqlSafe` in the backends true.

use hub_core::{Dimension, time::Resolution};

use crate::model::{Aggregate, EventCursor, EventField, EventFilter, Scan};
use crate::rollup::RollupKey;
use hub_core::TenantId;
use hub_core::event::REQUEST_KINDS;

/// A bind value; the backends turn these into their own argument types.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    I16(i16),
    I64(i64),
    F64(f64),
    Text(String),
    OptI64(Option<i64>),
    OptText(Option<String>),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholders {
    /// SQLite: `?`
    Question,
    /// PostgreSQL: `$1`, `$2`, …
    Dollar,
}

/// A statement under construction with its bind values.
#[derive(Debug)]
pub(crate) struct SqlBuf {
    pub sql: String,
    pub binds: Vec<Bind>,
    style: Placeholders,
}

/// A statement written with `$1…$n`, and the values bound to them.
pub(crate) fn with_binds(text: &str, binds: Vec<Bind>) -> SqlBuf {
    let mut buf = SqlBuf::new(Placeholders::Dollar);
    buf.push(text);
    buf.binds = binds;
    buf
}

impl SqlBuf {
    pub fn new(style: Placeholders) -> Self {
        Self {
            sql: String::with_capacity(256),
            binds: Vec::new(),
            style,
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }

    pub fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        match self.style {
            Placeholders::Question => self.sql.push('?'),
            Placeholders::Dollar => {
                self.sql.push('$');
                self.sql.push_str(&self.binds.len().to_string());
            }
        }
        self
    }
}

/// The event columns before `enriched_by`, which is written as a shape id and read as its JSON.
macro_rules! event_columns {
    () => {
        "tenant_id, event_id, ts, received_at, event_type, kind, source_module, severity, \
         environment, app, model, provider, operation, input_tokens, output_tokens, latency_ms, \
         ttft_ms, status, error_type, cost_usd, user_id, session_id, trace_id, correlation_id, \
         parent_event_id, tags, payload, cache_read_tokens, cache_write_tokens, reasoning_tokens, \
         audio_input_tokens, audio_output_tokens, reported_cost_usd, estimated_cost_usd, service_tier"
    };
}
pub(crate) use event_columns;

/// The event columns as read back: `enriched_by` resolved to its shape's JSON.
pub(crate) const EVENT_SELECT: &str = concat!(
    event_columns!(),
    ", (SELECT s.fields FROM enrichment_shapes s WHERE s.id = events.enriched_by) AS enriched_by"
);
pub(crate) const EVENT_COLUMN_COUNT: usize = 36;

pub(crate) const ROLLUP_COLUMNS: &str = "tenant_id, res, grain, bucket, source_module, app, environment, \
    model, provider, operation, status, events, requests, errors, input_tokens, output_tokens, \
    cost_usd, latency_count, latency_sum, cache_read_tokens, cache_write_tokens, reasoning_tokens, \
    audio_input_tokens, audio_output_tokens, estimated_cost_usd, reported_cost_usd, unpriced_events, \
    unpriced_tokens, latency_sketch";

/// What a rollup scan calls a group's bucket start (an expression when buckets are coarser than
/// the rollup's), and its hex-encoded sketches.
pub(crate) const BUCKET_START: &str = "bucket_start";
pub(crate) const SKETCHES: &str = "sketches";

/// The sums of a rollup row after `latency_sum`, in [`ROLLUP_COLUMNS`] order, each with its type:
/// what `decode::aggregate` reads and merges select.
pub(crate) const USAGE_SUMS: [(&str, bool); 9] = [
    ("cache_read_tokens", false),
    ("cache_write_tokens", false),
    ("reasoning_tokens", false),
    ("audio_input_tokens", false),
    ("audio_output_tokens", false),
    ("estimated_cost_usd", true),
    ("reported_cost_usd", true),
    ("unpriced_events", false),
    ("unpriced_tokens", false),
];

/// The aggregate columns of a rollup row as stored, from `events` to the sketch, for reads that
/// merge into stored rows.
pub(crate) const ROLLUP_AGGREGATE_COLUMNS: &str = "events, requests, errors, input_tokens, \
    output_tokens, cost_usd, latency_count, latency_sum, cache_read_tokens, cache_write_tokens, \
    reasoning_tokens, audio_input_tokens, audio_output_tokens, estimated_cost_usd, reported_cost_usd, \
    unpriced_events, unpriced_tokens, latency_sketch";
pub(crate) const ROLLUP_UPSERT_TAIL: &str = " ON CONFLICT (tenant_id, res, grain, bucket, source_module, app, \
    environment, model, provider, operation, status) DO UPDATE SET events = excluded.events, \
    requests = excluded.requests, errors = excluded.errors, input_tokens = excluded.input_tokens, \
    output_tokens = excluded.output_tokens, cost_usd = excluded.cost_usd, \
    latency_count = excluded.latency_count, latency_sum = excluded.latency_sum, \
    cache_read_tokens = excluded.cache_read_tokens, cache_write_tokens = excluded.cache_write_tokens, \
    reasoning_tokens = excluded.reasoning_tokens, audio_input_tokens = excluded.audio_input_tokens, \
    audio_output_tokens = excluded.audio_output_tokens, estimated_cost_usd = excluded.estimated_cost_usd, \
    reported_cost_usd = excluded.reported_cost_usd, unpriced_events = excluded.unpriced_events, \
    unpriced_tokens = excluded.unpriced_tokens, latency_sketch = excluded.latency_sketch";

/// Appends `AND dim IN (...)` for each filtered dimension (several values of one dimension are
/// alternatives). A filter names a value, so rows where the dimension is unset never match.
fn push_dim_filters(buf: &mut SqlBuf, filters: &[(Dimension, String)]) {
    for dim in Dimension::ALL {
        let values: Vec<&String> = filters
            .iter()
            .filter(|(d, _)| *d == dim)
            .map(|(_, v)| v)
            .collect();
        if values.is_empty() {
            continue;
        }
        buf.push(" AND ").push(dim.name()).push(" IN (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                buf.push(", ");
            }
            buf.bind(Bind::Text((*v).clone()));
        }
        buf.push(")");
    }
}

/// Which SQL dialect a statement is for, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub(crate) fn of<DB: sqlx::Database>() -> Self {
        if DB::NAME == "SQLite" {
            Self::Sqlite
        } else {
            Self::Postgres
        }
    }
}

/// The rows of one resolution for a scan, summed per group (and bucket) in the database. The
/// latency sketches of a group come back as one text of hex-encoded sketches separated by commas
/// (see [`crate::decode::rollup_row`]), so a group of thousands of rows crosses as one row: each
/// row crossing sqlx cost about 2.5 µs on SQLite (a channel message and a copy of every value),
/// which was most of a 24-hour summary grouped by three dimensions.
pub(crate) fn rollup_scan(
    style: Placeholders,
    dialect: Dialect,
    tenant: TenantId,
    res: Resolution,
    scan: &Scan<'_>,
) -> SqlBuf {
    let mut buf = SqlBuf::new(style);
    buf.push("SELECT ");
    for dim in scan.group_by {
        buf.push(dim.name()).push(", ");
    }
    if scan.by_bucket {
        if scan.bucket_step_ms > 1 {
            // A literal, not a bind: an integer this code chose.
            let step = scan.bucket_step_ms.to_string();
            buf.push("bucket - bucket % ").push(&step);
        } else {
            buf.push("bucket");
        }
        buf.push(" AS ").push(BUCKET_START).push(", ");
    }
    // Each sum under its column's name, which is what `decode::aggregate` reads.
    for (i, (column, real)) in [
        ("events", false),
        ("requests", false),
        ("errors", false),
        ("input_tokens", false),
        ("output_tokens", false),
        ("cost_usd", true),
        ("latency_count", false),
        ("latency_sum", true),
    ]
    .into_iter()
    .chain(USAGE_SUMS)
    .enumerate()
    {
        if i > 0 {
            buf.push(", ");
        }
        buf.push("CAST(SUM(").push(column).push(if real {
            ") AS DOUBLE PRECISION) AS "
        } else {
            ") AS BIGINT) AS "
        });
        buf.push(column);
    }
    if scan.with_sketch {
        buf.push(match dialect {
            Dialect::Sqlite => ", group_concat(hex(latency_sketch), ',') AS ",
            Dialect::Postgres => ", string_agg(encode(latency_sketch, 'hex'), ',') AS ",
        })
        .push(SKETCHES);
    }
    buf.push(" FROM rollups WHERE tenant_id = ")
        .bind(Bind::I64(tenant.get()));
    buf.push(" AND res = ").bind(Bind::I16(res.code()));
    let mut used: Vec<Dimension> = scan.group_by.to_vec();
    used.extend(scan.filters.iter().map(|(d, _)| *d));
    buf.push(" AND grain = ")
        .bind(Bind::I16(crate::rollup::grain_for(&used)));
    buf.push(" AND bucket >= ").bind(Bind::I64(scan.from_ms));
    buf.push(" AND bucket < ").bind(Bind::I64(scan.to_ms));
    push_dim_filters(&mut buf, scan.filters);
    if !scan.group_by.is_empty() || scan.by_bucket {
        // By position: the bucket may be an expression.
        let n = scan.group_by.len() + usize::from(scan.by_bucket);
        let cols: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        buf.push(" GROUP BY ").push(&cols.join(", "));
    } else {
        // Sums over no rows are one row of NULLs: none instead.
        buf.push(" HAVING COUNT(*) > 0");
    }
    buf
}

/// Raw events for the edges of a range that no rollup covers exactly.
pub(crate) fn raw_scan(style: Placeholders, tenant: TenantId, scan: &Scan<'_>) -> SqlBuf {
    let mut buf = SqlBuf::new(style);
    buf.push("SELECT ");
    for dim in scan.group_by {
        buf.push(dim.name()).push(", ");
    }
    if scan.tag.is_some() {
        buf.push("tags, ");
    }
    buf.push(
        "ts, event_id, event_type, kind, status, input_tokens, output_tokens, cost_usd, latency_ms, \
         cache_read_tokens, cache_write_tokens, reasoning_tokens, audio_input_tokens, \
         audio_output_tokens, reported_cost_usd, estimated_cost_usd FROM events WHERE tenant_id = ",
    )
    .bind(Bind::I64(tenant.get()));
    buf.push(" AND ts >= ").bind(Bind::I64(scan.from_ms));
    buf.push(" AND ts < ").bind(Bind::I64(scan.to_ms));
    push_dim_filters(&mut buf, scan.filters);
    buf
}

/// Newest-first listing with keyset pagination.
/// `sqlite`: name the envelope-kind index for a kind filter (SQLite's planner, without
/// statistics, prefers the time index and scans the whole window: 16 to 46 s a query under load;
/// PostgreSQL's, with them, picks it alone).
pub(crate) fn list_events(
    style: Placeholders,
    tenant: TenantId,
    filter: &EventFilter,
    after: Option<&EventCursor>,
    limit: usize,
    sqlite: bool,
) -> SqlBuf {
    let mut buf = SqlBuf::new(style);
    let envelope_kind = filter
        .fields
        .iter()
        .any(|(f, v)| *f == EventField::Kind && !REQUEST_KINDS.contains(&v.as_str()));
    buf.push("SELECT ").push(EVENT_SELECT).push(" FROM events");
    if sqlite && envelope_kind {
        buf.push(" INDEXED BY events_envelope_kind");
    }
    buf.push(" WHERE tenant_id = ");
    buf.bind(Bind::I64(tenant.get()));
    if let Some(from) = filter.from_ms {
        buf.push(" AND ts >= ").bind(Bind::I64(from));
    }
    if let Some(to) = filter.to_ms {
        buf.push(" AND ts < ").bind(Bind::I64(to));
    }
    push_dim_filters(&mut buf, &filter.dims);
    for (field, value) in &filter.fields {
        buf.push(" AND ")
            .push(field.name())
            .push(" = ")
            .bind(Bind::Text(value.clone()));
        // An envelope kind's events come from the partial index `events_envelope_kind`, which
        // a query may use only when it states the index's own condition.
        if *field == EventField::Kind && !REQUEST_KINDS.contains(&value.as_str()) {
            buf.push(" AND kind NOT IN ('llm_call', 'telemetry.latency')");
        }
    }
    if let Some(prefix) = filter.id_prefix.as_deref().filter(|p| !p.is_empty()) {
        // substr rather than LIKE: no wildcards to escape, and case-sensitive on both backends
        // (SQLite's LIKE folds ASCII case, PostgreSQL's does not).
        let chars = prefix.chars().count().to_string();
        for (i, col) in crate::model::ID_COLUMNS.iter().enumerate() {
            buf.push(if i == 0 { " AND (" } else { " OR " })
                .push("substr(")
                .push(col)
                .push(", 1, ")
                .push(&chars)
                .push(") = ")
                .bind(Bind::Text(prefix.to_string()));
        }
        buf.push(")");
    }
    if let Some(c) = after {
        buf.push(" AND (ts < ").bind(Bind::I64(c.ts_ms));
        buf.push(" OR (ts = ").bind(Bind::I64(c.ts_ms));
        buf.push(" AND event_id < ")
            .bind(Bind::Text(c.event_id.clone()));
        buf.push("))");
    }
    buf.push(" ORDER BY ts DESC, event_id DESC LIMIT ")
        .bind(Bind::I64(limit as i64));
    buf
}

/// The `enriched_by` of a batch's events in stored form: each event's shape id and the batch's
/// distinct shapes.
#[derive(Debug, Default)]
pub(crate) struct BatchShapes {
    pub ids: Vec<Option<i64>>,
    pub distinct: Vec<(i64, String)>,
}

impl BatchShapes {
    /// Events of one batch mostly come out of the same enrichers alike: an event changed like
    /// the one before it (usually the very same shared entries) takes its id at the cost of a
    /// pointer comparison; otherwise a map of the batch's shapes answers, and each distinct shape
    /// is serialized and hashed once.
    pub(crate) fn of(events: &[&hub_core::EventRecord]) -> Self {
        type Shape<'e> = &'e [std::sync::Arc<hub_core::EnrichedBy>];
        let mut out = BatchShapes {
            ids: Vec::with_capacity(events.len()),
            distinct: Vec::new(),
        };
        let mut seen: crate::rollup::FastMap<Shape<'_>, i64> = Default::default();
        let mut previous: Option<(Shape<'_>, i64)> = None;
        for e in events {
            let by = e.enriched_by.as_slice();
            let id = match previous {
                _ if by.is_empty() => None,
                Some((p, id)) if p == by => Some(id),
                _ => {
                    let id = *seen.entry(by).or_insert_with(|| {
                        let (id, json) = hub_core::enrichment_shape(by);
                        out.distinct.push((id, json));
                        id
                    });
                    previous = Some((by, id));
                    Some(id)
                }
            };
            out.ids.push(id);
        }
        out
    }

    /// The distinct shapes of several batches, in id order (their `ids` are not carried over).
    pub(crate) fn union(all: &[BatchShapes]) -> BatchShapes {
        let mut distinct: Vec<(i64, String)> = all
            .iter()
            .flat_map(|s| s.distinct.iter().cloned())
            .collect();
        distinct.sort_unstable_by_key(|(id, _)| *id);
        distinct.dedup_by_key(|(id, _)| *id);
        BatchShapes {
            ids: Vec::new(),
            distinct,
        }
    }

    /// Stores the distinct shapes (a shape already known is left as it is), or `None` when the
    /// batch has none.
    pub(crate) fn insert(&self, style: Placeholders) -> Option<SqlBuf> {
        if self.distinct.is_empty() {
            return None;
        }
        let mut buf = SqlBuf::new(style);
        buf.push("INSERT INTO enrichment_shapes (id, fields) VALUES ");
        for (i, (id, json)) in self.distinct.iter().enumerate() {
            buf.push(if i == 0 { "(" } else { ", (" });
            buf.bind(Bind::I64(*id));
            buf.push(", ");
            buf.bind(Bind::Text(json.clone()));
            buf.push(")");
        }
        buf.push(" ON CONFLICT DO NOTHING");
        Some(buf)
    }
}

/// A boolean as stored (0 or 1).
pub(crate) fn flag(b: bool) -> Bind {
    Bind::I64(i64::from(b))
}

/// Turns a finished statement into a sqlx query for either backend.
pub(crate) fn into_query<DB>(
    buf: SqlBuf,
) -> sqlx::query::Query<'static, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    for<'t> i16: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> f64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<i64>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Vec<u8>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut q = sqlx::query(sqlx::AssertSqlSafe(buf.sql));
    for b in buf.binds {
        q = match b {
            Bind::I16(v) => q.bind(v),
            Bind::I64(v) => q.bind(v),
            Bind::F64(v) => q.bind(v),
            Bind::Text(v) => q.bind(v),
            Bind::OptI64(v) => q.bind(v),
            Bind::OptText(v) => q.bind(v),
            Bind::Bytes(v) => q.bind(v),
        };
    }
    q
}

/// Rows per upsert statement: 29 binds each keeps a statement well under SQLite's 32,766.
pub(crate) const UPSERT_CHUNK: usize = 500;

/// `INSERT ... ON CONFLICT DO UPDATE` statements that store the given (already merged) rows.
pub(crate) fn upsert_statements(
    style: Placeholders,
    tenant: TenantId,
    rows: &[(RollupKey, Aggregate)],
) -> Vec<SqlBuf> {
    rows.chunks(UPSERT_CHUNK)
        .map(|chunk| {
            let mut buf = SqlBuf::new(style);
            buf.push("INSERT INTO rollups (")
                .push(ROLLUP_COLUMNS)
                .push(") VALUES ");
            for (i, (key, agg)) in chunk.iter().enumerate() {
                buf.push(if i == 0 { "(" } else { ", (" });
                buf.bind(Bind::I64(tenant.get())).push(", ");
                buf.bind(Bind::I16(key.res.code())).push(", ");
                buf.bind(Bind::I16(key.grain)).push(", ");
                buf.bind(Bind::I64(key.bucket));
                for v in &key.dims {
                    buf.push(", ").bind(Bind::Text(v.clone()));
                }
                for b in aggregate_binds(agg) {
                    buf.push(", ").bind(b);
                }
                buf.push(")");
            }
            buf.push(ROLLUP_UPSERT_TAIL);
            buf
        })
        .collect()
}

fn aggregate_binds(agg: &Aggregate) -> [Bind; 18] {
    let d = agg.details;
    [
        Bind::I64(agg.events),
        Bind::I64(agg.requests),
        Bind::I64(agg.errors),
        Bind::I64(agg.input_tokens),
        Bind::I64(agg.output_tokens),
        Bind::F64(agg.cost_usd),
        Bind::I64(agg.latency_count),
        Bind::F64(agg.latency_sum),
        Bind::I64(d[0]),
        Bind::I64(d[1]),
        Bind::I64(d[2]),
        Bind::I64(d[3]),
        Bind::I64(d[4]),
        Bind::F64(agg.estimated_cost_usd),
        Bind::F64(agg.reported_cost_usd),
        Bind::I64(agg.unpriced_events),
        Bind::I64(agg.unpriced_tokens),
        Bind::Bytes(agg.latency.encode()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::{EnrichedBy, EventRecord};

    fn event(by: &[(&str, &[&str])]) -> EventRecord {
        let now = hub_core::time::now_ms();
        let ts = hub_core::time::to_rfc3339(now);
        let body = format!(r#"{{"event_id":"e","timestamp":"{ts}","model":"m"}}"#);
        let mut e = hub_core::ingest::parse_body(
            body.as_bytes(),
            hub_core::ingest::BodyFormat::Json,
            &Default::default(),
            now,
        )
        .unwrap()
        .events
        .remove(0);
        e.enriched_by = by
            .iter()
            .map(|(p, f)| {
                std::sync::Arc::new(EnrichedBy {
                    plugin: p.to_string(),
                    fields: f.iter().map(|s| s.to_string()).collect(),
                })
            })
            .collect();
        e
    }

    #[test]
    fn a_batch_keeps_each_distinct_shape_once() {
        let cost = event(&[("cost", &["cost_usd"])]);
        let both = event(&[("cost", &["cost_usd"]), ("registry", &["tags.family"])]);
        let none = event(&[]);
        let batch = [&cost, &cost, &none, &both, &cost, &both];
        let s = BatchShapes::of(&batch);
        let (c, b) = (s.ids[0].unwrap(), s.ids[3].unwrap());
        assert_ne!(c, b);
        assert_eq!(s.ids, [Some(c), Some(c), None, Some(b), Some(c), Some(b)]);
        assert_eq!(s.distinct.len(), 2, "{:?}", s.distinct);
        assert_eq!(
            s.distinct[0].1,
            r#"[{"plugin":"cost","fields":["cost_usd"]}]"#
        );
        assert_eq!(
            hub_core::parse_enriched_by(Some(&s.distinct[1].1)),
            both.enriched_by,
            "the stored form reads back"
        );
        // Another batch (or replica) names the same shape alike.
        assert_eq!(BatchShapes::of(&[&both]).ids, [Some(b)]);

        let union = BatchShapes::union(&[s, BatchShapes::of(&[&both, &none])]);
        let ids: Vec<i64> = union.distinct.iter().map(|d| d.0).collect();
        assert_eq!(
            ids,
            {
                let mut v = vec![c, b];
                v.sort();
                v
            },
            "each once, in id order"
        );
        let sql = union.insert(Placeholders::Dollar).unwrap().sql;
        assert_eq!(
            sql,
            "INSERT INTO enrichment_shapes (id, fields) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
        assert!(
            BatchShapes::of(&[&none])
                .insert(Placeholders::Question)
                .is_none()
        );
    }
}
