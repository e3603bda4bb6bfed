//! Update jobs end to end: the real service updates real containers on the
//! lab's private engine from the lab's registries — every setting kept,
//! failures rolled back to the very same container, progress and history
//! reported. (Crash recovery: tests/update_crash.rs.)

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::jobs::{
    build_image, check_history_shape, check_progress_shape, containers_of_image, delete_manifest, encode_image,
    engine_manifest_requests, engine_post, family, history, image_id, inspect, is_final, lab_image, local_image_id,
    netns, only_one_running, post_group_update, post_update, progress, registry_log_len, registry_log_since,
    restart_policy, run, same_digest, wait_final_progress, wait_history, Cleanup, InternalNetwork, JOB_PATIENCE,
    PHASES,
};
use common::{find_container, lab, spawn_app, spawn_app_with, unique, Lab, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// For the view to show a container; generous for a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// Short verification windows where the test is not about verification.
const QUICK_VERIFY: (&str, &str) = ("SHIPSHAPE_VERIFY_TIMEOUT", "2s");

/// A repository of its own on the lab's open registry (no tag).
fn repo(lab: &Lab, what: &str) -> String {
    format!("{}/upd/{}", lab.registry, unique(what))
}

/// The path of `reference`'s repository on its registry (`upd/x-1-2`).
fn repo_path(reference: &str) -> String {
    let path = reference.split_once('/').map_or(reference, |(_, p)| p);
    path.rsplit_once(':').map_or(path, |(r, _)| r).to_string()
}

/// A sleeping container without network whose stop takes `stop_timeout` s
/// (busybox `sleep` as PID 1 ignores SIGTERM); returns its full id.
fn run_sleeper(lab: &Lab, name: &str, image: &str, stop_timeout: u32, extra: &[&str]) -> String {
    let timeout = stop_timeout.to_string();
    let mut args = vec!["--network", "none", "--stop-timeout", &timeout];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[image, "sleep", "100000"]);
    run(lab, name, &args)
}

async fn wait_listed(app: &TestApp, name: &str) -> Vec<Value> {
    app.wait_images(PATIENCE, &format!("{name} listed"), |i| find_container(i, name).is_some()).await
}

// ------------------------------------------------------------------ rich

/// Go's zero values (null, false, 0, "", [], {}) dropped from objects: an
/// absent field and an empty one are the same setting.
fn norm(v: &Value) -> Value {
    fn zero(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(m) => m.is_empty(),
        }
    }
    let n = match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter_map(|(k, v)| {
                    let n = norm(v);
                    (!n.is_null()).then(|| (k.clone(), n))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(norm).collect()),
        other => other.clone(),
    };
    if zero(&n) {
        Value::Null
    } else {
        n
    }
}

/// Every key of two objects, except `except`, with equal (normalised) values.
fn differences(what: &str, before: &Value, after: &Value, except: &[&str]) -> Vec<String> {
    let (b, a) = (norm(before), norm(after));
    let empty = serde_json::Map::new();
    let (bm, am) = (b.as_object().unwrap_or(&empty), a.as_object().unwrap_or(&empty));
    let keys: BTreeSet<&String> = bm.keys().chain(am.keys()).collect();
    keys.into_iter()
        .filter(|k| !except.contains(&k.as_str()))
        .filter(|k| bm.get(*k) != am.get(*k))
        .map(|k| format!("{what}.{k}: before {:?}, after {:?}", bm.get(k), am.get(k)))
        .collect()
}

fn string_set(v: &Value) -> BTreeSet<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object().into_iter().flatten().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect()
}

