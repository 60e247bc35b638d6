//! Agreements and their revisions: the contract types, the rules they must
//! satisfy on their own, and the lifecycle DRAFT -> ACTIVE -> TERMINATED /
//! EXPIRED with what each state allows (`AgreementAction`). Rules that need
//! other resources are pure functions of what the service read for them
//! (`check_references`, `check_no_overlap`), called inside the writing
//! transaction.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::fields::{
    Labels, Meta, check_unreferenced, updatable_fields, validate_annotations, validate_count,
    validate_display_name, validate_labels, validate_text,
};
use crate::domain::names::{Id, agreement_name, party_name, revision_name, service_name};
use crate::domain::party::{Party, PartyKind};
use crate::domain::terms::{
    Clause, CreditSchedule, Exclusion, Objective, SupportTerms, validate_clause, validate_credits,
    validate_exclusion, validate_objectives, validate_support,
};
use crate::error::{Error, Precondition, Result, Violations};

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

    /// SERVICE_LEVEL agreements exclude each other: at most one may be in
    /// force for a service at any instant (`Agreement::check_no_overlap`).
    pub fn excludes_overlap(self) -> bool {
        self == AgreementKind::ServiceLevel
    }

    /// Overrides patch SERVICE_LEVEL agreements only: one consumer's changes
    /// to what a service gives every consumer.
    pub fn takes_overrides(self) -> bool {
        self == AgreementKind::ServiceLevel
    }
}

/// What may be done to an agreement once created, each allowed in some states
/// only, as of now: an ACTIVE agreement past its validity is EXPIRED, and an
/// EXPIRED or TERMINATED one is closed to every action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgreementAction {
    /// Change its fields (a published one gets a new revision).
    Update,
    /// DRAFT -> ACTIVE, with its first revision.
    Publish,
    /// ACTIVE -> TERMINATED, from a given instant.
    Terminate,
    /// Add, change or remove one of its overrides.
    Override,
}

impl AgreementAction {
    /// The states (as of now) an agreement must be in for the action.
    pub fn allowed_states(self) -> &'static [AgreementState] {
        match self {
            AgreementAction::Update | AgreementAction::Override => {
                &[AgreementState::Draft, AgreementState::Active]
            }
            AgreementAction::Publish => &[AgreementState::Draft],
            AgreementAction::Terminate => &[AgreementState::Active],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgreementAction::Update => "update",
            AgreementAction::Publish => "publish",
            AgreementAction::Terminate => "terminate",
            AgreementAction::Override => "override",
        }
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

updatable_fields! {
    /// The client-settable fields of an agreement.
    pub struct AgreementFields for Agreement {
        display_name: String,
        description: String,
        kind: AgreementKind,
        provider: Id,
        consumer: Option<Id>,
        services: Vec<Id>,
        effective_from: DateTime<Utc>,
        effective_until: Option<DateTime<Utc>>,
        objectives: Vec<Objective>,
        support: Option<SupportTerms>,
        credits: Option<CreditSchedule>,
        exclusions: Vec<Exclusion>,
        clauses: Vec<Clause>,
        supports: Vec<Id>,
        labels: Labels,
        annotations: Labels,
    }
    output_only: [
        "name",
        "state",
        "etag",
        "create_time",
        "update_time",
        "revision_id",
        "revision_create_time",
        "terminate_time",
    ]
}

/// What an agreement names, as found in its tenant when it is written.
#[derive(Debug, Clone, Default)]
pub struct Referenced {
    /// The provider party, if it exists.
    pub provider: Option<Party>,
    /// The consumer party, if the agreement names one and it exists.
    pub consumer: Option<Party>,
    /// Those of the agreement's services that exist.
    pub services: BTreeSet<Id>,
    /// Those of the agreements it supports that exist.
    pub supports: BTreeSet<Id>,
}

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

    /// A new DRAFT, checked (`validate`); `kind`, `provider` and
    /// `effective_from` are required.
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
        agreement.validate(v, prefix);
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

    /// The lifecycle: `action` is allowed only in its states, as of `now`.
    pub fn check_action(&self, action: AgreementAction, now: DateTime<Utc>) -> Result<()> {
        let state = self.state_at(now);
        if action.allowed_states().contains(&state) {
            Ok(())
        } else {
            Err(Error::precondition(
                Precondition::AgreementState,
                format!(
                    "cannot {} {}: it is {}",
                    action.as_str(),
                    self.name(),
                    state.as_str()
                ),
            ))
        }
    }

