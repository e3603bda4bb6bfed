//! `Jobs` keeps track of every update: which containers have one running (never
//! two at once), their latest progress (kept 60 s after the end), how many
//! automatic updates run, and the websocket events. Each update is an
//! `UpdateJob` actor of its own: it pulls once, then recreates its containers
//! one after another, then the containers that share their namespaces.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, WrapFuture};
use serde_json::json;
use tokio::sync::broadcast;

use super::own::OwnContainer;
use super::progress::{ProgressAggregator, PullProgress, Stage, Throttle};
use super::sequence::{self, JobEnv, Outcome, RecreateRequest, Report};
use crate::docker::engine;
use crate::docker::model::{Container, ImageDetails};
use crate::store::{BeginJob, FinishJob, HistoryEntry, HistoryEntryOf, JobResult};

/// How long the final progress of a job stays readable.
pub const PROGRESS_KEPT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobsError {
    #[error("cannot update shipshape's own container")]
    OwnContainer,
}

/// Starts updating `targets`, all created from `image_ref`: one pull, then
/// one recreate after another. Containers that already have a job are left
/// to it. Automatic updates wait for a free slot.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), JobsError>")]
pub struct StartUpdate {
    pub targets: Vec<Container>,
    pub image_ref: String,
    pub automatic: bool,
}

/// The latest progress of a job on this container (by the id the update was
/// started with, or its replacement's; 12 characters or more).
#[derive(Message)]
#[rtype(result = "Option<PullProgress>")]
pub struct GetProgress {
    pub container_id: String,
}

/// From an `UpdateJob`: a container's progress changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProgressChanged {
    pub container_id: String,
    pub progress: PullProgress,
}

/// From an `UpdateJob`: a container's update ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ContainerFinished {
    pub container_id: String,
    pub new_container_id: Option<String>,
    pub history: Option<HistoryEntry>,
}

/// From an `UpdateJob`: the whole job ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobFinished {
    pub automatic: bool,
}

struct Tracked {
    progress: PullProgress,
    /// The container the progress is about (the old id for a replacement's alias).
    short_id: String,
    ended: Option<Instant>,
}

pub struct Jobs {
    env: Arc<JobEnv>,
    own: OwnContainer,
    tracked: HashMap<String, Tracked>,
    running: HashSet<String>,
    throttles: HashMap<String, Throttle>,
    auto_limit: usize,
    auto_running: usize,
    auto_queue: VecDeque<StartUpdate>,
    events: broadcast::Sender<String>,
}

impl Jobs {
    pub fn new(env: JobEnv, own: OwnContainer, auto_limit: usize, events: broadcast::Sender<String>) -> Self {
        Self {
            env: Arc::new(env),
            own,
            tracked: HashMap::new(),
            running: HashSet::new(),
            throttles: HashMap::new(),
            auto_limit: auto_limit.max(1),
            auto_running: 0,
            auto_queue: VecDeque::new(),
            events,
        }
    }

    fn launch(&mut self, mut msg: StartUpdate, ctx: &mut Context<Self>) {
        msg.targets.retain(|c| !self.running.contains(&c.id) && !self.own.is(&c.id));
        if msg.targets.is_empty() {
            return;
        }
        if msg.automatic {
            if self.auto_running >= self.auto_limit {
                self.auto_queue.push_back(msg);
                return;
            }
            self.auto_running += 1;
        }
        for c in &msg.targets {
            self.running.insert(c.id.clone());
            self.throttles.remove(&c.id);
            let progress = ProgressAggregator::new().snapshot();
            self.tracked.insert(c.id.clone(), Tracked { progress, short_id: short(&c.id), ended: None });
        }
        UpdateJob { env: Arc::clone(&self.env), jobs: ctx.address(), request: msg }.start();
    }

    fn broadcast(&self, message: String) {
        // Nobody listening is fine.
        let _ = self.events.send(message);
    }

    fn forget_old(&mut self) {
        self.tracked.retain(|_, t| t.ended.is_none_or(|at| at.elapsed() < PROGRESS_KEPT));
    }
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

impl Actor for Jobs {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(PROGRESS_KEPT, |this, _| this.forget_old());
    }
}

