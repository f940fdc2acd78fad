//! `flipbook`: the server binary.

use clap::{Parser, Subcommand};
use flipbook_server::config::{Config, ServeArgs};

#[derive(Parser, Debug)]
#[command(name = "flipbook", version, about = "Flipbook: event sourcing, done once and correctly.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serves the flipbook.v1 gRPC API (defaults: 127.0.0.1:7420, ./flipbook.db).
    Serve(ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args)?;
            flipbook_server::telemetry::init(&config.log);
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(config))
        }
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
