//! Breaches: an objective missed in a closed calendar period, one per
//! (agreement, objective, consumer or service-wide, service, period). Its id
//! is a digest of that key, so every replica names it alike; what a new
//! evaluation of its period does to it (nothing, a first revision, a new one,
//! a withdrawal) is decided here, so that two replicas reaching the same
//! verdict write once. Also the events WatchBreaches streams.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;

use crate::domain::agreement::{Agreement, AgreementKind};
use crate::domain::compliance::{Interval, calendar_period, zone};
use crate::domain::entitlement::Provenance;
use crate::domain::measurement::{Measurement, Value};
use crate::domain::names::Id;
use crate::domain::overrides::Override;
use crate::domain::terms::{CalendarPeriod, Window};

/// What identifies a breach: one per objective, subject and period.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BreachKey {
    /// The agreement whose objective was missed (the one that defined it).
    pub agreement: Id,
    pub objective_key: String,
    /// `None`: the service-wide data, every consumer on the base terms.
    pub consumer: Option<Id>,
    pub service: Id,
    pub period_start: DateTime<Utc>,
}

impl BreachKey {
    /// `b-` and 24 hex digits of SHA-256 over the key's parts, joined by
    /// `|` (no id or key contains one; the period start as microseconds
    /// since the epoch): every replica computes the same id.
    pub fn id(&self) -> Id {
        let mut hasher = Sha256::new();
        hasher.update(self.agreement.as_str());
        hasher.update(b"|");
        hasher.update(self.objective_key.as_bytes());
        hasher.update(b"|");
        hasher.update(self.consumer.as_ref().map_or("", Id::as_str));
        hasher.update(b"|");
        hasher.update(self.service.as_str());
        hasher.update(b"|");
        hasher.update(self.period_start.timestamp_micros().to_string());
        let digest = hex::encode(hasher.finalize());
        Id::generated(format!("b-{}", &digest[..24]))
    }

    /// The consumer column: `''` for the service-wide data.
    pub fn consumer_column(&self) -> &str {
        self.consumer.as_ref().map_or("", Id::as_str)
    }
}

/// Where a breach stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreachState {
    /// The period was missed, as its latest evaluation says.
    Open,
    /// Late data (or the lack of any) showed the period was not missed.
    Withdrawn,
}

impl BreachState {
    pub const ALL: &'static [(&'static str, BreachState)] = &[
        ("OPEN", BreachState::Open),
        ("WITHDRAWN", BreachState::Withdrawn),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BreachState::Open => "OPEN",
            BreachState::Withdrawn => "WITHDRAWN",
        }
    }
}

/// A credit owed for a missed period, as its evaluation computed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreachCredit {
    pub percent: f64,
    pub amount_minor: i64,
    pub currency: String,
}

/// A closed period's verdict on one objective, as far as breaches care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodVerdict {
    /// Under target: a breach, opened or revised.
    Breached,
    /// At or above target: an open breach is withdrawn.
    Met,
    /// Nothing to judge: never a breach; an open one is withdrawn.
    NoData,
}

/// What the evaluation of one objective over a closed period found: the
/// values a breach records.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub verdict: PeriodVerdict,
    /// The whole period.
    pub period: Interval,
    /// `None` with NO_DATA.
    pub attainment: Option<f64>,
    pub target: f64,
    /// Where the target came from.
    pub target_provenance: Provenance,
    /// What the period earns under the credit schedule; `None` without one.
    pub credit: Option<BreachCredit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    pub tenant: Id,
    pub id: Id,
    pub agreement: Id,
    pub objective_key: String,
    /// `None`: the service-wide data.
    pub consumer: Option<Id>,
    pub service: Id,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// `None` when the period turned out to hold no data.
    pub attainment: Option<f64>,
    pub target: f64,
    pub target_provenance: Provenance,
    pub credit: Option<BreachCredit>,
    /// 1 when opened, one more at each change.
    pub revision: i64,
    pub state: BreachState,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