/// What identifies a mount: type, volume name or bind source, target, writable.
fn mounts(details: &Value) -> BTreeSet<(String, String, String, bool)> {
    details["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let kind = m["Type"].as_str().unwrap_or_default().to_string();
            let source = if kind == "volume" { &m["Name"] } else { &m["Source"] };
            (
                kind,
                source.as_str().unwrap_or_default().to_string(),
                m["Destination"].as_str().unwrap_or_default().to_string(),
                m["RW"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

const RICH_V1: &str = r#"ENV APP_VERSION=1 MODE=image
LABEL app.version="1" app.kept="image"
HEALTHCHECK --interval=2s --timeout=3s --retries=3 CMD true
CMD ["sleep", "100000"]"#;

/// Changes ENV, labels, HEALTHCHECK, STOPSIGNAL, WORKDIR and CMD.
const RICH_V2: &str = r#"ENV APP_VERSION=2 MODE=image2 NEW_VAR=new
LABEL app.version="2" app.kept="image2" app.new="yes"
HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD cat /etc/passwd
STOPSIGNAL SIGINT
WORKDIR /tmp
CMD ["sleep", "100001"]"#;

#[tokio::test]
async fn a_rich_container_keeps_every_setting_and_takes_the_new_images_defaults() {
    let lab = lab();
    let net_a = InternalNetwork::create(&lab, "upd-rich-a");
    let net_b = InternalNetwork::create(&lab, "upd-rich-b");
    let bind = tempfile::tempdir().expect("bind dir");
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "rich"));
    cleanup.images.push(image.clone());
    build_image(&lab, &image, RICH_V1, false);

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bind.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(bind.path().join("file.txt"), "from the host\n").expect("bind file");
    let name = unique("upd-rich");
    cleanup.containers.push(name.clone());
    let named = unique("upd-rich-named");
    cleanup.volumes.push(named.clone());
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let (ip_a, ip_b) = (format!("{}.10", net_a.prefix), format!("{}.20", net_b.prefix));
    // As the API gets it from a client that can say everything (the docker
    // CLI cannot give an entrypoint of two words).
    let body = json!({
        "Image": image,
        "Entrypoint": ["sh", "-c"],
        "Cmd": ["sleep 100000"],
        "Env": ["MODE=user", "FOO=bar"],
        "Labels": {"user.label": "x", "app.kept": "user"},
        "User": "1000:1000",
        "StopTimeout": 1,
        "ExposedPorts": {"8080/tcp": {}},
        "Volumes": {"/anon": {}},
        "Healthcheck": {"Retries": 5},
        "HostConfig": {
            "Binds": [format!("{}:/bind:ro", bind.path().display()), format!("{named}:/named")],
            "NetworkMode": net_a.name,
            "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": port.to_string()}]},
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            "CapAdd": ["SYS_NICE"],
            "CapDrop": ["MKNOD", "CHOWN"],
            "Tmpfs": {"/scratch": "size=1m"},
            "ExtraHosts": [format!("db.internal:{}.99", net_a.prefix)],
            "Memory": 64 * 1024 * 1024,
            "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
        },
        "NetworkingConfig": {"EndpointsConfig": {net_a.name.clone(): {
            "Aliases": ["alias-a1", "alias-a2"],
            "IPAMConfig": {"IPv4Address": ip_a}
        }}}
    });
    engine_post(&lab, &format!("/containers/create?name={name}"), &body);
    lab.docker(&["network", "connect", "--alias", "alias-b", "--ip", &ip_b, &net_b.name, &name]);
    lab.docker(&["start", &name]);
    lab.docker(&["exec", "-u", "0", &name, "sh", "-c", "echo anon-data > /anon/a.txt; echo named-data > /named/n.txt"]);
    let before = inspect(&lab, &name);
    let old_id = before["Id"].as_str().expect("id").to_string();
    let anon = before["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["Destination"] == "/anon")
        .and_then(|m| m["Name"].as_str())
        .expect("an anonymous volume at /anon")
        .to_string();
    cleanup.volumes.push(anon.clone());
    assert_eq!(
        string_set(&before["Config"]["Env"]).into_iter().filter(|e| !e.starts_with("PATH=")).collect::<Vec<_>>(),
        ["APP_VERSION=1", "FOO=bar", "MODE=user"],
        "set-up: the engine merged the old image's ENV"
    );
    let old_image = inspect(&lab, before["Image"].as_str().expect("image id"));

    // A new version, in the registry only.
    let v2_digest = build_image(&lab, &image, RICH_V2, true);
    let app = spawn_app(&lab);
    wait_listed(&app, &name).await;
    post_update(&app, &old_id[..12]).await;
    let entries = wait_history(&app, &name, 1, JOB_PATIENCE).await;
    assert_eq!(check_history_shape(&entries[0]), "updated", "{entries:#?}\n{}", app.log());
    assert!(same_digest(&entries[0]["to_digest"], &v2_digest), "{entries:#?}");

    let new_id = only_one_running(&lab, &name);
    assert_ne!(new_id, old_id);
    assert!(lab.docker_output(&["inspect", &old_id]).status.code() != Some(0), "the old container is removed");
    let after = inspect(&lab, &name);
    let new_image = inspect(&lab, after["Image"].as_str().expect("image id"));
    assert_eq!(after["Image"], new_image["Id"]);
    assert_ne!(after["Image"], before["Image"], "runs the new image");
    assert!(
        new_image["RepoDigests"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d.as_str().is_some_and(|d| d.ends_with(&v2_digest))),
        "{:?}",
        new_image["RepoDigests"]
    );
    let mut diffs = Vec::new();

    // Config: the user's settings stay; what the old image gave is the new image's now.
    let (bc, ac) = (&before["Config"], &after["Config"]);
    diffs.extend(differences(
        "Config",
        bc,
        ac,
        &["Hostname", "Env", "Labels", "Healthcheck", "StopSignal", "WorkingDir", "Image", "Volumes"],
    ));
    let path = string_set(&new_image["Config"]["Env"]).into_iter().find(|e| e.starts_with("PATH=")).expect("PATH");
    let want_env: BTreeSet<String> =
        ["MODE=user", "FOO=bar", "APP_VERSION=2", "NEW_VAR=new", &path].into_iter().map(String::from).collect();
    if string_set(&ac["Env"]) != want_env {
        diffs.push(format!("Config.Env: {:?}, wanted {want_env:?}", ac["Env"]));
    }
    let labels: BTreeMap<String, String> =
        string_map(&ac["Labels"]).into_iter().filter(|(k, _)| !k.starts_with("shipshape.")).collect();
    let want_labels: BTreeMap<String, String> =
        [("user.label", "x"), ("app.kept", "user"), ("app.version", "2"), ("app.new", "yes")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    if labels != want_labels {
        diffs.push(format!("Config.Labels (without shipshape.*): {labels:?}, wanted {want_labels:?}"));
    }
    if string_map(&ac["Labels"]).get("shipshape.job").is_none_or(|op| op.is_empty()) {
        diffs.push(format!("no shipshape.job label: {:?}", ac["Labels"]));
    }
    let want_health = json!({
        "Test": ["CMD-SHELL", "cat /etc/passwd"],
        "Interval": 1_000_000_000u64,
        "Timeout": 2_000_000_000u64,
        "Retries": 5
    });
    if norm(&ac["Healthcheck"]) != want_health {
        diffs.push(format!(
            "Config.Healthcheck: {}, wanted {want_health} (before {})",
            ac["Healthcheck"], bc["Healthcheck"]
        ));
    }
    if ac["StopSignal"] != "SIGINT" || ac["WorkingDir"] != "/tmp" {
        diffs.push(format!("StopSignal/WorkingDir of the new image: {} {}", ac["StopSignal"], ac["WorkingDir"]));
    }
    if ac["Image"] != image.as_str() {
        diffs.push(format!("Config.Image {}, wanted {image}", ac["Image"]));
    }
    // The default hostname is the container's short id: it follows the new id.
    if ac["Hostname"] != new_id[..12] || bc["Hostname"] != old_id[..12] {
        diffs.push(format!("Hostname before {} after {}", bc["Hostname"], ac["Hostname"]));
    }

    // HostConfig: all of it, the anonymous volume aside (it may be pinned by name).
    let (bh, ah) = (&before["HostConfig"], &after["HostConfig"]);
    diffs.extend(differences("HostConfig", bh, ah, &["Binds", "Mounts"]));
    let (bb, ab) = (string_set(&bh["Binds"]), string_set(&ah["Binds"]));
    if !bb.is_subset(&ab) || ab.difference(&bb).any(|b| !b.contains(":/anon")) {
        diffs.push(format!("HostConfig.Binds before {bb:?} after {ab:?}"));
    }
    for m in ah["Mounts"].as_array().into_iter().flatten() {
        if m["Target"] != "/anon" || m["Source"] != anon.as_str() {
            diffs.push(format!("HostConfig.Mounts has {m} (only the anonymous volume may be pinned)"));
        }
    }
    if mounts(&before) != mounts(&after) {
        diffs.push(format!("Mounts before {:?} after {:?}", mounts(&before), mounts(&after)));
    }

    // Networks: the same, with the same aliases and addresses.
    let (bn, an) = (&before["NetworkSettings"]["Networks"], &after["NetworkSettings"]["Networks"]);
    let names = |n: &Value| n.as_object().map(|m| m.keys().cloned().collect::<BTreeSet<_>>()).unwrap_or_default();
    if names(bn) != names(an) || names(bn) != BTreeSet::from([net_a.name.clone(), net_b.name.clone()]) {
        diffs.push(format!("networks before {:?} after {:?}", names(bn), names(an)));
    }
    let short_ids = [&old_id[..12], &new_id[..12]];
    for net in names(bn) {
        let (b, a) = (&bn[&net], &an[&net]);
        let aliases = |e: &Value| -> BTreeSet<String> {
            string_set(&e["Aliases"]).into_iter().filter(|s| !short_ids.contains(&s.as_str())).collect()
        };
        if aliases(b) != aliases(a) {
            diffs.push(format!("{net} aliases before {:?} after {:?}", b["Aliases"], a["Aliases"]));
        }
        for key in ["IPAMConfig", "IPAddress", "NetworkID", "Links", "DriverOpts"] {
            if norm(&b[key]) != norm(&a[key]) {
                diffs.push(format!("{net}.{key}: before {} after {}", b[key], a[key]));
            }
        }
    }
    for key in ["Name", "Path", "Args", "Driver", "Platform", "AppArmorProfile"] {
        if before[key] != after[key] {
            diffs.push(format!("{key}: before {} after {}", before[key], after[key]));
        }
    }
    assert!(diffs.is_empty(), "the update changed settings:\n{}\n\nlog:\n{}", diffs.join("\n"), app.log());
    // Sanity: the old image's values really were different.
    assert_ne!(old_image["Config"]["Healthcheck"], new_image["Config"]["Healthcheck"]);

    // It works as before: healthy, the files and the data are there.
    assert_eq!(after["State"]["Health"]["Status"], "healthy", "verified healthy: {}", after["State"]);
    assert_eq!(after["RestartCount"], 0);
    let cat = |path: &str| lab.docker(&["exec", &name, "cat", path]);
    assert_eq!(cat("/bind/file.txt"), "from the host");
    assert_eq!(cat("/anon/a.txt"), "anon-data", "the anonymous volume's data survives");
    assert_eq!(cat("/named/n.txt"), "named-data");
    assert_eq!(lab.docker(&["exec", &name, "sh", "-c", "echo $MODE $APP_VERSION $FOO $NEW_VAR"]), "user 2 bar new");
}

// ------------------------------------------------------------------ rollbacks

/// A container on `image` (which runs its own CMD) whose next version is in
/// the registry only; returns the app, the container's full id.
async fn roll_back(lab: &Lab, image: &str, name: &str, env: &[(&str, &str)], run_args: &[&str]) -> (TestApp, String) {
    let mut args = vec!["--network", "none", "--stop-timeout", "1"];
    args.extend_from_slice(run_args);
    args.push(image);
    let old_id = run(lab, name, &args);
    let app = spawn_app_with(lab, env);
    wait_listed(&app, name).await;
    (app, old_id)
}

/// After a rollback: the very same container runs, under its name, with its
/// restart policy, nothing else was left, the job says why.
async fn assert_rolled_back(lab: &Lab, app: &TestApp, name: &str, old_id: &str, policy: &str, image: &str) -> Value {
    let p = wait_final_progress(app, &old_id[..12], JOB_PATIENCE).await;
    let status = p["status"].as_str().unwrap_or_default();
    assert!(status.starts_with("error: rolled back: ") && status.len() > "error: rolled back: ".len(), "{p}");
    let entries = wait_history(app, name, 1, JOB_PATIENCE).await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(check_history_shape(&entries[0]), "rolled_back", "{entries:#?}\n{}", app.log());
    assert_eq!(only_one_running(lab, name), old_id, "the same container runs again");
    assert_eq!(restart_policy(lab, name), policy, "its restart policy is restored");
    let details = inspect(lab, name);
    assert_eq!(details["Name"], format!("/{name}").as_str());
    assert_eq!(details["State"]["Running"], true);
    // No container of the new image stayed behind, under any name.
    let new_image = image_id(lab, image);
    assert_ne!(details["Image"], new_image.as_str(), "the pulled image is the new one");
    assert_eq!(containers_of_image(lab, &new_image), Vec::<String>::new(), "stray containers of the new image");
    entries[0].clone()
}

#[tokio::test]
async fn a_new_image_that_exits_at_once_is_rolled_back_to_the_same_container() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "exits"));
    cleanup.images.push(image.clone());
    build_image(&lab, &image, r#"CMD ["sleep", "100000"]"#, false);
    let name = unique("upd-exits");
    cleanup.containers.push(name.clone());
    // With a restart policy, the new container restarts over and over rather than staying down.
    let (app, old_id) = roll_back(&lab, &image, &name, &[], &["--restart", "unless-stopped"]).await;
    build_image(&lab, &image, r#"CMD ["sh", "-c", "exit 3"]"#, true);
    post_update(&app, &old_id[..12]).await;
    assert_rolled_back(&lab, &app, &name, &old_id, "unless-stopped:0", &image).await;
}

#[tokio::test]
async fn a_new_image_that_never_gets_healthy_is_rolled_back() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "unhealthy"));
    cleanup.images.push(image.clone());
    build_image(&lab, &image, r#"CMD ["sleep", "100000"]"#, false);
    let name = unique("upd-unhealthy");
    cleanup.containers.push(name.clone());
    let env = [("SHIPSHAPE_VERIFY_TIMEOUT", "5s")];
    let (app, old_id) = roll_back(&lab, &image, &name, &env, &["--restart", "on-failure:2"]).await;
    build_image(
        &lab,
        &image,
        "HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD false\nCMD [\"sleep\", \"100000\"]",
        true,
    );
    post_update(&app, &old_id[..12]).await;
    let entry = assert_rolled_back(&lab, &app, &name, &old_id, "on-failure:2", &image).await;
    let error = entry["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("health"), "the reason names the health check: {entry}");
}

#[tokio::test]
async fn a_failed_pull_leaves_the_old_container_untouched() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let repository = repo(&lab, "gone");
    let image = format!("{repository}:v1");
    cleanup.images.push(image.clone());
    let digest = build_image(&lab, &image, &format!("LABEL test.unique=\"{}\"", unique("gone")), false);
    let name = unique("upd-gone");
    cleanup.containers.push(name.clone());
    let old_id = run_sleeper(&lab, &name, &image, 1, &["--restart", "unless-stopped"]);
    let before = inspect(&lab, &name);
    let app = spawn_app_with(&lab, &[QUICK_VERIFY]);
    wait_listed(&app, &name).await;
    // The tag is deleted from the registry: nothing to pull.
    delete_manifest(&lab, &repo_path(&image), &digest).await;

    post_update(&app, &old_id[..12]).await;
    let p = wait_final_progress(&app, &old_id[..12], JOB_PATIENCE).await;
    let status = p["status"].as_str().unwrap_or_default();
    assert!(status.starts_with("error: ") && !status.starts_with("error: rolled back"), "{p}");
    let entries = wait_history(&app, &name, 1, JOB_PATIENCE).await;
    assert_eq!(check_history_shape(&entries[0]), "failed", "{entries:#?}");
    assert!(!entries[0]["error"].as_str().unwrap_or_default().contains(&lab.auth_password));

    assert_eq!(only_one_running(&lab, &name), old_id);
    let after = inspect(&lab, &name);
    // Untouched: never stopped, restarted or reconfigured.
    for pointer in
        ["/State/StartedAt", "/Image", "/HostConfig", "/Config", "/RestartCount", "/NetworkSettings/Networks"]
    {
        assert_eq!(before.pointer(pointer), after.pointer(pointer), "{pointer} changed");
    }
}

