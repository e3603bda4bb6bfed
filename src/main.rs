//! Wires the actors and the HTTP server together; logic lives in the modules.

use std::process::ExitCode;
use std::sync::Arc;

use actix::{Actor, AsyncContext, Context};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use shipshape::auth::{self, LoginLimiter};
use shipshape::check_command;
use shipshape::config::{CheckArgs, Cli, Command, ServeArgs};
use shipshape::docker::{engine, watcher::DockerWatcher};
use shipshape::http::{self, auth::AuthState, AppState, SessionSettings};
use shipshape::inventory::Inventory;
use shipshape::registry::check::IgnoredRegistries;
use shipshape::registry::client::{ClientOptions, RegistryClient};
use shipshape::registry::poller::RegistryPoller;
use shipshape::registry::{credentials, insecure};
use shipshape::store::{self, LoadAutoUpdate, SqliteSessionStore, Store};

/// How often expired sessions are deleted and idle login-limiter entries forgotten.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

type AnyError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match (&cli.command, cli.serve_args()) {
        (Some(Command::Check(args)), _) => check(args),
        (_, Some(args)) => actix_web::rt::System::new().block_on(serve(args.clone())),
        (_, None) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shipshape: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One check on a single-threaded runtime: no actors, no server, little memory.
fn check(args: &CheckArgs) -> Result<(), AnyError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let groups = runtime.block_on(check_command::run(args))?;
    if args.json {
        println!("{}", serde_json::to_string(&groups)?);
    } else {
        print!("{}", check_command::table(&groups));
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), AnyError> {
    insecure::check_entries(&args.registry.insecure_registries)
        .map_err(|e| format!("SHIPSHAPE_INSECURE_REGISTRIES: {e}"))?;
    let conn = store::open(&args.data_dir)?;
    let store = Store::start(conn, args.data_dir.clone());
    let auto_update = store.send(LoadAutoUpdate).await??;
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
    sessions.store.sweep_every(SWEEP_EVERY);
    let auth_state = Arc::new(AuthState { credentials, limiter: LoginLimiter::default() });
    auth_state.forget_idle_every(SWEEP_EVERY);

    let registry = RegistryClient::new(ClientOptions {
        docker_config: credentials::load(None)?,
        per_registry_concurrency: args.registry.registry_concurrency,
        ..ClientOptions::default()
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
    .start();
    let (inventory, view) = Inventory::new(auto_update, store, poller.clone().recipient());
    let inventory = inventory_ctx.run(inventory);
    DockerWatcher::new(docker, inventory.clone().recipient()).start();

    let (server, addrs) = http::server(args.listen, AppState { inventory, poller, view }, auth_state, sessions)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    for addr in addrs {
        tracing::info!(data_dir = %args.data_dir.display(), "listening on http://{addr}");
    }
    server.await?;
    Ok(())
}
