//! Parses the command line and runs the service (`startup`) or a one-shot check.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use shipshape::config::{CheckArgs, Cli, Command, ServeArgs};
use shipshape::startup::Application;
use shipshape::{backup_command, check_command, health_command};

type AnyError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    limit_malloc_arenas(matches!(cli.command, Some(Command::Check(_))));
    // `Targets` reads RUST_LOG's `target=level` lists without compiling
    // regexes at every start (EnvFilter's span and field filters are all it
    // lacks): a one-shot `check` stays smaller and quicker.
    let filter = std::env::var("RUST_LOG").ok().and_then(|v| v.parse::<Targets>().ok());
    let logs = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::registry()
        .with(logs.with_filter(filter.unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))))
        .init();
    let result = match (&cli.command, cli.serve_args()) {
        (Some(Command::Check(args)), _) => check(args),
        (Some(Command::Health(args)), _) => health_command::run(args).map_err(Into::into),
        (Some(Command::Backup(args)), _) => backup_command::run(args).map_err(Into::into),
        (_, Some(args)) => actix_web::rt::System::new().block_on(async {
            // Exit from inside the runtime: dropping it with actors alive
            // (a start-up failure after they started) would panic.
            if let Err(e) = serve(args.clone()).await {
                eprintln!("shipshape: {e}");
                std::process::exit(1);
            }
            Ok(())
        }),
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
    let app = Application::build(args).await?;
    app.run().await?;
    Ok(())
}

/// glibc gives each thread that allocates its own arena (up to 8 per core),
/// each holding freed memory of its own. shipshape's threads mostly wait on
/// I/O, so they gain nothing from that and it costs resident memory: a
/// `check` (one runtime thread, a helper thread or two) keeps one arena, the
/// service two. Measured in scripts/bench-check and scripts/bench-hosts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas(one_shot: bool) {
    let arenas = if one_shot { 1 } else { 2 };
    // SAFETY: mallopt only sets a tunable; it is called before any thread
    // but this one exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas(_one_shot: bool) {}
