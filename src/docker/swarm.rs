//! Swarm services, as a manager engine describes them, and the one change
//! shipshape makes to them: a new image digest in the service spec, so
//! Swarm rolls it out (and back) itself. A task's container is Swarm's to
//! replace; recreating it by hand would be undone by the next reconcile.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    Service, ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, Task,
};
use bollard::query_parameters::{ListTasksOptions, UpdateServiceOptions};
use serde::Serialize;

use super::engine::{with_registry_auth, DockerError};
use super::model::PullAuth;
use crate::docker::engine::Docker;

/// The label Swarm puts on every task container.
pub const SERVICE_ID_LABEL: &str = "com.docker.swarm.service.id";
pub const SERVICE_NAME_LABEL: &str = "com.docker.swarm.service.name";

/// A service as shipshape shows and updates it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceInfo {
    /// The engine (its `SHIPSHAPE_DOCKER_HOSTS` name) that answered for the swarm.
    pub host: String,
    pub id: String,
    pub name: String,
    /// `Spec.TaskTemplate.ContainerSpec.Image`: usually `repo:tag@sha256:…`,
    /// the digest Swarm resolved when the service was created or updated.
    pub image: String,
    pub labels: HashMap<String, String>,
    /// `None` for a global service.
    pub replicas_desired: Option<u64>,
    /// Tasks running now (from the task list).
    pub replicas_running: u64,
    /// `UpdateStatus.State` (`updating`, `completed`, `rollback_completed`, …), if any update ran.
    pub update_state: Option<String>,
    pub update_message: Option<String>,
    /// When the last update started, as the engine wrote it: tells a new update from the last one.
    pub update_started_at: Option<String>,
    /// Its tasks meant to run (Swarm keeps a history of ended ones; those are left out).
    pub tasks: Vec<TaskInfo>,
}

/// A task of a service, for progress.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TaskInfo {
    pub id: String,
    pub service_id: String,
    /// The task's container (12 characters), once it has one.
    pub container_id: Option<String>,
    pub image: String,
    pub state: String,
    pub desired_state: String,
    pub error: Option<String>,
}

/// Whether the engine can answer for a swarm: a manager of an active one.
pub async fn is_manager(docker: &Docker) -> Result<bool, DockerError> {
    let info = docker.info().await?;
    Ok(info.swarm.and_then(|s| s.control_available).unwrap_or(false))
}

/// Every service, with its running task count.
pub async fn services(docker: &Docker) -> Result<Vec<ServiceInfo>, DockerError> {
    let services = docker.list_services(None::<bollard::query_parameters::ListServicesOptions>).await?;
    let tasks = tasks(docker, None).await?;
    Ok(services.into_iter().map(|s| service_info(s, &tasks)).collect())
}

/// The tasks of one service (or of all).
pub async fn tasks(docker: &Docker, service_id: Option<&str>) -> Result<Vec<TaskInfo>, DockerError> {
    let filters = service_id.map(|id| HashMap::from([("service".to_string(), vec![id.to_string()])]));
    let options = ListTasksOptions { filters };
    let tasks = docker.list_tasks(Some(options)).await?;
    Ok(tasks.into_iter().map(task_info).collect())
}

/// One service, fresh.
pub async fn service(docker: &Docker, id: &str) -> Result<ServiceInfo, DockerError> {
    let service = docker.inspect_service(&checked(id)?, None).await?;
    let tasks = tasks(docker, service.id.as_deref()).await?;
    Ok(service_info(service, &tasks))
}

/// What the update is told when the service has no `UpdateConfig` of its own.
#[derive(Debug, Clone, Copy)]
pub struct UpdateDefaults {
    /// How long Swarm watches each updated task before calling it healthy.
    pub monitor: Duration,
}

/// Points the service at `image` (`repo:tag@sha256:…`), keeping the rest of
/// its spec as the engine returned it. `X-Registry-Auth` goes along so the
/// nodes can pull a private image. A service without an `UpdateConfig`
/// gets one that rolls back on failure: one task at a time, each watched
/// for `monitor`, new task started after the old one stopped (Swarm's order).
pub async fn update_image(
    docker: &Docker,
    id: &str,
    image: &str,
    auth: Option<&PullAuth>,
    defaults: UpdateDefaults,
) -> Result<(), DockerError> {
    let service = docker.inspect_service(&checked(id)?, None).await?;
    let version = service.version.and_then(|v| v.index).unwrap_or_default();
    let mut spec = service.spec.ok_or_else(|| DockerError::NotFound(format!("service {id} has no spec")))?;
    let container = spec
        .task_template
        .as_mut()
        .and_then(|t| t.container_spec.as_mut())
        .ok_or_else(|| DockerError::Conflict(format!("service {id} does not run containers")))?;
    container.image = Some(image.to_string());
    spec.update_config = Some(with_defaults(spec.update_config.take(), defaults));
    let options = UpdateServiceOptions {
        version: i32::try_from(version).map_err(|_| DockerError::Conflict("service version out of range".into()))?,
        registry_auth_from: "spec".into(),
        ..Default::default()
    };
    let client = with_registry_auth(docker, auth);
    client.update_service(&checked(id)?, spec, options, None).await?;
    Ok(())
}

