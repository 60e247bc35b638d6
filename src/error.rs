//! The one error type of the domain and the store, and its one mapping to
//! `tonic::Status`. Internal errors are logged here with their context and reach
//! the client only as a bare INTERNAL.

use std::fmt;
use std::time::Duration;

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every error Accord returns.
pub const ERROR_DOMAIN: &str = "accord";

/// What the field violations of one status may take. A status travels in the
/// trailers, its message twice (`grpc-message`, and inside the base64 of
/// `grpc-status-details-bin`), and clients refuse trailers past 8 KiB (Java)
/// or 16 KiB (Go, tonic); so the first violations are listed and the others
/// counted (`ErrorInfo.metadata["omitted_violations"]`).
const VIOLATIONS_BYTES: usize = 2048;
/// The message names the first violations only.
const MESSAGE_BYTES: usize = 512;
/// Descriptions quote what the client sent; a long one is cut.
const DESCRIPTION_BYTES: usize = 256;

/// One invalid field of a request, named by its path (`agreement.objectives[0].target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Why a precondition failed; sent as `ErrorInfo.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// The resource is referenced by another one.
    ResourceInUse,
    /// The tenant still holds resources and `force` was not set.
    TenantNotEmpty,
    /// The agreement is in a state that does not allow the operation.
    AgreementState,
    /// Another ACTIVE SERVICE_LEVEL agreement covers the same service at the same time.
    OverlappingAgreement,
    /// A TIMESLICE objective cuts the window asked for into more slices than
    /// one evaluation may hold.
    TooManySlices,
}

impl Precondition {
    pub fn reason(self) -> &'static str {
        match self {
            Precondition::ResourceInUse => "RESOURCE_IN_USE",
            Precondition::TenantNotEmpty => "TENANT_NOT_EMPTY",
            Precondition::AgreementState => "AGREEMENT_STATE",
            Precondition::OverlappingAgreement => "OVERLAPPING_AGREEMENT",
            Precondition::TooManySlices => "TOO_MANY_SLICES",
        }
    }
}

/// Which limit refused a call; sent as `ErrorInfo.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The server's calls in flight.
    Calls,
    /// The share of them one tenant may hold.
    TenantCalls,
    /// The server's open streams: watches and streams of measurement
    /// batches (the reasons keep their first name).
    Watches,
    /// The share of them one tenant may hold.
    TenantWatches,
}

impl Limit {
    pub fn reason(self) -> &'static str {
        match self {
            Limit::Calls => "OVERLOADED",
            Limit::TenantCalls => "TENANT_OVERLOADED",
            Limit::Watches => "TOO_MANY_WATCHES",
            Limit::TenantWatches => "TENANT_TOO_MANY_WATCHES",
        }
    }

    fn describe(self, of: usize) -> String {
        match self {
            Limit::Calls => format!("the server is handling its limit of {of} calls"),
            Limit::TenantCalls => {
                format!("the caller's tenant is using its share of {of} calls in flight")
            }
            Limit::Watches => {
                format!("the server has its limit of {of} watch and measurement streams open")
            }
            Limit::TenantWatches => {
                format!(
                    "the caller's tenant has its share of {of} watch and measurement streams open"
                )
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", describe_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("etag mismatch for {0}: it was changed since it was read")]
    EtagMismatch(String),
    #[error("{message}")]
    FailedPrecondition {
        reason: Precondition,
        message: String,
    },
    #[error("{0}")]
    Unavailable(String),
    /// Refused for lack of capacity; the same call may succeed after
    /// `retry_after`.
    #[error("{}; retry after {} s", .limit.describe(*.of), .retry_after.as_secs())]
    Exhausted {
        limit: Limit,
        /// The limit's size.
        of: usize,
        retry_after: Duration,
    },
    /// The request message did not arrive in time.
    #[error("the request message did not arrive within {} s", .0.as_secs())]
    RequestBodyTimeout(Duration),
    /// The request message is larger than the server accepts.
    #[error("the request message is larger than the limit of {0} bytes")]
    MessageTooLarge(usize),
    /// The call's deadline, or the server's statement maximum, passed before
    /// the work was done; the transaction was rolled back.
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The violations a status lists: the first ones, within
/// `VIOLATIONS_BYTES` (at least one), their descriptions cut.
fn listed(violations: &[FieldViolation]) -> Vec<FieldViolation> {
    let mut bytes = 0;
    violations
        .iter()
        .map(|v| FieldViolation::new(v.field.clone(), cut(&v.description, DESCRIPTION_BYTES)))
        .take_while(|v| {
            let first = bytes == 0;
            bytes += v.field.len() + v.description.len();
            first || bytes <= VIOLATIONS_BYTES
        })
        .collect()
}

fn describe_violations(violations: &[FieldViolation]) -> String {
    let mut text = String::from("invalid argument");
    for (i, v) in violations.iter().enumerate() {
        text.push_str(if i == 0 { ": " } else { "; " });
        text.push_str(&format!("{}: {}", v.field, v.description));
    }
    text
}

impl Error {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn precondition(reason: Precondition, message: impl Into<String>) -> Self {
        Error::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    pub fn internal(context: impl fmt::Display) -> Self {
        Error::Internal(anyhow::anyhow!("{context}"))
    }

    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::EtagMismatch(_) => Code::Aborted,
            Error::FailedPrecondition { .. } => Code::FailedPrecondition,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Exhausted { .. } => Code::ResourceExhausted,
            Error::RequestBodyTimeout(_) => Code::DeadlineExceeded,
            Error::MessageTooLarge(_) => Code::OutOfRange,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Internal(_) => Code::Internal,
        }
    }
}

/// Collects field violations so that a request reports all of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Keeps the value of `result`, or records its violation and returns `None`.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(violation) => {
                self.0.push(violation);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }
}

