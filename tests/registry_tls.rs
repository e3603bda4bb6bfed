//! TLS registries with their own CA, h2 multiplexing and the adaptive
//! request limit, against the lab's TLS registry (`docker-registry` with a
//! certificate from the lab's CA, h2 by ALPN) and its open registry behind
//! the flaky proxy. Counting tests count at proxies of their own, so no other
//! test or app adds to their figures. Loopback only.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::flaky_proxy::{FlakyProxy, Mode, Script};
use common::{find_container, group, lab, short, spawn_app_with, unique, Lab};
use shipshape::registry::client::{
    ClientOptions, KnownProtocol, RegistryClient, RegistryError, Scheme, MANIFEST_ACCEPT,
};
use shipshape::registry::insecure::InsecureRegistries;
use shipshape::registry::limit::{MAX_LIMIT, START_LIMIT};
use shipshape::registry::reference::{self, ImageRef};

const BASE_REPO: &str = "shipshape/base";
const PATIENCE: Duration = Duration::from_secs(30);

fn image(s: &str) -> ImageRef {
    reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn client_with(options: ClientOptions) -> RegistryClient {
    RegistryClient::new(options).expect("registry client")
}

/// A client that trusts what `certs_d` holds, nothing more.
fn client_trusting(certs_d: &Path) -> RegistryClient {
    client_with(ClientOptions { certs_d: certs_d.to_path_buf(), ..ClientOptions::default() })
}

/// Nothing insecure: https or nothing, even on loopback.
fn nothing_insecure() -> InsecureRegistries {
    let engine = shipshape::docker::model::RegistrySettings { insecure_cidrs: Some(Vec::new()), ..Default::default() };
    InsecureRegistries::from_engine(&engine, &[])
}

/// The digest the open registry reports for the base image (the TLS
/// registry serves the same storage).
async fn base_digest(lab: &Lab) -> String {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(15)).build().expect("client");
    let resp = http
        .head(format!("http://{}/v2/{BASE_REPO}/manifests/latest", lab.registry))
        .header("Accept", MANIFEST_ACCEPT)
        .send()
        .await
        .expect("HEAD manifest");
    assert_eq!(resp.status(), 200);
    resp.headers()["docker-content-digest"].to_str().expect("digest header").to_string()
}

/// A certs.d folder trusting the lab CA for `host` only.
fn certs_d_for(lab: &Lab, host: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("certs.d");
    std::fs::create_dir(dir.path().join(host)).expect("host folder");
    std::fs::copy(&lab.tls_ca, dir.path().join(host).join("ca.crt")).expect("copy CA");
    dir
}

/// A TCP proxy that counts the connections it accepts and passes bytes
/// through untouched (TLS included).
struct CountingProxy {
    addr: String,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CountingProxy {
    fn start(upstream: &str) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt, upstream) = (connections.clone(), stop.clone(), upstream.to_string());
        std::thread::spawn(move || {
            while !halt.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let upstream = upstream.clone();
                        std::thread::spawn(move || {
                            let _ = relay(conn, &upstream);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        CountingProxy { addr, connections, stop }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn relay(client: TcpStream, upstream: &str) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    let server = TcpStream::connect(upstream)?;
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        })
    };
    let a = pipe(client.try_clone()?, server.try_clone()?);
    let b = pipe(server, client);
    let _ = a.join();
    let _ = b.join();
    Ok(())
}

const ROUND_REPO: &str = "shipshape/round";

/// `count` tags of the base image (`round-0`…) in a repository of their own
/// on the TLS registry, made through its API (blobs mounted from the base
/// repository, which other tests read and which is therefore never written
/// to); returns their references under `host`. Made once per lab.
async fn round_tags(lab: &Lab, host: &str, count: usize) -> Vec<ImageRef> {
    let refs = (0..count).map(|i| image(&format!("{host}/{ROUND_REPO}:round-{i}"))).collect();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&lab.tls_ca).expect("CA")).expect("CA pem");
    let http = reqwest::Client::builder().no_proxy().add_root_certificate(ca).build().expect("client");
    let v2 = format!("https://{}/v2", lab.tls_registry);
    let last = http.head(format!("{v2}/{ROUND_REPO}/manifests/round-{}", count - 1)).send().await.expect("HEAD");
    if last.status() == 200 {
        return refs;
    }
    let media = "application/vnd.docker.distribution.manifest.v2+json";
    let resp = http
        .get(format!("{v2}/{BASE_REPO}/manifests/latest"))
        .header("Accept", media)
        .send()
        .await
        .expect("GET manifest");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], media);
    let body = resp.bytes().await.expect("manifest");
    let manifest: serde_json::Value = serde_json::from_slice(&body).expect("manifest JSON");
    let blobs = std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().expect("layers"));
    for blob in blobs {
        let digest = blob["digest"].as_str().expect("blob digest");
        let mount = http
            .post(format!("{v2}/{ROUND_REPO}/blobs/uploads/?mount={digest}&from={BASE_REPO}"))
            .send()
            .await
            .expect("mount blob");
        assert_eq!(mount.status(), 201, "mount {digest}");
    }
    for i in 0..count {
        let put = http
            .put(format!("{v2}/{ROUND_REPO}/manifests/round-{i}"))
            .header("Content-Type", media)
            .body(body.clone())
            .send()
            .await
            .expect("PUT manifest");
        assert_eq!(put.status(), 201, "PUT round-{i}");
    }
    refs
}

