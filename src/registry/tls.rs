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
/// Where distributions keep their trusted CAs as one bundle: the list Go's
/// crypto/x509 (and so Docker) reads, the first one found.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Arch; distroless
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL 6
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/pki/tls/cacert.pem",            // OpenELEC
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
    "/etc/ssl/cert.pem",                  // Alpine
];
/// Folders of single CA files, read only when no bundle was found.
const SYSTEM_DIRS: &[&str] = &["/etc/ssl/certs", "/etc/pki/tls/certs"];
/// A system bundle holds a few hundred certificates (about 200 KiB).
const MAX_BUNDLE_BYTES: u64 = 16 * 1024 * 1024;

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

/// The system's trusted CAs, read once: `SSL_CERT_FILE` or the first
/// distribution bundle found, and `SSL_CERT_DIR` (or, without any bundle,
/// the usual folders). Each CA is read once — the usual folders hold every
/// bundle certificate again, twice (by name and by hash link), which a
/// reader of both parses three times over.
pub fn system_roots() -> Vec<Certificate> {
    let env_file = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let env_dirs: Option<Vec<PathBuf>> = std::env::var_os("SSL_CERT_DIR").map(|v| std::env::split_paths(&v).collect());
    let bundles: Vec<PathBuf> = match env_file {
        Some(file) => vec![file],
        None => SYSTEM_BUNDLES.iter().map(PathBuf::from).collect(),
    };
    let dirs_always = env_dirs.is_some();
    let dirs: Vec<PathBuf> = env_dirs.unwrap_or_else(|| SYSTEM_DIRS.iter().map(PathBuf::from).collect());
    roots_from(&bundles, &dirs, dirs_always)
}

/// The first of `bundles` that holds certificates, then the files of
/// `dirs` — always when `dirs_always`, else only when no bundle did.
fn roots_from(bundles: &[PathBuf], dirs: &[PathBuf], dirs_always: bool) -> Vec<Certificate> {
    let read = |path: &Path| -> Vec<Certificate> {
        let small = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= MAX_BUNDLE_BYTES);
        let pem = if small { std::fs::read(path).unwrap_or_default() } else { Vec::new() };
        Certificate::from_pem_bundle(&pem).unwrap_or_default()
    };
    let mut roots = bundles.iter().map(|b| read(b)).find(|certs| !certs.is_empty()).unwrap_or_default();
    if dirs_always || roots.is_empty() {
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for file in files {
                roots.extend(read(&file));
            }
        }
    }
    roots
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
    fn system_roots_come_from_one_bundle_or_else_the_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A throwaway self-signed CA certificate (its key was never kept).
        let ca = include_bytes!("../../tests/fixtures/test-ca.pem");
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("empty.pem"), "").expect("write");
        std::fs::write(path("two.pem"), [ca.as_slice(), ca.as_slice()].concat()).expect("write");
        std::fs::create_dir(path("certs")).expect("mkdir");
        std::fs::write(path("certs/one.pem"), ca).expect("write");
        std::fs::write(path("certs/junk.txt"), "not a certificate").expect("write");
        let cases: [(&[&str], bool, usize); 5] = [
            (&["missing.pem", "empty.pem", "two.pem"], false, 2), // first bundle with certificates
            (&["two.pem"], true, 3),                              // SSL_CERT_DIR: folders too
            (&["missing.pem", "empty.pem"], false, 1),            // no bundle: the folders
            (&[], false, 1),
            (&["certs"], false, 1), // a folder is no bundle
        ];
        for (bundles, dirs_always, want) in cases {
            let bundles: Vec<PathBuf> = bundles.iter().map(|b| path(b)).collect();
            assert_eq!(roots_from(&bundles, &[path("certs")], dirs_always).len(), want, "{bundles:?} {dirs_always}");
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
