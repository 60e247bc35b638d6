//! Half-open intervals of UTC instants and the set operations compliance
//! needs on sorted lists of them (merge, intersect, subtract). Lengths are
//! counted in microseconds, the precision instants are kept at.

use chrono::{DateTime, TimeDelta, Utc};

/// `[start, end)`. An interval is empty when `start == end`; `new` never
/// builds one that ends before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    /// `[start, end)`; an `end` before `start` gives the empty interval at
    /// `start` (a period that has not begun by `as_of` is evaluated over
    /// nothing).
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Interval {
            start,
            end: end.max(start),
        }
    }

    /// `[end - length, end)`: a rolling window or a burn-rate lookback.
    pub fn ending_at(end: DateTime<Utc>, length: TimeDelta) -> Self {
        Interval::new(end - length, end)
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    pub fn contains(&self, instant: DateTime<Utc>) -> bool {
        self.start <= instant && instant < self.end
    }

    pub fn length(&self) -> TimeDelta {
        self.end - self.start
    }

    /// The length in microseconds.
    pub fn micros(&self) -> i64 {
        micros(self.length())
    }

    /// The common part, if it is not empty.
    pub fn intersect(&self, other: &Interval) -> Option<Interval> {
        let common = Interval::new(self.start.max(other.start), self.end.min(other.end));
        (!common.is_empty()).then_some(common)
    }
}

/// A duration in microseconds. Every duration compliance handles is far
/// below the ±292,000 years an `i64` of microseconds holds.
pub fn micros(d: TimeDelta) -> i64 {
    d.num_microseconds().unwrap_or(i64::MAX)
}

/// Sorted by start, overlapping or touching intervals joined, empty ones
/// dropped.
pub fn merge(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.retain(|i| !i.is_empty());
    intervals.sort_unstable();
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for i in intervals {
        match merged.last_mut() {
            Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
            _ => merged.push(i),
        }
    }
    merged
}

/// The parts of `intervals` inside `span`, merged.
pub fn clip(intervals: impl IntoIterator<Item = Interval>, span: &Interval) -> Vec<Interval> {
    merge(
        intervals
            .into_iter()
            .filter_map(|i| i.intersect(span))
            .collect(),
    )
}

/// `from` minus `remove`; both merged (sorted, disjoint), as is the result.
pub fn subtract(from: &[Interval], remove: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::with_capacity(from.len());
    let mut r = 0;
    for piece in from {
        let mut start = piece.start;
        // Removals ending before this piece cannot touch a later one either.
        while r < remove.len() && remove[r].end <= start {
            r += 1;
        }
        let mut k = r;
        while k < remove.len() && remove[k].start < piece.end {
            if remove[k].start > start {
                out.push(Interval::new(start, remove[k].start));
            }
            start = start.max(remove[k].end);
            k += 1;
        }
        if start < piece.end {
            out.push(Interval::new(start, piece.end));
        }
    }
    out
}

/// The total length, in microseconds, of disjoint intervals.
pub fn total_micros(intervals: &[Interval]) -> i64 {
    intervals.iter().map(Interval::micros).sum()
}

/// Whether `instant` lies in one of `merged` (sorted, disjoint).
pub fn in_any(merged: &[Interval], instant: DateTime<Utc>) -> bool {
    let i = merged.partition_point(|m| m.end <= instant);
    merged.get(i).is_some_and(|m| m.start <= instant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(minute * 60, 0).unwrap()
    }

    fn iv(a: i64, b: i64) -> Interval {
        Interval::new(at(a), at(b))
    }

    #[test]
    fn an_end_before_the_start_gives_an_empty_interval() {
        let i = Interval::new(at(5), at(3));
        assert!(i.is_empty());
        assert_eq!(i.micros(), 0);
    }

    #[test]
    fn merge_joins_overlapping_and_touching_intervals() {
        let merged = merge(vec![iv(10, 12), iv(0, 5), iv(4, 6), iv(6, 8), iv(9, 9)]);
        assert_eq!(merged, [iv(0, 8), iv(10, 12)]);
    }

    #[test]
    fn subtract_leaves_the_gaps() {
        let left = subtract(&[iv(0, 10), iv(20, 30)], &[iv(2, 4), iv(8, 22), iv(29, 40)]);
        assert_eq!(left, [iv(0, 2), iv(4, 8), iv(22, 29)]);
        assert_eq!(subtract(&[iv(0, 10)], &[]), [iv(0, 10)]);
        assert!(subtract(&[iv(3, 4)], &[iv(0, 10)]).is_empty());
    }

    #[test]
    fn membership_is_half_open() {
        let set = [iv(0, 5), iv(10, 15)];
        assert!(in_any(&set, at(0)));
        assert!(!in_any(&set, at(5)));
        assert!(in_any(&set, at(14)));
        assert!(!in_any(&set, at(15)));
    }
}
