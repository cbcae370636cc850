//! What a component must be to load: a component (not a core module), exporting what its
//! manifest's world exports, built against the `hub:plugin` version the manifest names, importing
//! nothing it did not declare.

use hub_marketplace::{Manifest, PluginKind};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::LoadError;

pub(crate) fn check_component_header(wasm: &[u8]) -> Result<(), LoadError> {
    if wasm.len() < 8 || &wasm[0..4] != b"\0asm" {
        return Err(LoadError::NotAComponent(
            "the file does not start with the WebAssembly magic bytes".into(),
        ));
    }
    match (wasm[4..6] == [1, 0], wasm[6..8] == [0, 0]) {
        (true, true) => Err(LoadError::NotAComponent(
            "this is a core WebAssembly module; build for wasm32-wasip2 (or wrap it with `wasm-tools component new`)".into(),
        )),
        _ if wasm[6..8] == [1, 0] => Ok(()),
        _ => Err(LoadError::NotAComponent(format!(
            "unknown WebAssembly layer {:?}",
            &wasm[4..8]
        ))),
    }
}

/// Imports every plugin may have: WASI's clocks, random, io, cli (stdio goes nowhere), and
/// filesystem and sockets, which are linked but inert (no preopens, no network allowed).
const WASI_ALWAYS: &[&str] = &[
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

pub(crate) fn check_world(
    engine: &Engine,
    component: &Component,
    m: &Manifest,
) -> Result<(), LoadError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let missing: Vec<&str> = m
        .kind
        .exports()
        .iter()
        .copied()
        .filter(|want| !exports.iter().any(|e| e == want))
        .collect();
    if !missing.is_empty() {
        return Err(LoadError::WrongWorld {
            kind: m.kind,
            version: m.world_version.clone(),
            detail: format!(
                "missing export{} `{}` (it exports: {})",
                if missing.len() > 1 { "s" } else { "" },
                missing.join("`, `"),
                if exports.is_empty() {
                    "nothing".to_string()
                } else {
                    exports.join(", ")
                }
            ),
        });
    }
    // An enricher's batch type says which version it was built against. (An integration's
    // version shows in its exports' types, checked when it is pre-instantiated: a component
    // built with the SDK carries every world's type-only imports.)
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    if m.kind == PluginKind::Enricher {
        let built = if imports
            .iter()
            .any(|n| n.starts_with("hub:plugin/types@0.2."))
        {
            "0.2.0"
        } else {
            "0.1.0"
        };
        if built != m.world_version {
            return Err(built_against(m, built));
        }
    }
    for name in &imports {
        let ok = WASI_ALWAYS.iter().any(|p| name.starts_with(p))
            || name.starts_with("hub:plugin/log@")
            || name.starts_with("hub:plugin/types@")
            || (name.starts_with("hub:plugin/kv@") && m.capabilities.kv)
            || (name.starts_with("wasi:http/") && !m.capabilities.http.is_empty());
        if !ok {
            let hint = if name.starts_with("hub:plugin/kv@") {
                " (add `kv = true` under [capabilities])".to_string()
            } else if name.starts_with("wasi:http/") {
                " (list the hosts it calls under [capabilities] http)".to_string()
            } else {
                String::new()
            };
            return Err(LoadError::UndeclaredImport {
                import: name.to_string(),
                hint,
            });
        }
    }
    Ok(())
}

/// The component targets another version of its world than the manifest says.
pub(crate) fn built_against(m: &Manifest, built: &str) -> LoadError {
    LoadError::WrongWorld {
        kind: m.kind,
        version: m.world_version.clone(),
        detail: format!(
            "the component is built against hub:plugin@{built}: set `world` in plugin.toml to match"
        ),
    }
}
