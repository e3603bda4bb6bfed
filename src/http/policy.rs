//! Who may talk to shipshape at all: which `Host` names it answers to, which
//! `Origin`s may change state, and which client address a request comes from.
//!
//! DNS rebinding is the threat: a page on `evil.example` whose name is made to
//! resolve to 127.0.0.1 talks to a local shipshape with the browser's
//! blessing, but its requests carry `Host: evil.example`. A browser only sends
//! an IP literal or `localhost` as Host when the user typed that address, so
//! those are accepted on any port (a port published by Docker differs from
//! the listen port); any other name must be the one configured in
//! `SHIPSHAPE_PUBLIC_URL`.

use std::net::IpAddr;

use ipnet::IpNet;

/// What a request must look like to be served; built once at start.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// `SHIPSHAPE_PUBLIC_URL`, as scheme, lowercase host and port.
    public: Option<PublicOrigin>,
    trusted_proxies: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PublicOrigin {
    scheme: String,
    host: String,
    port: u16,
}

impl HostPolicy {
    /// `public_url`: `https://ships.example.com` or with a port and path
    /// (the path is ignored). Errors name what is wrong with it.
    pub fn new(public_url: Option<&str>, trusted_proxies: Vec<IpNet>) -> Result<Self, String> {
        let public = public_url
            .map(|raw| {
                let url = url::Url::parse(raw).map_err(|e| format!("SHIPSHAPE_PUBLIC_URL {raw:?}: {e}"))?;
                let scheme = url.scheme().to_string();
                if scheme != "http" && scheme != "https" {
                    return Err(format!("SHIPSHAPE_PUBLIC_URL {raw:?}: scheme must be http or https"));
                }
                let host = match url.host() {
                    Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
                    Some(url::Host::Ipv4(ip)) => ip.to_string(),
                    Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
                    None => return Err(format!("SHIPSHAPE_PUBLIC_URL {raw:?}: no host")),
                };
                let port = url.port_or_known_default().unwrap_or(80);
                Ok(PublicOrigin { scheme, host, port })
            })
            .transpose()?;
        Ok(Self { public, trusted_proxies })
    }

    /// Whether a `Host` header value names this service.
    pub fn host_allowed(&self, host_header: &str) -> bool {
        let Some((host, port)) = split_authority(host_header) else { return false };
        if host == "localhost" || is_ip_literal(&host) {
            return true;
        }
        self.public
            .as_ref()
            .is_some_and(|p| host == p.host && port.map_or(p.port == default_port(&p.scheme), |port| port == p.port))
    }

    /// Whether a request with this `Origin`, sent to this (allowed) `Host`,
    /// comes from a page of this service: the same origin, or the public one.
    pub fn origin_allowed(&self, origin: &str, host_header: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        let Some((scheme, authority)) = origin.split_once("://") else { return false };
        if scheme != "http" && scheme != "https" || authority.contains('/') {
            return false;
        }
        let Some(origin_host) = split_authority(authority) else { return false };
        if let Some(p) = &self.public {
            let port = origin_host.1.unwrap_or(default_port(scheme));
            if scheme == p.scheme && origin_host.0 == p.host && port == p.port {
                return true;
            }
        }
        // Same origin: the page was served by us (plain http; pages behind a
        // TLS proxy have the public origin) from the host this request
        // names, when that is one of ours. Default ports may be implied.
        if scheme != "http" || !self.host_allowed(host_header) {
            return false;
        }
        let Some(request_host) = split_authority(host_header) else { return false };
        origin_host.0 == request_host.0
            && origin_host.1.unwrap_or(default_port(scheme)) == request_host.1.unwrap_or(default_port(scheme))
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The address a request comes from: the peer, or, when the peer is a
    /// trusted proxy, the rightmost `X-Forwarded-For` entry that is not one
    /// (entries further left are the client's own claims and can be forged).
    pub fn client_address<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        let entries: Vec<&str> = forwarded_for.flat_map(|h| h.split(',')).map(str::trim).collect();
        let mut leftmost = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_forwarded_ip(entry) else { return leftmost };
            let ip = canonical(ip);
            if !self.is_trusted(ip) {
                return ip;
            }
            leftmost = ip;
        }
        leftmost
    }
}