// ------------------------------------------------------------------ registries and groups

#[tokio::test]
async fn pulls_from_a_basic_auth_registry_with_credentials_from_docker_config() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}/upd/{}:v1", lab.auth_registry, unique("auth"));
    cleanup.images.push(image.clone());
    lab_image(&lab, &image, "auth one", false);
    let name = unique("upd-auth");
    cleanup.containers.push(name.clone());
    let old_id = run_sleeper(&lab, &name, &image, 1, &[]);
    let old_image = image_id(&lab, &image);
    let v2 = lab_image(&lab, &image, "auth two", true);
    // The service finds the login in DOCKER_CONFIG (the lab's, as spawn_app sets it).
    let app = spawn_app_with(&lab, &[QUICK_VERIFY]);
    wait_listed(&app, &name).await;
    post_update(&app, &old_id[..12]).await;
    let entries = wait_history(&app, &name, 1, JOB_PATIENCE).await;
    assert_eq!(check_history_shape(&entries[0]), "updated", "{entries:#?}\n{}", app.log());
    assert!(same_digest(&entries[0]["to_digest"], &v2), "{entries:#?}");
    let new_id = only_one_running(&lab, &name);
    assert_ne!(new_id, old_id);
    let running = lab.docker(&["inspect", "--format", "{{.Image}}", &name]);
    assert_ne!(running, old_image);
    assert_eq!(running, image_id(&lab, &image));
    let log = app.log();
    assert!(!log.contains(&lab.auth_password), "the password is in the log");
    assert!(!history(&app, None).await.iter().any(|e| e.to_string().contains(&lab.auth_password)));
}

