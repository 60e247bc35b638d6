//! Agreements and their revisions: the contract types, the rules they must
//! satisfy on their own, and the lifecycle DRAFT -> ACTIVE -> TERMINATED /
//! EXPIRED. Rules that need other resources (references, overlap) are checked
//! by the registry inside the writing transaction.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::fields::{
    Labels, MAX_DISPLAY_NAME_CHARS, Meta, validate_annotations, validate_count, validate_labels,
    validate_text,
};
use crate::domain::names::{Id, agreement_name, revision_name};
use crate::domain::terms::{
    Clause, CreditSchedule, Exclusion, Objective, SupportTerms, validate_clause, validate_credits,
    validate_exclusion, validate_objectives, validate_support,
};
use crate::error::Violations;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgreementKind {
    ServiceLevel,
    Customer,
    Internal,
    Operational,
    Underpinning,
}

impl AgreementKind {
    pub const ALL: &'static [(&'static str, AgreementKind)] = &[
        ("SERVICE_LEVEL", AgreementKind::ServiceLevel),
        ("CUSTOMER", AgreementKind::Customer),
        ("INTERNAL", AgreementKind::Internal),
        ("OPERATIONAL", AgreementKind::Operational),
        ("UNDERPINNING", AgreementKind::Underpinning),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .expect("every kind is listed")
    }

    /// The kinds whose agreements count in entitlement resolution: the
    /// service-based base and the consumer agreements layered on it. OLAs
    /// and UCs back other agreements; they entitle no one.
    pub const RESOLVED: &'static [AgreementKind] = &[
        AgreementKind::ServiceLevel,
        AgreementKind::Customer,
        AgreementKind::Internal,
    ];

    /// Whether agreements of this kind count in entitlement resolution.
    pub fn counts_in_resolution(self) -> bool {
        Self::RESOLVED.contains(&self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgreementState {
    Draft,
    Active,
    /// Never stored: an ACTIVE agreement whose validity has ended.
    Expired,
    Terminated,
}

impl AgreementState {
    pub const ALL: &'static [(&'static str, AgreementState)] = &[
        ("DRAFT", AgreementState::Draft),
        ("ACTIVE", AgreementState::Active),
        ("EXPIRED", AgreementState::Expired),
        ("TERMINATED", AgreementState::Terminated),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .expect("every state is listed")
    }

    /// How this state reads in what is stored, for filters the store runs:
    /// EXPIRED is never stored, it is an ACTIVE agreement whose validity has
    /// ended, and ACTIVE is one whose validity has not (`Agreement::state_at`).
    pub fn stored_condition(self) -> StoredState {
        match self {
            AgreementState::Active => StoredState {
                stored: AgreementState::Active,
                ended: Some(false),
            },
            AgreementState::Expired => StoredState {
                stored: AgreementState::Active,
                ended: Some(true),
            },
            state => StoredState {
                stored: state,
                ended: None,
            },
        }
    }
}

/// A state as stored columns: the stored `state`, and whether the validity
/// (`effective_until`) must have ended by now (`Some(true)`), must not have
/// (`Some(false)`), or does not matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredState {
    pub stored: AgreementState,
    pub ended: Option<bool>,
}

impl StoredState {
    /// Whether an agreement stored with `state` and validity ending at
    /// `until` matches at `now`: what the store's SQL must compute.
    pub fn matches(
        &self,
        state: AgreementState,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        let ended = until.is_some_and(|u| u <= now);
        state == self.stored && self.ended.is_none_or(|e| e == ended)
    }
}

/// The latest revision of an agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionRef {
    pub id: Id,
    pub create_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub tenant: Id,
    pub id: Id,
    pub display_name: String,
    pub description: String,
    pub kind: AgreementKind,
    pub provider: Id,
    pub consumer: Option<Id>,
    pub services: Vec<Id>,
    /// DRAFT, ACTIVE or TERMINATED; EXPIRED is derived (`state_at`).
    pub state: AgreementState,
    pub effective_from: DateTime<Utc>,
    pub effective_until: Option<DateTime<Utc>>,
    pub terminate_time: Option<DateTime<Utc>>,
    pub objectives: Vec<Objective>,
    pub support: Option<SupportTerms>,
    pub credits: Option<CreditSchedule>,
    pub exclusions: Vec<Exclusion>,
    pub clauses: Vec<Clause>,
    pub supports: Vec<Id>,
    pub labels: Labels,
    pub annotations: Labels,
    pub revision: Option<RevisionRef>,
    pub meta: Meta,
}

