//! Login, sessions and the guard, against the real service over HTTP.

mod common;

use common::{lab, session_cookie, spawn_app_with, TestApp};
use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "correct horse battery staple";
/// Long enough for a loaded machine; a passing run never waits it out.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

fn app_with_password(lab: &common::Lab) -> TestApp {
    spawn_app_with(lab, &[("SHIPSHAPE_AUTH", "on"), ("SHIPSHAPE_AUTH_PASSWORD", PASSWORD)])
}

fn plain_client() -> reqwest::Client {
    common::http_client()
}

async fn login(client: &reqwest::Client, app: &TestApp, user: &str, pass: &str) -> reqwest::Response {
    client.post(app.url("/api/login")).json(&json!({ "user": user, "pass": pass })).send().await.expect("login")
}

async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    plain_client().get(app.url(path)).header(COOKIE, cookie).send().await.expect("request")
}

#[tokio::test]
async fn anonymous_requests_are_refused_and_status_says_enabled() {
    let lab = lab();
    let app = app_with_password(&lab);
    let client = plain_client();
    let resp = client.get(app.url("/api/images")).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.text().await.expect("body"), "unauthorized\n");
    for (method, path) in [("POST", "/api/images/000000000000/auto-update"), ("POST", "/api/groups/x:latest/update")] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = client.request(method, app.url(path)).send().await.expect("request");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let ws = tokio_tungstenite::connect_async(app.ws_url()).await;
    match ws {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("anonymous websocket not refused: {other:?}"),
    }
    let status: Value =
        client.get(app.url("/api/auth/status")).send().await.expect("status").json().await.expect("json");
    assert_eq!(status, json!({ "enabled": true }));
    let health = client.get(app.url("/health")).send().await.expect("health");
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_user_or_password_gets_the_same_answer() {
    let lab = lab();
    let app = app_with_password(&lab);
    for (user, pass) in [("admin", "wrong"), ("root", PASSWORD), ("", "")] {
        let resp = login(&plain_client(), &app, user, pass).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{user}");
        assert!(resp.headers().get(SET_COOKIE).is_none());
        assert_eq!(resp.text().await.expect("body"), "invalid credentials\n");
    }
}

