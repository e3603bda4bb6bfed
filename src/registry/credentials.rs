//! Registry credentials, found the way the docker CLI finds them.
//!
//! Users log in with `docker login`, which stores credentials in
//! `~/.docker/config.json` (inline as base64, or through a credential
//! helper program). To check private images for updates we must find the
//! same credentials for the same registry, so the key rules below follow
//! the CLI: Docker Hub is stored under `https://index.docker.io/v1/`, other
//! registries under whatever was typed at login (`host:port`,
//! `https://host:port`, sometimes with a path), compared by host.
//!
//! Secrets never appear in `Debug` output or in error messages: configs and
//! errors end up in logs.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::{Deserialize, Deserializer};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The key `docker login` uses for Docker Hub, and the server URL it hands
/// to credential helpers for it.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// Every host name that means Docker Hub.
const DOCKER_HUB_HOSTS: [&str; 3] = ["index.docker.io", "docker.io", "registry-1.docker.io"];
/// How long a credential helper may take; a helper waiting on a locked
/// keychain must not stall update checks forever.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(10);
/// Prefix of credential helper programs (`docker-credential-desktop`).
const HELPER_PREFIX: &str = "docker-credential-";
/// Username a helper returns when `Secret` is an identity token.
const TOKEN_USERNAME: &str = "<token>";
/// Longest helper error message we pass on, so a chatty helper can't flood logs.
const HELPER_MESSAGE_MAX: usize = 200;

/// Why credentials could not be loaded or resolved. No variant carries a
/// secret or the content of the config file.
#[derive(Debug, Error)]
pub enum CredentialsError {
    #[error("cannot read Docker config {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "Docker config {} is not valid ({kind} error at line {line}, column {column})",
        path.display()
    )]
    Parse { path: PathBuf, kind: &'static str, line: usize, column: usize },
    #[error("Docker config entry for {key:?}: {reason}")]
    InvalidAuth { key: String, reason: &'static str },
    #[error("credential helper name {name:?} is not valid: it must be non-empty and contain no path separator")]
    InvalidHelperName { name: String },
    #[error("credential helper {program} was not found")]
    HelperMissing { program: String },
    #[error("cannot run credential helper {program}: {source}")]
    HelperSpawn { program: String, source: io::Error },
    #[error("credential helper {program} did not answer within {seconds:.1} s")]
    HelperTimeout { program: String, seconds: f64 },
    #[error("credential helper {program} failed ({status}): {message}")]
    HelperFailed { program: String, status: String, message: String },
    #[error("credential helper {program} gave an answer that is not credential JSON")]
    HelperOutput { program: String },
}

/// The parts of a Docker `config.json` that say where credentials are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DockerConfig {
    /// Inline credentials by registry key, as `docker login` writes them.
    #[serde(default, deserialize_with = "null_as_default")]
    pub auths: HashMap<String, AuthEntry>,
    /// Helper for every registry without its own `credHelpers` entry.
    #[serde(default, rename = "credsStore")]
    pub creds_store: Option<String>,
    /// Helper per registry key.
    #[serde(default, rename = "credHelpers", deserialize_with = "null_as_default")]
    pub cred_helpers: HashMap<String, String>,
}

/// One `auths` entry. `Debug` shows only which secrets are set.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AuthEntry {
    /// base64 of `username:password`.
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// OAuth refresh token from an identity-token login.
    #[serde(default)]
    pub identitytoken: Option<String>,
    /// Bearer token to send to the registry as is.
    #[serde(default)]
    pub registrytoken: Option<String>,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthEntry")
            .field("auth", &redact(&self.auth))
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .field("identitytoken", &redact(&self.identitytoken))
            .field("registrytoken", &redact(&self.registrytoken))
            .finish()
    }
}

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Username and password, for Basic auth or the token endpoint.
    Basic { username: String, password: String },
    /// OAuth refresh token, exchanged at the token endpoint.
    IdentityToken(String),
    /// Bearer token to send to the registry directly.
    RegistryToken(String),
}

