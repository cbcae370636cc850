//! PostgreSQL's index of event ids: blocks of ids, each with a Bloom filter.
//!
//! The unique index of `events` is `(tenant_id, ts, event_id)`, so each insert lands near the
//! index's newest end. An index keyed by the id itself costs a descent to a random leaf for
//! every event: with random UUIDs, 85k instead of 108k events/s on the benchmark machine (see
//! README). Lookups by id go through `event_id_blocks` instead, much as a ClickHouse Bloom-filter
//! skip index does. Each write adds, per tenant, one row per up to [`BLOCK_IDS`] new events: their
//! id hashes and times as two arrays kept out of line, and a [`BLOOM_BYTES`]-byte Bloom filter of
//! the ids kept inline (two rows to a page). A lookup reads the tenant's filters in one scan
//! (about two bit tests per block), unpacks the arrays of the few blocks that pass, and fetches
//! the event by `(tenant, ts, id)`. The scan grows with the tenant's stored events, one block per
//! ~2,000; README's benchmarks give the time at 10 million. Blocks are written in the same
//! transaction as their events, so nothing acknowledged is missing from them; duplicate entries
//! (after a backfill that overlapped live writes) only repeat a time that is looked up once.

use hub_core::{EventRecord, TenantId};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Postgres, Row};

use crate::shared::Shared;
use crate::{Result, id_hash};

/// Ids per block: at most this many share one filter.
pub(crate) const BLOCK_IDS: usize = 2048;
/// Filter size: 15 bits per id of a full block, small enough for two rows to share a page.
pub(crate) const BLOOM_BYTES: usize = 3840;
const BLOOM_BITS: u64 = (BLOOM_BYTES * 8) as u64;
/// Bits set per id. With 15 bits per id, 10 probes give a false-positive rate of ~0.07% per full
/// block: about 4 blocks unpacked in vain per lookup over 10 million events.
pub(crate) const PROBES: usize = 10;

/// hub_meta key set once every event stored before migration 0012 has its block.
const BACKFILLED: &str = "event_id_blocks_backfilled";
/// Advisory lock taken by the replica that backfills (others wait, then find it done).
const BACKFILL_LOCK: i64 = 0x4855_4249_4442_0001;
/// Events read per backfill transaction.
const BACKFILL_PAGE: i64 = 100_000;

const INSERT_BLOCK: &str = "INSERT INTO event_id_blocks (tenant_id, ts_min, ts_max, bloom, id_hashes, ts) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Times at which the id (hash `$2`) was stored for tenant `$1`, newest first; `$3`..`$12` are the
/// id's filter bits. A block's arrays are unpacked only when every bit is set.
const CANDIDATE_TIMES: &str = "SELECT DISTINCT u.ts FROM event_id_blocks b, \
     UNNEST(b.id_hashes, b.ts) AS u(h, ts) \
     WHERE b.tenant_id = $1 AND get_bit(b.bloom, $3) = 1 AND get_bit(b.bloom, $4) = 1 \
     AND get_bit(b.bloom, $5) = 1 AND get_bit(b.bloom, $6) = 1 AND get_bit(b.bloom, $7) = 1 \
     AND get_bit(b.bloom, $8) = 1 AND get_bit(b.bloom, $9) = 1 AND get_bit(b.bloom, $10) = 1 \
     AND get_bit(b.bloom, $11) = 1 AND get_bit(b.bloom, $12) = 1 AND u.h = $2 \
     ORDER BY u.ts DESC";

/// The splitmix64 finalizer: spreads FNV-1a's output over all 64 bits before it picks filter bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The filter bits of an id (double hashing). Bit `n` is bit `n % 8` of byte `n / 8`, counted from
/// the least significant, as PostgreSQL's `get_bit` reads it.
pub(crate) fn probes(hash: i64) -> [i32; PROBES] {
    let h = mix(hash as u64);
    let (a, b) = (h & 0xffff_ffff, (h >> 32) | 1);
    std::array::from_fn(|i| ((a + i as u64 * b) % BLOOM_BITS) as i32)
}

/// One row of `event_id_blocks`.
#[derive(Debug)]
pub(crate) struct Block {
    pub ts_min: i64,
    pub ts_max: i64,
    pub bloom: Vec<u8>,
    pub hashes: Vec<i64>,
    pub ts: Vec<i64>,
}

impl Block {
    fn of(ids: &[(&str, i64)]) -> Self {
        let mut bloom = vec![0u8; BLOOM_BYTES];
        let mut hashes = Vec::with_capacity(ids.len());
        let mut ts = Vec::with_capacity(ids.len());
        for &(id, at) in ids {
            let hash = id_hash(id);
            for bit in probes(hash) {
                bloom[bit as usize / 8] |= 1 << (bit % 8);
            }
            hashes.push(hash);
            ts.push(at);
        }
        Self {
            ts_min: ts.iter().copied().min().unwrap_or(0),
            ts_max: ts.iter().copied().max().unwrap_or(0),
            bloom,
            hashes,
            ts,
        }
    }

    /// Whether the filter admits the id (no false negatives).
    #[cfg(test)]
    fn may_hold(&self, id: &str) -> bool {
        probes(id_hash(id))
            .iter()
            .all(|&bit| self.bloom[bit as usize / 8] & (1 << (bit % 8)) != 0)
    }
}

/// The blocks for these (id, time) pairs, in their order.
pub(crate) fn blocks(ids: &[(&str, i64)]) -> Vec<Block> {
    ids.chunks(BLOCK_IDS).map(Block::of).collect()
}

