//! Lookups of SQLite events by id alone, from an index kept in a file of its own
//! (`hub-ids.db` beside `hub.db`) and written in large sorted batches.
//!
//! Why not an index on `events (tenant_id, event_id)`: most SDKs send random ids (UUIDs), so each
//! insert lands on a random page of an index as large as the table's history, and SQLite's WAL
//! writes every page a commit touched whole. Once that index outgrew a commit, each event cost a
//! 16 KiB page write, and ingest fell to about 60k events/s within a minute. Here:
//! - idempotency needs no id index: `events_by_time (tenant_id, ts, event_id)` is unique, and new
//!   events land at its newest end;
//! - the ids of committed events are noted in memory (which answers lookups at once) and written
//!   to `hub-ids.db` in one sorted transaction per million ids (or once two minutes old, at the next
//!   write or maintenance round, and at shutdown), on a connection of their own, so the pages each
//!   write touches are shared by many ids and the work runs beside the event writer, not in its way;
//! - entries are keyed by (tenant, hour of the event's time, id hash, time), so that a write
//!   touches the pages of the hours being written (usually one) and retention drops whole hours.
//!   A lookup probes each hour the tenant has entries in (kept in `id_hours`; 720 seeks for 30
//!   days of steady traffic).
//!
//! The file is derived data. It records the `events` rowid up to which it is complete; before a
//! handle's first write or lookup, and whenever another process wrote `hub.db`, the events past
//! that rowid are read back into memory. Deleting the file makes the next start rebuild it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hub_core::TenantId;
use hub_core::time::HOUR_MS;
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
use sqlx::{Row, SqliteConnection};

use crate::rollup::FastMap;
use crate::sqlite_raw::{RawConnection, Value};
use crate::{Result, id_hash};

/// Pending ids are written once there are this many …
const FLUSH_ENTRIES: usize = 1_000_000;
/// … or the oldest has waited this long (which bounds what a restart reads back).
const FLUSH_AFTER: Duration = Duration::from_secs(120);
/// Connections to the file.
const CONNECTIONS: u32 = 4;
/// Events read back per statement when catching up.
const CATCH_UP_CHUNK: i64 = 100_000;
/// Names the hash below; a file written with another is rebuilt.
const HASH: &str = "fnv1a-64, id_hours";
/// Records how far the file is complete (binds: events rowid, hash name).
const SAVE_PROGRESS: &str = "INSERT INTO progress (id, events_rowid, hash) VALUES (1, ?, ?) \
     ON CONFLICT (id) DO UPDATE SET events_rowid = excluded.events_rowid, hash = excluded.hash";

/// The index file that goes with the events database at `main`.
pub(crate) fn path_for(main: &Path) -> PathBuf {
    let stem = main
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "hub".into());
    main.with_file_name(format!("{stem}-ids.db"))
}

/// Empties the file's entries (a rebuild starts from nothing).
async fn clear(pool: &SqlitePool) -> Result<()> {
    for sql in ["DELETE FROM event_ids", "DELETE FROM id_hours"] {
        sqlx::query(sql).execute(pool).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    tenant: i64,
    hash: i64,
    ts: i64,
}

impl Entry {
    fn key(&self) -> (i64, i64) {
        (self.tenant, self.hash)
    }
    fn hour(&self) -> i64 {
        self.ts.div_euclid(HOUR_MS)
    }
}

/// Ids of committed events not yet written to the file.
#[derive(Default)]
struct Pending {
    entries: Vec<Entry>,
    /// (tenant, hash) → time, for the first pending entry of that key; further ones in `more`
    /// (the same id sent with another time, or a hash collision).
    first: FastMap<(i64, i64), i64>,
    more: Vec<Entry>,
    /// Every event up to this rowid is pending or in the file.
    rowid: i64,
    oldest: Option<Instant>,
}

impl Pending {
    fn add(&mut self, e: Entry) {
        self.index(e);
        self.entries.push(e);
        self.oldest.get_or_insert_with(Instant::now);
    }

    fn index(&mut self, e: Entry) {
        match self.first.entry(e.key()) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(e.ts);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.more.push(e),
        }
    }

    /// Drops the first `n` entries (now written) from memory, keeping the lookup maps in step.
    fn forget(&mut self, n: usize) {
        self.entries.drain(..n.min(self.entries.len()));
        self.first.clear();
        self.more.clear();
        // What is left was noted while the write ran: usually little.
        for e in std::mem::take(&mut self.entries) {
            self.index(e);
            self.entries.push(e);
        }
    }

    fn due(&self) -> bool {
        self.entries.len() >= FLUSH_ENTRIES
            || self.oldest.is_some_and(|t| t.elapsed() >= FLUSH_AFTER)
    }
}

