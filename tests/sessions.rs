//! Session lifetime against the real service: a session past its TTL is
//! refused, and the sweep removes it from the database.

mod common;

use std::time::{Duration, Instant};

use common::{lab, spawn_app_with, TestApp};
use futures::StreamExt;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Long enough for a loaded machine; a passing run never waits it out.
const PATIENCE: Duration = Duration::from_secs(30);
const PASSWORD: &str = "correct horse battery staple";
/// Short, but long enough that a request right after login is well inside it.
const TTL_SECS: u64 = 4;

async fn login(app: &TestApp) -> String {
    let resp = common::login_ok(app, PASSWORD).await;
    let (cookie, header) = common::session_cookie(&resp);
    let max_age = header
        .split(';')
        .find_map(|part| part.trim().to_ascii_lowercase().strip_prefix("max-age=").map(str::to_string))
        .expect("a persistent cookie has Max-Age");
    assert_eq!(max_age, TTL_SECS.to_string(), "{header}");
    cookie
}

async fn images_status(app: &TestApp, cookie: &str) -> StatusCode {
    common::http_client().get(app.url("/api/images")).header(COOKIE, cookie).send().await.expect("request").status()
}

/// How many sessions the service's database holds.
fn stored_sessions(app: &TestApp) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        app.data_dir.join("shipshape.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the service's database");
    conn.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0)).expect("count sessions")
}

#[tokio::test]
async fn a_session_past_its_ttl_is_refused_and_swept() {
    let lab = lab();
    let ttl = format!("{TTL_SECS}s");
    let mut app = spawn_app_with(
        &lab,
        &[
            ("SHIPSHAPE_AUTH", "on"),
            ("SHIPSHAPE_AUTH_PASSWORD", PASSWORD),
            ("SHIPSHAPE_SESSION_TTL", &ttl),
            // The websocket re-checks its session at every ping.
            ("SHIPSHAPE_WS_PING_INTERVAL", "1s"),
        ],
    );
    let logged_in = Instant::now();
    let cookie = login(&app).await;
    assert_eq!(images_status(&app, &cookie).await, StatusCode::OK, "a fresh session works");
    assert_eq!(stored_sessions(&app), 1);
    let mut request = app.ws_url().into_client_request().expect("ws request");
    request.headers_mut().insert(COOKIE, cookie.parse().expect("cookie header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("websocket with a fresh session");
    // Read all along, so every ping is answered: the server may close the
    // socket only because its session ended. Answers when it closed.
    let ws_closed = tokio::spawn(async move {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Instant::now(),
                Some(Ok(_)) => {}
            }
        }
    });

    // Past the TTL the cookie opens nothing, however often it is shown.
    let deadline = Instant::now() + PATIENCE;
    while images_status(&app, &cookie).await == StatusCode::OK {
        assert!(Instant::now() < deadline, "session still valid {:?} after login", logged_in.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        logged_in.elapsed() >= Duration::from_secs(TTL_SECS - 1),
        "session refused after {:?}, before its TTL",
        logged_in.elapsed()
    );
    assert_eq!(images_status(&app, &cookie).await, StatusCode::UNAUTHORIZED);
    // The websocket opened with it is closed by the server, and not before.
    let closed = tokio::time::timeout(PATIENCE, ws_closed)
        .await
        .unwrap_or_else(|_| panic!("websocket still open {PATIENCE:?} after its session expired"))
        .expect("websocket reader");
    let open_for = closed.duration_since(logged_in);
    assert!(open_for > Duration::from_secs(TTL_SECS - 1), "websocket closed {open_for:?} after login");

    // The sweep runs when the service starts (and every few minutes after):
    // a restart removes the expired row.
    app.restart(&lab);
    let deadline = Instant::now() + PATIENCE;
    while stored_sessions(&app) != 0 {
        assert!(Instant::now() < deadline, "expired session still stored after the sweep");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(images_status(&app, &cookie).await, StatusCode::UNAUTHORIZED);
    // And a new login works as before.
    let fresh = login(&app).await;
    assert_eq!(images_status(&app, &fresh).await, StatusCode::OK);
}
