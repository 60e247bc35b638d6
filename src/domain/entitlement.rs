//! Entitlement resolution: what one consumer gets on one service at an instant
//! of valid time (`as_of`), as the registry knew it at an instant of
//! transaction time (`known_at`). A pure function of what the store read
//! (`Inputs`), so that it can be tested, explained and cached on its own.
//!
//! For each agreement, the revisions recorded by `known_at` count: the last
//! of them says what the agreement's validity is (as known then), and the one
//! in force at `as_of` (the last recorded by `as_of`, or the first when the
//! agreement was published after `as_of`) gives its terms and coverage. The
//! layers then apply in order: the SERVICE_LEVEL base, its overrides for the
//! ancestors then the consumer, then CUSTOMER and INTERNAL agreements of the
//! ancestors then the consumer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::agreement::{Agreement, AgreementKind, Revision};
use crate::domain::names::Id;
use crate::domain::names::{party_name, service_name};
use crate::domain::overrides::Override;
use crate::domain::service::Service;
use crate::domain::terms::{Clause, CreditSchedule, Exclusion, Objective, SupportTerms};
use crate::error::{Error, Result};

/// The most pairs one batch or watch may hold.
pub const MAX_BATCH: usize = 1000;

/// One pair of a question: consumer and service ids in the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    pub consumer: Id,
    pub service: Id,
}

/// What is asked: one pair, at two instants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    pub consumer: Id,
    pub service: Id,
    pub as_of: DateTime<Utc>,
    pub known_at: DateTime<Utc>,
}

/// What resolution reads, as the store found it at `known_at`.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The consumer first, then its parent, and so on up.
    pub ancestry: Vec<Id>,
    /// Revisions of the agreements that cover, or once covered, the service.
    /// Revisions recorded after `known_at` are ignored.
    pub revisions: Vec<Revision>,
    /// The overrides of those agreements, each as it was known at `known_at`.
    pub overrides: Vec<Override>,
    /// Overrides of those agreements first recorded after `known_at`, as first
    /// recorded (for explanations only).
    pub unrecorded: Vec<Override>,
}

/// Where a value came from: an agreement's revision, and the override of it
/// when the value came from one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Provenance {
    pub agreement: Id,
    pub revision: Id,
    #[serde(rename = "override")]
    pub override_id: Option<Id>,
}

/// The objective fields an override can patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchedField {
    Target,
    Threshold,
    Window,
}

impl PatchedField {
    pub fn as_str(self) -> &'static str {
        match self {
            PatchedField::Target => "target",
            PatchedField::Threshold => "threshold",
            PatchedField::Window => "window",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntitledObjective {
    pub objective: Objective,
    /// The layer that defined the objective.
    pub source: Provenance,
    /// Fields later layers patched, with the layer that set the value now in
    /// the objective.
    pub patched: Vec<(PatchedField, Provenance)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Provenance,
}

/// The effective terms, each with its provenance.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Terms {
    pub objectives: Vec<EntitledObjective>,
    pub support: Option<Sourced<SupportTerms>>,
    pub credits: Option<Sourced<CreditSchedule>>,
    pub exclusions: Vec<Sourced<Exclusion>>,
    pub clauses: Vec<Sourced<Clause>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entitlement {
    pub tenant: Id,
    pub query: Query,
    pub terms: Terms,
    /// A digest of `terms`: equal terms, equal version.
    pub version: String,
    /// The first instant after `as_of` at which a layer's validity begins or
    /// ends, or another revision comes into force: until then, with nothing
    /// recorded meanwhile, the result holds. `None`: it holds for good.
    pub stable_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    Base,
    Override,
    ConsumerAgreement,
}

/// Why a layer applied or not: the first check it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    NotRecorded,
    ServiceNotCovered,
    NotInAncestry,
    NotYetEffective,
    Expired,
    Terminated,
    Superseded,
    BaseNotApplied,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub kind: LayerKind,
    pub agreement: Id,
    /// The revision in force at `as_of`; `None` when none was recorded.
    pub revision: Option<Id>,
    pub override_id: Option<Id>,
    pub party: Option<Id>,
    pub outcome: Outcome,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The question, with the instants it was answered for.
    pub query: Query,
    pub ancestry: Vec<Id>,
    pub layers: Vec<Layer>,
    pub entitlement: Option<Entitlement>,
    /// As `Entitlement::stable_until`, also when there is no entitlement.
    pub stable_until: Option<DateTime<Utc>>,
}

/// `known_at` is a moment the registry has seen: not in the future.
pub fn check_known_at(
    known_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    match known_at {
        Some(k) if k > now => Err(Error::invalid(
            "known_at",
            "must not be in the future: the registry cannot know what it has not recorded",
        )),
        k => Ok(k),
    }
}

/// The consumer must have existed at `known_at` (an empty ancestry: it did
/// not), and so must the service. Services keep no history: one that exists
/// now counts from its creation; one deleted since is unknown.
pub fn check_pair(
    tenant: &Id,
    query: &Query,
    ancestry: &[Id],
    service: Option<&Service>,
) -> Result<()> {
    if ancestry.is_empty() {
        return Err(Error::NotFound(party_name(tenant, &query.consumer)));
    }
    if service.is_none_or(|s| s.meta.create_time > query.known_at) {
        return Err(Error::NotFound(service_name(tenant, &query.service)));
    }
    Ok(())
}

/// The entitlement, or `None` when no layer applies.
pub fn resolve(tenant: &Id, query: &Query, inputs: &Inputs) -> Option<Entitlement> {
    explain(tenant, query, inputs).entitlement
}

/// One agreement as it stands for the query.
struct Candidate<'a> {
    /// The last revision recorded by `known_at`: the agreement's validity.
    latest: &'a Agreement,
    /// The revision in force at `as_of`: its terms and coverage.
    terms: &'a Revision,
    /// For consumer agreements, how far up the ancestry the consumer is
    /// (0: the party itself).
    distance: usize,
}

