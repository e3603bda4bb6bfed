//! The door, tried as an attacker would: encoded paths, foreign Host and
//! Origin headers, a copied database, weak passwords, ended sessions and a
//! login brake turned against the admin. Against the real binary.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{lab, spawn_app_with, TestApp};
use futures::StreamExt;
use reqwest::header::{COOKIE, ORIGIN};
use reqwest::StatusCode;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

fn app_with_password(lab: &common::Lab, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("SHIPSHAPE_AUTH", "on"), ("SHIPSHAPE_AUTH_PASSWORD", PASSWORD)];
    env.extend_from_slice(extra);
    spawn_app_with(lab, &env)
}

/// One request written byte for byte (no client normalises the path), with
/// the given extra header lines; answers the status and the whole response.
fn raw(app: &TestApp, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
    let mut conn = TcpStream::connect(&app.addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let has_host = headers.iter().any(|h| h.to_ascii_lowercase().starts_with("host:"));
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
    if !has_host {
        request.push_str(&format!("Host: {}\r\n", app.addr));
    }
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    conn.write_all(request.as_bytes()).expect("write");
    let mut response = Vec::new();
    let _ = conn.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

async fn login_cookie(app: &TestApp) -> String {
    common::session_cookie(&common::login_ok(app, PASSWORD).await).0
}

#[tokio::test]
async fn no_spelling_of_a_protected_path_gets_past_the_guard() {
    let lab = lab();
    let app = app_with_password(&lab, &[]);
    let id = "000000000000";
    let routes = [
        ("GET", "/api/images".to_string()),
        ("POST", "/api/check".to_string()),
        ("GET", "/api/ws".to_string()),
        ("POST", format!("/api/images/{id}/update")),
        ("POST", format!("/api/images/{id}/auto-update")),
        ("GET", format!("/api/images/{id}/progress")),
        ("POST", "/api/groups/x:latest/update".to_string()),
        ("GET", "/api/history".to_string()),
        ("GET", "/api/no-such-route".to_string()),
    ];
    let mut tried = 0;
    for (method, path) in &routes {
        let rest = path.strip_prefix("/api").expect("api path");
        let spellings = [
            path.clone(),
            format!("/%61pi{rest}"),
            format!("/%61%70%69{rest}"),
            format!("/api{}", rest.replacen('/', "/%2F", 1)),
            format!("//api{rest}"),
            format!("/api/.{rest}"),
            format!("/api/x/..{rest}"),
            format!("/API{rest}"),
            format!("/Api{rest}"),
            format!("{path}/"),
            format!("{path}?x=1"),
            format!("{path}%2F"),
            format!("{path}%00"),
            format!("/api{}", rest.replace('/', "%2F")),
            format!("/./api{rest}"),
            format!("/health/..{path}"),
        ];
        for spelling in spellings {
            let (status, text) = raw(&app, method, &spelling, &[]);
            assert!(
                matches!(status, 400 | 401 | 404 | 405),
                "anonymous {method} {spelling} answered {status}:\n{text}"
            );
            tried += 1;
        }
        // The websocket upgrade too, in every spelling that reaches a route.
        if path == "/api/ws" {
            for spelling in ["/api/ws", "/%61pi/ws", "/api/%77s"] {
                let (status, text) = raw(
                    &app,
                    "GET",
                    spelling,
                    &[
                        "Upgrade: websocket",
                        "Connection: Upgrade",
                        "Sec-WebSocket-Version: 13",
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                    ],
                );
                assert_eq!(status, 401, "anonymous upgrade at {spelling}:\n{text}");
            }
        }
    }
    assert!(tried > 100);
    // The public routes stay public in their plain spelling.
    assert_eq!(raw(&app, "GET", "/health", &[]).0, 200);
    assert_eq!(raw(&app, "GET", "/api/auth/status", &[]).0, 200);
}

#[tokio::test]
async fn a_foreign_host_is_misdirected_even_with_auth_off() {
    let lab = lab();
    for auth in ["off", "on"] {
        let app = app_with_password(&lab, &[("SHIPSHAPE_AUTH", auth)]);
        let port = app.addr.rsplit(':').next().expect("port");
        for host in [format!("evil.example:{port}"), "evil.example".into(), format!("localhost.evil.example:{port}")] {
            let (status, text) = raw(&app, "GET", "/api/images", &[&format!("Host: {host}")]);
            assert_eq!(status, 421, "Host {host}:\n{text}");
            assert!(text.ends_with("\r\n\r\nmisdirected request\n"), "{text}");
            // DNS rebinding's second half: a matching Origin does not help.
            let origin = format!("Origin: http://{host}");
            let (status, _) = raw(&app, "POST", "/api/check", &[&format!("Host: {host}"), &origin]);
            assert_eq!(status, 421, "POST with Host {host}");
            // Nor do forwarded headers from a peer that is not a trusted proxy.
            let (status, _) = raw(
                &app,
                "GET",
                "/health",
                &[&format!("Host: {host}"), &format!("X-Forwarded-Host: {}", app.addr), "Forwarded: host=localhost"],
            );
            assert_eq!(status, 421, "forwarded headers with Host {host}");
        }
        for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("LOCALHOST:{port}")] {
            assert_eq!(raw(&app, "GET", "/health", &[&format!("Host: {host}")]).0, 200, "Host {host}");
        }
        // No Host at all is no host of ours.
        let mut conn = TcpStream::connect(&app.addr).expect("connect");
        conn.write_all(b"GET /health HTTP/1.0\r\n\r\n").expect("write");
        let mut response = String::new();
        let _ = conn.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.0 421") || response.starts_with("HTTP/1.1 421"), "{response}");
    }
}

#[tokio::test]
async fn the_public_url_names_the_reverse_proxy_host() {
    let lab = lab();
    let app = app_with_password(&lab, &[("SHIPSHAPE_PUBLIC_URL", "https://ships.example.com")]);
    assert_eq!(raw(&app, "GET", "/health", &["Host: ships.example.com"]).0, 200);
    assert_eq!(raw(&app, "GET", "/health", &["Host: ships.example.com:443"]).0, 200);
    assert_eq!(raw(&app, "GET", "/health", &["Host: ships.example.com:8443"]).0, 421);
    assert_eq!(raw(&app, "GET", "/health", &["Host: other.example.com"]).0, 421);
    let cookie = login_cookie(&app).await;
    let check = |origin: &'static str| {
        let cookie = format!("Cookie: {cookie}");
        let origin = format!("Origin: {origin}");
        raw(&app, "POST", "/api/check", &[&cookie, &origin]).0
    };
    assert_eq!(check("https://ships.example.com"), 200, "the proxied page may act");
    assert_eq!(check("http://ships.example.com"), 403, "not over plain http");
    assert_eq!(check("https://evil.example"), 403);
}

