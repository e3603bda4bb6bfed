//! What a notification says, and the request each service gets for it. Pure:
//! the sender only carries these out.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::target::{HttpAuth, Service};
use crate::inventory::view::{ImageGroup, Status};
use crate::registry::versions::{Newer, UpdateKind};
use crate::store::{HistoryEntry, JobResult};

/// Something worth telling the user about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The registry has a digest for `image` that these containers do not run.
    NewVersion { image: String, new_digest: String, containers: Vec<OutdatedContainer> },
    /// Newer version tags than the one `image`'s containers run (Diun's "new tag").
    NewerTags { image: String, version: String, newer: Newer, release_notes: Option<String> },
    /// An update ended (updated, failed or rolled back).
    UpdateEnded(HistoryEntry),
    /// `POST /api/notify/test`.
    Test,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutdatedContainer {
    pub name: String,
    pub digest: String,
}

impl Event {
    /// The event's machine-readable name (the JSON `event` field).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::NewVersion { .. } => "new_version",
            Event::NewerTags { .. } => "newer_tags",
            Event::UpdateEnded(e) => match e.result {
                JobResult::Updated => "updated",
                JobResult::RolledBack => "rolled_back",
                JobResult::Failed => "failed",
                JobResult::Unchanged => "unchanged",
            },
            Event::Test => "test",
        }
    }

    pub fn title(&self) -> String {
        match self {
            Event::NewVersion { image, .. } => format!("shipshape: new version of {image}"),
            Event::NewerTags { image, newer, .. } => {
                let kind = newer.largest().map_or("newer", UpdateKind::as_str);
                format!("shipshape: {kind} version available for {image}")
            }
            Event::UpdateEnded(e) => match e.result {
                JobResult::Updated => format!("shipshape: {} updated", e.container_name),
                JobResult::RolledBack => format!("shipshape: {} update rolled back", e.container_name),
                JobResult::Failed => format!("shipshape: {} update failed", e.container_name),
                JobResult::Unchanged => format!("shipshape: {} already current", e.container_name),
            },
            Event::Test => "shipshape: test notification".into(),
        }
    }

    pub fn text(&self) -> String {
        let digest = |d: &Option<String>| d.clone().unwrap_or_else(|| "unknown".into());
        match self {
            Event::NewVersion { image, new_digest, containers } => {
                let names: Vec<String> = containers.iter().map(|c| format!("{} (runs {})", c.name, c.digest)).collect();
                format!("A new version of {image} is available: {new_digest}. Outdated: {}.", names.join(", "))
            }
            Event::NewerTags { image, version, newer, release_notes } => {
                let offers: Vec<String> = [("major", &newer.major), ("minor", &newer.minor), ("patch", &newer.patch)]
                    .into_iter()
                    .filter_map(|(kind, tag)| tag.as_ref().map(|t| format!("{version} → {t} ({kind})")))
                    .collect();
                let notes = release_notes.as_deref().map(|u| format!(" Release notes: {u}")).unwrap_or_default();
                format!("{image}: {}.{notes}", offers.join(", "))
            }
            Event::UpdateEnded(e) => {
                let what = format!(
                    "{} ({}) from {} to {}",
                    e.container_name,
                    e.image,
                    digest(&e.from_digest),
                    digest(&e.to_digest)
                );
                let reason = e.error.as_deref().map(|r| format!(" Reason: {r}")).unwrap_or_default();
                match e.result {
                    JobResult::Updated => format!("Updated {what}."),
                    JobResult::RolledBack => {
                        format!("Update of {what} was rolled back; the old container runs again.{reason}")
                    }
                    JobResult::Failed => format!("Update of {what} failed; nothing was changed.{reason}"),
                    JobResult::Unchanged => {
                        format!("{} ({}) already runs {}.", e.container_name, e.image, digest(&e.to_digest))
                    }
                }
            }
            Event::Test => "Notifications from shipshape reach this target.".into(),
        }
    }

    /// The generic webhook's body: shoutrrr's `{title, message}` plus the facts.
    pub fn json(&self) -> Value {
        let mut body = json!({ "title": self.title(), "message": self.text(), "event": self.kind() });
        match self {
            Event::NewVersion { image, new_digest, containers } => {
                body["image"] = json!(image);
                body["new_digest"] = json!(new_digest);
                body["containers"] =
                    containers.iter().map(|c| json!({ "name": c.name, "digest": c.digest })).collect::<Value>();
            }
            Event::NewerTags { image, version, newer, release_notes } => {
                body["image"] = json!(image);
                body["version"] = json!(version);
                body["newer"] = json!(newer);
                body["release_notes"] = json!(release_notes);
            }
            Event::UpdateEnded(e) => {
                body["container"] = json!(e.container_name);
                body["image"] = json!(e.image);
                body["old_digest"] = json!(e.from_digest);
                body["new_digest"] = json!(e.to_digest);
                body["reason"] = json!(e.error);
            }
            Event::Test => {}
        }
        body
    }
}

