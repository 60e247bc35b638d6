//! Protobuf <-> domain conversions for the terms agreements and overrides
//! carry. Decoding checks shapes (enums set, timestamps valid, oneofs chosen)
//! and reports each problem as a field violation; the domain checks meaning.
//! A repeated field over its limit is refused before its items are decoded.

use chrono::{DateTime, Utc};
use prost_types::{Duration, Timestamp};

use crate::domain::fields::validate_count;
use crate::domain::overrides::ObjectivePatch;
use crate::domain::terms::*;
use crate::error::{FieldViolation, Violations};
use crate::proto::v1 as pb;

pub fn time_out(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn time_in(field: &str, t: &Timestamp) -> Result<DateTime<Utc>, FieldViolation> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(FieldViolation::new(field, "nanos must be in [0, 1e9)"));
    }
    DateTime::from_timestamp(t.seconds, t.nanos as u32)
        .ok_or_else(|| FieldViolation::new(field, "is out of range"))
}

pub fn opt_time_in(
    v: &mut Violations,
    field: &str,
    t: &Option<Timestamp>,
) -> Option<DateTime<Utc>> {
    t.as_ref().and_then(|t| v.check(time_in(field, t)))
}

pub fn required_time_in(
    v: &mut Violations,
    field: &str,
    t: &Option<Timestamp>,
) -> Option<DateTime<Utc>> {
    match t {
        None => {
            v.add(field, "is required");
            None
        }
        Some(t) => v.check(time_in(field, t)),
    }
}

fn seconds_out(seconds: i64) -> Duration {
    Duration { seconds, nanos: 0 }
}

/// Durations are whole seconds; unset is `None`.
fn seconds_in(v: &mut Violations, field: &str, d: &Option<Duration>) -> Option<i64> {
    let d = d.as_ref()?;
    if d.nanos != 0 {
        v.add(field, "must be a whole number of seconds");
    }
    Some(d.seconds)
}

fn required_seconds_in(v: &mut Violations, field: &str, d: &Option<Duration>) -> i64 {
    seconds_in(v, field, d).unwrap_or_else(|| {
        v.add(field, "is required");
        0
    })
}

/// The items of a repeated field, or none when there are more than `max`:
/// the list is refused once, on its own field, and none of its items is
/// decoded (a 4 MiB message holds two million empty strings).
pub fn bounded<'a, T>(v: &mut Violations, field: &str, items: &'a [T], max: usize) -> &'a [T] {
    if validate_count(v, field, items.len(), max) {
        items
    } else {
        &[]
    }
}

/// Decodes a protobuf enum value; 0 (UNSPECIFIED) and unknown numbers are
/// violations.
fn enum_in<E: TryFrom<i32>, D>(
    v: &mut Violations,
    field: &str,
    raw: i32,
    map: impl Fn(E) -> Option<D>,
) -> Option<D> {
    let decoded = E::try_from(raw).ok().and_then(map);
    if decoded.is_none() {
        v.add(
            field,
            if raw == 0 {
                "is required".to_string()
            } else {
                format!("unknown value {raw}")
            },
        );
    }
    decoded
}

// --- objectives ----------------------------------------------------------

fn objective_kind_in(k: pb::ObjectiveKind) -> Option<ObjectiveKind> {
    match k {
        pb::ObjectiveKind::Unspecified => None,
        pb::ObjectiveKind::Ratio => Some(ObjectiveKind::Ratio),
        pb::ObjectiveKind::Threshold => Some(ObjectiveKind::Threshold),
        pb::ObjectiveKind::Timeslice => Some(ObjectiveKind::Timeslice),
        pb::ObjectiveKind::Uptime => Some(ObjectiveKind::Uptime),
    }
}

fn objective_kind_out(k: ObjectiveKind) -> pb::ObjectiveKind {
    match k {
        ObjectiveKind::Ratio => pb::ObjectiveKind::Ratio,
        ObjectiveKind::Threshold => pb::ObjectiveKind::Threshold,
        ObjectiveKind::Timeslice => pb::ObjectiveKind::Timeslice,
        ObjectiveKind::Uptime => pb::ObjectiveKind::Uptime,
    }
}