#[tokio::test]
async fn a_registry_with_its_own_ca_is_checked_through_certs_d() {
    let lab = lab();
    let want = base_digest(&lab).await;
    let img = image(&format!("{}/{BASE_REPO}:latest", lab.tls_registry));
    // The lab's certs.d, as Docker would read it; loopback counts as
    // insecure by default, and https is still what it speaks.
    let client = client_trusting(&lab.certs_d);
    assert_eq!(client.remote_digest(&img).await.expect("digest over TLS"), want);
    assert_eq!(client.known_scheme(&lab.tls_registry), Some(Scheme::Https));
    // Nothing insecure at all: the same.
    let strict = client_with(ClientOptions {
        certs_d: lab.certs_d.clone(),
        insecure: nothing_insecure(),
        ..ClientOptions::default()
    });
    assert_eq!(strict.remote_digest(&img).await.expect("digest over TLS"), want);
}

/// `shipshape check` remembered plain http/1.1 for a registry that has moved
/// to TLS since: every request goes at once over http, the TLS server
/// answers each with 400, and the client finds out again instead of taking
/// those answers (some arriving after the right scheme was learnt) as the
/// registry's word.
#[tokio::test]
async fn a_registry_remembered_as_plain_http_that_now_speaks_tls_is_found_out_again() {
    let lab = lab();
    let want = base_digest(&lab).await;
    let img = image(&format!("{}/{BASE_REPO}:latest", lab.tls_registry));
    let client = client_trusting(&lab.certs_d);
    client.remember_protocols([(lab.tls_registry.clone(), KnownProtocol { scheme: Scheme::Http, h2: false })]);
    checks(&client, &img, 40, 40).await;
    assert_eq!(
        client.known_protocols(),
        vec![(lab.tls_registry.clone(), KnownProtocol { scheme: Scheme::Https, h2: true })]
    );
    assert_eq!(client.remote_digest(&img).await.expect("digest over TLS"), want);
}

#[tokio::test]
async fn without_its_ca_the_registry_is_refused_naming_the_certificate_problem() {
    let lab = lab();
    let img = image(&format!("{}/{BASE_REPO}:latest", lab.tls_registry));
    let empty = tempfile::tempdir().expect("empty certs.d");
    for insecure in [InsecureRegistries::default(), nothing_insecure()] {
        let client =
            client_with(ClientOptions { certs_d: empty.path().to_path_buf(), insecure, ..ClientOptions::default() });
        let err = client.remote_digest(&img).await.expect_err("untrusted certificate");
        assert!(matches!(err, RegistryError::Certificate { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with(&format!("registry {}: TLS certificate problem (", lab.tls_registry)), "{text}");
        assert!(text.contains("UnknownIssuer"), "{text}");
        let folder = empty.path().join(&lab.tls_registry).join("ca.crt");
        assert!(text.contains(&folder.display().to_string()), "{text}");
        assert!(err.keeps_last_status());
        // No plain-http attempt after a certificate: it would only hide the cause.
        assert_eq!(client.known_scheme(&lab.tls_registry), None);
    }
}

#[tokio::test]
async fn a_ca_bundle_is_trusted_for_every_registry() {
    let lab = lab();
    let img = image(&format!("{}/{BASE_REPO}:latest", lab.tls_registry));
    let empty = tempfile::tempdir().expect("empty certs.d");
    let client = client_with(ClientOptions {
        certs_d: empty.path().to_path_buf(),
        ca_bundle: Some(lab.tls_ca.clone()),
        ..ClientOptions::default()
    });
    assert_eq!(client.remote_digest(&img).await.expect("digest"), base_digest(&lab).await);

    // A bundle that is not one stops the client from being built at all.
    let bad = empty.path().join("bundle.pem");
    std::fs::write(&bad, "not a certificate").expect("write");
    let err = RegistryClient::new(ClientOptions { ca_bundle: Some(bad.clone()), ..ClientOptions::default() })
        .expect_err("bad bundle refused");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot set up the registry HTTP client: SHIPSHAPE_REGISTRY_CA: {}: no PEM certificate in it",
            bad.display()
        )
    );
}

