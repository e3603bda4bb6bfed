//! The error answers beyond the contract's table (tests/images.rs has
//! those): login, origin, size and rate refusals, byte for byte.

mod common;

use common::{lab, spawn_app_with, TestApp};
use reqwest::header::{CONTENT_TYPE, ORIGIN, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";
/// `shipshape::http::BODY_LIMIT`: request bodies above it are refused.
const BODY_LIMIT: usize = 16 * 1024;

fn app(lab: &common::Lab) -> TestApp {
    spawn_app_with(lab, &[("SHIPSHAPE_AUTH", "on"), ("SHIPSHAPE_AUTH_PASSWORD", PASSWORD)])
}

/// Status, body, and that the body is plain text.
async fn answer(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = resp.text().await.expect("body");
    assert!(content_type.starts_with("text/plain"), "{status} {body:?} came as {content_type:?}");
    (status, body)
}

#[tokio::test]
async fn unauthorized_invalid_credentials_cross_origin_and_too_large_bodies_are_exact() {
    let lab = lab();
    let app = app(&lab);
    let client = common::http_client();

    let resp = client.get(app.url("/api/images")).send().await.expect("request");
    assert_eq!(answer(resp).await, (401, "unauthorized\n".to_string()));

    let resp = client.post(app.url("/api/login")).json(&json!({"user": "admin", "pass": "not the password"}));
    assert_eq!(answer(resp.send().await.expect("login")).await, (401, "invalid credentials\n".to_string()));

    // The right password, from a page of another origin.
    let resp = client
        .post(app.url("/api/login"))
        .header(ORIGIN, "http://evil.example")
        .json(&json!({"user": "admin", "pass": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(answer(resp).await, (403, "cross-origin request refused\n".to_string()));

    // One byte over the limit is refused for its size; at the limit, for its content.
    let body = |len: usize| format!("{{\"user\":\"admin\",\"pass\":\"{}\"}}", "x".repeat(len - 26));
    assert_eq!(body(BODY_LIMIT).len(), BODY_LIMIT);
    let post =
        |len: usize| client.post(app.url("/api/login")).header(CONTENT_TYPE, "application/json").body(body(len)).send();
    assert_eq!(answer(post(BODY_LIMIT + 1).await.expect("login")).await, (413, "payload too large\n".to_string()));
    let (status, text) = answer(post(BODY_LIMIT).await.expect("login")).await;
    assert_eq!((status, text.as_str()), (401, "invalid credentials\n"), "a body at the limit is read");
}

#[tokio::test]
async fn too_many_failed_logins_answer_429_with_the_wait_in_body_and_header() {
    let lab = lab();
    let app = app(&lab);
    let client = common::http_client();
    let mut refused = None;
    for _ in 0..30 {
        let resp = client
            .post(app.url("/api/login"))
            .json(&json!({"user": "admin", "pass": "guess"}))
            .send()
            .await
            .expect("login");
        match resp.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                refused = Some(resp);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let resp = refused.expect("429 within 30 failed logins");
    let retry: u64 = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let (status, body) = answer(resp).await;
    assert_eq!((status, body), (429, format!("too many login attempts; retry in {retry}s\n")));
}