impl Handler<StartUpdate> for Jobs {
    type Result = Result<(), JobsError>;
    fn handle(&mut self, msg: StartUpdate, ctx: &mut Context<Self>) -> Self::Result {
        if msg.targets.len() == 1 && msg.targets.iter().all(|c| self.own.is(&c.id)) {
            return Err(JobsError::OwnContainer);
        }
        self.launch(msg, ctx);
        Ok(())
    }
}

impl Handler<GetProgress> for Jobs {
    type Result = Option<PullProgress>;
    fn handle(&mut self, msg: GetProgress, _: &mut Context<Self>) -> Self::Result {
        if msg.container_id.len() < 12 {
            return None;
        }
        self.forget_old();
        self.tracked.iter().find(|(id, _)| id.starts_with(&msg.container_id)).map(|(_, t)| t.progress.clone())
    }
}

impl Handler<ProgressChanged> for Jobs {
    type Result = ();
    fn handle(&mut self, msg: ProgressChanged, _: &mut Context<Self>) {
        let Some(tracked) = self.tracked.get_mut(&msg.container_id) else { return };
        tracked.progress = msg.progress.clone();
        let throttle = self.throttles.entry(msg.container_id.clone()).or_default();
        if throttle.should_emit(Instant::now(), &msg.progress) {
            let event = json!({ "type": "progress", "container_id": short(&msg.container_id), "data": msg.progress });
            self.broadcast(event.to_string());
        }
    }
}

impl Handler<ContainerFinished> for Jobs {
    type Result = ();
    fn handle(&mut self, msg: ContainerFinished, _: &mut Context<Self>) {
        self.running.remove(&msg.container_id);
        self.throttles.remove(&msg.container_id);
        if let Some(tracked) = self.tracked.get_mut(&msg.container_id) {
            tracked.ended = Some(Instant::now());
            let alias = Tracked {
                progress: tracked.progress.clone(),
                short_id: tracked.short_id.clone(),
                ended: tracked.ended,
            };
            if let Some(new_id) = msg.new_container_id {
                self.tracked.insert(new_id, alias);
            }
        }
        if let Some(entry) = msg.history {
            self.broadcast(json!({ "type": "history", "data": entry }).to_string());
        }
    }
}

impl Handler<JobFinished> for Jobs {
    type Result = ();
    fn handle(&mut self, msg: JobFinished, ctx: &mut Context<Self>) {
        if msg.automatic {
            self.auto_running = self.auto_running.saturating_sub(1);
            if let Some(next) = self.auto_queue.pop_front() {
                self.launch(next, ctx);
            }
        }
    }
}

/// One update: a pull, then its containers' recreates, one by one.
struct UpdateJob {
    env: Arc<JobEnv>,
    jobs: Addr<Jobs>,
    request: StartUpdate,
}

impl Actor for UpdateJob {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let env = Arc::clone(&self.env);
        let jobs = self.jobs.clone();
        let request = self.request.clone();
        ctx.spawn(
            async move {
                run(&env, &jobs, &request).await;
                jobs.do_send(JobFinished { automatic: request.automatic });
            }
            .into_actor(self)
            .map(|_, _, ctx: &mut Context<Self>| ctx.stop()),
        );
    }
}

fn reporter(jobs: &Addr<Jobs>, container_id: &str) -> Report {
    let jobs = jobs.clone();
    let container_id = container_id.to_string();
    Arc::new(move |progress| jobs.do_send(ProgressChanged { container_id: container_id.clone(), progress }))
}

