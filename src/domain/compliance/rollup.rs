//! Which stored counts answer a question: every piece of a plan is read from
//! the coarsest UTC-aligned rollup buckets that fit inside it (days in the
//! middle, then hours, then minutes), and from raw rows only for the
//! sub-minute edges. A 30-day window thus reads about 30 day rows and a few
//! dozen hour and minute rows, not 43,200 minute rows.

use chrono::{DateTime, TimeDelta, Utc};

use super::interval::{Interval, micros};

/// A rollup level the store keeps counts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// The raw measurements, one row per report (kept for the accepted age
    /// only).
    Raw,
    /// UTC-aligned 60 s buckets.
    Minute,
    /// UTC-aligned 3,600 s buckets.
    Hour,
    /// UTC-aligned 86,400 s buckets.
    Day,
}

impl Level {
    /// Coarsest first: the order pieces are cut in.
    const COARSEST_FIRST: [Level; 4] = [Level::Day, Level::Hour, Level::Minute, Level::Raw];

    /// The bucket length; raw rows have none.
    pub fn bucket(self) -> Option<TimeDelta> {
        match self {
            Level::Raw => None,
            Level::Minute => Some(TimeDelta::seconds(60)),
            Level::Hour => Some(TimeDelta::seconds(3600)),
            Level::Day => Some(TimeDelta::seconds(86_400)),
        }
    }
}

/// The ranges to read, at which level, to cover `pieces` exactly with buckets
/// that each lie inside one piece: each piece is cut into the coarsest
/// aligned buckets that fit, and adjacent ranges of one level are joined.
/// Sorted by start.
pub fn decompose(pieces: &[Interval]) -> Vec<(Level, Interval)> {
    let mut ranges = Vec::new();
    for piece in pieces.iter().filter(|p| !p.is_empty()) {
        cut(*piece, &Level::COARSEST_FIRST, &mut ranges);
    }
    ranges.sort_unstable_by_key(|(_, range)| range.start);
    join_adjacent(ranges)
}

/// Cuts `piece` with the first of `levels`: its aligned middle at that level,
/// and the edges on either side with the finer levels.
fn cut(piece: Interval, levels: &[Level], out: &mut Vec<(Level, Interval)>) {
    let Some((&level, finer)) = levels.split_first() else {
        return;
    };
    let Some(bucket) = level.bucket() else {
        out.push((level, piece));
        return;
    };
    let middle = Interval::new(align_up(piece.start, bucket), align_down(piece.end, bucket));
    if middle.is_empty() {
        cut(piece, finer, out);
        return;
    }
    for edge in [
        Interval::new(piece.start, middle.start),
        Interval::new(middle.end, piece.end),
    ] {
        if !edge.is_empty() {
            cut(edge, finer, out);
        }
    }
    out.push((level, middle));
}

fn join_adjacent(ranges: Vec<(Level, Interval)>) -> Vec<(Level, Interval)> {
    let mut joined: Vec<(Level, Interval)> = Vec::with_capacity(ranges.len());
    for (level, range) in ranges {
        match joined.last_mut() {
            Some((last_level, last)) if *last_level == level && last.end == range.start => {
                last.end = range.end;
            }
            _ => joined.push((level, range)),
        }
    }
    joined
}

/// The last multiple of `step` since the Unix epoch at or before `t`.
pub fn align_down(t: DateTime<Utc>, step: TimeDelta) -> DateTime<Utc> {
    let step = micros(step);
    let us = t.timestamp_micros();
    from_micros(us - us.rem_euclid(step))
}

/// The first multiple of `step` since the Unix epoch at or after `t`.
pub fn align_up(t: DateTime<Utc>, step: TimeDelta) -> DateTime<Utc> {
    let down = align_down(t, step);
    if down == t { t } else { down + step }
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MAX_UTC)
}