/// The layers considered and the entitlement they make.
pub fn explain(tenant: &Id, query: &Query, inputs: &Inputs) -> Explanation {
    let (t, k) = (query.as_of, query.known_at);
    let distance = |party: &Id| inputs.ancestry.iter().position(|p| p == party);
    let mut by_agreement: BTreeMap<&Id, Vec<&Revision>> = BTreeMap::new();
    for r in &inputs.revisions {
        by_agreement.entry(&r.agreement).or_default().push(r);
    }
    let mut stable_until = Boundaries::after(t);
    let mut base_candidates: Vec<Candidate> = Vec::new();
    let mut consumer_candidates: Vec<Candidate> = Vec::new();
    let mut rejected = Vec::new();
    // Each agreement's revision in force at `as_of`, for its overrides' layers.
    let mut in_force: BTreeMap<&Id, &Revision> = BTreeMap::new();

    for (agreement, mut revisions) in by_agreement {
        revisions.sort_by_key(|r| r.seq);
        let first_kind = revisions[0].snapshot.kind;
        if !first_kind.counts_in_resolution() {
            continue;
        }
        let kind = if first_kind == AgreementKind::ServiceLevel {
            LayerKind::Base
        } else {
            LayerKind::ConsumerAgreement
        };
        let known: Vec<&Revision> = revisions
            .iter()
            .copied()
            .filter(|r| r.create_time <= k)
            .collect();
        let layer =
            |revision: Option<&Revision>, party: Option<Id>, outcome, reason: String| Layer {
                kind,
                agreement: agreement.clone(),
                revision: revision.map(|r| r.id.clone()),
                override_id: None,
                party,
                outcome,
                reason,
            };
        let Some(latest) = known.last() else {
            rejected.push(layer(
                None,
                revisions[0].snapshot.consumer.clone(),
                Outcome::NotRecorded,
                format!(
                    "it was first published at {}, after known_at",
                    revisions[0].create_time
                ),
            ));
            continue;
        };
        let terms = known
            .iter()
            .rev()
            .find(|r| r.create_time <= t)
            .copied()
            .unwrap_or(known[0]);
        in_force.insert(agreement, terms);
        for r in &known {
            stable_until.add(r.create_time);
        }
        let latest = &latest.snapshot;
        stable_until.add(latest.effective_from);
        if let Some(end) = latest.effective_end() {
            stable_until.add(end);
        }
        let party = terms.snapshot.consumer.clone();
        let reject = |outcome, reason| layer(Some(terms), party.clone(), outcome, reason);
        if !terms.snapshot.services.contains(&query.service) {
            rejected.push(reject(
                Outcome::ServiceNotCovered,
                format!("revision {} does not cover the service", terms.id),
            ));
            continue;
        }
        let d = match (&kind, &party) {
            (LayerKind::ConsumerAgreement, Some(p)) => match distance(p) {
                Some(d) => d,
                None => {
                    rejected.push(reject(
                        Outcome::NotInAncestry,
                        format!("its consumer {p} is neither the party nor an ancestor"),
                    ));
                    continue;
                }
            },
            _ => 0,
        };
        if let Some((outcome, reason)) = validity(latest, t) {
            rejected.push(reject(outcome, reason));
            continue;
        }
        let candidate = Candidate {
            latest,
            terms,
            distance: d,
        };
        match kind {
            LayerKind::Base => base_candidates.push(candidate),
            _ => consumer_candidates.push(candidate),
        }
    }

    let mut layers = Vec::new();
    let mut terms = Terms::default();
    let mut applied_any = false;

    // 1. The base: the SERVICE_LEVEL agreement in force. Publishing refuses
    // overlaps, so there is one; should history hold two, the later start wins.
    base_candidates.sort_by(|a, b| {
        b.latest
            .effective_from
            .cmp(&a.latest.effective_from)
            .then_with(|| a.latest.id.cmp(&b.latest.id))
    });
    let base = base_candidates
        .first()
        .map(|c| (c.latest.id.clone(), c.terms));
    for (i, c) in base_candidates.iter().enumerate() {
        let source = provenance(c.terms, None);
        let (outcome, reason) = if i == 0 {
            apply_agreement(&mut terms, &c.terms.snapshot, &source);
            applied_any = true;
            (
                Outcome::Applied,
                format!(
                    "the SERVICE_LEVEL agreement in force: revision {} is the base",
                    c.terms.id
                ),
            )
        } else {
            (
                Outcome::Superseded,
                format!(
                    "{} is the base: it took effect later",
                    base_candidates[0].latest.id
                ),
            )
        };
        layers.push(Layer {
            kind: LayerKind::Base,
            agreement: c.latest.id.clone(),
            revision: Some(c.terms.id.clone()),
            override_id: None,
            party: None,
            outcome,
            reason,
        });
    }

    // 2. The base's overrides for the ancestors, then the party.
    let mut applicable = Vec::new();
    for o in &inputs.overrides {
        stable_until.add(o.effective_from);
        if let Some(until) = o.effective_until {
            stable_until.add(until);
        }
        let revision = in_force.get(&o.agreement).copied();
        let layer = |outcome, reason| Layer {
            kind: LayerKind::Override,
            agreement: o.agreement.clone(),
            revision: revision.map(|r| r.id.clone()),
            override_id: Some(o.id.clone()),
            party: Some(o.consumer.clone()),
            outcome,
            reason,
        };
        let Some((_, base_revision)) = base.as_ref().filter(|(id, _)| *id == o.agreement) else {
            rejected.push(layer(
                Outcome::BaseNotApplied,
                format!("it overrides {}, which is not the base", o.agreement),
            ));
            continue;
        };
        let Some(d) = distance(&o.consumer) else {
            rejected.push(layer(
                Outcome::NotInAncestry,
                format!(
                    "its consumer {} is neither the party nor an ancestor",
                    o.consumer
                ),
            ));
            continue;
        };
        if let Some((outcome, reason)) = window(o.effective_from, o.effective_until, t) {
            rejected.push(layer(outcome, reason));
            continue;
        }
        applicable.push((d, o, *base_revision));
    }
    for o in &inputs.unrecorded {
        rejected.push(Layer {
            kind: LayerKind::Override,
            agreement: o.agreement.clone(),
            revision: in_force.get(&o.agreement).map(|r| r.id.clone()),
            override_id: Some(o.id.clone()),
            party: Some(o.consumer.clone()),
            outcome: Outcome::NotRecorded,
            reason: format!(
                "it was first recorded at {}, after known_at",
                o.meta.create_time
            ),
        });
    }
    applicable.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.effective_from.cmp(&b.1.effective_from))
            .then_with(|| a.1.id.cmp(&b.1.id))
    });
    for (d, o, base_revision) in &applicable {
        let source = provenance(base_revision, Some(&o.id));
        let skipped = apply_override(&mut terms, o, &source);
        let mut reason = format!("for {}, valid at as_of", whose(*d, &o.consumer));
        if !skipped.is_empty() {
            reason.push_str(&format!(
                "; patches of {} skipped: revision {} has no such objective",
                skipped.join(", "),
                base_revision.id
            ));
        }
        layers.push(Layer {
            kind: LayerKind::Override,
            agreement: o.agreement.clone(),
            revision: Some(base_revision.id.clone()),
            override_id: Some(o.id.clone()),
            party: Some(o.consumer.clone()),
            outcome: Outcome::Applied,
            reason,
        });
    }

    // 3. CUSTOMER and INTERNAL agreements of the ancestors, then the party.
    consumer_candidates.sort_by(|a, b| {
        b.distance
            .cmp(&a.distance)
            .then_with(|| a.latest.effective_from.cmp(&b.latest.effective_from))
            .then_with(|| a.latest.id.cmp(&b.latest.id))
    });
    for c in &consumer_candidates {
        let source = provenance(c.terms, None);
        apply_agreement(&mut terms, &c.terms.snapshot, &source);
        applied_any = true;
        layers.push(Layer {
            kind: LayerKind::ConsumerAgreement,
            agreement: c.latest.id.clone(),
            revision: Some(c.terms.id.clone()),
            override_id: None,
            party: c.terms.snapshot.consumer.clone(),
            outcome: Outcome::Applied,
            reason: format!(
                "for {}, in force at as_of: revision {}",
                whose(
                    c.distance,
                    c.terms
                        .snapshot
                        .consumer
                        .as_ref()
                        .unwrap_or(&query.consumer)
                ),
                c.terms.id
            ),
        });
    }

    // The layers that did not apply, after those that did, in a stable order.
    rejected.sort_by(|a, b| {
        (a.kind as u8, &a.agreement, &a.override_id).cmp(&(
            b.kind as u8,
            &b.agreement,
            &b.override_id,
        ))
    });
    layers.extend(rejected);

    // One order whatever the layers: objectives by key, so that equal terms
    // reached through different layers read (and version) the same.
    terms
        .objectives
        .sort_by(|a, b| a.objective.key.cmp(&b.objective.key));
    let entitlement = applied_any.then(|| {
        let version = version(&terms);
        Entitlement {
            tenant: tenant.clone(),
            query: query.clone(),
            terms,
            version,
            stable_until: stable_until.first,
        }
    });
    Explanation {
        query: query.clone(),
        ancestry: inputs.ancestry.clone(),
        layers,
        entitlement,
        stable_until: stable_until.first,
    }
}

