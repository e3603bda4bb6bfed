//! The `Notifier` actor tells the user's chat, push or mail service about new
//! versions and ended updates (`SHIPSHAPE_NOTIFY`, shoutrrr URLs).
//!
//! Nothing waits for it: events arrive by `do_send` or from the published
//! view, and every send runs in a task of its own with bounded retries, so a
//! slow or dead receiver costs a check or an update nothing. Failures are
//! logged under the target's redacted name and never stop anything.

pub mod message;
pub mod send;
pub mod target;

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Handler, Message, ResponseFuture};
use serde::Serialize;

use crate::inventory::{View, ViewReceiver};
use crate::jobs::supervisor::UpdateEnded;
use message::{new_versions, worth_telling, Event};
use send::Retry;
use target::Target;

/// Sends a test message to every target at once; answers per target.
#[derive(Message)]
#[rtype(result = "Vec<TestResult>")]
pub struct SendTest;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TestResult {
    /// The target's URL with its secrets replaced by `***`.
    pub target: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// A new view was published (from the notifier's own view watcher).
#[derive(Message)]
#[rtype(result = "()")]
struct ViewPublished(Arc<View>);

pub struct Notifier {
    targets: Arc<Vec<Target>>,
    http: reqwest::Client,
    retry: Retry,
    view: Option<ViewReceiver>,
    /// The remote digest last told per image.
    announced: HashMap<String, String>,
}

impl Notifier {
    pub fn new(targets: Vec<Target>, view: ViewReceiver) -> Result<Self, String> {
        for t in &targets {
            tracing::info!(target = %t.redacted, "notifications go to");
        }
        Ok(Self {
            targets: Arc::new(targets),
            http: send::http_client()?,
            retry: Retry::default(),
            view: Some(view),
            announced: HashMap::new(),
        })
    }

    fn tell(&self, event: Event) {
        for target in self.targets.iter().cloned() {
            let (http, event, retry) = (self.http.clone(), event.clone(), self.retry);
            actix::spawn(async move {
                match send::deliver(&http, &target, &event, retry).await {
                    Ok(()) => tracing::debug!(target = %target.redacted, event = event.kind(), "notification sent"),
                    Err(e) => {
                        tracing::warn!(target = %target.redacted, event = event.kind(), "notification not sent: {e}")
                    }
                }
            });
        }
    }
}

impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(mut view) = self.view.take() else { return };
        if self.targets.is_empty() {
            return;
        }
        let me = ctx.address();
        actix::spawn(async move {
            // The view as it is now counts as published too: an image already
            // outdated at start is told once.
            let mut current = view.borrow_and_update().clone();
            loop {
                if !me.connected() {
                    return;
                }
                me.do_send(ViewPublished(current));
                if view.changed().await.is_err() {
                    return;
                }
                current = view.borrow_and_update().clone();
            }
        });
    }
}

impl Handler<ViewPublished> for Notifier {
    type Result = ();
    fn handle(&mut self, ViewPublished(view): ViewPublished, _: &mut Context<Self>) {
        for event in new_versions(&view.groups, &mut self.announced) {
            self.tell(event);
        }
    }
}

impl Handler<UpdateEnded> for Notifier {
    type Result = ();
    fn handle(&mut self, UpdateEnded(entry): UpdateEnded, _: &mut Context<Self>) {
        if worth_telling(&entry) {
            self.tell(Event::UpdateEnded(entry));
        }
    }
}

impl Handler<SendTest> for Notifier {
    type Result = ResponseFuture<Vec<TestResult>>;
    fn handle(&mut self, _: SendTest, _: &mut Context<Self>) -> Self::Result {
        let (targets, http) = (Arc::clone(&self.targets), self.http.clone());
        Box::pin(async move {
            let sends = targets.iter().map(|target| {
                let http = http.clone();
                async move {
                    let result = send::deliver_once(&http, target, &Event::Test).await;
                    if let Err(e) = &result {
                        tracing::warn!(target = %target.redacted, "test notification not sent: {e}");
                    }
                    TestResult { target: target.redacted.clone(), ok: result.is_ok(), error: result.err() }
                }
            });
            futures::future::join_all(sends).await
        })
    }
}
