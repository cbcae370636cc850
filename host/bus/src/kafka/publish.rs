//! The ingest side: a batch published to the tenant's partition, answered once the broker has it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use hub_core::{EventRecord, TenantId};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::{Semaphore, oneshot};

use super::watch::{PartitionLag, Watch};
use super::{KafkaConfig, codec};
use crate::{AckReceiver, BusError, Committed, Refused, Saturated};

/// Publishes batches to the ingest topic.
pub struct Publisher {
    producer: FutureProducer<super::Quiet>,
    config: KafkaConfig,
    watch: Arc<Watch>,
    permits: Arc<Semaphore>,
    depth: Arc<AtomicUsize>,
    turn: AtomicU32,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("brokers", &self.config.brokers)
            .field("topic", &self.config.topic)
            .finish()
    }
}

/// The headers of a message of `tenant` with `n` events.
pub(crate) fn headers(tenant: TenantId, n: usize) -> OwnedHeaders {
    let (schema, tenant, n) = (
        codec::SCHEMA.to_string(),
        tenant.get().to_string(),
        n.to_string(),
    );
    OwnedHeaders::new_with_capacity(3)
        .insert(Header {
            key: codec::HEADER_SCHEMA,
            value: Some(&schema),
        })
        .insert(Header {
            key: codec::HEADER_TENANT,
            value: Some(&tenant),
        })
        .insert(Header {
            key: codec::HEADER_EVENTS,
            value: Some(&n),
        })
}

impl Publisher {
    pub fn new(config: KafkaConfig, watch: Arc<Watch>) -> Result<Self, String> {
        let producer: FutureProducer<super::Quiet> = config
            .producer()
            .create_with_context(super::Quiet)
            .map_err(|e| format!("creating the Kafka producer: {e}"))?;
        let capacity = config.producer_capacity.clamp(1, Semaphore::MAX_PERMITS);
        Ok(Self {
            producer,
            permits: Arc::new(Semaphore::new(capacity)),
            depth: Arc::new(AtomicUsize::new(0)),
            turn: AtomicU32::new(0),
            config,
            watch,
        })
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    pub(crate) fn producer(&self) -> &FutureProducer<super::Quiet> {
        &self.producer
    }

    pub(crate) fn ready(&self) -> Result<(), String> {
        self.watch.partitions().map(|_| ())
    }

    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.config.producer_capacity
    }

    pub(crate) fn lag(&self) -> Vec<PartitionLag> {
        self.watch.lag()
    }

    /// Sends the batch (in pieces of at most `max_message_bytes`) to the tenant's partition; the
    /// receiver completes when the broker has acknowledged every piece, or with the first
    /// piece's error.
    pub(crate) fn publish(
        &self,
        tenant: TenantId,
        events: Vec<EventRecord>,
    ) -> Result<AckReceiver, Refused> {
        let partitions = self.watch.partitions().map_err(Refused::Unavailable)?;
        for p in self.config.partitions_of(tenant, partitions) {
            let lag = self.watch.lag_of(p);
            if lag > self.config.max_lag {
                return Err(Refused::Saturated(Saturated::Lag {
                    partition: p,
                    lag,
                    bound: self.config.max_lag,
                }));
            }
        }
        let n = events.len();
        let permit = u32::try_from(n.max(1))
            .ok()
            .and_then(|k| self.permits.clone().try_acquire_many_owned(k).ok())
            .ok_or(Refused::Saturated(Saturated::Hub {
                queued: self.depth(),
                capacity: self.config.producer_capacity,
            }))?;
        let messages = codec::encode(&events, self.config.max_message_bytes);
        // A piece over the bound is one event alone: the broker would refuse it (its own limit is
        // about 1 MiB by default), so it is refused here, saying which.
        if let Some(i) = messages
            .iter()
            .position(|(v, _)| v.len() > self.config.max_message_bytes)
        {
            let index: usize = messages[..i].iter().map(|(_, n)| n).sum();
            return Err(Refused::TooLarge(format!(
                "event {index} is {} bytes as the Kafka bus carries it; at most {} fit one message",
                messages[i].0.len(),
                self.config.max_message_bytes
            )));
        }
        drop(events);
        let key = tenant.get().to_string();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut deliveries = Vec::with_capacity(messages.len());
        for (i, (value, count)) in messages.iter().enumerate() {
            let partition =
                self.config
                    .partition_of(tenant, partitions, turn.wrapping_add(i as u32));
            let record = FutureRecord::to(&self.config.topic)
                .partition(partition)
                .key(&key)
                .payload(value)
                .headers(headers(tenant, *count));
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                // The pieces already sent may be stored: the client resends the whole batch and
                // storage recognises them.
                Err((e, _)) => {
                    return Err(match e.rdkafka_error_code() {
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull) => {
                            Refused::Saturated(Saturated::Hub {
                                queued: self.depth(),
                                capacity: self.config.producer_capacity,
                            })
                        }
                        _ => Refused::Unavailable(e.to_string()),
                    });
                }
            }
        }
        self.depth.fetch_add(n, Ordering::Relaxed);
        let depth = self.depth.clone();
        let watch = self.watch.clone();
        let (ack, rx) = oneshot::channel();
        tokio::spawn(async move {
            let mut failed = None;
            for d in deliveries {
                match d.await {
                    Ok(Ok(delivered)) => watch.published(delivered.partition, delivered.offset),
                    Ok(Err((e, _))) => {
                        failed.get_or_insert(e.to_string());
                    }
                    Err(_) => {
                        failed.get_or_insert("the producer stopped".to_string());
                    }
                }
            }
            depth.fetch_sub(n, Ordering::Relaxed);
            drop(permit);
            let _ = ack.send(match failed {
                None => Ok(Committed {
                    pending: n,
                    ..Default::default()
                }),
                Some(e) => Err(BusError::Broker(e)),
            });
        });
        Ok(rx)
    }

    /// Waits up to `timeout` for what was sent to be acknowledged (at shutdown).
    pub fn flush(&self, timeout: std::time::Duration) {
        use rdkafka::producer::Producer;
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "the Kafka producer did not flush");
        }
    }
}
