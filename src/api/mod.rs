//! The gRPC services, one file each: decode the request into domain values,
//! check the caller may act on its tenant, call a service, encode the answer.
//! No business rule lives here.

pub mod agreement;
pub mod api_key;
pub mod audit;
pub mod convert;
pub mod entitlement;
pub mod party;
pub mod service;
pub mod tenant;

use prost::Message;
use prost_types::FieldMask;
use sha2::{Digest, Sha256};

use crate::domain::fields::resolve_mask;
use crate::domain::request_id::RequestKey;
use crate::error::{Error, Result};

/// What `message` adds to a list response: its bytes, their length and the
/// tag of the repeated field (field 1 in every List response).
pub(crate) fn listed_len(message: &impl Message) -> usize {
    let len = message.encoded_len();
    1 + prost::length_delimiter_len(len) + len
}

/// The idempotency key of a create: its request_id and a fingerprint of the
/// request it came with (`request` with its request_id cleared), so that the
/// same id sent with another request can be told apart.
pub(crate) fn request_key<M: Message>(
    method: &str,
    request_id: &str,
    request: &M,
) -> Result<Option<RequestKey>> {
    if request_id.is_empty() {
        return Ok(None);
    }
    RequestKey::validate_id(request_id)?;
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(request.encode_to_vec());
    Ok(Some(RequestKey {
        request_id: request_id.to_string(),
        fingerprint: hex::encode(hasher.finalize()),
    }))
}

/// The paths an Update touches: the mask's, or, for an empty mask, the fields
/// the client set (AIP-134).
pub(crate) fn update_paths(
    mask: Option<&FieldMask>,
    set_fields: impl FnOnce() -> Vec<String>,
    updatable: &'static [&'static str],
    output_only: &[&str],
) -> Result<Vec<&'static str>> {
    let paths = match mask {
        Some(m) if !m.paths.is_empty() => m.paths.clone(),
        _ => set_fields(),
    };
    resolve_mask(&paths, updatable, output_only)
}

/// The resource of an Update request, which must be present.
pub(crate) fn required<'a, T>(field: &str, value: &'a Option<T>) -> Result<&'a T> {
    value
        .as_ref()
        .ok_or_else(|| Error::invalid(field, "is required"))
}

pub(crate) fn is_set<T: Default + PartialEq>(value: &T) -> bool {
    *value != T::default()
}

/// Names the fields of `$msg` that differ from their defaults.
macro_rules! set_fields {
    ($msg:expr, [$($field:ident),* $(,)?]) => {{
        let msg = &$msg;
        let mut set = Vec::new();
        $( if $crate::api::is_set(&msg.$field) { set.push(stringify!($field).to_string()); } )*
        set
    }};
}
pub(crate) use set_fields;
