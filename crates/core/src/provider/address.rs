//! Which provider URLs idvault may use: the SSRF policy, in one place.
//!
//! Provider URLs are set by callers (management API, CLI) and fetched by the server, so a URL
//! could point the server at its own loopback, the cloud metadata service (169.254.169.254) or
//! the private network. The rules:
//!
//! - URLs are parsed the way browsers and reqwest parse them (WHATWG), so `http://2130706433/`,
//!   `http://0x7f.1/` and `http://[::ffff:127.0.0.1]/` are all seen as 127.0.0.1.
//! - `https` only; no user name or password; no fragment. An issuer has no query either (it is
//!   the prefix of the discovery URL, and `?`/`#` would let it pick any path).
//! - A host that is an IP literal must be public: loopback, private (10/8, 172.16/12,
//!   192.168/16), CGNAT (100.64/10), link-local (169.254/16, fe80::/10), unique-local
//!   (fc00::/7), unspecified, multicast, broadcast, documentation and other special ranges are
//!   refused, as are IPv4-mapped and other IPv6 forms that embed one of them. `localhost` and
//!   `*.localhost` are refused.
//! - Host names are also checked when they are resolved, at connect time (idvault-oauth's
//!   resolver calls [`AllowedHosts::permits_resolved`]), against DNS rebinding.
//! - Operators list exceptions in [`AllowedHosts`] (`--provider-allowed-hosts`): host names and
//!   IP addresses or CIDRs that providers may use although they are not public; `http` is
//!   accepted for them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The one answer a caller gets when a provider URL is refused or the provider did not answer
/// as an OAuth provider should (no oracle about what answered where). The detail is logged.
pub const PROVIDER_UNUSABLE: &str =
    "the provider could not be used: its address is not allowed, or it did not answer as an OAuth provider";

/// Longest provider URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// What a URL is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlKind {
    /// An OIDC issuer: `<issuer>/.well-known/openid-configuration` is fetched.
    Issuer,
    /// An endpoint (authorization, token, userinfo, JWKS).
    Endpoint,
}

/// An IP network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr = canonical(addr.parse().ok()?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse::<u8>().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Hosts and networks that providers may use although they are not public
/// (`--provider-allowed-hosts`). Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    names: Vec<String>,
    nets: Vec<Cidr>,
}

impl AllowedHosts {
    /// Nothing allowed beyond public addresses.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma-separated list of host names, IP addresses and CIDRs, such as
    /// `127.0.0.1,10.0.0.0/8,idp.internal`. Blank entries are ignored.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut allowed = AllowedHosts::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Some(net) = Cidr::parse(entry) {
                allowed.nets.push(net);
                continue;
            }
            if entry.contains('/') {
                return Err(format!("'{entry}' is not a valid CIDR (such as 10.0.0.0/8)"));
            }
            // Host names are normalised as URLs normalise them; a name that is an IPv4 number in
            // another form (`2130706433`) becomes that address.
            match Host::parse(entry) {
                Ok(Host::Domain(d)) if !d.contains(':') => {
                    allowed.names.push(d.trim_end_matches('.').to_ascii_lowercase())
                }
                Ok(Host::Ipv4(v4)) => allowed.nets.push(Cidr { addr: IpAddr::V4(v4), prefix: 32 }),
                Ok(Host::Ipv6(v6)) => {
                    allowed.nets.push(Cidr { addr: canonical(IpAddr::V6(v6)), prefix: 128 })
                }
                _ => return Err(format!("'{entry}' is not a host name, an IP address or a CIDR")),
            }
        }
        Ok(allowed)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.nets.is_empty()
    }

    /// Whether this host name is listed (exact match, case-insensitive, trailing dot ignored).
    pub fn allows_name(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// Whether this address is inside a listed address or network.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// At connect time: whether `name` may be reached at `ip`. A listed name may resolve to
    /// anything; any other name only to public or listed addresses.
    pub fn permits_resolved(&self, name: &str, ip: IpAddr) -> bool {
        self.allows_name(name) || is_public(ip) || self.allows_ip(ip)
    }
}

impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> =
            self.names.iter().cloned().chain(self.nets.iter().map(ToString::to_string)).collect();
        f.write_str(&all.join(","))
    }
}

/// Whether an address is publicly routable: not loopback, private, link-local, CGNAT,
/// unique-local, unspecified, multicast, broadcast, documentation or otherwise reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0 // "this network", 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (b & 0xc0) == 64) // CGNAT 100.64/10
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (b & 0xf0) == 16)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // NAT64 (64:ff9b::/96): the embedded IPv4 address decides.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(v4(s[6], s[7]));
    }
    // 6to4 (2002::/16) carries an IPv4 address too.
    if s[0] == 0x2002 {
        return is_public_v4(v4(s[1], s[2]));
    }
    // Only global unicast (2000::/3) is public: this refuses ::, ::1, IPv4-compatible ::/96,
    // 64:ff9b:1::/48, 100::/64, unique-local fc00::/7, link-local fe80::/10, site-local and
    // multicast ff00::/8.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    match s[0] {
        // IETF protocol assignments 2001::/23 (Teredo, ORCHID...) and documentation 2001:db8::/32.
        0x2001 => s[1] >= 0x0200 && s[1] != 0x0db8,
        // Documentation 3fff::/20.
        0x3fff => s[1] >= 0x1000,
        _ => true,
    }
}

