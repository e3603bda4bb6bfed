//! Helpers for the update-job tests (tests/updates.rs, tests/update_crash.rs):
//! images with their own Dockerfile lines, the engine's view of a container
//! and its temporary siblings, and the job endpoints.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{unique, Lab, TestApp};

/// A job pulls, stops, creates, starts and verifies on a vfs engine shared
/// with other tests: generous, and a passing run never waits it out.
pub const JOB_PATIENCE: Duration = Duration::from_secs(180);

/// The job statuses a progress may carry before it ends, in the order they come.
pub const PHASES: [&str; 6] = ["connecting", "Downloading", "Extracting", "recreating", "verifying", "done"];

/// Builds an image FROM the lab's base image with `lines` (Dockerfile
/// instructions) after the FROM, tags it `reference` and pushes it; returns the
/// pushed manifest digest. `remote_only`: afterwards the local tag is put back
/// where it was (as `scripts/lab build-image --remote-only` does), so the new
/// version exists only in the registry.
pub fn build_image(lab: &Lab, reference: &str, lines: &str, remote_only: bool) -> String {
    lab.ensure_base_image();
    let previous = local_image_id(lab, reference);
    let ctx = tempfile::tempdir().expect("build context");
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {}\n{lines}\n", lab.base_image)).expect("Dockerfile");
    let context = ctx.path().to_string_lossy().to_string();
    // The legacy builder (the lab's engine has no BuildKit); --no-cache: its
    // cache probe walks the base image's children, which parallel tests remove.
    let build = || {
        Command::new("docker")
            .args(["build", "--no-cache", "--network", "none", "-q", "-t", reference, &context])
            .env("DOCKER_HOST", &lab.docker_host)
            .env("DOCKER_CONFIG", &lab.docker_config)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("docker build runs")
    };
    let mut out = build();
    if !out.status.success() {
        out = build();
    }
    assert!(out.status.success(), "docker build of {reference} failed: {}", String::from_utf8_lossy(&out.stderr));
    let built = image_id(lab, reference);
    let pushed = lab.docker(&["push", reference]);
    let digest = pushed
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in push output: {pushed}"))
        .to_string();
    assert!(digest.starts_with("sha256:"), "odd digest {digest:?} in {pushed}");
    if remote_only {
        match previous {
            Some(previous) if previous != built => {
                lab.docker(&["tag", &previous, reference]);
            }
            Some(_) => {}
            None => {
                lab.docker(&["rmi", reference]);
            }
        }
        if local_image_id(lab, reference).as_deref() != Some(built.as_str()) {
            let _ = lab.docker_output(&["rmi", &built]);
        }
    }
    digest
}

/// `scripts/lab build-image`: the base image plus a /marker file; returns the
/// digest. The marker is made unique: the builder's cache would otherwise give
/// the same image to every test (and earlier run) using the same marker.
pub fn lab_image(lab: &Lab, reference: &str, marker: &str, remote_only: bool) -> String {
    let marker = format!("{marker} {}", unique("marker"));
    let mut args = vec!["build-image"];
    if remote_only {
        args.push("--remote-only");
    }
    args.extend([reference, marker.as_str()]);
    let digest = lab.script(&args);
    assert!(digest.starts_with("sha256:"), "build-image printed {digest:?}");
    digest
}

pub fn local_image_id(lab: &Lab, reference: &str) -> Option<String> {
    let out = lab.docker_output(&["image", "inspect", "--format", "{{.Id}}", reference]);
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn image_id(lab: &Lab, reference: &str) -> String {
    local_image_id(lab, reference).unwrap_or_else(|| panic!("no local image {reference}"))
}

/// `docker inspect` of one container or image, as JSON.
pub fn inspect(lab: &Lab, what: &str) -> Value {
    let text = lab.docker(&["inspect", what]);
    let mut all: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("inspect {what}: {e}: {text}"));
    assert_eq!(all.len(), 1, "inspect {what}: {text}");
    all.remove(0)
}

/// One container as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub id: String,
    pub state: String,
}

