//! Command line and environment configuration (every flag has an env twin).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "shipshape",
    version,
    about = "Keeps Docker containers on the newest image of their tag",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, also accepted without the subcommand name.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: web UI, HTTP API, watcher and poller (the default).
    Serve(Box<ServeArgs>),
    /// Check every running container's image once and print the result
    /// (for scripts and cron); exit 1 when the engine is unreachable.
    Check(Box<CheckArgs>),
    /// Ask the running service's `/health` on its loopback (for a container
    /// HEALTHCHECK: no curl in the image); exit 0 when it answers 200, else 1.
    Health(HealthArgs),
    /// Copy the database into a new file while the service runs (SQLite's
    /// online backup); exit 1 on any error, never overwriting a file.
    Backup(BackupArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The service's data directory, holding `shipshape.db`.
    #[arg(long, env = "SHIPSHAPE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The new file to write (created 0600; an existing file is refused).
    pub file: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The service's listen address; a wildcard one is asked on loopback.
    #[arg(long, env = "SHIPSHAPE_LISTEN", default_value = "127.0.0.1:8099")]
    pub listen: SocketAddr,
    /// How long the whole request may take.
    #[arg(long, default_value = "3s", value_parser = parse_interval)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Print the `GET /api/images` JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// List every repository's tags now, even those listed less than
    /// `SHIPSHAPE_TAGS_INTERVAL` ago (by the service or an earlier check).
    #[arg(long)]
    pub tags: bool,
    /// Data directory whose auto-update flags and tag listings to use (read only; optional).
    #[arg(long, env = "SHIPSHAPE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub selection: SelectionArgs,
}

/// Which containers this instance looks after (see docs/configuration.md, "Labels").
#[derive(Debug, Clone, Args)]
pub struct SelectionArgs {
    /// Opt-in: only containers labelled `shipshape.enable=true` (or
    /// Watchtower's `com.centurylinklabs.watchtower.enable=true`).
    #[arg(long, env = "SHIPSHAPE_LABEL_ENABLE", default_value = "false", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub label_enable: bool,
    /// Only containers whose `shipshape.scope` (or Watchtower's scope) label
    /// is this; `none` means containers without one. Unset: every container.
    #[arg(long, env = "SHIPSHAPE_SCOPE")]
    pub scope: Option<String>,
}

