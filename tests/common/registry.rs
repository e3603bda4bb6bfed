//! A real registry (Debian's `docker-registry`, distribution 2.8) on a free
//! 127.0.0.1 port, plain http (or https: `TestRegistry::start_tls`),
//! storage in a tempdir; killed on drop.
//! `stop()` / `restart()` simulate the registry going down and coming back on
//! the same port with the same storage.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How the registry authenticates clients.
#[derive(Debug, Clone)]
pub enum RegistryAuth {
    /// Open: anyone may pull and push.
    None,
    /// distribution's `auth: token:` — Bearer tokens from a token server
    /// (see `token_server::TokenServer::registry_auth`).
    Token { realm: String, service: String, issuer: String, root_cert_pem_path: PathBuf },
}

/// https for a [`TestRegistry`]: its certificate and key, and optionally the
/// CA whose client certificates it demands (mutual TLS).
#[derive(Debug, Clone)]
pub struct RegistryTls {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

pub struct TestRegistry {
    /// `127.0.0.1:port`
    pub addr: String,
    pub port: u16,
    pub auth: RegistryAuth,
    pub tls: Option<RegistryTls>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl TestRegistry {
    /// Starts the registry and waits until `GET /v2/` answers (200, or 401 with auth).
    pub fn start(auth: RegistryAuth) -> TestRegistry {
        Self::start_with(auth, None)
    }

    /// An open registry over https; it is up once it accepts connections.
    pub fn start_tls(tls: RegistryTls) -> TestRegistry {
        Self::start_with(RegistryAuth::None, Some(tls))
    }

    fn start_with(auth: RegistryAuth, tls: Option<RegistryTls>) -> TestRegistry {
        let mut last_log = String::new();
        for _ in 0..8 {
            let dir = tempfile::tempdir().expect("registry tempdir");
            std::fs::create_dir_all(dir.path().join("storage")).expect("storage dir");
            let port = free_port();
            let mut reg = TestRegistry {
                addr: format!("127.0.0.1:{port}"),
                port,
                auth: auth.clone(),
                tls: tls.clone(),
                dir,
                child: None,
            };
            reg.write_config();
            match reg.spawn_and_wait() {
                Ok(()) => return reg,
                Err(log) => {
                    last_log = log;
                    // Lost a race for the port: try another one (with a fresh, empty dir).
                    if !last_log.contains("address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("docker-registry did not come up; its log:\n{last_log}");
    }

    /// `http://127.0.0.1:port{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    /// Everything the registry process(es) wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the registry (SIGKILL): from now on connections to `addr` are refused.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry again on the same port with the same storage
    /// (stopping it first if it runs). Retries for a while if the port is busy.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(log) => {
                    assert!(
                        Instant::now() < deadline && log.contains("address already in use"),
                        "docker-registry did not come back on {}; its log:\n{log}",
                        self.addr
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    fn write_config(&self) {
        let storage = self.storage_dir();
        let secret: String = (0..16).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let mut yml = format!(
            "# Written by the shipshape test fixture TestRegistry.
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
  redirect:
    disable: true
http:
  addr: {addr}
  secret: {secret}
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
",
            storage = storage.display(),
            addr = self.addr,
        );
        if let Some(tls) = &self.tls {
            let client_cas = tls.client_ca.as_ref().map_or(String::new(), |ca| {
                format!("    clientcas:\n      - {}\n", yaml_str(&ca.display().to_string()))
            });
            yml = yml.replace(
                "health:\n",
                &format!(
                    "  tls:\n    certificate: {}\n    key: {}\n{client_cas}health:\n",
                    yaml_str(&tls.certificate.display().to_string()),
                    yaml_str(&tls.key.display().to_string()),
                ),
            );
        }
        if let RegistryAuth::Token { realm, service, issuer, root_cert_pem_path } = &self.auth {
            yml.push_str(&format!(
                "auth:
  token:
    realm: {}
    service: {}
    issuer: {}
    rootcertbundle: {}
",
                yaml_str(realm),
                yaml_str(service),
                yaml_str(issuer),
                yaml_str(&root_cert_pem_path.display().to_string())
            ));
        }
        std::fs::write(self.config_path(), yml).expect("write registry config");
    }

    /// Spawns the registry and waits for `/v2/`; on failure returns the log of this attempt.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log_path = self.log_path();
        let mut log = OpenOptions::new().create(true).append(true).open(&log_path).expect("registry log");
        let start_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = writeln!(log, "==== fixture: starting docker-registry on {}", self.addr);
        let err_log = log.try_clone().expect("clone log handle");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {REGISTRY_BIN} (apt-get install docker-registry): {e}"));
        self.child = Some(child);
        let want: &[u16] = match self.auth {
            RegistryAuth::None => &[200],
            RegistryAuth::Token { .. } => &[401],
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if !self.is_running() {
                self.stop();
                return Err(read_from(&log_path, start_offset));
            }
            if self.tls.is_some() {
                // No TLS client here: listening means the registry has set up.
                let sock = ([127, 0, 0, 1], self.port).into();
                if TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_ok() {
                    return Ok(());
                }
            } else if let Some(code) = v2_status(&self.addr) {
                if want.contains(&code) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!("timed out waiting for /v2/\n{}", read_from(&log_path, start_offset)));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text.get(offset as usize..).unwrap_or(&text).to_string()
}

/// A double-quoted YAML scalar.
fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A port below the usual ephemeral range (32768–60999) that nothing listens on,
/// so that while the registry is stopped no outgoing connection lands on it.
fn free_port() -> u16 {
    for _ in 0..200 {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(100)).is_ok() {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between 20000 and 32000");
}

/// The status of `GET /v2/` (std only), or `None` if nothing answers.
fn v2_status(addr: &str) -> Option<u16> {
    let sock = addr.parse().ok()?;
    let mut conn = TcpStream::connect_timeout(&sock, Duration::from_millis(500)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    conn.write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}
