//! Compliance of a subject: which terms apply (an agreement's revision in
//! force, or a consumer's resolved entitlement on a service), whose data they
//! are judged on (the service-wide view or a consumer's), and, per objective,
//! the window resolved, the plan made, what the plan asks for read from the
//! rollups, the verdict and the credit (`crate::domain::compliance`, pure).
//! Every measurement a request needs is read in one read transaction.
//!
//! `Compliance::evaluate` answers GetCompliance; `Compliance::evaluate_period`
//! is what the breach closer calls for a calendar period.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::Registry;
use super::entitlements::Resolver;
use crate::domain::agreement::{Agreement, AgreementKind, Revision};
use crate::domain::compliance::{
    ComplianceError, CountBucket, Credit, EvaluationWindow, Interval, Measurements,
    ObjectiveEvaluation, Plan, Question, Sample, WindowKind, agreement_credit, credit, decompose,
    evaluate, split_liability_cap,
};
use crate::domain::entitlement::{EntitledObjective, Pair, PatchedField, Provenance, Sourced};
use crate::domain::measurement::{CountBucket as StoredBucket, Level, View};
use crate::domain::names::{Id, agreement_name, party_name};
use crate::domain::terms::{
    Clause, ClauseKind, CreditSchedule, Exclusion, Money, Objective, ObjectiveKind,
};
use crate::error::{Error, Precondition, Result};
use crate::store::Tx;

/// Whose compliance is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An agreement's own terms: its revision in force at `as_of`. A
    /// SERVICE_LEVEL agreement is judged on the service-wide data of each of
    /// its services; an agreement with a consumer (CUSTOMER, INTERNAL,
    /// OPERATIONAL, UNDERPINNING) on that consumer's data (the untagged data
    /// and its own) of each of its services.
    Agreement(Id),
    /// A consumer on a service: the terms of its resolved entitlement at
    /// `as_of`, judged on the consumer's data.
    Pair(Pair),
}

/// One objective of a subject, evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectiveCompliance {
    pub service: Id,
    /// Whose data was judged with the untagged data; `None`: the service-wide
    /// view (every report, tagged or not).
    pub consumer: Option<Id>,
    /// The objective as it applies (overrides patched in).
    pub objective: Objective,
    /// The layer that defined the objective (for a breach: its agreement and
    /// revision).
    pub source: Provenance,
    /// Where the target came from: the override that patched it, if one did,
    /// else the layer that defined the objective.
    pub target_provenance: Provenance,
    pub evaluation: ObjectiveEvaluation,
    /// What the window earns under the subject's credit schedule (nothing
    /// outside calendar periods, when met, or without data); `None` without
    /// a schedule.
    pub credit: Option<Credit>,
}

/// A subject's objectives evaluated, with the terms credits come from.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectCompliance {
    pub as_of: DateTime<Utc>,
    /// By service, then key.
    pub objectives: Vec<ObjectiveCompliance>,
    /// The credit schedule the credits were computed under, and the layer
    /// that gave it.
    pub credits: Option<Sourced<CreditSchedule>>,
    /// The clauses of the terms (a LIABILITY_CAP among them caps credits
    /// across agreements).
    pub clauses: Vec<Sourced<Clause>>,
}

/// What one agreement owes a consumer for a billing period.
#[derive(Debug, Clone, PartialEq)]
pub struct AgreementCredit {
    /// The agreement whose credit schedule applies.
    pub agreement: Id,
    /// Who owes the credit.
    pub provider: Id,
    /// From the earliest start to the latest end of its objectives' periods;
    /// `None` without an objective over a calendar period.
    pub period: Option<Interval>,
    /// Its objectives over a calendar period, by service then key.
    pub objectives: Vec<ObjectiveCompliance>,
    /// The largest credit of its objectives, in the fee's currency.
    pub uncapped: Money,
    /// `uncapped` after the provider's liability cap.
    pub credit: Money,
    /// Every objective's period is over.
    pub closed: bool,
}

