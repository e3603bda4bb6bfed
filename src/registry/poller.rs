//! The `RegistryPoller` actor: checks every image reference the engines run
//! against its registry — at start, for each new image as soon as it is seen,
//! every poll interval, and on demand — never two checks of one image at once,
//! and one check per reference for all engines.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::{
    Actor, ActorFuture, ActorFutureExt, ActorStreamExt, AsyncContext, Context, Handler, Message, Recipient,
    ResponseFuture, WrapFuture,
};
use futures::channel::oneshot;
use futures::stream::{self, StreamExt};

use super::check::{check_each, merge, CheckOutcome, IgnoredRegistries};
use super::client::RegistryClient;
use super::config_source::DockerConfigSource;
use super::insecure::InsecureRegistries;
use super::messages::{RemoteChanged, RemoteStates, RepoTags, TagStates, TagsChanged};
use super::reference::ImageRef;
use super::versions_cache::{self, now_secs};
use crate::docker::engine::{self, Docker};
use crate::docker::model::RegistrySettings;
use crate::metrics::Metrics;
use crate::store::SaveRepoTags;

/// The distinct references of the running containers, sent whenever the set changes.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ImagesSeen(pub Vec<ImageRef>);

/// Check every current image now; resolves when all are done (including
/// checks that were already running when it arrived). With `tags`, every
/// repository's tags are listed again too, and it resolves once they are.
#[derive(Message, Debug, Default)]
#[rtype(result = "()")]
pub struct CheckNow {
    pub tags: bool,
}

/// A round of checks (digests, then the tags due) has ended for these
/// images (display names): what it found may start automatic updates.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RoundDone(pub Vec<String>);

/// Where the tag half of the checks reports, and how often it lists.
pub struct VersionsWiring {
    /// `None`: versions are off (`SHIPSHAPE_TAGS_INTERVAL=0`).
    pub interval: Option<Duration>,
    /// The listings kept from before (a restart does not list everything again).
    pub initial: TagStates,
    pub tags_to: Recipient<TagsChanged>,
    pub round_done: Recipient<RoundDone>,
    /// The store, which keeps listings across restarts (as JSON).
    pub keep: Recipient<SaveRepoTags>,
}

pub struct RegistryPoller {
    client: RegistryClient,
    /// Every engine: their registry settings decide what is spoken to over plain http.
    engines: Vec<Docker>,
    extra_insecure: Vec<String>,
    ignored: IgnoredRegistries,
    interval: Duration,
    inventory: Recipient<RemoteChanged>,
    images: Vec<ImageRef>,
    results: RemoteStates,
    /// Images being checked, with whoever waits for that check to end.
    in_flight: HashMap<String, Vec<oneshot::Sender<()>>>,
    /// Re-read before each round, so a later `docker login` counts.
    docker_config: Option<Arc<DockerConfigSource>>,
    metrics: Option<Metrics>,
    versions: Option<VersionsWiring>,
    tags: TagStates,
    /// Repositories whose tags are being listed or resolved.
    tags_in_flight: std::collections::HashSet<String>,
    /// `(repository, digest)` of `latest`s no version tag was found for.
    tags_tried: std::collections::HashSet<(String, String)>,
    /// Whether the client has been told which registries are insecure yet.
    insecure_told: bool,
}

impl RegistryPoller {
    pub fn new(
        client: RegistryClient,
        engines: Vec<Docker>,
        extra_insecure: Vec<String>,
        ignored: IgnoredRegistries,
        interval: Duration,
        inventory: Recipient<RemoteChanged>,
    ) -> Self {
        Self {
            client,
            engines,
            extra_insecure,
            ignored,
            interval,
            inventory,
            images: Vec::new(),
            results: RemoteStates::new(),
            in_flight: HashMap::new(),
            docker_config: None,
            metrics: None,
            versions: None,
            tags: TagStates::new(),
            tags_in_flight: Default::default(),
            tags_tried: Default::default(),
            insecure_told: false,
        }
    }

    /// Lists tags too (see [`versions_cache`]), and reports the end of each round.
    pub fn with_versions(mut self, mut wiring: VersionsWiring) -> Self {
        self.tags = std::mem::take(&mut wiring.initial);
        self.versions = Some(wiring);
        self
    }

    /// Follows the Docker config file: new credentials are used from the next check on.
    pub fn with_docker_config(mut self, source: Arc<DockerConfigSource>) -> Self {
        self.docker_config = Some(source);
        self
    }