impl fmt::Debug for Credential {
    /// Shows the username only; everything else is `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REDACTED: &str = "<redacted>";
        match self {
            Credential::Basic { username, .. } => {
                f.debug_struct("Basic").field("username", username).field("password", &REDACTED).finish()
            }
            Credential::IdentityToken(_) => f.debug_tuple("IdentityToken").field(&REDACTED).finish(),
            Credential::RegistryToken(_) => f.debug_tuple("RegistryToken").field(&REDACTED).finish(),
        }
    }
}

/// Treats `"auths": null` like a missing key; some tools write it.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Loads the Docker config from `path`, or from where the docker CLI looks
/// (`$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`). No file
/// means no credentials, which is normal on a fresh host.
pub fn load(path: Option<PathBuf>) -> Result<DockerConfig, CredentialsError> {
    let path = path.or_else(|| default_path(std::env::var_os("DOCKER_CONFIG"), std::env::var_os("HOME")));
    match path {
        Some(path) => load_from(&path),
        None => Ok(DockerConfig::default()),
    }
}

/// Where the docker CLI keeps its config, given `$DOCKER_CONFIG` and `$HOME`
/// (empty values count as unset, as in the CLI).
pub fn default_path(docker_config: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let non_empty = |v: Option<OsString>| v.filter(|v| !v.is_empty());
    match (non_empty(docker_config), non_empty(home)) {
        (Some(dir), _) => Some(PathBuf::from(dir).join("config.json")),
        (None, Some(home)) => Some(PathBuf::from(home).join(".docker").join("config.json")),
        (None, None) => None,
    }
}

/// Reads and parses one config file. Parse errors report only position and
/// kind: serde_json's messages quote the offending value, which may be a
/// secret.
fn load_from(path: &Path) -> Result<DockerConfig, CredentialsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(DockerConfig::default()),
        Err(source) => return Err(CredentialsError::Read { path: path.to_path_buf(), source }),
    };
    parse_config(&text).map_err(|e| CredentialsError::Parse {
        path: path.to_path_buf(),
        kind: match e.classify() {
            serde_json::error::Category::Io => "read",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "structure",
            serde_json::error::Category::Eof => "unexpected end of file",
        },
        line: e.line(),
        column: e.column(),
    })
}

/// Parses config text; a blank file is an empty config, as the CLI treats it.
fn parse_config(text: &str) -> Result<DockerConfig, serde_json::Error> {
    if text.trim().is_empty() {
        return Ok(DockerConfig::default());
    }
    serde_json::from_str(text)
}

/// Finds credentials for `registry` (`docker.io`, `ghcr.io`,
/// `127.0.0.1:5000`, …), running credential helpers from `$PATH`.
pub async fn resolve(cfg: &DockerConfig, registry: &str) -> Result<Option<Credential>, CredentialsError> {
    resolve_with(cfg, registry, &HelperRunner::default()).await
}

/// [`resolve`] with an explicit way of running helpers.
///
/// Order as in the docker CLI: the registry's `credHelpers` entry, else
/// `credsStore`, else `auths`. Unlike the CLI, a helper that has no
/// credentials falls back to an inline `auths` entry with real content:
/// such an entry was put there on purpose, and using it beats pulling
/// anonymously.
pub async fn resolve_with(
    cfg: &DockerConfig,
    registry: &str,
    runner: &HelperRunner,
) -> Result<Option<Credential>, CredentialsError> {
    let target = Target::new(registry);
    let helper = find_entry(&cfg.cred_helpers, &target)
        .map(|(_, helper)| helper.as_str())
        .or(cfg.creds_store.as_deref())
        .filter(|h| !h.trim().is_empty());
    if let Some(helper) = helper {
        if let Some(credential) = runner.get(helper, &target.server_url()).await? {
            return Ok(Some(credential));
        }
        tracing::debug!(helper, registry, "credential helper has no credentials; trying auths");
    }
    match find_entry(&cfg.auths, &target) {
        Some((key, entry)) => entry_credential(key, entry),
        None => Ok(None),
    }
}

