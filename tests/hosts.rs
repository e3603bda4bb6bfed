//! Several engines in one shipshape (`SHIPSHAPE_DOCKER_HOSTS`), against the
//! lab's two private dockerds (`scripts/lab up` starts both): one group per
//! image across engines with each container's `host`, one registry request
//! for all of them, an update on the container's own engine only, an engine
//! that goes away while the other carries on, `host:id`, per-engine flags, a
//! TLS engine, clear start-up errors, and an interrupted update recovered
//! once its engine is back.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::engine_proxy::EngineProxy;
use common::flaky_proxy::{FlakyProxy, Script};
use common::jobs::{
    check_history_shape, encode_image, history_of, image_id, inspect, lab_image, only_one_running, post_group_update,
    post_update, run, wait_history, Cleanup, JOB_PATIENCE,
};
use common::{group, lab, run_shipshape, short, spawn_app_with, unique, Lab, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Long enough for a loaded machine; a passing run never waits it out.
const PATIENCE: Duration = Duration::from_secs(60);

/// The service with engine `one` (the lab's first) and engine `two` at `two`.
fn spawn_two(lab: &Lab, two: &str, extra: &[(&str, &str)]) -> TestApp {
    let hosts = format!("one={},two={two}", lab.docker_host);
    let mut env = vec![("SHIPSHAPE_DOCKER_HOSTS", hosts.as_str())];
    env.extend_from_slice(extra);
    spawn_app_with(lab, &env)
}

/// The container called `name` on engine `host`, with its group.
fn on<'a>(images: &'a [Value], host: &str, name: &str) -> Option<(&'a Value, &'a Value)> {
    images.iter().find_map(|g| {
        g["containers"].as_array()?.iter().find(|c| c["container_name"] == name && c["host"] == host).map(|c| (g, c))
    })
}

async fn get(app: &TestApp, path: &str) -> (u16, String) {
    let resp = app.client.get(app.url(path)).send().await.expect("GET");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

async fn post(app: &TestApp, path: &str) -> (u16, String) {
    let resp = app.client.post(app.url(path)).send().await.expect("POST");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

async fn hosts(app: &TestApp) -> Vec<Value> {
    let (status, body) = get(app, "/api/hosts").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("hosts json: {e}: {body}"))
}

fn host<'a>(hosts: &'a [Value], name: &str) -> &'a Value {
    hosts.iter().find(|h| h["name"] == name).unwrap_or_else(|| panic!("no engine {name} in {hosts:#?}"))
}

/// Waits until engine `name` is (or is not) connected; answers `GET /api/hosts`.
async fn wait_host(app: &TestApp, name: &str, connected: bool) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let all = hosts(app).await;
        if host(&all, name)["connected"] == connected {
            return all;
        }
        assert!(Instant::now() < deadline, "engine {name} not connected={connected}: {all:#?}\n{}", app.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every engine entry has exactly the documented fields.
fn check_host_shape(h: &Value) {
    let keys: Vec<&str> = h.as_object().expect("object").keys().map(String::as_str).collect();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["api_version", "connected", "containers", "error", "images", "name", "since", "url", "version"],
        "{h}"
    );
    assert!(h["containers"].is_u64() && h["images"].is_u64() && h["since"].is_string(), "{h}");
    assert_eq!(h["connected"] == true, h["error"].is_null(), "an error exactly while disconnected: {h}");
}

/// Removes a local tag from one engine when dropped.
struct Untag(Lab, String);

impl Drop for Untag {
    fn drop(&mut self) {
        let _ = self.0.docker_output(&["rmi", &self.1]);
    }
}