/// The credits a consumer is owed for one billing period.
#[derive(Debug, Clone, PartialEq)]
pub struct CreditStatement {
    pub consumer: Id,
    pub as_of: DateTime<Utc>,
    /// By agreement id.
    pub agreements: Vec<AgreementCredit>,
    /// The sum of the credits per currency, by currency code.
    pub totals: Vec<Money>,
}

/// The terms a subject is judged by, and on whose data.
struct Applicable {
    services: Vec<Id>,
    consumer: Option<Id>,
    objectives: Vec<EntitledObjective>,
    exclusions: Vec<Exclusion>,
    credits: Option<Sourced<CreditSchedule>>,
    clauses: Vec<Sourced<Clause>>,
}

pub struct Compliance {
    registry: Arc<Registry>,
    resolver: Arc<Resolver>,
}

impl Compliance {
    pub fn new(registry: Arc<Registry>, resolver: Arc<Resolver>) -> Self {
        Self { registry, resolver }
    }

    /// Every objective of `subject` evaluated as `question` asks: each over
    /// its own window (the calendar period containing
    /// `question.period_containing`), or over `question.interval` when one is
    /// given. NOT_FOUND for an unknown agreement, consumer or service, or a
    /// pair without an entitlement at `as_of`; FAILED_PRECONDITION for an
    /// agreement never published, or a window holding too many TIMESLICE
    /// slices to evaluate.
    pub async fn evaluate(
        &self,
        tenant: &Id,
        subject: &Subject,
        question: &Question,
    ) -> Result<SubjectCompliance> {
        let (mut tx, applicable) = match subject {
            Subject::Pair(pair) => {
                // The resolver reads in a transaction of its own (or answers
                // from its cache), before this call's opens: a call holds one
                // connection at a time.
                let as_of = (!question.as_of_is_now).then_some(question.as_of);
                let resolved = self.resolver.resolve(tenant, pair, as_of, None).await?;
                let tx = self.registry.read(tenant).await?;
                (tx, entitlement_terms(pair, &resolved.entitlement.terms))
            }
            Subject::Agreement(id) => {
                let mut tx = self.registry.read(tenant).await?;
                let terms = agreement_terms(&mut *tx, tenant, id, question.as_of).await?;
                (tx, terms)
            }
        };
        let objectives = evaluate_terms(&mut *tx, tenant, &applicable, question).await?;
        Ok(SubjectCompliance {
            as_of: question.as_of,
            objectives,
            credits: applicable.credits,
            clauses: applicable.clauses,
        })
    }

    /// For the breach closer: the objectives of `subject` whose window is a
    /// calendar period, each evaluated over its period containing
    /// `instant`, as known at `as_of` (the period is closed, and can be
    /// BREACHED, once `as_of` has reached its end; pass now). Objectives
    /// with a rolling window are left out: they never breach. Each carries
    /// its domain evaluation (`evaluation.status`, `.attainment`,
    /// `.window.period`), its credit, and the provenance of the objective and
    /// of its target; errors as `evaluate`, and INVALID_ARGUMENT when
    /// `instant` is after `as_of` or `as_of` is in the future.
    pub async fn evaluate_period(
        &self,
        tenant: &Id,
        subject: &Subject,
        instant: DateTime<Utc>,
        as_of: DateTime<Utc>,
    ) -> Result<SubjectCompliance> {
        let question = Question::check(Utc::now(), Some(as_of), Some(instant), None)?;
        let mut evaluated = self.evaluate(tenant, subject, &question).await?;
        evaluated
            .objectives
            .retain(|o| matches!(o.evaluation.window.kind, WindowKind::Calendar { .. }));
        Ok(evaluated)
    }
}

/// How far from the instant a billing period can reach: a calendar year, and
/// a day for the time zone.
const LONGEST_PERIOD: TimeDelta = TimeDelta::days(367);

