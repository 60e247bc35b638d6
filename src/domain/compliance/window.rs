//! Which interval an objective is evaluated over: a rolling window ending at
//! `as_of`, a calendar period of the objective's time zone (local midnight
//! to local midnight, its real length whatever DST does), or an interval the
//! caller asks for. Open periods and explicit intervals are evaluated "so
//! far": up to `as_of`.

use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;

use super::ComplianceError;
use super::interval::Interval;
use crate::domain::terms::{CalendarPeriod, Window};

/// The IANA zone `name` names; the empty name is UTC.
pub fn zone(name: &str) -> Result<Tz, ComplianceError> {
    if name.is_empty() {
        return Ok(chrono_tz::UTC);
    }
    name.parse()
        .map_err(|_| ComplianceError::UnknownTimeZone(name.to_owned()))
}

/// The calendar period of `tz` that contains `instant`: from the local
/// midnight that starts it to the one that ends it. Weeks are ISO weeks,
/// starting on Monday. A local midnight that does not exist (a DST gap at
/// midnight) is replaced by the first instant after the gap.
pub fn calendar_period(period: CalendarPeriod, tz: Tz, instant: DateTime<Utc>) -> Interval {
    let today = instant.with_timezone(&tz).date_naive();
    let first = first_day(period, today);
    let next = first_day_after(period, first);
    Interval::new(local_midnight(tz, first), local_midnight(tz, next))
}

fn first_day(period: CalendarPeriod, day: NaiveDate) -> NaiveDate {
    let month_start = |month: u32| NaiveDate::from_ymd_opt(day.year(), month, 1).unwrap_or(day);
    match period {
        CalendarPeriod::Day => day,
        CalendarPeriod::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
        CalendarPeriod::Month => month_start(day.month()),
        CalendarPeriod::Quarter => month_start((day.month0() / 3) * 3 + 1),
        CalendarPeriod::Year => month_start(1),
    }
}

fn first_day_after(period: CalendarPeriod, first: NaiveDate) -> NaiveDate {
    let later = match period {
        CalendarPeriod::Day => first.checked_add_days(Days::new(1)),
        CalendarPeriod::Week => first.checked_add_days(Days::new(7)),
        CalendarPeriod::Month => first.checked_add_months(Months::new(1)),
        CalendarPeriod::Quarter => first.checked_add_months(Months::new(3)),
        CalendarPeriod::Year => first.checked_add_months(Months::new(12)),
    };
    later.unwrap_or(NaiveDate::MAX)
}

/// The instant `day` starts at in `tz`.
pub fn local_midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_time(chrono::NaiveTime::MIN);
    match tz.from_local_datetime(&midnight).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => end_of_gap(tz, midnight),
    }
}

/// The first instant whose local time is at or after `local`, for a `local`
/// time that a DST gap skips: the instant the gap ends. No zone is more than
/// 14 hours from UTC, so that instant lies within 14 hours of `local` read as
/// UTC; local time only grows across a gap, so a binary search on whole
/// seconds (transitions fall on whole seconds) finds it.
fn end_of_gap(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let as_utc = local.and_utc().timestamp();
    let reaches = |second: i64| {
        Utc.timestamp_opt(second, 0)
            .single()
            .is_some_and(|t| t.with_timezone(&tz).naive_local() >= local)
    };
    let (mut lo, mut hi) = (as_utc - 14 * 3600, as_utc + 14 * 3600);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if reaches(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Utc.timestamp_opt(lo, 0).single().unwrap_or(local.and_utc())
}

/// What kind of interval an objective is evaluated over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// `[as_of - D, as_of)`.
    Rolling,
    /// A calendar period; `closed` once `as_of` has reached its end. Only a
    /// closed period can be breached, and only calendar periods earn credits.
    Calendar { closed: bool },
    /// An interval the caller asked for; `closed` once `as_of` has reached
    /// its end.
    Explicit { closed: bool },
}

/// The interval an objective is evaluated over, resolved at `as_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvaluationWindow {
    /// What is evaluated: the whole rolling window, or the period (or
    /// explicit interval) so far, `[start, min(end, as_of))`. Empty when the
    /// period starts after `as_of`.
    pub interval: Interval,
    /// The full bounds: the rolling window, the whole calendar period or the
    /// explicit interval. Its length is the window length W the alert
    /// factors are computed from.
    pub period: Interval,
    pub kind: WindowKind,
    /// The evaluation instant; burn-rate lookbacks end here.
    pub as_of: DateTime<Utc>,
}

