//! What shipshape keeps of the engine's state: only the fields the API and the
//! checks need, so the snapshot stays small with hundreds of containers.

use std::collections::HashMap;

/// The engine's own descriptions of a container and an image, and the body
/// that creates a container: the recreate plan (`jobs`) reads and writes
/// these whole, so they are the engine's types, re-exported so that nothing
/// outside `docker/` names bollard.
pub use bollard::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse as ContainerDetails, ContainerState,
    ContainerStateStatusEnum, EndpointIpamConfig, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig,
    ImageConfig, ImageInspect as ImageDetails, Mount, MountPoint, MountType, NetworkingConfig, RestartPolicy,
    RestartPolicyNameEnum,
};

/// A running container as the engine reported it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    /// The engine it runs on (its configured name); set by that engine's watcher.
    pub host: String,
    /// Full 64-hex container id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// The reference the container was created from (`Config.Image`), which
    /// survives the tag moving to another image, unlike the list call's `Image`.
    pub image_ref: String,
    /// The id (`sha256:...`) of the image the container actually runs.
    pub image_id: String,
    /// Its labels, from the list call (no inspect): they select and order updates.
    pub labels: HashMap<String, String>,
    /// `HostConfig.NetworkMode`: `container:<name or id>` makes it depend on another.
    pub network_mode: String,
}

/// A local image: the digests it is known by in registries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    pub id: String,
    pub repo_digests: Vec<String>,
    /// Only the labels that say where the image's source and release notes
    /// live ([`RELEASE_LABELS`]): the snapshot is kept for every image, so
    /// the rest are not.
    pub labels: HashMap<String, String>,
}

/// Image labels kept in the snapshot.
pub const RELEASE_LABELS: [&str; 2] = ["org.opencontainers.image.source", "org.opencontainers.image.url"];

/// The labels of `all` worth keeping for an image.
pub fn release_labels(all: Option<HashMap<String, String>>) -> HashMap<String, String> {
    all.unwrap_or_default().into_iter().filter(|(k, _)| RELEASE_LABELS.contains(&k.as_str())).collect()
}

/// The engine state the watcher maintains and hands to the inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineSnapshot {
    pub containers: HashMap<String, Container>,
    pub images: HashMap<String, Image>,
}

/// One line of the engine's pull stream (`POST /images/create`), as the
/// engine sent it: per-layer status and byte counts, or an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PullEvent {
    /// The layer (or tag) the line is about; absent for whole-pull lines.
    pub id: Option<String>,
    /// `Pulling fs layer`, `Downloading`, `Extracting`, `Pull complete`, `Digest: ...`, `Status: ...`.
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
    /// Set when the engine reports the pull failed.
    pub error: Option<String>,
}

/// Registry credentials for a pull, sent to the engine as `X-Registry-Auth`.
/// `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PullAuth {
    pub server_address: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// An OAuth refresh token (what `docker login` stores for some registries).
    pub identity_token: Option<String>,
}

impl std::fmt::Debug for PullAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullAuth")
            .field("server_address", &self.server_address)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A container in any state (created, running, exited...), from the
/// engine's list: enough to find leftovers of an interrupted update by name
/// or label; inspect it for the rest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerEntry {
    /// Full 64-hex container id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// The id (`sha256:...`) of the image it was created from.
    pub image_id: String,
    /// The engine's word: `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    pub state: String,
    pub labels: HashMap<String, String>,
    /// `HostConfig.NetworkMode` as listed: `none`, a network, or `container:<id or name>`.
    pub network_mode: String,
}

/// The engine's registry settings (`RegistryConfig` of `GET /info`): which
/// registries it pulls from over plain http. Registry checks follow the same
/// decision, so they reach what the engine reaches and downgrade nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistrySettings {
    /// `InsecureRegistryCIDRs` as the engine spells them; `None` when it reports no registry config.
    pub insecure_cidrs: Option<Vec<String>>,
    /// `IndexConfigs`: the engine's `Secure` verdict per registry name (as the engine spells it).
    pub index_secure: HashMap<String, bool>,
}

impl RegistrySettings {
    /// The settings of several engines as one: a registry one engine pulls
    /// from over plain http is checked over plain http (checks reach what
    /// some engine reaches); a registry one engine calls insecure is insecure.
    pub fn merge(all: impl IntoIterator<Item = RegistrySettings>) -> RegistrySettings {
        let mut merged = RegistrySettings::default();
        for settings in all {
            if let Some(cidrs) = settings.insecure_cidrs {
                let into = merged.insecure_cidrs.get_or_insert_with(Vec::new);
                for cidr in cidrs {
                    if !into.contains(&cidr) {
                        into.push(cidr);
                    }
                }
            }
            for (name, secure) in settings.index_secure {
                let entry = merged.index_secure.entry(name).or_insert(secure);
                *entry = *entry && secure;
            }
        }
        merged
    }
}

/// Whether `reference` names an image by its id rather than by a repository:
/// `sha256:<hex>`, or a bare hex prefix of the image id as `docker run 91b1...` allows.
pub fn is_image_id_reference(reference: &str, image_id: &str) -> bool {
    if let Some(hex) = reference.strip_prefix("sha256:") {
        return !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    let id_hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    reference.len() >= 4
        && reference.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && id_hex.starts_with(reference)
}

/// Docker reports names as `/name`; the API shows them without the slash.
pub fn strip_name(name: &str) -> String {
    name.strip_prefix('/').unwrap_or(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_image_id_references() {
        let id = "sha256:91b119c3404d3a85b0aa7fcd109c95d328b92df775896a6cf3ce0a85d75b676d";
        let cases = [
            (id, true),
            ("sha256:91b119c3404d", true),
            ("91b119c3404d", true),
            ("91b119c3404d3a85b0aa7fcd109c95d328b92df775896a6cf3ce0a85d75b676d", true),
            ("abcdef", false), // hex, but not this image's id: a repository named abcdef
            ("nginx", false),
            ("nginx:latest", false),
            ("sha256:", false),
            ("91b", false), // too short to be an id prefix Docker accepts
        ];
        for (reference, expected) in cases {
            assert_eq!(is_image_id_reference(reference, id), expected, "{reference}");
        }
    }

    #[test]
    fn several_engines_registry_settings_merge_towards_what_some_engine_reaches() {
        let one = RegistrySettings {
            insecure_cidrs: Some(vec!["127.0.0.0/8".into()]),
            index_secure: HashMap::from([("a:5000".to_string(), true), ("b:5000".to_string(), false)]),
        };
        let two = RegistrySettings {
            insecure_cidrs: Some(vec!["127.0.0.0/8".into(), "192.0.2.0/24".into()]),
            index_secure: HashMap::from([("a:5000".to_string(), false), ("c:5000".to_string(), true)]),
        };
        let merged = RegistrySettings::merge([one, RegistrySettings::default(), two]);
        assert_eq!(merged.insecure_cidrs, Some(vec!["127.0.0.0/8".to_string(), "192.0.2.0/24".to_string()]));
        let secure = |n: &str| merged.index_secure.get(n).copied();
        assert_eq!((secure("a:5000"), secure("b:5000"), secure("c:5000")), (Some(false), Some(false), Some(true)));
        assert_eq!(RegistrySettings::merge([]), RegistrySettings::default());
    }

    #[test]
    fn strips_leading_slash() {
        assert_eq!(strip_name("/web"), "web");
        assert_eq!(strip_name("web"), "web");
    }
}