/// Whether an ended update is worth a message: "already current" is not.
pub fn worth_telling(entry: &HistoryEntry) -> bool {
    entry.result != JobResult::Unchanged
}

/// Images whose registry digest some container does not run yet, each told
/// once per digest: `announced` remembers the last digest told per image.
pub fn new_versions(groups: &[ImageGroup], announced: &mut HashMap<String, String>) -> Vec<Event> {
    let mut events = Vec::new();
    for group in groups {
        let outdated: Vec<OutdatedContainer> = group
            .containers
            .iter()
            .filter(|c| c.status == Status::Outdated && !c.excluded)
            .map(|c| OutdatedContainer { name: c.container_name.clone(), digest: c.local_digest.clone() })
            .collect();
        if let (Some(version), false) = (&group.versions.version, group.versions.newer.is_empty()) {
            // Told once per set of newest tags (a key no image name can be).
            let told = serde_json::to_string(&group.versions.newer).unwrap_or_default();
            let key = format!("{} newer", group.image);
            let all_excluded = group.containers.iter().all(|c| c.excluded);
            if !all_excluded && announced.get(&key) != Some(&told) {
                announced.insert(key, told);
                events.push(Event::NewerTags {
                    image: group.image.clone(),
                    version: version.clone(),
                    newer: group.versions.newer.clone(),
                    release_notes: group.versions.release_notes.clone(),
                });
            }
        }
        if outdated.is_empty() || announced.get(&group.image) == Some(&group.remote_digest) {
            continue;
        }
        announced.insert(group.image.clone(), group.remote_digest.clone());
        events.push(Event::NewVersion {
            image: group.image.clone(),
            new_digest: group.remote_digest.clone(),
            containers: outdated,
        });
    }
    events
}

/// One HTTP request to make.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Json(Value),
    Text(String),
}

