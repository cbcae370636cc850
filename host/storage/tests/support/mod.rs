//! What the storage test files share: a store of each backend, a fixed now, and the macro that
//! runs one story on both.
#![allow(dead_code)]

use std::sync::Arc;

use hub_core::{EventRecord, TenantId};
use hub_storage::{Storage, TenantBatch};

pub mod calls;

/// A fixed "now": 2026-11-25T12:00:00Z.
pub const NOW: i64 = 1_795_608_000_000;

pub async fn sqlite() -> (Arc<dyn Storage>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let store = hub_storage::open(&url, &Default::default()).await.unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

pub async fn postgres() -> (Arc<dyn Storage>, ()) {
    let url = hub_storage::testing::scratch_postgres_database().await;
    let store = hub_storage::open(&url, &Default::default()).await.unwrap();
    store.migrate().await.unwrap();
    store.prepare_partitions(NOW).await.unwrap();
    (store, ())
}

/// Each story runs on each backend, on a multi-threaded runtime like the server's (SQLite's event
/// inserts step aside from the runtime's workers there).
macro_rules! on_both {
    ($($story:ident),* $(,)?) => {
        mod sqlite_backend { use super::*; $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $story() { let (s, _g) = sqlite().await; super::$story(s).await; })* }
        mod postgres_backend { use super::*; $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $story() { let (s, _g) = postgres().await; super::$story(s).await; })* }
    };
}

pub async fn tenant(store: &Arc<dyn Storage>, name: &str) -> TenantId {
    store.tenants().create_tenant(name, NOW).await.unwrap().id
}

pub async fn write(
    store: &Arc<dyn Storage>,
    tenant: TenantId,
    events: Vec<EventRecord>,
) -> hub_storage::WriteOutcome {
    store
        .write_batches(&[TenantBatch { tenant, events }], NOW)
        .await
        .unwrap()[0]
}
