//! The registry test fixtures (a real `docker-registry` with token auth, the
//! token server, the flaky proxy) proven end to end with the real docker CLI
//! against the lab's private daemon, and with reqwest. Loopback only.

mod common;

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use common::{docker_as as docker, docker_as_ok as docker_ok, flaky_proxy, push_base_as, registry, token_server};
use flaky_proxy::{FlakyProxy, Mode, Script};
use registry::{RegistryAuth, TestRegistry};
use token_server::{TokenServer, TokenServerOptions};

const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(15)).build().expect("client")
}

/// `Bearer realm="..",service="..",scope=".."` → the parameters.
fn challenge_params(value: &str) -> Vec<(String, String)> {
    let rest = value.trim().strip_prefix("Bearer ").unwrap_or_else(|| panic!("not a Bearer challenge: {value}"));
    let mut params = Vec::new();
    let mut s = rest;
    while let Some((key, after)) = s.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let (val, next) = match after.strip_prefix('"') {
            Some(q) => q.split_once('"').map(|(v, n)| (v.to_string(), n)).expect("closing quote"),
            None => after.split_once(',').map_or((after.to_string(), ""), |(v, n)| (v.to_string(), n)),
        };
        params.push((key, val));
        s = next;
    }
    params
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn jwt_claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("JWT has claims");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("claims are base64url");
    serde_json::from_slice(&raw).expect("claims are JSON")
}

