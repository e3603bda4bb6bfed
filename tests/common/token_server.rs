//! A real Docker token server (the protocol of distribution's `auth: token:`),
//! in-process on its own std thread, on a free 127.0.0.1 port.
//!
//! * `GET /token?service=..&scope=repository:<name>:pull,push[&scope=..]` with
//!   HTTP Basic credentials. The configured user gets every action it asks for;
//!   wrong credentials get 401; anonymous callers get a valid token with NO
//!   access (or pull-only access with `anonymous_pull`).
//! * `POST /token` (form): `grant_type=password` with `username`/`password`, or
//!   `grant_type=refresh_token` with `refresh_token` equal to the configured
//!   identity token (the OAuth flow Docker uses once it holds an identity token).
//!
//! Tokens are ES256 JWTs whose header carries the self-signed signing
//! certificate in `x5c`; the same certificate is written as PEM to
//! [`TokenServer::cert_pem_path`] for the registry's `rootcertbundle`.
//! Key and certificate are made at start with the `openssl` CLI.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey as _;
use serde_json::{json, Value};

use super::registry::RegistryAuth;
use super::wire::{invalid, read_body, read_head, reason, Head};

/// How a [`TokenServer`] behaves. `Default` gives a random password and
/// identity token, pull+push for the user, nothing for anonymous callers.
#[derive(Debug, Clone)]
pub struct TokenServerOptions {
    pub user: String,
    pub password: String,
    /// Accepted as `refresh_token` in `POST /token` (`grant_type=refresh_token`),
    /// and handed out as `refresh_token` when a client asks for offline access.
    pub identity_token: String,
    /// Answer `GET /token?offline_token=true` (what `docker login` sends) with a
    /// `refresh_token`: the docker CLI then stores an `identitytoken` instead of
    /// the password in config.json, and later uses `POST /token` with it.
    pub refresh_token_on_login: bool,
    /// Anonymous callers get `pull` on any repository they ask for (a public registry).
    pub anonymous_pull: bool,
    /// The `service` (the tokens' `aud`) and the `iss` the registry must be configured with.
    pub service: String,
    pub issuer: String,
    /// Token lifetime in seconds (`exp - iat` and `expires_in`).
    /// distribution adds 60 s of leeway when it checks `exp`.
    pub expires_in: u64,
}

impl Default for TokenServerOptions {
    fn default() -> Self {
        TokenServerOptions {
            user: "tokenuser".into(),
            password: random_hex(16),
            identity_token: format!("idt-{}", random_hex(16)),
            refresh_token_on_login: false,
            anonymous_pull: false,
            service: "shipshape-test-registry".into(),
            issuer: "shipshape-test-token-issuer".into(),
            expires_in: 300,
        }
    }
}

/// One request the token server saw.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `GET` or `POST` (or anything else a client sent).
    pub method: String,
    /// The request path, without the query.
    pub path: String,
    /// `basic`, `anonymous`, `password` or `refresh_token`.
    pub grant: String,
    /// The user name the client presented (Basic or form), if any.
    pub account: Option<String>,
    /// The `service` parameter as sent.
    pub service: Option<String>,
    /// Every requested scope (repeated `scope=` parameters and space-separated ones).
    pub scopes: Vec<String>,
    /// All decoded parameters, query and form body (e.g. `client_id`, `offline_token`, `access_type`).
    pub params: Vec<(String, String)>,
    /// The status the server answered with.
    pub status: u16,
    /// The `access` claim of the token it issued (empty when none was issued).
    pub granted: Vec<Value>,
}

struct State {
    opts: Mutex<TokenServerOptions>,
    signing_key: SigningKey,
    cert_der_b64: String,
    requests: Mutex<Vec<TokenRequest>>,
    count: AtomicUsize,
    failure: Mutex<Option<u16>>,
    stop: AtomicBool,
}

pub struct TokenServer {
    /// `127.0.0.1:port`
    pub addr: String,
    pub user: String,
    pub password: String,
    pub identity_token: String,
    pub service: String,
    pub issuer: String,
    /// The signing certificate (PEM): the registry's `rootcertbundle`.
    pub cert_pem_path: PathBuf,
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    /// Starts a token server with default options.
    pub fn start() -> TokenServer {
        TokenServer::start_with(TokenServerOptions::default())
    }

