//! The create body for a container's replacement, worked out before anything
//! is touched: whatever cannot be reproduced is refused here, while the old
//! container still runs as it was.
//!
//! The engine copies the image's User, ExposedPorts, Env, Labels, Cmd,
//! Entrypoint, Healthcheck, WorkingDir, Volumes and StopSignal into a
//! container's Config when it creates it. So a value equal to the **old**
//! image's was inherited and is left out (the new image's applies); any other
//! value is the user's and is kept. See `recreate-checklist.md` in the
//! project's reference notes for the survey behind each rule.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::docker::model::{
    ContainerCreateBody, ContainerDetails, ContainerStateStatusEnum, EndpointSettings, HealthConfig, HealthStatusEnum,
    HostConfig, ImageConfig, ImageDetails, Mount, MountPoint, MountType, NetworkingConfig, RestartPolicy,
};

/// Label on a replacement container: the job (op id) that created it, so
/// crash recovery can tell its own containers from the user's.
pub const LABEL_JOB: &str = "shipshape.job";
/// Label on a replacement container: the id of the container it replaces.
pub const LABEL_REPLACES: &str = "shipshape.replaces";
/// Compose recreates a container whose label differs from the image it
/// expects, so after an update it must name the image now run.
const COMPOSE_IMAGE_LABEL: &str = "com.docker.compose.image";

/// An Engine API version, as negotiated: which fields the engine understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }

    fn at_least(self, major: u16, minor: u16) -> bool {
        self >= Self::new(major, minor)
    }
}

impl From<(u16, u16)> for ApiVersion {
    fn from((major, minor): (u16, u16)) -> Self {
        Self::new(major, minor)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What the plan is made from: the engine's own descriptions, unchanged.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The container to replace (`GET /containers/{id}/json`).
    pub container: &'a ContainerDetails,
    /// The image the container was created from, by its id (`container.Image`);
    /// `None` when the engine no longer has it, which refuses the update.
    pub old_image: Option<&'a ImageDetails>,
    /// The image just pulled.
    pub new_image: &'a ImageDetails,
    /// The reference to create from, e.g. `127.0.0.1:5000/app:1.2`.
    pub image_ref: &'a str,
    /// The negotiated API version: fields it does not know are not sent.
    pub api: ApiVersion,
    /// For `container:<x>` network, IPC and PID modes: every id and name
    /// (without `/`) of the containers that may supply a namespace, mapped to
    /// their current name. An id prefix is resolved when it is unambiguous.
    pub suppliers: &'a HashMap<String, String>,
    /// The job's id: part of the temporary names and of the labels. Short
    /// (8 hex digits is plenty) and made of `[A-Za-z0-9_.-]`.
    pub op_id: &'a str,
}

/// Everything the recreate sequence needs, decided up front; serialisable so
/// the journal can record it before the first step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecreatePlan {
    pub op_id: String,
    /// The old container's full id.
    pub old_id: String,
    /// The container's name, without `/`: the replacement ends up with it.
    pub name: String,
    /// `<name>__upd_<op>`: the replacement's name until the swap.
    pub temp_name: String,
    /// `<name>__old_<op>`: the old container's name once set aside.
    pub aside_name: String,
    pub image_ref: String,
    /// The image the old container runs (`sha256:...`).
    pub old_image_id: String,
    /// The image the replacement must run (`sha256:...`), checked by [`verify`].
    pub new_image_id: String,
    /// The full create body for the replacement.
    pub body: ContainerCreateBody,
    /// Networks to connect after create and before start: below API 1.44 a
    /// container is created on its primary network only.
    pub connect_after_create: Vec<(String, EndpointSettings)>,
    /// The old container's restart policy, to restore on rollback (it is set
    /// to `no` while the old container is stopped).
    pub restart_policy: RestartPolicy,
    /// With AutoRemove, stopping the old container removes it: a rollback
    /// then has to recreate it from this plan.
    pub auto_remove: bool,
    /// Whether the old container was running (a rollback restarts only then).
    pub was_running: bool,
    /// The old container's stop timeout in seconds (`None`: the engine's
    /// default, 10 s on Linux; `-1`: no limit); the stop request must outlast it.
    pub stop_timeout: Option<i64>,
}

/// Why a container cannot be recreated exactly. Nothing has been touched
/// when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the engine's description of the container lacks {0}")]
    Missing(&'static str),
    #[error(
        "the image the container was created from ({0}) is gone, so the container's own settings cannot be told from the image's"
    )]
    OldImageMissing(String),
    #[error("the old image's details are for {found}, but the container runs {expected}")]
    OldImageMismatch { expected: String, found: String },
    #[error("the pulled image's details carry no id")]
    NewImageWithoutId,
    #[error("{mode} names container {target:?}, which does not exist")]
    UnknownSupplier { mode: &'static str, target: String },
    #[error("network mode {0:?} names none of the container's networks")]
    UnknownPrimaryNetwork(String),
    #[error("job id {0:?} cannot be part of a container name")]
    BadOpId(String),
    #[error("cannot be reproduced at API {api}: {what}")]
    Unsupported { api: ApiVersion, what: String },
}

/// The replacement for `input.container`: its create body and the facts the
/// recreate sequence needs.
pub fn plan_recreate(input: &PlanInput<'_>) -> Result<RecreatePlan, PlanError> {
    let op_id = input.op_id;
    if op_id.is_empty()
        || op_id.len() > 64
        || !op_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(PlanError::BadOpId(op_id.to_string()));
    }
    let c = input.container;
    let api = input.api;
    let old_id = c.id.as_deref().filter(|s| !s.is_empty()).ok_or(PlanError::Missing("Id"))?;
    let name = c.name.as_deref().map(|n| n.trim_start_matches('/')).filter(|n| !n.is_empty());
    let name = name.ok_or(PlanError::Missing("Name"))?;
    let config = c.config.as_ref().ok_or(PlanError::Missing("Config"))?;
    let host = c.host_config.as_ref().ok_or(PlanError::Missing("HostConfig"))?;
    let old_image_id = c.image.as_deref().filter(|s| !s.is_empty()).ok_or(PlanError::Missing("Image"))?;
    let old_image = input.old_image.ok_or_else(|| PlanError::OldImageMissing(old_image_id.to_string()))?;
    if let Some(found) = old_image.id.as_deref().filter(|id| *id != old_image_id) {
        return Err(PlanError::OldImageMismatch { expected: old_image_id.to_string(), found: found.to_string() });
    }
    let new_image_id = input.new_image.id.as_deref().filter(|id| !id.is_empty()).ok_or(PlanError::NewImageWithoutId)?;
    let empty_image = ImageConfig::default();
    let img = old_image.config.as_ref().unwrap_or(&empty_image);
    // The default hostname and the alias the engine adds: the id's first 12 characters.
    let short_id = old_id.get(..12).unwrap_or(old_id);

    let network_mode = host.network_mode.as_deref().unwrap_or("");
    let joins_network = network_mode.starts_with("container:");
    let host_network = network_mode == "host";
    let config_hostname = config.hostname.as_deref().unwrap_or("");

    // HostConfig: the user's, whole, with the few fixes below.
    let mut hc: HostConfig = host.clone();
    hc.network_mode = namespace_mode("network mode", host.network_mode.as_deref(), input.suppliers)?;
    hc.ipc_mode = namespace_mode("IPC mode", host.ipc_mode.as_deref(), input.suppliers)?;
    hc.pid_mode = namespace_mode("PID mode", host.pid_mode.as_deref(), input.suppliers)?;
    hc.links = if joins_network || host_network {
        None
    } else {
        non_empty(host.links.as_deref().unwrap_or(&[]).iter().map(|l| rewrite_link(l)).collect())
    };
    if joins_network || host_network {
        hc.port_bindings = None;
        hc.publish_all_ports = None;
    } else if hc.port_bindings.as_ref().is_some_and(|p| p.is_empty()) {
        hc.port_bindings = None;
    }
    if joins_network {
        hc.dns = None;
        hc.dns_options = None;
        hc.dns_search = None;
        hc.extra_hosts = None;
    }
    for device in hc.devices.iter_mut().flatten() {
        // The engine refuses a device without permissions; docker's default is rwm.
        if device.cgroup_permissions.as_deref().is_none_or(str::is_empty) {
            device.cgroup_permissions = Some("rwm".to_string());
        }
    }
    plan_mounts(&mut hc, c.mounts.as_deref().unwrap_or(&[]), api)?;

    // Config: what the user set, without what the old image set.
    let (entrypoint, cmd) = entrypoint_and_cmd(
        config.entrypoint.as_deref().unwrap_or(&[]),
        config.cmd.as_deref().unwrap_or(&[]),
        img.entrypoint.as_deref().unwrap_or(&[]),
        img.cmd.as_deref().unwrap_or(&[]),
    );
    let image_env: HashSet<&str> = img.env.iter().flatten().map(String::as_str).collect();
    let env = non_empty(config.env.iter().flatten().filter(|e| !image_env.contains(e.as_str())).cloned().collect());
    let mut labels: HashMap<String, String> = config
        .labels
        .iter()
        .flatten()
        .filter(|(k, v)| img.labels.as_ref().and_then(|l| l.get(*k)) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if labels.contains_key(COMPOSE_IMAGE_LABEL) {
        labels.insert(COMPOSE_IMAGE_LABEL.to_string(), new_image_id.to_string());
    }
    labels.insert(LABEL_JOB.to_string(), op_id.to_string());
    labels.insert(LABEL_REPLACES.to_string(), old_id.to_string());

    let image_volumes: HashSet<String> = img.volumes.iter().flatten().map(|v| clean_path(v)).collect();
    let volumes = non_empty(
        config
            .volumes
            .iter()
            .flatten()
            .map(|v| clean_path(v))
            .filter(|v| !image_volumes.contains(v))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    );
    let exposed_ports = if joins_network {
        None
    } else {
        let image_ports: HashSet<&str> = img.exposed_ports.iter().flatten().map(String::as_str).collect();
        let mut ports: BTreeSet<String> =
            config.exposed_ports.iter().flatten().filter(|p| !image_ports.contains(p.as_str())).cloned().collect();
        ports.extend(hc.port_bindings.iter().flat_map(|b| b.keys().cloned()));
        non_empty(ports.into_iter().collect())
    };
    let uts_host = host.uts_mode.as_deref() == Some("host");
    let hostname = Some(config_hostname)
        .filter(|h| !h.is_empty() && *h != short_id && !joins_network && !uts_host)
        .map(str::to_string);

    // Networks: each with what the user gave it, the primary one first.
    let (networking_config, connect_after_create) = if joins_network {
        (None, Vec::new())
    } else {
        plan_networks(c, network_mode, short_id, config_hostname, api)?
    };

    let body = ContainerCreateBody {
        hostname,
        domainname: config.domainname.clone().filter(|d| !d.is_empty()),
        user: own_value(&config.user, &img.user),
        attach_stdin: config.attach_stdin,
        attach_stdout: config.attach_stdout,
        attach_stderr: config.attach_stderr,
        exposed_ports,
        tty: config.tty,
        open_stdin: config.open_stdin,
        stdin_once: config.stdin_once,
        env,
        cmd,
        healthcheck: own_healthcheck(config.healthcheck.as_ref(), img.healthcheck.as_ref(), api),
        image: Some(input.image_ref.to_string()),
        volumes,
        working_dir: own_value(&config.working_dir, &img.working_dir),
        entrypoint,
        network_disabled: config.network_disabled,
        labels: Some(labels),
        stop_signal: own_value(&config.stop_signal, &img.stop_signal),
        stop_timeout: config.stop_timeout,
        host_config: Some(hc),
        networking_config,
        // ArgsEscaped (Windows), OnBuild and Shell belong to images.
        ..Default::default()
    };

    Ok(RecreatePlan {
        op_id: op_id.to_string(),
        old_id: old_id.to_string(),
        name: name.to_string(),
        temp_name: format!("{name}__upd_{op_id}"),
        aside_name: format!("{name}__old_{op_id}"),
        image_ref: input.image_ref.to_string(),
        old_image_id: old_image_id.to_string(),
        new_image_id: new_image_id.to_string(),
        body,
        connect_after_create,
        restart_policy: host.restart_policy.clone().unwrap_or_default(),
        auto_remove: host.auto_remove == Some(true),
        was_running: c.state.as_ref().and_then(|s| s.running) == Some(true),
        stop_timeout: config.stop_timeout,
    })
}

