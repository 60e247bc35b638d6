//! Exclusions (maintenance windows) as the instants they remove: one-off
//! intervals, and RFC 5545 RRULEs expanded in their own time zone from their
//! `start`.
//!
//! The rrule crate expands in the zone itself, and around DST it does not do
//! what the contract says: a local start inside a DST gap is moved past the
//! gap (02:30 on a spring-forward day becomes 03:30) instead of being
//! dropped. So the rule is expanded here in *local wall-clock time* (the
//! crate is handed local times dressed as UTC, which has no DST), and each
//! local start is then placed in the zone: one that does not exist is
//! dropped, an ambiguous one takes its first occurrence. Each instance lasts
//! `duration` of real time from there.

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use rrule::{RRule, RRuleSet, Unvalidated};

use super::ComplianceError;
use super::interval::{Interval, merge};
use super::window::zone;
use crate::domain::terms::{Exclusion, ExclusionSchedule};

/// The most instances of one recurring exclusion expanded, counted from its
/// `start` (instances before the span count too, since a rule can only be
/// walked from its start). Expansion stops there and later instances are not
/// excluded: a rule that recurs this often is not honoured beyond it, rather
/// than letting it hang an evaluation or void a contract. 100,000 instances
/// are about 960 years of a weekly rule, 270 years of a daily one, 11 years
/// of an hourly one, 69 days of a minutely one and 28 hours of a secondly
/// one; walking them takes tens of milliseconds at worst.
pub const MAX_INSTANCES: usize = 100_000;

/// The instants `exclusions` remove from `span`: sorted, merged and clipped
/// to `span`.
pub fn excluded(
    exclusions: &[Exclusion],
    span: Interval,
) -> Result<Vec<Interval>, ComplianceError> {
    let mut removed = Vec::new();
    for exclusion in exclusions {
        match &exclusion.schedule {
            ExclusionSchedule::OneOff {
                start_time,
                end_time,
            } => removed.extend(Interval::new(*start_time, *end_time).intersect(&span)),
            ExclusionSchedule::Recurring {
                rrule,
                start,
                duration_seconds,
                time_zone,
            } => removed.extend(recurring_instances(
                rrule,
                *start,
                TimeDelta::seconds(*duration_seconds),
                zone(time_zone)?,
                span,
            )?),
        }
    }
    Ok(merge(removed))
}

/// The instances of `rule` from `start` in `tz` that meet `span`, each
/// clipped to it.
fn recurring_instances(
    rule: &str,
    start: DateTime<Utc>,
    duration: TimeDelta,
    tz: Tz,
    span: Interval,
) -> Result<Vec<Interval>, ComplianceError> {
    if duration <= TimeDelta::zero() {
        return Err(ComplianceError::Incomplete("exclusion.recurring.duration"));
    }
    let local_times = wall_clock_rule(rule, start, tz)?;
    let mut instances = Vec::new();
    for local in (&local_times)
        .into_iter()
        .take(MAX_INSTANCES)
        .map(|floating| floating.naive_utc())
    {
        // A local time skipped by a DST gap has no instant: dropped.
        let Some(begins) = tz.from_local_datetime(&local).earliest() else {
            continue;
        };
        let begins = begins.with_timezone(&Utc);
        // Local times grow, and so do their first occurrences.
        if begins >= span.end {
            break;
        }
        instances.extend(Interval::new(begins, begins + duration).intersect(&span));
    }
    Ok(instances)
}