    pub fn start_with(opts: TokenServerOptions) -> TokenServer {
        let dir = tempfile::tempdir().expect("token server tempdir");
        let key_path = dir.path().join("token-key.pem");
        let cert_pem_path = dir.path().join("token-cert.pem");
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256"])
            .args(["-days", "3", "-subj", "/CN=shipshape test token signer"])
            .arg("-keyout")
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_pem_path)
            .output()
            .expect("openssl CLI runs");
        assert!(out.status.success(), "openssl req failed: {}", String::from_utf8_lossy(&out.stderr));
        let key_pem = std::fs::read_to_string(&key_path).expect("read token key");
        let signing_key = SigningKey::from_pkcs8_pem(&key_pem).expect("openssl wrote a PKCS#8 P-256 key");
        let cert_pem = std::fs::read_to_string(&cert_pem_path).expect("read token cert");
        // x5c holds standard (padded) base64 of the DER: exactly the PEM body.
        let cert_der_b64: String = cert_pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
        assert!(STANDARD.decode(&cert_der_b64).is_ok(), "certificate PEM body is not base64");

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = listener.local_addr().expect("token server addr").to_string();
        let state = Arc::new(State {
            opts: Mutex::new(opts.clone()),
            signing_key,
            cert_der_b64,
            requests: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            failure: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("token-server".into())
            .spawn(move || accept_loop(listener, st))
            .expect("spawn token server thread");
        TokenServer {
            addr,
            user: opts.user,
            password: opts.password,
            identity_token: opts.identity_token,
            service: opts.service,
            issuer: opts.issuer,
            cert_pem_path,
            state,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// The realm URL registries send in their Bearer challenge.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The `auth: token:` settings for a [`super::registry::TestRegistry`] trusting this server.
    pub fn registry_auth(&self) -> RegistryAuth {
        RegistryAuth::Token {
            realm: self.realm(),
            service: self.service.clone(),
            issuer: self.issuer.clone(),
            root_cert_pem_path: self.cert_pem_path.clone(),
        }
    }

    /// How many requests (any method, any outcome) reached the server.
    pub fn token_requests(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    /// Every request seen so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Tokens actually issued (status 200).
    pub fn tokens_issued(&self) -> usize {
        self.requests().iter().filter(|r| r.status == 200).count()
    }

    /// From now on, answer every request with this status (e.g. 503), or behave again (`None`).
    pub fn set_failure(&self, status: Option<u16>) {
        if let Ok(mut f) = self.state.failure.lock() {
            *f = status;
        }
    }

    /// Changes the user's password (simulates a credential rotation).
    pub fn set_password(&mut self, password: &str) {
        if let Ok(mut o) = self.state.opts.lock() {
            o.password = password.to_string();
        }
        self.password = password.to_string();
    }

    /// Fetches a token the way a registry client would (blocking, std only).
    /// `creds`: Basic credentials, or anonymous with `None`. Returns (status, JSON body).
    pub fn fetch_token(&self, scope: &str, creds: Option<(&str, &str)>) -> (u16, Value) {
        let target = format!("/token?service={}&scope={}", url_encode(&self.service), url_encode(scope));
        let mut req = format!("GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        if let Some((u, p)) = creds {
            req.push_str(&format!("Authorization: Basic {}\r\n", STANDARD.encode(format!("{u}:{p}"))));
        }
        req.push_str("\r\n");
        let mut conn = TcpStream::connect(&self.addr).expect("connect token server");
        conn.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        conn.write_all(req.as_bytes()).expect("send token request");
        let mut resp = Vec::new();
        conn.read_to_end(&mut resp).expect("read token response");
        let text = String::from_utf8_lossy(&resp);
        let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    while !state.stop.load(Ordering::SeqCst) {
        let st = state.clone();
        super::accept_once(&listener, "token-conn", move |conn| {
            let _ = handle(conn, &st);
        });
    }
}

struct Request {
    head: Head,
    path: String,
    query: String,
    body: Vec<u8>,
}

fn read_request(conn: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(conn);
    let head = read_head(&mut reader)?;
    if head.header("content-length").and_then(|v| v.trim().parse::<usize>().ok()).is_some_and(|len| len > 1 << 20) {
        return Err(invalid("body too large"));
    }
    let body = read_body(&mut reader, &head)?;
    let (path, query) = match head.target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (head.target.clone(), String::new()),
    };
    Ok(Request { head, path, query, body })
}

fn handle(conn: TcpStream, state: &State) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    let req = read_request(&conn)?;
    state.count.fetch_add(1, Ordering::SeqCst);
    let opts = state.opts.lock().map(|o| o.clone()).unwrap_or_default();
    let failure = state.failure.lock().map(|f| *f).unwrap_or(None);

    let mut params = parse_form(&req.query);
    let form_post = req.head.method == "POST";
    if form_post {
        params.extend(parse_form(&String::from_utf8_lossy(&req.body)));
    }
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>())
        .collect();
    let mut record = TokenRequest {
        method: req.head.method.clone(),
        path: req.path.clone(),
        grant: String::new(),
        account: None,
        service: param("service"),
        scopes: scopes.clone(),
        params: params.clone(),
        status: 0,
        granted: Vec::new(),
    };

    // Who is asking, and may they?
    let basic = req.head.header("authorization").and_then(parse_basic);
    let outcome: Result<Option<String>, &str> = if req.path != "/token" {
        Err("not found")
    } else if !matches!(req.head.method.as_str(), "GET" | "POST") {
        Err("method not allowed")
    } else if form_post {
        match param("grant_type").as_deref() {
            Some("password") => {
                record.grant = "password".into();
                let (u, p) = (param("username").unwrap_or_default(), param("password").unwrap_or_default());
                record.account = Some(u.clone());
                if u == opts.user && p == opts.password {
                    Ok(Some(u))
                } else {
                    Err("unauthorized")
                }
            }
            Some("refresh_token") => {
                record.grant = "refresh_token".into();
                record.account = param("username");
                if param("refresh_token").as_deref() == Some(opts.identity_token.as_str()) {
                    Ok(Some(opts.user.clone()))
                } else {
                    Err("unauthorized")
                }
            }
            _ => {
                record.grant = param("grant_type").unwrap_or_default();
                Err("unsupported grant_type")
            }
        }
    } else if let Some((u, p)) = basic {
        record.grant = "basic".into();
        record.account = Some(u.clone());
        if u == opts.user && p == opts.password {
            Ok(Some(u))
        } else {
            Err("unauthorized")
        }
    } else {
        record.grant = "anonymous".into();
        Ok(None)
    };

    let (status, extra, body) = if let Some(code) = failure {
        (code, Vec::new(), json!({"errors": [{"code": "UNAVAILABLE", "message": "token server: injected failure"}]}))
    } else {
        match outcome {
            Err("not found") => (404, Vec::new(), json!({"details": "not found"})),
            Err("method not allowed") => (405, Vec::new(), json!({"details": "method not allowed"})),
            Err("unauthorized") => (
                401,
                vec![("WWW-Authenticate".to_string(), "Basic realm=\"shipshape-test-token\"".to_string())],
                json!({"details": "incorrect username or password"}),
            ),
            Err(e) => (400, Vec::new(), json!({"error": "unsupported_grant_type", "error_description": e})),
            Ok(user) => {
                let access = grant(&scopes, user.is_some(), opts.anonymous_pull);
                let subject = user.clone().unwrap_or_default();
                let (token, iat) = sign_token(state, &opts, &subject, &access);
                record.granted = access;
                let mut body = json!({
                    "token": token,
                    "access_token": token,
                    "expires_in": opts.expires_in,
                    "issued_at": shipshape::registry::check::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(iat)),
                });
                let wants_offline = if form_post {
                    param("access_type").as_deref() == Some("offline")
                } else {
                    opts.refresh_token_on_login && param("offline_token").as_deref() == Some("true")
                };
                if user.is_some() && wants_offline {
                    body["refresh_token"] = json!(opts.identity_token);
                }
                if form_post {
                    body["scope"] = json!(scopes.join(" "));
                }
                (200, Vec::new(), body)
            }
        }
    };
    record.status = status;
    if let Ok(mut r) = state.requests.lock() {
        r.push(record);
    }

    let body = body.to_string();
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut conn = conn;
    conn.write_all(head.as_bytes())?;
    if req.head.method != "HEAD" {
        conn.write_all(body.as_bytes())?;
    }
    conn.flush()
}

/// The `access` claim: what the caller gets for the scopes it asked for.
fn grant(scopes: &[String], authenticated: bool, anonymous_pull: bool) -> Vec<Value> {
    let mut by_resource: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for scope in scopes {
        // type:name:actions — the name may itself contain ':' (never in practice).
        let Some((typ, rest)) = scope.split_once(':') else { continue };
        let Some((name, actions)) = rest.rsplit_once(':') else { continue };
        let entry = by_resource.entry((typ.to_string(), name.to_string())).or_default();
        for action in actions.split(',').filter(|a| !a.is_empty()) {
            let allowed = authenticated || (anonymous_pull && typ == "repository" && action == "pull");
            if allowed && !entry.iter().any(|a| a == action) {
                entry.push(action.to_string());
            }
        }
    }
    by_resource
        .into_iter()
        .filter(|(_, actions)| !actions.is_empty())
        .map(|((typ, name), actions)| json!({"type": typ, "name": name, "actions": actions}))
        .collect()
}

fn sign_token(state: &State, opts: &TokenServerOptions, subject: &str, access: &[Value]) -> (String, u64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [state.cert_der_b64]});
    // distribution 2.8 decodes `aud` into a Go string: it must NOT be an array.
    let claims = json!({
        "iss": opts.issuer,
        "sub": subject,
        "aud": opts.service,
        "exp": now + opts.expires_in,
        "nbf": now.saturating_sub(1),
        "iat": now,
        "jti": random_hex(16),
        "access": access,
    });
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    // ES256 in JWS is the raw 64-byte r||s, not DER.
    let sig: Signature = state.signing_key.sign(signing_input.as_bytes());
    (format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes())), now)
}

fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(kv), String::new()),
        })
        .collect()
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}