/// Asks Swarm to roll the service back to its previous spec (what
/// `docker service rollback` does): for an update Swarm paused on failure.
pub async fn roll_back(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let service = docker.inspect_service(&checked(id)?, None).await?;
    let version = service.version.and_then(|v| v.index).unwrap_or_default();
    let spec = service.spec.ok_or_else(|| DockerError::NotFound(format!("service {id} has no spec")))?;
    let options = UpdateServiceOptions {
        version: i32::try_from(version).map_err(|_| DockerError::Conflict("service version out of range".into()))?,
        rollback: Some("previous".into()),
        ..Default::default()
    };
    docker.update_service(&checked(id)?, spec, options, None).await?;
    Ok(())
}

/// The service's own update settings win; only what it leaves unset is filled.
fn with_defaults(config: Option<ServiceSpecUpdateConfig>, defaults: UpdateDefaults) -> ServiceSpecUpdateConfig {
    match config {
        Some(config) => config,
        None => ServiceSpecUpdateConfig {
            parallelism: Some(1),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(i64::try_from(defaults.monitor.as_nanos()).unwrap_or(i64::MAX)),
            max_failure_ratio: Some(0.0),
            order: Some(ServiceSpecUpdateConfigOrderEnum::STOP_FIRST),
            ..Default::default()
        },
    }
}

fn checked(id: &str) -> Result<String, DockerError> {
    let ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    ok.then(|| id.to_string()).ok_or_else(|| DockerError::BadName(id.to_string()))
}

fn service_info(s: Service, tasks: &[TaskInfo]) -> ServiceInfo {
    let id = s.id.unwrap_or_default();
    let spec = s.spec.unwrap_or_default();
    let image = spec.task_template.and_then(|t| t.container_spec).and_then(|c| c.image).unwrap_or_default();
    let replicas_desired = match spec.mode {
        Some(mode) if mode.global.is_some() => None,
        Some(mode) => mode.replicated.and_then(|r| r.replicas).and_then(|n| u64::try_from(n).ok()),
        None => Some(1),
    };
    let replicas_running =
        tasks.iter().filter(|t| t.service_id == id && t.state == "running" && t.desired_state == "running").count()
            as u64;
    let status = s.update_status.unwrap_or_default();
    let own_tasks = tasks.iter().filter(|t| t.service_id == id && t.desired_state == "running").cloned().collect();
    ServiceInfo {
        // Named by whoever knows which engine asked.
        host: String::new(),
        id,
        name: spec.name.unwrap_or_default(),
        image,
        labels: spec.labels.unwrap_or_default(),
        replicas_desired,
        replicas_running,
        update_state: status.state.map(|s| s.to_string()).filter(|s| !s.is_empty()),
        update_message: status.message.filter(|m| !m.is_empty()),
        update_started_at: status.started_at.map(|t| format!("{t:?}")),
        tasks: own_tasks,
    }
}

fn task_info(t: Task) -> TaskInfo {
    let status = t.status.unwrap_or_default();
    TaskInfo {
        id: t.id.unwrap_or_default(),
        service_id: t.service_id.unwrap_or_default(),
        container_id: status
            .container_status
            .as_ref()
            .and_then(|c| c.container_id.as_deref())
            .map(|id| id.chars().take(12).collect()),
        image: t.spec.and_then(|s| s.container_spec).and_then(|c| c.image).unwrap_or_default(),
        state: status.state.map(|s| s.to_string()).unwrap_or_default(),
        desired_state: t.desired_state.map(|s| s.to_string()).unwrap_or_default(),
        error: status.err.filter(|e| !e.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_without_update_settings_rolls_back_one_task_at_a_time() {
        let defaults = UpdateDefaults { monitor: Duration::from_secs(5) };
        let filled = with_defaults(None, defaults);
        assert_eq!(filled.parallelism, Some(1));
        assert_eq!(filled.failure_action, Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK));
        assert_eq!(filled.monitor, Some(5_000_000_000));
        let own = ServiceSpecUpdateConfig { parallelism: Some(3), ..Default::default() };
        assert_eq!(with_defaults(Some(own.clone()), defaults), own, "the service's own settings are kept");
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_url() {
        assert!(checked("a5bje0fu800uyqgzc8v00eyuw").is_ok());
        assert!(checked("web_app-1.x").is_ok());
        for bad in ["", "a/b", "..%2f", "a b", "x?y"] {
            assert!(checked(bad).is_err(), "{bad:?}");
        }
    }
}
