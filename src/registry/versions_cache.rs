//! Which repositories' tags to list in a round, and listing them: the tag
//! half of a check. A repository is listed at most once per tags interval
//! however many containers and tags use it, and a container on a
//! non-version tag (`latest`) costs at most a handful of `HEAD`s per new
//! digest of that tag, to learn which version it is.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::join_all;

use super::client::RegistryClient;
use super::messages::{RepoTags, TagStates};
use super::reference::ImageRef;
use super::versions::{self, Version};

/// Version tags kept per repository, the newest: enough for every update a
/// container can be offered, and a bound on memory for repositories with
/// tens of thousands of tags.
pub const MAX_TAGS: usize = 1000;
/// Pages read per listing (of [`super::tags::PAGE_SIZE`] tags each).
pub const MAX_PAGES: usize = 50;
/// Version tags asked for their digest to find what `latest` is.
pub const LATEST_CANDIDATES: usize = 5;
/// Digest → tag pairs kept per repository (the oldest go first).
pub const MAX_DIGEST_TAGS: usize = 64;
/// Digests remembered as not found, per repository (the oldest go first).
pub const MAX_UNRESOLVED: usize = 16;
/// A `latest` whose digest no listed version has may point to a version
/// newer than the listing: list again, but not more often than this.
pub const RELIST_FOR_UNKNOWN: Duration = Duration::from_secs(3600);

/// One repository's tag work this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    pub repository: String,
    /// Any checked image of the repository: where to send requests, with which credentials.
    pub image: ImageRef,
    pub list: bool,
    /// Digests of non-version tags (`latest`) to find a version tag for.
    pub resolve: Vec<String>,
}

/// Whether a tag is followed by version: containers on such tags are
/// offered newer tags; the others (`latest`) get told which version they are.
pub fn is_version_tag(image: &ImageRef) -> bool {
    image.tag.as_deref().and_then(Version::parse).is_some()
}

