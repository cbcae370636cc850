//! The one door to SQL.
//!
//! [`Storage`] is implemented for SQLite (the embedded default) and PostgreSQL (scale-out). Every
//! method that touches tenant data takes a [`TenantId`]; nothing above this crate writes SQL. The
//! conformance suite in `tests/` runs the same stories against both backends.
//!
//! Writes store raw events and update per-minute, per-hour and per-day rollups in one transaction,
//! so a query that reads rollups sees exactly the events that were acknowledged. Queries
//! ([`analytics`]) read the coarsest rollups that answer a range exactly.

pub mod access;
pub mod alerts;
pub mod analysis;
pub mod analytics;
pub mod audit;
mod call_costs;
mod decode;
pub mod deliveries;
pub mod invites;
pub mod market;
pub mod model;
pub mod plugins;
mod postgres;
mod postgres_ids;
pub mod reprice;
mod restate;
pub mod rollup;
pub mod settings;
mod shared;
pub mod silences;
mod sql;
mod sqlite;
mod sqlite_files;
mod sqlite_ids;
mod sqlite_raw;
pub mod tenants;
pub mod throttle;
pub mod views;

use std::sync::Arc;

use async_trait::async_trait;
use hub_core::TenantId;
use hub_core::time::Resolution;

pub use access::{
    AccessStorage, Membership, NewRefreshToken, NewUser, OidcLogin, RefreshToken, RefreshUse,
    SigningKey, User,
};
pub use alerts::{
    Acknowledgement, AlertCursor, AlertFilter, AlertRecord, AlertStorage, StoredRule,
};
pub use analysis::{
    Anomaly, AnomalyCursor, AnomalyFilter, AnomalyStorage, ForecastFilter, ForecastPoint,
    ForecastStorage, NewAnomaly, RunOutcome, RunRecord, RunStorage, SeriesDims, StoredForecast,
    series_key,
};
pub use audit::{AuditEntry, AuditFilter, AuditRecord, AuditStorage};
pub use deliveries::{
    AfterAttempt, Delivery, DeliveryAttempt, DeliveryFilter, DeliveryStorage, NewDelivery,
};
pub use invites::{Acceptance, Invitation, InvitationStorage, NewInvitation};
pub use market::{MarketStorage, NewVersion, PackageRecord, PublisherKey, VersionRecord};
pub use model::*;
pub use plugins::PluginStorage;
pub use postgres::PostgresStorage;
pub use reprice::{
    CostUpdate, JobProgress, JobStatus, NewRepriceJob, RepriceJob, RepriceStorage, Restated,
};
pub use settings::SettingsStorage;
pub use silences::{NewSilence, SilenceStorage, StoredSilence};
pub use sqlite::SqliteStorage;
pub use tenants::TenantStorage;
pub use throttle::{ThrottleState, ThrottleStorage};
pub use views::{SavedView, ViewSpec, ViewStorage};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From SQLite's C API, where storage calls it directly (the event insert).
    #[error("database error: SQLite code {code}: {message}")]
    Sqlite { code: i32, message: String },
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything the hub persists, for one database.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    async fn migrate(&self) -> Result<()>;
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;
    /// Flushes and closes connections (SQLite checkpoints its WAL).
    async fn close(&self);
    /// Housekeeping that keeps writes fast: PostgreSQL creates the coming days' partitions.
    async fn prepare_partitions(&self, now_ms: i64) -> Result<()>;

    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;

    /// Users, memberships, sessions and signing keys.
    fn access(&self) -> &dyn AccessStorage;
    /// The audit log.
    fn audit(&self) -> &dyn AuditStorage;
    /// Users' saved views.
    fn views(&self) -> &dyn ViewStorage;
    /// Publisher keys, packages and versions.
    fn market(&self) -> &dyn MarketStorage;
    /// What a tenant's admins set for their own tenant: retention, single sign-on rules.
    fn settings(&self) -> &dyn SettingsStorage;
    /// Invitations of people into tenants.
    fn invitations(&self) -> &dyn InvitationStorage;
    /// Failed sign-ins by email and by email and address.
    fn login_throttle(&self) -> &dyn ThrottleStorage;
    /// Re-pricing jobs and their progress.
    fn reprices(&self) -> &dyn RepriceStorage;
    /// Tenants and their API keys.
    fn tenants(&self) -> &dyn TenantStorage;
    /// Plugin components, tenants' installs and their health, plugins' kv.
    fn plugins(&self) -> &dyn PluginStorage;
    /// What detectors found.
    fn anomalies(&self) -> &dyn AnomalyStorage;
    /// The newest forecast of each series forecasters watch.
    fn forecasts(&self) -> &dyn ForecastStorage;
    /// Detectors' and forecasters' scheduled runs, which are also their leases.
    fn analysis_runs(&self) -> &dyn RunStorage;
    /// Alert rules and the alerts they raised.
    fn alerts(&self) -> &dyn AlertStorage;
    /// Alert notices on their way to integrations, and every attempt.
    fn deliveries(&self) -> &dyn DeliveryStorage;
    /// Silences of alert notices.
    fn silences(&self) -> &dyn SilenceStorage;

    /// Stores the batches in one transaction: raw events (skipping ones already stored) and the
    /// rollup deltas of the new ones. Returns one outcome per batch, in order.
    async fn write_batches(
        &self,
        batches: &[TenantBatch],
        received_at_ms: i64,
    ) -> Result<Vec<WriteOutcome>>;

    /// Gives stored events new cost estimates and restates what they count (their cost, their
    /// call's holder, the rollups) in one transaction, as a write would; idempotent. Updates of
    /// events no longer stored are skipped.
    async fn restate_costs(&self, tenant: TenantId, updates: &[CostUpdate]) -> Result<Restated>;

    async fn list_events(
        &self,
        tenant: TenantId,
        filter: &EventFilter,
        after: Option<&EventCursor>,
        limit: usize,
    ) -> Result<EventPage>;
    /// The newest event with this id.
    async fn get_event(&self, tenant: TenantId, event_id: &str) -> Result<Option<StoredEvent>>;
    async fn count_events(&self, tenant: TenantId) -> Result<i64>;

    /// Rollup rows at one resolution, `[scan.from_ms, scan.to_ms)` on bucket starts.
    async fn scan_rollups(
        &self,
        tenant: TenantId,
        res: Resolution,
        scan: &Scan<'_>,
    ) -> Result<Vec<ScanRow>>;
    /// Raw events aggregated per group (and per `bucket_step_ms` when `scan.by_bucket`).
    async fn scan_raw(
        &self,
        tenant: TenantId,
        scan: &Scan<'_>,
        bucket_step_ms: i64,
    ) -> Result<Vec<ScanRow>>;

    /// Deletes what is older than the policy allows, across all tenants; a tenant that keeps
    /// less (its [`TenantRetention`]) loses its data sooner.
    async fn enforce_retention(
        &self,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<RetentionReport>;
}

