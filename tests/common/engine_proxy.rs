//! A unix-socket proxy in front of a lab engine that can be taken away
//! (every connection cut, the socket gone) and put back: an engine that
//! becomes unreachable and comes back, without touching the daemon.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct EngineProxy {
    pub path: PathBuf,
    upstream: PathBuf,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl EngineProxy {
    /// A proxy at `<dir>/<name>.sock` for the engine at `docker_host` (`unix://...`); not started.
    pub fn new(dir: &Path, name: &str, docker_host: &str) -> Self {
        let upstream = PathBuf::from(docker_host.strip_prefix("unix://").unwrap_or(docker_host));
        Self { path: dir.join(format!("{name}.sock")), upstream, tasks: Arc::default() }
    }

    /// `unix://<path>`, for DOCKER_HOST or SHIPSHAPE_DOCKER_HOSTS.
    pub fn url(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Listens (again); needs a tokio runtime.
    pub fn start(&self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = tokio::net::UnixListener::bind(&self.path).expect("bind the proxy socket");
        let (upstream, tasks) = (self.upstream.clone(), Arc::clone(&self.tasks));
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut engine) = tokio::net::UnixStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
                if let Ok(mut t) = tasks.lock() {
                    t.push(conn);
                }
            }
        });
        if let Ok(mut t) = self.tasks.lock() {
            t.push(accept);
        }
    }

    /// Cuts every connection and removes the socket: the engine is unreachable.
    pub fn stop(&self) {
        if let Ok(mut t) = self.tasks.lock() {
            for task in t.drain(..) {
                task.abort();
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
