//! Swarm services on the lab's one-node Swarm manager (a private dockerd of
//! its own): listed with their status, updated the Swarm way (a new digest
//! in the spec, Swarm's rolling update), rolled back by Swarm when the new
//! tasks die, automatically when labelled; their task containers are never
//! recreated by a container job.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::jobs::{build_image, wait_history, Cleanup, JOB_PATIENCE};
use common::{lab, spawn_app_with, unique, Lab, TestApp};
use futures::StreamExt;
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const PATIENCE: Duration = Duration::from_secs(90);

/// The lab's Swarm manager: its socket, read from the lab env like the rest.
fn swarm_host(lab: &Lab) -> String {
    let env = std::fs::read_to_string(lab.dir.join("env")).expect("lab env");
    let host = env
        .lines()
        .find_map(|l| l.trim().strip_prefix("export LAB_DOCKER_SWARM="))
        .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
        .expect("LAB_DOCKER_SWARM in the lab env (scripts/lab up)");
    assert!(host.contains(&*lab.dir.to_string_lossy()), "not the lab's swarm engine: {host}");
    host
}

fn on_swarm(lab: &Lab, args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", swarm_host(lab))
        .env("DOCKER_CONFIG", &lab.docker_config)
        .output()
        .expect("docker CLI runs")
}

fn swarm_ok(lab: &Lab, args: &[&str]) -> String {
    let out = on_swarm(lab, args);
    assert!(out.status.success(), "docker {args:?} on the swarm engine: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes the service when dropped.
struct ServiceGuard<'a>(&'a Lab, String);

impl Drop for ServiceGuard<'_> {
    fn drop(&mut self) {
        let _ = on_swarm(self.0, &["service", "rm", &self.1]);
    }
}

fn spec_image(lab: &Lab, service: &str) -> String {
    swarm_ok(lab, &["service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", service])
}

/// The images of the service's running task containers.
fn running_task_images(lab: &Lab, service: &str) -> Vec<String> {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let ids = swarm_ok(lab, &["ps", "-q", "--filter", &filter]);
    ids.split_whitespace().map(|id| swarm_ok(lab, &["inspect", "--format", "{{.Config.Image}}", id])).collect()
}

async fn services(app: &TestApp) -> Vec<Value> {
    let resp = app.client.get(app.url("/api/services")).send().await.expect("GET services");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("services JSON")
}