/// The containers whose namespaces `details` joins (`container:<x>` network,
/// IPC or PID modes), as named there (a name or an id): such a container must
/// be recreated after its supplier.
pub fn namespace_suppliers(details: &ContainerDetails) -> Vec<String> {
    let Some(host) = &details.host_config else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    for mode in [&host.network_mode, &host.ipc_mode, &host.pid_mode].into_iter().flatten() {
        if let Some(target) = mode.strip_prefix("container:").map(|t| t.trim_start_matches('/')) {
            if !target.is_empty() && !out.iter().any(|o| o == target) {
                out.push(target.to_string());
            }
        }
    }
    out
}

/// A `container:<x>` mode pointed at the supplier's current name (its id
/// changes when it is itself updated); any other mode as it is.
fn namespace_mode(
    mode_name: &'static str,
    mode: Option<&str>,
    suppliers: &HashMap<String, String>,
) -> Result<Option<String>, PlanError> {
    let Some(mode) = mode.filter(|m| !m.is_empty()) else { return Ok(None) };
    let Some(target) = mode.strip_prefix("container:") else { return Ok(Some(mode.to_string())) };
    let unknown = || PlanError::UnknownSupplier { mode: mode_name, target: target.to_string() };
    let key = target.trim_start_matches('/');
    if key.is_empty() {
        return Err(unknown());
    }
    let name = match suppliers.get(key) {
        Some(name) => name.clone(),
        None => {
            // An id prefix, as the engine accepts one; only if it names one container.
            let is_hex = key.bytes().all(|b| b.is_ascii_hexdigit());
            let names: BTreeSet<&String> = suppliers
                .iter()
                .filter(|(k, _)| is_hex && k.len() == 64 && k.starts_with(key))
                .map(|(_, name)| name)
                .collect();
            match names.into_iter().collect::<Vec<_>>().as_slice() {
                [one] => (*one).clone(),
                _ => return Err(unknown()),
            }
        }
    };
    let name = name.trim_start_matches('/');
    if name.is_empty() {
        return Err(unknown());
    }
    Ok(Some(format!("container:{name}")))
}

/// `/db:/web/db` (as inspect shows a link) → `db:db` (as create takes it).
fn rewrite_link(link: &str) -> String {
    match link.split_once(':') {
        Some((target, alias)) => {
            let alias = alias.rsplit('/').next().unwrap_or(alias);
            format!("{}:{alias}", target.trim_start_matches('/'))
        }
        None => link.trim_start_matches('/').to_string(),
    }
}

/// Entrypoint and Cmd as sent, as arrays (never flattened into a string). The
/// engine fills in the image's Cmd only when no Entrypoint is sent, so the two
/// are decided together.
fn entrypoint_and_cmd(
    entrypoint: &[String],
    cmd: &[String],
    image_entrypoint: &[String],
    image_cmd: &[String],
) -> (Option<Vec<String>>, Option<Vec<String>>) {
    if entrypoint != image_entrypoint {
        // The user's entrypoint; an empty one reset the image's (`--entrypoint ""`),
        // which `[""]` does again.
        let entrypoint = if entrypoint.is_empty() { vec![String::new()] } else { entrypoint.to_vec() };
        return (Some(entrypoint), non_empty(cmd.to_vec()));
    }
    if cmd == image_cmd {
        return (None, None);
    }
    if cmd.is_empty() && !entrypoint.is_empty() {
        // The image's Cmd would have been filled in had the user not named
        // the entrypoint: they did, with no command.
        return (Some(entrypoint.to_vec()), None);
    }
    (None, non_empty(cmd.to_vec()))
}

/// The container's healthcheck minus the old image's, field by field: the
/// engine fills every zero field from the image.
fn own_healthcheck(mine: Option<&HealthConfig>, image: Option<&HealthConfig>, api: ApiVersion) -> Option<HealthConfig> {
    let mine = mine?;
    let image = image.cloned().unwrap_or_default();
    fn num(mine: Option<i64>, image: Option<i64>) -> Option<i64> {
        let m = mine.unwrap_or(0);
        (m != 0 && m != image.unwrap_or(0)).then_some(m)
    }
    let test = mine.test.as_deref().unwrap_or(&[]);
    let hc = HealthConfig {
        test: (!test.is_empty() && test != image.test.as_deref().unwrap_or(&[])).then(|| test.to_vec()),
        interval: num(mine.interval, image.interval),
        timeout: num(mine.timeout, image.timeout),
        retries: num(mine.retries, image.retries),
        start_period: num(mine.start_period, image.start_period),
        // Silently zeroed by engines below 1.44.
        start_interval: if api.at_least(1, 44) { num(mine.start_interval, image.start_interval) } else { None },
    };
    (hc != HealthConfig::default()).then_some(hc)
}