fn comparison_in(c: pb::Comparison) -> Option<Comparison> {
    match c {
        pb::Comparison::Unspecified => None,
        pb::Comparison::LessThan => Some(Comparison::LessThan),
        pb::Comparison::LessThanOrEqual => Some(Comparison::LessThanOrEqual),
        pb::Comparison::GreaterThan => Some(Comparison::GreaterThan),
        pb::Comparison::GreaterThanOrEqual => Some(Comparison::GreaterThanOrEqual),
    }
}

fn comparison_out(c: Option<Comparison>) -> pb::Comparison {
    match c {
        None => pb::Comparison::Unspecified,
        Some(Comparison::LessThan) => pb::Comparison::LessThan,
        Some(Comparison::LessThanOrEqual) => pb::Comparison::LessThanOrEqual,
        Some(Comparison::GreaterThan) => pb::Comparison::GreaterThan,
        Some(Comparison::GreaterThanOrEqual) => pb::Comparison::GreaterThanOrEqual,
    }
}

fn period_in(p: pb::CalendarPeriod) -> Option<CalendarPeriod> {
    match p {
        pb::CalendarPeriod::Unspecified => None,
        pb::CalendarPeriod::Day => Some(CalendarPeriod::Day),
        pb::CalendarPeriod::Week => Some(CalendarPeriod::Week),
        pb::CalendarPeriod::Month => Some(CalendarPeriod::Month),
        pb::CalendarPeriod::Quarter => Some(CalendarPeriod::Quarter),
        pb::CalendarPeriod::Year => Some(CalendarPeriod::Year),
    }
}

fn period_out(p: CalendarPeriod) -> pb::CalendarPeriod {
    match p {
        CalendarPeriod::Day => pb::CalendarPeriod::Day,
        CalendarPeriod::Week => pb::CalendarPeriod::Week,
        CalendarPeriod::Month => pb::CalendarPeriod::Month,
        CalendarPeriod::Quarter => pb::CalendarPeriod::Quarter,
        CalendarPeriod::Year => pb::CalendarPeriod::Year,
    }
}

pub fn window_in(v: &mut Violations, field: &str, w: &pb::Window) -> Option<Window> {
    match &w.window {
        None => {
            v.add(field, "choose rolling or calendar");
            None
        }
        Some(pb::window::Window::Rolling(r)) => Some(Window::Rolling {
            seconds: required_seconds_in(v, &format!("{field}.rolling.duration"), &r.duration),
        }),
        Some(pb::window::Window::Calendar(c)) => {
            let period = enum_in(v, &format!("{field}.calendar.period"), c.period, period_in)?;
            Some(Window::Calendar {
                period,
                time_zone: c.time_zone.clone(),
            })
        }
    }
}

pub fn window_out(w: &Window) -> pb::Window {
    pb::Window {
        window: Some(match w {
            Window::Rolling { seconds } => pb::window::Window::Rolling(pb::RollingWindow {
                duration: Some(seconds_out(*seconds)),
            }),
            Window::Calendar { period, time_zone } => {
                pb::window::Window::Calendar(pb::CalendarWindow {
                    period: period_out(*period).into(),
                    time_zone: time_zone.clone(),
                })
            }
        }),
    }
}

