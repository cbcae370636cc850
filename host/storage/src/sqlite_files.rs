//! How the hub's SQLite files (`hub.db`, `hub-ids.db`) are opened, and how their write-ahead logs
//! are copied back: in the background while the hub runs, whole at shutdown.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

use crate::Result;

/// Copies the WAL back into the database file twice a second on a connection of its own. A
/// passive checkpoint never blocks the writer, so the copy and its fsync use the other core
/// instead of stalling commits (inline auto-checkpoints cost the writer about a fifth of its time).
pub(crate) async fn checkpointer(pool: SqlitePool) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::debug!(error = %e, "background checkpoint failed");
        }
    }
}

/// How both SQLite files (`hub.db` and `hub-ids.db`) are opened, each connection with a page
/// cache of at most `cache_bytes`.
pub(crate) fn connect_options(path: &Path, cache_bytes: usize) -> Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode NORMAL loses nothing when the process dies (kill -9): committed pages
        // are in the WAL file. Only an OS crash or power loss could lose the last commits.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        // Negative: KiB rather than pages.
        .pragma("cache_size", format!("-{}", (cache_bytes >> 10).max(256))))
}

/// Copies a file's WAL back into it at shutdown, so that it is whole on its own; a failure is
/// only logged (the WAL is replayed at the next open).
pub(crate) async fn checkpoint_at_close(pool: &SqlitePool, file: &str) {
    if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await
    {
        tracing::warn!(error = %e, file, "WAL checkpoint at shutdown failed");
    }
}