/// Who a layer is for, `distance` steps up the party's ancestry.
fn whose(distance: usize, party: &Id) -> String {
    if distance == 0 {
        "the party".to_string()
    } else {
        format!("ancestor {party}")
    }
}

fn provenance(revision: &Revision, override_id: Option<&Id>) -> Provenance {
    Provenance {
        agreement: revision.agreement.clone(),
        revision: revision.id.clone(),
        override_id: override_id.cloned(),
    }
}

/// Whether an agreement, as last known, is in force at `t`; why not if not.
fn validity(a: &Agreement, t: DateTime<Utc>) -> Option<(Outcome, String)> {
    if t < a.effective_from {
        return Some((
            Outcome::NotYetEffective,
            format!("its validity begins at {}", a.effective_from),
        ));
    }
    match (a.effective_until, a.terminate_time) {
        (Some(until), terminated) if until <= t && terminated.is_none_or(|x| until <= x) => {
            Some((Outcome::Expired, format!("its validity ended at {until}")))
        }
        (_, Some(at)) if at <= t => {
            Some((Outcome::Terminated, format!("it was terminated as of {at}")))
        }
        _ => None,
    }
}

/// Whether `[from, until)` contains `t`; why not if not.
fn window(
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    t: DateTime<Utc>,
) -> Option<(Outcome, String)> {
    if t < from {
        return Some((
            Outcome::NotYetEffective,
            format!("its validity begins at {from}"),
        ));
    }
    until
        .filter(|u| *u <= t)
        .map(|until| (Outcome::Expired, format!("its validity ended at {until}")))
}

