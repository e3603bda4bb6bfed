//! A docker credential helper end to end: a `docker-credential-test` program
//! on `PATH`, named in `credHelpers` of the service's `DOCKER_CONFIG` for the
//! lab's htpasswd registry, is the only place the password can come from.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{find_container, group, lab, spawn_app_with, unique, Lab};
use serde_json::{json, Value};

/// Long enough for a loaded machine; a passing run never waits it out.
const PATIENCE: Duration = Duration::from_secs(30);

/// A directory holding `docker-credential-test`, which answers `get` for
/// `registry` with `user`/`secret`, "credentials not found" for anything
/// else, and appends each server URL it is asked about to `asked`.
fn helper_dir(registry: &str, user: &str, secret: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("helper dir");
    let answer = json!({ "ServerURL": registry, "Username": user, "Secret": secret }).to_string();
    let script = format!(
        "#!/bin/sh\n\
         [ \"$1\" = get ] || exit 9\n\
         url=$(cat)\n\
         printf '%s\\n' \"$url\" >> \"$(dirname \"$0\")/asked\"\n\
         if [ \"$url\" = '{registry}' ]; then\n\
         \x20 printf '%s\\n' '{answer}'\n\
         else\n\
         \x20 echo 'credentials not found in native keychain'\n\
         \x20 exit 1\n\
         fi\n"
    );
    let path = dir.path().join("docker-credential-test");
    std::fs::write(&path, script).expect("write helper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod helper");
    dir
}

/// A DOCKER_CONFIG dir whose config.json sends `registry` to the `test` helper, and holds nothing else.
fn config_dir(registry: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("docker config dir");
    let config = json!({ "credHelpers": { registry: "test" } });
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("write config.json");
    dir
}

fn asked(helper: &Path) -> Vec<String> {
    std::fs::read_to_string(helper.join("asked")).unwrap_or_default().lines().map(str::to_string).collect()
}

fn path_with(helper: &Path) -> String {
    format!("{}:{}", helper.display(), std::env::var("PATH").unwrap_or_default())
}

fn check_command(lab: &Lab, helper: &Path, config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shipshape"))
        .args(["check", "--json"])
        .env_clear()
        .env("PATH", path_with(helper))
        .env("DOCKER_HOST", &lab.docker_host)
        .env("DOCKER_CONFIG", config)
        .env("SHIPSHAPE_IGNORE_REGISTRIES", "docker.io")
        .env("SHIPSHAPE_DATA_DIR", "/nonexistent-shipshape-data")
        .output()
        .expect("shipshape check runs")
}

#[tokio::test]
async fn credentials_from_a_helper_on_path_reach_the_registry() {
    let lab = lab();
    let image = format!("{}/shipshape/base:latest", lab.auth_registry);
    let name = unique("helper");
    let _c = lab.run(&name, &image, &[]);
    let helper = helper_dir(&lab.auth_registry, &lab.auth_user, &lab.auth_password);
    let config = config_dir(&lab.auth_registry);
    let (path, config_s) = (path_with(helper.path()), config.path().to_string_lossy().to_string());

    let app = spawn_app_with(&lab, &[("PATH", &path), ("DOCKER_CONFIG", &config_s)]);
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
    let images = app.check_now().await;
    let g = group(&images, &image);
    assert_eq!(g["status"], "uptodate", "{g}");
    assert!(g.get("error").is_none(), "{g}");
    assert!(asked(helper.path()).contains(&lab.auth_registry), "helper asked for {:?}", asked(helper.path()));

    // `shipshape check` finds the same helper the same way.
    let out = check_command(&lab, helper.path(), config.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let images: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let (g, _) = find_container(&images, &name).expect("listed by shipshape check");
    assert_eq!(g["status"], "uptodate", "{g}");

    let body = serde_json::to_string(&app.images().await).expect("json");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    for text in [body, app.log(), stderr] {
        assert!(!text.contains(&lab.auth_password), "password leaked: {text}");
    }
}

#[tokio::test]
async fn a_helper_with_the_wrong_password_gets_401_and_its_secret_stays_hidden() {
    let lab = lab();
    let image = format!("{}/shipshape/base:latest", lab.auth_registry);
    let name = unique("helper-wrong");
    let _c = lab.run(&name, &image, &[]);
    let wrong = "helper-wrong-secret-4711";
    let helper = helper_dir(&lab.auth_registry, &lab.auth_user, wrong);
    let config = config_dir(&lab.auth_registry);
    let (path, config_s) = (path_with(helper.path()), config.path().to_string_lossy().to_string());

    let app = spawn_app_with(&lab, &[("PATH", &path), ("DOCKER_CONFIG", &config_s)]);
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
    let images = app.check_now().await;
    let g = group(&images, &image);
    assert_eq!(g["status"], "unknown", "{g}");
    let error = g["error"].as_str().expect("error given");
    assert!(error.contains(&lab.auth_registry) && error.contains("401"), "{error}");
    assert!(asked(helper.path()).contains(&lab.auth_registry), "helper asked for {:?}", asked(helper.path()));
    let body = serde_json::to_string(&images).expect("json");
    for text in [body, app.log()] {
        assert!(!text.contains(wrong), "helper secret leaked: {text}");
    }
}
