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
use crate::docker::swarm::ServiceInfo;
use crate::docker::watcher::EngineChanged;
use crate::jobs::supervisor::StartUpdate;
use crate::registry::messages::{RemoteChanged, RemoteStates, TagStates, TagsChanged};
use crate::registry::poller::{ImagesSeen, RoundDone};
use crate::registry::reference::{self, ImageRef};
use crate::store::{SetAutoUpdate, Store, StoreError};
use crate::swarm::{self, view::build_services, view::ServiceItem, ServicesChanged, UpdateService};
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
    /// Swarm services, when the engine is a swarm manager (`None` otherwise).
    pub services: Option<Vec<ServiceItem>>,
    /// Body of `GET /api/services`.
    pub services_json: Bytes,
    /// Body of `GET /api/images`: without excluded containers.
    pub json: Bytes,
    /// Body of `GET /api/images?all=1`.
    pub json_all: Bytes,
    /// The websocket `images` message.
    pub ws_message: String,
}

impl View {
    pub fn new(groups: Vec<ImageGroup>) -> Self {
        Self::with_services(groups, None)
    }

    pub fn with_services(groups: Vec<ImageGroup>, services: Option<Vec<ServiceItem>>) -> Self {
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
        let services_json =
            serde_json::to_vec(services.as_deref().unwrap_or_default()).unwrap_or_else(|_| b"[]".to_vec());
        Self {
            groups,
            services,
            services_json: Bytes::from(services_json),
            json: Bytes::from(json),
            json_all: Bytes::from(json_all),
            ws_message,
        }
    }

    /// The websocket `services` message; `data` is `null` when the engine
    /// is no (longer a) swarm manager.
    pub fn ws_services_message(&self) -> String {
        match (&self.services, std::str::from_utf8(&self.services_json)) {
            (Some(_), Ok(json)) => format!(r#"{{"type":"services","data":{json}}}"#),
            _ => r#"{"type":"services","data":null}"#.to_string(),
        }
    }
}

pub type ViewReceiver = watch::Receiver<Arc<View>>;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("container not found")]
    ContainerNotFound,
    #[error("service not found")]
    ServiceNotFound,
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
    tags: TagStates,
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
    services: Option<Arc<Vec<ServiceInfo>>>,
    service_updates: Option<Recipient<UpdateService>>,
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
            tags: TagStates::new(),
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
            services: None,
            service_updates: None,
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
        build_fleet(&snapshots, &self.remote, &self.tags, flags, &self.policy)
    }

    /// Which containers are looked after, and when automatic updates may start.
    pub fn with_selection(mut self, policy: Policy, window: Option<UpdateWindow>) -> Self {
        self.window_was_open = window.as_ref().is_none_or(|w| w.is_open(std::time::SystemTime::now()));
        self.policy = policy;
        self.window = window;
        self
    }

    /// Where automatic service updates go.
    pub fn with_services(mut self, updates: Recipient<UpdateService>) -> Self {
        self.service_updates = Some(updates);
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
        let services = self.services.as_ref().map(|s| build_services(s, &self.remote, &self.auto_update));
        self.publisher.send_if_modified(|current| {
            if current.groups == groups && current.services == services {
                return false;
            }
            // A change only `?all=1` shows (an excluded container) is kept
            // but not announced: websockets never get an unchanged view.
            let view = View::with_services(groups, services);
            let visible_change = view.json != current.json || view.services_json != current.services_json;
            *current = Arc::new(view);
            visible_change
        });
    }

    /// The references to check: the containers' and the services' tags.
    fn references(&self) -> Vec<ImageRef> {
        let mut refs = references(self.engines.values().flat_map(|s| s.containers.values()), &self.policy);
        for service in self.services.iter().flat_map(|s| s.iter()) {
            if let Some(followed) = swarm::view::followed(service) {
                if !refs.iter().any(|r| r.display_name() == followed.display_name()) {
                    refs.push(followed);
                }
            }
        }
        refs.sort_by_key(ImageRef::display_name);
        refs
    }

    fn references_changed(&mut self) {
        let refs = self.references();
        let names: Vec<String> = refs.iter().map(|r| r.display_name()).collect();
        if names != self.known_refs {
            self.known_refs = names;
            self.poller.do_send(ImagesSeen(refs));
        }
    }

    /// Services whose tag a check found moved, with auto-update on, roll out.
    fn start_service_updates(&self, checked: &[String]) {
        let (Some(services), Some(updates)) = (&self.services, &self.service_updates) else { return };
        for item in build_services(services, &self.remote, &self.auto_update) {
            if item.auto_update && item.status == view::Status::Outdated && checked.contains(&item.image) {
                if let Some(image) = item.target {
                    updates.do_send(UpdateService {
                        service_id: item.id,
                        service_name: item.name,
                        image,
                        from_digest: item.pinned,
                        automatic: true,
                    });
                }
            }
        }
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
            // Each container goes as far as its policy lets it: the newest
            // allowed tag, else its own tag's new digest. One update per target tag.
            let mut by_tag: std::collections::BTreeMap<Option<String>, Vec<Container>> = Default::default();
            for item in group.containers.iter().filter(|c| c.auto_update && !c.excluded && !c.monitor_only) {
                let to_tag = group.versions.newer.for_policy(item.update_policy).map(String::from);
                if to_tag.is_none() && item.status != view::Status::Outdated {
                    continue;
                }
                let found = self.find(&ContainerRef { host: Some(&item.host), id: &item.container_id }).one().cloned();
                if let Some(container) = found {
                    by_tag.entry(to_tag).or_default().push(container);
                }
            }
            for (to_tag, targets) in by_tag {
                let Some(first) = targets.first() else { continue };
                let image_ref = match &to_tag {
                    Some(tag) => reference::with_tag(&first.image_ref, tag),
                    None => first.image_ref.clone(),
                };
                tracing::info!(image = %group.image, to = %image_ref, containers = targets.len(), "auto-update");
                updates.push(StartUpdate {
                    targets: scope::order_containers(targets),
                    image_ref,
                    automatic: true,
                    to_tag,
                });
            }
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
        self.references_changed();
        self.changed(ctx);
    }
}