/// When noted ids should be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Later,
    /// In the background, now.
    Soon,
    /// Before the events are acknowledged.
    Now,
}

pub(crate) struct IdIndex {
    pool: SqlitePool,
    pending: std::sync::Mutex<Pending>,
    /// One write at a time.
    writing: tokio::sync::Mutex<()>,
    /// A write is queued or running in the background.
    scheduled: std::sync::atomic::AtomicBool,
    /// This handle has read back what the file had missed at least once.
    caught_up: std::sync::atomic::AtomicBool,
}

impl IdIndex {
    /// Opens the file at `path`, its connections' page caches holding `cache_bytes` together.
    pub(crate) async fn open(path: &Path, cache_bytes: usize) -> Result<Self> {
        let connect =
            crate::sqlite_files::connect_options(path, cache_bytes / CONNECTIONS as usize)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(CONNECTIONS)
            .connect_with(connect)
            .await?;
        for ddl in [
            "CREATE TABLE IF NOT EXISTS event_ids (tenant_id INTEGER NOT NULL, hour INTEGER NOT NULL, \
             id_hash INTEGER NOT NULL, ts INTEGER NOT NULL, \
             PRIMARY KEY (tenant_id, hour, id_hash, ts)) WITHOUT ROWID",
            // The hours that have entries, per tenant: what a lookup probes.
            "CREATE TABLE IF NOT EXISTS id_hours (tenant_id INTEGER NOT NULL, hour INTEGER NOT NULL, \
             PRIMARY KEY (tenant_id, hour)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS progress (id INTEGER PRIMARY KEY CHECK (id = 1), \
             events_rowid INTEGER NOT NULL, hash TEXT NOT NULL)",
        ] {
            sqlx::query(ddl).execute(&pool).await?;
        }
        let row = sqlx::query("SELECT events_rowid, hash FROM progress WHERE id = 1")
            .fetch_optional(&pool)
            .await?;
        let rowid = match row {
            Some(r) if r.try_get::<String, _>("hash")? == HASH => {
                r.try_get::<i64, _>("events_rowid")?
            }
            // New, or written with another hash: start again.
            _ => {
                clear(&pool).await?;
                0
            }
        };
        Ok(Self {
            pool,
            pending: std::sync::Mutex::new(Pending {
                rowid,
                ..Default::default()
            }),
            writing: tokio::sync::Mutex::new(()),
            scheduled: Default::default(),
            caught_up: Default::default(),
        })
    }

    /// Writes the pending ids in the background unless a write is queued already.
    pub(crate) fn schedule_write(self: &std::sync::Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let index = self.clone();
        tokio::spawn(async move {
            if let Err(e) = index.write().await {
                tracing::warn!(error = %e, "writing the id index failed (kept in memory, retried later)");
            }
            index.scheduled.store(false, Ordering::Release);
        });
    }

