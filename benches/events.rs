//! Engine event → websocket latency of a running shipshape (`harness = false`).
//!
//! Usually run by `scripts/bench-events`, which sets up the lab, the 200
//! background containers and the service. By hand:
//!
//! ```sh
//! . /tmp/shipshape-bench-lab/env   # the lab's private engine, never the host's
//! cargo bench --bench events -- --addr 127.0.0.1:PORT --image "$LAB_BASE_IMAGE"
//! ```
//!
//! Each iteration creates a stopped container (not timed), waits for a quiet
//! spell, then starts it through the Engine API while connected to
//! `ws://ADDR/api/ws` and records two times from the same instant (issuing
//! the start):
//!
//! * the BASELINE: the engine's own start call returning;
//! * the first websocket `images` message that names the container.
//!
//! The container is then removed (and its disappearance awaited) before the
//! next iteration. Every wait is bounded; nothing but 127.0.0.1 and the lab's
//! engine socket is contacted. The last line is machine-readable
//! (`RESULT key=value ...`, milliseconds).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, ListContainersOptions, RemoveContainerOptions};
use bollard::Docker;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// How long one expected websocket message may take before the iteration
/// counts as missed (a bound on the loop, not a pass/fail limit).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
const NAME_PREFIX: &str = "bench-ev";

struct Args {
    addr: String,
    image: String,
    iterations: usize,
    quiet: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: events --addr 127.0.0.1:PORT --image REF [--iterations 50] [--quiet-ms 150]\n\
         DOCKER_HOST must name the lab's private engine (unix://$LAB_DIR/...)."
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args =
        Args { addr: String::new(), image: String::new(), iterations: 50, quiet: Duration::from_millis(150) };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--addr" => args.addr = value(),
            "--image" => args.image = value(),
            "--iterations" => args.iterations = value().parse().unwrap_or_else(|_| usage()),
            "--quiet-ms" => args.quiet = Duration::from_millis(value().parse().unwrap_or_else(|_| usage())),
            // `cargo bench` passes `--bench` to harness-less targets.
            "--bench" => {}
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("events: unknown argument {a}");
                usage()
            }
        }
    }
    if args.addr.is_empty() || args.image.is_empty() || args.iterations == 0 {
        usage()
    }
    args
}

