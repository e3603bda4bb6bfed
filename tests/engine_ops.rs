//! The engine calls the update jobs make (`shipshape::docker::engine`),
//! each against the lab's private daemon on real containers, networks and
//! images pulled from the lab's registries.

mod common;

use futures::StreamExt;
use shipshape::docker::engine::{self, Docker, DockerError};
use shipshape::docker::model::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, PullAuth, PullEvent, RestartPolicy,
    RestartPolicyNameEnum,
};

use common::jobs::InternalNetwork;
use common::{lab, unique, Lab};

async fn docker(lab: &Lab) -> Docker {
    let docker = engine::client(Some(&lab.docker_host)).expect("client for the lab daemon");
    engine::negotiate(&docker).await.expect("the lab daemon answers");
    docker
}

/// Every event of a pull, or the error that ended it.
async fn pull_all(docker: &Docker, reference: &str, auth: Option<&PullAuth>) -> (Vec<PullEvent>, Option<DockerError>) {
    let mut events = Vec::new();
    let mut stream = engine::pull(docker, reference, auth);
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(e) => {
                assert!(stream.next().await.is_none(), "the stream ends after an error");
                return (events, Some(e));
            }
        }
    }
    (events, None)
}

/// Builds an image only the registry has (nothing local), returns its reference.
fn remote_only_image(lab: &Lab, registry: &str, marker: &str) -> (String, ImageGuard) {
    let reference = format!("{registry}/engine-ops/{}:v1", unique("pull"));
    let digest = lab.script(&["build-image", "--remote-only", &reference, marker]);
    assert!(digest.starts_with("sha256:"), "build-image printed {digest:?}");
    let out = lab.docker_output(&["image", "inspect", &reference]);
    assert!(!out.status.success(), "{reference} must not be local before the pull");
    (reference.clone(), ImageGuard { lab: lab.clone(), reference })
}

/// A sleeping busybox container body, without network.
fn sleeper(lab: &Lab, labels: &[(&str, &str)]) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(lab.base_image.clone()),
        cmd: Some(vec!["sleep".into(), "100000".into()]),
        labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        // busybox `sleep` as PID 1 ignores SIGTERM: every stop waits this long, then kills.
        stop_timeout: Some(1),
        host_config: Some(HostConfig { network_mode: Some("none".into()), ..Default::default() }),
        ..Default::default()
    }
}

fn state(lab: &Lab, name: &str) -> String {
    lab.docker(&["inspect", "--format", "{{.State.Status}}", name])
}

#[tokio::test]
async fn a_pull_reports_layer_progress_and_lands_the_image() {
    let lab = lab();
    lab.ensure_base_image();
    let docker = docker(&lab).await;
    let (reference, _image) = remote_only_image(&lab, &lab.registry, "progress");

    let (events, error) = pull_all(&docker, &reference, None).await;
    assert!(error.is_none(), "{error:?}: {events:?}");
    assert!(events.iter().all(|e| e.error.is_none()), "{events:?}");
    // The new layer (the base's are already here) is fetched and extracted, with byte counts.
    let layer_events: Vec<&PullEvent> =
        events.iter().filter(|e| e.id.as_deref().is_some_and(|id| id.len() == 12)).collect();
    assert!(layer_events.iter().any(|e| e.status == "Pull complete"), "{events:?}");
    assert!(
        layer_events.iter().any(|e| matches!((e.current, e.total), (Some(c), Some(t)) if c > 0 && c <= t)),
        "some layer line carries progress: {events:?}"
    );
    let last = events.last().expect("events");
    assert!(last.status.starts_with("Status: Downloaded newer image"), "{events:?}");

    let local = engine::inspect_image(&docker, &reference).await.expect("pulled image is local");
    let want = lab.docker(&["image", "inspect", "--format", "{{.Id}}", &reference]);
    assert_eq!(local.id.as_deref(), Some(want.as_str()));

    // Pulled again by digest (`repo@sha256:...`): nothing to fetch, same image.
    let digest = local.repo_digests.unwrap_or_default().into_iter().next().expect("a repo digest");
    let (events, error) = pull_all(&docker, &digest, None).await;
    assert!(error.is_none(), "{error:?}");
    assert!(events.iter().any(|e| e.status.contains("Image is up to date")), "{events:?}");
}

