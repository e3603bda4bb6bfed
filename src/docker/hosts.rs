//! Which Docker engines this instance looks after and how each is reached.
//! An engine's identity — its name, its address as shown, its client — is
//! made here, once, as an [`Engine`]; watchers, jobs and the API are handed
//! one and never parse an address themselves.
//!
//! `SHIPSHAPE_DOCKER_HOSTS=name=URL,...` names several engines; without it,
//! `DOCKER_HOST` (or the local socket) is the one engine, called `local`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::engine::{self, Docker, DockerError};

/// The name of the one engine when `SHIPSHAPE_DOCKER_HOSTS` is not set.
pub const DEFAULT_NAME: &str = "local";

/// The longest engine name accepted: it is shown on every row of the UI.
const MAX_NAME: usize = 64;

/// One configured engine, not yet connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub name: String,
    /// As configured; `None`: `DOCKER_HOST` or the local socket.
    pub url: Option<String>,
    /// Named in `SHIPSHAPE_DOCKER_HOSTS` (its TLS files are its folder's),
    /// not the one-engine default (which keeps `DOCKER_TLS_VERIFY`'s meaning).
    pub listed: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostsError {
    #[error("SHIPSHAPE_DOCKER_HOSTS names no engine")]
    Empty,
    #[error("SHIPSHAPE_DOCKER_HOSTS: {0:?} is not name=URL (example: local=unix:///var/run/docker.sock)")]
    NotNameUrl(String),
    #[error("SHIPSHAPE_DOCKER_HOSTS: engine name {0:?} is not valid: 1 to 64 of a-z, 0-9, '-', '_' and '.'")]
    BadName(String),
    #[error("SHIPSHAPE_DOCKER_HOSTS: engine name {0:?} is given twice")]
    Duplicate(String),
    #[error("SHIPSHAPE_DOCKER_HOSTS: engine {name}: {reason}")]
    BadUrl { name: String, reason: String },
    #[error(
        "SHIPSHAPE_DOCKER_HOSTS: engine {0}: ssh:// is not supported; forward the engine's socket \
         (ssh -nNT -L /run/{0}.sock:/var/run/docker.sock user@host) and use unix:///run/{0}.sock"
    )]
    Ssh(String),
    #[error("engine {name}: TLS files: {reason}")]
    Tls { name: String, reason: String },
}

/// Whether `name` may name an engine: it is shown in the UI and used in
/// `host:id` references, so no `:` and nothing a URL must escape.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'))
}

/// Parses `SHIPSHAPE_DOCKER_HOSTS`: comma-separated `name=URL`, in order
/// (the first is the one `GET /api/engine` reports). Blank entries are ignored.
pub fn parse_list(list: &str) -> Result<Vec<HostSpec>, HostsError> {
    let mut hosts: Vec<HostSpec> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, url) = entry.split_once('=').ok_or_else(|| HostsError::NotNameUrl(entry.to_string()))?;
        let (name, url) = (name.trim(), url.trim());
        if !valid_name(name) {
            return Err(HostsError::BadName(name.to_string()));
        }
        if hosts.iter().any(|h| h.name == name) {
            return Err(HostsError::Duplicate(name.to_string()));
        }
        check_url(name, url)?;
        hosts.push(HostSpec { name: name.to_string(), url: Some(url.to_string()), listed: true });
    }
    if hosts.is_empty() {
        return Err(HostsError::Empty);
    }
    Ok(hosts)
}

/// The engines to watch: `SHIPSHAPE_DOCKER_HOSTS` when set, else the one
/// engine of `DOCKER_HOST` (or the local socket), called `local`.
pub fn configured(hosts: Option<&str>, docker_host: Option<&str>) -> Result<Vec<HostSpec>, HostsError> {
    match hosts.map(str::trim).filter(|h| !h.is_empty()) {
        Some(list) => parse_list(list),
        None => {
            let url = docker_host.map(str::to_string);
            Ok(vec![HostSpec { name: DEFAULT_NAME.to_string(), url, listed: false }])
        }
    }
}

fn check_url(name: &str, url: &str) -> Result<(), HostsError> {
    let bad = |reason: &str| HostsError::BadUrl { name: name.to_string(), reason: reason.to_string() };
    if url.starts_with('/') {
        return Ok(());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("expected unix:///path, tcp://host:port, http://host:port or https://host:port"));
    };
    match scheme {
        "unix" if rest.starts_with('/') && rest.len() > 1 => Ok(()),
        "unix" => Err(bad("unix:// needs an absolute socket path (unix:///var/run/docker.sock)")),
        "tcp" | "http" | "https" => {
            let authority = rest.split('/').next().unwrap_or_default();
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
            match host_port.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => Ok(()),
                _ => Err(bad(&format!("{scheme}:// needs host:port (tcp://192.0.2.10:2376)"))),
            }
        }
        "ssh" => Err(HostsError::Ssh(name.to_string())),
        _ => Err(bad(&format!("unsupported scheme {scheme}://"))),
    }
}