/// Splits `host[:port]` (IPv6 in brackets) into a lowercase host and port;
/// `None` when it is not a plausible authority.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim();
    if authority.is_empty() || authority.contains(['/', '@', ' ', '\\']) {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        let host = format!("[{}]", inner.to_ascii_lowercase());
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?.parse().ok()?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (authority.to_string(), None),
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some((host, port))
}

fn is_ip_literal(host: &str) -> bool {
    host.parse::<std::net::Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678`.
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    entry.rsplit_once(':')?.0.parse().ok()
}

/// IPv4-mapped IPv6 addresses are the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(public: Option<&str>, proxies: &[&str]) -> HostPolicy {
        let proxies = proxies.iter().map(|p| p.parse().expect("cidr")).collect();
        HostPolicy::new(public, proxies).expect("policy")
    }

    #[test]
    fn hosts() {
        let plain = policy(None, &[]);
        let public = policy(Some("https://Ships.Example.com/"), &[]);
        let cases = [
            ("127.0.0.1:8099", true, true),
            ("localhost:8099", true, true),
            ("LOCALHOST", true, true),
            ("[::1]:8099", true, true),
            ("192.0.2.7:9000", true, true),
            ("evil.example:8099", false, false),
            ("evil.example", false, false),
            ("localhost.evil.example", false, false),
            ("ships.example.com", false, true),
            ("ships.example.com:443", false, true),
            ("ships.example.com.", false, true),
            ("ships.example.com:8099", false, false),
            ("user@localhost", false, false),
            ("", false, false),
            ("[::1", false, false),
            ("127.0.0.1:notaport", false, false),
        ];
        for (host, in_plain, in_public) in cases {
            assert_eq!(plain.host_allowed(host), in_plain, "{host} without public url");
            assert_eq!(public.host_allowed(host), in_public, "{host} with public url");
        }
    }

    #[test]
    fn origins() {
        let p = policy(Some("https://ships.example.com"), &[]);
        let cases = [
            ("http://127.0.0.1:8099", "127.0.0.1:8099", true),
            ("http://LOCALHOST:8099", "localhost:8099", true),
            ("http://localhost", "localhost:80", true),
            ("http://localhost:8099", "127.0.0.1:8099", false),
            ("http://evil.example:8099", "127.0.0.1:8099", false),
            ("http://evil.example:8099", "evil.example:8099", false),
            ("null", "127.0.0.1:8099", false),
            ("https://ships.example.com", "127.0.0.1:8099", true),
            ("https://ships.example.com:443", "127.0.0.1:8099", true),
            ("http://ships.example.com", "127.0.0.1:8099", false),
            ("https://ships.example.com:8443", "127.0.0.1:8099", false),
            ("http://127.0.0.1:8099/path", "127.0.0.1:8099", false),
            ("https://127.0.0.1:8099", "127.0.0.1:8099", false),
        ];
        for (origin, host, expected) in cases {
            assert_eq!(p.origin_allowed(origin, host), expected, "{origin} -> {host}");
        }
    }

    #[test]
    fn public_url_must_be_http() {
        assert!(HostPolicy::new(Some("ftp://x"), vec![]).is_err());
        assert!(HostPolicy::new(Some("not a url"), vec![]).is_err());
    }

    #[test]
    fn client_address_from_trusted_proxies_only() {
        let p = policy(None, &["127.0.0.1/32", "192.0.2.0/24"]);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let cases: [(&str, &[&str], &str); 7] = [
            ("203.0.113.9", &["198.51.100.1"], "203.0.113.9"),
            ("127.0.0.1", &[], "127.0.0.1"),
            ("127.0.0.1", &["198.51.100.1"], "198.51.100.1"),
            ("127.0.0.1", &["6.6.6.6, 198.51.100.1, 192.0.2.5"], "198.51.100.1"),
            ("127.0.0.1", &["6.6.6.6", "198.51.100.1:4711"], "198.51.100.1"),
            ("127.0.0.1", &["192.0.2.5"], "192.0.2.5"),
            ("::ffff:127.0.0.1", &["[2001:db8::1]:80"], "2001:db8::1"),
        ];
        for (peer, xff, expected) in cases {
            assert_eq!(p.client_address(ip(peer), xff.iter().copied()), ip(expected), "{peer} {xff:?}");
        }
    }
}