    /// Counts checked images and times each round.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Starts checks of `images` not already in flight; the receivers fire
    /// when every one of them (started here or before) has finished.
    fn check(&mut self, images: Vec<ImageRef>, ctx: &mut Context<Self>) -> Vec<oneshot::Receiver<()>> {
        let mut done = Vec::new();
        let mut to_check = Vec::new();
        for image in images {
            let (tx, rx) = oneshot::channel();
            done.push(rx);
            match self.in_flight.get_mut(&image.display_name()) {
                Some(waiters) => waiters.push(tx),
                None => {
                    self.in_flight.insert(image.display_name(), vec![tx]);
                    to_check.push(image);
                }
            }
        }
        if to_check.is_empty() {
            return done;
        }
        let client = self.client.clone();
        let (engines, extra, ignored) = (self.engines.clone(), self.extra_insecure.clone(), self.ignored.clone());
        // The engines decide which registries may be spoken to over plain
        // http; ask them each round so configuration changes are picked up —
        // but only when it can matter: loopback and the configured extras are
        // insecure whatever an engine says, so a round of only those (or of
        // Docker Hub) waits for no engine's `/info`, however many engines.
        let without_engine = InsecureRegistries::without_engine(&extra);
        let ask_engines = without_engine.engine_may_add_to(&to_check);
        let first_told = !std::mem::replace(&mut self.insecure_told, true);
        let docker_config = self.docker_config.clone();
        let refresh_insecure = {
            let client = client.clone();
            async move {
                if let Some(source) = docker_config {
                    if let (config, true) = source.current() {
                        client.set_docker_config(config);
                    }
                }
                if !ask_engines {
                    if first_told {
                        client.set_insecure(without_engine);
                    }
                    return;
                }
                let answers = futures::future::join_all(engines.iter().map(engine::registry_settings)).await;
                let mut known = Vec::with_capacity(answers.len());
                for answer in answers {
                    match answer {
                        Ok(settings) => known.push(settings),
                        Err(e) => tracing::debug!("engine info unavailable: {e}"),
                    }
                }
                if known.is_empty() {
                    tracing::debug!("no engine info, keeping the insecure-registry list");
                    if first_told {
                        // Nothing known yet: at least what no engine can take away.
                        client.set_insecure(without_engine);
                    }
                } else {
                    let settings = RegistrySettings::merge(known);
                    client.set_insecure(InsecureRegistries::from_engine(&settings, &extra));
                }
            }
        };
        let checked = to_check.clone();
        let outcomes = stream::once(refresh_insecure)
            .flat_map(move |()| check_each(client.clone(), to_check.clone(), ignored.clone()));
        let (started, metrics) = (Instant::now(), self.metrics.clone());
        ctx.spawn(
            actix::fut::wrap_stream(outcomes)
                .map(|outcome, this: &mut Self, _| this.apply(outcome))
                .finish()
                .map(move |(), _, _| {
                    if let Some(metrics) = metrics {
                        metrics.check_finished(started.elapsed());
                    }
                })
                .then(move |(), this: &mut Self, _| this.refresh_versions(checked, false)),
        );
        done
    }