/// The container called `name` and every container whose name starts with
/// `name__` (a job's `__upd_`/`__old_` temporaries), stopped ones included.
pub fn family(lab: &Lab, name: &str) -> Vec<Listed> {
    let text = lab.docker(&["ps", "-a", "--no-trunc", "--format", "{{.Names}}\t{{.ID}}\t{{.State}}"]);
    let prefix = format!("{name}__");
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            let (n, id, state) = (parts.next()?, parts.next()?, parts.next()?);
            (n == name || n.starts_with(&prefix)).then(|| Listed {
                name: n.to_string(),
                id: id.to_string(),
                state: state.to_string(),
            })
        })
        .collect()
}

/// Exactly one container called `name`, running, and nothing named
/// `name__upd_*`/`name__old_*` beside it; returns its full id.
pub fn only_one_running(lab: &Lab, name: &str) -> String {
    let found = family(lab, name);
    assert_eq!(found.len(), 1, "exactly one container of {name} expected: {found:#?}");
    assert_eq!(found[0].name, name, "{found:#?}");
    assert_eq!(found[0].state, "running", "{found:#?}");
    found[0].id.clone()
}

pub fn restart_policy(lab: &Lab, name: &str) -> String {
    lab.docker(&[
        "inspect",
        "--format",
        "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
        name,
    ])
}

/// Containers created from image `id`, stopped ones included.
pub fn containers_of_image(lab: &Lab, id: &str) -> Vec<String> {
    let text = lab.docker(&["ps", "-a", "--no-trunc", "--filter", &format!("ancestor={id}"), "--format", "{{.Names}}"]);
    text.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

/// Removes (with force) on drop: the containers named and their temporaries,
/// image references, volumes and networks.
pub struct Cleanup {
    lab: Lab,
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub volumes: Vec<String>,
    pub networks: Vec<String>,
}

impl Cleanup {
    pub fn new(lab: &Lab) -> Self {
        Self { lab: lab.clone(), containers: Vec::new(), images: Vec::new(), volumes: Vec::new(), networks: Vec::new() }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let lab = &self.lab;
        let mut names: Vec<String> = Vec::new();
        for name in &self.containers {
            names.push(name.clone());
            names.extend(family(lab, name).into_iter().map(|c| c.name).filter(|n| n != name));
        }
        // Dependents first: a container whose namespace others share.
        for name in names.iter().rev() {
            let _ = lab.docker_output(&["rm", "-f", name]);
        }
        for image in &self.images {
            let _ = lab.docker_output(&["rmi", image]);
            // Earlier versions the update left behind, untagged but still
            // listed under the repository by their digest.
            if let Some((repo, _)) = image.rsplit_once(':').filter(|(r, _)| r.contains('/')) {
                let out = lab.docker_output(&["images", "-q", "--no-trunc", repo]);
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = lab.docker_output(&["rmi", id]);
                }
            }
        }
        for volume in &self.volumes {
            let _ = lab.docker_output(&["volume", "rm", "-f", volume]);
        }
        for network in &self.networks {
            let _ = lab.docker_output(&["network", "rm", network]);
        }
    }
}

/// `docker run -d --name <name> <args...>`; returns the full id.
pub fn run(lab: &Lab, name: &str, args: &[&str]) -> String {
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    lab.docker(&all)
}

/// An `--internal` network on a /24 of 198.18.0.0/15 no other network holds.
pub struct InternalNetwork {
    lab: Lab,
    pub name: String,
    /// The first three octets, e.g. `198.19.37`.
    pub prefix: String,
}

