//! Asks registries which digest a tag points to now.
//!
//! Every update check is one manifest `HEAD` per image, so the client is
//! built for many small requests to few hosts: one pooled HTTP client
//! (http/1.1 and h2), and per registry a memory of what worked — the scheme
//! (https, or http for insecure registries), the auth challenge, tokens — so
//! that after the first image a check costs a single round trip. Over TLS
//! it speaks h2 where the registry offers it (ALPN), so a round's requests
//! share one connection; http/1.1 registries get a bounded pool of kept-alive
//! connections. Registries with their own CA are trusted through Docker's
//! `certs.d` folders (see [`super::tls`]). It is also built to be a polite
//! guest: the requests in flight per registry follow its answers (AIMD, see
//! [`super::limit`]: a 429, 5xx or timeout halves them), the total is
//! bounded too, and a registry that answered 429 or 5xx is left alone until
//! its `Retry-After` has passed (Docker Hub counts requests against pull limits).
//!
//! Credentials and tokens are held in memory only, go out only in
//! `Authorization` headers marked sensitive, and never appear in errors,
//! logs or `Debug` output.

use std::collections::HashMap;
use std::error::Error as _;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;
use tokio::sync::OnceCell;

use super::challenge::{self, Challenge};
use super::connect_watch::{self, H2Signal, WatchLayer};
use super::credentials::{self, Credential, CredentialsError, DockerConfig};
use super::insecure::InsecureRegistries;
use super::limit::{Limiter, Permit, Signal, TotalLimit};
use super::observe::{self, SharedObserver};
use super::reference::{ImageRef, DOCKER_HUB};
use super::tags;
use super::tls::{self, TlsError};

/// What we accept for a manifest, most specific first: an index (multi-arch)
/// is what `docker pull` resolves a tag to, so its digest is the one Docker
/// records in `RepoDigests`.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.manifest.v1+json";
const DIGEST_HEADER: &str = "docker-content-digest";
/// A registry that doesn't accept a connection in this time is down or
/// filtered; waiting longer only stalls the other checks.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request limit when the caller sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The total cap grows by this much per registry in use (each one's own
/// limit goes up to [`super::limit::MAX_LIMIT`])…
const TOTAL_PER_REGISTRY: usize = super::limit::MAX_LIMIT;
/// …up to this, when nobody set a total.
const TOTAL_MAX: usize = 256;
/// Idle connections are kept this long for the next request.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// A registry not spoken to for this long gets one request alone before the
/// others (see `RegistryClient::send`): its connection may be gone, and one
/// request finds out whether it speaks h2 before the rest would each open one.
const REPROBE_AFTER: Duration = Duration::from_secs(30);
/// Wait after a 429 without `Retry-After`.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// Waits after repeated 5xx without `Retry-After`: doubling from the first to the last.
const SERVER_BACKOFF_MIN: Duration = Duration::from_secs(5);
const SERVER_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Longest `Retry-After` we honour, so a bogus value can't silence a registry for good.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(6 * 3600);
/// Token lifetime when the token server names none (the distribution spec's default).
const TOKEN_DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// A token is replaced this long before it expires (at most), so it doesn't
/// run out between our check and the registry's.
const TOKEN_MARGIN_MAX: Duration = Duration::from_secs(30);
/// Manifests are small (distribution refuses more than 4 MiB); a bigger
/// answer is not a manifest, and we won't buffer it.
const MANIFEST_MAX_BYTES: usize = 4 * 1024 * 1024;
const TOKEN_RESPONSE_MAX_BYTES: usize = 1024 * 1024;
/// A page of 1000 tags is ~30 KiB; more than this is not a tag list.
const TAG_PAGE_MAX_BYTES: usize = 4 * 1024 * 1024;
/// `client_id` for the OAuth refresh grant, so registry logs say who asked.
const CLIENT_ID: &str = "shipshape";

/// Why a registry gave no digest. Messages name the registry and what went
/// wrong, never a credential or token.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("registry {registry}: 401 unauthorized")]
    Unauthorized { registry: String },
    #[error("registry {registry}: 404 manifest unknown")]
    NotFound { registry: String },
    #[error("registry {registry}: 429 rate limited, retry in {}", format_wait(*.retry_after))]
    RateLimited { registry: String, retry_after: Duration },
    #[error("registry {registry}: {status} server error, retry in {}", format_wait(*.retry_after))]
    Server { registry: String, status: u16, retry_after: Duration },
    #[error("registry {registry}: unreachable ({reason})")]
    Unreachable { registry: String, reason: String },
    #[error("registry {registry}: timed out")]
    Timeout { registry: String },
    #[error("registry {registry}: {status} {reason}")]
    UnexpectedStatus { registry: String, status: u16, reason: String },
    #[error("registry {registry}: {reason}")]
    InvalidResponse { registry: String, reason: String },
    #[error("registry {registry}: answer has no Docker-Content-Digest header (Docker Hub is only asked with HEAD)")]
    MissingDigest { registry: String },
    #[error("registry {registry}: {source}")]
    Credentials {
        registry: String,
        #[source]
        source: CredentialsError,
    },
    #[error("registry {registry}: refusing to send credentials over plain http to token server {host}")]
    InsecureTokenRealm { registry: String, host: String },
    #[error("cannot set up the registry HTTP client: {0}")]
    Client(String),
    /// The registry's TLS certificate is not trusted (or it wanted ours).
    #[error("registry {registry}: TLS certificate problem ({reason}); trust its CA with {certs_dir}/ca.crt or SHIPSHAPE_REGISTRY_CA")]
    Certificate { registry: String, reason: String, certs_dir: String },
    /// The registry's certs.d folder can't be used.
    #[error("registry {registry}: {source}")]
    Tls {
        registry: String,
        #[source]
        source: TlsError,
    },
    /// The registry is listed in `SHIPSHAPE_IGNORE_REGISTRIES`: nothing was sent.
    #[error("registry {registry}: not checked (SHIPSHAPE_IGNORE_REGISTRIES)")]
    Ignored { registry: String },
}

impl RegistryError {
    /// How long the registry asked us to stay away, for rate limits and 5xx.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::RateLimited { retry_after, .. } | RegistryError::Server { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// Whether the failure says nothing about the image (the registry is
    /// busy, broken or out of reach), so the caller should keep showing the
    /// last digest it knew. A 401 or 404 is an answer about the image.
    pub fn keeps_last_status(&self) -> bool {
        matches!(
            self,
            RegistryError::RateLimited { .. }
                | RegistryError::Server { .. }
                | RegistryError::Timeout { .. }
                | RegistryError::Unreachable { .. }
                | RegistryError::Certificate { .. }
                | RegistryError::Tls { .. }
        )
    }
}