#[tokio::test]
async fn cross_origin_changes_with_a_valid_session_are_forbidden() {
    let lab = lab();
    let app = app_with_password(&lab, &[]);
    let cookie = login_cookie(&app).await;
    let client = common::http_client();
    for origin in ["http://evil.example", "null", &format!("https://{}", app.addr), "http://localhost:1"] {
        let resp = client
            .post(app.url("/api/check"))
            .header(COOKIE, &cookie)
            .header(ORIGIN, origin)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "Origin {origin}");
        assert_eq!(resp.text().await.expect("body"), "cross-origin request refused\n");
    }
    let same = client
        .post(app.url("/api/check"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, format!("http://{}", app.addr))
        .send()
        .await
        .expect("request");
    assert_eq!(same.status(), StatusCode::OK);
    // A cross-origin websocket upgrade, session and all.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(app.ws_url()).expect("request");
    request.headers_mut().insert("cookie", cookie.parse().expect("header"));
    request.headers_mut().insert("origin", "http://evil.example".parse().expect("header"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("cross-origin websocket not refused: {other:?}"),
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let lab = lab();
    let app = app_with_password(&lab, &[]);
    let cookie = format!("Cookie: {}", login_cookie(&app).await);
    let cases: [(&str, &[&str], u16, bool); 6] = [
        ("/health", &[], 200, false),
        ("/api/images", &[], 401, true),
        ("/api/images", &[&cookie], 200, true),
        ("/api/auth/status", &[], 200, true),
        ("/nope", &[], 404, false),
        ("/health", &["Host: evil.example"], 421, false),
    ];
    for (path, headers, status, api) in cases {
        let (got, text) = raw(&app, "GET", path, headers);
        assert_eq!(got, status, "{path}:\n{text}");
        let head = text.split("\r\n\r\n").next().unwrap_or_default().to_ascii_lowercase();
        for expected in [
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
            "x-frame-options: deny",
            "content-security-policy: default-src 'self'; frame-ancestors 'none'",
        ] {
            assert!(head.contains(expected), "{path} lacks {expected}:\n{head}");
        }
        if api {
            assert!(head.contains("cache-control: no-store"), "{path}:\n{head}");
        }
    }
}

#[tokio::test]
async fn a_copy_of_the_data_dir_is_private_and_cannot_forge_a_session() {
    use std::os::unix::fs::PermissionsExt;
    let lab = lab();
    let app = app_with_password(&lab, &[]);
    let cookie = login_cookie(&app).await;
    assert_eq!(
        common::http_client().get(app.url("/api/images")).header(COOKIE, &cookie).send().await.expect("r").status(),
        200
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&app.data_dir), 0o700);
    for entry in std::fs::read_dir(&app.data_dir).expect("list") {
        let path = entry.expect("entry").path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    // What a local reader of the files would try: the cookie key and the
    // stored session ids, made into a cookie.
    let db = rusqlite::Connection::open_with_flags(
        app.data_dir.join("shipshape.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open copy");
    let key: String =
        db.query_row("SELECT value FROM settings WHERE key = 'session_key'", [], |r| r.get(0)).expect("key");
    let stored: Vec<String> = db
        .prepare("SELECT key FROM sessions")
        .expect("sql")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("keys");
    assert!(!stored.is_empty(), "the login made a session");
    use base64::Engine as _;
    let key = actix_web::cookie::Key::from(&base64::engine::general_purpose::STANDARD.decode(key).expect("b64"));
    for stored_id in stored {
        assert_eq!(stored_id.len(), 64, "a SHA-256, not a raw id");
        let mut jar = actix_web::cookie::CookieJar::new();
        jar.private_mut(&key).add(actix_web::cookie::Cookie::new("shipshape_session", stored_id));
        let forged = jar.get("shipshape_session").expect("cookie").encoded().to_string();
        let resp = common::http_client().get(app.url("/api/images")).header(COOKIE, forged).send().await.expect("r");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "a cookie forged from the database");
    }
}

#[tokio::test]
async fn weak_passwords_and_open_auth_on_the_network_are_refused_at_start() {
    let lab = lab();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("SHIPSHAPE_AUTH", "on"), ("SHIPSHAPE_AUTH_PASSWORD", "")], "SHIPSHAPE_AUTH_PASSWORD is empty"),
        (
            &[("SHIPSHAPE_AUTH", "on"), ("SHIPSHAPE_AUTH_PASSWORD", "elevenchars")],
            "SHIPSHAPE_AUTH_PASSWORD is too short",
        ),
        (&[("SHIPSHAPE_AUTH", "off"), ("SHIPSHAPE_LISTEN", "0.0.0.0:0")], "SHIPSHAPE_AUTH=off on 0.0.0.0:0"),
        (&[("SHIPSHAPE_AUTH", "off"), ("SHIPSHAPE_LISTEN", "[::]:0")], "SHIPSHAPE_AUTH=off on [::]:0"),
    ];
    for (env, expected) in cases {
        let out = common::run_shipshape(&lab, env);
        assert_eq!(out.status.code(), Some(1), "{env:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with(&format!("shipshape: {expected}")), "{env:?}: {stderr}");
        assert!(!stderr.contains("elevenchars"), "the password itself is never printed");
    }
    // Deliberately open on the network: allowed when said so.
    let app = spawn_app_with(
        &lab,
        &[("SHIPSHAPE_AUTH", "off"), ("SHIPSHAPE_LISTEN", "0.0.0.0:0"), ("SHIPSHAPE_AUTH_OFF_I_UNDERSTAND", "true")],
    );
    let port = app.addr.rsplit(':').next().expect("port");
    let resp = common::http_client().get(format!("http://127.0.0.1:{port}/api/images")).send().await.expect("r");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_new_password_ends_every_session() {
    let lab = lab();
    let mut app = app_with_password(&lab, &[]);
    let cookie = login_cookie(&app).await;
    let get = |app: &TestApp, cookie: &str| {
        common::http_client().get(app.url("/api/images")).header(COOKIE, cookie.to_string()).send()
    };
    assert_eq!(get(&app, &cookie).await.expect("r").status(), 200);
    app.restart(&lab);
    assert_eq!(get(&app, &cookie).await.expect("r").status(), 200, "a restart alone keeps sessions");
    app.restart_with(&lab, &[("SHIPSHAPE_AUTH_PASSWORD", "a different passphrase")]);
    assert_eq!(get(&app, &cookie).await.expect("r").status(), 401, "the old password's session ended");
    assert!(app.log().contains("the password changed: every session has ended"), "{}", app.log());
}

/// Reads websocket frames until the server closes; panics after `within`.
async fn expect_ws_closed<S>(ws: &mut S, within: Duration, what: &str)
where
    S: futures::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    let deadline = Instant::now() + within;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, ws.next()).await {
            Err(_) => panic!("{what}: websocket still open after {within:?}"),
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) => return,
            Ok(Some(Ok(_))) => {}
        }
    }
}

