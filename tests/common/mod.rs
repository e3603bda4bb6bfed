//! Test harness: the real shipshape binary against the lab's private dockerd
//! and registries (started by `scripts/lab up`). Nothing here ever talks to
//! the user's own Docker daemon.
#![allow(dead_code)]

pub mod engine_proxy;
pub mod flaky_proxy;
pub mod jobs;
pub mod registry;
pub mod token_server;
pub mod wire;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What `scripts/lab up` wrote to `$LAB_DIR/env`.
#[derive(Debug, Clone)]
pub struct Lab {
    pub dir: PathBuf,
    pub docker_host: String,
    pub docker_config: String,
    pub registry: String,
    pub auth_registry: String,
    pub auth_user: String,
    pub auth_password: String,
    pub base_image: String,
    /// The TLS registry (`127.0.0.1:port`, h2, the lab's own CA; it serves
    /// `registry`'s storage), Docker's certs.d layout trusting it, and the CA.
    pub tls_registry: String,
    pub certs_d: PathBuf,
    pub tls_ca: PathBuf,
    /// The lab's second private engine (`host2`): its socket, its TLS
    /// listener (`tcp://127.0.0.1:port`) and that listener's client files
    /// (`{ca,cert,key}.pem`). `None` in a lab written before it existed.
    pub docker_host2: Option<String>,
    pub docker_host2_tls: Option<String>,
    pub docker_host2_certs: Option<PathBuf>,
}

pub fn lab() -> Lab {
    let dir = PathBuf::from(std::env::var("LAB_DIR").unwrap_or_else(|_| "/tmp/shipshape-lab".into()));
    let env = std::fs::read_to_string(dir.join("env"))
        .unwrap_or_else(|e| panic!("no lab at {}: run scripts/lab up ({e})", dir.display()));
    let get_opt = |key: &str| {
        env.lines()
            .filter_map(|l| l.trim().strip_prefix("export ").or(Some(l.trim())))
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
    };
    let get = |key: &str| get_opt(key).unwrap_or_else(|| panic!("{key} missing from the lab env"));
    let lab = Lab {
        docker_host: get("DOCKER_HOST"),
        docker_config: get("DOCKER_CONFIG"),
        registry: get("LAB_REGISTRY"),
        auth_registry: get("LAB_AUTH_REGISTRY"),
        auth_user: get("LAB_AUTH_USER"),
        auth_password: get("LAB_AUTH_PASSWORD"),
        base_image: get("LAB_BASE_IMAGE"),
        tls_registry: get("LAB_TLS_REGISTRY"),
        certs_d: PathBuf::from(get("LAB_CERTS_D")),
        tls_ca: PathBuf::from(get("LAB_TLS_CA")),
        // An env file written by an older scripts/lab lacks them: the second
        // engine is found where scripts/lab keeps it.
        docker_host2: get_opt("LAB_DOCKER_HOST2").or_else(|| {
            let socket = dir.join("host2/docker.sock");
            socket.exists().then(|| format!("unix://{}", socket.display()))
        }),
        docker_host2_tls: get_opt("LAB_DOCKER_HOST2_TLS").or_else(|| {
            let port = std::fs::read_to_string(dir.join("host2/tcp-port")).ok()?;
            Some(format!("tcp://127.0.0.1:{}", port.trim()))
        }),
        docker_host2_certs: get_opt("LAB_DOCKER_HOST2_CERTS")
            .map(PathBuf::from)
            .or_else(|| Some(dir.join("host2/client")).filter(|d| d.is_dir())),
        dir,
    };
    // The one guard that matters most: tests only ever use the private daemon.
    assert!(
        lab.docker_host.contains(&*lab.dir.to_string_lossy()),
        "refusing to test against {}: not the lab's private daemon",
        lab.docker_host
    );
    lab
}

impl Lab {
    /// Runs the docker CLI against the private daemon; panics with its stderr on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.docker_output(args);
        assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn docker_output(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.docker_host)
            .env("DOCKER_CONFIG", &self.docker_config)
            .output()
            .expect("docker CLI runs")
    }

    /// A container running `sleep` with no network; removed when the guard drops.
    pub fn run(&self, name: &str, image: &str, extra: &[&str]) -> ContainerGuard {
        // busybox `sleep` as PID 1 ignores SIGTERM: keep stops (and daemon restarts) short.
        let mut args = vec!["run", "-d", "--network", "none", "--stop-timeout", "1", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[image, "sleep", "100000"]);
        let id = self.docker(&args);
        ContainerGuard { lab: self.clone(), name: name.to_string(), id }
    }

    /// Pulls the base image back if a test removed it.
    pub fn ensure_base_image(&self) {
        if self.docker_output(&["image", "inspect", &self.base_image]).status.code() != Some(0) {
            self.docker(&["pull", "-q", &self.base_image]);
        }
    }

    /// The same lab, with every docker command on its second private engine
    /// (`host2`): `lab.host2().run(...)` runs a container there.
    pub fn host2(&self) -> Lab {
        let host = self.docker_host2.clone().unwrap_or_else(|| {
            panic!("no LAB_DOCKER_HOST2 in {}/env: run scripts/lab up (this lab predates host2)", self.dir.display())
        });
        assert!(host.contains(&*self.dir.to_string_lossy()), "refusing {host}: not the lab's private daemon");
        Lab { docker_host: host, ..self.clone() }
    }

    pub fn script(&self, args: &[&str]) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("scripts/lab"))
            .args(args)
            .env("LAB_DIR", &self.dir)
            .output()
            .expect("scripts/lab runs");
        assert!(out.status.success(), "scripts/lab {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

pub struct ContainerGuard {
    lab: Lab,
    pub name: String,
    pub id: String,
}

impl ContainerGuard {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = self.lab.docker_output(&["rm", "-f", &self.name]);
    }
}

