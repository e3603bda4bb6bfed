//! One service update: the new digest goes into the spec, then Swarm's own
//! rolling update is followed to its end — `completed` (updated),
//! `rollback_completed` (Swarm rolled back: the old digest runs again) or
//! `paused` (failed, left as Swarm paused it) — with its tasks as progress.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, AsyncContext, Context};
use serde::Serialize;

use super::{ServiceProgressed, Services, UpdateService};
use crate::docker::engine::Docker;
use crate::docker::swarm::{self, ServiceInfo, TaskInfo, UpdateDefaults};
use crate::jobs::sequence::{new_op_id, pull_auth};
use crate::registry::config_source::DockerConfigSource;
use crate::store::{BeginJob, FinishJob, HistoryEntry, HistoryEntryOf, JobKind, JobResult, Store};

/// How often the service is looked at while it updates.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// Longest wait for Swarm to finish, beyond what its own settings need.
const FOLLOW_AT_LEAST: Duration = Duration::from_secs(600);

/// A service update's progress, as the websocket's `service_progress` carries it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceProgress {
    pub service_id: String,
    pub service: String,
    /// The image being rolled out (`repo:tag@sha256:…`).
    pub image: String,
    /// `starting`, then Swarm's update state (`updating`, `rollback_started`,
    /// …), then the outcome: `updated`, `rolled_back` or `failed`.
    pub state: String,
    pub message: Option<String>,
    /// Tasks running the new image, of `total` wanted.
    pub updated: u64,
    pub total: u64,
    pub done: bool,
    #[serde(skip)]
    pub history: Option<HistoryEntry>,
}

impl ServiceProgress {
    pub fn started(req: &UpdateService) -> Self {
        Self {
            service_id: req.service_id.clone(),
            service: req.service_name.clone(),
            image: req.image.clone(),
            state: "starting".into(),
            message: None,
            updated: 0,
            total: 0,
            done: false,
            history: None,
        }
    }

    pub fn ws_message(&self) -> String {
        serde_json::json!({ "type": "service_progress", "service_id": self.service_id, "data": self }).to_string()
    }
}

/// Where an update stands, from the service and its tasks: `Some(result)`
/// once Swarm has ended the update that began after `before` (the start
/// time of the update before ours, if any).
pub fn outcome(service: &ServiceInfo, before: Option<&str>) -> Option<(JobResult, Option<String>)> {
    let ours = service.update_started_at.is_some() && service.update_started_at.as_deref() != before;
    if !ours {
        return None;
    }
    let message = service.update_message.clone();
    match service.update_state.as_deref()? {
        "completed" => Some((JobResult::Updated, None)),
        "rollback_completed" => {
            Some((JobResult::RolledBack, Some(message.unwrap_or_else(|| "Swarm rolled the update back".into()))))
        }
        "paused" | "rollback_paused" => {
            let reason = message.unwrap_or_else(|| "paused by Swarm".into());
            Some((JobResult::Failed, Some(format!("update paused: {reason}"))))
        }
        _ => None,
    }
}

/// Tasks meant to run and running `image`.
pub fn updated_tasks(tasks: &[TaskInfo], image: &str) -> u64 {
    tasks.iter().filter(|t| t.desired_state == "running" && t.state == "running" && t.image == image).count() as u64
}

pub struct ServiceUpdate {
    pub host: Arc<str>,
    pub docker: Docker,
    pub store: Addr<Store>,
    pub docker_config: Arc<DockerConfigSource>,
    pub monitor: Duration,
    pub request: UpdateService,
    pub parent: Addr<Services>,
}

impl Actor for ServiceUpdate {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (docker, store, config) = (self.docker.clone(), self.store.clone(), Arc::clone(&self.docker_config));
        let (request, parent, monitor) = (self.request.clone(), self.parent.clone(), self.monitor);
        let host = self.host.to_string();
        let me = ctx.address();
        actix::spawn(async move {
            let mut progress = ServiceProgress::started(&request);
            let (result, error) = follow(&docker, &config, &request, monitor, &parent, &mut progress).await;
            progress.history = record(&store, &host, &request, result, error.clone()).await;
            progress.state = match result {
                JobResult::Updated => "updated",
                JobResult::RolledBack => "rolled_back",
                JobResult::Failed | JobResult::Unchanged => "failed",
            }
            .into();
            progress.message = error;
            progress.done = true;
            parent.do_send(ServiceProgressed(progress));
            drop(me);
        });
    }
}