/// A string setting unless it is the old image's (absent and empty alike).
fn own_value(mine: &Option<String>, image: &Option<String>) -> Option<String> {
    let m = mine.as_deref().unwrap_or("");
    (!m.is_empty() && m != image.as_deref().unwrap_or("")).then(|| m.to_string())
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// A container path as the engine compares them: no trailing slash.
fn clean_path(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

/// A `Binds` entry split as the engine does on Linux: `dst`, `dst:mode`,
/// `src:dst` or `src:dst:mode` (a destination is an absolute path, a mode never is).
fn split_bind(bind: &str) -> (Option<&str>, &str, Option<&str>) {
    let parts: Vec<&str> = bind.splitn(3, ':').collect();
    match parts.as_slice() {
        [dst] => (None, dst, None),
        [a, b] if b.starts_with('/') => (Some(a), b, None),
        [a, b] => (None, a, Some(b)),
        [a, b, c] => (Some(a), b, Some(c)),
        _ => (None, bind, None),
    }
}

/// Keeps every volume's data: anonymous volumes (which a new container would
/// get fresh and empty) are mounted again by name. Fills in `hc.binds` and
/// `hc.mounts`. A `Config.Volumes` entry for a pinned destination may stay:
/// the engine creates no volume where something is mounted already.
fn plan_mounts(hc: &mut HostConfig, mounted: &[MountPoint], api: ApiVersion) -> Result<(), PlanError> {
    // The volume the container has at each destination, by name.
    let volume_at: HashMap<String, &str> = mounted
        .iter()
        .filter(|m| m.typ.as_deref() == Some("volume"))
        .filter_map(|m| Some((clean_path(m.destination.as_deref()?), m.name.as_deref().filter(|n| !n.is_empty())?)))
        .collect();
    let mut covered: HashSet<String> = HashSet::new();

    if let Some(binds) = &mut hc.binds {
        for bind in binds.iter_mut() {
            let (source, destination, mode) = split_bind(bind);
            let destination = clean_path(destination);
            if source.is_none() {
                // `Binds: ["/data"]`: an anonymous volume by another route.
                if let Some(name) = volume_at.get(&destination) {
                    *bind = match mode {
                        Some(mode) => format!("{name}:{destination}:{mode}"),
                        None => format!("{name}:{destination}"),
                    };
                }
            }
            covered.insert(destination);
        }
    }
    for m in hc.mounts.iter_mut().flatten() {
        let target = clean_path(m.target.as_deref().unwrap_or(""));
        if m.typ == Some(MountType::VOLUME) && m.source.as_deref().is_none_or(str::is_empty) {
            // `--mount type=volume,target=/x`: anonymous, named by the engine.
            if let Some(name) = volume_at.get(&target) {
                m.source = Some((*name).to_string());
            }
        }
        check_mount_version(m, api)?;
        covered.insert(target);
    }
    covered.extend(hc.tmpfs.iter().flat_map(|t| t.keys().map(|k| clean_path(k))));

    for m in mounted.iter().filter(|m| m.typ.as_deref() == Some("volume")) {
        let (Some(name), Some(destination)) = (m.name.as_deref(), m.destination.as_deref()) else { continue };
        let destination = clean_path(destination);
        if name.is_empty() || covered.contains(&destination) {
            continue;
        }
        hc.mounts.get_or_insert_with(Vec::new).push(Mount {
            target: Some(destination.clone()),
            source: Some(name.to_string()),
            typ: Some(MountType::VOLUME),
            read_only: (m.rw == Some(false)).then_some(true),
            ..Default::default()
        });
        covered.insert(destination);
    }
    Ok(())
}

/// Mount options older engines refuse: the old container cannot have them
/// unless it was created through a newer API than the one negotiated now.
fn check_mount_version(m: &Mount, api: ApiVersion) -> Result<(), PlanError> {
    let target = m.target.as_deref().unwrap_or("");
    let needs = |major, minor, what: &str| {
        if api.at_least(major, minor) {
            Ok(())
        } else {
            Err(PlanError::Unsupported {
                api,
                what: format!("the mount at {target} uses {what} (API {major}.{minor})"),
            })
        }
    };
    if m.typ == Some(MountType::IMAGE) {
        needs(1, 48, "an image mount")?;
    }
    if m.volume_options.as_ref().and_then(|o| o.subpath.as_deref()).is_some_and(|s| !s.is_empty()) {
        needs(1, 45, "a volume subpath")?;
    }
    if let Some(o) = &m.bind_options {
        if o.read_only_force_recursive == Some(true) || o.read_only_non_recursive == Some(true) {
            needs(1, 44, "a recursive read-only option")?;
        }
    }
    Ok(())
}

/// The create call's networks, and those to connect before start.
type NetworkPlan = (Option<NetworkingConfig>, Vec<(String, EndpointSettings)>);

fn plan_networks(
    c: &ContainerDetails,
    network_mode: &str,
    short_id: &str,
    hostname: &str,
    api: ApiVersion,
) -> Result<NetworkPlan, PlanError> {
    let networks = c.network_settings.as_ref().and_then(|n| n.networks.as_ref());
    let Some(networks) = networks.filter(|n| !n.is_empty()) else { return Ok((None, Vec::new())) };
    let primary = primary_network(network_mode, networks)?;
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    let mut at_create = HashMap::new();
    let mut after = Vec::new();
    for name in names {
        let endpoint = endpoint_config(name, &networks[name], short_id, hostname, api);
        if endpoint.mac_address.is_some() && !api.at_least(1, 44) {
            // Below 1.44 a MAC goes only in Config.MacAddress, which bollard's
            // create body has no field for, and only for the primary network.
            return Err(PlanError::Unsupported {
                api,
                what: format!("the MAC address set on network {name} needs API 1.44"),
            });
        }
        if *name == primary || api.at_least(1, 44) {
            at_create.insert(name.clone(), endpoint);
        } else {
            after.push((name.clone(), endpoint));
        }
    }
    Ok((Some(NetworkingConfig { endpoints_config: Some(at_create) }), after))
}

/// The network `HostConfig.NetworkMode` names (`default` is `bridge`), not
/// the first of `Networks`: the one the container is created on.
fn primary_network(mode: &str, networks: &HashMap<String, EndpointSettings>) -> Result<String, PlanError> {
    let wanted = if mode.is_empty() || mode == "default" { "bridge" } else { mode };
    if networks.contains_key(wanted) {
        return Ok(wanted.to_string());
    }
    // A network given by id (or id prefix) when the container was created.
    let by_id: Vec<&String> = networks
        .iter()
        .filter(|(_, ep)| ep.network_id.as_deref().is_some_and(|id| !id.is_empty() && id.starts_with(wanted)))
        .map(|(name, _)| name)
        .collect();
    match by_id.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(PlanError::UnknownPrimaryNetwork(mode.to_string())),
    }
}

/// What the user configured on a network, without the engine's runtime state
/// (address, gateway, endpoint id, DNS names) and the aliases it adds itself.
fn endpoint_config(
    network: &str,
    ep: &EndpointSettings,
    short_id: &str,
    hostname: &str,
    api: ApiVersion,
) -> EndpointSettings {
    let predefined = matches!(network, "bridge" | "host" | "none");
    let aliases = if predefined {
        None
    } else {
        // Below 1.45 inspect lists the short id and the hostname among the
        // aliases; the engine adds them to the new container itself.
        let mut seen = HashSet::new();
        non_empty(
            ep.aliases
                .iter()
                .flatten()
                .filter(|a| !a.is_empty() && a.as_str() != short_id)
                .filter(|a| api.at_least(1, 45) || a.as_str() != hostname)
                .filter(|a| seen.insert(a.as_str()))
                .cloned()
                .collect(),
        )
    };
    let ipam_config = ep.ipam_config.clone().filter(|i| {
        i.ipv4_address.as_deref().is_some_and(|a| !a.is_empty())
            || i.ipv6_address.as_deref().is_some_and(|a| !a.is_empty())
            || i.link_local_ips.as_ref().is_some_and(|l| !l.is_empty())
    });
    EndpointSettings {
        ipam_config,
        links: non_empty(ep.links.iter().flatten().map(|l| rewrite_link(l)).collect()),
        mac_address: user_mac(ep),
        aliases,
        driver_opts: ep.driver_opts.clone().filter(|o| !o.is_empty()),
        // Silently zeroed by engines below 1.48.
        gw_priority: ep.gw_priority.filter(|&p| p != 0 && api.at_least(1, 48)),
        ..Default::default()
    }
}

/// The endpoint's MAC if the user chose it. The engine generates
/// `02:42:` followed by the IPv4 address; copying that would pin an address
/// that belongs to the old IP (and clash once another container gets it).
fn user_mac(ep: &EndpointSettings) -> Option<String> {
    let mac = ep.mac_address.as_deref().map(str::trim).filter(|m| !m.is_empty())?;
    let lower = mac.to_ascii_lowercase();
    let generated = match ep.ip_address.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) {
        Some(ip) => {
            let [a, b, c, d] = ip.octets();
            lower == format!("02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
        }
        // No address to compare with (container stopped): the engine's prefix decides.
        None => lower.starts_with("02:42:"),
    };
    (!generated).then(|| mac.to_string())
}

/// How a freshly started replacement is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// It passes: healthy, or (without a healthcheck) still running when the
    /// verify time is over.
    Ok,
    /// Nothing wrong so far; look again. With a verify time of 0, one look
    /// that answers `Wait` is a pass.
    Wait,
    /// It fails; roll back.
    Failed(String),
}

