//! What a plugin's `Store` holds, and the host side of the imports: `log`, `kv`, WASI (no files,
//! no environment, no sockets) and outgoing HTTP filtered by the allow-list.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::bindings::{kv, log};
use crate::memory::Account;
use crate::output::GuestOutput;

/// Log messages longer than this are cut.
pub const MAX_LOG_BYTES: usize = 4096;
/// Log messages per call beyond this are dropped (and counted).
pub const MAX_LOGS_PER_CALL: u32 = 100;
/// Longest kv key.
pub const MAX_KV_KEY_BYTES: usize = 256;

/// Who an instance belongs to, for logs.
#[derive(Debug, Clone)]
pub struct Owner {
    pub tenant: String,
    pub plugin: String,
}

/// The per-instance key-value store: what is persisted (`committed`) plus what the running call
/// wrote (`pending`), which becomes committed only when the call succeeds.
#[derive(Debug, Default)]
pub struct KvState {
    pub granted: bool,
    pub quota_bytes: usize,
    committed: BTreeMap<String, Vec<u8>>,
    pending: BTreeMap<String, Option<Vec<u8>>>,
}

impl KvState {
    pub fn new(granted: bool, quota_bytes: usize, initial: BTreeMap<String, Vec<u8>>) -> Self {
        Self {
            granted,
            quota_bytes,
            committed: initial,
            pending: BTreeMap::new(),
        }
    }

    fn get(&self, key: &str) -> Option<&Vec<u8>> {
        match self.pending.get(key) {
            Some(v) => v.as_ref(),
            None => self.committed.get(key),
        }
    }

    fn used_bytes_with(&self, key: &str, len: usize) -> usize {
        let mut total = 0usize;
        for (k, v) in &self.committed {
            if k != key && !self.pending.contains_key(k) {
                total += k.len() + v.len();
            }
        }
        for (k, v) in &self.pending {
            if k != key
                && let Some(v) = v
            {
                total += k.len() + v.len();
            }
        }
        total + key.len() + len
    }

    /// Makes the running call's writes permanent and returns them for the host to persist
    /// (`None` = deleted).
    pub fn commit(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let changes: Vec<_> = std::mem::take(&mut self.pending).into_iter().collect();
        for (k, v) in &changes {
            match v {
                Some(v) => {
                    self.committed.insert(k.clone(), v.clone());
                }
                None => {
                    self.committed.remove(k);
                }
            }
        }
        changes
    }

    pub fn discard(&mut self) {
        self.pending.clear();
    }
}

/// Outgoing HTTP policy of one instance: the hosts the manifest declared and the tenant granted.
#[derive(Debug, Clone, Default)]
pub struct HttpPolicy {
    /// `host` (ports 80 and 443) or `host:port`.
    pub allowed: Vec<String>,
    /// Operators may let plugins reach loopback and private addresses (tests, on-prem registries).
    pub allow_private: bool,
    pub owner: Option<Arc<Owner>>,
    pub timeout: Duration,
}

impl HttpPolicy {
    fn host_allowed(&self, host: &str, port: u16) -> bool {
        self.allowed.iter().any(|entry| {
            hub_marketplace::HttpHost::parse(entry).is_some_and(|e| e.allows(host, port))
        })
    }
}