#[tokio::test]
async fn a_group_update_pulls_once_and_recreates_every_container() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "group"));
    cleanup.images.push(image.clone());
    lab_image(&lab, &image, "group one", false);
    let names: Vec<String> = (0..3).map(|i| unique(&format!("upd-group{i}"))).collect();
    cleanup.containers.extend(names.iter().cloned());
    let old_ids: Vec<String> = names.iter().map(|n| run_sleeper(&lab, n, &image, 1, &[])).collect();
    let v2 = lab_image(&lab, &image, "group two", true);

    // What one pull of such an image costs in manifest requests, measured on
    // a twin repository with the docker CLI.
    let twin = format!("{}:v1", repo(&lab, "group-twin"));
    cleanup.images.push(twin.clone());
    lab_image(&lab, &twin, "twin", true);
    let mark = registry_log_len(&lab);
    lab.docker(&["pull", "-q", &twin]);
    let one_pull = engine_manifest_requests(&registry_log_since(&lab, mark), &repo_path(&twin));
    assert!(one_pull > 0, "the registry log shows the engine's requests");

    let app = spawn_app_with(&lab, &[QUICK_VERIFY]);
    let images =
        app.wait_images(PATIENCE, "the group of three", |i| names.iter().all(|n| find_container(i, n).is_some())).await;
    let (group, _) = find_container(&images, &names[0]).expect("listed");
    assert_eq!(group["image"], image.as_str());
    let mark = registry_log_len(&lab);
    post_group_update(&app, &encode_image(&image)).await;
    for (name, old_id) in names.iter().zip(&old_ids) {
        let entries = wait_history(&app, name, 1, JOB_PATIENCE).await;
        assert_eq!(entries.len(), 1, "{entries:#?}");
        assert_eq!(check_history_shape(&entries[0]), "updated", "{name}: {entries:#?}\n{}", app.log());
        assert!(same_digest(&entries[0]["to_digest"], &v2), "{entries:#?}");
        let new_id = only_one_running(&lab, name);
        assert_ne!(&new_id, old_id);
        assert_eq!(lab.docker(&["inspect", "--format", "{{.Image}}", name]), image_id(&lab, &image));
    }
    let pulls = engine_manifest_requests(&registry_log_since(&lab, mark), &repo_path(&image));
    assert!(
        pulls > 0 && pulls <= one_pull,
        "the image is pulled once: {pulls} manifest requests by the engine, one pull makes {one_pull}"
    );
}

