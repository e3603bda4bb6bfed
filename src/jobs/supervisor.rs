//! `Jobs` keeps track of every update: which containers have one running (never
//! two at once), their latest progress (kept 60 s after the end), how many
//! automatic updates run, and the websocket events. Each update is an
//! `UpdateJob` actor of its own, on one engine: it pulls once, then recreates
//! its containers one after another, then the containers that share their
//! namespaces. An update of containers on several engines is one `UpdateJob`
//! per engine.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient, WrapFuture,
};
use serde_json::json;
use tokio::sync::broadcast;

use super::own::OwnContainer;
use super::progress::{ProgressAggregator, PullProgress, Stage, Throttle};
use super::sequence::{self, JobEnv, Outcome, RecreateRequest, Report};
use crate::docker::engine;
use crate::docker::model::Container;
use crate::inventory::resolve::{self, ContainerRef, Resolved};
use crate::inventory::scope::{self, Policy, Selection};
use crate::metrics::Metrics;
use crate::registry::reference;
use crate::store::{BeginJob, FinishJob, HistoryEntry, HistoryEntryOf, JobResult};

/// How long the final progress of a job stays readable.
pub const PROGRESS_KEPT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobsError {
    #[error("cannot update shipshape's own container")]
    OwnContainer,
    /// Its labels say checked and shown, never updated.
    #[error("monitor only")]
    MonitorOnly,
    /// Its labels (or the instance's scope) leave it out.
    #[error("excluded")]
    Excluded,
}

/// Starts updating `targets`, all created from `image_ref`: one pull per
/// engine, then one recreate after another. Containers that already have a
/// job are left to it. Automatic updates wait for a free slot (each engine's
/// part of one takes a slot).
#[derive(Message, Clone)]
#[rtype(result = "Result<(), JobsError>")]
pub struct StartUpdate {
    pub targets: Vec<Container>,
    pub image_ref: String,
    pub automatic: bool,
    /// Moves the targets to this tag of their repository (`image_ref` is
    /// that tag already); `None` keeps their tag and follows its digest.
    pub to_tag: Option<String>,
}

/// The latest progress of a job on this container (by the id the update was
/// started with, or its replacement's; 12 characters or more, or `host:id`).
#[derive(Message)]
#[rtype(result = "Resolved<PullProgress>")]
pub struct GetProgress {
    pub container_id: String,
}

/// From an `UpdateJob`: a container's progress changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProgressChanged {
    pub host: Arc<str>,
    pub container_id: String,
    pub progress: PullProgress,
}

/// From an `UpdateJob`: a container's update ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ContainerFinished {
    pub host: Arc<str>,
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

/// To the notifier: a container's update ended, as the history records it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateEnded(pub HistoryEntry);

struct Tracked {
    progress: PullProgress,
    /// The container the progress is about (the old id for a replacement's alias).
    short_id: String,
    ended: Option<Instant>,
}

/// A container on one engine: its engine's name and its full id.
type Key = (Arc<str>, String);

fn key(host: &Arc<str>, id: &str) -> Key {
    (Arc::clone(host), id.to_string())
}

pub struct Jobs {
    /// Each engine's job environment, by engine name.
    envs: HashMap<String, Arc<JobEnv>>,
    own: OwnContainer,
    tracked: HashMap<Key, Tracked>,
    running: HashSet<Key>,
    throttles: HashMap<Key, Throttle>,
    auto_limit: usize,
    auto_running: usize,
    auto_queue: VecDeque<StartUpdate>,
    events: broadcast::Sender<String>,
    policy: Arc<Policy>,
    notify: Option<Recipient<UpdateEnded>>,
    metrics: Option<Metrics>,
    /// When each running container's update started (for the metrics).
    started: HashMap<Key, Instant>,
}

impl Jobs {
    /// Which containers this instance may update (labels and scope).
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Who hears of ended updates: the notifier and the metrics.
    pub fn with_observers(mut self, notify: Recipient<UpdateEnded>, metrics: Metrics) -> Self {
        self.notify = Some(notify);
        self.metrics = Some(metrics);
        self
    }

    /// `envs`: one per engine.
    pub fn new(
        envs: impl IntoIterator<Item = Arc<JobEnv>>,
        own: OwnContainer,
        auto_limit: usize,
        events: broadcast::Sender<String>,
    ) -> Self {
        Self {
            envs: envs.into_iter().map(|env| (env.host.to_string(), env)).collect(),
            own,
            tracked: HashMap::new(),
            running: HashSet::new(),
            throttles: HashMap::new(),
            auto_limit: auto_limit.max(1),
            auto_running: 0,
            auto_queue: VecDeque::new(),
            events,
            policy: Arc::default(),
            notify: None,
            metrics: None,
            started: HashMap::new(),
        }
    }