impl Handler<RemoteChanged> for Inventory {
    type Result = ();
    fn handle(&mut self, RemoteChanged(states): RemoteChanged, ctx: &mut Context<Self>) {
        self.remote.extend(states);
        self.changed(ctx);
    }
}

impl Handler<TagsChanged> for Inventory {
    type Result = ();
    fn handle(&mut self, TagsChanged(states): TagsChanged, ctx: &mut Context<Self>) {
        self.tags.extend(states);
        self.changed(ctx);
    }
}

/// Automatic updates start when a round has ended, with both its digests
/// and its tags known: a container whose policy allows a newer tag is not
/// first updated on its old tag's digest.
impl Handler<RoundDone> for Inventory {
    type Result = ();
    fn handle(&mut self, RoundDone(checked): RoundDone, _: &mut Context<Self>) {
        self.start_auto_updates(&checked);
        if self.window_open() {
            self.start_service_updates(&checked);
        }
    }
}

impl Handler<ServicesChanged> for Inventory {
    type Result = ();
    fn handle(&mut self, ServicesChanged(services): ServicesChanged, ctx: &mut Context<Self>) {
        self.services = services;
        self.references_changed();
        self.changed(ctx);
    }
}

/// Flips a service's auto-update flag; answers the new value.
#[derive(Message)]
#[rtype(result = "Result<bool, InventoryError>")]
pub struct ToggleServiceAutoUpdate {
    pub service_id: String,
}

impl Handler<ToggleServiceAutoUpdate> for Inventory {
    type Result = ResponseActFuture<Self, Result<bool, InventoryError>>;

    fn handle(&mut self, msg: ToggleServiceAutoUpdate, _: &mut Context<Self>) -> Self::Result {
        let found = self
            .services
            .as_ref()
            .and_then(|s| s.iter().find(|s| s.id == msg.service_id))
            .map(|s| (swarm::view::toggle_key(&s.name), scope::auto_update_default(&s.labels)));
        let Some((key, default)) = found else {
            return Box::pin(actix::fut::ready(Err(InventoryError::ServiceNotFound)));
        };
        let enabled = !self.auto_update.get(&key).copied().unwrap_or(default);
        let save = self.store.send(SetAutoUpdate { container_name: key.clone(), enabled });
        Box::pin(save.into_actor(self).map(move |sent, this, ctx| {
            sent.map_err(|_| StoreError::Unavailable)??;
            this.auto_update.insert(key, enabled);
            this.changed(ctx);
            Ok(enabled)
        }))
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
