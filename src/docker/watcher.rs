//! The `DockerWatcher` actor: keeps one engine's snapshot current from its
//! event stream, and re-lists only when it (re)connects. There is one per
//! engine, each with its own reconnects, backoff and connection state.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient, WrapFuture};
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptions;
use bollard::Docker;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;

use super::engine::{self, DockerError};
use super::hosts::Engine;
use super::model::{Container, EngineSnapshot, Image};

/// Sent to the subscriber (the inventory) each time an engine's snapshot
/// changes: every container in it carries `host`.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct EngineChanged {
    pub host: Arc<str>,
    pub snapshot: Arc<EngineSnapshot>,
}

/// One change the event loop learnt; applied by the actor, in order.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum EngineChange {
    /// A fresh listing after a (re)connect replaces everything.
    Replace(EngineSnapshot),
    UpsertContainer(Container),
    RemoveContainer(String),
    UpsertImage(Image),
    RemoveImage(String),
}

/// Whether the engine answers, as `GET /api/engine` and the websocket's
/// `engine` message show it: the snapshot is kept while it does not, so the
/// view says it may be stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineState {
    pub connected: bool,
    /// When `connected` last changed (or the watcher started), RFC 3339 UTC.
    pub since: String,
    /// Why the engine is unreachable; `null` while connected.
    pub error: Option<String>,
    /// The engine's version and API version, as it last reported them.
    pub version: Option<String>,
    pub api_version: Option<String>,
    /// Not known yet: no attempt has ended. Connecting from here at start is
    /// not news for the websocket.
    #[serde(skip)]
    pub initial: bool,
}

impl Default for EngineState {
    fn default() -> Self {
        Self {
            connected: false,
            since: crate::registry::check::rfc3339(SystemTime::now()),
            error: Some("not connected yet".into()),
            version: None,
            api_version: None,
            initial: true,
        }
    }
}

pub type EngineStateReceiver = watch::Receiver<EngineState>;

/// How much an engine runs and keeps, as its last snapshot says (`GET /api/hosts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Running containers.
    pub containers: usize,
    /// Local images.
    pub images: usize,
}

/// What one engine's watcher publishes, with the engine's name and address:
/// everything `GET /api/hosts` and the websocket say about an engine.
#[derive(Debug, Clone)]
pub struct EngineWatch {
    pub name: Arc<str>,
    pub url: String,
    pub state: EngineStateReceiver,
    pub counts: watch::Receiver<Counts>,
}

/// Applies what the last attempt learnt; answers whether anything changed.
/// `since` moves only when `connected` flips, so a new error message while
/// the engine stays away is not a new outage.
fn update_state(
    state: &mut EngineState,
    outcome: Result<(Option<String>, Option<String>), String>,
    now: SystemTime,
) -> bool {
    let next = match outcome {
        Ok((version, api_version)) => {
            EngineState { connected: true, error: None, version, api_version, ..state.clone() }
        }
        Err(error) => EngineState { connected: false, error: Some(error), ..state.clone() },
    };
    let next = if next.connected != state.connected {
        EngineState { since: crate::registry::check::rfc3339(now), ..next }
    } else {
        next
    };
    if next == *state {
        return false;
    }
    *state = next;
    true
}

pub struct DockerWatcher {
    engine: Engine,
    snapshot: EngineSnapshot,
    subscriber: Recipient<EngineChanged>,
    state: Option<watch::Sender<EngineState>>,
    counts: Option<watch::Sender<Counts>>,
}

impl DockerWatcher {
    pub fn new(engine: Engine, subscriber: Recipient<EngineChanged>) -> Self {
        Self { engine, snapshot: EngineSnapshot::default(), subscriber, state: None, counts: None }
    }

    /// Publishes the engine's connection state and counts on channels; answers their receivers.
    pub fn with_state(mut self) -> (Self, EngineWatch) {
        let (state, state_rx) = watch::channel(EngineState::default());
        let (counts, counts_rx) = watch::channel(Counts::default());
        self.state = Some(state);
        self.counts = Some(counts);
        let name = Arc::clone(&self.engine.name);
        let published = EngineWatch { name, url: self.engine.url.clone(), state: state_rx, counts: counts_rx };
        (self, published)
    }
}