    /// A DRAFT can be published while its validity has not ended and once it
    /// has objectives. (That it overlaps no other in force is checked against
    /// what is published: `check_no_overlap`.)
    pub fn check_publishable(&self, now: DateTime<Utc>) -> Result<()> {
        self.check_action(AgreementAction::Publish, now)?;
        let cannot = |why: String| {
            Err(Error::precondition(
                Precondition::AgreementState,
                format!("cannot publish {}: {why}", self.name()),
            ))
        };
        if let Some(until) = self.effective_until
            && until <= now
        {
            return cannot(format!("its validity ended at {until}"));
        }
        if self.objectives.is_empty() {
            return cannot("it has no objectives".into());
        }
        Ok(())
    }

    /// DRAFT -> ACTIVE, as of `now`. The service records its first revision.
    pub fn publish(&mut self, now: DateTime<Utc>) {
        self.state = AgreementState::Active;
        self.meta.touch(now);
    }

    /// An ACTIVE agreement can be terminated from `at` on, but not from
    /// before its validity began.
    pub fn check_terminable(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
        self.check_action(AgreementAction::Terminate, now)?;
        if at < self.effective_from {
            return Err(Error::invalid(
                "terminate_time",
                "must not be before the agreement's effective_from",
            ));
        }
        Ok(())
    }

    /// ACTIVE -> TERMINATED from `at`, as of `now`: its validity ends at `at`
    /// if that is earlier (`effective_end`).
    pub fn terminate(&mut self, at: DateTime<Utc>, now: DateTime<Utc>) {
        self.state = AgreementState::Terminated;
        self.terminate_time = Some(at);
        self.meta.touch(now);
    }

    /// An override must target a SERVICE_LEVEL agreement that is still open
    /// to change (DRAFT or ACTIVE).
    pub fn check_overridable(&self, now: DateTime<Utc>) -> Result<()> {
        if !self.kind.takes_overrides() {
            return Err(Error::precondition(
                Precondition::AgreementState,
                format!(
                    "{} is a {} agreement: overrides apply to SERVICE_LEVEL agreements",
                    self.name(),
                    self.kind.as_str()
                ),
            ));
        }
        self.check_action(AgreementAction::Override, now)
    }

    /// Only a never-published draft can be deleted (a published agreement's
    /// revisions are kept: it is terminated instead), and not while OLAs or
    /// UCs (`supporters`, some of them) support it.
    pub fn check_deletable(&self, supporters: &[String]) -> Result<()> {
        if self.revision.is_some() {
            return Err(Error::precondition(
                Precondition::AgreementState,
                format!(
                    "{} has been published and its revisions are kept: terminate it instead",
                    self.name()
                ),
            ));
        }
        check_unreferenced(&self.name(), "is supported by", supporters)
    }

    /// The agreement with `fields` applied, for an update at `now`, or `None`
    /// when the update changes nothing (so no new etag, and no revision that
    /// repeats the last). Only DRAFT and ACTIVE agreements are updated; the
    /// kind is fixed once published; the result must be valid. An ACTIVE
    /// agreement's update records a new revision.
    pub fn updated(&self, fields: AgreementFields, now: DateTime<Utc>) -> Result<Option<Self>> {
        self.check_action(AgreementAction::Update, now)?;
        let mut after = self.clone();
        after.apply(fields);
        if after == *self {
            return Ok(None);
        }
        let mut v = Violations::new();
        if self.state == AgreementState::Active && after.kind != self.kind {
            v.add(
                "agreement.kind",
                "cannot change once the agreement is published",
            );
        }
        after.validate(&mut v, "agreement");
        v.into_result()?;
        Ok(Some(after))
    }