#[tokio::test]
async fn a_pull_from_a_basic_auth_registry_uses_the_credentials_and_never_shows_them() {
    let lab = lab();
    lab.ensure_base_image();
    let docker = docker(&lab).await;
    let (reference, _image) = remote_only_image(&lab, &lab.auth_registry, "auth");

    // Without credentials the registry refuses.
    let (events, error) = pull_all(&docker, &reference, None).await;
    let refused = error.map(|e| e.to_string()).or_else(|| events.iter().find_map(|e| e.error.clone()));
    assert!(refused.is_some(), "a pull without credentials fails: {events:?}");

    // Wrong credentials: refused, and the password is in no message.
    let wrong = PullAuth {
        server_address: lab.auth_registry.clone(),
        username: Some(lab.auth_user.clone()),
        password: Some(format!("wrong-{}", unique("pw"))),
        identity_token: None,
    };
    let (events, error) = pull_all(&docker, &reference, Some(&wrong)).await;
    let message = error.map(|e| e.to_string()).or_else(|| events.iter().find_map(|e| e.error.clone()));
    let message = message.expect("wrong credentials fail");
    let secret = wrong.password.as_deref().unwrap_or_default();
    assert!(!message.contains(secret), "{message}");
    assert!(!format!("{wrong:?}").contains(secret));
    assert!(lab.docker_output(&["image", "inspect", &reference]).status.code() != Some(0));

    let auth = PullAuth {
        server_address: lab.auth_registry.clone(),
        username: Some(lab.auth_user.clone()),
        password: Some(lab.auth_password.clone()),
        identity_token: None,
    };
    let (events, error) = pull_all(&docker, &reference, Some(&auth)).await;
    assert!(error.is_none(), "{error:?}");
    assert!(events.iter().all(|e| e.error.is_none()), "{events:?}");
    assert!(events.iter().any(|e| e.status.starts_with("Status: Downloaded newer image")), "{events:?}");
    engine::inspect_image(&docker, &reference).await.expect("pulled with credentials");
}

#[tokio::test]
async fn a_pull_of_a_missing_tag_or_a_bad_reference_fails_clearly() {
    let lab = lab();
    let docker = docker(&lab).await;
    let repo = lab.base_image.rsplit_once(':').map(|(r, _)| r.to_string()).expect("base image has a tag");
    let missing = format!("{repo}:{}", unique("no-such-tag"));
    let (events, error) = pull_all(&docker, &missing, None).await;
    match error {
        Some(DockerError::NotFound(message)) => {
            assert!(message.contains("not found") || message.contains("unknown"), "{message}")
        }
        other => panic!("expected NotFound, got {other:?} after {events:?}"),
    }
    assert!(lab.docker_output(&["image", "inspect", &missing]).status.code() != Some(0));

    for bad in ["", "app name:1", "app:", "../containers/x"] {
        let (events, error) = pull_all(&docker, bad, None).await;
        assert!(matches!(error, Some(DockerError::BadName(_))), "{bad:?}: {error:?} {events:?}");
    }
}

