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

/// What a repository's tag listing said, as cached (also in SQLite, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RepoTags {
    /// Its version tags, newest first, at most [`super::versions_cache::MAX_TAGS`].
    pub tags: Vec<String>,
    /// When the last listing succeeded (Unix seconds).
    pub listed_at: Option<u64>,
    /// When the registry was last asked, successfully or not (Unix seconds).
    pub attempted_at: u64,
    /// Why the last listing gave nothing (never contains credentials).
    pub error: Option<String>,
    /// Digests learnt for the newest version tags, oldest first, as
    /// `(digest, tag)`: what a container on `latest` runs and what `latest`
    /// is now are looked up here.
    pub digest_tags: Vec<(String, String)>,
    /// Digests of non-version tags no listed version was found to have
    /// (asked once per listing: `shipshape check` runs, which remember
    /// nothing themselves, do not ask again).
    #[serde(default)]
    pub unresolved: Vec<String>,
    /// `tags` parsed, once per listing: every publish of the view compares
    /// each group with them.
    #[serde(skip)]
    pub parsed: ParsedTags,
}

/// [`RepoTags::tags`] as versions; always derived from them, so it takes
/// no part in comparisons.
#[derive(Debug, Clone, Default)]
pub struct ParsedTags(pub std::sync::Arc<Vec<super::versions::Version>>);

impl PartialEq for ParsedTags {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ParsedTags {}

impl RepoTags {
    /// Fills [`RepoTags::parsed`] from the tags.
    pub fn parse_tags(mut self) -> Self {
        let parsed = self.tags.iter().filter_map(|t| super::versions::Version::parse(t)).collect();
        self.parsed = ParsedTags(std::sync::Arc::new(parsed));
        self
    }

    /// The version tag known to have `digest`, if any.
    pub fn tag_of(&self, digest: &str) -> Option<&str> {
        self.digest_tags.iter().rev().find(|(d, _)| d == digest).map(|(_, t)| t.as_str())
    }
}

/// Tag listings keyed by [`super::reference::ImageRef::repository_key`].
pub type TagStates = HashMap<String, std::sync::Arc<RepoTags>>;

/// New tag listings from the poller, replacing earlier ones per repository.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct TagsChanged(pub TagStates);
