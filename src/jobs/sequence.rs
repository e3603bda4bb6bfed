//! The update itself, step by step against the engine: pull, plan, then the
//! safe recreate — the old container keeps running until its replacement
//! exists, and is removed only once the replacement is verified. Every step
//! is journalled before it is done, so a crash at any point can be finished
//! or undone at the next start ([`recover`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use futures::StreamExt;

use super::plan::{self, ApiVersion, PlanInput, RecreatePlan, VerifyOutcome};
use super::progress::{ProgressAggregator, PullProgress, Stage};
use crate::docker::engine::{self, Docker};
use crate::docker::model::{
    ContainerDetails, ContainerEntry, ImageDetails, PullAuth, RestartPolicy, RestartPolicyNameEnum,
};
use crate::docker::DockerError;
use crate::registry::credentials::{self, Credential, DockerConfig};
use crate::registry::reference;
use crate::store::{BeginJob, FinishJob, JobRecord, JobResult, JobStep, JournalStep, Store, StoreError};

/// What every job on one engine needs, shared: there is one per engine, and
/// a job runs entirely on its container's engine (pull, recreate, journal).
pub struct JobEnv {
    /// The engine's configured name, journalled with every job.
    pub host: Arc<str>,
    pub docker: Docker,
    pub store: Addr<Store>,
    /// Re-read when the file changes: a later `docker login` counts for the next pull.
    pub docker_config: Arc<crate::registry::config_source::DockerConfigSource>,
    /// How long a replacement must keep running (and get healthy); zero: one look.
    pub verify_timeout: Duration,
    /// Remove the old image after a successful update when nothing uses it.
    pub cleanup: bool,
    /// Set once the API version is agreed with the engine (the watcher's
    /// client shares it); later jobs need not ask again.
    pub negotiated: tokio::sync::OnceCell<()>,
}

impl JobEnv {
    /// Agrees on the API version once per process.
    pub async fn negotiate(&self) -> Result<(), DockerError> {
        self.negotiated.get_or_try_init(|| engine::negotiate(&self.docker)).await.map(|_| ())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Docker(#[from] DockerError),
    #[error("journal: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Plan(#[from] plan::PlanError),
    #[error("{0}")]
    Other(String),
}

/// Where progress goes: the supervisor, which stores and broadcasts it.
pub type Report = Arc<dyn Fn(PullProgress) + Send + Sync>;

/// How one container's update ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub result: JobResult,
    pub error: Option<String>,
    /// The replacement's id, when there is one that stays.
    pub new_container_id: Option<String>,
    /// The journal entry, once one was written (its history entry).
    pub job_id: Option<String>,
}

/// Pulls `image_ref`, folding progress into `aggregator` and reporting it;
/// answers the pulled image's details.
pub async fn pull(
    env: &JobEnv,
    image_ref: &str,
    report: &Report,
    aggregator: &mut ProgressAggregator,
) -> Result<ImageDetails, String> {
    let auth = pull_auth(&env.docker_config.config(), image_ref).await;
    report(aggregator.snapshot());
    let mut stream = engine::pull(&env.docker, image_ref, auth.as_ref());
    while let Some(event) = stream.next().await {
        let event = event.map_err(|e| format!("pull failed: {e}"))?;
        aggregator.apply(&event).map_err(|e| format!("pull failed: {e}"))?;
        report(aggregator.snapshot());
    }
    engine::inspect_image(&env.docker, image_ref).await.map_err(|e| format!("pulled image not found: {e}"))
}

/// `X-Registry-Auth` for the reference's registry, from the same credential
/// lookup the registry checks use. A lookup failure pulls anonymously (the
/// pull then says what the registry thinks), never logs the secret.
pub async fn pull_auth(config: &DockerConfig, image_ref: &str) -> Option<PullAuth> {
    let parsed = reference::parse(image_ref).ok()?;
    let credential = match credentials::resolve(config, &parsed.registry).await {
        Ok(c) => c?,
        Err(e) => {
            tracing::warn!(registry = %parsed.registry, "no credentials for the pull: {e}");
            return None;
        }
    };
    let server_address = parsed.registry.clone();
    Some(match credential {
        Credential::Basic { username, password } => {
            PullAuth { server_address, username: Some(username), password: Some(password), identity_token: None }
        }
        Credential::IdentityToken(token) => {
            PullAuth { server_address, username: None, password: None, identity_token: Some(token) }
        }
        // The engine takes no bearer token for pulls; try anonymously.
        Credential::RegistryToken(_) => return None,
    })
}

/// Every running container's id and name, mapped to its name: for
/// `container:` modes, which must name the supplier as it is now. One list
/// call, no inspect.
pub async fn running_names(env: &JobEnv) -> HashMap<String, String> {
    engine::running_entries(&env.docker).await.map(|entries| names_of(&entries)).unwrap_or_default()
}

/// Each container's id and name, mapped to its name.
pub fn names_of(entries: &[ContainerEntry]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for c in entries {
        map.insert(c.id.clone(), c.name.clone());
        map.insert(c.name.clone(), c.name.clone());
    }
    map
}

/// The registry digest the image is known by in `image_ref`'s repository,
/// shortened as the API shows digests.
pub fn repo_digest(image: &ImageDetails, image_ref: &str) -> Option<String> {
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

/// A fresh job id: 8 hex digits, part of container names and labels.
pub fn new_op_id() -> String {
    let bytes: [u8; 4] = rand::random();
    hex::encode(bytes)
}

/// The journal of one job: every step is written before it is done.
struct Journal<'a> {
    store: &'a Addr<Store>,
    id: String,
    /// When the last step was journalled: the debug log says how long each took.
    last: std::sync::Mutex<Instant>,
}

impl<'a> Journal<'a> {
    fn new(store: &'a Addr<Store>, id: String) -> Self {
        Self { store, id, last: std::sync::Mutex::new(Instant::now()) }
    }