#[tokio::test]
async fn a_container_sharing_the_network_of_the_updated_one_follows_it() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "supplier"));
    cleanup.images.push(image.clone());
    lab_image(&lab, &image, "supplier one", false);
    let (supplier, dependent) = (unique("upd-supplier"), unique("upd-dependent"));
    // The dependent is removed first (Cleanup goes backwards).
    cleanup.containers.extend([supplier.clone(), dependent.clone()]);
    let old_id = run_sleeper(&lab, &supplier, &image, 1, &[]);
    let network = format!("container:{supplier}");
    run(&lab, &dependent, &["--network", &network, "--stop-timeout", "1", &lab.base_image, "sleep", "100000"]);
    assert_eq!(netns(&lab, &supplier), netns(&lab, &dependent), "set-up: one namespace");
    lab_image(&lab, &image, "supplier two", true);

    let app = spawn_app_with(&lab, &[QUICK_VERIFY]);
    wait_listed(&app, &dependent).await;
    wait_listed(&app, &supplier).await;
    post_update(&app, &old_id[..12]).await;
    let entries = wait_history(&app, &supplier, 1, JOB_PATIENCE).await;
    assert_eq!(check_history_shape(&entries[0]), "updated", "{entries:#?}\n{}", app.log());
    let new_id = only_one_running(&lab, &supplier);
    assert_ne!(new_id, old_id);
    // The dependent runs again, in the new supplier's namespace.
    let deadline = Instant::now() + JOB_PATIENCE;
    loop {
        let found = family(&lab, &dependent);
        let shared = netns(&lab, &supplier);
        if found.len() == 1 && found[0].state == "running" && shared.is_some() && netns(&lab, &dependent) == shared {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{dependent} does not share {supplier}'s new namespace: {found:#?} {:?} vs {shared:?}\n{}",
            netns(&lab, &dependent),
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mode = lab.docker(&["inspect", "--format", "{{.HostConfig.NetworkMode}}", &dependent]);
    assert!(mode == network || mode == format!("container:{new_id}"), "{mode}");
}

#[tokio::test]
async fn an_image_that_is_already_current_is_left_unchanged() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "current"));
    cleanup.images.push(image.clone());
    let digest = lab_image(&lab, &image, "current", false);
    let name = unique("upd-current");
    cleanup.containers.push(name.clone());
    let id = run_sleeper(&lab, &name, &image, 1, &[]);
    let started = lab.docker(&["inspect", "--format", "{{.State.StartedAt}}", &name]);
    let app = spawn_app_with(&lab, &[QUICK_VERIFY]);
    wait_listed(&app, &name).await;

    // The group, named as the contract's example does: raw slashes and colons.
    post_group_update(&app, &image).await;
    let p = wait_final_progress(&app, &id[..12], JOB_PATIENCE).await;
    assert_eq!(p["status"], "done", "{p}");
    let entries = wait_history(&app, &name, 1, JOB_PATIENCE).await;
    assert_eq!(check_history_shape(&entries[0]), "unchanged", "{entries:#?}");
    assert!(same_digest(&entries[0]["from_digest"], &digest), "{entries:#?}");
    // And the container alone.
    post_update(&app, &id[..12]).await;
    let entries = wait_history(&app, &name, 2, JOB_PATIENCE).await;
    assert_eq!(check_history_shape(&entries[0]), "unchanged", "{entries:#?}");
    assert_eq!(only_one_running(&lab, &name), id, "nothing touched");
    assert_eq!(lab.docker(&["inspect", "--format", "{{.State.StartedAt}}", &name]), started, "never restarted");
}