/// Why a URL was refused: for logs, never for callers (they get [`PROVIDER_UNUSABLE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse(why: impl Into<String>) -> Refusal {
    Refusal(why.into())
}

/// Checks a provider URL against the policy and answers it parsed. The stored and sent URL stays
/// the string given (an issuer is compared as a string); the parse is the one reqwest makes.
pub fn check_url(url: &str, kind: UrlKind, allowed: &AllowedHosts) -> Result<Url, Refusal> {
    if url.len() > MAX_URL_LEN {
        return Err(refuse(format!("longer than {MAX_URL_LEN} bytes")));
    }
    // WHATWG parsing drops tabs and newlines silently; the stored string must be what is used.
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("contains white space or control characters"));
    }
    let parsed = Url::parse(url).map_err(|e| refuse(format!("not an absolute URL ({e})")))?;
    let scheme = parsed.scheme();
    if scheme != "https" && scheme != "http" {
        return Err(refuse(format!("scheme '{scheme}' is not https")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse("has a user name or password"));
    }
    if parsed.fragment().is_some() {
        return Err(refuse("has a fragment"));
    }
    if kind == UrlKind::Issuer && parsed.query().is_some() {
        return Err(refuse("an issuer has no query"));
    }
    let explicitly_allowed = match parsed.host() {
        None => return Err(refuse("has no host")),
        Some(Host::Ipv4(v4)) => {
            let ip = IpAddr::V4(v4);
            let listed = allowed.allows_ip(ip);
            if !listed && !is_public(ip) {
                return Err(refuse(format!("address {v4} is not public")));
            }
            listed
        }
        Some(Host::Ipv6(v6)) => {
            let ip = IpAddr::V6(v6);
            let listed = allowed.allows_ip(ip);
            if !listed && !is_public(ip) {
                return Err(refuse(format!("address {v6} is not public")));
            }
            listed
        }
        Some(Host::Domain(name)) => {
            let listed = allowed.allows_name(name);
            let bare = name.trim_end_matches('.').to_ascii_lowercase();
            if !listed && (bare == "localhost" || bare.ends_with(".localhost")) {
                return Err(refuse(format!("host {bare} is local")));
            }
            listed
        }
    };
    if scheme == "http" && !explicitly_allowed {
        return Err(refuse("http is accepted only for hosts in --provider-allowed-hosts"));
    }
    Ok(parsed)
}