    async fn step(&self, step: JobStep, new_container_id: Option<String>) -> Result<(), JobError> {
        if let Ok(mut last) = self.last.lock() {
            tracing::debug!(job = %self.id, step = step.as_str(), previous_ms = last.elapsed().as_millis() as u64, "step");
            *last = Instant::now();
        }
        let msg = JournalStep { id: self.id.clone(), step, new_container_id };
        self.store.send(msg).await.map_err(|_| StoreError::Unavailable)??;
        fault_point(step);
        Ok(())
    }

    async fn finish(&self, result: JobResult, error: Option<String>) -> Result<(), JobError> {
        let msg = FinishJob { id: self.id.clone(), result, error, to_digest: None };
        Ok(self.store.send(msg).await.map_err(|_| StoreError::Unavailable)??)
    }
}

/// With the `fault-injection` feature (tests only), the process dies like
/// `kill -9` right after journalling the step named in
/// `SHIPSHAPE_FAULT_CRASH_AT`, before carrying it out.
#[cfg(feature = "fault-injection")]
fn fault_point(step: JobStep) {
    if std::env::var("SHIPSHAPE_FAULT_CRASH_AT").is_ok_and(|s| s == step.as_str()) {
        eprintln!("fault injection: crashing at step {}", step.as_str());
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
fn fault_point(_: JobStep) {}

/// What the recreate of one container starts from.
pub struct RecreateRequest<'a> {
    pub container_id: &'a str,
    pub image_ref: &'a str,
    pub new_image: &'a ImageDetails,
    /// Recreate even when the container already runs the image (a
    /// namespace dependent of an updated container).
    pub force: bool,
    /// For `container:` modes: ids and names of suppliers, mapped to their
    /// current names; `None`: looked up when the container has such a mode.
    pub suppliers: Option<&'a HashMap<String, String>>,
    pub from_digest: Option<String>,
    pub to_digest: Option<String>,
}

/// Recreates one container on the pulled image, safely. Never leaves the
/// container gone: any failure after the first change is rolled back.
pub async fn recreate(env: &JobEnv, req: RecreateRequest<'_>, report: &Report, base: &ProgressAggregator) -> Outcome {
    let failed =
        |error: String| Outcome { result: JobResult::Failed, error: Some(error), new_container_id: None, job_id: None };
    let old = match engine::inspect_container(&env.docker, req.container_id).await {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot inspect the container: {e}")),
    };
    let new_image_id = req.new_image.id.clone().unwrap_or_default();
    let old_image_id = old.image.clone().unwrap_or_default();
    if old_image_id == new_image_id && !req.force {
        return Outcome { result: JobResult::Unchanged, error: None, new_container_id: None, job_id: None };
    }
    let old_image = match engine::inspect_image(&env.docker, &old_image_id).await {
        Ok(image) => Some(image),
        Err(DockerError::NotFound(_)) => None,
        Err(e) => return failed(format!("cannot inspect the old image: {e}")),
    };
    let looked_up;
    let suppliers = match req.suppliers {
        Some(map) => map,
        None if plan::namespace_suppliers(&old).is_empty() => {
            looked_up = HashMap::new();
            &looked_up
        }
        None => {
            looked_up = running_names(env).await;
            &looked_up
        }
    };
    let from_digest =
        req.from_digest.clone().or_else(|| old_image.as_ref().and_then(|i| repo_digest(i, req.image_ref)));
    let op_id = new_op_id();
    let api = ApiVersion::from(engine::api_version(&env.docker));
    let input = PlanInput {
        container: &old,
        old_image: old_image.as_ref(),
        new_image: req.new_image,
        image_ref: req.image_ref,
        api,
        suppliers,
        op_id: &op_id,
    };
    let plan = match plan::plan_recreate(&input) {
        Ok(plan) => plan,
        Err(e) => return failed(format!("cannot recreate exactly: {e}")),
    };
    if plan.auto_remove {
        return failed("cannot recreate safely: the container is removed when stopped (--rm)".into());
    }
    let plan_json = match serde_json::to_string(&plan) {
        Ok(json) => json,
        Err(e) => return failed(format!("cannot record the plan: {e}")),
    };
    let begin = BeginJob {
        id: op_id.clone(),
        container_id: plan.old_id.clone(),
        container_name: plan.name.clone(),
        image: req.image_ref.to_string(),
        from_image_id: plan.old_image_id.clone(),
        to_image_id: Some(plan.new_image_id.clone()),
        from_digest,
        to_digest: req.to_digest.clone(),
        plan: plan_json,
        host: Some(env.host.to_string()),
        kind: crate::store::JobKind::Container,
    };
    match env.store.send(begin).await.map_err(|_| StoreError::Unavailable) {
        Ok(Ok(())) => fault_point(JobStep::Planned),
        Ok(Err(e)) | Err(e) => return failed(format!("cannot journal the update: {e}")),
    }
    let journal = Journal::new(&env.store, op_id.clone());
    let job_id = Some(op_id);
    report(base.with_status(Stage::Recreating));
    let mut new_id = None;
    let result = swap(env, &journal, &plan, &mut new_id, report, base).await;
    let outcome = match result {
        Ok(()) => {
            if env.cleanup {
                cleanup_image(env, &plan.old_image_id).await;
            }
            Outcome { result: JobResult::Updated, error: None, new_container_id: new_id.clone(), job_id }
        }
        Err(e) => {
            let reason = e.to_string();
            tracing::warn!(container = %plan.name, "update failed, rolling back: {reason}");
            match roll_back(env, Some(&journal), &plan, new_id.as_deref()).await {
                Ok(()) => {
                    Outcome { result: JobResult::RolledBack, error: Some(reason), new_container_id: None, job_id }
                }
                Err(rollback) => Outcome {
                    result: JobResult::Failed,
                    error: Some(format!("{reason}; rollback failed too: {rollback}")),
                    new_container_id: None,
                    job_id,
                },
            }
        }
    };
    if let Err(e) = journal.finish(outcome.result, outcome.error.clone()).await {
        tracing::error!(job = %journal.id, "cannot record the end of the update: {e}");
    }
    outcome
}

/// Create → restart policy off → stop → rename aside → rename in → start →
/// verify → remove the old. `new_id` is set as soon as the replacement exists.
async fn swap(
    env: &JobEnv,
    journal: &Journal<'_>,
    plan: &RecreatePlan,
    new_id: &mut Option<String>,
    report: &Report,
    base: &ProgressAggregator,
) -> Result<(), JobError> {
    let docker = &env.docker;
    journal.step(JobStep::Created, None).await?;
    let id = engine::create_container(docker, &plan.temp_name, plan.body.clone()).await?;
    *new_id = Some(id.clone());
    journal.step(JobStep::Created, Some(id.clone())).await?;
    for (network, endpoint) in &plan.connect_after_create {
        engine::connect_network(docker, network, &id, endpoint.clone()).await?;
    }
    journal.step(JobStep::RestartPolicyCleared, None).await?;
    if restarts(&plan.restart_policy) {
        let no_restart = RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None };
        engine::set_restart_policy(docker, &plan.old_id, no_restart).await?;
    }
    journal.step(JobStep::Stopped, None).await?;
    let own_timeout = plan.stop_timeout.unwrap_or(engine::DEFAULT_STOP_SECS);
    engine::stop_container_within(docker, &plan.old_id, None, own_timeout).await?;
    journal.step(JobStep::RenamedOld, None).await?;
    engine::rename_container(docker, &plan.old_id, &plan.aside_name).await?;
    journal.step(JobStep::RenamedNew, None).await?;
    engine::rename_container(docker, &id, &plan.name).await?;
    journal.step(JobStep::Started, None).await?;
    engine::start_container(docker, &id).await?;
    report(base.with_status(Stage::Verifying));
    verify(env, &id, &plan.new_image_id).await?;
    journal.step(JobStep::Verified, None).await?;
    journal.step(JobStep::RemovedOld, None).await?;
    remove_if_present(docker, &plan.old_id).await?;
    Ok(())
}

/// Watches the replacement for the verify time: it must keep running on the
/// new image, and get healthy when it has a healthcheck.
async fn verify(env: &JobEnv, id: &str, image_id: &str) -> Result<(), JobError> {
    let deadline = Instant::now() + env.verify_timeout;
    let look_once = env.verify_timeout.is_zero();
    loop {
        let details = engine::inspect_container(&env.docker, id).await?;
        // With no verify time, one look: what is not wrong yet passes.
        let window_over = !look_once && Instant::now() >= deadline;
        match plan::verify(&details, image_id, window_over) {
            VerifyOutcome::Ok => return Ok(()),
            VerifyOutcome::Failed(reason) => return Err(JobError::Other(format!("verify: {reason}"))),
            VerifyOutcome::Wait if look_once => return Ok(()),
            VerifyOutcome::Wait => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Whether a restart policy can start a container by itself (then it is
/// cleared while the old container is stopped, and restored on rollback).
fn restarts(policy: &RestartPolicy) -> bool {
    !matches!(policy.name, None | Some(RestartPolicyNameEnum::NO) | Some(RestartPolicyNameEnum::EMPTY))
}

async fn remove_if_present(docker: &Docker, id: &str) -> Result<(), DockerError> {
    match engine::remove_container(docker, id, true).await {
        Ok(()) | Err(DockerError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Puts the old container back exactly as it was: the replacement goes, the
/// old one gets its name, restart policy and (if it ran) its process back.
/// Each step is safe to repeat, so recovery after a crash uses it too.
async fn roll_back(
    env: &JobEnv,
    journal: Option<&Journal<'_>>,
    plan: &RecreatePlan,
    new_id: Option<&str>,
) -> Result<(), JobError> {
    let docker = &env.docker;
    let step = |s: JobStep| async move {
        match journal {
            Some(j) => j.step(s, None).await,
            None => Ok(()),
        }
    };
    // The replacement, by id, or by the label naming this job (a crash may
    // have come between its create and the journal learning its id).
    let mut replacements: Vec<String> = new_id.map(str::to_string).into_iter().collect();
    for entry in engine::containers_with_label(docker, plan::LABEL_JOB).await? {
        if entry.labels.get(plan::LABEL_JOB) == Some(&plan.op_id) && !replacements.contains(&entry.id) {
            replacements.push(entry.id);
        }
    }
    replacements.retain(|id| id != &plan.old_id);
    step(JobStep::RollbackStoppedNew).await?;
    for id in &replacements {
        match engine::stop_container(docker, id, Some(0)).await {
            Ok(()) | Err(DockerError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    step(JobStep::RollbackRemovedNew).await?;
    for id in &replacements {
        remove_if_present(docker, id).await?;
    }
    let old = engine::inspect_container(docker, &plan.old_id).await?;
    step(JobStep::RollbackRenamedOld).await?;
    if old.name.as_deref().map(|n| n.trim_start_matches('/')) != Some(plan.name.as_str()) {
        engine::rename_container(docker, &plan.old_id, &plan.name).await?;
    }
    step(JobStep::RollbackRestartPolicyRestored).await?;
    if restarts(&plan.restart_policy) {
        engine::set_restart_policy(docker, &plan.old_id, plan.restart_policy.clone()).await?;
    }
    if plan.was_running {
        step(JobStep::RollbackStartedOld).await?;
        engine::start_container(docker, &plan.old_id).await?;
    }
    Ok(())
}

async fn cleanup_image(env: &JobEnv, image_id: &str) {
    match engine::remove_image(&env.docker, image_id).await {
        Ok(()) => tracing::info!(image = image_id, "old image removed"),
        Err(DockerError::Conflict(_)) => tracing::debug!(image = image_id, "old image still in use; kept"),
        Err(e) => tracing::warn!(image = image_id, "cannot remove the old image: {e}"),
    }
}

/// Finishes or undoes a job a crash interrupted, from its journal and the
/// engine's state: past `verified` the replacement stands (its name is set
/// and the old container removed); before, everything is rolled back.
pub async fn recover(env: &JobEnv, record: &JobRecord) -> Result<JobResult, JobError> {
    let journal = Journal::new(&env.store, record.id.clone());
    let Ok(plan) = serde_json::from_str::<RecreatePlan>(&record.plan) else {
        // An outcome being recorded (no plan: nothing was ever changed).
        journal.finish(JobResult::Failed, Some("interrupted by a restart before any change".into())).await?;
        return Ok(JobResult::Failed);
    };
    let committed = matches!(record.step, JobStep::Verified | JobStep::RemovedOld);
    let outcome = if committed {
        commit(env, &plan, record.new_container_id.as_deref()).await.map(|()| JobResult::Updated)
    } else {
        roll_back(env, None, &plan, record.new_container_id.as_deref()).await.map(|()| JobResult::RolledBack)
    };
    let (result, error) = match &outcome {
        Ok(JobResult::Updated) => (JobResult::Updated, None),
        Ok(_) => (JobResult::RolledBack, Some(format!("interrupted at step {} by a restart", record.step.as_str()))),
        Err(e) => (JobResult::Failed, Some(format!("recovery after a restart failed: {e}"))),
    };
    journal.finish(result, error).await?;
    outcome
}

/// The replacement was verified before the crash: make sure it carries the
/// name and runs, and the old container is gone.
async fn commit(env: &JobEnv, plan: &RecreatePlan, new_id: Option<&str>) -> Result<(), JobError> {
    let docker = &env.docker;
    let new_id = new_id.ok_or_else(|| JobError::Other("the journal lost the replacement's id".into()))?;
    let new: ContainerDetails = engine::inspect_container(docker, new_id).await?;
    if new.name.as_deref().map(|n| n.trim_start_matches('/')) != Some(plan.name.as_str()) {
        engine::rename_container(docker, new_id, &plan.name).await?;
    }
    if new.state.as_ref().and_then(|s| s.running) != Some(true) {
        engine::start_container(docker, new_id).await?;
    }
    remove_if_present(docker, &plan.old_id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