/// What happened to a breach, as WatchBreaches tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreachChange {
    /// Its first revision.
    Opened,
    /// A new revision that leaves it open (or opens it again).
    Revised,
    /// A new revision that withdraws it.
    Withdrawn,
}

/// A breach written, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreachEvent {
    pub change: BreachChange,
    pub breach: Breach,
}

/// A page alert that started firing on an objective's open window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtRisk {
    pub tenant: Id,
    pub agreement: Id,
    pub objective_key: String,
    /// `None`: the service-wide data.
    pub consumer: Option<Id>,
    pub service: Id,
    /// `page-fast` or `page-slow`.
    pub alert: String,
    /// The burn rates of the evaluation that saw it fire: (lookback in
    /// seconds, rate; `None` when the lookback held no data).
    pub burn_rates: Vec<(i64, Option<f64>)>,
    /// The evaluation instant.
    pub time: DateTime<Utc>,
}

impl Breach {
    pub fn name(&self) -> String {
        breach_name(&self.tenant, &self.id)
    }

    /// The breach as it was first opened by `finding` (under target) at
    /// `now`.
    fn opened(tenant: &Id, key: &BreachKey, finding: &Finding, now: DateTime<Utc>) -> Breach {
        Breach {
            tenant: tenant.clone(),
            id: key.id(),
            agreement: key.agreement.clone(),
            objective_key: key.objective_key.clone(),
            consumer: key.consumer.clone(),
            service: key.service.clone(),
            period_start: finding.period.start,
            period_end: finding.period.end,
            attainment: finding.attainment,
            target: finding.target,
            target_provenance: finding.target_provenance.clone(),
            credit: finding.credit.clone(),
            revision: 1,
            state: BreachState::Open,
            create_time: now,
            update_time: now,
        }
    }

    /// The next revision: `finding`'s values in `state`.
    fn revised(&self, finding: &Finding, state: BreachState, now: DateTime<Utc>) -> Breach {
        Breach {
            period_end: finding.period.end,
            attainment: finding.attainment,
            target: finding.target,
            target_provenance: finding.target_provenance.clone(),
            credit: finding.credit.clone(),
            revision: self.revision + 1,
            state,
            update_time: now,
            ..self.clone()
        }
    }

    /// Whether the breach records `finding`'s values.
    fn records(&self, finding: &Finding) -> bool {
        self.period_end == finding.period.end
            && self.attainment == finding.attainment
            && self.target == finding.target
            && self.target_provenance == finding.target_provenance
            && self.credit == finding.credit
    }
}

/// What a new evaluation of a closed period (`finding`) does to the breach
/// of `key`, given the one stored (`existing`), at `now`: nothing (the same
/// verdict and values, or no breach to withdraw), or the breach to write and
/// what happened to it. A period under target opens a breach or revises it
/// when its values changed (opening a withdrawn one again); a period met or
/// without data withdraws an open breach, recording what it found; a
/// withdrawn breach stays as it is while the period stays met.
pub fn next_revision(
    tenant: &Id,
    key: &BreachKey,
    existing: Option<&Breach>,
    finding: &Finding,
    now: DateTime<Utc>,
) -> Option<BreachEvent> {
    let (change, breach) = match (finding.verdict, existing) {
        (PeriodVerdict::Breached, None) => (
            BreachChange::Opened,
            Breach::opened(tenant, key, finding, now),
        ),
        (PeriodVerdict::Breached, Some(b))
            if b.state == BreachState::Open && b.records(finding) =>
        {
            return None;
        }
        (PeriodVerdict::Breached, Some(b)) => (
            BreachChange::Revised,
            b.revised(finding, BreachState::Open, now),
        ),
        (PeriodVerdict::Met | PeriodVerdict::NoData, Some(b)) if b.state == BreachState::Open => (
            BreachChange::Withdrawn,
            b.revised(finding, BreachState::Withdrawn, now),
        ),
        (PeriodVerdict::Met | PeriodVerdict::NoData, _) => return None,
    };
    Some(BreachEvent { change, breach })
}

pub fn breach_name(tenant: &Id, id: &Id) -> String {
    format!("tenants/{tenant}/breaches/{id}")
}