async fn follow(
    docker: &Docker,
    config: &DockerConfigSource,
    request: &UpdateService,
    monitor: Duration,
    parent: &Addr<Services>,
    progress: &mut ServiceProgress,
) -> (JobResult, Option<String>) {
    let before = match swarm::service(docker, &request.service_id).await {
        Ok(service) => service,
        Err(e) => return (JobResult::Failed, Some(format!("cannot inspect the service: {e}"))),
    };
    let auth = pull_auth(&config.config(), &request.image).await;
    let defaults = UpdateDefaults { monitor };
    if let Err(e) = swarm::update_image(docker, &request.service_id, &request.image, auth.as_ref(), defaults).await {
        return (JobResult::Failed, Some(format!("the service update was refused: {e}")));
    }
    let replicas = before.replicas_desired.unwrap_or(1).max(1);
    let patience = FOLLOW_AT_LEAST.max(monitor.saturating_mul(u32::try_from(replicas * 4).unwrap_or(u32::MAX)));
    let deadline = Instant::now() + patience;
    let (mut rolling_back, mut paused_because, mut rollback_from) = (false, None, None);
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let service = match swarm::service(docker, &request.service_id).await {
            Ok(service) => service,
            Err(e) => {
                if Instant::now() > deadline {
                    return (JobResult::Failed, Some(format!("lost sight of the service: {e}")));
                }
                continue;
            }
        };
        let tasks = swarm::tasks(docker, Some(&request.service_id)).await.unwrap_or_default();
        // Until Swarm has begun ours, its status is the last update's.
        let ours = service.update_started_at.is_some() && service.update_started_at != before.update_started_at;
        let (state, message) = match ours {
            true => (service.update_state.clone().unwrap_or_else(|| "starting".into()), service.update_message.clone()),
            false => ("starting".into(), None),
        };
        let next = ServiceProgress {
            state,
            message,
            updated: updated_tasks(&tasks, &request.image),
            total: service.replicas_desired.unwrap_or(service.replicas_running),
            ..progress.clone()
        };
        if next != *progress {
            *progress = next;
            parent.do_send(ServiceProgressed(progress.clone()));
        }
        match outcome(&service, before.update_started_at.as_deref()) {
            // Swarm paused half way (its `pause` failure action, the CLI's
            // default): nothing may stay half updated, so roll back.
            Some((JobResult::Failed, why)) if !rolling_back && service.update_state.as_deref() == Some("paused") => {
                tracing::warn!(service = %request.service_name, "update paused by Swarm; rolling back");
                if let Err(e) = swarm::roll_back(docker, &request.service_id).await {
                    return (
                        JobResult::Failed,
                        Some(format!("{}; the rollback was refused: {e}", why.unwrap_or_default())),
                    );
                }
                paused_because = why;
                rolling_back = true;
                rollback_from = service.update_started_at.clone();
            }
            Some((JobResult::RolledBack, why)) if rolling_back => {
                let why = [paused_because.take(), why].into_iter().flatten().collect::<Vec<_>>().join("; ");
                return (JobResult::RolledBack, Some(why));
            }
            Some(end) if !rolling_back || service.update_started_at != rollback_from => return end,
            _ => {}
        }
        if Instant::now() > deadline {
            return (JobResult::Failed, Some(format!("Swarm had not finished the update after {patience:?}")));
        }
    }
}

/// The history entry: begun and finished at once (nothing to recover after
/// a crash: Swarm carries on with the update by itself).
async fn record(
    store: &Addr<Store>,
    host: &str,
    request: &UpdateService,
    result: JobResult,
    error: Option<String>,
) -> Option<HistoryEntry> {
    let id = new_op_id();
    let to_digest = request.image.rsplit_once('@').map(|(_, d)| d.to_string());
    let begin = BeginJob {
        id: id.clone(),
        host: Some(host.to_string()),
        container_id: request.service_id.clone(),
        container_name: request.service_name.clone(),
        image: request.image.split_once('@').map_or(request.image.as_str(), |(r, _)| r).to_string(),
        from_image_id: String::new(),
        to_image_id: None,
        from_digest: request.from_digest.clone(),
        to_digest: to_digest.clone(),
        plan: "{}".into(),
        kind: JobKind::Service,
    };
    let finish = FinishJob { id: id.clone(), result, error, to_digest };
    store.send(begin).await.ok()?.ok()?;
    store.send(finish).await.ok()?.ok()?;
    store.send(HistoryEntryOf { id }).await.ok()?.ok()?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(state: Option<&str>, started: Option<&str>, message: Option<&str>) -> ServiceInfo {
        ServiceInfo {
            update_state: state.map(String::from),
            update_started_at: started.map(String::from),
            update_message: message.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn outcome_table() {
        let t0 = Some("t0");
        let cases = [
            // The previous update's end is not ours.
            (service(Some("completed"), Some("t0"), None), t0, None),
            (service(Some("updating"), Some("t1"), None), t0, None),
            (service(Some("completed"), Some("t1"), None), t0, Some(JobResult::Updated)),
            (service(Some("completed"), Some("t1"), None), None, Some(JobResult::Updated)),
            (service(Some("rollback_started"), Some("t1"), Some("x")), t0, None),
            (service(Some("rollback_completed"), Some("t1"), Some("task failed")), t0, Some(JobResult::RolledBack)),
            (service(Some("paused"), Some("t1"), Some("task failed")), t0, Some(JobResult::Failed)),
            (service(None, None, None), None, None),
        ];
        for (s, before, expected) in cases {
            assert_eq!(outcome(&s, before).map(|(r, _)| r), expected, "{s:?} after {before:?}");
        }
        let (_, why) =
            outcome(&service(Some("rollback_completed"), Some("t1"), Some("task failed")), t0).expect("ended");
        assert_eq!(why.as_deref(), Some("task failed"));
    }

    #[test]
    fn updated_tasks_count_only_running_ones_on_the_new_image() {
        let task = |image: &str, state: &str, desired: &str| TaskInfo {
            image: image.into(),
            state: state.into(),
            desired_state: desired.into(),
            ..Default::default()
        };
        let tasks = [
            task("a@new", "running", "running"),
            task("a@new", "starting", "running"),
            task("a@old", "running", "running"),
            task("a@new", "running", "shutdown"),
        ];
        assert_eq!(updated_tasks(&tasks, "a@new"), 1);
    }
}
