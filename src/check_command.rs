//! `shipshape check`: one round of the same engine the service runs, printed
//! for scripts and cron (a table, or the `GET /api/images` JSON).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use crate::config::CheckArgs;
use crate::docker::engine::{self, Docker, DockerError};
use crate::docker::model::{Container, EngineSnapshot};
use crate::inventory::view::{build_groups, references, without_excluded, ImageGroup};
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
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("SHIPSHAPE_INSECURE_REGISTRIES: {0}")]
    Insecure(#[from] InsecureError),
}

/// Lists containers and images once each, asks each registry once per
/// distinct image, and returns the groups.
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
    let (docker, containers) = first_contact(args.engine.docker_host.as_deref()).await?;
    let policy = args.selection.policy();
    let checks = async {
        let images = references(containers.values(), &policy);
        let client = client.await.map_err(|e| RegistryError::Client(e.to_string()))??;
        let without_engine = InsecureRegistries::without_engine(extra_insecure);
        let insecure = if without_engine.engine_may_add_to(&images) {
            // Without the engine's word: loopback and the configured extras only.
            InsecureRegistries::from_engine(
                &engine::registry_settings(&docker).await.unwrap_or_default(),
                extra_insecure,
            )
        } else {
            without_engine
        };
        client.set_insecure(insecure);
        let ignored = IgnoredRegistries::new(&args.registry.ignore_registries);
        Ok::<_, CheckError>(check_each(client, images, ignored).collect::<Vec<_>>().await)
    };
    let (outcomes, images) = futures::try_join!(checks, async { Ok(engine::local_images(&docker).await?) })?;
    let remote = merge(&RemoteStates::new(), outcomes, SystemTime::now());
    let flags = store::read_auto_update(&args.data_dir).unwrap_or_default();
    let groups = build_groups(&EngineSnapshot { containers, images }, &remote, &flags, &policy);
    Ok(without_excluded(&groups))
}

/// A client that works and the running containers it listed. Speaks the API
/// version nearly every engine speaks straight away (the `/version` round
/// trip would delay everything else), and negotiates only when that fails: an
/// engine older than 20.10 or newer than 28, or a host that is not a local socket.
async fn first_contact(docker_host: Option<&str>) -> Result<(Docker, HashMap<String, Container>), CheckError> {
    if let Some(docker) = engine::client_speaking(docker_host, &engine::COMMON_API_VERSION) {
        if let Ok(containers) = engine::running_containers(&docker).await {
            return Ok((docker, containers));
        }
    }
    let docker = engine::client(docker_host)?;
    engine::negotiate(&docker).await?;
    let containers = engine::running_containers(&docker).await?;
    Ok((docker, containers))
}

/// A plain table: one row per container, then the errors behind unknown statuses.
pub fn table(groups: &[ImageGroup]) -> String {
    let rows: Vec<[String; 5]> = groups
        .iter()
        .flat_map(|g| {
            g.containers.iter().map(move |c| {
                [
                    g.image.clone(),
                    c.container_name.clone(),
                    serde_json::to_value(c.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                    c.local_digest.clone(),
                    g.remote_digest.clone(),
                ]
            })
        })
        .collect();
    let header = ["IMAGE", "CONTAINER", "STATUS", "LOCAL", "REMOTE"].map(String::from);
    let widths: Vec<usize> =
        (0..5).map(|i| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
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
                    container_id: "a".repeat(12),
                    container_name: "web".into(),
                    local_digest: "sha256:1111111111".into(),
                    status: Status::Outdated,
                    auto_update: false,
                    excluded: false,
                    monitor_only: false,
                },
                ContainerItem {
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
}