/// The client-settable fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AgreementFields {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub kind: Option<AgreementKind>,
    pub provider: Option<Id>,
    pub consumer: Option<Option<Id>>,
    pub services: Option<Vec<Id>>,
    pub effective_from: Option<DateTime<Utc>>,
    pub effective_until: Option<Option<DateTime<Utc>>>,
    pub objectives: Option<Vec<Objective>>,
    pub support: Option<Option<SupportTerms>>,
    pub credits: Option<Option<CreditSchedule>>,
    pub exclusions: Option<Vec<Exclusion>>,
    pub clauses: Option<Vec<Clause>>,
    pub supports: Option<Vec<Id>>,
    pub labels: Option<Labels>,
    pub annotations: Option<Labels>,
}

pub const AGREEMENT_UPDATABLE: &[&str] = &[
    "display_name",
    "description",
    "kind",
    "provider",
    "consumer",
    "services",
    "effective_from",
    "effective_until",
    "objectives",
    "support",
    "credits",
    "exclusions",
    "clauses",
    "supports",
    "labels",
    "annotations",
];
pub const AGREEMENT_OUTPUT_ONLY: &[&str] = &[
    "name",
    "state",
    "etag",
    "create_time",
    "update_time",
    "revision_id",
    "revision_create_time",
    "terminate_time",
];

impl Agreement {
    pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
    /// Far more than any one contract names; the API decodes no more.
    pub const MAX_SERVICES: usize = 1000;
    /// An OLA or UC backing more agreements than this should back their
    /// SERVICE_LEVEL agreement instead.
    pub const MAX_SUPPORTS: usize = 100;
    pub const MAX_EXCLUSIONS: usize = 100;
    pub const MAX_CLAUSES: usize = 100;
    /// The texts of all clauses together (about forty pages): each revision,
    /// audit event and entitlement carries them whole.
    pub const MAX_CLAUSE_TEXT_CHARS: usize = 131_072;

    /// A new DRAFT; `kind`, `provider` and `effective_from` are required.
    pub fn new(
        tenant: &Id,
        id: Id,
        fields: AgreementFields,
        now: DateTime<Utc>,
        v: &mut Violations,
        prefix: &str,
    ) -> Option<Self> {
        let mut missing = |field: &str| v.add(format!("{prefix}.{field}"), "is required");
        let kind = fields.kind.or_else(|| {
            missing("kind");
            None
        });
        let provider = fields.provider.clone().or_else(|| {
            missing("provider");
            None
        });
        let from = fields.effective_from.or_else(|| {
            missing("effective_from");
            None
        });
        let (kind, provider, effective_from) = (kind?, provider?, from?);
        let mut agreement = Agreement {
            tenant: tenant.clone(),
            id,
            display_name: String::new(),
            description: String::new(),
            kind,
            provider,
            consumer: None,
            services: Vec::new(),
            state: AgreementState::Draft,
            effective_from,
            effective_until: None,
            terminate_time: None,
            objectives: Vec::new(),
            support: None,
            credits: None,
            exclusions: Vec::new(),
            clauses: Vec::new(),
            supports: Vec::new(),
            labels: Labels::new(),
            annotations: Labels::new(),
            revision: None,
            meta: Meta::new(now),
        };
        agreement.apply(fields);
        Some(agreement)
    }

    pub fn name(&self) -> String {
        agreement_name(&self.tenant, &self.id)
    }

    /// The state as of `now`: an ACTIVE agreement past its validity is EXPIRED.
    pub fn state_at(&self, now: DateTime<Utc>) -> AgreementState {
        match (self.state, self.effective_until) {
            (AgreementState::Active, Some(until)) if until <= now => AgreementState::Expired,
            (state, _) => state,
        }
    }

    /// Where validity ends: `effective_until`, or the termination if earlier.
    pub fn effective_end(&self) -> Option<DateTime<Utc>> {
        match (self.effective_until, self.terminate_time) {
            (Some(u), Some(t)) => Some(u.min(t)),
            (u, t) => u.or(t),
        }
    }

    /// Whether the validity of two agreements shares an instant.
    pub fn overlaps(&self, other: &Agreement) -> bool {
        let before_end = |t: DateTime<Utc>, end: Option<DateTime<Utc>>| end.is_none_or(|e| t < e);
        before_end(self.effective_from, other.effective_end())
            && before_end(other.effective_from, self.effective_end())
    }

