//! Test support: scratch databases: SQLite in a test's directory, PostgreSQL on the cluster that the test
//! command started.

use sqlx::Connection;

/// The environment variable holding the test cluster's admin URL (set by `scripts/test`).
pub const POSTGRES_URL_VAR: &str = "HUB_TEST_POSTGRES_URL";

/// Creates an empty database on the test cluster and returns its URL.
///
/// Panics with instructions when no cluster is configured: PostgreSQL tests are part of the suite
/// and must not silently pass without a server.
pub async fn scratch_postgres_database() -> String {
    let admin = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_URL_VAR} is not set: run the test suite with scripts/test, which starts a \
             throwaway PostgreSQL cluster (or point it at one: postgres://user@host:port/postgres)"
        )
    });
    let name = format!("hub_test_{:016x}", rand_id());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test cluster");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create scratch database");
    conn.close().await.ok();
    match admin.rfind('/') {
        Some(pos) => format!("{}/{name}", &admin[..pos]),
        None => panic!("{POSTGRES_URL_VAR} has no database path: {admin}"),
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A fresh, migrated SQLite database in `dir` (a test's temporary directory).
pub async fn scratch_sqlite(dir: &std::path::Path) -> std::sync::Arc<dyn crate::Storage> {
    let storage = crate::open(
        &format!("sqlite://{}/hub.db", dir.display()),
        &Default::default(),
    )
    .await
    .expect("open a scratch SQLite database");
    storage.migrate().await.expect("migrate it");
    storage
}
