//! Engine calls shipshape makes, each returning only what the model keeps,
//! or the engine's own descriptions re-exported by [`super::model`]: bollard
//! is named nowhere outside `docker/`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerUpdateBody, CreateImageInfo, NetworkConnectRequest};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, ListContainersOptions, ListImagesOptions,
    RemoveContainerOptions, RemoveImageOptions, RenameContainerOptions, StartContainerOptions, StopContainerOptions,
};
use bollard::ClientVersion;
use futures::stream::{self, Stream, StreamExt};

/// The engine client. Cheap to clone; clones share the negotiated API version.
pub use bollard::Docker;

use super::model::{
    is_image_id_reference, release_labels, strip_name, Container, ContainerCreateBody, ContainerDetails,
    ContainerEntry, EndpointSettings, EngineSnapshot, Image, ImageDetails, PullAuth, PullEvent, RegistrySettings,
    RestartPolicy,
};

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot use DOCKER_HOST {host}: {source}")]
    Host { host: String, source: BollardError },
    #[error("docker engine unreachable: {0}")]
    Unreachable(BollardError),
    #[error("docker engine unreachable: no socket at {0} (is DOCKER_HOST right?)")]
    NoSocket(String),
    /// No such container, image, network or tag (HTTP 404); the engine's message.
    #[error("docker engine: {0}")]
    NotFound(String),
    /// The object's state forbids it (HTTP 409): a name in use, an image a
    /// container still uses, a container that must be stopped first.
    #[error("docker engine: {0}")]
    Conflict(String),
    /// Refused before asking the engine: not something a container, network
    /// or image can be called (it would not stay one path segment of the URL).
    #[error("not a valid name, id or image reference: {0:?}")]
    BadName(String),
    #[error("docker engine: {0}")]
    Api(BollardError),
}

