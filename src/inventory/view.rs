//! The `GET /api/images` view as a pure function of what the actors know:
//! the engines' snapshots, the registry results and the persisted flags.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::scope::{self, Policy, Selection};
use crate::docker::model::{is_image_id_reference, Container, EngineSnapshot};
use crate::registry::digest::{repo_digests_for, shorten};
use crate::registry::messages::{RemoteStates, RepoTags, TagStates};
use crate::registry::reference::{self, ImageRef};
use crate::registry::versions::{self, Newer, UpdateKind, UpdatePolicy, Version};

pub const UNKNOWN: &str = "unknown";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Uptodate,
    Outdated,
    Partial,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerItem {
    /// The engine it runs on (`local` with one engine): with the id, what
    /// names it across engines (`host:id`).
    pub host: String,
    pub container_id: String,
    pub container_name: String,
    pub local_digest: String,
    pub status: Status,
    pub auto_update: bool,
    /// Left out by its labels: only listed with `?all=1`, never checked or updated.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub excluded: bool,
    /// Checked and shown, never updated (a `monitor-only` label).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub monitor_only: bool,
    /// How far automatic updates may move it (label `shipshape.update`);
    /// left out for the default, `digest` (same tag only).
    #[serde(skip_serializing_if = "is_digest_policy", serialize_with = "policy_name")]
    pub update_policy: UpdatePolicy,
}

fn is_digest_policy(p: &UpdatePolicy) -> bool {
    *p == UpdatePolicy::Digest
}