async fn run(env: &JobEnv, jobs: &Addr<Jobs>, request: &StartUpdate) {
    if let Err(e) = engine::negotiate(&env.docker).await {
        for target in &request.targets {
            let error = format!("docker engine unreachable: {e}");
            finish_without_change(env, jobs, target, &request.image_ref, JobResult::Failed, Some(error), None).await;
        }
        return;
    }
    // One pull for every target; each sees its progress.
    let reports: Vec<Report> = request.targets.iter().map(|t| reporter(jobs, &t.id)).collect();
    let fan_out: Report = Arc::new(move |p: PullProgress| reports.iter().for_each(|r| r(p.clone())));
    let mut aggregator_seen = ProgressAggregator::new();
    let pulled = sequence::pull(env, &request.image_ref, &fan_out, &mut aggregator_seen).await;
    let new_image = match pulled {
        Ok(image) => image,
        Err(error) => {
            fan_out(aggregator_seen.error(&error));
            for target in &request.targets {
                let old_image = Some(target.image_id.clone());
                finish_without_change(
                    env,
                    jobs,
                    target,
                    &request.image_ref,
                    JobResult::Failed,
                    Some(error.clone()),
                    old_image,
                )
                .await;
            }
            return;
        }
    };
    let to_digest = repo_digest(&new_image, &request.image_ref);
    for target in &request.targets {
        let report = reporter(jobs, &target.id);
        let from_digest = match engine::inspect_image(&env.docker, &target.image_id).await {
            Ok(image) => repo_digest(&image, &request.image_ref),
            Err(_) => None,
        };
        let suppliers = suppliers(env).await;
        let outcome = sequence::recreate(
            env,
            RecreateRequest {
                container_id: &target.id,
                image_ref: &target.image_ref,
                new_image: &new_image,
                force: false,
                suppliers: &suppliers,
                from_digest: from_digest.clone(),
                to_digest: to_digest.clone(),
            },
            &report,
            &aggregator_seen,
        )
        .await;
        let final_progress = match (&outcome.result, &outcome.error) {
            (JobResult::Updated | JobResult::Unchanged, _) => aggregator_seen.with_status(Stage::Done),
            (JobResult::RolledBack, Some(e)) => aggregator_seen.rolled_back(e),
            (_, e) => aggregator_seen.error(e.as_deref().unwrap_or("failed")),
        };
        report(final_progress);
        let history = match &outcome.job_id {
            Some(id) => history_of(env, id).await,
            None => {
                record(
                    env,
                    target,
                    &request.image_ref,
                    &outcome,
                    Some(target.image_id.clone()),
                    from_digest,
                    to_digest.clone(),
                )
                .await
            }
        };
        jobs.do_send(ContainerFinished {
            container_id: target.id.clone(),
            new_container_id: outcome.new_container_id.clone(),
            history,
        });
        if outcome.result == JobResult::Updated {
            if let Some(new_id) = &outcome.new_container_id {
                recreate_dependents(env, jobs, target, new_id).await;
            }
        }
    }
}

/// Every running container's id and name, mapped to its name: for
/// `container:` modes, which must name the supplier as it is now.
async fn suppliers(env: &JobEnv) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Ok(entries) = engine::running_entries(&env.docker).await {
        for c in entries {
            map.insert(c.id.clone(), c.name.clone());
            map.insert(c.name.clone(), c.name);
        }
    }
    map
}

/// Whether a `container:<target>` mode names this container (by name or id prefix).
fn names_container(mode: &str, id: &str, name: &str) -> bool {
    mode.strip_prefix("container:")
        .map(|t| t.trim_start_matches('/'))
        .is_some_and(|target| target == name || (target.len() >= 12 && id.starts_with(target)))
}

/// Containers that joined the updated one's network namespace still point
/// at the removed container: recreate them, on their own image, pointing at
/// the new one. Found from one list call (its network modes), so an update
/// costs no inspect per container on the host.
async fn recreate_dependents(env: &JobEnv, jobs: &Addr<Jobs>, supplier: &Container, new_id: &str) {
    let Ok(running) = engine::running_entries(&env.docker).await else { return };
    let dependents: Vec<_> = running
        .iter()
        .filter(|c| c.id != new_id && names_container(&c.network_mode, &supplier.id, &supplier.name))
        .collect();
    if dependents.is_empty() {
        return;
    }
    let mut map = suppliers(env).await;
    map.insert(supplier.id.clone(), supplier.name.clone());
    map.insert(new_id.to_string(), supplier.name.clone());
    for dependent in dependents {
        let Ok(details) = engine::inspect_container(&env.docker, &dependent.id).await else { continue };
        let Ok(image) = engine::inspect_image(&env.docker, &dependent.image_id).await else { continue };
        let image_ref = details.config.as_ref().and_then(|c| c.image.clone()).unwrap_or_default();
        tracing::info!(container = %dependent.name, supplier = %supplier.name, "recreating a namespace dependent");
        let report = reporter(jobs, &dependent.id);
        let outcome = sequence::recreate(
            env,
            RecreateRequest {
                container_id: &dependent.id,
                image_ref: &image_ref,
                new_image: &image,
                force: true,
                suppliers: &map,
                from_digest: None,
                to_digest: None,
            },
            &report,
            &ProgressAggregator::new(),
        )
        .await;
        if let Some(id) = &outcome.job_id {
            if let Some(entry) = history_of(env, id).await {
                let finished = ContainerFinished {
                    container_id: dependent.id.clone(),
                    new_container_id: None,
                    history: Some(entry),
                };
                let _ = jobs.send(finished).await;
            }
        }
    }
}

