//! shipshape's container image. Nothing can be pulled here, so the real
//! `Dockerfile` (its builder stage needs the Rust and distroless images) is
//! checked by reading it, and an equivalent image is built on the lab's
//! private engine: the real Dockerfile's final stage, `FROM scratch`, with the
//! binary cargo built (and the shared libraries it needs) where the builder
//! stage puts the static one. That image runs with the lab's socket mounted,
//! a data volume and no network; the test reaches the service on the
//! container's own loopback by entering its network namespace (nsenter).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{lab, unique, Lab};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Starting, building the view and answering on vfs, with other tests busy.
const PATIENCE: Duration = Duration::from_secs(120);

/// One Dockerfile instruction: its keyword (upper case) and the rest.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

/// Instructions in order: comments dropped, continuation lines joined.
fn parse_dockerfile(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let text = std::mem::take(&mut pending);
        let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
        out.push(Instruction { keyword: keyword.to_ascii_uppercase(), args: args.trim().to_string() });
    }
    out
}

/// The instructions of the last stage, from its FROM on.
fn final_stage(instructions: &[Instruction]) -> &[Instruction] {
    let start = instructions.iter().rposition(|i| i.keyword == "FROM").expect("a FROM");
    &instructions[start..]
}

/// `KEY=value` pairs of ENV, LABEL or ARG arguments (values may be quoted).
fn pairs(args: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = args.trim();
    while let Some((key, tail)) = rest.split_once('=') {
        let tail = tail.trim_start();
        let (value, next) = if let Some(quoted) = tail.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            tail.split_once(char::is_whitespace).unwrap_or((tail, ""))
        };
        out.push((key.trim().to_string(), value.to_string()));
        rest = next.trim();
    }
    out
}

fn dockerfile() -> Vec<Instruction> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    parse_dockerfile(&text)
}

/// hadolint is not packaged by Debian, so the rules this image lives by are
/// checked here, on the real file.
#[test]
fn dockerfile_has_what_the_image_needs() {
    let all = dockerfile();
    let froms: Vec<&Instruction> = all.iter().filter(|i| i.keyword == "FROM").collect();
    assert!(froms.len() >= 2, "multi-stage: a builder and a final stage");
    assert!(froms[0].args.to_ascii_lowercase().contains(" as "), "the builder stage is named: {:?}", froms[0]);
    assert!(froms[0].args.contains("rust"), "the builder is a Rust image: {:?}", froms[0]);
    let stage = final_stage(&all);
    let base = &stage[0].args;
    assert!(
        base == "scratch" || base.starts_with("gcr.io/distroless/static"),
        "the final stage is scratch or distroless/static, not {base}"
    );
    fn of<'a>(stage: &'a [Instruction], keyword: &'a str) -> impl Iterator<Item = &'a Instruction> + 'a {
        stage.iter().filter(move |i| i.keyword == keyword)
    }
    let find = |keyword: &'static str| of(stage, keyword);

    let user = find("USER").last().expect("a USER in the final stage");
    let uid = user.args.split(':').next().unwrap_or_default();
    assert!(!["", "0", "root"].contains(&uid), "runs as a non-root user, not {:?}", user.args);

    let env: Vec<(String, String)> = find("ENV").flat_map(|i| pairs(&i.args)).collect();
    let env_of = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    assert_eq!(env_of("SHIPSHAPE_LISTEN"), Some("0.0.0.0:8099"));
    assert_eq!(env_of("SHIPSHAPE_DATA_DIR"), Some("/data"));
    assert_eq!(env_of("SHIPSHAPE_AUTH"), None, "auth stays on (its default) in the image");

    assert!(find("VOLUME").any(|i| i.args.contains("/data")), "a /data volume");
    assert!(find("EXPOSE").any(|i| i.args.split_whitespace().any(|p| p == "8099" || p == "8099/tcp")));

    let health = find("HEALTHCHECK").last().expect("a HEALTHCHECK");
    let cmd = health.args.split_once("CMD").map(|(_, c)| c.trim()).expect("HEALTHCHECK CMD");
    let argv: Vec<String> = serde_json::from_str(cmd).expect("HEALTHCHECK CMD in exec form (no shell in the image)");
    assert!(
        argv.first().is_some_and(|a| a.ends_with("/shipshape")) && argv.get(1).map(String::as_str) == Some("health")
    );

    let labels: Vec<(String, String)> = find("LABEL").flat_map(|i| pairs(&i.args)).collect();
    for key in ["org.opencontainers.image.source", "org.opencontainers.image.version"] {
        assert!(labels.iter().any(|(k, _)| k == key), "LABEL {key}");
    }
    let version_arg = find("ARG").flat_map(|i| pairs(&i.args)).find(|(k, _)| k == "VERSION").map(|(_, v)| v);
    assert_eq!(version_arg.as_deref(), Some(env!("CARGO_PKG_VERSION")), "ARG VERSION follows Cargo.toml");

    let entrypoint = find("ENTRYPOINT").last().expect("ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(&entrypoint.args).expect("ENTRYPOINT in exec form");
    assert_eq!(entrypoint.first(), argv.first(), "the healthcheck runs the same binary");

    for i in stage {
        let text = i.args.to_ascii_lowercase();
        assert!(!text.contains("curl") && !text.contains("wget"), "no curl or wget in the final stage: {i:?}");
    }

    let ignore = std::fs::read_to_string(Path::new(ROOT).join(".dockerignore")).expect(".dockerignore");
    for entry in ["target", ".git", "data"] {
        assert!(ignore.lines().any(|l| l.trim().trim_end_matches('/') == entry), ".dockerignore leaves out {entry}");
    }
}

