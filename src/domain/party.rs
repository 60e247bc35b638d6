//! Parties: who signs agreements. A party's parent must exist in the same
//! tenant and must not make a cycle.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::fields::{Labels, MAX_DISPLAY_NAME_CHARS, Meta, validate_labels, validate_text};
use crate::domain::names::{Id, party_name};
use crate::error::Violations;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PartyKind {
    Provider,
    Customer,
    InternalUnit,
    Supplier,
}

impl PartyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartyKind::Provider => "PROVIDER",
            PartyKind::Customer => "CUSTOMER",
            PartyKind::InternalUnit => "INTERNAL_UNIT",
            PartyKind::Supplier => "SUPPLIER",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Party {
    pub tenant: Id,
    pub id: Id,
    pub display_name: String,
    pub kind: PartyKind,
    pub parent: Option<Id>,
    pub labels: Labels,
    pub meta: Meta,
}

#[derive(Debug, Clone, Default)]
pub struct PartyFields {
    pub display_name: Option<String>,
    pub kind: Option<PartyKind>,
    /// `Some(None)` clears the parent.
    pub parent: Option<Option<Id>>,
    pub labels: Option<Labels>,
}

pub const PARTY_UPDATABLE: &[&str] = &["display_name", "kind", "parent", "labels"];
pub const PARTY_OUTPUT_ONLY: &[&str] = &["name", "etag", "create_time", "update_time"];

impl Party {
    /// A new party; `kind` is required.
    pub fn new(
        tenant: &Id,
        id: Id,
        fields: PartyFields,
        now: DateTime<Utc>,
        v: &mut Violations,
        prefix: &str,
    ) -> Option<Self> {
        let Some(kind) = fields.kind else {
            v.add(format!("{prefix}.kind"), "is required");
            return None;
        };
        let mut party = Party {
            tenant: tenant.clone(),
            id,
            display_name: String::new(),
            kind,
            parent: None,
            labels: Labels::new(),
            meta: Meta::new(now),
        };
        party.apply(fields);
        Some(party)
    }

    pub fn name(&self) -> String {
        party_name(&self.tenant, &self.id)
    }

    pub fn apply(&mut self, fields: PartyFields) {
        if let Some(d) = fields.display_name {
            self.display_name = d;
        }
        if let Some(k) = fields.kind {
            self.kind = k;
        }
        if let Some(p) = fields.parent {
            self.parent = p;
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
        if self.parent.as_ref() == Some(&self.id) {
            v.add(
                format!("{prefix}.parent"),
                "a party cannot be its own parent",
            );
        }
    }
}