impl Compliance {
    /// The credits `consumer` is owed for the billing period containing
    /// `period_containing` (default now), as of now: see docs/compliance.md
    /// (Credit statements) for which agreements count and how caps apply.
    /// NOT_FOUND for an unknown consumer; INVALID_ARGUMENT for an instant in
    /// the future.
    pub async fn credit_statement(
        &self,
        tenant: &Id,
        consumer: &Id,
        period_containing: Option<DateTime<Utc>>,
    ) -> Result<CreditStatement> {
        let now = Utc::now();
        let question = Question::check(now, None, period_containing, None)?;
        let instant = question.period_containing.unwrap_or(now);

        // Which services the consumer has terms of its own on, or data of
        // its own near the period (checked exactly below, once the periods
        // are known).
        let (own, tagged) = {
            let mut tx = self.registry.read(tenant).await?;
            let ancestry = tx.party_ancestry(tenant, consumer, now).await?;
            if ancestry.is_empty() {
                return Err(Error::NotFound(party_name(tenant, consumer)));
            }
            let own: BTreeSet<Id> = tx
                .services_with_terms_for(tenant, &ancestry, CONSUMER_TERMS)
                .await?
                .into_iter()
                .collect();
            let near = Level::Day.bucket_start(instant - LONGEST_PERIOD)..instant + LONGEST_PERIOD;
            let tagged: BTreeSet<Id> = tx
                .services_with_tagged_data(tenant, consumer, Level::Day, &near)
                .await?
                .into_iter()
                .collect();
            (own, tagged)
        };
        let pairs: Vec<Pair> = own
            .union(&tagged)
            .map(|service| Pair {
                consumer: consumer.clone(),
                service: service.clone(),
            })
            .collect();
        // Entitlements now: the resolver's cache may hold them.
        let resolved = self
            .resolver
            .resolve_batch(tenant, &pairs, None, None)
            .await?;

        let mut tx = self.registry.read(tenant).await?;
        let mut entitled = Vec::new();
        for (pair, result) in pairs.iter().zip(resolved) {
            let entitlement = match result {
                Ok(r) => r.entitlement,
                // No entitlement on that service: nothing to credit.
                Err(Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let applicable = entitlement_terms(pair, &entitlement.terms);
            let Some(schedule) = applicable.credits.clone() else {
                continue;
            };
            let mut objectives = evaluate_terms(&mut *tx, tenant, &applicable, &question).await?;
            objectives.retain(|o| matches!(o.evaluation.window.kind, WindowKind::Calendar { .. }));
            entitled.push((
                pair.service.clone(),
                schedule,
                applicable.clauses,
                objectives,
            ));
        }

        // A service counted for the consumer's data alone counts only when
        // that data lies in the period its objectives cover.
        let mut with_data: HashMap<Interval, BTreeSet<Id>> = HashMap::new();
        let mut kept = Vec::with_capacity(entitled.len());
        for e in entitled {
            let (service, _, _, objectives) = &e;
            if !own.contains(service) {
                let Some(period) = hull(objectives) else {
                    continue;
                };
                let found = match with_data.entry(period) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let span = period.start..period.end;
                        let level = finest_fitting(&period);
                        let read = tx
                            .services_with_tagged_data(tenant, consumer, level, &span)
                            .await?;
                        e.insert(read.into_iter().collect())
                    }
                };
                if !found.contains(service) {
                    continue;
                }
            }
            kept.push(e);
        }

        let mut providers: HashMap<Id, Id> = HashMap::new();
        let mut by_agreement: BTreeMap<Id, (String, Vec<ObjectiveCompliance>)> = BTreeMap::new();
        let mut caps: BTreeMap<(Id, String), i64> = BTreeMap::new();
        for (_, schedule, clauses, objectives) in kept {
            let currency = schedule
                .value
                .fee
                .as_ref()
                .map(|f| f.currency_code.clone())
                .unwrap_or_default();
            let entry = by_agreement
                .entry(schedule.source.agreement.clone())
                .or_insert_with(|| (currency, Vec::new()));
            entry.1.extend(objectives);
            for clause in clauses {
                let (ClauseKind::LiabilityCap, Some(amount)) =
                    (clause.value.kind, &clause.value.amount)
                else {
                    continue;
                };
                let provider =
                    provider_of(&mut *tx, tenant, &clause.source.agreement, &mut providers).await?;
                let cap = caps
                    .entry((provider, amount.currency_code.clone()))
                    .or_insert(amount.amount_minor);
                *cap = (*cap).min(amount.amount_minor);
            }
        }

        let mut agreements = Vec::with_capacity(by_agreement.len());
        for (agreement, (currency, mut objectives)) in by_agreement {
            objectives.sort_by(|a, b| {
                (&a.service, &a.objective.key).cmp(&(&b.service, &b.objective.key))
            });
            let credits: Vec<Credit> = objectives.iter().filter_map(|o| o.credit.clone()).collect();
            let uncapped = Money {
                amount_minor: agreement_credit(&credits).map_or(0, |c| c.amount_minor),
                currency_code: currency,
            };
            agreements.push(AgreementCredit {
                provider: provider_of(&mut *tx, tenant, &agreement, &mut providers).await?,
                agreement,
                period: hull(&objectives),
                closed: objectives.iter().all(|o| o.evaluation.window.closed()),
                objectives,
                credit: uncapped.clone(),
                uncapped,
            });
        }
        for ((provider, currency), cap) in caps {
            let capped: Vec<usize> = (0..agreements.len())
                .filter(|&i| {
                    agreements[i].provider == provider
                        && agreements[i].uncapped.currency_code == currency
                })
                .collect();
            let uncapped: Vec<i64> = capped
                .iter()
                .map(|&i| agreements[i].uncapped.amount_minor)
                .collect();
            for (&i, owed) in capped.iter().zip(split_liability_cap(&uncapped, cap)) {
                agreements[i].credit.amount_minor = owed;
            }
        }
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for a in agreements
            .iter()
            .filter(|a| !a.credit.currency_code.is_empty())
        {
            *totals.entry(a.credit.currency_code.clone()).or_default() += a.credit.amount_minor;
        }
        Ok(CreditStatement {
            consumer: consumer.clone(),
            as_of: now,
            agreements,
            totals: totals
                .into_iter()
                .map(|(currency_code, amount_minor)| Money {
                    amount_minor,
                    currency_code,
                })
                .collect(),
        })
    }
}