/// One alert of one objective of one subject: whose state
/// (firing or not) decides when an AT_RISK event goes out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    pub agreement: Id,
    pub objective_key: String,
    /// `None`: the service-wide data.
    pub consumer: Option<Id>,
    pub service: Id,
    /// `page-fast` or `page-slow`.
    pub alert: String,
}

impl AlertKey {
    /// The consumer column: `''` for the service-wide data.
    pub fn consumer_column(&self) -> &str {
        self.consumer.as_ref().map_or("", Id::as_str)
    }
}

/// Whether an alert fires, as the newest evaluation of it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertState {
    /// Since when it fires; `None`: it does not.
    pub firing_since: Option<DateTime<Utc>>,
    /// The instant of the evaluation that said so.
    pub as_of: DateTime<Utc>,
}

impl AlertState {
    /// What an evaluation at `as_of` that saw the alert `firing` makes of
    /// `self` (the stored state): `None` when it changes nothing or is older
    /// than the stored one (an evaluation never undoes a newer one); else
    /// the new state, and whether the alert has just started firing (an
    /// AT_RISK event).
    pub fn after(self, firing: bool, as_of: DateTime<Utc>) -> Option<(AlertState, bool)> {
        if as_of <= self.as_of {
            return None;
        }
        let started = firing && self.firing_since.is_none();
        let firing_since = match (firing, self.firing_since) {
            (true, Some(since)) => Some(since),
            (true, None) => Some(as_of),
            (false, _) => None,
        };
        Some((
            AlertState {
                firing_since,
                as_of,
            },
            started,
        ))
    }
}

/// A breach's place in ListBreaches: newest periods first, then by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreachCursor {
    pub period_start: DateTime<Utc>,
    pub id: String,
}

impl BreachCursor {
    pub fn of(breach: &Breach) -> Self {
        BreachCursor {
            period_start: breach.period_start,
            id: breach.id.to_string(),
        }
    }

    /// `micros/id`, the form page tokens carry.
    pub fn encode(&self) -> String {
        format!("{}/{}", self.period_start.timestamp_micros(), self.id)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('/')?;
        Some(BreachCursor {
            period_start: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.to_string(),
        })
    }
}

/// A calendar window: a period kind in a time zone (`""`: UTC).
pub type CalendarWindow = (CalendarPeriod, String);

/// An ACTIVE SERVICE_LEVEL agreement: its service-wide data can breach over
/// the periods that overlap its validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLevel {
    pub agreement: Id,
    pub effective_from: DateTime<Utc>,
    /// The end of its validity, if it has one.
    pub until: Option<DateTime<Utc>>,
}

impl ServiceLevel {
    /// Whether `period` overlaps the agreement's validity.
    pub fn covers(&self, period: &Interval) -> bool {
        period.end > self.effective_from && self.until.is_none_or(|until| period.start < until)
    }
}

/// Who can breach on one service, and over which calendar windows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceScope {
    /// The ACTIVE SERVICE_LEVEL agreements covering it (one in force at a
    /// time): the service-wide subjects.
    pub service_levels: Vec<ServiceLevel>,
    /// The consumers with terms of their own on it: an override of one of
    /// those agreements, an ACTIVE CUSTOMER or INTERNAL agreement.
    pub consumers: BTreeSet<Id>,
    /// The calendar windows of every objective that can apply on it (none
    /// when all are rolling: nothing to close, but alerts to watch).
    pub windows: BTreeSet<CalendarWindow>,
}

/// What the period closer evaluates in one tenant, read from its ACTIVE
/// agreements and the overrides of its SERVICE_LEVEL ones. Consumers with
/// tagged data are found from the data itself (its markers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreachScope {
    pub services: BTreeMap<Id, ServiceScope>,
}

fn calendar(window: Option<&Window>) -> Option<CalendarWindow> {
    match window? {
        Window::Calendar { period, time_zone } => Some((*period, time_zone.clone())),
        Window::Rolling { .. } => None,
    }
}