/// 404 and 409 become their own variants so callers can tell "gone" and
/// "in use" from a failure; every other error keeps bollard's description.
impl From<BollardError> for DockerError {
    fn from(e: BollardError) -> Self {
        match e {
            BollardError::DockerResponseServerError { status_code: 404, message } => DockerError::NotFound(message),
            BollardError::DockerResponseServerError { status_code: 409, message } => DockerError::Conflict(message),
            other => DockerError::Api(other),
        }
    }
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

/// A client for the unix socket `host` (`unix:///path` or `/path`) that
/// may not exist yet: bollard's own unix client refuses to be made without
/// it, but an engine named in a list may start after shipshape (a socket
/// forwarded over ssh, a daemon restarting). The socket is looked for at
/// each connection, with the same connector bollard's client uses.
pub fn client_unix_later(host: &str) -> Result<Docker, DockerError> {
    let socket = std::path::PathBuf::from(host.strip_prefix("unix://").unwrap_or(host));
    let mut builder = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    builder.pool_max_idle_per_host(0);
    let client = std::sync::Arc::new(builder.build(hyperlocal::UnixConnector));
    let transport = move |request: bollard::BollardRequest| {
        let (client, socket) = (std::sync::Arc::clone(&client), socket.clone());
        async move {
            let (mut parts, body) = request.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
            parts.uri = hyperlocal::Uri::new(&socket, &path).into();
            client.request(bollard::BollardRequest::from_parts(parts, body)).await.map_err(BollardError::from)
        }
    };
    Docker::connect_with_custom_transport(transport, Some("http://docker"), 120, bollard::API_DEFAULT_VERSION)
        .map_err(|source| DockerError::Host { host: host.to_string(), source })
}

/// A client that speaks plain HTTP to `host` (`tcp://` or `http://`),
/// whatever `DOCKER_TLS_VERIFY` says: for engines configured one by one.
pub fn client_plain(host: &str) -> Result<Docker, DockerError> {
    Docker::connect_with_http(host, 120, bollard::API_DEFAULT_VERSION)
        .map_err(|source| DockerError::Host { host: host.to_string(), source })
}

/// A client that speaks TLS to `host` (`tcp://` or `https://`) with a client
/// certificate, as `docker --tlsverify` does: the engine must present a
/// certificate from `ca`, and this client presents `cert`.
pub fn client_tls(host: &str, key: &Path, cert: &Path, ca: &Path) -> Result<Docker, DockerError> {
    Docker::connect_with_ssl(host, key, cert, ca, 120, bollard::API_DEFAULT_VERSION)
        .map_err(|source| DockerError::Host { host: host.to_string(), source })
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

/// The engine's version and API version (`GET /version`).
pub async fn version(docker: &Docker) -> Result<(Option<String>, Option<String>), DockerError> {
    let v = docker.version().await?;
    Ok((v.version, v.api_version))
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
            let labels = summary.labels.unwrap_or_default();
            let network_mode = summary.host_config.and_then(|h| h.network_mode).unwrap_or_default();
            let host = String::new();
            containers.insert(id.clone(), Container { host, id, name, image_ref, image_id, labels, network_mode });
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
    Ok(images
        .into_iter()
        .map(|i| {
            let labels = release_labels(Some(i.labels));
            (i.id.clone(), Image { id: i.id, repo_digests: i.repo_digests, labels })
        })
        .collect())
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
    let (image_ref, labels) = c.config.map(|cfg| (cfg.image, cfg.labels)).unwrap_or_default();
    Ok(Some(Container {
        host: String::new(),
        id,
        name: c.name.map(|n| strip_name(&n)).unwrap_or_default(),
        image_ref: image_ref.unwrap_or_default(),
        image_id,
        labels: labels.unwrap_or_default(),
        network_mode: c.host_config.and_then(|h| h.network_mode).unwrap_or_default(),
    }))
}

/// An image by id or reference, or `None` when it no longer exists.
pub async fn image(docker: &Docker, id_or_ref: &str) -> Result<Option<Image>, DockerError> {
    match docker.inspect_image(id_or_ref).await {
        Ok(i) => {
            let labels = release_labels(i.config.and_then(|c| c.labels));
            Ok(i.id.map(|id| Image { id, repo_digests: i.repo_digests.unwrap_or_default(), labels }))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn is_not_found(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 404, .. })
}

/// The engine's registry settings from `GET /info`.
pub async fn registry_settings(docker: &Docker) -> Result<RegistrySettings, DockerError> {
    let Some(config) = docker.info().await?.registry_config else { return Ok(RegistrySettings::default()) };
    Ok(RegistrySettings {
        insecure_cidrs: config.insecure_registry_cidrs,
        index_secure: config
            .index_configs
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, index)| index.secure.map(|secure| (name, secure)))
            .collect(),
    })
}

/// The API version the client speaks: bollard's own, or lower once
/// [`negotiate`] has met an older engine. Fields newer than this must not be sent.
pub fn api_version(docker: &Docker) -> (u16, u16) {
    let v = docker.client_version();
    (u16::try_from(v.major_version).unwrap_or(u16::MAX), u16::try_from(v.minor_version).unwrap_or(u16::MAX))
}

/// Pulls `reference` (`repo`, `repo:tag`, `host:port/repo:tag`, `repo@sha256:...`)
/// through the engine, as `docker pull` does: one event per line of the
/// engine's progress stream.
///
/// Errors come two ways, and the stream ends after either:
/// - a failure before the engine streams anything is an `Err`: an unknown
///   tag or repository ([`DockerError::NotFound`]), a registry refusing the
///   credentials ([`DockerError::Api`] with the engine's message), a bad
///   reference ([`DockerError::BadName`], nothing sent);
/// - a failure the engine reports inside the stream, once the pull has begun
///   (a layer that cannot be fetched), is an `Ok` event with `error` set.
///
/// Credentials go in `X-Registry-Auth` and never into a message: any
/// password or token the engine echoes is blanked out.
pub fn pull(
    docker: &Docker,
    reference: &str,
    auth: Option<&PullAuth>,
) -> impl Stream<Item = Result<PullEvent, DockerError>> + Send + Unpin + 'static {
    let Some((from_image, tag)) = split_reference(reference) else {
        return stream::once(futures::future::ready(Err(DockerError::BadName(reference.to_string())))).boxed();
    };
    let secrets: Vec<String> = auth.map(secrets_of).unwrap_or_default();
    let client = with_registry_auth(docker, auth);
    let options = CreateImageOptions { from_image: Some(from_image), tag: Some(tag), ..Default::default() };
    pull_events(client.create_image(Some(options), None, None), secrets).boxed()
}

