//! Every stored event found by its id, on SQLite through its own id index across restarts,
//! crashes and loss, on PostgreSQL through its blocks and after a backfill.

use super::*;

/// Keeps raw events for `keep` (at NOW), then checks that of `events` (in tenant `t`) exactly those
/// not older than that are still found by id.
async fn retention_forgets_expired_ids<'a>(
    store: &Arc<dyn Storage>,
    t: TenantId,
    keep: i64,
    events: impl IntoIterator<Item = &'a EventRecord>,
) {
    let policy = RetentionPolicy {
        raw_ms: Some(keep),
        ..Default::default()
    };
    store.enforce_retention(&policy, NOW).await.unwrap();
    for e in events {
        let got = store.get_event(t, &e.event_id).await.unwrap();
        assert_eq!(
            got.is_some(),
            e.ts_ms >= NOW - keep,
            "{} at {}",
            e.event_id,
            e.ts_ms
        );
    }
}

/// SQLite finds events by id through an index of its own (`hub-ids.db`) that holds the newest ids
/// in memory and writes them in batches. Every stored event must be found by id: fresh ones (in
/// memory), after a clean restart (written at close), after a crash (read back from the events
/// table), after the file is lost (rebuilt), and after retention (gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_finds_every_event_by_id_across_restarts_crashes_and_loss() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let open = || async {
        let store = hub_storage::open(&url, &Default::default()).await.unwrap();
        store.migrate().await.unwrap();
        store.prepare_partitions(NOW).await.unwrap();
        store
    };

    let store = open().await;
    let t = tenant(&store, "acme").await;
    let u = tenant(&store, "umbrella").await;
    let mut first = events(300, 71, 3 * HOUR_MS);
    // Years apart: a lookup probes only the hours that have ids, not every hour between.
    first[7].ts_ms = NOW - 3 * 365 * DAY_MS;
    write(&store, t, first.clone()).await;
    // The same id at another time is another event; the newer one answers.
    let mut later = first[0].clone();
    later.ts_ms += 1;
    later.app = Some("later".into());
    write(&store, t, vec![later.clone()]).await;
    found(&store, t, &first[1..]).await;
    found(&store, t, [&later]).await;
    not_found(&store, u, &first[1].event_id).await;
    store.close().await;
    drop(store);

    // Clean restart: read from the file.
    let store = open().await;
    found(&store, t, [&later, &first[5]]).await;
    // A crash: these ids were only in memory when the process went.
    let second = events(200, 72, HOUR_MS);
    write(&store, t, second.clone()).await;
    drop(store);
    // A tool opening the file after the crash looks up at once (no start-up step first).
    let tool = hub_storage::open(&url, &Default::default()).await.unwrap();
    found(&tool, t, &second).await;
    tool.close().await;
    drop(tool);
    let store = open().await;
    found(&store, t, &second).await;
    found(&store, t, &first[1..]).await;
    store.close().await;
    drop(store);

    // The file lost: rebuilt from the events at the next start.
    std::fs::remove_file(dir.path().join("hub-ids.db")).unwrap();
    let store = open().await;
    found(&store, t, &second).await;
    found(&store, t, [&later]).await;
    not_found(&store, t, "no-such-id").await;

    // Retention: events past the raw horizon are gone, by id too; the rest stay found.
    retention_forgets_expired_ids(&store, t, HOUR_MS, second.iter().chain(&first[1..])).await;
}

/// PostgreSQL finds events by id through blocks of ids with a Bloom filter each
/// (`event_id_blocks`), written with the events. Every stored event must be found by id, in
/// blocks of any fill, in the right tenant; the blocks of a database from before them are
/// backfilled once at start; retention removes the blocks of expired events and no others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_finds_every_event_by_id_in_blocks_and_after_backfill() {
    let url = hub_storage::testing::scratch_postgres_database().await;
    let store = hub_storage::open(&url, &Default::default()).await.unwrap();
    store.migrate().await.unwrap();
    store.prepare_partitions(NOW).await.unwrap();
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    let blocks = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM event_id_blocks")
            .fetch_one(&db)
            .await
            .unwrap()
    };

    let t = tenant(&store, "acme").await;
    let u = tenant(&store, "umbrella").await;
    // 4,200 events: two full blocks of 2,048 and one partial; one outside every partition.
    let mut first = events(4200, 81, 3 * HOUR_MS);
    first[9].ts_ms = NOW - 3 * 365 * DAY_MS;
    write(&store, t, first.clone()).await;
    assert_eq!(blocks().await, 3);
    // A resend adds no block; the same id at another time is another event, and the newer wins.
    write(&store, t, first[..100].to_vec()).await;
    assert_eq!(blocks().await, 3);
    let mut later = first[0].clone();
    later.ts_ms += 1;
    later.app = Some("later".into());
    write(&store, t, vec![later.clone()]).await;
    // The same ids in another tenant are that tenant's own events.
    let mut theirs = first[1..4].to_vec();
    for e in &mut theirs {
        e.app = Some("umbrella".into());
    }
    write(&store, u, theirs.clone()).await;
    found(&store, t, &first[1..]).await;
    found(&store, t, [&later]).await;
    found(&store, u, &theirs).await;
    not_found(&store, u, &first[5].event_id).await;
    not_found(&store, t, "no-such-id").await;

    // A database from before the blocks: the next start gives every event its block, once.
    sqlx::query("DELETE FROM event_id_blocks")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM hub_meta WHERE key = 'event_id_blocks_backfilled'")
        .execute(&db)
        .await
        .unwrap();
    not_found(&store, t, &first[1].event_id).await;
    store.migrate().await.unwrap();
    let after_backfill = blocks().await;
    assert!(after_backfill >= 4, "{after_backfill} blocks");
    store.migrate().await.unwrap();
    assert_eq!(blocks().await, after_backfill);
    found(&store, t, first[1..].iter().step_by(7)).await;
    found(&store, t, [&later]).await;
    found(&store, u, &theirs).await;

    // Retention: events past the raw horizon are gone, by id too, with the blocks that held only
    // them; the rest stay found.
    let keep = HOUR_MS;
    let sample = first[1..].iter().step_by(7).chain([&later, &first[9]]);
    retention_forgets_expired_ids(&store, t, keep, sample).await;
    let stale: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM event_id_blocks WHERE ts_max < $1")
        .bind(NOW - keep)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stale, 0);
    db.close().await;
    store.close().await;
}
