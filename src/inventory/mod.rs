//! The `Inventory` actor joins what the other actors know — every engine's
//! snapshot, registry results, persisted flags — into the one view that the
//! API and the websocket serve. It publishes that view on a watch channel, so
//! readers never wait on the actor and never call Docker per request.

pub mod resolve;
pub mod scope;
pub mod view;
pub mod window;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient, ResponseActFuture, WrapFuture,
};
use actix_web::web::Bytes;
use tokio::sync::watch;

use crate::docker::model::{Container, EngineSnapshot};
use crate::docker::watcher::EngineChanged;
use crate::jobs::supervisor::StartUpdate;
use crate::registry::messages::{RemoteChanged, RemoteStates};
use crate::registry::poller::ImagesSeen;
use crate::store::{SetAutoUpdate, Store, StoreError};
use resolve::{ContainerRef, Resolved};
use scope::{Policy, Selection};
use view::{build_fleet, flag_key, references, without_excluded, Flags, ImageGroup};
use window::UpdateWindow;

/// How often at most a changed view is published (and so sent to websockets).
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(50);

/// The view as served: groups plus their ready-made encodings.
#[derive(Debug, Default)]
pub struct View {
    /// Every group of the instance's scope, excluded containers included (marked).
    pub groups: Vec<ImageGroup>,
    /// Body of `GET /api/images`: without excluded containers.
    pub json: Bytes,
    /// Body of `GET /api/images?all=1`.
    pub json_all: Bytes,
    /// The websocket `images` message.
    pub ws_message: String,
}

impl View {
    pub fn new(groups: Vec<ImageGroup>) -> Self {
        let encode = |g: &[ImageGroup]| serde_json::to_vec(g).unwrap_or_else(|_| b"[]".to_vec());
        let json_all = encode(&groups);
        let json = if groups.iter().any(|g| g.containers.iter().any(|c| c.excluded)) {
            encode(&without_excluded(&groups))
        } else {
            json_all.clone()
        };
        let mut ws_message = String::with_capacity(json.len() + 32);
        ws_message.push_str(r#"{"type":"images","data":"#);
        ws_message.push_str(std::str::from_utf8(&json).unwrap_or("[]"));
        ws_message.push('}');
        Self { groups, json: Bytes::from(json), json_all: Bytes::from(json_all), ws_message }
    }
}

pub type ViewReceiver = watch::Receiver<Arc<View>>;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("container not found")]
    ContainerNotFound,
    /// A short id that containers of two engines start with.
    #[error("ambiguous container id")]
    AmbiguousContainer,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Flips a container's auto-update flag; answers the new value.
#[derive(Message)]
#[rtype(result = "Result<bool, InventoryError>")]
pub struct ToggleAutoUpdate {
    pub container_id: String,
}

/// Looks a running container up by the id the API shows (12 chars or
/// more), optionally as `host:id`.
#[derive(Message)]
#[rtype(result = "Result<Container, InventoryError>")]
pub struct FindContainer {
    pub container_id: String,
}

/// A container this instance may act on, and what it may do with it.
#[derive(Message)]
#[rtype(result = "Result<(Container, Selection), InventoryError>")]
pub struct FindSelected {
    pub container_id: String,
}

/// The view with every change received so far in it, published now if a
/// publish was pending (so a caller that just sent a change sees it).
#[derive(Message)]
#[rtype(result = "Arc<View>")]
pub struct CurrentView;

pub struct Inventory {
    /// Each engine's last snapshot, by engine name.
    engines: BTreeMap<Arc<str>, Arc<EngineSnapshot>>,
    /// The first engine: its containers' flags are stored by bare name.
    primary: String,
    remote: RemoteStates,
    auto_update: HashMap<String, bool>,
    store: Addr<Store>,
    poller: Recipient<ImagesSeen>,
    updates: Recipient<StartUpdate>,
    publisher: watch::Sender<Arc<View>>,
    last_publish: Option<Instant>,
    publish_scheduled: bool,
    known_refs: Vec<String>,
    policy: Policy,
    window: Option<UpdateWindow>,
    window_was_open: bool,
}

impl Inventory {
    pub fn new(
        auto_update: HashMap<String, bool>,
        store: Addr<Store>,
        poller: Recipient<ImagesSeen>,
        updates: Recipient<StartUpdate>,
    ) -> (Self, ViewReceiver) {
        let (publisher, receiver) = watch::channel(Arc::new(View::new(Vec::new())));
        let inventory = Self {
            engines: BTreeMap::new(),
            primary: String::new(),
            remote: RemoteStates::new(),
            auto_update,
            store,
            poller,
            updates,
            publisher,
            last_publish: None,
            publish_scheduled: false,
            known_refs: Vec::new(),
            policy: Policy::default(),
            window: None,
            window_was_open: true,
        };
        (inventory, receiver)
    }