/// The engine's pull lines as events, ending after the first error.
fn pull_events(
    lines: impl Stream<Item = Result<CreateImageInfo, BollardError>>,
    secrets: Vec<String>,
) -> impl Stream<Item = Result<PullEvent, DockerError>> {
    lines.scan(false, move |ended, line| {
        if *ended {
            return futures::future::ready(None);
        }
        let event = match line {
            // bollard turns lines with an `errorDetail` message into errors; any other is progress.
            Ok(info) => {
                let progress = info.progress_detail.unwrap_or_default();
                Ok(PullEvent {
                    id: info.id,
                    status: info.status.unwrap_or_default(),
                    current: progress.current.and_then(|n| u64::try_from(n).ok()),
                    total: progress.total.and_then(|n| u64::try_from(n).ok()),
                    error: None,
                })
            }
            Err(BollardError::DockerStreamError { error }) => {
                Ok(PullEvent { error: Some(scrub(&error, &secrets)), ..Default::default() })
            }
            Err(e) => Err(scrub_error(DockerError::from(e), &secrets)),
        };
        *ended = matches!(event, Err(_) | Ok(PullEvent { error: Some(_), .. }));
        futures::future::ready(Some(event))
    })
}

/// `fromImage` and `tag` for `POST /images/create`, split as the docker CLI
/// does: the tag is what follows the last `:` after the last `/` (so a
/// registry port is not a tag), a digest wins over a tag, and no tag means
/// `latest` (an empty tag would pull every tag of the repository).
fn split_reference(reference: &str) -> Option<(String, String)> {
    if !is_path_safe_reference(reference) {
        return None;
    }
    let (name, pinned) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    let tag = match (pinned, tag) {
        (Some(digest), _) => digest,
        (None, Some(tag)) => tag,
        (None, None) => "latest",
    };
    if repository.is_empty() || repository.ends_with('/') || tag.is_empty() {
        return None;
    }
    Some((repository.to_string(), tag.to_string()))
}

/// A client that sends `auth` as `X-Registry-Auth` on every request (pulls,
/// service updates). bollard encodes this header with the standard base64
/// alphabet, but the engine decodes the URL-safe one and silently goes on
/// without credentials when that fails: set it ourselves.
pub(super) fn with_registry_auth(docker: &Docker, auth: Option<&PullAuth>) -> Docker {
    let Some(auth) = auth else { return docker.clone() };
    let header = registry_auth_header(auth);
    docker.clone().with_request_modifier(move |mut request| {
        if let Ok(value) = header.parse() {
            request.headers_mut().insert("x-registry-auth", value);
        }
        request
    })
}

/// The `X-Registry-Auth` value: the auth config as JSON, base64 with the
/// URL-safe alphabet (the engine's `base64.URLEncoding`).
fn registry_auth_header(auth: &PullAuth) -> String {
    let mut config = serde_json::Map::new();
    let mut put = |key: &str, value: &Option<String>| {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            config.insert(key.to_string(), serde_json::Value::String(v.to_string()));
        }
    };
    put("username", &auth.username);
    put("password", &auth.password);
    put("identitytoken", &auth.identity_token);
    put("serveraddress", &Some(auth.server_address.clone()));
    base64::engine::general_purpose::URL_SAFE.encode(serde_json::Value::Object(config).to_string())
}

fn secrets_of(auth: &PullAuth) -> Vec<String> {
    [&auth.password, &auth.identity_token].into_iter().flatten().filter(|s| !s.is_empty()).cloned().collect()
}

/// `message` with every secret blanked out.
fn scrub(message: &str, secrets: &[String]) -> String {
    secrets.iter().fold(message.to_string(), |m, secret| m.replace(secret.as_str(), "<redacted>"))
}