/// The registry digest the image is known by in `image_ref`'s repository,
/// shortened as the API shows digests.
fn repo_digest(image: &ImageDetails, image_ref: &str) -> Option<String> {
    let repository = image_ref.rsplit_once('@').map_or(image_ref, |(r, _)| r);
    let repository = match repository.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repository,
    };
    let digests = image.repo_digests.as_deref().unwrap_or_default();
    let digest =
        digests.iter().find(|d| d.split_once('@').is_some_and(|(r, _)| r == repository)).or_else(|| digests.first())?;
    let digest = digest.split_once('@').map_or(digest.as_str(), |(_, d)| d);
    Some(digest.chars().take(17).collect())
}

async fn history_of(env: &JobEnv, id: &str) -> Option<HistoryEntry> {
    env.store.send(HistoryEntryOf { id: id.to_string() }).await.ok()?.ok()?
}

/// An outcome that touched nothing (unchanged, or failed before the first
/// step) still goes into the history.
async fn record(
    env: &JobEnv,
    target: &Container,
    image_ref: &str,
    outcome: &Outcome,
    from_image_id: Option<String>,
    from_digest: Option<String>,
    to_digest: Option<String>,
) -> Option<HistoryEntry> {
    let id = sequence::new_op_id();
    let begin = BeginJob {
        id: id.clone(),
        container_id: target.id.clone(),
        container_name: target.name.clone(),
        image: image_ref.to_string(),
        from_image_id: from_image_id.unwrap_or_default(),
        to_image_id: None,
        from_digest,
        to_digest: to_digest.clone(),
        plan: "{}".into(),
    };
    let finish = FinishJob { id: id.clone(), result: outcome.result, error: outcome.error.clone(), to_digest };
    let recorded = async {
        env.store.send(begin).await.ok()?.ok()?;
        env.store.send(finish).await.ok()?.ok()
    };
    if recorded.await.is_none() {
        tracing::warn!(container = %target.name, "cannot record the update's outcome");
    }
    history_of(env, &id).await
}

async fn finish_without_change(
    env: &JobEnv,
    jobs: &Addr<Jobs>,
    target: &Container,
    image_ref: &str,
    result: JobResult,
    error: Option<String>,
    from_image_id: Option<String>,
) {
    let outcome = Outcome { result, error, new_container_id: None, job_id: None };
    let progress = ProgressAggregator::new().error(outcome.error.as_deref().unwrap_or("failed"));
    reporter(jobs, &target.id)(progress);
    let history = record(env, target, image_ref, &outcome, from_image_id, None, None).await;
    jobs.do_send(ContainerFinished { container_id: target.id.clone(), new_container_id: None, history });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_modes_name_their_supplier() {
        let id = "3d4c5b6a7f8e9d0c1b2a3d4c5b6a7f8e9d0c1b2a3d4c5b6a7f8e9d0c1b2a3d4c";
        for (mode, expected) in [
            ("container:web", true),
            ("container:/web", true),
            (&format!("container:{id}") as &str, true),
            ("container:3d4c5b6a7f8e", true),
            ("container:3d4c5b", false),
            ("container:webx", false),
            ("web", false),
            ("none", false),
        ] {
            assert_eq!(names_container(mode, id, "web"), expected, "{mode}");
        }
    }

    #[test]
    fn repo_digest_prefers_the_reference_repository() {
        let image = ImageDetails {
            repo_digests: Some(vec![
                "127.0.0.1:5000/other@sha256:1111111111111111".into(),
                "127.0.0.1:5000/app@sha256:2222222222222222".into(),
            ]),
            ..Default::default()
        };
        assert_eq!(repo_digest(&image, "127.0.0.1:5000/app:1.2").as_deref(), Some("sha256:2222222222"));
        assert_eq!(repo_digest(&image, "127.0.0.1:5000/app").as_deref(), Some("sha256:2222222222"));
        assert_eq!(repo_digest(&image, "127.0.0.1:5000/nope:1").as_deref(), Some("sha256:1111111111"));
        assert_eq!(repo_digest(&ImageDetails::default(), "x:1"), None);
    }
}
