//! Builds the running service: opens the store, settles the login, starts
//! every actor and timer, binds the server. `main` parses and calls this;
//! the tests start the same binary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context};

use crate::auth;
use crate::config::ServeArgs;
use crate::docker::{engine, watcher::DockerWatcher};
use crate::http::{self, auth::AuthState, policy::HostPolicy, AppState, SessionSettings};
use crate::inventory::Inventory;
use crate::jobs::own::OwnContainer;
use crate::jobs::sequence::{self, JobEnv};
use crate::jobs::supervisor::Jobs;
use crate::metrics::Metrics;
use crate::notify::{self, Notifier};
use crate::registry::check::IgnoredRegistries;
use crate::registry::client::{ClientOptions, RegistryClient};
use crate::registry::config_source::DockerConfigSource;
use crate::registry::credentials::DockerConfig;
use crate::registry::insecure;
use crate::registry::poller::{RegistryPoller, VersionsWiring};
use crate::registry::versions_cache;
use crate::store::{self, LoadAutoUpdate, LoadRepoTags, SqliteSessionStore, Store, SweepSessions, UnfinishedJobs};
use crate::swarm::Services;

/// How often expired sessions are deleted and idle login-limiter entries forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub type StartError = Box<dyn std::error::Error>;

pub struct Application {
    server: actix_web::dev::Server,
    addrs: Vec<SocketAddr>,
}