fn policy_name<S: serde::Serializer>(p: &UpdatePolicy, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match p {
        UpdatePolicy::Digest => "digest",
        UpdatePolicy::Patch => "patch",
        UpdatePolicy::Minor => "minor",
        UpdatePolicy::Major => "major",
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageGroup {
    pub image: String,
    pub remote_digest: String,
    pub status: Status,
    pub containers: Vec<ContainerItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub versions: VersionFields,
}

/// What the tag listing says about a group (see docs/api.md, "Versions").
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct VersionFields {
    /// The version the containers run: their tag when it is a version,
    /// else the version tag known to have their digest (`latest` = `1.27.3`).
    pub version: Option<String>,
    /// The newest tag of each kind the containers could move to.
    pub newer: Newer,
    /// The biggest change on offer: a newer tag's kind, or `digest` when
    /// only the tag's own digest moved.
    pub update_kind: Option<UpdateKind>,
    pub release_notes: Option<String>,
    /// For a non-version tag: the version it points to now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<String>,
    /// Why there is no version data (the registry refused to list tags).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions_error: Option<String>,
}

/// A group's version fields from its reference, its repository's tag
/// listing, the digest its (first outdated, else first) container runs and
/// the one the registry has for its tag now.
pub fn version_fields(
    image: &ImageRef,
    tags: Option<&RepoTags>,
    local: Option<&str>,
    remote: Option<&str>,
    outdated: bool,
) -> VersionFields {
    let tag = image.tag.as_deref().filter(|_| !image.is_pinned());
    let is_version = tag.and_then(Version::parse).is_some();
    let tag_of = |digest: Option<&str>| tags.zip(digest).and_then(|(t, d)| t.tag_of(d)).map(String::from);
    let mut fields = VersionFields { versions_error: tags.and_then(|t| t.error.clone()), ..Default::default() };
    match tag {
        None => fields.version = image.tag.clone().filter(|t| Version::parse(t).is_some()),
        Some(tag) if is_version => {
            fields.version = Some(tag.to_string());
            fields.newer = match (tags, Version::parse(tag)) {
                (Some(t), Some(current)) if t.parsed.0.len() == t.tags.len() => {
                    versions::newer_in(&current, &t.parsed.0)
                }
                (Some(t), _) => versions::newer(tag, &t.tags),
                (None, _) => Newer::default(),
            };
            fields.update_kind = fields.newer.largest().or(outdated.then_some(UpdateKind::Digest));
        }
        Some(_) => {
            fields.version = tag_of(local);
            fields.latest_version = tag_of(remote);
            fields.update_kind = outdated.then(|| {
                match (&fields.version, &fields.latest_version) {
                    (Some(from), Some(to)) => versions::kind_between(from, to),
                    _ => None,
                }
                .unwrap_or(UpdateKind::Digest)
            });
        }
    }
    fields
}

/// One container's status: a digest pin can only match or be unknown, never
/// be "outdated", because a pinned container is not meant to move.
pub fn container_status(local: Option<&str>, remote: Option<&str>, pinned: bool) -> Status {
    match (local, remote) {
        (Some(l), Some(r)) if l == r => Status::Uptodate,
        (Some(_), Some(_)) if pinned => Status::Unknown,
        (Some(_), Some(_)) => Status::Outdated,
        _ => Status::Unknown,
    }
}

/// A group's status from its containers': containers whose status is unknown
/// do not make a group partial; they only make it unknown when none is known.
pub fn group_status(statuses: impl IntoIterator<Item = Status>) -> Status {
    let (mut up, mut out) = (false, false);
    for s in statuses {
        match s {
            Status::Uptodate => up = true,
            Status::Outdated => out = true,
            Status::Partial => (up, out) = (true, true),
            Status::Unknown => {}
        }
    }
    match (up, out) {
        (true, true) => Status::Partial,
        (true, false) => Status::Uptodate,
        (false, true) => Status::Outdated,
        (false, false) => Status::Unknown,
    }
}

/// Swarm's: a task of a service, which Swarm replaces, never a container job.
pub fn is_swarm_task(c: &Container) -> bool {
    c.labels.contains_key(crate::docker::swarm::SERVICE_ID_LABEL)
}

/// A container's image reference, parsed, or `None` when the container was
/// created from a bare image id and so has no tag to check.
pub fn container_reference(image_ref: &str, image_id: &str) -> Option<Result<ImageRef, String>> {
    if is_image_id_reference(image_ref, image_id) {
        return None;
    }
    Some(reference::parse(image_ref).map_err(|e| e.to_string()))
}

/// The distinct references the running containers this instance looks
/// after use, as the poller checks them.
pub fn references<'a>(containers: impl IntoIterator<Item = &'a Container>, policy: &Policy) -> Vec<ImageRef> {
    let mut refs: BTreeMap<String, ImageRef> = BTreeMap::new();
    for c in containers {
        if matches!(scope::select(policy, &c.labels), Selection::OutOfScope | Selection::Excluded) || is_swarm_task(c) {
            continue;
        }
        if let Some(Ok(r)) = container_reference(&c.image_ref, &c.image_id) {
            refs.entry(r.display_name()).or_insert(r);
        }
    }
    refs.into_values().collect()
}

/// The key a container's auto-update flag is stored under: its name on the
/// first engine (so a one-engine setup keeps its flags when engines are
/// added after it), `host:name` on the others. Docker names never hold `:`.
pub fn flag_key(primary: &str, host: &str, name: &str) -> String {
    if host.is_empty() || host == primary {
        name.to_string()
    } else {
        format!("{host}:{name}")
    }
}

/// The stored auto-update flags, and which engine stores them by bare name.
#[derive(Debug, Clone, Copy)]
pub struct Flags<'a> {
    pub stored: &'a HashMap<String, bool>,
    /// The first engine's name.
    pub primary: &'a str,
}

impl Flags<'_> {
    pub fn get(&self, host: &str, name: &str) -> Option<bool> {
        self.stored.get(&flag_key(self.primary, host, name)).copied()
    }
}

/// [`build_fleet`] for one engine's snapshot, its flags stored by name.
pub fn build_groups(
    snapshot: &EngineSnapshot,
    remote: &RemoteStates,
    tags: &TagStates,
    auto_update: &HashMap<String, bool>,
    policy: &Policy,
) -> Vec<ImageGroup> {
    let flags = Flags { stored: auto_update, primary: "" };
    build_fleet(&[snapshot], remote, tags, flags, policy)
}