impl SelectionArgs {
    pub fn policy(&self) -> crate::inventory::scope::Policy {
        crate::inventory::scope::Policy {
            label_enable: self.label_enable,
            scope: self.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(String::from),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Extra registries that may be spoken to over plain http, comma
    /// separated: `host`, `host:port` or CIDRs. The engine's own insecure
    /// registries (loopback included) are always honoured.
    #[arg(long, env = "SHIPSHAPE_INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,
    /// Registries never contacted, comma separated (`docker.io`, `ghcr.io`,
    /// `host:port`): for air-gapped hosts or to spare a rate limit. Their
    /// images show `unknown` with a reason.
    #[arg(long, env = "SHIPSHAPE_IGNORE_REGISTRIES", value_delimiter = ',')]
    pub ignore_registries: Vec<String>,
    /// A hard ceiling on requests at once to one registry. Unset: the limit
    /// adapts to each registry's answers (starts at 32, at most 64).
    #[arg(long, env = "SHIPSHAPE_REGISTRY_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..))]
    pub registry_concurrency: Option<u16>,
    /// Docker's per-registry certificate folders: `<dir>/<host[:port]>/ca.crt`
    /// (and `client.cert`/`client.key` for mutual TLS).
    #[arg(long, env = "SHIPSHAPE_CERTS_D", default_value = "/etc/docker/certs.d")]
    pub certs_d: PathBuf,
    /// A PEM bundle of CA certificates trusted for every registry.
    #[arg(long, env = "SHIPSHAPE_REGISTRY_CA")]
    pub registry_ca: Option<PathBuf>,
    /// How often each repository's tags are listed for version data
    /// (`1.2.3 → 1.3.0`), e.g. `24h`; `off` turns versions off.
    #[arg(long, env = "SHIPSHAPE_TAGS_INTERVAL", default_value = "24h", value_parser = parse_tags_interval)]
    pub tags_interval: TagsInterval,
}

/// `SHIPSHAPE_TAGS_INTERVAL`: `None` is `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagsInterval(pub Option<Duration>);

fn parse_tags_interval(s: &str) -> Result<TagsInterval, String> {
    match s.trim() {
        "off" | "0" => Ok(TagsInterval(None)),
        other => parse_interval(other).map(|d| TagsInterval(Some(d))),
    }
}

#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Docker engine address: a unix socket path or unix://, tcp:// or http:// URL.
    /// Default: the local socket.
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// Several engines, comma separated `name=URL` (unix:///path,
    /// tcp://host:port, https://host:port), e.g.
    /// `local=unix:///var/run/docker.sock,nas=tcp://192.0.2.10:2376`.
    /// Replaces DOCKER_HOST. Names: a-z, 0-9, '-', '_', '.'.
    #[arg(long, env = "SHIPSHAPE_DOCKER_HOSTS")]
    pub docker_hosts: Option<String>,
    /// TLS files of the engines of SHIPSHAPE_DOCKER_HOSTS, one folder per
    /// engine name as Docker's DOCKER_CERT_PATH: `<dir>/<name>/{ca,cert,key}.pem`.
    /// A tcp:// engine with a folder speaks TLS; https:// needs one.
    #[arg(long, env = "SHIPSHAPE_DOCKER_CERTS")]
    pub docker_certs: Option<PathBuf>,
}

impl EngineArgs {
    /// The engines to watch, in order (the first is `GET /api/engine`'s).
    pub fn hosts(&self) -> Result<Vec<crate::docker::hosts::HostSpec>, crate::docker::hosts::HostsError> {
        crate::docker::hosts::configured(self.docker_hosts.as_deref(), self.docker_host.as_deref())
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port the HTTP server listens on.
    #[arg(long, env = "SHIPSHAPE_LISTEN", default_value = "127.0.0.1:8099")]
    pub listen: SocketAddr,
    /// Directory for the SQLite database (created when missing).
    #[arg(long, env = "SHIPSHAPE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// How often registries are checked, e.g. `30m`, `6h`.
    #[arg(long, env = "SHIPSHAPE_POLL_INTERVAL", default_value = "6h", value_parser = parse_interval)]
    pub poll_interval: Duration,
    /// The address users reach shipshape at through a reverse proxy, e.g.
    /// `https://ships.example.com`: its host is accepted in `Host` and its
    /// origin may send changes. IP addresses and `localhost` always are.
    #[arg(long, env = "SHIPSHAPE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Reverse proxies (CIDRs, comma separated) whose `X-Forwarded-For` names
    /// the client; from anyone else forwarded headers are ignored.
    #[arg(long, env = "SHIPSHAPE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How often the websocket pings its client and re-checks its login.
    #[arg(long, env = "SHIPSHAPE_WS_PING_INTERVAL", default_value = "30s", value_parser = parse_interval, hide = true)]
    pub ws_ping_interval: Duration,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub updates: UpdateArgs,
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Clone, Args)]
pub struct NotifyArgs {
    /// Where to send notifications: shoutrrr URLs as Watchtower takes them
    /// (generic+https://, ntfy://, gotify://, discord://, slack://,
    /// telegram://, smtp://), separated by commas or spaces.
    #[arg(long = "notify", env = "SHIPSHAPE_NOTIFY", hide_env_values = true)]
    pub urls: Option<String>,
    /// Testing aid: an http://127.0.0.1:PORT base that replaces the public
    /// API hosts of discord, slack and telegram.
    #[arg(long = "notify-test-base", env = "SHIPSHAPE_NOTIFY_TEST_BASE", hide = true)]
    pub test_base: Option<String>,
}

/// The URLs hold tokens and passwords.
impl std::fmt::Debug for NotifyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyArgs")
            .field("urls", &self.urls.as_ref().map(|_| "<redacted>"))
            .field("test_base", &self.test_base)
            .finish()
    }
}

#[derive(Clone, Args)]
pub struct MetricsArgs {
    /// Lets Prometheus scrape `GET /metrics` with `Authorization: Bearer
    /// <token>` (a logged-in session works too; with auth off it is open).
    #[arg(long = "metrics-token", env = "SHIPSHAPE_METRICS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl std::fmt::Debug for MetricsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsArgs").field("token", &self.token.as_ref().map(|_| "<redacted>")).finish()
    }
}

#[derive(Debug, Clone, Args)]
pub struct UpdateArgs {
    /// How long an updated container must keep running (and get healthy, if
    /// it has a healthcheck) before the old one is removed; `0` looks once.
    #[arg(long, env = "SHIPSHAPE_VERIFY_TIMEOUT", default_value = "10s", value_parser = parse_duration_or_zero)]
    pub verify_timeout: Duration,
    /// Automatic updates running at once, host-wide.
    #[arg(long, env = "SHIPSHAPE_AUTO_UPDATE_CONCURRENCY", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub auto_update_concurrency: u16,
    /// Remove the old image after a successful update when no container uses it.
    #[arg(long, env = "SHIPSHAPE_CLEANUP", default_value = "false", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub cleanup: bool,
    /// When automatic updates may start, in UTC: `[days] HH:MM-HH:MM`,
    /// several comma separated, e.g. `Sat 03:00-05:00, Mon-Fri 02:00-04:00`.
    /// Unset: any time. Checks and manual updates are never held back.
    #[arg(long, env = "SHIPSHAPE_AUTO_UPDATE_WINDOW")]
    pub auto_update_window: Option<crate::inventory::window::UpdateWindow>,
}

