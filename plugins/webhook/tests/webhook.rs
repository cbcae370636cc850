//! The webhook component, built for wasm32-wasip2 and run in the hub's own runtime, posting to a
//! real HTTP server on 127.0.0.1 that checks what it receives as a receiver would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use hub_plugin_sdk::testing::{Alert, AlertSeverity, AlertState, Grants, RuntimeConfig, TestHost};
use serde_json::{Value, json};
use sha2::Sha256;

/// One request as the server read it.
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A server on 127.0.0.1 answering each request with the next of `statuses`, sending what it
/// read to the returned channel. A status of 0 never answers.
fn serve(statuses: Vec<u16>) -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for status in statuses {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap();
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let _ = tx.send(Received {
                request_line: request_line.trim_end().to_string(),
                headers,
                body,
            });
            if status == 0 {
                std::thread::sleep(Duration::from_secs(3));
                continue;
            }
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno"
            );
        }
    });
    (port, rx)
}

fn host(granted: &str, allow_private: bool, http_timeout: Duration) -> TestHost {
    let (manifest, wasm) =
        hub_plugin_sdk::testing::built_plugin(env!("CARGO_MANIFEST_DIR")).unwrap();
    let grants = Grants {
        kv: false,
        http: vec![granted.to_string()],
    };
    let config = RuntimeConfig {
        allow_private_http: allow_private,
        http_timeout,
        ..Default::default()
    };
    TestHost::from_parts(&wasm, &manifest, config, Some(grants)).unwrap()
}

/// A notice as the hub hands it (0.3.0's alert): the webhook, built against 0.1.0, gets it as
/// 0.1.0's, state and the hub's severity among its labels.
fn alert(id: &str, state: &str) -> Alert {
    Alert {
        id: id.into(),
        rule: "gpt-4o errors".into(),
        rule_kind: "threshold".into(),
        state: if state == "resolved" {
            AlertState::Resolved
        } else {
            AlertState::Firing
        },
        repeat: false,
        severity: AlertSeverity::Critical,
        ts_ms: 1_790_000_000_000,
        summary: "error_rate of model=gpt-4o is 0.5 (> 0.1 over 5m)".into(),
        group: vec![("model".into(), "gpt-4o".into())],
        labels: vec![("team".into(), "search".into())],
        value: Some(0.5),
    }
}

const SECRET: &str = "s3cret-shared-with-the-receiver";

#[test]
fn a_batch_is_one_post_signed_over_its_timestamp_and_body() {
    let (port, got) = serve(vec![204]);
    let mut h = host(&format!("127.0.0.1:{port}"), true, Duration::from_secs(5));
    h.configure(
        json!({"url": format!("http://127.0.0.1:{port}/hooks/llm?team=search"), "secret": SECRET}),
    )
    .unwrap();
    h.on_alerts(&[alert("7", "firing"), alert("8", "resolved")])
        .unwrap();
    let r = got.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(r.request_line, "POST /hooks/llm?team=search HTTP/1.1");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert!(r.header("transfer-encoding").is_none(), "not chunked");

    // Checked as a receiver does: the timestamp is recent, the MAC is over "<t>.<body>".
    let sig = r.header("x-hub-signature").expect("signed");
    let (t, v1) = sig
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(t.parse().unwrap()) < 60, "{t} vs {now}");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.body);
    mac.verify_slice(&hex::decode(v1).unwrap())
        .expect("the signature verifies");
    // Tampering with the body breaks it.
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.body[1..]);
    assert!(mac.verify_slice(&hex::decode(v1).unwrap()).is_err());

    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["version"], 1);
    let alerts = doc["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "one POST for the batch");
    assert_eq!(alerts[0]["id"], "7");
    assert_eq!(alerts[0]["state"], "firing");
    assert_eq!(alerts[1]["state"], "resolved");
    assert_eq!(alerts[0]["rule"], "gpt-4o errors");
    assert_eq!(alerts[0]["labels"]["team"], "search");
    assert_eq!(alerts[0]["ts_ms"], 1_790_000_000_000i64);
}