pub fn now_secs(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The work for `images` (each with the digest its tag has now, if known).
/// `tried` holds `(repository, digest)` pairs already resolved without
/// success, so they cost nothing until the listing changes. With `force`
/// (a user's "check tags now") every repository is listed again.
pub fn plan(
    images: &[(ImageRef, Option<String>)],
    states: &TagStates,
    tried: &HashSet<(String, String)>,
    interval: Duration,
    now: u64,
    force: bool,
) -> Vec<Work> {
    let mut by_repo: BTreeMap<String, Work> = BTreeMap::new();
    for (image, remote) in images {
        if image.is_pinned() || image.tag.is_none() {
            continue;
        }
        let repository = image.repository_key();
        let work = by_repo.entry(repository.clone()).or_insert_with(|| Work {
            repository: repository.clone(),
            image: image.clone(),
            list: false,
            resolve: Vec::new(),
        });
        let state = states.get(&repository);
        let age = |at: Option<u64>| at.map_or(u64::MAX, |t| now.saturating_sub(t));
        work.list |= force || state.is_none_or(|s| age(Some(s.attempted_at)) >= interval.as_secs());
        if is_version_tag(image) {
            continue;
        }
        let Some(digest) = remote else { continue };
        // Nothing to ask when the listing has no version (after a first
        // listing, which any unknown repository gets anyway).
        let no_versions = state.is_some_and(|s| s.listed_at.is_some() && s.tags.is_empty());
        let known = state.is_some_and(|s| s.tag_of(digest).is_some() || s.unresolved.contains(digest));
        let asked = tried.contains(&(repository.clone(), digest.clone())) || work.resolve.contains(digest);
        if !known && !asked && !no_versions {
            work.resolve.push(digest.clone());
            work.list |= state.is_some_and(|s| age(s.listed_at) >= RELIST_FOR_UNKNOWN.as_secs());
        }
    }
    by_repo.into_values().filter(|w| w.list || !w.resolve.is_empty()).collect()
}

/// Does one repository's work: lists its tags when due (a failure keeps the
/// tags known before and says why), then asks the newest versions' digests
/// when a `latest` is not known yet.
pub async fn refresh(client: &RegistryClient, work: &Work, previous: Option<Arc<RepoTags>>, now: u64) -> RepoTags {
    let mut state = previous.as_deref().cloned().unwrap_or_default();
    if work.list {
        state.attempted_at = now;
        match client.list_tags(&work.image, MAX_PAGES).await {
            Ok(tags) => {
                // A new listing: what was not found before may be found now.
                state =
                    RepoTags { tags: versions::newest(tags, MAX_TAGS), unresolved: Vec::new(), ..state }.parse_tags();
                state.listed_at = Some(now);
                state.error = None;
            }
            Err(e) => {
                tracing::info!(repository = %work.repository, "tag listing failed: {e}");
                state.error = Some(format!("tag listing: {e}"));
            }
        }
    }
    if work.resolve.is_empty() {
        return state;
    }
    let candidates = versions::latest_candidates(&state.tags, LATEST_CANDIDATES);
    let asked = candidates.iter().map(|tag| {
        let image = ImageRef { tag: Some(tag.clone()), digest: None, ..work.image.clone() };
        async move { (tag, client.remote_digest(&image).await) }
    });
    // Candidates come most precise first and the last remembered wins:
    // `1.27.3` rather than `1.27` names the digest both point to.
    for (tag, digest) in join_all(asked).await.into_iter().rev() {
        match digest {
            Ok(digest) => remember(&mut state, digest, tag.clone()),
            Err(e) => tracing::debug!(repository = %work.repository, %tag, "digest of version tag unknown: {e}"),
        }
    }
    for digest in &work.resolve {
        if state.tag_of(digest).is_none() && !state.unresolved.contains(digest) {
            state.unresolved.push(digest.clone());
        }
    }
    let excess = state.unresolved.len().saturating_sub(MAX_UNRESOLVED);
    state.unresolved.drain(..excess);
    state
}

/// The listings kept in the store (repository → JSON); one that does not
/// read (written by another version) is listed again instead.
pub fn decode(rows: std::collections::HashMap<String, String>) -> TagStates {
    rows.into_iter()
        .filter_map(|(repository, data)| match serde_json::from_str::<RepoTags>(&data) {
            Ok(state) => Some((repository, Arc::new(RepoTags::parse_tags(state)))),
            Err(e) => {
                tracing::debug!(%repository, "kept tag listing unreadable, listing again: {e}");
                None
            }
        })
        .collect()
}

/// Records that `tag` has `digest`, newest last, within [`MAX_DIGEST_TAGS`].
fn remember(state: &mut RepoTags, digest: String, tag: String) {
    state.digest_tags.retain(|(d, t)| !(d == &digest && t == &tag));
    state.digest_tags.push((digest, tag));
    let excess = state.digest_tags.len().saturating_sub(MAX_DIGEST_TAGS);
    state.digest_tags.drain(..excess);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::reference::parse;

    fn image(r: &str, digest: Option<&str>) -> (ImageRef, Option<String>) {
        (parse(r).expect("valid reference"), digest.map(String::from))
    }

    fn names(work: &[Work]) -> Vec<(String, bool, Vec<String>)> {
        work.iter().map(|w| (w.repository.clone(), w.list, w.resolve.clone())).collect()
    }

    #[test]
    fn plan_table() {
        let day = Duration::from_secs(86_400);
        let now = 1_000_000;
        let fresh = Arc::new(RepoTags {
            tags: vec!["1.1.0".into(), "1.0.0".into()],
            listed_at: Some(now - 60),
            attempted_at: now - 60,
            error: None,
            digest_tags: vec![("sha256:b".into(), "1.1.0".into())],
            ..Default::default()
        });
        let states = TagStates::from([("r.example/app".to_string(), fresh)]);
        let none = HashSet::new();
        let images = [
            image("r.example/app:1.0.0", Some("sha256:a")),
            image("r.example/app:latest", Some("sha256:b")),
            image("r.example/app:1.0.0-alpine", None),
            image("other.example/x:2", None),
            image("other.example/y@sha256:0000000000000000000000000000000000000000000000000000000000000000", None),
        ];
        // Cached and fresh: only the never-seen repository is listed.
        assert_eq!(
            names(&plan(&images, &states, &none, day, now, false)),
            [("other.example/x".to_string(), true, vec![])]
        );
        // Forced: every repository, once each.
        let forced = plan(&images, &states, &none, day, now, true);
        assert_eq!(forced.iter().filter(|w| w.list).count(), 2);
        // Stale: listed again.
        assert!(plan(&images, &states, &none, day, now + 86_400, false)
            .iter()
            .any(|w| w.repository == "r.example/app"));
        // `latest` moved to a digest nobody knows: resolve it, without listing (the listing is a minute old)…
        let moved = [image("r.example/app:latest", Some("sha256:c"))];
        assert_eq!(
            names(&plan(&moved, &states, &none, day, now, false)),
            [("r.example/app".to_string(), false, vec!["sha256:c".to_string()])]
        );
        // …with listing once the listing is older than an hour…
        assert!(plan(&moved, &states, &none, day, now + 3600, false)[0].list);
        // …and only once per digest: in this process…
        let tried = HashSet::from([("r.example/app".to_string(), "sha256:c".to_string())]);
        assert!(plan(&moved, &states, &tried, day, now, false).is_empty());
        // …and for every process reading the kept listing.
        let mut unresolved = (*states["r.example/app"]).clone();
        unresolved.unresolved.push("sha256:c".into());
        let kept = TagStates::from([("r.example/app".to_string(), Arc::new(unresolved))]);
        assert!(plan(&moved, &kept, &none, day, now + 7200, false).is_empty());
        // A repository without version tags: nothing to resolve, nothing to relist.
        let bare = RepoTags { listed_at: Some(now - 7200), attempted_at: now - 7200, ..Default::default() };
        let bare = TagStates::from([("r.example/app".to_string(), Arc::new(bare))]);
        assert!(plan(&moved, &bare, &none, day, now, false).is_empty());
    }

    #[test]
    fn remembered_digests_are_bounded_and_latest_wins() {
        let mut state = RepoTags::default();
        for i in 0..100 {
            remember(&mut state, format!("sha256:{i}"), format!("1.0.{i}"));
        }
        assert_eq!(state.digest_tags.len(), MAX_DIGEST_TAGS);
        assert_eq!(state.tag_of("sha256:99"), Some("1.0.99"));
        assert_eq!(state.tag_of("sha256:0"), None);
        remember(&mut state, "sha256:99".into(), "1.0".into());
        assert_eq!(state.tag_of("sha256:99"), Some("1.0"));
    }
}