/// The host of a URL, for logs (never the path or query, which could carry a secret).
pub fn host_for_log(url: &str) -> String {
    Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str, allowed: &AllowedHosts) -> bool {
        check_url(url, UrlKind::Endpoint, allowed).is_ok()
    }

    #[test]
    fn public_https_urls_pass() {
        let none = AllowedHosts::none();
        for url in [
            "https://accounts.google.com",
            "https://oauth2.googleapis.com/token",
            "https://idp.example.com:8443/realms/x/protocol/openid-connect/token?tenant=a",
            "https://8.8.8.8/token",
            "https://[2606:4700::1111]/token",
        ] {
            assert!(ok(url, &none), "{url}");
        }
        assert!(check_url("https://accounts.google.com", UrlKind::Issuer, &none).is_ok());
    }

    #[test]
    fn non_public_addresses_in_every_spelling_are_refused() {
        let none = AllowedHosts::none();
        for url in [
            "https://127.0.0.1/",
            "https://127.1/",
            "https://2130706433/",   // decimal
            "https://0x7f000001/",   // hex
            "https://0x7f.0.0.1/",   // hex part
            "https://0177.0.0.1/",   // octal
            "https://017700000001/", // octal whole
            "https://169.254.169.254/latest/meta-data/",
            "https://2852039166/", // 169.254.169.254 in decimal
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://172.31.255.255/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://0/",
            "https://255.255.255.255/",
            "https://224.0.0.1/",
            "https://192.0.2.1/",
            "https://198.51.100.7/",
            "https://203.0.113.9/",
            "https://198.18.0.1/",
            "https://[::1]/",
            "https://[::]/",
            "https://[::ffff:127.0.0.1]/", // IPv4-mapped
            "https://[::ffff:7f00:1]/",
            "https://[::ffff:a9fe:a9fe]/",   // mapped 169.254.169.254
            "https://[::127.0.0.1]/",        // IPv4-compatible
            "https://[64:ff9b::a9fe:a9fe]/", // NAT64 of the metadata address
            "https://[2002:7f00:1::]/",      // 6to4 of loopback
            "https://[fe80::1]/",
            "https://[fc00::1]/",
            "https://[fd12:3456::1]/",
            "https://[ff02::1]/",
            "https://[2001:db8::1]/",
            "https://localhost/",
            "https://LOCALHOST./",
            "https://api.localhost/",
        ] {
            assert!(!ok(url, &none), "{url} must be refused");
        }
        assert!(ok("https://172.32.0.1/", &none));
        assert!(ok("https://100.128.0.1/", &none));
        assert!(ok("https://[64:ff9b::808:808]/", &none), "NAT64 of a public address");
    }

    #[test]
    fn shape_rules() {
        let none = AllowedHosts::none();
        let issuer = |u: &str| check_url(u, UrlKind::Issuer, &none).is_ok();
        assert!(!issuer("https://idp.example.com/?x=/evil"));
        assert!(!issuer("https://idp.example.com/?"));
        assert!(!issuer("https://idp.example.com/#"));
        assert!(!issuer("https://idp.example.com#/x"));
        assert!(!issuer("https://user:pw@idp.example.com"));
        assert!(!issuer("https://user@idp.example.com"));
        assert!(ok("https://idp.example.com/token?x=1", &none), "an endpoint may have a query");
        assert!(!ok("https://idp.example.com/token#f", &none));
        assert!(!ok("http://idp.example.com/token", &none), "http only for allowed hosts");
        assert!(!ok("javascript:alert(1)", &none));
        assert!(!ok("data:text/html,x", &none));
        assert!(!ok("ftp://idp.example.com/", &none));
        assert!(!ok("file:///etc/passwd", &none));
        assert!(!ok("https://idp.exa\tmple.com/", &none));
        assert!(!ok("https://idp.example.com/\n", &none));
        assert!(!ok("/token", &none));
        assert!(!ok(&format!("https://idp.example.com/{}", "a".repeat(MAX_URL_LEN)), &none));
    }

    #[test]
    fn allowed_hosts_parse_and_match() {
        let a = AllowedHosts::parse(" 127.0.0.1, 10.0.0.0/8 ,idp.internal., [::1], fd00::/8,,").unwrap();
        assert!(a.allows_ip("127.0.0.1".parse().unwrap()));
        assert!(!a.allows_ip("127.0.0.2".parse().unwrap()));
        assert!(a.allows_ip("10.255.1.2".parse().unwrap()));
        assert!(!a.allows_ip("11.0.0.1".parse().unwrap()));
        assert!(a.allows_ip("::ffff:10.1.1.1".parse().unwrap()), "IPv4-mapped matches the IPv4 network");
        assert!(a.allows_ip("::1".parse().unwrap()));
        assert!(a.allows_ip("fd12::9".parse().unwrap()));
        assert!(!a.allows_ip("fe80::1".parse().unwrap()));
        assert!(a.allows_name("IDP.internal"));
        assert!(a.allows_name("idp.internal."));
        assert!(!a.allows_name("x.idp.internal"));

        // Allowed: http accepted, non-public addresses reached; others still refused.
        assert!(ok("http://127.0.0.1:4000/token", &a));
        assert!(ok("http://2130706433:4000/token", &a), "the decimal form is the same address");
        assert!(ok("http://10.2.3.4/token", &a));
        assert!(ok("http://idp.internal/token", &a));
        assert!(ok("http://[::1]:80/token", &a));
        assert!(!ok("http://127.0.0.2/token", &a));
        assert!(!ok("http://169.254.169.254/", &a));
        assert!(!ok("http://localhost/", &a));
        assert!(!ok("http://public.example.com/", &a));

        let cidr = |s: &str| AllowedHosts::parse(s).unwrap();
        assert!(cidr("0.0.0.0/0").allows_ip("169.254.169.254".parse().unwrap()));
        assert!(cidr("172.16.0.0/12").allows_ip("172.31.0.1".parse().unwrap()));
        assert!(!cidr("172.16.0.0/12").allows_ip("172.32.0.1".parse().unwrap()));
        assert!(cidr("192.168.1.0/24").allows_ip("192.168.1.200".parse().unwrap()));
        assert!(!cidr("192.168.1.0/24").allows_ip("192.168.2.1".parse().unwrap()));
        assert!(cidr("2130706433").allows_ip("127.0.0.1".parse().unwrap()), "decimal host entry");
        assert!(cidr("localhost").allows_name("localhost"));
        assert!(!cidr("10.0.0.0/8").allows_ip("::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "::/129", "a b", "http://x", "x/y", "h:80"] {
            assert!(AllowedHosts::parse(bad).is_err(), "{bad}");
        }
        assert!(AllowedHosts::parse("").unwrap().is_empty());
        assert_eq!(cidr("127.0.0.1,idp.internal").to_string(), "idp.internal,127.0.0.1/32");
    }

    #[test]
    fn resolved_addresses() {
        let none = AllowedHosts::none();
        assert!(!none.permits_resolved("evil.example", "127.0.0.1".parse().unwrap()));
        assert!(!none.permits_resolved("evil.example", "::ffff:169.254.169.254".parse().unwrap()));
        assert!(none.permits_resolved("good.example", "93.184.216.34".parse().unwrap()));
        let a = AllowedHosts::parse("idp.internal,127.0.0.1").unwrap();
        assert!(a.permits_resolved("idp.internal", "10.9.9.9".parse().unwrap()));
        assert!(a.permits_resolved("any.example", "127.0.0.1".parse().unwrap()));
        assert!(!a.permits_resolved("any.example", "10.9.9.9".parse().unwrap()));
    }
}