async fn open_ws(
    app: &TestApp,
    cookie: &str,
) -> impl futures::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>
       + Unpin {
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(app.ws_url()).expect("request");
    request.headers_mut().insert("cookie", cookie.parse().expect("header"));
    let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("websocket opens with the session");
    ws
}

#[tokio::test]
async fn the_websocket_closes_at_logout_and_at_expiry() {
    let lab = lab();
    let app = app_with_password(&lab, &[]);
    let cookie = login_cookie(&app).await;
    let mut ws = open_ws(&app, &cookie).await;
    // Still open while the session lives: the first view arrives.
    let first = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("first message");
    assert!(matches!(first, Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_)))), "{first:?}");
    let resp = common::http_client().post(app.url("/api/logout")).header(COOKIE, &cookie).send().await.expect("logout");
    assert_eq!(resp.status(), 200);
    // The default ping is 30 s away: only the logout itself can close it in time.
    expect_ws_closed(&mut ws, Duration::from_secs(20), "after logout").await;

    let short = app_with_password(&lab, &[("SHIPSHAPE_SESSION_TTL", "2s"), ("SHIPSHAPE_WS_PING_INTERVAL", "1s")]);
    let cookie = login_cookie(&short).await;
    let mut ws = open_ws(&short, &cookie).await;
    expect_ws_closed(&mut ws, Duration::from_secs(30), "after the session expired").await;
    let resp = common::http_client().get(short.url("/api/images")).header(COOKIE, &cookie).send().await.expect("r");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "the expired session is refused over HTTP too");
}