/// Judges the replacement from its inspect: on the expected image, running,
/// not restarting or restarted, not OOM-killed, and healthy when it has a
/// healthcheck. `window_over`: the verify time has run out, so what is still
/// undecided is decided (running without healthcheck passes, a healthcheck
/// still starting fails).
pub fn verify(details: &ContainerDetails, expected_image_id: &str, window_over: bool) -> VerifyOutcome {
    let image = details.image.as_deref().unwrap_or("");
    if image != expected_image_id {
        return VerifyOutcome::Failed(format!("runs image {image:?}, not the pulled {expected_image_id}"));
    }
    let Some(state) = &details.state else {
        return VerifyOutcome::Failed("the engine reports no state for it".to_string());
    };
    let exit_code = state.exit_code.unwrap_or(0);
    if state.oom_killed == Some(true) {
        return VerifyOutcome::Failed("killed for lack of memory (OOM)".to_string());
    }
    if state.restarting == Some(true) {
        return VerifyOutcome::Failed(format!("restarting after exiting with code {exit_code}"));
    }
    let restarts = details.restart_count.unwrap_or(0);
    if restarts > 0 {
        return VerifyOutcome::Failed(format!("restarted {restarts} time{}", if restarts == 1 { "" } else { "s" }));
    }
    if state.paused == Some(true) {
        return VerifyOutcome::Failed("paused".to_string());
    }
    if state.running != Some(true) {
        if state.status == Some(ContainerStateStatusEnum::CREATED) && !window_over {
            return VerifyOutcome::Wait;
        }
        let error = state.error.as_deref().map(str::trim).filter(|e| !e.is_empty());
        return VerifyOutcome::Failed(match (state.status, error) {
            (Some(ContainerStateStatusEnum::CREATED), _) => "never started".to_string(),
            (_, Some(error)) => format!("exited with code {exit_code}: {error}"),
            _ => format!("exited with code {exit_code}"),
        });
    }
    match state.health.as_ref().and_then(|h| h.status) {
        Some(HealthStatusEnum::HEALTHY) => VerifyOutcome::Ok,
        Some(HealthStatusEnum::UNHEALTHY) => {
            let last = state.health.as_ref().and_then(|h| h.log.as_ref()).and_then(|l| l.last());
            let output = last.and_then(|r| r.output.as_deref()).map(short_output).filter(|o| !o.is_empty());
            VerifyOutcome::Failed(match output {
                Some(output) => format!("unhealthy: {output}"),
                None => "unhealthy".to_string(),
            })
        }
        Some(HealthStatusEnum::STARTING) if window_over => {
            VerifyOutcome::Failed("not healthy within the verify time".to_string())
        }
        Some(HealthStatusEnum::STARTING) => VerifyOutcome::Wait,
        _ if window_over => VerifyOutcome::Ok,
        _ => VerifyOutcome::Wait,
    }
}