/// Adds the blocks of a tenant's newly stored events, inside the caller's transaction.
pub(crate) async fn write(
    conn: &mut PgConnection,
    tenant: TenantId,
    events: &[&EventRecord],
) -> Result<()> {
    let ids: Vec<(&str, i64)> = events
        .iter()
        .map(|e| (e.event_id.as_str(), e.ts_ms))
        .collect();
    write_ids(conn, tenant, &ids).await
}

async fn write_ids(conn: &mut PgConnection, tenant: TenantId, ids: &[(&str, i64)]) -> Result<()> {
    for block in blocks(ids) {
        sqlx::query(INSERT_BLOCK)
            .bind(tenant.get())
            .bind(block.ts_min)
            .bind(block.ts_max)
            .bind(&block.bloom)
            .bind(&block.hashes)
            .bind(&block.ts)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The newest stored event with this id, if any.
pub(crate) async fn get_event(
    pool: &PgPool,
    tenant: TenantId,
    event_id: &str,
) -> Result<Option<crate::StoredEvent>> {
    let hash = id_hash(event_id);
    let mut query = sqlx::query_scalar::<_, i64>(CANDIDATE_TIMES)
        .bind(tenant.get())
        .bind(hash);
    for bit in probes(hash) {
        query = query.bind(bit);
    }
    let times = query.fetch_all(pool).await?;
    Shared::<Postgres>::event_at_times(pool, tenant, event_id, &times).await
}

/// Drops the blocks whose every event is older than `before` (retention).
pub(crate) async fn delete_before(pool: &PgPool, tenant: TenantId, before: i64) -> Result<()> {
    sqlx::query("DELETE FROM event_id_blocks WHERE tenant_id = $1 AND ts_max < $2")
        .bind(tenant.get())
        .bind(before)
        .execute(pool)
        .await?;
    Ok(())
}

/// Gives every event stored before the blocks existed (a database migrated from an earlier
/// version) its blocks, once. Replicas starting together wait on one lock; the first does the
/// work. Run before the hub serves, after the migrations.
pub(crate) async fn backfill(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(BACKFILL_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = backfill_locked(pool).await;
    let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(BACKFILL_LOCK)
        .execute(&mut *conn)
        .await;
    result.and(unlock.map(|_| ()).map_err(Into::into))
}

async fn backfill_locked(pool: &PgPool) -> Result<()> {
    if Shared::<Postgres>::get_meta(pool, BACKFILLED)
        .await?
        .is_some()
    {
        return Ok(());
    }
    // Every event belongs to a tenant row (a scan of `events` for its tenants would read it all).
    let tenants: Vec<i64> = sqlx::query_scalar("SELECT id FROM tenants ORDER BY id")
        .fetch_all(pool)
        .await?;
    let mut total = 0usize;
    for tenant in tenants {
        let tenant_id = TenantId::from_verified(tenant);
        let (mut after_ts, mut after_id) = (i64::MIN, String::new());
        loop {
            let rows = sqlx::query(
                "SELECT event_id, ts FROM events WHERE tenant_id = $1 AND (ts, event_id) > ($2, $3) \
                 ORDER BY ts, event_id LIMIT $4",
            )
            .bind(tenant)
            .bind(after_ts)
            .bind(&after_id)
            .bind(BACKFILL_PAGE)
            .fetch_all(pool)
            .await?;
            let page: Vec<(String, i64)> = rows
                .iter()
                .map(|r| Ok((r.try_get("event_id")?, r.try_get("ts")?)))
                .collect::<Result<_, sqlx::Error>>()?;
            let Some((last_id, last_ts)) = page.last().cloned() else {
                break;
            };
            let ids: Vec<(&str, i64)> = page.iter().map(|(id, ts)| (id.as_str(), *ts)).collect();
            let mut tx = pool.begin().await?;
            write_ids(&mut tx, tenant_id, &ids).await?;
            tx.commit().await?;
            total += ids.len();
            (after_ts, after_id) = (last_ts, last_id);
        }
    }
    if total > 0 {
        tracing::info!(
            events = total,
            "indexed the ids of events stored before this version"
        );
    }
    Shared::<Postgres>::set_meta(pool, BACKFILLED, "1").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_admits_every_id_it_holds_and_few_others() {
        let ids: Vec<String> = (0..BLOCK_IDS).map(|i| format!("evt-{i}")).collect();
        let pairs: Vec<(&str, i64)> = ids
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i as i64))
            .collect();
        let blocks = blocks(&pairs);
        assert_eq!(blocks.len(), 1);
        let block = &blocks[0];
        assert!(ids.iter().all(|id| block.may_hold(id)));
        assert_eq!((block.ts_min, block.ts_max), (0, BLOCK_IDS as i64 - 1));
        let strangers = 100_000;
        let admitted = (0..strangers)
            .filter(|i| block.may_hold(&format!("other-{i}")))
            .count();
        // Expected ~0.07%; 0.3% would mean the bits are badly spread.
        assert!(
            admitted < strangers * 3 / 1000,
            "{admitted} false positives"
        );
    }

    #[test]
    fn ids_split_into_full_blocks_in_order() {
        let ids: Vec<String> = (0..BLOCK_IDS * 2 + 5).map(|i| i.to_string()).collect();
        let pairs: Vec<(&str, i64)> = ids.iter().map(|s| (s.as_str(), 7)).collect();
        let sizes: Vec<usize> = blocks(&pairs).iter().map(|b| b.hashes.len()).collect();
        assert_eq!(sizes, [BLOCK_IDS, BLOCK_IDS, 5]);
    }

    #[test]
    fn probes_stay_inside_the_filter() {
        for i in 0..10_000 {
            for bit in probes(id_hash(&format!("{i}"))) {
                assert!((0..BLOOM_BITS as i32).contains(&bit));
            }
        }
    }
}
