//! What a test checks an answer with: codes, field violations, reasons and
//! the NOT_FOUND every missing (or foreign) name gets; and waiting for what
//! holds only eventually (another replica, a sweeper, an exporter).

use std::time::{Duration, Instant};

use prost::Message;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Asserts an INVALID_ARGUMENT whose BadRequest names `field`.
#[track_caller]
pub fn assert_invalid_field<T: std::fmt::Debug>(result: Result<T, Status>, field: &str) {
    let status = result.expect_err("expected INVALID_ARGUMENT");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert!(
        fields.iter().any(|f| f == field),
        "expected a violation on `{field}`, got {fields:?} ({})",
        status.message()
    );
}

/// Asserts the code of a failed call and returns its status.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    let status = result.expect_err(&format!("expected {code:?}"));
    assert_eq!(status.code(), code, "{status:?}");
    status
}

/// Asserts the ErrorInfo reason of a status.
#[track_caller]
pub fn assert_reason(status: &Status, reason: &str) {
    let info = status.get_details_error_info().expect("ErrorInfo detail");
    assert_eq!(info.reason, reason, "{status:?}");
}

/// NOT_FOUND naming `name`: in the message, the ResourceInfo and the ErrorInfo.
#[track_caller]
pub fn assert_not_found(status: &Status, name: &str, context: &str) {
    assert_eq!(status.code(), Code::NotFound, "{context}: {status:?}");
    assert_eq!(status.message(), format!("{name} not found"), "{context}");
    let info = status
        .get_details_resource_info()
        .unwrap_or_else(|| panic!("{context}: no ResourceInfo in {status:?}"));
    assert_eq!(info.resource_name, name, "{context}");
    assert_reason(status, "NOT_FOUND");
}

/// What a status says, with `name` blanked out: two NOT_FOUND answers about
/// different names have the same shape when these are equal.
pub fn shape(status: &Status, name: &str) -> String {
    let details = tonic_types::Status::decode(status.details()).expect("google.rpc.Status details");
    let types: Vec<&str> = details
        .details
        .iter()
        .map(|d| d.type_url.as_str())
        .collect();
    let info = status.get_details_resource_info();
    let error = status.get_details_error_info();
    format!(
        "{:?} | {} | {:?} | {:?} | {:?}",
        status.code(),
        status.message().replace(name, "<name>"),
        types,
        info.map(|i| (
            i.resource_type,
            i.resource_name.replace(name, "<name>"),
            i.owner,
            i.description
        )),
        error.map(|e| (e.reason, e.domain, e.metadata)),
    )
}

/// A batch item's google.rpc.Status as the tonic Status a single call fails with.
pub fn rpc_status(s: &tonic_types::Status) -> Status {
    Status::with_details(
        Code::from_i32(s.code),
        s.message.clone(),
        bytes::Bytes::from(s.encode_to_vec()),
    )
}

/// Polls `check` until it holds, for at most `within`; returns how long it took.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "not seen within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