/// The requests an HTTP service gets for an event (`None` for smtp).
pub fn http_requests(service: &Service, event: &Event) -> Option<Vec<HttpRequest>> {
    let (title, text) = (event.title(), event.text());
    let line = format!("{title}\n{text}");
    let json_to = |url: String, body: Value| HttpRequest { url, headers: Vec::new(), body: Body::Json(body) };
    let requests = match service {
        Service::Generic { url } => vec![json_to(url.to_string(), event.json())],
        Service::Ntfy { base, topic, auth } => {
            let mut headers =
                vec![("Title".to_string(), title.clone()), ("Tags".to_string(), event.kind().to_string())];
            match auth {
                Some(HttpAuth::Bearer(token)) => headers.push(("Authorization".into(), format!("Bearer {token}"))),
                Some(HttpAuth::Basic { user, password }) => {
                    use base64::Engine;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                    headers.push(("Authorization".into(), format!("Basic {encoded}")));
                }
                None => {}
            }
            vec![HttpRequest { url: format!("{base}{topic}"), headers, body: Body::Text(text) }]
        }
        Service::Gotify { base, token, priority } => vec![HttpRequest {
            url: format!("{base}message"),
            headers: vec![("X-Gotify-Key".into(), token.clone())],
            body: Body::Json(json!({ "title": title, "message": text, "priority": priority })),
        }],
        Service::Discord { api, id, token } => {
            vec![json_to(format!("{api}/api/webhooks/{id}/{token}"), json!({ "content": line }))]
        }
        Service::SlackWebhook { hooks, path } => {
            vec![json_to(format!("{hooks}/services/{path}"), json!({ "text": line }))]
        }
        Service::SlackBot { api, token, channel } => vec![HttpRequest {
            url: format!("{api}/api/chat.postMessage"),
            headers: vec![("Authorization".into(), format!("Bearer {token}"))],
            body: Body::Json(json!({ "channel": channel, "text": line })),
        }],
        Service::Telegram { api, token, chats } => chats
            .iter()
            .map(|chat| json_to(format!("{api}/bot{token}/sendMessage"), json!({ "chat_id": chat, "text": line })))
            .collect(),
        Service::Smtp(_) => return None,
    };
    Some(requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::view::ContainerItem;
    use crate::notify::target::parse;

    fn entry(result: JobResult, error: Option<&str>) -> HistoryEntry {
        HistoryEntry {
            id: "j1".into(),
            container_name: "web".into(),
            image: "reg.example/app:1".into(),
            from_digest: Some("sha256:aaaaaaaaaa".into()),
            to_digest: Some("sha256:bbbbbbbbbb".into()),
            started_at: "2026-11-27T01:00:00Z".into(),
            finished_at: "2026-11-27T01:00:05Z".into(),
            result,
            error: error.map(str::to_string),
            host: None,
            kind: Default::default(),
        }
    }

    #[test]
    fn texts_name_container_image_digests_and_reason() {
        let cases = [
            (entry(JobResult::Updated, None), "updated", "Updated web (reg.example/app:1) from sha256:aaaaaaaaaa to sha256:bbbbbbbbbb."),
            (
                entry(JobResult::RolledBack, Some("exited with code 3")),
                "rolled_back",
                "Update of web (reg.example/app:1) from sha256:aaaaaaaaaa to sha256:bbbbbbbbbb was rolled back; the old container runs again. Reason: exited with code 3",
            ),
            (
                entry(JobResult::Failed, Some("pull failed")),
                "failed",
                "Update of web (reg.example/app:1) from sha256:aaaaaaaaaa to sha256:bbbbbbbbbb failed; nothing was changed. Reason: pull failed",
            ),
        ];
        for (e, kind, text) in cases {
            let event = Event::UpdateEnded(e);
            assert_eq!(event.kind(), kind);
            assert_eq!(event.text(), text);
            let body = event.json();
            assert_eq!(body["container"], "web");
            assert_eq!(body["old_digest"], "sha256:aaaaaaaaaa");
            assert_eq!(body["new_digest"], "sha256:bbbbbbbbbb");
        }
        assert!(!worth_telling(&entry(JobResult::Unchanged, None)));
        assert!(worth_telling(&entry(JobResult::Failed, Some("x"))));
    }

    fn group(image: &str, remote: &str, containers: &[(&str, &str, Status)]) -> ImageGroup {
        ImageGroup {
            image: image.into(),
            remote_digest: remote.into(),
            status: Status::Outdated,
            containers: containers
                .iter()
                .map(|(name, digest, status)| ContainerItem {
                    host: String::new(),
                    container_id: "0123456789ab".into(),
                    container_name: (*name).into(),
                    local_digest: (*digest).into(),
                    status: *status,
                    auto_update: false,
                    excluded: false,
                    monitor_only: false,
                    update_policy: Default::default(),
                })
                .collect(),
            checked_at: None,
            error: None,
            versions: Default::default(),
        }
    }

    #[test]
    fn newer_tags_are_told_once_per_set() {
        let mut g = group("app:1.0.0", "sha256:same", &[("web", "sha256:same", Status::Uptodate)]);
        g.versions.version = Some("1.0.0".into());
        g.versions.newer = Newer { patch: Some("1.0.1".into()), minor: None, major: Some("2.0.0".into()) };
        g.versions.release_notes = Some("https://github.com/acme/app/releases".into());
        let mut told = HashMap::new();
        let events = new_versions(std::slice::from_ref(&g), &mut told);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind(), "newer_tags");
        assert_eq!(events[0].title(), "shipshape: major version available for app:1.0.0");
        assert_eq!(
            events[0].text(),
            "app:1.0.0: 1.0.0 → 2.0.0 (major), 1.0.0 → 1.0.1 (patch). Release notes: https://github.com/acme/app/releases"
        );
        assert_eq!(events[0].json()["newer"], json!({"patch": "1.0.1", "major": "2.0.0"}));
        assert!(new_versions(std::slice::from_ref(&g), &mut told).is_empty(), "told once");
        g.versions.newer.major = Some("2.0.1".into());
        assert_eq!(new_versions(std::slice::from_ref(&g), &mut told).len(), 1, "a newer major is news");
    }

    #[test]
    fn a_new_version_is_told_once_per_digest() {
        let mut told = HashMap::new();
        let v1 = [group(
            "app:1",
            "sha256:new1",
            &[("a", "sha256:old", Status::Outdated), ("b", "sha256:new1", Status::Uptodate)],
        )];
        let events = new_versions(&v1, &mut told);
        assert_eq!(
            events,
            vec![Event::NewVersion {
                image: "app:1".into(),
                new_digest: "sha256:new1".into(),
                containers: vec![OutdatedContainer { name: "a".into(), digest: "sha256:old".into() }],
            }]
        );
        assert!(new_versions(&v1, &mut told).is_empty(), "the next poll tells nothing");
        let current = [group("app:1", "sha256:new1", &[("a", "sha256:new1", Status::Uptodate)])];
        assert!(new_versions(&current, &mut told).is_empty());
        let v2 = [group("app:1", "sha256:new2", &[("a", "sha256:new1", Status::Outdated)])];
        assert_eq!(new_versions(&v2, &mut told).len(), 1, "a newer digest is told again");
        let unknown = [group("db:2", "unknown", &[("d", "unknown", Status::Unknown)])];
        assert!(new_versions(&unknown, &mut told).is_empty());
    }

    #[test]
    fn each_service_gets_its_own_request() {
        let event = Event::Test;
        let req = |raw: &str| {
            let target = parse(raw, Some("http://127.0.0.1:9")).expect("target");
            http_requests(&target.service, &event).expect("http")
        };
        let r = req("generic+http://127.0.0.1:9/hook?x=1");
        assert_eq!(r[0].url, "http://127.0.0.1:9/hook?x=1");
        assert!(matches!(&r[0].body, Body::Json(v) if v["event"] == "test" && v["title"] == event.title()));
        let r = req("ntfy://:tok@127.0.0.1:9/alerts?scheme=http");
        assert_eq!(r[0].url, "http://127.0.0.1:9/alerts");
        assert!(r[0].headers.contains(&("Authorization".into(), "Bearer tok".into())));
        assert!(r[0].headers.contains(&("Title".into(), event.title())));
        let r = req("gotify://127.0.0.1:9/sub/APPTOKEN?disabletls=yes");
        assert_eq!(r[0].url, "http://127.0.0.1:9/sub/message");
        assert!(r[0].headers.contains(&("X-Gotify-Key".into(), "APPTOKEN".into())));
        let r = req("discord://dtoken@777");
        assert_eq!(r[0].url, "http://127.0.0.1:9/api/webhooks/777/dtoken");
        assert!(
            matches!(&r[0].body, Body::Json(v) if v["content"].as_str().is_some_and(|c| c.contains("test notification")))
        );
        let r = req("slack://T1/B2/C3");
        assert_eq!(r[0].url, "http://127.0.0.1:9/services/T1/B2/C3");
        let r = req("slack://xoxb:1-2-x@C9");
        assert_eq!(r[0].url, "http://127.0.0.1:9/api/chat.postMessage");
        let r = req("telegram://1:AB@telegram?chats=@c,42");
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].url, "http://127.0.0.1:9/bot1:AB/sendMessage");
        assert!(matches!(&r[1].body, Body::Json(v) if v["chat_id"] == "42"));
        let smtp = parse("smtp://h/?from=a@x&to=b@x", None).expect("smtp");
        assert!(http_requests(&smtp.service, &event).is_none());
    }
}
