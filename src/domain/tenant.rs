//! Tenants: the isolation boundary. Deleting one that still holds resources
//! needs `force`. Ids can be reused once a tenant is deleted; the `uid` tells
//! one tenant of an id from the next (AIP-148), and the audit trail keeps
//! them apart by it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::fields::{
    Labels, Meta, updatable_fields, validate_display_name, validate_labels,
};
use crate::domain::names::Id;
use crate::error::{Error, Precondition, Result, Violations};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: Id,
    /// Random and unique, never reused: another tenant created later under
    /// the same id has another.
    pub uid: String,
    pub display_name: String,
    pub labels: Labels,
    pub meta: Meta,
}

updatable_fields! {
    /// The client-settable fields of a tenant.
    pub struct TenantFields for Tenant {
        display_name: String,
        labels: Labels,
    }
    output_only: ["name", "uid", "etag", "create_time", "update_time"]
}

impl Tenant {
    pub fn new(id: Id, fields: TenantFields, now: DateTime<Utc>) -> Self {
        let mut tenant = Tenant {
            id,
            uid: new_uid(),
            display_name: String::new(),
            labels: Labels::new(),
            meta: Meta::new(now),
        };
        tenant.apply(fields);
        tenant
    }

    pub fn name(&self) -> String {
        format!("tenants/{}", self.id)
    }

    /// A tenant that still holds resources (`contents`, some of them) is
    /// deleted only when the caller sets `force`.
    pub fn check_empty(&self, contents: &[String]) -> Result<()> {
        if contents.is_empty() {
            return Ok(());
        }
        Err(Error::precondition(
            Precondition::TenantNotEmpty,
            format!(
                "{} still holds resources ({}); delete them first or set force",
                self.name(),
                contents.join(", ")
            ),
        ))
    }

    pub fn validate(&self, v: &mut Violations, prefix: &str) {
        validate_display_name(v, &format!("{prefix}.display_name"), &self.display_name);
        validate_labels(v, &format!("{prefix}.labels"), &self.labels);
    }
}

/// A new tenant uid: a random (version 4) UUID, the form AIP-148 suggests.
pub fn new_uid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_holding_resources_is_not_empty() {
        let t = Tenant::new(
            Id::parse("id", "acme").unwrap(),
            TenantFields::default(),
            chrono::Utc::now(),
        );
        assert!(t.check_empty(&[]).is_ok());
        let refused = t.check_empty(&["tenants/acme/parties/bank".into()]);
        assert!(
            matches!(&refused, Err(Error::FailedPrecondition { reason: Precondition::TenantNotEmpty, message })
                if message.starts_with("tenants/acme still holds resources (tenants/acme/parties/bank)")),
            "{refused:?}"
        );
    }

    #[test]
    fn uids_are_version_4_uuids_and_differ() {
        let uid = new_uid();
        let groups: Vec<usize> = uid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{uid}");
        assert!(uid.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
        assert_eq!(&uid[14..15], "4", "{uid}");
        assert!("89ab".contains(&uid[19..20]), "{uid}");
        assert_ne!(new_uid(), uid);
    }
}