#[tokio::test]
async fn an_unusable_certs_d_folder_is_a_clear_error() {
    let lab = lab();
    let img = image(&format!("{}/{BASE_REPO}:latest", lab.tls_registry));
    let dir = tempfile::tempdir().expect("certs.d");
    let host = dir.path().join(&lab.tls_registry);
    std::fs::create_dir(&host).expect("mkdir");
    std::fs::write(host.join("client.cert"), "x").expect("write");
    let err = client_trusting(dir.path()).remote_digest(&img).await.expect_err("no key");
    assert!(matches!(err, RegistryError::Tls { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "registry {}: {}: client certificate without its key {}",
            lab.tls_registry,
            host.join("client.cert").display(),
            host.join("client.key").display()
        )
    );
}

/// On several threads, like the service: the requests released when the
/// first one's handshake chose h2 must find its connection, not race to open their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_carries_a_whole_round_over_one_connection() {
    let lab = lab();
    let want = base_digest(&lab).await;
    let proxy = CountingProxy::start(&lab.tls_registry);
    let certs = certs_d_for(&lab, &proxy.addr);
    let images = round_tags(&lab, &proxy.addr, 50).await;
    // Like Docker Hub or GHCR: https only (a loopback registry would count as
    // insecure, and its first request also try plain http at once).
    let client = client_with(ClientOptions {
        certs_d: certs.path().to_path_buf(),
        insecure: nothing_insecure(),
        ..ClientOptions::default()
    });
    // Streams on one connection cost the registry no connection each: after
    // a single answer the limit is at its ceiling, not one above the start.
    assert_eq!(client.remote_digest(&images[0]).await.expect("digest"), want);
    assert_eq!(client.concurrency_limit(&proxy.addr), Some(MAX_LIMIT));
    let checks = images.iter().map(|img| {
        let (client, img) = (client.clone(), img.clone());
        tokio::spawn(async move { client.remote_digest(&img).await })
    });
    for check in futures::future::join_all(checks).await {
        assert_eq!(check.expect("task").expect("digest"), want);
    }
    assert_eq!(proxy.connections(), 1, "one TLS connection for 50 requests");
    // The next round reuses it.
    let checks = images.iter().map(|img| {
        let (client, img) = (client.clone(), img.clone());
        tokio::spawn(async move { client.remote_digest(&img).await })
    });
    for check in futures::future::join_all(checks).await {
        assert_eq!(check.expect("task").expect("digest"), want);
    }
    assert_eq!(proxy.connections(), 1, "a second round opened connections");
}

/// Runs `n` checks, `at_once` at a time; all must succeed.
async fn checks(client: &RegistryClient, img: &ImageRef, n: usize, at_once: usize) {
    use futures::StreamExt;
    let results: Vec<_> = futures::stream::iter(0..n)
        .map(|_| {
            let (client, img) = (client.clone(), img.clone());
            async move { client.remote_digest(&img).await }
        })
        .buffer_unordered(at_once)
        .collect()
        .await;
    for r in results {
        r.expect("digest");
    }
}

#[tokio::test]
async fn the_limit_halves_on_429_and_recovers() {
    let lab = lab();
    let flaky = FlakyProxy::start(&lab.registry, Script::forward());
    let img = image(&format!("{}/{BASE_REPO}:latest", flaky.addr));
    let client = client_with(ClientOptions::default());
    assert_eq!(client.concurrency_limit(&flaky.addr), None);
    checks(&client, &img, 8, 4).await;
    let before = client.concurrency_limit(&flaky.addr).expect("limit");
    assert!(before > START_LIMIT, "fast clean answers grow the limit: {before}");

    flaky.set_script(Script::manifests(Mode::too_many_requests(1, 1)));
    let err = client.remote_digest(&img).await.expect_err("429");
    assert!(matches!(err, RegistryError::RateLimited { .. }), "{err:?}");
    assert_eq!(client.concurrency_limit(&flaky.addr), Some(before / 2));
    // Retry-After is honoured as before: nothing sent until it has passed.
    let seen = flaky.requests();
    assert!(client.remote_digest(&img).await.is_err());
    assert_eq!(flaky.requests(), seen);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let deadline = Instant::now() + PATIENCE;
    while client.concurrency_limit(&flaky.addr).is_some_and(|l| l < before) {
        assert!(Instant::now() < deadline, "the limit did not recover: {:?}", client.concurrency_limit(&flaky.addr));
        checks(&client, &img, 64, 16).await;
    }
}

