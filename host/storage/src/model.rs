//! The values that cross the storage boundary.

use hub_core::{ApiKeyScope, Dimension, EventRecord, LatencySketch, Metric, TenantId};

/// A tenant: one team or company whose data is kept apart from every other's.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: TenantId,
    /// Unique, URL-safe name (`acme`, `demo`).
    pub name: String,
    pub created_at_ms: i64,
}

/// An API key as stored: never the secret itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: i64,
    pub tenant: TenantId,
    pub name: String,
    /// The visible, unique part of the key (`hub_ab12cd34`), shown in listings and logs.
    pub prefix: String,
    /// Hex SHA-256 of the whole key.
    pub secret_hash: String,
    pub scopes: Vec<ApiKeyScope>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// When the key stops working: now or, after a rotation with a grace period, later.
    pub revoked_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    /// Requests per second this key may make (`None`: the server's default).
    pub rate_limit_per_s: Option<u32>,
    /// The key this one replaced by a rotation.
    pub rotated_from: Option<i64>,
}

impl ApiKeyRecord {
    /// `active`, `rotating` (revocation set for later), `expired` or `revoked`, at `now_ms`.
    pub fn state(&self, now_ms: i64) -> &'static str {
        match (self.revoked_at_ms, self.expires_at_ms) {
            (Some(r), _) if r <= now_ms => "revoked",
            (_, Some(e)) if e <= now_ms => "expired",
            (Some(_), _) => "rotating",
            _ => "active",
        }
    }

    /// Whether the key is accepted at `now_ms`.
    pub fn works_at(&self, now_ms: i64) -> bool {
        matches!(self.state(now_ms), "active" | "rotating")
    }
}

/// What `create_api_key` needs; the caller generated the secret and hashed it.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub prefix: String,
    pub secret_hash: String,
    pub scopes: Vec<ApiKeyScope>,
    pub expires_at_ms: Option<i64>,
    pub rate_limit_per_s: Option<u32>,
    pub rotated_from: Option<i64>,
}

/// One tenant's events, written (and acknowledged) together.
#[derive(Debug, Clone)]
pub struct TenantBatch {
    pub tenant: TenantId,
    pub events: Vec<EventRecord>,
}

/// What happened to one batch: how many events were new, and how many were already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOutcome {
    pub inserted: usize,
    pub duplicates: usize,
}

/// An event as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub record: EventRecord,
    pub received_at_ms: i64,
}

/// Filters of the event search, all optional and combined with AND.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Equality on rollup dimensions.
    pub dims: Vec<(Dimension, String)>,
    /// Equality on other indexed-by-convention columns: event_type, kind, severity,
    /// correlation_id, trace_id, session_id, user_id.
    pub fields: Vec<(EventField, String)>,
    /// Any of the event's ids (event, trace, session, correlation, parent, user) starts with this
    /// (case-sensitive).
    pub id_prefix: Option<String>,
}

/// The id columns [`EventFilter::id_prefix`] searches.
pub const ID_COLUMNS: [&str; 6] = [
    "event_id",
    "trace_id",
    "session_id",
    "correlation_id",
    "parent_event_id",
    "user_id",
];

/// Event columns that the search can filter on besides the dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventField {
    EventType,
    Kind,
    Severity,
    CorrelationId,
    TraceId,
    SessionId,
    UserId,
}

impl EventField {
    pub const ALL: [EventField; 7] = [
        Self::EventType,
        Self::Kind,
        Self::Severity,
        Self::CorrelationId,
        Self::TraceId,
        Self::SessionId,
        Self::UserId,
    ];

    /// API parameter name, and identically the SQL column.
    pub const fn name(self) -> &'static str {
        match self {
            Self::EventType => "event_type",
            Self::Kind => "kind",
            Self::Severity => "severity",
            Self::CorrelationId => "correlation_id",
            Self::TraceId => "trace_id",
            Self::SessionId => "session_id",
            Self::UserId => "user_id",
        }
    }
}

/// Keyset position in the newest-first event listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCursor {
    pub ts_ms: i64,
    pub event_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Set when more events match.
    pub next: Option<EventCursor>,
}

/// Sums and the latency sketch over a set of events or rollup rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    pub events: i64,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub latency_count: i64,
    pub latency_sum: f64,
    /// The [`hub_core::TokenDetail`] sums, by index.
    pub details: [i64; 5],
    pub estimated_cost_usd: f64,
    pub reported_cost_usd: f64,
    /// Events that should have a cost and have none, and their tokens.
    pub unpriced_events: i64,
    pub unpriced_tokens: i64,
    pub latency: LatencySketch,
}

impl Aggregate {
    pub fn add_event(&mut self, e: &EventRecord) {
        self.events += 1;
        self.requests += i64::from(e.is_request());
        self.errors += i64::from(e.is_error());
        self.input_tokens += e.input_tokens.unwrap_or(0);
        self.output_tokens += e.output_tokens.unwrap_or(0);
        self.cost_usd += e.cost_usd.unwrap_or(0.0);
        for (sum, n) in self.details.iter_mut().zip(e.details.0) {
            *sum += n.unwrap_or(0);
        }
        self.estimated_cost_usd += e.estimated_cost_usd.unwrap_or(0.0);
        self.reported_cost_usd += e.reported_cost_usd.unwrap_or(0.0);
        if e.is_unpriced() {
            self.unpriced_events += 1;
            self.unpriced_tokens += e.unpriced_tokens();
        }
        if let Some(l) = e.latency_ms {
            self.latency_count += 1;
            self.latency_sum += l;
            self.latency.add(l);
        }
    }

    pub fn merge(&mut self, other: &Aggregate) {
        self.merge_sums(other);
        self.latency.merge(&other.latency);
    }

