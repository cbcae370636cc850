//! The registry plugin, built for wasm32-wasip2 and run in the hub's own runtime, syncing from a
//! real HTTP server on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpListener;

use hub_plugin_sdk::testing::{Grants, RuntimeConfig, TestHost};
use serde_json::{Value, json};

fn tags(e: &hub_plugin_sdk::testing::EventRecord) -> Value {
    serde_json::from_str(&e.tags_json).unwrap()
}

#[test]
fn tags_family_context_window_owner_and_lifecycle() {
    let mut host = TestHost::build(env!("CARGO_MANIFEST_DIR")).unwrap();
    host.configure(json!({})).unwrap();
    let out = host
        .enrich_json(
            r#"[
            {"model": "gpt-4o-2024-08-06", "input_tokens": 1},
            {"model": "claude-sonnet-4-20250514", "timestamp": "2026-11-25T10:00:00Z"},
            {"model": "claude-sonnet-4-20250514", "timestamp": "2026-09-01T10:00:00Z"},
            {"model": "nobody-knows-me"},
            {"app": "no model"}
        ]"#,
        )
        .unwrap();
    let t0 = tags(&out.events[0]);
    assert_eq!(t0["model_family"], "gpt-4o");
    assert_eq!(t0["context_window"], "128000");
    assert_eq!(t0["model_owner"], "openai");
    let t1 = tags(&out.events[1]);
    assert_eq!(t1["model_owner"], "anthropic");
    assert_eq!(
        t1["model_lifecycle"], "deprecated",
        "deprecated on 2026-10-14: {t1}"
    );
    assert_eq!(
        tags(&out.events[2])["model_lifecycle"],
        "deprecating",
        "six weeks before"
    );
    assert_eq!(tags(&out.events[3]), json!({}));
    assert_eq!(tags(&out.events[4]), json!({}));
}

/// The registry component with this HTTP grant, syncing from `port` on 127.0.0.1.
fn syncing_host(granted: &str, allow_private: bool, port: u16) -> TestHost {
    syncing_from(granted, allow_private, &format!("127.0.0.1:{port}"))
}

/// The registry component with this HTTP grant, syncing from `authority`.
fn syncing_from(granted: &str, allow_private: bool, authority: &str) -> TestHost {
    let (manifest, wasm) =
        hub_plugin_sdk::testing::built_plugin(env!("CARGO_MANIFEST_DIR")).unwrap();
    let grants = Grants {
        kv: true,
        http: vec![granted.to_string()],
    };
    let config = RuntimeConfig {
        allow_private_http: allow_private,
        ..Default::default()
    };
    let mut host = TestHost::from_parts(&wasm, &manifest, config, Some(grants)).unwrap();
    host.configure(json!({"sync_url": format!("http://{authority}/v1/models")}))
        .unwrap();
    host
}

/// A one-shot HTTP server on 127.0.0.1 answering every request with `body`.
fn serve(body: String, requests: usize) -> (u16, std::thread::JoinHandle<()>) {
    serve_on("127.0.0.1:0", body, requests)
}

fn serve_on(bind: &str, body: String, requests: usize) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind(bind).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for _ in 0..requests {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                body.len(),
                body
            );
        }
    });
    (port, handle)
}

#[test]
fn syncs_from_a_registry_endpoint_into_kv() {
    let catalog = json!({"models": [
        {"model": "acme-llm-2", "family": "acme", "owner": "acme corp", "context_window": 32000, "lifecycle": "preview"},
        {"model": "gpt-4o", "family": "gpt-4o", "owner": "openai", "context_window": 128000, "lifecycle": "retired"}
    ]});
    let (port, server) = serve(catalog.to_string(), 1);
    let mut host = syncing_host(&format!("127.0.0.1:{port}"), true, port);
    let report = host.refresh().unwrap();
    assert_eq!(report.items, 2, "{report:?}");
    server.join().unwrap();
    assert!(
        host.kv().contains_key("catalog"),
        "the catalog is kept in kv"
    );

    let out = host
        .enrich_json(r#"[{"model": "acme-llm-2"}, {"model": "gpt-4o"}]"#)
        .unwrap();
    assert_eq!(tags(&out.events[0])["model_owner"], "acme corp");
    assert_eq!(tags(&out.events[0])["model_lifecycle"], "preview");
    assert_eq!(tags(&out.events[1])["model_lifecycle"], "retired");
}

#[test]
fn a_host_that_is_not_granted_is_refused() {
    let (port, _server) = serve("{}".into(), 0);
    // Granted a different port only.
    let mut host = syncing_host(&format!("127.0.0.1:{}", port.wrapping_add(1)), true, port);
    let e = host.refresh().unwrap_err().to_string();
    assert!(e.contains("denied"), "{e}");
}

#[test]
fn private_addresses_are_refused_unless_the_operator_allows_them() {
    let (port, _server) = serve("{}".into(), 0);
    let mut host = syncing_host(&format!("127.0.0.1:{port}"), false, port);
    let e = host.refresh().unwrap_err().to_string();
    assert!(e.contains("private or loopback"), "{e}");
}

#[test]
fn an_ipv6_literal_is_granted_in_brackets() {
    let catalog = json!({"models": [{"model": "v6-llm", "family": "v6", "owner": "six", "context_window": 1000, "lifecycle": "preview"}]});
    let (port, server) = serve_on("[::1]:0", catalog.to_string(), 1);
    // Written differently in the grant and in the URL: the same address.
    let mut host = syncing_from(
        &format!("[0:0:0:0:0:0:0:1]:{port}"),
        true,
        &format!("[::1]:{port}"),
    );
    assert_eq!(host.refresh().unwrap().items, 1);
    server.join().unwrap();
    // Loopback over IPv6 is as private as over IPv4.
    let mut host = syncing_from(&format!("[::1]:{port}"), false, &format!("[::1]:{port}"));
    let e = host.refresh().unwrap_err().to_string();
    assert!(e.contains("private or loopback"), "{e}");
}
