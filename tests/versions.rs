//! Versions end to end: tags listed from real registries (the lab's open
//! one, a token-auth one paginated over several pages, one refusing to list)
//! turn into `version`, `newer`, `update_kind` and `release_notes`; an update
//! to a chosen tag and an automatic update within a `shipshape.update`
//! policy recreate the container on that tag.

mod common;

use std::time::Duration;

use common::flaky_proxy::{FlakyProxy, Mode, Script};
use common::jobs::{
    build_image, inspect, only_one_running, registry_log_len, registry_log_since, wait_history, Cleanup, JOB_PATIENCE,
};
use common::{find_container, group, lab, spawn_app_with, unique, Lab, TestApp};
use serde_json::{json, Value};

const PATIENCE: Duration = Duration::from_secs(60);

/// The issue's tag set in a repository of its own on the lab registry:
/// `1.0.0`, `1.0.1`, `1.1.0`, `2.0.0`, `1.0.1-alpine`, `2.0.0-rc1`, and
/// `latest` = `1.1.0`. Each a different image (a label), all kept locally.
/// Returns the repository and the digest of `1.1.0`.
fn push_tag_set(lab: &Lab, cleanup: &mut Cleanup) -> (String, String) {
    let repo = format!("{}/ver/{}", lab.registry, unique("app"));
    let mut digest_110 = String::new();
    for tag in ["1.0.0", "1.0.1", "1.1.0", "2.0.0", "1.0.1-alpine", "2.0.0-rc1"] {
        let reference = format!("{repo}:{tag}");
        let source =
            if tag == "1.0.0" { "\nLABEL org.opencontainers.image.source=https://github.com/acme/app.git" } else { "" };
        let digest = build_image(lab, &reference, &format!("LABEL version={tag}{source}"), false);
        cleanup.images.push(reference.clone());
        if tag == "1.1.0" {
            digest_110 = digest;
        }
    }
    lab.docker(&["tag", &format!("{repo}:1.1.0"), &format!("{repo}:latest")]);
    lab.docker(&["push", &format!("{repo}:latest")]);
    cleanup.images.push(format!("{repo}:latest"));
    (repo, digest_110)
}

fn tag_list_requests(log: &str, repo_path: &str) -> usize {
    let needle = format!(" /v2/{repo_path}/tags/list");
    log.lines().filter(|l| l.contains(&needle) && l.contains("\"GET ")).count()
}

fn path_of(repo: &str) -> &str {
    repo.split_once('/').map_or(repo, |(_, p)| p)
}

async fn wait_group(app: &TestApp, image: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let images = app.wait_images(PATIENCE, what, |i| i.iter().any(|g| g["image"] == image && pred(g))).await;
    group(&images, image).clone()
}

