//! A real Kafka-protocol broker for tests: tansu (`cargo install tansu --locked --features
//! dynostore`), found as `$HUB_TEST_TANSU`, on the `PATH` or in `~/.cargo/bin`, started on a free
//! port and killed when dropped. Tests that need it panic with these instructions when it is
//! missing: the Kafka bus's tests are part of the suite and must not pass without a broker.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TANSU_VAR: &str = "HUB_TEST_TANSU";

/// The tansu binary.
pub fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var(TANSU_VAR) {
        return p.into();
    }
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("tansu"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu")));
    for c in candidates {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "no Kafka-protocol broker for the Kafka bus tests: install one with \
         `cargo install tansu --locked --features dynostore` (scripts/test does) or set {TANSU_VAR}"
    )
}

/// A running broker.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    storage: String,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    /// A broker keeping its data in memory (lost when it stops).
    pub fn start() -> Self {
        Self::start_with("memory://tansu/")
    }

    /// A broker with the given storage engine (`postgres://…` keeps data across restarts).
    pub fn start_with(storage: &str) -> Self {
        let log = std::env::temp_dir().join(format!(
            "hub-tansu-{}-{}.log",
            std::process::id(),
            free_port()
        ));
        let mut b = Self {
            child: None,
            port: free_port(),
            storage: storage.to_string(),
            log,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &self.storage])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen within 20 s: see {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kafka://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("kafka://127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one message as it is (any headers, any value) to a partition of the ingest topic: what a
/// client that is not this hub, or a newer hub, might write.
pub async fn produce_raw(
    config: &super::KafkaConfig,
    partition: i32,
    headers: &[(&str, &str)],
    value: &[u8],
) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = config.producer().create().unwrap();
    let mut h = OwnedHeaders::new();
    for (k, v) in headers {
        h = h.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    let record = FutureRecord::<(), [u8]>::to(&config.topic)
        .partition(partition)
        .payload(value)
        .headers(h);
    producer
        .send(record, Duration::from_secs(5))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}
