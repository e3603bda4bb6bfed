//! Fitting existing setups, against the real service and the lab's engine:
//! Watchtower-compatible labels and scopes, the update window, the engine's
//! connection state, a changed DOCKER_CONFIG, sliding sessions.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::engine_proxy::EngineProxy;
use common::jobs::{
    encode_image, history, lab_image, only_one_running, post_group_update, wait_history, Cleanup, JOB_PATIENCE,
};
use common::{find_container, lab, spawn_app_with, unique, Lab, TestApp};
use futures::StreamExt;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Long enough for a loaded machine; a passing run never waits it out.
const PATIENCE: Duration = Duration::from_secs(60);
const QUICK_VERIFY: (&str, &str) = ("SHIPSHAPE_VERIFY_TIMEOUT", "1s");

fn repo(lab: &Lab, what: &str) -> String {
    format!("{}/ops/{}", lab.registry, unique(what))
}

/// A sleeping container without network, with these labels; returns its full id.
fn run_labelled(lab: &Lab, name: &str, image: &str, labels: &[&str], extra: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name, "--network", "none", "--stop-timeout", "1"];
    for l in labels {
        args.extend(["--label", l]);
    }
    args.extend_from_slice(extra);
    args.extend([image, "sleep", "100000"]);
    lab.docker(&args)
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, String) {
    let resp = app.client.get(app.url(path)).send().await.expect("GET");
    let status = resp.status();
    (status, resp.text().await.expect("body"))
}

async fn post(app: &TestApp, path: &str) -> (StatusCode, String) {
    let resp = app.client.post(app.url(path)).send().await.expect("POST");
    let status = resp.status();
    (status, resp.text().await.expect("body"))
}

