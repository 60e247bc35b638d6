//! Which stored counts answer a question: every piece of a plan is read from
//! the coarsest UTC-aligned rollup buckets that fit inside it (days in the
//! middle, then hours, then minutes), and from raw rows only for the
//! sub-minute edges. A 30-day window thus reads about 30 day rows and a few
//! dozen hour and minute rows, not 43,200 minute rows.

use chrono::{DateTime, Utc};

use super::interval::{Interval, micros};
use crate::domain::measurement::Level;

/// The ranges to read, at which level, to cover `pieces` exactly with buckets
/// that each lie inside one piece: each piece is cut into the coarsest
/// aligned buckets that fit, and adjacent ranges of one level are joined.
/// Sorted by start.
pub fn decompose(pieces: &[Interval]) -> Vec<(Level, Interval)> {
    let mut ranges = Vec::new();
    for piece in pieces.iter().filter(|p| !p.is_empty()) {
        let span = (piece.start.timestamp_micros(), piece.end.timestamp_micros());
        cut(span, &Level::COARSEST_FIRST, &mut ranges);
    }
    // Each piece's ranges come out in time order, so sorted pieces (a
    // plan's) need no sort.
    if !ranges.is_sorted_by_key(|(_, (start, _))| *start) {
        ranges.sort_unstable_by_key(|(_, (start, _))| *start);
    }
    join_adjacent(ranges)
        .into_iter()
        .map(|(level, (start, end))| (level, Interval::new(from_micros(start), from_micros(end))))
        .collect()
}

/// `[start, end)` in microseconds since the epoch: a TIMESLICE plan has a
/// piece per slice, hundreds of thousands over a year, so they are cut in
/// integers.
type Micros = (i64, i64);

/// Cuts `span` with the first of `levels`: its aligned middle at that level,
/// and the edges on either side with the finer levels, in time order.
fn cut((start, end): Micros, levels: &[Level], out: &mut Vec<(Level, Micros)>) {
    let Some((&level, finer)) = levels.split_first() else {
        return;
    };
    let Some(bucket) = level.length().map(micros) else {
        out.push((level, (start, end)));
        return;
    };
    let first = start + (bucket - start.rem_euclid(bucket)) % bucket;
    let last = end - end.rem_euclid(bucket);
    if first >= last {
        cut((start, end), finer, out);
        return;
    }
    if start < first {
        cut((start, first), finer, out);
    }
    out.push((level, (first, last)));
    if last < end {
        cut((last, end), finer, out);
    }
}

fn join_adjacent(ranges: Vec<(Level, Micros)>) -> Vec<(Level, Micros)> {
    let mut joined: Vec<(Level, Micros)> = Vec::with_capacity(ranges.len());
    for (level, range) in ranges {
        match joined.last_mut() {
            Some((last_level, last)) if *last_level == level && last.1 == range.0 => {
                last.1 = range.1;
            }
            _ => joined.push((level, range)),
        }
    }
    joined
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MAX_UTC)
}