impl Application {
    /// Everything that can fail at start fails here, with one clear error,
    /// before anything is served.
    pub async fn build(args: ServeArgs) -> Result<Self, StartError> {
        args.validate()?;
        insecure::check_entries(&args.registry.insecure_registries)
            .map_err(|e| format!("SHIPSHAPE_INSECURE_REGISTRIES: {e}"))?;
        let policy = HostPolicy::new(args.public_url.as_deref(), args.trusted_proxies.clone())?;
        let notify_targets = notify::target::parse_all(
            args.notify.urls.as_deref().unwrap_or_default(),
            args.notify.test_base.as_deref(),
        )?;
        // Before any actor or timer exists: a failure here leaves nothing running.
        let listener =
            std::net::TcpListener::bind(args.listen).map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let conn = store::open(&args.data_dir)?;
        let store = Store::start(conn, args.data_dir.clone());
        let auto_update = store.send(LoadAutoUpdate).await??;
        let kept_tags = versions_cache::decode(store.send(LoadRepoTags).await??);
        let docker = engine::client(args.engine.docker_host.as_deref())?;

        let credentials = if args.auth.enabled {
            Some(auth::load_credentials(&args.auth, &store).await?)
        } else {
            tracing::warn!("AUTH IS OFF: anyone who reaches {} can recreate every container", args.listen);
            None
        };
        let sessions = SessionSettings {
            store: SqliteSessionStore::new(store.clone()),
            key: auth::load_session_key(&args.auth, &store).await?,
            ttl: args.auth.session_ttl,
            cookie_secure: args.auth.cookie_secure,
        };
        let auth_state = Arc::new(
            AuthState::new(credentials, sessions.key.clone(), sessions.store.clone(), args.ws_ping_interval)
                .with_session_renew(args.auth.session_renew_interval),
        );
        sweep_every(SWEEP_EVERY, store.clone(), Arc::clone(&auth_state));

        let docker_config = Arc::new(DockerConfigSource::load_default()?);
        let job_env = JobEnv {
            docker: docker.clone(),
            store: store.clone(),
            docker_config: Arc::clone(&docker_config),
            verify_timeout: args.updates.verify_timeout,
            cleanup: args.updates.cleanup,
            negotiated: Default::default(),
        };
        recover_interrupted_updates(&job_env).await?;
        let (events, _) = tokio::sync::broadcast::channel(256);
        let metrics = Metrics::new();
        // The notifier reads the view, which exists only once the jobs do:
        // make its address first, run it once the view is there.
        let notifier_ctx = Context::<Notifier>::new();
        let jobs = Jobs::new(
            job_env,
            OwnContainer::detect(),
            usize::from(args.updates.auto_update_concurrency),
            events.clone(),
        )
        .with_policy(args.selection.policy())
        .with_observers(notifier_ctx.address().recipient(), metrics.clone())
        .start();

        let registry = RegistryClient::new(ClientOptions {
            docker_config: DockerConfig::clone(&docker_config.config()),
            observer: Some(Arc::new(metrics.clone())),
            ..ClientOptions::from_args(&args.registry)
        })?;
        // The inventory and the poller talk to each other: make the inventory's
        // address first, start the poller with it, then run the inventory.
        let inventory_ctx = Context::<Inventory>::new();
        let poller = RegistryPoller::new(
            registry,
            docker.clone(),
            args.registry.insecure_registries.clone(),
            IgnoredRegistries::new(&args.registry.ignore_registries),
            args.poll_interval,
            inventory_ctx.address().recipient(),
        )
        .with_docker_config(Arc::clone(&docker_config))
        .with_metrics(metrics.clone())
        .with_versions(VersionsWiring {
            interval: args.registry.tags_interval.0,
            initial: kept_tags,
            tags_to: inventory_ctx.address().recipient(),
            round_done: inventory_ctx.address().recipient(),
            keep: store.clone().recipient(),
        })
        .start();
        let services = Services::new(
            docker.clone(),
            inventory_ctx.address().recipient(),
            store.clone(),
            events.clone(),
            docker_config,
            args.updates.verify_timeout,
        )
        .start();
        let (inventory, view) =
            Inventory::new(auto_update, store.clone(), poller.clone().recipient(), jobs.clone().recipient());
        let inventory = inventory_ctx.run(
            inventory
                .with_selection(args.selection.policy(), args.updates.auto_update_window.clone())
                .with_services(services.clone().recipient()),
        );
        let (watcher, engine) = DockerWatcher::new(docker, inventory.clone().recipient()).with_state();
        watcher.start();
        let settings = settings_json(&args);
        let notifier = notifier_ctx.run(Notifier::new(notify_targets, view.clone())?);
        let metrics_token = args.metrics.token.clone().filter(|t| !t.is_empty());

        let (server, addrs) = http::server(
            listener,
            AppState {
                inventory,
                poller,
                view,
                jobs,
                store,
                events,
                engine,
                settings,
                notifier,
                metrics,
                metrics_token,
                services,
            },
            auth_state,
            policy,
            sessions,
        )
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        for addr in &addrs {
            tracing::info!(data_dir = %args.data_dir.display(), "listening on http://{addr}");
        }
        Ok(Self { server, addrs })
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Serves until the process is told to stop.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// `GET /api/settings`: what a UI may want to show about how this instance
/// behaves. Nothing secret goes in.
fn settings_json(args: &ServeArgs) -> serde_json::Value {
    serde_json::json!({
        "auto_update_window": args.updates.auto_update_window.as_ref().map(ToString::to_string),
        "auto_update_window_zone": "UTC",
        "auto_update_concurrency": args.updates.auto_update_concurrency,
        "verify_timeout_secs": args.updates.verify_timeout.as_secs_f64(),
        "cleanup": args.updates.cleanup,
        "poll_interval_secs": args.poll_interval.as_secs(),
        "scope": args.selection.policy().scope,
        "label_enable": args.selection.label_enable,
    })
}

/// Finishes or undoes every update a crash interrupted, before anything is
/// served: afterwards each container exists once, under its own name. An
/// engine that does not answer yet only delays this to the next start (the
/// journal keeps the jobs); it never stops the service from starting.
async fn recover_interrupted_updates(env: &JobEnv) -> Result<(), StartError> {
    let unfinished = env.store.send(UnfinishedJobs).await??;
    if unfinished.is_empty() {
        return Ok(());
    }
    if let Err(e) = engine::negotiate(&env.docker).await {
        tracing::error!(jobs = unfinished.len(), "interrupted updates wait for the engine: {e}");
        return Ok(());
    }
    for record in &unfinished {
        match sequence::recover(env, record).await {
            Ok(result) => {
                tracing::warn!(container = %record.container_name, job = %record.id, result = result.as_str(),
                    "finished an update interrupted at step {}", record.step.as_str())
            }
            Err(e) => tracing::error!(container = %record.container_name, job = %record.id, "recovery failed: {e}"),
        }
    }
    Ok(())
}

/// The one periodic sweep: expired sessions leave the database, idle
/// addresses leave the login limiter.
fn sweep_every(every: Duration, store: Addr<Store>, auth: Arc<AuthState>) {
    actix::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            auth.sweep();
            match store.send(SweepSessions).await {
                Ok(Ok(n)) if n > 0 => tracing::debug!(removed = n, "expired sessions swept"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("session sweep failed: {e}"),
                Err(_) => return,
            }
        }
    });
}