pub fn objective_in(v: &mut Violations, field: &str, o: &pb::Objective) -> Option<Objective> {
    let kind = enum_in(v, &format!("{field}.kind"), o.kind, objective_kind_in);
    let comparison = if o.comparison == 0 {
        None
    } else {
        enum_in(
            v,
            &format!("{field}.comparison"),
            o.comparison,
            comparison_in,
        )
    };
    let window = o
        .window
        .as_ref()
        .and_then(|w| window_in(v, &format!("{field}.window"), w));
    let Some(kind) = kind else {
        // Without a kind the objective cannot reach the domain: check what
        // does not depend on it here, so every problem is reported at once.
        validate_objective_basics(
            v,
            field,
            &o.key,
            &o.display_name,
            &o.indicator,
            o.target,
            window.as_ref(),
        );
        return None;
    };
    Some(Objective {
        key: o.key.clone(),
        display_name: o.display_name.clone(),
        indicator: o.indicator.clone(),
        kind,
        target: o.target,
        threshold: o.threshold,
        comparison,
        window,
        slice_seconds: seconds_in(v, &format!("{field}.slice"), &o.slice),
    })
}

pub fn objective_out(o: &Objective) -> pb::Objective {
    pb::Objective {
        key: o.key.clone(),
        display_name: o.display_name.clone(),
        indicator: o.indicator.clone(),
        kind: objective_kind_out(o.kind).into(),
        target: o.target,
        threshold: o.threshold,
        comparison: comparison_out(o.comparison).into(),
        window: o.window.as_ref().map(window_out),
        slice: o.slice_seconds.map(seconds_out),
    }
}

pub fn objectives_in(v: &mut Violations, field: &str, list: &[pb::Objective]) -> Vec<Objective> {
    bounded(v, field, list, MAX_OBJECTIVES)
        .iter()
        .enumerate()
        .filter_map(|(i, o)| objective_in(v, &format!("{field}[{i}]"), o))
        .collect()
}

pub fn objective_patch_in(
    v: &mut Violations,
    field: &str,
    p: &pb::ObjectivePatch,
) -> ObjectivePatch {
    ObjectivePatch {
        key: p.key.clone(),
        target: p.target,
        threshold: p.threshold,
        window: p
            .window
            .as_ref()
            .and_then(|w| window_in(v, &format!("{field}.window"), w)),
    }
}

pub fn objective_patch_out(p: &ObjectivePatch) -> pb::ObjectivePatch {
    pb::ObjectivePatch {
        key: p.key.clone(),
        target: p.target,
        threshold: p.threshold,
        window: p.window.as_ref().map(window_out),
    }
}

// --- support ---------------------------------------------------------------

fn day_in(d: pb::DayOfWeek) -> Option<DayOfWeek> {
    Some(match d {
        pb::DayOfWeek::Unspecified => return None,
        pb::DayOfWeek::Monday => DayOfWeek::Monday,
        pb::DayOfWeek::Tuesday => DayOfWeek::Tuesday,
        pb::DayOfWeek::Wednesday => DayOfWeek::Wednesday,
        pb::DayOfWeek::Thursday => DayOfWeek::Thursday,
        pb::DayOfWeek::Friday => DayOfWeek::Friday,
        pb::DayOfWeek::Saturday => DayOfWeek::Saturday,
        pb::DayOfWeek::Sunday => DayOfWeek::Sunday,
    })
}

fn day_out(d: DayOfWeek) -> pb::DayOfWeek {
    match d {
        DayOfWeek::Monday => pb::DayOfWeek::Monday,
        DayOfWeek::Tuesday => pb::DayOfWeek::Tuesday,
        DayOfWeek::Wednesday => pb::DayOfWeek::Wednesday,
        DayOfWeek::Thursday => pb::DayOfWeek::Thursday,
        DayOfWeek::Friday => pb::DayOfWeek::Friday,
        DayOfWeek::Saturday => pb::DayOfWeek::Saturday,
        DayOfWeek::Sunday => pb::DayOfWeek::Sunday,
    }
}

