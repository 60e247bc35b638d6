//! The operator commands (`accord get`, `resolve`, `apply`, `report`,
//! `compliance`, `breaches`, `credits`, `keys`, `tenants`): a gRPC client of
//! the same API any other client uses (`import` only converts files,
//! offline). Nothing here reaches into the services or the store; it sees
//! only `proto` and the wire.

mod apply;
mod breaches;
mod completions;
mod compliance;
mod connection;
mod credits;
mod failure;
mod get;
mod import;
mod keys;
mod manifest;
mod measurement_file;
mod openslo;
mod output;
mod prune;
mod reflect;
mod report;
mod resolve;
mod resume;
mod short_enums;
mod tenants;

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
    /// Whether an agreement's objectives, or a consumer's on a service, are met.
    Compliance(compliance::ComplianceArgs),
    /// Objectives missed in closed calendar periods.
    Breaches(breaches::BreachesArgs),
    /// The service credits a consumer is owed for a billing period.
    Credits(credits::CreditsArgs),
    /// Create, list and revoke the tenant's API keys.
    Keys(keys::KeysArgs),
    /// Create, list and delete tenants (a PLATFORM_ADMIN key).
    Tenants(tenants::TenantsArgs),
    /// Print the completion script of a shell.
    Completions(completions::CompletionsArgs),
}

/// Runs one client command; what went wrong is printed to stderr and
/// becomes the exit code (see `Failure::exit_code`). `whole` gives the
/// binary's whole command line, which completion scripts describe.
pub async fn run(command: Command, whole: impl FnOnce() -> clap::Command) -> ExitCode {
    let result = match command {
        Command::Get(args) => get::run(args).await,
        Command::Resolve(args) => resolve::run(args).await,
        Command::Apply(args) => apply::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Import(args) => import::run(args),
        Command::Compliance(args) => compliance::run(args).await,
        Command::Breaches(args) => breaches::run(args).await,
        Command::Credits(args) => credits::run(args).await,
        Command::Keys(args) => keys::run(args).await,
        Command::Tenants(args) => tenants::run(args).await,
        Command::Completions(args) => {
            completions::run(args, whole());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
