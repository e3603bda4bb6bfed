//! A tiny HTTP/1.1 reverse proxy in front of a registry, on a free 127.0.0.1
//! port, that misbehaves on request: injected statuses (429 + Retry-After,
//! 5xx, …) for paths matching a glob, dropped or stalled connections, or a
//! closed port. Everything else is forwarded faithfully (request line, headers
//! including Accept and Authorization, body; the upstream's status line,
//! headers and body are relayed byte for byte). One request per connection:
//! the proxy sends `Connection: close` upstream and closes after each answer.
//! Runs on std threads, so it works under any test runtime.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::wire::{invalid, read_body, read_head, reason, Head};

/// What the proxy does with requests whose path matches the script's pattern.
/// Requests not matching are always forwarded (except under `Refuse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Forward to the upstream.
    Forward,
    /// Answer with `code` (and `Retry-After: n` if set) and a registry-style
    /// JSON error body. With `count: Some(n)` only the next n matching requests
    /// get it; then the mode becomes `Forward`.
    Status { code: u16, retry_after: Option<u32>, count: Option<usize> },
    /// Read the request, then close the connection without answering.
    Drop,
    /// Read the request and answer nothing until the mode changes (or 120 s
    /// pass, or the proxy is dropped); then close without answering.
    Stall,
    /// Close the listening socket: connections to `addr` are refused
    /// until the mode changes (the proxy then listens on the same port again).
    Refuse,
    /// For tag listings (`GET /v2/<name>/tags/list?n=&last=`): the upstream's
    /// full list cut into pages of at most `page` tags (and of `n`), after
    /// `last`, with a `Link: <…>; rel="next"` header while more follow — as
    /// Docker Hub, GHCR and distribution 3 answer. (Debian's distribution
    /// 2.8 ignores `n` and sends every tag at once.)
    Paginate { page: usize },
}

impl Mode {
    /// `429 Too Many Requests` with `Retry-After: retry_after` for the next `count` matching requests.
    pub fn too_many_requests(retry_after: u32, count: usize) -> Mode {
        Mode::Status { code: 429, retry_after: Some(retry_after), count: Some(count) }
    }
}

/// Which requests the mode applies to, and the mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// A glob on the request path (no query): `*` matches any run of characters,
    /// `/` included. E.g. `/v2/*/manifests/*`, `/v2/*`, `*`.
    pub paths: String,
    pub mode: Mode,
}

impl Script {
    /// Forward everything.
    pub fn forward() -> Script {
        Script { paths: "*".into(), mode: Mode::Forward }
    }

    /// `mode` for manifest requests (`/v2/*/manifests/*`); everything else is forwarded.
    pub fn manifests(mode: Mode) -> Script {
        Script { paths: "/v2/*/manifests/*".into(), mode }
    }

    /// `mode` for every request.
    pub fn all(mode: Mode) -> Script {
        Script { paths: "*".into(), mode }
    }
}

/// One request the proxy read.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// Path and query as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// Whether it went to the upstream.
    pub forwarded: bool,
    /// The status the client got (injected or upstream's); 0 if none (dropped, stalled, upstream failed).
    pub status: u16,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Shared {
    upstream: String,
    script: Mutex<Script>,
    seen: Mutex<Vec<SeenRequest>>,
    stop: AtomicBool,
    /// Whether the accept loop currently holds a listening socket.
    listening: AtomicBool,
}