/// Only the lab's private engine (a unix socket under $LAB_DIR) is acceptable.
fn lab_docker_host() -> Result<String, String> {
    let host = std::env::var("DOCKER_HOST").map_err(|_| "DOCKER_HOST is not set: source the lab's env first")?;
    let lab_dir = std::env::var("LAB_DIR").map_err(|_| "LAB_DIR is not set: source the lab's env first")?;
    let socket =
        host.strip_prefix("unix://").ok_or_else(|| format!("refusing DOCKER_HOST={host}: not a unix socket"))?;
    if lab_dir.len() < 2 || !socket.starts_with(&format!("{}/", lab_dir.trim_end_matches('/'))) {
        return Err(format!("refusing DOCKER_HOST={host}: not the lab's private engine under {lab_dir}"));
    }
    Ok(host)
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Stats {
    p50: f64,
    p99: f64,
    min: f64,
    max: f64,
    mean: f64,
}

fn stats(samples: &[f64]) -> Stats {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let mean = if s.is_empty() { f64::NAN } else { s.iter().sum::<f64>() / s.len() as f64 };
    Stats {
        p50: percentile(&s, 50.0),
        p99: percentile(&s, 99.0),
        min: s.first().copied().unwrap_or(f64::NAN),
        max: s.last().copied().unwrap_or(f64::NAN),
        mean,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A websocket text message and when it arrived.
struct Received {
    at: Instant,
    text: String,
}

/// Waits for a message satisfying `pred`, skipping others; `None` on timeout or close.
async fn wait_for(rx: &mut mpsc::UnboundedReceiver<Received>, pred: impl Fn(&str) -> bool) -> Option<Received> {
    let deadline = tokio::time::Instant::now() + MESSAGE_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(m)) if pred(&m.text) => return Some(m),
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}

async fn remove(docker: &Docker, name: &str) {
    let _ = docker.remove_container(name, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
}

/// Containers left behind by an interrupted earlier run.
async fn remove_leftovers(docker: &Docker) -> Result<(), bollard::errors::Error> {
    let filters = std::collections::HashMap::from([("name".to_string(), vec![format!("^/{NAME_PREFIX}-")])]);
    let list = docker
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await?;
    for c in list {
        if let Some(id) = c.id {
            remove(docker, &id).await;
        }
    }
    Ok(())
}

async fn run(args: Args) -> Result<(), String> {
    if !args.addr.starts_with("127.0.0.1:") {
        return Err(format!("refusing --addr {}: only 127.0.0.1 is used", args.addr));
    }
    let host = lab_docker_host()?;
    let docker = Docker::connect_with_host(&host).map_err(|e| format!("DOCKER_HOST {host}: {e}"))?;
    let docker = docker.negotiate_version().await.map_err(|e| format!("engine unreachable: {e}"))?;
    remove_leftovers(&docker).await.map_err(|e| format!("listing leftovers: {e}"))?;

    let url = format!("ws://{}/api/ws", args.addr);
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.map_err(|e| format!("{url}: {e}"))?;
    let (_write, mut read) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Timestamps are taken here, the moment a frame is read, independent of
    // what the main task is awaiting.
    let reader = tokio::spawn(async move {
        while let Some(frame) = read.next().await {
            let at = Instant::now();
            match frame {
                Ok(Message::Text(text)) => {
                    if tx.send(Received { at, text: text.to_string() }).is_err() {
                        break;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    let first = wait_for(&mut rx, |t| t.starts_with(r#"{"type":"images""#))
        .await
        .ok_or("no initial `images` message on the websocket")?;
    let groups: serde_json::Value = serde_json::from_str(&first.text).map_err(|e| format!("initial message: {e}"))?;
    let containers: usize = groups["data"]
        .as_array()
        .map_or(0, |g| g.iter().filter_map(|g| g["containers"].as_array()).map(Vec::len).sum());
    eprintln!(
        "events: {url}: initial view {} bytes, {containers} containers; {} iterations",
        first.text.len(),
        args.iterations
    );

    let run_id = std::process::id();
    let mut start_ms = Vec::with_capacity(args.iterations);
    let mut ws_ms = Vec::with_capacity(args.iterations);
    let mut after_return_ms = Vec::with_capacity(args.iterations);
    let mut message_bytes = 0usize;
    let mut missed = 0usize;
    for i in 0..args.iterations {
        let name = format!("{NAME_PREFIX}-{run_id}-{i}");
        let needle = format!("\"{name}\"");
        let body = ContainerCreateBody {
            image: Some(args.image.clone()),
            cmd: Some(vec!["sleep".into(), "1000000".into()]),
            stop_timeout: Some(1),
            host_config: Some(HostConfig { network_mode: Some("none".into()), ..Default::default() }),
            ..Default::default()
        };
        docker
            .create_container(Some(CreateContainerOptions { name: Some(name.clone()), ..Default::default() }), body)
            .await
            .map_err(|e| format!("create {name}: {e}"))?;
        // Let any publication caused by earlier steps go out (the view is
        // throttled to one message per 50 ms), then forget what arrived.
        tokio::time::sleep(args.quiet).await;
        while rx.try_recv().is_ok() {}

        let t0 = Instant::now();
        let started = docker.start_container(&name, None).await;
        let returned = t0.elapsed();
        if let Err(e) = started {
            remove(&docker, &name).await;
            return Err(format!("start {name}: {e}"));
        }
        match wait_for(&mut rx, |t| t.contains(&needle)).await {
            Some(m) => {
                let seen = m.at.saturating_duration_since(t0);
                start_ms.push(ms(returned));
                ws_ms.push(ms(seen));
                after_return_ms.push(ms(seen.saturating_sub(returned)));
                message_bytes = m.text.len();
            }
            None => {
                missed += 1;
                eprintln!("events: iteration {i}: {name} not seen on the websocket within {MESSAGE_TIMEOUT:?}");
            }
        }
        remove(&docker, &name).await;
        if wait_for(&mut rx, |t| !t.contains(&needle)).await.is_none() {
            eprintln!("events: iteration {i}: removal of {name} not seen within {MESSAGE_TIMEOUT:?}");
        }
    }
    reader.abort();

    let (s, w, a) = (stats(&start_ms), stats(&ws_ms), stats(&after_return_ms));
    let ok = ws_ms.len();
    println!("start → websocket `images` message naming the container ({ok} ok, {missed} missed, message {message_bytes} bytes)");
    println!("  {:<40} {:>9} {:>9} {:>9} {:>9} {:>9}", "", "p50 ms", "p99 ms", "min", "max", "mean");
    for (label, st) in [
        ("BASELINE engine start call (issue→return)", &s),
        ("shipshape: issue start → ws message", &w),
        ("  of which after the start call returned", &a),
    ] {
        println!("  {:<40} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}", label, st.p50, st.p99, st.min, st.max, st.mean);
    }
    println!(
        "RESULT ok={ok} missed={missed} start_p50={:.2} start_p99={:.2} ws_p50={:.2} ws_p99={:.2} after_p50={:.2} after_p99={:.2} ws_max={:.2} message_bytes={message_bytes}",
        s.p50, s.p99, w.p50, w.p99, a.p50, a.p99, w.max
    );
    if missed > 0 {
        return Err(format!("{missed} of {} starts never appeared on the websocket", args.iterations));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = parse_args();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("events: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("events: error: {e}");
            ExitCode::FAILURE
        }
    }
}
