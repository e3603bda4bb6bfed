//! `shipshape check`: one round of the same engine the service runs, printed
//! for scripts and cron (a table, or the `GET /api/images` JSON).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::SystemTime;

use crate::check_cache::{self, CheckCache};
use crate::config::CheckArgs;
use crate::docker::engine::{self, Docker, DockerError};
use crate::docker::hosts::{self, ConnectError, HostSpec, HostsError};
use crate::docker::model::{Container, EngineSnapshot, RegistrySettings};
use crate::inventory::view::{build_fleet, references, without_excluded, Flags, ImageGroup};
use futures::future::{join_all, try_join_all};
use futures::StreamExt;

use crate::registry::check::{check_each, merge, CheckOutcome, IgnoredRegistries};
use crate::registry::client::{ClientOptions, RegistryClient, RegistryError};
use crate::registry::credentials::{self, CredentialsError};
use crate::registry::insecure::{self, InsecureError, InsecureRegistries};
use crate::registry::messages::{RemoteStates, TagStates};
use crate::registry::reference::ImageRef;
use crate::registry::versions_cache;
use crate::store::{self, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// With several engines, which one failed.
    #[error("engine {name}: {source}")]
    Engine { name: String, source: DockerError },
    #[error(transparent)]
    Hosts(#[from] HostsError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("SHIPSHAPE_INSECURE_REGISTRIES: {0}")]
    Insecure(#[from] InsecureError),
}

/// Lists containers and images once each (on every engine), asks each
/// registry once per distinct image, and returns the groups.
///
/// The registry requests are most of the time, so they start before the
/// containers are known: last run's references (see [`check_cache`]) are
/// asked while the engines list the containers, and only references new
/// since then wait for that list. The image list (only needed for the local
/// digests) and, when it can matter, the engine's insecure-registry settings
/// are fetched while the registries answer.
pub async fn run(args: &CheckArgs) -> Result<Vec<ImageGroup>, CheckError> {
    let extra_insecure = &args.registry.insecure_registries;
    insecure::check_entries(extra_insecure)?;
    let cache = check_cache::load(&args.data_dir);
    let without_engine = InsecureRegistries::without_engine(extra_insecure);
    let ignored = IgnoredRegistries::new(&args.registry.ignore_registries);
    let early = cache.prefetch(&without_engine);
    let early_set: HashSet<ImageRef> = early.iter().cloned().collect();
    // Building the HTTP client reads the system's CA certificates: do it on
    // another thread while the engine answers, then ask about last run's
    // references at once.
    let options = ClientOptions { insecure: without_engine.clone(), ..ClientOptions::from_args(&args.registry) };
    let remembered = cache.registries;
    let built = tokio::task::spawn_blocking(move || -> Result<RegistryClient, CheckError> {
        let docker_config = credentials::load(None)?;
        let client = RegistryClient::new(ClientOptions { docker_config, ..options })?;
        client.remember_protocols(remembered);
        Ok(client)
    });
    let (client_tx, client_rx) = tokio::sync::oneshot::channel();
    let prefetch = tokio::spawn({
        let ignored = ignored.clone();
        async move {
            // A client that failed to build is the whole check's error.
            let client = match built.await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    let _ = client_tx.send(Err(e));
                    return Vec::new();
                }
                Err(e) => {
                    let _ = client_tx.send(Err(RegistryError::Client(e.to_string()).into()));
                    return Vec::new();
                }
            };
            let _ = client_tx.send(Ok(client.clone()));
            check_each(client, early, ignored).collect::<Vec<_>>().await
        }
    });
    // The database (flags, kept tag listings) is read meanwhile too, decoded
    // off the path of the registry answers.
    let data_dir = args.data_dir.clone();
    let versions_on = args.registry.tags_interval.0.is_some();
    let kept = tokio::task::spawn_blocking(move || {
        let data = store::read_for_check(&data_dir).unwrap_or_default();
        let tags = if versions_on { versions_cache::decode(data.repo_tags) } else { TagStates::new() };
        (data.auto_update, tags)
    });
    let specs = args.engine.hosts()?;
    let certs = args.engine.docker_certs.as_deref();
    let several = specs.len() > 1;
    let contacts = try_join_all(specs.iter().map(|spec| async move {
        first_contact(spec, certs).await.map_err(|e| match e {
            CheckError::Docker(source) if several => CheckError::Engine { name: spec.name.clone(), source },
            other => other,
        })
    }))
    .await?;
    let policy = args.selection.policy();
    let checks = async {
        let images = references(contacts.iter().flat_map(|(_, c)| c.values()), &policy);
        let client = client_rx.await.map_err(|e| RegistryError::Client(e.to_string()))??;
        let insecure = if without_engine.engine_may_add_to(&images) {
            // Without the engines' word: loopback and the configured extras only.
            let settings = join_all(contacts.iter().map(|(docker, _)| engine::registry_settings(docker))).await;
            let settings = RegistrySettings::merge(settings.into_iter().map(Result::unwrap_or_default));
            InsecureRegistries::from_engine(&settings, extra_insecure)
        } else {
            without_engine.clone()
        };
        client.set_insecure(insecure.clone());
        let later: Vec<ImageRef> = images.iter().filter(|i| !early_set.contains(i)).cloned().collect();
        let (early, later) =
            futures::join!(prefetch, check_each(client.clone(), later, ignored.clone()).collect::<Vec<_>>());
        let (mut outcomes, again) = keep_early(early.ok(), &early_set, &images, &without_engine, &insecure);
        outcomes.extend(later);
        outcomes.extend(check_each(client.clone(), again, ignored).collect::<Vec<_>>().await);
        let remote = merge(&RemoteStates::new(), outcomes, SystemTime::now());
        check_cache::save(&args.data_dir, &CheckCache::new(&images, client.known_protocols(), SystemTime::now()));
        let (flags, kept) = kept.await.map_err(|e| RegistryError::Client(e.to_string()))?;
        let tags = match args.registry.tags_interval.0 {
            Some(interval) => versions(&client, kept, images, &remote, interval, args.tags).await,
            None => TagStates::new(),
        };
        Ok::<_, CheckError>((remote, tags, flags))
    };
    let images = try_join_all(contacts.iter().map(|(docker, _)| engine::local_images(docker)));
    let ((remote, tags, stored), images) = futures::try_join!(checks, async { Ok(images.await?) })?;
    let snapshots: Vec<EngineSnapshot> = contacts
        .into_iter()
        .zip(images)
        .zip(&specs)
        .map(|(((_, mut containers), images), spec)| {
            containers.values_mut().for_each(|c| c.host = spec.name.clone());
            EngineSnapshot { containers, images }
        })
        .collect();
    let flags = Flags { stored: &stored, primary: &specs[0].name };
    let groups = build_fleet(&snapshots.iter().collect::<Vec<_>>(), &remote, &tags, flags, &policy);
    Ok(without_excluded(&groups))
}