#[tokio::test]
async fn a_second_request_while_the_job_runs_starts_nothing() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "twice"));
    cleanup.images.push(image.clone());
    lab_image(&lab, &image, "twice one", false);
    let name = unique("upd-twice");
    cleanup.containers.push(name.clone());
    // Its stop alone takes 3 s: the job is still running when the second request comes.
    let old_id = run_sleeper(&lab, &name, &image, 3, &[]);
    lab_image(&lab, &image, "twice two", true);
    let app = spawn_app_with(&lab, &[QUICK_VERIFY]);
    wait_listed(&app, &name).await;

    post_update(&app, &old_id[..12]).await;
    post_update(&app, &old_id[..12]).await;
    // Precondition of this test: the first job had not ended at the second request.
    let (code, body) = progress(&app, &old_id[..12]).await;
    if code == 200 {
        let p: Value = serde_json::from_str(&body).expect("progress json");
        assert!(!is_final(&check_progress_shape(&p)), "the job ended before the second request: {p}");
    } else {
        assert_eq!((code, body.as_str()), (404, "no progress\n"));
    }
    let entries = wait_history(&app, &name, 1, JOB_PATIENCE).await;
    assert_eq!(check_history_shape(&entries[0]), "updated", "{entries:#?}");
    let new_id = only_one_running(&lab, &name);
    // Nothing else follows: one job, one entry.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = history(&app, None).await;
    assert_eq!(all.len(), 1, "one job ran: {all:#?}");
    assert_eq!(only_one_running(&lab, &name), new_id);
    // Once it has ended, a request starts a job again (nothing new: unchanged).
    wait_listed(&app, &name).await;
    app.wait_images(PATIENCE, "the new container listed", |i| {
        find_container(i, &name).is_some_and(|(_, c)| c["container_id"] == new_id[..12])
    })
    .await;
    post_update(&app, &new_id[..12]).await;
    let entries = wait_history(&app, &name, 2, JOB_PATIENCE).await;
    assert_eq!(check_history_shape(&entries[0]), "unchanged", "{entries:#?}");
}

// ------------------------------------------------------------------ progress and history

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_message(ws: &mut WsStream, deadline: Instant) -> Value {
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("websocket message in time")
            .expect("stream open")
            .expect("websocket message");
        match msg {
            Message::Text(text) => return serde_json::from_str(&text).expect("json message"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected websocket message {other:?}"),
        }
    }
}