    /// The environment of the engine `host`, if it is one of ours.
    fn env_of(&self, host: &str) -> Option<Arc<JobEnv>> {
        self.envs.get(host).cloned()
    }

    /// Starts (or queues) one engine's part of an update: every target is on `env`'s engine.
    fn launch(&mut self, mut msg: StartUpdate, ctx: &mut Context<Self>) {
        let Some(env) = msg.targets.first().and_then(|c| self.env_of(&c.host)) else {
            if let Some(c) = msg.targets.first() {
                tracing::error!(engine = %c.host, container = %c.name, "no such engine: update not started");
            }
            return;
        };
        msg.targets.retain(|c| !self.running.contains(&key(&env.host, &c.id)) && !self.own.is(&c.id));
        if msg.targets.is_empty() {
            return;
        }
        // Dependencies first: a dependant is recreated after what it needs.
        msg.targets = scope::order_containers(std::mem::take(&mut msg.targets));
        if msg.automatic {
            if self.auto_running >= self.auto_limit {
                self.auto_queue.push_back(msg);
                return;
            }
            self.auto_running += 1;
        }
        for c in &msg.targets {
            let k = key(&env.host, &c.id);
            self.running.insert(k.clone());
            self.started.insert(k.clone(), Instant::now());
            self.throttles.remove(&k);
            let progress = ProgressAggregator::new().snapshot();
            self.tracked.insert(k, Tracked { progress, short_id: short(&c.id), ended: None });
        }
        UpdateJob { env, jobs: ctx.address(), request: msg, policy: Arc::clone(&self.policy) }.start();
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

/// One update per engine, each with its engine's targets in their order;
/// the engines in the order their first target comes.
fn split_by_host(msg: StartUpdate) -> Vec<StartUpdate> {
    let mut parts: Vec<StartUpdate> = Vec::new();
    for target in msg.targets {
        match parts.iter_mut().find(|p| p.targets[0].host == target.host) {
            Some(part) => part.targets.push(target),
            None => parts.push(StartUpdate {
                targets: vec![target],
                image_ref: msg.image_ref.clone(),
                automatic: msg.automatic,
                to_tag: msg.to_tag.clone(),
            }),
        }
    }
    parts
}

impl Actor for Jobs {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(PROGRESS_KEPT, |this, _| this.forget_old());
    }
}

impl Handler<StartUpdate> for Jobs {
    type Result = Result<(), JobsError>;
    fn handle(&mut self, mut msg: StartUpdate, ctx: &mut Context<Self>) -> Self::Result {
        if msg.targets.len() == 1 && msg.targets.iter().all(|c| self.own.is(&c.id)) {
            return Err(JobsError::OwnContainer);
        }
        let selection = |c: &Container| scope::select(&self.policy, &c.labels);
        let (monitored, rest): (Vec<Container>, Vec<Container>) =
            std::mem::take(&mut msg.targets).into_iter().partition(|c| selection(c) == Selection::MonitorOnly);
        // Excluded and out-of-scope containers are never named in a group's history.
        let allowed: Vec<Container> = rest.into_iter().filter(|c| selection(c) == Selection::Included).collect();
        if allowed.is_empty() {
            return Err(if monitored.is_empty() { JobsError::Excluded } else { JobsError::MonitorOnly });
        }
        // A group update names the containers it skips in the history.
        let running = &self.running;
        let skipped: Vec<(Arc<JobEnv>, Container)> = monitored
            .into_iter()
            .filter_map(|c| self.envs.get(&c.host).map(|env| (Arc::clone(env), c)))
            .filter(|(env, c)| !running.contains(&key(&env.host, &c.id)))
            .collect();
        if !skipped.is_empty() {
            let jobs = ctx.address();
            let image_ref = msg.image_ref.clone();
            actix::spawn(async move {
                for (env, target) in &skipped {
                    let reason = Some(MONITOR_ONLY_SKIPPED.to_string());
                    finish_without_change(env, &jobs, target, &image_ref, JobResult::Unchanged, reason, None).await;
                }
            });
        }
        msg.targets = allowed;
        for part in split_by_host(msg) {
            self.launch(part, ctx);
        }
        Ok(())
    }
}

impl Handler<GetProgress> for Jobs {
    type Result = Resolved<PullProgress>;
    fn handle(&mut self, msg: GetProgress, _: &mut Context<Self>) -> Self::Result {
        self.forget_old();
        let target = ContainerRef::parse(&msg.container_id);
        let candidates = self.tracked.iter().map(|((host, id), t)| (&**host, id.as_str(), t));
        resolve::resolve(&target, candidates).map(|t| t.progress.clone())
    }
}

impl Handler<ProgressChanged> for Jobs {
    type Result = ();
    fn handle(&mut self, msg: ProgressChanged, _: &mut Context<Self>) {
        let k = key(&msg.host, &msg.container_id);
        let Some(tracked) = self.tracked.get_mut(&k) else { return };
        tracked.progress = msg.progress.clone();
        let throttle = self.throttles.entry(k).or_default();
        if throttle.should_emit(Instant::now(), &msg.progress) {
            let event = json!({
                "type": "progress",
                "container_id": short(&msg.container_id),
                "host": &*msg.host,
                "data": msg.progress,
            });
            self.broadcast(event.to_string());
        }
    }
}

impl Handler<ContainerFinished> for Jobs {
    type Result = ();
    fn handle(&mut self, msg: ContainerFinished, _: &mut Context<Self>) {
        let k = key(&msg.host, &msg.container_id);
        self.running.remove(&k);
        self.throttles.remove(&k);
        if let Some(tracked) = self.tracked.get_mut(&k) {
            tracked.ended = Some(Instant::now());
            let alias = Tracked {
                progress: tracked.progress.clone(),
                short_id: tracked.short_id.clone(),
                ended: tracked.ended,
            };
            if let Some(new_id) = msg.new_container_id {
                self.tracked.insert(key(&msg.host, &new_id), alias);
            }
        }
        let took = self.started.remove(&k).map(|at| at.elapsed());
        if let Some(entry) = msg.history {
            if let Some(metrics) = &self.metrics {
                metrics.update_finished(entry.result.as_str(), took);
            }
            if let Some(notify) = &self.notify {
                notify.do_send(UpdateEnded(entry.clone()));
            }
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

/// The history's reason for a container a group update left alone.
pub const MONITOR_ONLY_SKIPPED: &str = "monitor only: not updated";

/// One update: a pull, then its containers' recreates, one by one.
struct UpdateJob {
    env: Arc<JobEnv>,
    jobs: Addr<Jobs>,
    request: StartUpdate,
    policy: Arc<Policy>,
}

impl Actor for UpdateJob {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let env = Arc::clone(&self.env);
        let jobs = self.jobs.clone();
        let request = self.request.clone();
        let policy = Arc::clone(&self.policy);
        ctx.spawn(
            async move {
                run(&env, &jobs, &request, &policy).await;
                jobs.do_send(JobFinished { automatic: request.automatic });
            }
            .into_actor(self)
            .map(|_, _, ctx: &mut Context<Self>| ctx.stop()),
        );
    }
}

fn reporter(env: &JobEnv, jobs: &Addr<Jobs>, container_id: &str) -> Report {
    let jobs = jobs.clone();
    let container_id = container_id.to_string();
    let host = Arc::clone(&env.host);
    Arc::new(move |progress| {
        jobs.do_send(ProgressChanged { host: Arc::clone(&host), container_id: container_id.clone(), progress })
    })
}

async fn run(env: &JobEnv, jobs: &Addr<Jobs>, request: &StartUpdate, policy: &Policy) {
    if let Err(e) = env.negotiate().await {
        for target in &request.targets {
            let error = format!("docker engine unreachable: {e}");
            finish_without_change(env, jobs, target, &request.image_ref, JobResult::Failed, Some(error), None).await;
        }
        return;
    }
    // One pull for every target; each sees its progress.
    let reports: Vec<Report> = request.targets.iter().map(|t| reporter(env, jobs, &t.id)).collect();
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
    let to_digest = sequence::repo_digest(&new_image, &request.image_ref);
    for target in &request.targets {
        let report = reporter(env, jobs, &target.id);
        // A new tag keeps how the user spelled the repository.
        let image_ref = match &request.to_tag {
            Some(tag) => reference::with_tag(&target.image_ref, tag),
            None => target.image_ref.clone(),
        };
        let outcome = sequence::recreate(
            env,
            RecreateRequest {
                container_id: &target.id,
                image_ref: &image_ref,
                new_image: &new_image,
                // Same image under a new tag: the container must still
                // follow the new tag from now on.
                force: request.to_tag.is_some(),
                suppliers: None,
                from_digest: None,
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
                // Unchanged: it runs the pulled image, so both digests are the new one.
                let from_digest = (outcome.result == JobResult::Unchanged).then(|| to_digest.clone()).flatten();
                let from_image = Some(target.image_id.clone());
                record(env, target, &request.image_ref, &outcome, from_image, from_digest, to_digest.clone()).await
            }
        };
        jobs.do_send(ContainerFinished {
            host: Arc::clone(&env.host),
            container_id: target.id.clone(),
            new_container_id: outcome.new_container_id.clone(),
            history,
        });
        if outcome.result == JobResult::Updated {
            if let Some(new_id) = &outcome.new_container_id {
                recreate_dependents(env, jobs, target, new_id).await;
            }
            restart_label_dependants(env, target, request, policy).await;
        }
    }
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
    // The same list call: no second look at the engine.
    let mut map = sequence::names_of(&running);
    map.insert(supplier.id.clone(), supplier.name.clone());
    map.insert(new_id.to_string(), supplier.name.clone());
    for dependent in dependents {
        let Ok(details) = engine::inspect_container(&env.docker, &dependent.id).await else { continue };
        let Ok(image) = engine::inspect_image(&env.docker, &dependent.image_id).await else { continue };
        let image_ref = details.config.as_ref().and_then(|c| c.image.clone()).unwrap_or_default();
        tracing::info!(container = %dependent.name, supplier = %supplier.name, "recreating a namespace dependent");
        let report = reporter(env, jobs, &dependent.id);
        let outcome = sequence::recreate(
            env,
            RecreateRequest {
                container_id: &dependent.id,
                image_ref: &image_ref,
                new_image: &image,
                force: true,
                suppliers: Some(&map),
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
                    host: Arc::clone(&env.host),
                    container_id: dependent.id.clone(),
                    new_container_id: None,
                    history: Some(entry),
                };
                let _ = jobs.send(finished).await;
            }
        }
    }
}

/// Containers that name the updated one in a `depends-on` label are
/// restarted after it, as Watchtower does, unless this update recreates
/// them anyway, or they are not this instance's to touch.
async fn restart_label_dependants(env: &JobEnv, target: &Container, request: &StartUpdate, policy: &Policy) {
    let Ok(running) = engine::running_entries(&env.docker).await else { return };
    let names = scope::label_dependants(running.iter().map(|c| (c.name.as_str(), &c.labels)), &target.name);
    for entry in running.iter().filter(|c| names.contains(&c.name)) {
        let in_this_update = request.targets.iter().any(|t| t.name == entry.name);
        if in_this_update || scope::select(policy, &entry.labels) == Selection::OutOfScope || entry.id == target.id {
            continue;
        }
        tracing::info!(container = %entry.name, dependency = %target.name, "restarting a dependant");
        if let Err(e) = engine::restart_container(&env.docker, &entry.id).await {
            tracing::warn!(container = %entry.name, "cannot restart a dependant: {e}");
        }
    }
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
        host: Some(env.host.to_string()),
        kind: crate::store::JobKind::Container,
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
    reporter(env, jobs, &target.id)(progress);
    let history = record(env, target, image_ref, &outcome, from_image_id, None, None).await;
    let host = Arc::clone(&env.host);
    jobs.do_send(ContainerFinished { host, container_id: target.id.clone(), new_container_id: None, history });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_is_split_per_engine_keeping_the_order() {
        let c = |host: &str, name: &str| Container { host: host.into(), name: name.into(), ..Default::default() };
        let msg = StartUpdate {
            targets: vec![c("b", "db"), c("a", "web"), c("b", "app"), c("a", "cache")],
            image_ref: "app:1".into(),
            automatic: true,
            to_tag: None,
        };
        let parts: Vec<Vec<(String, String)>> = split_by_host(msg)
            .into_iter()
            .map(|p| {
                assert!(p.automatic && p.image_ref == "app:1");
                p.targets.into_iter().map(|t| (t.host, t.name)).collect()
            })
            .collect();
        let pair = |h: &str, n: &str| (h.to_string(), n.to_string());
        assert_eq!(parts, [vec![pair("b", "db"), pair("b", "app")], vec![pair("a", "web"), pair("a", "cache")]]);
    }

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
}
