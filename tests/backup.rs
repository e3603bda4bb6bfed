//! `shipshape backup <file>` against a running service: the copy, started
//! on by a fresh service with the same flags, serves the same sessions (same
//! cookie key) and the same history; an existing file is never overwritten.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::Value;

const PASSWORD: &str = "backup-test-password";
const PATIENCE: Duration = Duration::from_secs(180);

/// `shipshape backup <file>` with the service's data dir, as an operator
/// (or `docker exec`) would run it next to the running service.
fn backup(data_dir: &Path, file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shipshape"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHIPSHAPE_DATA_DIR", data_dir)
        .arg("backup")
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("shipshape backup runs")
}

async fn get(app: &common::TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let resp = common::http_client().get(app.url(path)).header(COOKIE, cookie).send().await.expect("GET");
    let status = resp.status();
    (status, resp.text().await.expect("body"))
}

async fn post(app: &common::TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let resp = common::http_client().post(app.url(path)).header(COOKIE, cookie).send().await.expect("POST");
    let status = resp.status();
    (status, resp.text().await.expect("body"))
}

async fn history(app: &common::TestApp, cookie: &str) -> Vec<Value> {
    let (status, body) = get(app, cookie, "/api/history?limit=500").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("history JSON: {e}: {body}"))
}

#[tokio::test]
async fn a_backup_taken_while_running_restores_sessions_and_history() {
    let lab = common::lab();
    lab.ensure_base_image();
    let flags = [("SHIPSHAPE_AUTH", "on"), ("SHIPSHAPE_AUTH_PASSWORD", PASSWORD)];
    let app = common::spawn_app_with(&lab, &flags);
    let (cookie, _) = common::session_cookie(&common::login_ok(&app, PASSWORD).await);

    // History: an update of a container whose image is the registry's ends
    // `unchanged`, and is written to the database.
    let container = lab.run(&common::unique("backup"), &lab.base_image, &[]);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = get(&app, &cookie, "/api/images").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body.contains(&container.name) {
            break;
        }
        assert!(Instant::now() < deadline, "{} never listed: {body}", container.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = post(&app, &cookie, &format!("/api/images/{}/update", container.short_id())).await;
    assert_eq!(status, StatusCode::OK, "update: {body}");
    let deadline = Instant::now() + PATIENCE;
    let before = loop {
        let entries = history(&app, &cookie).await;
        if entries.iter().any(|e| e["container_name"] == container.name.as_str()) {
            break entries;
        }
        assert!(Instant::now() < deadline, "the update never reached the history:\n{}", app.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // The backup, while the service runs, straight into a new data dir.
    let restored = tempfile::tempdir().expect("tempdir");
    let file = restored.path().join("shipshape.db");
    let out = backup(&app.data_dir, &file);
    assert!(out.status.success(), "backup failed: {}", String::from_utf8_lossy(&out.stderr));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("the backup file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup holds the cookie key: owner only");
    }
    let names: Vec<String> = std::fs::read_dir(restored.path())
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["shipshape.db"], "the backup is one self-contained file");

    // A second backup to the same file is refused, clearly, and changes nothing.
    let first = std::fs::read(&file).expect("read the backup");
    let again = backup(&app.data_dir, &file);
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read(&file).expect("read the backup"), first, "the existing file is untouched");
    // No database where the data dir should be: a clear error, nothing written.
    let empty = tempfile::tempdir().expect("tempdir");
    let missing = backup(empty.path(), &empty.path().join("out.db"));
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no database"), "{missing:?}");
    assert!(!empty.path().join("out.db").exists());

    // A fresh service on the backup alone, with the same flags.
    let restored_dir = restored.path().to_string_lossy().to_string();
    let mut env = flags.to_vec();
    env.push(("SHIPSHAPE_DATA_DIR", &restored_dir));
    let fresh = common::spawn_app_with(&lab, &env);
    let (status, body) = get(&fresh, &cookie, "/api/images").await;
    assert_eq!(status, StatusCode::OK, "the old session cookie works on the restored service: {body}");
    let after = history(&fresh, &cookie).await;
    for entry in &before {
        assert!(after.contains(entry), "{entry} missing from the restored history: {after:#?}");
    }
    // And the restored service refuses what the original refuses.
    let (status, _) = get(&fresh, "shipshape_session=forged", "/api/images").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    drop(container);
}