    /// Whether this handle has caught up with the events table since it opened.
    pub(crate) fn caught_up(&self) -> bool {
        self.caught_up.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether enough is pending, or has waited long enough, to write.
    pub(crate) fn due(&self) -> bool {
        self.pending().due()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding this lock leaves consistent data behind (each step is whole).
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes the ids of events just committed, the last of which got rowid `last_rowid`.
    pub(crate) fn note<'e>(
        &self,
        events: impl Iterator<Item = (TenantId, &'e str, i64)>,
        last_rowid: i64,
    ) -> Write {
        let mut p = self.pending();
        for (tenant, id, ts) in events {
            p.add(Entry {
                tenant: tenant.get(),
                hash: id_hash(id),
                ts,
            });
        }
        if last_rowid <= p.rowid {
            // SQLite gave out rowids again (retention deleted the newest row): "complete up to
            // rowid" no longer covers these, so they must be on disk before they are acknowledged.
            return Write::Now;
        }
        p.rowid = last_rowid;
        if p.due() { Write::Soon } else { Write::Later }
    }

    /// Reads back the events that committed past what the index knows (after a start, or when
    /// another process wrote the database). `conn` must hold the database's write lock, so that
    /// nothing commits meanwhile.
    pub(crate) async fn catch_up(&self, conn: &mut SqliteConnection) -> Result<()> {
        let max: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM events")
            .fetch_one(&mut *conn)
            .await?;
        let mut from = self.pending().rowid;
        if from == max {
            self.caught_up
                .store(true, std::sync::atomic::Ordering::Release);
            return Ok(());
        }
        if max < from {
            // The table was emptied and rowids began again: what the file says is void.
            tracing::warn!(max, from, "event rowids went back: rebuilding the id index");
            let _writing = self.writing.lock().await;
            clear(&self.pool).await?;
            Self::save_progress(&self.pool, 0).await?;
            *self.pending() = Pending::default();
            from = 0;
        }
        let started = Instant::now();
        let mut read = 0usize;
        while from < max {
            let rows = sqlx::query(
                "SELECT rowid AS rowid, tenant_id, event_id, ts FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?",
            )
            .bind(from)
            .bind(CATCH_UP_CHUNK)
            .fetch_all(&mut *conn)
            .await?;
            let Some(last) = rows.last() else { break };
            let last: i64 = last.try_get("rowid")?;
            let mut chunk = Vec::with_capacity(rows.len());
            for r in &rows {
                chunk.push((
                    TenantId::from_verified(r.try_get("tenant_id")?),
                    r.try_get::<String, _>("event_id")?,
                    r.try_get::<i64, _>("ts")?,
                ));
            }
            read += chunk.len();
            let write = self.note(chunk.iter().map(|(t, id, ts)| (*t, id.as_str(), *ts)), last);
            from = last;
            if write != Write::Later {
                self.write().await?;
            }
        }
        tracing::info!(
            events = read,
            ms = started.elapsed().as_millis() as u64,
            "id index caught up with the events table"
        );
        self.caught_up
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Records that the file is complete up to events rowid `rowid` (on the pool, or inside the
    /// transaction that wrote the entries).
    async fn save_progress<'c>(
        conn: impl sqlx::Executor<'c, Database = sqlx::Sqlite>,
        rowid: i64,
    ) -> Result<()> {
        sqlx::query(SAVE_PROGRESS)
            .bind(rowid)
            .bind(HASH)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Writes every pending id to the file, in key order, in one transaction.
    pub(crate) async fn write(&self) -> Result<()> {
        let _writing = self.writing.lock().await;
        let (mut batch, rowid) = {
            let mut p = self.pending();
            p.oldest = None;
            (p.entries.clone(), p.rowid)
        };
        if batch.is_empty() {
            return Ok(());
        }
        let written = batch.len();
        let started = Instant::now();
        batch.sort_unstable_by_key(|e| (e.tenant, e.hour(), e.hash, e.ts));
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        {
            let mut handle = tx.lock_handle().await?;
            let raw = RawConnection::new(&mut handle);
            crate::sqlite_raw::blocking(|| -> Result<()> {
                let mut insert = raw.prepare(
                    "INSERT OR IGNORE INTO event_ids (tenant_id, hour, id_hash, ts) VALUES (?, ?, ?, ?)",
                )?;
                let mut hour =
                    raw.prepare("INSERT OR IGNORE INTO id_hours (tenant_id, hour) VALUES (?, ?)")?;
                let mut last = None;
                for e in &batch {
                    insert.execute(&[
                        Value::Int(e.tenant),
                        Value::Int(e.hour()),
                        Value::Int(e.hash),
                        Value::Int(e.ts),
                    ])?;
                    // Sorted by tenant and hour: each new pair once.
                    if last != Some((e.tenant, e.hour())) {
                        last = Some((e.tenant, e.hour()));
                        hour.execute(&[Value::Int(e.tenant), Value::Int(e.hour())])?;
                    }
                }
                Ok(())
            })?;
        }
        Self::save_progress(&mut *tx, rowid).await?;
        tx.commit().await?;
        tracing::debug!(
            ids = written,
            ms = started.elapsed().as_millis() as u64,
            "id index written"
        );
        // Durable: the entries written (the first `written` noted; more may have come since) leave
        // memory only now, so a lookup always finds an id in one place or the other.
        let mut p = self.pending();
        p.forget(written);
        if !p.entries.is_empty() {
            p.oldest = Some(Instant::now());
        }
        Ok(())
    }

    /// The times of the tenant's events with this id: pending ones and written ones.
    pub(crate) async fn lookup(&self, tenant: TenantId, id: &str) -> Result<Vec<i64>> {
        let (t, hash) = (tenant.get(), id_hash(id));
        let mut times: Vec<i64> = {
            let p = self.pending();
            p.first
                .get(&(t, hash))
                .copied()
                .into_iter()
                .chain(p.more.iter().filter(|e| e.key() == (t, hash)).map(|e| e.ts))
                .collect()
        };
        // One seek per hour the tenant has entries in (the key leads with the hour).
        let rows = sqlx::query(
            "SELECT e.ts FROM id_hours h CROSS JOIN event_ids e \
             ON e.tenant_id = h.tenant_id AND e.hour = h.hour AND e.id_hash = ?2 \
             WHERE h.tenant_id = ?1",
        )
        .bind(t)
        .bind(hash)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            times.push(r.try_get("ts")?);
        }
        times.sort_unstable_by(|a, b| b.cmp(a));
        times.dedup();
        Ok(times)
    }

    /// Drops the tenant's entries of whole hours before `before_ms`.
    pub(crate) async fn delete_before(&self, tenant: TenantId, before_ms: i64) -> Result<()> {
        for sql in [
            "DELETE FROM event_ids WHERE tenant_id = ? AND hour < ?",
            "DELETE FROM id_hours WHERE tenant_id = ? AND hour < ?",
        ] {
            sqlx::query(sql)
                .bind(tenant.get())
                .bind(before_ms.div_euclid(HOUR_MS))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Writes what is pending and closes the file.
    pub(crate) async fn close(&self) {
        if let Err(e) = self.write().await {
            tracing::warn!(error = %e, "writing the id index at shutdown failed (rebuilt at the next start)");
        }
        crate::sqlite_files::checkpoint_at_close(&self.pool, "hub-ids.db").await;
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_keeps_every_time_of_a_key_until_written() {
        let mut p = Pending::default();
        let a = Entry {
            tenant: 1,
            hash: 7,
            ts: 10,
        };
        let b = Entry {
            tenant: 1,
            hash: 7,
            ts: 20,
        };
        let c = Entry {
            tenant: 2,
            hash: 7,
            ts: 10,
        };
        for e in [a, b, c] {
            p.add(e);
        }
        assert_eq!(p.first.len(), 2);
        assert_eq!(p.more, [b]);
        p.forget(1);
        assert_eq!(p.first.get(&(1, 7)), Some(&20), "b took a's place");
        assert!(p.more.is_empty());
        assert_eq!(p.entries, [b, c]);
        p.forget(2);
        assert!(p.first.is_empty() && p.entries.is_empty());
    }

    #[test]
    fn the_file_sits_beside_the_database() {
        assert_eq!(
            path_for(Path::new("data/hub.db")),
            PathBuf::from("data/hub-ids.db")
        );
    }
}
