//! The ingest bus as this replica uses it: the in-process queue, or the Kafka bus's publisher and
//! (for a worker) its consumer; and `hub dlq`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hub_bus::kafka::{KafkaConfig, Publisher, watch::Watch, worker::Worker};
use hub_bus::{BusConsumer, BusProducer};
use hub_storage::Storage;

use crate::config::Settings;
use crate::config::bus::Bus;

/// What `hub serve` wires: a producer always; the pipeline's consumer when this replica works.
pub struct Wiring {
    pub producer: BusProducer,
    pub consumer: Option<BusConsumer>,
    pub worker: Option<Worker>,
}

/// The Kafka configuration with the spread tenants' names resolved to ids.
async fn kafka_config(
    config: &KafkaConfig,
    spread: &[(String, i32)],
    storage: &dyn Storage,
) -> Result<KafkaConfig> {
    let mut config = config.clone();
    for (name, n) in spread {
        let tenant = storage
            .tenants()
            .tenant_by_name(name)
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--bus-spread {name}=…: there is no tenant named `{name}` (create it first)"
                )
            })?;
        config.spread.insert(tenant.id, *n);
    }
    Ok(config)
}

pub async fn open(settings: &Settings, storage: &dyn Storage) -> Result<Wiring> {
    let works = settings.role.works();
    match &settings.bus {
        Bus::Memory => {
            let (producer, consumer) =
                hub_bus::in_process(settings.queue_capacity, settings.tenant_queue_capacity);
            Ok(Wiring {
                producer,
                consumer: Some(consumer),
                worker: None,
            })
        }
        Bus::Kafka { config, spread } => {
            let config = kafka_config(config, spread, storage).await?;
            // The hub starts whether or not the broker answers: /readyz says which, and ingest
            // answers 503 until it does.
            let watch = Watch::spawn(config.clone(), Duration::from_secs(1))
                .map_err(|e| anyhow::anyhow!("the Kafka bus: {e}"))?;
            let publisher = Arc::new(
                Publisher::new(config.clone(), watch).map_err(|e| anyhow::anyhow!("{e}"))?,
            );
            let (consumer, worker) = if works {
                let (c, w) = hub_bus::kafka::worker::spawn(
                    &publisher,
                    settings.queue_capacity,
                    settings.tenant_queue_capacity,
                )
                .map_err(|e| anyhow::anyhow!("the Kafka bus: {e}"))?;
                (Some(c), Some(w))
            } else {
                (None, None)
            };
            tracing::info!(brokers = %config.brokers, topic = %config.topic, group = %config.group,
                role = settings.role.as_str(), "the ingest bus is Kafka");
            Ok(Wiring {
                producer: BusProducer::kafka(publisher),
                consumer,
                worker,
            })
        }
    }
}

/// `hub dlq list|replay`: the Kafka bus's dead letters.
pub async fn dlq(args: crate::config::ServeArgs, replay: bool, limit: usize) -> Result<()> {
    let settings = args.resolve()?;
    let Bus::Kafka { config, .. } = settings.bus else {
        anyhow::bail!(
            "the in-process bus has no dead letters: name the Kafka bus with --bus kafka://host:port"
        );
    };
    if replay {
        let report = tokio::task::spawn_blocking(move || hub_bus::kafka::dlq::replay(&config))
            .await?
            .map_err(|e| anyhow::anyhow!(e))
            .context("replaying the dead letters")?;
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let letters =
            tokio::task::spawn_blocking(move || hub_bus::kafka::dlq::list(&config, limit))
                .await?
                .map_err(|e| anyhow::anyhow!(e))?;
        println!("{}", serde_json::to_string_pretty(&letters)?);
    }
    Ok(())
}
