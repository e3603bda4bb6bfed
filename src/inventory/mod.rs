//! The `Inventory` actor joins what the other actors know — the engine
//! snapshot, registry results, persisted flags — into the one view that the
//! API and the websocket serve. It publishes that view on a watch channel, so
//! readers never wait on the actor and never call Docker per request.

pub mod view;

use std::collections::HashMap;
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
use view::{build_groups, references, ImageGroup};

/// How often at most a changed view is published (and so sent to websockets).
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(50);

/// The view as served: groups plus their ready-made encodings.
#[derive(Debug, Default)]
pub struct View {
    pub groups: Vec<ImageGroup>,
    /// Body of `GET /api/images`.
    pub json: Bytes,
    /// The websocket `images` message.
    pub ws_message: String,
}

impl View {
    pub fn new(groups: Vec<ImageGroup>) -> Self {
        let json = serde_json::to_vec(&groups).unwrap_or_else(|_| b"[]".to_vec());
        let mut ws_message = String::with_capacity(json.len() + 32);
        ws_message.push_str(r#"{"type":"images","data":"#);
        ws_message.push_str(std::str::from_utf8(&json).unwrap_or("[]"));
        ws_message.push('}');
        Self { groups, json: Bytes::from(json), ws_message }
    }
}

pub type ViewReceiver = watch::Receiver<Arc<View>>;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("container not found")]
    ContainerNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Flips a container's auto-update flag; answers the new value.
#[derive(Message)]
#[rtype(result = "Result<bool, InventoryError>")]
pub struct ToggleAutoUpdate {
    pub container_id: String,
}

/// Looks a running container up by the id the API shows (12 chars or more).
#[derive(Message)]
#[rtype(result = "Option<Container>")]
pub struct FindContainer {
    pub container_id: String,
}

/// The view with every change received so far in it, published now if a
/// publish was pending (so a caller that just sent a change sees it).
#[derive(Message)]
#[rtype(result = "Arc<View>")]
pub struct CurrentView;

pub struct Inventory {
    engine: Arc<EngineSnapshot>,
    remote: RemoteStates,
    auto_update: HashMap<String, bool>,
    store: Addr<Store>,
    poller: Recipient<ImagesSeen>,
    updates: Recipient<StartUpdate>,
    publisher: watch::Sender<Arc<View>>,
    last_publish: Option<Instant>,
    publish_scheduled: bool,
    known_refs: Vec<String>,
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
            engine: Arc::default(),
            remote: RemoteStates::new(),
            auto_update,
            store,
            poller,
            updates,
            publisher,
            last_publish: None,
            publish_scheduled: false,
            known_refs: Vec::new(),
        };
        (inventory, receiver)
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
        let groups = build_groups(&self.engine, &self.remote, &self.auto_update);
        self.publisher.send_if_modified(|current| {
            if current.groups == groups {
                return false;
            }
            *current = Arc::new(View::new(groups));
            true
        });
    }

    /// A check just found these images' state: their containers with
    /// auto-update on that are outdated get updated. Only a check starts
    /// them, so a failed update is retried at the next check, not in a loop.
    fn start_auto_updates(&self, checked: &[String]) {
        let groups = build_groups(&self.engine, &self.remote, &self.auto_update);
        for group in groups.iter().filter(|g| checked.contains(&g.image)) {
            let targets: Vec<Container> = group
                .containers
                .iter()
                .filter(|c| c.auto_update && c.status == view::Status::Outdated)
                .filter_map(|c| self.find(&c.container_id).cloned())
                .collect();
            let Some(image_ref) = targets.first().map(|c| c.image_ref.clone()) else { continue };
            tracing::info!(image = %group.image, containers = targets.len(), "auto-update");
            self.updates.do_send(StartUpdate { targets, image_ref, automatic: true });
        }
    }

    fn find(&self, container_id: &str) -> Option<&Container> {
        if container_id.len() < 12 {
            return None;
        }
        self.engine.containers.values().find(|c| c.id.starts_with(container_id))
    }
}

impl Actor for Inventory {
    type Context = Context<Self>;
}

impl Handler<EngineChanged> for Inventory {
    type Result = ();
    fn handle(&mut self, EngineChanged(snapshot): EngineChanged, ctx: &mut Context<Self>) {
        self.engine = snapshot;
        let refs = references(self.engine.containers.values());
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
    type Result = Option<Container>;
    fn handle(&mut self, msg: FindContainer, _: &mut Context<Self>) -> Self::Result {
        self.find(&msg.container_id).cloned()
    }
}

impl Handler<ToggleAutoUpdate> for Inventory {
    type Result = ResponseActFuture<Self, Result<bool, InventoryError>>;

    fn handle(&mut self, msg: ToggleAutoUpdate, _: &mut Context<Self>) -> Self::Result {
        let Some(name) = self.find(&msg.container_id).map(|c| c.name.clone()) else {
            return Box::pin(actix::fut::ready(Err(InventoryError::ContainerNotFound)));
        };
        let enabled = !self.auto_update.get(&name).copied().unwrap_or(false);
        let save = self.store.send(SetAutoUpdate { container_name: name.clone(), enabled });
        Box::pin(save.into_actor(self).map(move |sent, this, ctx| {
            sent.map_err(|_| StoreError::Unavailable)??;
            this.auto_update.insert(name, enabled);
            this.changed(ctx);
            Ok(enabled)
        }))
    }
}
