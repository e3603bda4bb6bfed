//! Start-up with bad configuration: one clear line and a non-zero exit; an
//! engine that does not answer is waited for while /health already answers.

mod common;

use std::process::Command;
use std::time::Duration;

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

#[test]
fn bad_values_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let data = dir.path().join("data").to_string_lossy().to_string();
    let not_dir = file.join("data").to_string_lossy().to_string();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("SHIPSHAPE_POLL_INTERVAL", "soon"), ("SHIPSHAPE_DATA_DIR", &data)], "invalid value 'soon'"),
        (&[("SHIPSHAPE_DATA_DIR", &not_dir)], "cannot create data directory"),
        (&[("SHIPSHAPE_DATA_DIR", &data), ("DOCKER_HOST", "unix:///nonexistent/docker.sock")], "no socket at"),
        (&[("SHIPSHAPE_DATA_DIR", &data), ("SHIPSHAPE_AUTH_PASSWORD_HASH", "plain-text")], "not an argon2 PHC string"),
    ];
    for (env, expected) in cases {
        let out = shipshape(env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} started");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
        let error_lines = stderr.lines().filter(|l| l.contains("error") || l.starts_with("shipshape:")).count();
        assert!(error_lines >= 1, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn an_engine_that_does_not_answer_is_waited_for() {
    let lab = common::lab();
    // A socket file nobody answers on: the daemon is down, not misconfigured.
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    drop(listener);
    let host = format!("unix://{}", socket.display());
    let app = common::spawn_app_with(&lab, &[("DOCKER_HOST", &host)]);
    let health = app.client.get(app.url("/health")).send().await.expect("health");
    assert_eq!(health.status(), 200);
    assert_eq!(app.images().await, Vec::<serde_json::Value>::new());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.log().contains("docker engine unreachable"), "{}", app.log());
}
