//! The README's Architecture table, as a test: which workspace crate each crate may depend on, and
//! which crate is the one home of each heavy dependency. Read from `cargo metadata` (the crates'
//! own `[dependencies]`: what their code can reach; dev-dependencies are for their tests) and, where
//! a rule is about code inside one crate, from its sources.
//!
//! When a rule here changes, the table in README.md ("Architecture") changes with it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Each crate and the workspace crates its code may use. A crate not listed here fails the test:
/// a new crate gets its row (and the README's table its line) when it is added.
const MAY_USE: &[(&str, &[&str])] = &[
    // The vocabulary, with no I/O (checked below on its sources too).
    ("hub-core", &[]),
    ("hub-marketplace", &[]),
    ("hub-storage", &["hub-core"]),
    ("hub-bus", &["hub-core"]),
    ("hub-runtime", &["hub-core", "hub-marketplace"]),
    (
        "hub-plugins",
        &["hub-core", "hub-storage", "hub-runtime", "hub-marketplace"],
    ),
    (
        "hub-catalog",
        &["hub-core", "hub-storage", "hub-marketplace", "hub-plugins"],
    ),
    (
        "hub-pipeline",
        &["hub-core", "hub-storage", "hub-bus", "hub-plugins"],
    ),
    // Everything but the runtime: wasmtime stays behind the plugin host.
    (
        "hub-api",
        &[
            "hub-core",
            "hub-storage",
            "hub-bus",
            "hub-pipeline",
            "hub-plugins",
            "hub-catalog",
            "hub-marketplace",
        ],
    ),
    (
        "hub-server",
        &[
            "hub-core",
            "hub-storage",
            "hub-bus",
            "hub-pipeline",
            "hub-plugins",
            "hub-catalog",
            "hub-api",
            "hub-runtime",
            "hub-marketplace",
            // `hub plugin test` runs plugins in the SDK's test host.
            "hub-plugin-sdk",
        ],
    ),
    // The guest side: nothing of the host, except the optional test host (checked below).
    ("hub-plugin-sdk", &[]),
];

/// Heavy dependencies and the one crate each may appear in.
const HOMES: &[(&str, &str)] = &[
    ("wasmtime", "hub-runtime"),
    ("wasmtime-wasi", "hub-runtime"),
    ("wasmtime-wasi-http", "hub-runtime"),
    ("sqlx", "hub-storage"),
    ("libsqlite3-sys", "hub-storage"),
    ("axum", "hub-api"),
    ("hyper", "hub-api"),
    ("hyper-util", "hub-api"),
    ("tower-http", "hub-api"),
    ("utoipa", "hub-api"),
    ("utoipa-axum", "hub-api"),
    ("rdkafka", "hub-bus"),
    ("reqwest", "hub-catalog"),
];

/// Crates that may use a heavy dependency besides its home, and why.
const ALSO: &[(&str, &str, &str)] = &[(
    "reqwest",
    "hub-server",
    "the command line is a client of a hub (`hub plugin publish`, `hub bench ingest`)",
)];

/// Paths that mean I/O, which the vocabulary crates must not name.
const IO_PATHS: &[&str] = &[
    "std::fs",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "std::process",
    "std::env",
    "std::io::stdin",
    "std::io::stdout",
    "tokio",
    "File::",
];

struct Package {
    name: String,
    dir: PathBuf,
    /// Normal dependencies: (name, optional).
    deps: Vec<(String, bool)>,
    features: BTreeMap<String, Vec<String>>,
}

fn workspace() -> Vec<Package> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Package {
            name: p["name"].as_str().unwrap().to_string(),
            dir: Path::new(p["manifest_path"].as_str().unwrap())
                .parent()
                .unwrap()
                .to_path_buf(),
            deps: p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| {
                    (
                        d["name"].as_str().unwrap().to_string(),
                        d["optional"].as_bool().unwrap(),
                    )
                })
                .collect(),
            features: serde_json::from_value(p["features"].clone()).unwrap(),
        })
        .collect()
}

fn is_host_crate(name: &str) -> bool {
    name.starts_with("hub-")
}

