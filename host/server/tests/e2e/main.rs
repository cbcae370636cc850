//! The real `hub` binary, started as a process: first start and the CLI (`first_start`), durability
//! across kill -9, graceful shutdown and the PostgreSQL backend (`durability`), plugins (`plugins`),
//! benchmarks (`bench`), detectors scheduled by two replicas on one database (`analysis`), scale-out
//! on the Kafka bus under kills of workers, ingest replicas and the broker (`kafka`). The
//! server handle and helpers they share are here.

mod analysis;
mod bench;
mod durability;
mod first_start;
mod kafka;
mod plugins;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hub_api::credentials::lockout;
use serde_json::{Value, json};

const HUB: &str = env!("CARGO_BIN_EXE_hub");
const FLAT: &str = include_str!("../../../../examples/flat-events.json");
const ENVELOPE: &str = include_str!("../../../../examples/upstream-envelope.ndjson");

struct Server {
    child: Child,
    base: String,
    /// The key printed on first start, if this start printed one.
    key: Option<String>,
    /// The first user's email and one-time password, if this start created it.
    admin: Option<(String, String)>,
}

/// `Admin login: EMAIL with one-time password PASSWORD (...)`.
fn admin_line(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("Admin login: ")?;
    let (email, rest) = rest.split_once(" with one-time password ")?;
    Some((email.into(), rest.split_whitespace().next()?.into()))
}

impl Server {
    /// Starts `hub serve` on a free port and waits until it listens.
    #[allow(clippy::zombie_processes)] // Server's Drop kills and waits.
    fn start(data_dir: &Path, extra: &[&str]) -> Server {
        // A free port unless the caller names one (a replica restarted on its address).
        let listen: &[&str] = if extra.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(HUB)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(listen)
            .args(["--max-event-age", "3650d", "--max-event-future", "3650d"])
            .args(extra)
            .env("HUB_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hub");
        let (tx, rx) = mpsc::channel::<(bool, String)>();
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .for_each(|l| drop(tx.send((true, l))))
        });
        std::thread::spawn(move || {
            BufReader::new(err)
                .lines()
                .map_while(Result::ok)
                .for_each(|l| drop(tx2.send((false, l))))
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut key = None;
        let mut admin = None;
        let mut said = Vec::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "hub did not start within 30 s: {said:#?}"
            );
            let (stdout, line) = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| panic!("hub did not start ({e}): {said:#?}"));
            said.push(line.clone());
            if stdout && line.starts_with("hub_") {
                key = Some(line.trim().to_string());
            } else if stdout && admin_line(&line).is_some() {
                admin = admin_line(&line);
            } else if let Some(addr) = line.strip_prefix("hub listening on ") {
                let base = addr.split_whitespace().next().unwrap().to_string();
                // The key is printed to stdout before the listen line goes to stderr, but the two
                // pipes are read by different threads: collect what stdout still has in flight.
                // (Bounded: a hub that keeps logging must not keep this loop going.)
                let until = Instant::now() + Duration::from_secs(2);
                while let Ok((stdout, line)) = rx.recv_timeout(
                    until
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(300)),
                ) {
                    if stdout && line.starts_with("hub_") {
                        key = Some(line.trim().to_string());
                    }
                    if stdout && admin_line(&line).is_some() {
                        admin = admin_line(&line);
                    }
                }
                return Server {
                    child,
                    base,
                    key,
                    admin,
                };
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn sigterm(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "hub did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hub_cli(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(HUB)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("HUB_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn post(
    client: &reqwest::Client,
    s: &Server,
    key: &str,
    ct: &str,
    body: String,
) -> (u16, Value) {
    let r = client
        .post(s.url("/v1/events"))
        .bearer_auth(key)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A replica's `/metrics` as text.
async fn metrics_text(client: &reqwest::Client, s: &Server) -> String {
    client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn get(client: &reqwest::Client, s: &Server, key: &str, path: &str) -> Value {
    let r = client
        .get(s.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// Now, in milliseconds since the epoch.
fn hub_core_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
