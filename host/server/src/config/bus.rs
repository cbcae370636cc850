//! `--bus` and `--role`: which bus carries batches from ingest to the pipeline, and what this
//! replica runs.

use anyhow::{Result, bail};

/// What a replica runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The API and the pipeline (and on Kafka, both sides of the bus): the default.
    All,
    /// The API, publishing batches to the Kafka bus; nothing in the background.
    Ingest,
    /// The pipeline consuming the Kafka bus, and the scheduled work (detectors, forecasters,
    /// alerts, deliveries, syncs, re-pricing, maintenance); its HTTP port serves the API too
    /// (health, readiness and metrics are what the load balancer and Prometheus need from it).
    Worker,
}

impl Role {
    pub fn parse(v: &str) -> Result<Self> {
        match v {
            "all" => Ok(Self::All),
            "ingest" => Ok(Self::Ingest),
            "worker" => Ok(Self::Worker),
            _ => bail!("--role {v}: expected all, ingest or worker"),
        }
    }

    /// Consumes the bus and runs the scheduled work.
    pub fn works(self) -> bool {
        self != Self::Ingest
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Ingest => "ingest",
            Self::Worker => "worker",
        }
    }
}

/// The bus as configured; tenants to spread are named (resolved to ids once storage is open).
#[derive(Debug, Clone)]
pub enum Bus {
    Memory,
    Kafka {
        config: hub_bus::kafka::KafkaConfig,
        spread: Vec<(String, i32)>,
    },
}

pub(super) struct BusArgs {
    pub bus: Option<String>,
    pub role: Option<String>,
    pub topic: Option<String>,
    pub group: Option<String>,
    pub partitions: Option<i32>,
    pub replication: Option<i32>,
    pub spread: Vec<String>,
    pub max_lag: Option<i64>,
    pub ack_timeout: Option<String>,
}

pub(super) fn resolve(a: BusArgs) -> Result<(Bus, Role)> {
    let role = Role::parse(a.role.as_deref().unwrap_or("all"))?;
    let url = a.bus.unwrap_or_else(|| "memory".into());
    if url == "memory" {
        if role != Role::All {
            bail!(
                "--role {}: the in-process bus (--bus memory) runs ingest and the pipeline in one process; \
                 roles need --bus kafka://host:port",
                role.as_str()
            );
        }
        return Ok((Bus::Memory, role));
    }
    let mut config = hub_bus::kafka::KafkaConfig::from_url(&url)
        .map_err(|e| anyhow::anyhow!("--bus: {e} (or 'memory')"))?;
    if let Some(t) = a.topic {
        if t.is_empty()
            || t.len() > 200
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            bail!(
                "--bus-topic {t}: a Kafka topic name is 1 to 200 letters, digits, '.', '_' or '-'"
            );
        }
        config.topic = t;
    }
    if let Some(g) = a.group {
        if g.is_empty() {
            bail!("--bus-group: must not be empty");
        }
        config.group = g;
    }
    if let Some(p) = a.partitions {
        if !(1..=10_000).contains(&p) {
            bail!("--bus-partitions {p}: 1 to 10000");
        }
        config.partitions = p;
    }
    if let Some(r) = a.replication {
        if !(1..=16).contains(&r) {
            bail!("--bus-replication {r}: 1 to 16");
        }
        config.replication = r;
    }
    if let Some(l) = a.max_lag {
        if l < 1 {
            bail!("--bus-max-lag {l}: at least 1");
        }
        config.max_lag = l;
    }
    config.ack_timeout = super::timeout("--bus-ack-timeout", a.ack_timeout, "10s")?;
    let spread = a
        .spread
        .into_iter()
        .map(|v| {
            let (tenant, n) = v
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--bus-spread {v}: expected TENANT=PARTITIONS"))?;
            let n: i32 = n
                .parse()
                .ok()
                .filter(|n| (1..=config.partitions).contains(n))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--bus-spread {v}: PARTITIONS must be 1 to --bus-partitions ({})",
                        config.partitions
                    )
                })?;
            Ok((tenant.to_string(), n))
        })
        .collect::<Result<_>>()?;
    Ok((Bus::Kafka { config, spread }, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(bus: Option<&str>, role: Option<&str>) -> BusArgs {
        BusArgs {
            bus: bus.map(String::from),
            role: role.map(String::from),
            topic: None,
            group: None,
            partitions: None,
            replication: None,
            spread: Vec::new(),
            max_lag: None,
            ack_timeout: None,
        }
    }

    #[test]
    fn memory_is_the_default_and_roles_need_kafka() {
        assert!(matches!(
            resolve(args(None, None)).unwrap(),
            (Bus::Memory, Role::All)
        ));
        let e = resolve(args(None, Some("worker"))).unwrap_err().to_string();
        assert!(e.contains("roles need --bus kafka://"), "{e}");
        let (bus, role) = resolve(args(Some("kafka://b:9092"), Some("ingest"))).unwrap();
        assert_eq!(role, Role::Ingest);
        assert!(matches!(bus, Bus::Kafka { ref config, .. } if config.brokers == "b:9092"));
        assert!(resolve(args(Some("kafka://b"), None)).is_err());
        assert!(resolve(args(None, Some("boss"))).is_err());
        let mut a = args(Some("kafka://b:1"), None);
        a.spread = vec!["big=4".into()];
        a.partitions = Some(3);
        let e = resolve(a).unwrap_err().to_string();
        assert!(e.contains("1 to --bus-partitions (3)"), "{e}");
    }
}