async fn wait_service(app: &TestApp, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let all = services(app).await;
        if let Some(s) = all.iter().find(|s| s["name"] == name && pred(s)) {
            return s.clone();
        }
        assert!(Instant::now() < deadline, "{what}: not seen within {PATIENCE:?}: {all:#?}\n{}", app.log());
        app.check_now().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn post(app: &TestApp, path: &str) -> (u16, String) {
    let resp = app.client.post(app.url(path)).send().await.expect("POST");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

#[tokio::test]
async fn services_are_updated_and_rolled_back_the_swarm_way() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}/swarm/{}:1", lab.registry, unique("svc"));
    cleanup.images.push(image.clone());
    let v1 = build_image(&lab, &image, "LABEL v=1", false);
    let name = unique("svc");
    swarm_ok(
        &lab,
        &[
            "service",
            "create",
            "-d",
            "--name",
            &name,
            "--replicas",
            "2",
            "--network",
            "host",
            "--stop-grace-period",
            "1s",
            "--update-monitor",
            "2s",
            &image,
            "sleep",
            "100000",
        ],
    );
    let _service = ServiceGuard(&lab, name.clone());
    assert_eq!(spec_image(&lab, &name), format!("{image}@{v1}"), "the CLI pins the digest");
    let v2 = build_image(&lab, &image, "LABEL v=2", false);

    let app = spawn_app_with(&lab, &[("DOCKER_HOST", &swarm_host(&lab)), ("SHIPSHAPE_VERIFY_TIMEOUT", "2s")]);
    let s = wait_service(&app, &name, "outdated with both replicas", |s| {
        s["status"] == "outdated" && s["replicas"]["running"] == 2
    })
    .await;
    assert_eq!(s["image"], image.as_str(), "{s}");
    assert_eq!(s["replicas"]["desired"], 2, "{s}");
    assert_eq!(s["digest"], common::short(&v1).as_str(), "{s}");
    assert_eq!(s["remote_digest"], common::short(&v2).as_str(), "{s}");
    assert_eq!(s["auto_update"], false, "{s}");
    let tasks = s["tasks"].as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 2, "{s}");
    assert!(tasks.iter().all(|t| t["state"] == "running" && t["digest"] == common::short(&v1).as_str()), "{s}");
    let id = s["id"].as_str().expect("service id").to_string();

    // Its task containers are Swarm's: not listed as containers, and a
    // container update of one is refused.
    let filter = format!("label=com.docker.swarm.service.name={name}");
    let task =
        swarm_ok(&lab, &["ps", "-q", "--filter", &filter]).split_whitespace().next().expect("a task").to_string();
    let (status, body) = post(&app, &format!("/api/images/{task}/update")).await;
    assert_eq!((status, body.as_str()), (409, format!("managed by swarm service {name}\n").as_str()));
    let images = app.images().await;
    assert!(common::find_container(&images, &format!("{name}.1")).is_none(), "tasks are not containers: {images:#?}");
    assert!(!serde_json::to_string(&images).unwrap_or_default().contains(&name), "{images:#?}");

    // Update: Swarm's rolling update to the new digest, followed on the websocket.
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url()).await.expect("websocket");
    let (status, body) = post(&app, &format!("/api/services/{id}/update")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"updating"}"#));
    let mut states = Vec::new();
    let deadline = Instant::now() + JOB_PATIENCE;
    while Instant::now() < deadline {
        let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await else {
            continue;
        };
        let msg: Value = serde_json::from_str(&text).expect("ws JSON");
        if msg["type"] == "service_progress" && msg["data"]["service"] == name.as_str() {
            states.push(msg["data"]["state"].as_str().unwrap_or_default().to_string());
            if msg["data"]["done"] == true {
                break;
            }
        }
    }
    assert_eq!(states.last().map(String::as_str), Some("updated"), "{states:?}\n{}", app.log());
    assert!(states.iter().any(|s| s == "updating" || s == "completed"), "Swarm's own states: {states:?}");
    let entries = wait_history(&app, &name, 1, JOB_PATIENCE).await;
    assert_eq!(entries[0]["result"], "updated", "{entries:#?}");
    assert_eq!(entries[0]["from_digest"], v1.as_str(), "{entries:#?}");
    assert_eq!(entries[0]["to_digest"], v2.as_str(), "{entries:#?}");
    assert_eq!(spec_image(&lab, &name), format!("{image}@{v2}"));
    let target = format!("{image}@{v2}");
    let deadline = Instant::now() + PATIENCE;
    while running_task_images(&lab, &name) != [target.clone(), target.clone()] {
        assert!(Instant::now() < deadline, "tasks: {:?}", running_task_images(&lab, &name));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_service(&app, &name, "up to date", |s| s["status"] == "uptodate").await;

    // Automatic, and broken: tasks of the next image die at once. Swarm
    // stops (its default failure action pauses); shipshape has it roll back.
    swarm_ok(&lab, &["service", "update", "-d", "--label-add", "shipshape.auto-update=true", &name]);
    wait_service(&app, &name, "auto-update from its label", |s| s["auto_update"] == true).await;
    let v3 = build_image(&lab, &image, "ENTRYPOINT [\"/bin/false\"]", false);
    app.check_now().await;
    let entries = wait_history(&app, &name, 2, JOB_PATIENCE).await;
    assert_eq!(entries[0]["result"], "rolled_back", "{entries:#?}\n{}", app.log());
    assert_eq!(entries[0]["to_digest"], v3.as_str(), "{entries:#?}");
    assert!(entries[0]["error"].as_str().is_some_and(|e| !e.is_empty()), "{entries:#?}");
    assert_eq!(spec_image(&lab, &name), format!("{image}@{v2}"), "the old digest runs again");
    let deadline = Instant::now() + PATIENCE;
    while running_task_images(&lab, &name) != [target.clone(), target.clone()] {
        assert!(Instant::now() < deadline, "tasks after the rollback: {:?}", running_task_images(&lab, &name));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The toggle overrides the label; an unknown service is 404.
    let (status, body) = post(&app, &format!("/api/services/{id}/auto-update")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"auto_update":false}"#));
    let (status, body) = post(&app, "/api/services/nosuchservice00/update").await;
    assert_eq!((status, body.as_str()), (404, "service not found\n"));
}

#[tokio::test]
async fn an_engine_that_is_no_swarm_manager_has_no_services() {
    let lab = lab();
    let app = spawn_app_with(&lab, &[]);
    assert_eq!(services(&app).await, Vec::<Value>::new());
    let (status, body) = post(&app, "/api/services/abcdefabcdef/update").await;
    assert_eq!((status, body.as_str()), (404, "service not found\n"));
}

#[tokio::test]
async fn services_come_from_whichever_engine_is_the_manager() {
    let lab = lab();
    let name = unique("svc-fleet");
    swarm_ok(
        &lab,
        &[
            "service",
            "create",
            "-d",
            "--name",
            &name,
            "--replicas",
            "1",
            "--network",
            "host",
            "--stop-grace-period",
            "1s",
            &lab.base_image,
            "sleep",
            "100000",
        ],
    );
    let _service = ServiceGuard(&lab, name.clone());
    // The manager is the second of two engines.
    let hosts = format!("plain={},manager={}", lab.docker_host, swarm_host(&lab));
    let app = spawn_app_with(&lab, &[("SHIPSHAPE_DOCKER_HOSTS", &hosts)]);
    let s = wait_service(&app, &name, "listed from the second engine", |s| s["replicas"]["running"] == 1).await;
    assert_eq!(s["image"], lab.base_image.as_str(), "{s}");
    assert_eq!(s["host"], "manager", "the engine that answered: {s}");
}