    pub fn apply(&mut self, f: AgreementFields) {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(value) = f.$field { self.$field = value; } )* };
        }
        set!(
            display_name,
            description,
            kind,
            provider,
            consumer,
            services,
            effective_from,
            effective_until,
            objectives,
            support,
            credits,
            exclusions,
            clauses,
            supports,
            labels,
            annotations
        );
    }

    /// The rules an agreement must satisfy on its own.
    pub fn validate(&self, v: &mut Violations, prefix: &str) {
        let field = |name: &str| format!("{prefix}.{name}");
        validate_text(
            v,
            &field("display_name"),
            &self.display_name,
            MAX_DISPLAY_NAME_CHARS,
        );
        validate_text(
            v,
            &field("description"),
            &self.description,
            Self::MAX_DESCRIPTION_CHARS,
        );
        match (self.kind, &self.consumer) {
            (AgreementKind::ServiceLevel, Some(_)) => v.add(
                field("consumer"),
                "must be empty for SERVICE_LEVEL agreements: they cover every consumer",
            ),
            (AgreementKind::ServiceLevel, None) => {}
            (_, None) => v.add(
                field("consumer"),
                "is required unless kind is SERVICE_LEVEL",
            ),
            (_, Some(consumer)) if *consumer == self.provider => {
                v.add(field("consumer"), "must differ from the provider")
            }
            _ => {}
        }
        if self.services.is_empty() {
            v.add(field("services"), "at least one service is required");
        }
        let services_fit = validate_count(
            v,
            &field("services"),
            self.services.len(),
            Self::MAX_SERVICES,
        );
        let mut seen = BTreeSet::new();
        for (i, s) in self.services.iter().enumerate().filter(|_| services_fit) {
            if !seen.insert(s) {
                v.add(format!("{prefix}.services[{i}]"), "is listed twice");
            }
        }
        if let Some(until) = self.effective_until
            && until <= self.effective_from
        {
            v.add(field("effective_until"), "must be after effective_from");
        }
        validate_objectives(v, &field("objectives"), &self.objectives, &BTreeSet::new());
        if let Some(s) = &self.support {
            validate_support(v, &field("support"), s);
        }
        if let Some(c) = &self.credits {
            validate_credits(v, &field("credits"), c);
        }
        if validate_count(
            v,
            &field("exclusions"),
            self.exclusions.len(),
            Self::MAX_EXCLUSIONS,
        ) {
            for (i, e) in self.exclusions.iter().enumerate() {
                validate_exclusion(v, &format!("{prefix}.exclusions[{i}]"), e);
            }
        }
        if validate_count(v, &field("clauses"), self.clauses.len(), Self::MAX_CLAUSES) {
            for (i, c) in self.clauses.iter().enumerate() {
                validate_clause(v, &format!("{prefix}.clauses[{i}]"), c);
            }
            let total: usize = self.clauses.iter().map(|c| c.text.chars().count()).sum();
            if total > Self::MAX_CLAUSE_TEXT_CHARS {
                v.add(
                    field("clauses"),
                    format!(
                        "texts must total at most {} characters, not {total}",
                        Self::MAX_CLAUSE_TEXT_CHARS
                    ),
                );
            }
        }
        let backs_others = matches!(
            self.kind,
            AgreementKind::Operational | AgreementKind::Underpinning
        );
        if !backs_others && !self.supports.is_empty() {
            v.add(
                field("supports"),
                "only OPERATIONAL and UNDERPINNING agreements support other agreements",
            );
        }
        let supports_fit = validate_count(
            v,
            &field("supports"),
            self.supports.len(),
            Self::MAX_SUPPORTS,
        );
        let mut seen = BTreeSet::new();
        for (i, s) in self.supports.iter().enumerate().filter(|_| supports_fit) {
            if *s == self.id {
                v.add(
                    format!("{prefix}.supports[{i}]"),
                    "an agreement cannot support itself",
                );
            } else if !seen.insert(s) {
                v.add(format!("{prefix}.supports[{i}]"), "is listed twice");
            }
        }
        validate_labels(v, &field("labels"), &self.labels);
        validate_annotations(v, &field("annotations"), &self.annotations);
    }
}

/// An immutable snapshot of an agreement (AIP-162).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub tenant: Id,
    pub agreement: Id,
    pub id: Id,
    /// 1 for the first revision, then one more for each.
    pub seq: i64,
    pub create_time: DateTime<Utc>,
    pub snapshot: Agreement,
}

