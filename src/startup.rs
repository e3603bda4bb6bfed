//! Builds the running service: opens the store, settles the login, starts
//! every actor and timer, binds the server. `main` parses and calls this;
//! the tests start the same binary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use actix::{Actor, Addr, AsyncContext, Context};

use crate::auth;
use crate::config::ServeArgs;
use crate::docker::hosts;
use crate::docker::watcher::DockerWatcher;
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
use crate::store::{
    self, AdoptUnnamedJobs, LoadAutoUpdate, LoadRepoTags, SqliteSessionStore, Store, SweepSessions, UnfinishedJobs,
};
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
        let engines = hosts::connect_all(&args.engine.hosts()?, args.engine.docker_certs.as_deref())?;
        let primary = Arc::clone(&engines.first().ok_or("no Docker engine configured")?.name);
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
        for engine in &engines {
            tracing::info!(engine = %engine.name, url = %engine.url, tls = engine.tls, "docker engine");
        }

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
        let job_envs: Vec<Arc<JobEnv>> = engines
            .iter()
            .map(|engine| {
                Arc::new(JobEnv {
                    host: Arc::clone(&engine.name),
                    docker: engine.docker.clone(),
                    store: store.clone(),
                    docker_config: Arc::clone(&docker_config),
                    verify_timeout: args.updates.verify_timeout,
                    cleanup: args.updates.cleanup,
                    negotiated: Default::default(),
                })
            })
            .collect();
        // Jobs journalled before engines had names ran on the one engine there was.
        let adopted = store.send(AdoptUnnamedJobs { host: primary.to_string() }).await??;
        if adopted > 0 {
            tracing::info!(jobs = adopted, engine = %primary, "interrupted updates from before engines had names");
        }
        recover_interrupted_updates(&job_envs).await?;
        let (events, _) = tokio::sync::broadcast::channel(256);
        let metrics = Metrics::new();
        // The notifier reads the view, which exists only once the jobs do:
        // make its address first, run it once the view is there.
        let notifier_ctx = Context::<Notifier>::new();
        let jobs = Jobs::new(
            job_envs,
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
            engines.iter().map(|e| e.docker.clone()).collect(),
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
        // Swarm services: the first engine that is a swarm manager answers.
        let services = Services::new(
            engines.iter().map(|e| (Arc::clone(&e.name), e.docker.clone())).collect(),
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
                .with_primary(&primary)
                .with_selection(args.selection.policy(), args.updates.auto_update_window.clone())
                .with_services(services.clone().recipient()),
        );
        // One watcher per engine, each with its own reconnects and state.
        let watches: Vec<_> = engines
            .into_iter()
            .map(|engine| {
                let (watcher, watch) = DockerWatcher::new(engine, inventory.clone().recipient()).with_state();
                watcher.start();
                watch
            })
            .collect();
        let engine = watches[0].state.clone();
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
                hosts: watches,
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

/// How long an engine may take to answer at start before its interrupted
/// updates are left to the background retry (the service starts meanwhile).
const RECOVERY_FIRST_TRY: Duration = Duration::from_secs(5);
/// The longest wait between two background tries.
const RECOVERY_RETRY_MAX: Duration = Duration::from_secs(30);

/// Finishes or undoes every update a crash interrupted, each on its own
/// engine, before anything is served: afterwards each container exists once,
/// under its own name. An engine that does not answer yet only delays its
/// own recovery, retried in the background until it answers (the journal
/// keeps the jobs); it never stops the service from starting, nor holds up
/// the other engines. Jobs of an engine no longer configured wait in the
/// journal for it to come back.
async fn recover_interrupted_updates(envs: &[Arc<JobEnv>]) -> Result<(), StartError> {
    let Some(store) = envs.first().map(|e| e.store.clone()) else { return Ok(()) };
    let unfinished = store.send(UnfinishedJobs).await??;
    if unfinished.is_empty() {
        return Ok(());
    }
    for record in unfinished.iter().filter(|r| !envs.iter().any(|e| Some(&*e.host) == r.host.as_deref())) {
        tracing::error!(container = %record.container_name, job = %record.id, engine = ?record.host,
            "an interrupted update waits for its engine, which is not configured");
    }
    let with_jobs = envs.iter().filter(|e| unfinished.iter().any(|r| r.host.as_deref() == Some(&*e.host)));
    let first_tries = with_jobs.map(|env| async move {
        let answered = tokio::time::timeout(RECOVERY_FIRST_TRY, env.negotiate()).await;
        (env, answered.map_err(|_| "no answer in time".to_string()).and_then(|r| r.map_err(|e| e.to_string())))
    });
    for (env, answered) in join_all(first_tries).await {
        match answered {
            Ok(()) => recover_on(env).await?,
            Err(e) => {
                tracing::error!(engine = %env.host, "interrupted updates wait for the engine: {e}");
                let env = Arc::clone(env);
                actix::spawn(async move { retry_recovery(env).await });
            }
        }
    }
    Ok(())
}

/// Recovers the engine's interrupted updates once it answers.
async fn retry_recovery(env: Arc<JobEnv>) {
    let mut wait = Duration::from_secs(1);
    loop {
        tokio::time::sleep(wait).await;
        if env.negotiate().await.is_ok() {
            tracing::info!(engine = %env.host, "engine answers: recovering its interrupted updates");
            if let Err(e) = recover_on(&env).await {
                tracing::error!(engine = %env.host, "cannot read the interrupted updates: {e}");
            }
            return;
        }
        wait = (wait * 2).min(RECOVERY_RETRY_MAX);
    }
}

/// Finishes or undoes the interrupted updates of one engine that answers.
async fn recover_on(env: &JobEnv) -> Result<(), StartError> {
    let unfinished = env.store.send(UnfinishedJobs).await??;
    for record in unfinished.iter().filter(|r| r.host.as_deref() == Some(&*env.host)) {
        match sequence::recover(env, record).await {
            Ok(result) => {
                tracing::warn!(engine = %env.host, container = %record.container_name, job = %record.id,
                    result = result.as_str(), "finished an update interrupted at step {}", record.step.as_str())
            }
            Err(e) => tracing::error!(engine = %env.host, container = %record.container_name, job = %record.id,
                "recovery failed: {e}"),
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
