//! The read side against the real private engine: `GET /api/images`, the
//! websocket, the auto-update flag and every error body of the contract.

mod common;

use std::time::Duration;

use common::{find_container, lab, spawn_app, unique};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// The promise: a started container shows within a second.
const VISIBLE_WITHIN: Duration = Duration::from_secs(1);

#[tokio::test]
async fn started_container_appears_and_stopped_one_disappears() {
    let lab = lab();
    let app = spawn_app(&lab);
    app.wait_images(Duration::from_secs(10), "initial listing", |_| true).await;
    let name = unique("appear");
    let c = lab.run(&name, &lab.base_image, &[]);
    let images = app.wait_images(VISIBLE_WITHIN, "started container", |i| find_container(i, &name).is_some()).await;
    let (group, item) = find_container(&images, &name).expect("listed");
    let expected_image = format!("{}:latest", lab.base_image.trim_end_matches(":latest"));
    assert_eq!(group["image"], expected_image.as_str());
    assert_eq!(item["container_id"], c.short_id());
    assert_eq!(item["container_name"], name.as_str());
    assert_eq!(item["auto_update"], false);
    // The base image was pushed, so the engine knows its registry digest.
    let local = item["local_digest"].as_str().expect("digest string");
    assert!(local.starts_with("sha256:") && local.len() == 17, "{local}");
    let repo_digests = lab.docker(&["image", "inspect", "--format", "{{json .RepoDigests}}", &lab.base_image]);
    assert!(repo_digests.contains(local), "{local} not in {repo_digests}");
    for key in ["image", "remote_digest", "status", "containers"] {
        assert!(group.get(key).is_some(), "group lacks {key}");
    }

    lab.docker(&["stop", "-t", "0", &name]);
    app.wait_images(VISIBLE_WITHIN, "stopped container gone", |i| find_container(i, &name).is_none()).await;
    drop(c);
}

#[tokio::test]
async fn containers_of_one_image_form_one_group_and_tagless_refs_get_latest() {
    let lab = lab();
    let app = spawn_app(&lab);
    // A local tag with no registry and no tag: Docker Hub naming, `:latest` implied.
    let repo = unique("tagless");
    lab.docker(&["tag", &lab.base_image, &repo]);
    let (a, b) = (unique("pair-a"), unique("pair-b"));
    let _ca = lab.run(&a, &repo, &[]);
    let _cb = lab.run(&b, &format!("{repo}:latest"), &[]);
    let images = app
        .wait_images(Duration::from_secs(5), "both containers", |i| {
            find_container(i, &a).is_some() && find_container(i, &b).is_some()
        })
        .await;
    let groups: Vec<&Value> = images.iter().filter(|g| g["image"] == format!("{repo}:latest").as_str()).collect();
    assert_eq!(groups.len(), 1, "one group for {repo}: {images:#?}");
    let names: Vec<&str> = groups[0]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["container_name"].as_str())
        .collect();
    assert_eq!(names, [a.as_str(), b.as_str()]);
    lab.docker(&["rmi", &repo]);
}

#[tokio::test]
async fn containers_from_a_bare_image_id_are_skipped() {
    let lab = lab();
    let app = spawn_app(&lab);
    let id = lab.docker(&["image", "inspect", "--format", "{{.Id}}", &lab.base_image]);
    let (bare, short, marker) = (unique("bare"), unique("bare-short"), unique("marker"));
    let _c1 = lab.run(&bare, &id, &[]);
    let _c2 = lab.run(&short, &id["sha256:".len().."sha256:".len() + 12], &[]);
    // A container started after the bare ones proves the listing has caught up.
    let _c3 = lab.run(&marker, &lab.base_image, &[]);
    let images =
        app.wait_images(Duration::from_secs(5), "marker container", |i| find_container(i, &marker).is_some()).await;
    assert!(find_container(&images, &bare).is_none(), "bare-id container listed: {images:#?}");
    assert!(find_container(&images, &short).is_none(), "short-id container listed: {images:#?}");
    assert!(!images.iter().any(|g| g["image"].as_str().is_some_and(|s| s.starts_with("sha256:"))));
}

#[tokio::test]
async fn websocket_sends_the_view_then_every_change() {
    let lab = lab();
    let app = spawn_app(&lab);
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("websocket connects");
    let first = next_images(&mut ws).await;
    assert!(first.is_array());
    let name = unique("ws");
    let _c = lab.run(&name, &lab.base_image, &[]);
    let deadline = tokio::time::Instant::now() + VISIBLE_WITHIN;
    loop {
        let data = tokio::time::timeout_at(deadline, next_images(&mut ws)).await.expect("images message within 1 s");
        if find_container(data.as_array().expect("array"), &name).is_some() {
            break;
        }
    }
    ws.send(Message::Close(None)).await.expect("close");
}