async fn images_all(app: &TestApp) -> Vec<Value> {
    let (status, body) = get(app, "/api/images?all=1").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

// ------------------------------------------------------------------ labels and scope

#[tokio::test]
async fn labels_exclude_and_scopes_keep_instances_apart() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = lab.base_image.clone();
    let (blue, red) = (unique("blue"), unique("red"));
    let n = |what: &str| unique(&format!("ops-{what}"));
    let (excluded, wt_excluded, monitored, plain, in_blue, in_red, opted_in) =
        (n("excl"), n("wtexcl"), n("mon"), n("plain"), n("blue"), n("red"), n("optin"));
    cleanup
        .containers
        .extend([&excluded, &wt_excluded, &monitored, &plain, &in_blue, &in_red, &opted_in].map(|s| s.to_string()));
    run_labelled(&lab, &excluded, &image, &["shipshape.enable=false"], &[]);
    run_labelled(&lab, &wt_excluded, &image, &["com.centurylinklabs.watchtower.enable=false"], &[]);
    run_labelled(&lab, &monitored, &image, &["com.centurylinklabs.watchtower.monitor-only=true"], &[]);
    run_labelled(&lab, &plain, &image, &[], &[]);
    let blue_id = run_labelled(&lab, &in_blue, &image, &[&format!("shipshape.scope={blue}")], &[]);
    let red_id = run_labelled(&lab, &in_red, &image, &[&format!("com.centurylinklabs.watchtower.scope={red}")], &[]);
    run_labelled(&lab, &opted_in, &image, &["com.centurylinklabs.watchtower.enable=true"], &[]);

    // Unscoped: every container, as Watchtower without --scope; excluded ones only with ?all=1.
    let all = spawn_app_with(&lab, &[]);
    let images = all
        .wait_images(PATIENCE, "the plain ones listed", |i| {
            [&plain, &monitored, &in_blue, &in_red].iter().all(|c| find_container(i, c).is_some())
        })
        .await;
    assert!(find_container(&images, &excluded).is_none() && find_container(&images, &wt_excluded).is_none());
    let (_, item) = find_container(&images, &monitored).expect("listed");
    assert_eq!(item["monitor_only"], true);
    assert!(item.get("excluded").is_none(), "{item}");
    let (_, item) = find_container(&images, &plain).expect("listed");
    assert!(item.get("monitor_only").is_none() && item.get("excluded").is_none(), "{item}");
    let everything = images_all(&all).await;
    for name in [&excluded, &wt_excluded] {
        let (_, item) = find_container(&everything, name).unwrap_or_else(|| panic!("{name} with ?all=1"));
        assert_eq!(item["excluded"], true, "{item}");
    }

    // Two scoped instances on one engine: each sees only its own.
    let a = spawn_app_with(&lab, &[("SHIPSHAPE_SCOPE", &blue)]);
    let b = spawn_app_with(&lab, &[("SHIPSHAPE_SCOPE", &red)]);
    a.wait_images(PATIENCE, "blue's container", |i| find_container(i, &in_blue).is_some()).await;
    b.wait_images(PATIENCE, "red's container", |i| find_container(i, &in_red).is_some()).await;
    for (app, own, other) in [(&a, &in_blue, &in_red), (&b, &in_red, &in_blue)] {
        let everything = images_all(app).await;
        let names: Vec<&str> = everything
            .iter()
            .flat_map(|g| g["containers"].as_array().into_iter().flatten())
            .filter_map(|c| c["container_name"].as_str())
            .collect();
        assert_eq!(names, [own.as_str()], "an instance lists only its scope, even with ?all=1");
        assert!(find_container(&everything, other).is_none());
    }
    // Neither can act on the other's container.
    for (app, id) in [(&a, &red_id), (&b, &blue_id)] {
        for action in ["update", "auto-update"] {
            let (status, body) = post(app, &format!("/api/images/{}/{action}", &id[..12])).await;
            assert_eq!((status.as_u16(), body.as_str()), (404, "container not found\n"), "{action}");
        }
    }

    // Opt-in: only containers labelled enable=true.
    let opt_in = spawn_app_with(&lab, &[("SHIPSHAPE_LABEL_ENABLE", "true")]);
    let images = opt_in.wait_images(PATIENCE, "the opted-in one", |i| find_container(i, &opted_in).is_some()).await;
    assert!(find_container(&images, &plain).is_none(), "not opted in: left out");
    let everything = images_all(&opt_in).await;
    assert_eq!(find_container(&everything, &plain).map(|(_, c)| c["excluded"].clone()), Some(json!(true)));
    let (_, settings) = get(&opt_in, "/api/settings").await;
    let settings: Value = serde_json::from_str(&settings).expect("settings json");
    assert_eq!(settings["label_enable"], true);
    assert_eq!(settings["scope"], Value::Null);

    // `shipshape check` obeys the same filter.
    let check = common::check_json(&lab, &[("SHIPSHAPE_SCOPE", &blue)]);
    let names: Vec<String> = check
        .iter()
        .flat_map(|g| g["containers"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["container_name"].as_str().map(String::from))
        .collect();
    assert_eq!(names, std::slice::from_ref(&in_blue), "check in scope {blue}");
    let check = common::check_json(&lab, &[]);
    assert!(find_container(&check, &plain).is_some() && find_container(&check, &in_red).is_some());
    assert!(find_container(&check, &excluded).is_none() && find_container(&check, &wt_excluded).is_none());
}

#[tokio::test]
async fn monitor_only_is_refused_alone_and_skipped_in_a_group() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "monitor"));
    cleanup.images.push(image.clone());
    lab_image(&lab, &image, "monitor one", false);
    let (monitored, plain) = (unique("ops-mon"), unique("ops-mon-plain"));
    cleanup.containers.extend([monitored.clone(), plain.clone()]);
    let monitored_id = run_labelled(&lab, &monitored, &image, &["shipshape.monitor-only=true"], &[]);
    let plain_id = run_labelled(&lab, &plain, &image, &[], &[]);
    lab_image(&lab, &image, "monitor two", true);
    let app = spawn_app_with(&lab, &[QUICK_VERIFY]);
    app.wait_images(PATIENCE, "both listed", |i| {
        find_container(i, &monitored).is_some() && find_container(i, &plain).is_some()
    })
    .await;
    app.check_now().await;
    let images = app.images().await;
    let (_, item) = find_container(&images, &monitored).expect("listed");
    assert_eq!((item["status"].as_str(), item["monitor_only"].as_bool()), (Some("outdated"), Some(true)), "{item}");

    let (status, body) = post(&app, &format!("/api/images/{}/update", &monitored_id[..12])).await;
    assert_eq!((status.as_u16(), body.as_str()), (409, "monitor only\n"));

    post_group_update(&app, &encode_image(&image)).await;
    let entries = wait_history(&app, &plain, 1, JOB_PATIENCE).await;
    assert_eq!(entries[0]["result"], "updated", "{entries:#?}\n{}", app.log());
    assert_ne!(only_one_running(&lab, &plain), plain_id);
    let skipped = wait_history(&app, &monitored, 1, JOB_PATIENCE).await;
    assert_eq!(skipped[0]["result"], "unchanged", "{skipped:#?}");
    assert_eq!(skipped[0]["error"], "monitor only: not updated", "{skipped:#?}");
    assert_eq!(only_one_running(&lab, &monitored), monitored_id, "the monitor-only container is untouched");
}