impl EvaluationWindow {
    /// The window of an objective whose window is `window`, at `as_of`. An
    /// `explicit` interval, when given, wins over the objective's own window;
    /// otherwise a calendar window takes the period containing
    /// `period_containing` (default `as_of`), and a rolling window ignores it.
    pub fn resolve(
        window: &Window,
        as_of: DateTime<Utc>,
        period_containing: Option<DateTime<Utc>>,
        explicit: Option<Interval>,
    ) -> Result<EvaluationWindow, ComplianceError> {
        if let Some(asked) = explicit {
            if asked.is_empty() {
                return Err(ComplianceError::EmptyInterval);
            }
            return Ok(Self::so_far(asked, as_of, |closed| WindowKind::Explicit {
                closed,
            }));
        }
        match window {
            Window::Rolling { seconds } => {
                if *seconds <= 0 {
                    return Err(ComplianceError::Incomplete("window.rolling.duration"));
                }
                let rolling = Interval::ending_at(as_of, TimeDelta::seconds(*seconds));
                Ok(EvaluationWindow {
                    interval: rolling,
                    period: rolling,
                    kind: WindowKind::Rolling,
                    as_of,
                })
            }
            Window::Calendar { period, time_zone } => {
                let tz = zone(time_zone)?;
                let bounds = calendar_period(*period, tz, period_containing.unwrap_or(as_of));
                Ok(Self::so_far(bounds, as_of, |closed| WindowKind::Calendar {
                    closed,
                }))
            }
        }
    }

    fn so_far(
        period: Interval,
        as_of: DateTime<Utc>,
        kind: impl FnOnce(bool) -> WindowKind,
    ) -> EvaluationWindow {
        EvaluationWindow {
            interval: Interval::new(period.start, period.end.min(as_of)),
            period,
            kind: kind(as_of >= period.end),
            as_of,
        }
    }

    /// Whether the window is over: a calendar period or explicit interval
    /// that `as_of` has reached the end of. Rolling windows never are.
    pub fn closed(&self) -> bool {
        matches!(
            self.kind,
            WindowKind::Calendar { closed: true } | WindowKind::Explicit { closed: true }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn quarters_and_years_start_on_their_first_day() {
        let q = calendar_period(
            CalendarPeriod::Quarter,
            chrono_tz::UTC,
            utc("2026-05-17T12:00:00Z"),
        );
        assert_eq!(
            (q.start, q.end),
            (utc("2026-04-01T00:00:00Z"), utc("2026-07-01T00:00:00Z"))
        );
        let y = calendar_period(
            CalendarPeriod::Year,
            chrono_tz::UTC,
            utc("2026-12-31T23:59:59Z"),
        );
        assert_eq!(
            (y.start, y.end),
            (utc("2026-01-01T00:00:00Z"), utc("2027-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn the_empty_zone_is_utc_and_unknown_zones_are_refused() {
        assert_eq!(zone(""), Ok(chrono_tz::UTC));
        assert_eq!(
            zone("Mars/Olympus"),
            Err(ComplianceError::UnknownTimeZone("Mars/Olympus".into()))
        );
    }

    #[test]
    fn a_period_that_starts_after_as_of_is_evaluated_over_nothing() {
        let w = EvaluationWindow::resolve(
            &Window::Calendar {
                period: CalendarPeriod::Month,
                time_zone: String::new(),
            },
            utc("2026-04-15T00:00:00Z"),
            Some(utc("2026-05-10T00:00:00Z")),
            None,
        )
        .unwrap();
        assert!(w.interval.is_empty());
        assert_eq!(w.period.start, utc("2026-05-01T00:00:00Z"));
        assert_eq!(w.kind, WindowKind::Calendar { closed: false });
    }

    #[test]
    fn an_explicit_interval_must_not_be_empty() {
        let t = utc("2026-04-15T00:00:00Z");
        let got = EvaluationWindow::resolve(
            &Window::Rolling { seconds: 60 },
            t,
            None,
            Some(Interval::new(t, t)),
        );
        assert_eq!(got, Err(ComplianceError::EmptyInterval));
    }
}