/// Connection settings common to both backends.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Connections in the pool (PostgreSQL), or reader connections (SQLite).
    pub max_connections: u32,
    /// SQLite: the page caches of all connections together, bytes (the writer's half, the readers'
    /// and the id index's a quarter each). Each connection's cache grows to its part as pages are
    /// read and is kept for the connection's life, so this bounds what the caches hold.
    pub cache_bytes: usize,
}

/// 64 MiB of SQLite page cache in all (it was 64 MiB per connection, 832 MiB for 13).
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// Opens a database by URL: `sqlite://path/to/hub.db` (created if missing) or `postgres://…`.
pub async fn open(url: &str, options: &StorageOptions) -> Result<Arc<dyn Storage>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStorage::connect(url, options).await?))
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        Ok(Arc::new(
            SqliteStorage::open(std::path::Path::new(path), options).await?,
        ))
    } else {
        Err(StorageError::UnsupportedUrl(url.to_string()))
    }
}

/// Drops a second copy of the same event (same id and timestamp) within one batch: the first wins.
pub(crate) fn dedupe_in_batch(
    events: &[hub_core::EventRecord],
) -> (Vec<&hub_core::EventRecord>, usize) {
    let mut seen = rollup::FastSet::with_capacity_and_hasher(events.len(), Default::default());
    let unique: Vec<_> = events
        .iter()
        .filter(|e| seen.insert((e.event_id.as_str(), e.ts_ms)))
        .collect();
    let dups = events.len() - unique.len();
    (unique, dups)
}

/// The stable 64-bit hash that both backends' id indexes key event ids by (FNV-1a): stored
/// indexes depend on it, so it must never change.
pub(crate) fn id_hash(id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(test)]
mod tests {
    use super::id_hash;

    #[test]
    fn the_id_hash_is_fnv1a() {
        // Published FNV-1a 64 test vectors: the stored indexes depend on these never changing.
        assert_eq!(id_hash("") as u64, 0xcbf2_9ce4_8422_2325);
        assert_eq!(id_hash("a") as u64, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(id_hash("foobar") as u64, 0x8594_4171_f739_67e8);
    }
}
