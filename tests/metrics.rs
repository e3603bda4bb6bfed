//! `GET /metrics` read as Prometheus reads it (a text-format parser), against
//! the real binary, the lab's engine and registry.

mod common;

use std::time::{Duration, Instant};

use common::jobs::{build_image, post_update, run, wait_history, Cleanup, JOB_PATIENCE};
use common::{find_container, lab, spawn_app_with, unique, TestApp};
use futures::SinkExt;
use prometheus_parse::{Scrape, Value};
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";
const TOKEN: &str = "scrape-token-0123456789";
/// Long enough for a loaded machine; a passing run never waits it out.
const PATIENCE: Duration = Duration::from_secs(60);

/// The scrape's samples; panics unless the answer is 200 and parses.
async fn scrape(app: &TestApp, client: &reqwest::Client, token: Option<&str>) -> Scrape {
    let mut req = client.get(app.url("/metrics"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = resp.text().await.expect("body");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// The value of the sample `name` whose labels include `labels`; 0 when absent.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map_or(0.0, |s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(_) | Value::Summary(_) => f64::NAN,
        })
}

#[tokio::test]
async fn metrics_need_the_token_or_a_session_when_auth_is_on() {
    let lab = lab();
    let app = spawn_app_with(
        &lab,
        &[("SHIPSHAPE_AUTH", "on"), ("SHIPSHAPE_AUTH_PASSWORD", PASSWORD), ("SHIPSHAPE_METRICS_TOKEN", TOKEN)],
    );
    let plain = common::http_client();
    let status = |resp: reqwest::Response| resp.status().as_u16();
    assert_eq!(status(plain.get(app.url("/metrics")).send().await.expect("GET")), 401);
    assert_eq!(status(plain.get(app.url("/metrics")).bearer_auth("wrong").send().await.expect("GET")), 401);
    let almost = &TOKEN[..TOKEN.len() - 1];
    assert_eq!(status(plain.get(app.url("/metrics")).bearer_auth(almost).send().await.expect("GET")), 401);
    assert_eq!(status(plain.get(app.url("/metrics")).basic_auth("admin", Some(TOKEN)).send().await.expect("GET")), 401);
    // The notification test is behind the session like the rest of /api, token or not.
    assert_eq!(status(plain.post(app.url("/api/notify/test")).bearer_auth(TOKEN).send().await.expect("POST")), 401);

    let scraped = scrape(&app, &plain, Some(TOKEN)).await;
    assert!(scraped.docs.contains_key("shipshape_updates"), "{:?}", scraped.docs.keys());
    assert_eq!(value(&scraped, "shipshape_updates_total", &[("result", "updated")]), 0.0);

    // A logged-in browser may look too.
    let login = app
        .client
        .post(app.url("/api/login"))
        .json(&json!({ "user": "admin", "pass": PASSWORD }))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200);
    scrape(&app, &app.client, None).await;
    assert!(!app.log().contains(TOKEN), "the token is logged");
}

#[tokio::test]
async fn metrics_are_open_with_auth_off_and_move_with_checks_updates_and_websockets() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}/metrics/{}:v1", lab.registry, unique("app"));
    cleanup.images.push(image.clone());
    build_image(&lab, &image, r#"CMD ["sleep", "100000"]"#, false);
    let name = unique("metrics-app");
    cleanup.containers.push(name.clone());
    let id = run(&lab, &name, &["--network", "none", "--stop-timeout", "1", &image]);
    let app = spawn_app_with(&lab, &[]);
    let client = common::http_client();
    app.wait_images(PATIENCE, "container checked", |i| {
        find_container(i, &name).is_some_and(|(_, c)| c["status"] == "uptodate")
    })
    .await;

    let before = scrape(&app, &client, None).await;
    assert_eq!(value(&before, "shipshape_engine_connected", &[]), 1.0);
    assert!(value(&before, "shipshape_containers", &[("status", "uptodate")]) >= 1.0);

    build_image(&lab, &image, r#"CMD ["sleep", "100001"]"#, true);
    app.check_now().await;
    let checked = scrape(&app, &client, None).await;
    let registry = [("registry", lab.registry.as_str()), ("result", "2xx")];
    for (name, labels) in [
        ("shipshape_images_checked_total", &[("result", "ok")][..]),
        ("shipshape_check_duration_seconds_count", &[][..]),
        ("shipshape_registry_requests_total", &registry[..]),
    ] {
        assert!(value(&checked, name, labels) > value(&before, name, labels), "{name} {labels:?} did not move");
    }
    assert!(value(&checked, "shipshape_containers", &[("status", "outdated")]) >= 1.0);

    post_update(&app, &id[..12]).await;
    wait_history(&app, &name, 1, JOB_PATIENCE).await;
    let updated = scrape(&app, &client, None).await;
    assert_eq!(
        value(&updated, "shipshape_updates_total", &[("result", "updated")]),
        value(&before, "shipshape_updates_total", &[("result", "updated")]) + 1.0
    );
    assert_eq!(
        value(&updated, "shipshape_update_duration_seconds_count", &[]),
        value(&before, "shipshape_update_duration_seconds_count", &[]) + 1.0
    );

    // An open websocket counts while it is open.
    let base = value(&updated, "shipshape_websocket_clients", &[]);
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("websocket");
    wait_gauge(&app, &client, "shipshape_websocket_clients", base + 1.0).await;
    ws.close(None).await.expect("close");
    let _ = ws.flush().await;
    drop(ws);
    wait_gauge(&app, &client, "shipshape_websocket_clients", base).await;
}

async fn wait_gauge(app: &TestApp, client: &reqwest::Client, name: &str, expected: f64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = value(&scrape(app, client, None).await, name, &[]);
        if got == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{name} stayed {got}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
