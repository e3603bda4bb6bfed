//! The `GET /api/services` view as a pure function of the services the
//! manager lists, the registry results and the persisted toggles.

use std::collections::HashMap;

use serde::Serialize;

use crate::docker::swarm::ServiceInfo;
use crate::inventory::scope;
use crate::inventory::view::{Status, UNKNOWN};
use crate::registry::digest::shorten;
use crate::registry::messages::RemoteStates;
use crate::registry::reference::{self, ImageRef};

/// Under which name a service's auto-update toggle is stored (the same table
/// as containers'; no container name contains `/`).
pub fn toggle_key(service_name: &str) -> String {
    format!("service/{service_name}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replicas {
    pub running: u64,
    /// `null` for a global service.
    pub desired: Option<u64>,
}

/// A task as the view lists it under its service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskItem {
    pub id: String,
    pub container_id: Option<String>,
    pub state: String,
    /// The digest its container runs, shortened.
    pub digest: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceItem {
    /// The engine that is the swarm's manager here.
    pub host: String,
    pub id: String,
    pub name: String,
    /// The reference the service follows, familiar form (`nginx:1.27`).
    pub image: String,
    /// The digest the spec pins (what its tasks run), shortened.
    pub digest: String,
    pub remote_digest: String,
    pub status: Status,
    pub replicas: Replicas,
    pub update_state: Option<String>,
    pub update_message: Option<String>,
    pub auto_update: bool,
    /// The tasks meant to run, by their state now.
    pub tasks: Vec<TaskItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What an update rolls out: `repo:tag@<registry digest>`.
    #[serde(skip)]
    pub target: Option<String>,
    #[serde(skip)]
    pub pinned: Option<String>,
}

/// The tag a service follows (its spec's image without the pinned digest),
/// as the registry poller checks it.
pub fn followed(service: &ServiceInfo) -> Option<ImageRef> {
    let parsed = reference::parse(&service.image).ok()?;
    parsed.tag.is_some().then_some(ImageRef { digest: None, ..parsed })
}

pub fn build_services(
    services: &[ServiceInfo],
    remote: &RemoteStates,
    auto_update: &HashMap<String, bool>,
) -> Vec<ServiceItem> {
    services
        .iter()
        .map(|s| {
            let parsed = reference::parse(&s.image).ok();
            let followed = followed(s);
            let key = followed.as_ref().map(ImageRef::display_name);
            let state = key.as_ref().and_then(|k| remote.get(k));
            let remote_digest = state.and_then(|st| st.digest.clone());
            let pinned = parsed.and_then(|p| p.digest);
            let status = match (&pinned, &remote_digest) {
                (Some(p), Some(r)) if p == r => Status::Uptodate,
                (Some(_), Some(_)) => Status::Outdated,
                _ => Status::Unknown,
            };
            let target = match (&followed, &remote_digest) {
                (Some(f), Some(d)) => {
                    let tagged = s.image.split_once('@').map_or(s.image.as_str(), |(r, _)| r);
                    Some(format!("{tagged}@{d}")).filter(|_| f.tag.is_some())
                }
                _ => None,
            };
            ServiceItem {
                host: s.host.clone(),
                id: s.id.clone(),
                name: s.name.clone(),
                image: key.unwrap_or_else(|| s.image.clone()),
                digest: pinned.as_deref().map_or_else(|| UNKNOWN.into(), shorten),
                remote_digest: remote_digest.as_deref().map_or_else(|| UNKNOWN.into(), shorten),
                status,
                replicas: Replicas { running: s.replicas_running, desired: s.replicas_desired },
                update_state: s.update_state.clone(),
                update_message: s.update_message.clone(),
                auto_update: auto_update
                    .get(&toggle_key(&s.name))
                    .copied()
                    .unwrap_or_else(|| scope::auto_update_default(&s.labels)),
                tasks: s
                    .tasks
                    .iter()
                    .map(|t| TaskItem {
                        id: t.id.clone(),
                        container_id: t.container_id.clone(),
                        state: t.state.clone(),
                        digest: t.image.rsplit_once('@').map_or_else(|| UNKNOWN.into(), |(_, d)| shorten(d)),
                        error: t.error.clone(),
                    })
                    .collect(),
                checked_at: state.and_then(|st| st.checked_at.clone()),
                error: state.and_then(|st| st.error.clone()),
                target,
                pinned,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::messages::RemoteState;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn service(name: &str, image: &str) -> ServiceInfo {
        ServiceInfo {
            id: format!("id-{name}"),
            name: name.into(),
            image: image.into(),
            replicas_desired: Some(2),
            replicas_running: 2,
            ..Default::default()
        }
    }

    #[test]
    fn status_follows_the_pinned_digest_and_the_tag() {
        let services = [
            service("web", &format!("127.0.0.1:5000/app:1@{A}")),
            service("api", &format!("127.0.0.1:5000/app:1@{B}")),
            service("db", &format!("127.0.0.1:5000/db:2@{A}")),
            service("raw", &format!("127.0.0.1:5000/raw@{A}")),
        ];
        let remote = RemoteStates::from([(
            "127.0.0.1:5000/app:1".to_string(),
            RemoteState { digest: Some(B.into()), ..Default::default() },
        )]);
        let mut labelled = services.clone();
        labelled[2].labels.insert("shipshape.auto-update".into(), "true".into());
        let toggles = HashMap::from([(toggle_key("api"), true)]);
        let items = build_services(&labelled, &remote, &toggles);
        let view: Vec<(&str, &str, Status, bool, Option<&str>)> = items
            .iter()
            .map(|i| (i.name.as_str(), i.image.as_str(), i.status, i.auto_update, i.target.as_deref()))
            .collect();
        let target = format!("127.0.0.1:5000/app:1@{B}");
        assert_eq!(
            view,
            [
                ("web", "127.0.0.1:5000/app:1", Status::Outdated, false, Some(target.as_str())),
                ("api", "127.0.0.1:5000/app:1", Status::Uptodate, true, Some(target.as_str())),
                ("db", "127.0.0.1:5000/db:2", Status::Unknown, true, None),
                ("raw", &*format!("127.0.0.1:5000/raw@{A}"), Status::Unknown, false, None),
            ]
        );
        assert_eq!(items[0].digest, "sha256:aaaaaaaaaa");
        assert_eq!(items[0].remote_digest, "sha256:bbbbbbbbbb");
        assert_eq!(followed(&services[3]), None, "a digest without a tag follows nothing");
    }
}
