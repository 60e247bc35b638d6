//! Parties: who signs agreements. A party's parent must exist in the same
//! tenant, must not make a cycle, and trees are at most `Party::MAX_DEPTH`
//! deep (`Party::check_ancestry`); a party in use is not deleted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::fields::{
    Labels, Meta, check_unreferenced, updatable_fields, validate_display_name, validate_labels,
};
use crate::domain::names::{Id, party_name};
use crate::error::{Error, Result, Violations};

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

updatable_fields! {
    /// The client-settable fields of a party.
    pub struct PartyFields for Party {
        display_name: String,
        kind: PartyKind,
        /// `Some(None)` clears the parent.
        parent: Option<Id>,
        labels: Labels,
    }
    output_only: ["name", "etag", "create_time", "update_time"]
}

impl Party {
    /// Party trees deeper than this are refused, which also bounds every walk
    /// up a tree (the store's ancestry reads, the cycle check).
    pub const MAX_DEPTH: usize = 64;

    /// A new party, checked (`validate`); `kind` is required.
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
        party.validate(v, prefix);
        Some(party)
    }

    pub fn name(&self) -> String {
        party_name(&self.tenant, &self.id)
    }

    /// The party tree rule, for this party under its (new) parent: the parent
    /// must exist, must not have this party among its ancestors, and the tree
    /// stays at most `MAX_DEPTH` deep. `ancestry` is the parent and its
    /// ancestors, nearest first, as read: up to the root, up to a party that
    /// does not exist or to this party itself, or `MAX_DEPTH + 1` of them.
    pub fn check_ancestry(&self, ancestry: &[Party]) -> Result<()> {
        let Some(parent) = &self.parent else {
            return Ok(());
        };
        let invalid = |why: String| Err(Error::invalid("party.parent", why));
        for (depth, ancestor) in (1..).zip(ancestry) {
            if ancestor.parent.as_ref() == Some(&self.id) {
                return invalid(format!(
                    "{} is a descendant of {}: the parent would make a cycle",
                    party_name(&self.tenant, parent),
                    self.name()
                ));
            }
            if depth > Self::MAX_DEPTH {
                return invalid(format!(
                    "party trees are at most {} levels deep",
                    Self::MAX_DEPTH
                ));
            }
        }
        // Where the walk stopped with a parent still to read, that party does
        // not exist (only the direct parent can be missing: stored parents
        // exist).
        match ancestry.last().map_or(&self.parent, |a| &a.parent) {
            Some(missing) => invalid(format!(
                "{} does not exist",
                party_name(&self.tenant, missing)
            )),
            None => Ok(()),
        }
    }

    /// A party that agreements, services, overrides or child parties
    /// (`users`, some of them) still name is not deleted.
    pub fn check_deletable(&self, users: &[String]) -> Result<()> {
        check_unreferenced(&self.name(), "is still used by", users)
    }

    pub fn validate(&self, v: &mut Violations, prefix: &str) {
        validate_display_name(v, &format!("{prefix}.display_name"), &self.display_name);
        validate_labels(v, &format!("{prefix}.labels"), &self.labels);
        if self.parent.as_ref() == Some(&self.id) {
            v.add(
                format!("{prefix}.parent"),
                "a party cannot be its own parent",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn party(id: &str, parent: Option<&str>) -> Party {
        let id_of = |s: &str| Id::parse("id", s).unwrap();
        Party {
            tenant: id_of("t"),
            id: id_of(id),
            display_name: String::new(),
            kind: PartyKind::Customer,
            parent: parent.map(id_of),
            labels: Labels::new(),
            meta: Meta::new(Utc::now()),
        }
    }

    fn why(result: Result<()>) -> String {
        match result {
            Err(Error::InvalidArgument(list)) if list[0].field == "party.parent" => {
                list[0].description.clone()
            }
            other => panic!("expected party.parent to be refused, got {other:?}"),
        }
    }

    #[test]
    fn a_parent_in_a_tree_of_existing_parties_is_accepted() {
        let dept = party("dept", Some("bank"));
        assert!(
            dept.check_ancestry(&[party("bank", Some("group")), party("group", None)])
                .is_ok()
        );
        assert!(party("root", None).check_ancestry(&[]).is_ok());
    }

    #[test]
    fn a_missing_parent_is_named() {
        let dept = party("dept", Some("bank"));
        assert_eq!(
            why(dept.check_ancestry(&[])),
            "tenants/t/parties/bank does not exist"
        );
    }

    #[test]
    fn a_parent_below_the_party_would_make_a_cycle() {
        // bank -> dept is stored; now bank asks for dept as its parent.
        let bank = party("bank", Some("dept"));
        let message = why(bank.check_ancestry(&[party("dept", Some("bank"))]));
        assert!(
            message.ends_with("the parent would make a cycle"),
            "{message}"
        );
    }

    #[test]
    fn trees_are_at_most_max_depth_deep() {
        let chain = |n: usize| -> Vec<Party> {
            (0..n)
                .map(|i| {
                    let parent = (i + 1 < n).then(|| format!("p{}", i + 1));
                    party(&format!("p{i}"), parent.as_deref())
                })
                .collect()
        };
        let leaf = party("leaf", Some("p0"));
        assert!(leaf.check_ancestry(&chain(Party::MAX_DEPTH)).is_ok());
        let message = why(leaf.check_ancestry(&chain(Party::MAX_DEPTH + 1)));
        assert!(message.contains("at most 64 levels deep"), "{message}");
    }

    #[test]
    fn a_party_in_use_is_not_deletable() {
        let bank = party("bank", None);
        assert!(bank.check_deletable(&[]).is_ok());
        let refused = bank.check_deletable(&["tenants/t/agreements/gold".into()]);
        assert!(
            matches!(&refused, Err(Error::FailedPrecondition { message, .. })
                if message == "tenants/t/parties/bank is still used by tenants/t/agreements/gold"),
            "{refused:?}"
        );
    }
}
