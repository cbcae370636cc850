//! The hosts of `capabilities.http` and of a tenant's grants: `host` (ports 80 and 443) or
//! `host:port`, where the host is a DNS name, an IPv4 literal or an IPv6 literal in brackets
//! (`[2001:db8::1]:8443`, as in a URL). The runtime matches requests against the same parse, so
//! what a manifest may declare and what a plugin may reach never disagree.

use std::net::Ipv6Addr;

/// One parsed entry: the host in its canonical form (lower case; an IPv6 address without its
/// brackets, compressed) and the port, if one was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHost {
    pub host: String,
    pub port: Option<u16>,
}

impl HttpHost {
    /// `None` when `entry` is not a host or host:port (a scheme, a path, a wildcard, port 0, an
    /// IPv6 address without brackets or a bad one inside them).
    pub fn parse(entry: &str) -> Option<Self> {
        if let Some(rest) = entry.strip_prefix('[') {
            let (ip, after) = rest.split_once(']')?;
            let ip: Ipv6Addr = ip.parse().ok()?;
            let port = match after {
                "" => None,
                p => Some(port(p.strip_prefix(':')?)?),
            };
            return Some(Self {
                host: ip.to_string(),
                port,
            });
        }
        let (name, port) = match entry.rsplit_once(':') {
            Some((n, p)) => (n, Some(port(p)?)),
            None => (entry, None),
        };
        let valid = !name.is_empty()
            && name.len() <= 253
            && !name.starts_with(['.', '-'])
            && !name.ends_with(['.', '-'])
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        valid.then(|| Self {
            host: name.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether this entry lets a plugin reach `host` (as a URL carries it: an IPv6 literal in
    /// brackets) on `port`; an entry without a port allows 80 and 443.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => match v6.parse::<Ipv6Addr>() {
                Ok(ip) => ip.to_string(),
                Err(_) => return false,
            },
            // A bare IPv6 address is no URL's host.
            None if host.contains(':') => return false,
            None => host.to_ascii_lowercase(),
        };
        host == self.host
            && match self.port {
                Some(p) => p == port,
                None => port == 80 || port == 443,
            }
    }
}

fn port(p: &str) -> Option<u16> {
    p.parse::<u16>().ok().filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::HttpHost;

    #[test]
    fn entries_that_parse_and_entries_that_do_not() {
        for (entry, host, port) in [
            ("prices.example.com", "prices.example.com", None),
            ("Prices.Example.COM:8443", "prices.example.com", Some(8443)),
            ("127.0.0.1:8089", "127.0.0.1", Some(8089)),
            ("[::1]", "::1", None),
            ("[2001:DB8:0:0::1]:8443", "2001:db8::1", Some(8443)),
            ("[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", Some(80)),
        ] {
            assert_eq!(
                HttpHost::parse(entry),
                Some(HttpHost {
                    host: host.into(),
                    port
                }),
                "{entry}"
            );
        }
        for entry in [
            "",
            "*",
            "https://a.example.com",
            "a.example.com/path",
            "a.example.com:0",
            "a.example.com:65536",
            "a.example.com:",
            "-a.example.com",
            "a.example.com.",
            "*.example.com",
            "::1",
            "2001:db8::1:8443",
            "[::1",
            "[::1]8443",
            "[::1]:",
            "[::1]:0",
            "[not-an-ip]:80",
            "[127.0.0.1]:80",
        ] {
            assert_eq!(HttpHost::parse(entry), None, "{entry:?} should be refused");
        }
    }

    #[test]
    fn requests_an_entry_allows() {
        let cases = [
            ("registry.example.com", "registry.example.com", 443, true),
            ("registry.example.com", "Registry.Example.com", 80, true),
            ("registry.example.com", "registry.example.com", 8443, false),
            ("registry.example.com", "evil.example.com", 443, false),
            ("127.0.0.1:8089", "127.0.0.1", 8089, true),
            ("127.0.0.1:8089", "127.0.0.1", 8090, false),
            ("[::1]:8089", "[::1]", 8089, true),
            ("[::1]:8089", "[0:0:0:0:0:0:0:1]", 8089, true),
            ("[::1]:8089", "::1", 8089, false),
            ("[::1]:8089", "[::2]", 8089, false),
            ("[2001:db8::1]", "[2001:db8::1]", 443, true),
            ("[2001:db8::1]", "[2001:db8::1]", 8443, false),
        ];
        for (entry, host, port, allowed) in cases {
            let e = HttpHost::parse(entry).unwrap();
            assert_eq!(e.allows(host, port), allowed, "{entry} → {host}:{port}");
        }
    }
}
