//! The hub compiles components in worker processes of its own executable (`hub compile-component`):
//! what a worker writes loads and runs, what it cannot compile is refused with wasmtime's reason,
//! a worker that fails or hangs fails the load with a reason that says so (never the hub), and a
//! hub whose worker cannot be started at all compiles in its own process instead.

use std::path::PathBuf;
use std::time::Duration;

use hub_marketplace::Manifest;
use hub_runtime::{CompileWorker, LoadError, Runtime, RuntimeConfig};

const HUB: &str = env!("CARGO_BIN_EXE_hub");

fn zscore() -> (Manifest, Vec<u8>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/examples/zscore");
    let (manifest, wasm) = hub_plugin_sdk::testing::built_plugin(dir).unwrap();
    let manifest = Manifest::parse(&manifest, &hub_plugins::host_version()).unwrap();
    (manifest, wasm)
}

fn runtime(program: &str, args: &[&str], timeout: Duration, cache: Option<PathBuf>) -> Runtime {
    Runtime::new(RuntimeConfig {
        compile_worker: Some(CompileWorker {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            timeout,
        }),
        cache_dir: cache,
        ..Default::default()
    })
    .unwrap()
}

fn hub_worker(cache: Option<PathBuf>) -> Runtime {
    runtime(HUB, &["compile-component"], Duration::from_secs(600), cache)
}

#[test]
fn what_the_worker_compiles_loads_and_is_cached() {
    let (manifest, wasm) = zscore();
    let dir = tempfile::tempdir().unwrap();
    let cache = Some(dir.path().join("cache"));

    let plugin = hub_worker(cache.clone())
        .load(manifest.clone(), &wasm)
        .unwrap();
    assert!(!plugin.from_cache());
    // The worker's artifact is what a restart finds in the cache, and it instantiates.
    let rt = hub_worker(cache);
    let plugin = rt.load(manifest, &wasm).unwrap();
    assert!(plugin.from_cache());
    rt.instantiate(&plugin, "acme", &Default::default(), Default::default())
        .unwrap();
}

#[test]
fn a_component_the_worker_cannot_compile_is_refused_with_the_reason() {
    let (manifest, wasm) = zscore();
    // A valid header, and a body cut short.
    let cut = &wasm[..wasm.len() / 2];
    let e = hub_worker(None).load(manifest, cut).unwrap_err();
    let LoadError::NotAComponent(reason) = &e else {
        panic!("expected a compile refusal, got {e:?}");
    };
    assert!(!reason.trim().is_empty(), "{e}");
    assert!(!reason.contains("wasm trap"), "{e}");
}

#[test]
fn a_worker_that_fails_or_hangs_fails_the_load_and_says_so() {
    let (manifest, wasm) = zscore();

    let e = runtime("false", &[], Duration::from_secs(60), None)
        .load(manifest.clone(), &wasm)
        .unwrap_err();
    assert!(
        matches!(&e, LoadError::Compile(m) if m.contains("ended with exit status: 1")),
        "{e:?}"
    );

    let hangs = runtime(
        "sh",
        &["-c", "exec sleep 30", "sh"],
        Duration::from_millis(300),
        None,
    );
    let started = std::time::Instant::now();
    let e = hangs.load(manifest, &wasm).unwrap_err();
    assert!(
        matches!(&e, LoadError::Compile(m) if m.contains("longer than 300ms")),
        "{e:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn without_a_worker_the_hub_compiles_in_its_own_process() {
    let (manifest, wasm) = zscore();
    let rt = runtime("/nonexistent/hub", &[], Duration::from_secs(60), None);
    let plugin = rt.load(manifest, &wasm).unwrap();
    rt.instantiate(&plugin, "acme", &Default::default(), Default::default())
        .unwrap();
}