impl Actor for DockerWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let state = self.state.take().unwrap_or_else(|| watch::channel(EngineState::default()).0);
        let watch = watch_forever(self.engine.clone(), ctx.address(), state);
        ctx.spawn(watch.into_actor(self).map(|_, _, _| ()));
    }
}

impl Handler<EngineChange> for DockerWatcher {
    type Result = ();

    fn handle(&mut self, change: EngineChange, _: &mut Context<Self>) {
        if apply(&mut self.snapshot, stamped(change, &self.engine.name)) {
            if let Some(counts) = &self.counts {
                let now = Counts { containers: self.snapshot.containers.len(), images: self.snapshot.images.len() };
                counts.send_if_modified(|c| std::mem::replace(c, now) != now);
            }
            let snapshot = Arc::new(self.snapshot.clone());
            self.subscriber.do_send(EngineChanged { host: Arc::clone(&self.engine.name), snapshot });
        }
    }
}

/// The change with every container it carries marked as this engine's.
fn stamped(change: EngineChange, host: &str) -> EngineChange {
    let mark = |mut c: Container| {
        if c.host != host {
            c.host = host.to_string();
        }
        c
    };
    match change {
        EngineChange::Replace(mut snapshot) => {
            snapshot.containers = snapshot.containers.into_iter().map(|(id, c)| (id, mark(c))).collect();
            EngineChange::Replace(snapshot)
        }
        EngineChange::UpsertContainer(c) => EngineChange::UpsertContainer(mark(c)),
        other => other,
    }
}

/// Applies a change; returns whether the snapshot is now different.
fn apply(snapshot: &mut EngineSnapshot, change: EngineChange) -> bool {
    match change {
        EngineChange::Replace(new) => {
            let changed = *snapshot != new;
            *snapshot = new;
            changed
        }
        EngineChange::UpsertContainer(c) => snapshot.containers.insert(c.id.clone(), c.clone()) != Some(c),
        EngineChange::RemoveContainer(id) => snapshot.containers.remove(&id).is_some(),
        EngineChange::UpsertImage(i) => snapshot.images.insert(i.id.clone(), i.clone()) != Some(i),
        EngineChange::RemoveImage(id) => snapshot.images.remove(&id).is_some(),
    }
}

/// Doubling delays between reconnects, capped low enough that a restarted
/// daemon is seen again within a couple of seconds.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(2);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
    fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        now
    }
}

async fn watch_forever(engine: Engine, me: Addr<DockerWatcher>, state: watch::Sender<EngineState>) {
    let mut backoff = Backoff::new();
    let mut was_connected = true;
    let name = &engine.name;
    loop {
        match watch_once(&engine.docker, name, &me, &mut backoff, &state).await {
            Ok(()) => tracing::warn!(engine = %name, "docker event stream ended; reconnecting"),
            Err(e) => {
                if was_connected {
                    tracing::warn!(engine = %name, "{e}; retrying with backoff");
                } else {
                    tracing::debug!(engine = %name, "{e}; retrying");
                }
                state.send_if_modified(|s| update_state(s, Err(e.to_string()), SystemTime::now()));
            }
        }
        was_connected = backoff.next == Backoff::FIRST;
        tokio::time::sleep(backoff.step()).await;
    }
}

/// One connection: subscribe, list, then follow events until the stream ends.
async fn watch_once(
    docker: &Docker,
    name: &str,
    me: &Addr<DockerWatcher>,
    backoff: &mut Backoff,
    state: &watch::Sender<EngineState>,
) -> Result<(), DockerError> {
    engine::negotiate(docker).await?;
    // The stream only connects when first polled, so ask it to replay from a
    // second before the listing: nothing between list and subscribe is missed,
    // and replayed events are harmless because handling them is idempotent.
    let since = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs().saturating_sub(1));
    let mut events = engine::events(docker, EventsOptions { since: Some(since.to_string()), ..Default::default() });
    let snapshot = engine::snapshot(docker).await?;
    tracing::info!(
        engine = name,
        containers = snapshot.containers.len(),
        images = snapshot.images.len(),
        "docker engine listed"
    );
    me.do_send(EngineChange::Replace(snapshot));
    let version = engine::version(docker).await.unwrap_or_default();
    state.send_if_modified(|s| update_state(s, Ok(version), SystemTime::now()));
    backoff.reset();
    while let Some(event) = events.next().await {
        if let Some(change) = change_for(docker, event?).await? {
            me.do_send(change);
        }
    }
    Ok(())
}