pub fn support_in(v: &mut Violations, field: &str, s: &pb::SupportTerms) -> SupportTerms {
    let calendar = s.calendar.as_ref().map(|c| BusinessCalendar {
        time_zone: c.time_zone.clone(),
        hours: bounded(
            v,
            &format!("{field}.calendar.hours"),
            &c.hours,
            BusinessCalendar::MAX_HOURS,
        )
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let day = enum_in(
                v,
                &format!("{field}.calendar.hours[{i}].day"),
                h.day,
                day_in,
            )?;
            Some(BusinessHours {
                day,
                start: h.start.clone(),
                end: h.end.clone(),
            })
        })
        .collect(),
        holidays: bounded(
            v,
            &format!("{field}.calendar.holidays"),
            &c.holidays,
            BusinessCalendar::MAX_HOLIDAYS,
        )
        .iter()
        .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
        .collect(),
    });
    let priorities = bounded(
        v,
        &format!("{field}.priorities"),
        &s.priorities,
        SupportTerms::MAX_PRIORITIES,
    )
    .iter()
    .enumerate()
    .map(|(i, p)| {
        let f = format!("{field}.priorities[{i}]");
        PriorityTarget {
            priority: p.priority.clone(),
            response_seconds: required_seconds_in(v, &format!("{f}.response"), &p.response),
            resolution_seconds: required_seconds_in(v, &format!("{f}.resolution"), &p.resolution),
        }
    })
    .collect();
    SupportTerms {
        calendar,
        priorities,
    }
}

