//! Resource ids and names (AIP-122). Ids are client-chosen, lowercase
//! `[a-z][a-z0-9-]{0,62}`; names are parsed once at the edge into typed values.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::fields::too_long;
use crate::error::FieldViolation;

/// The longest resource name a request may carry; the longest valid one (an
/// override's) is 220 characters.
pub const MAX_NAME_CHARS: usize = 256;

/// A validated resource id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    pub const MAX_LEN: usize = 63;

    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        if is_valid_id(value) {
            Ok(Id(value.to_string()))
        } else if value.is_empty() {
            Err(FieldViolation::new(field, "is required"))
        } else if value.chars().count() > Id::MAX_LEN {
            let chars = value.chars().count();
            Err(FieldViolation::new(field, too_long(Id::MAX_LEN, chars)))
        } else {
            Err(FieldViolation::new(
                field,
                format!("`{value}` is not a valid id: use lowercase [a-z][a-z0-9-]{{0,62}}"),
            ))
        }
    }

    /// An id the server made up itself (revision ids), trusted without parsing.
    pub fn generated(value: String) -> Self {
        debug_assert!(is_valid_id(&value));
        Id(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_valid_id(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= Id::MAX_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The collections of the resource model, as they appear in names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    Parties,
    Services,
    Agreements,
}

impl Collection {
    pub fn segment(self) -> &'static str {
        match self {
            Collection::Parties => "parties",
            Collection::Services => "services",
            Collection::Agreements => "agreements",
        }
    }
}

/// Splits `tenants/{t}/{collection}/{id}[/{sub}/{id}]` into its ids, checking
/// every literal segment. `pattern` lists the literal segments in order.
fn parse_segments(field: &str, value: &str, pattern: &[&str]) -> Result<Vec<Id>, FieldViolation> {
    let chars = value.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(FieldViolation::new(field, too_long(MAX_NAME_CHARS, chars)));
    }
    let expected = || {
        let shape: Vec<String> = pattern.iter().map(|p| format!("{p}/{{id}}")).collect();
        FieldViolation::new(
            field,
            if value.is_empty() {
                format!("is required: expected `{}`", shape.join("/"))
            } else {
                format!(
                    "`{value}` is not a valid name: expected `{}`",
                    shape.join("/")
                )
            },
        )
    };
    let parts: Vec<&str> = value.split('/').collect();
    if parts.len() != pattern.len() * 2 {
        return Err(expected());
    }
    let mut ids = Vec::with_capacity(pattern.len());
    for (pair, literal) in parts.chunks(2).zip(pattern) {
        if pair[0] != *literal || !is_valid_id(pair[1]) {
            return Err(expected());
        }
        ids.push(Id(pair[1].to_string()));
    }
    Ok(ids)
}

/// `tenants/{tenant}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName(pub Id);

impl TenantName {
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        let mut ids = parse_segments(field, value, &["tenants"])?;
        Ok(TenantName(ids.remove(0)))
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tenants/{}", self.0)
    }
}

/// `tenants/{tenant}/{collection}/{id}`: a party, service or agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceName {
    pub tenant: Id,
    pub collection: Collection,
    pub id: Id,
}

impl ResourceName {
    pub fn new(tenant: &Id, collection: Collection, id: &Id) -> Self {
        Self {
            tenant: tenant.clone(),
            collection,
            id: id.clone(),
        }
    }

    pub fn parse(field: &str, value: &str, collection: Collection) -> Result<Self, FieldViolation> {
        let mut ids = parse_segments(field, value, &["tenants", collection.segment()])?;
        let id = ids.pop().expect("two segments");
        let tenant = ids.pop().expect("two segments");
        Ok(Self {
            tenant,
            collection,
            id,
        })
    }

    /// Parses a reference that must live in `tenant`: a name in another tenant is
    /// rejected like a malformed one, so it reveals nothing about that tenant.
    pub fn parse_in(
        field: &str,
        value: &str,
        collection: Collection,
        tenant: &Id,
    ) -> Result<Id, FieldViolation> {
        let name = Self::parse(field, value, collection)?;
        if &name.tenant != tenant {
            return Err(FieldViolation::new(
                field,
                format!("`{value}` is not in tenants/{tenant}"),
            ));
        }
        Ok(name.id)
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tenants/{}/{}/{}",
            self.tenant,
            self.collection.segment(),
            self.id
        )
    }
}

/// Below an agreement: `tenants/{t}/agreements/{a}/{revisions|overrides}/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementChildName {
    pub tenant: Id,
    pub agreement: Id,
    pub id: Id,
}

impl AgreementChildName {
    pub fn parse(field: &str, value: &str, child: &str) -> Result<Self, FieldViolation> {
        let mut ids = parse_segments(field, value, &["tenants", "agreements", child])?;
        let id = ids.pop().expect("three segments");
        let agreement = ids.pop().expect("three segments");
        let tenant = ids.pop().expect("three segments");
        Ok(Self {
            tenant,
            agreement,
            id,
        })
    }
}

