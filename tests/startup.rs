//! Start-up with bad configuration: one clear line and a non-zero exit; an
//! engine that does not answer is waited for while /health already answers,
//! and used as soon as it answers.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{find_container, unique};

/// Long enough for a loaded machine; a passing run never waits it out.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs the service to its exit; never against the user's daemon: the lab's
/// socket unless a case names another.
fn shipshape(env: &[(&str, &str)]) -> std::process::Output {
    let lab = common::lab();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shipshape"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHIPSHAPE_LISTEN", "127.0.0.1:0")
        .env("DOCKER_HOST", &lab.docker_host);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("shipshape runs")
}

/// A tracing line at INFO (`2026-01-01T00:00:00.000000Z  INFO ...`): progress
/// the service may report before it meets the bad value.
fn is_info_log(line: &str) -> bool {
    let mut words = line.split_whitespace();
    words.next().is_some_and(|t| t.ends_with('Z') && t.contains('T')) && words.next() == Some("INFO")
}

#[test]
fn bad_values_fail_with_one_clear_line_and_exit_code_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let data = dir.path().join("data").to_string_lossy().to_string();
    let not_dir = file.join("data");
    let not_dir_s = not_dir.to_string_lossy().to_string();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr").to_string();
    let cases: [(&[(&str, &str)], String); 4] = [
        (
            &[("SHIPSHAPE_DATA_DIR", &not_dir_s)],
            format!("shipshape: cannot create data directory {}: Not a directory (os error 20)", not_dir.display()),
        ),
        (
            &[("SHIPSHAPE_DATA_DIR", &data), ("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
            "shipshape: docker engine unreachable: no socket at /nonexistent/docker.sock (is DOCKER_HOST right?)"
                .to_string(),
        ),
        (
            &[("SHIPSHAPE_DATA_DIR", &data), ("SHIPSHAPE_AUTH_PASSWORD_HASH", "plain-text")],
            "shipshape: SHIPSHAPE_AUTH_PASSWORD_HASH is not an argon2 PHC string ($argon2id$v=19$...)".to_string(),
        ),
        (
            &[("SHIPSHAPE_DATA_DIR", &data), ("SHIPSHAPE_LISTEN", &taken_addr)],
            format!("shipshape: cannot listen on {taken_addr}: Address already in use (os error 98)"),
        ),
    ];
    for (env, expected) in cases {
        let out = shipshape(env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{env:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !is_info_log(l)).collect();
        assert_eq!(lines, [expected.as_str()], "{env:?}: the whole stderr:\n{stderr}");
        assert!(out.stdout.is_empty(), "{env:?}: {}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn an_unparsable_setting_is_a_usage_error_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data").to_string_lossy().to_string();
    let out = shipshape(&[("SHIPSHAPE_POLL_INTERVAL", "soon"), ("SHIPSHAPE_DATA_DIR", &data)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        "error: invalid value 'soon' for '--poll-interval <POLL_INTERVAL>': \
         expected number at 0 (examples: 30s, 15m, 6h)\n\nFor more information, try '--help'.\n"
    );
    // Refused before anything was touched.
    assert!(!Path::new(&data).exists(), "data dir created for a bad setting");
}

#[tokio::test]
async fn an_engine_that_does_not_answer_is_waited_for_then_used() {
    let lab = common::lab();
    let name = unique("engine-back");
    let c = lab.run(&name, &lab.base_image, &[]);

    // A socket file nobody answers on: the daemon is down, not misconfigured.
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    let host = format!("unix://{}", socket.display());
    let app = common::spawn_app_with(&lab, &[("DOCKER_HOST", &host)]);

    let health = app.client.get(app.url("/health")).send().await.expect("health");
    assert_eq!(health.status(), 200);
    assert_eq!(app.images().await, Vec::<serde_json::Value>::new());
    let deadline = Instant::now() + PATIENCE;
    while !app.log().contains("docker engine unreachable") {
        assert!(Instant::now() < deadline, "no word of the unreachable engine:\n{}", app.log());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Still down: nothing listed.
    assert_eq!(app.images().await, Vec::<serde_json::Value>::new());

    // The engine comes back at the same path: the lab's daemon, through a
    // symlink swapped in atomically.
    let lab_socket = lab.docker_host.strip_prefix("unix://").expect("the lab's daemon is on a unix socket");
    let link = dir.path().join("docker.sock.new");
    std::os::unix::fs::symlink(lab_socket, &link).expect("symlink");
    std::fs::rename(&link, &socket).expect("swap the socket");

    let images = app
        .wait_images(PATIENCE, "the lab's container once the engine answers", |i| find_container(i, &name).is_some())
        .await;
    let (_, item) = find_container(&images, &name).expect("listed");
    assert_eq!(item["container_id"], c.short_id());
}