#[tokio::test]
async fn create_rename_start_stop_remove() {
    let lab = lab();
    lab.ensure_base_image();
    let docker = docker(&lab).await;
    let label = unique("engine-ops.label");
    let name = unique("engine-ops-life");
    let renamed = format!("{name}-renamed");
    let _guard = Containers::new(&lab, &[&name, &renamed]);

    let id = engine::create_container(&docker, &name, sleeper(&lab, &[(&label, "one")])).await.expect("create");
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(state(&lab, &name), "created");
    // The same name again is a conflict, and the first container is untouched.
    let again = engine::create_container(&docker, &name, sleeper(&lab, &[])).await;
    assert!(matches!(again, Err(DockerError::Conflict(_))), "{again:?}");

    let found = engine::container_by_name(&docker, &name).await.expect("list").expect("found by name");
    assert_eq!((found.id.as_str(), found.state.as_str()), (id.as_str(), "created"));
    assert_eq!(found.labels.get(&label).map(String::as_str), Some("one"));
    let labelled = engine::containers_with_label(&docker, &label).await.expect("list");
    assert_eq!(labelled.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);

    engine::rename_container(&docker, &id, &renamed).await.expect("rename");
    assert!(engine::container_by_name(&docker, &name).await.expect("list").is_none());
    assert_eq!(engine::container_by_name(&docker, &renamed).await.expect("list").map(|c| c.id), Some(id.clone()));

    engine::start_container(&docker, &renamed).await.expect("start");
    let details = engine::inspect_container(&docker, &id).await.expect("inspect");
    assert_eq!(details.state.as_ref().and_then(|s| s.running), Some(true));
    assert_eq!(details.name.as_deref(), Some(format!("/{renamed}").as_str()));
    // Starting a running container changes nothing.
    engine::start_container(&docker, &id).await.expect("start again");

    // Its own stop timeout (1 s, then SIGKILL: busybox sleep ignores SIGTERM).
    engine::stop_container(&docker, &id, None).await.expect("stop");
    let details = engine::inspect_container(&docker, &id).await.expect("inspect");
    assert_eq!(details.state.as_ref().and_then(|s| s.running), Some(false));
    assert_eq!(details.state.as_ref().and_then(|s| s.exit_code), Some(137), "killed after its stop timeout");
    // Stopping a stopped container changes nothing; an explicit timeout works too.
    engine::stop_container(&docker, &id, None).await.expect("stop again");
    engine::start_container(&docker, &id).await.expect("start");
    engine::stop_container(&docker, &id, Some(0)).await.expect("stop with a timeout");
    assert_eq!(state(&lab, &id), "exited");
    let stopped = engine::containers_with_label(&docker, &label).await.expect("list");
    assert_eq!(stopped.iter().map(|c| c.state.as_str()).collect::<Vec<_>>(), ["exited"], "stopped ones are listed");

    // Running: removal without force is refused.
    engine::start_container(&docker, &id).await.expect("start");
    let refused = engine::remove_container(&docker, &id, false).await;
    assert!(matches!(refused, Err(DockerError::Conflict(_))), "{refused:?}");
    assert_eq!(state(&lab, &id), "running");
    engine::remove_container(&docker, &id, true).await.expect("forced removal");

    let gone = engine::inspect_container(&docker, &id).await;
    assert!(matches!(gone, Err(DockerError::NotFound(_))), "{gone:?}");
    assert!(engine::container_by_name(&docker, &renamed).await.expect("list").is_none());
    assert!(engine::containers_with_label(&docker, &label).await.expect("list").is_empty());
    for call in [
        engine::start_container(&docker, &id).await,
        engine::stop_container(&docker, &id, None).await,
        engine::remove_container(&docker, &id, true).await,
    ] {
        assert!(matches!(call, Err(DockerError::NotFound(_))), "{call:?}");
    }
}

#[tokio::test]
async fn names_match_exactly_and_odd_names_are_refused() {
    let lab = lab();
    lab.ensure_base_image();
    let docker = docker(&lab).await;
    let dotted = unique("engine-ops.dot");
    let longer = format!("{dotted}-longer");
    let _guard = Containers::new(&lab, &[&dotted, &longer]);
    let id = engine::create_container(&docker, &dotted, sleeper(&lab, &[])).await.expect("create");
    engine::create_container(&docker, &longer, sleeper(&lab, &[])).await.expect("create");

    assert_eq!(engine::container_by_name(&docker, &dotted).await.expect("list").map(|c| c.id), Some(id.clone()));
    assert_eq!(
        engine::container_by_name(&docker, &format!("/{dotted}")).await.expect("list").map(|c| c.id),
        Some(id.clone())
    );
    // A `.` is not a wildcard, and a prefix is not the name.
    let look_alike = dotted.replacen("engine-ops.dot", "engine-opsXdot", 1);
    for other in [look_alike.as_str(), &dotted[..dotted.len() - 1], &id[..12], "engine-ops"] {
        assert!(engine::container_by_name(&docker, other).await.expect("list").is_none(), "{other}");
    }

    for bad in ["", "a/b", "../images/x", "a b", "a?b"] {
        let calls = [
            engine::inspect_container(&docker, bad).await.map(|_| ()),
            engine::start_container(&docker, bad).await,
            engine::rename_container(&docker, &id, bad).await,
            engine::remove_container(&docker, bad, true).await,
        ];
        for call in calls {
            assert!(matches!(call, Err(DockerError::BadName(_))), "{bad:?}: {call:?}");
        }
        assert!(engine::container_by_name(&docker, bad).await.expect("no request").is_none());
    }
    assert_eq!(state(&lab, &dotted), "created", "nothing happened to it");
}