/// An agreement's terms: objectives replace those of the same key or are
/// added; support terms and credits replace; exclusions and clauses add.
fn apply_agreement(terms: &mut Terms, a: &Agreement, source: &Provenance) {
    for o in &a.objectives {
        let entitled = EntitledObjective {
            objective: o.clone(),
            source: source.clone(),
            patched: Vec::new(),
        };
        match terms
            .objectives
            .iter_mut()
            .find(|e| e.objective.key == o.key)
        {
            Some(existing) => *existing = entitled,
            None => terms.objectives.push(entitled),
        }
    }
    if let Some(s) = &a.support {
        terms.support = Some(Sourced {
            value: s.clone(),
            source: source.clone(),
        });
    }
    if let Some(c) = &a.credits {
        terms.credits = Some(Sourced {
            value: c.clone(),
            source: source.clone(),
        });
    }
    terms
        .exclusions
        .extend(a.exclusions.iter().map(|e| Sourced {
            value: e.clone(),
            source: source.clone(),
        }));
    terms.clauses.extend(a.clauses.iter().map(|c| Sourced {
        value: c.clone(),
        source: source.clone(),
    }));
}

/// An override: patches by key, added objectives, support terms and credits
/// replaced. Returns the keys of patches that found no objective.
fn apply_override(terms: &mut Terms, o: &Override, source: &Provenance) -> Vec<String> {
    let mut skipped = Vec::new();
    for p in &o.objective_patches {
        let Some(e) = terms
            .objectives
            .iter_mut()
            .find(|e| e.objective.key == p.key)
        else {
            skipped.push(format!("`{}`", p.key));
            continue;
        };
        let mut patch = |field: PatchedField| {
            e.patched.retain(|(f, _)| *f != field);
            e.patched.push((field, source.clone()));
        };
        if let Some(target) = p.target {
            e.objective.target = target;
            patch(PatchedField::Target);
        }
        if let Some(threshold) = p.threshold {
            e.objective.threshold = Some(threshold);
            patch(PatchedField::Threshold);
        }
        if let Some(w) = &p.window {
            e.objective.window = Some(w.clone());
            patch(PatchedField::Window);
        }
    }
    for added in &o.added_objectives {
        let entitled = EntitledObjective {
            objective: added.clone(),
            source: source.clone(),
            patched: Vec::new(),
        };
        match terms
            .objectives
            .iter_mut()
            .find(|e| e.objective.key == added.key)
        {
            Some(existing) => *existing = entitled,
            None => terms.objectives.push(entitled),
        }
    }
    if let Some(s) = &o.support {
        terms.support = Some(Sourced {
            value: s.clone(),
            source: source.clone(),
        });
    }
    if let Some(c) = &o.credits {
        terms.credits = Some(Sourced {
            value: c.clone(),
            source: source.clone(),
        });
    }
    skipped
}