#[tokio::test]
async fn one_image_on_two_engines_is_one_group_checked_once() {
    let lab = lab();
    let lab2 = lab.host2();
    let proxy = FlakyProxy::start(&lab.registry, Script::forward());
    let repo = format!("hosts/{}", unique("group"));
    let image = format!("{}/{repo}:1", proxy.addr);
    let (digest, _tag) = common::push_base_as(&lab, Path::new(&lab.docker_config), &image);
    lab2.docker(&["pull", "-q", &image]);
    let _untag = Untag(lab2.clone(), image.clone());
    let name = unique("hosts-group");
    let _one = lab.run(&name, &image, &[]);
    let _two = lab2.run(&name, &image, &[]);

    let app = spawn_two(&lab, &lab2.docker_host, &[]);
    let images = app
        .wait_images(PATIENCE, "both containers, checked", |i| {
            on(i, "one", &name).is_some_and(|(g, _)| g["status"] == "uptodate") && on(i, "two", &name).is_some()
        })
        .await;
    let g = group(&images, &image);
    let members: Vec<(&str, &str, &str)> = g["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap_or_default();
            (field("host"), field("container_name"), field("status"))
        })
        .collect();
    assert_eq!(members, [("one", name.as_str(), "uptodate"), ("two", name.as_str(), "uptodate")], "{g:#}");
    assert_eq!(g["remote_digest"], short(&digest).as_str());
    for c in g["containers"].as_array().expect("containers") {
        assert_eq!(c["local_digest"], short(&digest).as_str(), "{c}");
    }

    // One check of the fleet asks the registry once for the image both run.
    proxy.reset_counts();
    let images = app.check_now().await;
    assert_eq!(group(&images, &image)["status"], "uptodate");
    let manifests = proxy.requests_matching(&format!("/v2/{repo}/manifests/*"));
    assert_eq!(manifests, 1, "one request serves both engines: {:?}", proxy.path_counts());

    // `shipshape check` sees the fleet the same way, with one request too.
    proxy.reset_counts();
    let hosts_list = format!("one={},two={}", lab.docker_host, lab2.docker_host);
    let checked = common::check_json(&lab, &[("SHIPSHAPE_DOCKER_HOSTS", &hosts_list)]);
    let g = group(&checked, &image);
    let engines: Vec<&str> =
        g["containers"].as_array().expect("containers").iter().filter_map(|c| c["host"].as_str()).collect();
    assert_eq!((engines, g["status"].as_str()), (vec!["one", "two"], Some("uptodate")), "{g:#}");
    assert_eq!(proxy.requests_matching(&format!("/v2/{repo}/manifests/*")), 1, "{:?}", proxy.path_counts());
}

#[tokio::test]
async fn an_update_runs_on_the_containers_own_engine_only() {
    let lab = lab();
    let lab2 = lab.host2();
    let (mut clean1, mut clean2) = (Cleanup::new(&lab), Cleanup::new(&lab2));
    let image = format!("{}/hosts-upd/{}:v1", lab.registry, unique("app"));
    clean1.images.push(image.clone());
    clean2.images.push(image.clone());
    lab_image(&lab, &image, "one", false);
    lab2.docker(&["pull", "-q", &image]);
    let old = image_id(&lab, &image);
    assert_eq!(image_id(&lab2, &image), old, "the same image on both engines");
    let name = unique("hosts-upd");
    clean1.containers.push(name.clone());
    clean2.containers.push(name.clone());
    let args = ["--network", "none", "--stop-timeout", "1", image.as_str(), "sleep", "100000"];
    let id1 = run(&lab, &name, &args);
    let id2 = run(&lab2, &name, &args);
    let new_digest = lab_image(&lab, &image, "two", true);

    let app = spawn_two(&lab, &lab2.docker_host, &[]);
    app.wait_images(PATIENCE, "both listed", |i| on(i, "one", &name).is_some() && on(i, "two", &name).is_some()).await;
    let images = app.check_now().await;
    for engine in ["one", "two"] {
        let (g, c) = on(&images, engine, &name).expect("listed");
        assert_eq!((c["status"].as_str(), g["remote_digest"].as_str()), (Some("outdated"), Some(&*short(&new_digest))));
    }

    // `host:id` names the container on engine two.
    post_update(&app, &format!("two:{}", &id2[..12])).await;
    let entries = wait_history(&app, &name, 1, JOB_PATIENCE).await;
    assert_eq!(check_history_shape(&entries[0]), "updated", "{entries:#?}\n{}", app.log());
    assert_eq!(entries[0]["host"], "two", "the journal records the engine: {entries:#?}");

    // Engine two pulled and recreated...
    let new2 = only_one_running(&lab2, &name);
    assert_ne!(new2, id2);
    let pulled = image_id(&lab2, &image);
    assert_ne!(pulled, old, "engine two pulled the new version");
    assert_eq!(inspect(&lab2, &name)["Image"], pulled.as_str());
    // ...engine one's container of the same name and its image are untouched.
    assert_eq!(only_one_running(&lab, &name), id1);
    assert_eq!(image_id(&lab, &image), old, "nothing was pulled on engine one");
    assert_eq!(inspect(&lab, &name)["Image"], old.as_str());
    app.wait_images(PATIENCE, "two up to date, one still outdated", |i| {
        on(i, "two", &name).is_some_and(|(_, c)| c["status"] == "uptodate" && c["container_id"] == new2[..12])
            && on(i, "one", &name).is_some_and(|(_, c)| c["status"] == "outdated" && c["container_id"] == id1[..12])
    })
    .await;
    clean2.images.push(pulled);
    clean1.images.push(old);

    // The group spans both engines: its update reaches engine one's container,
    // and leaves engine two's (already on the new image) as it is.
    post_group_update(&app, &encode_image(&image)).await;
    let entries = wait_history(&app, &name, 3, JOB_PATIENCE).await;
    let newest: Vec<(&str, &str)> = entries[..2]
        .iter()
        .map(|e| (e["host"].as_str().unwrap_or_default(), e["result"].as_str().unwrap_or_default()))
        .collect();
    assert!(newest.contains(&("one", "updated")) && newest.contains(&("two", "unchanged")), "{entries:#?}");
    assert_ne!(only_one_running(&lab, &name), id1);
    assert_eq!(only_one_running(&lab2, &name), new2);
    clean1.images.push(image_id(&lab, &image));
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next `hosts` message in which engine `name` is (or is not) connected.
async fn next_hosts_message(ws: &mut Ws, name: &str, connected: bool) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, ws.next()).await.expect("a hosts message in time");
        let Some(Ok(Message::Text(text))) = message else { continue };
        let v: Value = serde_json::from_str(&text).expect("ws json");
        if v["type"] == "hosts" {
            let all = v["data"].as_array().expect("hosts data").clone();
            all.iter().for_each(check_host_shape);
            if host(&all, name)["connected"] == connected {
                return all;
            }
        }
    }
}