#[tokio::test]
async fn restart_policy_is_updated_in_place() {
    let lab = lab();
    lab.ensure_base_image();
    let docker = docker(&lab).await;
    let name = unique("engine-ops-restart");
    let _guard = Containers::new(&lab, &[&name]);
    let mut body = sleeper(&lab, &[]);
    if let Some(host) = body.host_config.as_mut() {
        host.restart_policy =
            Some(RestartPolicy { name: Some(RestartPolicyNameEnum::ON_FAILURE), maximum_retry_count: Some(3) });
    }
    let id = engine::create_container(&docker, &name, body).await.expect("create");
    engine::start_container(&docker, &id).await.expect("start");
    let policy = |lab: &Lab| lab.docker(&["inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", &name]);
    assert_eq!(policy(&lab), "on-failure");

    let no = RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None };
    engine::set_restart_policy(&docker, &id, no).await.expect("update");
    assert_eq!(policy(&lab), "no");
    let details = engine::inspect_container(&docker, &id).await.expect("inspect");
    assert_eq!(details.state.as_ref().and_then(|s| s.running), Some(true), "still running");

    let back = RestartPolicy { name: Some(RestartPolicyNameEnum::UNLESS_STOPPED), maximum_retry_count: None };
    engine::set_restart_policy(&docker, &name, back).await.expect("update by name");
    assert_eq!(policy(&lab), "unless-stopped");
    let gone = engine::set_restart_policy(&docker, &unique("engine-ops-none"), RestartPolicy::default()).await;
    assert!(matches!(gone, Err(DockerError::NotFound(_))), "{gone:?}");
}

#[tokio::test]
async fn a_container_joins_an_internal_network_with_aliases_and_a_static_address() {
    let lab = lab();
    lab.ensure_base_image();
    let docker = docker(&lab).await;
    let primary = InternalNetwork::create(&lab, "engine-ops-net-a");
    let second = InternalNetwork::create(&lab, "engine-ops-net-b");
    let name = unique("engine-ops-net");
    let _guard = Containers::new(&lab, &[&name]);
    let mut body = sleeper(&lab, &[]);
    body.host_config = Some(HostConfig { network_mode: Some(primary.name.clone()), ..Default::default() });
    let id = engine::create_container(&docker, &name, body).await.expect("create on the primary network");

    // Connected while created (as a job does before the first start), then started.
    let address = format!("{}.77", second.prefix);
    let endpoint = EndpointSettings {
        aliases: Some(vec!["db-alias".into()]),
        ipam_config: Some(EndpointIpamConfig { ipv4_address: Some(address.clone()), ..Default::default() }),
        ..Default::default()
    };
    engine::connect_network(&docker, &second.name, &id, endpoint).await.expect("connect");
    engine::start_container(&docker, &id).await.expect("start");

    let details = engine::inspect_container(&docker, &id).await.expect("inspect");
    let networks = details.network_settings.and_then(|n| n.networks).unwrap_or_default();
    assert!(networks.contains_key(&primary.name), "{networks:?}");
    let joined = networks.get(&second.name).unwrap_or_else(|| panic!("not on {}: {networks:?}", second.name));
    assert_eq!(joined.ip_address.as_deref(), Some(address.as_str()));
    assert!(joined.aliases.as_ref().is_some_and(|a| a.iter().any(|a| a == "db-alias")), "{joined:?}");

    let missing = engine::connect_network(&docker, &unique("engine-ops-nonet"), &id, EndpointSettings::default()).await;
    assert!(matches!(missing, Err(DockerError::NotFound(_))), "{missing:?}");
}