impl From<FieldViolation> for Error {
    fn from(violation: FieldViolation) -> Self {
        Error::InvalidArgument(vec![violation])
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let code = error.code();
        let mut details = ErrorDetails::new();
        let mut message = None;
        match &error {
            Error::InvalidArgument(violations) => {
                let listed = listed(violations);
                let omitted = violations.len() - listed.len();
                let mut text = cut(&describe_violations(&listed), MESSAGE_BYTES);
                let mut metadata = std::collections::HashMap::new();
                if omitted > 0 {
                    text.push_str(&format!(" (and {omitted} more)"));
                    metadata.insert("omitted_violations".to_string(), omitted.to_string());
                }
                for v in listed {
                    details.add_bad_request_violation(v.field, v.description);
                }
                details.set_error_info("INVALID_ARGUMENT", ERROR_DOMAIN, metadata);
                message = Some(text);
            }
            Error::NotFound(name) => {
                details.set_resource_info("", name.clone(), "", "not found");
                details.set_error_info("NOT_FOUND", ERROR_DOMAIN, []);
            }
            Error::AlreadyExists(name) => {
                details.set_resource_info("", name.clone(), "", "already exists");
                details.set_error_info("ALREADY_EXISTS", ERROR_DOMAIN, []);
            }
            Error::EtagMismatch(name) => {
                details.set_error_info(
                    "ETAG_MISMATCH",
                    ERROR_DOMAIN,
                    [("resource".to_string(), name.clone())],
                );
            }
            Error::FailedPrecondition { reason, message } => {
                details.add_precondition_failure_violation(reason.reason(), "", message.clone());
                details.set_error_info(reason.reason(), ERROR_DOMAIN, []);
            }
            Error::Unavailable(_) => {
                details.set_error_info("UNAVAILABLE", ERROR_DOMAIN, []);
            }
            Error::Exhausted {
                limit,
                of,
                retry_after,
            } => {
                details.set_retry_info(Some(*retry_after));
                details.set_error_info(
                    limit.reason(),
                    ERROR_DOMAIN,
                    [("limit".to_string(), of.to_string())],
                );
            }
            Error::RequestBodyTimeout(_) => {
                details.set_error_info("REQUEST_BODY_TIMEOUT", ERROR_DOMAIN, []);
            }
            Error::MessageTooLarge(limit) => {
                details.set_error_info(
                    "MESSAGE_TOO_LARGE",
                    ERROR_DOMAIN,
                    [("limit".to_string(), limit.to_string())],
                );
            }
            Error::DeadlineExceeded(_) => {
                details.set_error_info("DEADLINE_EXCEEDED", ERROR_DOMAIN, []);
            }
            Error::Unauthenticated(_) => {
                details.set_error_info("UNAUTHENTICATED", ERROR_DOMAIN, []);
            }
            Error::PermissionDenied(_) => {
                details.set_error_info("PERMISSION_DENIED", ERROR_DOMAIN, []);
            }
            Error::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                return tonic::Status::with_error_details(
                    code,
                    "internal error",
                    ErrorDetails::with_error_info("INTERNAL", ERROR_DOMAIN, []),
                );
            }
        }
        let message = message.unwrap_or_else(|| error.to_string());
        tonic::Status::with_error_details(code, message, details)
    }
}

impl From<FieldViolation> for tonic::Status {
    fn from(violation: FieldViolation) -> Self {
        Error::from(violation).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_violations_fit_in_a_status_every_client_reads() {
        let violations: Vec<FieldViolation> = (0..100_000)
            .map(|i| FieldViolation::new(format!("items[{i}]"), "é".repeat(1000)))
            .collect();
        let status = tonic::Status::from(Error::InvalidArgument(violations));
        assert!(status.message().len() < 1024, "{}", status.message());
        assert!(status.message().ends_with(" more)"), "{}", status.message());
        assert!(status.details().len() < 4096, "{}", status.details().len());
        let listed = status.get_details_bad_request().expect("BadRequest");
        assert_eq!(listed.field_violations[0].field, "items[0]");
        let info = status.get_details_error_info().expect("ErrorInfo");
        let omitted: usize = info.metadata["omitted_violations"].parse().unwrap();
        assert_eq!(omitted + listed.field_violations.len(), 100_000);
    }

    #[test]
    fn a_few_violations_are_all_listed() {
        let status = tonic::Status::from(Error::InvalidArgument(vec![
            FieldViolation::new("a", "is required"),
            FieldViolation::new("b", "is required"),
        ]));
        assert_eq!(
            status.message(),
            "invalid argument: a: is required; b: is required"
        );
        assert_eq!(
            status
                .get_details_bad_request()
                .unwrap()
                .field_violations
                .len(),
            2
        );
    }
}
