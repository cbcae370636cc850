//! The stored event model: the columns analytics group and filter by, plus the original JSON.

use std::sync::Arc;

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

/// Tokens a provider counts apart from plain input and output, because it bills them at their own
/// price or reports them separately. In the hub's own convention each is **included** in
/// `input_tokens` (the input kinds) or `output_tokens` (reasoning and audio output), whatever the
/// provider's own convention was: ingest adds Anthropic's separate cache counts to the input and
/// Gemini's separate thinking tokens to the output, so totals compare across providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenDetail {
    /// Input served from the provider's prompt cache (billed at 10–50% of input).
    CacheRead,
    /// Input written to the prompt cache (Anthropic bills it above the input price).
    CacheWrite,
    /// Hidden reasoning ("thinking") tokens, billed as output.
    Reasoning,
    AudioInput,
    AudioOutput,
}

impl TokenDetail {
    pub const ALL: [TokenDetail; 5] = [
        Self::CacheRead,
        Self::CacheWrite,
        Self::Reasoning,
        Self::AudioInput,
        Self::AudioOutput,
    ];

    /// The field name in the API and, identically, the SQL column name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::CacheRead => "cache_read_tokens",
            Self::CacheWrite => "cache_write_tokens",
            Self::Reasoning => "reasoning_tokens",
            Self::AudioInput => "audio_input_tokens",
            Self::AudioOutput => "audio_output_tokens",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether this part of a call belongs to its input (else to its output).
    pub const fn is_input(self) -> bool {
        matches!(self, Self::CacheRead | Self::CacheWrite | Self::AudioInput)
    }
}

/// An event's [`TokenDetail`] counts; `None` for those it did not report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenDetails(pub [Option<i64>; 5]);

impl TokenDetails {
    pub fn get(&self, d: TokenDetail) -> Option<i64> {
        self.0[d.index()]
    }

    pub fn set(&mut self, d: TokenDetail, v: Option<i64>) {
        self.0[d.index()] = v;
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
    /// The cost this event counts toward the tenant's spend: the sender's (`reported_cost_usd`)
    /// when it gave one, else an enricher's estimate; `Some(0.0)` when another event of the same
    /// call holds the call's cost (see `hub_storage`'s call costs); `None` when nothing priced it.
    pub cost_usd: Option<f64>,
    /// The cost as the sender (or CostOps) reported it.
    pub reported_cost_usd: Option<f64>,
    /// The cost as an enricher (the cost plugin) estimated it from the usage and its prices.
    pub estimated_cost_usd: Option<f64>,
    /// Cache, reasoning and audio tokens, each included in the input or output totals above.
    pub details: TokenDetails,
    /// How the provider served the call, as the sender says: `batch` (the batch API, priced at
    /// its batch prices), `flex`, `priority`, `default`, …
    pub service_tier: Option<String>,
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

    /// Whether this event reports token usage that ought to have a price: it has tokens and is not
    /// itself a cost report (whose tokens repeat those of the call it prices).
    pub fn is_priceable(&self) -> bool {
        !self.kind.starts_with("cost.")
            && self.input_tokens.unwrap_or(0) + self.output_tokens.unwrap_or(0) > 0
    }

    /// Whether this event should have a cost and has none: no price was found for its model (or it
    /// names none). Counted in `unpriced_events`, never as $0.
    pub fn is_unpriced(&self) -> bool {
        self.cost_usd.is_none() && self.is_priceable()
    }

    /// The tokens of an unpriced event (0 for any other), for `unpriced_tokens`.
    pub fn unpriced_tokens(&self) -> i64 {
        if self.is_unpriced() {
            self.input_tokens.unwrap_or(0) + self.output_tokens.unwrap_or(0)
        } else {
            0
        }
    }

    /// The cost the sender (or CostOps) reported for this event. Rows stored before the hub kept
    /// reported and estimated cost apart (migration 0015) carry it only in `cost_usd`: there a
    /// non-zero cost that no plugin filled in is the sender's. (A stored $0 with neither beside
    /// it is a call whose cost another event holds, not a report.)
    pub fn sender_cost(&self) -> Option<f64> {
        if self.reported_cost_usd.is_some() || self.estimated_cost_usd.is_some() {
            return self.reported_cost_usd;
        }
        let filled_by_plugin = self
            .enriched_by
            .iter()
            .any(|by| by.fields.iter().any(|f| f == "cost_usd"));
        self.cost_usd.filter(|c| *c != 0.0 && !filled_by_plugin)
    }

    /// Whether this event takes part in the per-call reconciliation of cost: an envelope event
    /// (one LLM call may be reported as telemetry, usage and cost events sharing a
    /// `correlation_id`) that carries a cost or ought to.
    pub fn shares_call_cost(&self) -> bool {
        self.event_type != "llm_call"
            && self.correlation_id.is_some()
            && (self.cost_usd.is_some() || self.is_priceable())
    }

    /// Whether this event counts as a failed request.
    pub fn is_error(&self) -> bool {
        self.is_request() && self.status == Some(Status::Error)
    }
}