#[test]
fn every_crate_uses_only_the_crates_its_row_allows() {
    let rows: BTreeMap<&str, &[&str]> = MAY_USE.iter().copied().collect();
    let mut wrong = Vec::new();
    for p in workspace() {
        let internal: Vec<&(String, bool)> =
            p.deps.iter().filter(|(d, _)| is_host_crate(d)).collect();
        if !is_host_crate(&p.name) {
            // Plugins (and other guests) build against the SDK only.
            for (d, _) in internal {
                if d != "hub-plugin-sdk" {
                    wrong.push(format!(
                        "{} (a plugin) uses {d}: plugins use hub-plugin-sdk only",
                        p.name
                    ));
                }
            }
            continue;
        }
        let Some(allowed) = rows.get(p.name.as_str()) else {
            wrong.push(format!(
                "{} has no row in MAY_USE (and none in README's Architecture table)",
                p.name
            ));
            continue;
        };
        for (d, optional) in internal {
            if allowed.contains(&d.as_str()) {
                continue;
            }
            // The SDK's test host runs on the author's machine, behind its `testing` feature.
            let test_host = p.name == "hub-plugin-sdk"
                && *optional
                && p.features["testing"].contains(&format!("dep:{d}"))
                && p.features.get("default").is_none_or(|d| d.is_empty());
            if !test_host {
                wrong.push(format!("{} uses {d}, which its row does not allow", p.name));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows the wrong way:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn heavy_dependencies_live_in_their_one_home() {
    let homes: BTreeMap<&str, &str> = HOMES.iter().copied().collect();
    let also: BTreeSet<(&str, &str)> = ALSO.iter().map(|(d, c, _)| (*d, *c)).collect();
    let mut wrong = Vec::new();
    for p in workspace() {
        for (d, _) in &p.deps {
            if let Some(home) = homes.get(d.as_str())
                && *home != p.name
                && !also.contains(&(d.as_str(), p.name.as_str()))
            {
                wrong.push(format!(
                    "{} depends on {d}, whose one home is {home}",
                    p.name
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_vocabulary_does_no_io() {
    let mut wrong = Vec::new();
    for p in workspace() {
        if !["hub-core", "hub-marketplace"].contains(&p.name.as_str()) {
            continue;
        }
        let mut files = Vec::new();
        rust_sources(&p.dir.join("src"), &mut files);
        assert!(!files.is_empty(), "{} has no sources under src/", p.name);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap();
                for io in IO_PATHS {
                    if code.contains(io) {
                        wrong.push(format!("{}:{}: {io}", file.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "I/O in a vocabulary crate:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn credentials_are_shared_without_http() {
    // The command line and the handlers share the credential rules; the module must not pull the
    // API's HTTP parts (axum, the API's state or error mapping) along.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/src/credentials");
    let mut files = Vec::new();
    rust_sources(&dir, &mut files);
    assert!(files.len() >= 4, "credentials/ has {} files", files.len());
    let mut wrong = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            for http in ["axum", "AppState", "ApiError", "crate::", "hyper", "http::"] {
                if code.contains(http) {
                    wrong.push(format!("{}:{}: {http}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A crate's top-level modules and the others each names (`crate::x`, `use crate::{x, …}`)
/// outside its tests.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_sources(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let word = |s: &str| {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<String>()
    };
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let module = word(&rel.to_string_lossy());
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap()
            .lines()
            .map(|l| l.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let names = graph.entry(module.clone()).or_default();
        // The crate root by name, or by as many `super::` as the file is deep (`super::` in
        // `src/pool.rs` or `src/oidc/mod.rs`, `super::super::` in `src/oidc/roles.rs`).
        let depth = rel.components().count() - usize::from(rel.ends_with("mod.rs"));
        let root_by_super = "super::".repeat(depth);
        let mut uses: Vec<&str> = Vec::new();
        for prefix in ["crate::", root_by_super.as_str()] {
            for (i, _) in code.match_indices(prefix) {
                // `super::super::x` also contains `super::x`: only a whole prefix counts.
                if prefix.starts_with("super") && code[..i].ends_with("super::") {
                    continue;
                }
                uses.push(&code[i + prefix.len()..]);
            }
        }
        for rest in uses {
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                names.extend(group.split(',').map(|g| word(g.trim())));
            } else {
                names.insert(word(rest));
            }
        }
        names.remove(&module);
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for names in graph.values_mut() {
        names.retain(|n| modules.contains(n));
    }
    graph
}

/// The cycles of a graph: its strongly connected components of more than one module.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Two modules are in one cycle when each reaches the other.
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for n in &graph[&m] {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in graph.keys() {
        let cycle: Vec<String> = graph
            .keys()
            .filter(|n| *n == m || (reaches[m].contains(*n) && reaches[n].contains(m)))
            .cloned()
            .collect();
        if cycle.len() > 1 && !out.contains(&cycle) {
            out.push(cycle);
        }
    }
    out
}

#[test]
fn no_two_modules_of_a_crate_use_each_other() {
    // A cycle means two rooms hold one idea between them: the shared part gets a room of its own
    // (the API's sign-in modules, the storage's SQLite files and rollup SQL, the runtime's host
    // state were such cases).
    let mut found = Vec::new();
    for p in workspace() {
        for cycle in cycles(&module_graph(&p.dir.join("src"))) {
            found.push(format!("{}: {}", p.name, cycle.join(" <-> ")));
        }
    }
    assert!(
        found.is_empty(),
        "modules that use each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn wasmtime_and_sql_are_named_only_in_their_homes() {
    // A re-export (`hub_runtime::wasmtime`) would get past the manifests; the sources would not.
    let rules: &[(&str, &str)] = &[("wasmtime::", "hub-runtime"), ("sqlx::", "hub-storage")];
    let mut wrong = Vec::new();
    for p in workspace() {
        let mut files = Vec::new();
        for sub in ["src", "tests", "benches"] {
            let dir = p.dir.join(sub);
            if dir.is_dir() {
                rust_sources(&dir, &mut files);
            }
        }
        // This file names them to look for them.
        let this_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/architecture.rs");
        files.retain(|f| *f != this_file);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (name, home) in rules {
                if p.name != *home && text.contains(name) {
                    wrong.push(format!(
                        "{} names {name} (its home is {home})",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_production_binary_links_no_benchmark_code() {
    let packages = workspace();
    let server = packages.iter().find(|p| p.name == "hub-server").unwrap();
    let plugins: BTreeSet<&str> = packages
        .iter()
        .filter(|p| !is_host_crate(&p.name))
        .map(|p| p.name.as_str())
        .collect();
    assert!(
        server.features.get("default").is_none_or(|d| d.is_empty()),
        "hub-server has default features: {:?}",
        server.features.get("default")
    );
    for (d, optional) in &server.deps {
        if plugins.contains(d.as_str()) {
            assert!(
                *optional,
                "hub-server links the plugin crate {d} into every build"
            );
            assert!(
                server.features["bench"].contains(&format!("dep:{d}")),
                "hub-server's plugin crate {d} is not behind the bench feature"
            );
        }
    }
}