/// Addresses plugins never reach unless the operator allows private networks.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || v4.octets()[0] == 0
                // 100.64.0.0/10, carrier-grade NAT
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link local
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        use http_body_util::BodyExt;
        let _ = fut;
        let policy = self.clone();
        Box::new(async move {
            let uri = request.uri().clone();
            let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let host = uri.host().unwrap_or_default().to_string();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let (tenant, plugin) = policy
                .owner
                .as_deref()
                .map(|o| (o.tenant.as_str(), o.plugin.as_str()))
                .unwrap_or(("?", "?"));
            if !policy.host_allowed(&host, port) {
                tracing::warn!(
                    tenant,
                    plugin,
                    host,
                    port,
                    "plugin HTTP request refused: host not granted"
                );
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            }
            // A URL carries an IPv6 literal in brackets; the resolver takes it bare.
            let name = host.trim_start_matches('[').trim_end_matches(']');
            let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((name, port)).await {
                Ok(a) => a.collect(),
                Err(e) => {
                    tracing::warn!(tenant, plugin, host, error = %e, "plugin HTTP request: name lookup failed");
                    return Err(wasmtime_wasi_http::Error::DnsError {
                        rcode: Some(e.to_string()),
                        info_code: None,
                    });
                }
            };
            if !policy.allow_private && addrs.iter().any(|a| is_private(a.ip())) {
                tracing::warn!(
                    tenant,
                    plugin,
                    host,
                    ?addrs,
                    "plugin HTTP request refused: resolves to a private address"
                );
                return Err(wasmtime_wasi_http::Error::DestinationIpProhibited);
            }
            let Some(checked) = addrs.first().copied() else {
                return Err(wasmtime_wasi_http::Error::DestinationNotFound);
            };
            let mut request = request;
            if !https {
                // Connect to the address that was checked, not to a second lookup's answer (DNS
                // rebinding). HTTPS keeps the name for SNI; its certificate check binds the name.
                let mut parts = uri.into_parts();
                parts.authority = Some(
                    checked
                        .to_string()
                        .parse()
                        .map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?,
                );
                *request.uri_mut() = http::Uri::from_parts(parts)
                    .map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?;
            }
            let cap = policy.timeout;
            let options = wasmtime_wasi_http::RequestOptions {
                connect_timeout: Some(
                    options
                        .and_then(|o| o.connect_timeout)
                        .unwrap_or(cap)
                        .min(cap),
                ),
                first_byte_timeout: Some(
                    options
                        .and_then(|o| o.first_byte_timeout)
                        .unwrap_or(cap)
                        .min(cap),
                ),
                between_bytes_timeout: Some(
                    options
                        .and_then(|o| o.between_bytes_timeout)
                        .unwrap_or(cap)
                        .min(cap),
                ),
            };
            let (res, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
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

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        self.logs_this_call += 1;
        if self.logs_this_call > MAX_LOGS_PER_CALL {
            self.logs_dropped += 1;
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_BYTES {
            let mut cut = MAX_LOG_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let (tenant, plugin) = (self.owner.tenant.as_str(), self.owner.plugin.as_str());
        match level {
            log::Level::Debug => tracing::debug!(tenant, plugin, "{message}"),
            log::Level::Info => tracing::info!(tenant, plugin, "{message}"),
            log::Level::Warn => tracing::warn!(tenant, plugin, "{message}"),
            log::Level::Error => tracing::error!(tenant, plugin, "{message}"),
        }
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        if !self.kv.granted {
            return None;
        }
        self.kv.get(&key).cloned()
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        if !self.kv.granted {
            return Err("kv is not granted to this plugin".into());
        }
        if key.is_empty() || key.len() > MAX_KV_KEY_BYTES {
            return Err(format!(
                "kv key must be 1 to {MAX_KV_KEY_BYTES} bytes; this one is {}",
                key.len()
            ));
        }
        let used = self.kv.used_bytes_with(&key, value.len());
        if used > self.kv.quota_bytes {
            return Err(format!(
                "kv quota exceeded: storing {} bytes under `{key}` would use {used} of {} bytes",
                value.len(),
                self.kv.quota_bytes
            ));
        }
        self.kv.pending.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: String) {
        if self.kv.granted {
            self.kv.pending.insert(key, None);
        }
    }

    fn keys(&mut self, prefix: String) -> Vec<String> {
        if !self.kv.granted {
            return Vec::new();
        }
        let mut keys: Vec<String> = self
            .kv
            .committed
            .keys()
            .filter(|k| k.starts_with(&prefix) && !self.kv.pending.contains_key(*k))
            .cloned()
            .collect();
        keys.extend(
            self.kv
                .pending
                .iter()
                .filter(|(k, v)| k.starts_with(&prefix) && v.is_some())
                .map(|(k, _)| k.clone()),
        );
        keys.sort();
        keys
    }
}

impl crate::bindings::types::Host for HostState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn hosts_match_with_and_without_ports() {
        let p = HttpPolicy {
            allowed: vec![
                "registry.example.com".into(),
                "127.0.0.1:8089".into(),
                "[::1]:8089".into(),
            ],
            ..Default::default()
        };
        assert!(p.host_allowed("[::1]", 8089));
        assert!(!p.host_allowed("[::1]", 443));
        assert!(p.host_allowed("registry.example.com", 443));
        assert!(p.host_allowed("Registry.Example.com", 80));
        assert!(!p.host_allowed("registry.example.com", 8443));
        assert!(p.host_allowed("127.0.0.1", 8089));
        assert!(!p.host_allowed("127.0.0.1", 8090));
        assert!(!p.host_allowed("evil.example.com", 443));
    }

    #[test]
    fn kv_quota_counts_pending_and_committed() {
        let mut kv = KvState::new(true, 100, BTreeMap::from([("a".to_string(), vec![0; 50])]));
        assert_eq!(kv.used_bytes_with("b", 40), 51 + 41);
        kv.pending.insert("a".into(), None);
        assert_eq!(kv.used_bytes_with("b", 40), 41);
        let changes = kv.commit();
        assert_eq!(changes, vec![("a".to_string(), None)]);
        assert!(kv.get("a").is_none());
    }
}
