//! Compiling components into artifacts, and artifacts into loaded components.
//!
//! Compiling a large component (CPython inside) allocates hundreds of MiB of temporaries, and the
//! allocator keeps freed memory with the pages and threads it came from: in-process, a first start
//! that compiled the first-party plugins stayed ~170 MiB above a restart that loaded them from the
//! cache, however the heap was trimmed afterwards. So the `hub` binary compiles in a **worker
//! process** ([`CompileWorker`], itself run as `hub compile-component`), whose memory all goes back
//! to the system when it exits, and which a hostile component's compile cannot take the hub down
//! with (it is killed at its timeout). Without a worker (library users, tests), a compile runs on
//! threads of its own that end when it is done, and the freed heap is returned.
//!
//! Either way the result is an artifact (what `Engine::precompile_component` writes), which the
//! cache stores and [`load`] turns into a component: a first start and a restart hold the same.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::{LoadError, error_text, heap};

/// A process that compiles one component: it reads the component on stdin and writes the
/// artifact on stdout ([`worker_main`]). It is given the engine settings that shape the code
/// (`--max-memory-bytes`, `--max-instances`) after `args`.
#[derive(Debug, Clone)]
pub struct CompileWorker {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Killed after this long: the compile fails, naming it.
    pub timeout: Duration,
}

/// The worker's exit code when the component does not compile (its reason on stderr).
const NOT_A_COMPONENT: i32 = 2;

/// The engine's settings: the hub's and a compile worker's must agree, or the artifact is refused
/// when loaded.
pub(crate) fn engine_config(max_memory_bytes: usize, max_instances: u32) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        .concurrency_support(false)
        .cranelift_opt_level(wasmtime::OptLevel::Speed)
        .parallel_compilation(true);
    let mut pool = PoolingAllocationConfig::default();
    let n = max_instances.max(1);
    pool.total_component_instances(n)
        .total_core_instances(n * 16)
        .total_memories(n * 2)
        .total_tables(n * 4)
        .total_stacks(n)
        .max_core_instances_per_component(64)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        .table_elements(100_000)
        .max_core_instance_size(16 << 20)
        .max_component_instance_size(4 << 20)
        .max_memory_size(max_memory_bytes);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

/// Compiles `wasm` into an artifact, in the worker when there is one.
pub(crate) fn artifact(
    engine: &Engine,
    wasm: &[u8],
    worker: Option<&CompileWorker>,
    settings: (usize, u32),
) -> Result<Vec<u8>, LoadError> {
    if let Some(w) = worker {
        match in_worker(w, wasm, settings) {
            Ok(artifact) => return Ok(artifact),
            Err(WorkerError::Load(e)) => return Err(e),
            Err(WorkerError::Unavailable(e)) => {
                tracing::warn!(program = %w.program.display(), error = %e, "the compile worker could not be started; compiling in this process")
            }
        }
    }
    in_process(engine, wasm)
}

/// The component an artifact holds.
pub(crate) fn load(engine: &Engine, artifact: &[u8]) -> Result<Component, LoadError> {
    // SAFETY: every artifact that reaches here was written by `Engine::precompile_component`: by
    // this engine, or by a compile worker running this same executable with this engine's
    // settings (`engine_config`), or read back from the cache after its checksum matched what
    // one of those wrote. wasmtime checks the version and settings it was compiled with.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, artifact) };
    component.map_err(|e| LoadError::Cache(format!("loading the compiled component: {e}")))
}

/// Compiles on threads of its own (one per core), joined when it is done, then returns the freed
/// heap: the allocator keeps what a thread freed with that thread while it lives (rayon's global
/// pool lives for ever).
fn in_process(engine: &Engine, wasm: &[u8]) -> Result<Vec<u8>, LoadError> {
    let compile = || {
        engine
            .precompile_component(wasm)
            .map_err(|e| LoadError::NotAComponent(error_text(&e)))
    };
    let compiled = std::thread::scope(|scope| {
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("plugin-compile-{i}"))
            .spawn_handler(|thread| {
                let mut b = std::thread::Builder::new();
                if let Some(name) = thread.name() {
                    b = b.name(name.to_string());
                }
                b.spawn_scoped(scope, || thread.run())?;
                Ok(())
            })
            .build();
        match pool {
            // Dropping the pool ends its threads; the scope joins them.
            Ok(pool) => pool.install(compile),
            // No threads to be had: compile on this one.
            Err(_) => compile(),
        }
    });
    heap::return_free_heap();
    compiled
}

enum WorkerError {
    /// The component did not compile, or the worker failed on it: the load fails.
    Load(LoadError),
    /// No worker could be run at all: compile in this process instead.
    Unavailable(std::io::Error),
}

fn in_worker(
    w: &CompileWorker,
    wasm: &[u8],
    (max_memory_bytes, max_instances): (usize, u32),
) -> Result<Vec<u8>, WorkerError> {
    let mut child = Command::new(&w.program)
        .args(&w.args)
        .arg("--max-memory-bytes")
        .arg(max_memory_bytes.to_string())
        .arg("--max-instances")
        .arg(max_instances.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(WorkerError::Unavailable)?;
    let failed = |what: String| WorkerError::Load(LoadError::Compile(what));
    let (mut stdin, mut stdout, mut stderr) = (
        child.stdin.take().expect("piped"),
        child.stdout.take().expect("piped"),
        child.stderr.take().expect("piped"),
    );
    let outcome = std::thread::scope(|scope| {
        scope.spawn(move || {
            // A worker that exits early closes the pipe: its status says why.
            let _ = stdin.write_all(wasm);
        });
        let out = scope.spawn(move || {
            let mut buf = Vec::new();
            stdout.read_to_end(&mut buf).map(|_| buf)
        });
        let err = scope.spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.by_ref().take(64 << 10).read_to_end(&mut buf);
            // Whatever is past the first 64 KiB is read and dropped, so the worker never blocks.
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            String::from_utf8_lossy(&buf).trim().to_string()
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if started.elapsed() >= w.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!(
                        "it took longer than {:?} (the compile worker's timeout)",
                        w.timeout
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => break Err(format!("waiting for the compile worker: {e}")),
            }
        };
        (
            status,
            out.join().expect("reader"),
            err.join().expect("reader"),
        )
    });
    match outcome {
        (Err(why), _, _) => Err(failed(why)),
        (Ok(status), Ok(artifact), _) if status.success() => Ok(artifact),
        (Ok(status), _, message) if status.code() == Some(NOT_A_COMPONENT) => {
            Err(WorkerError::Load(LoadError::NotAComponent(message)))
        }
        (Ok(status), _, message) => Err(failed(format!(
            "the compile worker ended with {status}{}{message}",
            if message.is_empty() { "" } else { ": " }
        ))),
    }
}

/// The compile worker: reads a component on stdin, writes its artifact on stdout, compiled by an
/// engine with the given settings. Returns the process's exit code: 2, with the reason on stderr,
/// when the component does not compile.
pub fn worker_main(max_memory_bytes: usize, max_instances: u32) -> i32 {
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut wasm) {
        eprintln!("reading the component from stdin: {e}");
        return 1;
    }
    let engine = match Engine::new(&engine_config(max_memory_bytes, max_instances)) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("wasmtime engine: {e}");
            return 1;
        }
    };
    match engine.precompile_component(&wasm) {
        Ok(artifact) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(&artifact).and_then(|_| out.flush()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("writing the artifact: {e}");
                    1
                }
            }
        }
        Err(e) => {
            eprintln!("{}", error_text(&e));
            NOT_A_COMPONENT
        }
    }
}