async fn head_manifest(client: &reqwest::Client, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = client.head(url).header("Accept", MANIFEST_ACCEPT);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("HEAD manifest")
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

#[tokio::test]
async fn token_auth_registry_works_with_docker_login_push_and_bearer_tokens() {
    let lab = common::lab();
    let ts = TokenServer::start();
    let reg = TestRegistry::start(ts.registry_auth());
    let cfg = tempfile::tempdir().expect("docker config dir");

    // The token server says no to a wrong password, and docker login passes that on.
    let bad = docker(&lab, cfg.path(), &["login", "-u", &ts.user, "--password-stdin", &reg.addr], Some("wrong\n"));
    assert!(!bad.status.success(), "login with a wrong password succeeded");
    docker_ok(&lab, cfg.path(), &["login", "-u", &ts.user, "--password-stdin", &reg.addr], Some(&ts.password));

    let repo = format!("fixtures/{}", common::unique("tok"));
    let image = format!("{}/{repo}:v1", reg.addr);
    let (digest, _tag) = push_base_as(&lab, cfg.path(), &image);
    let pushes = ts.requests().iter().filter(|r| r.scopes.iter().any(|s| s.contains(":push"))).count();
    assert!(pushes >= 1, "docker push got no push token: {:#?}", ts.requests());

    let client = http();
    let url = reg.url(&format!("/v2/{repo}/manifests/v1"));

    // Anonymous: 401 with a Bearer challenge naming our token server.
    let resp = head_manifest(&client, &url, None).await;
    assert_eq!(resp.status(), 401);
    let challenge = header(&resp, "www-authenticate").expect("WWW-Authenticate");
    let params = challenge_params(&challenge);
    assert_eq!(param(&params, "realm"), Some(ts.realm().as_str()), "{challenge}");
    assert_eq!(param(&params, "service"), Some(ts.service.as_str()), "{challenge}");
    let scope = format!("repository:{repo}:pull");
    assert_eq!(param(&params, "scope"), Some(scope.as_str()), "{challenge}");

    let token_url = |scope: &str| {
        format!(
            "{}?service={}&scope={}",
            ts.realm(),
            token_server::url_encode(&ts.service),
            token_server::url_encode(scope)
        )
    };

    // An anonymous token is valid but grants nothing: still 401 (insufficient_scope).
    let before = ts.token_requests();
    let anon: Value = client.get(token_url(&scope)).send().await.expect("anon token").json().await.expect("json");
    assert_eq!(ts.token_requests(), before + 1);
    let anon_token = anon["token"].as_str().expect("anonymous token");
    assert_eq!(jwt_claims(anon_token)["access"], serde_json::json!([]));
    let resp = head_manifest(&client, &url, Some(anon_token)).await;
    assert_eq!(resp.status(), 401);
    let challenge = header(&resp, "www-authenticate").unwrap_or_default();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");

    // Wrong credentials: 401 from the token server.
    let resp = client.get(token_url(&scope)).basic_auth(&ts.user, Some("nope")).send().await.expect("token");
    assert_eq!(resp.status(), 401);

    // The user's token is accepted by distribution: 200 and the pushed digest.
    let body: Value = client
        .get(token_url(&scope))
        .basic_auth(&ts.user, Some(&ts.password))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let token = body["token"].as_str().expect("token");
    assert_eq!(body["access_token"].as_str(), Some(token));
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().is_some_and(|s| s.ends_with('Z') && s.len() == 20), "{body}");
    let claims = jwt_claims(token);
    assert_eq!(claims["aud"], Value::String(ts.service.clone()));
    assert_eq!(claims["iss"], Value::String(ts.issuer.clone()));
    assert_eq!(claims["sub"], Value::String(ts.user.clone()));
    assert_eq!(claims["access"], serde_json::json!([{"type": "repository", "name": repo, "actions": ["pull"]}]));
    let resp = head_manifest(&client, &url, Some(token)).await;
    assert_eq!(resp.status(), 200, "registry log:\n{}", reg.log());
    assert_eq!(header(&resp, "docker-content-digest").as_deref(), Some(digest.as_str()));

    // The OAuth flow: password grant with offline access hands out the identity
    // token as refresh token; the refresh grant with it gives a working token.
    let form = [
        ("grant_type", "password"),
        ("service", ts.service.as_str()),
        ("client_id", "shipshape-tests"),
        ("access_type", "offline"),
        ("scope", scope.as_str()),
        ("username", ts.user.as_str()),
        ("password", ts.password.as_str()),
    ];
    let body: Value = client.post(ts.realm()).form(&form).send().await.expect("post").json().await.expect("json");
    assert_eq!(body["refresh_token"].as_str(), Some(ts.identity_token.as_str()), "{body}");
    let form = [
        ("grant_type", "refresh_token"),
        ("service", ts.service.as_str()),
        ("client_id", "shipshape-tests"),
        ("scope", scope.as_str()),
        ("refresh_token", ts.identity_token.as_str()),
    ];
    let resp = client.post(ts.realm()).form(&form).send().await.expect("post");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let refreshed = body["access_token"].as_str().expect("access_token");
    assert_eq!(head_manifest(&client, &url, Some(refreshed)).await.status(), 200);
    let form = [("grant_type", "refresh_token"), ("service", ts.service.as_str()), ("refresh_token", "stale")];
    assert_eq!(client.post(ts.realm()).form(&form).send().await.expect("post").status(), 401);

    // The blocking helper agrees.
    let (status, body) = ts.fetch_token(&scope, Some((&ts.user, &ts.password)));
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn docker_login_with_identity_token_uses_the_refresh_grant() {
    let lab = common::lab();
    let ts = TokenServer::start_with(TokenServerOptions { refresh_token_on_login: true, ..Default::default() });
    let reg = TestRegistry::start(ts.registry_auth());
    let cfg = tempfile::tempdir().expect("docker config dir");
    docker_ok(&lab, cfg.path(), &["login", "-u", &ts.user, "--password-stdin", &reg.addr], Some(&ts.password));

    // docker login asks for an offline token, with its account and no scope.
    let login = ts.requests().into_iter().find(|r| r.status == 200).expect("a login token request");
    assert_eq!((login.method.as_str(), login.grant.as_str()), ("GET", "basic"));
    assert!(login.params.iter().any(|(k, v)| k == "offline_token" && v == "true"), "{login:?}");
    assert!(login.scopes.is_empty(), "{login:?}");

    let config = std::fs::read_to_string(cfg.path().join("config.json")).expect("config.json");
    let config: Value = serde_json::from_str(&config).expect("config.json is JSON");
    assert_eq!(
        config["auths"][&reg.addr]["identitytoken"].as_str(),
        Some(ts.identity_token.as_str()),
        "docker login stored no identity token: {config}"
    );

    let repo = format!("fixtures/{}", common::unique("idt"));
    let (digest, _tag) = push_base_as(&lab, cfg.path(), &format!("{}/{repo}:v1", reg.addr));
    assert!(digest.starts_with("sha256:"));
    let refreshes =
        ts.requests().into_iter().filter(|r| r.method == "POST" && r.grant == "refresh_token").collect::<Vec<_>>();
    assert!(refreshes.iter().any(|r| r.status == 200), "push used no refresh grant: {:#?}", ts.requests());
}

#[tokio::test]
async fn flaky_proxy_injects_429_then_forwards_faithfully() {
    let lab = common::lab();
    let client = http();
    let path = "/v2/shipshape/base/manifests/latest";
    let direct = head_manifest(&client, &format!("http://{}{path}", lab.registry), None).await;
    assert_eq!(direct.status(), 200);
    let digest = header(&direct, "docker-content-digest").expect("digest");

    let proxy = FlakyProxy::start(&lab.registry, Script::manifests(Mode::too_many_requests(1, 2)));

    // Not a manifest: forwarded.
    let resp = client.get(proxy.url("/v2/")).send().await.expect("GET /v2/");
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-distribution-api-version").as_deref(), Some("registry/2.0"));

    for _ in 0..2 {
        let resp = head_manifest(&client, &proxy.url(path), None).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(header(&resp, "retry-after").as_deref(), Some("1"));
    }
    assert_eq!(proxy.mode(), Mode::Forward);
    let resp = head_manifest(&client, &proxy.url(path), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest").as_deref(), Some(digest.as_str()));
    assert_eq!(header(&resp, "content-type"), header(&direct, "content-type"));

    // GET: body, content type and digest as the registry sends them.
    let via = client.get(proxy.url(path)).header("Accept", MANIFEST_ACCEPT).send().await.expect("GET via proxy");
    let real = client
        .get(format!("http://{}{path}", lab.registry))
        .header("Accept", MANIFEST_ACCEPT)
        .send()
        .await
        .expect("GET direct");
    assert_eq!(via.status(), 200);
    assert_eq!(header(&via, "content-type"), header(&real, "content-type"));
    assert_eq!(header(&via, "docker-content-digest"), header(&real, "docker-content-digest"));
    assert_eq!(via.bytes().await.expect("body"), real.bytes().await.expect("body"));

    assert_eq!(proxy.requests(), 5);
    assert_eq!(proxy.requests_matching("/v2/*/manifests/*"), 4);
    assert_eq!(proxy.path_counts().get(path), Some(&4));
    assert_eq!(proxy.seen()[1].header("accept"), Some(MANIFEST_ACCEPT));
    assert_eq!(proxy.seen()[1].status, 429);
    assert!(proxy.seen()[3].forwarded);

    // A 429 GET carries a registry-style error body.
    proxy.set_mode(Mode::Status { code: 429, retry_after: None, count: Some(1) });
    let resp = client.get(proxy.url(path)).send().await.expect("GET");
    assert_eq!(resp.status(), 429);
    assert!(header(&resp, "retry-after").is_none());
    let body: Value = resp.json().await.expect("error json");
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");

    // Refused connections, dropped connections, stalls, and back.
    proxy.set_mode(Mode::Refuse);
    let err = client.get(proxy.url("/v2/")).send().await.expect_err("refused");
    assert!(err.is_connect(), "{err:?}");
    proxy.set_mode(Mode::Drop);
    assert!(head_manifest_result(&client, &proxy.url(path)).await.is_err());
    assert_eq!(client.get(proxy.url("/v2/")).send().await.expect("not a manifest").status(), 200);
    proxy.set_mode(Mode::Stall);
    let short = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(500)).build().expect("client");
    let err = short.head(proxy.url(path)).send().await.expect_err("stalled");
    assert!(err.is_timeout(), "{err:?}");
    proxy.set_mode(Mode::Forward);
    assert_eq!(head_manifest(&client, &proxy.url(path), None).await.status(), 200);

    // Authorization goes up, WWW-Authenticate comes back (the lab's htpasswd registry).
    let auth_proxy = FlakyProxy::start(&lab.auth_registry, Script::forward());
    let resp = head_manifest(&client, &auth_proxy.url(path), None).await;
    assert_eq!(resp.status(), 401);
    assert!(header(&resp, "www-authenticate").is_some_and(|c| c.starts_with("Basic realm=")));
    let resp = client
        .head(auth_proxy.url(path))
        .header("Accept", MANIFEST_ACCEPT)
        .basic_auth(&lab.auth_user, Some(&lab.auth_password))
        .send()
        .await
        .expect("HEAD with basic auth");
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "docker-content-digest").is_some());

    // Upstream down: 502.
    let dead = FlakyProxy::start("127.0.0.1:1", Script::forward());
    assert_eq!(client.get(dead.url("/v2/")).send().await.expect("502").status(), 502);
}