fn scrub_error(e: DockerError, secrets: &[String]) -> DockerError {
    if secrets.is_empty() {
        return e;
    }
    match e {
        DockerError::NotFound(m) => DockerError::NotFound(scrub(&m, secrets)),
        DockerError::Conflict(m) => DockerError::Conflict(scrub(&m, secrets)),
        DockerError::Api(BollardError::DockerResponseServerError { status_code, message }) => {
            DockerError::Api(BollardError::DockerResponseServerError { status_code, message: scrub(&message, secrets) })
        }
        other => other,
    }
}

/// Whether `reference` can be put in a URL path as it is: the characters of
/// image references only, and no `..` (never valid in a reference).
fn is_path_safe_reference(reference: &str) -> bool {
    !reference.is_empty()
        && !reference.contains("..")
        && reference.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@'))
}

/// Whether `name` can be a container or network name or id, as the engine
/// allows them (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`); a leading `/` is accepted.
fn is_object_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn object_name(name: &str) -> Result<&str, DockerError> {
    if is_object_name(name) {
        Ok(name)
    } else {
        Err(DockerError::BadName(name.to_string()))
    }
}

/// A container by id, id prefix or name, whatever its state.
pub async fn inspect_container(docker: &Docker, id_or_name: &str) -> Result<ContainerDetails, DockerError> {
    Ok(docker.inspect_container(object_name(id_or_name)?, None).await?)
}

/// An image by id or reference.
pub async fn inspect_image(docker: &Docker, id_or_ref: &str) -> Result<ImageDetails, DockerError> {
    if !is_path_safe_reference(id_or_ref) {
        return Err(DockerError::BadName(id_or_ref.to_string()));
    }
    Ok(docker.inspect_image(id_or_ref).await?)
}

/// Creates (does not start) a container called `name`; answers its id. A
/// name in use is [`DockerError::Conflict`], a missing image [`DockerError::NotFound`].
pub async fn create_container(docker: &Docker, name: &str, body: ContainerCreateBody) -> Result<String, DockerError> {
    let options = CreateContainerOptions { name: Some(object_name(name)?.to_string()), ..Default::default() };
    let created = docker.create_container(Some(options), body).await?;
    for warning in &created.warnings {
        tracing::warn!(container = name, "engine warns on create: {warning}");
    }
    Ok(created.id)
}

pub async fn rename_container(docker: &Docker, id_or_name: &str, new_name: &str) -> Result<(), DockerError> {
    let options = RenameContainerOptions { name: object_name(new_name)?.to_string() };
    Ok(docker.rename_container(object_name(id_or_name)?, options).await?)
}

/// Starts a container; one already running is left as it is.
pub async fn start_container(docker: &Docker, id_or_name: &str) -> Result<(), DockerError> {
    Ok(docker.start_container(object_name(id_or_name)?, None::<StartContainerOptions>).await?)
}

/// The engine's stop timeout for a container that sets none (Linux).
const DEFAULT_STOP_TIMEOUT: i64 = 10;
/// How much longer than the stop timeout the request may take: after the
/// timeout the engine kills the process and still waits for it to exit.
const STOP_MARGIN: Duration = Duration::from_secs(60);
/// The request's bound when the container waits as long as it takes (`-1`).
/// The engine's stop timeout for a container that sets none (Linux).
pub const DEFAULT_STOP_SECS: i64 = DEFAULT_STOP_TIMEOUT;
const UNBOUNDED_STOP: Duration = Duration::from_secs(24 * 3600);

/// Stops a container, as `docker stop` does. Without `timeout`, the
/// container's own stop signal and timeout apply, and the request waits
/// longer than that timeout (bollard's default of 120 s can be shorter). A
/// container that is not running is left as it is.
pub async fn stop_container(docker: &Docker, id_or_name: &str, timeout: Option<i64>) -> Result<(), DockerError> {
    let wait = match timeout {
        Some(t) => t,
        None => inspect_container(docker, object_name(id_or_name)?)
            .await?
            .config
            .and_then(|c| c.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT),
    };
    stop_container_within(docker, id_or_name, timeout, wait).await
}