#[tokio::test]
async fn removing_an_image_is_refused_while_a_container_or_another_tag_uses_it() {
    let lab = lab();
    lab.ensure_base_image();
    let docker = docker(&lab).await;
    let reference = format!("{}/engine-ops/{}:v1", lab.registry, unique("rmi"));
    let _image = ImageGuard { lab: lab.clone(), reference: reference.clone() };
    lab.script(&["build-image", &reference, "rmi"]);
    let image_id = lab.docker(&["image", "inspect", "--format", "{{.Id}}", &reference]);
    let name = unique("engine-ops-rmi");
    let _guard = Containers::new(&lab, &[&name]);
    let body = ContainerCreateBody { image: Some(reference.clone()), ..sleeper(&lab, &[]) };
    let id = engine::create_container(&docker, &name, body).await.expect("create");

    // A container that was never started still uses it.
    let refused = engine::remove_image(&docker, &image_id).await;
    assert!(matches!(refused, Err(DockerError::Conflict(_))), "{refused:?}");
    engine::remove_container(&docker, &id, false).await.expect("remove the created container");

    // Tagged in a second repository, removal by id must not untag the other.
    let other = format!("{}/engine-ops/{}:v1", lab.registry, unique("rmi-other"));
    let _other = ImageGuard { lab: lab.clone(), reference: other.clone() };
    lab.docker(&["tag", &reference, &other]);
    let refused = engine::remove_image(&docker, &image_id).await;
    assert!(matches!(refused, Err(DockerError::Conflict(_))), "{refused:?}");
    engine::inspect_image(&docker, &other).await.expect("the other tag stays");
    lab.docker(&["rmi", &other]);

    engine::remove_image(&docker, &image_id).await.expect("unused image is removed");
    let gone = engine::inspect_image(&docker, &image_id).await;
    assert!(matches!(gone, Err(DockerError::NotFound(_))), "{gone:?}");
    let again = engine::remove_image(&docker, &image_id).await;
    assert!(matches!(again, Err(DockerError::NotFound(_))), "{again:?}");
    engine::inspect_image(&docker, &lab.base_image).await.expect("the base image is untouched");
}

#[tokio::test]
async fn removing_a_container_keeps_its_anonymous_volume() {
    let lab = lab();
    lab.ensure_base_image();
    let docker = docker(&lab).await;
    let name = unique("engine-ops-vol");
    let _guard = Containers::new(&lab, &[&name]);
    let body = ContainerCreateBody { volumes: Some(vec!["/data".into()]), ..sleeper(&lab, &[]) };
    let id = engine::create_container(&docker, &name, body).await.expect("create");
    let details = engine::inspect_container(&docker, &id).await.expect("inspect");
    let volume = details
        .mounts
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.destination.as_deref() == Some("/data"))
        .and_then(|m| m.name)
        .expect("an anonymous volume at /data");
    let _volume = VolumeGuard { lab: lab.clone(), name: volume.clone() };

    engine::remove_container(&docker, &id, true).await.expect("remove");
    let kept = lab.docker_output(&["volume", "inspect", &volume]);
    assert!(kept.status.success(), "volume {volume} was removed with its container");
}

#[tokio::test]
async fn the_client_speaks_the_negotiated_version() {
    let lab = lab();
    let docker = engine::client(Some(&lab.docker_host)).expect("client");
    let before = engine::api_version(&docker);
    engine::negotiate(&docker).await.expect("negotiate");
    let after = engine::api_version(&docker);
    let server = lab.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    let (major, minor) = server.split_once('.').expect("major.minor");
    let server: (u16, u16) = (major.parse().expect("major"), minor.parse().expect("minor"));
    assert_eq!(after, before.min(server), "client {before:?}, server {server:?}");
    assert_eq!(engine::api_version(&docker.clone()), after, "clones share it");
}

/// Containers removed (with force) when dropped, whichever of the names exist.
struct Containers {
    lab: Lab,
    names: Vec<String>,
}

impl Containers {
    fn new(lab: &Lab, names: &[&str]) -> Self {
        Self { lab: lab.clone(), names: names.iter().map(|n| n.to_string()).collect() }
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.lab.docker_output(&["rm", "-f", name]);
        }
    }
}

/// A local image tag removed when dropped (the image too when nothing else uses it).
struct ImageGuard {
    lab: Lab,
    reference: String,
}

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = self.lab.docker_output(&["rmi", &self.reference]);
    }
}

struct VolumeGuard {
    lab: Lab,
    name: String,
}

impl Drop for VolumeGuard {
    fn drop(&mut self) {
        let _ = self.lab.docker_output(&["volume", "rm", "-f", &self.name]);
    }
}
