//! Why a component could not be loaded, and why a call did not answer: the runtime's two error
//! types, and the text of a wasmtime error without its backtrace.

use std::time::Duration;

use hub_marketplace::PluginKind;
use wasmtime::Trap;

use crate::PluginError;

/// Why a component cannot be loaded or instantiated. Messages name the mismatch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("the component is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component does not implement hub:plugin/{kind}@{version}: {detail}")]
    WrongWorld {
        kind: PluginKind,
        version: String,
        detail: String,
    },
    #[error("the component imports `{import}`, which plugin.toml does not declare{hint}")]
    UndeclaredImport { import: String, hint: String },
    #[error("{field} asks for {asked}; this hub allows at most {max} (the operator's {setting})")]
    OverLimit {
        field: &'static str,
        asked: String,
        max: String,
        /// The operator's setting that holds the maximum.
        setting: &'static str,
    },
    #[error("the plugin needs the `{0}` capability, which the tenant has not granted")]
    NotGranted(String),
    #[error("instantiating the component failed: {0}")]
    Instantiate(String),
    #[error("the component cache failed: {0}")]
    Cache(String),
    #[error("compiling the component failed: {0}")]
    Compile(String),
}

/// Why a call did not produce an answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The plugin answered with an error.
    #[error("{}", plugin_error_text(.0))]
    Plugin(PluginError),
    #[error("the call exceeded its deadline of {0:?}")]
    Deadline(Duration),
    #[error("the plugin exceeded its memory cap of {0} MiB")]
    Memory(usize),
    /// Its tenant's plugins, or all plugins, hold all the memory they may.
    #[error("{0}")]
    MemoryShare(String),
    #[error("the plugin trapped: {0}")]
    Trap(String),
    /// The answer broke the contract (see [`InvalidOutput`]).
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    /// An earlier call trapped; drop this instance and instantiate again.
    #[error("the instance is unusable after an earlier failure ({0})")]
    Broken(String),
    #[error("the plugin is a {0}, which has no such function")]
    WrongKind(PluginKind),
    /// No instance could be made to call: its start trapped or ran out of memory, or it needs a
    /// capability the tenant has not granted.
    #[error("the plugin could not be started: {0}")]
    Load(LoadError),
    /// The hub could not make the call (its storage failed, say): not the plugin's doing, and
    /// never counted against it.
    #[error("the hub could not make the call: {0}")]
    Host(String),
}

impl CallError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Plugin(_) => "error",
            CallError::Deadline(_) => "deadline",
            CallError::Memory(_) | CallError::MemoryShare(_) => "memory",
            CallError::Trap(_) => "trap",
            CallError::InvalidOutput(_) => "invalid_output",
            CallError::Broken(_) => "broken",
            CallError::WrongKind(_) => "wrong_kind",
            CallError::Load(_) => "load",
            CallError::Host(_) => "host",
        }
    }
}

fn plugin_error_text(e: &PluginError) -> String {
    match e {
        PluginError::BadConfig(m) => format!("bad configuration: {m}"),
        PluginError::Unavailable(m) => format!("unavailable: {m}"),
        PluginError::Internal(m) => format!("internal error: {m}"),
    }
}

/// The text of a wasmtime error without its backtrace.
pub(crate) fn error_text(e: &wasmtime::Error) -> String {
    if let Some(trap) = e.downcast_ref::<Trap>() {
        // Its text starts "wasm trap: " already.
        return trap.to_string();
    }
    let mut s = e.to_string();
    if let Some(source) = e.source() {
        s.push_str(": ");
        s.push_str(&source.to_string());
    }
    s.lines().next().unwrap_or_default().to_string()
}