#[test]
fn compose_file_mounts_the_socket_and_keeps_the_port_local() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docker-compose.yml")).expect("docker-compose.yml");
    let compose: Value = serde_yaml::from_str(&text).expect("docker-compose.yml is YAML");
    let service = &compose["services"]["shipshape"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let volumes = strings(&service["volumes"]);
    assert!(volumes.iter().any(|v| v.starts_with("/var/run/docker.sock:/var/run/docker.sock")), "{volumes:?}");
    let data = volumes.iter().find(|v| v.ends_with(":/data")).expect("a data volume");
    let name = data.trim_end_matches(":/data");
    assert!(compose["volumes"].get(name).is_some(), "{name} is a named volume");
    assert_eq!(strings(&service["ports"]), vec!["127.0.0.1:8099:8099".to_string()]);
    assert!(service.get("env_file").is_some(), "the password comes from an env file");
    assert!(!service["group_add"].is_null(), "group_add gives the socket's group");
    assert!(service["environment"].get("SHIPSHAPE_AUTH_PASSWORD").is_none(), "no password in the compose file itself");
}

/// Removes what the image test made, whatever happens.
struct Cleanup<'a> {
    lab: &'a Lab,
    container: String,
    volume: String,
    image: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.lab.docker_output(&["rm", "-f", "-v", &self.container]);
        let _ = self.lab.docker_output(&["volume", "rm", "-f", &self.volume]);
        let _ = self.lab.docker_output(&["rmi", "-f", &self.image]);
    }
}