/// [`stop_container`] for a caller that already knows the container's own
/// stop timeout (`own_timeout`, seconds; `< 0` unbounded): one request less.
pub async fn stop_container_within(
    docker: &Docker,
    id_or_name: &str,
    timeout: Option<i64>,
    own_timeout: i64,
) -> Result<(), DockerError> {
    let id_or_name = object_name(id_or_name)?;
    let wait = timeout.unwrap_or(own_timeout);
    let options = StopContainerOptions {
        signal: None,
        t: timeout.map(|t| i32::try_from(t.clamp(-1, i64::from(i32::MAX))).unwrap_or(i32::MAX)),
    };
    let client = docker.clone().with_timeout(stop_request_timeout(wait, docker.timeout()));
    Ok(client.stop_container(id_or_name, Some(options)).await?)
}

/// The HTTP timeout for a stop that may take `wait` seconds (`< 0`: unbounded).
fn stop_request_timeout(wait: i64, client_timeout: Duration) -> Duration {
    let needed = u64::try_from(wait).map_or(UNBOUNDED_STOP, |s| Duration::from_secs(s).saturating_add(STOP_MARGIN));
    needed.max(client_timeout)
}

/// Removes a container, never its volumes (anonymous volumes keep their
/// data for the container that replaces it). Without `force` a running
/// container is refused with [`DockerError::Conflict`].
pub async fn remove_container(docker: &Docker, id_or_name: &str, force: bool) -> Result<(), DockerError> {
    let options = RemoveContainerOptions { v: false, force, link: false };
    Ok(docker.remove_container(object_name(id_or_name)?, Some(options)).await?)
}

/// Connects a (created or running) container to a network with its endpoint settings.
pub async fn connect_network(
    docker: &Docker,
    network: &str,
    container: &str,
    endpoint: EndpointSettings,
) -> Result<(), DockerError> {
    let request =
        NetworkConnectRequest { container: object_name(container)?.to_string(), endpoint_config: Some(endpoint) };
    Ok(docker.connect_network(object_name(network)?, request).await?)
}

/// Changes only a container's restart policy.
pub async fn set_restart_policy(docker: &Docker, id_or_name: &str, policy: RestartPolicy) -> Result<(), DockerError> {
    let update = ContainerUpdateBody { restart_policy: Some(policy), ..Default::default() };
    Ok(docker.update_container(object_name(id_or_name)?, update).await?)
}

/// Restarts a container as `docker restart` does (its own stop timeout applies).
pub async fn restart_container(docker: &Docker, id_or_name: &str) -> Result<(), DockerError> {
    let name = object_name(id_or_name)?;
    docker.restart_container(name, None::<bollard::query_parameters::RestartContainerOptions>).await?;
    Ok(())
}

/// Removes an image, as `docker rmi` without `-f`: refused with
/// [`DockerError::Conflict`] while a container (even a stopped one) uses it
/// or, named by id, while several repositories tag it.
pub async fn remove_image(docker: &Docker, id_or_ref: &str) -> Result<(), DockerError> {
    if !is_path_safe_reference(id_or_ref) {
        return Err(DockerError::BadName(id_or_ref.to_string()));
    }
    let options = RemoveImageOptions { force: false, noprune: false, platforms: None };
    docker.remove_image(id_or_ref, Some(options), None).await?;
    Ok(())
}