async fn head_manifest_result(client: &reqwest::Client, url: &str) -> reqwest::Result<reqwest::Response> {
    client.head(url).header("Accept", MANIFEST_ACCEPT).send().await
}

#[tokio::test]
async fn registry_stops_and_restarts_on_the_same_port_with_its_storage() {
    let lab = common::lab();
    let mut reg = TestRegistry::start(RegistryAuth::None);
    let cfg = tempfile::tempdir().expect("docker config dir");
    let repo = format!("fixtures/{}", common::unique("restart"));
    let (digest, _tag) = push_base_as(&lab, cfg.path(), &format!("{}/{repo}:v1", reg.addr));

    let client = http();
    let url = reg.url(&format!("/v2/{repo}/manifests/v1"));
    let resp = head_manifest(&client, &url, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest").as_deref(), Some(digest.as_str()));

    reg.stop();
    assert!(!reg.is_running());
    // A client with a pooled keep-alive connection may see that connection die
    // (hyper: IncompleteMessage) rather than a refused connect; a fresh one is refused.
    assert!(head_manifest_result(&client, &url).await.is_err());
    let err = head_manifest_result(&http(), &url).await.expect_err("registry is down");
    assert!(err.is_connect(), "{err:?}");
    let refused = std::net::TcpStream::connect(&reg.addr).expect_err("nothing listens");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    let addr = reg.addr.clone();
    reg.restart();
    assert_eq!(reg.addr, addr);
    let resp = head_manifest(&client, &url, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest").as_deref(), Some(digest.as_str()));
}

#[tokio::test]
async fn flaky_proxy_forwards_a_whole_docker_push() {
    let lab = common::lab();
    let reg = TestRegistry::start(RegistryAuth::None);
    let proxy = FlakyProxy::start(&reg.addr, Script::forward());
    let cfg = tempfile::tempdir().expect("docker config dir");
    let repo = format!("fixtures/{}", common::unique("viaproxy"));
    let (digest, _tag) = push_base_as(&lab, cfg.path(), &format!("{}/{repo}:v1", proxy.addr));
    assert!(proxy.seen().iter().any(|r| r.method == "PUT" && r.status == 201), "{:#?}", proxy.path_counts());

    let resp = head_manifest(&http(), &reg.url(&format!("/v2/{repo}/manifests/v1")), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest").as_deref(), Some(digest.as_str()));
}
