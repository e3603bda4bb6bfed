//! Engine calls shipshape makes, each returning only what the model keeps.

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{EventsOptions, ListContainersOptions, ListImagesOptions};
use bollard::{ClientVersion, Docker};
use futures::stream::{self, StreamExt};

use super::model::{is_image_id_reference, strip_name, Container, EngineSnapshot, Image};

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot use DOCKER_HOST {host}: {source}")]
    Host { host: String, source: BollardError },
    #[error("docker engine unreachable: {0}")]
    Unreachable(BollardError),
    #[error("docker engine unreachable: no socket at {0} (is DOCKER_HOST right?)")]
    NoSocket(String),
    #[error("docker engine: {0}")]
    Api(#[from] BollardError),
}

/// A client for `docker_host` (bollard's meaning: `unix://`, `tcp://`,
/// `http://`), or for DOCKER_HOST / the local socket when `None`. Nothing is
/// sent yet: connecting happens on the first call.
pub fn client(docker_host: Option<&str>) -> Result<Docker, DockerError> {
    let result = match docker_host {
        Some(host) => {
            let host_uri = if host.starts_with('/') { format!("unix://{host}") } else { host.to_string() };
            Docker::connect_with_host(&host_uri).map_err(|source| DockerError::Host { host: host.to_string(), source })
        }
        None => {
            Docker::connect_with_defaults().map_err(|source| DockerError::Host { host: "(default)".into(), source })
        }
    };
    match result {
        Err(DockerError::Host { source: BollardError::SocketNotFoundError(path), .. }) => {
            Err(DockerError::NoSocket(path))
        }
        other => other,
    }
}

/// The API version every engine from Docker 20.10 to 28 speaks.
pub const COMMON_API_VERSION: ClientVersion = ClientVersion { major_version: 1, minor_version: 41 };

/// A client that speaks `version` without asking the daemon first, for a
/// one-shot run where the `/version` round trip would delay everything else.
/// Only for local sockets; `None` for other hosts (use [`client`] and [`negotiate`]).
pub fn client_speaking(docker_host: Option<&str>, version: &ClientVersion) -> Option<Docker> {
    let host = match docker_host {
        Some(h) => h.to_string(),
        None => std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into()),
    };
    let host = if host.starts_with('/') { format!("unix://{host}") } else { host };
    host.starts_with("unix://").then(|| Docker::connect_with_unix(&host, 120, version).ok()).flatten()
}

/// Agrees on an API version with the daemon: bollard speaks a newer one than
/// old engines (20.10 speaks 1.41) accept. All clones share the result.
pub async fn negotiate(docker: &Docker) -> Result<(), DockerError> {
    docker.clone().negotiate_version().await.map(|_| ()).map_err(DockerError::Unreachable)
}

/// The engine's event stream, narrowed to what changes the snapshot.
pub fn events(
    docker: &Docker,
    options: EventsOptions,
) -> impl futures::Stream<Item = Result<bollard::models::EventMessage, BollardError>> {
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string(), "image".to_string()]),
        (
            "event".to_string(),
            [
                "start", "die", "stop", "destroy", "rename", "update", "pause", "unpause", "tag", "untag", "delete",
                "pull", "push", "import", "load",
            ]
            .map(String::from)
            .to_vec(),
        ),
    ]);
    docker.events(Some(EventsOptions { filters: Some(filters), ..options }))
}

/// Lists running containers and local images once each, side by side.
pub async fn snapshot(docker: &Docker) -> Result<EngineSnapshot, DockerError> {
    let (containers, images) = futures::try_join!(running_containers(docker), local_images(docker))?;
    Ok(EngineSnapshot { containers, images })
}

/// The running containers by id. Only containers whose list entry shows an
/// image id (the tag has moved since they were created) are inspected, to
/// learn the reference they were created from.
pub async fn running_containers(docker: &Docker) -> Result<HashMap<String, Container>, DockerError> {
    let list = docker.list_containers(Some(ListContainersOptions { all: false, ..Default::default() })).await?;
    let mut containers = HashMap::with_capacity(list.len());
    let mut to_inspect = Vec::new();
    for summary in list {
        let (Some(id), Some(image_id)) = (summary.id, summary.image_id) else { continue };
        let name = summary.names.and_then(|n| n.into_iter().next()).map(|n| strip_name(&n)).unwrap_or_default();
        let image_ref = summary.image.unwrap_or_default();
        if is_image_id_reference(&image_ref, &image_id) {
            to_inspect.push(id);
        } else {
            containers.insert(id.clone(), Container { id, name, image_ref, image_id });
        }
    }
    let inspected: Vec<_> = stream::iter(to_inspect)
        .map(|id| async move { container(docker, &id).await })
        .buffer_unordered(8)
        .collect()
        .await;
    for c in inspected {
        if let Some(c) = c? {
            containers.insert(c.id.clone(), c);
        }
    }
    Ok(containers)
}

/// The local images by id, with their repository digests.
pub async fn local_images(docker: &Docker) -> Result<HashMap<String, Image>, DockerError> {
    let images =
        docker.list_images(Some(ListImagesOptions { all: false, digests: true, ..Default::default() })).await?;
    Ok(images.into_iter().map(|i| (i.id.clone(), Image { id: i.id, repo_digests: i.repo_digests })).collect())
}

/// A container if it exists and is running (paused counts: `docker ps` shows it).
pub async fn container(docker: &Docker, id: &str) -> Result<Option<Container>, DockerError> {
    let c = match docker.inspect_container(id, None).await {
        Ok(c) => c,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
    let (Some(id), Some(image_id)) = (c.id, c.image) else { return Ok(None) };
    if !running {
        return Ok(None);
    }
    Ok(Some(Container {
        id,
        name: c.name.map(|n| strip_name(&n)).unwrap_or_default(),
        image_ref: c.config.and_then(|cfg| cfg.image).unwrap_or_default(),
        image_id,
    }))
}

/// An image by id or reference, or `None` when it no longer exists.
pub async fn image(docker: &Docker, id_or_ref: &str) -> Result<Option<Image>, DockerError> {
    match docker.inspect_image(id_or_ref).await {
        Ok(i) => Ok(i.id.map(|id| Image { id, repo_digests: i.repo_digests.unwrap_or_default() })),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn is_not_found(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 404, .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaks_a_fixed_version_only_over_local_sockets() {
        let dir = std::env::temp_dir().join(format!("shipshape-sock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("docker.sock");
        std::fs::write(&socket, b"").expect("socket stand-in");
        let path = socket.to_string_lossy().to_string();
        let cases: [(String, bool); 4] = [
            (path.clone(), true),
            (format!("unix://{path}"), true),
            ("tcp://127.0.0.1:2375".into(), false),
            (format!("unix://{}/missing.sock", dir.display()), false),
        ];
        for (host, speaks) in cases {
            assert_eq!(client_speaking(Some(&host), &COMMON_API_VERSION).is_some(), speaks, "{host}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