impl InternalNetwork {
    pub fn create(lab: &Lab, prefix: &str) -> Self {
        let name = unique(prefix);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize)
            .wrapping_add(std::process::id() as usize);
        let mut failures = Vec::new();
        for attempt in 0..40 {
            let n = seed.wrapping_add(attempt * 97) % 512;
            let prefix = format!("198.{}.{}", 18 + n / 256, n % 256);
            let subnet = format!("{prefix}.0/24");
            let out = lab.docker_output(&["network", "create", "--internal", "--subnet", &subnet, &name]);
            if out.status.success() {
                return Self { lab: lab.clone(), name, prefix };
            }
            failures.push(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        panic!("no free /24 in 198.18.0.0/15 for {name}: {failures:?}");
    }
}

impl Drop for InternalNetwork {
    fn drop(&mut self) {
        let _ = self.lab.docker_output(&["network", "rm", &self.name]);
    }
}

/// POSTs a JSON body to the lab engine's API (through its unix socket, with
/// curl): for settings the docker CLI cannot express, such as an entrypoint
/// of several words. Returns the answer's JSON; panics unless 2xx.
pub fn engine_post(lab: &Lab, path: &str, body: &Value) -> Value {
    let socket = lab.docker_host.strip_prefix("unix://").expect("the lab engine listens on a unix socket");
    let mut child = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "120",
            "--unix-socket",
            socket,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            "-w",
            "\n%{http_code}",
            &format!("http://localhost/v1.41{path}"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl runs");
    child.stdin.take().expect("stdin").write_all(body.to_string().as_bytes()).expect("write body");
    let out = child.wait_with_output().expect("curl finishes");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (answer, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    assert!(
        out.status.success() && code.starts_with('2'),
        "POST {path} answered {code}: {answer} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if answer.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(answer).unwrap_or_else(|e| panic!("POST {path}: {e}: {answer}"))
    }
}

/// The inode of a running container's network namespace (`net:[4026532...]`).
pub fn netns(lab: &Lab, name: &str) -> Option<String> {
    let pid = lab.docker(&["inspect", "--format", "{{.State.Pid}}", name]);
    let pid: u32 = pid.parse().ok().filter(|p| *p > 0)?;
    std::fs::read_link(format!("/proc/{pid}/ns/net")).ok().map(|p| p.to_string_lossy().to_string())
}

/// The registry's access log from `offset` on: one line per request.
pub fn registry_log_since(lab: &Lab, offset: u64) -> String {
    let bytes = std::fs::read(lab.dir.join("registry/registry.log")).expect("registry log");
    String::from_utf8_lossy(&bytes[usize::try_from(offset).unwrap_or(0).min(bytes.len())..]).into_owned()
}

pub fn registry_log_len(lab: &Lab) -> u64 {
    std::fs::metadata(lab.dir.join("registry/registry.log")).map_or(0, |m| m.len())
}

/// Manifest requests for `repo` the engine made (pulls; user agent `docker/...`),
/// counted in an access-log excerpt.
pub fn engine_manifest_requests(log: &str, repo: &str) -> usize {
    let needle = format!(" /v2/{repo}/manifests/");
    log.lines()
        .filter(|l| l.starts_with("127.0.0.1 - -"))
        .filter(|l| l.contains(&needle) && (l.contains("\"GET ") || l.contains("\"HEAD ")))
        .filter(|l| l.contains("\"docker/"))
        .count()
}

/// Deletes a manifest from the lab's open registry (it allows deletes): the
/// tags naming it are gone with it.
pub async fn delete_manifest(lab: &Lab, repo: &str, digest: &str) {
    let url = format!("http://{}/v2/{repo}/manifests/{digest}", lab.registry);
    let resp = reqwest::Client::new().delete(&url).send().await.expect("DELETE manifest");
    assert_eq!(resp.status(), 202, "DELETE {url}: {:?}", resp.text().await);
}

/// `POST /api/images/{id}/update`, which must answer `{"status":"updating"}`.
pub async fn post_update(app: &TestApp, id: &str) {
    let resp = app.client.post(app.url(&format!("/api/images/{id}/update"))).send().await.expect("POST update");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert_eq!(status, 200, "POST /api/images/{id}/update: {body}");
    assert_eq!(serde_json::from_str::<Value>(&body).ok(), Some(serde_json::json!({"status": "updating"})), "{body}");
}

/// `POST /api/groups/{image}/update` with `image` as given (raw or encoded).
pub async fn post_group_update(app: &TestApp, image: &str) {
    let resp =
        app.client.post(app.url(&format!("/api/groups/{image}/update"))).send().await.expect("POST group update");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert_eq!(status, 200, "POST /api/groups/{image}/update: {body}");
    assert_eq!(serde_json::from_str::<Value>(&body).ok(), Some(serde_json::json!({"status": "updating"})), "{body}");
}

/// `/` and `:` percent-encoded, as a client building the URL from the group's `image` would.
pub fn encode_image(image: &str) -> String {
    image.replace('%', "%25").replace('/', "%2F").replace(':', "%3A").replace('@', "%40")
}

/// `GET /api/images/{id}/progress`: the status code and the body.
pub async fn progress(app: &TestApp, id: &str) -> (u16, String) {
    let resp = app.client.get(app.url(&format!("/api/images/{id}/progress"))).send().await.expect("GET progress");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// Checks the contract's PullProgress shape; returns the status.
pub fn check_progress_shape(p: &Value) -> String {
    let layer = p["layer"].as_str().unwrap_or_else(|| panic!("layer: {p}"));
    assert!(layer.len() <= 12, "layer {layer:?}");
    let current = p["current"].as_u64().unwrap_or_else(|| panic!("current: {p}"));
    let total = p["total"].as_u64().unwrap_or_else(|| panic!("total: {p}"));
    assert!(current <= total || total == 0, "current > total: {p}");
    let percent = p["percent"].as_u64().unwrap_or_else(|| panic!("percent: {p}"));
    assert!(percent <= 100, "{p}");
    let status = p["status"].as_str().unwrap_or_else(|| panic!("status: {p}")).to_string();
    assert!(PHASES.contains(&status.as_str()) || status.starts_with("error: "), "unknown status {status:?} in {p}");
    status
}

pub fn is_final(status: &str) -> bool {
    status == "done" || status.starts_with("error: ")
}

/// Polls the progress of `id` until it is final (`done` or `error: ...`);
/// a 404 `no progress` before the job has reported is waited out.
pub async fn wait_final_progress(app: &TestApp, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = progress(app, id).await;
        if status == 200 {
            let p: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("progress json: {e}: {body}"));
            if is_final(&check_progress_shape(&p)) {
                return p;
            }
        } else {
            assert_eq!((status, body.as_str()), (404, "no progress\n"), "progress of {id}");
        }
        assert!(
            Instant::now() < deadline,
            "progress of {id} not final within {within:?}; last {status} {body}\n{}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /api/history[?limit=N]`.
pub async fn history(app: &TestApp, limit: Option<usize>) -> Vec<Value> {
    let path = match limit {
        Some(n) => format!("/api/history?limit={n}"),
        None => "/api/history".to_string(),
    };
    let resp = app.client.get(app.url(&path)).send().await.expect("GET history");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The history entries of one container name, newest first.
pub async fn history_of(app: &TestApp, name: &str) -> Vec<Value> {
    history(app, Some(500)).await.into_iter().filter(|e| e["container_name"] == name).collect()
}

/// Waits until `name` has `count` history entries; returns them, newest first.
pub async fn wait_history(app: &TestApp, name: &str, count: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let entries = history_of(app, name).await;
        if entries.len() >= count {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "{count} history entries for {name} not seen within {within:?}: {entries:#?}\n{}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks a history entry's fields and types; returns its `result`.
pub fn check_history_shape(e: &Value) -> String {
    let keys: BTreeSet<&str> =
        e.as_object().unwrap_or_else(|| panic!("entry: {e}")).keys().map(String::as_str).collect();
    for key in
        ["id", "container_name", "image", "from_digest", "to_digest", "started_at", "finished_at", "result", "error"]
    {
        assert!(keys.contains(key), "history entry lacks {key}: {e}");
    }
    assert!(e["id"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
    for key in ["started_at", "finished_at"] {
        let at = e[key].as_str().unwrap_or_else(|| panic!("{key}: {e}"));
        humantime::parse_rfc3339(at).unwrap_or_else(|err| panic!("{key} {at:?}: {err}"));
    }
    assert!(e["started_at"].as_str() <= e["finished_at"].as_str(), "started after it finished: {e}");
    for key in ["from_digest", "to_digest"] {
        assert!(e[key].is_null() || e[key].as_str().is_some_and(|d| d.starts_with("sha256:")), "{key}: {e}");
    }
    let result = e["result"].as_str().unwrap_or_else(|| panic!("result: {e}")).to_string();
    assert!(["updated", "rolled_back", "failed", "unchanged"].contains(&result.as_str()), "{e}");
    match result.as_str() {
        "updated" | "unchanged" => assert!(e["error"].is_null(), "{e}"),
        _ => assert!(e["error"].as_str().is_some_and(|s| !s.trim().is_empty()), "a failure says why: {e}"),
    }
    result
}

/// A digest as the history gives it (whole, or shortened like the rest of
/// the API) is the pushed digest `full`.
pub fn same_digest(given: &Value, full: &str) -> bool {
    given.as_str().is_some_and(|d| d.len() >= 17 && full.starts_with(d))
}
