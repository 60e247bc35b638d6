//! Tenants: the isolation boundary. Deleting one that still holds resources
//! needs `force`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::fields::{Labels, MAX_DISPLAY_NAME_CHARS, Meta, validate_labels, validate_text};
use crate::domain::names::Id;
use crate::error::Violations;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: Id,
    pub display_name: String,
    pub labels: Labels,
    pub meta: Meta,
}

/// The client-settable fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantFields {
    pub display_name: Option<String>,
    pub labels: Option<Labels>,
}

pub const TENANT_UPDATABLE: &[&str] = &["display_name", "labels"];
pub const TENANT_OUTPUT_ONLY: &[&str] = &["name", "etag", "create_time", "update_time"];

impl Tenant {
    pub fn new(id: Id, fields: TenantFields, now: DateTime<Utc>) -> Self {
        let mut tenant = Tenant {
            id,
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

    pub fn apply(&mut self, fields: TenantFields) {
        if let Some(d) = fields.display_name {
            self.display_name = d;
        }
        if let Some(l) = fields.labels {
            self.labels = l;
        }
    }

    pub fn validate(&self, v: &mut Violations, prefix: &str) {
        validate_text(
            v,
            &format!("{prefix}.display_name"),
            &self.display_name,
            MAX_DISPLAY_NAME_CHARS,
        );
        validate_labels(v, &format!("{prefix}.labels"), &self.labels);
    }
}