/// How a [`RegistryClient`] behaves. `Default` gives no credentials,
/// loopback-only insecure registries, adaptive limits and Docker's certs.d.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub docker_config: DockerConfig,
    pub insecure: InsecureRegistries,
    /// A hard ceiling on requests in flight to one registry; below it (or
    /// below the built-in maximum when `None`) the limit adapts.
    pub per_registry_concurrency: Option<usize>,
    /// Requests in flight in all at most; `None`: scales with the registries in use.
    pub total_concurrency: Option<usize>,
    /// Limit for a whole request (connecting takes at most 5 s of it).
    pub timeout: Duration,
    /// Docker's per-registry certificate folders: `<certs_d>/<host[:port]>/`.
    pub certs_d: PathBuf,
    /// A PEM bundle of CAs trusted for every registry.
    pub ca_bundle: Option<PathBuf>,
    /// Told about every answer (the metrics).
    pub observer: Option<SharedObserver>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            docker_config: DockerConfig::default(),
            insecure: InsecureRegistries::default(),
            per_registry_concurrency: None,
            total_concurrency: None,
            timeout: DEFAULT_TIMEOUT,
            certs_d: PathBuf::from(tls::DEFAULT_CERTS_D),
            ca_bundle: None,
            observer: None,
        }
    }
}

impl ClientOptions {
    /// What `SHIPSHAPE_REGISTRY_CONCURRENCY`, `SHIPSHAPE_CERTS_D` and
    /// `SHIPSHAPE_REGISTRY_CA` ask for; the rest as [`Default`].
    pub fn from_args(args: &crate::config::RegistryArgs) -> Self {
        ClientOptions {
            per_registry_concurrency: args.registry_concurrency.map(usize::from),
            certs_d: args.certs_d.clone(),
            ca_bundle: args.registry_ca.clone(),
            ..ClientOptions::default()
        }
    }
}

/// Client for the registry API; cheap to clone (clones share connections
/// and everything learned about registries).
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// For every registry without a certs.d folder.
    http: reqwest::Client,
    docker_config: RwLock<Arc<DockerConfig>>,
    insecure: RwLock<InsecureRegistries>,
    total: TotalLimit,
    total_concurrency: Option<usize>,
    per_registry_concurrency: Option<usize>,
    timeout: Duration,
    certs_d: PathBuf,
    /// The system's CAs and `SHIPSHAPE_REGISTRY_CA` (read once), for the
    /// clients of registries with a certs.d folder too.
    roots: Vec<reqwest::Certificate>,
    registries: Mutex<HashMap<String, Arc<RegistryState>>>,
    /// What earlier runs learned about registries not asked yet in this one
    /// (see [`RegistryClient::remember_protocols`]).
    remembered: Mutex<HashMap<String, KnownProtocol>>,
    observer: Option<SharedObserver>,
}

impl fmt::Debug for RegistryClient {
    /// Names the registries it knows; credentials and tokens stay out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = lock(&self.inner.registries).keys().cloned().collect();
        names.sort();
        f.debug_struct("RegistryClient").field("registries", &names).finish_non_exhaustive()
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Https,
    Http,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// How a registry answered: kept by `shipshape check` between runs, so that
/// its next run sends every request at once instead of first finding out
/// again with a lone request (two round trips at a registry's distance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownProtocol {
    pub scheme: Scheme,
    /// One connection carries every request (h2), or each needs its own.
    pub h2: bool,
}

/// What a registry's last challenge asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum AuthHint {
    /// Not challenged yet: try anonymously.
    #[default]
    Unknown,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl AuthHint {
    fn from_challenge(c: &Challenge) -> Self {
        match c {
            Challenge::Bearer { realm, service, .. } => {
                AuthHint::Bearer { realm: realm.clone(), service: service.clone() }
            }
            Challenge::Basic { .. } => AuthHint::Basic,
        }
    }
}

/// A bearer token and until when we use it. No `Debug`: it is a secret.
#[derive(Clone)]
struct CachedToken {
    value: String,
    valid_until: Instant,
}

/// Why a registry is left alone for now.
#[derive(Debug, Clone, Copy)]
enum BlockKind {
    RateLimited,
    Server(u16),
}

#[derive(Debug, Clone, Copy)]
struct Block {
    until: Instant,
    kind: BlockKind,
}

impl Block {
    fn error(&self, registry: &str, retry_after: Duration) -> RegistryError {
        let registry = registry.to_string();
        match self.kind {
            BlockKind::RateLimited => RegistryError::RateLimited { registry, retry_after },
            BlockKind::Server(status) => RegistryError::Server { registry, status, retry_after },
        }
    }
}

/// What we learned about one registry.
#[derive(Default)]
struct Memo {
    scheme: Option<Scheme>,
    /// Whether its answers came over h2.
    h2: Option<bool>,
    /// `scheme` and `h2` come from an earlier run and no answer confirmed
    /// them yet: if they fail, they are forgotten and found out again.
    remembered: bool,
    auth: AuthHint,
    /// Bearer tokens by scope.
    tokens: HashMap<String, CachedToken>,
    blocked: Option<Block>,
    /// 5xx answers in a row, for the backoff.
    server_errors: u32,
    /// When the last request to the registry ended, whatever its outcome.
    last_contact: Option<Instant>,
}

/// One registry: its request limit, its credentials (resolved once, on the
/// first challenge) and what we learned about it.
struct RegistryState {
    /// As in the image reference: `docker.io`, `127.0.0.1:5000`.
    name: String,
    /// The host that serves its API.
    endpoint: String,
    hub: bool,
    limiter: Limiter,
    /// Its own client when its certs.d folder has certificates; the error
    /// when that folder can't be used.
    http: Result<Option<reqwest::Client>, TlsError>,
    credential: OnceCell<Option<Credential>>,
    memo: Mutex<Memo>,
    /// Held by a request sent alone to a registry not spoken to lately (see
    /// `RegistryClient::send`), so the requests queued behind it use what it
    /// learned — the scheme, an open (h2) connection — instead of each trying
    /// https on a plain-http registry or opening a connection of its own.
    probe: tokio::sync::Mutex<()>,
}

/// An `Authorization` value we send, and where it came from.
struct SentAuth {
    header: HeaderValue,
    /// Just made from credentials or the token server (not from the cache):
    /// if the registry refuses it, asking again won't help.
    fresh: bool,
    hint: AuthHint,
    scope: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RegistryState {
    fn memo(&self) -> MutexGuard<'_, Memo> {
        lock(&self.memo)
    }

    /// Fails fast while the registry asked us to wait.
    fn check_blocked(&self) -> Result<(), RegistryError> {
        let memo = self.memo();
        if let Some(block) = memo.blocked {
            let now = Instant::now();
            if now < block.until {
                return Err(block.error(&self.name, block.until - now));
            }
        }
        Ok(())
    }

    /// The registry answered normally: forget earlier trouble.
    fn answered(&self) {
        let mut memo = self.memo();
        memo.blocked = None;
        memo.server_errors = 0;
    }

    fn rate_limited(&self, headers: &HeaderMap) -> RegistryError {
        let wait = retry_after_header(headers).unwrap_or(RATE_LIMIT_WAIT);
        self.block(BlockKind::RateLimited, wait)
    }

