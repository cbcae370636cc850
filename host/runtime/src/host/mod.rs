//! What a plugin's `Store` holds, and the host side of its imports, one module per capability
//! (as Spin lays out its host components): `log`, `kv`, and outgoing HTTP filtered by the
//! allow-list (`http`); WASI itself grants no files, no environment and no sockets.

mod http;
mod kv;
mod log;

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub use http::{HttpPolicy, is_private};
pub use kv::{KvState, MAX_KV_KEY_BYTES};
pub use log::{MAX_LOG_BYTES, MAX_LOGS_PER_CALL};

use crate::memory::Account;
use crate::output::GuestOutput;

/// Who an instance belongs to, for logs.
#[derive(Debug, Clone)]
pub struct Owner {
    pub tenant: String,
    pub plugin: String,
}

/// Everything a plugin's `Store` holds.
pub struct HostState {
    pub owner: Arc<Owner>,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub http_ctx: WasiHttpCtx,
    pub http: HttpPolicy,
    pub kv: KvState,
    pub memory: Account,
    pub logs_this_call: u32,
    pub logs_dropped: u64,
    /// What the guest printed (stdout and stderr together).
    pub output: GuestOutput,
}

impl HostState {
    pub fn new(owner: Arc<Owner>, http: HttpPolicy, kv: KvState, memory: Account) -> Self {
        // No preopened directories, no environment, no arguments, no network: the builder's
        // defaults grant nothing; stdout and stderr go to a small ring the host reads after each
        // call.
        let output = GuestOutput::default();
        let wasi = WasiCtx::builder()
            .allow_ip_name_lookup(false)
            .stdout(output.clone())
            .stderr(output.clone())
            .build();
        Self {
            owner,
            wasi,
            table: ResourceTable::new(),
            http_ctx: WasiHttpCtx::new(),
            http,
            kv,
            memory,
            logs_this_call: 0,
            logs_dropped: 0,
            output,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

impl crate::bindings::types::Host for HostState {}
