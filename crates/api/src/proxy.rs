//! The client's address behind a reverse proxy: the one rule, in one place.
//!
//! Everything that keys on the client (the audit records' `remoteAddress`, the `/v1/auth/*` rate
//! limit, the brute-force limit, access keys' `permittedIps`) reads `ConnectInfo<SocketAddr>`.
//! The server puts the TCP peer there, passed through [`TrustedProxies::client_addr`] once per
//! request, before the router: behind a proxy the peer is the proxy, and the client is what the
//! proxy wrote into `X-Forwarded-For`.
//!
//! The rule:
//! - the header is read only when the TCP peer is a trusted proxy (`--trusted-proxies`); from any
//!   other peer it is ignored, whatever it says;
//! - `X-Forwarded-For` is walked right to left (each proxy appends the address it received the
//!   request from), skipping entries that are themselves trusted proxies; the first untrusted
//!   entry is the client. Entries left of it were written by the client or by proxies not in the
//!   list, and cannot be believed;
//! - an entry that is not an address (garbage, `unknown`, an obfuscated identifier), a value that
//!   is not text, or an empty header, met before the client was found: the TCP peer is the
//!   client, as without the setting. Never an error;
//! - when every entry is trusted, the left-most is the client (a request that came from a
//!   trusted host through the proxy).
//!
//! `Forwarded` (RFC 7239) is not read: a proxy that manages only `X-Forwarded-For` passes a
//! client's own `Forwarded` header through unchanged, and honouring both would let the client
//! choose its address. Proxies set `X-Forwarded-For` (nginx, Caddy, HAProxy, cloud load
//! balancers).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};

use idvault_core::access_key::IpRange;

/// The header proxies append the address they received a request from to.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose `X-Forwarded-For` is believed: addresses and CIDR ranges
/// (`--trusted-proxies`). Empty by default: the TCP peer is the client.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    /// Each entry as written (for display) with its range.
    entries: Vec<(String, IpRange)>,
}

impl TrustedProxies {
    /// No proxy trusted: the TCP peer is always the client.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma-separated list of IP addresses and CIDR ranges, such as
    /// `127.0.0.1,10.0.0.0/8,fd00::/8`. Blank entries are ignored.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let range = IpRange::parse(entry).ok_or_else(|| {
                format!("'{entry}' is not an IP address or a CIDR range (such as 10.0.0.0/8)")
            })?;
            entries.push((entry.to_owned(), range));
        }
        Ok(TrustedProxies { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `ip` is a trusted proxy (an IPv4 address written as IPv6 counts as IPv4).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.entries.iter().any(|(_, range)| range.contains(ip))
    }

    /// The client of a request that arrived from `peer` with these headers (see the module
    /// documentation for the rule). A forwarded address carries the port its entry names, or 0.
    pub fn client_addr(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if self.entries.is_empty() || !self.trusts(peer.ip()) {
            return peer;
        }
        // Several header lines are one list, in order (RFC 9110 section 5.3): the last line
        // holds the right-most entries.
        let mut leftmost = None;
        for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let Ok(text) = value.to_str() else { return peer };
            for entry in text.rsplit(',') {
                let Some(addr) = parse_entry(entry.trim()) else { return peer };
                if !self.trusts(addr.ip()) {
                    return addr;
                }
                leftmost = Some(addr);
            }
        }
        leftmost.unwrap_or(peer)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<&str> = self.entries.iter().map(|(text, _)| text.as_str()).collect();
        f.write_str(&texts.join(","))
    }
}