impl ServeArgs {
    /// Settings that are each valid but wrong together.
    pub fn validate(&self) -> Result<(), String> {
        if let (true, Some(password)) = (self.auth.enabled, &self.auth.password) {
            crate::auth::check_password(password).map_err(|e| e.to_string())?;
        }
        if !self.auth.enabled && !self.listen.ip().is_loopback() && !self.auth.off_i_understand {
            return Err(format!(
                "SHIPSHAPE_AUTH=off on {}, which is not a loopback address: anyone who reaches it could \
                 recreate every container. Turn auth on, listen on 127.0.0.1, or set \
                 SHIPSHAPE_AUTH_OFF_I_UNDERSTAND=true",
                self.listen
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Args)]
pub struct AuthArgs {
    /// `on` (default) or `off`. Off leaves every endpoint open: only for a
    /// service reachable by nobody else.
    #[arg(long = "auth", env = "SHIPSHAPE_AUTH", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub enabled: bool,
    /// The login name.
    #[arg(long = "auth-user", env = "SHIPSHAPE_AUTH_USER", default_value = "admin")]
    pub user: String,
    /// The login password; only its argon2id hash is kept. Default: the
    /// stored one, or a random one generated and logged once at first start.
    #[arg(long = "auth-password", env = "SHIPSHAPE_AUTH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// A ready argon2 PHC hash (`$argon2id$v=19$...`) instead of a password.
    #[arg(
        long = "auth-password-hash",
        env = "SHIPSHAPE_AUTH_PASSWORD_HASH",
        hide_env_values = true,
        conflicts_with = "password"
    )]
    pub password_hash: Option<String>,
    /// How long a login lasts, e.g. `7d`, `12h`.
    #[arg(long, env = "SHIPSHAPE_SESSION_TTL", default_value = "7d", value_parser = parse_interval)]
    pub session_ttl: Duration,
    /// A session in use is extended by another TTL when its last extension
    /// is this old: expiry slides with use at one write per interval.
    #[arg(long, env = "SHIPSHAPE_SESSION_RENEW_INTERVAL", default_value = "1h", value_parser = parse_interval, hide = true)]
    pub session_renew_interval: Duration,
    /// Key that signs and encrypts session cookies (at least 32 bytes);
    /// default: generated once and stored.
    #[arg(long, env = "SHIPSHAPE_SESSION_KEY", hide_env_values = true)]
    pub session_key: Option<String>,
    /// Allows `SHIPSHAPE_AUTH=off` on a non-loopback listen address.
    #[arg(long = "auth-off-i-understand", env = "SHIPSHAPE_AUTH_OFF_I_UNDERSTAND", default_value = "false", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub off_i_understand: bool,
    /// Send the session cookie only over HTTPS (set behind a TLS proxy).
    #[arg(long, env = "SHIPSHAPE_COOKIE_SECURE", default_value = "false", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,
}

/// Secrets never reach a log line, even in debug output.
impl std::fmt::Debug for AuthArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthArgs")
            .field("enabled", &self.enabled)
            .field("user", &self.user)
            .field("password", &redact(&self.password))
            .field("password_hash", &redact(&self.password_hash))
            .field("session_ttl", &self.session_ttl)
            .field("session_renew_interval", &self.session_renew_interval)
            .field("session_key", &redact(&self.session_key))
            .field("cookie_secure", &self.cookie_secure)
            .field("off_i_understand", &self.off_i_understand)
            .finish()
    }
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 0, 5s, 1m)"))
}

/// A CIDR, or a bare address meaning just that address.
fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or CIDR (examples: 127.0.0.1, 10.0.0.0/8, fd00::/8)"))
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 15m, 6h)"))?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(d)
}

