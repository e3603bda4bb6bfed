//! Registry checks end to end: the real service and `shipshape check`
//! against the lab's registries, statuses as the API shows them.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{find_container, group, lab, short, spawn_app, spawn_app_with, unique, Lab};
use serde_json::Value;

/// Long enough for a loaded machine; a passing run never waits it out.
const PATIENCE: Duration = Duration::from_secs(30);

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
        .wait_images(PATIENCE, "first check", |i| {
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
        .wait_images(PATIENCE, "partial group", |i| {
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
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
    let images = app.check_now().await;
    let g = group(&images, &image);
    assert_eq!(g["status"], "unknown");
    assert_eq!(g["remote_digest"], "unknown");
    let error = g["error"].as_str().expect("error given");
    assert!(error.contains(&lab.registry) && error.contains("404"), "{error}");
    lab.docker(&["rmi", &image]);
}

#[tokio::test]
async fn digest_pinned_container_stays_up_to_date_when_its_tag_moves_on() {
    let lab = lab();
    let repo = format!("{}/pinned/{}", lab.registry, unique("app"));
    let image = format!("{repo}:v1");
    let first = push_version(&lab, &image, "one", false);
    let pinned = format!("{repo}@{first}");
    let (pinned_name, tagged_name) = (unique("pinned"), unique("tagged"));
    let _p = lab.run(&pinned_name, &pinned, &[]);
    let _t = lab.run(&tagged_name, &image, &[]);
    let app = spawn_app(&lab);
    app.wait_images(PATIENCE, "both containers", |i| {
        find_container(i, &pinned_name).is_some() && find_container(i, &tagged_name).is_some()
    })
    .await;

    // A newer image is pushed to the tag the pinned digest came from.
    let second = push_version(&lab, &image, "two", true);
    assert_ne!(first, second);
    let images = app.check_now().await;
    // The tagged container sees it...
    let (g, item) = find_container(&images, &tagged_name).expect("tagged container listed");
    assert_eq!((g["status"].as_str(), item["status"].as_str()), (Some("outdated"), Some("outdated")), "{g}");
    assert_eq!(g["remote_digest"], short(&second).as_str());
    // ...the pinned one is exactly what it asked for, and stays up to date.
    let (g, item) = find_container(&images, &pinned_name).expect("pinned container listed");
    assert_eq!(g["image"], pinned.as_str());
    assert_eq!(g["status"], "uptodate", "{g}");
    assert_eq!(g["remote_digest"], short(&first).as_str(), "{g}");
    assert_eq!(item["status"], "uptodate");
    assert_eq!(item["local_digest"], short(&first).as_str());
}

#[tokio::test]
async fn basic_auth_registry_through_docker_config() {
    let lab = lab();
    let image = format!("{}/shipshape/base:latest", lab.auth_registry);
    let name = unique("basic");
    let _c = lab.run(&name, &image, &[]);

    // The lab's DOCKER_CONFIG holds a `docker login` for that registry.
    let app = spawn_app(&lab);
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
    let images = app.check_now().await;
    let g = group(&images, &image);
    assert_eq!(g["status"], "uptodate", "{g}");

    // Without credentials: unknown, with a 401 reason, and no secret anywhere.
    let empty = tempfile::tempdir().expect("tempdir");
    let config = empty.path().to_string_lossy().to_string();
    let anonymous = spawn_app_with(&lab, &[("DOCKER_CONFIG", &config)]);
    anonymous.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
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
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
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
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
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
    app.wait_images(PATIENCE, "checked on sight", |i| {
        find_container(i, &name).is_some_and(|(g, _)| g["remote_digest"] == short(&first).as_str())
    })
    .await;
    // A new version appears in the registry; nobody asks, the interval finds it.
    push_version(&lab, &image, "two", true);
    app.wait_images(PATIENCE, "outdated after a poll", |i| {
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
        .wait_images(PATIENCE, "the fast registry's answer", |i| {
            find_container(i, &fast_name).is_some_and(|(g, _)| g["status"] == "uptodate")
        })
        .await;
    let hanging = group(&images, &slow);
    assert_eq!(hanging["status"], "unknown");
    assert!(hanging.get("checked_at").is_none() && hanging.get("error").is_none(), "still in flight: {hanging}");
    proxy.set_script(Script::forward());
}

/// Removes a local tag when dropped.
struct Untag<'a>(&'a Lab, String);

impl Drop for Untag<'_> {
    fn drop(&mut self) {
        let _ = self.0.docker_output(&["rmi", &self.1]);
    }
}

/// Plain http is for the engine's insecure registries — its CIDRs
/// (dockerd's default here: 127.0.0.0/8) matched against IP literals and
/// `localhost` only — and for names in `SHIPSHAPE_INSECURE_REGISTRIES`. A
/// registry reached by any other name is https only, whatever the name
/// resolves to: a DNS answer must not turn TLS off. `127.1` is such a name
/// (not an IP literal to shipshape) that still stays on loopback: URL parsing
/// reads it as 127.0.0.1, so nothing asks DNS.
#[tokio::test]
async fn plain_http_only_for_the_engines_insecure_addresses_and_listed_names() {
    use common::flaky_proxy::{FlakyProxy, Script};
    const MANIFESTS: &str = "/v2/*/manifests/*";
    let lab = lab();
    let repo = format!("insecure/{}", unique("app"));
    let pushed = format!("{}/{repo}:1", lab.registry);
    let digest = push_version(&lab, &pushed, "insecure", false);
    // Two doors to the lab registry: 127.0.0.2, inside the engine's CIDR, and
    // 127.1, a name.
    let in_cidr = FlakyProxy::start_at("127.0.0.2:0", &lab.registry, Script::forward());
    let by_name = FlakyProxy::start(&lab.registry, Script::forward());
    let (_, port) = by_name.addr.rsplit_once(':').expect("proxy port");
    let name_host = format!("127.1:{port}");
    let (cidr_image, name_image) = (format!("{}/{repo}:1", in_cidr.addr), format!("{name_host}/{repo}:1"));
    let mut untag = Vec::new();
    let mut running = Vec::new();
    for image in [&cidr_image, &name_image] {
        lab.docker(&["tag", &pushed, image]);
        untag.push(Untag(&lab, image.clone()));
        running.push((unique("insecure"), image.clone()));
    }
    let _containers: Vec<_> = running.iter().map(|(name, image)| lab.run(name, image, &[])).collect();
    let all_listed = |i: &[Value]| running.iter().all(|(name, _)| find_container(i, name).is_some());

    let strict = spawn_app(&lab);
    strict.wait_images(PATIENCE, "both containers", all_listed).await;
    let images = strict.check_now().await;
    let g = group(&images, &cidr_image);
    assert_eq!(g["remote_digest"], short(&digest).as_str(), "{g}");
    assert!(g.get("error").is_none(), "{g}");
    assert!(in_cidr.requests_matching(MANIFESTS) >= 1, "{:?}", in_cidr.path_counts());
    let g = group(&images, &name_image);
    assert_eq!(g["remote_digest"], "unknown", "{g}");
    assert!(g["error"].as_str().is_some_and(|e| e.contains(&name_host)), "{g}");
    assert_eq!(by_name.requests_matching(MANIFESTS), 0, "plain http to {name_host}: {:?}", by_name.path_counts());

    let listed = spawn_app_with(&lab, &[("SHIPSHAPE_INSECURE_REGISTRIES", &name_host)]);
    listed.wait_images(PATIENCE, "both containers", all_listed).await;
    let images = listed.check_now().await;
    let g = group(&images, &name_image);
    assert_eq!(g["remote_digest"], short(&digest).as_str(), "{g}");
    assert!(g.get("error").is_none(), "{g}");
    assert!(by_name.requests_matching(MANIFESTS) >= 1, "{:?}", by_name.path_counts());
}

/// A token server that fails or goes away while its registry answers: the
/// last status stays, with the reason, and comes back once tokens do.
#[tokio::test]
async fn a_token_server_that_goes_down_keeps_the_last_status_with_an_error() {
    use common::registry::TestRegistry;
    use common::token_server::{TokenServer, TokenServerOptions};
    let lab = lab();
    // Tokens live 2 s: every check after that needs the token server.
    let tokens = TokenServer::start_with(TokenServerOptions { expires_in: 2, ..Default::default() });
    let registry = TestRegistry::start(tokens.registry_auth());
    let config = tempfile::tempdir().expect("docker config");
    common::docker_as_ok(
        &lab,
        config.path(),
        &["login", "-u", &tokens.user, "--password-stdin", &registry.addr],
        Some(&tokens.password),
    );
    let image = format!("{}/tokdown/{}:1", registry.addr, unique("app"));
    let (digest, _tag) = common::push_base_as(&lab, config.path(), &image);
    let name = unique("tokdown");
    let _c = lab.run(&name, &image, &[]);
    let config_dir = config.path().to_string_lossy().to_string();
    let app = spawn_app_with(&lab, &[("DOCKER_CONFIG", &config_dir)]);
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
    assert_eq!(group(&app.check_now().await, &image)["status"], "uptodate");

    let checks_until = |what: &'static str, pred: fn(&Value) -> bool| {
        let app = &app;
        let image = &image;
        async move {
            let deadline = std::time::Instant::now() + PATIENCE;
            loop {
                let images = app.check_now().await;
                let g = group(&images, image).clone();
                if pred(&g) {
                    return g;
                }
                assert!(std::time::Instant::now() < deadline, "{what}: not seen within {PATIENCE:?}; last: {g}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let kept = |g: &Value, digest: &str| {
        assert_eq!(g["status"], "uptodate", "last status kept: {g}");
        assert_eq!(g["remote_digest"], short(digest).as_str(), "{g}");
    };

    tokens.set_failure(Some(503));
    let g = checks_until("the token server's 503", |g| g.get("error").is_some()).await;
    kept(&g, &digest);
    let error = g["error"].as_str().unwrap_or_default();
    assert!(error.contains(&registry.addr) && error.contains("503"), "{g}");

    tokens.set_failure(None);
    let g = checks_until("tokens again", |g| g.get("error").is_none()).await;
    kept(&g, &digest);

    let password = tokens.password.clone();
    drop(tokens);
    let g = checks_until("the token server gone", |g| g.get("error").is_some()).await;
    kept(&g, &digest);
    let error = g["error"].as_str().unwrap_or_default();
    assert!(error.contains(&registry.addr) && error.contains("unreachable"), "{g}");
    assert!(!app.log().contains(&password), "password in the log");
}

/// `shipshape check` keeps what it learned in the data directory
/// (`check-cache.json`): last run's references are asked before the engine
/// lists the containers, and the registry's protocol is not found out
/// again. A hint only: answers are always this run's, containers gone since
/// are not reported, new ones are checked, and a wrong hint is corrected.
#[tokio::test]
async fn check_command_head_start_never_changes_the_answer() {
    let lab = lab();
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().to_str().expect("utf-8 path");
    let cache_path = data.path().join("check-cache.json");
    let read_cache =
        || -> Value { serde_json::from_slice(&std::fs::read(&cache_path).expect("cache written")).expect("JSON") };
    let image = |what: &str| format!("{}/head-start/{}:1", lab.registry, unique(what));
    let (outdated, kept, removed, added) = (image("outdated"), image("kept"), image("removed"), image("added"));
    let first = push_version(&lab, &outdated, "one", false);
    push_version(&lab, &kept, "one", false);
    push_version(&lab, &removed, "one", false);
    let names = [unique("head-outdated"), unique("head-kept"), unique("head-removed"), unique("head-added")];
    let _outdated = lab.run(&names[0], &outdated, &[]);
    let _kept = lab.run(&names[1], &kept, &[]);
    let removed_container = lab.run(&names[2], &removed, &[]);
    let second = push_version(&lab, &outdated, "two", true);

    // A wrong hint: the registry "spoke TLS", and a reference nothing runs.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let planted = serde_json::json!({
        "format": 1,
        "written_at": now,
        "registries": { (lab.registry.clone()): { "scheme": "https", "h2": true } },
        "images": [format!("{}/head-start/{}:1", lab.registry, unique("gone"))],
    });
    std::fs::write(&cache_path, planted.to_string()).expect("plant cache");
    let images = common::check_json(&lab, &[("SHIPSHAPE_DATA_DIR", dir)]);
    let status = |images: &[Value], name: &str| find_container(images, name).map(|(g, _)| g["status"].clone());
    assert_eq!(status(&images, &names[0]), Some("outdated".into()));
    assert_eq!(find_container(&images, &names[0]).expect("listed").0["remote_digest"], short(&second).as_str());
    assert_eq!(status(&images, &names[1]), Some("uptodate".into()));
    assert_eq!(status(&images, &names[2]), Some("uptodate".into()));
    assert!(!images.iter().any(|g| g["image"].as_str().is_some_and(|i| i.contains("/gone-"))), "nothing runs it");
    let cache = read_cache();
    assert_eq!(cache["registries"][&lab.registry], serde_json::json!({ "scheme": "http", "h2": false }), "{cache}");
    let cached: Vec<&str> = cache["images"].as_array().expect("images").iter().filter_map(Value::as_str).collect();
    for reference in [&outdated, &kept, &removed] {
        assert!(cached.contains(&reference.as_str()), "{reference} in {cached:?}");
    }
    assert!(!cached.iter().any(|i| i.contains("/gone-")), "{cached:?}");

    // Between runs: one container goes, another comes, a tag moves again.
    drop(removed_container);
    push_version(&lab, &added, "one", false);
    let _added = lab.run(&names[3], &added, &[]);
    let third = push_version(&lab, &outdated, "three", true);
    let images = common::check_json(&lab, &[("SHIPSHAPE_DATA_DIR", dir)]);
    let (g, item) = find_container(&images, &names[0]).expect("listed");
    assert_eq!((g["status"].as_str(), g["remote_digest"].as_str()), (Some("outdated"), Some(short(&third).as_str())));
    assert_eq!(item["local_digest"], short(&first).as_str());
    assert_eq!(status(&images, &names[1]), Some("uptodate".into()));
    assert_eq!(status(&images, &names[2]), None, "removed since");
    assert_eq!(status(&images, &names[3]), Some("uptodate".into()));
    let cached = read_cache();
    let cached: Vec<&str> = cached["images"].as_array().expect("images").iter().filter_map(Value::as_str).collect();
    assert!(cached.contains(&added.as_str()) && !cached.contains(&removed.as_str()), "{cached:?}");
}