/// The docker CLI against the private daemon with another DOCKER_CONFIG
/// (a `docker login` of a test registry), optionally fed `stdin`.
pub fn docker_as(lab: &Lab, config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", &lab.docker_host)
        .env("DOCKER_CONFIG", config)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker CLI runs");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("write docker stdin");
    }
    child.wait_with_output().expect("docker CLI finishes")
}

pub fn docker_as_ok(lab: &Lab, config: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = docker_as(lab, config, args, stdin);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes a local tag from the private daemon when dropped.
pub struct TagGuard<'a> {
    lab: &'a Lab,
    image: String,
}

impl Drop for TagGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lab.docker_output(&["rmi", &self.image]);
    }
}

/// Tags the lab's base image as `image` and pushes it; returns the pushed manifest digest.
pub fn push_base_as<'a>(lab: &'a Lab, config: &Path, image: &str) -> (String, TagGuard<'a>) {
    lab.ensure_base_image();
    lab.docker(&["tag", &lab.base_image, image]);
    let guard = TagGuard { lab, image: image.to_string() };
    let out = docker_as_ok(lab, config, &["push", image], None);
    let digest = out
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in push output: {out}"))
        .to_string();
    assert!(digest.starts_with("sha256:"), "odd digest {digest:?} in {out}");
    (digest, guard)
}