impl Cli {
    /// The serve options, whether `serve` was named or not.
    pub fn serve_args(&self) -> Option<&ServeArgs> {
        match &self.command {
            Some(Command::Serve(args)) => Some(args),
            None => Some(&self.serve),
            Some(Command::Check(_) | Command::Health(_) | Command::Backup(_)) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_interval("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert!(parse_interval("soon").is_err());
        assert!(parse_interval("10ms").is_err());
    }

    #[test]
    fn networks() {
        assert_eq!(parse_network("127.0.0.1").map(|n| n.to_string()), Ok("127.0.0.1/32".into()));
        assert_eq!(parse_network(" 192.0.2.0/24").map(|n| n.to_string()), Ok("192.0.2.0/24".into()));
        assert_eq!(parse_network("::1").map(|n| n.to_string()), Ok("::1/128".into()));
        assert!(parse_network("proxy.local").is_err());
    }

    #[test]
    fn on_off() {
        for (s, v) in [("on", true), ("OFF", false), ("true", true), ("0", false)] {
            assert_eq!(parse_on_off(s), Ok(v), "{s}");
        }
        assert!(parse_on_off("maybe").is_err());
    }

    #[test]
    fn debug_output_hides_notification_urls_and_the_metrics_token() {
        let argv = ["shipshape", "--notify", "discord://t0ps3cret@1", "--metrics-token", "scrapetoken"];
        let text = format!("{:?}", Cli::try_parse_from(argv).expect("parse"));
        assert!(!text.contains("t0ps3cret") && !text.contains("scrapetoken"), "{text}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let cli =
            Cli::try_parse_from(["shipshape", "--auth-password", "hunter2", "--session-key", "k".repeat(40).as_str()])
                .expect("parse");
        let text = format!("{cli:?}");
        assert!(!text.contains("hunter2") && !text.contains("kkkk"), "{text}");
    }

    #[test]
    fn auth_off_only_on_loopback_unless_understood() {
        let validate = |args: &[&str]| {
            let mut argv = vec!["shipshape"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).expect("parse").serve_args().expect("serve").validate()
        };
        assert!(validate(&["--auth=off"]).is_ok());
        assert!(validate(&["--auth=off", "--listen", "[::1]:8099"]).is_ok());
        assert!(validate(&["--auth=off", "--listen", "0.0.0.0:8099"]).is_err());
        assert!(validate(&["--auth=off", "--listen", "0.0.0.0:8099", "--auth-off-i-understand=true"]).is_ok());
        assert!(validate(&["--listen", "0.0.0.0:8099"]).is_ok());
    }

    #[test]
    fn selection_and_window() {
        let cli = Cli::try_parse_from([
            "shipshape",
            "--label-enable=true",
            "--scope",
            "blue",
            "--auto-update-window",
            "Sat 03:00-05:00",
        ])
        .expect("parse");
        let args = cli.serve_args().expect("serve");
        assert_eq!(
            args.selection.policy(),
            crate::inventory::scope::Policy { label_enable: true, scope: Some("blue".into()) }
        );
        assert_eq!(
            args.updates.auto_update_window.as_ref().map(ToString::to_string).as_deref(),
            Some("Sat 03:00-05:00")
        );
        assert!(Cli::try_parse_from(["shipshape", "--auto-update-window", "Sat 3 to 5"]).is_err());
        let check = Cli::try_parse_from(["shipshape", "check", "--scope", "red"]).expect("parse");
        assert!(matches!(check.command, Some(Command::Check(ref c)) if c.selection.scope.as_deref() == Some("red")));
    }

    #[test]
    fn several_engines_replace_docker_host() {
        let cli = Cli::try_parse_from([
            "shipshape",
            "--docker-host",
            "unix:///x.sock",
            "--docker-hosts",
            "a=unix:///a.sock,b=tcp://127.0.0.1:2376",
            "--docker-certs",
            "/etc/shipshape/certs",
        ])
        .expect("parse");
        let engine = &cli.serve_args().expect("serve").engine;
        let names: Vec<_> = engine.hosts().expect("valid").into_iter().map(|h| h.name).collect();
        assert_eq!(names, ["a", "b"]);
        let one = Cli::try_parse_from(["shipshape", "--docker-host", "unix:///x.sock"]).expect("parse");
        let hosts = one.serve_args().expect("serve").engine.hosts().expect("valid");
        assert_eq!((hosts[0].name.as_str(), hosts[0].url.as_deref()), ("local", Some("unix:///x.sock")));
        let bad = Cli::try_parse_from(["shipshape", "--docker-hosts", "a=unix:///a,a=unix:///b"]).expect("parse");
        assert!(bad.serve_args().expect("serve").engine.hosts().is_err());
    }

    #[test]
    fn serve_is_the_default() {
        let cli = Cli::try_parse_from(["shipshape", "--listen", "127.0.0.1:1"]).expect("parse");
        assert_eq!(cli.serve_args().map(|a| a.listen.port()), Some(1));
        let cli = Cli::try_parse_from(["shipshape", "serve", "--poll-interval", "3s"]).expect("parse");
        assert_eq!(cli.serve_args().map(|a| a.poll_interval), Some(Duration::from_secs(3)));
        assert!(Cli::try_parse_from(["shipshape", "--poll-interval", "x"]).is_err());
        let tags =
            |v: &str| Cli::try_parse_from(["shipshape", "--tags-interval", v]).map(|c| c.serve.registry.tags_interval);
        assert_eq!(tags("off").ok(), Some(TagsInterval(None)));
        assert_eq!(tags("2h").ok(), Some(TagsInterval(Some(Duration::from_secs(7200)))));
        assert!(tags("soon").is_err());
    }
}