#[test]
fn without_a_secret_nothing_is_signed_and_slack_gets_its_own_message() {
    let (port, got) = serve(vec![200]);
    let mut h = host(&format!("127.0.0.1:{port}"), true, Duration::from_secs(5));
    h.configure(
        json!({"url": format!("http://127.0.0.1:{port}/services/T0/B0/x"), "format": "slack"}),
    )
    .unwrap();
    h.on_alerts(&[alert("7", "firing")]).unwrap();
    let r = got.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(r.header("x-hub-signature").is_none());
    let msg: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        msg["text"],
        // Slack's control characters escaped, as its API asks.
        ":rotating_light: *[FIRING] gpt-4o errors*: error_rate of model=gpt-4o is 0.5 (&gt; 0.1 over 5m)"
    );
    assert_eq!(msg["blocks"][0]["text"]["type"], "mrkdwn");
}

#[test]
fn a_busy_endpoint_is_unavailable_and_a_wrong_one_is_a_configuration_to_fix() {
    let (port, _got) = serve(vec![503, 404]);
    let mut h = host(&format!("127.0.0.1:{port}"), true, Duration::from_secs(5));
    h.configure(json!({"url": format!("http://127.0.0.1:{port}/"), "secret": SECRET}))
        .unwrap();
    let e = h
        .on_alerts(&[alert("7", "firing")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("unavailable") && e.contains("503"), "{e}");
    let e = h
        .on_alerts(&[alert("7", "firing")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad configuration") && e.contains("404"), "{e}");
}

#[test]
fn an_endpoint_that_never_answers_times_out_as_unavailable() {
    let (port, got) = serve(vec![0]);
    let mut h = host(
        &format!("127.0.0.1:{port}"),
        true,
        Duration::from_millis(300),
    );
    h.configure(json!({"url": format!("http://127.0.0.1:{port}/")}))
        .unwrap();
    let e = h
        .on_alerts(&[alert("7", "firing")])
        .unwrap_err()
        .to_string();
    assert!(
        got.recv_timeout(Duration::from_secs(5)).is_ok(),
        "it was sent"
    );
    assert!(e.contains("unavailable"), "{e}");
}

#[test]
fn loopback_is_refused_unless_the_operator_allows_it_and_so_is_a_host_not_granted() {
    let (port, _got) = serve(vec![]);
    let mut h = host(&format!("127.0.0.1:{port}"), false, Duration::from_secs(5));
    h.configure(json!({"url": format!("http://127.0.0.1:{port}/")}))
        .unwrap();
    let e = h
        .on_alerts(&[alert("7", "firing")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad configuration") && e.contains("private or loopback"),
        "{e}"
    );

    let mut h = host("hooks.example.com", true, Duration::from_secs(5));
    h.configure(json!({"url": format!("http://127.0.0.1:{port}/")}))
        .unwrap();
    let e = h
        .on_alerts(&[alert("7", "firing")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not granted"), "{e}");
}

#[test]
fn a_configuration_the_schema_or_the_plugin_refuses_names_its_field() {
    let mut h = host("hooks.example.com", true, Duration::from_secs(5));
    for (config, field) in [
        (json!({}), "url"),
        (json!({"url": "ftp://x"}), "url"),
        (
            json!({"url": "https://hooks.example.com/", "secret": "short"}),
            "secret",
        ),
        (
            json!({"url": "https://hooks.example.com/", "format": "xml"}),
            "format",
        ),
        (
            json!({"url": "https://hooks.example.com/", "header": "x"}),
            "header",
        ),
    ] {
        let e = h.configure(config.clone()).unwrap_err().to_string();
        assert!(e.contains(field), "{config}: {e}");
    }
}

#[test]
fn a_batch_larger_than_the_hosts_buffers_arrives_whole() {
    let (port, got) = serve(vec![204]);
    let mut h = host(&format!("127.0.0.1:{port}"), true, Duration::from_secs(5));
    h.configure(json!({"url": format!("http://127.0.0.1:{port}/"), "secret": SECRET}))
        .unwrap();
    // About 250 KB: written while the host sends it, not before (which waited for ever).
    let many: Vec<Alert> = (0..1_000)
        .map(|i| alert(&i.to_string(), "firing"))
        .collect();
    h.on_alerts(&many).unwrap();
    let r = got.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(r.body.len() > 200_000, "{}", r.body.len());
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["alerts"].as_array().unwrap().len(), 1_000);
}