/// An address as it may be shown: without user name or password.
pub fn public_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    format!("{scheme}://{authority}{path}")
}

/// Where an engine's client certificate lives: Docker's `DOCKER_CERT_PATH`
/// layout, one folder per engine name: `<certs>/<name>/{ca,cert,key}.pem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The TLS files of engine `name` under `certs`, when its folder exists; a
/// folder missing one of the three files is an error (never a silent
/// fallback to plain HTTP).
pub fn tls_files(certs: Option<&Path>, name: &str) -> Result<Option<TlsFiles>, HostsError> {
    let Some(dir) = certs.map(|c| c.join(name)).filter(|d| d.is_dir()) else { return Ok(None) };
    let files = TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    for file in [&files.ca, &files.cert, &files.key] {
        if !file.is_file() {
            let reason = format!("{} is missing", file.display());
            return Err(HostsError::Tls { name: name.to_string(), reason });
        }
    }
    Ok(Some(files))
}

/// One engine: its name, its address as shown, its client.
#[derive(Clone)]
pub struct Engine {
    pub name: Arc<str>,
    /// The configured address without credentials (the default socket when none was given).
    pub url: String,
    /// Whether requests go over TLS with the engine's own client certificate.
    pub tls: bool,
    pub docker: Docker,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("name", &self.name).field("url", &self.url).field("tls", &self.tls).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Hosts(#[from] HostsError),
    #[error("engine {name}: {source}")]
    Docker { name: String, source: DockerError },
    /// The one-engine default: DOCKER_HOST's errors, as they always read.
    #[error(transparent)]
    Default(#[from] DockerError),
}

/// A client for `spec` (nothing is sent yet). A listed `tcp://` or
/// `https://` engine with a folder under `certs` speaks TLS with its files;
/// `https://` without one is refused; without one, `tcp://` and `http://`
/// are plain HTTP (as the docker CLI without `DOCKER_TLS_VERIFY`). The
/// one-engine default is `DOCKER_HOST` as the docker CLI reads it,
/// `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` included.
pub fn connect(spec: &HostSpec, certs: Option<&Path>) -> Result<Engine, ConnectError> {
    let docker_err = |source| ConnectError::Docker { name: spec.name.clone(), source };
    let tls_err = |reason: String| ConnectError::from(HostsError::Tls { name: spec.name.clone(), reason });
    let shown = spec
        .url
        .clone()
        .unwrap_or_else(|| std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string()));
    let url = public_url(&shown);
    let plain_scheme = shown.starts_with("tcp://") || shown.starts_with("http://");
    let remote = plain_scheme || shown.starts_with("https://");
    if !spec.listed {
        let tls = remote && (shown.starts_with("https://") || std::env::var_os("DOCKER_TLS_VERIFY").is_some());
        let docker = engine::client(spec.url.as_deref())?;
        return Ok(Engine { name: Arc::from(spec.name.as_str()), url, tls, docker });
    }
    let files = if remote { tls_files(certs, &spec.name)? } else { None };
    let (docker, tls) = match files {
        Some(_) if shown.starts_with("http://") => {
            return Err(tls_err("http:// is plain HTTP; use tcp:// or https:// with a certificate folder".into()));
        }
        Some(files) => (engine::client_tls(&shown, &files.key, &files.cert, &files.ca).map_err(docker_err)?, true),
        None if shown.starts_with("https://") => {
            return Err(tls_err(match certs {
                Some(dir) => format!("https:// needs {}/{}/{{ca,cert,key}}.pem", dir.display(), spec.name),
                None => "https:// needs SHIPSHAPE_DOCKER_CERTS/<name>/{ca,cert,key}.pem".to_string(),
            }));
        }
        None if plain_scheme => (engine::client_plain(&shown).map_err(docker_err)?, false),
        None => match engine::client(Some(&shown)) {
            // One engine of several may come after shipshape: it shows as
            // unreachable until its socket is there.
            Err(DockerError::NoSocket(path)) => {
                tracing::warn!(engine = %spec.name, "no socket at {path} yet; looking for it at each connection");
                (engine::client_unix_later(&shown).map_err(docker_err)?, false)
            }
            other => (other.map_err(docker_err)?, false),
        },
    };
    if remote && !tls {
        tracing::warn!(engine = %spec.name, url = %url, "engine reached over plain HTTP: anyone on the way can control it");
    }
    Ok(Engine { name: Arc::from(spec.name.as_str()), url, tls, docker })
}

/// Every configured engine, connected (nothing sent yet), in order.
pub fn connect_all(specs: &[HostSpec], certs: Option<&Path>) -> Result<Vec<Engine>, ConnectError> {
    specs.iter().map(|s| connect(s, certs)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lowercase_words() {
        let cases = [
            ("local", true),
            ("nas-2", true),
            ("a.b_c", true),
            ("0", true),
            ("", false),
            ("Local", false),
            ("a:b", false),
            ("a b", false),
            ("a/b", false),
            ("é", false),
            (&"x".repeat(64) as &str, true),
            (&"x".repeat(65) as &str, false),
        ];
        for (name, ok) in cases {
            assert_eq!(valid_name(name), ok, "{name:?}");
        }
    }

    #[test]
    fn lists_parse_in_order_and_refuse_what_is_wrong() {
        let hosts = parse_list(" local=unix:///var/run/docker.sock , nas=tcp://192.0.2.10:2376,,b=/run/b.sock")
            .expect("valid list");
        let names: Vec<_> = hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["local", "nas", "b"]);
        assert_eq!(hosts[1].url.as_deref(), Some("tcp://192.0.2.10:2376"));
        let cases: [(&str, HostsError); 10] = [
            ("", HostsError::Empty),
            (" , ", HostsError::Empty),
            ("local", HostsError::NotNameUrl("local".into())),
            ("=unix:///x", HostsError::BadName("".into())),
            ("Big=unix:///x", HostsError::BadName("Big".into())),
            ("a=unix:///x,a=unix:///y", HostsError::Duplicate("a".into())),
            ("a=ssh://me@host", HostsError::Ssh("a".into())),
            ("a=unix://", HostsError::BadUrl { name: "a".into(), reason: String::new() }),
            ("a=tcp://host", HostsError::BadUrl { name: "a".into(), reason: String::new() }),
            ("a=ftp://host:21", HostsError::BadUrl { name: "a".into(), reason: String::new() }),
        ];
        for (list, want) in cases {
            let got = parse_list(list).expect_err(list);
            match (&got, &want) {
                (HostsError::BadUrl { name: a, .. }, HostsError::BadUrl { name: b, .. }) => assert_eq!(a, b, "{list}"),
                _ => assert_eq!(got, want, "{list}"),
            }
            assert!(got.to_string().starts_with("SHIPSHAPE_DOCKER_HOSTS"), "{got}");
        }
        for list in ["a=host:2375", "a=tcp://:2375", "a=tcp://h:0", "a=tcp://h:port"] {
            assert!(matches!(parse_list(list), Err(HostsError::BadUrl { .. })), "{list}");
        }
    }

    #[test]
    fn without_a_list_docker_host_is_the_one_engine() {
        let one = configured(None, Some("unix:///x.sock")).expect("default");
        assert_eq!(one, [HostSpec { name: "local".into(), url: Some("unix:///x.sock".into()), listed: false }]);
        assert_eq!(configured(Some("  "), None).expect("blank is unset")[0].url, None);
        assert_eq!(configured(Some("a=/a.sock,b=/b.sock"), Some("unix:///x.sock")).expect("list").len(), 2);
    }

    #[test]
    fn shown_urls_carry_no_credentials() {
        let cases = [
            ("tcp://user:secret@192.0.2.1:2376", "tcp://192.0.2.1:2376"),
            ("https://u@h:1/v1", "https://h:1/v1"),
            ("unix:///var/run/docker.sock", "unix:///var/run/docker.sock"),
            ("/run/a.sock", "/run/a.sock"),
        ];
        for (url, shown) in cases {
            assert_eq!(public_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_certificate_folder_is_all_or_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(tls_files(Some(dir.path()), "nas"), Ok(None));
        assert_eq!(tls_files(None, "nas"), Ok(None));
        let nas = dir.path().join("nas");
        std::fs::create_dir(&nas).expect("mkdir");
        std::fs::write(nas.join("ca.pem"), b"x").expect("write");
        std::fs::write(nas.join("cert.pem"), b"x").expect("write");
        let err = tls_files(Some(dir.path()), "nas").expect_err("key missing");
        assert!(err.to_string().contains("key.pem is missing"), "{err}");
        std::fs::write(nas.join("key.pem"), b"x").expect("write");
        let files = tls_files(Some(dir.path()), "nas").expect("complete").expect("found");
        assert_eq!(files.ca, nas.join("ca.pem"));
    }

    #[test]
    fn a_listed_socket_that_is_not_there_yet_is_no_start_up_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("unix://{}/later.sock", dir.path().display());
        let listed = HostSpec { name: "later".into(), url: Some(url.clone()), listed: true };
        assert!(connect(&listed, None).is_ok());
        let default = HostSpec { name: DEFAULT_NAME.into(), url: Some(url), listed: false };
        let err = connect(&default, None).expect_err("the one engine must be there, as always");
        assert!(err.to_string().contains("no socket at"), "{err}");
    }

    #[test]
    fn https_without_certificates_is_refused_at_start() {
        let spec = HostSpec { name: "nas".into(), url: Some("https://192.0.2.1:2376".into()), listed: true };
        let err = connect(&spec, None).expect_err("no certificates");
        assert!(err.to_string().contains("SHIPSHAPE_DOCKER_CERTS/<name>/{ca,cert,key}.pem"), "{err}");
        let plain = HostSpec { name: "nas".into(), url: Some("tcp://192.0.2.1:2375".into()), listed: true };
        let engine = connect(&plain, None).expect("plain tcp");
        assert!(!engine.tls);
        assert_eq!(&*engine.name, "nas");
    }
}