/// Start events of these container ids since `since`, in the order the engine sent them.
fn start_order(lab: &Lab, since: u64, ids: &[&str]) -> Vec<String> {
    let until = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 1;
    let out = lab.docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=container",
        "--filter",
        "event=start",
        "--format",
        "{{.Actor.ID}}",
    ]);
    out.lines().filter(|id| ids.contains(id)).map(String::from).collect()
}

#[tokio::test]
async fn dependencies_go_first_and_dependants_are_restarted_after_them() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "deps"));
    cleanup.images.push(image.clone());
    lab_image(&lab, &image, "deps one", false);
    // By name the app would go first; it depends on the db, so the db does.
    let stem = unique("ops-deps");
    let (app_name, db, web) = (format!("{stem}-a-app"), format!("{stem}-b-db"), format!("{stem}-c-web"));
    cleanup.containers.extend([app_name.clone(), db.clone(), web.clone()]);
    let app_old =
        run_labelled(&lab, &app_name, &image, &[&format!("com.centurylinklabs.watchtower.depends-on={db}")], &[]);
    let db_old = run_labelled(&lab, &db, &image, &[], &[]);
    // Another image, depending on the db: restarted after it, not recreated.
    let web_id = run_labelled(&lab, &web, &lab.base_image, &[&format!("shipshape.depends-on={db}")], &[]);
    lab_image(&lab, &image, "deps two", true);
    let app = spawn_app_with(&lab, &[QUICK_VERIFY]);
    app.wait_images(PATIENCE, "all three", |i| [&app_name, &db, &web].iter().all(|n| find_container(i, n).is_some()))
        .await;
    let since = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()).saturating_sub(1);
    post_group_update(&app, &encode_image(&image)).await;
    for name in [&app_name, &db] {
        let entries = wait_history(&app, name, 1, JOB_PATIENCE).await;
        assert_eq!(entries[0]["result"], "updated", "{name}: {entries:#?}\n{}", app.log());
    }
    let (app_new, db_new) = (only_one_running(&lab, &app_name), only_one_running(&lab, &db));
    assert!(app_new != app_old && db_new != db_old);
    // The web container's own first start may fall inside `since`'s second:
    // what counts is a start after the db's.
    let at = |order: &[String], id: &str| order.iter().rposition(|o| o == id);
    let deadline = Instant::now() + PATIENCE;
    let order = loop {
        let order = start_order(&lab, since, &[&app_new, &db_new, &web_id]);
        let restarted = match (at(&order, &db_new), at(&order, &web_id)) {
            (Some(db_at), Some(web_at)) => web_at > db_at,
            _ => false,
        };
        if restarted && at(&order, &app_new).is_some() {
            break order;
        }
        assert!(Instant::now() < deadline, "start events: {order:?}\n{}", app.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(at(&order, &db_new) < at(&order, &app_new), "the db starts before the app that depends on it: {order:?}");
    assert_eq!(only_one_running(&lab, &web), web_id, "restarted, not recreated");
}

// ------------------------------------------------------------------ update window

/// `HH:MM-HH:MM` from `from` to `to` minutes after now, UTC.
fn window_from_now(from: i64, to: i64) -> String {
    let now = (SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) / 60 % 1440) as i64;
    let hm = |m: i64| {
        let m = (now + m).rem_euclid(1440);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    format!("{}-{}", hm(from), hm(to))
}

#[tokio::test]
async fn automatic_updates_start_only_inside_the_window() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let (closed_image, open_image) = (format!("{}:v1", repo(&lab, "closed")), format!("{}:v1", repo(&lab, "open")));
    cleanup.images.extend([closed_image.clone(), open_image.clone()]);
    lab_image(&lab, &closed_image, "closed one", false);
    lab_image(&lab, &open_image, "open one", false);
    let (closed, open) = (unique("ops-closed"), unique("ops-open"));
    cleanup.containers.extend([closed.clone(), open.clone()]);
    // Each instance has a scope of its own, so only it may act on its container.
    let (closed_scope, open_scope) = (unique("closed"), unique("open"));
    let closed_id = run_labelled(&lab, &closed, &closed_image, &[&format!("shipshape.scope={closed_scope}")], &[]);
    let open_id = run_labelled(&lab, &open, &open_image, &[&format!("shipshape.scope={open_scope}")], &[]);
    let closed_window = window_from_now(120, 180);
    let open_window = window_from_now(-30, 90);
    let poll = ("SHIPSHAPE_POLL_INTERVAL", "2s");
    let closed_app = spawn_app_with(
        &lab,
        &[QUICK_VERIFY, poll, ("SHIPSHAPE_SCOPE", &closed_scope), ("SHIPSHAPE_AUTO_UPDATE_WINDOW", &closed_window)],
    );
    let open_app = spawn_app_with(
        &lab,
        &[QUICK_VERIFY, poll, ("SHIPSHAPE_SCOPE", &open_scope), ("SHIPSHAPE_AUTO_UPDATE_WINDOW", &open_window)],
    );
    let (_, settings) = get(&closed_app, "/api/settings").await;
    let settings: Value = serde_json::from_str(&settings).expect("json");
    assert_eq!(settings["auto_update_window"], closed_window.as_str(), "{settings}");
    assert_eq!(settings["scope"], closed_scope.as_str());
    for (app, name, id) in [(&closed_app, &closed, &closed_id), (&open_app, &open, &open_id)] {
        app.wait_images(PATIENCE, "listed", |i| find_container(i, name).is_some()).await;
        let (status, body) = post(app, &format!("/api/images/{}/auto-update", &id[..12])).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, r#"{"auto_update":true}"#));
    }
    lab_image(&lab, &closed_image, "closed two", true);
    lab_image(&lab, &open_image, "open two", true);

    let entries = wait_history(&open_app, &open, 1, JOB_PATIENCE).await;
    assert_eq!(entries[0]["result"], "updated", "{entries:#?}\n{}", open_app.log());
    // The closed one saw the new version, poll after poll, and started nothing.
    closed_app
        .wait_images(PATIENCE, "outdated outside the window", |i| {
            find_container(i, &closed).is_some_and(|(_, c)| c["status"] == "outdated")
        })
        .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(history(&closed_app, None).await.is_empty(), "{}", closed_app.log());
    assert_eq!(only_one_running(&lab, &closed), closed_id);
}

