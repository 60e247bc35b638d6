//! The gRPC services, one file each: decode the request into domain values,
//! check the caller may act on its tenant, call a service, encode the answer.
//! No business rule lives here. This file holds what every service's
//! handlers share: the parts of a create (caller, request_id), the paths an
//! update touches, the wire size of a listed item.

pub mod agreement;
pub mod api_key;
pub mod audit;
pub mod breach;
pub mod compliance;
pub mod convert;
pub mod entitlement;
pub mod measurement;
pub mod party;
pub mod service;
pub mod tenant;

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use prost::{Message, Name};
use prost_types::FieldMask;
use sha2::{Digest, Sha256};
use tonic::Request;

use crate::auth::{Principal, principal};
use crate::domain::audit::Caller;
use crate::domain::fields::resolve_mask;
use crate::domain::request_id::RequestKey;
use crate::error::{Error, Result};

/// What `message` adds to a list response: its bytes, their length and the
/// tag of the repeated field (field 1 in every List response).
pub(crate) fn listed_len(message: &impl Message) -> usize {
    let len = message.encoded_len();
    1 + prost::length_delimiter_len(len) + len
}

/// A create request taken apart: who calls, as the audit trail records it
/// (with the request_id), the idempotency key, and the request itself, its
/// request_id taken out.
pub(crate) struct Create<M> {
    pub principal: Principal,
    pub caller: Caller,
    pub key: Option<RequestKey>,
    pub request: M,
}

/// Takes a create apart. `request_id` names the request's `request_id`
/// field, which the fingerprint leaves out.
pub(crate) fn create<M: Message>(
    request: Request<M>,
    request_id: impl FnOnce(&mut M) -> &mut String,
) -> Result<Create<M>> {
    let principal = principal(&request)?.clone();
    let mut message = request.into_inner();
    let id = std::mem::take(request_id(&mut message));
    // The method, as `CreateParty`: the same request_id sent to two
    // methods names two different requests.
    let method = principal.method.rsplit('/').next().unwrap_or_default();
    let key = request_key(method, &id, &message)?;
    Ok(Create {
        caller: principal.caller(&id),
        principal,
        key,
        request: message,
    })
}

/// The idempotency key of a create: its request_id and a fingerprint of the
/// request it came with (`request` with its request_id cleared), so that the
/// same id sent with another request can be told apart.
fn request_key<M: Message>(
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

/// The paths an Update touches: the mask's, or, for an empty mask, the
/// updatable fields the client set (AIP-134).
pub(crate) fn update_paths<M: Message + Name>(
    mask: Option<&FieldMask>,
    resource: &M,
    updatable: &'static [&'static str],
    output_only: &[&str],
) -> Result<Vec<&'static str>> {
    let paths = match mask {
        Some(m) if !m.paths.is_empty() => m.paths.clone(),
        _ => set_fields(resource, updatable),
    };
    resolve_mask(&paths, updatable, output_only)
}

/// Those of `updatable` that `message` sets. proto3 sends a field only when
/// it is set: a scalar or enum that is not its default, a list or map that
/// is not empty, a message that is present. So the fields on the wire are
/// the fields the client set, and no list per resource has to say how each
/// field tells.
fn set_fields<M: Message + Name>(message: &M, updatable: &[&str]) -> Vec<String> {
    let names = field_names(&M::full_name());
    let on_wire: BTreeSet<&str> = field_numbers(&message.encode_to_vec())
        .iter()
        .filter_map(|n| names.get(n).map(String::as_str))
        .collect();
    updatable
        .iter()
        .filter(|path| on_wire.contains(**path))
        .map(|path| path.to_string())
        .collect()
}

/// The field names of an `accord.v1` message, by number.
fn field_names(message: &str) -> &'static HashMap<u32, String> {
    static NAMES: LazyLock<HashMap<String, HashMap<u32, String>>> = LazyLock::new(|| {
        let mut names = HashMap::new();
        for file in &crate::proto::descriptor_set().file {
            for m in &file.message_type {
                let fields = m
                    .field
                    .iter()
                    .map(|f| (f.number() as u32, f.name().to_string()))
                    .collect();
                names.insert(format!("{}.{}", file.package(), m.name()), fields);
            }
        }
        names
    });
    static NONE: LazyLock<HashMap<u32, String>> = LazyLock::new(HashMap::new);
    NAMES.get(message).unwrap_or(&NONE)
}

/// The numbers of the fields present in `bytes`, a message encoded by prost
/// (so well formed, and without groups, which proto3 does not have).
fn field_numbers(mut bytes: &[u8]) -> BTreeSet<u32> {
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }
    let mut numbers = BTreeSet::new();
    while let Some(key) = varint(&mut bytes) {
        numbers.insert((key >> 3) as u32);
        let len = match key & 0x7 {
            0 => varint(&mut bytes).map(|_| 0),
            1 => Some(8),
            2 => varint(&mut bytes).and_then(|len| usize::try_from(len).ok()),
            5 => Some(4),
            _ => None,
        };
        match len.and_then(|len| bytes.get(len..)) {
            Some(rest) => bytes = rest,
            None => break,
        }
    }
    numbers
}

/// The resource of an Update request, which must be present.
pub(crate) fn required<'a, T>(field: &str, value: &'a Option<T>) -> Result<&'a T> {
    value
        .as_ref()
        .ok_or_else(|| Error::invalid(field, "is required"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::party::PartyFields;
    use crate::domain::service::ServiceFields;
    use crate::domain::tenant::TenantFields;
    use crate::proto::v1 as pb;

    #[test]
    fn the_fields_on_the_wire_are_those_set() {
        let party = pb::Party {
            name: "tenants/t/parties/p".into(),
            etag: "e".into(),
            kind: pb::PartyKind::Customer.into(),
            labels: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(set_fields(&party, PartyFields::PATHS), ["kind", "labels"]);
        assert!(set_fields(&pb::Party::default(), PartyFields::PATHS).is_empty());
    }

    #[test]
    fn every_updatable_path_is_a_field_of_its_message() {
        let text = || "x".to_string();
        let labels = || [("k".to_string(), "v".to_string())].into();
        let tenant = pb::Tenant {
            display_name: text(),
            labels: labels(),
            ..Default::default()
        };
        assert_eq!(
            set_fields(&tenant, TenantFields::PATHS),
            TenantFields::PATHS
        );
        let party = pb::Party {
            display_name: text(),
            kind: pb::PartyKind::Customer.into(),
            parent: text(),
            labels: labels(),
            ..Default::default()
        };
        assert_eq!(set_fields(&party, PartyFields::PATHS), PartyFields::PATHS);
        let service = pb::Service {
            display_name: text(),
            description: text(),
            owner: text(),
            labels: labels(),
            ..Default::default()
        };
        assert_eq!(
            set_fields(&service, ServiceFields::PATHS),
            ServiceFields::PATHS
        );
    }

    #[test]
    fn field_numbers_skip_every_wire_type() {
        // 1: varint 150, 2: "ab", 3: fixed64, 4: fixed32, 1000: varint 1.
        let bytes = [
            0x08, 0x96, 0x01, 0x12, 0x02, b'a', b'b', 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0x25, 0, 0, 0,
            0, 0xc0, 0x3e, 0x01,
        ];
        assert_eq!(
            field_numbers(&bytes).into_iter().collect::<Vec<_>>(),
            [1, 2, 3, 4, 1000]
        );
        assert!(field_numbers(&[0x12, 0x05, b'a']).contains(&2));
    }
}
