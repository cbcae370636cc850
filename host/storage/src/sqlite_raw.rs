//! Event inserts through SQLite's C API, on the connection sqlx lends us
//! ([`sqlx::sqlite::SqliteConnection::lock_handle`]).
//!
//! Through sqlx every text value was copied three times on its way into a statement (our bind
//! list, sqlx's argument buffer, then SQLite's own copy under `SQLITE_TRANSIENT`) and freed three
//! times after: about a fifth of the machine at full ingest. Here each value is bound straight from
//! the event it belongs to (`SQLITE_STATIC`), and one prepared single-row statement runs per event,
//! which also says exactly whether that event was new.
//!
//! This is the storage crate's only `unsafe` code. What keeps it sound:
//! - [`RawConnection`] borrows the locked handle, and every [`Statement`] borrows the
//!   `RawConnection`, so no statement outlives the lock or the connection.
//! - A statement finalizes itself when dropped.
//! - [`Statement::execute`] binds every parameter of the statement from values that outlive the
//!   call, steps, and resets before returning. A pointer bound without a copy is therefore never
//!   read after the call that bound it: each later step rebinds all of them first.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use hub_core::{EventRecord, TenantId};
use libsqlite3_sys as ffi;
use sqlx::sqlite::LockedSqliteHandle;

use crate::sql::EVENT_COLUMN_COUNT;
use crate::{Result, StorageError};

/// Runs `f`, which blocks, without stalling the tasks queued behind it on a multi-threaded
/// runtime (elsewhere, such as a single-threaded test runtime, it simply runs).
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// One value to bind, borrowed from where it lives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Value::Null, Value::Text)
    }
}

/// The raw connection of a handle sqlx has lent us (its worker thread waits meanwhile).
pub(crate) struct RawConnection<'h> {
    db: NonNull<ffi::sqlite3>,
    _lock: PhantomData<&'h mut ()>,
}

impl<'h> RawConnection<'h> {
    pub(crate) fn new(handle: &'h mut LockedSqliteHandle<'_>) -> Self {
        Self {
            db: handle.as_raw_handle(),
            _lock: PhantomData,
        }
    }

    /// The connection's last error, with what we were doing.
    fn error(&self, code: c_int, doing: &str) -> StorageError {
        // SAFETY: `db` is the open connection we hold the lock of; `sqlite3_errmsg` returns a
        // NUL-terminated string owned by SQLite, copied here before any other call on `db`.
        let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db.as_ptr())) }
            .to_string_lossy()
            .into_owned();
        StorageError::Sqlite {
            code,
            message: format!("{doing}: {message}"),
        }
    }

    /// The rowid of the last row this connection inserted (0 if none yet).
    pub(crate) fn last_insert_rowid(&self) -> i64 {
        // SAFETY: `db` is open and ours while `self` lives.
        unsafe { ffi::sqlite3_last_insert_rowid(self.db.as_ptr()) }
    }

    /// Prepares `sql` (one statement) for repeated use.
    pub(crate) fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        let mut stmt = ptr::null_mut();
        let len = c_int::try_from(sql.len())
            .map_err(|_| StorageError::Corrupt("statement longer than 2 GiB".into()))?;
        // SAFETY: `db` is open and ours while `self` lives; `sql` is valid for `len` bytes (it
        // need not be NUL-terminated when the length is given); `stmt` receives a new statement
        // or stays null.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT as _,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.error(rc, "preparing a statement"));
        }
        let raw = NonNull::new(stmt)
            .ok_or_else(|| StorageError::Corrupt("an empty statement was prepared".into()))?;
        // SAFETY: `raw` is the statement just prepared.
        let params = unsafe { ffi::sqlite3_bind_parameter_count(raw.as_ptr()) } as usize;
        Ok(Statement {
            conn: self,
            raw,
            params,
        })
    }
}

/// A prepared statement, finalized when dropped.
pub(crate) struct Statement<'c> {
    conn: &'c RawConnection<'c>,
    raw: NonNull<ffi::sqlite3_stmt>,
    params: usize,
}