// The engine proxy runs on the test's runtime: give it threads of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_is_marked_and_the_other_carries_on() {
    let lab = lab();
    let lab2 = lab.host2();
    lab2.ensure_base_image();
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = EngineProxy::new(dir.path(), "two", &lab2.docker_host);
    proxy.start();
    let (here, away) = (unique("hosts-here"), unique("hosts-away"));
    let _here = lab.run(&here, &lab.base_image, &[]);
    let _away = lab2.run(&away, &lab.base_image, &[]);
    let app = spawn_two(&lab, &proxy.url(), &[]);
    app.wait_images(PATIENCE, "both listed", |i| on(i, "one", &here).is_some() && on(i, "two", &away).is_some()).await;
    let all = wait_host(&app, "two", true).await;
    all.iter().for_each(check_host_shape);
    let names: Vec<&str> = all.iter().filter_map(|h| h["name"].as_str()).collect();
    assert_eq!(names, ["one", "two"], "in the configured order");
    assert_eq!(host(&all, "one")["url"], lab.docker_host.as_str());
    assert_eq!(host(&all, "two")["url"], proxy.url().as_str());
    assert!(host(&all, "two")["containers"].as_u64() >= Some(1) && host(&all, "two")["images"].as_u64() >= Some(1));
    assert!(host(&all, "two")["version"].is_string() && host(&all, "two")["api_version"].is_string());
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("websocket");

    proxy.stop();
    let all = wait_host(&app, "two", false).await;
    assert!(host(&all, "two")["error"].as_str().is_some_and(|e| !e.is_empty()), "{all:#?}");
    assert_eq!(host(&all, "one")["connected"], true, "{all:#?}");
    let told = next_hosts_message(&mut ws, "two", false).await;
    assert_eq!(host(&told, "one")["connected"], true);
    // `GET /api/engine` is the first engine's, which is fine.
    let (status, body) = get(&app, "/api/engine").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).expect("json")["connected"], true, "{body}");
    // The engine that went away keeps its last snapshot; the other goes on changing.
    let later = unique("hosts-later");
    let _later = lab.run(&later, &lab.base_image, &[]);
    let images = app.wait_images(PATIENCE, "a new container on engine one", |i| on(i, "one", &later).is_some()).await;
    assert!(on(&images, "two", &away).is_some(), "engine two's containers stay listed: {images:#?}");

    proxy.start();
    wait_host(&app, "two", true).await;
    next_hosts_message(&mut ws, "two", true).await;
    proxy.stop();
}