/// The agreement kinds whose consumer has terms of its own through them.
const CONSUMER_TERMS: &[AgreementKind] = &[AgreementKind::Customer, AgreementKind::Internal];

/// From the earliest start to the latest end of the objectives' periods.
fn hull(objectives: &[ObjectiveCompliance]) -> Option<Interval> {
    let periods = objectives.iter().map(|o| o.evaluation.window.period);
    let start = periods.clone().map(|p| p.start).min()?;
    let end = periods.map(|p| p.end).max()?;
    Some(Interval::new(start, end))
}

/// The coarsest rollup whose buckets tile `period` exactly: hours for the
/// periods of zones a whole number of hours from UTC, minutes otherwise.
fn finest_fitting(period: &Interval) -> Level {
    let aligned = |t: DateTime<Utc>| Level::Hour.bucket_start(t) == t;
    if aligned(period.start) && aligned(period.end) {
        Level::Hour
    } else {
        Level::Minute
    }
}

/// The provider of agreement `id`, read once per statement.
async fn provider_of(
    tx: &mut dyn Tx,
    tenant: &Id,
    id: &Id,
    known: &mut HashMap<Id, Id>,
) -> Result<Id> {
    if let Some(p) = known.get(id) {
        return Ok(p.clone());
    }
    let agreement = tx
        .get_agreement(tenant, id)
        .await?
        .ok_or_else(|| Error::internal(format!("{} vanished", agreement_name(tenant, id))))?;
    known.insert(id.clone(), agreement.provider.clone());
    Ok(agreement.provider)
}

