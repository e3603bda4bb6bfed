//! Which registries may be spoken to over plain http.
//!
//! Docker pulls from a registry over http only when the engine was told the
//! registry is insecure (`insecure-registries` in daemon.json: host names, or
//! CIDRs, with 127.0.0.0/8 always included). Our update checks must reach the
//! same registries the engine pulls from, and must not downgrade any other
//! registry to plain text, so we follow the engine's own decision, read from
//! `GET /info`, plus what the operator adds in `SHIPSHAPE_INSECURE_REGISTRIES`.
//!
//! One deliberate difference from the engine: it resolves host names through
//! DNS before matching CIDRs. We don't (a DNS answer must not be able to turn
//! off TLS); only IP literals and `localhost` are matched against CIDRs.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use thiserror::Error;

use super::reference::ImageRef;
use crate::docker::model::RegistrySettings;

/// The CIDRs the engine treats as insecure when nothing else is configured.
const LOOPBACK_CIDRS: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// Why an entry of `SHIPSHAPE_INSECURE_REGISTRIES` can't be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InsecureError {
    #[error("insecure registry {entry:?} is not a valid CIDR")]
    InvalidCidr { entry: String },
    #[error("insecure registry {entry:?} is not a host, host:port or CIDR")]
    InvalidHost { entry: String },
}

/// A registry named by host, with or without port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostEntry {
    /// Lowercase, IPv6 without brackets.
    host: String,
    /// `None` matches every port.
    port: Option<u16>,
}

/// The registries plain http is allowed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsecureRegistries {
    cidrs: Vec<IpNet>,
    /// The engine's per-registry verdicts (`IndexConfigs`), by lowercase name.
    /// Like in the engine, an entry here wins over the CIDRs.
    index_secure: HashMap<String, bool>,
    /// Operator additions; they win over everything.
    hosts: Vec<HostEntry>,
}

impl Default for InsecureRegistries {
    /// Loopback only, the engine's own default.
    fn default() -> Self {
        InsecureRegistries { cidrs: loopback_cidrs(), index_secure: HashMap::new(), hosts: Vec::new() }
    }
}

impl InsecureRegistries {
    /// The engine's decision (its registry settings from `GET /info`) plus
    /// `extra` (`host`, `host:port` or CIDR entries). An engine that reports
    /// no insecure CIDRs gets the engine default (loopback). Invalid `extra`
    /// entries are skipped with a warning; use [`check_entries`] to refuse
    /// them at startup instead.
    pub fn from_engine(engine: &RegistrySettings, extra: &[String]) -> Self {
        let cidrs = match &engine.insecure_cidrs {
            Some(list) => list
                .iter()
                .filter_map(|c| match c.trim().parse::<IpNet>() {
                    Ok(net) => Some(net),
                    Err(_) => {
                        tracing::warn!(cidr = %c, "engine reports an insecure registry CIDR that does not parse; ignored");
                        None
                    }
                })
                .collect(),
            None => loopback_cidrs(),
        };
        let index_secure =
            engine.index_secure.iter().map(|(name, secure)| (name.to_ascii_lowercase(), *secure)).collect();
        let mut out = InsecureRegistries { cidrs, index_secure, hosts: Vec::new() };
        for entry in extra {
            if let Err(e) = out.add(entry) {
                tracing::warn!(error = %e, "ignoring insecure registry entry");
            }
        }
        out
    }

    /// Loopback and `extra`: what is insecure before the engine has said anything.
    pub fn without_engine(extra: &[String]) -> Self {
        Self::from_engine(&RegistrySettings::default(), extra)
    }

    /// Whether the engine's settings could change how `images` are fetched,
    /// `self` being [`Self::without_engine`]. dockerd counts loopback insecure
    /// whatever it is told and marks no other registry secure but Docker Hub,
    /// so the engine can only add registries, Docker Hub is always https, and
    /// pinned images need no request: only other registries not already
    /// insecure need the engine's word.
    pub fn engine_may_add_to(&self, images: &[ImageRef]) -> bool {
        images.iter().any(|i| !i.is_pinned() && !i.is_docker_hub() && !self.is_insecure(&i.registry))
    }

    /// Adds one `host`, `host:port` or CIDR entry. A `host` without port
    /// allows every port of that host.
    pub fn add(&mut self, entry: &str) -> Result<(), InsecureError> {
        match parse_entry(entry)? {
            Entry::Cidr(net) => self.cidrs.push(net),
            Entry::Host(host) => self.hosts.push(host),
        }
        Ok(())
    }

