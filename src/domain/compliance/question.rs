//! What a caller may ask of compliance: the evaluation instant, the calendar
//! period, or an explicit interval, checked against the clock before
//! anything is read. Every refusal names its field.

use chrono::{DateTime, TimeDelta, Utc};

use super::interval::Interval;
use crate::error::{Result, Violations};

/// How far in the future `as_of` may lie: the caller's clock may run a
/// little ahead of the server's.
pub const AS_OF_SKEW: TimeDelta = TimeDelta::seconds(60);

/// The longest explicit interval: what rollups are kept for by default
/// (`rollup_retention`, 400 days), so that a yearly period fits with room.
pub const MAX_INTERVAL: TimeDelta = TimeDelta::days(400);

/// When compliance is evaluated, as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question {
    /// The evaluation instant: rolling windows end here, open periods and
    /// explicit intervals are evaluated up to it, burn-rate lookbacks end
    /// here.
    pub as_of: DateTime<Utc>,
    /// Whether `as_of` is now because none was asked for: terms about now
    /// may come from a cache.
    pub as_of_is_now: bool,
    /// Calendar windows: the period containing this instant (`as_of` when
    /// `None`).
    pub period_containing: Option<DateTime<Utc>>,
    /// An explicit interval, evaluated instead of each objective's window.
    pub interval: Option<Interval>,
}

/// An explicit interval as sent: either bound may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AskedInterval {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl Question {
    /// The question at `as_of` (default `now`): `as_of` no more than
    /// `AS_OF_SKEW` after `now`; `period_containing` not after `as_of`; an
    /// interval with both bounds, its end after its start, at most
    /// `MAX_INTERVAL` long, starting no later than `as_of`, and not asked
    /// together with `period_containing` (an explicit interval replaces the
    /// calendar period). Every violation is reported at once.
    pub fn check(
        now: DateTime<Utc>,
        as_of: Option<DateTime<Utc>>,
        period_containing: Option<DateTime<Utc>>,
        interval: Option<AskedInterval>,
    ) -> Result<Question> {
        let mut v = Violations::new();
        let as_of_given = as_of.is_some();
        let as_of = as_of.unwrap_or(now);
        if as_of > now + AS_OF_SKEW {
            v.add(
                "as_of",
                format!(
                    "must not be in the future (it is {as_of}, the server's clock says {now}): \
                     nothing is measured there yet"
                ),
            );
        }
        if let Some(p) = period_containing
            && p > as_of
        {
            v.add(
                "period_containing",
                if as_of_given {
                    "must not be after as_of: a period that has not begun holds nothing"
                } else {
                    "must not be in the future: a period that has not begun holds nothing"
                },
            );
        }
        let interval = interval.and_then(|asked| check_interval(&mut v, asked, as_of));
        if interval.is_some() && period_containing.is_some() {
            v.add(
                "period_containing",
                "cannot be set with interval: an explicit interval replaces the calendar period",
            );
        }
        v.into_result()?;
        Ok(Question {
            as_of,
            as_of_is_now: !as_of_given,
            period_containing,
            interval,
        })
    }
}

fn check_interval(
    v: &mut Violations,
    asked: AskedInterval,
    as_of: DateTime<Utc>,
) -> Option<Interval> {
    if asked.start.is_none() {
        v.add("interval.start_time", "is required");
    }
    if asked.end.is_none() {
        v.add("interval.end_time", "is required");
    }
    let (start, end) = (asked.start?, asked.end?);
    if end <= start {
        v.add("interval.end_time", "must be after interval.start_time");
        return None;
    }
    if end - start > MAX_INTERVAL {
        v.add(
            "interval",
            format!(
                "must be at most {} days long (it is {:.1} days)",
                MAX_INTERVAL.num_days(),
                (end - start).num_seconds() as f64 / 86_400.0
            ),
        );
        return None;
    }
    if start > as_of {
        v.add(
            "interval.start_time",
            "must not be after as_of: an interval that has not begun holds nothing",
        );
        return None;
    }
    Some(Interval::new(start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn now() -> DateTime<Utc> {
        utc("2026-05-10T12:00:00Z")
    }

    fn fields(e: Error) -> Vec<String> {
        match e {
            Error::InvalidArgument(v) => v.into_iter().map(|f| f.field).collect(),
            other => panic!("not a field violation: {other:?}"),
        }
    }

    #[test]
    fn as_of_defaults_to_now_and_may_run_a_little_ahead() {
        let q = Question::check(now(), None, None, None).unwrap();
        assert_eq!(q.as_of, now());
        let ahead = now() + AS_OF_SKEW;
        assert_eq!(
            Question::check(now(), Some(ahead), None, None)
                .unwrap()
                .as_of,
            ahead
        );
        let future = Question::check(now(), Some(ahead + TimeDelta::seconds(1)), None, None);
        assert_eq!(fields(future.unwrap_err()), ["as_of"]);
    }

    #[test]
    fn a_period_must_have_begun_by_as_of() {
        let as_of = utc("2026-04-30T00:00:00Z");
        let ok = Question::check(now(), Some(as_of), Some(as_of), None).unwrap();
        assert_eq!(ok.period_containing, Some(as_of));
        let later = Question::check(now(), Some(as_of), Some(now()), None);
        assert_eq!(fields(later.unwrap_err()), ["period_containing"]);
    }

    #[test]
    fn intervals_need_both_bounds_in_order_and_at_most_400_days() {
        let asked = |start: Option<&str>, end: Option<&str>| AskedInterval {
            start: start.map(utc),
            end: end.map(utc),
        };
        let q = |i| Question::check(now(), None, None, Some(i));
        assert_eq!(
            fields(q(asked(None, None)).unwrap_err()),
            ["interval.start_time", "interval.end_time"]
        );
        let backwards = asked(Some("2026-05-01T00:00:00Z"), Some("2026-05-01T00:00:00Z"));
        assert_eq!(fields(q(backwards).unwrap_err()), ["interval.end_time"]);
        // 2025-04-05 to 2026-05-10 is 400 days exactly: allowed; a second
        // more is not.
        let longest = asked(Some("2025-04-05T12:00:00Z"), Some("2026-05-10T12:00:00Z"));
        assert!(q(longest).is_ok());
        let longer = asked(Some("2025-04-05T11:59:59Z"), Some("2026-05-10T12:00:00Z"));
        assert_eq!(fields(q(longer).unwrap_err()), ["interval"]);
        let future = asked(Some("2026-05-11T00:00:00Z"), Some("2026-05-12T00:00:00Z"));
        assert_eq!(fields(q(future).unwrap_err()), ["interval.start_time"]);
    }

    #[test]
    fn an_interval_replaces_the_period_and_cannot_come_with_one() {
        let i = AskedInterval {
            start: Some(utc("2026-05-01T00:00:00Z")),
            end: Some(utc("2026-05-02T00:00:00Z")),
        };
        let both = Question::check(now(), None, Some(utc("2026-05-01T00:00:00Z")), Some(i));
        assert_eq!(fields(both.unwrap_err()), ["period_containing"]);
        let q = Question::check(now(), None, None, Some(i)).unwrap();
        assert_eq!(
            q.interval,
            Some(Interval::new(i.start.unwrap(), i.end.unwrap()))
        );
    }
}