    /// Adds everything but the sketch (for rows that were read without it).
    pub fn merge_sums(&mut self, other: &Aggregate) {
        self.events += other.events;
        self.requests += other.requests;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_usd += other.cost_usd;
        self.latency_count += other.latency_count;
        self.latency_sum += other.latency_sum;
        for (sum, n) in self.details.iter_mut().zip(other.details) {
            *sum += n;
        }
        self.estimated_cost_usd += other.estimated_cost_usd;
        self.reported_cost_usd += other.reported_cost_usd;
        self.unpriced_events += other.unpriced_events;
        self.unpriced_tokens += other.unpriced_tokens;
    }

    pub fn latency_avg(&self) -> Option<f64> {
        (self.latency_count > 0).then(|| self.latency_sum / self.latency_count as f64)
    }

    /// The value of one metric; `None` where it is undefined (latency of a group without any).
    pub fn metric(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::Events => Some(self.events as f64),
            Metric::Requests => Some(self.requests as f64),
            Metric::Errors => Some(self.errors as f64),
            Metric::InputTokens => Some(self.input_tokens as f64),
            Metric::OutputTokens => Some(self.output_tokens as f64),
            Metric::Tokens(d) => Some(self.details[d.index()] as f64),
            Metric::CostUsd => Some(self.cost_usd),
            Metric::EstimatedCostUsd => Some(self.estimated_cost_usd),
            Metric::ReportedCostUsd => Some(self.reported_cost_usd),
            Metric::UnpricedEvents => Some(self.unpriced_events as f64),
            Metric::UnpricedTokens => Some(self.unpriced_tokens as f64),
            Metric::LatencyAvg => self.latency_avg(),
            Metric::LatencyP50 | Metric::LatencyP95 | Metric::LatencyP99 => {
                self.latency.quantile(metric.quantile().unwrap_or(0.5))
            }
        }
    }
}

/// A group's key: the value of each grouped dimension, in the order asked (`None`: not set).
pub type GroupKey = Vec<Option<String>>;

/// What a scan of rollups or raw events is asked for.
#[derive(Debug, Clone)]
pub struct Scan<'a> {
    pub from_ms: i64,
    pub to_ms: i64,
    pub filters: &'a [(Dimension, String)],
    pub group_by: &'a [Dimension],
    /// Split the result by time bucket (the rollup bucket, or for raw scans `ts` floored to this).
    pub by_bucket: bool,
    /// With `by_bucket`, rollup rows are summed into buckets this wide (a whole multiple of the
    /// resolution, such as 5 minutes from minute rollups); 0 keeps the rollup's own buckets.
    pub bucket_step_ms: i64,
    /// Whether the latency sketches are needed (they cost more to read).
    pub with_sketch: bool,
    /// A tag whose value ends each group's key (`None` where the event has no such tag). Raw
    /// scans only: the rollups keep no tags.
    pub tag: Option<&'a str>,
}

/// One row of a scan: a group, optionally a time bucket, and its aggregate.
#[derive(Debug, Clone)]
pub struct ScanRow {
    pub key: GroupKey,
    pub bucket_ms: Option<i64>,
    pub agg: Aggregate,
}

/// How long each resolution is kept. `None` keeps forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub raw_ms: Option<i64>,
    pub minute_ms: Option<i64>,
    pub hour_ms: Option<i64>,
    pub day_ms: Option<i64>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        use hub_core::time::DAY_MS;
        Self {
            raw_ms: Some(30 * DAY_MS),
            minute_ms: Some(14 * DAY_MS),
            hour_ms: Some(400 * DAY_MS),
            day_ms: None,
        }
    }
}

/// A tenant's own retention: for each resolution, how long it wants to keep data where that is
/// shorter than the operator's policy. `None`: as the operator's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantRetention {
    pub raw_ms: Option<i64>,
    pub minute_ms: Option<i64>,
    pub hour_ms: Option<i64>,
    pub day_ms: Option<i64>,
}

impl RetentionPolicy {
    /// What holds for a tenant: for each resolution the shorter of this policy and the tenant's.
    pub fn for_tenant(&self, t: &TenantRetention) -> RetentionPolicy {
        let min = |op: Option<i64>, own: Option<i64>| match (op, own) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        RetentionPolicy {
            raw_ms: min(self.raw_ms, t.raw_ms),
            minute_ms: min(self.minute_ms, t.minute_ms),
            hour_ms: min(self.hour_ms, t.hour_ms),
            day_ms: min(self.day_ms, t.day_ms),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub events_deleted: u64,
    pub rollups_deleted: u64,
    pub partitions_dropped: u64,
    pub anomalies_deleted: u64,
    /// Resolved alerts older than the raw events' retention.
    pub alerts_deleted: u64,
}

/// A plugin component as stored: the bytes and the manifest, keyed by the component's SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginComponent {
    pub digest: String,
    pub name: String,
    pub version: String,
    /// `enricher`, `detector`, `forecaster` or `integration`.
    pub kind: String,
    /// `plugin.toml` as written.
    pub manifest: String,
    pub component: Vec<u8>,
    pub created_at_ms: i64,
}

/// One tenant's install of one plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInstall {
    pub tenant: TenantId,
    pub name: String,
    pub digest: String,
    /// From the component (read-only here).
    pub version: String,
    pub kind: String,
    pub enabled: bool,
    /// Enrichers run in ascending position.
    pub position: i64,
    /// The tenant's configuration, JSON.
    pub config_json: String,
    /// What the tenant granted, JSON (`{"kv": true, "http": ["host"]}`).
    pub grants_json: String,
    pub consecutive_failures: i64,
    /// Why the hub disabled it (after repeated failures), until the tenant enables it again.
    pub disabled_reason: Option<String>,
    pub installed_at_ms: i64,
    pub updated_at_ms: i64,
}