impl Statement<'_> {
    /// Binds `values` to the statement's parameters (all of them, in order), runs it to the end
    /// and returns how many rows it changed.
    pub(crate) fn execute(&mut self, values: &[Value<'_>]) -> Result<usize> {
        if values.len() != self.params {
            return Err(StorageError::Corrupt(format!(
                "{} values for a statement of {} parameters",
                values.len(),
                self.params
            )));
        }
        let stmt = self.raw.as_ptr();
        for (i, v) in values.iter().enumerate() {
            let at = i as c_int + 1;
            // SAFETY: `stmt` is our prepared statement and `at` one of its parameters. Text is
            // bound without a copy (`SQLITE_STATIC`): it stays valid until this call returns,
            // and the statement is reset before that and rebound in full before its next step.
            let rc = unsafe {
                match *v {
                    Value::Null => ffi::sqlite3_bind_null(stmt, at),
                    Value::Int(n) => ffi::sqlite3_bind_int64(stmt, at, n),
                    Value::Real(x) => ffi::sqlite3_bind_double(stmt, at, x),
                    Value::Text(s) => ffi::sqlite3_bind_text64(
                        stmt,
                        at,
                        s.as_ptr().cast(),
                        s.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(self.conn.error(rc, "binding a value"));
            }
        }
        // SAFETY: every parameter is bound to a live value; stepping and resetting our own
        // statement on the connection we hold.
        let rc = unsafe { ffi::sqlite3_step(stmt) };
        let result = match rc {
            ffi::SQLITE_DONE | ffi::SQLITE_ROW => {
                // SAFETY: as above.
                Ok(unsafe { ffi::sqlite3_changes64(self.conn.db.as_ptr()) } as usize)
            }
            _ => Err(self.conn.error(rc, "running a statement")),
        };
        // SAFETY: as above. The error, if any, was read before this reset.
        unsafe { ffi::sqlite3_reset(stmt) };
        result
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` was prepared on a connection that outlives `self` and is finalized once.
        unsafe { ffi::sqlite3_finalize(self.raw.as_ptr()) };
    }
}

/// `INSERT OR IGNORE` of one event. `OR IGNORE` rather than `ON CONFLICT DO NOTHING`: with every
/// constraint resolved by ignoring, the statement can never abort half-way, so SQLite keeps no
/// statement journal for it (that journal copied every page the insert touched, about a tenth of
/// the writer's time). No value bound here can violate a NOT NULL constraint (they come from Rust
/// `String`s and integers), so the only row ever ignored is a duplicate.
const INSERT_EVENT: &str = concat!(
    "INSERT OR IGNORE INTO events (",
    crate::sql::event_columns!(),
    ", enriched_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
     ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
);

/// What an insert stored: the indexes of the events that were new (the others were stored
/// already), and the rowid of the last of them.
#[derive(Debug, Default)]
pub(crate) struct Inserted {
    pub rows: Vec<usize>,
    pub last_rowid: Option<i64>,
}

/// Inserts `events` (unique within the batch); `shapes[i]` is `events[i]`'s enrichment shape id.
pub(crate) fn insert_events(
    conn: &RawConnection<'_>,
    tenant: TenantId,
    received_at_ms: i64,
    events: &[&EventRecord],
    shapes: &[Option<i64>],
) -> Result<Inserted> {
    let mut insert = conn.prepare(INSERT_EVENT)?;
    let mut out = Inserted {
        rows: Vec::with_capacity(events.len()),
        last_rowid: None,
    };
    for (i, (e, shape)) in events.iter().zip(shapes).enumerate() {
        if insert.execute(&event_values(tenant, received_at_ms, e, *shape))? == 1 {
            out.rows.push(i);
            out.last_rowid = Some(conn.last_insert_rowid());
        }
    }
    Ok(out)
}

/// One event's values in the order of [`INSERT_EVENT`]'s columns.
fn event_values<'e>(
    tenant: TenantId,
    received_at_ms: i64,
    e: &'e EventRecord,
    shape: Option<i64>,
) -> [Value<'e>; EVENT_COLUMN_COUNT] {
    let t = |v: &'e Option<String>| Value::from(v.as_deref());
    let int = |v: Option<i64>| v.map_or(Value::Null, Value::Int);
    let real = |v: Option<f64>| v.map_or(Value::Null, Value::Real);
    [
        Value::Int(tenant.get()),
        Value::Text(&e.event_id),
        Value::Int(e.ts_ms),
        Value::Int(received_at_ms),
        Value::Text(&e.event_type),
        Value::Text(&e.kind),
        t(&e.source_module),
        Value::from(e.severity.map(|s| s.as_str())),
        t(&e.environment),
        t(&e.app),
        t(&e.model),
        t(&e.provider),
        t(&e.operation),
        int(e.input_tokens),
        int(e.output_tokens),
        real(e.latency_ms),
        real(e.ttft_ms),
        Value::from(e.status.map(|s| s.as_str())),
        t(&e.error_type),
        real(e.cost_usd),
        t(&e.user_id),
        t(&e.session_id),
        t(&e.trace_id),
        t(&e.correlation_id),
        t(&e.parent_event_id),
        Value::Text(&e.tags_json),
        Value::Text(&e.payload_json),
        int(e.details.0[0]),
        int(e.details.0[1]),
        int(e.details.0[2]),
        int(e.details.0[3]),
        int(e.details.0[4]),
        real(e.reported_cost_usd),
        real(e.estimated_cost_usd),
        t(&e.service_tier),
        int(shape),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insert_names_as_many_columns_and_parameters_as_an_event_has_values() {
        let (columns, values) = INSERT_EVENT.split_once(" VALUES ").unwrap();
        assert_eq!(columns.split(',').count(), EVENT_COLUMN_COUNT);
        assert_eq!(values.matches('?').count(), EVENT_COLUMN_COUNT);
    }
}
