//! Parses the command line and runs the service (`startup`) or a one-shot check.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use shipshape::config::{CheckArgs, Cli, Command, ServeArgs};
use shipshape::startup::Application;
use shipshape::{backup_command, check_command, health_command};

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
