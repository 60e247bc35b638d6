//! The operator commands (`accord get`, `resolve`, `apply`, `report`): a gRPC
//! client of the same API any other client uses (`import` only converts
//! files, offline). Nothing here reaches into the services or the store; it
//! sees only `proto` and the wire.

mod apply;
mod connection;
mod failure;
mod get;
mod import;
mod manifest;
mod measurement_file;
mod openslo;
mod output;
mod reflect;
mod report;
mod resolve;
mod resume;

use std::process::ExitCode;

use clap::Subcommand;

pub use connection::ConnectionArgs;
pub use failure::Failure;

/// The client commands, beside `serve` and `migrate` in `main.rs`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List a tenant's resources, or show one.
    Get(get::GetArgs),
    /// What a consumer is entitled to on a service, and where each term comes from.
    Resolve(resolve::ResolveArgs),
    /// Create or update parties, services, agreements and overrides from YAML files.
    Apply(apply::ApplyArgs),
    /// Stream measurements from a CSV or JSON-lines file, resuming where an interrupted run stopped.
    Report(report::ReportArgs),
    /// Convert other formats (OpenSLO) to the YAML `apply` reads; offline.
    Import(import::ImportArgs),
}

/// Runs one client command; what went wrong is printed to stderr and
/// becomes the exit code (see `Failure::exit_code`).
pub async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Get(args) => get::run(args).await,
        Command::Resolve(args) => resolve::run(args).await,
        Command::Apply(args) => apply::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Import(args) => import::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