impl Revision {
    pub fn name(&self) -> String {
        revision_name(&self.tenant, &self.agreement, &self.id)
    }
}

/// Eight random characters, `[a-z][a-z0-9]{7}`, as AIP-162 suggests.
pub fn new_revision_id() -> Id {
    crate::domain::names::random_id(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn agreement(from: i64, until: Option<i64>) -> Agreement {
        let t = |d| Utc.timestamp_opt(d * 86_400, 0).unwrap();
        let mut v = Violations::new();
        let id = Id::parse("i", "a").unwrap();
        let mut a = Agreement::new(
            &id,
            id.clone(),
            AgreementFields {
                kind: Some(AgreementKind::ServiceLevel),
                provider: Some(id.clone()),
                effective_from: Some(t(from)),
                effective_until: Some(until.map(t)),
                ..Default::default()
            },
            Utc::now(),
            &mut v,
            "a",
        )
        .unwrap();
        a.state = AgreementState::Active;
        a
    }

    #[test]
    fn validity_windows_overlap_when_they_share_an_instant() {
        assert!(agreement(0, Some(10)).overlaps(&agreement(5, None)));
        assert!(agreement(0, None).overlaps(&agreement(100, Some(200))));
        assert!(!agreement(0, Some(10)).overlaps(&agreement(10, Some(20))));
        assert!(!agreement(10, Some(20)).overlaps(&agreement(0, Some(10))));
    }

    #[test]
    fn active_agreements_expire_when_validity_ends() {
        let a = agreement(0, Some(1));
        assert_eq!(a.state_at(Utc::now()), AgreementState::Expired);
        assert_eq!(
            agreement(0, None).state_at(Utc::now()),
            AgreementState::Active
        );
    }

    #[test]
    fn stored_conditions_agree_with_state_at() {
        let now = Utc::now();
        let mut cases = Vec::new();
        for stored in [
            AgreementState::Draft,
            AgreementState::Active,
            AgreementState::Terminated,
        ] {
            for until in [None, Some(1), Some(1_000_000)] {
                let mut a = agreement(0, until);
                a.state = stored;
                cases.push(a);
            }
        }
        for (_, filter) in AgreementState::ALL {
            let condition = filter.stored_condition();
            for a in &cases {
                assert_eq!(
                    condition.matches(a.state, a.effective_end(), now),
                    a.state_at(now) == *filter,
                    "{filter:?} on {:?} until {:?}",
                    a.state,
                    a.effective_until
                );
            }
        }
    }

    #[test]
    fn only_service_level_and_consumer_agreements_count_in_resolution() {
        let counted: Vec<_> = AgreementKind::ALL
            .iter()
            .filter(|(_, k)| k.counts_in_resolution())
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(counted, ["SERVICE_LEVEL", "CUSTOMER", "INTERNAL"]);
    }

    #[test]
    fn termination_shortens_validity() {
        let mut a = agreement(0, Some(10));
        a.terminate_time = Some(Utc.timestamp_opt(5 * 86_400, 0).unwrap());
        assert_eq!(a.effective_end(), a.terminate_time);
    }

    #[test]
    fn revision_ids_are_valid_ids() {
        for _ in 0..100 {
            let id = new_revision_id();
            assert_eq!(id.as_str().len(), 8);
            assert!(Id::parse("r", id.as_str()).is_ok());
        }
    }

    #[test]
    fn clause_texts_have_a_total() {
        let mut a = agreement(0, None);
        a.services = vec![Id::parse("s", "payments").unwrap()];
        let clause = |text: usize| Clause {
            kind: crate::domain::terms::ClauseKind::Other,
            title: "Terms".into(),
            text: "x".repeat(text),
            amount: None,
        };
        let full = Agreement::MAX_CLAUSE_TEXT_CHARS / Clause::MAX_TEXT_CHARS;
        a.clauses = vec![clause(Clause::MAX_TEXT_CHARS); full];
        let mut v = Violations::new();
        a.validate(&mut v, "a");
        assert!(v.is_empty());
        a.clauses.push(clause(1));
        let mut v = Violations::new();
        a.validate(&mut v, "a");
        let err = v.into_result().unwrap_err();
        assert!(
            matches!(&err, crate::error::Error::InvalidArgument(list) if list.len() == 1 && list[0].field == "a.clauses"),
            "{err}"
        );
    }
}