/// The registry being looked up, normalized once.
struct Target {
    /// Lowercase host[:port], without scheme or path.
    host: String,
    hub: bool,
}

impl Target {
    fn new(registry: &str) -> Self {
        let host = convert_to_hostname(registry).to_ascii_lowercase();
        let hub = DOCKER_HUB_HOSTS.contains(&host.as_str());
        Target { host, hub }
    }

    /// What the CLI hands a helper on stdin: the Hub key, or the host.
    fn server_url(&self) -> String {
        if self.hub {
            DOCKER_HUB_KEY.to_string()
        } else {
            self.host.clone()
        }
    }

    /// Whether a config key (in any form `docker login` writes) names this registry.
    fn matches(&self, key: &str) -> bool {
        let host = convert_to_hostname(key).to_ascii_lowercase();
        if self.hub {
            DOCKER_HUB_HOSTS.contains(&host.as_str())
        } else {
            host == self.host
        }
    }

    /// The exact key the CLI itself would look up first.
    fn canonical_key(&self) -> &str {
        if self.hub {
            DOCKER_HUB_KEY
        } else {
            &self.host
        }
    }
}

/// `https://host:port/v1/` → `host:port`, as the CLI's `ConvertToHostname`.
fn convert_to_hostname(key: &str) -> &str {
    let stripped = ["https://", "http://"]
        .iter()
        .find_map(|scheme| {
            let head = key.as_bytes().get(..scheme.len())?;
            // The scheme is ASCII, so the slice below is on a char boundary.
            head.eq_ignore_ascii_case(scheme.as_bytes()).then(|| &key[scheme.len()..])
        })
        .unwrap_or(key);
    stripped.split('/').next().unwrap_or(stripped)
}

/// The entry for the registry: the canonical key if present, else the
/// alphabetically first key that names the same host, so the choice never
/// depends on hash order.
fn find_entry<'a, V>(map: &'a HashMap<String, V>, target: &Target) -> Option<(&'a String, &'a V)> {
    if let Some(found) = map.get_key_value(target.canonical_key()) {
        return Some(found);
    }
    map.iter().filter(|(key, _)| target.matches(key)).min_by(|(a, _), (b, _)| a.cmp(b))
}

/// The credential an `auths` entry holds, in the precedence Docker uses:
/// registry token, identity token, then username and password.
fn entry_credential(key: &str, entry: &AuthEntry) -> Result<Option<Credential>, CredentialsError> {
    let present = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(token) = present(&entry.registrytoken) {
        return Ok(Some(Credential::RegistryToken(token)));
    }
    if let Some(token) = present(&entry.identitytoken) {
        return Ok(Some(Credential::IdentityToken(token)));
    }
    if let Some(auth) = present(&entry.auth) {
        let (username, password) =
            decode_auth(&auth).map_err(|reason| CredentialsError::InvalidAuth { key: key.to_string(), reason })?;
        return Ok(Some(Credential::Basic { username, password }));
    }
    let username = present(&entry.username).unwrap_or_default();
    let password = present(&entry.password).unwrap_or_default();
    if username.is_empty() && password.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential::Basic { username, password }))
}

/// Decodes `base64(username:password)`. The password may itself contain
/// ':', so only the first one splits. Padding is optional because some
/// tools write it without. Errors are static text: never the input.
fn decode_auth(auth: &str) -> Result<(String, String), &'static str> {
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = ENGINE.decode(auth.trim()).map_err(|_| "'auth' is not valid base64")?;
    let text = String::from_utf8(bytes).map_err(|_| "'auth' does not decode to UTF-8 text")?;
    let (username, password) = text.split_once(':').ok_or("'auth' does not decode to username:password")?;
    Ok((username.to_string(), password.trim_end_matches('\0').to_string()))
}