#[tokio::test]
async fn the_auto_update_label_sets_the_default_and_the_toggle_wins() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let name = unique("ops-autolabel");
    cleanup.containers.push(name.clone());
    // An image nobody can find newer: no instance of a parallel test updates it.
    let id = run_labelled(&lab, &name, &lab.base_image, &["shipshape.auto-update=true"], &[]);
    let app = spawn_app_with(&lab, &[]);
    let images = app.wait_images(PATIENCE, "listed", |i| find_container(i, &name).is_some()).await;
    assert_eq!(find_container(&images, &name).map(|(_, c)| c["auto_update"].clone()), Some(json!(true)));
    let (status, body) = post(&app, &format!("/api/images/{}/auto-update", &id[..12])).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, r#"{"auto_update":false}"#));
    app.wait_images(PATIENCE, "the toggle's value listed", |i| {
        find_container(i, &name).is_some_and(|(_, c)| c["auto_update"] == false)
    })
    .await;
}

// ------------------------------------------------------------------ engine state

async fn engine_state(app: &TestApp) -> Value {
    let (status, body) = get(app, "/api/engine").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("engine json")
}

async fn wait_engine(app: &TestApp, connected: bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = engine_state(app).await;
        if state["connected"] == connected {
            return state;
        }
        assert!(Instant::now() < deadline, "engine not connected={connected}: {state}\n{}", app.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_engine_message(ws: &mut Ws) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, ws.next()).await.expect("an engine message in time");
        if let Some(Ok(Message::Text(text))) = message {
            let v: Value = serde_json::from_str(&text).expect("ws json");
            if v["type"] == "engine" {
                return v["data"].clone();
            }
        }
    }
}