#[tokio::test]
async fn progress_is_seen_over_the_websocket_and_via_get_under_both_ids() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "progress"));
    cleanup.images.push(image.clone());
    lab_image(&lab, &image, "progress one", false);
    let name = unique("upd-progress");
    cleanup.containers.push(name.clone());
    let old_id = run_sleeper(&lab, &name, &image, 1, &[]);
    let old_image = image_id(&lab, &image);
    cleanup.images.push(old_image.clone());
    lab_image(&lab, &image, "progress two", true);
    let app = spawn_app_with(&lab, &[QUICK_VERIFY]);
    wait_listed(&app, &name).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("websocket connects");

    post_update(&app, &old_id[..12]).await;
    let deadline = Instant::now() + JOB_PATIENCE;
    let mut seen: Vec<(String, Value)> = Vec::new();
    let mut ended: Option<Value> = None;
    while ended.is_none() || !seen.last().is_some_and(|(_, p)| is_final(p["status"].as_str().unwrap_or(""))) {
        let msg = next_message(&mut ws, deadline).await;
        match msg["type"].as_str() {
            Some("progress") => {
                let id = msg["container_id"].as_str().expect("container_id").to_string();
                assert_eq!(id.len(), 12, "{msg}");
                if id == old_id[..12] || family(&lab, &name).iter().any(|c| c.id.starts_with(&id)) {
                    check_progress_shape(&msg["data"]);
                    seen.push((id, msg["data"].clone()));
                }
            }
            Some("history") if msg["data"]["container_name"] == name.as_str() => ended = Some(msg["data"].clone()),
            Some("history") | Some("images") => {}
            other => panic!("unknown message type {other:?}: {msg}"),
        }
    }
    let ended = ended.expect("history message");
    assert_eq!(check_history_shape(&ended), "updated", "{ended}");
    // The phases in order, a percentage that never goes back, `done` at 100 last.
    let statuses: Vec<&str> = seen.iter().map(|(_, p)| p["status"].as_str().unwrap_or("")).collect();
    let rank = |s: &str| PHASES.iter().position(|p| *p == s).unwrap_or_else(|| panic!("status {s:?} in {statuses:?}"));
    assert!(statuses.windows(2).all(|w| rank(w[0]) <= rank(w[1])), "phases out of order: {statuses:?}");
    assert!(seen.len() >= 2, "more than the final state: {statuses:?}");
    let percents: Vec<u64> = seen.iter().map(|(_, p)| p["percent"].as_u64().unwrap_or(0)).collect();
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "percent went backwards: {percents:?}");
    let (_, last) = seen.last().expect("progress");
    assert_eq!((last["status"].as_str(), last["percent"].as_u64()), (Some("done"), Some(100)), "{last}");

    // GET, under the id the update was started with and under the new one.
    let new_id = only_one_running(&lab, &name);
    for id in [&old_id[..12], &new_id[..12]] {
        let (code, body) = progress(&app, id).await;
        assert_eq!(code, 200, "{id}: {body}");
        let p: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(p, *last, "GET answers the final state the websocket sent");
    }
    // Without SHIPSHAPE_CLEANUP the old image stays.
    assert!(local_image_id(&lab, &old_image).is_some(), "the old image was removed without SHIPSHAPE_CLEANUP");
}

#[tokio::test]
async fn history_lists_every_outcome_newest_first() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let app = spawn_app_with(&lab, &[QUICK_VERIFY]);
    let mut expected: Vec<(String, &str)> = Vec::new();

    // updated
    let image = format!("{}:v1", repo(&lab, "hist-upd"));
    cleanup.images.push(image.clone());
    let v1 = lab_image(&lab, &image, "one", false);
    let name = unique("upd-hist-updated");
    cleanup.containers.push(name.clone());
    let id = run_sleeper(&lab, &name, &image, 1, &[]);
    let v2 = lab_image(&lab, &image, "two", true);
    wait_listed(&app, &name).await;
    post_update(&app, &id[..12]).await;
    let e = wait_history(&app, &name, 1, JOB_PATIENCE).await;
    assert!(same_digest(&e[0]["from_digest"], &v1) && same_digest(&e[0]["to_digest"], &v2), "{e:#?}");
    expected.push((name, "updated"));

    // rolled_back
    let image = format!("{}:v1", repo(&lab, "hist-rb"));
    cleanup.images.push(image.clone());
    build_image(&lab, &image, r#"CMD ["sleep", "100000"]"#, false);
    let name = unique("upd-hist-rolled");
    cleanup.containers.push(name.clone());
    let id = run(&lab, &name, &["--network", "none", "--stop-timeout", "1", &image]);
    build_image(&lab, &image, r#"CMD ["false"]"#, true);
    wait_listed(&app, &name).await;
    post_update(&app, &id[..12]).await;
    wait_history(&app, &name, 1, JOB_PATIENCE).await;
    expected.push((name, "rolled_back"));

    // failed
    let image = format!("{}:v1", repo(&lab, "hist-fail"));
    cleanup.images.push(image.clone());
    let digest = build_image(&lab, &image, &format!("LABEL test.unique=\"{}\"", unique("gone")), false);
    let name = unique("upd-hist-failed");
    cleanup.containers.push(name.clone());
    let id = run_sleeper(&lab, &name, &image, 1, &[]);
    delete_manifest(&lab, &repo_path(&image), &digest).await;
    wait_listed(&app, &name).await;
    post_update(&app, &id[..12]).await;
    wait_history(&app, &name, 1, JOB_PATIENCE).await;
    expected.push((name, "failed"));

    // unchanged
    let image = format!("{}:v1", repo(&lab, "hist-same"));
    cleanup.images.push(image.clone());
    lab_image(&lab, &image, "same", false);
    let name = unique("upd-hist-unchanged");
    cleanup.containers.push(name.clone());
    let id = run_sleeper(&lab, &name, &image, 1, &[]);
    wait_listed(&app, &name).await;
    post_update(&app, &id[..12]).await;
    wait_history(&app, &name, 1, JOB_PATIENCE).await;
    expected.push((name, "unchanged"));

    let all = history(&app, None).await;
    let got: Vec<(String, String)> =
        all.iter().map(|e| (e["container_name"].as_str().unwrap_or("").to_string(), check_history_shape(e))).collect();
    let want: Vec<(String, String)> = expected.iter().rev().map(|(n, r)| (n.clone(), r.to_string())).collect();
    assert_eq!(got, want, "newest first: {all:#?}");
    let ids: BTreeSet<&str> = all.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), 4, "distinct ids: {all:#?}");
    assert!(all.windows(2).all(|w| w[0]["finished_at"].as_str() >= w[1]["finished_at"].as_str()), "{all:#?}");
    let two = history(&app, Some(2)).await;
    assert_eq!(two, all[..2].to_vec(), "limit=2 gives the two newest");
    assert_eq!(history(&app, Some(500)).await, all);
}