    /// Lists the tags due for `images`' repositories and resolves the
    /// digests of their `latest`s, then tells the inventory the round is
    /// over. Repositories already being refreshed are left to that refresh.
    fn refresh_versions(&mut self, images: Vec<ImageRef>, force: bool) -> impl ActorFuture<Self, Output = ()> {
        let names: Vec<String> = images.iter().map(ImageRef::display_name).collect();
        let work = match &self.versions {
            Some(VersionsWiring { interval: Some(interval), .. }) => {
                let pairs: Vec<(ImageRef, Option<String>)> = images
                    .into_iter()
                    .map(|i| {
                        let digest = self.results.get(&i.display_name()).and_then(|s| s.digest.clone());
                        (i, digest)
                    })
                    .collect();
                let now = now_secs(SystemTime::now());
                versions_cache::plan(&pairs, &self.tags, &self.tags_tried, *interval, now, force)
                    .into_iter()
                    .filter(|w| !self.tags_in_flight.contains(&w.repository))
                    .collect()
            }
            _ => Vec::new(),
        };
        for w in &work {
            self.tags_in_flight.insert(w.repository.clone());
            self.tags_tried.extend(w.resolve.iter().map(|d| (w.repository.clone(), d.clone())));
        }
        let client = self.client.clone();
        let previous: Vec<Option<Arc<RepoTags>>> = work.iter().map(|w| self.tags.get(&w.repository).cloned()).collect();
        let now = now_secs(SystemTime::now());
        let refreshed = async move {
            let jobs = work.iter().zip(previous).map(|(w, prev)| versions_cache::refresh(&client, w, prev, now));
            let states = futures::future::join_all(jobs).await;
            work.into_iter().map(|w| w.repository).zip(states).collect::<Vec<_>>()
        };
        refreshed.into_actor(self).map(move |states, this, _| {
            let mut changed = TagStates::new();
            for (repository, state) in states {
                this.tags_in_flight.remove(&repository);
                if this.tags.get(&repository).is_some_and(|s| **s == state) {
                    continue;
                }
                if state.listed_at.is_some() {
                    // A new listing: `latest`s not found in the old one get another chance.
                    this.tags_tried.retain(|(r, _)| *r != repository);
                }
                let state = Arc::new(state);
                this.tags.insert(repository.clone(), state.clone());
                changed.insert(repository, state);
            }
            let Some(wiring) = &this.versions else { return };
            for (repository, state) in &changed {
                match serde_json::to_string(&**state) {
                    Ok(data) => wiring.keep.do_send(SaveRepoTags { repository: repository.clone(), data }),
                    Err(e) => tracing::warn!(%repository, "cannot keep the tag listing: {e}"),
                }
            }
            if !changed.is_empty() {
                wiring.tags_to.do_send(TagsChanged(changed));
            }
            wiring.round_done.do_send(RoundDone(names));
        })
    }
}

impl RegistryPoller {
    /// Records one image's outcome, releases whoever waited for that check
    /// and tells the inventory.
    fn apply(&mut self, outcome: CheckOutcome) {
        let fresh = merge(&self.results, vec![outcome], SystemTime::now());
        for (key, state) in &fresh {
            for waiter in self.in_flight.remove(key).unwrap_or_default() {
                let _ = waiter.send(());
            }
            if let Some(error) = &state.error {
                tracing::info!(image = %key, "check failed: {error}");
            }
            if let Some(metrics) = &self.metrics {
                metrics.image_checked(state.error.is_none());
            }
        }
        self.results.extend(fresh.clone());
        self.inventory.do_send(RemoteChanged(fresh));
    }
}

impl Actor for RegistryPoller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(wiring) = &self.versions {
            if !self.tags.is_empty() {
                wiring.tags_to.do_send(TagsChanged(self.tags.clone()));
            }
        }
        ctx.run_interval(self.interval, |this, ctx| {
            let images = this.images.clone();
            this.check(images, ctx);
        });
    }
}

impl Handler<ImagesSeen> for RegistryPoller {
    type Result = ();

    fn handle(&mut self, ImagesSeen(images): ImagesSeen, ctx: &mut Context<Self>) {
        let new: Vec<ImageRef> = images
            .iter()
            .filter(|i| !self.images.contains(i) && !self.results.contains_key(&i.display_name()))
            .cloned()
            .collect();
        self.images = images;
        let current: std::collections::HashSet<String> = self.images.iter().map(ImageRef::display_name).collect();
        self.results.retain(|key, _| current.contains(key));
        if !new.is_empty() {
            tracing::debug!(count = new.len(), "checking newly seen images");
            self.check(new, ctx);
        }
    }
}

impl Handler<CheckNow> for RegistryPoller {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, CheckNow { tags }: CheckNow, ctx: &mut Context<Self>) -> Self::Result {
        let images = self.images.clone();
        let done = self.check(images.clone(), ctx);
        let me = ctx.address();
        Box::pin(async move {
            for rx in done {
                let _ = rx.await;
            }
            if tags {
                let _ = me.send(RefreshTags(images)).await;
            }
        })
    }
}

/// Lists every repository of `images` again and resolves their `latest`s;
/// resolves when done.
#[derive(Message)]
#[rtype(result = "()")]
struct RefreshTags(Vec<ImageRef>);

impl Handler<RefreshTags> for RegistryPoller {
    type Result = actix::ResponseActFuture<Self, ()>;

    fn handle(&mut self, RefreshTags(images): RefreshTags, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.refresh_versions(images, true))
    }
}
