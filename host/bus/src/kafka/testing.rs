//! A real Kafka-protocol broker for tests: tansu with its SQLite storage (`scripts/kafka-broker`
//! builds it), found as `$HUB_TEST_TANSU`, on the `PATH` or in `~/.cargo/bin`, started on a free
//! port with its log in a directory of its own (so that it survives a restart), killed and the
//! directory removed when dropped. Tests that need it panic with these instructions when it is
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
        "no Kafka-protocol broker for the Kafka bus tests: build one with scripts/kafka-broker \
         (scripts/test does) and set {TANSU_VAR} to the path it prints"
    )
}

/// A running broker.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    /// Its working directory: the SQLite log (`tansu.db`) and its output (`tansu.log`).
    dir: PathBuf,
}

/// A port nothing listens on now (the OS's next free one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    /// A broker keeping its log in SQLite (`sqlite://tansu.db`, relative to its directory).
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("hub-tansu-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut b = Self {
            child: None,
            port,
            dir,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .unwrap();
        let child = Command::new(tansu())
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
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
                self.dir.join("tansu.log").display()
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
        let _ = std::fs::remove_dir_all(&self.dir);
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
    let producer: FutureProducer<super::Quiet> =
        config.producer().create_with_context(super::Quiet).unwrap();
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
