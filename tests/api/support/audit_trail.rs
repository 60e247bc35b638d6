//! Reading an audit event: the RPC that wrote it and the fields of the
//! snapshots it holds of the resource before and after.

use accord::proto::v1 as pb;
use prost_types::value::Kind;

/// The RPC that wrote `event` (`CreateParty`), without its service.
pub fn rpc_of(event: &pb::AuditEvent) -> &str {
    event.method.rsplit('/').next().unwrap_or_default()
}

/// The field `name` of a `before` or `after` snapshot.
pub fn snapshot_field<'a>(
    snapshot: &'a Option<prost_types::Struct>,
    name: &str,
) -> Option<&'a Kind> {
    snapshot.as_ref()?.fields.get(name)?.kind.as_ref()
}

/// The field `name` of a snapshot, when it is a string.
pub fn string_field(snapshot: &Option<prost_types::Struct>, name: &str) -> Option<String> {
    match snapshot_field(snapshot, name)? {
        Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}
