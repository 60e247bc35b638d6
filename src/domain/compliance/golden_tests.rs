//! Golden compliance cases. Every expected number is worked out by hand in
//! the comment above it, from COMPLIANCE.md's rules, never by the code under
//! test. Counts go through `read_counts`, which sums reports into the buckets
//! the store will return for `decompose(&plan.pieces)`, so that the plan's
//! cuts are tested with the arithmetic.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::exact::ratio;
use super::*;
use crate::domain::terms::{
    CalendarPeriod, Comparison, CreditSchedule, CreditTier, Exclusion, ExclusionSchedule, Money,
    Objective, ObjectiveKind, Window,
};

// ---------------------------------------------------------------- helpers

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn iv(a: &str, b: &str) -> Interval {
    Interval::new(utc(a), utc(b))
}

fn rolling_days(days: i64) -> Window {
    Window::Rolling {
        seconds: days * 86_400,
    }
}

fn calendar(period: CalendarPeriod, tz: &str) -> Window {
    Window::Calendar {
        period,
        time_zone: tz.into(),
    }
}

fn objective(kind: ObjectiveKind, target: f64, window: Window) -> Objective {
    Objective {
        key: "availability".into(),
        display_name: String::new(),
        indicator: "requests".into(),
        kind,
        target,
        threshold: None,
        comparison: None,
        window: Some(window),
        slice_seconds: None,
    }
}

fn timeslice(target: f64, window: Window, threshold: f64, slice_seconds: i64) -> Objective {
    Objective {
        threshold: Some(threshold),
        comparison: Some(Comparison::GreaterThanOrEqual),
        slice_seconds: Some(slice_seconds),
        ..objective(ObjectiveKind::Timeslice, target, window)
    }
}

fn one_off(a: &str, b: &str) -> Exclusion {
    Exclusion {
        reason: "migration".into(),
        schedule: ExclusionSchedule::OneOff {
            start_time: utc(a),
            end_time: utc(b),
        },
    }
}

fn recurring(rule: &str, start: &str, seconds: i64, tz: &str) -> Exclusion {
    Exclusion {
        reason: "maintenance".into(),
        schedule: ExclusionSchedule::Recurring {
            rrule: rule.into(),
            start: utc(start),
            duration_seconds: seconds,
            time_zone: tz.into(),
        },
    }
}

fn plan(
    o: &Objective,
    as_of: &str,
    period_containing: Option<&str>,
    explicit: Option<Interval>,
    exclusions: &[Exclusion],
) -> Plan {
    let window = EvaluationWindow::resolve(
        o.window.as_ref().unwrap(),
        utc(as_of),
        period_containing.map(utc),
        explicit,
    )
    .unwrap();
    Plan::new(o, window, exclusions).unwrap()
}