async fn next_images<S>(ws: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match ws.next().await.expect("stream open").expect("websocket message") {
            Message::Text(text) => {
                let msg: Value = serde_json::from_str(&text).expect("json message");
                assert_eq!(msg["type"], "images", "{msg}");
                return msg["data"].clone();
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected websocket message {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_contract_error_body_is_exact() {
    let lab = lab();
    let app = spawn_app(&lab);
    let name = unique("errors");
    let c = lab.run(&name, &lab.base_image, &[]);
    app.wait_images(Duration::from_secs(5), "container", |i| find_container(i, &name).is_some()).await;
    let id = c.short_id();
    let cases: Vec<(&str, String, u16, String)> = vec![
        ("GET", "/api/images/abc".into(), 400, "bad path: /api/images/abc\n".into()),
        ("POST", "/api/images/abc/update/x".into(), 400, "bad path: /api/images/abc/update/x\n".into()),
        ("GET", "/api/images/".into(), 400, "bad path: /api/images/\n".into()),
        ("POST", format!("/api/images/{id}/restart"), 400, "unknown action\n".into()),
        ("POST", "/api/images/000000000000/auto-update".into(), 404, "container not found\n".into()),
        ("POST", "/api/images/000000000000/update".into(), 404, "container not found\n".into()),
        ("GET", "/api/images/000000000000/progress".into(), 404, "container not found\n".into()),
        ("GET", format!("/api/images/{id}/progress"), 404, "no progress\n".into()),
        ("GET", format!("/api/images/{id}/update"), 405, "method not allowed\n".into()),
        ("GET", format!("/api/images/{id}/auto-update"), 405, "method not allowed\n".into()),
        ("POST", format!("/api/images/{id}/progress"), 405, "method not allowed\n".into()),
        ("POST", "/api/images".into(), 405, "method not allowed\n".into()),
        ("DELETE", "/api/images".into(), 405, "method not allowed\n".into()),
        ("GET", "/api/groups/nginx:latest/update".into(), 405, "method not allowed\n".into()),
        ("POST", "/health".into(), 405, "method not allowed\n".into()),
    ];
    for (method, path, status, body) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = app.client.request(method.clone(), app.url(&path)).send().await.expect("request");
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        assert_eq!(resp.text().await.expect("body"), body, "{method} {path}");
    }
    let health = app.client.get(app.url("/health")).send().await.expect("health");
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.expect("body"), "");
}

#[tokio::test]
async fn auto_update_flag_survives_restart_and_recreate() {
    let lab = lab();
    let mut app = spawn_app(&lab);
    let name = unique("flag");
    let c = lab.run(&name, &lab.base_image, &[]);
    app.wait_images(Duration::from_secs(5), "container", |i| find_container(i, &name).is_some()).await;

    let toggle = |app: &common::TestApp, id: String| {
        let req = app.client.post(app.url(&format!("/api/images/{id}/auto-update")));
        async move {
            let resp = req.send().await.expect("toggle");
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.expect("json")
        }
    };
    assert_eq!(toggle(&app, c.short_id().into()).await, serde_json::json!({"auto_update": true}));
    app.wait_images(Duration::from_secs(2), "flag on", |i| {
        find_container(i, &name).is_some_and(|(_, c)| c["auto_update"] == true)
    })
    .await;

    app.restart(&lab);
    app.wait_images(Duration::from_secs(5), "flag kept over a restart", |i| {
        find_container(i, &name).is_some_and(|(_, c)| c["auto_update"] == true)
    })
    .await;

    // Recreate: same name, new id.
    let old_id = c.id.clone();
    drop(c);
    let c = lab.run(&name, &lab.base_image, &[]);
    assert_ne!(c.id, old_id);
    let images = app
        .wait_images(Duration::from_secs(5), "flag kept over a recreate", |i| {
            find_container(i, &name).is_some_and(|(_, item)| item["container_id"] == c.short_id())
        })
        .await;
    assert_eq!(find_container(&images, &name).map(|(_, c)| c["auto_update"].clone()), Some(Value::Bool(true)));

    assert_eq!(toggle(&app, c.short_id().into()).await, serde_json::json!({"auto_update": false}));
}