impl BreachScope {
    /// The scope of `agreements` (ACTIVE ones; others are ignored) and the
    /// `overrides` of the SERVICE_LEVEL ones among them. An objective a
    /// consumer's agreement or override adds, or a window it patches, counts
    /// for the services of that agreement (the consumer's entitlement there
    /// holds the base objectives too).
    pub fn new(agreements: &[Agreement], overrides: &[Override]) -> BreachScope {
        use crate::domain::agreement::AgreementState;
        let mut scope = BreachScope::default();
        let active: Vec<&Agreement> = agreements
            .iter()
            .filter(|a| a.state == AgreementState::Active)
            .filter(|a| a.kind.counts_in_resolution())
            .collect();
        for a in &active {
            let windows: Vec<CalendarWindow> = a
                .objectives
                .iter()
                .filter_map(|o| calendar(o.window.as_ref()))
                .collect();
            for service in &a.services {
                let s = scope.services.entry(service.clone()).or_default();
                s.windows.extend(windows.iter().cloned());
                match (a.kind, &a.consumer) {
                    (AgreementKind::ServiceLevel, _) => s.service_levels.push(ServiceLevel {
                        agreement: a.id.clone(),
                        effective_from: a.effective_from,
                        until: match (a.effective_until, a.terminate_time) {
                            (Some(u), Some(t)) => Some(u.min(t)),
                            (u, t) => u.or(t),
                        },
                    }),
                    (_, Some(consumer)) => {
                        s.consumers.insert(consumer.clone());
                    }
                    (_, None) => {}
                }
            }
        }
        for o in overrides {
            let Some(base) = active
                .iter()
                .find(|a| a.id == o.agreement && a.kind.takes_overrides())
            else {
                continue;
            };
            let windows: Vec<CalendarWindow> = o
                .added_objectives
                .iter()
                .filter_map(|x| calendar(x.window.as_ref()))
                .chain(
                    o.objective_patches
                        .iter()
                        .filter_map(|p| calendar(p.window.as_ref())),
                )
                .collect();
            for service in &base.services {
                let s = scope.services.entry(service.clone()).or_default();
                s.consumers.insert(o.consumer.clone());
                s.windows.extend(windows.iter().cloned());
            }
        }
        // A service with no calendar window has no period to close, but
        // its rolling windows can still be at risk.
        scope
    }

    /// The calendar periods of `service`'s windows that overlap the UTC day
    /// starting at `day`, by start. A period lasts at least 23 hours, so
    /// the ones containing the day's start, its middle or its last instant
    /// are all of them.
    pub fn periods_touching(&self, service: &Id, day: DateTime<Utc>) -> Vec<Interval> {
        let Some(s) = self.services.get(service) else {
            return Vec::new();
        };
        let instants = [
            day,
            day + TimeDelta::hours(12),
            day + TimeDelta::days(1) - TimeDelta::microseconds(1),
        ];
        let mut periods = BTreeSet::new();
        for (period, tz) in &s.windows {
            let Ok(tz) = zone(tz) else { continue };
            for t in instants {
                periods.insert(calendar_period(*period, tz, t));
            }
        }
        periods.into_iter().collect()
    }

    /// The most recently closed period of each of `service`'s windows at
    /// `now`, by start.
    pub fn last_closed(&self, service: &Id, now: DateTime<Utc>) -> Vec<Interval> {
        let Some(s) = self.services.get(service) else {
            return Vec::new();
        };
        let mut periods = BTreeSet::new();
        for (period, tz) in &s.windows {
            let Ok(tz) = zone(tz) else { continue };
            let current = calendar_period(*period, tz, now);
            periods.insert(calendar_period(
                *period,
                tz,
                current.start - TimeDelta::microseconds(1),
            ));
        }
        periods.into_iter().collect()
    }

    /// When the first period of any window now open ends: when there is
    /// something new to close.
    pub fn next_end(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.services
            .values()
            .flat_map(|s| &s.windows)
            .filter_map(|(period, tz)| Some(calendar_period(*period, zone(tz).ok()?, now).end))
            .min()
    }
}

