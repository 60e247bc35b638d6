//! Services of the catalogue, each owned by a party of the same tenant. A
//! service an agreement covers is not deleted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::fields::{
    Labels, MAX_DISPLAY_NAME_CHARS, Meta, check_unreferenced, validate_labels, validate_text,
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

#[derive(Debug, Clone, Default)]
pub struct ServiceFields {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub owner: Option<Id>,
    pub labels: Option<Labels>,
}

pub const SERVICE_UPDATABLE: &[&str] = &["display_name", "description", "owner", "labels"];
pub const SERVICE_OUTPUT_ONLY: &[&str] = &["name", "etag", "create_time", "update_time"];

impl Service {
    pub const MAX_DESCRIPTION_CHARS: usize = 4000;

    /// A new service; `owner` is required.
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
        Some(service)
    }

    pub fn name(&self) -> String {
        service_name(&self.tenant, &self.id)
    }

    pub fn apply(&mut self, fields: ServiceFields) {
        if let Some(d) = fields.display_name {
            self.display_name = d;
        }
        if let Some(d) = fields.description {
            self.description = d;
        }
        if let Some(o) = fields.owner {
            self.owner = o;
        }
        if let Some(l) = fields.labels {
            self.labels = l;
        }
    }

    /// A service that agreements (`users`, some of them) still cover is not
    /// deleted.
    pub fn check_deletable(&self, users: &[String]) -> Result<()> {
        check_unreferenced(&self.name(), "is still covered by", users)
    }

    pub fn validate(&self, v: &mut Violations, prefix: &str) {
        validate_text(
            v,
            &format!("{prefix}.display_name"),
            &self.display_name,
            MAX_DISPLAY_NAME_CHARS,
        );
        validate_text(
            v,
            &format!("{prefix}.description"),
            &self.description,
            Self::MAX_DESCRIPTION_CHARS,
        );
        validate_labels(v, &format!("{prefix}.labels"), &self.labels);
    }
}