async fn post_update_body(app: &TestApp, id: &str, body: Value) -> (u16, String) {
    let resp =
        app.client.post(app.url(&format!("/api/images/{id}/update"))).json(&body).send().await.expect("POST update");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// `shipshape check` with the service's data dir; its stdout.
/// A scope of the test's own: other tests' instances (they run in parallel
/// on the same engine) neither check nor update its containers, so request
/// counts and updates are this test's alone.
fn scoped() -> (String, String) {
    let scope = unique("vscope");
    let label = format!("shipshape.scope={scope}");
    (scope, label)
}

#[tokio::test]
async fn versions_are_offered_and_a_chosen_tag_is_updated_to() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let (repo, digest_110) = push_tag_set(&lab, &mut cleanup);
    let (on_100, on_latest) = (unique("v100"), unique("vlatest"));
    cleanup.containers.extend([on_100.clone(), on_latest.clone()]);
    let (scope, scope_label) = scoped();
    let guard_100 = lab.run(
        &on_100,
        &format!("{repo}:1.0.0"),
        &["-e", "KEEP=me", "--label", "keep=label", "--label", &scope_label],
    );
    let id = guard_100.id.clone();
    let _guard_latest = lab.run(&on_latest, &format!("{repo}:latest"), &["--label", &scope_label]);
    let log_start = registry_log_len(&lab);
    let app = spawn_app_with(&lab, &[("SHIPSHAPE_VERIFY_TIMEOUT", "2s"), ("SHIPSHAPE_SCOPE", &scope)]);

    let g = wait_group(&app, &format!("{repo}:1.0.0"), "versions of 1.0.0", |g| g["newer"]["major"].is_string()).await;
    assert_eq!(g["version"], "1.0.0", "{g}");
    assert_eq!(
        g["newer"],
        json!({"patch": "1.0.1", "minor": "1.1.0", "major": "2.0.0"}),
        "never the rc or alpine: {g}"
    );
    assert_eq!(g["update_kind"], "major", "{g}");
    assert_eq!(g["release_notes"], "https://github.com/acme/app/releases", "{g}");
    assert_eq!(g["status"], "uptodate", "{g}");

    let l = wait_group(&app, &format!("{repo}:latest"), "latest resolved", |g| g["version"].is_string()).await;
    assert_eq!(l["version"], "1.1.0", "{l}");
    assert_eq!(l["latest_version"], "1.1.0", "{l}");
    assert_eq!(l["update_kind"], Value::Null, "{l}");
    assert_eq!(l["newer"], json!({}), "{l}");
    assert!(l["remote_digest"].as_str().is_some_and(|d| digest_110.starts_with(d)), "{l}");

    // One listing for the repository, however many containers and tags use it,
    // and none on a plain check; `?tags=1` lists again.
    let listed = || tag_list_requests(&registry_log_since(&lab, log_start), path_of(&repo));
    assert_eq!(listed(), 1, "one listing chain for two containers of one repository");
    app.check_now().await;
    assert_eq!(listed(), 1, "a check within the tags interval lists nothing");
    let resp = app.client.post(app.url("/api/check?tags=1")).send().await.expect("check tags");
    assert_eq!(resp.status(), 200);
    assert_eq!(listed(), 2, "?tags=1 lists again");

    // `shipshape check` uses the service's listings (read only), lists with --tags.
    let data_dir = app.data_dir.to_string_lossy().to_string();
    let json =
        common::check_command(&lab, &["--json"], &[("SHIPSHAPE_DATA_DIR", &data_dir), ("SHIPSHAPE_SCOPE", &scope)]);
    let checked: Vec<Value> = serde_json::from_str(&json).expect("check --json prints JSON");
    assert_eq!(group(&checked, &format!("{repo}:1.0.0"))["newer"]["major"], "2.0.0");
    assert_eq!(group(&checked, &format!("{repo}:latest"))["version"], "1.1.0");
    assert_eq!(listed(), 2, "check used the service's listing");
    let table = common::check_command(&lab, &[], &[("SHIPSHAPE_DATA_DIR", &data_dir), ("SHIPSHAPE_SCOPE", &scope)]);
    let row = table.lines().find(|l| l.contains(&on_100)).unwrap_or_default();
    assert!(row.contains("1.0.0 → 2.0.0") && row.trim_end().ends_with("major"), "{table}");
    common::check_command(
        &lab,
        &["--json", "--tags"],
        &[("SHIPSHAPE_DATA_DIR", &data_dir), ("SHIPSHAPE_SCOPE", &scope)],
    );
    assert_eq!(listed(), 3, "--tags lists again");

    // A tag not offered: 400 with the reason; nothing starts.
    let short = &id[..12];
    let (status, body) = post_update_body(&app, short, json!({"tag": "2.0.0-rc1"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not offered") && body.contains("1.1.0 (minor)"), "{body}");
    let (status, body) = post_update_body(&app, short, json!({"tag": 7})).await;
    assert_eq!(status, 400, "{body}");

    // The chosen tag: recreated on it, settings kept, same name.
    let (status, body) = post_update_body(&app, short, json!({"tag": "1.1.0"})).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"updating"}"#));
    let entries = wait_history(&app, &on_100, 1, JOB_PATIENCE).await;
    assert_eq!(entries[0]["result"], "updated", "{entries:#?}\n{}", app.log());
    assert_eq!(entries[0]["image"], format!("{repo}:1.1.0"), "{entries:#?}");
    let new_id = only_one_running(&lab, &on_100);
    let details = inspect(&lab, &new_id);
    assert_eq!(details["Config"]["Image"], format!("{repo}:1.1.0"));
    let env: Vec<&str> = details["Config"]["Env"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert!(env.contains(&"KEEP=me"), "{env:?}");
    assert_eq!(details["Config"]["Labels"]["keep"], "label");
    assert_eq!(details["Config"]["Labels"]["version"], "1.1.0", "runs the 1.1.0 image");
    let g = wait_group(&app, &format!("{repo}:1.1.0"), "moved to 1.1.0", |g| {
        g["containers"].as_array().is_some_and(|c| c.iter().any(|c| c["container_name"] == on_100.as_str()))
    })
    .await;
    assert_eq!(g["newer"], json!({"major": "2.0.0"}), "{g}");
}

#[tokio::test]
async fn auto_update_goes_as_far_as_the_policy_allows() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let (repo, _) = push_tag_set(&lab, &mut cleanup);
    let name = unique("vpatch");
    cleanup.containers.push(name.clone());
    let (scope, scope_label) = scoped();
    let labels = ["shipshape.auto-update=true", "shipshape.update=patch", &scope_label];
    let _guard =
        lab.run(&name, &format!("{repo}:1.0.0"), &labels.iter().flat_map(|l| ["--label", l]).collect::<Vec<_>>());
    let app = spawn_app_with(&lab, &[("SHIPSHAPE_VERIFY_TIMEOUT", "2s"), ("SHIPSHAPE_SCOPE", &scope)]);
    let entries = wait_history(&app, &name, 1, JOB_PATIENCE).await;
    assert_eq!(entries[0]["result"], "updated", "{entries:#?}\n{}", app.log());
    assert_eq!(entries[0]["image"], format!("{repo}:1.0.1"), "patch policy: 1.0.1, {entries:#?}");
    let id = only_one_running(&lab, &name);
    assert_eq!(inspect(&lab, &id)["Config"]["Image"], format!("{repo}:1.0.1"));

    // On 1.0.1 there is no newer patch: the next rounds leave it there.
    let g = wait_group(&app, &format!("{repo}:1.0.1"), "on 1.0.1", |g| g["version"] == "1.0.1").await;
    assert_eq!(g["newer"], json!({"minor": "1.1.0", "major": "2.0.0"}), "{g}");
    let (_, item) = find_container(std::slice::from_ref(&g), &name).expect("listed");
    assert_eq!(item["update_policy"], "patch", "{item}");
    let resp = app.client.post(app.url("/api/check?tags=1")).send().await.expect("check tags");
    assert_eq!(resp.status(), 200);
    app.check_now().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(common::jobs::history_of(&app, &name).await.len(), 1, "no further update");
    assert_eq!(only_one_running(&lab, &name), id);
}

/// Distribution's tag directories, written straight into its storage: the
/// listing of 2100 extra tags comes in three pages of 1000.
fn add_tags(storage: &std::path::Path, repo_path: &str, digest: &str, tags: impl Iterator<Item = String>) {
    let root = storage.join("docker/registry/v2/repositories").join(repo_path).join("_manifests/tags");
    for tag in tags {
        let dir = root.join(&tag).join("current");
        std::fs::create_dir_all(&dir).expect("tag dir");
        std::fs::write(dir.join("link"), digest).expect("tag link");
    }
}

#[tokio::test]
async fn token_auth_paginated_listing_and_a_registry_refusing_to_list() {
    use common::registry::TestRegistry;
    use common::token_server::TokenServer;
    let lab = lab();
    let tokens = TokenServer::start();
    let registry = TestRegistry::start(tokens.registry_auth());
    let config = tempfile::tempdir().expect("docker config");
    common::docker_as_ok(
        &lab,
        config.path(),
        &["login", "-u", &tokens.user, "--password-stdin", &registry.addr],
        Some(&tokens.password),
    );
    let repo_path = format!("ver/{}", unique("paged"));
    let image = format!("{}/{repo_path}:1.0.0", registry.addr);
    let (digest, _tag) = common::push_base_as(&lab, config.path(), &image);
    add_tags(&registry.storage_dir(), &repo_path, &digest, (1..=2100).map(|i| format!("1.0.{i}")));

    // The registry behind two proxies: one pages the listing as Docker Hub,
    // GHCR and distribution 3 do (Debian's distribution 2.8 ignores `n`),
    // one refuses every listing with 401.
    let tag_list = "/v2/*/tags/list".to_string();
    let paging =
        FlakyProxy::start(&registry.addr, Script { paths: tag_list.clone(), mode: Mode::Paginate { page: 1000 } });
    let refusing = FlakyProxy::start(
        &registry.addr,
        Script { paths: tag_list, mode: Mode::Status { code: 401, retry_after: None, count: None } },
    );
    let mut cleanup = Cleanup::new(&lab);
    let (paged_image, refused_image) =
        (format!("{}/{repo_path}:1.0.0", paging.addr), format!("{}/{repo_path}:1.0.0", refusing.addr));
    for (proxy, reference) in [(&paging.addr, &paged_image), (&refusing.addr, &refused_image)] {
        common::docker_as_ok(
            &lab,
            config.path(),
            &["login", "-u", &tokens.user, "--password-stdin", proxy],
            Some(&tokens.password),
        );
        lab.docker(&["tag", &image, reference]);
        cleanup.images.push(reference.clone());
        // Known to the engine by a digest of its own repository.
        common::docker_as_ok(&lab, config.path(), &["push", reference], None);
    }

    let (paged, refused) = (unique("vpaged"), unique("vrefused"));
    let (scope, scope_label) = scoped();
    let _a = lab.run(&paged, &paged_image, &["--label", &scope_label]);
    let _b = lab.run(&refused, &refused_image, &["--label", &scope_label]);
    let config_dir = config.path().to_string_lossy().to_string();
    let app = spawn_app_with(&lab, &[("DOCKER_CONFIG", &config_dir), ("SHIPSHAPE_SCOPE", &scope)]);

    let g = wait_group(&app, &paged_image, "paged versions", |g| g["newer"]["patch"].is_string()).await;
    assert_eq!(g["newer"], json!({"patch": "1.0.2100"}), "the last page's newest: {g}");
    assert_eq!(g["update_kind"], "patch", "{g}");
    let pages: Vec<(String, u16)> = paging
        .seen()
        .into_iter()
        .filter(|r| r.path.ends_with("/tags/list") && r.status == 200)
        .map(|r| (r.target, r.status))
        .collect();
    assert_eq!(pages.len(), 3, "three pages of 1000, one chain: {pages:?}");
    assert!(pages[1].0.contains("last=") && pages[2].0.contains("last="), "followed the Link: {pages:?}");

    let r = wait_group(&app, &refused_image, "refused listing", |g| g.get("versions_error").is_some()).await;
    assert_eq!(r["status"], "uptodate", "the digest check still works: {r}");
    assert_eq!(r["newer"], json!({}), "{r}");
    assert_eq!(r["version"], "1.0.0", "{r}");
    let reason = r["versions_error"].as_str().unwrap_or_default();
    assert!(reason.contains("401") || reason.contains("unauthorized"), "{r}");
    assert!(!app.log().contains(&tokens.password), "password in the log");
}