#[tokio::test]
async fn the_engine_state_follows_the_engine() {
    let lab = lab();
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = EngineProxy::new(dir.path(), "engine", &lab.docker_host);
    proxy.start();
    let host = proxy.url();
    let app = spawn_app_with(&lab, &[("DOCKER_HOST", &host)]);
    let up = wait_engine(&app, true).await;
    assert!(up["error"].is_null() && up["version"].is_string() && up["api_version"].is_string(), "{up}");
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("websocket");

    let stopped = Instant::now();
    proxy.stop();
    let down = wait_engine(&app, false).await;
    eprintln!("engine seen gone after {:?}", stopped.elapsed());
    assert!(down["error"].as_str().is_some_and(|e| !e.is_empty()), "{down}");
    let message = next_engine_message(&mut ws).await;
    assert_eq!(message["connected"], false, "{message}");

    let restarted = Instant::now();
    proxy.start();
    let back = wait_engine(&app, true).await;
    eprintln!("engine seen back after {:?}", restarted.elapsed());
    assert!(back["error"].is_null(), "{back}");
    let mut message = next_engine_message(&mut ws).await;
    while message["connected"] == false {
        message = next_engine_message(&mut ws).await;
    }
    assert_eq!(message["connected"], true);
    proxy.stop();
}

// ------------------------------------------------------------------ DOCKER_CONFIG

#[tokio::test]
async fn a_later_docker_login_is_used_without_a_restart() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}/ops/{}:v1", lab.auth_registry, unique("login"));
    cleanup.images.push(image.clone());
    lab_image(&lab, &image, "login one", false);
    let name = unique("ops-login");
    cleanup.containers.push(name.clone());
    let old_id = run_labelled(&lab, &name, &image, &[], &[]);
    lab_image(&lab, &image, "login two", true);
    // The service starts logged in nowhere.
    let config = tempfile::tempdir().expect("tempdir");
    let config_file = config.path().join("config.json");
    std::fs::write(&config_file, "{}").expect("config.json");
    let config_dir = config.path().to_string_lossy().to_string();
    let app = spawn_app_with(&lab, &[QUICK_VERIFY, ("DOCKER_CONFIG", &config_dir)]);
    app.wait_images(PATIENCE, "listed", |i| find_container(i, &name).is_some()).await;
    let images = app.check_now().await;
    let (group, _) = find_container(&images, &name).expect("listed");
    assert!(group["error"].is_string() && group["remote_digest"] == "unknown", "{group}");

    // `docker login` writes config.json; the next check and pull use it.
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", lab.auth_user, lab.auth_password));
    let login = json!({ "auths": { lab.auth_registry.clone(): { "auth": auth } } });
    std::fs::write(&config_file, login.to_string()).expect("config.json");
    let images = app.check_now().await;
    let (group, item) = find_container(&images, &name).expect("listed");
    assert!(group.get("error").is_none_or(Value::is_null), "{group}");
    assert_eq!(item["status"], "outdated", "{group}");
    let (status, body) = post(&app, &format!("/api/images/{}/update", &old_id[..12])).await;
    assert_eq!(status, 200, "{body}");
    let entries = wait_history(&app, &name, 1, JOB_PATIENCE).await;
    assert_eq!(entries[0]["result"], "updated", "{entries:#?}\n{}", app.log());
    assert!(!app.log().contains(&lab.auth_password));
}

// ------------------------------------------------------------------ sessions

const PASSWORD: &str = "correct horse battery staple";

async fn login(app: &TestApp) -> String {
    common::session_cookie(&common::login_ok(app, PASSWORD).await).0
}

async fn images_status(app: &TestApp, cookie: &str) -> StatusCode {
    common::http_client().get(app.url("/api/images")).header(COOKIE, cookie).send().await.expect("request").status()
}

#[tokio::test]
async fn a_session_in_use_slides_and_an_idle_one_expires() {
    let lab = lab();
    let auth = [("SHIPSHAPE_AUTH", "on"), ("SHIPSHAPE_AUTH_PASSWORD", PASSWORD), ("SHIPSHAPE_SESSION_TTL", "3s")];
    let mut env = auth.to_vec();
    env.push(("SHIPSHAPE_SESSION_RENEW_INTERVAL", "1s"));
    let app = spawn_app_with(&lab, &env);
    let cookie = login(&app).await;
    // Used for three TTLs in a row, it stays valid.
    let until = Instant::now() + Duration::from_secs(9);
    while Instant::now() < until {
        assert_eq!(images_status(&app, &cookie).await, StatusCode::OK, "a session in use expired");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Left alone for longer than its TTL, it ends.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(images_status(&app, &cookie).await, StatusCode::UNAUTHORIZED);

    // With the default interval (an hour) the same use does not extend it:
    // the extension is what kept the first one alive.
    let app = spawn_app_with(&lab, &auth);
    let cookie = login(&app).await;
    let deadline = Instant::now() + PATIENCE;
    while images_status(&app, &cookie).await == StatusCode::OK {
        assert!(Instant::now() < deadline, "a session never renewed did not expire");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