/// A counts report: time, good, total.
type Report = (&'static str, u64, u64);

/// What the store returns for `decompose(&plan.pieces)`: raw reports one
/// by one, rollup levels summed per UTC-aligned bucket.
fn read_counts(reports: &[Report], plan: &Plan) -> Vec<CountBucket> {
    let mut buckets = Vec::new();
    for (level, range) in decompose(&plan.pieces) {
        let mut sums: BTreeMap<DateTime<Utc>, (u64, u64)> = BTreeMap::new();
        for &(time, good, total) in reports {
            let t = utc(time);
            if !range.contains(t) {
                continue;
            }
            match level.length() {
                None => buckets.push(CountBucket {
                    interval: Interval::new(t, t + TimeDelta::microseconds(1)),
                    good,
                    total,
                }),
                Some(_) => {
                    let sum = sums.entry(level.bucket_start(t)).or_default();
                    sum.0 += good;
                    sum.1 += total;
                }
            }
        }
        let length = level.length().unwrap_or_default();
        buckets.extend(sums.into_iter().map(|(start, (good, total))| CountBucket {
            interval: Interval::new(start, start + length),
            good,
            total,
        }));
    }
    buckets
}

fn with_counts(o: &Objective, plan: &Plan, reports: &[Report]) -> ObjectiveEvaluation {
    evaluate(o, plan, Measurements::Counts(&read_counts(reports, plan))).unwrap()
}

fn with_downtime(o: &Objective, plan: &Plan, downtime: &[Interval]) -> ObjectiveEvaluation {
    evaluate(o, plan, Measurements::Downtime(downtime)).unwrap()
}

/// One report a minute from `first`, `minutes` of them, each good/total.
fn every_minute(first: &str, minutes: i64, good: u64, total: u64) -> Vec<(String, u64, u64)> {
    (0..minutes)
        .map(|m| {
            let t = utc(first) + TimeDelta::minutes(m);
            (t.to_rfc3339(), good, total)
        })
        .collect()
}

/// `read_counts` takes static strings; minute series are built at run time.
fn leak(reports: Vec<(String, u64, u64)>) -> Vec<Report> {
    reports
        .into_iter()
        .map(|(t, g, n)| (&*Box::leak(t.into_boxed_str()), g, n))
        .collect()
}

fn budget(e: &ObjectiveEvaluation) -> ErrorBudget {
    e.error_budget.expect("a budget")
}

fn exact(e: &ObjectiveEvaluation) -> num_rational::BigRational {
    e.attainment.as_ref().expect("an attainment").exact.clone()
}

fn rates(e: &ObjectiveEvaluation) -> Vec<Option<f64>> {
    e.burn_rates.iter().map(|b| b.rate).collect()
}

fn firing(e: &ObjectiveEvaluation) -> Vec<(&'static str, bool)> {
    e.alerts.iter().map(|a| (a.name, a.firing)).collect()
}

fn schedule(tiers: &[(f64, f64)], cap_percent: Option<f64>, fee: i64) -> CreditSchedule {
    CreditSchedule {
        tiers: tiers
            .iter()
            .map(|&(attainment_below, credit_percent)| CreditTier {
                attainment_below,
                credit_percent,
            })
            .collect(),
        cap_percent,
        fee: Some(Money {
            amount_minor: fee,
            currency_code: "EUR".into(),
        }),
        claim_window_seconds: None,
    }
}

// ------------------------------------------------------------ windows

#[test]
fn ratio_over_a_rolling_30_days_counts_from_its_first_instant_to_just_before_as_of() {
    // as_of 2026-04-30T12:00Z; 30 d = 2,592,000 s, so the window is
    // [2026-03-31T12:00Z, 2026-04-30T12:00Z) (March has 31 days).
    // In:  12:00:00 on 03-31 (990/1000), 04-15 (1000/1000),
    //      11:59:59.999999 on 04-30 (9/10).
    // Out: one microsecond before the start (0/1000), as_of itself (0/500).
    // Σgood = 990 + 1000 + 9 = 1999, Σtotal = 1000 + 1000 + 10 = 2010;
    // 1999/2010 = 0.99452… ≥ 0.99: MET.
    // Budget = 0.01 × 2010 = 20.1 events; spent 2010 − 1999 = 11;
    // remaining 9.1.
    let o = objective(ObjectiveKind::Ratio, 0.99, rolling_days(30));
    let p = plan(&o, "2026-04-30T12:00:00Z", None, None, &[]);
    assert_eq!(
        p.window.interval,
        iv("2026-03-31T12:00:00Z", "2026-04-30T12:00:00Z")
    );
    let e = with_counts(
        &o,
        &p,
        &[
            ("2026-03-31T11:59:59.999999Z", 0, 1000),
            ("2026-03-31T12:00:00Z", 990, 1000),
            ("2026-04-15T00:00:00Z", 1000, 1000),
            ("2026-04-30T11:59:59.999999Z", 9, 10),
            ("2026-04-30T12:00:00Z", 0, 500),
        ],
    );
    assert_eq!(e.status, Status::Met);
    assert_eq!(exact(&e), ratio(1999, 2010));
    assert_eq!((e.good, e.total), (1999.0, 2010.0));
    let b = budget(&e);
    assert_eq!((b.total, b.spent, b.remaining), (20.1, 11.0, 9.1));
    assert_eq!(b.unit.as_str(), "events");
}

#[test]
fn a_new_york_month_across_the_spring_change_is_743_hours_and_breached() {
    // March 2026 in America/New_York: 2026-03-01 00:00 EST = 05:00Z to
    // 2026-04-01 00:00 EDT = 04:00Z. 31 × 24 = 744 h, less the hour lost on
    // 03-08: 743 h = 2,674,800 s.
    // Downtime 04:30Z–05:30Z on 03-01 (30 min inside) and 03:30Z–04:30Z on
    // 04-01 (30 min inside): 3,600 s.
    // (2,674,800 − 3,600) / 2,674,800 = 2,671,200 / 2,674,800 = 0.998654…
    // < 0.999, and as_of 04-02 is past the end: BREACHED.
    // Budget = 0.001 × 2,674,800 = 2,674.8 s; spent 3,600;
    // remaining −925.2 s.
    let o = objective(
        ObjectiveKind::Uptime,
        0.999,
        calendar(CalendarPeriod::Month, "America/New_York"),
    );
    let p = plan(
        &o,
        "2026-04-02T00:00:00Z",
        Some("2026-03-15T00:00:00Z"),
        None,
        &[],
    );
    assert_eq!(
        p.window.period,
        iv("2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z")
    );
    assert_eq!(p.window.period.length(), TimeDelta::hours(743));
    assert_eq!(p.window.kind, WindowKind::Calendar { closed: true });
    let e = with_downtime(
        &o,
        &p,
        &[
            iv("2026-03-01T04:30:00Z", "2026-03-01T05:30:00Z"),
            iv("2026-04-01T03:30:00Z", "2026-04-01T04:30:00Z"),
        ],
    );
    assert_eq!(e.status, Status::Breached);
    assert_eq!(exact(&e), ratio(2_671_200, 2_674_800));
    let b = budget(&e);
    assert_eq!((b.total, b.spent, b.remaining), (2674.8, 3600.0, -925.2));
    assert_eq!(b.unit.as_str(), "seconds");
}

#[test]
fn the_new_york_fall_back_day_lasts_25_hours() {
    // 2026-11-01 in New York: 00:00 EDT = 04:00Z to 2026-11-02 00:00 EST =
    // 05:00Z: 25 h = 90,000 s.
    // 15 min of downtime = 900 s: (90,000 − 900) / 90,000 = 0.99 exactly, at
    // a 0.99 target: MET (over a 24-hour day it would be 0.98958…).
    // Budget = 0.01 × 90,000 = 900 s, all spent: remaining 0.
    let o = objective(
        ObjectiveKind::Uptime,
        0.99,
        calendar(CalendarPeriod::Day, "America/New_York"),
    );
    let p = plan(
        &o,
        "2026-11-03T00:00:00Z",
        Some("2026-11-01T12:00:00Z"),
        None,
        &[],
    );
    assert_eq!(
        p.window.period,
        iv("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z")
    );
    let e = with_downtime(
        &o,
        &p,
        &[iv("2026-11-01T06:00:00Z", "2026-11-01T06:15:00Z")],
    );
    assert_eq!(e.status, Status::Met);
    assert_eq!(exact(&e), ratio(99, 100));
    assert_eq!((e.good, e.total), (89_100.0, 90_000.0));
    let b = budget(&e);
    assert_eq!((b.total, b.spent, b.remaining), (900.0, 900.0, 0.0));
}

#[test]
fn an_iso_week_across_the_spring_change_starts_on_monday_and_lasts_167_hours() {
    // Sunday 2026-03-08 12:00Z lies in the ISO week of Monday 2026-03-02:
    // 00:00 EST = 05:00Z, to Monday 2026-03-09 00:00 EDT = 04:00Z:
    // 7 × 24 − 1 = 167 h.
    // So far (as_of 03-08 12:00Z, open): 997/1000 = 0.997 < 0.999:
    // BELOW_TARGET, not breached. The report at 04:59:59Z on 03-02 (Sunday
    // 23:59:59 EST) belongs to the week before.
    // page-fast factor = 2% × 167 h / 1 h = 3.34.
    let o = objective(
        ObjectiveKind::Ratio,
        0.999,
        calendar(CalendarPeriod::Week, "America/New_York"),
    );
    let p = plan(&o, "2026-03-08T12:00:00Z", None, None, &[]);
    assert_eq!(
        p.window.period,
        iv("2026-03-02T05:00:00Z", "2026-03-09T04:00:00Z")
    );
    assert_eq!(p.window.period.length(), TimeDelta::hours(167));
    assert_eq!(
        p.window.interval,
        iv("2026-03-02T05:00:00Z", "2026-03-08T12:00:00Z")
    );
    let e = with_counts(
        &o,
        &p,
        &[
            ("2026-03-02T04:59:59Z", 0, 1000),
            ("2026-03-03T00:00:00Z", 997, 1000),
        ],
    );
    assert_eq!(e.status, Status::BelowTarget);
    assert_eq!(exact(&e), ratio(997, 1000));
    assert_eq!(e.alerts[0].factor, 3.34);
}

#[test]
fn a_local_midnight_in_a_dst_gap_starts_the_day_when_the_gap_ends() {
    // America/Santiago springs forward at 2026-09-06 00:00 −04 (04:00Z) to
    // 01:00 −03: that midnight does not exist, so the day starts at 04:00Z
    // and ends at 2026-09-07 00:00 −03 = 03:00Z: 23 h. The day before ends
    // at the same 04:00Z, after 24 h.
    let santiago = zone("America/Santiago").unwrap();
    let sunday = calendar_period(CalendarPeriod::Day, santiago, utc("2026-09-06T12:00:00Z"));
    assert_eq!(sunday, iv("2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"));
    let saturday = calendar_period(CalendarPeriod::Day, santiago, utc("2026-09-06T03:59:59Z"));
    assert_eq!(saturday, iv("2026-09-05T04:00:00Z", "2026-09-06T04:00:00Z"));
}

// --------------------------------------------------------- exclusions

/// COMPLIANCE.md's worked example: weekly maintenance on Sundays 02:00–04:00
/// UTC and two downtimes in April 2026.
fn april_2026(exclusions: &[Exclusion]) -> ObjectiveEvaluation {
    let o = objective(
        ObjectiveKind::Uptime,
        0.999,
        calendar(CalendarPeriod::Month, ""),
    );
    let p = plan(
        &o,
        "2026-05-01T00:00:00Z",
        Some("2026-04-15T00:00:00Z"),
        None,
        exclusions,
    );
    with_downtime(
        &o,
        &p,
        &[
            iv("2026-04-12T01:30:00Z", "2026-04-12T03:15:00Z"),
            iv("2026-04-20T10:00:00Z", "2026-04-20T10:12:00Z"),
        ],
    )
}

#[test]
fn weekly_maintenance_in_utc_keeps_april_2026_met() {
    // April: 30 × 1,440 = 43,200 min. Sundays 5, 12, 19, 26, 02:00–04:00:
    // 4 × 120 = 480 min excluded. Eligible 43,200 − 480 = 42,720 min.
    // Downtime 01:30–03:15 on the 12th is 105 min, 75 of them (02:00–03:15)
    // in maintenance: 30 count; plus 12 min on the 20th: 42 min.
    // 42,678 / 42,720 = 0.999016… ≥ 0.999 (0.999 × 42,720 = 42,677.28): MET.
    // Budget 0.001 × 42,720 = 42.72 min = 2,563.2 s; spent 42 min =
    // 2,520 s; remaining 0.72 min = 43.2 s. Excluded 480 min = 28,800 s.
    let e = april_2026(&[recurring(
        "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2",
        "2026-01-04T02:00:00Z",
        7200,
        "",
    )]);
    assert_eq!(e.status, Status::Met);
    assert_eq!(exact(&e), ratio(42_678, 42_720));
    assert_eq!((e.good, e.total), (42_678.0 * 60.0, 42_720.0 * 60.0));
    let b = budget(&e);
    assert_eq!((b.total, b.spent, b.remaining), (2563.2, 2520.0, 43.2));
    assert_eq!(e.excluded_seconds, 28_800.0);
    assert_eq!(e.exclusions_applied.len(), 4);
    assert_eq!(
        e.exclusions_applied[1],
        iv("2026-04-12T02:00:00Z", "2026-04-12T04:00:00Z")
    );
}

#[test]
fn without_its_maintenance_april_2026_is_breached() {
    // Downtime 105 + 12 = 117 min of 43,200: 43,083 / 43,200 = 0.997291…
    // < 0.999: BREACHED. Budget 43.2 min = 2,592 s; spent 117 min =
    // 7,020 s; remaining −4,428 s.
    let e = april_2026(&[]);
    assert_eq!(e.status, Status::Breached);
    assert_eq!(exact(&e), ratio(43_083, 43_200));
    let b = budget(&e);
    assert_eq!((b.total, b.spent, b.remaining), (2592.0, 7020.0, -4428.0));
    assert_eq!(e.excluded_seconds, 0.0);
}

#[test]
fn a_maintenance_start_in_the_dst_gap_is_dropped_not_moved() {
    // Daily 02:30 New York, 30 min, from 2026-03-06 02:30 EST (07:30Z).
    // Explicit interval [03-07 00:00Z, 03-10 00:00Z) = 72 h = 259,200 s.
    // 03-07 02:30 EST = 07:30Z–08:00Z; 03-08 02:30 does not exist (02:00
    // jumps to 03:00 EDT): dropped; 03-09 02:30 EDT = 06:30Z–07:00Z.
    // Excluded 3,600 s; eligible 255,600 s.
    // Downtime 03-08 07:30Z–08:00Z (03:30–04:00 EDT, where a library that
    // moves the instance past the gap would exclude it): 1,800 s count.
    // 253,800 / 255,600 = 0.992957… ≥ 0.99: MET.
    // Budget 0.01 × 255,600 = 2,556 s; spent 1,800; remaining 756.
    let o = objective(
        ObjectiveKind::Uptime,
        0.99,
        calendar(CalendarPeriod::Day, "America/New_York"),
    );
    let asked = iv("2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z");
    let maintenance = recurring(
        "FREQ=DAILY",
        "2026-03-06T07:30:00Z",
        1800,
        "America/New_York",
    );
    let p = plan(
        &o,
        "2026-03-10T00:00:00Z",
        None,
        Some(asked),
        &[maintenance],
    );
    assert_eq!(p.window.kind, WindowKind::Explicit { closed: true });
    let e = with_downtime(
        &o,
        &p,
        &[iv("2026-03-08T07:30:00Z", "2026-03-08T08:00:00Z")],
    );
    assert_eq!(
        e.exclusions_applied,
        [
            iv("2026-03-07T07:30:00Z", "2026-03-07T08:00:00Z"),
            iv("2026-03-09T06:30:00Z", "2026-03-09T07:00:00Z"),
        ]
    );
    assert_eq!((e.good, e.total), (253_800.0, 255_600.0));
    assert_eq!(e.status, Status::Met);
    let b = budget(&e);
    assert_eq!((b.total, b.spent, b.remaining), (2556.0, 1800.0, 756.0));
}

#[test]
fn overlapping_and_clipped_downtime_counts_once() {
    // Day 2026-06-10 UTC, 86,400 s. Reports:
    //   23:50 on 06-09 – 00:10: 10 min inside;
    //   08:00–08:30 and 08:15–08:45 overlap: union 08:00–08:45 = 45 min;
    //   08:40–08:42 lies inside that union: nothing more;
    //   23:55 – 00:05 on 06-11: 5 min inside.
    // Downtime 60 min = 3,600 s; 82,800 / 86,400 = 23/24 = 0.9583… < 0.99:
    // BREACHED. Budget 864 s; spent 3,600; remaining −2,736.
    let o = objective(
        ObjectiveKind::Uptime,
        0.99,
        calendar(CalendarPeriod::Day, ""),
    );
    let p = plan(
        &o,
        "2026-06-11T00:00:00Z",
        Some("2026-06-10T12:00:00Z"),
        None,
        &[],
    );
    let e = with_downtime(
        &o,
        &p,
        &[
            iv("2026-06-09T23:50:00Z", "2026-06-10T00:10:00Z"),
            iv("2026-06-10T08:15:00Z", "2026-06-10T08:45:00Z"),
            iv("2026-06-10T08:00:00Z", "2026-06-10T08:30:00Z"),
            iv("2026-06-10T08:40:00Z", "2026-06-10T08:42:00Z"),
            iv("2026-06-10T23:55:00Z", "2026-06-11T00:05:00Z"),
        ],
    );
    assert_eq!(exact(&e), ratio(23, 24));
    assert_eq!(e.status, Status::Breached);
    let b = budget(&e);
    assert_eq!((b.total, b.spent, b.remaining), (864.0, 3600.0, -2736.0));
}

#[test]
fn ratio_data_inside_a_maintenance_window_is_dropped_to_the_microsecond() {
    // Day 2026-04-15 UTC; maintenance 03:00:00–03:00:45 (45 s).
    // 01:00:00 1000/1000 counts; 03:00:30 0/1000 is inside: dropped;
    // 03:00:50 500/1000 shares its minute with the dropped report but is
    // outside: counts. Σ 1500/2000 = 0.75 ≥ 0.7: MET.
    // Budget 0.3 × 2000 = 600 events; spent 500; remaining 100.
    // The minute 03:00–03:01 is read from raw rows: its edges are not
    // minute-aligned.
    let o = objective(ObjectiveKind::Ratio, 0.7, calendar(CalendarPeriod::Day, ""));
    let p = plan(
        &o,
        "2026-04-16T00:00:00Z",
        Some("2026-04-15T12:00:00Z"),
        None,
        &[one_off("2026-04-15T03:00:00Z", "2026-04-15T03:00:45Z")],
    );
    assert!(decompose(&p.pieces).contains(&(
        Level::Raw,
        iv("2026-04-15T03:00:00Z", "2026-04-15T03:01:00Z")
    )));
    let e = with_counts(
        &o,
        &p,
        &[
            ("2026-04-15T01:00:00Z", 1000, 1000),
            ("2026-04-15T03:00:30Z", 0, 1000),
            ("2026-04-15T03:00:50Z", 500, 1000),
        ],
    );
    assert_eq!(exact(&e), ratio(3, 4));
    assert_eq!(e.status, Status::Met);
    assert_eq!(e.excluded_seconds, 45.0);
    let b = budget(&e);
    assert_eq!((b.total, b.spent, b.remaining), (600.0, 500.0, 100.0));
}

// ------------------------------------------------------- objective kinds

#[test]
fn one_service_wide_stream_is_judged_against_two_targets() {
    // 7-day rolling window, 99,500 good of 100,000 = 0.995.
    // Target 0.999: BELOW_TARGET (rolling windows never breach); budget
    // 0.001 × 100,000 = 100, spent 500, remaining −400.
    // Target 0.99: MET; budget 1,000, spent 500, remaining 500.
    let reports = [("2026-04-28T00:00:00Z", 99_500, 100_000)];
    let strict = objective(ObjectiveKind::Ratio, 0.999, rolling_days(7));
    let lenient = objective(ObjectiveKind::Ratio, 0.99, rolling_days(7));
    let p = plan(&strict, "2026-04-30T00:00:00Z", None, None, &[]);
    let s = with_counts(&strict, &p, &reports);
    let l = with_counts(&lenient, &p, &reports);
    assert_eq!((s.status, l.status), (Status::BelowTarget, Status::Met));
    let (sb, lb) = (budget(&s), budget(&l));
    assert_eq!((sb.total, sb.spent, sb.remaining), (100.0, 500.0, -400.0));
    assert_eq!((lb.total, lb.spent, lb.remaining), (1000.0, 500.0, 500.0));
}

#[test]
fn attainment_exactly_at_target_is_met_where_doubles_would_miss_it() {
    // COMPLIANCE.md: 30-day rolling UPTIME, 259.2 s of downtime.
    // 259.2 / 2,592,000 = 0.0001, so attainment = 0.9999 exactly = target:
    // MET. In doubles (2,592,000 − 259.2) / 2,592,000 = 0.9998999999999999.
    // Budget 0.0001 × 2,592,000 = 259.2 s, all spent: remaining 0.
    let o = objective(ObjectiveKind::Uptime, 0.9999, rolling_days(30));
    let p = plan(&o, "2026-04-30T00:00:00Z", None, None, &[]);
    let down_from = utc("2026-04-29T00:00:00Z");
    let e = with_downtime(
        &o,
        &p,
        &[Interval::new(
            down_from,
            down_from + TimeDelta::microseconds(259_200_000),
        )],
    );
    assert_eq!(e.status, Status::Met);
    assert_eq!(exact(&e), ratio(9999, 10_000));
    assert_eq!(e.attainment.as_ref().unwrap().value, 0.9999);
    // The doubles on the wire, divided, fall short: the verdict is not
    // taken from them.
    assert_eq!((e.good, e.total), (2_591_740.8, 2_592_000.0));
    assert!(e.good / e.total < 0.9999);
    let b = budget(&e);
    assert_eq!((b.total, b.spent, b.remaining), (259.2, 259.2, 0.0));
}

#[test]
fn threshold_counts_the_samples_at_or_under_the_bound() {
    // Latency ≤ 0.3 s, target 0.9, rolling 1 day at 2026-04-30T12:00Z.
    // In the window: 0.3 (equal: good), 0.30000000000000004 (the next
    // double up: bad), eight of 0.25 (good): 9 / 10 = 0.9: MET.
    // Budget 0.1 × 10 = 1 sample; spent 1; remaining 0.
    // A 9.0 at 11:59:59 the day before is outside the window but inside the
    // 3-day lookback. Burn rates: nothing in the last 6 h (None for 5 m to
    // 6 h); 1 d: (1/10) / 0.1 = 1; 3 d: (2/11) / 0.1 = 20/11.
    let mut o = objective(ObjectiveKind::Threshold, 0.9, rolling_days(1));
    o.threshold = Some(0.3);
    o.comparison = Some(Comparison::LessThanOrEqual);
    let p = plan(&o, "2026-04-30T12:00:00Z", None, None, &[]);
    let at = |m: i64| utc("2026-04-30T01:00:00Z") + TimeDelta::minutes(m);
    let mut samples = vec![
        Sample {
            time: utc("2026-04-29T11:59:59Z"),
            value: 9.0,
        },
        Sample {
            time: at(0),
            value: 0.3,
        },
        Sample {
            time: at(1),
            value: 0.30000000000000004,
        },
    ];
    samples.extend((2..10).map(|m| Sample {
        time: at(m),
        value: 0.25,
    }));
    let e = evaluate(&o, &p, Measurements::Samples(&samples)).unwrap();
    assert_eq!(e.status, Status::Met);
    assert_eq!(exact(&e), ratio(9, 10));
    assert_eq!((e.good, e.total), (9.0, 10.0));
    let b = budget(&e);
    assert_eq!(
        (b.total, b.spent, b.remaining, b.unit.as_str()),
        (1.0, 1.0, 0.0, "samples")
    );
    assert_eq!(
        rates(&e),
        [None, None, None, None, None, Some(1.0), Some(20.0 / 11.0)]
    );
}

/// February 2026 in UTC, one-hour slices, a slice is good at Σgood/Σtotal ≥
/// 0.95.
fn february_slices() -> Objective {
    timeslice(0.99, calendar(CalendarPeriod::Month, ""), 0.95, 3600)
}

#[test]
fn a_timeslice_month_counts_good_slices_from_summed_counts() {
    // 28 × 24 = 672 slices.
    //   02-03 10:00: 940/1000 = 0.94 < 0.95: bad.
    //   02-10 05:00: 1/2 and 998/998: Σ 999/1000 = 0.999: good (the mean of
    //                the two ratios, 0.75, would call it bad).
    //   02-20 00:00: 0/0: no data: good.
    //   02-25 12:00: 900/1000 at 12:59:59.999999: bad; 13:00:00 starts the
    //                next slice (1000/1000, good).
    // 670 / 672 = 0.99702… ≥ 0.99: MET.
    // Budget (1 − 0.99) × 672 × 3,600 s = 24,192 s; spent 2 × 3,600 =
    // 7,200; remaining 16,992.
    let o = february_slices();
    let p = plan(
        &o,
        "2026-03-01T00:00:00Z",
        Some("2026-02-14T00:00:00Z"),
        None,
        &[],
    );
    // Every piece is one slice, read as an hour bucket; only the last hour
    // is also cut by the 30 m and 5 m lookbacks (23:30, 23:55): minutes.
    assert_eq!(
        decompose(&p.pieces),
        [
            (
                Level::Hour,
                iv("2026-02-01T00:00:00Z", "2026-02-28T23:00:00Z")
            ),
            (
                Level::Minute,
                iv("2026-02-28T23:00:00Z", "2026-03-01T00:00:00Z")
            ),
        ]
    );
    let e = with_counts(
        &o,
        &p,
        &[
            ("2026-02-03T10:15:00Z", 940, 1000),
            ("2026-02-10T05:10:00Z", 1, 2),
            ("2026-02-10T05:20:00Z", 998, 998),
            ("2026-02-20T00:30:00Z", 0, 0),
            ("2026-02-25T12:59:59.999999Z", 900, 1000),
            ("2026-02-25T13:00:00Z", 1000, 1000),
        ],
    );
    assert_eq!(e.status, Status::Met);
    assert_eq!((e.good, e.total), (670.0, 672.0));
    let b = budget(&e);
    assert_eq!(
        (b.total, b.spent, b.remaining, b.unit.as_str()),
        (24_192.0, 7200.0, 16_992.0, "seconds")
    );
}

#[test]
fn an_open_timeslice_period_counts_its_complete_slices_not_excluded_ones() {
    // So far at 2026-02-10T05:30Z: complete slices 02-01 00:00 to
    // 02-10 05:00 = 9 × 24 + 5 = 221; the 05:00 slice is partial and its
    // 0/1000 does not count.
    // Maintenance 02-05 00:00–02:00 covers two slices: dropped (with the
    // 0/1000 inside them): 219 slices. Maintenance 02-06 00:30–01:00 covers
    // half a slice: the slice stays, its 0/1000 at 00:40 is dropped and its
    // 1000/1000 at 00:10 makes it good.
    // Bad: 02-03 10:00 (940/1000). 218 / 219 = 0.99543… ≥ 0.99: MET.
    // Budget 0.01 × 219 × 3,600 = 7,884 s; spent 3,600; remaining 4,284.
    // Excluded so far: 7,200 + 1,800 = 9,000 s.
    let o = february_slices();
    let p = plan(
        &o,
        "2026-02-10T05:30:00Z",
        None,
        None,
        &[
            one_off("2026-02-05T00:00:00Z", "2026-02-05T02:00:00Z"),
            one_off("2026-02-06T00:30:00Z", "2026-02-06T01:00:00Z"),
        ],
    );
    let e = with_counts(
        &o,
        &p,
        &[
            ("2026-02-03T10:15:00Z", 940, 1000),
            ("2026-02-05T00:30:00Z", 0, 1000),
            ("2026-02-06T00:10:00Z", 1000, 1000),
            ("2026-02-06T00:40:00Z", 0, 1000),
            ("2026-02-10T05:10:00Z", 0, 1000),
        ],
    );
    assert_eq!((e.good, e.total), (218.0, 219.0));
    assert_eq!(e.status, Status::Met);
    assert_eq!(e.excluded_seconds, 9000.0);
    let b = budget(&e);
    assert_eq!((b.total, b.spent, b.remaining), (7884.0, 3600.0, 4284.0));
}

#[test]
fn no_data_has_no_attainment_no_budget_no_burn_rate_and_no_credit() {
    // RATIO with no counts, RATIO with only 0/0, THRESHOLD with no sample,
    // TIMESLICE with no slice holding counts: NO_DATA, even in a closed
    // period, and a tier "below 0.999" pays nothing.
    let closed = |o: &Objective| {
        plan(
            o,
            "2026-05-01T00:00:00Z",
            Some("2026-04-15T00:00:00Z"),
            None,
            &[],
        )
    };
    let ratio_o = objective(
        ObjectiveKind::Ratio,
        0.999,
        calendar(CalendarPeriod::Month, ""),
    );
    let mut threshold_o = objective(
        ObjectiveKind::Threshold,
        0.999,
        calendar(CalendarPeriod::Month, ""),
    );
    threshold_o.threshold = Some(0.3);
    threshold_o.comparison = Some(Comparison::LessThan);
    let slices_o = timeslice(0.999, calendar(CalendarPeriod::Month, ""), 0.95, 3600);
    let evaluations = [
        with_counts(&ratio_o, &closed(&ratio_o), &[]),
        with_counts(
            &ratio_o,
            &closed(&ratio_o),
            &[("2026-04-10T00:00:00Z", 0, 0)],
        ),
        evaluate(
            &threshold_o,
            &closed(&threshold_o),
            Measurements::Samples(&[]),
        )
        .unwrap(),
        with_counts(
            &slices_o,
            &closed(&slices_o),
            &[("2026-04-10T00:00:00Z", 0, 0)],
        ),
    ];
    let tiers = schedule(&[(0.999, 10.0)], None, 100_000);
    for e in &evaluations {
        assert_eq!(e.status, Status::NoData);
        assert!(e.attainment.is_none());
        assert!(e.error_budget.is_none());
        assert!(e.burn_rates.iter().all(|b| b.rate.is_none()));
        assert!(e.alerts.iter().all(|a| !a.firing));
        assert_eq!(credit(e, &tiers).unwrap().amount_minor, 0);
    }
}

// --------------------------------------------------- burn rates and alerts

/// 30-day rolling RATIO at 99.9 %: an alert fires when both its error
/// ratios exceed factor × 0.001 (page-fast: 14.4 × 0.001 = 0.0144).
fn burning(reports: &[Report]) -> ObjectiveEvaluation {
    let o = objective(ObjectiveKind::Ratio, 0.999, rolling_days(30));
    let p = plan(&o, "2026-04-30T12:00:00Z", None, None, &[]);
    with_counts(&o, &p, reports)
}

#[test]
fn a_fast_burn_pages_and_tickets_while_the_slow_page_stays_quiet() {
    // 06:00–10:59: 300 minutes of 1000/1000; 11:00–11:59: 60 minutes of
    // 980/1000 (error 0.02). as_of 12:00.
    //   5 m, 30 m, 1 h: 0.02 / 0.001 = 20.
    //   2 h (10:00–12:00): 1,200 bad / 120,000 = 0.01 → 10.
    //   6 h, 1 d, 3 d: 1,200 / 360,000 = 1/300 → 10/3 = 3.33….
    // page-fast: 20 > 14.4 and 20 > 14.4: fires.
    // page-slow: 6 h 3.33 ≤ 6: quiet.
    // ticket-fast: 1 d 3.33 > 3 and 2 h 10 > 3: fires.
    // ticket-slow: 3 d 3.33 > 1 and 6 h 3.33 > 1: fires.
    // Window: 358,800 / 360,000 = 0.99666… < 0.999: BELOW_TARGET.
    let mut reports = every_minute("2026-04-30T06:00:00Z", 300, 1000, 1000);
    reports.extend(every_minute("2026-04-30T11:00:00Z", 60, 980, 1000));
    let e = burning(&leak(reports));
    assert_eq!(e.status, Status::BelowTarget);
    assert_eq!(exact(&e), ratio(358_800, 360_000));
    let third = 10.0 / 3.0;
    assert_eq!(
        rates(&e),
        [
            Some(20.0),
            Some(20.0),
            Some(20.0),
            Some(10.0),
            Some(third),
            Some(third),
            Some(third)
        ]
    );
    assert_eq!(
        firing(&e),
        [
            ("page-fast", true),
            ("page-slow", false),
            ("ticket-fast", true),
            ("ticket-slow", true)
        ]
    );
}

#[test]
fn a_burn_rate_exactly_at_the_factor_does_not_fire_and_one_event_more_does() {
    // 11:00–11:59: 60 minutes of 9,856/10,000: error 0.0144 everywhere, a
    // burn rate of exactly 14.4 = page-fast's factor: quiet (strictly
    // greater fires). page-slow (factor 6) fires at 14.4.
    // One more bad event at 11:59 (9,855/10,000):
    //   5 m: (4 × 144 + 145) / 50,000 = 721 / 50,000 = 0.01442 > 0.0144;
    //   1 h: (59 × 144 + 145) / 600,000 = 8,641 / 600,000 > 8,640 / 600,000:
    //   page-fast fires.
    let at_factor = burning(&leak(every_minute(
        "2026-04-30T11:00:00Z",
        60,
        9856,
        10_000,
    )));
    assert_eq!(at_factor.burn_rates[2].rate, Some(14.4));
    assert_eq!(at_factor.alerts[0].factor, 14.4);
    assert_eq!(
        firing(&at_factor)[..2],
        [("page-fast", false), ("page-slow", true)]
    );

    let mut reports = every_minute("2026-04-30T11:00:00Z", 59, 9856, 10_000);
    reports.extend(every_minute("2026-04-30T11:59:00Z", 1, 9855, 10_000));
    let above = burning(&leak(reports));
    assert_eq!(firing(&above)[0], ("page-fast", true));
}

#[test]
fn an_empty_short_lookback_keeps_its_alert_quiet() {
    // 11:00–11:49: 50 minutes of 900/1000 (error 0.1, burn rate 100);
    // nothing since 11:50. The 5 m lookback holds no data: no rate, so
    // page-fast stays quiet although its 1 h rate is 100 > 14.4.
    // page-slow: 6 h 100 > 6 and 30 m (11:30–11:49: 0.1) 100 > 6: fires.
    let e = burning(&leak(every_minute("2026-04-30T11:00:00Z", 50, 900, 1000)));
    assert_eq!(e.burn_rates[0].rate, None);
    assert_eq!(e.burn_rates[1].rate, Some(100.0));
    assert_eq!(e.burn_rates[2].rate, Some(100.0));
    assert_eq!(firing(&e)[..2], [("page-fast", false), ("page-slow", true)]);
}

#[test]
fn excluded_data_is_dropped_from_the_lookbacks_too() {
    // Maintenance 11:00–11:30: its 30 minutes of 0/1000 are dropped; the
    // last 30 minutes are 1000/1000. 1 h and 5 m error ratios are 0: rate 0,
    // nothing fires (with the bad half counted the 1 h rate would be
    // 0.5 / 0.001 = 500). Excluded in the window: 1,800 s.
    let o = objective(ObjectiveKind::Ratio, 0.999, rolling_days(30));
    let p = plan(
        &o,
        "2026-04-30T12:00:00Z",
        None,
        None,
        &[one_off("2026-04-30T11:00:00Z", "2026-04-30T11:30:00Z")],
    );
    let mut reports = every_minute("2026-04-30T11:00:00Z", 30, 0, 1000);
    reports.extend(every_minute("2026-04-30T11:30:00Z", 30, 1000, 1000));
    let e = with_counts(&o, &p, &leak(reports));
    assert_eq!(e.burn_rates[0].rate, Some(0.0));
    assert_eq!(e.burn_rates[2].rate, Some(0.0));
    assert!(e.alerts.iter().all(|a| !a.firing));
    assert_eq!(e.status, Status::Met);
    assert_eq!(e.excluded_seconds, 1800.0);
}

#[test]
fn alert_factors_scale_with_the_window_length() {
    // 30 d = 720 h: 2% × 720 / 1 = 14.4; 5% × 720 / 6 = 6;
    // 10% × 720 / 24 = 3; 10% × 720 / 72 = 1.
    // 7 d = 168 h: 2% × 168 = 3.36; 5% × 168 / 6 = 1.4;
    // 10% × 168 / 24 = 0.7; 10% × 168 / 72 = 7/30.
    let factors = |days| {
        let o = objective(ObjectiveKind::Ratio, 0.999, rolling_days(days));
        let p = plan(&o, "2026-04-30T12:00:00Z", None, None, &[]);
        with_counts(&o, &p, &[])
            .alerts
            .iter()
            .map(|a| a.factor)
            .collect::<Vec<_>>()
    };
    assert_eq!(factors(30), [14.4, 6.0, 3.0, 1.0]);
    assert_eq!(factors(7), [3.36, 1.4, 0.7, 7.0 / 30.0]);
}

#[test]
fn decompose_reads_days_in_the_middle_and_raw_rows_only_at_sub_minute_edges() {
    // [04-01 22:59:30.5, 04-04 01:01) then [04-04 01:01, 01:05):
    //   raw     22:59:30.5 – 23:00        (no whole minute fits)
    //   hour    23:00 – 04-02 00:00
    //   day     04-02 – 04-04
    //   hour    04-04 00:00 – 01:00
    //   minute  01:00 – 01:05             (01:00–01:01 joined with 01:01–01:05)
    let got = decompose(&[
        iv("2026-04-01T22:59:30.500Z", "2026-04-04T01:01:00Z"),
        iv("2026-04-04T01:01:00Z", "2026-04-04T01:05:00Z"),
    ]);
    assert_eq!(
        got,
        [
            (
                Level::Raw,
                iv("2026-04-01T22:59:30.500Z", "2026-04-01T23:00:00Z")
            ),
            (
                Level::Hour,
                iv("2026-04-01T23:00:00Z", "2026-04-02T00:00:00Z")
            ),
            (
                Level::Day,
                iv("2026-04-02T00:00:00Z", "2026-04-04T00:00:00Z")
            ),
            (
                Level::Hour,
                iv("2026-04-04T00:00:00Z", "2026-04-04T01:00:00Z")
            ),
            (
                Level::Minute,
                iv("2026-04-04T01:00:00Z", "2026-04-04T01:05:00Z")
            ),
        ]
    );
}

// ------------------------------------------------------------- credits

#[test]
fn credit_tiers_apply_strictly_below_their_bounds() {
    // Tiers: below 0.999 → 10 %, below 0.99 → 25 %, below 0.95 → 50 %;
    // fee 100,000.
    //   0.999 exactly: below no bound → 0.
    //   0.99 exactly: below 0.999 only → 10 % = 10,000.
    //   0.98999: below 0.999 and 0.99; the lowest bound above wins → 25 %
    //            = 25,000.
    //   0.95 exactly: 25 %.  0.94999: 50 % = 50,000.
    let s = schedule(&[(0.999, 10.0), (0.99, 25.0), (0.95, 50.0)], None, 100_000);
    let amount = |numer: i64, denom: i64| tier_credit(&ratio(numer, denom), &s).unwrap();
    assert_eq!(amount(999, 1000).amount_minor, 0);
    assert_eq!(amount(99, 100).amount_minor, 10_000);
    assert_eq!(amount(98_999, 100_000).amount_minor, 25_000);
    assert_eq!(amount(95, 100).amount_minor, 25_000);
    let deepest = amount(94_999, 100_000);
    assert_eq!((deepest.percent, deepest.amount_minor), (50.0, 50_000));
    assert_eq!(deepest.currency, "EUR");
}

#[test]
fn cap_percent_limits_the_credit_and_amounts_round_down() {
    // Tier below 0.99 → 50 %, fee 12,345 minor units, attainment 0.98.
    //   No cap: 12,345 × 50 / 100 = 6,172.5 → 6,172.
    //   Cap 30 %: 12,345 × 30 / 100 = 3,703.5 → 3,703, percent 30.
    //   Cap 60 %: above the tier, no effect: 6,172.
    let attainment = ratio(98, 100);
    let credit_with =
        |cap| tier_credit(&attainment, &schedule(&[(0.99, 50.0)], cap, 12_345)).unwrap();
    assert_eq!(credit_with(None).amount_minor, 6172);
    let capped = credit_with(Some(30.0));
    assert_eq!((capped.percent, capped.amount_minor), (30.0, 3703));
    assert_eq!(credit_with(Some(60.0)).amount_minor, 6172);
}

#[test]
fn only_calendar_periods_under_target_earn_credits() {
    // 9,950 / 10,000 = 0.995 on 04-10; tiers below 0.999 → 10 %, below
    // 0.99 → 25 %; fee 50,000.
    //   Calendar month so far (open), target 0.999: BELOW_TARGET, 0.995 is
    //   below 0.999 only → 10 % = 5,000 earned so far.
    //   The same over a rolling 30 days: no credit.
    //   Calendar month, target 0.99: MET → nothing, although 0.995 lies
    //   under the 0.999 tier bound.
    let reports = [("2026-04-10T00:00:00Z", 9950, 10_000)];
    let tiers = schedule(&[(0.999, 10.0), (0.99, 25.0)], None, 50_000);
    let month = |target| {
        objective(
            ObjectiveKind::Ratio,
            target,
            calendar(CalendarPeriod::Month, ""),
        )
    };
    let earned = |o: &Objective| {
        let p = plan(o, "2026-04-16T00:00:00Z", None, None, &[]);
        let e = with_counts(o, &p, &reports);
        (e.status, credit(&e, &tiers).unwrap().amount_minor)
    };
    assert_eq!(earned(&month(0.999)), (Status::BelowTarget, 5000));
    let rolling = objective(ObjectiveKind::Ratio, 0.999, rolling_days(30));
    assert_eq!(earned(&rolling), (Status::BelowTarget, 0));
    assert_eq!(earned(&month(0.99)), (Status::Met, 0));
}

#[test]
fn a_liability_cap_across_two_agreements_is_split_in_proportion() {
    // Agreement A's objectives earn 1,000 and 2,000: the agreement owes the
    // larger, 2,000. Agreement B owes 1,001. Cap 1,000 < 3,001:
    //   A: 2,000 × 1,000 / 3,001 = 666.44… → 666
    //   B: 1,001 × 1,000 / 3,001 = 333.55… → 333   (999 ≤ 1,000)
    // Under the cap nothing changes: [300, 200] with cap 1,000.
    // [3,000, 1,000] with cap 2,000 → [1,500, 500].
    let euros = |amount_minor, percent| Credit {
        percent,
        amount_minor,
        currency: "EUR".into(),
    };
    let a = agreement_credit(&[euros(1000, 10.0), euros(2000, 20.0)]).unwrap();
    let b = agreement_credit(&[euros(1001, 10.0)]).unwrap();
    assert_eq!(
        split_liability_cap(&[a.amount_minor, b.amount_minor], 1000),
        [666, 333]
    );
    assert_eq!(split_liability_cap(&[300, 200], 1000), [300, 200]);
    assert_eq!(split_liability_cap(&[3000, 1000], 2000), [1500, 500]);
}