// ------------------------------------------------------------------ automatic

#[tokio::test]
async fn auto_update_happens_after_a_poll_and_only_where_it_is_on() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let (auto_image, manual_image) = (format!("{}:v1", repo(&lab, "auto")), format!("{}:v1", repo(&lab, "manual")));
    cleanup.images.extend([auto_image.clone(), manual_image.clone()]);
    lab_image(&lab, &auto_image, "auto one", false);
    lab_image(&lab, &manual_image, "manual one", false);
    let (auto, manual) = (unique("upd-auto"), unique("upd-manual"));
    cleanup.containers.extend([auto.clone(), manual.clone()]);
    let auto_id = run_sleeper(&lab, &auto, &auto_image, 1, &[]);
    let manual_id = run_sleeper(&lab, &manual, &manual_image, 1, &[]);
    let app = spawn_app_with(&lab, &[QUICK_VERIFY, ("SHIPSHAPE_POLL_INTERVAL", "2s")]);
    wait_listed(&app, &auto).await;
    wait_listed(&app, &manual).await;
    let resp = app.client.post(app.url(&format!("/api/images/{}/auto-update", &auto_id[..12]))).send().await;
    let resp = resp.expect("toggle");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({"auto_update": true}));

    // New versions of both appear; nobody asks: a poll finds them.
    let v2 = lab_image(&lab, &auto_image, "auto two", true);
    lab_image(&lab, &manual_image, "manual two", true);
    let entries = wait_history(&app, &auto, 1, JOB_PATIENCE).await;
    assert_eq!(check_history_shape(&entries[0]), "updated", "{entries:#?}\n{}", app.log());
    assert!(same_digest(&entries[0]["to_digest"], &v2));
    let new_id = only_one_running(&lab, &auto);
    assert_ne!(new_id, auto_id);
    // The other one is reported outdated and left alone.
    app.wait_images(PATIENCE, "the manual one outdated", |i| {
        find_container(i, &manual).is_some_and(|(_, c)| c["status"] == "outdated")
    })
    .await;
    let images = app
        .wait_images(PATIENCE, "the updated one listed up to date with its flag", |i| {
            find_container(i, &auto)
                .is_some_and(|(_, c)| c["container_id"] == new_id[..12] && c["status"] == "uptodate")
        })
        .await;
    let (_, item) = find_container(&images, &auto).expect("listed");
    assert_eq!(item["auto_update"], true, "the flag follows the container to its new id");
    assert_eq!(only_one_running(&lab, &manual), manual_id);
    assert!(history(&app, None).await.iter().all(|e| e["container_name"] != manual.as_str()));
}

#[tokio::test]
async fn cleanup_removes_the_old_image_once_unused() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "cleanup"));
    cleanup.images.push(image.clone());
    lab_image(&lab, &image, "cleanup one", false);
    let name = unique("upd-cleanup");
    cleanup.containers.push(name.clone());
    let old_id = run_sleeper(&lab, &name, &image, 1, &[]);
    let old_image = image_id(&lab, &image);
    cleanup.images.push(old_image.clone());
    lab_image(&lab, &image, "cleanup two", true);
    let app = spawn_app_with(&lab, &[QUICK_VERIFY, ("SHIPSHAPE_CLEANUP", "true")]);
    wait_listed(&app, &name).await;
    post_update(&app, &old_id[..12]).await;
    let entries = wait_history(&app, &name, 1, JOB_PATIENCE).await;
    assert_eq!(check_history_shape(&entries[0]), "updated", "{entries:#?}\n{}", app.log());
    only_one_running(&lab, &name);
    let deadline = Instant::now() + PATIENCE;
    while local_image_id(&lab, &old_image).is_some() {
        assert!(Instant::now() < deadline, "old image {old_image} still there\n{}", app.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(local_image_id(&lab, &image).is_some(), "the new image stays");
}
