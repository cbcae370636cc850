//! Outgoing HTTP (`wasi:http`): a request goes out only to a host the manifest declared and the
//! tenant granted, and only to public addresses unless the operator allows private networks; a
//! plain-HTTP request connects to the address that was checked, and every timeout is capped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi_http::WasiHttpHooks;

use super::Owner;

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
    /// Whether `host:port` (as the URL names it) may be asked for at all; checked before any name
    /// lookup, so that a plugin cannot make the hub resolve names it was not granted.
    fn check_host(&self, host: &str, port: u16) -> Result<(), Refusal> {
        let granted = self.allowed.iter().any(|entry| {
            hub_marketplace::HttpHost::parse(entry).is_some_and(|e| e.allows(host, port))
        });
        if granted {
            Ok(())
        } else {
            Err(Refusal::NotGranted)
        }
    }

    /// The address to connect to, given what the granted name resolved to: none of its
    /// addresses may be private (unless the operator allows it), so that a name cannot point
    /// the hub at its own network.
    fn check_addresses(&self, addrs: &[SocketAddr]) -> Result<SocketAddr, Refusal> {
        if !self.allow_private && addrs.iter().any(|a| is_private(a.ip())) {
            return Err(Refusal::Private);
        }
        addrs.first().copied().ok_or(Refusal::NoAddress)
    }
}

/// Why a request was not sent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Refusal {
    NotGranted,
    Private,
    NoAddress,
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
            if policy.check_host(&host, port).is_err() {
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
            let checked = match policy.check_addresses(&addrs) {
                Ok(checked) => checked,
                Err(Refusal::Private) => {
                    tracing::warn!(
                        tenant,
                        plugin,
                        host,
                        ?addrs,
                        "plugin HTTP request refused: resolves to a private address"
                    );
                    return Err(wasmtime_wasi_http::Error::DestinationIpProhibited);
                }
                Err(_) => return Err(wasmtime_wasi_http::Error::DestinationNotFound),
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

    /// One row: what the manifest declared and the tenant granted, whether the operator allows
    /// private networks, the URL's host and port, what its name resolves to, and the outcome.
    struct Row {
        granted: &'static [&'static str],
        allow_private: bool,
        host: &'static str,
        port: u16,
        resolves_to: &'static [&'static str],
        expect: Result<&'static str, Refusal>,
    }

    const fn row(
        granted: &'static [&'static str],
        host: &'static str,
        port: u16,
        resolves_to: &'static [&'static str],
        expect: Result<&'static str, Refusal>,
    ) -> Row {
        Row {
            granted,
            allow_private: false,
            host,
            port,
            resolves_to,
            expect,
        }
    }

    const PUBLIC: &[&str] = &["93.184.216.34"];
    const REG: &[&str] = &["registry.example.com"];

    #[test]
    fn the_allow_list_decides_every_request() {
        use Refusal::*;
        let private = |mut r: Row| {
            r.allow_private = true;
            r
        };
        let rows = [
            // A bare host allows the default ports only, case-insensitively.
            row(
                REG,
                "registry.example.com",
                443,
                PUBLIC,
                Ok("93.184.216.34"),
            ),
            row(REG, "registry.example.com", 80, PUBLIC, Ok("93.184.216.34")),
            row(
                REG,
                "Registry.Example.COM",
                443,
                PUBLIC,
                Ok("93.184.216.34"),
            ),
            row(REG, "registry.example.com", 8443, PUBLIC, Err(NotGranted)),
            // Nothing but the name itself: no subdomains, no look-alikes, no other hosts.
            row(
                REG,
                "api.registry.example.com",
                443,
                PUBLIC,
                Err(NotGranted),
            ),
            row(
                REG,
                "registry.example.com.evil.io",
                443,
                PUBLIC,
                Err(NotGranted),
            ),
            row(REG, "evil.example.com", 443, PUBLIC, Err(NotGranted)),
            row(&[], "registry.example.com", 443, PUBLIC, Err(NotGranted)),
            // `host:port` allows that port only.
            row(
                &["models.example.com:8443"],
                "models.example.com",
                8443,
                PUBLIC,
                Ok("93.184.216.34"),
            ),
            row(
                &["models.example.com:8443"],
                "models.example.com",
                443,
                PUBLIC,
                Err(NotGranted),
            ),
            // A granted name that resolves to a private address is refused, whichever of its
            // addresses it is (DNS rebinding, cloud metadata, IPv4 in IPv6).
            row(
                REG,
                "registry.example.com",
                443,
                &["10.0.0.7"],
                Err(Private),
            ),
            row(
                REG,
                "registry.example.com",
                443,
                &["93.184.216.34", "127.0.0.1"],
                Err(Private),
            ),
            row(
                REG,
                "registry.example.com",
                443,
                &["169.254.169.254"],
                Err(Private),
            ),
            row(
                REG,
                "registry.example.com",
                443,
                &["::ffff:127.0.0.1"],
                Err(Private),
            ),
            row(REG, "registry.example.com", 443, &["fd00::1"], Err(Private)),
            row(REG, "registry.example.com", 443, &[], Err(NoAddress)),
            // Literal addresses, IPv6 in brackets as URLs write them.
            row(
                &["127.0.0.1:8089"],
                "127.0.0.1",
                8089,
                &["127.0.0.1"],
                Err(Private),
            ),
            private(row(
                &["127.0.0.1:8089"],
                "127.0.0.1",
                8089,
                &["127.0.0.1"],
                Ok("127.0.0.1"),
            )),
            private(row(
                &["127.0.0.1:8089"],
                "127.0.0.1",
                8090,
                &["127.0.0.1"],
                Err(NotGranted),
            )),
            row(&["[::1]:8089"], "[::1]", 8089, &["::1"], Err(Private)),
            private(row(&["[::1]:8089"], "[::1]", 8089, &["::1"], Ok("::1"))),
            private(row(
                &["[::1]:8089"],
                "[::1]",
                443,
                &["::1"],
                Err(NotGranted),
            )),
            // Allowing private networks does not grant hosts.
            private(row(
                REG,
                "internal.example.com",
                443,
                &["10.0.0.7"],
                Err(NotGranted),
            )),
        ];
        for (i, r) in rows.iter().enumerate() {
            let policy = HttpPolicy {
                allowed: r.granted.iter().map(|s| s.to_string()).collect(),
                allow_private: r.allow_private,
                ..Default::default()
            };
            let addrs: Vec<SocketAddr> = r
                .resolves_to
                .iter()
                .map(|ip| SocketAddr::new(ip.parse().unwrap(), r.port))
                .collect();
            let got = policy
                .check_host(r.host, r.port)
                .and_then(|()| policy.check_addresses(&addrs))
                .map(|a| a.ip());
            let want = r.expect.map(|ip| ip.parse::<IpAddr>().unwrap());
            assert_eq!(
                got, want,
                "row {i}: {} port {} granted {:?}",
                r.host, r.port, r.granted
            );
        }
    }
}