/// Builds the groups of every engine's containers, sorted by image, then by
/// container name and engine, so that the answer is stable between calls.
/// A group spans engines: it is the image reference. Containers out of the
/// instance's scope are not in them; excluded ones are, marked, and count
/// for no status.
pub fn build_fleet(
    snapshots: &[&EngineSnapshot],
    remote: &RemoteStates,
    tags: &TagStates,
    flags: Flags<'_>,
    policy: &Policy,
) -> Vec<ImageGroup> {
    struct Pending<'a> {
        parsed: Option<ImageRef>,
        /// Each container with the snapshot that knows its image.
        members: Vec<(&'a crate::docker::model::Container, &'a EngineSnapshot)>,
    }
    let mut groups: BTreeMap<String, Pending> = BTreeMap::new();
    for (c, snapshot) in snapshots.iter().flat_map(|s| s.containers.values().map(move |c| (c, *s))) {
        // A Swarm task is shown under its service (`GET /api/services`).
        if scope::select(policy, &c.labels) == Selection::OutOfScope || is_swarm_task(c) {
            continue;
        }
        let (key, parsed) = match container_reference(&c.image_ref, &c.image_id) {
            None => continue,
            Some(Ok(r)) => (r.display_name(), Some(r)),
            // The engine accepted it, so keep the container visible even if
            // our parser disagrees; its status is simply unknown.
            Some(Err(_)) => (c.image_ref.clone(), None),
        };
        groups.entry(key).or_insert_with(|| Pending { parsed, members: Vec::new() }).members.push((c, snapshot));
    }

    groups
        .into_iter()
        .map(|(image, pending)| {
            let state = remote.get(&image);
            let remote_digest = state.and_then(|s| s.digest.as_deref());
            let pinned = pending.parsed.as_ref().is_some_and(ImageRef::is_pinned);
            let mut locals: Vec<(Option<String>, Status)> = Vec::new();
            let mut containers: Vec<ContainerItem> = pending
                .members
                .iter()
                .map(|&(c, snapshot)| {
                    let local = pending.parsed.as_ref().and_then(|r| {
                        let digests =
                            snapshot.images.get(&c.image_id).map(|i| i.repo_digests.as_slice()).unwrap_or_default();
                        // Of several digests for the repository, the one the
                        // registry names now, if the image has it, decides.
                        let mut all = repo_digests_for(digests, r).peekable();
                        let first = all.peek().cloned();
                        all.find(|d| Some(d.as_str()) == remote_digest).or(first)
                    });
                    let selection = scope::select(policy, &c.labels);
                    let status = container_status(local.as_deref(), remote_digest, pinned);
                    let local_digest = local.as_deref().map_or_else(|| UNKNOWN.into(), shorten);
                    locals.push((local, status));
                    ContainerItem {
                        host: c.host.clone(),
                        container_id: c.id.chars().take(12).collect(),
                        container_name: c.name.clone(),
                        local_digest,
                        status,
                        auto_update: flags
                            .get(&c.host, &c.name)
                            .unwrap_or_else(|| scope::auto_update_default(&c.labels)),
                        excluded: selection == Selection::Excluded,
                        monitor_only: selection == Selection::MonitorOnly,
                        update_policy: UpdatePolicy::from_labels(&c.labels).unwrap_or_default(),
                    }
                })
                .collect();
            containers.sort_by(|a, b| (&a.container_name, &a.host).cmp(&(&b.container_name, &b.host)));
            let status = group_status(containers.iter().filter(|c| !c.excluded).map(|c| c.status));
            let versions = pending.parsed.as_ref().map_or_else(VersionFields::default, |r| {
                let first_outdated = locals.iter().find(|(_, s)| *s == Status::Outdated).or(locals.first());
                let mut fields = version_fields(
                    r,
                    tags.get(&r.repository_key()).map(|t| &**t),
                    first_outdated.and_then(|(l, _)| l.as_deref()),
                    remote_digest,
                    status == Status::Outdated || status == Status::Partial,
                );
                fields.release_notes = pending.members.first().and_then(|&(c, snapshot)| {
                    let image_labels = snapshot.images.get(&c.image_id).map(|i| &i.labels);
                    versions::release_notes(&c.labels, image_labels.unwrap_or(&HashMap::new()))
                });
                fields
            });
            ImageGroup {
                image,
                remote_digest: remote_digest.map_or_else(|| UNKNOWN.into(), shorten),
                status,
                containers,
                checked_at: state.and_then(|s| s.checked_at.clone()),
                error: state.and_then(|s| s.error.clone()),
                versions,
            }
        })
        .collect()
}

