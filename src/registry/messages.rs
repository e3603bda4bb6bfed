//! What the registry side tells the rest of shipshape. A message is declared
//! by its sender, so the inventory depends on the registry and never the
//! other way round.

use std::collections::HashMap;

use actix::Message;

/// What the registry said about one image reference at the last check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteState {
    /// Full digest (`sha256:` + 64 hex) the tag pointed to, if known.
    pub digest: Option<String>,
    /// RFC 3339 time of the last successful answer.
    pub checked_at: Option<String>,
    /// Why the digest is unknown or may be stale (never contains credentials).
    pub error: Option<String>,
}

/// Remote results keyed by the group's display reference (`nginx:latest`).
pub type RemoteStates = HashMap<String, RemoteState>;

/// New registry results from the poller, replacing earlier ones per image.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RemoteChanged(pub RemoteStates);