/// Which answers asked for before the containers were known count: those
/// for references a container runs, except failures at registries the
/// engine's settings made insecure (asked over https only, too early) —
/// those are returned to be asked again, as is everything asked early when
/// the early task itself failed (`None`).
fn keep_early(
    early: Option<Vec<CheckOutcome>>,
    early_set: &HashSet<ImageRef>,
    images: &[ImageRef],
    without_engine: &InsecureRegistries,
    insecure: &InsecureRegistries,
) -> (Vec<CheckOutcome>, Vec<ImageRef>) {
    let running: HashSet<&ImageRef> = images.iter().collect();
    let Some(early) = early else {
        return (Vec::new(), images.iter().filter(|i| early_set.contains(i)).cloned().collect());
    };
    let mut kept = Vec::new();
    let mut again = Vec::new();
    for outcome in early.into_iter().filter(|o| running.contains(&o.image)) {
        let registry = &outcome.image.registry;
        if outcome.result.is_err() && insecure.is_insecure(registry) != without_engine.is_insecure(registry) {
            again.push(outcome.image);
        } else {
            kept.push(outcome);
        }
    }
    (kept, again)
}

/// The tag listings for `images`: the service's where fresh enough, listed
/// now where not. Nothing is written: the database is the service's.
async fn versions(
    client: &RegistryClient,
    mut states: TagStates,
    images: Vec<ImageRef>,
    remote: &RemoteStates,
    interval: std::time::Duration,
    force: bool,
) -> TagStates {
    let pairs: Vec<(ImageRef, Option<String>)> = images
        .into_iter()
        .map(|i| {
            let digest = remote.get(&i.display_name()).and_then(|s| s.digest.clone());
            (i, digest)
        })
        .collect();
    let now = versions_cache::now_secs(SystemTime::now());
    let work = versions_cache::plan(&pairs, &states, &Default::default(), interval, now, force);
    let refreshed = futures::future::join_all(
        work.iter().map(|w| versions_cache::refresh(client, w, states.get(&w.repository).cloned(), now)),
    )
    .await;
    for (w, state) in work.iter().zip(refreshed) {
        states.insert(w.repository.clone(), std::sync::Arc::new(state));
    }
    states
}

