//! The `RegistryPoller` actor: told about every image reference the engine
//! runs, it will check each against its registry (see the registry-checks issue).

use actix::{Actor, Context, Handler, Message};

use super::reference::ImageRef;

/// The distinct references of the running containers, sent whenever the set changes.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ImagesSeen(pub Vec<ImageRef>);

#[derive(Default)]
pub struct RegistryPoller {
    images: Vec<ImageRef>,
}

impl Actor for RegistryPoller {
    type Context = Context<Self>;
}

impl Handler<ImagesSeen> for RegistryPoller {
    type Result = ();
    fn handle(&mut self, ImagesSeen(images): ImagesSeen, _: &mut Context<Self>) {
        tracing::debug!(count = images.len(), "images to check");
        self.images = images;
    }
}