/// Runs `docker-credential-<name> get`. Where programs are looked up is a
/// field, so tests can point at a directory of fake helpers without
/// changing the process environment.
#[derive(Debug, Clone)]
pub struct HelperRunner {
    /// Directory holding the helpers; `None` searches `$PATH`.
    dir: Option<PathBuf>,
    timeout: Duration,
}

impl Default for HelperRunner {
    fn default() -> Self {
        HelperRunner { dir: None, timeout: HELPER_TIMEOUT }
    }
}

/// A helper's answer to `get`.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

impl HelperRunner {
    /// Looks helpers up in `dir` instead of `$PATH`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        HelperRunner { dir: Some(dir.into()), ..Self::default() }
    }

    /// Replaces the default 10 s limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Asks helper `name` for the credentials of `server_url`; `Ok(None)`
    /// when it has none.
    pub async fn get(&self, name: &str, server_url: &str) -> Result<Option<Credential>, CredentialsError> {
        // The name comes from a config file; it must only ever select a
        // docker-credential-* program, never a path.
        if name.trim().is_empty() || name.contains(['/', '\\', '\0']) {
            return Err(CredentialsError::InvalidHelperName { name: name.to_string() });
        }
        let program_name = format!("{HELPER_PREFIX}{name}");
        let program = match &self.dir {
            Some(dir) => dir.join(&program_name).into_os_string(),
            None => OsString::from(&program_name),
        };
        let output = tokio::time::timeout(self.timeout, run(&program, server_url))
            .await
            .map_err(|_| CredentialsError::HelperTimeout {
                program: program_name.clone(),
                seconds: self.timeout.as_secs_f64(),
            })?
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => CredentialsError::HelperMissing { program: program_name.clone() },
                _ => CredentialsError::HelperSpawn { program: program_name.clone(), source },
            })?;
        interpret_answer(&program_name, output)
    }
}

/// Spawns the helper, writes the server URL to its stdin and collects its
/// output. The child is killed if the caller gives up (timeout).
async fn run(program: &OsString, server_url: &str) -> io::Result<std::process::Output> {
    let mut attempts = 0;
    let mut child = loop {
        let spawned = Command::new(program)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            // A helper installed a moment ago can still be open for writing
            // in a process forked meanwhile (ETXTBSY); that passes quickly.
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && attempts < 5 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other?,
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading stdin; its answer still counts.
        match stdin.write_all(server_url.as_bytes()).await {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
            _ => {}
        }
    }
    child.wait_with_output().await
}

/// Turns a helper's exit status and output into credentials. Helpers
/// report a missing entry by failing with "credentials not found".
fn interpret_answer(program: &str, output: std::process::Output) -> Result<Option<Credential>, CredentialsError> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = if stdout.trim().is_empty() { stderr.trim() } else { stdout.trim() };
        if message.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(CredentialsError::HelperFailed {
            program: program.to_string(),
            status: output.status.to_string(),
            message: safe_message(message),
        });
    }
    let answer: HelperAnswer = serde_json::from_str(stdout.trim())
        .map_err(|_| CredentialsError::HelperOutput { program: program.to_string() })?;
    Ok(match (answer.username.as_str(), answer.secret) {
        (_, secret) if secret.is_empty() && answer.username.is_empty() => None,
        (TOKEN_USERNAME, secret) => Some(Credential::IdentityToken(secret)),
        (username, password) => Some(Credential::Basic { username: username.to_string(), password }),
    })
}

