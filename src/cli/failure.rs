//! Why a client command failed, in words for a person, and the exit code
//! each kind of failure ends the process with.

use std::fmt;

use tonic::Code;
use tonic_types::StatusExt;

/// A failed command. Its `Display` is what stderr shows.
#[derive(Debug)]
pub enum Failure {
    /// The command line, the config file or the environment is wrong (exit 2).
    Usage(String),
    /// A file to apply is wrong, or names what does not exist, or the
    /// operator said no when asked to confirm (exit 1).
    Input(String),
    /// The server answered with an error (exit 1).
    Server(String),
    /// No connection to the server (exit 3).
    Unreachable(String),
    /// The server refused the API key, or the key may not do this (exit 4).
    Refused(String),
}

impl Failure {
    /// 0 success, 1 the request or the files were refused, 2 usage,
    /// 3 the server cannot be reached, 4 the key was refused.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Input(_) | Failure::Server(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Unreachable(_) => 3,
            Failure::Refused(_) => 4,
        }
    }

    /// A gRPC error, `doing` saying what was asked ("get party x"), with its
    /// google.rpc details spelled out.
    pub fn from_status(status: &tonic::Status, server: &str, doing: &str) -> Self {
        let details = status.get_error_details();
        let answered = details.error_info().is_some()
            || details.bad_request().is_some()
            || details.resource_info().is_some();
        match status.code() {
            Code::Unauthenticated => Failure::Refused(format!(
                "error: the server refused the API key ({}); check --api-key, \
                 ACCORD_API_KEY or the context's api-key",
                status.message()
            )),
            Code::PermissionDenied => Failure::Refused(format!(
                "error: {doing}: the API key may not do this ({})",
                status.message()
            )),
            // A connection that fails after the handshake (a server that
            // wants a client certificate says so only then) comes back as
            // UNKNOWN or CANCELLED with tonic's transport error as its cause.
            code if (code == Code::Unavailable && !answered) || transport_failed(status) => {
                Failure::Unreachable(format!(
                    "error: cannot reach the server at {server}: {}",
                    transport_cause(status)
                ))
            }
            _ => Failure::Server(describe(status, doing)),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(m)
            | Failure::Input(m)
            | Failure::Server(m)
            | Failure::Unreachable(m)
            | Failure::Refused(m) => f.write_str(m),
        }
    }
}

/// Whether tonic could not carry the call at all, whatever code it gave it.
fn transport_failed(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        if s.is::<tonic::transport::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The innermost cause tonic kept for a transport error ("Connection
/// refused"), which says more than "transport error".
pub(super) fn transport_cause(status: &tonic::Status) -> String {
    let mut cause = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    cause
}

/// "error: create party x: INVALID_ARGUMENT: …" and one line per detail.
fn describe(status: &tonic::Status, doing: &str) -> String {
    let details = status.get_error_details();
    let violations = details
        .bad_request()
        .map_or(0, |b| b.field_violations.len());
    // The message of a refusal with field violations lists them again.
    let mut text = if violations > 0 {
        format!("error: {doing}: {}", code_name(status.code()))
    } else {
        format!(
            "error: {doing}: {}: {}",
            code_name(status.code()),
            status.message()
        )
    };
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            text.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    if let Some(failure) = details.precondition_failure() {
        for v in &failure.violations {
            text.push_str(&format!(
                "\n  {} {}: {}",
                v.r#type, v.subject, v.description
            ));
        }
    }
    if let Some(info) = details.resource_info() {
        text.push_str(&format!(
            "\n  resource: {} {}",
            info.resource_type, info.resource_name
        ));
    }
    if let Some(info) = details.error_info() {
        text.push_str(&format!("\n  reason: {}", info.reason));
        let mut metadata: Vec<_> = info.metadata.iter().collect();
        metadata.sort();
        for (k, v) in metadata {
            text.push_str(&format!(" {k}={v}"));
        }
    }
    text
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