/// One `X-Forwarded-For` entry: `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::7`, `[2001:db8::7]`
/// or `[2001:db8::7]:4711`. An IPv4 address written as IPv6 becomes the IPv4 address.
fn parse_entry(entry: &str) -> Option<SocketAddr> {
    let addr = match entry.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            let bare = entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')).unwrap_or(entry);
            SocketAddr::new(bare.parse::<IpAddr>().ok()?, 0)
        }
    };
    Some(SocketAddr::new(addr.ip().to_canonical(), addr.port()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const PROXY: &str = "10.0.0.2:50000";

    fn trusted(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    /// The client address for a request from `peer` with these X-Forwarded-For lines.
    fn client(proxies: &str, peer: &str, values: &[&str]) -> String {
        trusted(proxies).client_addr(peer.parse().unwrap(), &headers(values)).to_string()
    }

    #[test]
    fn a_trusted_proxy_s_forwarded_client_is_the_client() {
        assert_eq!(client("10.0.0.0/8", PROXY, &["203.0.113.9"]), "203.0.113.9:0");
        // Without the header, or without any trusted proxy, the peer is the client.
        assert_eq!(client("10.0.0.0/8", PROXY, &[]), PROXY);
        assert_eq!(client("", PROXY, &["203.0.113.9"]), PROXY);
    }

    #[test]
    fn an_untrusted_peer_s_header_is_ignored() {
        assert_eq!(client("10.0.0.2", "198.51.100.1:4000", &["203.0.113.9"]), "198.51.100.1:4000");
        assert_eq!(client("10.0.0.2", "10.0.0.3:4000", &["203.0.113.9"]), "10.0.0.3:4000");
    }

    #[test]
    fn spoofed_left_most_entries_are_ignored() {
        // The client sent `X-Forwarded-For: 1.1.1.1, 127.0.0.1`; the proxy appended the address
        // it saw. The right-most untrusted entry is the client, not anything it claimed.
        assert_eq!(client("10.0.0.2", PROXY, &["1.1.1.1, 127.0.0.1, 203.0.113.9"]), "203.0.113.9:0");
        // A chain of trusted proxies is skipped (10.0.0.5 forwarded to 10.0.0.2).
        assert_eq!(client("10.0.0.0/8", PROXY, &["1.1.1.1, 203.0.113.9, 10.0.0.5"]), "203.0.113.9:0");
        // Claiming to be a trusted proxy on the left does not help the client either.
        assert_eq!(client("10.0.0.0/8", PROXY, &["10.0.0.9, 203.0.113.9"]), "203.0.113.9:0");
    }

    #[test]
    fn several_header_lines_are_one_list() {
        assert_eq!(client("10.0.0.0/8", PROXY, &["1.1.1.1", "203.0.113.9, 10.0.0.5"]), "203.0.113.9:0");
        assert_eq!(client("10.0.0.0/8", PROXY, &["203.0.113.9", "10.0.0.5"]), "203.0.113.9:0");
    }

    #[test]
    fn every_entry_trusted_makes_the_left_most_the_client() {
        assert_eq!(client("10.0.0.0/8", PROXY, &["10.0.0.7, 10.0.0.5"]), "10.0.0.7:0");
    }

    #[test]
    fn ipv6_and_ports_in_entries() {
        assert_eq!(client("10.0.0.2", PROXY, &["2001:db8::7"]), "[2001:db8::7]:0");
        assert_eq!(client("10.0.0.2", PROXY, &["[2001:db8::7]"]), "[2001:db8::7]:0");
        assert_eq!(client("10.0.0.2", PROXY, &["[2001:db8::7]:4711"]), "[2001:db8::7]:4711");
        assert_eq!(client("10.0.0.2", PROXY, &["203.0.113.9:4711"]), "203.0.113.9:4711");
        // An IPv4 client written as IPv6 is the IPv4 address.
        assert_eq!(client("10.0.0.2", PROXY, &["::ffff:203.0.113.9"]), "203.0.113.9:0");
        // An IPv6 proxy (and a dual-stack listener's mapped IPv4 peer) is recognised.
        assert_eq!(client("fd00::/8", "[fd00::2]:443", &["203.0.113.9"]), "203.0.113.9:0");
        assert_eq!(client("10.0.0.2", "[::ffff:10.0.0.2]:443", &["203.0.113.9"]), "203.0.113.9:0");
        assert_eq!(client("::1", "[::1]:443", &["2001:db8::7, ::1"]), "[2001:db8::7]:0");
    }

    #[test]
    fn garbage_before_the_client_falls_back_to_the_peer() {
        for garbage in
            ["", " ", "unknown", "_hidden", "203.0.113.9, ", "not-an-ip", "300.1.1.1", "fe80::1%eth0", "[::1"]
        {
            assert_eq!(client("10.0.0.2", PROXY, &[garbage]), PROXY, "{garbage:?}");
        }
        // Right of the client, an unparsable entry stops the walk; left of it, it is never read.
        assert_eq!(client("10.0.0.2", PROXY, &["203.0.113.9, junk"]), PROXY);
        assert_eq!(client("10.0.0.2", PROXY, &["junk, 203.0.113.9"]), "203.0.113.9:0");
        // A value that is not visible ASCII.
        let mut map = HeaderMap::new();
        map.insert(X_FORWARDED_FOR, HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap());
        assert_eq!(trusted("10.0.0.2").client_addr(PROXY.parse().unwrap(), &map).to_string(), PROXY);
    }

    #[test]
    fn the_list_parses_addresses_and_ranges_and_refuses_the_rest() {
        let list = trusted(" 127.0.0.1, 10.0.0.0/8 ,,fd00::/8 ");
        assert_eq!(list.to_string(), "127.0.0.1,10.0.0.0/8,fd00::/8");
        assert!(list.trusts("10.200.0.1".parse().unwrap()) && list.trusts("fd12::1".parse().unwrap()));
        assert!(!list.trusts("192.0.2.1".parse().unwrap()));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in ["localhost", "10.0.0.0/33", "10.0.0.0/", "1.2.3", "proxy.internal"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }
}