pub fn support_out(s: &SupportTerms) -> pb::SupportTerms {
    pb::SupportTerms {
        calendar: s.calendar.as_ref().map(|c| pb::BusinessCalendar {
            time_zone: c.time_zone.clone(),
            hours: c
                .hours
                .iter()
                .map(|h| pb::BusinessHours {
                    day: day_out(h.day).into(),
                    start: h.start.clone(),
                    end: h.end.clone(),
                })
                .collect(),
            holidays: c
                .holidays
                .iter()
                .filter_map(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .map(|d| {
                    use chrono::Datelike;
                    pb::Date {
                        year: d.year(),
                        month: d.month() as i32,
                        day: d.day() as i32,
                    }
                })
                .collect(),
        }),
        priorities: s
            .priorities
            .iter()
            .map(|p| pb::PriorityTarget {
                priority: p.priority.clone(),
                response: Some(seconds_out(p.response_seconds)),
                resolution: Some(seconds_out(p.resolution_seconds)),
            })
            .collect(),
    }
}

// --- credits -----------------------------------------------------------------

fn money_in(m: &pb::Money) -> Money {
    Money {
        amount_minor: m.amount_minor,
        currency_code: m.currency_code.clone(),
    }
}

pub fn money_out(m: &Money) -> pb::Money {
    pb::Money {
        amount_minor: m.amount_minor,
        currency_code: m.currency_code.clone(),
    }
}

pub fn credits_in(v: &mut Violations, field: &str, c: &pb::CreditSchedule) -> CreditSchedule {
    CreditSchedule {
        tiers: bounded(
            v,
            &format!("{field}.tiers"),
            &c.tiers,
            CreditSchedule::MAX_TIERS,
        )
        .iter()
        .map(|t| CreditTier {
            attainment_below: t.attainment_below,
            credit_percent: t.credit_percent,
        })
        .collect(),
        cap_percent: c.cap_percent,
        fee: c.fee.as_ref().map(money_in),
        claim_window_seconds: seconds_in(v, &format!("{field}.claim_window"), &c.claim_window),
    }
}

pub fn credits_out(c: &CreditSchedule) -> pb::CreditSchedule {
    pb::CreditSchedule {
        tiers: c
            .tiers
            .iter()
            .map(|t| pb::CreditTier {
                attainment_below: t.attainment_below,
                credit_percent: t.credit_percent,
            })
            .collect(),
        cap_percent: c.cap_percent,
        fee: c.fee.as_ref().map(money_out),
        claim_window: c.claim_window_seconds.map(seconds_out),
    }
}

// --- exclusions and clauses --------------------------------------------------

pub fn exclusion_in(v: &mut Violations, field: &str, e: &pb::Exclusion) -> Option<Exclusion> {
    let schedule = match &e.schedule {
        None => {
            v.add(field, "choose recurring or one_off");
            return None;
        }
        Some(pb::exclusion::Schedule::Recurring(r)) => {
            let f = format!("{field}.recurring");
            let start = required_time_in(v, &format!("{f}.start"), &r.start);
            let duration_seconds = required_seconds_in(v, &format!("{f}.duration"), &r.duration);
            ExclusionSchedule::Recurring {
                rrule: r.rrule.clone(),
                start: start?,
                duration_seconds,
                time_zone: r.time_zone.clone(),
            }
        }
        Some(pb::exclusion::Schedule::OneOff(o)) => {
            let f = format!("{field}.one_off");
            let start = required_time_in(v, &format!("{f}.start_time"), &o.start_time);
            let end = required_time_in(v, &format!("{f}.end_time"), &o.end_time);
            ExclusionSchedule::OneOff {
                start_time: start?,
                end_time: end?,
            }
        }
    };
    Some(Exclusion {
        reason: e.reason.clone(),
        schedule,
    })
}

pub fn exclusion_out(e: &Exclusion) -> pb::Exclusion {
    pb::Exclusion {
        reason: e.reason.clone(),
        schedule: Some(match &e.schedule {
            ExclusionSchedule::Recurring {
                rrule,
                start,
                duration_seconds,
                time_zone,
            } => pb::exclusion::Schedule::Recurring(pb::RecurringWindow {
                rrule: rrule.clone(),
                start: Some(time_out(*start)),
                duration: Some(seconds_out(*duration_seconds)),
                time_zone: time_zone.clone(),
            }),
            ExclusionSchedule::OneOff {
                start_time,
                end_time,
            } => pb::exclusion::Schedule::OneOff(pb::OneOffWindow {
                start_time: Some(time_out(*start_time)),
                end_time: Some(time_out(*end_time)),
            }),
        }),
    }
}

fn clause_kind_in(k: pb::ClauseKind) -> Option<ClauseKind> {
    Some(match k {
        pb::ClauseKind::Unspecified => return None,
        pb::ClauseKind::Indemnification => ClauseKind::Indemnification,
        pb::ClauseKind::Insurance => ClauseKind::Insurance,
        pb::ClauseKind::LiabilityCap => ClauseKind::LiabilityCap,
        pb::ClauseKind::Termination => ClauseKind::Termination,
        pb::ClauseKind::Confidentiality => ClauseKind::Confidentiality,
        pb::ClauseKind::Other => ClauseKind::Other,
    })
}

fn clause_kind_out(k: ClauseKind) -> pb::ClauseKind {
    match k {
        ClauseKind::Indemnification => pb::ClauseKind::Indemnification,
        ClauseKind::Insurance => pb::ClauseKind::Insurance,
        ClauseKind::LiabilityCap => pb::ClauseKind::LiabilityCap,
        ClauseKind::Termination => pb::ClauseKind::Termination,
        ClauseKind::Confidentiality => pb::ClauseKind::Confidentiality,
        ClauseKind::Other => pb::ClauseKind::Other,
    }
}

pub fn clause_in(v: &mut Violations, field: &str, c: &pb::Clause) -> Option<Clause> {
    Some(Clause {
        kind: enum_in(v, &format!("{field}.kind"), c.kind, clause_kind_in)?,
        title: c.title.clone(),
        text: c.text.clone(),
        amount: c.amount.as_ref().map(money_in),
    })
}

pub fn clause_out(c: &Clause) -> pb::Clause {
    pb::Clause {
        kind: clause_kind_out(c.kind).into(),
        title: c.title.clone(),
        text: c.text.clone(),
        amount: c.amount.as_ref().map(money_out),
    }
}

/// Decodes an enum of a resource (party kind, agreement kind).
pub fn resource_enum_in<E: TryFrom<i32>, D>(
    v: &mut Violations,
    field: &str,
    raw: i32,
    map: impl Fn(E) -> Option<D>,
) -> Option<D> {
    enum_in(v, field, raw, map)
}
