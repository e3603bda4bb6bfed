//! Trust for registries with their own CA, the way Docker does it.
//!
//! Docker trusts `<certs.d>/<host[:port]>/*.crt` as CAs for that registry
//! only, and presents `<name>.cert` with `<name>.key` from the same folder
//! as a client certificate (mutual TLS). We read the same folders, so a
//! registry the engine can pull from is one we can check; the root is
//! configurable (`SHIPSHAPE_CERTS_D`) so tests and unusual setups need not
//! touch `/etc`. `SHIPSHAPE_REGISTRY_CA` adds a bundle trusted for every
//! registry, on top of the system's roots.

use std::path::{Path, PathBuf};

use reqwest::{Certificate, Identity};
use thiserror::Error;

/// Where Docker looks for per-registry certificates.
pub const DEFAULT_CERTS_D: &str = "/etc/docker/certs.d";
/// Certificate files are small; refuse anything that is clearly not one.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{path}: client certificate without its key {key}")]
    MissingKey { path: String, key: String },
}

fn file_error(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::File { path: path.display().to_string(), reason: reason.into() }
}

/// What a registry's certs.d folder holds.
#[derive(Clone, Default)]
pub struct HostTls {
    pub roots: Vec<Certificate>,
    pub identity: Option<Identity>,
    /// The files used, for the debug log.
    pub files: Vec<PathBuf>,
}

/// The folder Docker reads for `registry` (`host` or `host:port`), if the
/// name can be a folder name at all.
pub fn host_dir(certs_d: &Path, registry: &str) -> Option<PathBuf> {
    let plain = !registry.is_empty()
        && registry != "."
        && registry != ".."
        && !registry.contains(['/', '\\', '\0'])
        && !registry.starts_with('.');
    plain.then(|| certs_d.join(registry))
}

/// Reads `<certs_d>/<registry>/`: `Ok(None)` when there is no such folder.
pub fn load_host(certs_d: &Path, registry: &str) -> Result<Option<HostTls>, TlsError> {
    let Some(dir) = host_dir(certs_d, registry) else {
        return Ok(None);
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(None),
        Err(e) => return Err(file_error(&dir, e.to_string())),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut out = HostTls::default();
    for path in paths {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                out.roots.extend(read_certificates(&path)?);
                out.files.push(path);
            }
            Some("cert") => {
                let key = path.with_extension("key");
                if !key.exists() {
                    return Err(TlsError::MissingKey {
                        path: path.display().to_string(),
                        key: key.display().to_string(),
                    });
                }
                if out.identity.is_none() {
                    let mut pem = read_small(&path)?;
                    pem.push(b'\n');
                    pem.extend(read_small(&key)?);
                    let identity = Identity::from_pem(&pem)
                        .map_err(|_| file_error(&path, "not a PEM client certificate with its PEM private key"))?;
                    out.identity = Some(identity);
                    out.files.extend([path, key]);
                }
            }
            _ => {}
        }
    }
    Ok(Some(out))
}

/// The certificates of a PEM file (`SHIPSHAPE_REGISTRY_CA`, a `ca.crt`).
pub fn read_certificates(path: &Path) -> Result<Vec<Certificate>, TlsError> {
    let pem = read_small(path)?;
    let certs = Certificate::from_pem_bundle(&pem).map_err(|_| file_error(path, "not a PEM certificate bundle"))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn read_small(path: &Path) -> Result<Vec<u8>, TlsError> {
    let meta = std::fs::metadata(path).map_err(|e| file_error(path, e.to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(file_error(path, "larger than 1 MiB: not a certificate file"));
    }
    std::fs::read(path).map_err(|e| file_error(path, e.to_string()))
}

/// Whether a TLS failure is about certificates (untrusted, expired, wrong
/// name, or a client certificate the server wanted): the server speaks TLS,
/// so falling back to plain http would only hide the real problem.
pub fn is_certificate_problem(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("certificate") || t.contains("unknownca") || t.contains("unknown ca")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_folders() {
        let root = Path::new("/etc/docker/certs.d");
        let cases = [
            ("registry.example.com", Some("/etc/docker/certs.d/registry.example.com")),
            ("127.0.0.1:5443", Some("/etc/docker/certs.d/127.0.0.1:5443")),
            ("[::1]:5000", Some("/etc/docker/certs.d/[::1]:5000")),
            ("..", None),
            ("a/b", None),
            (".hidden", None),
            ("", None),
        ];
        for (registry, want) in cases {
            assert_eq!(host_dir(root, registry), want.map(PathBuf::from), "registry {registry:?}");
        }
    }

    #[test]
    fn certificate_problems() {
        let cases = [
            ("invalid peer certificate: UnknownIssuer", true),
            ("invalid peer certificate: NotValidForName", true),
            ("received fatal alert: CertificateRequired", true),
            ("received fatal alert: UnknownCA", true),
            ("connection refused", false),
            ("received corrupt message of type InvalidContentType", false),
        ];
        for (text, want) in cases {
            assert_eq!(is_certificate_problem(text), want, "{text}");
        }
    }

    #[test]
    fn folders_and_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load_host(dir.path(), "nothing:1").expect("absent is fine").is_none());
        let host = dir.path().join("reg:1");
        std::fs::create_dir(&host).expect("mkdir");
        let empty = load_host(dir.path(), "reg:1").expect("empty folder").expect("folder");
        assert!(empty.roots.is_empty() && empty.identity.is_none());
        std::fs::write(host.join("ca.crt"), "not pem").expect("write");
        let err = load_host(dir.path(), "reg:1").map(|_| ()).expect_err("garbage refused");
        assert!(err.to_string().ends_with("ca.crt: no PEM certificate in it"), "{err}");
        std::fs::remove_file(host.join("ca.crt")).expect("rm");
        std::fs::write(host.join("client.cert"), "x").expect("write");
        let err = load_host(dir.path(), "reg:1").map(|_| ()).expect_err("no key");
        assert!(err.to_string().contains("without its key"), "{err}");
    }
}
