//! The stored event model: the columns analytics group and filter by, plus the original JSON.

use std::sync::Arc;

use crate::dims::Dimension;

/// Outcome of an LLM call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Ok,
    Error,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 3] = [Self::Ok, Self::Error, Self::Cancelled];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
        }
    }

    /// Accepts the names in [`Status::ALL`] and the common synonyms `success` and `failed`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" | "success" => Some(Self::Ok),
            "error" | "failed" | "failure" => Some(Self::Error),
            "cancelled" | "canceled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// Severity of an event, as in the LLM DevOps envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Self::Debug,
        Self::Info,
        Self::Warning,
        Self::Error,
        Self::Critical,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "warn" => Some(Self::Warning),
            _ => Self::ALL.into_iter().find(|v| v.as_str() == s),
        }
    }
}

/// `kind` values whose events each stand for one LLM request in the `requests` count.
pub const REQUEST_KINDS: [&str; 2] = ["llm_call", "telemetry.latency"];

/// One accepted event, in the shape storage keeps it.
///
/// Fields that the event did not carry are `None`; nothing is invented except `event_id` (derived
/// from the event's bytes when absent, so a resent batch is still recognised as a duplicate).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub event_id: String,
    pub ts_ms: i64,
    /// `llm_call` for the flat form; the envelope's `event_type` otherwise.
    pub event_type: String,
    /// What the event says, finer than `event_type`: `llm_call`, `telemetry.latency`,
    /// `cost.token_cost`, `security.threat`, … (`<payload_type>.<family>_type`).
    pub kind: String,
    pub source_module: Option<String>,
    pub severity: Option<Severity>,
    pub environment: Option<String>,
    pub app: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub operation: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub status: Option<Status>,
    pub error_type: Option<String>,
    pub cost_usd: Option<f64>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub parent_event_id: Option<String>,
    /// `tags` as a JSON object of strings (`{}` when none).
    pub tags_json: String,
    /// The event exactly as the client sent it.
    pub payload_json: String,
    /// What each enricher filled in, in the order they ran; empty when none changed the event.
    /// Shared: the events one call patched alike point at one entry.
    pub enriched_by: Vec<Arc<EnrichedBy>>,
}

/// The fields one plugin filled in on one event: `cost_usd`, `provider`, `operation`, `app`,
/// `environment`, or `tags.<name>` for a tag it added.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EnrichedBy {
    pub plugin: String,
    pub fields: Vec<String>,
}

/// A non-empty `enriched_by` as storage keeps it: the JSON array once per distinct shape (most
/// events of a tenant share a handful), named by the first 8 bytes of its SHA-256, which each event
/// row carries instead. The same on every replica, so shapes need no coordination.
pub fn enrichment_shape(e: &[Arc<EnrichedBy>]) -> (i64, String) {
    use sha2::Digest;
    let plain: Vec<&EnrichedBy> = e.iter().map(|x| &**x).collect();
    let json = serde_json::to_string(&plain).expect("strings and lists serialize");
    let digest = sha2::Sha256::digest(json.as_bytes());
    let id = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (id, json)
}

/// The stored column back into its list; a value this version cannot read is treated as none
/// rather than failing the whole query.
pub fn parse_enriched_by(json: Option<&str>) -> Vec<Arc<EnrichedBy>> {
    json.and_then(|j| serde_json::from_str::<Vec<EnrichedBy>>(j).ok())
        .unwrap_or_default()
        .into_iter()
        .map(Arc::new)
        .collect()
}

impl EventRecord {
    /// Whether this event counts as one request in the rollups.
    pub fn is_request(&self) -> bool {
        REQUEST_KINDS.contains(&self.kind.as_str())
    }

    /// Whether this event counts as a failed request.
    pub fn is_error(&self) -> bool {
        self.is_request() && self.status == Some(Status::Error)
    }

    /// The value of a rollup dimension, `None` when the event does not carry it.
    pub fn dimension(&self, dim: Dimension) -> Option<&str> {
        match dim {
            Dimension::SourceModule => self.source_module.as_deref(),
            Dimension::App => self.app.as_deref(),
            Dimension::Environment => self.environment.as_deref(),
            Dimension::Model => self.model.as_deref(),
            Dimension::Provider => self.provider.as_deref(),
            Dimension::Operation => self.operation.as_deref(),
            Dimension::Status => self.status.map(Status::as_str),
        }
    }
}