/// A digest of the terms and their provenance.
fn version(terms: &Terms) -> String {
    let bytes = serde_json::to_vec(terms).expect("terms serialize");
    hex::encode(&Sha256::digest(&bytes)[..8])
}

/// The earliest instant strictly after `t` among those added.
struct Boundaries {
    t: DateTime<Utc>,
    first: Option<DateTime<Utc>>,
}

impl Boundaries {
    fn after(t: DateTime<Utc>) -> Self {
        Self { t, first: None }
    }

    fn add(&mut self, at: DateTime<Utc>) {
        if at > self.t && self.first.is_none_or(|f| at < f) {
            self.first = Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::agreement::AgreementState;
    use crate::domain::fields::{Labels, Meta};
    use crate::domain::overrides::ObjectivePatch;
    use crate::domain::terms::{ObjectiveKind, Window};
    use chrono::TimeZone;

    fn id(s: &str) -> Id {
        Id::parse("id", s).unwrap()
    }

    fn day(d: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_767_225_600 + d * 86_400, 0).unwrap()
    }

    fn objective(target: f64) -> Objective {
        Objective {
            key: "availability".into(),
            display_name: "Availability".into(),
            indicator: "http_success".into(),
            kind: ObjectiveKind::Ratio,
            target,
            threshold: None,
            comparison: None,
            window: Some(Window::Rolling {
                seconds: 30 * 86_400,
            }),
            slice_seconds: None,
        }
    }

    /// A published SERVICE_LEVEL agreement on `svc`, valid from day 0 to
    /// `until`, recorded on day `recorded`.
    fn sla(until: Option<i64>, recorded: i64) -> Revision {
        let snapshot = Agreement {
            tenant: id("t"),
            id: id("sla"),
            display_name: String::new(),
            description: String::new(),
            kind: AgreementKind::ServiceLevel,
            provider: id("provider"),
            consumer: None,
            services: vec![id("svc")],
            state: AgreementState::Active,
            effective_from: day(0),
            effective_until: until.map(day),
            terminate_time: None,
            objectives: vec![objective(0.999)],
            support: None,
            credits: None,
            exclusions: Vec::new(),
            clauses: Vec::new(),
            supports: Vec::new(),
            labels: Labels::new(),
            annotations: Labels::new(),
            revision: None,
            meta: Meta::new(day(recorded)),
        };
        Revision {
            tenant: id("t"),
            agreement: id("sla"),
            id: id("rev1"),
            seq: 1,
            create_time: day(recorded),
            snapshot,
        }
    }

    fn patch(name: &str, consumer: &str, target: f64, from: i64, until: Option<i64>) -> Override {
        Override {
            tenant: id("t"),
            agreement: id("sla"),
            id: id(name),
            display_name: String::new(),
            consumer: id(consumer),
            effective_from: day(from),
            effective_until: until.map(day),
            objective_patches: vec![ObjectivePatch {
                key: "availability".into(),
                target: Some(target),
                threshold: None,
                window: None,
            }],
            added_objectives: Vec::new(),
            support: None,
            credits: None,
            labels: Labels::new(),
            meta: Meta::new(day(0)),
        }
    }

    fn query(as_of: i64) -> Query {
        Query {
            consumer: id("dept"),
            service: id("svc"),
            as_of: day(as_of),
            known_at: day(100),
        }
    }

    fn inputs(overrides: Vec<Override>) -> Inputs {
        Inputs {
            ancestry: vec![id("dept"), id("bank")],
            revisions: vec![sla(Some(50), 0)],
            overrides,
            unrecorded: Vec::new(),
        }
    }

    #[test]
    fn known_at_must_not_be_in_the_future() {
        assert_eq!(check_known_at(Some(day(1)), day(2)).unwrap(), Some(day(1)));
        assert_eq!(check_known_at(None, day(2)).unwrap(), None);
        assert!(matches!(
            check_known_at(Some(day(3)), day(2)),
            Err(Error::InvalidArgument(v)) if v[0].field == "known_at"
        ));
    }

    #[test]
    fn the_nearest_override_wins_and_names_itself() {
        let i = inputs(vec![
            patch("for-dept", "dept", 0.9999, 0, None),
            patch("for-bank", "bank", 0.9995, 0, None),
        ]);
        let e = resolve(&id("t"), &query(10), &i).unwrap();
        let o = &e.terms.objectives[0];
        assert_eq!(o.objective.target, 0.9999);
        assert_eq!(o.source.override_id, None);
        assert_eq!(o.patched.len(), 1);
        assert_eq!(o.patched[0].1.override_id, Some(id("for-dept")));
    }

    #[test]
    fn nothing_in_force_is_no_entitlement() {
        assert!(resolve(&id("t"), &query(60), &inputs(Vec::new())).is_none());
        assert!(resolve(&id("t"), &query(-1), &inputs(Vec::new())).is_none());
    }

    #[test]
    fn a_result_holds_until_the_next_window_boundary() {
        let i = inputs(vec![patch("later", "dept", 0.9999, 20, Some(30))]);
        let x = explain(&id("t"), &query(10), &i);
        assert_eq!(x.stable_until, Some(day(20)));
        let x = explain(&id("t"), &query(25), &i);
        assert_eq!(x.stable_until, Some(day(30)));
        assert_eq!(
            explain(&id("t"), &query(40), &i).stable_until,
            Some(day(50))
        );
    }

    #[test]
    fn equal_terms_have_equal_versions_whatever_the_instant() {
        let i = inputs(vec![patch("later", "dept", 0.9999, 20, None)]);
        let v = |d| resolve(&id("t"), &query(d), &i).unwrap().version;
        assert_eq!(v(5), v(15));
        assert_ne!(v(15), v(25));
        assert_eq!(v(25), v(35));
    }

    #[test]
    fn revisions_recorded_after_known_at_do_not_count() {
        let mut i = inputs(Vec::new());
        i.revisions = vec![sla(None, 200)];
        let x = explain(&id("t"), &query(10), &i);
        assert!(x.entitlement.is_none());
        assert_eq!(x.layers[0].outcome, Outcome::NotRecorded);
    }
}
