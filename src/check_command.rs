//! `shipshape check`: one round of the same engine the service runs, printed
//! for scripts and cron (a table, or the `GET /api/images` JSON).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use crate::config::CheckArgs;
use crate::docker::engine::{self, Docker, DockerError};
use crate::docker::hosts::{self, ConnectError, HostSpec, HostsError};
use crate::docker::model::{Container, EngineSnapshot, RegistrySettings};
use crate::inventory::view::{build_fleet, references, without_excluded, Flags, ImageGroup};
use futures::future::{join_all, try_join_all};
use futures::StreamExt;

use crate::registry::check::{check_each, merge, IgnoredRegistries};
use crate::registry::client::{ClientOptions, RegistryClient, RegistryError};
use crate::registry::credentials::{self, CredentialsError};
use crate::registry::insecure::{self, InsecureError, InsecureRegistries};
use crate::registry::messages::RemoteStates;
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
/// The registry requests are most of the time, so they start as soon as the
/// containers are known: the image list (only needed for the local digests)
/// and, when it can matter, the engine's insecure-registry settings are
/// fetched while the registries answer.
pub async fn run(args: &CheckArgs) -> Result<Vec<ImageGroup>, CheckError> {
    let extra_insecure = &args.registry.insecure_registries;
    insecure::check_entries(extra_insecure)?;
    // Building the HTTP client reads the system's CA certificates: do it on
    // another thread while the engine answers.
    let options = ClientOptions::from_args(&args.registry);
    let client = tokio::task::spawn_blocking(move || -> Result<RegistryClient, CheckError> {
        let docker_config = credentials::load(None)?;
        Ok(RegistryClient::new(ClientOptions { docker_config, ..options })?)
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
        let client = client.await.map_err(|e| RegistryError::Client(e.to_string()))??;
        let without_engine = InsecureRegistries::without_engine(extra_insecure);
        let insecure = if without_engine.engine_may_add_to(&images) {
            // Without the engines' word: loopback and the configured extras only.
            let settings = join_all(contacts.iter().map(|(docker, _)| engine::registry_settings(docker))).await;
            let settings = RegistrySettings::merge(settings.into_iter().map(Result::unwrap_or_default));
            InsecureRegistries::from_engine(&settings, extra_insecure)
        } else {
            without_engine
        };
        client.set_insecure(insecure);
        let ignored = IgnoredRegistries::new(&args.registry.ignore_registries);
        Ok::<_, CheckError>(check_each(client, images, ignored).collect::<Vec<_>>().await)
    };
    let images = try_join_all(contacts.iter().map(|(docker, _)| engine::local_images(docker)));
    let (outcomes, images) = futures::try_join!(checks, async { Ok(images.await?) })?;
    let remote = merge(&RemoteStates::new(), outcomes, SystemTime::now());
    let stored = store::read_auto_update(&args.data_dir).unwrap_or_default();
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
    let groups = build_fleet(&snapshots.iter().collect::<Vec<_>>(), &remote, flags, &policy);
    Ok(without_excluded(&groups))
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
    let mut engines: Vec<&str> = groups.iter().flat_map(|g| g.containers.iter().map(|c| c.host.as_str())).collect();
    engines.sort_unstable();
    engines.dedup();
    let several = engines.len() > 1;
    let rows: Vec<Vec<String>> = groups
        .iter()
        .flat_map(|g| {
            g.containers.iter().map(move |c| {
                let mut row = vec![
                    g.image.clone(),
                    c.container_name.clone(),
                    serde_json::to_value(c.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                    c.local_digest.clone(),
                    g.remote_digest.clone(),
                ];
                if several {
                    row.insert(2, c.host.clone());
                }
                row
            })
        })
        .collect();
    let mut header: Vec<String> = ["IMAGE", "CONTAINER", "STATUS", "LOCAL", "REMOTE"].map(String::from).to_vec();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::view::{ContainerItem, Status};

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
                },
            ],
            checked_at: None,
            error: Some("registry x: 429 rate limited".into()),
        }];
        let text = table(&groups);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("IMAGE"));
        assert!(lines[1].contains("web") && lines[1].contains("outdated"));
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
        };
        let group = |containers| ImageGroup {
            image: "app:1".into(),
            remote_digest: "sha256:1111111111".into(),
            status: Status::Uptodate,
            containers,
            checked_at: None,
            error: None,
        };
        let one = table(&[group(vec![item("local", "web")])]);
        assert!(!one.contains("HOST"), "{one}");
        let two = table(&[group(vec![item("local", "web"), item("nas", "web")])]);
        let lines: Vec<&str> = two.lines().collect();
        assert!(lines[0].starts_with("IMAGE") && lines[0].contains("HOST"), "{two}");
        assert!(lines[2].split_whitespace().nth(2) == Some("nas"), "{two}");
    }
}