/// Every objective of `applicable` on each of its services, by service then
/// key.
async fn evaluate_terms(
    tx: &mut dyn Tx,
    tenant: &Id,
    applicable: &Applicable,
    question: &Question,
) -> Result<Vec<ObjectiveCompliance>> {
    let mut objectives = Vec::new();
    for service in &applicable.services {
        for entitled in &applicable.objectives {
            objectives.push(
                evaluate_objective(tx, tenant, service, applicable, entitled, question).await?,
            );
        }
    }
    objectives.sort_by(|a, b| (&a.service, &a.objective.key).cmp(&(&b.service, &b.objective.key)));
    Ok(objectives)
}

/// The revision of agreement `id` in force at `as_of`: the last one
/// recorded by then, or the first when `as_of` comes before the first
/// publication (the terms as first published also describe the time before
/// it, back to the agreement's `effective_from`).
async fn agreement_terms(
    tx: &mut dyn Tx,
    tenant: &Id,
    id: &Id,
    as_of: DateTime<Utc>,
) -> Result<Applicable> {
    let Some(agreement) = tx.get_agreement(tenant, id).await? else {
        return Err(Error::NotFound(agreement_name(tenant, id)));
    };
    let revision = revision_in_force(tx, &agreement, as_of).await?;
    let terms = &revision.snapshot;
    let source = Provenance {
        agreement: agreement.id.clone(),
        revision: revision.id.clone(),
        override_id: None,
    };
    fn sourced<T>(source: &Provenance) -> impl Fn(T) -> Sourced<T> + '_ {
        move |value| Sourced {
            value,
            source: source.clone(),
        }
    }
    Ok(Applicable {
        services: terms.services.clone(),
        consumer: match terms.kind {
            AgreementKind::ServiceLevel => None,
            _ => terms.consumer.clone(),
        },
        objectives: terms
            .objectives
            .iter()
            .map(|o| EntitledObjective {
                objective: o.clone(),
                source: source.clone(),
                patched: Vec::new(),
            })
            .collect(),
        exclusions: terms.exclusions.clone(),
        credits: terms.credits.clone().map(sourced(&source)),
        clauses: terms
            .clauses
            .iter()
            .cloned()
            .map(sourced(&source))
            .collect(),
    })
}

/// Revisions read per statement while looking for the one in force.
const REVISIONS_PER_READ: i64 = 100;

async fn revision_in_force(
    tx: &mut dyn Tx,
    agreement: &Agreement,
    as_of: DateTime<Utc>,
) -> Result<Revision> {
    let (tenant, id) = (&agreement.tenant, &agreement.id);
    let mut before = None;
    let mut oldest = None;
    loop {
        // Newest first.
        let page = tx
            .list_revisions(tenant, id, before, REVISIONS_PER_READ)
            .await?;
        let last_page = (page.len() as i64) < REVISIONS_PER_READ;
        for revision in page {
            if revision.create_time <= as_of {
                return Ok(revision);
            }
            before = Some(revision.seq);
            oldest = Some(revision);
        }
        if last_page {
            break;
        }
    }
    oldest.ok_or_else(|| {
        Error::precondition(
            Precondition::AgreementState,
            format!(
                "{} has never been published: no terms are in force to evaluate",
                agreement_name(tenant, id)
            ),
        )
    })
}

/// The terms of a pair's entitlement.
fn entitlement_terms(pair: &Pair, terms: &crate::domain::entitlement::Terms) -> Applicable {
    Applicable {
        services: vec![pair.service.clone()],
        consumer: Some(pair.consumer.clone()),
        objectives: terms.objectives.clone(),
        exclusions: terms.exclusions.iter().map(|e| e.value.clone()).collect(),
        credits: terms.credits.clone(),
        clauses: terms.clauses.clone(),
    }
}

/// The provenance of an entitled objective's target.
pub fn target_provenance(entitled: &EntitledObjective) -> &Provenance {
    entitled
        .patched
        .iter()
        .find(|(field, _)| *field == PatchedField::Target)
        .map_or(&entitled.source, |(_, source)| source)
}