/// One accept on a non-blocking listener of a test server: each connection
/// is served on a thread of its own; an idle listener naps briefly.
pub fn accept_once(
    listener: &std::net::TcpListener,
    name: &str,
    serve: impl FnOnce(std::net::TcpStream) + Send + 'static,
) {
    match listener.accept() {
        Ok((conn, _)) => {
            let _ = std::thread::Builder::new().name(name.into()).spawn(move || serve(conn));
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(2)),
        Err(_) => std::thread::sleep(Duration::from_millis(10)),
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// The real shipshape binary, on a random port, with its own data dir.
pub struct TestApp {
    pub addr: String,
    pub data_dir: PathBuf,
    _data: Option<tempfile::TempDir>,
    child: Child,
    log: Arc<Mutex<String>>,
    env: Vec<(String, String)>,
    pub client: reqwest::Client,
}

pub fn spawn_app(lab: &Lab) -> TestApp {
    spawn_app_with(lab, &[])
}

pub fn spawn_app_with(lab: &Lab, env: &[(&str, &str)]) -> TestApp {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().to_path_buf();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let (child, log, addr) = start(lab, &data_dir, &env);
    TestApp { addr, data_dir, _data: Some(data), child, log, env, client: client() }
}

fn client() -> reqwest::Client {
    client_builder().cookie_store(true).build().expect("client")
}

/// A client without a cookie jar, for tests that handle cookies themselves.
pub fn http_client() -> reqwest::Client {
    client_builder().build().expect("client")
}

fn client_builder() -> reqwest::ClientBuilder {
    // Idle connections are dropped well before the server's 5 s keep-alive
    // closes them, so a request never races a closing connection.
    reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_idle_timeout(Duration::from_secs(2))
}

fn start(lab: &Lab, data_dir: &Path, env: &[(String, String)]) -> (Child, Arc<Mutex<String>>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipshape"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", data_dir)
        .env("DOCKER_HOST", &lab.docker_host)
        .env("DOCKER_CONFIG", &lab.docker_config)
        .env("SHIPSHAPE_LISTEN", "127.0.0.1:0")
        .env("SHIPSHAPE_DATA_DIR", data_dir)
        .env("SHIPSHAPE_AUTH", "off")
        // Network safety: some tests name Docker Hub images (never pulled);
        // the service must not try to check them on the internet.
        .env("SHIPSHAPE_IGNORE_REGISTRIES", "docker.io")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("shipshape starts");
    let log = Arc::new(Mutex::new(String::new()));
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = log.lock().map(|l| l.clone()).unwrap_or_default();
        if let Some(addr) = text.lines().find_map(|l| l.split("listening on http://").nth(1)) {
            let addr = addr.split_whitespace().next().unwrap_or_default().to_string();
            return (child, log, addr);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("shipshape exited ({status}) before listening:\n{text}");
        }
        assert!(Instant::now() < deadline, "shipshape did not start listening:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/api/ws", self.addr)
    }

    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub async fn images(&self) -> Vec<Value> {
        let resp = self.client.get(self.url("/api/images")).send().await.expect("GET /api/images");
        assert_eq!(resp.status(), 200);
        resp.json::<Vec<Value>>().await.expect("images json")
    }

    /// `POST /api/check`: a registry check now, answered with the fresh view.
    pub async fn check_now(&self) -> Vec<Value> {
        let resp = self.client.post(self.url("/api/check")).send().await.expect("POST /api/check");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("json")
    }

    /// Polls `GET /api/images` until `pred` holds, or panics after `within`.
    pub async fn wait_images(&self, within: Duration, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let images = self.images().await;
            if pred(&images) {
                return images;
            }
            assert!(Instant::now() < deadline, "{what}: not seen within {within:?}; last answer: {images:#?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Kills the service with SIGKILL and starts it again on the same data dir.
    pub fn restart(&mut self, lab: &Lab) {
        self.kill();
        let (child, log, addr) = start(lab, &self.data_dir, &self.env);
        self.child = child;
        self.log = log;
        self.addr = addr;
    }

    /// Like [`restart`](Self::restart), with some settings changed (or added).
    pub fn restart_with(&mut self, lab: &Lab, changes: &[(&str, &str)]) {
        for (key, value) in changes {
            self.env.retain(|(k, _)| k != key);
            self.env.push((key.to_string(), value.to_string()));
        }
        self.restart(lab);
    }

    /// Like [`restart`](Self::restart), with some settings removed.
    pub fn restart_without(&mut self, lab: &Lab, keys: &[&str]) {
        self.env.retain(|(k, _)| !keys.contains(&k.as_str()));
        self.restart(lab);
    }

    /// Waits for the service to exit on its own (a crash the test provoked);
    /// panics with its log if it still runs after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) => {}
                Err(e) => panic!("waiting for shipshape: {e}"),
            }
            assert!(Instant::now() < deadline, "shipshape still runs after {within:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the binary as `spawn_app` would, to its exit (for start-up failures);
/// a temporary data dir, the lab's daemon.
pub fn run_shipshape(lab: &Lab, env: &[(&str, &str)]) -> Output {
    let data = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipshape"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", data.path())
        .env("DOCKER_HOST", &lab.docker_host)
        .env("DOCKER_CONFIG", &lab.docker_config)
        .env("SHIPSHAPE_LISTEN", "127.0.0.1:0")
        .env("SHIPSHAPE_DATA_DIR", data.path())
        .env("SHIPSHAPE_IGNORE_REGISTRIES", "docker.io");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).output().expect("shipshape runs")
}

/// `shipshape check <args>` against the lab's engine, with a data dir of its
/// own unless `env` names one; must succeed. Its stdout.
pub fn check_command(lab: &Lab, args: &[&str], env: &[(&str, &str)]) -> String {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipshape"));
    cmd.arg("check")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("DOCKER_HOST", &lab.docker_host)
        .env("DOCKER_CONFIG", &lab.docker_config)
        .env("SHIPSHAPE_DATA_DIR", home.path())
        .env("SHIPSHAPE_IGNORE_REGISTRIES", "docker.io");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("shipshape check runs");
    assert!(out.status.success(), "check failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `shipshape check --json`, parsed.
pub fn check_json(lab: &Lab, env: &[(&str, &str)]) -> Vec<Value> {
    serde_json::from_str(&check_command(lab, &["--json"], env)).expect("check --json prints JSON")
}

/// Logs in as `admin` with `pass`, which must succeed; the answer, for its cookie.
pub async fn login_ok(app: &TestApp, pass: &str) -> reqwest::Response {
    let resp = http_client()
        .post(app.url("/api/login"))
        .json(&serde_json::json!({ "user": "admin", "pass": pass }))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "login as admin");
    resp
}

/// The session cookie a login answer sets: its `name=value` part (to send
/// back) and the whole `Set-Cookie` header (to check its attributes).
pub fn session_cookie(resp: &reqwest::Response) -> (String, String) {
    let header = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("shipshape_session="))
        .expect("session cookie set")
        .to_string();
    (header.split(';').next().unwrap_or_default().to_string(), header)
}

/// The contract's short digest: `sha256:` and 10 hex digits.
pub fn short(digest: &str) -> String {
    digest.chars().take(17).collect()
}

pub fn group<'a>(images: &'a [Value], image: &str) -> &'a Value {
    images.iter().find(|g| g["image"] == image).unwrap_or_else(|| panic!("no group {image} in {images:#?}"))
}

pub fn find_container<'a>(images: &'a [Value], name: &str) -> Option<(&'a Value, &'a Value)> {
    images.iter().find_map(|g| g["containers"].as_array()?.iter().find(|c| c["container_name"] == name).map(|c| (g, c)))
}
