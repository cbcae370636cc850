//! The author's CLI on plugins it did not build itself and on plugins that reach out: `hub plugin
//! build|test|pack --component` with the componentize-py example, and `hub plugin test` refusing
//! loopback as a hub does unless told otherwise.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

const HUB: &str = env!("CARGO_BIN_EXE_hub");

fn hub(dir: &Path, args: &[&str]) -> Output {
    // Plugin builds share the workspace's wasm target directory (a cache).
    let wasm_target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/hub-plugin-wasm");
    Command::new(HUB)
        .args(args)
        .current_dir(dir)
        .env("HUB_PLUGIN_TARGET_DIR", wasm_target)
        .env("HUB_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_component_built_by_other_means_is_checked_tested_and_packed() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("latency-slo");
    std::fs::create_dir(&plugin).unwrap();
    // The Python example as componentize-py built it: no Cargo crate anywhere near it.
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins/latency-slo");
    for f in ["plugin.toml", "README.md", "latency-slo.wasm"] {
        std::fs::copy(dist.join(f), plugin.join(f)).unwrap();
    }
    let o = hub(dir.path(), &["keys", "generate", "--out", "author.key"]);
    assert!(o.status.success(), "{}", text(&o));

    let component = [
        "--path",
        "latency-slo",
        "--component",
        "latency-slo/latency-slo.wasm",
    ];
    let o = hub(dir.path(), &[&["plugin", "build"][..], &component].concat());
    assert!(
        o.status.success() && text(&o).starts_with("checked latency-slo "),
        "{}",
        text(&o)
    );
    std::fs::write(
        dir.path().join("events.json"),
        r#"[{"model": "gpt-4o", "latency_ms": 9000}, {"model": "gpt-4o", "latency_ms": 20}]"#,
    )
    .unwrap();
    let o = hub(
        dir.path(),
        &[&["plugin", "test", "events.json"][..], &component].concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["events"].as_array().unwrap().len(), 2, "{out}");
    assert_ne!(
        out["events"][0]["changed"], out["events"][1]["changed"],
        "a slow and a fast call are told apart: {out}"
    );

    let o = hub(
        dir.path(),
        &[
            &[
                "plugin",
                "pack",
                "--key",
                "author.key",
                "--out",
                "slo.hubpkg",
            ][..],
            &component,
        ]
        .concat(),
    );
    assert!(
        o.status.success() && text(&o).starts_with("packed latency-slo "),
        "{}",
        text(&o)
    );
    let bytes = std::fs::read(dir.path().join("slo.hubpkg")).unwrap();
    let package = hub_marketplace::Package::from_bytes(&bytes, 1 << 30).unwrap();
    assert_eq!(
        package.component,
        std::fs::read(plugin.join("latency-slo.wasm")).unwrap(),
        "the component is packed as it was given"
    );

    // Without --component, a directory that is no crate says what it lacks.
    let o = hub(
        dir.path(),
        &[
            "plugin",
            "pack",
            "--key",
            "author.key",
            "--path",
            "latency-slo",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("Cargo.toml"), "{}", text(&o));
}

/// One HTTP answer on 127.0.0.1, for each connection that comes.
fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let mut s = s.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    port
}

#[test]
fn plugin_test_keeps_the_hubs_http_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.json"), r#"[{"model": "m"}]"#).unwrap();
    let port = serve();
    let misbehave = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/testing/misbehave");
    let config = format!(r#"{{"mode": "fetch", "url": "http://127.0.0.1:{port}/"}}"#);
    let grant = format!("http:127.0.0.1:{port}");
    let run = |extra: &[&str]| {
        let args = [
            &[
                "plugin",
                "test",
                "events.json",
                "--path",
                misbehave.to_str().unwrap(),
                "--plugin-config",
                &config,
            ][..],
            extra,
        ]
        .concat();
        hub(dir.path(), &args)
    };
    // Not granted: the manifest asks for any host (`*`), which grants none by itself.
    let o = run(&[]);
    assert!(
        !o.status.success() && text(&o).contains("not granted"),
        "{}",
        text(&o)
    );
    // Granted (kv too, without which it does not load, as in a hub), but loopback: refused as a
    // hub refuses it.
    let o = run(&["--grant", "kv", "--grant", &grant]);
    assert!(
        !o.status.success() && text(&o).contains("private or loopback"),
        "{}",
        text(&o)
    );
    // As a hub started with --plugin-allow-private-http.
    let o = run(&["--grant", "kv", "--grant", &grant, "--allow-private-http"]);
    assert!(o.status.success(), "{}", text(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        out["events"][0]["changed"]["tags"]["fetched"], "204",
        "{out}"
    );
    // A grant the manifest does not ask for is refused as the hub refuses it.
    let o = run(&["--grant", "kv", "--grant", "http:[::1"]);
    assert!(
        !o.status.success() && text(&o).contains("grants.http[0]"),
        "{}",
        text(&o)
    );
}