/// Every container, in any state, carrying the label `label_key` (whatever its value).
pub async fn containers_with_label(docker: &Docker, label_key: &str) -> Result<Vec<ContainerEntry>, DockerError> {
    let filters = HashMap::from([("label".to_string(), vec![label_key.to_string()])]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    Ok(docker.list_containers(Some(options)).await?.into_iter().filter_map(entry).collect())
}

/// The running containers as one list call gives them: no inspect, so it
/// stays cheap with hundreds of containers.
pub async fn running_entries(docker: &Docker) -> Result<Vec<ContainerEntry>, DockerError> {
    let options = ListContainersOptions { all: false, ..Default::default() };
    Ok(docker.list_containers(Some(options)).await?.into_iter().filter_map(entry).collect())
}

/// The container called exactly `name` (with or without the leading `/`), in any state.
pub async fn container_by_name(docker: &Docker, name: &str) -> Result<Option<ContainerEntry>, DockerError> {
    let name = name.strip_prefix('/').unwrap_or(name);
    if !is_object_name(name) {
        return Ok(None);
    }
    // The engine matches the name filter as a regular expression.
    let pattern = format!("^/{}$", name.replace('.', "\\."));
    let filters = HashMap::from([("name".to_string(), vec![pattern])]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let list = docker.list_containers(Some(options)).await?;
    Ok(list.into_iter().filter_map(entry).find(|c| c.name == name))
}

/// A list entry in our terms, named by its own name (not a link alias `/other/alias`).
fn entry(summary: bollard::models::ContainerSummary) -> Option<ContainerEntry> {
    let names = summary.names.unwrap_or_default();
    let name = names.iter().map(|n| strip_name(n)).find(|n| !n.contains('/'))?;
    Some(ContainerEntry {
        id: summary.id?,
        name,
        image_id: summary.image_id.unwrap_or_default(),
        state: summary.state.map(|s| s.to_string()).unwrap_or_default(),
        labels: summary.labels.unwrap_or_default(),
        network_mode: summary.host_config.and_then(|h| h.network_mode).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_references_like_the_docker_cli() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let cases: Vec<(String, Option<(&str, String)>)> = vec![
            ("nginx".into(), Some(("nginx", "latest".into()))),
            ("nginx:1.25".into(), Some(("nginx", "1.25".into()))),
            ("library/nginx:1".into(), Some(("library/nginx", "1".into()))),
            ("127.0.0.1:5000/app".into(), Some(("127.0.0.1:5000/app", "latest".into()))),
            ("127.0.0.1:5000/app:1.2".into(), Some(("127.0.0.1:5000/app", "1.2".into()))),
            ("localhost:5000/a/b/c:v-1_2".into(), Some(("localhost:5000/a/b/c", "v-1_2".into()))),
            (format!("127.0.0.1:5000/app@{digest}"), Some(("127.0.0.1:5000/app", digest.into()))),
            (format!("app:1.2@{digest}"), Some(("app", digest.into()))),
            (format!("ghcr.io/o/r:v1@{digest}"), Some(("ghcr.io/o/r", digest.into()))),
            ("".into(), None),
            ("app:".into(), None),
            ("app@".into(), None),
            (":tag".into(), None),
            ("host:5000/".into(), None),
            ("app name".into(), None),
            ("app?x=1".into(), None),
            ("../containers/x".into(), None),
        ];
        for (reference, want) in cases {
            let got = split_reference(&reference);
            assert_eq!(got, want.map(|(r, t)| (r.to_string(), t)), "{reference:?}");
        }
    }

    #[test]
    fn registry_auth_uses_the_url_safe_alphabet_and_only_given_fields() {
        use base64::engine::general_purpose::URL_SAFE;
        // JSON whose standard base64 has `+` and `/` in it.
        let basic = PullAuth {
            server_address: "127.0.0.1:5000".into(),
            username: Some("u".into()),
            password: Some("??>>??>>~~".into()),
            identity_token: None,
        };
        let token = PullAuth {
            server_address: "https://index.docker.io/v1/".into(),
            username: Some(String::new()),
            identity_token: Some("refresh-token".into()),
            ..Default::default()
        };
        let cases = [
            (&basic, serde_json::json!({"username": "u", "password": "??>>??>>~~", "serveraddress": "127.0.0.1:5000"})),
            (
                &token,
                serde_json::json!({"identitytoken": "refresh-token", "serveraddress": "https://index.docker.io/v1/"}),
            ),
        ];
        for (auth, want) in &cases {
            let header = registry_auth_header(auth);
            assert!(!header.contains('+') && !header.contains('/'), "{header}");
            let json: serde_json::Value =
                serde_json::from_slice(&URL_SAFE.decode(&header).expect("url-safe base64")).expect("json");
            assert_eq!(&json, want);
        }
        let standard = base64::engine::general_purpose::STANDARD.encode(cases[0].1.to_string());
        assert!(standard.contains('+') || standard.contains('/'), "the case must exercise the alphabet");
    }

    #[test]
    fn secrets_never_reach_messages() {
        let auth =
            PullAuth { password: Some("hunter2".into()), identity_token: Some("tok3n".into()), ..Default::default() };
        let secrets = secrets_of(&auth);
        assert_eq!(scrub("bad hunter2 and tok3n", &secrets), "bad <redacted> and <redacted>");
        let e = scrub_error(DockerError::NotFound("no hunter2".into()), &secrets);
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = scrub_error(
            DockerError::from(BollardError::DockerResponseServerError { status_code: 500, message: "x tok3n".into() }),
            &secrets,
        );
        assert!(!e.to_string().contains("tok3n"), "{e}");
    }

    #[test]
    fn pull_lines_become_events_and_the_stream_ends_at_the_first_error() {
        use bollard::models::ProgressDetail;
        let line = |id: &str, status: &str, progress: Option<(i64, i64)>| {
            Ok(CreateImageInfo {
                id: Some(id.into()),
                status: Some(status.into()),
                progress_detail: progress.map(|(c, t)| ProgressDetail { current: Some(c), total: Some(t) }),
                ..Default::default()
            })
        };
        let failed = |error: &str| Err(BollardError::DockerStreamError { error: error.into() });
        let refused =
            || Err(BollardError::DockerResponseServerError { status_code: 404, message: "gone s3cret".into() });
        let secrets = vec!["s3cret".to_string()];
        let run = |lines: Vec<Result<CreateImageInfo, BollardError>>| {
            futures::executor::block_on(pull_events(stream::iter(lines), secrets.clone()).collect::<Vec<_>>())
        };

        let events = run(vec![
            line("abc", "Downloading", Some((5, 10))),
            line("abc", "Extracting", Some((-1, 10))),
            failed("read s3cret: connection reset"),
            line("abc", "Pull complete", None),
        ]);
        assert_eq!(events.len(), 3, "{events:?}");
        let want = PullEvent {
            id: Some("abc".into()),
            status: "Downloading".into(),
            current: Some(5),
            total: Some(10),
            error: None,
        };
        assert_eq!(events[0].as_ref().ok(), Some(&want));
        assert_eq!(events[1].as_ref().ok().map(|e| (e.current, e.total)), Some((None, Some(10))));
        let error = events[2].as_ref().ok().and_then(|e| e.error.clone());
        assert_eq!(error.as_deref(), Some("read <redacted>: connection reset"));

        let events = run(vec![refused(), line("abc", "Downloading", None)]);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(matches!(&events[0], Err(DockerError::NotFound(m)) if m == "gone <redacted>"), "{events:?}");
    }

    #[test]
    fn classifies_engine_answers() {
        let answer = |status_code| BollardError::DockerResponseServerError { status_code, message: "m".into() };
        assert!(matches!(DockerError::from(answer(404)), DockerError::NotFound(m) if m == "m"));
        assert!(matches!(DockerError::from(answer(409)), DockerError::Conflict(m) if m == "m"));
        assert!(matches!(DockerError::from(answer(500)), DockerError::Api(_)));
        assert!(matches!(DockerError::from(answer(304)), DockerError::Api(_)));
    }

    #[test]
    fn stop_requests_outlast_the_stop_timeout() {
        let default = Duration::from_secs(120);
        let cases = [
            (10, default),
            (0, default),
            (60, default),
            (61, Duration::from_secs(121)),
            (300, Duration::from_secs(360)),
            (-1, UNBOUNDED_STOP),
            (i64::MAX, Duration::from_secs(i64::MAX as u64).saturating_add(STOP_MARGIN)),
        ];
        for (wait, want) in cases {
            assert_eq!(stop_request_timeout(wait, default), want, "{wait}");
            assert!(wait < 0 || stop_request_timeout(wait, default) > Duration::from_secs(wait as u64), "{wait}");
        }
    }

    #[test]
    fn object_names_are_what_the_engine_allows() {
        let cases = [
            ("web", true),
            ("/web", true),
            ("web.1_a-b", true),
            ("0123456789ab", true),
            ("", false),
            ("/", false),
            ("-web", false),
            (".web", false),
            ("a/b", false),
            ("a b", false),
            ("a?b", false),
            ("a%2Fb", false),
        ];
        for (name, ok) in cases {
            assert_eq!(is_object_name(name), ok, "{name:?}");
        }
    }

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