/// What an event means for the snapshot, looking the object up where the
/// event alone does not say enough (a started container's image id).
async fn change_for(docker: &Docker, event: EventMessage) -> Result<Option<EngineChange>, DockerError> {
    let Some(id) = event.actor.and_then(|a| a.id) else { return Ok(None) };
    let action = event.action.unwrap_or_default();
    Ok(match event.typ {
        Some(EventMessageTypeEnum::CONTAINER) => match action.as_str() {
            "die" | "stop" | "destroy" => Some(EngineChange::RemoveContainer(id)),
            "pause" => None,
            _ => Some(match engine::container(docker, &id).await? {
                Some(c) => EngineChange::UpsertContainer(c),
                None => EngineChange::RemoveContainer(id),
            }),
        },
        Some(EventMessageTypeEnum::IMAGE) => match action.as_str() {
            "delete" => Some(EngineChange::RemoveImage(id)),
            _ => match engine::image(docker, &id).await? {
                Some(i) => Some(EngineChange::UpsertImage(i)),
                None if id.starts_with("sha256:") => Some(EngineChange::RemoveImage(id)),
                None => None,
            },
        },
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, name: &str) -> Container {
        Container {
            id: id.into(),
            name: name.into(),
            image_ref: "x".into(),
            image_id: "sha256:1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn apply_reports_only_real_changes() {
        let mut s = EngineSnapshot::default();
        assert!(apply(&mut s, EngineChange::UpsertContainer(container("a", "one"))));
        assert!(!apply(&mut s, EngineChange::UpsertContainer(container("a", "one"))));
        assert!(apply(&mut s, EngineChange::UpsertContainer(container("a", "renamed"))));
        assert!(apply(&mut s, EngineChange::RemoveContainer("a".into())));
        assert!(!apply(&mut s, EngineChange::RemoveContainer("a".into())));
        let image = Image { id: "sha256:1".into(), ..Default::default() };
        assert!(apply(&mut s, EngineChange::UpsertImage(image.clone())));
        let same = s.clone();
        assert!(!apply(&mut s, EngineChange::Replace(same)));
        assert!(apply(&mut s, EngineChange::RemoveImage(image.id)));
    }

    #[test]
    fn every_container_a_change_carries_is_marked_with_the_engine() {
        let mut s = EngineSnapshot::default();
        s.containers.insert("a".into(), container("a", "one"));
        let EngineChange::Replace(s) = stamped(EngineChange::Replace(s), "nas") else { panic!("still a replace") };
        assert_eq!(s.containers["a"].host, "nas");
        let EngineChange::UpsertContainer(c) = stamped(EngineChange::UpsertContainer(container("b", "two")), "nas")
        else {
            panic!("still an upsert")
        };
        assert_eq!(c.host, "nas");
    }

    #[test]
    fn state_moves_since_only_when_the_connection_flips() {
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let mut s = EngineState::default();
        let up = || Ok((Some("28.0".to_string()), Some("1.48".to_string())));
        assert!(update_state(&mut s, up(), t(10)));
        assert!(s.connected && s.error.is_none() && s.since == "1970-01-01T00:00:10Z");
        assert!(!update_state(&mut s, up(), t(20)));
        assert!(update_state(&mut s, Err("gone".into()), t(30)));
        assert!(!s.connected && s.since == "1970-01-01T00:00:30Z" && s.error.as_deref() == Some("gone"));
        // The last known version stays; a new reason is news, but not a new outage.
        assert_eq!(s.version.as_deref(), Some("28.0"));
        assert!(update_state(&mut s, Err("still gone".into()), t(40)));
        assert_eq!(s.since, "1970-01-01T00:00:30Z");
        assert!(!update_state(&mut s, Err("still gone".into()), t(50)));
        assert!(update_state(&mut s, up(), t(60)));
        assert!(s.connected && s.since == "1970-01-01T00:01:00Z");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let steps: Vec<_> = (0..7).map(|_| b.step().as_millis()).collect();
        assert_eq!(steps, [100, 200, 400, 800, 1600, 2000, 2000]);
        b.reset();
        assert_eq!(b.step().as_millis(), 100);
    }
}
