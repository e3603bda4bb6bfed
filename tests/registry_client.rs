//! `RegistryClient` against real registries: the lab's open and htpasswd
//! registries, a token-auth registry with its token server, and the flaky
//! proxy for 429/5xx/stalls. Loopback only; the docker CLI only ever talks to
//! the lab's private daemon.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use common::flaky_proxy::{FlakyProxy, Mode, Script};
use common::registry::TestRegistry;
use common::token_server::{TokenServer, TokenServerOptions};
use common::Lab;
use shipshape::registry::client::{
    ClientOptions, KnownProtocol, RegistryClient, RegistryError, Scheme, MANIFEST_ACCEPT,
};
use shipshape::registry::credentials::{self, DockerConfig};
use shipshape::registry::insecure::InsecureRegistries;
use shipshape::registry::reference::{self, ImageRef};

const BASE_REPO: &str = "shipshape/base";

fn image(s: &str) -> ImageRef {
    reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn client_with(options: ClientOptions) -> RegistryClient {
    RegistryClient::new(options).expect("registry client")
}

fn client() -> RegistryClient {
    client_with(ClientOptions::default())
}

fn client_for(config: DockerConfig) -> RegistryClient {
    client_with(ClientOptions { docker_config: config, ..ClientOptions::default() })
}

/// Writes `config.json` with one `auths` entry and loads it the way the service does.
fn docker_config(dir: &Path, registry: &str, entry: Value) -> DockerConfig {
    let path = dir.join("config.json");
    std::fs::write(&path, json!({ "auths": { registry: entry } }).to_string()).expect("write config.json");
    credentials::load(Some(path)).expect("config.json loads")
}

fn basic_entry(user: &str, password: &str) -> Value {
    json!({ "auth": base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")) })
}

/// The digest a registry reports for a manifest, asked directly with reqwest.
async fn direct_digest(registry: &str, repo: &str, tag: &str, basic: Option<(&str, &str)>) -> String {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(15)).build().expect("client");
    let mut req = http.head(format!("http://{registry}/v2/{repo}/manifests/{tag}")).header("Accept", MANIFEST_ACCEPT);
    if let Some((u, p)) = basic {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req.send().await.expect("HEAD manifest");
    assert_eq!(resp.status(), 200, "HEAD {registry}/{repo}:{tag}");
    resp.headers()["docker-content-digest"].to_str().expect("digest header").to_string()
}

fn assert_no_secret(err: &RegistryError, secrets: &[&str]) {
    let shown = format!("{err} / {err:?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "a secret leaked into the error: {shown}");
    }
}

/// Tags the base image as `target`, pushes it with the CLI config in `config`,
/// removes the local tag again; returns the pushed digest.
fn push_base_as(lab: &Lab, config: &Path, target: &str) -> String {
    common::push_base_as(lab, config, target).0
}

/// A plain-http proxy in front of a registry: one request per connection,
/// forwarded with `Connection: close`. It counts TLS handshakes (and closes
/// them at once, as a plain-http registry's server effectively does), logs
/// requests, can hold each request for `delay` (to see concurrency), and can
/// drop the `Docker-Content-Digest` header from answers, like registries that
/// don't send it.
struct PlainProxy {
    addr: String,
    shared: Arc<ProxyShared>,
    thread: Option<JoinHandle<()>>,
}

struct ProxyShared {
    upstream: String,
    strip_digest: bool,
    delay: Duration,
    tls_attempts: AtomicUsize,
    flight: Arc<Flight>,
    /// (method, path, whether it carried Authorization)
    requests: Mutex<Vec<(String, String, bool)>>,
    stop: AtomicBool,
}

impl PlainProxy {
    fn start(upstream: &str) -> PlainProxy {
        PlainProxy::start_with(upstream, false, Duration::ZERO)
    }

    fn start_with(upstream: &str, strip_digest: bool, delay: Duration) -> PlainProxy {
        PlainProxy::start_counting(upstream, strip_digest, delay, Arc::default())
    }

    /// Counts requests in flight into `flight`, which other proxies may share.
    fn start_counting(upstream: &str, strip_digest: bool, delay: Duration, flight: Arc<Flight>) -> PlainProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let shared = Arc::new(ProxyShared {
            upstream: upstream.to_string(),
            strip_digest,
            delay,
            tls_attempts: AtomicUsize::new(0),
            flight,
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let thread = std::thread::spawn(move || {
            while !sh.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let sh = sh.clone();
                        std::thread::spawn(move || {
                            let _ = serve(conn, &sh);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        PlainProxy { addr, shared, thread: Some(thread) }
    }

    fn tls_attempts(&self) -> usize {
        self.shared.tls_attempts.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<(String, String, bool)> {
        self.shared.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn manifest_requests(&self) -> usize {
        self.requests().iter().filter(|(_, path, _)| path.contains("/manifests/")).count()
    }

    fn max_in_flight(&self) -> usize {
        self.shared.flight.max.load(Ordering::SeqCst)
    }
}

/// Requests in flight now, and the most there ever were.
#[derive(Default)]
struct Flight {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Drop for PlainProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, sh: &ProxyShared) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut first = [0u8; 1];
    if conn.peek(&mut first)? == 0 {
        return Ok(());
    }
    if first[0] == 0x16 {
        // A TLS ClientHello: this is a plain-http server.
        sh.tls_attempts.fetch_add(1, Ordering::SeqCst);
        return conn.shutdown(Shutdown::Both);
    }
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        headers.push(line.trim_end().to_string());
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let has_auth = headers.iter().any(|h| h.to_ascii_lowercase().starts_with("authorization:"));
    if let Ok(mut r) = sh.requests.lock() {
        r.push((method, path, has_auth));
    }
    let now = sh.flight.now.fetch_add(1, Ordering::SeqCst) + 1;
    sh.flight.max.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(sh.delay);

    let answer = (|| {
        let mut up = TcpStream::connect(&sh.upstream)?;
        up.set_read_timeout(Some(Duration::from_secs(130)))?;
        let mut head = request_line.clone();
        for h in headers.iter().filter(|h| !h.to_ascii_lowercase().starts_with("connection:")) {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        up.write_all(head.as_bytes())?;
        let mut answer = Vec::new();
        up.read_to_end(&mut answer)?;
        Ok::<_, std::io::Error>(answer)
    })();
    // Out of flight before the client can see the answer: the client's next
    // request can arrive on another thread before this one runs again, and
    // must not be counted as overlapping this one.
    sh.flight.now.fetch_sub(1, Ordering::SeqCst);
    let mut answer = answer?;
    if sh.strip_digest {
        answer = strip_header(&answer, "docker-content-digest");
    }
    let mut conn = conn;
    conn.write_all(&answer)?;
    conn.shutdown(Shutdown::Both)
}

fn strip_header(answer: &[u8], name: &str) -> Vec<u8> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return answer.to_vec();
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let prefix = format!("{name}:");
    let kept: Vec<&str> = head.split("\r\n").filter(|l| !l.to_ascii_lowercase().starts_with(&prefix)).collect();
    let mut out = kept.join("\r\n").into_bytes();
    out.extend_from_slice(&answer[end..]);
    out
}

/// A 127.0.0.1 port nobody listens on.
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn base_image_digest_matches_what_docker_recorded() {
    let lab = common::lab();
    lab.ensure_base_image();
    let base = image(&lab.base_image);
    let recorded = lab.docker(&["image", "inspect", "--format", "{{json .RepoDigests}}", &lab.base_image]);
    let recorded: Vec<String> = serde_json::from_str(&recorded).expect("RepoDigests JSON");
    let wanted: Vec<String> = shipshape::registry::digest::repo_digests_for(&recorded, &base).collect();
    assert!(!wanted.is_empty(), "docker recorded no digest for {base}: {recorded:?}");

    let client = client();
    let digest = client.remote_digest(&base).await.expect("digest");
    assert!(wanted.contains(&digest), "registry says {digest}, docker recorded {wanted:?}");
    // The lab registry speaks plain http on loopback, an insecure registry by default.
    assert_eq!(client.known_scheme(&base.registry), Some(Scheme::Http));
    // Asked again: same answer.
    assert_eq!(client.remote_digest(&base).await.expect("digest"), digest);
}

#[tokio::test]
async fn a_new_push_changes_the_digest() {
    let lab = common::lab();
    let target = format!("{}/shipshape/client-test:{}", lab.registry, common::unique("t"));
    let first = lab.script(&["build-image", "--remote-only", &target, "one"]);
    let client = client();
    let img = image(&target);
    assert_eq!(client.remote_digest(&img).await.expect("digest"), first);

    let second = lab.script(&["build-image", "--remote-only", &target, "two"]);
    assert_ne!(first, second);
    assert_eq!(client.remote_digest(&img).await.expect("digest"), second);

    // Pinned by digest: the registry confirms the pinned manifest.
    let pinned = image(&format!("{}/shipshape/client-test@{first}", lab.registry));
    assert_eq!(client.remote_digest(&pinned).await.expect("digest"), first);
}

#[tokio::test]
async fn unknown_tags_and_repositories_are_404() {
    let lab = common::lab();
    let client = client();
    for name in [format!("{}/{BASE_REPO}:no-such-tag", lab.registry), format!("{}/no/such-repo:v1", lab.registry)] {
        let err = client.remote_digest(&image(&name)).await.expect_err("unknown");
        assert!(matches!(err, RegistryError::NotFound { .. }), "{name}: {err:?}");
        assert_eq!(err.to_string(), format!("registry {}: 404 manifest unknown", lab.registry));
        assert!(!err.keeps_last_status());
    }
}

#[tokio::test]
async fn htpasswd_registry_needs_and_gets_basic_credentials() {
    let lab = common::lab();
    let img = image(&format!("{}/{BASE_REPO}:latest", lab.auth_registry));
    let want = direct_digest(&lab.auth_registry, BASE_REPO, "latest", Some((&lab.auth_user, &lab.auth_password))).await;

    // No credentials.
    let err = client().remote_digest(&img).await.expect_err("anonymous");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("registry {}: 401 unauthorized", lab.auth_registry));
    assert!(!err.keeps_last_status());

    // Credentials from config.json.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = docker_config(dir.path(), &lab.auth_registry, basic_entry(&lab.auth_user, &lab.auth_password));
    let client = client_for(cfg);
    assert_eq!(client.remote_digest(&img).await.expect("digest"), want);
    assert!(!format!("{client:?}").contains(&lab.auth_password));

    // A wrong password: 401, and neither password shows up anywhere.
    let cfg = docker_config(dir.path(), &lab.auth_registry, basic_entry(&lab.auth_user, "wrong-pass-123"));
    let err = client_for(cfg).remote_digest(&img).await.expect_err("wrong password");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_no_secret(&err, &[&lab.auth_password, "wrong-pass-123"]);
}

#[tokio::test]
async fn basic_credentials_go_up_front_once_the_registry_asked_for_them() {
    let lab = common::lab();
    let proxy = PlainProxy::start(&lab.auth_registry);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = docker_config(dir.path(), &proxy.addr, basic_entry(&lab.auth_user, &lab.auth_password));
    let client = client_for(cfg);
    let want = direct_digest(&lab.auth_registry, BASE_REPO, "latest", Some((&lab.auth_user, &lab.auth_password))).await;

    let img = image(&format!("{}/{BASE_REPO}:latest", proxy.addr));
    assert_eq!(client.remote_digest(&img).await.expect("digest"), want);
    // Anonymous, 401, then with credentials.
    assert_eq!(proxy.manifest_requests(), 2, "{:?}", proxy.requests());
    // Another image on the same registry: credentials right away, one request.
    let err = client.remote_digest(&image(&format!("{}/{BASE_REPO}:nope", proxy.addr))).await.expect_err("404");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    let requests = proxy.requests();
    assert_eq!(proxy.manifest_requests(), 3, "{requests:?}");
    assert!(requests.last().is_some_and(|(_, _, auth)| *auth), "{requests:?}");
    // One failing TLS attempt for the registry, then plain http only.
    assert_eq!(proxy.tls_attempts(), 1);
}

/// A registry with token auth, the base image pushed as two repositories.
struct TokenSetup {
    ts: TokenServer,
    reg: TestRegistry,
    repos: [String; 2],
    digest: String,
}

fn token_setup(lab: &Lab, opts: TokenServerOptions) -> TokenSetup {
    let ts = TokenServer::start_with(opts);
    let reg = TestRegistry::start(ts.registry_auth());
    let cli = tempfile::tempdir().expect("docker config dir");
    common::docker_as_ok(
        lab,
        cli.path(),
        &["login", "-u", &ts.user, "--password-stdin", &reg.addr],
        Some(&ts.password),
    );
    let unique = common::unique("tok");
    let repos = [format!("client/{unique}-a"), format!("client/{unique}-b")];
    let digest = push_base_as(lab, cli.path(), &format!("{}/{}:v1", reg.addr, repos[0]));
    let other = push_base_as(lab, cli.path(), &format!("{}/{}:v1", reg.addr, repos[1]));
    assert_eq!(digest, other);
    TokenSetup { ts, reg, repos, digest }
}

#[tokio::test]
async fn bearer_tokens_are_fetched_cached_and_asked_for_up_front() {
    let lab = common::lab();
    let TokenSetup { ts, reg, repos, digest } = token_setup(&lab, TokenServerOptions::default());
    let proxy = PlainProxy::start(&reg.addr);
    let dir = tempfile::tempdir().expect("tempdir");
    let client = client_for(docker_config(dir.path(), &proxy.addr, basic_entry(&ts.user, &ts.password)));
    let a = image(&format!("{}/{}:v1", proxy.addr, repos[0]));
    let b = image(&format!("{}/{}:v1", proxy.addr, repos[1]));

    let tokens = ts.token_requests();
    assert_eq!(client.remote_digest(&a).await.expect("digest"), digest);
    assert_eq!(ts.token_requests(), tokens + 1, "{:#?}", ts.requests());
    assert_eq!(proxy.manifest_requests(), 2, "anonymous 401, then with the token");
    let asked = ts.requests().last().cloned().expect("token request");
    assert_eq!(asked.account.as_deref(), Some(ts.user.as_str()));
    assert_eq!(asked.scopes, vec![format!("repository:{}:pull", repos[0])]);

    // Same image again: the cached token, one request.
    assert_eq!(client.remote_digest(&a).await.expect("digest"), digest);
    assert_eq!(ts.token_requests(), tokens + 1);
    assert_eq!(proxy.manifest_requests(), 3);

    // Another repository: its token is fetched before the request, no 401 round trip.
    assert_eq!(client.remote_digest(&b).await.expect("digest"), digest);
    assert_eq!(ts.token_requests(), tokens + 2);
    assert_eq!(proxy.manifest_requests(), 4, "{:?}", proxy.requests());
    assert!(proxy.requests().iter().rev().take(2).all(|(_, _, auth)| *auth));

    // Clones share what was learned.
    let clone = client.clone();
    assert_eq!(clone.remote_digest(&b).await.expect("digest"), digest);
    assert_eq!(ts.token_requests(), tokens + 2);
}

#[tokio::test]
async fn token_registry_refuses_anonymous_and_wrong_passwords() {
    let lab = common::lab();
    let TokenSetup { ts, reg, repos, .. } = token_setup(&lab, TokenServerOptions::default());
    let img = image(&format!("{}/{}:v1", reg.addr, repos[0]));

    // Anonymous tokens grant nothing here: 401 after one token.
    let before = ts.token_requests();
    let err = client().remote_digest(&img).await.expect_err("anonymous");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_eq!(ts.token_requests(), before + 1);

    // Wrong password: the token server says 401.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = docker_config(dir.path(), &reg.addr, basic_entry(&ts.user, "wrong-pass-456"));
    let err = client_for(cfg).remote_digest(&img).await.expect_err("wrong password");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("registry {}: 401 unauthorized", reg.addr));
    assert_no_secret(&err, &[&ts.password, "wrong-pass-456"]);
}

#[tokio::test]
async fn identity_and_registry_tokens_work() {
    let lab = common::lab();
    let TokenSetup { ts, reg, repos, digest } = token_setup(&lab, TokenServerOptions::default());
    let img = image(&format!("{}/{}:v1", reg.addr, repos[0]));
    let dir = tempfile::tempdir().expect("tempdir");

    // An identity token is exchanged with the OAuth refresh grant.
    let cfg = docker_config(dir.path(), &reg.addr, json!({ "identitytoken": ts.identity_token }));
    let client = client_for(cfg);
    assert_eq!(client.remote_digest(&img).await.expect("digest"), digest);
    let last = ts.requests().last().cloned().expect("token request");
    assert_eq!((last.method.as_str(), last.grant.as_str(), last.status), ("POST", "refresh_token", 200), "{last:?}");
    assert!(!format!("{client:?}").contains(&ts.identity_token));

    // A registry token is sent as is: the token server isn't asked.
    let scope = format!("repository:{}:pull", repos[0]);
    let (status, body) = ts.fetch_token(&scope, Some((&ts.user, &ts.password)));
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    let cfg = docker_config(dir.path(), &reg.addr, json!({ "registrytoken": token }));
    let before = ts.token_requests();
    assert_eq!(client_for(cfg).remote_digest(&img).await.expect("digest"), digest);
    assert_eq!(ts.token_requests(), before);

    // A stale identity token: 401, and the token stays out of the message.
    let cfg = docker_config(dir.path(), &reg.addr, json!({ "identitytoken": "idt-stale-789" }));
    let err = client_for(cfg).remote_digest(&img).await.expect_err("stale identity token");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_no_secret(&err, &["idt-stale-789", &ts.identity_token]);
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let port = dead_port();
    let img = image(&format!("127.0.0.1:{port}/{BASE_REPO}:latest"));
    let err = client().remote_digest(&img).await.expect_err("nothing listens");
    assert_eq!(err.to_string(), format!("registry 127.0.0.1:{port}: unreachable (connection refused)"));
    assert!(err.keeps_last_status());
    assert_eq!(err.retry_after(), None);
}

#[tokio::test]
async fn https_failure_is_remembered_and_http_is_only_for_insecure_registries() {
    let lab = common::lab();
    let proxy = PlainProxy::start(&lab.registry);
    let want = direct_digest(&lab.registry, BASE_REPO, "latest", None).await;
    let img = image(&format!("{}/{BASE_REPO}:latest", proxy.addr));

    let client = client();
    for _ in 0..3 {
        assert_eq!(client.remote_digest(&img).await.expect("digest"), want);
    }
    assert_eq!(proxy.tls_attempts(), 1, "https is tried once per registry, not per request");
    assert_eq!(proxy.manifest_requests(), 3);
    assert_eq!(client.known_scheme(&proxy.addr), Some(Scheme::Http));

    // An engine whose insecure list doesn't cover the registry: https or nothing.
    let engine = shipshape::docker::model::RegistrySettings {
        insecure_cidrs: Some(vec!["10.0.0.0/8".into()]),
        ..Default::default()
    };
    let strict = client_with(ClientOptions {
        insecure: InsecureRegistries::from_engine(&engine, &[]),
        ..ClientOptions::default()
    });
    let err = strict.remote_digest(&img).await.expect_err("no http for a secure registry");
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert_eq!(proxy.tls_attempts(), 2);
    assert_eq!(proxy.manifest_requests(), 3, "nothing went out over http");

    // Told later that the registry is insecure after all (an extra entry).
    strict.set_insecure(InsecureRegistries::from_engine(&engine, std::slice::from_ref(&proxy.addr)));
    assert_eq!(strict.remote_digest(&img).await.expect("digest"), want);
    assert_eq!(proxy.manifest_requests(), 4);
}

#[tokio::test]
async fn without_a_digest_header_the_manifest_body_is_hashed() {
    let lab = common::lab();
    let proxy = PlainProxy::start_with(&lab.registry, true, Duration::ZERO);
    let want = direct_digest(&lab.registry, BASE_REPO, "latest", None).await;
    let img = image(&format!("{}/{BASE_REPO}:latest", proxy.addr));
    assert_eq!(client().remote_digest(&img).await.expect("digest"), want);
    let methods: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|(_, path, _)| path.contains("/manifests/"))
        .map(|(method, _, _)| method)
        .collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

#[tokio::test]
async fn rate_limits_are_honoured_without_sending_anything() {
    let lab = common::lab();
    let flaky = FlakyProxy::start(&lab.registry, Script::manifests(Mode::too_many_requests(7, 1)));
    let proxy = PlainProxy::start(&flaky.addr);
    let img = image(&format!("{}/{BASE_REPO}:latest", proxy.addr));
    let client = client();

    let err = client.remote_digest(&img).await.expect_err("429");
    assert!(matches!(err, RegistryError::RateLimited { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("registry {}: 429 rate limited, retry in 7s", proxy.addr));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.keeps_last_status());
    assert_eq!(flaky.requests_matching("/v2/*/manifests/*"), 1);

    // While blocked: the same error at once, nothing sent (the proxy would forward now).
    let other = image(&format!("{}/{BASE_REPO}:other", proxy.addr));
    for img in [&img, &other] {
        let err = client.remote_digest(img).await.expect_err("still blocked");
        assert!(matches!(err, RegistryError::RateLimited { .. }), "{err:?}");
        assert!(err.retry_after().is_some_and(|d| d <= Duration::from_secs(7) && d > Duration::from_secs(5)));
    }
    assert_eq!(flaky.requests_matching("/v2/*/manifests/*"), 1);
    // Other clients (other state) and other registries are not blocked.
    assert!(client.remote_digest(&image(&lab.base_image)).await.is_ok());
}

#[tokio::test]
async fn server_errors_back_off_and_recover() {
    let lab = common::lab();
    let want = direct_digest(&lab.registry, BASE_REPO, "latest", None).await;
    let flaky = FlakyProxy::start(&lab.registry, Script::manifests(Mode::Forward));
    let proxy = PlainProxy::start(&flaky.addr);
    let img = image(&format!("{}/{BASE_REPO}:latest", proxy.addr));

    // No Retry-After: the first backoff step.
    flaky.set_mode(Mode::Status { code: 500, retry_after: None, count: Some(1) });
    let err = client().remote_digest(&img).await.expect_err("500");
    assert!(matches!(err, RegistryError::Server { status: 500, .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("registry {}: 500 server error, retry in 5s", proxy.addr));
    assert!(err.keeps_last_status());

    // With Retry-After: honoured, and the registry is asked again after it.
    flaky.set_mode(Mode::Status { code: 503, retry_after: Some(1), count: Some(1) });
    let client = client();
    let err = client.remote_digest(&img).await.expect_err("503");
    assert!(matches!(err, RegistryError::Server { status: 503, .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    let err = client.remote_digest(&img).await.expect_err("blocked");
    assert!(matches!(err, RegistryError::Server { status: 503, .. }), "{err:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(client.remote_digest(&img).await.expect("recovered"), want);
}

#[tokio::test]
async fn a_stalled_registry_times_out() {
    let lab = common::lab();
    let flaky = FlakyProxy::start(&lab.registry, Script::manifests(Mode::Stall));
    let proxy = PlainProxy::start(&flaky.addr);
    let img = image(&format!("{}/{BASE_REPO}:latest", proxy.addr));
    let client = client_with(ClientOptions { timeout: Duration::from_secs(1), ..ClientOptions::default() });
    let started = Instant::now();
    let err = client.remote_digest(&img).await.expect_err("stalled");
    // It waited for the timeout, not less (how much more is up to the machine).
    assert!(started.elapsed() >= Duration::from_secs(1), "gave up after {:?}", started.elapsed());
    assert_eq!(err.to_string(), format!("registry {}: timed out", proxy.addr));
    assert!(err.keeps_last_status());
    flaky.set_mode(Mode::Forward);
}

/// Eight checks at once, each of which must give `want`.
async fn eight_at_once(client: &RegistryClient, img: &ImageRef, want: &str) {
    let checks = (0..8).map(|_| {
        let client = client.clone();
        let img = img.clone();
        tokio::spawn(async move { client.remote_digest(&img).await })
    });
    for check in futures::future::join_all(checks).await {
        assert_eq!(check.expect("task").expect("digest"), want);
    }
}

#[tokio::test]
async fn a_remembered_protocol_sends_everything_at_once_and_a_wrong_one_is_found_out_again() {
    let lab = common::lab();
    let want = direct_digest(&lab.registry, BASE_REPO, "latest", None).await;
    let plain_http = KnownProtocol { scheme: Scheme::Http, h2: false };

    // Nothing remembered: one request alone learns the scheme (trying https
    // too), then the other seven go together.
    let proxy = PlainProxy::start_with(&lab.registry, false, Duration::from_millis(200));
    let img = image(&format!("{}/{BASE_REPO}:latest", proxy.addr));
    let fresh = client();
    eight_at_once(&fresh, &img, &want).await;
    assert_eq!((proxy.tls_attempts(), proxy.max_in_flight()), (1, 7));
    assert_eq!(fresh.known_protocols(), vec![(proxy.addr.clone(), plain_http)]);

    // What that run learned, remembered: all eight at once, no https attempt.
    let proxy = PlainProxy::start_with(&lab.registry, false, Duration::from_millis(200));
    let img = image(&format!("{}/{BASE_REPO}:latest", proxy.addr));
    let warm = client();
    warm.remember_protocols([(proxy.addr.clone(), plain_http)]);
    eight_at_once(&warm, &img, &want).await;
    assert_eq!((proxy.tls_attempts(), proxy.max_in_flight()), (0, 8));

    // Remembered wrong (the registry was on TLS): found out again, and the
    // answers are right.
    let proxy = PlainProxy::start(&lab.registry);
    let img = image(&format!("{}/{BASE_REPO}:latest", proxy.addr));
    let wrong = client();
    wrong.remember_protocols([(proxy.addr.clone(), KnownProtocol { scheme: Scheme::Https, h2: true })]);
    eight_at_once(&wrong, &img, &want).await;
    assert_eq!(wrong.known_scheme(&proxy.addr), Some(Scheme::Http));
    assert_eq!(wrong.known_protocols(), vec![(proxy.addr.clone(), plain_http)]);

    // Plain http stays for insecure registries only, whatever was remembered.
    let strict = client_with(ClientOptions {
        insecure: InsecureRegistries::from_engine(
            &shipshape::docker::model::RegistrySettings {
                insecure_cidrs: Some(vec!["198.18.0.0/15".into()]),
                ..Default::default()
            },
            &[],
        ),
        ..ClientOptions::default()
    });
    strict.remember_protocols([(proxy.addr.clone(), plain_http)]);
    let requests = proxy.manifest_requests();
    strict.remote_digest(&img).await.expect_err("https only");
    assert_eq!(proxy.manifest_requests(), requests, "nothing went over plain http");
}

#[tokio::test]
async fn concurrency_is_bounded_per_registry() {
    let lab = common::lab();
    let proxy = PlainProxy::start_with(&lab.registry, false, Duration::from_millis(150));
    let img = image(&format!("{}/{BASE_REPO}:latest", proxy.addr));
    let client = client_with(ClientOptions { per_registry_concurrency: Some(2), ..ClientOptions::default() });
    // Learn the scheme first, so every later request is one plain request.
    let want = client.remote_digest(&img).await.expect("digest");
    eight_at_once(&client, &img, &want).await;
    assert_eq!(proxy.max_in_flight(), 2);

    // The overall limit applies across registries.
    let flight = Arc::new(Flight::default());
    let delay = Duration::from_millis(150);
    let one = PlainProxy::start_counting(&lab.registry, false, delay, flight.clone());
    let two = PlainProxy::start_counting(&lab.registry, false, delay, flight.clone());
    let client = client_with(ClientOptions { total_concurrency: Some(3), ..ClientOptions::default() });
    let images = [one.addr.clone(), two.addr.clone()].map(|addr| image(&format!("{addr}/{BASE_REPO}:latest")));
    for img in &images {
        client.remote_digest(img).await.expect("digest");
    }
    let checks = (0..12).map(|i| {
        let client = client.clone();
        let img = images[i % 2].clone();
        tokio::spawn(async move { client.remote_digest(&img).await })
    });
    for check in futures::future::join_all(checks).await {
        assert_eq!(check.expect("task").expect("digest"), want);
    }
    assert_eq!(flight.max.load(Ordering::SeqCst), 3);
}

/// Polls `remote_digest` until the token server is asked again; answers how
/// many registry requests that check made. Fails if no new token is fetched
/// within the deadline.
async fn check_until_a_new_token(
    client: &RegistryClient,
    img: &ImageRef,
    ts: &TokenServer,
    proxy: &PlainProxy,
) -> usize {
    let tokens = ts.token_requests();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = proxy.manifest_requests();
        client.remote_digest(img).await.expect("digest");
        if ts.token_requests() > tokens {
            return proxy.manifest_requests() - before;
        }
        assert!(Instant::now() < deadline, "the token was never fetched again: {:#?}", ts.requests());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_expired_token_is_replaced_before_the_registry_refuses_it() {
    let lab = common::lab();
    // Tokens live 2 s; the registry itself would accept them for a minute
    // more (distribution's leeway), so only the client's clock replaces them.
    let opts = TokenServerOptions { expires_in: 2, ..TokenServerOptions::default() };
    let TokenSetup { ts, reg, repos, digest } = token_setup(&lab, opts);
    let proxy = PlainProxy::start(&reg.addr);
    let dir = tempfile::tempdir().expect("tempdir");
    let client = client_for(docker_config(dir.path(), &proxy.addr, basic_entry(&ts.user, &ts.password)));
    let img = image(&format!("{}/{}:v1", proxy.addr, repos[0]));

    let tokens = ts.token_requests();
    assert_eq!(client.remote_digest(&img).await.expect("digest"), digest);
    assert_eq!(ts.token_requests(), tokens + 1, "{:#?}", ts.requests());

    // Once it has expired: a new token first, then one request that carries it.
    let requests = check_until_a_new_token(&client, &img, &ts, &proxy).await;
    assert_eq!(requests, 1, "a 401 round trip for an expired token: {:?}", proxy.requests());
    assert_eq!(ts.token_requests(), tokens + 2);
    let last = ts.requests().last().cloned().expect("token request");
    assert_eq!((last.grant.as_str(), last.status), ("basic", 200), "{last:?}");
    assert_eq!(last.scopes, vec![format!("repository:{}:pull", repos[0])]);
    assert!(proxy.requests().last().is_some_and(|(_, _, auth)| *auth));
}

#[tokio::test]
async fn anonymous_tokens_open_a_public_registry() {
    let lab = common::lab();
    let opts = TokenServerOptions { anonymous_pull: true, ..TokenServerOptions::default() };
    let TokenSetup { ts, reg, repos, digest } = token_setup(&lab, opts);
    let img = image(&format!("{}/{}:v1", reg.addr, repos[0]));

    let before = ts.token_requests();
    let client = client();
    assert_eq!(client.remote_digest(&img).await.expect("anonymous digest"), digest);
    assert_eq!(ts.token_requests(), before + 1, "{:#?}", ts.requests());
    let asked = ts.requests().last().cloned().expect("token request");
    assert_eq!((asked.grant.as_str(), asked.account.as_deref(), asked.status), ("anonymous", None, 200), "{asked:?}");
    let repo = &repos[0];
    assert_eq!(asked.granted, vec![json!({"type": "repository", "name": repo, "actions": ["pull"]})]);
    // The anonymous token is cached like any other.
    assert_eq!(client.remote_digest(&img).await.expect("digest"), digest);
    assert_eq!(ts.token_requests(), before + 1);
}

#[tokio::test]
async fn a_token_server_that_fails_or_is_gone_is_an_error_that_keeps_the_last_status() {
    let lab = common::lab();
    let TokenSetup { ts, reg, repos, .. } = token_setup(&lab, TokenServerOptions::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = docker_config(dir.path(), &reg.addr, basic_entry(&ts.user, &ts.password));
    let img = image(&format!("{}/{}:v1", reg.addr, repos[0]));

    ts.set_failure(Some(503));
    let err = client_for(cfg.clone()).remote_digest(&img).await.expect_err("token server says 503");
    assert!(matches!(err, RegistryError::Server { status: 503, .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("registry {}: 503 server error, retry in 5s", reg.addr));
    assert!(err.keeps_last_status());
    assert_eq!(ts.requests().last().map(|r| r.status), Some(503));

    ts.set_failure(None);
    let password = ts.password.clone();
    drop(ts);
    let err = client_for(cfg).remote_digest(&img).await.expect_err("token server gone");
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("registry {}: unreachable (connection refused)", reg.addr));
    assert!(err.keeps_last_status());
    assert_no_secret(&err, &[&password]);
}