/// A late-data marker: the series of `service`'s `indicator` (`consumer`:
/// `''` for service-wide data, the party for tagged data) holds data in the
/// UTC day starting at `day`. Ingestion upserts one per day a batch touches,
/// in its transaction; the period closer evaluates the periods the day
/// overlaps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Marker {
    pub service: Id,
    pub indicator: String,
    pub consumer: String,
    pub day: DateTime<Utc>,
}

const DAY_MICROS: i64 = 86_400_000_000;

/// The UTC midnight starting the day of `t`.
pub fn utc_day(t: DateTime<Utc>) -> DateTime<Utc> {
    let us = t.timestamp_micros();
    DateTime::from_timestamp_micros(us - us.rem_euclid(DAY_MICROS)).unwrap_or(t)
}

/// The markers of `measurements`, sorted (the order rows are upserted in, so
/// that concurrent batches wait for each other rather than deadlock): the
/// day of each count and sample, every day a downtime spans.
pub fn markers<'a>(
    measurements: impl IntoIterator<Item = &'a Measurement>,
) -> std::collections::BTreeSet<Marker> {
    // Deduplicated on borrowed names first: a batch names a few series.
    let mut days = std::collections::BTreeSet::new();
    for m in measurements {
        let (first, last) = match m.value {
            Value::Downtime { start, end } => (start, end.max(start)),
            Value::Counts { .. } | Value::Sample(_) => (m.time, m.time),
        };
        let mut day = utc_day(first);
        loop {
            days.insert((&m.service, m.indicator.as_str(), m.series(), day));
            day += chrono::TimeDelta::microseconds(DAY_MICROS);
            // Downtime is half-open: a span ending at midnight stops before it.
            if day >= last {
                break;
            }
        }
    }
    days.into_iter()
        .map(|(service, indicator, consumer, day)| Marker {
            service: service.clone(),
            indicator: indicator.to_string(),
            consumer: consumer.to_string(),
            day,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::parse("id", s).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn key() -> BreachKey {
        BreachKey {
            agreement: id("sla"),
            objective_key: "availability".into(),
            consumer: None,
            service: id("payments"),
            period_start: at("2026-04-01T00:00:00Z"),
        }
    }

    fn finding(verdict: PeriodVerdict, attainment: Option<f64>) -> Finding {
        Finding {
            verdict,
            period: Interval::new(at("2026-04-01T00:00:00Z"), at("2026-05-01T00:00:00Z")),
            attainment,
            target: 0.999,
            target_provenance: Provenance {
                agreement: id("sla"),
                revision: id("r1"),
                override_id: None,
            },
            credit: None,
        }
    }

    #[test]
    fn the_id_is_a_digest_of_the_key_and_tells_keys_apart() {
        let k = key();
        let first = k.id();
        assert_eq!(first, key().id());
        assert!(first.as_str().starts_with("b-"));
        assert_eq!(first.as_str().len(), 26);
        let others = [
            BreachKey {
                consumer: Some(id("bank")),
                ..key()
            },
            BreachKey {
                objective_key: "latency".into(),
                ..key()
            },
            BreachKey {
                period_start: at("2026-04-01T00:00:00.000001Z"),
                ..key()
            },
            BreachKey {
                service: id("cards"),
                ..key()
            },
            BreachKey {
                agreement: id("deal"),
                ..key()
            },
        ];
        for other in others {
            assert_ne!(other.id(), first, "{other:?}");
        }
    }

    #[test]
    fn a_breached_period_opens_a_breach_once() {
        let t = id("acme");
        let now = at("2026-05-01T00:00:30Z");
        let found = finding(PeriodVerdict::Breached, Some(0.99));
        let opened = next_revision(&t, &key(), None, &found, now).expect("opened");
        assert_eq!(opened.change, BreachChange::Opened);
        assert_eq!(opened.breach.revision, 1);
        assert_eq!(opened.breach.state, BreachState::Open);
        assert_eq!(
            opened.breach.name(),
            format!("tenants/acme/breaches/{}", key().id())
        );
        // The same verdict with the same values writes nothing.
        let later = at("2026-05-01T00:01:00Z");
        assert_eq!(
            next_revision(&t, &key(), Some(&opened.breach), &found, later),
            None
        );
    }

    #[test]
    fn changed_values_revise_and_a_met_period_withdraws() {
        let t = id("acme");
        let now = at("2026-05-01T00:00:30Z");
        let first = next_revision(
            &t,
            &key(),
            None,
            &finding(PeriodVerdict::Breached, Some(0.99)),
            now,
        )
        .unwrap()
        .breach;
        let later = at("2026-05-02T00:00:00Z");
        let revised = next_revision(
            &t,
            &key(),
            Some(&first),
            &finding(PeriodVerdict::Breached, Some(0.995)),
            later,
        )
        .unwrap();
        assert_eq!(revised.change, BreachChange::Revised);
        assert_eq!(
            (revised.breach.revision, revised.breach.attainment),
            (2, Some(0.995))
        );
        assert_eq!(revised.breach.create_time, now);
        assert_eq!(revised.breach.update_time, later);
        let withdrawn = next_revision(
            &t,
            &key(),
            Some(&revised.breach),
            &finding(PeriodVerdict::Met, Some(0.9995)),
            later,
        )
        .unwrap();
        assert_eq!(withdrawn.change, BreachChange::Withdrawn);
        assert_eq!(
            (withdrawn.breach.revision, withdrawn.breach.state),
            (3, BreachState::Withdrawn)
        );
        // Met again: nothing more. Breached again: opened again, a revision.
        assert_eq!(
            next_revision(
                &t,
                &key(),
                Some(&withdrawn.breach),
                &finding(PeriodVerdict::Met, Some(0.9999)),
                later
            ),
            None
        );
        let reopened = next_revision(
            &t,
            &key(),
            Some(&withdrawn.breach),
            &finding(PeriodVerdict::Breached, Some(0.9995)),
            later,
        )
        .unwrap();
        assert_eq!(reopened.change, BreachChange::Revised);
        assert_eq!(
            (reopened.breach.revision, reopened.breach.state),
            (4, BreachState::Open)
        );
    }

    #[test]
    fn no_data_never_opens_a_breach_and_withdraws_an_open_one() {
        let t = id("acme");
        let now = at("2026-05-01T00:00:30Z");
        let nothing = finding(PeriodVerdict::NoData, None);
        assert_eq!(next_revision(&t, &key(), None, &nothing, now), None);
        assert_eq!(
            next_revision(
                &t,
                &key(),
                None,
                &finding(PeriodVerdict::Met, Some(1.0)),
                now
            ),
            None
        );
        let open = next_revision(
            &t,
            &key(),
            None,
            &finding(PeriodVerdict::Breached, Some(0.5)),
            now,
        )
        .unwrap()
        .breach;
        let withdrawn = next_revision(&t, &key(), Some(&open), &nothing, now).unwrap();
        assert_eq!(withdrawn.change, BreachChange::Withdrawn);
        assert_eq!(withdrawn.breach.attainment, None);
    }

    #[test]
    fn markers_name_each_utc_day_holding_data_once() {
        let m = |value: Value, time: &str, consumer: Option<&str>| Measurement {
            id: "m".into(),
            service: id("payments"),
            consumer: consumer.map(id),
            indicator: "i".into(),
            time: at(time),
            value,
        };
        let down = Value::Downtime {
            start: at("2026-04-01T22:00:00Z"),
            end: at("2026-04-04T00:00:00Z"),
        };
        let found: Vec<(String, DateTime<Utc>)> = markers(&[
            m(
                Value::Counts { good: 1, total: 1 },
                "2026-04-01T23:59:59Z",
                None,
            ),
            m(Value::Sample(1.0), "2026-04-01T00:00:00Z", None),
            m(
                Value::Counts { good: 1, total: 1 },
                "2026-04-01T12:00:00Z",
                Some("bank"),
            ),
            m(down, "2026-04-01T22:00:00Z", None),
        ])
        .into_iter()
        .map(|m| (m.consumer, m.day))
        .collect();
        assert_eq!(
            found,
            [
                (String::new(), at("2026-04-01T00:00:00Z")),
                (String::new(), at("2026-04-02T00:00:00Z")),
                (String::new(), at("2026-04-03T00:00:00Z")),
                ("bank".to_string(), at("2026-04-01T00:00:00Z")),
            ]
        );
    }

    #[test]
    fn an_alert_starts_firing_once_and_older_evaluations_change_nothing() {
        let t0 = at("2026-04-01T00:00:00Z");
        let quiet = AlertState {
            firing_since: None,
            as_of: t0,
        };
        let t1 = at("2026-04-01T00:00:05Z");
        let (firing, started) = quiet.after(true, t1).unwrap();
        assert!(started);
        assert_eq!(firing.firing_since, Some(t1));
        let t2 = at("2026-04-01T00:00:10Z");
        let (still, started) = firing.after(true, t2).unwrap();
        assert!(!started);
        assert_eq!(still.firing_since, Some(t1));
        // An evaluation older than the state it would replace is ignored.
        assert_eq!(still.after(false, t1), None);
        let (stopped, started) = still.after(false, at("2026-04-01T00:00:15Z")).unwrap();
        assert!(!started && stopped.firing_since.is_none());
    }

    #[test]
    fn cursors_round_trip() {
        let c = BreachCursor {
            period_start: at("2026-04-01T00:00:00.000001Z"),
            id: "b-0123".into(),
        };
        assert_eq!(BreachCursor::decode(&c.encode()), Some(c));
        assert_eq!(BreachCursor::decode("x/y"), None);
    }

    fn objective(window: Window) -> crate::domain::terms::Objective {
        crate::domain::terms::Objective {
            key: "availability".into(),
            display_name: String::new(),
            indicator: "requests".into(),
            kind: crate::domain::terms::ObjectiveKind::Ratio,
            target: 0.999,
            threshold: None,
            comparison: None,
            window: Some(window),
            slice_seconds: None,
        }
    }

    fn day_in(tz: &str) -> Window {
        Window::Calendar {
            period: CalendarPeriod::Day,
            time_zone: tz.into(),
        }
    }

    fn agreement(
        agreement_id: &str,
        kind: AgreementKind,
        consumer: Option<&str>,
        services: &[&str],
        objectives: Vec<crate::domain::terms::Objective>,
    ) -> Agreement {
        use crate::domain::agreement::{AgreementFields, AgreementState};
        let mut v = crate::error::Violations::new();
        let mut a = Agreement::new(
            &id("acme"),
            id(agreement_id),
            AgreementFields {
                kind: Some(kind),
                provider: Some(id("ops")),
                consumer: Some(consumer.map(id)),
                effective_from: Some(at("2026-01-01T00:00:00Z")),
                services: Some(services.iter().map(|s| id(s)).collect()),
                objectives: Some(objectives),
                ..Default::default()
            },
            at("2026-01-01T00:00:00Z"),
            &mut v,
            "agreement",
        )
        .unwrap_or_else(|| panic!("{v:?}"));
        a.state = AgreementState::Active;
        a
    }

    fn override_for(base: &str, consumer: &str, window: Option<Window>) -> Override {
        Override {
            tenant: id("acme"),
            agreement: id(base),
            id: id("o"),
            display_name: String::new(),
            consumer: id(consumer),
            effective_from: at("2026-01-01T00:00:00Z"),
            effective_until: None,
            objective_patches: vec![crate::domain::overrides::ObjectivePatch {
                key: "availability".into(),
                target: Some(0.9999),
                threshold: None,
                window,
            }],
            added_objectives: Vec::new(),
            support: None,
            credits: None,
            labels: Default::default(),
            meta: crate::domain::fields::Meta::new(at("2026-01-01T00:00:00Z")),
        }
    }

    #[test]
    fn the_scope_holds_service_levels_consumers_with_own_terms_and_calendar_windows() {
        let sla = agreement(
            "sla",
            AgreementKind::ServiceLevel,
            None,
            &["payments", "cards"],
            vec![objective(day_in(""))],
        );
        let deal = agreement(
            "deal",
            AgreementKind::Customer,
            Some("shop"),
            &["payments"],
            vec![objective(day_in("America/New_York"))],
        );
        let rolling = agreement(
            "rolling",
            AgreementKind::ServiceLevel,
            None,
            &["ledger"],
            vec![objective(Window::Rolling { seconds: 86_400 })],
        );
        let mut draft = agreement(
            "draft",
            AgreementKind::Customer,
            Some("other"),
            &["payments"],
            vec![objective(day_in(""))],
        );
        draft.state = crate::domain::agreement::AgreementState::Draft;
        let scope = BreachScope::new(
            &[sla, deal, rolling, draft],
            &[override_for("sla", "bank", None)],
        );
        assert_eq!(
            scope.services.keys().collect::<Vec<_>>(),
            [&id("cards"), &id("ledger"), &id("payments")]
        );
        assert!(scope.services[&id("ledger")].windows.is_empty());
        let payments = &scope.services[&id("payments")];
        assert_eq!(payments.service_levels.len(), 1);
        assert_eq!(payments.consumers, BTreeSet::from([id("bank"), id("shop")]));
        assert_eq!(payments.windows.len(), 2);
        assert_eq!(
            scope.services[&id("cards")].consumers,
            BTreeSet::from([id("bank")])
        );
    }

    #[test]
    fn a_utc_day_touches_one_utc_day_two_new_york_days_and_one_month() {
        let sla = agreement(
            "sla",
            AgreementKind::ServiceLevel,
            None,
            &["payments"],
            vec![
                objective(day_in("")),
                objective(day_in("America/New_York")),
                objective(Window::Calendar {
                    period: CalendarPeriod::Month,
                    time_zone: String::new(),
                }),
            ],
        );
        let scope = BreachScope::new(&[sla], &[]);
        let payments = id("payments");
        let periods = scope.periods_touching(&payments, at("2026-04-10T00:00:00Z"));
        assert_eq!(
            periods,
            [
                Interval::new(at("2026-04-01T00:00:00Z"), at("2026-05-01T00:00:00Z")),
                Interval::new(at("2026-04-09T04:00:00Z"), at("2026-04-10T04:00:00Z")),
                Interval::new(at("2026-04-10T00:00:00Z"), at("2026-04-11T00:00:00Z")),
                Interval::new(at("2026-04-10T04:00:00Z"), at("2026-04-11T04:00:00Z")),
            ]
        );
        let now = at("2026-04-10T03:00:00Z");
        assert_eq!(
            scope.last_closed(&payments, now),
            [
                Interval::new(at("2026-03-01T00:00:00Z"), at("2026-04-01T00:00:00Z")),
                Interval::new(at("2026-04-08T04:00:00Z"), at("2026-04-09T04:00:00Z")),
                Interval::new(at("2026-04-09T00:00:00Z"), at("2026-04-10T00:00:00Z")),
            ]
        );
        assert_eq!(scope.next_end(now), Some(at("2026-04-10T04:00:00Z")));
        assert!(scope.periods_touching(&id("cards"), now).is_empty());
    }

    #[test]
    fn a_service_level_covers_the_periods_overlapping_its_validity() {
        let level = ServiceLevel {
            agreement: id("sla"),
            effective_from: at("2026-04-10T12:00:00Z"),
            until: Some(at("2026-04-20T00:00:00Z")),
        };
        let day = |d: &str, e: &str| Interval::new(at(d), at(e));
        assert!(!level.covers(&day("2026-04-09T00:00:00Z", "2026-04-10T00:00:00Z")));
        assert!(level.covers(&day("2026-04-10T00:00:00Z", "2026-04-11T00:00:00Z")));
        assert!(level.covers(&day("2026-04-19T00:00:00Z", "2026-04-20T00:00:00Z")));
        assert!(!level.covers(&day("2026-04-20T00:00:00Z", "2026-04-21T00:00:00Z")));
    }
}
