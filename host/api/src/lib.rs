//! The HTTP API of the hub.
//!
//! `app(state)` builds the whole router without binding a socket, so tests drive it with
//! `tower::ServiceExt::oneshot`. Handlers parse and check input, call storage or the bus, and map
//! results; business rules live in the core, storage and pipeline crates.

mod account;
mod alerts;
mod analysis;
mod audit;
pub mod auth;
mod cookies;
mod costs;
pub mod credentials;
mod deliveries;
mod error;
mod events;
mod ingest;
mod invitations;
mod keys;
pub mod listener;
mod market;
mod members;
pub mod metrics;
pub mod oidc;
mod openapi;
mod ops;
mod plugins;
mod preview;
mod query;
pub mod session;
mod settings;
mod signin;
mod silences;
mod tenants;
mod throttle;
mod views;
mod web;
mod wire;

use std::sync::Arc;

use axum::Router;
use hub_bus::BusProducer;
use hub_core::ingest::IngestLimits;
use hub_pipeline::PipelineStats;
use hub_storage::Storage;
use utoipa_axum::router::OpenApiRouter;

pub use audit::record as record_audit;
pub use auth::{Actor, KeyCache, Principal, RateLimiter, Right};
pub use error::ApiError;
pub use members::leaves_no_owner;
pub use metrics::Metrics;
pub use openapi::openapi_json;

/// Limits and settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression.
    pub max_decompressed_bytes: usize,
    pub ingest: IngestLimits,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// Requests per second an API key may make unless it has its own limit (0: no limit).
    pub api_key_rate_limit_per_s: u32,
    /// Mark session cookies `Secure` (set when the hub is served over TLS, directly or behind a
    /// proxy).
    pub secure_cookies: bool,
    /// Single sign-on, when configured.
    pub oidc: Option<oidc::OidcSettings>,
    /// Serve the marketplace's catalog (listing, details, packages, icons) without credentials,
    /// so that other hubs can install from it.
    pub public_catalog: bool,
    /// The admin UI's built files (`web/dist`), served at `/` for every path outside the API.
    pub web_dir: Option<std::path::PathBuf>,
    /// The operator's settings tenants may read (`GET /v1/settings`): single sign-on (never the
    /// client secret) and retention.
    pub settings: serde_json::Value,
    /// The operator's retention policy: the most a tenant may keep (`/v1/settings/retention`).
    pub retention: hub_storage::RetentionPolicy,
    /// The longest range one re-pricing request may cover (`POST /v1/costs/reprice`).
    pub reprice_max_range_ms: i64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            max_decompressed_bytes: 100 * 1024 * 1024,
            ingest: IngestLimits::default(),
            metrics_token: None,
            api_key_rate_limit_per_s: DEFAULT_API_KEY_RATE_LIMIT,
            secure_cookies: false,
            oidc: None,
            public_catalog: false,
            web_dir: None,
            settings: serde_json::Value::Null,
            retention: hub_storage::RetentionPolicy::default(),
            reprice_max_range_ms: DEFAULT_REPRICE_MAX_RANGE_DAYS * hub_core::time::DAY_MS,
        }
    }
}

/// The longest range one re-pricing request may cover by default: a quarter, the span a changed
/// contract price is usually backdated over.
pub const DEFAULT_REPRICE_MAX_RANGE_DAYS: i64 = 92;

/// Requests per second per API key by default: far above what one client sends in batches of
/// events (a hub at 150,000 events/s in batches of 1,000 sees 150 requests per second).
pub const DEFAULT_API_KEY_RATE_LIMIT: u32 = 1000;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub bus: BusProducer,
    pub config: Arc<ApiConfig>,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<KeyCache>,
    pub limiter: Arc<RateLimiter>,
    /// Login attempts per client address.
    pub login_limiter: Arc<RateLimiter<String>>,
    /// Access-token signing and revoked sessions.
    pub sessions: Arc<session::Sessions>,
    /// The SSO client, when configured.
    pub oidc: Option<Arc<oidc::Oidc>>,
    pub pipeline: Arc<PipelineStats>,
    /// The marketplace service and its plugin host, when this hub runs plugins.
    pub catalog: Option<Arc<hub_catalog::Catalog>>,
    /// The detector and forecaster scheduler's counters, when this hub runs it.
    pub analysis: Option<Arc<hub_pipeline::schedule::SchedulerStats>>,
    /// The Kafka worker's counters, when this replica consumes the ingest topic.
    pub worker: Option<Arc<hub_bus::kafka::worker::WorkerStats>>,
}

impl AppState {
    pub fn new(
        storage: Arc<dyn Storage>,
        bus: BusProducer,
        config: ApiConfig,
        pipeline: Arc<PipelineStats>,
    ) -> Self {
        let oidc = config.oidc.clone().and_then(|s| match oidc::Oidc::new(s) {
            Ok(o) => Some(Arc::new(o)),
            Err(e) => {
                tracing::error!(error = %e, "single sign-on is misconfigured and stays off");
                None
            }
        });
        Self {
            storage,
            bus,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            keys: Arc::new(KeyCache::default()),
            limiter: Arc::new(RateLimiter::default()),
            login_limiter: Arc::new(RateLimiter::default()),
            sessions: Arc::new(session::Sessions::default()),
            oidc,
            pipeline,
            catalog: None,
            analysis: None,
            worker: None,
        }
    }

    /// The plugin host, when this hub runs plugins.
    pub fn plugins(&self) -> Option<&Arc<hub_plugins::PluginHost>> {
        self.catalog.as_ref().map(|c| c.host())
    }

    /// Runs plugins: the catalog for the marketplace routes, and its plugin host.
    pub fn with_plugins(mut self, catalog: Arc<hub_catalog::Catalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Shows the scheduler's counters on `/metrics`.
    pub fn with_analysis(mut self, stats: Arc<hub_pipeline::schedule::SchedulerStats>) -> Self {
        self.analysis = Some(stats);
        self
    }

    /// This replica consumes the Kafka bus: its worker's counters on `/metrics`.
    pub fn with_worker(mut self, stats: Arc<hub_bus::kafka::worker::WorkerStats>) -> Self {
        self.worker = Some(stats);
        self
    }
}

pub use wire::MAX_ADMIN_BODY_BYTES;
pub(crate) use wire::{ApiQuery, json_body};

/// Every route of the API with its OpenAPI entry, each declared once, by its module's `routes!`
/// (from the handler's `#[utoipa::path]`): the router serves them and [`openapi_json`] documents
/// them, so a route cannot be served undocumented or documented unserved.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(ingest::router())
        .merge(query::router())
        .merge(alerts::router())
        .merge(deliveries::router())
        .merge(preview::router())
        .merge(silences::router())
        .merge(analysis::router())
        .merge(events::router())
        .merge(plugins::router())
        .merge(market::router())
        .merge(keys::router())
        .merge(signin::router())
        .merge(account::router())
        .merge(members::router())
        .merge(invitations::router())
        .merge(tenants::router())
        .merge(oidc::router())
        .merge(views::router())
        .merge(audit::router())
        .merge(ops::router())
        .merge(settings::router())
        .merge(costs::router())
}

/// The whole API.
pub fn app(state: AppState) -> Router {
    let (routes, _) = routes().split_for_parts();
    routes
        .fallback(web::fallback)
        .layer(axum::middleware::from_fn(wire::response_headers))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