pub struct FlakyProxy {
    /// `127.0.0.1:port` — point clients here.
    pub addr: String,
    pub upstream: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FlakyProxy {
    pub fn start(upstream_addr: &str, script: Script) -> FlakyProxy {
        FlakyProxy::start_at("127.0.0.1:0", upstream_addr, script)
    }

    /// Listens on `bind` (a loopback address, e.g. `127.0.0.2:0`) instead.
    pub fn start_at(bind: &str, upstream_addr: &str, script: Script) -> FlakyProxy {
        assert!(bind.starts_with("127.") || bind.starts_with("[::1]:"), "flaky proxy: {bind} is not loopback");
        let listener = TcpListener::bind(bind).expect("bind flaky proxy");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let shared = Arc::new(Shared {
            upstream: upstream_addr.to_string(),
            script: Mutex::new(script),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            listening: AtomicBool::new(true),
        });
        let sh = shared.clone();
        let a = addr.clone();
        let thread = std::thread::Builder::new()
            .name("flaky-proxy".into())
            .spawn(move || accept_loop(Some(listener), &a, sh))
            .expect("spawn proxy thread");
        FlakyProxy { addr, upstream: upstream_addr.to_string(), shared, thread: Some(thread) }
    }

    /// `http://127.0.0.1:port{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Changes the mode, keeping the path pattern. Switching to or from
    /// `Refuse` returns once the port is closed / listening again.
    pub fn set_mode(&self, mode: Mode) {
        let paths = self.shared.script.lock().map(|s| s.paths.clone()).unwrap_or_else(|_| "*".into());
        self.set_script(Script { paths, mode });
    }

    /// Replaces pattern and mode (see [`FlakyProxy::set_mode`]).
    pub fn set_script(&self, script: Script) {
        let refuse = script.mode == Mode::Refuse;
        if let Ok(mut s) = self.shared.script.lock() {
            *s = script;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.shared.listening.load(Ordering::SeqCst) == refuse {
            assert!(
                Instant::now() < deadline,
                "flaky proxy: could not {} {}",
                if refuse { "close" } else { "re-open" },
                self.addr
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The current mode (a `Status` with a count shows what is left of it).
    pub fn mode(&self) -> Mode {
        self.shared.script.lock().map(|s| s.mode.clone()).unwrap_or(Mode::Forward)
    }

    /// How many requests the proxy read (refused connections are not seen).
    pub fn requests(&self) -> usize {
        self.shared.seen.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// How many requests had a path matching `glob` (same syntax as [`Script::paths`]).
    pub fn requests_matching(&self, glob: &str) -> usize {
        self.seen().iter().filter(|r| glob_match(glob, &r.path)).count()
    }

    /// Requests per path (no query).
    pub fn path_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.seen() {
            *counts.entry(r.path).or_insert(0) += 1;
        }
        counts
    }

    /// Every request read so far, oldest first.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.shared.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn reset_counts(&self) {
        if let Ok(mut s) = self.shared.seen.lock() {
            s.clear();
        }
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(mut listener: Option<TcpListener>, addr: &str, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let refuse = shared.script.lock().map(|s| s.mode == Mode::Refuse).unwrap_or(false);
        if refuse {
            if let Some(l) = listener.take() {
                // Dropping the fd is not enough: a child being spawned concurrently
                // (docker CLI, registry, ...) briefly holds a copy of every fd until its
                // exec, and the port would go on accepting meanwhile. shutdown(SHUT_RD)
                // on a listening socket closes it at once (Linux), whoever holds it.
                let _ = TcpStream::from(std::os::fd::OwnedFd::from(l)).shutdown(Shutdown::Both);
            }
            shared.listening.store(false, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let Some(l) = listener.as_ref() else {
            // Listen again on the same port (std sets SO_REUSEADDR on Unix).
            if let Ok(l) = TcpListener::bind(addr) {
                if l.set_nonblocking(true).is_ok() {
                    listener = Some(l);
                    shared.listening.store(true, Ordering::SeqCst);
                }
            }
            if listener.is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        };
        let sh = shared.clone();
        super::accept_once(l, "flaky-proxy-conn", move |conn| {
            let _ = handle(conn, &sh);
        });
    }
}

enum Action {
    Forward,
    Paginate(usize),
    Status { code: u16, retry_after: Option<u32> },
    Drop,
    Stall,
}

fn handle(conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    conn.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut head = read_head(&mut reader)?;
    if head.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        // Take the body now; the upstream then gets a plain request.
        (&conn).write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        head.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("expect"));
    }
    let body = read_body(&mut reader, &head)?;
    let path = head.target.split('?').next().unwrap_or("").to_string();

    let action = {
        let mut script = shared.script.lock().map_err(|_| invalid("poisoned"))?;
        if !glob_match(&script.paths, &path) {
            Action::Forward
        } else {
            match script.mode.clone() {
                Mode::Forward | Mode::Refuse => Action::Forward,
                Mode::Paginate { page } => Action::Paginate(page),
                Mode::Drop => Action::Drop,
                Mode::Stall => Action::Stall,
                Mode::Status { count: Some(0), .. } => {
                    script.mode = Mode::Forward;
                    Action::Forward
                }
                Mode::Status { code, retry_after, count } => {
                    match count {
                        Some(n) if n <= 1 => script.mode = Mode::Forward,
                        Some(n) => script.mode = Mode::Status { code, retry_after, count: Some(n - 1) },
                        None => {}
                    }
                    Action::Status { code, retry_after }
                }
            }
        }
    };

    let index = {
        let mut seen = shared.seen.lock().map_err(|_| invalid("poisoned"))?;
        seen.push(SeenRequest {
            method: head.method.clone(),
            path: path.clone(),
            target: head.target.clone(),
            headers: head.headers.clone(),
            forwarded: matches!(action, Action::Forward | Action::Paginate(_)),
            status: 0,
        });
        seen.len() - 1
    };
    let set_status = |status: u16| {
        if let Ok(mut seen) = shared.seen.lock() {
            if let Some(r) = seen.get_mut(index) {
                r.status = status;
            }
        }
    };

    let mut client = conn;
    match action {
        Action::Drop => {
            let _ = client.shutdown(Shutdown::Both);
            Ok(())
        }
        Action::Stall => {
            let until = Instant::now() + Duration::from_secs(120);
            while Instant::now() < until
                && !shared.stop.load(Ordering::SeqCst)
                && shared.script.lock().map(|s| s.mode == Mode::Stall).unwrap_or(false)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = client.shutdown(Shutdown::Both);
            Ok(())
        }
        Action::Status { code, retry_after } => {
            set_status(code);
            let body = format!(
                "{{\"errors\":[{{\"code\":\"{}\",\"message\":\"flaky proxy: injected {code}\",\"detail\":null}}]}}\n",
                error_code(code)
            );
            let mut resp = format!(
                "HTTP/1.1 {code} {}\r\nContent-Type: application/json; charset=utf-8\r\n\
                 Docker-Distribution-Api-Version: registry/2.0\r\nContent-Length: {}\r\nConnection: close\r\n",
                reason(code),
                body.len()
            );
            if let Some(s) = retry_after {
                resp.push_str(&format!("Retry-After: {s}\r\n"));
            }
            resp.push_str("\r\n");
            if head.method != "HEAD" {
                resp.push_str(&body);
            }
            client.write_all(resp.as_bytes())?;
            client.flush()?;
            let _ = client.shutdown(Shutdown::Both);
            Ok(())
        }
        Action::Paginate(page) => {
            let status = paginate(&head, &shared.upstream, page, &mut client).unwrap_or(502);
            set_status(status);
            let _ = client.flush();
            let _ = client.shutdown(Shutdown::Both);
            Ok(())
        }
        Action::Forward => {
            let result = forward(&head, &body, &shared.upstream, &mut client);
            match result {
                Ok(status) => set_status(status),
                Err(e) => {
                    // Nothing (or not all) reached the client: a reverse proxy answers 502
                    // when the upstream cannot be reached at all.
                    if let ForwardError::Connect(msg) = e {
                        set_status(502);
                        let body = format!(
                            "{{\"errors\":[{{\"code\":\"UNAVAILABLE\",\"message\":\"flaky proxy: upstream: {}\"}}]}}\n",
                            msg.replace('"', "'")
                        );
                        let resp = format!(
                            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                            body.len(),
                            if head.method == "HEAD" { "" } else { &body }
                        );
                        let _ = client.write_all(resp.as_bytes());
                    }
                }
            }
            let _ = client.flush();
            let _ = client.shutdown(Shutdown::Both);
            Ok(())
        }
    }
}

/// One page of the upstream's tag list (see [`Mode::Paginate`]).
fn paginate(head: &Head, upstream: &str, page: usize, client: &mut TcpStream) -> std::io::Result<u16> {
    use std::io::Read;
    let sock = upstream.parse().map_err(|_| invalid("bad upstream address"))?;
    let mut up = TcpStream::connect_timeout(&sock, Duration::from_secs(5))?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
    // HTTP/1.0: a plain body, no chunks, closed at its end.
    let mut req = format!("GET {path} HTTP/1.0\r\n");
    for (k, v) in &head.headers {
        if k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("host") {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    req.push_str("\r\n");
    up.write_all(req.as_bytes())?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| invalid("no header end"))?;
    let (head_bytes, body) = (&answer[..split], &answer[split + 4..]);
    let status: u16 =
        String::from_utf8_lossy(head_bytes).split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status != 200 {
        // Not a list (401 and the like): relayed as it came.
        client.write_all(&answer)?;
        return Ok(status);
    }
    let list: serde_json::Value = serde_json::from_slice(body).map_err(|_| invalid("tag list is not JSON"))?;
    let mut tags: Vec<String> =
        list["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(String::from)).collect();
    tags.sort();
    let param =
        |key: &str| query.split('&').find_map(|kv| kv.strip_prefix(&format!("{key}="))).map(|v| v.replace("%2E", "."));
    let n = param("n").and_then(|n| n.parse::<usize>().ok()).unwrap_or(page).min(page);
    let start = param("last").map_or(0, |last| tags.partition_point(|t| *t <= last));
    let end = (start + n).min(tags.len());
    let body = serde_json::json!({ "name": list["name"], "tags": tags[start..end] }).to_string();
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if end < tags.len() {
        resp.push_str(&format!("Link: <{path}?last={}&n={n}>; rel=\"next\"\r\n", tags[end - 1]));
    }
    resp.push_str("\r\n");
    resp.push_str(&body);
    client.write_all(resp.as_bytes())?;
    Ok(200)
}

enum ForwardError {
    Connect(String),
    Io,
}

/// Sends the request upstream with `Connection: close` and relays the answer
/// byte for byte until the upstream closes. Returns the upstream status.
fn forward(head: &Head, body: &[u8], upstream: &str, client: &mut TcpStream) -> Result<u16, ForwardError> {
    let sock = upstream.parse().map_err(|_| ForwardError::Connect(format!("bad upstream address {upstream}")))?;
    let mut up =
        TcpStream::connect_timeout(&sock, Duration::from_secs(5)).map_err(|e| ForwardError::Connect(e.to_string()))?;
    let _ = up.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = up.set_write_timeout(Some(Duration::from_secs(60)));
    let mut req = format!("{} {} {}\r\n", head.method, head.target, head.version);
    for (k, v) in &head.headers {
        let hop_by_hop = ["connection", "keep-alive", "proxy-connection", "te", "upgrade"];
        if hop_by_hop.iter().any(|h| k.eq_ignore_ascii_case(h)) {
            continue;
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes()).map_err(|_| ForwardError::Io)?;
    up.write_all(body).map_err(|_| ForwardError::Io)?;
    up.flush().map_err(|_| ForwardError::Io)?;

    let mut reader = BufReader::new(up);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).map_err(|_| ForwardError::Io)?;
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    client.write_all(status_line.as_bytes()).map_err(|_| ForwardError::Io)?;
    std::io::copy(&mut reader, client).map_err(|_| ForwardError::Io)?;
    Ok(status)
}

/// `*` matches any run of characters (including `/`); everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn error_code(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHORIZED",
        403 => "DENIED",
        404 => "NAME_UNKNOWN",
        429 => "TOOMANYREQUESTS",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}