/// The shared objects `ldd` lists for `binary`, and the dynamic loader.
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd runs");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("statically linked") || text.contains("not a dynamic executable") {
        return Vec::new();
    }
    assert!(out.status.success(), "ldd {}: {}", binary.display(), String::from_utf8_lossy(&out.stderr));
    text.lines()
        .filter_map(|line| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
            let path = line.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn copy_into(root: &Path, file: &Path, mode: u32) {
    let dest = root.join(file.strip_prefix("/").expect("absolute path"));
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    std::fs::copy(file, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The build context of the equivalent image: `out/` as the builder stage
/// leaves it (the binary, an empty 0700 data dir), `libs/` with what a
/// dynamically linked binary needs, and the real final stage on `scratch`.
fn build_context(dir: &Path) -> String {
    let out = dir.join("out");
    let binary = out.join("usr/local/bin/shipshape");
    std::fs::create_dir_all(binary.parent().expect("parent")).expect("mkdir");
    // Debug info would only make vfs copy more.
    let strip = Command::new("strip")
        .args(["--strip-all", "-o"])
        .arg(&binary)
        .arg(env!("CARGO_BIN_EXE_shipshape"))
        .output()
        .expect("strip runs");
    assert!(strip.status.success(), "strip: {}", String::from_utf8_lossy(&strip.stderr));
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir_all(out.join("data")).expect("mkdir data");
    std::fs::set_permissions(out.join("data"), std::fs::Permissions::from_mode(0o700)).expect("chmod data");

    let libs = dir.join("libs");
    std::fs::create_dir_all(&libs).expect("mkdir libs");
    for lib in shared_libraries(Path::new(env!("CARGO_BIN_EXE_shipshape"))) {
        copy_into(&libs, &lib, 0o755);
    }
    // distroless/static has the CA bundle where Debian keeps it.
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if bundle.exists() {
        copy_into(&libs, bundle, 0o644);
    }

    let mut lines = vec!["FROM scratch".to_string(), "COPY libs/ /".to_string()];
    for i in final_stage(&dockerfile()).iter().skip(1) {
        if i.keyword == "COPY" && i.args.contains("--from=") {
            // `COPY --from=build [--chown=…] /out/<path> <dest>` → `COPY [--chown=…] out/<path> <dest>`
            let words: Vec<&str> = i.args.split_whitespace().filter(|w| !w.starts_with("--from=")).collect();
            let words: Vec<String> =
                words.iter().map(|w| w.strip_prefix("/out/").map_or(w.to_string(), |p| format!("out/{p}"))).collect();
            assert!(words.iter().any(|w| w.starts_with("out/")), "the final stage copies from /out: {i:?}");
            lines.push(format!("COPY {}", words.join(" ")));
        } else {
            lines.push(format!("{} {}", i.keyword, i.args));
        }
    }
    lines.join("\n") + "\n"
}

/// `curl` inside the container's network namespace: (status, body).
fn curl_in(pid: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("nsenter")
        .args(["-t", pid, "-n", "curl", "-sS", "--noproxy", "*", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("nsenter runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn image_serves_logs_in_lists_and_refuses_to_update_itself() {
    let lab = lab();
    let name = unique("shipshape-image");
    let cleanup = Cleanup {
        lab: &lab,
        container: name.clone(),
        volume: format!("{name}-data"),
        image: format!("shipshape-image-test:{}", name.rsplit('-').next().unwrap_or("x")),
    };
    let sibling = lab.run(&unique("image-sibling"), &lab.base_image, &[]);

    let ctx = tempfile::tempdir().expect("build context");
    let dockerfile = build_context(ctx.path());
    std::fs::write(ctx.path().join("Dockerfile"), &dockerfile).expect("write Dockerfile");
    let build = Command::new("docker")
        .args(["build", "--network", "none", "-q", "-t", &cleanup.image])
        .arg(ctx.path())
        .env("DOCKER_HOST", &lab.docker_host)
        .env("DOCKER_CONFIG", &lab.docker_config)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build runs");
    assert!(build.status.success(), "docker build:\n{dockerfile}\n{}", String::from_utf8_lossy(&build.stderr));

    // As docs/install.md says: the socket's group, a named volume, the password.
    let socket = lab.docker_host.strip_prefix("unix://").unwrap_or(&lab.docker_host).to_string();
    let socket_gid = std::fs::metadata(&socket).expect("lab socket").gid().to_string();
    let password = format!("image-test-{}", unique("pw"));
    lab.docker(&["volume", "create", &cleanup.volume]);
    let mount_socket = format!("{socket}:/var/run/docker.sock");
    let mount_data = format!("{}:/data", cleanup.volume);
    let password_env = format!("SHIPSHAPE_AUTH_PASSWORD={password}");
    lab.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--group-add",
        &socket_gid,
        "-v",
        &mount_socket,
        "-v",
        &mount_data,
        "-e",
        &password_env,
        "-e",
        "SHIPSHAPE_IGNORE_REGISTRIES=docker.io",
        // The image's own check, asked every second instead of every 30.
        "--health-interval",
        "1s",
        &cleanup.image,
    ]);
    let inspect = |format: &str| lab.docker(&["inspect", "-f", format, &name]);
    let own_id = inspect("{{.Id}}");
    let pid = inspect("{{.State.Pid}}");
    let logs = || {
        let out = lab.docker_output(&["logs", &name]);
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    assert!(!logs().contains(&password), "the password is never logged");

    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("container process status");
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap_or_default();
    assert_eq!(uid.split_whitespace().next(), Some("65532"), "runs as the image's non-root user");

    let base = "http://127.0.0.1:8099";
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (code, body) = curl_in(&pid, &[&format!("{base}/health")]);
        if code == 200 {
            assert_eq!(body, "", "/health answers an empty body");
            break;
        }
        assert_eq!(inspect("{{.State.Running}}"), "true", "the container stopped:\n{}", logs());
        assert!(Instant::now() < deadline, "/health never answered 200 (last {code}):\n{}", logs());
        std::thread::sleep(Duration::from_millis(200));
    }

    let jar = ctx.path().join("cookies");
    let jar = jar.to_string_lossy();
    let login = |pass: &str| {
        let body = serde_json::json!({ "user": "admin", "pass": pass }).to_string();
        curl_in(
            &pid,
            &["-c", &jar, "-H", "content-type: application/json", "--data-binary", &body, &format!("{base}/api/login")],
        )
    };
    assert_eq!(login("not-the-password"), (401, "invalid credentials\n".to_string()));
    let (code, _) = curl_in(&pid, &[&format!("{base}/api/images")]);
    assert_eq!(code, 401, "the API needs a login");
    let (code, body) = login(&password);
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ok"}"#), "login with the configured password");

    let deadline = Instant::now() + PATIENCE;
    let own_short = &own_id[..12];
    loop {
        let (code, body) = curl_in(&pid, &["-b", &jar, &format!("{base}/api/images")]);
        assert_eq!(code, 200, "{body}");
        let groups: Vec<Value> = serde_json::from_str(&body).expect("images json");
        let ids: Vec<&str> = groups
            .iter()
            .flat_map(|g| g["containers"].as_array().into_iter().flatten())
            .filter_map(|c| c["container_id"].as_str())
            .collect();
        if ids.contains(&sibling.short_id()) && ids.contains(&own_short) {
            break;
        }
        assert!(Instant::now() < deadline, "the lab's containers never listed: {groups:#?}\n{}", logs());
        std::thread::sleep(Duration::from_millis(200));
    }

    let (code, body) = curl_in(&pid, &["-b", &jar, "-X", "POST", &format!("{base}/api/images/{own_short}/update")]);
    assert_eq!((code, body.as_str()), (409, "cannot update shipshape's own container\n"));
    assert_eq!(inspect("{{.Id}}"), own_id, "still the same container");

    let deadline = Instant::now() + PATIENCE;
    loop {
        let health = inspect("{{.State.Health.Status}}");
        if health == "healthy" {
            break;
        }
        assert_ne!(health, "unhealthy", "HEALTHCHECK failed: {}", inspect("{{json .State.Health}}"));
        assert!(Instant::now() < deadline, "never healthy: {}", inspect("{{json .State.Health}}"));
        std::thread::sleep(Duration::from_millis(250));
    }

    // The database lives in the volume, private to the service's user.
    let mountpoint = PathBuf::from(lab.docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &cleanup.volume]));
    let data = std::fs::metadata(&mountpoint).expect("volume dir");
    assert_eq!((data.uid(), data.mode() & 0o777), (65532, 0o700), "the data volume is the service user's alone");
    assert!(mountpoint.join("shipshape.db").exists(), "the database is in /data");
    drop(sibling);
}

/// A listener that answers every connection with `answer` (or nothing).
fn fake_server(answer: Option<&'static str>) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            match answer {
                Some(text) => {
                    let mut conn = conn;
                    let mut buf = [0u8; 1024];
                    let _ = std::io::Read::read(&mut conn, &mut buf);
                    let _ = std::io::Write::write_all(&mut conn, text.as_bytes());
                }
                None => held.push(conn),
            }
        }
    });
    addr
}

