//! Services of the catalogue, each owned by a party of the same tenant. A
//! service an agreement covers is not deleted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::fields::{
    Labels, Meta, check_unreferenced, updatable_fields, validate_display_name, validate_labels,
    validate_text,
};
use crate::domain::names::{Id, service_name};
use crate::error::{Result, Violations};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub tenant: Id,
    pub id: Id,
    pub display_name: String,
    pub description: String,
    pub owner: Id,
    pub labels: Labels,
    pub meta: Meta,
}

updatable_fields! {
    /// The client-settable fields of a service.
    pub struct ServiceFields for Service {
        display_name: String,
        description: String,
        owner: Id,
        labels: Labels,
    }
    output_only: ["name", "etag", "create_time", "update_time"]
}

impl Service {
    pub const MAX_DESCRIPTION_CHARS: usize = 4000;

    /// A new service, checked (`validate`); `owner` is required.
    pub fn new(
        tenant: &Id,
        id: Id,
        fields: ServiceFields,
        now: DateTime<Utc>,
        v: &mut Violations,
        prefix: &str,
    ) -> Option<Self> {
        let Some(owner) = fields.owner.clone() else {
            v.add(format!("{prefix}.owner"), "is required");
            return None;
        };
        let mut service = Service {
            tenant: tenant.clone(),
            id,
            display_name: String::new(),
            description: String::new(),
            owner,
            labels: Labels::new(),
            meta: Meta::new(now),
        };
        service.apply(fields);
        service.validate(v, prefix);
        Some(service)
    }

    pub fn name(&self) -> String {
        service_name(&self.tenant, &self.id)
    }

    /// A service that agreements (`users`, some of them) still cover is not
    /// deleted.
    pub fn check_deletable(&self, users: &[String]) -> Result<()> {
        check_unreferenced(&self.name(), "is still covered by", users)
    }

    pub fn validate(&self, v: &mut Violations, prefix: &str) {
        validate_display_name(v, &format!("{prefix}.display_name"), &self.display_name);
        validate_text(
            v,
            &format!("{prefix}.description"),
            &self.description,
            Self::MAX_DESCRIPTION_CHARS,
        );
        validate_labels(v, &format!("{prefix}.labels"), &self.labels);
    }
}
