//! The terms agreements carry (objectives, support, credits, exclusions,
//! clauses) and the rules each must satisfy. Shapes are checked when the API
//! decodes a request; the rules here are the meaning: ranges, ordering,
//! uniqueness, parseable rules and time zones.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::fields::{too_long, validate_count, validate_display_name, validate_text};
use crate::domain::names::Id;
use crate::error::Violations;

/// Objectives in one list: an agreement's, or an override's added ones. A
/// real SLA has dozens.
pub const MAX_OBJECTIVES: usize = 100;
/// IANA names are at most 32 characters today; a longer one is not looked up
/// and not repeated back.
pub const MAX_TIME_ZONE_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ObjectiveKind {
    Ratio,
    Threshold,
    Timeslice,
    Uptime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Comparison {
    LessThan,
    LessThanOrEqual,
    GreaterThan,
    GreaterThanOrEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CalendarPeriod {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// A rolling window of this many seconds.
    Rolling { seconds: i64 },
    Calendar {
        period: CalendarPeriod,
        time_zone: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub key: String,
    pub display_name: String,
    pub indicator: String,
    pub kind: ObjectiveKind,
    pub target: f64,
    pub threshold: Option<f64>,
    pub comparison: Option<Comparison>,
    pub window: Option<Window>,
    /// TIMESLICE only: slice length in seconds.
    pub slice_seconds: Option<i64>,
}

impl Objective {
    /// SLI names, such as `http_requests_good_ratio`.
    pub const MAX_INDICATOR_CHARS: usize = 256;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DayOfWeek {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHours {
    pub day: DayOfWeek,
    /// `HH:MM`, local time.
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessCalendar {
    pub time_zone: String,
    pub hours: Vec<BusinessHours>,
    /// ISO dates, `YYYY-MM-DD`.
    pub holidays: Vec<String>,
}

impl BusinessCalendar {
    /// Opening hours of a week: several ranges a day leave room to spare.
    pub const MAX_HOURS: usize = 100;
    /// Holidays of a few years ahead.
    pub const MAX_HOLIDAYS: usize = 1000;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityTarget {
    pub priority: String,
    pub response_seconds: i64,
    pub resolution_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportTerms {
    pub calendar: Option<BusinessCalendar>,
    pub priorities: Vec<PriorityTarget>,
}

impl SupportTerms {
    pub const MAX_PRIORITIES: usize = 20;
    /// A priority's name: `P1`.
    pub const MAX_PRIORITY_CHARS: usize = 16;
}

impl Money {
    /// ISO 4217 codes are three letters.
    pub const CURRENCY_CODE_CHARS: usize = 3;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount_minor: i64,
    pub currency_code: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditTier {
    pub attainment_below: f64,
    pub credit_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditSchedule {
    pub tiers: Vec<CreditTier>,
    pub cap_percent: Option<f64>,
    pub fee: Option<Money>,
    pub claim_window_seconds: Option<i64>,
}

impl CreditSchedule {
    pub const MAX_TIERS: usize = 20;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExclusionSchedule {
    Recurring {
        rrule: String,
        start: DateTime<Utc>,
        duration_seconds: i64,
        time_zone: String,
    },
    OneOff {
        start_time: DateTime<Utc>,
        end_time: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    pub reason: String,
    pub schedule: ExclusionSchedule,
}

impl Exclusion {
    pub const MAX_REASON_CHARS: usize = 500;
    /// Checked before the rule is parsed.
    pub const MAX_RRULE_CHARS: usize = 500;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClauseKind {
    Indemnification,
    Insurance,
    LiabilityCap,
    Termination,
    Confidentiality,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clause {
    pub kind: ClauseKind,
    pub title: String,
    pub text: String,
    pub amount: Option<Money>,
}

impl Clause {
    pub const MAX_TITLE_CHARS: usize = 200;
    /// About ten pages. An agreement's clauses also have a total
    /// (`Agreement::MAX_CLAUSE_TEXT_CHARS`): every revision, audit event and
    /// entitlement carries them.
    pub const MAX_TEXT_CHARS: usize = 32_768;
}

/// A single-field violation check, for readable validation code.
fn require(v: &mut Violations, ok: bool, field: impl FnOnce() -> String, description: &str) {
    if !ok {
        v.add(field(), description);
    }
}

/// `(0, 1]`, as objective targets and credit attainments are.
pub fn is_unit_fraction(value: f64) -> bool {
    value.is_finite() && value > 0.0 && value <= 1.0
}

pub fn validate_time_zone(v: &mut Violations, field: &str, tz: &str) {
    let chars = tz.chars().count();
    if chars > MAX_TIME_ZONE_CHARS {
        v.add(field, too_long(MAX_TIME_ZONE_CHARS, chars));
    } else if !tz.is_empty() && tz.parse::<chrono_tz::Tz>().is_err() {
        v.add(field, format!("`{tz}` is not an IANA time zone name"));
    }
}

pub fn validate_window(v: &mut Violations, field: &str, window: &Window) {
    match window {
        Window::Rolling { seconds } => require(
            v,
            *seconds > 0,
            || format!("{field}.rolling.duration"),
            "must be positive",
        ),
        Window::Calendar { time_zone, .. } => {
            validate_time_zone(v, &format!("{field}.calendar.time_zone"), time_zone)
        }
    }
}

/// The rules every objective follows whatever its kind; also applied to an
/// objective whose kind is missing, so one request reports all its problems.
pub fn validate_objective_basics(
    v: &mut Violations,
    field: &str,
    key: &str,
    display_name: &str,
    indicator: &str,
    target: f64,
    window: Option<&Window>,
) {
    validate_objective_key(v, &format!("{field}.key"), key);
    validate_display_name(v, &format!("{field}.display_name"), display_name);
    require(
        v,
        !indicator.trim().is_empty(),
        || format!("{field}.indicator"),
        "is required",
    );
    validate_text(
        v,
        &format!("{field}.indicator"),
        indicator,
        Objective::MAX_INDICATOR_CHARS,
    );
    require(
        v,
        is_unit_fraction(target),
        || format!("{field}.target"),
        "must be in (0, 1]",
    );
    match window {
        None => v.add(format!("{field}.window"), "is required"),
        Some(w) => validate_window(v, &format!("{field}.window"), w),
    }
}

pub fn validate_objective(v: &mut Violations, field: &str, o: &Objective) {
    validate_objective_basics(
        v,
        field,
        &o.key,
        &o.display_name,
        &o.indicator,
        o.target,
        o.window.as_ref(),
    );
    let bounded = matches!(o.kind, ObjectiveKind::Threshold | ObjectiveKind::Timeslice);
    match (bounded, o.threshold) {
        (true, None) => v.add(format!("{field}.threshold"), "is required for this kind"),
        (true, Some(t)) if !t.is_finite() || t <= 0.0 => {
            v.add(format!("{field}.threshold"), "must be positive")
        }
        (false, Some(_)) => v.add(
            format!("{field}.threshold"),
            "applies only to THRESHOLD and TIMESLICE objectives",
        ),
        _ => {}
    }
    match (bounded, o.comparison) {
        (true, None) => v.add(format!("{field}.comparison"), "is required for this kind"),
        (false, Some(_)) => v.add(
            format!("{field}.comparison"),
            "applies only to THRESHOLD and TIMESLICE objectives",
        ),
        _ => {}
    }
    match (o.kind, o.slice_seconds) {
        (ObjectiveKind::Timeslice, None) => v.add(
            format!("{field}.slice"),
            "is required for TIMESLICE objectives",
        ),
        (ObjectiveKind::Timeslice, Some(s)) if s <= 0 => {
            v.add(format!("{field}.slice"), "must be positive")
        }
        (ObjectiveKind::Ratio | ObjectiveKind::Threshold | ObjectiveKind::Uptime, Some(_)) => v
            .add(
                format!("{field}.slice"),
                "applies only to TIMESLICE objectives",
            ),
        _ => {}
    }
}

/// Keys are ids; returns whether `key` is one.
pub fn validate_objective_key(v: &mut Violations, field: &str, key: &str) -> bool {
    let chars = key.chars().count();
    if key.is_empty() {
        v.add(field, "is required");
    } else if chars > Id::MAX_LEN {
        v.add(field, too_long(Id::MAX_LEN, chars));
    } else if Id::parse(field, key).is_err() {
        v.add(
            field,
            format!("`{key}` is not a valid key: use lowercase [a-z][a-z0-9-]{{0,62}}"),
        );
    } else {
        return true;
    }
    false
}

/// Objectives must have unique keys; `taken` holds keys already used (by the
/// base agreement, for an override's added objectives).
pub fn validate_objectives(
    v: &mut Violations,
    field: &str,
    objectives: &[Objective],
    taken: &BTreeSet<&str>,
) {
    if !validate_count(v, field, objectives.len(), MAX_OBJECTIVES) {
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, o) in objectives.iter().enumerate() {
        let f = format!("{field}[{i}]");
        validate_objective(v, &f, o);
        if taken.contains(o.key.as_str()) || !seen.insert(o.key.as_str()) {
            v.add(format!("{f}.key"), format!("`{}` is used twice", o.key));
        }
    }
}

fn parse_hhmm(value: &str) -> Option<NaiveTime> {
    if value == "24:00" {
        return NaiveTime::from_hms_opt(23, 59, 59);
    }
    if value.len() != 5 {
        return None;
    }
    NaiveTime::parse_from_str(value, "%H:%M").ok()
}

pub fn validate_support(v: &mut Violations, field: &str, s: &SupportTerms) {
    if let Some(c) = &s.calendar {
        validate_time_zone(v, &format!("{field}.calendar.time_zone"), &c.time_zone);
        let hours = format!("{field}.calendar.hours");
        let hours_fit = validate_count(v, &hours, c.hours.len(), BusinessCalendar::MAX_HOURS);
        for (i, h) in c.hours.iter().enumerate().filter(|_| hours_fit) {
            let f = format!("{field}.calendar.hours[{i}]");
            let start = parse_hhmm(&h.start);
            let end = parse_hhmm(&h.end);
            require(v, start.is_some(), || format!("{f}.start"), "must be HH:MM");
            require(v, end.is_some(), || format!("{f}.end"), "must be HH:MM");
            if let (Some(start), Some(end)) = (start, end) {
                require(v, start < end, || format!("{f}.end"), "must be after start");
            }
        }
        let holidays = format!("{field}.calendar.holidays");
        let holidays_fit = validate_count(
            v,
            &holidays,
            c.holidays.len(),
            BusinessCalendar::MAX_HOLIDAYS,
        );
        for (i, d) in c.holidays.iter().enumerate().filter(|_| holidays_fit) {
            require(
                v,
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok(),
                || format!("{field}.calendar.holidays[{i}]"),
                "is not a valid date",
            );
        }
    }
    let priorities = format!("{field}.priorities");
    if !validate_count(
        v,
        &priorities,
        s.priorities.len(),
        SupportTerms::MAX_PRIORITIES,
    ) {
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, p) in s.priorities.iter().enumerate() {
        let f = format!("{field}.priorities[{i}]");
        let valid = !p.priority.is_empty()
            && p.priority.len() <= SupportTerms::MAX_PRIORITY_CHARS
            && p.priority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        require(
            v,
            valid,
            || format!("{f}.priority"),
            "must be 1 to 16 letters, digits, '-' or '_'",
        );
        if valid && !seen.insert(p.priority.as_str()) {
            v.add(
                format!("{f}.priority"),
                format!("`{}` is used twice", p.priority),
            );
        }
        require(
            v,
            p.response_seconds > 0,
            || format!("{f}.response"),
            "must be positive",
        );
        require(
            v,
            p.resolution_seconds > 0,
            || format!("{f}.resolution"),
            "must be positive",
        );
        if p.response_seconds > 0 && p.resolution_seconds > 0 {
            require(
                v,
                p.resolution_seconds >= p.response_seconds,
                || format!("{f}.resolution"),
                "must not be shorter than response",
            );
        }
    }
}

pub fn validate_money(v: &mut Violations, field: &str, m: &Money) {
    require(
        v,
        m.amount_minor >= 0,
        || format!("{field}.amount_minor"),
        "must not be negative",
    );
    let chars = m.currency_code.chars().count();
    if chars > Money::CURRENCY_CODE_CHARS {
        v.add(
            format!("{field}.currency_code"),
            too_long(Money::CURRENCY_CODE_CHARS, chars),
        );
    } else if iso_currency::Currency::from_code(&m.currency_code).is_none() {
        v.add(
            format!("{field}.currency_code"),
            format!("`{}` is not an ISO 4217 currency code", m.currency_code),
        );
    }
}

pub fn validate_credits(v: &mut Violations, field: &str, c: &CreditSchedule) {
    let tiers = format!("{field}.tiers");
    let tiers_fit = validate_count(v, &tiers, c.tiers.len(), CreditSchedule::MAX_TIERS);
    for (i, t) in c.tiers.iter().enumerate().filter(|_| tiers_fit) {
        let f = format!("{field}.tiers[{i}]");
        require(
            v,
            is_unit_fraction(t.attainment_below),
            || format!("{f}.attainment_below"),
            "must be in (0, 1]",
        );
        require(
            v,
            t.credit_percent.is_finite() && t.credit_percent > 0.0 && t.credit_percent <= 100.0,
            || format!("{f}.credit_percent"),
            "must be in (0, 100]",
        );
        if i > 0 {
            let prev = &c.tiers[i - 1];
            require(
                v,
                t.attainment_below < prev.attainment_below,
                || format!("{f}.attainment_below"),
                "tiers must be ordered from the highest attainment_below to the lowest",
            );
            require(
                v,
                t.credit_percent > prev.credit_percent,
                || format!("{f}.credit_percent"),
                "must be more than the previous tier's",
            );
        }
    }
    if let Some(cap) = c.cap_percent {
        require(
            v,
            cap.is_finite() && cap > 0.0 && cap <= 100.0,
            || format!("{field}.cap_percent"),
            "must be in (0, 100]",
        );
    }
    match &c.fee {
        Some(fee) => validate_money(v, &format!("{field}.fee"), fee),
        None if !c.tiers.is_empty() => {
            v.add(format!("{field}.fee"), "is required when there are tiers")
        }
        None => {}
    }
    if let Some(w) = c.claim_window_seconds {
        require(
            v,
            w > 0,
            || format!("{field}.claim_window"),
            "must be positive",
        );
    }
}

pub fn validate_exclusion(v: &mut Violations, field: &str, e: &Exclusion) {
    require(
        v,
        !e.reason.trim().is_empty(),
        || format!("{field}.reason"),
        "is required",
    );
    validate_text(
        v,
        &format!("{field}.reason"),
        &e.reason,
        Exclusion::MAX_REASON_CHARS,
    );
    match &e.schedule {
        ExclusionSchedule::Recurring {
            rrule,
            start,
            duration_seconds,
            time_zone,
        } => {
            let tz_field = format!("{field}.recurring.time_zone");
            validate_time_zone(v, &tz_field, time_zone);
            let tz = if time_zone.is_empty() {
                chrono_tz::UTC
            } else {
                time_zone.parse().unwrap_or(chrono_tz::UTC)
            };
            let rrule_field = format!("{field}.recurring.rrule");
            let rrule_chars = rrule.chars().count();
            if rrule_chars > Exclusion::MAX_RRULE_CHARS {
                // Refused before it is parsed.
                v.add(
                    rrule_field,
                    too_long(Exclusion::MAX_RRULE_CHARS, rrule_chars),
                );
            } else if let Err(why) = rrule
                .parse::<rrule::RRule<rrule::Unvalidated>>()
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    r.validate(start.with_timezone(&rrule::Tz::Tz(tz)))
                        .map_err(|e| e.to_string())
                })
            {
                v.add(rrule_field, format!("is not a valid RFC 5545 RRULE: {why}"));
            }
            require(
                v,
                *duration_seconds > 0,
                || format!("{field}.recurring.duration"),
                "must be positive",
            );
        }
        ExclusionSchedule::OneOff {
            start_time,
            end_time,
        } => require(
            v,
            end_time > start_time,
            || format!("{field}.one_off.end_time"),
            "must be after start_time",
        ),
    }
}

pub fn validate_clause(v: &mut Violations, field: &str, c: &Clause) {
    require(
        v,
        !c.title.trim().is_empty(),
        || format!("{field}.title"),
        "is required",
    );
    validate_text(
        v,
        &format!("{field}.title"),
        &c.title,
        Clause::MAX_TITLE_CHARS,
    );
    validate_text(v, &format!("{field}.text"), &c.text, Clause::MAX_TEXT_CHARS);
    let needs_amount = matches!(c.kind, ClauseKind::Insurance | ClauseKind::LiabilityCap);
    match (&c.amount, needs_amount) {
        (Some(m), true) => validate_money(v, &format!("{field}.amount"), m),
        (None, true) => v.add(
            format!("{field}.amount"),
            "is required for INSURANCE and LIABILITY_CAP clauses",
        ),
        (Some(_), false) => v.add(
            format!("{field}.amount"),
            "applies only to INSURANCE and LIABILITY_CAP clauses",
        ),
        (None, false) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(key: &str, target: f64) -> Objective {
        Objective {
            key: key.into(),
            display_name: String::new(),
            indicator: "availability".into(),
            kind: ObjectiveKind::Ratio,
            target,
            threshold: None,
            comparison: None,
            window: Some(Window::Rolling { seconds: 86_400 }),
            slice_seconds: None,
        }
    }

    fn fields(v: Violations) -> Vec<String> {
        match v.into_result() {
            Ok(()) => vec![],
            Err(crate::error::Error::InvalidArgument(list)) => {
                list.into_iter().map(|f| f.field).collect()
            }
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn targets_must_be_in_the_unit_interval() {
        for (target, ok) in [
            (0.999, true),
            (1.0, true),
            (0.0, false),
            (1.5, false),
            (f64::NAN, false),
        ] {
            let mut v = Violations::new();
            validate_objective(&mut v, "o", &ratio("a", target));
            assert_eq!(fields(v).is_empty(), ok, "{target}");
        }
    }

    #[test]
    fn threshold_objectives_need_a_bound_and_a_comparison() {
        let mut o = ratio("latency", 0.99);
        o.kind = ObjectiveKind::Threshold;
        let mut v = Violations::new();
        validate_objective(&mut v, "o", &o);
        assert_eq!(fields(v), ["o.threshold", "o.comparison"]);
    }

    #[test]
    fn uptime_objectives_take_no_bound_comparison_or_slice() {
        let mut o = ratio("uptime", 0.999);
        o.kind = ObjectiveKind::Uptime;
        let mut v = Violations::new();
        validate_objective(&mut v, "o", &o);
        assert!(fields(v).is_empty());
        o.threshold = Some(1.0);
        o.comparison = Some(Comparison::LessThan);
        o.slice_seconds = Some(60);
        let mut v = Violations::new();
        validate_objective(&mut v, "o", &o);
        assert_eq!(fields(v), ["o.threshold", "o.comparison", "o.slice"]);
    }

    #[test]
    fn duplicate_objective_keys_are_named() {
        let mut v = Violations::new();
        validate_objectives(
            &mut v,
            "os",
            &[ratio("a", 0.9), ratio("a", 0.9)],
            &BTreeSet::new(),
        );
        assert_eq!(fields(v), ["os[1].key"]);
    }

    #[test]
    fn credit_tiers_must_be_ordered() {
        let c = CreditSchedule {
            tiers: vec![
                CreditTier {
                    attainment_below: 0.99,
                    credit_percent: 25.0,
                },
                CreditTier {
                    attainment_below: 0.999,
                    credit_percent: 10.0,
                },
            ],
            cap_percent: Some(50.0),
            fee: Some(Money {
                amount_minor: 100,
                currency_code: "EUR".into(),
            }),
            claim_window_seconds: Some(86_400),
        };
        let mut v = Violations::new();
        validate_credits(&mut v, "c", &c);
        assert_eq!(
            fields(v),
            ["c.tiers[1].attainment_below", "c.tiers[1].credit_percent"]
        );
    }

    #[test]
    fn currencies_are_iso_4217() {
        let mut v = Violations::new();
        validate_money(
            &mut v,
            "m",
            &Money {
                amount_minor: 1,
                currency_code: "EURO".into(),
            },
        );
        assert_eq!(fields(v), ["m.currency_code"]);
    }

    #[test]
    fn rrules_and_time_zones_are_parsed() {
        let good = Exclusion {
            reason: "maintenance".into(),
            schedule: ExclusionSchedule::Recurring {
                rrule: "FREQ=WEEKLY;BYDAY=SU".into(),
                start: Utc::now(),
                duration_seconds: 3600,
                time_zone: "Europe/Paris".into(),
            },
        };
        let mut v = Violations::new();
        validate_exclusion(&mut v, "e", &good);
        assert!(fields(v).is_empty());

        let bad = Exclusion {
            reason: "maintenance".into(),
            schedule: ExclusionSchedule::Recurring {
                rrule: "FREQ=SOMETIMES".into(),
                start: Utc::now(),
                duration_seconds: 3600,
                time_zone: "Mars/Olympus".into(),
            },
        };
        let mut v = Violations::new();
        validate_exclusion(&mut v, "e", &bad);
        assert_eq!(fields(v), ["e.recurring.time_zone", "e.recurring.rrule"]);
    }

    #[test]
    fn long_rrules_are_refused_before_they_are_parsed() {
        let mut long = Exclusion {
            reason: "é".repeat(Exclusion::MAX_REASON_CHARS),
            schedule: ExclusionSchedule::Recurring {
                rrule: format!("FREQ=DAILY;INTERVAL={}1", "0".repeat(479)),
                start: Utc::now(),
                duration_seconds: 3600,
                time_zone: String::new(),
            },
        };
        let mut v = Violations::new();
        validate_exclusion(&mut v, "e", &long);
        assert!(fields(v).is_empty(), "500 characters are allowed");
        if let ExclusionSchedule::Recurring { rrule, .. } = &mut long.schedule {
            rrule.push('1');
        }
        long.reason.push('é');
        let mut v = Violations::new();
        validate_exclusion(&mut v, "e", &long);
        assert_eq!(fields(v), ["e.reason", "e.recurring.rrule"]);
    }

    #[test]
    fn oversized_lists_are_one_violation_on_the_list() {
        let c = CreditSchedule {
            // Out of order too: the items of a list over its limit are not checked.
            tiers: (0..=CreditSchedule::MAX_TIERS)
                .map(|_| CreditTier {
                    attainment_below: 2.0,
                    credit_percent: 0.0,
                })
                .collect(),
            cap_percent: None,
            fee: Some(Money {
                amount_minor: 1,
                currency_code: "EUR".into(),
            }),
            claim_window_seconds: None,
        };
        let mut v = Violations::new();
        validate_credits(&mut v, "c", &c);
        assert_eq!(fields(v), ["c.tiers"]);

        let objectives: Vec<Objective> = (0..=MAX_OBJECTIVES).map(|_| ratio("a", 0.9)).collect();
        let mut v = Violations::new();
        validate_objectives(&mut v, "os", &objectives, &BTreeSet::new());
        assert_eq!(fields(v), ["os"]);
    }

    #[test]
    fn clause_titles_and_texts_are_bounded() {
        let clause = |title: usize, text: usize| Clause {
            kind: ClauseKind::Other,
            title: "t".repeat(title),
            text: "é".repeat(text),
            amount: None,
        };
        let mut v = Violations::new();
        validate_clause(&mut v, "ok", &clause(200, Clause::MAX_TEXT_CHARS));
        validate_clause(&mut v, "c", &clause(201, Clause::MAX_TEXT_CHARS + 1));
        assert_eq!(fields(v), ["c.title", "c.text"]);
    }
}