fn health(listen: &str, timeout: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shipshape"))
        .args(["health", "--timeout", timeout])
        .env_clear()
        .env("SHIPSHAPE_LISTEN", listen)
        .output()
        .expect("shipshape health runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn health_command_exits_by_the_answer() {
    let lab = lab();
    let app = common::spawn_app(&lab);
    assert_eq!(health(&app.addr, "10s"), (true, String::new()));
    let port = app.addr.rsplit(':').next().expect("port");
    assert!(health(&format!("0.0.0.0:{port}"), "10s").0, "a wildcard address is asked on loopback");

    let refused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = refused.local_addr().expect("addr").to_string();
    drop(refused);
    let (ok, err) = health(&closed, "5s");
    assert!(!ok && err.contains("cannot connect"), "{err}");

    let failing = fake_server(Some("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"));
    let (ok, err) = health(&failing.to_string(), "5s");
    assert!(!ok && err.contains("503"), "{err}");

    let silent = fake_server(None);
    let (ok, err) = health(&silent.to_string(), "1s");
    assert!(!ok && err.contains("within"), "{err}");

    let (ok, err) = health("127.0.0.1:0", "1s");
    assert!(!ok && err.contains("port 0"), "{err}");
}

#[test]
fn dockerfile_parser_reads_what_docker_reads() {
    let parsed = parse_dockerfile("# c\nFROM a AS b\nENV A=1 \\\n    B=\"two words\"\n\nUSER 1:2\n");
    let kinds: Vec<&str> = parsed.iter().map(|i| i.keyword.as_str()).collect();
    assert_eq!(kinds, ["FROM", "ENV", "USER"]);
    assert_eq!(pairs(&parsed[1].args), vec![("A".into(), "1".into()), ("B".into(), "two words".into())]);
}