/// A client that works and the running containers it listed. Speaks the API
/// version nearly every engine speaks straight away (the `/version` round
/// trip would delay everything else), and negotiates only when that fails: an
/// engine older than 20.10 or newer than 28, or a host that is not a local socket.
async fn first_contact(
    spec: &HostSpec,
    certs: Option<&std::path::Path>,
) -> Result<(Docker, HashMap<String, Container>), CheckError> {
    if let Some(docker) = engine::client_speaking(spec.url.as_deref(), &engine::COMMON_API_VERSION) {
        if let Ok(containers) = engine::running_containers(&docker).await {
            return Ok((docker, containers));
        }
    }
    let docker = match hosts::connect(spec, certs) {
        Ok(engine) => engine.docker,
        // The one-engine default: DOCKER_HOST's errors, as they always were.
        Err(ConnectError::Default(e)) => return Err(e.into()),
        Err(e) => return Err(e.into()),
    };
    engine::negotiate(&docker).await?;
    let containers = engine::running_containers(&docker).await?;
    Ok((docker, containers))
}

/// A plain table: one row per container (with its engine when there are
/// several), then the errors behind unknown statuses.
pub fn table(groups: &[ImageGroup]) -> String {
    let name = |v: Option<serde_json::Value>| v.and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let mut engines: Vec<&str> = groups.iter().flat_map(|g| g.containers.iter().map(|c| c.host.as_str())).collect();
    engines.sort_unstable();
    engines.dedup();
    let several = engines.len() > 1;
    let rows: Vec<Vec<String>> = groups
        .iter()
        .flat_map(|g| {
            let (version, kind) = (version_column(g), name(serde_json::to_value(g.versions.update_kind).ok()));
            g.containers.iter().map(move |c| {
                let mut row = vec![
                    g.image.clone(),
                    c.container_name.clone(),
                    name(serde_json::to_value(c.status).ok()),
                    c.local_digest.clone(),
                    g.remote_digest.clone(),
                    version.clone(),
                    kind.clone(),
                ];
                if several {
                    row.insert(2, c.host.clone());
                }
                row
            })
        })
        .collect();
    let mut header: Vec<String> =
        ["IMAGE", "CONTAINER", "STATUS", "LOCAL", "REMOTE", "VERSION", "KIND"].map(String::from).to_vec();
    if several {
        header.insert(2, "HOST".into());
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in [&header].into_iter().chain(rows.iter()) {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    for g in groups {
        if let Some(error) = &g.error {
            let _ = writeln!(out, "{}: {error}", g.image);
        }
    }
    let count = |s: &str| {
        groups
            .iter()
            .flat_map(|g| &g.containers)
            .filter(|c| serde_json::to_value(c.status).is_ok_and(|v| v == s))
            .count()
    };
    let _ = writeln!(
        out,
        "{} containers: {} up to date, {} outdated, {} unknown",
        groups.iter().map(|g| g.containers.len()).sum::<usize>(),
        count("uptodate"),
        count("outdated"),
        count("unknown")
    );
    out
}

/// `current → newest` (`1.0.0 → 2.0.0`; for `latest`, the versions its
/// digests are: `1.1.0 → 1.1.1`), or just the current version.
fn version_column(g: &ImageGroup) -> String {
    let v = &g.versions;
    let newest =
        [&v.newer.major, &v.newer.minor, &v.newer.patch].into_iter().flatten().next().or(v.latest_version.as_ref());
    match (&v.version, newest) {
        (Some(current), Some(newest)) if current != newest => format!("{current} → {newest}"),
        (Some(current), _) => current.clone(),
        (None, Some(newest)) => format!("? → {newest}"),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::view::{ContainerItem, Status};

    #[test]
    fn early_answers_count_only_for_running_references_and_settled_schemes() {
        let image = |s: &str| crate::registry::reference::parse(s).expect("valid reference");
        let unreachable = |r: &str| Err(RegistryError::Unreachable { registry: r.into(), reason: "refused".into() });
        let outcome = |s: &str, result| CheckOutcome { image: image(s), result };
        let early = || {
            vec![
                outcome("127.0.0.1:5000/a", Ok("sha256:a".to_string())),
                outcome("registry.lan:5000/b", unreachable("registry.lan:5000")),
                outcome("ghcr.io/o/c", unreachable("ghcr.io")),
                outcome("127.0.0.1:5000/gone", Ok("sha256:d".to_string())),
            ]
        };
        let early_set: HashSet<ImageRef> = early().into_iter().map(|o| o.image).collect();
        let running = ["127.0.0.1:5000/a", "registry.lan:5000/b", "ghcr.io/o/c", "127.0.0.1:5000/new"].map(image);
        let without_engine = InsecureRegistries::without_engine(&[]);
        // The engine says registry.lan:5000 may be plain http: asked too early.
        let engine = InsecureRegistries::without_engine(&["registry.lan:5000".to_string()]);
        let names = |images: Vec<ImageRef>| images.iter().map(ImageRef::display_name).collect::<Vec<_>>();

        let (kept, again) = keep_early(Some(early()), &early_set, &running, &without_engine, &engine);
        let kept: Vec<(String, bool)> = kept.into_iter().map(|o| (o.image.display_name(), o.result.is_ok())).collect();
        assert_eq!(kept, [("127.0.0.1:5000/a:latest".to_string(), true), ("ghcr.io/o/c:latest".to_string(), false)]);
        assert_eq!(names(again), ["registry.lan:5000/b:latest"]);

        // Settings that change nothing: every early answer for a running reference stands.
        let (kept, again) = keep_early(Some(early()), &early_set, &running, &without_engine, &without_engine);
        assert_eq!((kept.len(), again.len()), (3, 0));

        // The early task failed: whatever it was to ask, if still running, is asked again.
        let (kept, again) = keep_early(None, &early_set, &running, &without_engine, &engine);
        assert!(kept.is_empty());
        assert_eq!(names(again), ["127.0.0.1:5000/a:latest", "registry.lan:5000/b:latest", "ghcr.io/o/c:latest"]);
    }

    #[test]
    fn table_lists_every_container_and_errors() {
        let groups = vec![ImageGroup {
            image: "nginx:latest".into(),
            remote_digest: "sha256:2222222222".into(),
            status: Status::Partial,
            containers: vec![
                ContainerItem {
                    host: "local".into(),
                    container_id: "a".repeat(12),
                    container_name: "web".into(),
                    local_digest: "sha256:1111111111".into(),
                    status: Status::Outdated,
                    auto_update: false,
                    excluded: false,
                    monitor_only: false,
                    update_policy: Default::default(),
                },
                ContainerItem {
                    host: "local".into(),
                    container_id: "b".repeat(12),
                    container_name: "web2".into(),
                    local_digest: "sha256:2222222222".into(),
                    status: Status::Uptodate,
                    auto_update: true,
                    excluded: false,
                    monitor_only: false,
                    update_policy: Default::default(),
                },
            ],
            checked_at: None,
            error: Some("registry x: 429 rate limited".into()),
            versions: crate::inventory::view::VersionFields {
                version: Some("1.0.0".into()),
                newer: crate::registry::versions::Newer {
                    patch: Some("1.0.1".into()),
                    minor: None,
                    major: Some("2.0.0".into()),
                },
                update_kind: Some(crate::registry::versions::UpdateKind::Major),
                ..Default::default()
            },
        }];
        let text = table(&groups);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("IMAGE"));
        assert!(lines[1].contains("web") && lines[1].contains("outdated"));
        assert!(lines[1].ends_with("1.0.0 → 2.0.0  major"), "{}", lines[1]);
        assert!(lines[2].contains("web2") && lines[2].contains("uptodate"));
        assert_eq!(lines[3], "nginx:latest: registry x: 429 rate limited");
        assert_eq!(lines[4], "2 containers: 1 up to date, 1 outdated, 0 unknown");
    }

    #[test]
    fn the_table_names_engines_only_when_there_are_several() {
        let item = |host: &str, name: &str| ContainerItem {
            host: host.into(),
            container_id: "c".repeat(12),
            container_name: name.into(),
            local_digest: "sha256:1111111111".into(),
            status: Status::Uptodate,
            auto_update: false,
            excluded: false,
            monitor_only: false,
            update_policy: Default::default(),
        };
        let group = |containers| ImageGroup {
            image: "app:1".into(),
            remote_digest: "sha256:1111111111".into(),
            status: Status::Uptodate,
            containers,
            checked_at: None,
            error: None,
            versions: Default::default(),
        };
        let one = table(&[group(vec![item("local", "web")])]);
        assert!(!one.contains("HOST"), "{one}");
        let two = table(&[group(vec![item("local", "web"), item("nas", "web")])]);
        let lines: Vec<&str> = two.lines().collect();
        assert!(lines[0].starts_with("IMAGE") && lines[0].contains("HOST"), "{two}");
        assert!(lines[2].split_whitespace().nth(2) == Some("nas"), "{two}");
    }
}