#[tokio::test]
async fn login_cookie_opens_api_and_websocket_until_logout() {
    let lab = lab();
    let app = app_with_password(&lab);
    let resp = login(&plain_client(), &app, "admin", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (cookie, header) = session_cookie(&resp);
    let lower = header.to_ascii_lowercase();
    assert!(lower.contains("httponly"), "{header}");
    assert!(lower.contains("samesite=strict"), "{header}");
    assert!(lower.contains("path=/"), "{header}");
    assert!(!lower.contains("secure;") && !lower.ends_with("secure"), "Secure only when configured: {header}");
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({ "status": "ok" }));

    let images = get_with_cookie(&app, "/api/images", &cookie).await;
    assert_eq!(images.status(), StatusCode::OK);

    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(app.ws_url())
        .expect("ws request");
    request.headers_mut().insert(COOKIE, cookie.parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("websocket with cookie");
    use futures::StreamExt;
    let first = ws.next().await.expect("message").expect("ok");
    assert!(first.to_text().expect("text").starts_with(r#"{"type":"images""#));

    let resp = plain_client().post(app.url("/api/logout")).header(COOKIE, &cookie).send().await.expect("logout");
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, expired) = session_cookie(&resp);
    let expired = expired.to_ascii_lowercase();
    assert!(expired.contains("max-age=0") || expired.contains("expires=thu, 01 jan 1970"), "{expired}");
    // The old cookie is dead server-side, not just forgotten by the browser.
    let after = get_with_cookie(&app, "/api/images", &cookie).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    // And the websocket it opened is closed by the server.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("websocket still open {PATIENCE:?} after logout"),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => break,
            // View updates and pings may still arrive until then.
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test]
async fn login_renews_the_session_key() {
    let lab = lab();
    let app = app_with_password(&lab);
    let (first, _) = session_cookie(&login(&plain_client(), &app, "admin", PASSWORD).await);
    // Logging in again while holding a key must not keep that key (fixation).
    let again = plain_client()
        .post(app.url("/api/login"))
        .header(COOKIE, &first)
        .json(&json!({ "user": "admin", "pass": PASSWORD }))
        .send()
        .await
        .expect("login");
    let (second, _) = session_cookie(&again);
    assert_ne!(first, second);
    assert_eq!(get_with_cookie(&app, "/api/images", &second).await.status(), StatusCode::OK);
    assert_eq!(get_with_cookie(&app, "/api/images", &first).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn session_survives_sigkill_and_restart() {
    let lab = lab();
    let mut app = app_with_password(&lab);
    let resp = login(&plain_client(), &app, "admin", PASSWORD).await;
    let (cookie, _) = session_cookie(&resp);
    app.restart(&lab);
    let images = get_with_cookie(&app, "/api/images", &cookie).await;
    assert_eq!(images.status(), StatusCode::OK);
}

#[tokio::test]
async fn brute_force_is_rate_limited_per_address() {
    let lab = lab();
    let app = app_with_password(&lab);
    let client = plain_client();
    let mut limited = None;
    for _ in 0..30 {
        let resp = login(&client, &app, "admin", "guess").await;
        match resp.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                limited = Some(resp);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let limited = limited.expect("429 within 30 bad logins");
    let retry: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // Even the right password is refused from this address now...
    assert_eq!(login(&client, &app, "admin", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // ...but another client address still logs in.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client on 127.0.0.2");
    let host_url = app.url("/api/login");
    let resp = other.post(&host_url).json(&json!({ "user": "admin", "pass": PASSWORD })).send().await.expect("login");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_bodies_get_clear_4xx_answers() {
    let lab = lab();
    let app = app_with_password(&lab);
    let client = plain_client();
    let url = app.url("/api/login");
    let send = |body: Vec<u8>| client.post(&url).header("content-type", "application/json").body(body).send();

    let resp = send(b"{not json".to_vec()).await.expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.expect("body").starts_with("bad request: invalid JSON body"));

    let resp = send(br#"{"user":"admin"}"#.to_vec()).await.expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.expect("body").contains("missing field `pass`"));

    let resp = send(vec![b' '; 4 * 1024 * 1024]).await.expect("request");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.text().await.expect("body"), "payload too large\n");

    let resp = client.post(&url).body("user=admin").send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused() {
    let lab = lab();
    let app = app_with_password(&lab);
    let resp = plain_client()
        .post(app.url("/api/login"))
        .header(ORIGIN, "http://evil.example")
        .json(&json!({ "user": "admin", "pass": PASSWORD }))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let same = plain_client()
        .post(app.url("/api/login"))
        .header(ORIGIN, format!("http://{}", app.addr))
        .json(&json!({ "user": "admin", "pass": PASSWORD }))
        .send()
        .await
        .expect("request");
    assert_eq!(same.status(), StatusCode::OK);
}

#[tokio::test]
async fn generated_password_is_logged_once_and_works() {
    let lab = lab();
    let mut app = spawn_app_with(&lab, &[("SHIPSHAPE_AUTH", "on")]);
    let log = app.log();
    let line = log.lines().find(|l| l.contains("generated a login password")).expect("password logged");
    let password = line.split("password ").last().and_then(|s| s.split_whitespace().next()).expect("password in line");
    assert!(line.contains("user admin"));
    assert_eq!(login(&plain_client(), &app, "admin", password).await.status(), StatusCode::OK);

    app.restart(&lab);
    assert!(!app.log().contains("generated a login password"), "printed again on restart");
    assert_eq!(login(&plain_client(), &app, "admin", password).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn ready_hash_and_custom_user_are_accepted() {
    let lab = lab();
    let hash = shipshape::auth::hash_password("from-hash").expect("hash");
    let app = spawn_app_with(
        &lab,
        &[("SHIPSHAPE_AUTH", "on"), ("SHIPSHAPE_AUTH_USER", "ops"), ("SHIPSHAPE_AUTH_PASSWORD_HASH", &hash)],
    );
    assert_eq!(login(&plain_client(), &app, "ops", "from-hash").await.status(), StatusCode::OK);
    assert_eq!(login(&plain_client(), &app, "admin", "from-hash").await.status(), StatusCode::UNAUTHORIZED);
    assert!(!app.log().contains(&hash), "hash in the log");
}

#[tokio::test]
async fn auth_off_opens_the_api() {
    let lab = lab();
    let app = spawn_app_with(&lab, &[("SHIPSHAPE_AUTH", "off")]);
    let client = plain_client();
    let status: Value =
        client.get(app.url("/api/auth/status")).send().await.expect("status").json().await.expect("json");
    assert_eq!(status, json!({ "enabled": false }));
    assert_eq!(client.get(app.url("/api/images")).send().await.expect("images").status(), StatusCode::OK);
    assert!(app.log().contains("AUTH IS OFF"));
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let lab = lab();
    let app = spawn_app_with(
        &lab,
        &[
            ("SHIPSHAPE_AUTH", "on"),
            ("SHIPSHAPE_AUTH_PASSWORD", PASSWORD),
            ("SHIPSHAPE_COOKIE_SECURE", "true"),
            ("RUST_LOG", "debug"),
        ],
    );
    let resp = login(&plain_client(), &app, "admin", PASSWORD).await;
    let (_, header) = session_cookie(&resp);
    assert!(header.to_ascii_lowercase().contains("secure"), "{header}");
    let _ = login(&plain_client(), &app, "admin", "another-wrong-one").await;
    let conn = rusqlite::Connection::open(app.data_dir.join("shipshape.db")).expect("db");
    let stored: String = conn
        .query_row("SELECT value FROM settings WHERE key = 'auth_password_hash'", [], |r| r.get(0))
        .expect("hash stored");
    assert!(stored.starts_with("$argon2id$"));
    let log = app.log();
    for secret in [PASSWORD, "another-wrong-one", stored.as_str(), "$argon2"] {
        assert!(!log.contains(secret), "{secret:?} appears in the log:\n{log}");
    }
}