    /// Whether `registry_host` (`host`, `host:port`, `[::1]:5000`) may be
    /// spoken to over plain http.
    pub fn is_insecure(&self, registry_host: &str) -> bool {
        let name = registry_host.trim().to_ascii_lowercase();
        let Some((host, port)) = split_host_port(&name) else {
            return false;
        };
        if self.hosts.iter().any(|h| h.host == host && (h.port.is_none() || h.port == port)) {
            return true;
        }
        if let Some(secure) = self.index_secure.get(&name) {
            return !secure;
        }
        host_ips(host).iter().any(|ip| self.cidrs.iter().any(|net| net.contains(ip)))
    }
}

/// Checks `SHIPSHAPE_INSECURE_REGISTRIES` entries, so a typo stops startup
/// instead of being ignored.
pub fn check_entries(extra: &[String]) -> Result<(), InsecureError> {
    extra.iter().try_for_each(|e| parse_entry(e).map(|_| ()))
}

fn loopback_cidrs() -> Vec<IpNet> {
    LOOPBACK_CIDRS.iter().filter_map(|c| c.parse().ok()).collect()
}

enum Entry {
    Cidr(IpNet),
    Host(HostEntry),
}

fn parse_entry(entry: &str) -> Result<Entry, InsecureError> {
    let trimmed = entry.trim();
    // Docker accepts `http://host:port` in daemon.json; people copy from there.
    let trimmed = ["http://", "https://"]
        .iter()
        .find_map(|p| trimmed.strip_prefix(p))
        .unwrap_or(trimmed)
        .trim_end_matches('/')
        .to_ascii_lowercase();
    if trimmed.contains('/') {
        return trimmed
            .parse::<IpNet>()
            .map(Entry::Cidr)
            .map_err(|_| InsecureError::InvalidCidr { entry: entry.to_string() });
    }
    let bad = || InsecureError::InvalidHost { entry: entry.to_string() };
    let (host, port) = split_host_port(&trimmed).ok_or_else(bad)?;
    let valid_name = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !host.starts_with(['.', '-'])
        && !host.ends_with(['.', '-']);
    if !valid_name && host.parse::<Ipv6Addr>().is_err() {
        return Err(bad());
    }
    Ok(Entry::Host(HostEntry { host: host.to_string(), port }))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address → host
/// (IPv6 without brackets) and port. `None` when a port is not a number.
fn split_host_port(name: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = name.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match name.matches(':').count() {
        0 => Some((name, None)),
        1 => {
            let (host, port) = name.split_once(':')?;
            Some((host, Some(port.parse().ok()?)))
        }
        // A bare IPv6 address has no port.
        _ => Some((name, None)),
    }
}

/// The addresses a host stands for without asking DNS.
fn host_ips(host: &str) -> Vec<IpAddr> {
    if host == "localhost" {
        return vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    }
    host.parse::<IpAddr>().map(|ip| vec![ip]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(cidrs: Option<&[&str]>, index: &[(&str, bool)]) -> RegistrySettings {
        RegistrySettings {
            insecure_cidrs: cidrs.map(|c| c.iter().map(|s| s.to_string()).collect()),
            index_secure: index.iter().map(|(name, secure)| (name.to_string(), *secure)).collect(),
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn engine_word_needed_only_for_registries_it_could_make_insecure() {
        let without = InsecureRegistries::without_engine(&strings(&["registry.lan:5000"]));
        let cases: [(&[&str], bool); 7] = [
            (&[], false),
            (&["127.0.0.1:5000/a", "localhost:5000/b:1"], false),
            (&["nginx", "docker.io/library/redis:7"], false),
            (&["registry.lan:5000/app"], false),
            (&["ghcr.io/o/r@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"], false),
            (&["ghcr.io/o/r:v1"], true),
            (&["127.0.0.1:5000/a", "registry.lan:5001/app"], true),
        ];
        for (refs, want) in cases {
            let images: Vec<ImageRef> =
                refs.iter().map(|r| crate::registry::reference::parse(r).expect("valid reference")).collect();
            assert_eq!(without.engine_may_add_to(&images), want, "{refs:?}");
        }
    }

    #[test]
    fn default_is_loopback_only() {
        let d = InsecureRegistries::default();
        let cases = [
            ("127.0.0.1:5000", true),
            ("127.0.0.1", true),
            ("127.8.9.10:443", true),
            ("localhost:5000", true),
            ("LOCALHOST", true),
            ("[::1]:5000", true),
            ("[::1]", true),
            ("::1", true),
            ("10.0.0.1:5000", false),
            ("docker.io", false),
            ("ghcr.io", false),
            ("localhost.example.com:5000", false),
            ("127.0.0.1.nip.io:5000", false),
            ("[::2]:5000", false),
            ("127.0.0.1:notaport", false),
            ("[::1", false),
            ("", false),
        ];
        for (host, want) in cases {
            assert_eq!(d.is_insecure(host), want, "host {host:?}");
        }
        assert_eq!(InsecureRegistries::from_engine(&RegistrySettings::default(), &[]), d);
    }

    #[test]
    fn follows_the_engine() {
        let engine = info(
            Some(&["127.0.0.0/8", "10.1.0.0/16", "fd00::/8", "garbage"]),
            &[("docker.io", true), ("myreg:5000", false), ("plainhost", false), ("127.0.0.1:6000", true)],
        );
        let r = InsecureRegistries::from_engine(&engine, &[]);
        let cases = [
            ("127.0.0.1:5000", true),
            ("10.1.2.3:5000", true),
            ("10.2.0.1:5000", false),
            ("[fd00::1]:5000", true),
            ("[fe80::1]:5000", false),
            ("myreg:5000", true),
            ("MYREG:5000", true),
            // The engine compares the exact name: another port is another registry.
            ("myreg:5001", false),
            ("myreg", false),
            ("plainhost", true),
            ("plainhost:80", false),
            ("docker.io", false),
            // An explicit index config wins over the CIDRs, as in the engine.
            ("127.0.0.1:6000", false),
            ("localhost:5000", true),
        ];
        for (host, want) in cases {
            assert_eq!(r.is_insecure(host), want, "host {host:?}");
        }
        // An engine without loopback in its CIDRs (not possible with dockerd, but the data says so).
        let r = InsecureRegistries::from_engine(&info(Some(&[]), &[]), &[]);
        assert!(!r.is_insecure("127.0.0.1:5000"));
    }

    #[test]
    fn extra_entries() {
        let extra =
            strings(&["myhost", "other:5000", "192.168.0.0/24", "[fe80::1]:5000", "http://web:8080/", " spaced "]);
        let r = InsecureRegistries::from_engine(&info(Some(&["127.0.0.0/8"]), &[("myhost:443", true)]), &extra);
        let cases = [
            ("myhost", true),
            ("myhost:5000", true),
            // Operator entries win over the engine's index configs.
            ("myhost:443", true),
            ("MyHost:5000", true),
            ("other:5000", true),
            ("other:5001", false),
            ("other", false),
            ("192.168.0.7:5000", true),
            ("192.168.1.7:5000", false),
            ("[fe80::1]:5000", true),
            ("[fe80::1]:5001", false),
            ("web:8080", true),
            ("spaced:1", true),
            ("127.0.0.1:1", true),
            ("ghcr.io", false),
        ];
        for (host, want) in cases {
            assert_eq!(r.is_insecure(host), want, "host {host:?}");
        }
    }

    #[test]
    fn invalid_entries() {
        let cases = [
            ("10.0.0.0/33", Some(InsecureError::InvalidCidr { entry: "10.0.0.0/33".into() })),
            ("host:port", Some(InsecureError::InvalidHost { entry: "host:port".into() })),
            ("", Some(InsecureError::InvalidHost { entry: "".into() })),
            ("bad_host", Some(InsecureError::InvalidHost { entry: "bad_host".into() })),
            ("-x", Some(InsecureError::InvalidHost { entry: "-x".into() })),
            ("host:5000", None),
            ("::1", None),
            ("[::1]:5000", None),
            ("10.0.0.0/8", None),
        ];
        for (entry, want) in cases {
            assert_eq!(check_entries(&strings(&[entry])).err(), want, "entry {entry:?}");
        }
        // Skipped, not fatal, when building from the engine.
        let r = InsecureRegistries::from_engine(&RegistrySettings::default(), &strings(&["bad_host", "ok:1"]));
        assert!(r.is_insecure("ok:1"));
    }
}