    fn server_error(&self, status: u16, headers: &HeaderMap) -> RegistryError {
        let errors = {
            let mut memo = self.memo();
            memo.server_errors = memo.server_errors.saturating_add(1);
            memo.server_errors
        };
        let wait = retry_after_header(headers).unwrap_or_else(|| server_backoff(errors));
        self.block(BlockKind::Server(status), wait)
    }

    fn block(&self, kind: BlockKind, wait: Duration) -> RegistryError {
        let block = Block { until: Instant::now() + wait, kind };
        self.memo().blocked = Some(block);
        tracing::info!(registry = %self.name, wait = %format_wait(wait), "registry asked us to wait");
        block.error(&self.name, wait)
    }

    fn cached_token(&self, scope: &str) -> Option<String> {
        let memo = self.memo();
        memo.tokens.get(scope).filter(|t| Instant::now() < t.valid_until).map(|t| t.value.clone())
    }

    fn store_token(&self, scope: &str, value: &str, usable_for: Duration) {
        let now = Instant::now();
        let mut memo = self.memo();
        memo.tokens.retain(|_, t| now < t.valid_until);
        if !usable_for.is_zero() {
            memo.tokens
                .insert(scope.to_string(), CachedToken { value: value.to_string(), valid_until: now + usable_for });
        }
    }

    fn forget_token(&self, scope: &str) {
        self.memo().tokens.remove(scope);
    }

    /// Whether the next request should go alone (see `RegistryClient::send`).
    /// Not to an http/1.1 registry whose scheme is known: every request in
    /// flight needs a connection of its own there, so a lone one first would
    /// only cost its round trips.
    fn needs_probe(&self) -> bool {
        let memo = self.memo();
        if memo.scheme.is_some() && memo.h2 == Some(false) {
            return false;
        }
        memo.last_contact.is_none_or(|t| t.elapsed() > REPROBE_AFTER)
    }

    /// An answer over `version` came back on the scheme in use.
    fn answered_over(&self, scheme: Scheme, version: reqwest::Version) {
        let h2 = version == reqwest::Version::HTTP_2;
        let mut memo = self.memo();
        memo.scheme = Some(scheme);
        memo.h2 = Some(h2);
        drop(memo);
        if h2 {
            self.multiplexed();
        }
    }

    /// Requests share one connection: see [`super::limit::Aimd::multiplexed`].
    fn multiplexed(&self) {
        if let Some(limit) = self.limiter.multiplexed() {
            tracing::debug!(registry = %self.name, limit, "registry multiplexes (h2): concurrency limit");
        }
    }

    /// Drops what an earlier run said about the registry — unless an answer
    /// since taught another scheme than `failed`, the one that just failed
    /// (a wrong scheme's answer may have been taken for the right one
    /// meanwhile). Returns whether it did.
    fn forget_remembered(&self, failed: Option<Scheme>) -> bool {
        let mut memo = self.memo();
        if !memo.remembered && memo.scheme != failed {
            return false;
        }
        memo.scheme = None;
        memo.h2 = None;
        memo.remembered = false;
        memo.last_contact = None;
        true
    }

    fn contacted(&self) {
        self.memo().last_contact = Some(Instant::now());
    }

    /// A TLS handshake chose h2: the registry speaks https, and its
    /// connection is ready for every other request.
    fn speaks_h2(&self) {
        let mut memo = self.memo();
        memo.scheme = Some(Scheme::Https);
        memo.h2 = Some(true);
        memo.last_contact = Some(Instant::now());
        drop(memo);
        self.multiplexed();
        tracing::debug!(registry = %self.name, "registry connection speaks h2; the other requests go now");
    }

    /// Feeds an answer to the registry's limit, logging a change.
    fn observe(&self, permit: &Permit<'_>, signal: Signal) {
        if let Some(limit) = permit.observe(signal) {
            tracing::debug!(registry = %self.name, limit, "registry concurrency limit");
        }
    }
}

