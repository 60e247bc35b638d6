//! The `accord` binary: parse the command line and hand over.

use clap::{Parser, Subcommand};

use accord::app::Application;
use accord::config::{Config, ConfigArgs};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args)?;
            accord::telemetry::init(&config.log, config.log_format)?;
            let listener = tokio::net::TcpListener::bind(config.listen).await?;
            let app = Application::build(config, listener).await?;
            app.run_until_stopped().await
        }
        Command::Migrate(args) => {
            let config = Config::load(&args)?;
            accord::telemetry::init(&config.log, config.log_format)?;
            accord::store::migrate(config.migration_url(), &config.database_url).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}