#[tokio::test]
async fn host_ids_resolve_and_auto_update_flags_are_per_engine() {
    let lab = lab();
    let lab2 = lab.host2();
    lab2.ensure_base_image();
    let name = unique("hosts-flag");
    let one = lab.run(&name, &lab.base_image, &[]);
    let two = lab2.run(&name, &lab.base_image, &[]);
    let mut app = spawn_two(&lab, &lab2.docker_host, &[]);
    app.wait_images(PATIENCE, "both listed", |i| on(i, "one", &name).is_some() && on(i, "two", &name).is_some()).await;

    let toggle = format!("/api/images/two:{}/auto-update", two.short_id());
    let (status, body) = post(&app, &toggle).await;
    assert_eq!((status, serde_json::from_str::<Value>(&body).ok()), (200, Some(json!({"auto_update": true}))));
    let flags = |i: &[Value]| {
        (
            on(i, "one", &name).map(|(_, c)| c["auto_update"].clone()),
            on(i, "two", &name).map(|(_, c)| c["auto_update"].clone()),
        )
    };
    app.wait_images(PATIENCE, "only engine two's container", |i| flags(i) == (Some(json!(false)), Some(json!(true))))
        .await;

    // The full id works as well as `host:id`; a wrong engine finds nothing.
    let (status, _) = post(&app, &format!("/api/images/{}/auto-update", one.id)).await;
    assert_eq!(status, 200);
    let (status, body) = get(&app, &format!("/api/images/two:{}/progress", two.short_id())).await;
    assert_eq!((status, body.as_str()), (404, "no progress\n"));
    let (status, body) = get(&app, &format!("/api/images/one:{}/progress", two.short_id())).await;
    assert_eq!((status, body.as_str()), (404, "container not found\n"), "not on engine one");
    let (status, body) = post(&app, &format!("/api/images/nowhere:{}/update", one.short_id())).await;
    assert_eq!((status, body.as_str()), (404, "container not found\n"));

    // Kept across a restart, each under its own engine.
    app.restart(&lab);
    app.wait_images(PATIENCE, "both flags kept", |i| flags(i) == (Some(json!(true)), Some(json!(true)))).await;
    let (status, body) = post(&app, &toggle).await;
    assert_eq!((status, serde_json::from_str::<Value>(&body).ok()), (200, Some(json!({"auto_update": false}))));
    app.wait_images(PATIENCE, "engine two's flag off again", |i| flags(i) == (Some(json!(true)), Some(json!(false))))
        .await;
}

#[tokio::test]
async fn one_engine_by_default_is_local() {
    let lab = lab();
    let name = unique("hosts-local");
    let _c = lab.run(&name, &lab.base_image, &[]);
    let app = common::spawn_app(&lab);
    let images = app.wait_images(PATIENCE, "listed", |i| common::find_container(i, &name).is_some()).await;
    let (_, item) = common::find_container(&images, &name).expect("listed");
    assert_eq!(item["host"], "local");
    let all = wait_host(&app, "local", true).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    check_host_shape(&all[0]);
    assert_eq!(all[0]["url"], lab.docker_host.as_str());
    // `local:id` works with one engine too.
    let (status, body) =
        get(&app, &format!("/api/images/local:{}/progress", &item["container_id"].as_str().expect("id"))).await;
    assert_eq!((status, body.as_str()), (404, "no progress\n"));
}

#[tokio::test]
async fn an_engine_over_tls_uses_its_own_certificate_folder() {
    let lab = lab();
    let lab2 = lab.host2();
    lab2.ensure_base_image();
    let (Some(tls), Some(client)) = (lab.docker_host2_tls.clone(), lab.docker_host2_certs.clone()) else {
        panic!("the lab has no TLS listener on host2: run scripts/lab up")
    };
    let certs = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(&client, certs.path().join("secure")).expect("symlink the client folder");
    let name = unique("hosts-tls");
    let _c = lab2.run(&name, &lab.base_image, &[]);
    let hosts_list = format!("one={},secure={tls}", lab.docker_host);
    let certs_dir = certs.path().to_string_lossy().to_string();
    let mut app =
        spawn_app_with(&lab, &[("SHIPSHAPE_DOCKER_HOSTS", &hosts_list), ("SHIPSHAPE_DOCKER_CERTS", &certs_dir)]);
    let all = wait_host(&app, "secure", true).await;
    assert_eq!(host(&all, "secure")["url"], tls.as_str());
    app.wait_images(PATIENCE, "the container of the TLS engine", |i| on(i, "secure", &name).is_some()).await;

    // Without its folder the engine is spoken to in plain HTTP, which a TLS
    // listener refuses: shown as unreachable, with the reason.
    let empty = tempfile::tempdir().expect("tempdir");
    app.restart_with(&lab, &[("SHIPSHAPE_DOCKER_CERTS", &empty.path().to_string_lossy())]);
    let all = wait_host(&app, "secure", false).await;
    assert!(host(&all, "secure")["error"].as_str().is_some_and(|e| !e.is_empty()), "{all:#?}");
    assert!(app.log().contains("plain HTTP"), "a warning says so:\n{}", app.log());
}