/// The HTTP client for registries: h2 by ALPN over TLS (reqwest offers h2
/// and http/1.1), and for http/1.1 an idle pool per host bounded by the
/// request limit.
fn http_client(
    timeout: Duration,
    pool: usize,
    roots: &[reqwest::Certificate],
    identity: Option<reqwest::Identity>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("shipshape/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout)
        .pool_max_idle_per_host(pool)
        .pool_idle_timeout(POOL_IDLE)
        .connector_layer(WatchLayer);
    for root in roots {
        builder = builder.add_root_certificate(root.clone());
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().map_err(|e| e.to_string())
}

/// Idle connections kept per host: as many as may be in flight.
fn pool_size(ceiling: Option<usize>) -> usize {
    ceiling.unwrap_or(super::limit::MAX_LIMIT).max(1)
}

impl RegistryClient {
    pub fn new(options: ClientOptions) -> Result<Self, RegistryError> {
        let mut roots = tls::system_roots();
        if let Some(path) = &options.ca_bundle {
            roots.extend(
                tls::read_certificates(path)
                    .map_err(|e| RegistryError::Client(format!("SHIPSHAPE_REGISTRY_CA: {e}")))?,
            );
        }
        let pool = pool_size(options.per_registry_concurrency);
        let http = http_client(options.timeout, pool, &roots, None).map_err(RegistryError::Client)?;
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                http,
                docker_config: RwLock::new(Arc::new(options.docker_config)),
                insecure: RwLock::new(options.insecure),
                total: TotalLimit::default(),
                total_concurrency: options.total_concurrency,
                per_registry_concurrency: options.per_registry_concurrency,
                timeout: options.timeout,
                certs_d: options.certs_d,
                roots,
                registries: Mutex::new(HashMap::new()),
                remembered: Mutex::new(HashMap::new()),
                observer: options.observer,
            }),
        })
    }

    /// The requests `registry` may have in flight now (its adaptive limit),
    /// if it was asked anything yet.
    pub fn concurrency_limit(&self, registry: &str) -> Option<usize> {
        lock(&self.inner.registries).get(registry).map(|r| r.limiter.limit())
    }

    /// Every registry asked so far with its current limit, by name.
    pub fn concurrency_limits(&self) -> Vec<(String, usize)> {
        let mut all: Vec<(String, usize)> =
            lock(&self.inner.registries).iter().map(|(name, r)| (name.clone(), r.limiter.limit())).collect();
        all.sort();
        all
    }

    /// The client for a registry: its own when its certs.d folder has
    /// certificates, else (`None`) the shared one.
    fn registry_http(&self, name: &str) -> Result<Option<reqwest::Client>, TlsError> {
        let Some(host) = tls::load_host(&self.inner.certs_d, name)? else {
            return Ok(None);
        };
        if host.roots.is_empty() && host.identity.is_none() {
            return Ok(None);
        }
        tracing::debug!(registry = %name, files = ?host.files, "registry certificates from certs.d");
        let mut roots = self.inner.roots.clone();
        roots.extend(host.roots);
        let pool = pool_size(self.inner.per_registry_concurrency);
        http_client(self.inner.timeout, pool, &roots, host.identity).map(Some).map_err(|reason| TlsError::File {
            path: tls::host_dir(&self.inner.certs_d, name).unwrap_or_default().display().to_string(),
            reason,
        })
    }

    /// The total cap: the configured one, or one that grows with the registries in use.
    fn total_limit(&self) -> usize {
        self.inner.total_concurrency.unwrap_or_else(|| {
            let registries = lock(&self.inner.registries).len().max(1);
            registries.saturating_mul(TOTAL_PER_REGISTRY).min(TOTAL_MAX)
        })
    }

    /// Replaces the insecure-registry list (the engine's settings changed).
    pub fn set_insecure(&self, insecure: InsecureRegistries) {
        *self.inner.insecure.write().unwrap_or_else(PoisonError::into_inner) = insecure;
    }

    /// New credentials (the config file changed): what was learnt with the
    /// old ones (credentials, tokens) is forgotten, so the next request uses the new.
    pub fn set_docker_config(&self, config: Arc<DockerConfig>) {
        *self.inner.docker_config.write().unwrap_or_else(PoisonError::into_inner) = config;
        self.inner.registries.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// What an earlier run learned about registries (see [`KnownProtocol`]),
    /// used for those not asked yet. Only the scheme's order changes: plain
    /// http still goes only to insecure registries.
    pub fn remember_protocols(&self, known: impl IntoIterator<Item = (String, KnownProtocol)>) {
        lock(&self.inner.remembered).extend(known);
    }

    /// The protocols of registries that answered anonymously (for one that
    /// wants credentials, a lone first request learns the challenge: that
    /// is not skipped), and the remembered ones not asked this time.
    pub fn known_protocols(&self) -> Vec<(String, KnownProtocol)> {
        let mut known: HashMap<String, KnownProtocol> = lock(&self.inner.remembered).clone();
        for (name, reg) in lock(&self.inner.registries).iter() {
            let memo = reg.memo();
            known.remove(name);
            if let (Some(scheme), Some(h2), AuthHint::Unknown) = (memo.scheme, memo.h2, &memo.auth) {
                known.insert(name.clone(), KnownProtocol { scheme, h2 });
            }
        }
        let mut known: Vec<_> = known.into_iter().collect();
        known.sort_by(|a, b| a.0.cmp(&b.0));
        known
    }

    /// The scheme that last worked for `registry`, if any did yet.
    pub fn known_scheme(&self, registry: &str) -> Option<Scheme> {
        let state = lock(&self.inner.registries).get(registry).cloned();
        state.and_then(|s| s.memo().scheme)
    }

    fn is_insecure(&self, host: &str) -> bool {
        self.inner.insecure.read().unwrap_or_else(PoisonError::into_inner).is_insecure(host)
    }

    fn registry(&self, image: &ImageRef) -> Arc<RegistryState> {
        if let Some(state) = lock(&self.inner.registries).get(&image.registry) {
            return state.clone();
        }
        // Read outside the lock: it touches the file system.
        let http = self.registry_http(&image.registry);
        let remembered = lock(&self.inner.remembered).remove(&image.registry);
        let mut map = lock(&self.inner.registries);
        map.entry(image.registry.clone())
            .or_insert_with(|| {
                let memo = Memo {
                    scheme: remembered.map(|k| k.scheme),
                    h2: remembered.map(|k| k.h2),
                    remembered: remembered.is_some(),
                    ..Memo::default()
                };
                Arc::new(RegistryState {
                    name: image.registry.clone(),
                    endpoint: image.registry_endpoint().to_string(),
                    hub: image.registry == DOCKER_HUB,
                    limiter: Limiter::new(self.inner.per_registry_concurrency),
                    http,
                    credential: OnceCell::new(),
                    memo: Mutex::new(memo),
                    probe: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// The digest `image`'s tag (or digest) resolves to in its registry now:
    /// the `Docker-Content-Digest` of a manifest `HEAD`, or, from registries
    /// that don't send it, the sha256 of the manifest body. Docker Hub is
    /// only asked with `HEAD`, since a `GET` counts against its pull limit.
    pub async fn remote_digest(&self, image: &ImageRef) -> Result<String, RegistryError> {
        let reg = self.registry(image);
        reg.check_blocked()?;
        // The registry's own limit first: a task waiting for it holds no
        // slot of the total that other registries could use.
        let permit = reg.limiter.acquire().await;
        let _all = self.inner.total.acquire(|| self.total_limit()).await;
        // Another check may have been told to wait while we queued.
        reg.check_blocked()?;

        let path = manifest_path(&image.repository, image.manifest_reference());
        let head = self.request(&reg, &permit, image, Method::HEAD, &path).await?;
        if let Some(digest) = header_digest(&reg.name, head.headers())? {
            return Ok(digest);
        }
        if !may_get_manifest(image) {
            return Err(RegistryError::MissingDigest { registry: reg.name.clone() });
        }
        let get = self.request(&reg, &permit, image, Method::GET, &path).await?;
        if let Some(digest) = header_digest(&reg.name, get.headers())? {
            return Ok(digest);
        }
        let body = read_capped(&reg.name, get, MANIFEST_MAX_BYTES, "manifest").await?;
        Ok(manifest_digest(&body))
    }

    /// Every tag of `image`'s repository, following `Link` pages, through the
    /// same politeness as the digest checks (one page at a time holds one
    /// slot). At most `max_pages` pages are read: a repository with more
    /// tags than that gives what was read, which the caller bounds anyway.
    pub async fn list_tags(&self, image: &ImageRef, max_pages: usize) -> Result<Vec<String>, RegistryError> {
        let reg = self.registry(image);
        let mut tags = Vec::new();
        let mut path = tags::first_page(&image.repository);
        for _ in 0..max_pages {
            reg.check_blocked()?;
            let permit = reg.limiter.acquire().await;
            let _all = self.inner.total.acquire(|| self.total_limit()).await;
            reg.check_blocked()?;
            let resp = self.request(&reg, &permit, image, Method::GET, &path).await?;
            let next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|link| tags::next_page(link, &image.repository));
            let body = read_capped(&reg.name, resp, TAG_PAGE_MAX_BYTES, "tag list").await?;
            let page = tags::parse_page(&body).map_err(|reason| RegistryError::InvalidResponse {
                registry: reg.name.clone(),
                reason: reason.into(),
            })?;
            tags.extend(page);
            match next {
                Some(next) => path = next,
                None => break,
            }
        }
        Ok(tags)
    }

    /// Sends a manifest request with whatever auth the registry wants,
    /// answering one 401 challenge; returns a 2xx answer or the error.
    async fn request(
        &self,
        reg: &RegistryState,
        permit: &Permit<'_>,
        image: &ImageRef,
        method: Method,
        path: &str,
    ) -> Result<Response, RegistryError> {
        let default_scope = pull_scope(&image.repository);
        let hint = reg.memo().auth.clone();
        let mut auth = self.auth_for(reg, &hint, &default_scope, false).await?;
        let mut retried = false;
        loop {
            let resp = self.send(reg, permit, method.clone(), path, auth.as_ref().map(|a| &a.header)).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return check_status(reg, resp);
            }
            reg.answered();
            let unauthorized = || RegistryError::Unauthorized { registry: reg.name.clone() };
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| challenge::parse(v).ok())
                .ok_or_else(unauthorized)?;
            let hint = AuthHint::from_challenge(&challenge);
            let scope = match &challenge {
                Challenge::Bearer { scope: Some(scope), .. } if !scope.is_empty() => scope.clone(),
                _ => default_scope.clone(),
            };
            reg.memo().auth = hint.clone();
            if let Some(sent) = &auth {
                if let Some(scope) = &sent.scope {
                    reg.forget_token(scope);
                }
                let same = sent.hint == hint && (hint == AuthHint::Basic || sent.scope.as_deref() == Some(&scope));
                if retried || (sent.fresh && same) {
                    return Err(unauthorized());
                }
            } else if retried {
                return Err(unauthorized());
            }
            retried = true;
            auth = self.auth_for(reg, &hint, &scope, true).await?;
            if auth.is_none() {
                return Err(unauthorized());
            }
        }
    }

    /// The `Authorization` for a registry that wants `hint`; `None` when we
    /// have nothing to offer. `fresh` skips the token cache.
    async fn auth_for(
        &self,
        reg: &RegistryState,
        hint: &AuthHint,
        scope: &str,
        fresh: bool,
    ) -> Result<Option<SentAuth>, RegistryError> {
        match hint {
            AuthHint::Unknown => Ok(None),
            AuthHint::Basic => match self.credential(reg).await? {
                Some(Credential::Basic { username, password }) => Ok(Some(SentAuth {
                    header: basic_header(&username, &password)?,
                    fresh: true,
                    hint: hint.clone(),
                    scope: None,
                })),
                _ => Ok(None),
            },
            AuthHint::Bearer { realm, service } => {
                if !fresh {
                    if let Some(token) = reg.cached_token(scope) {
                        let header = bearer_header(&reg.name, &token)?;
                        return Ok(Some(SentAuth {
                            header,
                            fresh: false,
                            hint: hint.clone(),
                            scope: Some(scope.into()),
                        }));
                    }
                }
                let credential = self.credential(reg).await?;
                let token = match credential {
                    Some(Credential::RegistryToken(token)) => token,
                    credential => {
                        let (token, usable_for) =
                            self.fetch_token(reg, credential.as_ref(), realm, service.as_deref(), scope).await?;
                        reg.store_token(scope, &token, usable_for);
                        token
                    }
                };
                let header = bearer_header(&reg.name, &token)?;
                Ok(Some(SentAuth { header, fresh: true, hint: hint.clone(), scope: Some(scope.into()) }))
            }
        }
    }

    /// The registry's credentials, looked up once per client.
    async fn credential(&self, reg: &RegistryState) -> Result<Option<Credential>, RegistryError> {
        reg.credential
            .get_or_try_init(|| async {
                let config = Arc::clone(&self.inner.docker_config.read().unwrap_or_else(PoisonError::into_inner));
                credentials::resolve(&config, &reg.name)
                    .await
                    .map_err(|source| RegistryError::Credentials { registry: reg.name.clone(), source })
            })
            .await
            .cloned()
    }

    /// Gets a token from the realm: the OAuth refresh grant for identity
    /// tokens, otherwise `GET` with Basic credentials or anonymously.
    /// Returns the token and how long to keep using it.
    async fn fetch_token(
        &self,
        reg: &RegistryState,
        credential: Option<&Credential>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Duration), RegistryError> {
        let invalid =
            |reason: &str| RegistryError::InvalidResponse { registry: reg.name.clone(), reason: reason.into() };
        let url = reqwest::Url::parse(realm).map_err(|_| invalid("token realm is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("token realm is not an http(s) URL"));
        }
        if url.scheme() == "http" && credential.is_some() {
            let host = match (url.host_str(), url.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                (None, _) => String::new(),
            };
            if !self.is_insecure(&host) {
                return Err(RegistryError::InsecureTokenRealm { registry: reg.name.clone(), host });
            }
        }
        let http = self.http_for(reg)?;
        let request = match credential {
            Some(Credential::IdentityToken(refresh_token)) => {
                let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                form.push(("scope", scope));
                form.push(("client_id", CLIENT_ID));
                http.post(url).form(&form)
            }
            Some(Credential::Basic { username, password }) => {
                http.get(challenge::token_url(realm, service, Some(scope))).basic_auth(username, Some(password))
            }
            _ => http.get(challenge::token_url(realm, service, Some(scope))),
        };
        let resp = request.send().await;
        observe::report(self.inner.observer.as_ref(), &reg.name, resp.as_ref().map_err(|_| ()));
        let resp = resp.map_err(|e| transport_error(&reg.name, &e))?;
        let status = resp.status();
        match status.as_u16() {
            200..=299 => {}
            401 | 403 => {
                reg.answered();
                return Err(RegistryError::Unauthorized { registry: reg.name.clone() });
            }
            429 => return Err(reg.rate_limited(resp.headers())),
            500..=599 => return Err(reg.server_error(status.as_u16(), resp.headers())),
            code => {
                return Err(RegistryError::UnexpectedStatus {
                    registry: reg.name.clone(),
                    status: code,
                    reason: format!("from the token server ({})", status_reason(status)),
                })
            }
        }
        let body = read_capped(&reg.name, resp, TOKEN_RESPONSE_MAX_BYTES, "token server answer").await?;
        // serde's messages can quote input; the input holds a token: say nothing of it.
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|_| invalid("token server answer is not valid token JSON"))?;
        let token = [answer.token, answer.access_token]
            .into_iter()
            .flatten()
            .find(|t| !t.is_empty())
            .ok_or_else(|| invalid("token server answer has no token"))?;
        let issued_at = answer.issued_at.as_deref().and_then(|s| humantime::parse_rfc3339_weak(s).ok());
        let usable_for = token_usable_for(answer.expires_in.and_then(|n| n.as_f64()), issued_at, SystemTime::now());
        reg.answered();
        Ok((token, usable_for))
    }

    /// Sends one request (see [`Self::send_once`]). A protocol remembered
    /// from an earlier run that no longer works — the registry is not
    /// reachable that way, or a TLS server answers plain http with 400 — is
    /// forgotten, and the request sent again the way a new registry's is.
    async fn send(
        &self,
        reg: &RegistryState,
        permit: &Permit<'_>,
        method: Method,
        path: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Response, RegistryError> {
        let (remembered, tried) = {
            let memo = reg.memo();
            (memo.remembered, memo.scheme)
        };
        if !remembered {
            return self.send_once(reg, permit, method, path, auth).await;
        }
        let sent = self.send_once(reg, permit, method.clone(), path, auth).await;
        let stale = match &sent {
            Ok(resp) => resp.status() == StatusCode::BAD_REQUEST,
            Err(e) => matches!(e, RegistryError::Unreachable { .. }),
        };
        if !stale {
            if sent.is_ok() {
                reg.memo().remembered = false;
            }
            return sent;
        }
        if reg.forget_remembered(tried) {
            tracing::debug!(registry = %reg.name, "the remembered protocol does not answer; finding out again");
        }
        self.send_once(reg, permit, method, path, auth).await
    }

    /// Sends one request over the scheme that works for the registry: https,
    /// and http only for insecure registries whose https failed to connect.
    async fn send_once(
        &self,
        reg: &RegistryState,
        permit: &Permit<'_>,
        method: Method,
        path: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Response, RegistryError> {
        let http = self.http_for(reg)?;
        let insecure = !reg.hub && self.is_insecure(&reg.name);
        // A registry not spoken to lately gets one request alone: it learns
        // the scheme (no failing https attempt per request on a plain-http
        // registry) and leaves an open connection — with h2 the only one the
        // round needs. Whatever its outcome, the others then go at once; over
        // TLS as soon as its handshake has chosen h2 (see `connect_watch`).
        let mut probe = match reg.needs_probe() {
            true => {
                let guard = reg.probe.lock().await;
                reg.needs_probe().then_some(guard)
            }
            false => None,
        };
        let known = reg.memo().scheme;
        let order = scheme_order(known, insecure);
        let attempt = |scheme: Scheme| {
            let mut req = http.request(method.clone(), registry_url(scheme, &reg.endpoint, path));
            req = req.header(ACCEPT, MANIFEST_ACCEPT);
            if let Some(auth) = auth {
                req = req.header(AUTHORIZATION, auth.clone());
            }
            let started = Instant::now();
            async move { (scheme, started, req.send().await) }
        };
        // https failed in a way plain http might not (nothing to do with TLS
        // certificates: a server that showed one speaks TLS, and plain http
        // would only hide the real problem).
        let may_fall_back = |e: &reqwest::Error| e.is_connect() && !tls::is_certificate_problem(&describe(e));
        let run = async {
            match order {
                [only] => vec![attempt(*only).await],
                // An insecure registry not asked yet: https and http at once, so
                // finding out costs one round trip, not two; https wins if it works.
                // Never with credentials: they go over http only after https failed.
                [first, second] if auth.is_none() => {
                    let (a, b) = (attempt(*first), attempt(*second));
                    tokio::pin!(a, b);
                    let final_answer =
                        |r: &Result<Response, reqwest::Error>| r.as_ref().err().is_none_or(|e| !may_fall_back(e));
                    tokio::select! {
                        biased;
                        ra = &mut a => if final_answer(&ra.2) { vec![ra] } else { vec![ra, b.await] },
                        rb = &mut b => {
                            let ra = a.await;
                            if final_answer(&ra.2) { vec![ra] } else { vec![ra, rb] }
                        }
                    }
                }
                [first, second] => {
                    let first = attempt(*first).await;
                    match &first.2 {
                        Err(e) if may_fall_back(e) => vec![first, attempt(*second).await],
                        _ => vec![first],
                    }
                }
                _ => Vec::new(),
            }
        };
        let attempts = if probe.is_some() {
            let signal = Arc::new(H2Signal::default());
            let run = connect_watch::watching(signal.clone(), run);
            tokio::pin!(run);
            // `run` first: by the time the signal is seen, the connection is
            // in the pool for the others to share.
            tokio::select! {
                biased;
                attempts = &mut run => attempts,
                () = signal.h2() => {
                    reg.speaks_h2();
                    drop(probe.take());
                    run.await
                }
            }
        } else {
            run.await
        };
        let count = attempts.len();
        let mut last = None;
        for (i, (scheme, started, sent)) in attempts.into_iter().enumerate() {
            observe::report(self.inner.observer.as_ref(), &reg.name, sent.as_ref().map_err(|_| ()));
            match sent {
                Ok(resp) => {
                    reg.contacted();
                    let status = resp.status();
                    let signal = if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        Signal::Overloaded
                    } else {
                        Signal::Answered(started.elapsed())
                    };
                    reg.observe(permit, signal);
                    if known != Some(scheme) {
                        tracing::debug!(
                            registry = %reg.name,
                            scheme = scheme.as_str(),
                            version = ?resp.version(),
                            "registry answers"
                        );
                    }
                    reg.answered_over(scheme, resp.version());
                    return Ok(resp);
                }
                Err(e) => {
                    let fall_back = i + 1 < count && may_fall_back(&e);
                    if fall_back {
                        tracing::debug!(
                            registry = %reg.name,
                            error = %describe(&e),
                            "https failed; using http (insecure registry)"
                        );
                    }
                    last = Some(e);
                    if !fall_back {
                        break;
                    }
                }
            }
        }
        reg.contacted();
        Err(match last {
            Some(e) => {
                if e.is_timeout() {
                    reg.observe(permit, Signal::Overloaded);
                }
                let reason = describe(&e);
                if e.is_connect() && tls::is_certificate_problem(&reason) {
                    let certs_dir = tls::host_dir(&self.inner.certs_d, &reg.name).unwrap_or_default();
                    RegistryError::Certificate {
                        registry: reg.name.clone(),
                        reason,
                        certs_dir: certs_dir.display().to_string(),
                    }
                } else {
                    transport_error(&reg.name, &e)
                }
            }
            None => RegistryError::Unreachable { registry: reg.name.clone(), reason: "no scheme to try".into() },
        })
    }

    /// The registry's own client (certs.d), or the shared one.
    fn http_for<'a>(&'a self, reg: &'a RegistryState) -> Result<&'a reqwest::Client, RegistryError> {
        match &reg.http {
            Ok(Some(http)) => Ok(http),
            Ok(None) => Ok(&self.inner.http),
            Err(source) => Err(RegistryError::Tls { registry: reg.name.clone(), source: source.clone() }),
        }
    }
}

/// The token server's answer. No `Debug`: it holds the token.
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Number>,
    #[serde(default)]
    issued_at: Option<String>,
}

/// Turns a non-401 answer into the response (2xx) or the error, updating
/// the registry's blocked state.
fn check_status(reg: &RegistryState, resp: Response) -> Result<Response, RegistryError> {
    let status = resp.status();
    let registry = || reg.name.clone();
    match status.as_u16() {
        200..=299 => {
            reg.answered();
            Ok(resp)
        }
        404 => {
            reg.answered();
            Err(RegistryError::NotFound { registry: registry() })
        }
        429 => Err(reg.rate_limited(resp.headers())),
        500..=599 => Err(reg.server_error(status.as_u16(), resp.headers())),
        code => {
            reg.answered();
            Err(RegistryError::UnexpectedStatus { registry: registry(), status: code, reason: status_reason(status) })
        }
    }
}

/// `forbidden` for 403: the lowercase reason phrase, as the messages use.
fn status_reason(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("unexpected status").to_ascii_lowercase()
}

/// Reads a body, refusing more than `max` bytes.
async fn read_capped(registry: &str, mut resp: Response, max: usize, what: &str) -> Result<Vec<u8>, RegistryError> {
    let too_big = || RegistryError::InvalidResponse {
        registry: registry.to_string(),
        reason: format!("{what} is larger than {} KiB", max / 1024),
    };
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(registry, &e))? {
        if body.len() + chunk.len() > max {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `Docker-Content-Digest` header, if sent; an error if it isn't a digest.
fn header_digest(registry: &str, headers: &HeaderMap) -> Result<Option<String>, RegistryError> {
    let Some(value) = headers.get(DIGEST_HEADER) else {
        return Ok(None);
    };
    match value.to_str().ok().map(str::trim).filter(|d| is_digest(d)) {
        Some(d) => Ok(Some(d.to_string())),
        None => Err(RegistryError::InvalidResponse {
            registry: registry.to_string(),
            reason: "Docker-Content-Digest header is not a digest".into(),
        }),
    }
}

/// `algorithm:hex`, loosely: enough to refuse garbage, not a full grammar check.
fn is_digest(s: &str) -> bool {
    match s.split_once(':') {
        Some((algorithm, hex)) => {
            !algorithm.is_empty()
                && algorithm.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// The digest of a manifest body: what the registry would have put in
/// `Docker-Content-Digest` (distribution digests the exact bytes it serves).
pub fn manifest_digest(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

/// Whether a missing digest header may be made up for with a `GET`. Not on
/// Docker Hub, where every manifest `GET` counts as a pull.
fn may_get_manifest(image: &ImageRef) -> bool {
    image.registry != DOCKER_HUB
}

/// `/v2/<repository>/manifests/<reference>`. Repository, tag and digest
/// grammars allow only URL-safe characters, so nothing needs escaping.
fn manifest_path(repository: &str, reference: &str) -> String {
    format!("/v2/{repository}/manifests/{reference}")
}

fn registry_url(scheme: Scheme, endpoint: &str, path: &str) -> String {
    format!("{}://{endpoint}{path}", scheme.as_str())
}

/// The token scope for reading a repository.
fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// Schemes to try, in order. A scheme that answered before is used alone,
/// so a registry known to speak http costs no failing https attempt; http
/// is only ever tried for insecure registries.
fn scheme_order(known: Option<Scheme>, insecure: bool) -> &'static [Scheme] {
    match (known, insecure) {
        (Some(Scheme::Http), true) => &[Scheme::Http],
        (Some(Scheme::Https), _) => &[Scheme::Https],
        (None, true) => &[Scheme::Https, Scheme::Http],
        // Not (or no longer) insecure: https only, whatever worked before.
        (_, false) => &[Scheme::Https],
    }
}

fn basic_header(username: &str, password: &str) -> Result<HeaderValue, RegistryError> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    sensitive_header(&format!("Basic {encoded}")).ok_or_else(|| RegistryError::Client("bad basic auth header".into()))
}

fn bearer_header(registry: &str, token: &str) -> Result<HeaderValue, RegistryError> {
    sensitive_header(&format!("Bearer {token}")).ok_or_else(|| RegistryError::InvalidResponse {
        registry: registry.to_string(),
        reason: "token has characters not allowed in an HTTP header".into(),
    })
}

/// A header value hidden from `Debug` output (and from HPACK indexing in h2).
fn sensitive_header(value: &str) -> Option<HeaderValue> {
    let mut header = HeaderValue::from_str(value).ok()?;
    header.set_sensitive(true);
    Some(header)
}

fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

/// `Retry-After` as seconds or HTTP date, relative to `now`; capped at 6 h.
/// A date in the past means "now".
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(RETRY_AFTER_MAX))
}

/// The wait after the `n`th 5xx in a row: 5 s, 10 s, 20 s, … up to 5 min.
fn server_backoff(n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(16);
    SERVER_BACKOFF_MIN.saturating_mul(1 << doublings).min(SERVER_BACKOFF_MAX)
}

/// How long a token can be used from `now`: its `expires_in` (60 s if
/// missing or not positive), minus the time since `issued_at`, minus a
/// margin of a tenth of its life (at most 30 s). An `issued_at` in the
/// future, or older than the whole life, means the clocks disagree; it is
/// then ignored rather than making every token look expired.
fn token_usable_for(expires_in: Option<f64>, issued_at: Option<SystemTime>, now: SystemTime) -> Duration {
    let life = expires_in
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(TOKEN_DEFAULT_LIFETIME, |s| Duration::from_secs_f64(s.min(RETRY_AFTER_MAX.as_secs_f64())));
    let age = issued_at.and_then(|t| now.duration_since(t).ok()).filter(|age| *age < life).unwrap_or_default();
    let margin = (life / 10).min(TOKEN_MARGIN_MAX);
    life.saturating_sub(age).saturating_sub(margin)
}

/// `30s`, `1m 30s`, `5m`: whole seconds, rounded up, so a wait never reads shorter than it is.
fn format_wait(wait: Duration) -> String {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn transport_error(registry: &str, e: &reqwest::Error) -> RegistryError {
    if e.is_timeout() {
        RegistryError::Timeout { registry: registry.to_string() }
    } else {
        RegistryError::Unreachable { registry: registry.to_string(), reason: describe(e) }
    }
}

/// Why a request failed, in a few words: the OS's reason for socket
/// errors, otherwise the innermost cause (DNS, TLS, protocol). reqwest's own
/// message is skipped: it repeats the URL.
fn describe(e: &reqwest::Error) -> String {
    let mut innermost = None;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if let Some(text) = io_kind_text(io.kind()) {
                return text.to_string();
            }
        }
        innermost = Some(s);
        source = s.source();
    }
    innermost.map_or_else(|| "request failed".to_string(), |s| s.to_string())
}

fn io_kind_text(kind: io::ErrorKind) -> Option<&'static str> {
    Some(match kind {
        io::ErrorKind::ConnectionRefused => "connection refused",
        io::ErrorKind::ConnectionReset => "connection reset",
        io::ErrorKind::ConnectionAborted => "connection aborted",
        io::ErrorKind::NotConnected => "not connected",
        io::ErrorKind::AddrNotAvailable => "address not available",
        io::ErrorKind::HostUnreachable => "host unreachable",
        io::ErrorKind::NetworkUnreachable => "network unreachable",
        io::ErrorKind::UnexpectedEof => "connection closed",
        io::ErrorKind::BrokenPipe => "connection closed",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::reference;

    #[test]
    fn retry_after_values() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").expect("date");
        let cases = [
            ("30", Some(30)),
            (" 7 ", Some(7)),
            ("0", Some(0)),
            ("Wed, 21 Oct 2015 07:29:00 GMT", Some(60)),
            ("Wed, 21 Oct 2015 07:27:00 GMT", Some(0)),
            ("Wednesday, 21-Oct-15 07:28:30 GMT", Some(30)),
            ("999999999", Some(6 * 3600)),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now), want.map(Duration::from_secs), "value {value:?}");
        }
    }

    #[test]
    fn server_backoff_doubles_up_to_five_minutes() {
        let cases = [(0, 5), (1, 5), (2, 10), (3, 20), (4, 40), (6, 160), (7, 300), (40, 300), (u32::MAX, 300)];
        for (n, want) in cases {
            assert_eq!(server_backoff(n), Duration::from_secs(want), "n {n}");
        }
    }

    #[test]
    fn token_lifetimes() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ago = |s: u64| Some(now - Duration::from_secs(s));
        // (expires_in, issued_at, usable seconds)
        let cases = [
            (Some(300.0), None, 270.0),
            (Some(300.0), ago(100), 170.0),
            (None, None, 54.0),
            (Some(0.0), None, 54.0),
            (Some(-3.0), None, 54.0),
            (Some(f64::NAN), None, 54.0),
            (Some(60.0), ago(10), 44.0),
            (Some(3600.0), ago(0), 3570.0),
            (Some(10.0), None, 9.0),
            // issued_at in the future or older than the life: clocks disagree.
            (Some(300.0), Some(now + Duration::from_secs(50)), 270.0),
            (Some(300.0), ago(400), 270.0),
            (Some(300.0), ago(295), 0.0),
        ];
        for (expires_in, issued_at, want) in cases {
            assert_eq!(
                token_usable_for(expires_in, issued_at, now),
                Duration::from_secs_f64(want),
                "expires_in {expires_in:?}, issued_at {issued_at:?}"
            );
        }
    }

    #[test]
    fn scheme_choice() {
        use Scheme::{Http, Https};
        let cases: [(Option<Scheme>, bool, &[Scheme]); 6] = [
            (None, false, &[Https]),
            (None, true, &[Https, Http]),
            (Some(Https), true, &[Https]),
            (Some(Https), false, &[Https]),
            (Some(Http), true, &[Http]),
            (Some(Http), false, &[Https]),
        ];
        for (known, insecure, want) in cases {
            assert_eq!(scheme_order(known, insecure), want, "known {known:?}, insecure {insecure}");
        }
    }

    #[test]
    fn urls_and_scopes() {
        let sha = format!("sha256:{}", "a".repeat(64));
        let cases = [
            ("nginx", Scheme::Https, "https://registry-1.docker.io/v2/library/nginx/manifests/latest"),
            ("ghcr.io/o/r:v1.2", Scheme::Https, "https://ghcr.io/v2/o/r/manifests/v1.2"),
            ("127.0.0.1:5000/a/b/c:t", Scheme::Http, "http://127.0.0.1:5000/v2/a/b/c/manifests/t"),
            ("[::1]:5000/x", Scheme::Http, "http://[::1]:5000/v2/x/manifests/latest"),
        ];
        for (image, scheme, want) in cases {
            let image = reference::parse(image).expect("valid reference");
            let path = manifest_path(&image.repository, image.manifest_reference());
            assert_eq!(registry_url(scheme, image.registry_endpoint(), &path), want);
        }
        let pinned = reference::parse(&format!("ghcr.io/o/r:v1@{sha}")).expect("valid reference");
        let path = manifest_path(&pinned.repository, pinned.manifest_reference());
        assert_eq!(path, format!("/v2/o/r/manifests/{sha}"));
        assert_eq!(pull_scope("library/nginx"), "repository:library/nginx:pull");
    }

    #[test]
    fn docker_hub_is_never_asked_with_get() {
        let cases =
            [("nginx", false), ("docker.io/u/app:1", false), ("index.docker.io/u/a", false), ("ghcr.io/o/r", true)];
        for (image, want) in cases {
            assert_eq!(may_get_manifest(&reference::parse(image).expect("valid reference")), want, "image {image}");
        }
    }

    #[test]
    fn body_digest_is_sha256_of_the_bytes() {
        let cases = [
            (&b""[..], "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (&b"abc"[..], "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ];
        for (body, want) in cases {
            assert_eq!(manifest_digest(body), want);
        }
        // Whitespace matters: the registry digests the exact bytes.
        assert_ne!(manifest_digest(b"{}"), manifest_digest(b"{}\n"));
    }

    #[test]
    fn digest_headers() {
        let sha = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let cases = [
            (Some(sha.as_str()), Ok(Some(sha.clone()))),
            (Some(&*format!(" {sha} ")), Ok(Some(sha.clone()))),
            (None, Ok(None)),
            (Some("sha256:xyz"), Err(())),
            (Some("nonsense"), Err(())),
            (Some(""), Err(())),
        ];
        for (value, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(v) = value {
                headers.insert(DIGEST_HEADER, HeaderValue::from_str(v).expect("header"));
            }
            assert_eq!(header_digest("r", &headers).map_err(|_| ()), want, "value {value:?}");
        }
    }

    #[test]
    fn waits_read_as_whole_seconds() {
        let cases = [(0.0, "0s"), (0.2, "1s"), (30.0, "30s"), (29.5, "30s"), (90.0, "1m 30s"), (300.0, "5m")];
        for (secs, want) in cases {
            assert_eq!(format_wait(Duration::from_secs_f64(secs)), want, "secs {secs}");
        }
    }

    #[test]
    fn error_messages() {
        let r = || "host:5000".to_string();
        let cases = [
            (
                RegistryError::Unauthorized { registry: "127.0.0.1:5002".into() },
                "registry 127.0.0.1:5002: 401 unauthorized",
                false,
            ),
            (RegistryError::NotFound { registry: "ghcr.io".into() }, "registry ghcr.io: 404 manifest unknown", false),
            (
                RegistryError::RateLimited { registry: r(), retry_after: Duration::from_secs(30) },
                "registry host:5000: 429 rate limited, retry in 30s",
                true,
            ),
            (
                RegistryError::Server { registry: r(), status: 503, retry_after: Duration::from_secs(10) },
                "registry host:5000: 503 server error, retry in 10s",
                true,
            ),
            (
                RegistryError::Unreachable { registry: r(), reason: "connection refused".into() },
                "registry host:5000: unreachable (connection refused)",
                true,
            ),
            (RegistryError::Timeout { registry: r() }, "registry host:5000: timed out", true),
            (
                RegistryError::UnexpectedStatus {
                    registry: r(),
                    status: 403,
                    reason: status_reason(StatusCode::FORBIDDEN),
                },
                "registry host:5000: 403 forbidden",
                false,
            ),
        ];
        for (err, want, keeps) in cases {
            assert_eq!(err.to_string(), want);
            assert_eq!(err.keeps_last_status(), keeps, "{want}");
        }
        let limited = RegistryError::RateLimited { registry: r(), retry_after: Duration::from_secs(7) };
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(RegistryError::Timeout { registry: r() }.retry_after(), None);
    }

    #[test]
    fn auth_headers_are_sensitive() {
        let basic = basic_header("u", "hunter2").expect("header");
        assert!(basic.is_sensitive());
        assert_eq!(basic.to_str().ok(), Some("Basic dTpodW50ZXIy"));
        assert!(!format!("{basic:?}").contains("dTpodW50ZXIy"));
        let bearer = bearer_header("r", "tok").expect("header");
        assert!(bearer.is_sensitive());
        assert!(bearer_header("r", "bad\ntoken").is_err());
    }
}
