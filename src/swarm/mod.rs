//! Swarm services: the `Services` actor follows a manager engine's services
//! and runs their updates the Swarm way — a new image digest in the service
//! spec, rolled out and, on failure, rolled back by Swarm itself (one
//! [`update::ServiceUpdate`] actor per update). A task's container is never
//! recreated by a container job: Swarm would replace it again.

pub mod update;
pub mod view;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, WrapFuture};
use tokio::sync::broadcast;

use crate::docker::engine::{self, Docker};
use crate::docker::swarm::{self, ServiceInfo};
use crate::registry::config_source::DockerConfigSource;
use crate::store::Store;
use update::{ServiceProgress, ServiceUpdate};

/// How often the services are listed when nothing runs (their tasks and
/// replica counts change without shipshape).
pub const SERVICE_POLL: Duration = Duration::from_secs(10);

/// The services the manager knows now; `None` when the engine is no swarm
/// manager (or cannot be asked): no Services section then.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ServicesChanged(pub Option<Arc<Vec<ServiceInfo>>>);

/// Roll `service_id` out to `image` (`repo:tag@sha256:…`). A service whose
/// update runs already is left to it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), SwarmError>")]
pub struct UpdateService {
    pub service_id: String,
    pub service_name: String,
    pub image: String,
    /// The digest the service runs now (for the history).
    pub from_digest: Option<String>,
    pub automatic: bool,
}

/// The last progress of a service's update (kept a while after its end).
#[derive(Message)]
#[rtype(result = "Option<ServiceProgress>")]
pub struct GetServiceProgress {
    pub service_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("no swarm manager engine")]
    NoManager,
}

/// From a `ServiceUpdate`: how far it is; `done` at the end.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ServiceProgressed(pub ServiceProgress);

/// Lists again now (an update just changed things).
#[derive(Message)]
#[rtype(result = "()")]
struct Refresh;

pub struct Services {
    /// Every engine, by name (`SHIPSHAPE_DOCKER_HOSTS`): the first that is a
    /// swarm manager answers for the swarm.
    engines: Vec<(Arc<str>, Docker)>,
    inventory: Recipient<ServicesChanged>,
    store: Addr<Store>,
    events: broadcast::Sender<String>,
    docker_config: Arc<DockerConfigSource>,
    /// How long Swarm watches each updated task when the service sets nothing.
    monitor: Duration,
    last: Option<Arc<Vec<ServiceInfo>>>,
    /// Which engine is the manager asked, once one was found.
    manager: Option<usize>,
    running: HashSet<String>,
    progress: HashMap<String, ServiceProgress>,
    listing: bool,
    negotiated: HashSet<usize>,
}

impl Services {
    pub fn new(
        engines: Vec<(Arc<str>, Docker)>,
        inventory: Recipient<ServicesChanged>,
        store: Addr<Store>,
        events: broadcast::Sender<String>,
        docker_config: Arc<DockerConfigSource>,
        monitor: Duration,
    ) -> Self {
        Self {
            engines,
            inventory,
            store,
            events,
            docker_config,
            monitor,
            last: None,
            manager: None,
            running: HashSet::new(),
            progress: HashMap::new(),
            listing: false,
            negotiated: HashSet::new(),
        }
    }

    fn list(&mut self, ctx: &mut Context<Self>) {
        if self.listing {
            return;
        }
        self.listing = true;
        // The manager found last time first, then the others in order.
        let mut order: Vec<usize> = (0..self.engines.len()).collect();
        if let Some(known) = self.manager {
            order.retain(|i| *i != known);
            order.insert(0, known);
        }
        let engines: Vec<(usize, Docker, bool)> =
            order.into_iter().map(|i| (i, self.engines[i].1.clone(), self.negotiated.contains(&i))).collect();
        let fetch = async move {
            let (mut answered, mut last_error) = (Vec::new(), None);
            for (i, docker, negotiated) in engines {
                if !negotiated {
                    if let Err(e) = engine::negotiate(&docker).await {
                        last_error = Some(e);
                        continue;
                    }
                }
                answered.push(i);
                match swarm::is_manager(&docker).await {
                    Ok(true) => match swarm::services(&docker).await {
                        Ok(services) => return Ok((answered, Some((i, services)))),
                        Err(e) => last_error = Some(e),
                    },
                    Ok(false) => {}
                    Err(e) => last_error = Some(e),
                }
            }
            match last_error {
                // No engine said anything: keep what was known.
                Some(e) if answered.is_empty() => Err(e),
                _ => Ok((answered, None)),
            }
        };
        ctx.spawn(fetch.into_actor(self).map(|listed, this, _| {
            this.listing = false;
            let services = match listed {
                Ok((answered, found)) => {
                    this.negotiated.extend(answered);
                    this.manager = found.as_ref().map(|(i, _)| *i);
                    found.map(|(i, mut services)| {
                        let host = this.engines.get(i).map(|(name, _)| name.to_string()).unwrap_or_default();
                        services.iter_mut().for_each(|s| s.host.clone_from(&host));
                        services
                    })
                }
                Err(e) => {
                    // The watchers report the engines' state; keep the last list.
                    tracing::debug!("services not listed: {e}");
                    return;
                }
            };
            let services = services.map(|mut s| {
                s.sort_by(|a, b| a.name.cmp(&b.name));
                Arc::new(s)
            });
            if services != this.last {
                this.last = services.clone();
                this.inventory.do_send(ServicesChanged(services));
            }
        }));
    }
}

impl Actor for Services {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.list(ctx);
        ctx.run_interval(SERVICE_POLL, |this, ctx| this.list(ctx));
    }
}

impl Handler<Refresh> for Services {
    type Result = ();
    fn handle(&mut self, _: Refresh, ctx: &mut Context<Self>) {
        self.list(ctx);
    }
}

impl Handler<UpdateService> for Services {
    type Result = Result<(), SwarmError>;

    fn handle(&mut self, msg: UpdateService, ctx: &mut Context<Self>) -> Self::Result {
        let Some((host, docker)) = self.manager.and_then(|i| self.engines.get(i)).cloned() else {
            return Err(SwarmError::NoManager);
        };
        if !self.running.insert(msg.service_id.clone()) {
            return Ok(());
        }
        tracing::info!(service = %msg.service_name, to = %msg.image, automatic = msg.automatic, "service update");
        let first = ServiceProgress::started(&msg);
        self.progress.insert(msg.service_id.clone(), first.clone());
        let _ = self.events.send(first.ws_message());
        ServiceUpdate {
            host,
            docker,
            store: self.store.clone(),
            docker_config: Arc::clone(&self.docker_config),
            monitor: self.monitor,
            request: msg,
            parent: ctx.address(),
        }
        .start();
        Ok(())
    }
}

impl Handler<ServiceProgressed> for Services {
    type Result = ();
    fn handle(&mut self, ServiceProgressed(progress): ServiceProgressed, ctx: &mut Context<Self>) {
        let _ = self.events.send(progress.ws_message());
        // The tasks change as the update goes: list them with each step.
        self.list(ctx);
        if progress.done {
            self.running.remove(&progress.service_id);
            if let Some(entry) = &progress.history {
                let _ = self.events.send(serde_json::json!({ "type": "history", "data": entry }).to_string());
            }
            ctx.notify(Refresh);
        }
        self.progress.insert(progress.service_id.clone(), progress);
    }
}

impl Handler<GetServiceProgress> for Services {
    type Result = Option<ServiceProgress>;
    fn handle(&mut self, msg: GetServiceProgress, _: &mut Context<Self>) -> Self::Result {
        self.progress.get(&msg.service_id).cloned()
    }
}