/// `tenants/{tenant}/apiKeys/{key}`, as (tenant, key).
pub fn parse_api_key_name(field: &str, value: &str) -> Result<(Id, Id), FieldViolation> {
    let mut ids = parse_segments(field, value, &["tenants", "apiKeys"])?;
    let key = ids.pop().expect("two segments");
    let tenant = ids.pop().expect("two segments");
    Ok((tenant, key))
}

/// A server-made id of `len` (at most `Id::MAX_LEN`) random characters, for
/// revisions and audit events: 36^(len-1) possibilities.
pub fn random_id(len: usize) -> Id {
    use rand::Rng;
    const FIRST: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    const REST: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut id = String::with_capacity(len);
    id.push(FIRST[rng.random_range(0..FIRST.len())] as char);
    for _ in 1..len {
        id.push(REST[rng.random_range(0..REST.len())] as char);
    }
    Id::generated(id)
}

pub fn audit_event_name(tenant: &Id, id: &Id) -> String {
    format!("tenants/{tenant}/auditEvents/{id}")
}

pub fn api_key_name(tenant: &Id, id: &Id) -> String {
    format!("tenants/{tenant}/apiKeys/{id}")
}

pub fn party_name(tenant: &Id, id: &Id) -> String {
    format!("tenants/{tenant}/parties/{id}")
}

pub fn service_name(tenant: &Id, id: &Id) -> String {
    format!("tenants/{tenant}/services/{id}")
}

pub fn agreement_name(tenant: &Id, id: &Id) -> String {
    format!("tenants/{tenant}/agreements/{id}")
}

pub fn override_name(tenant: &Id, agreement: &Id, id: &Id) -> String {
    format!("tenants/{tenant}/agreements/{agreement}/overrides/{id}")
}

pub fn revision_name(tenant: &Id, agreement: &Id, id: &Id) -> String {
    format!("tenants/{tenant}/agreements/{agreement}/revisions/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lowercase_and_start_with_a_letter() {
        assert!(Id::parse("f", "acme").is_ok());
        assert!(Id::parse("f", "a-1").is_ok());
        assert!(Id::parse("f", &"a".repeat(63)).is_ok());
        for bad in ["", "1abc", "Acme", "a_b", "a/b", &"a".repeat(64)] {
            let err = Id::parse("f", bad).unwrap_err();
            assert_eq!(err.field, "f");
        }
    }

    #[test]
    fn overlong_ids_and_names_are_refused_without_being_repeated() {
        let huge = "a".repeat(100_000);
        let err = Id::parse("f", &huge).unwrap_err();
        assert_eq!(err.description, "must be at most 63 characters, not 100000");
        let name = format!("tenants/t/parties/{huge}");
        let err = ResourceName::parse("n", &name, Collection::Parties).unwrap_err();
        assert!(err.description.len() < 100, "{}", err.description);
        let longest = format!("tenants/{0}/agreements/{0}/overrides/{0}", "a".repeat(63));
        assert!(longest.len() <= MAX_NAME_CHARS);
        assert!(AgreementChildName::parse("n", &longest, "overrides").is_ok());
    }

    #[test]
    fn resource_names_check_every_segment() {
        let name = ResourceName::parse("n", "tenants/t/parties/p", Collection::Parties).unwrap();
        assert_eq!(name.to_string(), "tenants/t/parties/p");
        for bad in [
            "tenants/t/services/p",
            "tenants/t/parties",
            "tenants/t/parties/p/x",
            "tenant/t/parties/p",
            "tenants/T/parties/p",
        ] {
            assert!(
                ResourceName::parse("n", bad, Collection::Parties).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn references_into_another_tenant_are_rejected() {
        let t = Id::parse("t", "a").unwrap();
        let err = ResourceName::parse_in("p", "tenants/b/parties/x", Collection::Parties, &t)
            .unwrap_err();
        assert_eq!(err.field, "p");
    }

    #[test]
    fn api_key_names_parse() {
        let (t, k) = parse_api_key_name("n", "tenants/acme/apiKeys/ci").unwrap();
        assert_eq!((t.as_str(), k.as_str()), ("acme", "ci"));
        assert_eq!(api_key_name(&t, &k), "tenants/acme/apiKeys/ci");
        assert!(parse_api_key_name("n", "tenants/acme/keys/ci").is_err());
    }

    #[test]
    fn child_names_parse() {
        let n = AgreementChildName::parse("n", "tenants/t/agreements/a/overrides/o", "overrides")
            .unwrap();
        assert_eq!(
            (n.tenant.as_str(), n.agreement.as_str(), n.id.as_str()),
            ("t", "a", "o")
        );
        assert!(
            AgreementChildName::parse("n", "tenants/t/agreements/a/revisions/o", "overrides")
                .is_err()
        );
    }
}
