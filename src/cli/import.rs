//! `accord import openslo FILE_OR_DIR… --provider ID [-o OUT]
//! [--effective-from T]`: converts other formats to the YAML `accord apply`
//! reads. Offline: it reads files and writes one, and calls no server.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::Failure;
use super::manifest;
use super::openslo::{self, Options};

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub format: ImportFormat,
}

#[derive(Debug, Subcommand)]
pub enum ImportFormat {
    /// OpenSLO v1 documents (Service, SLO, SLI, …) to a Service per OpenSLO
    /// Service and a draft SERVICE_LEVEL agreement per service.
    Openslo(OpensloArgs),
}

#[derive(Debug, Args)]
pub struct OpensloArgs {
    /// OpenSLO YAML files, or directories of them (.yaml, .yml).
    #[arg(value_name = "FILE_OR_DIR", required = true)]
    pub files: Vec<PathBuf>,
    /// Write the result to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// The party (an id) that owns the services and provides the agreements.
    #[arg(long, value_name = "ID")]
    pub provider: String,
    /// When the agreements take effect (RFC 3339); default today, 00:00 UTC.
    #[arg(long, value_name = "T")]
    pub effective_from: Option<String>,
}

pub fn run(args: ImportArgs) -> Result<(), Failure> {
    match args.format {
        ImportFormat::Openslo(args) => run_openslo(args),
    }
}

fn run_openslo(args: OpensloArgs) -> Result<(), Failure> {
    if !openslo::is_id(&args.provider) {
        return Err(Failure::Usage(format!(
            "error: --provider {:?} is no party id (lowercase [a-z][a-z0-9-]{{0,62}})",
            args.provider
        )));
    }
    let effective_from = match &args.effective_from {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                Failure::Usage(format!(
                    "error: --effective-from {text:?} is no RFC 3339 time: {e}"
                ))
            })?,
        None => Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc(),
    };
    let mut files = Vec::new();
    for path in manifest::yaml_files(&args.files)? {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Failure::Input(format!("error: cannot read {}: {e}", path.display())))?;
        files.push((path, text));
    }
    let options = Options {
        provider: args.provider,
        effective_from,
    };
    let conversion = openslo::convert(&files, &options)
        .map_err(|errors| Failure::Input(format!("error: {}", errors.join("\nerror: "))))?;
    for line in conversion.not_mapped.iter().chain(&conversion.notes) {
        eprintln!("{line}");
    }
    if conversion.is_empty() {
        return Err(Failure::Input(
            "error: nothing could be mapped: no Service and no objective in the files".to_string(),
        ));
    }
    match &args.output {
        Some(path) => std::fs::write(path, &conversion.yaml)
            .map_err(|e| Failure::Input(format!("error: cannot write {}: {e}", path.display())))?,
        None => print!("{}", conversion.yaml),
    }
    if !conversion.not_mapped.is_empty() {
        eprintln!(
            "warning: {} part(s) of the OpenSLO files not mapped (listed above)",
            conversion.not_mapped.len()
        );
    }
    eprintln!(
        "converted: {} service(s), {} draft agreement(s) with {} objective(s)",
        conversion.services, conversion.agreements, conversion.objectives
    );
    Ok(())
}
