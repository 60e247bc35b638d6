//! The `accord` binary: parse the command line and hand over.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand};

use accord::app::Application;
use accord::config::{Config, ConfigArgs};
use accord::redact;

#[derive(Parser)]
#[command(
    name = "accord",
    version,
    about = "A multi-tenant SLA registry served over gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database, then serve gRPC until SIGTERM or SIGINT.
    Serve(ConfigArgs),
    /// Apply database migrations and exit.
    Migrate(ConfigArgs),
    #[command(flatten)]
    Client(accord::cli::Command),
}

#[tokio::main]
async fn main() -> ExitCode {
    mask_secrets_in_panics();
    let (job, args) = match Cli::parse().command {
        Command::Client(command) => return accord::cli::run(command, Cli::command).await,
        Command::Serve(args) => (Job::Serve, args),
        Command::Migrate(args) => (Job::Migrate, args),
    };
    match run(job, &args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // What returning the error from `main` prints, secrets masked.
            eprintln!("Error: {}", redact::scrub(&format!("{error:?}")));
            ExitCode::FAILURE
        }
    }
}

/// What the server side of the binary does.
enum Job {
    Serve,
    Migrate,
}

async fn run(job: Job, args: &ConfigArgs) -> anyhow::Result<()> {
    let config = Config::load(args)?;
    // Before anything can log them.
    redact::register(config.secrets());
    let telemetry = accord::telemetry::init(
        &config.log,
        config.log_format,
        config.otlp_endpoint.as_deref(),
    )?;
    let result = match job {
        Job::Serve => serve(config).await,
        Job::Migrate => migrate(&config).await,
    };
    // The spans of the last calls, whatever the outcome.
    telemetry.shutdown().await;
    result
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "binding the gRPC listener to {} (--listen, ACCORD_LISTEN)",
                config.listen
            )
        })?;
    let app = Application::build(config, listener).await?;
    app.run_until_stopped().await
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    accord::store::migrate(config.migration_url(), &config.database_url).await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// A panic's message is an error message too: print it as the default hook
/// would, with the secrets masked.
fn mask_secrets_in_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        eprintln!("\nthread '{name}' {}", redact::scrub(&info.to_string()));
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!(
                "stack backtrace:\n{}",
                redact::scrub(&backtrace.to_string())
            );
        }
    }));
}
