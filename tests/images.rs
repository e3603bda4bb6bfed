//! The read side against the real private engine: `GET /api/images`, the
//! websocket, the auto-update flag and every error body of the contract.

mod common;

use std::time::Duration;

use common::{find_container, lab, spawn_app, unique, ContainerGuard};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Long enough for a loaded machine; a passing run never waits it out.
/// How fast changes show is measured by scripts/bench-events, not here.
const PATIENCE: Duration = Duration::from_secs(30);
/// The view goes out at most once per this interval (changes in between are
/// sent together).
const COALESCED: Duration = Duration::from_millis(50);

#[tokio::test]
async fn started_container_appears_and_stopped_one_disappears() {
    let lab = lab();
    // Running before the service starts: once it shows, the first listing is
    // in, and what follows can only arrive through the event stream.
    let before = unique("listed");
    let _before = lab.run(&before, &lab.base_image, &[]);
    let app = spawn_app(&lab);
    app.wait_images(PATIENCE, "initial listing", |i| find_container(i, &before).is_some()).await;
    let name = unique("appear");
    let c = lab.run(&name, &lab.base_image, &[]);
    let images = app.wait_images(PATIENCE, "started container", |i| find_container(i, &name).is_some()).await;
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
    app.wait_images(PATIENCE, "stopped container gone", |i| find_container(i, &name).is_none()).await;
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
        .wait_images(PATIENCE, "both containers", |i| {
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
    let images = app.wait_images(PATIENCE, "marker container", |i| find_container(i, &marker).is_some()).await;
    assert!(find_container(&images, &bare).is_none(), "bare-id container listed: {images:#?}");
    assert!(find_container(&images, &short).is_none(), "short-id container listed: {images:#?}");
    assert!(!images.iter().any(|g| g["image"].as_str().is_some_and(|s| s.starts_with("sha256:"))));
}

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The `images` messages of one websocket, kept in order. Every message is
/// checked against the one before: an unchanged view must never be sent again.
struct Feed {
    ws: WsStream,
    seen: Vec<Vec<Value>>,
}

impl Feed {
    async fn connect(url: String) -> Feed {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        Feed { ws, seen: Vec::new() }
    }

    async fn next(&mut self, deadline: Instant, what: &str) -> Vec<Value> {
        let data = tokio::time::timeout_at(deadline, next_images(&mut self.ws)).await.unwrap_or_else(|_| {
            panic!("{what}: no websocket message within {PATIENCE:?}; last: {:#?}", self.seen.last())
        });
        let data = data.as_array().cloned().unwrap_or_else(|| panic!("images data is not an array: {data}"));
        if let Some(previous) = self.seen.last() {
            assert_ne!(previous, &data, "message {} repeats an unchanged view", self.seen.len());
        }
        self.seen.push(data.clone());
        data
    }

    /// Reads messages until one satisfies `pred`; returns it.
    async fn until(&mut self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let data = self.next(deadline, what).await;
            if pred(&data) {
                return data;
            }
        }
    }
}

/// Starts `names` at once (one thread each), from the base image.
fn run_all(lab: &common::Lab, names: &[String]) -> Vec<ContainerGuard> {
    std::thread::scope(|s| {
        let started: Vec<_> = names.iter().map(|n| s.spawn(move || lab.run(n, &lab.base_image, &[]))).collect();
        started.into_iter().map(|t| t.join().expect("docker run thread")).collect()
    })
}

#[tokio::test]
async fn websocket_sends_the_view_then_changes_coalesced_and_never_an_unchanged_view() {
    const BURST: usize = 16;
    let lab = lab();
    let burst: Vec<String> = (0..BURST).map(|i| unique(&format!("burst{i}"))).collect();
    let survivor = unique("survivor");
    let _burst = run_all(&lab, &burst);
    let _survivor = lab.run(&survivor, &lab.base_image, &[]);
    let app = spawn_app(&lab);
    let mut feed = Feed::connect(app.ws_url()).await;
    let all_there = |v: &[Value]| burst.iter().chain([&survivor]).all(|n| find_container(v, n).is_some());
    feed.until("every container listed", all_there).await;

    // A change of the engine that changes nothing in the view (a container of
    // a bare image id is not listed) sends nothing: the next message is the
    // one with the container started after it, never the same view again.
    let id = lab.docker(&["image", "inspect", "--format", "{{.Id}}", &lab.base_image]);
    let unlisted = unique("unlisted");
    let _unlisted = lab.run(&unlisted, &id, &[]);
    let marker = unique("marker");
    let _marker = lab.run(&marker, &lab.base_image, &[]);
    let view = feed.until("container started after the unlisted one", |v| find_container(v, &marker).is_some()).await;
    assert!(find_container(&view, &unlisted).is_none(), "bare-id container listed: {view:#?}");

    // Many engine changes in quick succession: the burst containers' processes
    // are killed together (as by the OOM killer). The view is published at
    // most once per 50 ms, so the websocket tells of the burst in fewer
    // messages than there were changes.
    let mut inspect = vec!["inspect", "--format", "{{.State.Pid}}"];
    inspect.extend(burst.iter().map(String::as_str));
    let pids = lab.docker(&inspect);
    let pids: Vec<&str> = pids.split_whitespace().collect();
    assert_eq!(pids.len(), BURST, "{pids:?}");
    let before = feed.seen.len();
    let killed = Instant::now();
    let out = std::process::Command::new("kill").arg("-KILL").args(&pids).output().expect("kill runs");
    assert!(out.status.success(), "kill {pids:?}: {}", String::from_utf8_lossy(&out.stderr));
    let last = feed.until("every burst container gone", |v| burst.iter().all(|n| find_container(v, n).is_none())).await;
    let window = killed.elapsed();
    // Count only messages that changed how many burst containers are listed:
    // containers of tests running alongside change the view too.
    let mut listed = BURST;
    let mut steps = 0;
    for view in &feed.seen[before..] {
        let now = burst.iter().filter(|n| find_container(view, n).is_some()).count();
        if now != listed {
            steps += 1;
            listed = now;
        }
    }
    assert!(steps < BURST, "{BURST} containers died at once and {steps} messages told of it");
    // Sharper, and sound however loaded the machine: every message of the
    // burst was published inside `window`, at least 50 ms after the one before.
    let most = 1 + (window.as_millis() / COALESCED.as_millis()) as usize;
    assert!(steps <= most, "{steps} messages told of the burst within {window:?}: more than one per {COALESCED:?}");
    // The final state is right: the burst gone, nothing else lost.
    for name in [&survivor, &marker] {
        assert!(find_container(&last, name).is_some(), "{name} missing after the burst: {last:#?}");
    }
    let images = app.images().await;
    assert!(burst.iter().all(|n| find_container(&images, n).is_none()), "{images:#?}");
    assert!(find_container(&images, &survivor).is_some(), "{images:#?}");
    feed.ws.send(Message::Close(None)).await.expect("close");
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
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
    let id = c.short_id();
    // Shaped like a group of the lab, but nothing runs it.
    let unknown_group = format!("{}/nosuch/{}:latest", lab.registry, unique("image"));
    // The contract's words, as they stand: the path is not echoed back.
    const BAD_PATH: &str = "bad path: /api/images/{id}/{action}\n";
    let cases: Vec<(&str, String, u16, String)> = vec![
        ("GET", "/api/images/abc".into(), 400, BAD_PATH.into()),
        ("POST", "/api/images/abc/update/x".into(), 400, BAD_PATH.into()),
        ("GET", "/api/images/".into(), 400, BAD_PATH.into()),
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
        ("POST", format!("/api/groups/{unknown_group}/update"), 404, "image not found\n".into()),
        ("POST", format!("/api/groups/{}/update", unique("nosuch")), 404, "image not found\n".into()),
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
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;

    let toggle = |app: &common::TestApp, id: String| {
        let req = app.client.post(app.url(&format!("/api/images/{id}/auto-update")));
        async move {
            let resp = req.send().await.expect("toggle");
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.expect("json")
        }
    };
    assert_eq!(toggle(&app, c.short_id().into()).await, serde_json::json!({"auto_update": true}));
    app.wait_images(PATIENCE, "flag on", |i| find_container(i, &name).is_some_and(|(_, c)| c["auto_update"] == true))
        .await;

    app.restart(&lab);
    app.wait_images(PATIENCE, "flag kept over a restart", |i| {
        find_container(i, &name).is_some_and(|(_, c)| c["auto_update"] == true)
    })
    .await;

    // Recreate: same name, new id.
    let old_id = c.id.clone();
    drop(c);
    let c = lab.run(&name, &lab.base_image, &[]);
    assert_ne!(c.id, old_id);
    let images = app
        .wait_images(PATIENCE, "flag kept over a recreate", |i| {
            find_container(i, &name).is_some_and(|(_, item)| item["container_id"] == c.short_id())
        })
        .await;
    assert_eq!(find_container(&images, &name).map(|(_, c)| c["auto_update"].clone()), Some(Value::Bool(true)));

    assert_eq!(toggle(&app, c.short_id().into()).await, serde_json::json!({"auto_update": false}));
}

/// The contract shows 12-character ids; the routes take any prefix of the
/// full id from 12 characters up to all 64, and nothing shorter, longer or
/// differently spelt.
#[tokio::test]
async fn container_routes_take_id_prefixes_of_12_to_64_chars_and_nothing_else() {
    let lab = lab();
    let app = spawn_app(&lab);
    let name = unique("ids");
    let c = lab.run(&name, &lab.base_image, &[]);
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
    let full = c.id.clone();
    assert_eq!(full.len(), 64, "{full}");

    let post = |path: String| app.client.post(app.url(&path)).send();
    let mut expected = false;
    for len in [12, 13, 40, 63, 64] {
        let id = &full[..len];
        expected = !expected;
        let resp = post(format!("/api/images/{id}/auto-update")).await.expect("toggle");
        assert_eq!(resp.status(), 200, "{len}-char id");
        assert_eq!(resp.json::<Value>().await.expect("json"), serde_json::json!({ "auto_update": expected }));
        let resp = app.client.get(app.url(&format!("/api/images/{id}/progress"))).send().await.expect("progress");
        assert_eq!(resp.status(), 404, "{len}-char id");
        assert_eq!(resp.text().await.expect("body"), "no progress\n", "{len}-char id: found, no update running");
    }
    app.wait_images(PATIENCE, "the flag as last toggled", |i| {
        find_container(i, &name).is_some_and(|(_, c)| c["auto_update"] == expected)
    })
    .await;

    let last = full.chars().last().expect("id");
    let other_last = if last == '0' { '1' } else { '0' };
    let mut not_found = vec![full[..11].to_string(), format!("{full}0"), format!("{}{other_last}", &full[..63])];
    if full[..12].to_uppercase() != full[..12] {
        not_found.push(full[..12].to_uppercase());
    }
    for id in not_found {
        let resp = post(format!("/api/images/{id}/auto-update")).await.expect("toggle");
        assert_eq!(resp.status(), 404, "id {id}");
        assert_eq!(resp.text().await.expect("body"), "container not found\n", "id {id}");
        let resp = app.client.get(app.url(&format!("/api/images/{id}/progress"))).send().await.expect("progress");
        assert_eq!(resp.status(), 404, "id {id}");
        assert_eq!(resp.text().await.expect("body"), "container not found\n", "id {id}");
    }
    // None of those touched the flag.
    let images = app.images().await;
    assert_eq!(find_container(&images, &name).map(|(_, c)| c["auto_update"].clone()), Some(Value::Bool(expected)));
}