#[test]
fn bad_engine_lists_stop_the_start_with_a_clear_error() {
    let lab = lab();
    let certs = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(certs.path().join("half")).expect("mkdir");
    std::fs::write(certs.path().join("half/ca.pem"), b"not used").expect("write");
    let certs_dir = certs.path().to_string_lossy().to_string();
    let cases = [
        ("one=unix:///a.sock,one=unix:///b.sock", "engine name \"one\" is given twice"),
        ("Big=unix:///a.sock", "engine name \"Big\" is not valid"),
        ("one:1=unix:///a.sock", "is not valid"),
        ("nas", "\"nas\" is not name=URL"),
        ("nas=ssh://me@192.0.2.1", "ssh:// is not supported"),
        ("nas=tcp://192.0.2.1", "tcp:// needs host:port"),
        ("nas=https://127.0.0.1:9", "https:// needs"),
        ("half=tcp://127.0.0.1:9", "cert.pem is missing"),
        (" , ", "names no engine"),
    ];
    for (list, want) in cases {
        let out = run_shipshape(&lab, &[("SHIPSHAPE_DOCKER_HOSTS", list), ("SHIPSHAPE_DOCKER_CERTS", &certs_dir)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{list}: {stderr}");
        assert!(stderr.contains(want), "{list}: wanted {want:?} in:\n{stderr}");
        assert!(!stderr.contains("listening on"), "{list}: nothing is served:\n{stderr}");
    }
}

/// An update interrupted on engine two (the service killed mid-job), then a
/// start while engine two is away: the service starts, the journal keeps
/// the job, and once the engine is back the update is rolled back there.
#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_update_waits_for_its_engine_and_is_recovered_there() {
    let lab = lab();
    let lab2 = lab.host2();
    let mut clean2 = Cleanup::new(&lab2);
    let image = format!("{}/hosts-crash/{}:v1", lab.registry, unique("app"));
    clean2.images.push(image.clone());
    let _untag = Untag(lab.clone(), image.clone());
    lab_image(&lab, &image, "one", false);
    lab2.docker(&["pull", "-q", &image]);
    let name = unique("hosts-crash");
    clean2.containers.push(name.clone());
    let id2 = run(
        &lab2,
        &name,
        &["--network", "none", "--stop-timeout", "1", "--restart", "unless-stopped", &image, "sleep", "100000"],
    );
    lab_image(&lab, &image, "two", true);
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = EngineProxy::new(dir.path(), "two", &lab2.docker_host);
    proxy.start();

    let mut app =
        spawn_two(&lab, &proxy.url(), &[("SHIPSHAPE_FAULT_CRASH_AT", "stopped"), ("SHIPSHAPE_VERIFY_TIMEOUT", "2s")]);
    app.wait_images(PATIENCE, "listed on two", |i| on(i, "two", &name).is_some()).await;
    post_update(&app, &format!("two:{}", &id2[..12])).await;
    let status = app.wait_exit(JOB_PATIENCE);
    assert!(!status.success(), "shipshape was to crash, exited with {status}\n{}", app.log());
    let left = common::jobs::family(&lab2, &name);
    assert_eq!(left.len(), 2, "the old container and the created replacement: {left:#?}");

    // Engine two is away at the next start: the service starts anyway.
    proxy.stop();
    app.restart_without(&lab, &["SHIPSHAPE_FAULT_CRASH_AT"]);
    let all = hosts(&app).await;
    assert_eq!(host(&all, "two")["connected"], false, "{all:#?}");
    assert!(history_of(&app, &name).await.is_empty(), "the job waits in the journal\n{}", app.log());
    assert_eq!(common::jobs::family(&lab2, &name), left, "nothing touched while the engine is away");

    proxy.start();
    let entries = wait_history(&app, &name, 1, JOB_PATIENCE).await;
    assert_eq!(check_history_shape(&entries[0]), "rolled_back", "{entries:#?}\n{}", app.log());
    assert_eq!(entries[0]["host"], "two");
    assert_eq!(only_one_running(&lab2, &name), id2, "the old container runs again");
    assert_eq!(common::jobs::restart_policy(&lab2, &name), "unless-stopped:0");
    proxy.stop();
}