    /// Parties, services and supported agreements must exist in the tenant
    /// (`found`, as read), and the parties must fit the kind: the provider of
    /// an UNDERPINNING contract is a SUPPLIER, the consumer of an INTERNAL
    /// agreement an INTERNAL_UNIT.
    pub fn check_references(&self, found: &Referenced) -> Result<()> {
        let mut v = Violations::new();
        let tenant = &self.tenant;
        match &found.provider {
            None => v.add(
                "agreement.provider",
                format!("{} does not exist", party_name(tenant, &self.provider)),
            ),
            Some(p)
                if self.kind == AgreementKind::Underpinning && p.kind != PartyKind::Supplier =>
            {
                v.add(
                    "agreement.provider",
                    "the provider of an UNDERPINNING contract must be a SUPPLIER party",
                )
            }
            Some(_) => {}
        }
        if let Some(consumer) = &self.consumer {
            match &found.consumer {
                None => v.add(
                    "agreement.consumer",
                    format!("{} does not exist", party_name(tenant, consumer)),
                ),
                Some(p)
                    if self.kind == AgreementKind::Internal
                        && p.kind != PartyKind::InternalUnit =>
                {
                    v.add(
                        "agreement.consumer",
                        "the consumer of an INTERNAL agreement must be an INTERNAL_UNIT party",
                    )
                }
                Some(_) => {}
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            if !found.services.contains(s) {
                v.add(
                    format!("agreement.services[{i}]"),
                    format!("{} does not exist", service_name(tenant, s)),
                );
            }
        }
        for (i, s) in self.supports.iter().enumerate() {
            if !found.supports.contains(s) {
                v.add(
                    format!("agreement.supports[{i}]"),
                    format!("{} does not exist", agreement_name(tenant, s)),
                );
            }
        }
        v.into_result()
    }

    /// At most one agreement of an exclusive kind may be in force for a
    /// service at any instant: `others` are the published agreements of this
    /// kind that cover one of its services.
    pub fn check_no_overlap(&self, others: &[Agreement]) -> Result<()> {
        if !self.kind.excludes_overlap() {
            return Ok(());
        }
        match others.iter().find(|o| o.id != self.id && o.overlaps(self)) {
            Some(other) => Err(Error::precondition(
                Precondition::OverlappingAgreement,
                format!(
                    "{} is already in force for a service of {} during its validity",
                    other.name(),
                    self.name()
                ),
            )),
            None => Ok(()),
        }
    }

    /// Records a revision: an immutable snapshot of the agreement as it now
    /// stands, the `seq`-th, which the agreement then points at.
    pub fn new_revision(&mut self, seq: i64, now: DateTime<Utc>) -> Revision {
        let id = new_revision_id();
        self.revision = Some(RevisionRef {
            id: id.clone(),
            create_time: now,
        });
        Revision {
            tenant: self.tenant.clone(),
            agreement: self.id.clone(),
            id,
            seq,
            create_time: now,
            snapshot: self.clone(),
        }
    }

    /// The rules an agreement must satisfy on its own.
    pub fn validate(&self, v: &mut Violations, prefix: &str) {
        let field = |name: &str| format!("{prefix}.{name}");
        validate_display_name(v, &field("display_name"), &self.display_name);
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

    fn objective() -> Objective {
        Objective {
            key: "availability".into(),
            display_name: String::new(),
            indicator: "requests".into(),
            kind: crate::domain::terms::ObjectiveKind::Ratio,
            target: 0.999,
            threshold: None,
            comparison: None,
            window: Some(crate::domain::terms::Window::Rolling {
                seconds: 30 * 86_400,
            }),
            slice_seconds: None,
        }
    }

    fn draft() -> Agreement {
        let mut a = agreement(0, None);
        a.state = AgreementState::Draft;
        a.services = vec![Id::parse("s", "payments").unwrap()];
        a.objectives = vec![objective()];
        a
    }

    fn precondition(result: Result<()>) -> (Precondition, String) {
        match result {
            Err(Error::FailedPrecondition { reason, message }) => (reason, message),
            other => panic!("expected a failed precondition, got {other:?}"),
        }
    }

    fn violated_fields(result: Result<impl std::fmt::Debug>) -> Vec<String> {
        match result {
            Err(Error::InvalidArgument(list)) => list.into_iter().map(|f| f.field).collect(),
            other => panic!("expected invalid arguments, got {other:?}"),
        }
    }

    #[test]
    fn each_action_is_allowed_in_its_states_only_and_expired_agreements_are_closed() {
        use AgreementAction::*;
        let now = Utc::now();
        let mut a = draft();
        assert!(a.check_action(Publish, now).is_ok());
        assert!(a.check_action(Update, now).is_ok());
        assert!(a.check_action(Override, now).is_ok());
        let (reason, message) = precondition(a.check_action(Terminate, now));
        assert_eq!(reason, Precondition::AgreementState);
        assert_eq!(
            message,
            "cannot terminate tenants/a/agreements/a: it is DRAFT"
        );
        a.state = AgreementState::Active;
        for action in [Update, Override, Terminate] {
            assert!(a.check_action(action, now).is_ok(), "{action:?}");
        }
        assert!(a.check_action(Publish, now).is_err());
        let expired = agreement(0, Some(1));
        for action in [Update, Override, Terminate, Publish] {
            assert!(expired.check_action(action, now).is_err(), "{action:?}");
        }
    }

    #[test]
    fn a_draft_is_publishable_with_objectives_and_a_validity_not_ended() {
        let now = Utc::now();
        assert!(draft().check_publishable(now).is_ok());
        let mut empty = draft();
        empty.objectives.clear();
        let (_, message) = precondition(empty.check_publishable(now));
        assert!(message.ends_with("it has no objectives"), "{message}");
        let mut ended = draft();
        ended.effective_until = Some(Utc.timestamp_opt(86_400, 0).unwrap());
        let (_, message) = precondition(ended.check_publishable(now));
        assert!(message.contains("its validity ended"), "{message}");
        let mut published = draft();
        published.publish(now);
        assert_eq!(published.state, AgreementState::Active);
        assert!(published.check_publishable(now).is_err());
    }

    #[test]
    fn an_override_must_target_a_service_level_agreement_open_to_change() {
        let now = Utc::now();
        assert!(draft().check_overridable(now).is_ok());
        let mut customer = draft();
        customer.kind = AgreementKind::Customer;
        let (reason, message) = precondition(customer.check_overridable(now));
        assert_eq!(reason, Precondition::AgreementState);
        assert!(
            message
                .ends_with("is a CUSTOMER agreement: overrides apply to SERVICE_LEVEL agreements"),
            "{message}"
        );
        let mut terminated = draft();
        terminated.state = AgreementState::Terminated;
        assert!(terminated.check_overridable(now).is_err());
    }

    #[test]
    fn termination_starts_no_earlier_than_validity() {
        let now = Utc::now();
        let mut a = agreement(10, None);
        let before_start = Utc.timestamp_opt(86_400, 0).unwrap();
        assert_eq!(
            violated_fields(a.check_terminable(before_start, now)),
            ["terminate_time"]
        );
        assert!(a.check_terminable(now, now).is_ok());
        a.terminate(now, now);
        assert_eq!(
            (a.state, a.terminate_time),
            (AgreementState::Terminated, Some(now))
        );
        assert!(draft().check_terminable(now, now).is_err());
    }

    #[test]
    fn only_never_published_drafts_that_nothing_supports_are_deletable() {
        let mut a = draft();
        assert!(a.check_deletable(&[]).is_ok());
        let (reason, _) = precondition(a.check_deletable(&["tenants/a/agreements/ola".into()]));
        assert_eq!(reason, Precondition::ResourceInUse);
        a.new_revision(1, Utc::now());
        let (reason, message) = precondition(a.check_deletable(&[]));
        assert_eq!(reason, Precondition::AgreementState);
        assert!(message.ends_with("terminate it instead"), "{message}");
    }

    #[test]
    fn an_update_that_changes_nothing_is_none_and_the_kind_is_fixed_once_published() {
        let now = Utc::now();
        let a = draft();
        let same = AgreementFields {
            services: Some(a.services.clone()),
            ..Default::default()
        };
        assert_eq!(a.updated(same, now).unwrap(), None);
        let to_customer = || AgreementFields {
            kind: Some(AgreementKind::Internal),
            consumer: Some(Some(Id::parse("c", "ops").unwrap())),
            ..Default::default()
        };
        let updated = a.updated(to_customer(), now).unwrap().expect("a change");
        assert_eq!(updated.kind, AgreementKind::Internal);
        let mut published = draft();
        published.publish(now);
        assert_eq!(
            violated_fields(published.updated(to_customer(), now)),
            ["agreement.kind"]
        );
        let expired = agreement(0, Some(1));
        assert!(matches!(
            expired.updated(AgreementFields::default(), now),
            Err(Error::FailedPrecondition { .. })
        ));
    }

    #[test]
    fn references_must_exist_and_parties_fit_the_kind() {
        let party = |kind| Party {
            tenant: Id::parse("t", "a").unwrap(),
            id: Id::parse("p", "a").unwrap(),
            display_name: String::new(),
            kind,
            parent: None,
            labels: Labels::new(),
            meta: Meta::new(Utc::now()),
        };
        let mut a = draft();
        let all = Referenced {
            provider: Some(party(PartyKind::Provider)),
            consumer: None,
            services: a.services.iter().cloned().collect(),
            supports: BTreeSet::new(),
        };
        assert!(a.check_references(&all).is_ok());
        assert_eq!(
            violated_fields(a.check_references(&Referenced::default())),
            ["agreement.provider", "agreement.services[0]"]
        );
        a.kind = AgreementKind::Underpinning;
        assert_eq!(
            violated_fields(a.check_references(&all)),
            ["agreement.provider"]
        );
    }

    #[test]
    fn service_level_agreements_in_force_at_once_overlap_and_others_do_not() {
        let a = agreement(0, Some(10));
        let mut other = agreement(5, None);
        other.id = Id::parse("i", "b").unwrap();
        let (reason, _) = precondition(a.check_no_overlap(std::slice::from_ref(&other)));
        assert_eq!(reason, Precondition::OverlappingAgreement);
        // Itself, as published before, is no other agreement.
        assert!(a.check_no_overlap(std::slice::from_ref(&a)).is_ok());
        let mut customer = a.clone();
        customer.kind = AgreementKind::Customer;
        assert!(customer.check_no_overlap(&[other]).is_ok());
    }

    #[test]
    fn a_revision_is_a_snapshot_that_the_agreement_points_at() {
        let mut a = draft();
        let now = Utc::now();
        let revision = a.new_revision(3, now);
        assert_eq!(revision.seq, 3);
        assert_eq!(a.revision.as_ref().map(|r| &r.id), Some(&revision.id));
        assert_eq!(revision.snapshot, a);
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
