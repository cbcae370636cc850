//! The dead-letter topic: messages a worker could not read, each with its reason and where it
//! was; listed for the operator (`GET /v1/ops/dead-letters`, `hub dlq list`) and published again
//! to the ingest topic by `hub dlq replay` once the cause is gone (a worker that reads a newer
//! format version, say). A replayed message that still cannot be read comes back here.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaConfig, codec};

/// One dead letter as the operator sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    /// Its offset on the dead-letter topic.
    pub offset: i64,
    /// Milliseconds since the epoch, when it was dead-lettered.
    pub at_ms: Option<i64>,
    /// `<topic>/<partition>@<offset>` it came from.
    pub from: String,
    pub reason: String,
    /// The tenant its headers named, if they did.
    pub tenant: Option<String>,
    pub bytes: usize,
}

/// Sends a message that could not be read to the dead-letter topic, retrying (with the worker's
/// partition waiting) until the broker has it: it is committed past only after that.
pub(crate) async fn send(
    producer: &FutureProducer<super::Quiet>,
    config: &KafkaConfig,
    partition: i32,
    offset: i64,
    payload: &[u8],
    headers: &[(String, Option<Vec<u8>>)],
    reason: &str,
) {
    let topic = config.dead_letter_topic();
    let from = format!("{}/{partition}@{offset}", config.topic);
    let mut delay = Duration::from_millis(200);
    loop {
        let mut h = OwnedHeaders::new_with_capacity(headers.len() + 2);
        for (k, v) in headers {
            if k != codec::HEADER_REASON && k != codec::HEADER_FROM {
                h = h.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
        }
        h = h
            .insert(Header {
                key: codec::HEADER_REASON,
                value: Some(reason),
            })
            .insert(Header {
                key: codec::HEADER_FROM,
                value: Some(&from),
            });
        let record = FutureRecord::<(), [u8]>::to(&topic)
            .payload(payload)
            .headers(h);
        match producer.send(record, Duration::from_secs(5)).await {
            Ok(_) => return,
            Err((e, _)) => {
                tracing::warn!(error = %e, "dead-lettering failed; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn header_text(m: &impl Message, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn reader(config: &KafkaConfig, group: &str) -> Result<BaseConsumer<super::Quiet>, String> {
    let mut c = config.client();
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    c.create_with_context(super::Quiet)
        .map_err(|e| format!("creating a Kafka consumer: {e}"))
}

/// Reads the dead-letter topic from `start` to its end (or until `timeout` passes), handing each
/// message to `each`.
fn read_to_end(
    consumer: &BaseConsumer<super::Quiet>,
    topic: &str,
    start: Offset,
    timeout: Duration,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(5))
        .map_err(|e| format!("reading {topic}: {e}"))?;
    if high <= low {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, start)
        .map_err(|e| e.to_string())?;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return Ok(()),
            Some(Err(e)) => return Err(format!("reading {topic}: {e}")),
            Some(Ok(m)) => {
                each(&m)?;
                if m.offset() + 1 >= high {
                    return Ok(());
                }
            }
        }
    }
    Err(format!("reading {topic} took longer than {timeout:?}"))
}

/// The newest `limit` dead letters (blocking).
pub fn list(config: &KafkaConfig, limit: usize) -> Result<Vec<DeadLetter>, String> {
    let topic = config.dead_letter_topic();
    let consumer = reader(config, &format!("{}.dead-letters-reader", config.group))?;
    let (low, high) = consumer
        .fetch_watermarks(&topic, 0, Duration::from_secs(5))
        .map_err(|e| format!("reading {topic}: {e}"))?;
    let start = (high - limit as i64).max(low);
    let mut out = Vec::new();
    read_to_end(
        &consumer,
        &topic,
        Offset::Offset(start),
        Duration::from_secs(10),
        |m| {
            out.push(DeadLetter {
                offset: m.offset(),
                at_ms: m.timestamp().to_millis(),
                from: header_text(m, codec::HEADER_FROM).unwrap_or_default(),
                reason: header_text(m, codec::HEADER_REASON).unwrap_or_default(),
                tenant: header_text(m, codec::HEADER_TENANT),
                bytes: m.payload_len(),
            });
            Ok(())
        },
    )?;
    out.reverse();
    Ok(out)
}

/// What `hub dlq replay` did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Replayed {
    pub replayed: usize,
    /// Dead letters before this replay's start (replayed by an earlier one).
    pub skipped: i64,
}

/// Publishes every dead letter not replayed before to the ingest topic again, as it was (minus
/// the dead-letter headers), to the partition it came from; remembers how far it got in the
/// group `<group>.dlq-replay` (blocking; call it outside an async runtime's workers).
pub fn replay(config: &KafkaConfig) -> Result<Replayed, String> {
    let producer: FutureProducer<super::Quiet> = config
        .producer()
        .create_with_context(super::Quiet)
        .map_err(|e| format!("creating the Kafka producer: {e}"))?;
    let topic = config.dead_letter_topic();
    let group = format!("{}.dlq-replay", config.group);
    let consumer = reader(config, &group)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .map_err(|e| format!("reading {group}'s offset: {e}"))?;
    let (low, _) = consumer
        .fetch_watermarks(&topic, 0, Duration::from_secs(5))
        .map_err(|e| format!("reading {topic}: {e}"))?;
    let start = match committed.find_partition(&topic, 0).map(|e| e.offset()) {
        Some(Offset::Offset(o)) => o.max(low),
        _ => low,
    };
    let mut report = Replayed {
        skipped: start - low,
        ..Default::default()
    };
    let mut next = None;
    read_to_end(
        &consumer,
        &topic,
        Offset::Offset(start),
        Duration::from_secs(120),
        |m| {
            let mut h = OwnedHeaders::new();
            if let Some(headers) = m.headers() {
                for x in headers.iter() {
                    if x.key != codec::HEADER_REASON && x.key != codec::HEADER_FROM {
                        h = h.insert(Header {
                            key: x.key,
                            value: x.value,
                        });
                    }
                }
            }
            let partition = header_text(m, codec::HEADER_FROM)
                .and_then(|f| f.rsplit_once('/')?.1.split_once('@')?.0.parse::<i32>().ok());
            let mut record = FutureRecord::<[u8], [u8]>::to(&config.topic)
                .payload(m.payload().unwrap_or_default())
                .headers(h);
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            if let Some(p) = partition {
                record = record.partition(p);
            }
            futures::executor::block_on(producer.send(record, Duration::from_secs(5)))
                .map_err(|(e, _)| format!("publishing offset {} again: {e}", m.offset()))?;
            report.replayed += 1;
            next = Some(m.offset() + 1);
            Ok(())
        },
    )?;
    if let Some(n) = next {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(n))
            .map_err(|e| e.to_string())?;
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| format!("remembering the replay: {e}"))?;
    }
    Ok(report)
}