/// The groups without their excluded containers (and without groups left
/// empty): what `GET /api/images` lists unless asked for everything.
pub fn without_excluded(groups: &[ImageGroup]) -> Vec<ImageGroup> {
    groups
        .iter()
        .filter_map(|g| {
            let containers: Vec<ContainerItem> = g.containers.iter().filter(|c| !c.excluded).cloned().collect();
            (!containers.is_empty()).then(|| ImageGroup { containers, ..g.clone() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::model::{Container, Image};
    use crate::registry::messages::RemoteState;
    use Status::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn version_fields_table() {
        type Expected<'a> = (Option<&'a str>, &'a str, Option<UpdateKind>, Option<&'a str>);
        let tags = RepoTags {
            tags: ["2.0.0", "1.1.0", "1.0.1", "1.0.0"].map(String::from).to_vec(),
            digest_tags: vec![(A.into(), "1.0.0".into()), (B.into(), "1.1.0".into())],
            ..Default::default()
        }
        .parse_tags();
        let unparsed = RepoTags { parsed: Default::default(), ..tags.clone() };
        let with_error = RepoTags { error: Some("tag listing: 401".into()), ..Default::default() };
        let kind = |k: &str| serde_json::from_value::<Option<UpdateKind>>(serde_json::json!(k)).expect("kind");
        // (reference, tags, local, remote, outdated) → (version, newer as JSON, update_kind, latest_version, error)
        #[allow(clippy::type_complexity)]
        let cases: [(&str, Option<&RepoTags>, Option<&str>, Option<&str>, bool, Expected); 9] = [
            (
                "r/a:1.0.0",
                Some(&tags),
                Some(A),
                Some(A),
                false,
                (Some("1.0.0"), r#"{"patch":"1.0.1","minor":"1.1.0","major":"2.0.0"}"#, kind("major"), None),
            ),
            (
                "r/a:1.0.0",
                Some(&unparsed),
                Some(A),
                Some(A),
                false,
                (Some("1.0.0"), r#"{"patch":"1.0.1","minor":"1.1.0","major":"2.0.0"}"#, kind("major"), None),
            ),
            ("r/a:2.0.0", Some(&tags), Some(A), Some(B), true, (Some("2.0.0"), "{}", kind("digest"), None)),
            ("r/a:2.0.0", Some(&tags), Some(A), Some(A), false, (Some("2.0.0"), "{}", None, None)),
            ("r/a:1.0.0", None, Some(A), Some(A), false, (Some("1.0.0"), "{}", None, None)),
            ("r/a:latest", Some(&tags), Some(A), Some(B), true, (Some("1.0.0"), "{}", kind("minor"), Some("1.1.0"))),
            ("r/a:latest", Some(&tags), Some(B), Some(B), false, (Some("1.1.0"), "{}", None, Some("1.1.0"))),
            ("r/a:latest", Some(&tags), Some("sha256:zz"), Some(B), true, (None, "{}", kind("digest"), Some("1.1.0"))),
            ("r/a:1.0.0", Some(&with_error), Some(A), Some(A), false, (Some("1.0.0"), "{}", None, None)),
        ];
        for (reference, tags, local, remote, outdated, (version, newer, update_kind, latest)) in cases {
            let image = reference::parse(reference).expect("valid");
            let f = version_fields(&image, tags, local, remote, outdated);
            let what = format!("{reference} {local:?} {remote:?}");
            assert_eq!(f.version.as_deref(), version, "{what}");
            assert_eq!(serde_json::to_string(&f.newer).expect("json"), newer, "{what}");
            assert_eq!(f.update_kind, update_kind, "{what}");
            assert_eq!(f.latest_version.as_deref(), latest, "{what}");
            assert_eq!(f.versions_error.is_some(), tags.is_some_and(|t| t.error.is_some()), "{what}");
        }
        // A pinned reference is never offered a tag.
        let pinned = reference::parse(&format!("r/a:1.0.0@{A}")).expect("valid");
        assert!(version_fields(&pinned, Some(&tags), Some(A), Some(A), false).newer.is_empty());
    }

    #[test]
    fn container_status_table() {
        let cases = [
            (Some(A), Some(A), false, Uptodate),
            (Some(A), Some(B), false, Outdated),
            (None, Some(B), false, Unknown),
            (Some(A), None, false, Unknown),
            (None, None, false, Unknown),
            (Some(A), Some(A), true, Uptodate),
            (Some(A), Some(B), true, Unknown),
        ];
        for (local, remote, pinned, expected) in cases {
            assert_eq!(container_status(local, remote, pinned), expected, "{local:?} {remote:?} {pinned}");
        }
    }

    #[test]
    fn group_status_table() {
        let cases: [(&[Status], Status); 8] = [
            (&[Uptodate, Uptodate], Uptodate),
            (&[Outdated], Outdated),
            (&[Uptodate, Outdated], Partial),
            (&[Uptodate, Unknown], Uptodate),
            (&[Outdated, Unknown], Outdated),
            (&[Unknown, Unknown], Unknown),
            (&[], Unknown),
            (&[Unknown, Outdated, Uptodate], Partial),
        ];
        for (input, expected) in cases {
            assert_eq!(group_status(input.iter().copied()), expected, "{input:?}");
        }
    }

    fn snapshot() -> EngineSnapshot {
        let mut s = EngineSnapshot::default();
        let img = |id: &str, digests: &[&str]| Image {
            id: id.into(),
            repo_digests: digests.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        };
        let nginx_old = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let nginx_new = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        let local_only = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
        s.images.insert(nginx_old.into(), img(nginx_old, &[&format!("nginx@{A}")]));
        s.images.insert(nginx_new.into(), img(nginx_new, &[&format!("docker.io/library/nginx@{B}")]));
        s.images.insert(local_only.into(), img(local_only, &[]));
        let mut add = |id: &str, name: &str, image_ref: &str, image_id: &str| {
            s.containers.insert(
                id.into(),
                Container {
                    id: id.into(),
                    name: name.into(),
                    image_ref: image_ref.into(),
                    image_id: image_id.into(),
                    ..Default::default()
                },
            );
        };
        add("c1c1c1c1c1c1c1c1", "web-b", "nginx", nginx_old);
        add("c2c2c2c2c2c2c2c2", "web-a", "docker.io/library/nginx:latest", nginx_new);
        add("c3c3c3c3c3c3c3c3", "bare", local_only, local_only);
        add("c4c4c4c4c4c4c4c4", "short-bare", "333333333333", local_only);
        add("c5c5c5c5c5c5c5c5", "built", "myapp:dev", local_only);
        s
    }

    #[test]
    fn groups_by_normalized_reference_and_skips_bare_ids() {
        let groups =
            build_groups(&snapshot(), &RemoteStates::new(), &TagStates::new(), &HashMap::new(), &Policy::default());
        let names: Vec<_> = groups.iter().map(|g| g.image.as_str()).collect();
        assert_eq!(names, ["myapp:dev", "nginx:latest"]);
        let nginx = &groups[1];
        let members: Vec<_> = nginx.containers.iter().map(|c| c.container_name.as_str()).collect();
        assert_eq!(members, ["web-a", "web-b"]);
        assert_eq!(nginx.containers[0].container_id, "c2c2c2c2c2c2");
        assert_eq!(nginx.containers[0].local_digest, "sha256:bbbbbbbbbb");
        assert_eq!(nginx.containers[1].local_digest, "sha256:aaaaaaaaaa");
        assert_eq!(nginx.remote_digest, UNKNOWN);
        assert_eq!(nginx.status, Unknown);
        assert_eq!(groups[0].containers[0].local_digest, UNKNOWN);
    }

    #[test]
    fn statuses_follow_the_remote_digest_and_flags_follow_names() {
        let mut remote = RemoteStates::new();
        remote.insert(
            "nginx:latest".into(),
            RemoteState { digest: Some(B.into()), checked_at: Some("2026-01-01T00:00:00Z".into()), error: None },
        );
        let flags = HashMap::from([("web-b".to_string(), true)]);
        let groups = build_groups(&snapshot(), &remote, &TagStates::new(), &flags, &Policy::default());
        let nginx = &groups[1];
        assert_eq!(nginx.remote_digest, "sha256:bbbbbbbbbb");
        assert_eq!(nginx.status, Partial);
        assert_eq!(nginx.containers[0].status, Uptodate);
        assert_eq!(nginx.containers[1].status, Outdated);
        assert!(nginx.containers[1].auto_update);
        assert!(!nginx.containers[0].auto_update);
        assert_eq!(nginx.checked_at.as_deref(), Some("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn the_digest_matching_the_registry_wins_among_several() {
        let mut s = snapshot();
        let id = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        if let Some(image) = s.images.get_mut(id) {
            image.repo_digests.push(format!("docker.io/library/nginx@{B}"));
        }
        let remote = RemoteStates::from([(
            "nginx:latest".to_string(),
            RemoteState { digest: Some(B.into()), ..Default::default() },
        )]);
        let groups = build_groups(&s, &remote, &TagStates::new(), &HashMap::new(), &Policy::default());
        assert_eq!(groups[1].status, Uptodate);
        let without = build_groups(&s, &RemoteStates::new(), &TagStates::new(), &HashMap::new(), &Policy::default());
        assert_eq!(without[1].containers[1].local_digest, "sha256:aaaaaaaaaa");
    }

    #[test]
    fn references_are_distinct() {
        let refs: Vec<_> =
            references(snapshot().containers.values(), &Policy::default()).iter().map(ImageRef::display_name).collect();
        assert_eq!(refs, ["myapp:dev", "nginx:latest"]);
    }

    fn labelled(s: &mut EngineSnapshot, id: &str, pairs: &[(&str, &str)]) {
        if let Some(c) = s.containers.get_mut(id) {
            c.labels = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        }
    }

    #[test]
    fn labels_exclude_mark_and_set_defaults() {
        let mut s = snapshot();
        labelled(&mut s, "c5c5c5c5c5c5c5c5", &[("com.centurylinklabs.watchtower.enable", "false")]);
        labelled(&mut s, "c1c1c1c1c1c1c1c1", &[("shipshape.monitor-only", "true"), ("shipshape.auto-update", "true")]);
        labelled(&mut s, "c2c2c2c2c2c2c2c2", &[("shipshape.auto-update", "true")]);
        let remote = RemoteStates::from([(
            "nginx:latest".to_string(),
            RemoteState { digest: Some(B.into()), ..Default::default() },
        )]);
        // The user's stored toggle wins over the label's default.
        let flags = HashMap::from([("web-a".to_string(), false)]);
        let groups = build_groups(&s, &remote, &TagStates::new(), &flags, &Policy::default());
        assert!(groups[0].containers[0].excluded);
        let nginx = &groups[1];
        assert!(nginx.containers[1].monitor_only && nginx.containers[1].auto_update);
        assert!(!nginx.containers[0].auto_update && !nginx.containers[0].monitor_only);
        let visible = without_excluded(&groups);
        let names: Vec<_> = visible.iter().map(|g| g.image.as_str()).collect();
        assert_eq!(names, ["nginx:latest"]);
        let refs: Vec<_> =
            references(s.containers.values(), &Policy::default()).iter().map(ImageRef::display_name).collect();
        assert_eq!(refs, ["nginx:latest"]);
    }

    #[test]
    fn out_of_scope_containers_are_not_there_at_all() {
        let mut s = snapshot();
        labelled(&mut s, "c1c1c1c1c1c1c1c1", &[("shipshape.scope", "blue")]);
        let blue = Policy { label_enable: false, scope: Some("blue".into()) };
        let groups = build_groups(&s, &RemoteStates::new(), &TagStates::new(), &HashMap::new(), &blue);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].containers.len(), 1);
        assert_eq!(groups[0].containers[0].container_name, "web-b");
        let refs: Vec<_> = references(s.containers.values(), &blue).iter().map(ImageRef::display_name).collect();
        assert_eq!(refs, ["nginx:latest"]);
    }

    /// The same image on two engines: one group, each container with its
    /// engine and its own local digest (from its own engine's images).
    #[test]
    fn a_group_spans_engines_and_flags_are_per_engine() {
        let mut one = snapshot();
        let mut two = EngineSnapshot::default();
        for c in one.containers.values_mut() {
            c.host = "local".into();
        }
        let old = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        two.images.insert(
            old.into(),
            Image { id: old.into(), repo_digests: vec![format!("nginx@{B}")], ..Default::default() },
        );
        two.containers.insert(
            "d1d1d1d1d1d1d1d1".into(),
            Container {
                host: "nas".into(),
                id: "d1d1d1d1d1d1d1d1".into(),
                name: "web-b".into(),
                image_ref: "nginx:latest".into(),
                image_id: old.into(),
                ..Default::default()
            },
        );
        let remote = RemoteStates::from([(
            "nginx:latest".to_string(),
            RemoteState { digest: Some(B.into()), ..Default::default() },
        )]);
        let stored = HashMap::from([("web-b".to_string(), true), ("nas:web-a".to_string(), true)]);
        let flags = Flags { stored: &stored, primary: "local" };
        let groups = build_fleet(&[&one, &two], &remote, &TagStates::new(), flags, &Policy::default());
        let nginx = groups.iter().find(|g| g.image == "nginx:latest").expect("nginx group");
        let rows: Vec<_> = nginx
            .containers
            .iter()
            .map(|c| (c.host.as_str(), c.container_name.as_str(), c.status, c.auto_update))
            .collect();
        // Same image id on both engines, but each engine's own digests decide.
        assert_eq!(
            rows,
            [
                ("local", "web-a", Uptodate, false),
                ("local", "web-b", Outdated, true),
                ("nas", "web-b", Uptodate, false)
            ]
        );
        assert_eq!(nginx.status, Partial);
        let refs: Vec<_> = references(one.containers.values().chain(two.containers.values()), &Policy::default())
            .iter()
            .map(ImageRef::display_name)
            .collect();
        assert_eq!(refs, ["myapp:dev", "nginx:latest"], "one reference for the whole fleet");
    }

    #[test]
    fn flags_of_the_first_engine_keep_their_bare_names() {
        let cases = [
            ("local", "local", "web", "web"),
            ("local", "", "web", "web"),
            ("local", "nas", "web", "nas:web"),
            ("nas", "local", "web", "local:web"),
        ];
        for (primary, host, name, key) in cases {
            assert_eq!(flag_key(primary, host, name), key, "{primary} {host} {name}");
        }
    }

    #[test]
    fn excluded_containers_do_not_decide_the_group_status() {
        let mut s = snapshot();
        labelled(&mut s, "c1c1c1c1c1c1c1c1", &[("shipshape.enable", "false")]);
        let remote = RemoteStates::from([(
            "nginx:latest".to_string(),
            RemoteState { digest: Some(B.into()), ..Default::default() },
        )]);
        let groups = build_groups(&s, &remote, &TagStates::new(), &HashMap::new(), &Policy::default());
        assert_eq!(groups[1].status, Uptodate);
        assert_eq!(groups[1].containers[1].status, Outdated);
    }
}