/// `rule` from `start`, walking local wall-clock times of `tz` written as
/// UTC ("floating" times, which no DST touches). Its UNTIL, an instant, is
/// turned into the local time of `tz` too.
fn wall_clock_rule(rule: &str, start: DateTime<Utc>, tz: Tz) -> Result<RRuleSet, ComplianceError> {
    let invalid = |why: String| ComplianceError::InvalidRule {
        rule: rule.to_owned(),
        why,
    };
    let floating = |local: NaiveDateTime| local.and_utc().with_timezone(&rrule::Tz::UTC);
    let mut parsed: RRule<Unvalidated> = rule.parse().map_err(|e| invalid(format!("{e}")))?;
    if let Some(until) = parsed.get_until().copied() {
        parsed = parsed.until(floating(until.with_timezone(&tz).naive_local()));
    }
    // Occurrences fall on whole seconds, and the crate skips the first one
    // when the start has a fraction of a second: the start is taken to the
    // second.
    let local_start = start.with_timezone(&tz).naive_local();
    let local_start = local_start.with_nanosecond(0).unwrap_or(local_start);
    let set = parsed
        .build(floating(local_start))
        .map_err(|e| invalid(format!("{e}")))?;
    // Limited: a rule that can never match (30 February) stops after the
    // crate's loop limit instead of walking to the year 9999.
    Ok(set.limit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn span(a: &str, b: &str) -> Interval {
        Interval::new(utc(a), utc(b))
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

    #[test]
    fn the_rrule_crate_moves_a_start_in_a_dst_gap_instead_of_dropping_it() {
        // Why this module walks wall-clock time itself: asked for 02:30 in
        // New York daily, the crate yields 03:30 EDT on 2026-03-08, a time
        // the rule never names. If this starts failing, the crate changed.
        let ny: Tz = "America/New_York".parse().unwrap();
        let first = ny.with_ymd_and_hms(2026, 3, 7, 2, 30, 0).unwrap();
        let rule: RRule<Unvalidated> = "FREQ=DAILY;COUNT=2".parse().unwrap();
        let set = rule.build(first.with_timezone(&rrule::Tz::Tz(ny))).unwrap();
        let second = set.all(2).dates[1].with_timezone(&Utc);
        assert_eq!(second, utc("2026-03-08T07:30:00Z"));
    }

    #[test]
    fn one_off_exclusions_are_clipped_and_merged_with_the_others() {
        let one_off = |a: &str, b: &str| Exclusion {
            reason: "migration".into(),
            schedule: ExclusionSchedule::OneOff {
                start_time: utc(a),
                end_time: utc(b),
            },
        };
        let got = excluded(
            &[
                one_off("2026-03-31T23:00:00Z", "2026-04-01T01:00:00Z"),
                one_off("2026-04-02T00:30:00Z", "2026-04-02T02:00:00Z"),
                one_off("2026-04-02T00:00:00Z", "2026-04-02T01:00:00Z"),
            ],
            span("2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            got,
            [
                span("2026-04-01T00:00:00Z", "2026-04-01T01:00:00Z"),
                span("2026-04-02T00:00:00Z", "2026-04-02T02:00:00Z"),
            ]
        );
    }

    #[test]
    fn an_ambiguous_local_start_takes_its_first_occurrence() {
        // 01:30 on 2026-11-01 happens twice in New York: at 05:30Z (EDT)
        // and at 06:30Z (EST). The first is taken; the day before and after
        // are plain EDT (05:30Z) and EST (06:30Z).
        let got = excluded(
            &[recurring(
                "FREQ=DAILY",
                "2026-10-31T05:30:00Z",
                600,
                "America/New_York",
            )],
            span("2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            got,
            [
                span("2026-10-31T05:30:00Z", "2026-10-31T05:40:00Z"),
                span("2026-11-01T05:30:00Z", "2026-11-01T05:40:00Z"),
                span("2026-11-02T06:30:00Z", "2026-11-02T06:40:00Z"),
            ]
        );
    }

    #[test]
    fn count_counts_the_dropped_occurrence_too() {
        // Daily 02:30 New York, COUNT=3, from 2026-03-07 02:30 EST (07:30Z):
        // 03-07, 03-08 (in the gap: dropped, but counted), 03-09 02:30 EDT
        // (06:30Z). Two instances.
        let got = excluded(
            &[recurring(
                "FREQ=DAILY;COUNT=3",
                "2026-03-07T07:30:00Z",
                60,
                "America/New_York",
            )],
            span("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            got,
            [
                span("2026-03-07T07:30:00Z", "2026-03-07T07:31:00Z"),
                span("2026-03-09T06:30:00Z", "2026-03-09T06:31:00Z"),
            ]
        );
    }

    #[test]
    fn a_start_with_a_fraction_of_a_second_keeps_its_first_occurrence() {
        // From 00:00:00.5, daily, two occurrences: 01-01 00:00:00 and 01-02
        // 00:00:00 (the crate alone would skip the first).
        let got = excluded(
            &[recurring(
                "FREQ=DAILY;COUNT=2",
                "2026-01-01T00:00:00.500Z",
                60,
                "",
            )],
            span("2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            got,
            [
                span("2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"),
                span("2026-01-02T00:00:00Z", "2026-01-02T00:01:00Z"),
            ]
        );
    }

    #[test]
    fn until_is_an_instant_even_when_the_rule_walks_local_time() {
        // Daily 09:00 Paris (CEST, 07:00Z) from 2026-06-01, UNTIL
        // 2026-06-03T07:00:00Z, which is 09:00 local on 2026-06-03: three
        // instances, the last one included (UNTIL is inclusive).
        let got = excluded(
            &[recurring(
                "FREQ=DAILY;UNTIL=20260603T070000Z",
                "2026-06-01T07:00:00Z",
                3600,
                "Europe/Paris",
            )],
            span("2026-05-01T00:00:00Z", "2026-07-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            got,
            [
                span("2026-06-01T07:00:00Z", "2026-06-01T08:00:00Z"),
                span("2026-06-02T07:00:00Z", "2026-06-02T08:00:00Z"),
                span("2026-06-03T07:00:00Z", "2026-06-03T08:00:00Z"),
            ]
        );
    }

    #[test]
    fn a_secondly_rule_over_a_year_stops_at_the_instance_cap() {
        // One second every second from the span's start: the first 100,000
        // instances touch and merge into [start, start + 100,000 s); the
        // rest of the year is not excluded, and the walk ends quickly.
        let began = std::time::Instant::now();
        let got = excluded(
            &[recurring("FREQ=SECONDLY", "2026-01-01T00:00:00Z", 1, "")],
            span("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            got,
            [Interval::new(
                utc("2026-01-01T00:00:00Z"),
                utc("2026-01-01T00:00:00Z") + TimeDelta::seconds(MAX_INSTANCES as i64)
            )]
        );
        assert!(began.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn a_rule_that_never_matches_ends() {
        let got = excluded(
            &[recurring(
                "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
                "2026-01-01T00:00:00Z",
                60,
                "",
            )],
            span("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        )
        .unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn a_broken_rule_is_an_error_not_an_empty_exclusion() {
        let got = excluded(
            &[recurring("FREQ=SOMETIMES", "2026-01-01T00:00:00Z", 60, "")],
            span("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        );
        assert!(matches!(got, Err(ComplianceError::InvalidRule { .. })));
    }
}