    /// The first configured engine, whose containers' flags are kept by name.
    pub fn with_primary(mut self, name: &str) -> Self {
        self.primary = name.to_string();
        self
    }

    /// The groups of every engine's containers, as they are now.
    fn groups(&self) -> Vec<ImageGroup> {
        let snapshots: Vec<&EngineSnapshot> = self.engines.values().map(|s| s.as_ref()).collect();
        let flags = Flags { stored: &self.auto_update, primary: &self.primary };
        build_fleet(&snapshots, &self.remote, flags, &self.policy)
    }

    /// Which containers are looked after, and when automatic updates may start.
    pub fn with_selection(mut self, policy: Policy, window: Option<UpdateWindow>) -> Self {
        self.window_was_open = window.as_ref().is_none_or(|w| w.is_open(std::time::SystemTime::now()));
        self.policy = policy;
        self.window = window;
        self
    }

    fn window_open(&self) -> bool {
        self.window.as_ref().is_none_or(|w| w.is_open(std::time::SystemTime::now()))
    }

    /// Publishes now if the last publish is old enough, else once the
    /// interval has passed: the first change after a quiet spell goes out at
    /// once and a burst of changes becomes one message.
    fn changed(&mut self, ctx: &mut Context<Self>) {
        if self.publish_scheduled {
            return;
        }
        let wait = self.last_publish.map_or(Duration::ZERO, |t| PUBLISH_INTERVAL.saturating_sub(t.elapsed()));
        if wait.is_zero() {
            self.publish();
        } else {
            self.publish_scheduled = true;
            ctx.run_later(wait, |this, _| {
                this.publish_scheduled = false;
                this.publish();
            });
        }
    }

    fn publish(&mut self) {
        self.last_publish = Some(Instant::now());
        let groups = self.groups();
        self.publisher.send_if_modified(|current| {
            if current.groups == groups {
                return false;
            }
            // A change only `?all=1` shows (an excluded container) is kept
            // but not announced: websockets never get an unchanged view.
            let view = View::new(groups);
            let visible_change = view.json != current.json;
            *current = Arc::new(view);
            visible_change
        });
    }

    /// A check just found these images' state: their containers with
    /// auto-update on that are outdated get updated. Only a check starts
    /// them (or the update window opening), so a failed update is retried
    /// at the next check, not in a loop. Outside the window nothing starts.
    /// Groups go dependencies first: with one automatic update at a time
    /// (the default) a dependency is updated before its dependants.
    fn start_auto_updates(&self, checked: &[String]) {
        if !self.window_open() {
            tracing::debug!("outside the update window: no automatic update starts");
            return;
        }
        // A check's results come one image at a time: look for a container
        // with auto-update on before building the whole fleet's view for each.
        let flags = Flags { stored: &self.auto_update, primary: &self.primary };
        let any_on = self
            .engines
            .values()
            .flat_map(|s| s.containers.values())
            .any(|c| flags.get(&c.host, &c.name).unwrap_or_else(|| scope::auto_update_default(&c.labels)));
        if !any_on {
            return;
        }
        let groups = self.groups();
        let mut updates: Vec<StartUpdate> = Vec::new();
        for group in groups.iter().filter(|g| checked.contains(&g.image)) {
            let targets: Vec<Container> = group
                .containers
                .iter()
                .filter(|c| c.auto_update && !c.excluded && !c.monitor_only && c.status == view::Status::Outdated)
                .filter_map(|c| self.find(&ContainerRef { host: Some(&c.host), id: &c.container_id }).one().cloned())
                .collect();
            let Some(image_ref) = targets.first().map(|c| c.image_ref.clone()) else { continue };
            tracing::info!(image = %group.image, containers = targets.len(), "auto-update");
            updates.push(StartUpdate { targets: scope::order_containers(targets), image_ref, automatic: true });
        }
        // Order the updates by where their first container comes in the
        // dependency order of all of them.
        let all: Vec<Container> = updates.iter().flat_map(|u| u.targets.iter().cloned()).collect();
        let rank: HashMap<String, usize> =
            scope::order_containers(all).into_iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        let first = |u: &StartUpdate| u.targets.iter().filter_map(|c| rank.get(&c.id)).min().copied();
        updates.sort_by_key(|u| first(u).unwrap_or(usize::MAX));
        for update in updates {
            self.updates.do_send(update);
        }
    }

