//! Every way a plugin can misbehave is contained: the call fails with an error that names what
//! happened, the host goes on, other instances never notice, and a new instance works.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hub_marketplace::Manifest;
use hub_plugin_sdk::testing::{CallError, TestHost, build_component};
use hub_runtime::{Grants, LoadError, Runtime, RuntimeConfig};
use serde_json::json;

const MANIFEST: &str = include_str!("../plugin.toml");
const EVENTS: &str =
    r#"[{"model": "gpt-4o", "input_tokens": 10}, {"model": "gpt-4o", "input_tokens": 20}]"#;

fn wasm() -> Vec<u8> {
    std::fs::read(build_component(env!("CARGO_MANIFEST_DIR")).unwrap()).unwrap()
}

fn host_version() -> hub_marketplace::manifest::Version {
    hub_marketplace::manifest::Version::new(0, 1, 0)
}

fn host(mode: &str) -> TestHost {
    let mut h = TestHost::from_parts(&wasm(), MANIFEST, RuntimeConfig::default(), None).unwrap();
    h.configure(json!({"mode": mode})).unwrap();
    h
}

/// After the failure, the same host recovers: a new instance runs a good call.
fn recovers(h: &mut TestHost) {
    h.configure(json!({"mode": "ok"})).unwrap();
    let out = h.enrich_json(EVENTS).unwrap();
    assert_eq!(out.applied.applied, 2);
}

#[test]
fn an_infinite_loop_is_stopped_at_the_deadline() {
    let mut h = host("loop");
    let started = Instant::now();
    let e = h.call_enrich(EVENTS).unwrap_err();
    assert_eq!(
        e,
        CallError::Deadline(Duration::from_millis(1000)),
        "the manifest's deadline"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped, not waited out"
    );
    recovers(&mut h);
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    let mut h = host("memory");
    let e = h.call_enrich(EVENTS).unwrap_err();
    assert_eq!(e, CallError::Memory(64), "{e}");
    recovers(&mut h);
}

#[test]
fn a_panic_is_a_trap() {
    let mut h = host("panic");
    let e = h.call_enrich(EVENTS).unwrap_err();
    // The guest's panic message, from its stderr, says why; the trap is named once.
    assert!(
        matches!(&e, CallError::Trap(m) if m.starts_with("it panicked at ") && m.contains("src/lib.rs:")
            && m.contains(": misbehave: panicking on purpose (wasm trap: wasm `unreachable`")
            && !m.contains("wasm trap: wasm trap")),
        "{e}"
    );
    // The broken instance refuses further calls until replaced.
    assert!(matches!(h.call_enrich(EVENTS), Err(CallError::Broken(_))));
    recovers(&mut h);
}

#[test]
fn invalid_and_oversized_answers_are_refused_whole() {
    for (mode, expect) in [
        ("invalid", "row 7 is outside the batch of 2 events"),
        ("bad-type", "`cost-usd` takes a number, not text"),
        ("bad-text", "text 999 is outside the answer's 0 strings"),
        (
            "bad-group",
            "group 0, rows[2]: row 2 is outside the batch of 2 events",
        ),
        (
            "oversized",
            "40 patches for 2 events is over the limit of 16 per event",
        ),
    ] {
        let mut h = host(mode);
        let e = h.enrich_json(EVENTS).unwrap_err().to_string();
        assert!(e.contains(expect), "{mode}: {e}");
        recovers(&mut h);
    }
}

#[test]
fn a_plugin_error_is_reported_with_its_message() {
    let mut h = host("error");
    let e = h.call_enrich(EVENTS).unwrap_err();
    assert_eq!(
        e.to_string(),
        "internal error: misbehave: failing on purpose"
    );
    // Not a trap: the same instance goes on.
    h.configure(json!({"mode": "ok"})).unwrap();
    h.enrich_json(EVENTS).unwrap();
}

#[test]
fn a_log_flood_is_capped() {
    let mut h = host("log-flood");
    let out = h.enrich_json(EVENTS).unwrap();
    assert_eq!(out.applied.applied, 2);
}

#[test]
fn a_forbidden_http_call_is_refused_with_a_clear_error() {
    let mut h = host("http");
    let e = h.call_enrich(EVENTS).unwrap_err().to_string();
    assert!(
        e.contains("request denied by the hub: the host is not granted"),
        "{e}"
    );
}

#[test]
fn kv_writes_over_quota_fail_and_failed_calls_keep_nothing() {
    let mut h = host("kv-quota");
    let e = h.call_enrich(EVENTS).unwrap_err().to_string();
    assert!(e.contains("kv quota exceeded"), "{e}");
    assert!(h.kv().is_empty());
    recovers(&mut h);
    assert_eq!(h.kv().get("calls").map(|v| v.as_slice()), Some(&b"1"[..]));
}