#[tokio::test]
async fn a_ceiling_is_never_exceeded() {
    let lab = lab();
    let flaky = FlakyProxy::start(&lab.registry, Script::forward());
    let img = image(&format!("{}/{BASE_REPO}:latest", flaky.addr));
    let client = client_with(ClientOptions { per_registry_concurrency: Some(5), ..ClientOptions::default() });
    checks(&client, &img, 40, 20).await;
    assert_eq!(client.concurrency_limit(&flaky.addr), Some(5));
}

fn pull_tls_base(lab: &Lab) -> String {
    let tls_image = format!("{}/{BASE_REPO}:latest", lab.tls_registry);
    // The lab's engine counts loopback registries insecure: it pulls over
    // TLS without checking the certificate, so nothing of the host's changes.
    lab.docker(&["pull", "-q", &tls_image]);
    tls_image
}

#[tokio::test]
async fn the_service_checks_a_tls_registry_through_shipshape_certs_d() {
    let lab = lab();
    let tls_image = pull_tls_base(&lab);
    let want = base_digest(&lab).await;
    let name = unique("tls");
    let _c = lab.run(&name, &tls_image, &[]);

    let certs_d = lab.certs_d.to_string_lossy().to_string();
    let app = spawn_app_with(&lab, &[("SHIPSHAPE_CERTS_D", &certs_d)]);
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
    let images = app.check_now().await;
    let g = group(&images, &tls_image);
    assert_eq!(g["status"], "uptodate", "{g}");
    assert_eq!(g["remote_digest"], short(&want).as_str());
    drop(app);

    let empty = tempfile::tempdir().expect("empty certs.d");
    let empty_dir = empty.path().to_string_lossy().to_string();
    let app = spawn_app_with(&lab, &[("SHIPSHAPE_CERTS_D", &empty_dir)]);
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
    let images = app.check_now().await;
    let g = group(&images, &tls_image);
    let error = g["error"].as_str().unwrap_or_default();
    assert!(error.contains("TLS certificate problem") && error.contains("UnknownIssuer"), "{g}");
    assert_eq!(g["status"], "unknown", "{g}");
}

/// A client certificate from the lab CA (openssl, as scripts/lab makes the
/// server's): `client.cert` and `client.key` in `dir`.
fn client_certificate(lab: &Lab, dir: &Path) {
    let ca_dir = lab.tls_ca.parent().expect("CA folder");
    // Paths under the lab and a tempdir: no spaces in them.
    let run = |args: String| {
        let args: Vec<&str> = args.split_whitespace().collect();
        let out = std::process::Command::new("openssl").args(&args).current_dir(dir).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run("req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=shipshape-test-client \
         -keyout client.key -out client.csr"
        .into());
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    let (ca, ca_key, serial) = (ca_dir.join("ca.crt"), ca_dir.join("ca.key"), dir.join("ca.srl"));
    run(format!(
        "x509 -req -in client.csr -CA {} -CAkey {} -CAserial {} -CAcreateserial -days 1 \
         -extfile client.ext -out client.cert",
        ca.display(),
        ca_key.display(),
        serial.display()
    ));
    for f in ["client.csr", "client.ext", "ca.srl"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate_from_certs_d() {
    use common::registry::{RegistryTls, TestRegistry};
    let lab = lab();
    let ca_dir = lab.tls_ca.parent().expect("CA folder");
    let registry = TestRegistry::start_tls(RegistryTls {
        certificate: ca_dir.join("server.crt"),
        key: ca_dir.join("server.key"),
        client_ca: Some(lab.tls_ca.clone()),
    });
    // An empty registry: a 404 is the registry's answer, so the handshake worked.
    let img = image(&format!("{}/nothing/here:latest", registry.addr));

    // The CA alone: the registry wants a client certificate. (With TLS 1.3
    // it says so only after the handshake, and hyper reports just the closed
    // connection: an error that keeps the last status, not a 404.)
    let certs = certs_d_for(&lab, &registry.addr);
    let err = client_trusting(certs.path()).remote_digest(&img).await.expect_err("no client certificate");
    assert!(matches!(err, RegistryError::Unreachable { .. } | RegistryError::Certificate { .. }), "{err:?}");
    assert!(err.keeps_last_status());

    // With client.cert and client.key beside ca.crt, as for Docker.
    client_certificate(&lab, &certs.path().join(&registry.addr));
    let err = client_trusting(certs.path()).remote_digest(&img).await.expect_err("404");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
}