    /// Re-reads the clock: when the window has just opened, what the last
    /// checks found outdated gets its automatic update now.
    fn watch_window(&mut self) {
        let open = self.window_open();
        if open && !self.window_was_open {
            tracing::info!("update window open");
            let checked: Vec<String> = self.remote.keys().cloned().collect();
            self.start_auto_updates(&checked);
        }
        self.window_was_open = open;
    }

    /// A running container of this instance's scope, on any engine.
    fn find(&self, target: &ContainerRef<'_>) -> Resolved<&Container> {
        let in_scope = self
            .engines
            .values()
            .flat_map(|s| s.containers.values())
            .filter(|c| scope::select(&self.policy, &c.labels) != Selection::OutOfScope);
        resolve::resolve(target, in_scope.map(|c| (c.host.as_str(), c.id.as_str(), c)))
    }

    fn find_text(&self, container_id: &str) -> Result<&Container, InventoryError> {
        match self.find(&ContainerRef::parse(container_id)) {
            Resolved::One(c) => Ok(c),
            Resolved::None => Err(InventoryError::ContainerNotFound),
            Resolved::Ambiguous => Err(InventoryError::AmbiguousContainer),
        }
    }
}

/// How often the update window is looked at.
const WINDOW_TICK: Duration = Duration::from_secs(10);

impl Actor for Inventory {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.window.is_some() {
            ctx.run_interval(WINDOW_TICK, |this, _| this.watch_window());
        }
    }
}

impl Handler<EngineChanged> for Inventory {
    type Result = ();
    fn handle(&mut self, EngineChanged { host, snapshot }: EngineChanged, ctx: &mut Context<Self>) {
        self.engines.insert(host, snapshot);
        // One reference for the whole fleet: the poller checks each once.
        let refs = references(self.engines.values().flat_map(|s| s.containers.values()), &self.policy);
        let names: Vec<String> = refs.iter().map(|r| r.display_name()).collect();
        if names != self.known_refs {
            self.known_refs = names;
            self.poller.do_send(ImagesSeen(refs));
        }
        self.changed(ctx);
    }
}

impl Handler<RemoteChanged> for Inventory {
    type Result = ();
    fn handle(&mut self, RemoteChanged(states): RemoteChanged, ctx: &mut Context<Self>) {
        let checked: Vec<String> = states.keys().cloned().collect();
        self.remote.extend(states);
        self.start_auto_updates(&checked);
        self.changed(ctx);
    }
}

impl Handler<CurrentView> for Inventory {
    type Result = Arc<View>;
    fn handle(&mut self, _: CurrentView, _: &mut Context<Self>) -> Self::Result {
        if self.publish_scheduled {
            self.publish();
        }
        self.publisher.borrow().clone()
    }
}

impl Handler<FindContainer> for Inventory {
    type Result = Result<Container, InventoryError>;
    fn handle(&mut self, msg: FindContainer, _: &mut Context<Self>) -> Self::Result {
        self.find_text(&msg.container_id).cloned()
    }
}

impl Handler<FindSelected> for Inventory {
    type Result = Result<(Container, Selection), InventoryError>;
    fn handle(&mut self, msg: FindSelected, _: &mut Context<Self>) -> Self::Result {
        let c = self.find_text(&msg.container_id)?;
        Ok((c.clone(), scope::select(&self.policy, &c.labels)))
    }
}

impl Handler<ToggleAutoUpdate> for Inventory {
    type Result = ResponseActFuture<Self, Result<bool, InventoryError>>;

    fn handle(&mut self, msg: ToggleAutoUpdate, _: &mut Context<Self>) -> Self::Result {
        let found = self
            .find_text(&msg.container_id)
            .map(|c| (flag_key(&self.primary, &c.host, &c.name), scope::auto_update_default(&c.labels)));
        let (name, default) = match found {
            Ok(found) => found,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        let enabled = !self.auto_update.get(&name).copied().unwrap_or(default);
        let save = self.store.send(SetAutoUpdate { container_name: name.clone(), enabled });
        Box::pin(save.into_actor(self).map(move |sent, this, ctx| {
            sent.map_err(|_| StoreError::Unavailable)??;
            this.auto_update.insert(name, enabled);
            this.changed(ctx);
            Ok(enabled)
        }))
    }
}