#[test]
fn other_instances_never_notice() {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let manifest = Manifest::parse(MANIFEST, &host_version()).unwrap();
    let plugin = rt.load(manifest, &wasm()).unwrap();
    let grants = Grants {
        kv: true,
        http: vec![],
    };
    let mut bad = rt
        .instantiate(&plugin, "tenant-a", &grants, BTreeMap::new())
        .unwrap();
    let mut good = rt
        .instantiate(&plugin, "tenant-b", &grants, BTreeMap::new())
        .unwrap();
    bad.configure(r#"{"mode": "memory"}"#).unwrap();
    good.configure(r#"{"mode": "ok"}"#).unwrap();
    let events = hub_plugin_sdk::testing::parse_events(EVENTS).unwrap();
    let batch = hub_runtime::batch_from_events(&events, Default::default());
    for _ in 0..3 {
        assert!(bad.enrich(&batch).is_err());
        assert_eq!(good.enrich(&batch).unwrap().patches.len(), 2);
    }
}

#[test]
fn mismatched_components_are_refused_at_load_naming_the_mismatch() {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let wasm = wasm();
    let load = |manifest: &str, bytes: &[u8]| {
        rt.load(Manifest::parse(manifest, &host_version()).unwrap(), bytes)
            .unwrap_err()
    };
    // It calls HTTP, but this manifest does not declare it.
    let e = load(&MANIFEST.replace(r#"http = ["*"]"#, ""), &wasm);
    assert!(
        matches!(&e, LoadError::UndeclaredImport { import, .. } if import.starts_with("wasi:http/")),
        "{e}"
    );
    let e = load(&MANIFEST.replace("kv = true", "kv = false"), &wasm);
    assert!(
        e.to_string().contains("hub:plugin/kv@0.1.0") && e.to_string().contains("kv = true"),
        "{e}"
    );
    // Declared as a detector: it does not export `detect`.
    let e = load(
        &MANIFEST
            .replace("kind = \"enricher\"", "kind = \"detector\"")
            .replace("hub:plugin/enricher@0.2.0", "hub:plugin/detector@0.1.0")
            .replace(r#"http = ["*"]"#, ""),
        &wasm,
    );
    assert!(
        e.to_string()
            .contains("does not implement hub:plugin/detector@0.1.0: missing export `detect`"),
        "{e}"
    );
    // Built with the SDK against hub:plugin@0.2.0, declared as 0.1.0: refused at load, saying so.
    let e = load(
        &MANIFEST.replace("hub:plugin/enricher@0.2.0", "hub:plugin/enricher@0.1.0"),
        &wasm,
    );
    assert!(
        e.to_string().contains(
            "the component is built against hub:plugin@0.2.0: set `world` in plugin.toml"
        ),
        "{e}"
    );
    let e = load(MANIFEST, b"#!/bin/sh\necho not wasm\n");
    assert!(e.to_string().contains("magic bytes"), "{e}");
    // The smallest valid core module.
    let e = load(MANIFEST, b"\0asm\x01\0\0\0");
    assert!(e.to_string().contains("core WebAssembly module"), "{e}");
    // A component header with garbage behind it.
    let mut broken = wasm[..200].to_vec();
    broken.extend_from_slice(&[0xff; 64]);
    let e = load(MANIFEST, &broken);
    assert!(matches!(e, LoadError::NotAComponent(_)), "{e}");
}

#[test]
fn limits_over_the_operator_maxima_are_refused() {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let m = MANIFEST.replace(
        "deadline-ms = 1000",
        "deadline-ms = 1000\nmemory-mib = 4096",
    );
    let e = rt
        .load(Manifest::parse(&m, &host_version()).unwrap(), &wasm())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "limits.memory-mib asks for 4096 MiB; this hub allows at most 256 MiB (the operator's --plugin-max-memory-mib)"
    );
}

#[test]
fn kv_must_be_granted() {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let plugin = rt
        .load(Manifest::parse(MANIFEST, &host_version()).unwrap(), &wasm())
        .unwrap();
    let e = rt
        .instantiate(&plugin, "t", &Grants::default(), BTreeMap::new())
        .unwrap_err();
    assert_eq!(e, LoadError::NotGranted("kv".into()));
}

#[test]
fn compiled_components_are_cached_on_disk_and_corruption_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let wasm = wasm();
    let manifest = || Manifest::parse(MANIFEST, &host_version()).unwrap();
    let first = Runtime::new(config.clone())
        .unwrap()
        .load(manifest(), &wasm)
        .unwrap();
    assert!(!first.from_cache());
    let second = Runtime::new(config.clone())
        .unwrap()
        .load(manifest(), &wasm)
        .unwrap();
    assert!(second.from_cache(), "a restart deserializes");
    // Flip a byte in the artifact: the checksum catches it, the cache recompiles.
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let rt = Runtime::new(config).unwrap();
    let third = rt.load(manifest(), &wasm).unwrap();
    assert!(!third.from_cache());
    let mut i = rt
        .instantiate(
            &third,
            "t",
            &Grants {
                kv: true,
                http: vec![],
            },
            BTreeMap::new(),
        )
        .unwrap();
    i.configure("{}").unwrap();
}
