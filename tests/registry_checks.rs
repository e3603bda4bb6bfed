//! Registry checks end to end: the real service and `shipshape check`
//! against the lab's registries, statuses as the API shows them.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{find_container, group, lab, short, spawn_app, spawn_app_with, unique, Lab};
use serde_json::Value;

/// Builds and pushes a new version of `reference` (a repository on a lab registry) and returns its digest.
fn push_version(lab: &Lab, reference: &str, marker: &str, remote_only: bool) -> String {
    let mut args = vec!["build-image"];
    if remote_only {
        args.push("--remote-only");
    }
    args.extend([reference, marker]);
    let digest = lab.script(&args);
    assert!(digest.starts_with("sha256:"), "build-image printed {digest:?}");
    digest
}

#[tokio::test]
async fn up_to_date_then_outdated_then_partial() {
    let lab = lab();
    let repo = format!("{}/check/{}", lab.registry, unique("app"));
    let image = format!("{repo}:v1");
    let first = push_version(&lab, &image, "one", false);
    let old = unique("old");
    let _old = lab.run(&old, &image, &[]);
    let app = spawn_app(&lab);

    // Checked as soon as it is seen, without asking.
    let images = app
        .wait_images(Duration::from_secs(10), "first check", |i| {
            find_container(i, &old).is_some_and(|(g, _)| g["status"] == "uptodate")
        })
        .await;
    let g = group(&images, &image);
    assert_eq!(g["remote_digest"], short(&first).as_str());
    assert!(g["checked_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{g}");
    assert!(g.get("error").is_none(), "{g}");

    // Someone pushes a new version of the tag: the running container is outdated.
    let second = push_version(&lab, &image, "two", true);
    assert_ne!(first, second);
    let images = app.check_now().await;
    let g = group(&images, &image);
    assert_eq!(g["status"], "outdated");
    assert_eq!(g["remote_digest"], short(&second).as_str());
    let (_, item) = find_container(&images, &old).expect("listed");
    assert_eq!(item["local_digest"], short(&first).as_str());
    assert_eq!(item["status"], "outdated");
    // POST /api/check answers exactly what GET /api/images then says.
    assert_eq!(app.images().await, images);

    // A container of the new version beside the old one: partial.
    lab.docker(&["pull", "-q", &image]);
    let new = unique("new");
    let _new = lab.run(&new, &image, &[]);
    let images = app
        .wait_images(Duration::from_secs(5), "partial group", |i| {
            find_container(i, &new).is_some() && group(i, &image)["status"] == "partial"
        })
        .await;
    let (_, item) = find_container(&images, &new).expect("listed");
    assert_eq!(item["status"], "uptodate");
}

#[tokio::test]
async fn never_pushed_image_is_unknown_with_a_reason() {
    let lab = lab();
    let image = format!("{}/never/{}:1", lab.registry, unique("pushed"));
    lab.docker(&["tag", &lab.base_image, &image]);
    let name = unique("local");
    let _c = lab.run(&name, &image, &[]);
    let app = spawn_app(&lab);
    app.wait_images(Duration::from_secs(5), "container", |i| find_container(i, &name).is_some()).await;
    let images = app.check_now().await;
    let g = group(&images, &image);
    assert_eq!(g["status"], "unknown");
    assert_eq!(g["remote_digest"], "unknown");
    let error = g["error"].as_str().expect("error given");
    assert!(error.contains(&lab.registry) && error.contains("404"), "{error}");
    lab.docker(&["rmi", &image]);
}

#[tokio::test]
async fn digest_pinned_container_is_up_to_date_and_never_outdated() {
    let lab = lab();
    let digests = lab.docker(&["image", "inspect", "--format", "{{json .RepoDigests}}", &lab.base_image]);
    let pinned: Vec<String> = serde_json::from_str(&digests).expect("json");
    let pinned = pinned.into_iter().find(|d| d.starts_with(&lab.registry)).expect("base image has a repo digest");
    let name = unique("pinned");
    let _c = lab.run(&name, &pinned, &[]);
    let app = spawn_app(&lab);
    app.wait_images(Duration::from_secs(5), "container", |i| find_container(i, &name).is_some()).await;
    let images = app.check_now().await;
    let (g, item) = find_container(&images, &name).expect("listed");
    assert_eq!(g["image"], pinned.as_str());
    assert_eq!(g["status"], "uptodate");
    assert_eq!(item["status"], "uptodate");
}

#[tokio::test]
async fn basic_auth_registry_through_docker_config() {
    let lab = lab();
    let image = format!("{}/shipshape/base:latest", lab.auth_registry);
    let name = unique("basic");
    let _c = lab.run(&name, &image, &[]);

    // The lab's DOCKER_CONFIG holds a `docker login` for that registry.
    let app = spawn_app(&lab);
    app.wait_images(Duration::from_secs(5), "container", |i| find_container(i, &name).is_some()).await;
    let images = app.check_now().await;
    let g = group(&images, &image);
    assert_eq!(g["status"], "uptodate", "{g}");

    // Without credentials: unknown, with a 401 reason, and no secret anywhere.
    let empty = tempfile::tempdir().expect("tempdir");
    let config = empty.path().to_string_lossy().to_string();
    let anonymous = spawn_app_with(&lab, &[("DOCKER_CONFIG", &config)]);
    anonymous.wait_images(Duration::from_secs(5), "container", |i| find_container(i, &name).is_some()).await;
    let images = anonymous.check_now().await;
    let g = group(&images, &image);
    assert_eq!(g["status"], "unknown");
    let error = g["error"].as_str().expect("error");
    assert!(error.contains("401"), "{error}");
    let body = serde_json::to_string(&images).expect("json");
    for text in [body, app.log(), anonymous.log()] {
        assert!(!text.contains(&lab.auth_password), "password leaked");
    }
}

#[tokio::test]
async fn manifest_list_is_compared_by_its_index_digest() {
    let lab = lab();
    let base = format!("{}/multi/{}", lab.registry, unique("arch"));
    let (amd, arm, list) = (format!("{base}-amd64:1"), format!("{base}-arm64:1"), format!("{base}:1"));
    push_version(&lab, &amd, "amd64", false);
    push_version(&lab, &arm, "arm64", false);
    lab.docker(&["manifest", "create", "--insecure", &list, &amd, &arm]);
    lab.docker(&["manifest", "annotate", "--arch", "arm64", &list, &arm]);
    let pushed = lab.docker(&["manifest", "push", "--insecure", "--purge", &list]);
    let index_digest = pushed.lines().last().unwrap_or_default().trim().to_string();
    assert!(index_digest.starts_with("sha256:"), "{pushed}");
    lab.docker(&["pull", "-q", &list]);
    let name = unique("multi");
    let _c = lab.run(&name, &list, &[]);
    let app = spawn_app(&lab);
    app.wait_images(Duration::from_secs(5), "container", |i| find_container(i, &name).is_some()).await;
    let images = app.check_now().await;
    let g = group(&images, &list);
    assert_eq!(g["remote_digest"], short(&index_digest).as_str(), "{g}");
    assert_eq!(g["status"], "uptodate", "{g}");
}

fn check_command(lab: &Lab, args: &[&str], docker_host: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shipshape"))
        .arg("check")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DOCKER_HOST", docker_host)
        .env("DOCKER_CONFIG", &lab.docker_config)
        .env("SHIPSHAPE_IGNORE_REGISTRIES", "docker.io")
        .env("SHIPSHAPE_DATA_DIR", "/nonexistent-shipshape-data")
        .output()
        .expect("shipshape check runs")
}

#[tokio::test]
async fn check_command_prints_json_and_a_table() {
    let lab = lab();
    let image = format!("{}/cli/{}:1", lab.registry, unique("cli"));
    let first = push_version(&lab, &image, "one", false);
    let name = unique("cli");
    let _c = lab.run(&name, &image, &[]);
    push_version(&lab, &image, "two", true);

    let out = check_command(&lab, &["--json"], &lab.docker_host);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let images: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let (g, item) = find_container(&images, &name).expect("listed");
    assert_eq!(g["status"], "outdated");
    assert_eq!(item["local_digest"], short(&first).as_str());

    let out = check_command(&lab, &[], &lab.docker_host);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table.lines().find(|l| l.contains(&name)).expect("row for the container");
    assert!(row.contains("outdated"), "{row}");

    // No socket at all, and a socket path where nothing answers.
    let not_a_socket = tempfile::NamedTempFile::new().expect("temp file");
    for host in ["unix:///nonexistent/docker.sock".to_string(), format!("unix://{}", not_a_socket.path().display())] {
        let out = check_command(&lab, &["--json"], &host);
        assert!(!out.status.success(), "{host}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("shipshape: docker engine unreachable"), "{host}: {err}");
        assert!(out.stdout.is_empty(), "{host}");
    }
}

#[tokio::test]
async fn registry_down_keeps_the_last_status_with_an_error() {
    use common::registry::{RegistryAuth, TestRegistry};
    let lab = lab();
    let mut registry = TestRegistry::start(RegistryAuth::None);
    let image = format!("{}/down/{}:1", registry.addr, unique("app"));
    let (digest, _tag) = common::push_base_as(&lab, std::path::Path::new(&lab.docker_config), &image);
    let name = unique("down");
    let _c = lab.run(&name, &image, &[]);
    let app = spawn_app(&lab);
    app.wait_images(Duration::from_secs(5), "container", |i| find_container(i, &name).is_some()).await;
    assert_eq!(group(&app.check_now().await, &image)["status"], "uptodate");

    registry.stop();
    for _ in 0..2 {
        // Twice: a pooled connection fails differently from a fresh one.
        let images = app.check_now().await;
        let g = group(&images, &image);
        assert_eq!(g["status"], "uptodate", "{g}");
        assert_eq!(g["remote_digest"], short(&digest).as_str());
        let error = g["error"].as_str().unwrap_or_default();
        assert!(error.contains(&registry.addr) && error.contains("unreachable"), "{g}");
    }

    registry.restart();
    let images = app.check_now().await;
    let g = group(&images, &image);
    assert_eq!(g["status"], "uptodate");
    assert!(g.get("error").is_none(), "{g}");
}

#[tokio::test]
async fn polls_on_the_interval() {
    let lab = lab();
    let image = format!("{}/poll/{}:1", lab.registry, unique("app"));
    let first = push_version(&lab, &image, "one", false);
    let name = unique("poll");
    let _c = lab.run(&name, &image, &[]);
    let app = spawn_app_with(&lab, &[("SHIPSHAPE_POLL_INTERVAL", "2s")]);
    app.wait_images(Duration::from_secs(5), "checked on sight", |i| {
        find_container(i, &name).is_some_and(|(g, _)| g["remote_digest"] == short(&first).as_str())
    })
    .await;
    // A new version appears in the registry; nobody asks, the interval finds it.
    push_version(&lab, &image, "two", true);
    app.wait_images(Duration::from_secs(8), "outdated after a poll", |i| {
        find_container(i, &name).is_some_and(|(g, _)| g["status"] == "outdated")
    })
    .await;
}

#[tokio::test]
async fn a_hanging_registry_does_not_hold_back_the_others() {
    use common::flaky_proxy::{FlakyProxy, Mode, Script};
    let lab = lab();
    let proxy = FlakyProxy::start(&lab.registry, Script::forward());
    let slow = format!("{}/slow/{}:1", proxy.addr, unique("app"));
    let (_, _tag) = common::push_base_as(&lab, std::path::Path::new(&lab.docker_config), &slow);
    let fast = format!("{}/fast/{}:1", lab.registry, unique("app"));
    push_version(&lab, &fast, "fast", false);
    let (slow_name, fast_name) = (unique("slow"), unique("fast"));
    let _s = lab.run(&slow_name, &slow, &[]);
    let _f = lab.run(&fast_name, &fast, &[]);
    proxy.set_script(Script::manifests(Mode::Stall));

    let app = spawn_app(&lab);
    let images = app
        .wait_images(Duration::from_secs(5), "the fast registry's answer", |i| {
            find_container(i, &fast_name).is_some_and(|(g, _)| g["status"] == "uptodate")
        })
        .await;
    let hanging = group(&images, &slow);
    assert_eq!(hanging["status"], "unknown");
    assert!(hanging.get("checked_at").is_none() && hanging.get("error").is_none(), "still in flight: {hanging}");
    proxy.set_script(Script::forward());
}