async fn evaluate_objective(
    tx: &mut dyn Tx,
    tenant: &Id,
    service: &Id,
    applicable: &Applicable,
    entitled: &EntitledObjective,
    question: &Question,
) -> Result<ObjectiveCompliance> {
    let objective = &entitled.objective;
    let failed = |e: ComplianceError| unevaluable(e, tenant, service, objective);
    let window = objective
        .window
        .as_ref()
        .ok_or(ComplianceError::Incomplete("window"))
        .map_err(failed)?;
    let window = EvaluationWindow::resolve(
        window,
        question.as_of,
        question.period_containing,
        question.interval,
    )
    .map_err(failed)?;
    let plan = Plan::new(objective, window, &applicable.exclusions).map_err(failed)?;
    let view = match &applicable.consumer {
        Some(c) => View::Consumer(c.clone()),
        None => View::ServiceWide,
    };
    let indicator = objective.indicator.as_str();
    let evaluation = match objective.kind {
        ObjectiveKind::Ratio | ObjectiveKind::Timeslice => {
            let ranges: Vec<_> = decompose(&plan.pieces)
                .into_iter()
                .map(|(level, range)| (level, range.start..range.end))
                .collect();
            let stored = tx
                .count_buckets(tenant, service, &view, indicator, &ranges)
                .await?;
            let buckets: Vec<CountBucket> = stored.iter().map(bucket).collect();
            evaluate(objective, &plan, Measurements::Counts(&buckets))
        }
        ObjectiveKind::Threshold => {
            let mut samples = Vec::new();
            for span in plan.spans() {
                let read = tx
                    .samples(tenant, service, &view, indicator, &(span.start..span.end))
                    .await?;
                samples.extend(read.into_iter().map(|s| Sample {
                    time: s.time,
                    value: s.value,
                }));
            }
            evaluate(objective, &plan, Measurements::Samples(&samples))
        }
        ObjectiveKind::Uptime => {
            let mut downtime = Vec::new();
            for span in plan.spans() {
                let read = tx
                    .downtime(tenant, service, &view, indicator, &(span.start..span.end))
                    .await?;
                downtime.extend(read.into_iter().map(|r| Interval::new(r.start, r.end)));
            }
            evaluate(objective, &plan, Measurements::Downtime(&downtime))
        }
    }
    .map_err(failed)?;
    let credit = match &applicable.credits {
        Some(schedule) => Some(credit(&evaluation, &schedule.value).map_err(failed)?),
        None => None,
    };
    Ok(ObjectiveCompliance {
        service: service.clone(),
        consumer: applicable.consumer.clone(),
        objective: objective.clone(),
        source: entitled.source.clone(),
        target_provenance: target_provenance(entitled).clone(),
        evaluation,
        credit,
    })
}

/// A stored bucket as the maths places it: a rollup over its bucket, a raw
/// report over the microsecond it was taken at. Counts are never negative
/// (ingestion refuses them).
fn bucket(b: &StoredBucket) -> CountBucket {
    let length = b.level.length().unwrap_or(TimeDelta::microseconds(1));
    CountBucket {
        interval: Interval::new(b.start, b.start + length),
        good: b.good.max(0).unsigned_abs(),
        total: b.total.max(0).unsigned_abs(),
    }
}

/// Why an objective could not be evaluated, as the caller should hear it: a
/// window holding too many slices is the question's doing (a shorter
/// interval, or another period, can be asked); anything else means stored
/// terms the maths cannot read, a fault of the server's.
fn unevaluable(e: ComplianceError, tenant: &Id, service: &Id, objective: &Objective) -> Error {
    match e {
        ComplianceError::TooManySlices { slices, max } => Error::precondition(
            Precondition::TooManySlices,
            format!(
                "objective `{}` cuts the window asked for into {slices} slices of {} s; at \
                 most {max} can be evaluated at once: ask for a shorter interval",
                objective.key,
                objective.slice_seconds.unwrap_or_default()
            ),
        ),
        ComplianceError::EmptyInterval => {
            Error::invalid("interval.end_time", "must be after interval.start_time")
        }
        other => Error::Internal(anyhow::Error::new(other).context(format!(
            "evaluate objective `{}` of tenants/{tenant}/services/{service}",
            objective.key
        ))),
    }
}