/// A failed helper's message, cut short, on one line. Anything that looks
/// like JSON is dropped: it could be credentials printed before a failure.
fn safe_message(message: &str) -> String {
    if message.is_empty() {
        return "no message".to_string();
    }
    if message.starts_with('{') {
        return "answer withheld (looks like credential JSON)".to_string();
    }
    let line = message.lines().next().unwrap_or_default();
    let mut out: String = line.chars().take(HELPER_MESSAGE_MAX).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn basic(username: &str, password: &str) -> Credential {
        Credential::Basic { username: username.into(), password: password.into() }
    }

    fn config_with_auths(entries: &[(&str, AuthEntry)]) -> DockerConfig {
        DockerConfig {
            auths: entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            ..DockerConfig::default()
        }
    }

    fn auth_entry(user_pass: &str) -> AuthEntry {
        AuthEntry { auth: Some(b64(user_pass)), ..AuthEntry::default() }
    }

    /// A runner that can only fail: auths-only tests must not run helpers.
    fn no_helpers() -> HelperRunner {
        HelperRunner::in_dir("/nonexistent-shipshape-helpers")
    }

    #[tokio::test]
    async fn matches_every_key_form() {
        // (stored key, registry looked up, found)
        let cases = [
            ("https://index.docker.io/v1/", "docker.io", true),
            ("https://index.docker.io/v1/", "registry-1.docker.io", true),
            ("https://index.docker.io/v1/", "index.docker.io", true),
            ("index.docker.io", "docker.io", true),
            ("docker.io", "docker.io", true),
            ("registry-1.docker.io", "docker.io", true),
            ("https://registry-1.docker.io/v2/", "docker.io", true),
            ("https://index.docker.io/v1/", "ghcr.io", false),
            ("ghcr.io", "ghcr.io", true),
            ("https://ghcr.io", "ghcr.io", true),
            ("http://ghcr.io/", "ghcr.io", true),
            ("HTTPS://GHCR.IO/v1/", "ghcr.io", true),
            ("ghcr.io", "GHCR.io", true),
            ("ghcr.io", "docker.io", false),
            ("localhost:5000", "localhost:5000", true),
            ("https://localhost:5000/v1/", "localhost:5000", true),
            ("localhost:5000", "localhost", false),
            ("localhost", "localhost:5000", false),
            ("127.0.0.1:5000", "127.0.0.1:5000", true),
            ("[::1]:5000", "[::1]:5000", true),
            ("ghcr.io.evil.com", "ghcr.io", false),
        ];
        for (key, registry, found) in cases {
            let cfg = config_with_auths(&[(key, auth_entry("u:p"))]);
            let got = resolve_with(&cfg, registry, &no_helpers()).await;
            let want = found.then(|| basic("u", "p"));
            assert_eq!(got.expect("resolves without error"), want, "key {key:?}, registry {registry:?}");
        }
    }

    #[tokio::test]
    async fn canonical_key_wins_then_alphabetical_order() {
        let cfg = config_with_auths(&[
            ("docker.io", auth_entry("alias:p")),
            ("https://index.docker.io/v1/", auth_entry("canonical:p")),
            ("registry-1.docker.io", auth_entry("other:p")),
        ]);
        let got = resolve_with(&cfg, "docker.io", &no_helpers()).await;
        assert_eq!(got.expect("resolves"), Some(basic("canonical", "p")));

        let cfg = config_with_auths(&[("https://ghcr.io", auth_entry("b:p")), ("http://ghcr.io", auth_entry("a:p"))]);
        let got = resolve_with(&cfg, "ghcr.io", &no_helpers()).await;
        assert_eq!(got.expect("resolves"), Some(basic("a", "p")));
    }

    #[test]
    fn entry_credentials() {
        let entry = |f: fn(&mut AuthEntry)| {
            let mut e = AuthEntry::default();
            f(&mut e);
            e
        };
        let cases = [
            (auth_entry("user:pass"), Some(basic("user", "pass"))),
            (auth_entry("user:pa:ss:"), Some(basic("user", "pa:ss:"))),
            (auth_entry("user:"), Some(basic("user", ""))),
            (auth_entry(":pass"), Some(basic("", "pass"))),
            (auth_entry("user:pass\0\0"), Some(basic("user", "pass"))),
            (auth_entry("üser:pässword"), Some(basic("üser", "pässword"))),
            (entry(|e| e.auth = Some(b64("u:p").trim_end_matches('=').to_string())), Some(basic("u", "p"))),
            (
                entry(|e| {
                    e.username = Some("u".into());
                    e.password = Some("p".into());
                }),
                Some(basic("u", "p")),
            ),
            (
                entry(|e| {
                    e.auth = Some(b64("from:auth"));
                    e.username = Some("ignored".into());
                }),
                Some(basic("from", "auth")),
            ),
            (
                entry(|e| {
                    e.auth = Some(b64("u:"));
                    e.identitytoken = Some("idt".into());
                }),
                Some(Credential::IdentityToken("idt".into())),
            ),
            (
                entry(|e| {
                    e.identitytoken = Some("idt".into());
                    e.registrytoken = Some("rt".into());
                }),
                Some(Credential::RegistryToken("rt".into())),
            ),
            (AuthEntry::default(), None),
            (
                entry(|e| {
                    e.auth = Some(String::new());
                    e.identitytoken = Some(String::new());
                }),
                None,
            ),
        ];
        for (entry, want) in cases {
            let got = entry_credential("r", &entry).unwrap_or_else(|e| panic!("entry {entry:?}: {e}"));
            assert_eq!(got, want, "entry {entry:?}");
        }
    }

    #[test]
    fn bad_auth_errors_do_not_leak_it() {
        let cases =
            [("not base64 !!!", "not valid base64"), (&*b64("nocolonsecret"), "username:password"), ("//79", "UTF-8")];
        for (auth, want) in cases {
            let entry = AuthEntry { auth: Some(auth.to_string()), ..AuthEntry::default() };
            let err = match entry_credential("ghcr.io", &entry) {
                Err(e) => e.to_string(),
                Ok(c) => panic!("auth {auth:?} gave {c:?}"),
            };
            assert!(err.contains(want), "{err}");
            assert!(err.contains("ghcr.io"), "{err}");
            assert!(!err.contains(auth) && !err.contains("nocolonsecret"), "{err}");
        }
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let cases = [
            (basic("u", "hunter2"), r#"Basic { username: "u", password: "<redacted>" }"#),
            (Credential::IdentityToken("hunter2".into()), r#"IdentityToken("<redacted>")"#),
            (Credential::RegistryToken("hunter2".into()), r#"RegistryToken("<redacted>")"#),
        ];
        for (credential, want) in cases {
            assert_eq!(format!("{credential:?}"), want);
        }
        let entry = AuthEntry {
            auth: Some(b64("u:hunter2")),
            username: Some("u".into()),
            password: Some("hunter2".into()),
            identitytoken: Some("hunter2".into()),
            registrytoken: None,
        };
        let cfg = config_with_auths(&[("r", entry)]);
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2") && !shown.contains(&b64("u:hunter2")), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn default_path_follows_the_cli() {
        let os = |s: &str| Some(OsString::from(s));
        let cases = [
            (os("/cfg"), os("/home/u"), Some("/cfg/config.json")),
            (None, os("/home/u"), Some("/home/u/.docker/config.json")),
            (os(""), os("/home/u"), Some("/home/u/.docker/config.json")),
            (None, None, None),
            (os(""), os(""), None),
        ];
        for (docker_config, home, want) in cases {
            assert_eq!(
                default_path(docker_config.clone(), home.clone()),
                want.map(PathBuf::from),
                "DOCKER_CONFIG {docker_config:?}, HOME {home:?}"
            );
        }
    }

    #[test]
    fn loads_config_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.json");
        let text = format!(
            r#"{{
                "auths": {{
                    "https://index.docker.io/v1/": {{"auth": "{}", "email": "x@y"}},
                    "ghcr.io": {{"identitytoken": "tok"}},
                    "empty": {{}}
                }},
                "credsStore": "desktop",
                "credHelpers": {{"gcr.io": "gcloud"}},
                "currentContext": "default",
                "plugins": {{"x": {{}}}}
            }}"#,
            b64("u:p")
        );
        std::fs::write(&path, text).expect("write config");
        let cfg = load(Some(path)).expect("valid config");
        assert_eq!(cfg.auths.len(), 3);
        assert_eq!(cfg.auths["https://index.docker.io/v1/"], auth_entry("u:p"));
        assert_eq!(cfg.auths["ghcr.io"].identitytoken.as_deref(), Some("tok"));
        assert_eq!(cfg.creds_store.as_deref(), Some("desktop"));
        assert_eq!(cfg.cred_helpers["gcr.io"], "gcloud");

        let cases = ["", "  \n", "{}", r#"{"auths": null, "credHelpers": null}"#];
        for text in cases {
            assert_eq!(parse_config(text).ok(), Some(DockerConfig::default()), "text {text:?}");
        }
    }

    #[test]
    fn missing_file_is_an_empty_config() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = load(Some(dir.path().join("nope").join("config.json")));
        assert_eq!(cfg.ok(), Some(DockerConfig::default()));
    }

    #[test]
    fn malformed_file_error_names_the_path_but_not_the_content() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.json");
        let cases = [
            r#"{"auths": {"r": {"auth": "c2VjcmV0OnNlY3JldA==""#,
            r#"{"auths": "topsecret"}"#,
            r#"{"auths": {"r": {"password": ["topsecret"]}}}"#,
            r#"{"credsStore": "topsecret" "#,
            "topsecret",
        ];
        for text in cases {
            std::fs::write(&path, text).expect("write config");
            let err = match load(Some(path.clone())) {
                Err(e) => e.to_string(),
                Ok(cfg) => panic!("text {text:?} parsed as {cfg:?}"),
            };
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains("line 1"), "{err}");
            assert!(!err.contains("topsecret") && !err.contains("c2VjcmV0"), "{err}");
        }
    }

    #[test]
    fn unreadable_path_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A directory where the file should be.
        let err = load(Some(dir.path().to_path_buf()));
        assert!(matches!(err, Err(CredentialsError::Read { .. })), "{err:?}");
    }

    /// Writes `docker-credential-<name>` with `body` into `dir`. Each helper
    /// checks it was called as `get` and records the server URL it was given.
    fn write_helper(dir: &Path, name: &str, body: &str) {
        let path = dir.join(format!("{HELPER_PREFIX}{name}"));
        let script =
            format!("#!/bin/sh\n[ \"$1\" = get ] || exit 9\nurl=$(cat)\nprintf '%s' \"$url\" > \"$0.url\"\n{body}\n");
        std::fs::write(&path, script).expect("write helper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod helper");
    }

    /// The server URL helper `name` was last given; `None` if it did not run.
    fn seen_url(dir: &Path, name: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(format!("{HELPER_PREFIX}{name}.url"))).ok()
    }

    #[tokio::test]
    async fn credential_helpers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        write_helper(d, "basic", r#"echo '{"ServerURL":"x","Username":"hu","Secret":"hp:x"}'"#);
        write_helper(d, "token", r#"echo '{"ServerURL":"x","Username":"<token>","Secret":"idt"}'"#);
        write_helper(d, "none", "echo 'credentials not found in native keychain'; exit 1");
        write_helper(d, "emptyok", r#"echo '{"ServerURL":"","Username":"","Secret":""}'"#);
        let runner = HelperRunner::in_dir(d);

        let helpers = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>()
        };
        let inline = config_with_auths(&[("ghcr.io", auth_entry("inline:p"))]).auths;
        // (config, registry, expected credential, helper that must have run, URL it got)
        let cases = [
            (
                DockerConfig { creds_store: Some("basic".into()), ..DockerConfig::default() },
                "docker.io",
                Some(basic("hu", "hp:x")),
                Some(("basic", DOCKER_HUB_KEY)),
            ),
            (
                DockerConfig {
                    creds_store: Some("none".into()),
                    cred_helpers: helpers(&[("https://ghcr.io", "token")]),
                    ..DockerConfig::default()
                },
                "ghcr.io",
                Some(Credential::IdentityToken("idt".into())),
                Some(("token", "ghcr.io")),
            ),
            (
                DockerConfig {
                    creds_store: Some("basic".into()),
                    cred_helpers: helpers(&[("ghcr.io", "none")]),
                    ..DockerConfig::default()
                },
                "ghcr.io",
                None,
                Some(("none", "ghcr.io")),
            ),
            (
                DockerConfig { creds_store: Some("none".into()), auths: inline.clone(), ..DockerConfig::default() },
                "ghcr.io",
                Some(basic("inline", "p")),
                Some(("none", "ghcr.io")),
            ),
            (
                DockerConfig { creds_store: Some("emptyok".into()), ..DockerConfig::default() },
                "127.0.0.1:5000",
                None,
                Some(("emptyok", "127.0.0.1:5000")),
            ),
            (
                DockerConfig { creds_store: Some("  ".into()), auths: inline, ..DockerConfig::default() },
                "ghcr.io",
                Some(basic("inline", "p")),
                None,
            ),
        ];
        for (cfg, registry, want, ran) in cases {
            for name in ["basic", "token", "none", "emptyok"] {
                let _ = std::fs::remove_file(d.join(format!("{HELPER_PREFIX}{name}.url")));
            }
            let got = resolve_with(&cfg, registry, &runner).await;
            let got = got.unwrap_or_else(|e| panic!("config {cfg:?}, registry {registry:?}: {e}"));
            assert_eq!(got, want, "config {cfg:?}, registry {registry:?}");
            for name in ["basic", "token", "none", "emptyok"] {
                let expected = ran.filter(|(helper, _)| *helper == name).map(|(_, url)| url.to_string());
                assert_eq!(seen_url(d, name), expected, "helper {name}, config {cfg:?}");
            }
        }
    }

    #[tokio::test]
    async fn helper_failures() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        write_helper(d, "broken", "echo 'keychain locked' >&2; exit 2");
        write_helper(d, "garbage", r#"echo '{"Username":"u","Secret":"topsecret"'"#);
        write_helper(d, "leaky", r#"echo '{"Username":"u","Secret":"topsecret"}'; exit 1"#);
        write_helper(d, "slow", "exec sleep 5");
        let runner = HelperRunner::in_dir(d).with_timeout(Duration::from_millis(300));

        // (helper, expected substring of the error)
        let cases = [
            ("broken", "keychain locked"),
            ("garbage", "not credential JSON"),
            ("leaky", "withheld"),
            ("slow", "did not answer within 0.3 s"),
            ("absent", "docker-credential-absent was not found"),
            ("../evil", "is not valid"),
        ];
        for (helper, want) in cases {
            let cfg = DockerConfig { creds_store: Some(helper.into()), ..DockerConfig::default() };
            let err = match resolve_with(&cfg, "ghcr.io", &runner).await {
                Err(e) => e.to_string(),
                Ok(c) => panic!("helper {helper:?} gave {c:?}"),
            };
            assert!(err.contains(want), "helper {helper:?}: {err}");
            assert!(!err.contains("topsecret"), "helper {helper:?}: {err}");
        }
        // An empty store name in a config means "no store", not an error: the
        // inline entry is used...
        let cfg = DockerConfig {
            creds_store: Some(String::new()),
            ..config_with_auths(&[("ghcr.io", auth_entry("inline:p"))])
        };
        assert_eq!(resolve_with(&cfg, "ghcr.io", &runner).await.expect("no helper to run"), Some(basic("inline", "p")));
        // ...but the empty name is rejected when a runner is asked directly.
        let err = runner.get("", "ghcr.io").await;
        assert!(matches!(err, Err(CredentialsError::InvalidHelperName { ref name }) if name.is_empty()), "{err:?}");
    }

    #[test]
    fn helper_messages_are_cut_short() {
        let long = "x".repeat(500);
        let cases = [
            ("", "no message".to_string()),
            ("first\nsecond", "first".to_string()),
            ("{\"Secret\":\"s\"}", "answer withheld (looks like credential JSON)".to_string()),
            (long.as_str(), format!("{}…", "x".repeat(200))),
        ];
        for (input, want) in cases {
            assert_eq!(safe_message(input), want, "input {input:?}");
        }
    }
}