/// A healthcheck's output, on one line and short enough for a status.
fn short_output(output: &str) -> String {
    let line = output.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const ID: &str = "70a9a234472dc0e4336e8e16230e118362c059054b9fd3edaf6c0a66a9eaf7ae";
    const SHORT: &str = "70a9a234472d";
    const OLD: &str = "sha256:2753b819d54eafe315f9bc6c46d1f0e60a6128238f9c06fe47a8841f5861d7fe";
    const NEW: &str = "sha256:d4c2a802f539135a7667724d412c5a1b34582124f1ebc5a120c67c9ec135cede";
    const DB_ID: &str = "5f1c0b0e9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
    const ANON: &str = "4db7b14c21a2d2661a595d0d883254c1d04a5113821734fc27aa9ec859444a63";
    const ANON2: &str = "a7ff409bc714b9a663d2b7a13ca040f7b0f9217bf9ee4185a266409abd90c743";
    const OP: &str = "0a1b2c3d";
    const REF: &str = "127.0.0.1:5000/app:1.2";
    const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// The old image: everything the engine copies into a container's Config.
    fn old_image() -> Value {
        json!({
            "Id": OLD,
            "Config": {
                "User": "app",
                "ExposedPorts": {"80/tcp": {}},
                "Env": [PATH, "VERSION=1"],
                "Cmd": ["serve"],
                "Entrypoint": ["/entry.sh"],
                "Healthcheck": {"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 30_000_000_000i64, "Timeout": 5_000_000_000i64, "Retries": 3},
                "Volumes": {"/var/lib/app": {}},
                "WorkingDir": "/app",
                "Labels": {"org.opencontainers.image.version": "1", "maintainer": "ops"},
                "StopSignal": "SIGQUIT",
                "OnBuild": null,
                "Shell": ["/bin/sh", "-c"]
            }
        })
    }

    /// The new image changes ENV, labels, healthcheck and stop signal.
    fn new_image() -> Value {
        json!({
            "Id": NEW,
            "Config": {
                "User": "app",
                "Env": [PATH, "VERSION=2"],
                "Cmd": ["serve"],
                "Entrypoint": ["/entry.sh"],
                "Healthcheck": {"Test": ["CMD-SHELL", "wget -q localhost/health"], "Interval": 10_000_000_000i64},
                "Labels": {"org.opencontainers.image.version": "2", "maintainer": "ops"},
                "StopSignal": "SIGTERM"
            }
        })
    }

    /// A container created with nothing but a name and a network, as a 20.10
    /// engine (API 1.41) describes it: every Config field inherited from the
    /// old image, the image's VOLUME as an anonymous volume, the short id
    /// among the aliases, a generated MAC.
    fn container() -> Value {
        let text = r#"{
            "Id": "70a9a234472dc0e4336e8e16230e118362c059054b9fd3edaf6c0a66a9eaf7ae",
            "Created": "2026-11-27T00:49:59.9Z",
            "Path": "/entry.sh",
            "Args": ["serve"],
            "State": {"Status": "running", "Running": true, "Paused": false, "Restarting": false, "OOMKilled": false,
                      "Dead": false, "Pid": 17949, "ExitCode": 0, "Error": "",
                      "StartedAt": "2026-11-27T00:50:00.588680126Z", "FinishedAt": "0001-01-01T00:00:00Z"},
            "Image": "sha256:2753b819d54eafe315f9bc6c46d1f0e60a6128238f9c06fe47a8841f5861d7fe",
            "Name": "/web",
            "RestartCount": 0,
            "Driver": "vfs",
            "Mounts": [
                {"Type": "volume", "Name": "4db7b14c21a2d2661a595d0d883254c1d04a5113821734fc27aa9ec859444a63",
                 "Source": "/var/lib/docker/volumes/4db7b14c21a2d2661a595d0d883254c1d04a5113821734fc27aa9ec859444a63/_data",
                 "Destination": "/var/lib/app", "Driver": "local", "Mode": "", "RW": true, "Propagation": ""}
            ],
            "Config": {
                "Hostname": "70a9a234472d", "Domainname": "", "User": "app",
                "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
                "ExposedPorts": {"80/tcp": {}},
                "Tty": false, "OpenStdin": false, "StdinOnce": false,
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "VERSION=1"],
                "Cmd": ["serve"],
                "Healthcheck": {"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 30000000000, "Timeout": 5000000000, "Retries": 3},
                "Image": "127.0.0.1:5000/app:1.2",
                "Volumes": {"/var/lib/app": {}},
                "WorkingDir": "/app",
                "Entrypoint": ["/entry.sh"],
                "OnBuild": null,
                "Labels": {"org.opencontainers.image.version": "1", "maintainer": "ops"},
                "StopSignal": "SIGQUIT"
            },
            "HostConfig": {
                "Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
                "NetworkMode": "lab-a", "PortBindings": {}, "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
                "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": null, "CapAdd": null, "CapDrop": null,
                "CgroupnsMode": "host", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null, "GroupAdd": null,
                "IpcMode": "private", "Cgroup": "", "Links": null, "OomScoreAdj": 0, "PidMode": "", "Privileged": false,
                "PublishAllPorts": false, "ReadonlyRootfs": false, "SecurityOpt": null, "UTSMode": "", "UsernsMode": "",
                "ShmSize": 67108864, "Runtime": "runc", "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0,
                "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
                "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [],
                "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "",
                "CpusetMems": "", "Devices": [], "DeviceCgroupRules": null, "DeviceRequests": null,
                "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": null, "OomKillDisable": false,
                "PidsLimit": null, "Ulimits": [], "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
                "MaskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/sys/firmware"],
                "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
            },
            "NetworkSettings": {
                "SandboxID": "49130798fd7df293e1a1f45594c661492c4490453b70cd9360744d4c75feaec4",
                "SandboxKey": "/var/run/docker/netns/49130798fd7d",
                "Ports": {},
                "Networks": {
                    "lab-a": {
                        "IPAMConfig": null, "Links": null, "Aliases": ["70a9a234472d"],
                        "NetworkID": "ad5cc1e17ea79c0ccd2cdf7506f8a71ed608795f04939eeaaed21a5efb06401e",
                        "EndpointID": "239ed96dd01831ea6f6aaf7349ea0303118f038ee52a8605dc028b74575e50d8",
                        "Gateway": "198.19.250.1", "IPAddress": "198.19.250.2", "IPPrefixLen": 24, "IPv6Gateway": "",
                        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "02:42:c6:13:fa:02", "DriverOpts": null
                    }
                }
            }
        }"#;
        serde_json::from_str(text).unwrap()
    }

    /// JSON merge patch (RFC 7386): objects merge, `null` removes, anything else replaces.
    fn merge(target: &mut Value, patch: &Value) {
        match (target, patch) {
            (Value::Object(t), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            (t, p) => *t = p.clone(),
        }
    }

    fn patched(mut base: Value, patch: &Value) -> Value {
        merge(&mut base, patch);
        base
    }

    fn suppliers() -> HashMap<String, String> {
        [(DB_ID, "db"), ("db", "db"), ("cache-old", "cache")].into_iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn plan_for(container: &Value, old: Option<&Value>, api: (u16, u16)) -> Result<RecreatePlan, PlanError> {
        let container: ContainerDetails = serde_json::from_value(container.clone()).unwrap();
        let old: Option<ImageDetails> = old.map(|o| serde_json::from_value(o.clone()).unwrap());
        let new: ImageDetails = serde_json::from_value(new_image()).unwrap();
        let suppliers = suppliers();
        plan_recreate(&PlanInput {
            container: &container,
            old_image: old.as_ref(),
            new_image: &new,
            image_ref: REF,
            api: api.into(),
            suppliers: &suppliers,
            op_id: OP,
        })
    }

    fn job_labels(extra: Value) -> Value {
        patched(json!({"shipshape.job": OP, "shipshape.replaces": ID}), &extra)
    }

    fn anon_mount(name: &str, target: &str) -> Value {
        json!({"Target": target, "Source": name, "Type": "volume"})
    }

    /// Each row: a patch to the container's inspect, one to the old image's,
    /// the API version, and what must be (or, `None`, must not be) at these
    /// places of the create body as sent.
    type Row = (&'static str, Value, Value, (u16, u16), Vec<(&'static str, Option<Value>)>);

    fn rows() -> Vec<Row> {
        let v144 = (1, 44);
        vec![
            (
                "everything inherited: only the image reference, the job's labels and the kept volume",
                json!({}),
                json!({}),
                v144,
                vec![
                    ("/Image", Some(json!(REF))),
                    ("/Env", None),
                    ("/Cmd", None),
                    ("/Entrypoint", None),
                    ("/Healthcheck", None),
                    ("/User", None),
                    ("/WorkingDir", None),
                    ("/StopSignal", None),
                    ("/ExposedPorts", None),
                    ("/Volumes", None),
                    ("/Hostname", None),
                    ("/Domainname", None),
                    ("/Shell", None),
                    ("/OnBuild", None),
                    ("/ArgsEscaped", None),
                    ("/Labels", Some(job_labels(json!({})))),
                    ("/HostConfig/Mounts", Some(json!([anon_mount(ANON, "/var/lib/app")]))),
                    ("/HostConfig/RestartPolicy", Some(json!({"Name": "unless-stopped", "MaximumRetryCount": 0}))),
                    ("/HostConfig/NetworkMode", Some(json!("lab-a"))),
                    ("/HostConfig/PortBindings", None),
                    ("/HostConfig/LogConfig", Some(json!({"Type": "json-file", "Config": {}}))),
                ],
            ),
            (
                "env: the user's entries stay, the old image's go (its changed VERSION then applies)",
                json!({"Config": {"Env": [PATH, "VERSION=1", "FOO=bar", "EMPTY="]}}),
                json!({}),
                v144,
                vec![("/Env", Some(json!(["FOO=bar", "EMPTY="])))],
            ),
            (
                "env: a value the user overrode stays, over the new image's",
                json!({"Config": {"Env": [PATH, "VERSION=custom"]}}),
                json!({}),
                v144,
                vec![("/Env", Some(json!(["VERSION=custom"])))],
            ),
            (
                "env: an old image without env inherits nothing",
                json!({"Config": {"Env": [PATH, "VERSION=1"]}}),
                json!({"Config": {"Env": null}}),
                v144,
                vec![("/Env", Some(json!([PATH, "VERSION=1"])))],
            ),
            (
                "labels: by key and value; the user's changed value stays",
                json!({"Config": {"Labels": {"org.opencontainers.image.version": "1", "maintainer": "me", "team": "web", "shipshape.job": "old-op"}}}),
                json!({}),
                v144,
                vec![("/Labels", Some(job_labels(json!({"maintainer": "me", "team": "web"}))))],
            ),
            (
                "labels: compose's image label names the new image",
                json!({"Config": {"Labels": {"com.docker.compose.image": OLD, "com.docker.compose.service": "web"}}}),
                json!({}),
                v144,
                vec![(
                    "/Labels",
                    Some(job_labels(json!({"com.docker.compose.image": NEW, "com.docker.compose.service": "web"}))),
                )],
            ),
            (
                "entrypoint inherited (tini), the user's command: the command only",
                json!({"Config": {"Entrypoint": ["tini", "--"], "Cmd": ["myapp", "--port", "8080"]}}),
                json!({"Config": {"Entrypoint": ["tini", "--"], "Cmd": ["myapp"]}}),
                v144,
                vec![("/Entrypoint", None), ("/Cmd", Some(json!(["myapp", "--port", "8080"])))],
            ),
            (
                "the user's entrypoint [sh, -c] with a command: both, as arrays",
                json!({"Config": {"Entrypoint": ["sh", "-c"], "Cmd": ["echo hi && sleep 100"]}}),
                json!({}),
                v144,
                vec![("/Entrypoint", Some(json!(["sh", "-c"]))), ("/Cmd", Some(json!(["echo hi && sleep 100"])))],
            ),
            (
                "the user's entrypoint [tini, --] over the image's: both, not flattened",
                json!({"Config": {"Entrypoint": ["tini", "--"], "Cmd": ["serve"]}}),
                json!({}),
                v144,
                vec![("/Entrypoint", Some(json!(["tini", "--"]))), ("/Cmd", Some(json!(["serve"])))],
            ),
            (
                "entrypoint reset with --entrypoint \"\": reset again",
                json!({"Config": {"Entrypoint": null, "Cmd": ["sleep", "1"]}}),
                json!({}),
                v144,
                vec![("/Entrypoint", Some(json!([""]))), ("/Cmd", Some(json!(["sleep", "1"])))],
            ),
            (
                "entrypoint named as the image's, without a command: kept, so no command is filled in",
                json!({"Config": {"Entrypoint": ["/entry.sh"], "Cmd": null}}),
                json!({}),
                v144,
                vec![("/Entrypoint", Some(json!(["/entry.sh"]))), ("/Cmd", None)],
            ),
            (
                "no entrypoint anywhere, the user's command",
                json!({"Config": {"Entrypoint": null, "Cmd": ["sh", "-c", "sleep 100"]}}),
                json!({"Config": {"Entrypoint": null, "Cmd": ["sh"]}}),
                v144,
                vec![("/Entrypoint", None), ("/Cmd", Some(json!(["sh", "-c", "sleep 100"])))],
            ),
            (
                "healthcheck: only the field the user changed; the new image fills the rest",
                json!({"Config": {"Healthcheck": {"Interval": 5_000_000_000i64}}}),
                json!({}),
                v144,
                vec![("/Healthcheck", Some(json!({"Interval": 5_000_000_000i64})))],
            ),
            (
                "healthcheck: the user's test and retries",
                json!({"Config": {"Healthcheck": {"Test": ["CMD", "/bin/check"], "Retries": 10}}}),
                json!({}),
                v144,
                vec![("/Healthcheck", Some(json!({"Test": ["CMD", "/bin/check"], "Retries": 10})))],
            ),
            (
                "healthcheck: --no-healthcheck stays off",
                json!({"Config": {"Healthcheck": {"Test": ["NONE"], "Interval": null, "Timeout": null, "Retries": null}}}),
                json!({}),
                v144,
                vec![("/Healthcheck", Some(json!({"Test": ["NONE"]})))],
            ),
            (
                "healthcheck: the user's own on an image without one, StartInterval at 1.44",
                json!({"Config": {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000i64, "Timeout": null, "Retries": null, "StartInterval": 500_000_000i64}}}),
                json!({"Config": {"Healthcheck": null}}),
                v144,
                vec![(
                    "/Healthcheck",
                    Some(json!({"Test": ["CMD", "true"], "Interval": 1_000_000_000i64, "StartInterval": 500_000_000i64})),
                )],
            ),
            (
                "healthcheck: StartInterval is not sent below 1.44",
                json!({"Config": {"Healthcheck": {"StartInterval": 500_000_000i64}}}),
                json!({}),
                (1, 43),
                vec![("/Healthcheck", None)],
            ),
            (
                "user, working dir and stop signal the user set stay",
                json!({"Config": {"User": "1000:1000", "WorkingDir": "/srv", "StopSignal": "SIGINT"}}),
                json!({}),
                v144,
                vec![
                    ("/User", Some(json!("1000:1000"))),
                    ("/WorkingDir", Some(json!("/srv"))),
                    ("/StopSignal", Some(json!("SIGINT"))),
                ],
            ),
            (
                "absent and empty compare equal",
                json!({"Config": {"User": "", "WorkingDir": null, "Labels": null, "Env": null, "Volumes": null, "ExposedPorts": null}}),
                json!({"Config": {"User": null, "WorkingDir": "", "Labels": {}, "Env": [], "Volumes": null, "ExposedPorts": {}}}),
                v144,
                vec![("/User", None), ("/WorkingDir", None), ("/Env", None), ("/Volumes", None), ("/ExposedPorts", None)],
            ),
            (
                "hostname: the user's stays",
                json!({"Config": {"Hostname": "myhost", "Domainname": "example.test"}}),
                json!({}),
                v144,
                vec![("/Hostname", Some(json!("myhost"))), ("/Domainname", Some(json!("example.test")))],
            ),
            (
                "hostname: dropped with UTSMode=host",
                json!({"Config": {"Hostname": "buildhost"}, "HostConfig": {"UTSMode": "host"}}),
                json!({}),
                v144,
                vec![("/Hostname", None), ("/HostConfig/UTSMode", Some(json!("host")))],
            ),
            (
                "terminal, stdin, attach flags and stop timeout copied",
                json!({"Config": {"Tty": true, "OpenStdin": true, "StdinOnce": true, "AttachStdin": true, "AttachStdout": true, "AttachStderr": true, "StopTimeout": 300}}),
                json!({}),
                v144,
                vec![
                    ("/Tty", Some(json!(true))),
                    ("/OpenStdin", Some(json!(true))),
                    ("/StdinOnce", Some(json!(true))),
                    ("/AttachStdin", Some(json!(true))),
                    ("/AttachStdout", Some(json!(true))),
                    ("/AttachStderr", Some(json!(true))),
                    ("/StopTimeout", Some(json!(300))),
                ],
            ),
            (
                "ports: the requested binding with its host address; exposed minus the image's plus the bound",
                json!({
                    "Config": {"ExposedPorts": {"80/tcp": {}, "443/tcp": {}, "9000/udp": {}}},
                    "HostConfig": {"PortBindings": {"443/tcp": [{"HostIp": "127.0.0.2", "HostPort": "8443"}], "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}},
                    "NetworkSettings": {"Ports": {"443/tcp": [{"HostIp": "127.0.0.2", "HostPort": "8443"}], "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]}}
                }),
                json!({}),
                v144,
                vec![
                    ("/ExposedPorts", Some(json!({"443/tcp": {}, "8080/tcp": {}, "9000/udp": {}}))),
                    (
                        "/HostConfig/PortBindings",
                        Some(json!({"443/tcp": [{"HostIp": "127.0.0.2", "HostPort": "8443"}], "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})),
                    ),
                ],
            ),
            (
                "container: network mode: pointed at the supplier's name; no hostname, ports, dns, hosts, links, networks",
                json!({
                    "Config": {"Hostname": "db-host", "ExposedPorts": {"80/tcp": {}, "9000/tcp": {}}},
                    "HostConfig": {
                        "NetworkMode": format!("container:{DB_ID}"),
                        "PortBindings": {"9000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}]},
                        "PublishAllPorts": true,
                        "Dns": ["198.18.0.53"], "DnsSearch": ["lab.test"], "DnsOptions": ["ndots:1"],
                        "ExtraHosts": ["db.test:198.18.0.5"], "Links": ["/cache:/web/cache"]
                    },
                    "NetworkSettings": {"Networks": null}
                }),
                json!({}),
                v144,
                vec![
                    ("/HostConfig/NetworkMode", Some(json!("container:db"))),
                    ("/Hostname", None),
                    ("/ExposedPorts", None),
                    ("/HostConfig/PortBindings", None),
                    ("/HostConfig/PublishAllPorts", None),
                    ("/HostConfig/Dns", None),
                    ("/HostConfig/DnsSearch", None),
                    ("/HostConfig/DnsOptions", None),
                    ("/HostConfig/ExtraHosts", None),
                    ("/HostConfig/Links", None),
                    ("/NetworkingConfig", None),
                ],
            ),
            (
                "container: IPC and PID modes by name or id prefix, pointed at the current name",
                json!({"HostConfig": {"IpcMode": format!("container:{}", &DB_ID[..12]), "PidMode": "container:cache-old"}}),
                json!({}),
                v144,
                vec![
                    ("/HostConfig/IpcMode", Some(json!("container:db"))),
                    ("/HostConfig/PidMode", Some(json!("container:cache"))),
                    ("/HostConfig/NetworkMode", Some(json!("lab-a"))),
                ],
            ),
            (
                "host network: no port bindings or links, hostname the user's",
                json!({
                    "Config": {"Hostname": "node1"},
                    "HostConfig": {"NetworkMode": "host", "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "80"}]}, "Links": ["/db:/web/db"]},
                    "NetworkSettings": {"Networks": {"lab-a": null, "host": {"NetworkID": "0e75dc5fec43", "EndpointID": "x", "Aliases": null}}}
                }),
                json!({}),
                v144,
                vec![
                    ("/HostConfig/PortBindings", None),
                    ("/HostConfig/Links", None),
                    ("/Hostname", Some(json!("node1"))),
                    ("/NetworkingConfig/EndpointsConfig", Some(json!({"host": {}}))),
                ],
            ),
            (
                "default bridge with links: links rewritten, no aliases on bridge, generated MAC dropped",
                json!({
                    "HostConfig": {"NetworkMode": "default", "Links": ["/db:/web/db", "/cache-1:/web/cache"]},
                    "NetworkSettings": {"Networks": {"lab-a": null, "bridge": {
                        "Aliases": null, "NetworkID": "1f2e", "EndpointID": "e1", "Gateway": "172.17.0.1",
                        "IPAddress": "172.17.0.3", "IPPrefixLen": 16, "MacAddress": "02:42:ac:11:00:03"}}}
                }),
                json!({}),
                v144,
                vec![
                    ("/HostConfig/Links", Some(json!(["db:db", "cache-1:cache"]))),
                    ("/HostConfig/NetworkMode", Some(json!("default"))),
                    ("/NetworkingConfig/EndpointsConfig", Some(json!({"bridge": {}}))),
                ],
            ),
            (
                "host config carried whole: GPUs, caps, resources, ulimits, logs, hosts, tmpfs, devices (with rwm)",
                json!({"HostConfig": {
                    "DeviceRequests": [{"Driver": "nvidia", "Count": -1, "DeviceIDs": null, "Capabilities": [["gpu", "compute"]], "Options": {}}],
                    "CapAdd": ["NET_ADMIN"], "CapDrop": ["MKNOD"], "Memory": 268435456, "NanoCpus": 500000000,
                    "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
                    "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}},
                    "ExtraHosts": ["registry.test:127.0.0.1"], "Tmpfs": {"/run": "rw,size=64m"},
                    "Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": ""},
                                {"PathOnHost": "/dev/null", "PathInContainer": "/dev/null2", "CgroupPermissions": "r"}],
                    "Sysctls": {"net.core.somaxconn": "1024"}, "SecurityOpt": ["no-new-privileges"], "Init": true,
                    "Dns": ["198.18.0.53"], "ShmSize": 134217728, "GroupAdd": ["audio"], "ReadonlyRootfs": true,
                    "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}
                }}),
                json!({}),
                v144,
                vec![
                    (
                        "/HostConfig/DeviceRequests",
                        Some(json!([{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu", "compute"]], "Options": {}}])),
                    ),
                    ("/HostConfig/CapAdd", Some(json!(["NET_ADMIN"]))),
                    ("/HostConfig/CapDrop", Some(json!(["MKNOD"]))),
                    ("/HostConfig/Memory", Some(json!(268435456))),
                    ("/HostConfig/NanoCpus", Some(json!(500000000))),
                    ("/HostConfig/Ulimits", Some(json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}]))),
                    ("/HostConfig/LogConfig", Some(json!({"Type": "json-file", "Config": {"max-size": "10m"}}))),
                    ("/HostConfig/ExtraHosts", Some(json!(["registry.test:127.0.0.1"]))),
                    ("/HostConfig/Tmpfs", Some(json!({"/run": "rw,size=64m"}))),
                    (
                        "/HostConfig/Devices",
                        Some(json!([
                            {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
                            {"PathOnHost": "/dev/null", "PathInContainer": "/dev/null2", "CgroupPermissions": "r"}
                        ])),
                    ),
                    ("/HostConfig/Sysctls", Some(json!({"net.core.somaxconn": "1024"}))),
                    ("/HostConfig/SecurityOpt", Some(json!(["no-new-privileges"]))),
                    ("/HostConfig/Init", Some(json!(true))),
                    ("/HostConfig/Dns", Some(json!(["198.18.0.53"]))),
                    ("/HostConfig/ShmSize", Some(json!(134217728))),
                    ("/HostConfig/GroupAdd", Some(json!(["audio"]))),
                    ("/HostConfig/ReadonlyRootfs", Some(json!(true))),
                    ("/HostConfig/RestartPolicy", Some(json!({"Name": "on-failure", "MaximumRetryCount": 3}))),
                ],
            ),
            (
                "volumes: anonymous ones pinned by name (read-only kept), never a target twice",
                json!({
                    "Config": {"Volumes": {"/var/lib/app": {}, "/cache": {}, "/ro": {}, "/user-declared": {}}},
                    "HostConfig": {
                        "Binds": ["/srv/conf:/etc/app:ro", "appdata:/data", "/scratch"],
                        "Mounts": [{"Type": "volume", "Target": "/m"}, {"Type": "bind", "Source": "/srv/logs", "Target": "/logs"}],
                        "Tmpfs": {"/tmp/": ""}
                    },
                    "Mounts": [
                        {"Type": "volume", "Name": ANON, "Destination": "/var/lib/app", "Driver": "local", "RW": true},
                        {"Type": "volume", "Name": ANON2, "Destination": "/cache/", "Driver": "local", "RW": true},
                        {"Type": "volume", "Name": "b".repeat(64), "Destination": "/ro", "Driver": "local", "RW": false},
                        {"Type": "bind", "Source": "/srv/conf", "Destination": "/etc/app", "RW": false},
                        {"Type": "volume", "Name": "appdata", "Destination": "/data", "Driver": "local", "RW": true},
                        {"Type": "volume", "Name": "c".repeat(64), "Destination": "/scratch", "Driver": "local", "RW": true},
                        {"Type": "volume", "Name": "d".repeat(64), "Destination": "/m", "Driver": "local", "RW": true},
                        {"Type": "bind", "Source": "/srv/logs", "Destination": "/logs", "RW": true},
                        {"Type": "volume", "Name": "e".repeat(64), "Destination": "/tmp", "Driver": "local", "RW": true},
                        {"Type": "volume", "Name": "f".repeat(64), "Destination": "/cache", "Driver": "local", "RW": true}
                    ]
                }),
                json!({}),
                v144,
                vec![
                    (
                        "/HostConfig/Binds",
                        Some(json!(["/srv/conf:/etc/app:ro", "appdata:/data", format!("{}:/scratch", "c".repeat(64))])),
                    ),
                    (
                        "/HostConfig/Mounts",
                        Some(json!([
                            {"Type": "volume", "Source": "d".repeat(64), "Target": "/m"},
                            {"Type": "bind", "Source": "/srv/logs", "Target": "/logs"},
                            anon_mount(ANON, "/var/lib/app"),
                            anon_mount(ANON2, "/cache"),
                            {"Type": "volume", "Source": "b".repeat(64), "Target": "/ro", "ReadOnly": true}
                        ])),
                    ),
                    ("/Volumes", Some(json!({"/cache": {}, "/ro": {}, "/user-declared": {}}))),
                ],
            ),
        ]
    }

    #[test]
    fn create_body_keeps_the_users_settings_and_drops_the_old_images() {
        for (name, container_patch, old_patch, api, expect) in rows() {
            let plan = plan_for(&patched(container(), &container_patch), Some(&patched(old_image(), &old_patch)), api)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let body = serde_json::to_value(&plan.body).unwrap();
            for (pointer, want) in expect {
                assert_eq!(body.pointer(pointer), want.as_ref(), "{name}: {pointer} in {body:#}");
            }
        }
    }

    #[test]
    fn plan_names_and_facts() {
        let plan = plan_for(
            &patched(container(), &json!({"Config": {"StopTimeout": 120}, "HostConfig": {"AutoRemove": true}})),
            Some(&old_image()),
            (1, 41),
        )
        .unwrap();
        assert_eq!(plan.op_id, OP);
        assert_eq!(plan.old_id, ID);
        assert_eq!(plan.name, "web");
        assert_eq!(plan.temp_name, "web__upd_0a1b2c3d");
        assert_eq!(plan.aside_name, "web__old_0a1b2c3d");
        assert_eq!(plan.image_ref, REF);
        assert_eq!(plan.old_image_id, OLD);
        assert_eq!(plan.new_image_id, NEW);
        assert_eq!(
            serde_json::to_value(&plan.restart_policy).unwrap(),
            json!({"Name": "unless-stopped", "MaximumRetryCount": 0})
        );
        assert!(plan.auto_remove);
        assert!(plan.was_running);
        assert_eq!(plan.stop_timeout, Some(120));
        // the journal stores the plan as JSON and reads it back whole
        let back: RecreatePlan = serde_json::from_value(serde_json::to_value(&plan).unwrap()).unwrap();
        assert_eq!(back, plan);
    }

    /// Two user-defined networks with aliases, a static address, a generated
    /// and a user-set MAC, as 20.10 shows them (short id and hostname among the aliases).
    fn two_networks(user_mac: bool) -> Value {
        let mac_b = if user_mac { "0a:00:00:00:00:0b" } else { "02:42:c6:13:fb:02" };
        json!({
            "Config": {"Hostname": "myhost"},
            "NetworkSettings": {"Networks": {
                "lab-a": {
                    "IPAMConfig": {"IPv4Address": "198.19.250.10"}, "Links": null,
                    "Aliases": ["web", SHORT, "myhost"],
                    "NetworkID": "ad5cc1e17ea7", "EndpointID": "239ed96dd018", "Gateway": "198.19.250.1",
                    "IPAddress": "198.19.250.10", "IPPrefixLen": 24, "IPv6Gateway": "", "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0, "MacAddress": "02:42:c6:13:fa:0a", "DriverOpts": null
                },
                "lab-b": {
                    "IPAMConfig": {}, "Links": ["/db:/web/db"], "Aliases": ["other", SHORT, "myhost"],
                    "NetworkID": "be7741880521", "EndpointID": "3c3a3e386ab7", "Gateway": "198.19.251.1",
                    "IPAddress": "198.19.251.2", "IPPrefixLen": 24, "MacAddress": mac_b,
                    "DriverOpts": {"com.example.opt": "1"}, "DNSNames": ["web", SHORT], "GwPriority": 10
                }
            }}
        })
    }

    /// (API, user-set MAC on lab-b, endpoints at create, networks to connect before start)
    type NetworkCase = ((u16, u16), bool, Value, Vec<(&'static str, Value)>);

    #[test]
    fn networks_by_api_version() {
        let primary = json!({"IPAMConfig": {"IPv4Address": "198.19.250.10"}, "Aliases": ["web"]});
        let secondary = |aliases: Value, gw: Option<i64>, mac: Option<&str>| {
            let mut ep = json!({"Links": ["db:db"], "Aliases": aliases, "DriverOpts": {"com.example.opt": "1"}});
            if let Some(gw) = gw {
                ep["GwPriority"] = json!(gw);
            }
            if let Some(mac) = mac {
                ep["MacAddress"] = json!(mac);
            }
            ep
        };
        let cases: Vec<NetworkCase> = vec![
            // below 1.44: the primary network at create, the other connected before start;
            // below 1.45 the hostname among the aliases is the engine's
            ((1, 41), false, json!({"lab-a": primary}), vec![("lab-b", secondary(json!(["other"]), None, None))]),
            ((1, 43), false, json!({"lab-a": primary}), vec![("lab-b", secondary(json!(["other"]), None, None))]),
            ((1, 44), false, json!({"lab-a": primary, "lab-b": secondary(json!(["other"]), None, None)}), vec![]),
            (
                (1, 44),
                true,
                json!({"lab-a": primary, "lab-b": secondary(json!(["other"]), None, Some("0a:00:00:00:00:0b"))}),
                vec![],
            ),
            // from 1.45 an alias equal to the hostname is the user's
            (
                (1, 45),
                false,
                json!({"lab-a": {"IPAMConfig": {"IPv4Address": "198.19.250.10"}, "Aliases": ["web", "myhost"]},
                       "lab-b": secondary(json!(["other", "myhost"]), None, None)}),
                vec![],
            ),
            // GwPriority from 1.48
            (
                (1, 48),
                false,
                json!({"lab-a": {"IPAMConfig": {"IPv4Address": "198.19.250.10"}, "Aliases": ["web", "myhost"]},
                       "lab-b": secondary(json!(["other", "myhost"]), Some(10), None)}),
                vec![],
            ),
        ];
        for (api, user_mac, at_create, after) in cases {
            let plan = plan_for(&patched(container(), &two_networks(user_mac)), Some(&old_image()), api).unwrap();
            let body = serde_json::to_value(&plan.body).unwrap();
            assert_eq!(body.pointer("/NetworkingConfig/EndpointsConfig"), Some(&at_create), "API {api:?}");
            let got: Vec<(String, Value)> = plan
                .connect_after_create
                .iter()
                .map(|(n, ep)| (n.clone(), serde_json::to_value(ep).unwrap()))
                .collect();
            let want: Vec<(String, Value)> = after.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
            assert_eq!(got, want, "API {api:?}");
            assert_eq!(body.pointer("/HostConfig/NetworkMode"), Some(&json!("lab-a")));
        }
    }

    #[test]
    fn primary_network_is_the_network_mode_not_the_first() {
        // NetworkMode names lab-b (by name, then by id): it is the one created with below 1.44.
        for mode in ["lab-b", "be7741880521"] {
            let patch = patched(two_networks(false), &json!({"HostConfig": {"NetworkMode": mode}}));
            let plan = plan_for(&patched(container(), &patch), Some(&old_image()), (1, 41)).unwrap();
            let body = serde_json::to_value(&plan.body).unwrap();
            let at_create = body.pointer("/NetworkingConfig/EndpointsConfig").unwrap();
            assert_eq!(at_create.as_object().unwrap().keys().collect::<Vec<_>>(), ["lab-b"], "{mode}");
            let after: Vec<&str> = plan.connect_after_create.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(after, ["lab-a"], "{mode}");
        }
    }

    /// (what, container patch, old image patch or none for a missing image, API, error)
    type RefusalCase = (&'static str, Value, Option<Value>, (u16, u16), PlanError);

    #[test]
    fn refuses_what_cannot_be_reproduced() {
        let cases: Vec<RefusalCase> = vec![
            ("old image gone", json!({}), None, (1, 44), PlanError::OldImageMissing(OLD.into())),
            (
                "old image details of another image",
                json!({}),
                Some(json!({"Id": NEW})),
                (1, 44),
                PlanError::OldImageMismatch { expected: OLD.into(), found: NEW.into() },
            ),
            (
                "network namespace of an unknown container",
                json!({"HostConfig": {"NetworkMode": "container:gone"}, "NetworkSettings": {"Networks": null}}),
                Some(json!({})),
                (1, 44),
                PlanError::UnknownSupplier { mode: "network mode", target: "gone".into() },
            ),
            (
                "an id prefix matching no container",
                json!({"HostConfig": {"PidMode": "container:ffff"}}),
                Some(json!({})),
                (1, 44),
                PlanError::UnknownSupplier { mode: "PID mode", target: "ffff".into() },
            ),
            (
                "a user-set MAC below 1.44",
                two_networks(true),
                Some(json!({})),
                (1, 43),
                PlanError::Unsupported {
                    api: ApiVersion::new(1, 43),
                    what: "the MAC address set on network lab-b needs API 1.44".into(),
                },
            ),
            (
                "an image mount below 1.48",
                json!({"HostConfig": {"Mounts": [{"Type": "image", "Source": "tools:1", "Target": "/tools"}]}}),
                Some(json!({})),
                (1, 47),
                PlanError::Unsupported {
                    api: ApiVersion::new(1, 47),
                    what: "the mount at /tools uses an image mount (API 1.48)".into(),
                },
            ),
            (
                "a volume subpath below 1.45",
                json!({"HostConfig": {"Mounts": [{"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": {"Subpath": "x"}}]}}),
                Some(json!({})),
                (1, 44),
                PlanError::Unsupported {
                    api: ApiVersion::new(1, 44),
                    what: "the mount at /v uses a volume subpath (API 1.45)".into(),
                },
            ),
            (
                "a network mode naming none of its networks",
                json!({"HostConfig": {"NetworkMode": "lab-z"}}),
                Some(json!({})),
                (1, 44),
                PlanError::UnknownPrimaryNetwork("lab-z".into()),
            ),
            ("no Config", json!({"Config": null}), Some(json!({})), (1, 44), PlanError::Missing("Config")),
            ("no name", json!({"Name": "/"}), Some(json!({})), (1, 44), PlanError::Missing("Name")),
        ];
        for (name, container_patch, old_patch, api, want) in cases {
            let old = old_patch.map(|p| patched(old_image(), &p));
            let got = plan_for(&patched(container(), &container_patch), old.as_ref(), api);
            assert_eq!(got, Err(want), "{name}");
        }
    }

    #[test]
    fn refuses_op_ids_that_cannot_be_part_of_a_name() {
        let container: ContainerDetails = serde_json::from_value(container()).unwrap();
        let old: ImageDetails = serde_json::from_value(old_image()).unwrap();
        let new: ImageDetails = serde_json::from_value(new_image()).unwrap();
        let suppliers = HashMap::new();
        for (op, ok) in [("0a1b2c3d", true), ("job_1.2-x", true), ("", false), ("a/b", false), ("a b", false)] {
            let input = PlanInput {
                container: &container,
                old_image: Some(&old),
                new_image: &new,
                image_ref: REF,
                api: ApiVersion::new(1, 44),
                suppliers: &suppliers,
                op_id: op,
            };
            assert_eq!(plan_recreate(&input).is_ok(), ok, "{op:?}");
        }
    }

    #[test]
    fn new_image_needs_an_id() {
        let container: ContainerDetails = serde_json::from_value(container()).unwrap();
        let old: ImageDetails = serde_json::from_value(old_image()).unwrap();
        let new = ImageDetails::default();
        let suppliers = HashMap::new();
        let input = PlanInput {
            container: &container,
            old_image: Some(&old),
            new_image: &new,
            image_ref: REF,
            api: ApiVersion::new(1, 44),
            suppliers: &suppliers,
            op_id: OP,
        };
        assert_eq!(plan_recreate(&input), Err(PlanError::NewImageWithoutId));
    }

    #[test]
    fn generated_macs_are_told_from_chosen_ones() {
        let cases = [
            (Some("02:42:c6:13:fa:0a"), Some("198.19.250.10"), None),
            (Some("02:42:C6:13:FA:0A"), Some("198.19.250.10"), None),
            // 02:42 but not this address's: chosen by the user
            (Some("02:42:c6:13:fa:0b"), Some("198.19.250.10"), Some("02:42:c6:13:fa:0b")),
            (Some("0a:00:00:00:00:01"), Some("198.19.250.10"), Some("0a:00:00:00:00:01")),
            (Some("0a:00:00:00:00:01"), None, Some("0a:00:00:00:00:01")),
            (Some("02:42:c6:13:fa:0a"), None, None),
            (Some(""), Some("198.19.250.10"), None),
            (None, None, None),
        ];
        for (mac, ip, want) in cases {
            let ep = EndpointSettings {
                mac_address: mac.map(str::to_string),
                ip_address: ip.map(str::to_string),
                ..Default::default()
            };
            assert_eq!(user_mac(&ep).as_deref(), want, "{mac:?} {ip:?}");
        }
    }

    #[test]
    fn binds_split_as_the_engine_does() {
        let cases = [
            ("/data", (None, "/data", None)),
            ("/data:ro", (None, "/data", Some("ro"))),
            ("vol:/data", (Some("vol"), "/data", None)),
            ("/srv:/data:ro,z", (Some("/srv"), "/data", Some("ro,z"))),
        ];
        for (bind, want) in cases {
            assert_eq!(split_bind(bind), want, "{bind}");
        }
    }

    #[test]
    fn lists_namespace_suppliers() {
        let cases = [
            (json!({}), vec![]),
            (json!({"HostConfig": {"NetworkMode": "container:db"}}), vec!["db"]),
            (
                json!({"HostConfig": {"NetworkMode": format!("container:{DB_ID}"), "IpcMode": "container:/db", "PidMode": format!("container:{DB_ID}")}}),
                vec![DB_ID, "db"],
            ),
            (json!({"HostConfig": {"IpcMode": "shareable", "PidMode": "host"}}), vec![]),
        ];
        for (patch, want) in cases {
            let details: ContainerDetails = serde_json::from_value(patched(container(), &patch)).unwrap();
            assert_eq!(namespace_suppliers(&details), want, "{patch}");
        }
    }

    fn state(patch: Value) -> ContainerDetails {
        let base = json!({
            "Id": ID,
            "Image": NEW,
            "RestartCount": 0,
            "State": {"Status": "running", "Running": true, "Paused": false, "Restarting": false,
                      "OOMKilled": false, "Dead": false, "ExitCode": 0, "Error": ""}
        });
        serde_json::from_value(patched(base, &patch)).unwrap()
    }

    #[test]
    fn verifies_the_replacement() {
        use VerifyOutcome::{Failed, Ok, Wait};
        let failed = |s: &str| Failed(s.to_string());
        let health = |status: &str| json!({"State": {"Health": {"Status": status, "FailingStreak": 0, "Log": []}}});
        // (inspect patch, window over?, outcome)
        let cases = [
            (json!({}), false, Wait),
            (json!({}), true, Ok),
            (health("healthy"), false, Ok),
            (health("starting"), false, Wait),
            (health("starting"), true, failed("not healthy within the verify time")),
            (health("none"), true, Ok),
            (
                json!({"State": {"Health": {"Status": "unhealthy", "FailingStreak": 3,
                    "Log": [{"ExitCode": 1, "Output": "first"}, {"ExitCode": 1, "Output": "curl: (7) Failed\n to connect\n"}]}}}),
                false,
                failed("unhealthy: curl: (7) Failed to connect"),
            ),
            (json!({"State": {"Health": {"Status": "unhealthy"}}}), false, failed("unhealthy")),
            (json!({"Image": OLD}), false, Failed(format!("runs image {OLD:?}, not the pulled {NEW}"))),
            (
                json!({"State": {"Status": "exited", "Running": false, "ExitCode": 1}}),
                false,
                failed("exited with code 1"),
            ),
            (
                json!({"State": {"Status": "exited", "Running": false, "ExitCode": 127, "Error": "exec: \"serve\": not found"}}),
                false,
                failed("exited with code 127: exec: \"serve\": not found"),
            ),
            (
                json!({"State": {"Status": "restarting", "Running": true, "Restarting": true, "ExitCode": 2}}),
                false,
                failed("restarting after exiting with code 2"),
            ),
            (json!({"RestartCount": 1}), false, failed("restarted 1 time")),
            (json!({"RestartCount": 3}), true, failed("restarted 3 times")),
            (
                json!({"State": {"Status": "exited", "Running": false, "OOMKilled": true, "ExitCode": 137}}),
                false,
                failed("killed for lack of memory (OOM)"),
            ),
            (json!({"State": {"Status": "paused", "Paused": true}}), false, failed("paused")),
            (json!({"State": {"Status": "created", "Running": false}}), false, Wait),
            (json!({"State": {"Status": "created", "Running": false}}), true, failed("never started")),
            (json!({"State": null}), false, failed("the engine reports no state for it")),
        ];
        for (patch, window_over, want) in cases {
            assert_eq!(verify(&state(patch.clone()), NEW, window_over), want, "{patch} window over: {window_over}");
        }
    }
}
