//! The Kafka bus: any Kafka-protocol broker between ingest replicas and pipeline workers.
//!
//! - **Topic** `<topic>` (default `hub.ingest`), created with `partitions` partitions if it does
//!   not exist; dead letters go to `<topic>.dead-letters`.
//! - **Partitioning by tenant**: a tenant's batches go to one partition (a stable hash of its id),
//!   so one worker at a time writes it; a tenant named in `spread` goes to that many consecutive
//!   partitions in turn. Rollups stay exact either way, because storage counts an event in the
//!   same transaction that stores it, and only if it was not stored before.
//! - **Publishing** ([`Publisher`]): an idempotent producer, `acks=all`, lz4; a request is answered
//!   once every piece of its batch is acknowledged (or refused when one is not).
//! - **Consuming** ([`worker`]): a consumer group; each batch goes through the worker's own
//!   in-process queue (its capacity and per-tenant share) to the pipeline; a partition's offset is
//!   committed only up to the batches that are stored, so a worker that dies has what it had not
//!   stored redelivered to the next owner, and storage recognises what it had.
//! - **Backpressure and health** ([`watch`]): the group's lag on each partition is read every
//!   second; a tenant whose partition is further behind than `max_lag` batches is answered 429,
//!   and while the broker does not answer, ingest answers 503 and `/readyz` says so.

pub mod codec;
pub mod dlq;
mod publish;
pub mod testing;
pub mod watch;
pub mod worker;

use std::collections::HashMap;
use std::time::Duration;

use hub_core::TenantId;
pub use publish::Publisher;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, ClientContext};
pub use watch::PartitionLag;

/// How the hub uses the broker.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port]`.
    pub brokers: String,
    pub topic: String,
    /// Partitions of the topic when the hub creates it.
    pub partitions: i32,
    /// Replicas of each partition when the hub creates the topic.
    pub replication: i32,
    /// The workers' consumer group.
    pub group: String,
    /// Tenants whose batches go to this many partitions in turn.
    pub spread: HashMap<TenantId, i32>,
    /// Batches a partition may be behind before its tenants' ingest gets 429.
    pub max_lag: i64,
    /// How long a batch may wait for the broker's acknowledgement before ingest answers 503.
    pub ack_timeout: Duration,
    /// The largest message value; a larger batch is published in pieces.
    pub max_message_bytes: usize,
    /// Events in flight to the broker from one ingest replica at most (429 beyond).
    pub producer_capacity: usize,
}

impl KafkaConfig {
    /// `kafka://host:port[,host:port]` (the `--bus` flag) with the defaults.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let brokers = url
            .strip_prefix("kafka://")
            .ok_or_else(|| format!("'{url}' is not kafka://host:port[,host:port]"))?
            .trim_end_matches('/');
        if brokers.is_empty()
            || brokers.split(',').any(|b| {
                b.rsplit_once(':')
                    .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            })
        {
            return Err(format!(
                "'{url}': each broker must be host:port (kafka://host:port[,host:port])"
            ));
        }
        Ok(Self {
            brokers: brokers.to_string(),
            topic: "hub.ingest".into(),
            partitions: 12,
            replication: 1,
            group: "hub-pipeline".into(),
            spread: HashMap::new(),
            max_lag: 2_000,
            ack_timeout: Duration::from_secs(10),
            max_message_bytes: 1024 * 1024,
            producer_capacity: 200_000,
        })
    }

    pub fn dead_letter_topic(&self) -> String {
        format!("{}.dead-letters", self.topic)
    }

    /// Settings every client of this broker shares.
    pub(crate) fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", "hub")
            .set("socket.timeout.ms", "5000")
            .set("reconnect.backoff.max.ms", "2000")
            // librdkafka's own log lines go to ours through `log`; errors only.
            .set("log_level", "3");
        c
    }

    /// An idempotent producer: acks from every in-sync replica, retried without duplicates or
    /// reordering, lz4 on the wire.
    pub(crate) fn producer(&self) -> ClientConfig {
        let mut c = self.client();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "2")
            .set(
                "message.timeout.ms",
                self.ack_timeout.as_millis().max(1).to_string(),
            )
            .set(
                "message.max.bytes",
                (self.max_message_bytes * 2 + 65_536).to_string(),
            )
            .set("queue.buffering.max.kbytes", "262144");
        c
    }

    /// The partition of one of `tenant`'s batches, of `partitions`; `turn` picks among a spread
    /// tenant's partitions.
    pub fn partition_of(&self, tenant: TenantId, partitions: i32, turn: u32) -> i32 {
        let partitions = partitions.max(1);
        let home = (fnv1a(tenant.get()) % partitions as u64) as i32;
        match self.spread.get(&tenant) {
            Some(&n) if n > 1 => (home + (turn % n.min(partitions) as u32) as i32) % partitions,
            _ => home,
        }
    }

    /// The partitions `tenant`'s batches go to.
    pub fn partitions_of(&self, tenant: TenantId, partitions: i32) -> Vec<i32> {
        let n = self
            .spread
            .get(&tenant)
            .copied()
            .unwrap_or(1)
            .clamp(1, partitions.max(1));
        (0..n as u32)
            .map(|t| self.partition_of(tenant, partitions, t))
            .collect()
    }
}

/// The context of every client the hub makes: librdkafka's own log lines and errors at debug
/// level. With the broker down it reports every reconnection attempt (about 20 lines a second);
/// the hub says it once, when readiness changes ([`watch`]), and `/readyz` says why.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        tracing::debug!(target: "librdkafka", ?level, "{fac} {message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for Quiet {}

/// FNV-1a over the id's bytes: stable across builds and platforms (unlike std's hasher).
fn fnv1a(v: i64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_le_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_brokers() {
        assert_eq!(
            KafkaConfig::from_url("kafka://a:9092,b:9093")
                .unwrap()
                .brokers,
            "a:9092,b:9093"
        );
        for bad in [
            "kafka://",
            "kafka://a",
            "kafka://a:x",
            "tcp://a:1",
            "kafka://:1",
        ] {
            assert!(KafkaConfig::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tenant_has_a_home_partition_and_a_spread_one_several() {
        let mut c = KafkaConfig::from_url("kafka://a:1").unwrap();
        let t = TenantId::from_verified(42);
        let home = c.partition_of(t, 12, 0);
        assert!((0..12).contains(&home));
        assert_eq!(c.partition_of(t, 12, 5), home, "unspread: always home");
        assert_eq!(c.partitions_of(t, 12), vec![home]);
        c.spread.insert(t, 4);
        let parts = c.partitions_of(t, 12);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], home);
        assert!((0..100).all(|turn| parts.contains(&c.partition_of(t, 12, turn))));
        // Tenants land on different partitions.
        let homes: std::collections::HashSet<i32> = (1..=50)
            .map(|i| c.partition_of(TenantId::from_verified(i), 12, 0))
            .collect();
        assert!(homes.len() >= 10, "{homes:?}");
    }
}
