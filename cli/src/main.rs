//! `flipbook`: `serve` and `migrate` run the server (`flipbook-server`); every other command is
//! the command-line client (`client.rs`), over a server or embedded.

mod client;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flipbook_server::config::{Config, ServeArgs};

#[derive(Parser, Debug)]
#[command(
    name = "flipbook",
    version,
    about = "Flipbook: event sourcing, done once and correctly.",
    after_help = client::EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serves the flipbook.v1 gRPC API (defaults: 127.0.0.1:7420, ./flipbook.db).
    Serve(ServeArgs),
    /// Creates or upgrades the configured stores' schemas, then exits (serve does it too).
    Migrate(ServeArgs),
    #[command(flatten)]
    Client(client::Command),
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args)?;
            flipbook_server::telemetry::init(&config.log);
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(args) => {
            let config = Config::load(&args)?;
            flipbook_server::telemetry::init(&config.log);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (events, snapshots) = runtime.block_on(flipbook_server::migrate(&config))?;
            println!("schemas up to date: events on {events}, snapshots on {snapshots}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(command) => Ok(client::run(command)),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let running = flipbook_server::start(config).await?;
    let stop = running.shutdown_trigger();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop();
    });
    running.wait().await
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
