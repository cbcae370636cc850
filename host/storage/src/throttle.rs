//! Failed sign-ins counted per key (an email, or an email and a client address), shared by every
//! replica. The policy (how many failures are free, how long a block lasts) is the caller's; this
//! only counts, remembers blocks and forgets. Reached through [`crate::Storage::login_throttle`].

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::Result;
use crate::decode::HubRow;
use crate::sql::{Bind, into_query, with_binds};

/// What is known about one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleState {
    /// Failures since the last success (or since a day without failures).
    pub failures: i64,
    pub blocked_until_ms: Option<i64>,
}

#[async_trait]
pub trait ThrottleStorage: Send + Sync {
    /// The state of each key, in order (default for keys never seen).
    async fn throttle_states(&self, keys: &[String]) -> Result<Vec<ThrottleState>>;
    /// Counts one failure for `key` (starting again from one when its last failure is older than
    /// `forget_after_ms`) and returns the new count.
    async fn count_failure(&self, key: &str, now_ms: i64, forget_after_ms: i64) -> Result<i64>;
    /// Blocks `key` until `until_ms`.
    async fn block(&self, key: &str, until_ms: i64) -> Result<()>;
    /// Forgets these keys (a success, a reset).
    async fn clear(&self, keys: &[String]) -> Result<()>;
    /// Forgets keys whose last failure is older than `before_ms` (blocks last minutes, so theirs
    /// are long over).
    async fn forget_before(&self, before_ms: i64) -> Result<u64>;
}

pub(crate) struct SqlThrottle<DB: Database> {
    writer: Pool<DB>,
}

impl<DB: Database> SqlThrottle<DB> {
    pub(crate) fn new(writer: Pool<DB>) -> Self {
        Self { writer }
    }
}

#[async_trait]
impl<DB> ThrottleStorage for SqlThrottle<DB>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    DB::Row: HubRow,
    for<'t> i16: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
{
    async fn throttle_states(&self, keys: &[String]) -> Result<Vec<ThrottleState>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut buf = with_binds(
            "SELECT key, failures, blocked_until FROM login_throttle WHERE key IN (",
            vec![],
        );
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                buf.push(", ");
            }
            buf.bind(Bind::Text(k.clone()));
        }
        buf.push(")");
        // The writer: what a failure a moment ago on this replica wrote must count.
        let rows = into_query::<DB>(buf).fetch_all(&self.writer).await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            found.insert(
                r.text("key")?,
                ThrottleState {
                    failures: r.int("failures")?,
                    blocked_until_ms: r.opt_int("blocked_until")?,
                },
            );
        }
        Ok(keys
            .iter()
            .map(|k| found.get(k).copied().unwrap_or_default())
            .collect())
    }

    async fn count_failure(&self, key: &str, now_ms: i64, forget_after_ms: i64) -> Result<i64> {
        let row = into_query::<DB>(with_binds(
            "INSERT INTO login_throttle (key, failures, updated_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN login_throttle.updated_at < $3 \
             THEN 1 ELSE login_throttle.failures + 1 END, updated_at = excluded.updated_at \
             RETURNING failures",
            vec![
                Bind::Text(key.into()),
                Bind::I64(now_ms),
                Bind::I64(now_ms - forget_after_ms),
            ],
        ))
        .fetch_one(&self.writer)
        .await?;
        row.int("failures")
    }

    async fn block(&self, key: &str, until_ms: i64) -> Result<()> {
        into_query::<DB>(with_binds(
            "UPDATE login_throttle SET blocked_until = $1 WHERE key = $2",
            vec![Bind::I64(until_ms), Bind::Text(key.into())],
        ))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn clear(&self, keys: &[String]) -> Result<()> {
        for k in keys {
            into_query::<DB>(with_binds(
                "DELETE FROM login_throttle WHERE key = $1",
                vec![Bind::Text(k.clone())],
            ))
            .execute(&self.writer)
            .await?;
        }
        Ok(())
    }

    async fn forget_before(&self, before_ms: i64) -> Result<u64> {
        let rows = into_query::<DB>(with_binds(
            "DELETE FROM login_throttle WHERE updated_at < $1 RETURNING key",
            vec![Bind::I64(before_ms)],
        ))
        .fetch_all(&self.writer)
        .await?;
        Ok(rows.len() as u64)
    }
}