#[tokio::test]
async fn the_login_brake_never_locks_out_a_clean_address() {
    let lab = lab();
    // 127.0.0.1 (the test itself) is the trusted proxy; X-Forwarded-For names clients.
    let app = app_with_password(&lab, &[("SHIPSHAPE_TRUSTED_PROXIES", "127.0.0.1")]);
    let client = common::http_client();
    let attempt = |from: &'static str, pass: &'static str| {
        client
            .post(app.url("/api/login"))
            .header("x-forwarded-for", format!("203.0.113.250, {from}"))
            .json(&json!({ "user": "admin", "pass": pass }))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(attempt("198.51.100.1", "wrong guess!!").await.expect("r").status(), 401);
    }
    let refused = attempt("198.51.100.1", PASSWORD).await.expect("r");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = refused.text().await.expect("body");
    assert!(body.starts_with("too many login attempts; retry in "), "{body}");
    assert_eq!(attempt("198.51.100.2", PASSWORD).await.expect("r").status(), 200, "another client");
    // Successes are not failures: the admin may log in again and again.
    for _ in 0..8 {
        assert_eq!(attempt("198.51.100.3", PASSWORD).await.expect("r").status(), 200);
    }
    // IPv6 clients are braked per /64.
    for i in 1..=5 {
        let from: &'static str = Box::leak(format!("2001:db8:5:6::{i}").into_boxed_str());
        assert_eq!(attempt(from, "wrong guess!!").await.expect("r").status(), 401);
    }
    assert_eq!(attempt("2001:db8:5:6:ffff::9", PASSWORD).await.expect("r").status(), 429, "same /64");
    assert_eq!(attempt("2001:db8:5:7::1", PASSWORD).await.expect("r").status(), 200, "another /64");

    // Without trusting the proxy, X-Forwarded-For changes nothing.
    let untrusting = app_with_password(&lab, &[]);
    for i in 0..5 {
        let resp = client
            .post(untrusting.url("/api/login"))
            .header("x-forwarded-for", format!("198.51.100.{}", 10 + i))
            .json(&json!({ "user": "admin", "pass": "wrong guess!!" }))
            .send()
            .await
            .expect("r");
        assert_eq!(resp.status(), 401);
    }
    let resp = client
        .post(untrusting.url("/api/login"))
        .header("x-forwarded-for", "198.51.100.99")
        .json(&json!({ "user": "admin", "pass": PASSWORD }))
        .send()
        .await
        .expect("r");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "a forged X-Forwarded-For does not reset the brake");
}
