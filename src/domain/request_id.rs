//! The request_id of a create (AIP-155): retrying a create with the same
//! request_id returns what the first call returned instead of creating twice.
//! The key is the id and a fingerprint of the request it came with, so the
//! same id sent with another request can be told apart.

use crate::error::FieldViolation;

/// The `request_id` of a create and a fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct RequestKey {
    pub request_id: String,
    pub fingerprint: String,
}

impl RequestKey {
    /// The longest `request_id`: a UUID (AIP-155's advice) is 36 characters.
    pub const MAX_ID_CHARS: usize = 128;

    /// 1 to `MAX_ID_CHARS` printable ASCII characters; empty means none.
    pub fn validate_id(request_id: &str) -> Result<(), FieldViolation> {
        if request_id.len() > Self::MAX_ID_CHARS
            || !request_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(FieldViolation::new(
                "request_id",
                format!(
                    "must be 1 to {} printable ASCII characters, such as a UUID",
                    Self::MAX_ID_CHARS
                ),
            ));
        }
        Ok(())
    }
}
