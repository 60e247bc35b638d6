//! What an evaluation reads, decided before anything is read: the window,
//! the burn-rate lookbacks ending at `as_of`, the excluded instants, and the
//! data span cut into pieces at every boundary that matters (window edges,
//! lookback starts, exclusion edges, TIMESLICE slice edges). Counts are read
//! per piece (see `rollup::decompose`), so every bucket the store returns
//! lies wholly inside or wholly outside each of those, and `evaluate` can
//! place it by its start alone.

use std::ops::Range;

use chrono::{DateTime, TimeDelta, Utc};

use super::ComplianceError;
use super::exclusions::excluded;
use super::interval::{Interval, clip, merge, micros, total_micros};
use super::rollup::from_micros;
use super::window::{EvaluationWindow, WindowKind};
use crate::domain::terms::{Exclusion, Objective, ObjectiveKind};

/// The burn-rate lookbacks, in seconds: 5 m, 30 m, 1 h, 2 h, 6 h, 1 d, 3 d.
pub const LOOKBACK_SECONDS: [i64; 7] = [300, 1800, 3600, 7200, 21_600, 86_400, 259_200];

/// The most TIMESLICE slices a plan cuts its data span into: a year of
/// one-minute slices (525,600, plus three days of lookback) fits; a year of
/// one-second slices (31.5 million) is refused instead of allocating pieces
/// for each.
pub const MAX_SLICES: i64 = 1_000_000;

/// A burn-rate lookback: `[as_of - length, as_of)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookback {
    pub length: TimeDelta,
    pub interval: Interval,
}

/// TIMESLICE slices: `[anchor + k·length, anchor + (k+1)·length)` for every
/// integer k. Anchored at the period start (calendar windows and explicit
/// intervals) or at the Unix epoch (rolling windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceGrid {
    pub anchor: DateTime<Utc>,
    pub length: TimeDelta,
}

impl SliceGrid {
    fn length_micros(&self) -> i64 {
        micros(self.length)
    }

    fn offset(&self, t: DateTime<Utc>) -> i64 {
        micros(t - self.anchor)
    }

    /// The index of the slice holding `t`.
    pub fn index_of(&self, t: DateTime<Utc>) -> i64 {
        self.offset(t).div_euclid(self.length_micros())
    }

    /// Slice `k`.
    pub fn slice(&self, k: i64) -> Interval {
        let start = self.anchor.timestamp_micros() + k * self.length_micros();
        Interval::new(
            from_micros(start),
            from_micros(start + self.length_micros()),
        )
    }

    /// The indexes of the slices lying wholly inside `scope`.
    pub fn complete_in(&self, scope: &Interval) -> Range<i64> {
        let len = self.length_micros();
        let first = div_ceil(self.offset(scope.start), len);
        let end = self.offset(scope.end).div_euclid(len);
        first..end.max(first)
    }

    /// The slice edges strictly inside `span`.
    fn edges_within(&self, span: &Interval) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let len = self.length_micros();
        let first = self.offset(span.start).div_euclid(len) + 1;
        let last = div_ceil(self.offset(span.end), len) - 1;
        (first..=last).map(|k| self.slice(k).start)
    }

    fn edge_count_within(&self, span: &Interval) -> i64 {
        let len = self.length_micros();
        let first = self.offset(span.start).div_euclid(len) + 1;
        let last = div_ceil(self.offset(span.end), len) - 1;
        (last - first + 1).max(0)
    }
}

fn div_ceil(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

/// What one objective's evaluation reads and over which intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub window: EvaluationWindow,
    /// `LOOKBACK_SECONDS`, shortest first, each ending at `as_of`.
    pub lookbacks: Vec<Lookback>,
    /// The excluded instants over the whole data span, merged.
    pub excluded: Vec<Interval>,
    /// TIMESLICE objectives only.
    pub slices: Option<SliceGrid>,
    /// The data span cut at every boundary, sorted and disjoint. The store
    /// reads counts over `decompose(&plan.pieces)`.
    pub pieces: Vec<Interval>,
}

impl Plan {
    /// The plan for `objective` over `window`, with the objective's
    /// agreement's `exclusions`.
    pub fn new(
        objective: &Objective,
        window: EvaluationWindow,
        exclusions: &[Exclusion],
    ) -> Result<Plan, ComplianceError> {
        let lookbacks = lookbacks_at(window.as_of);
        let spans = data_spans(&window, &lookbacks);
        let mut excluded_instants = Vec::new();
        for span in &spans {
            excluded_instants.extend(excluded(exclusions, *span)?);
        }
        let slices = slice_grid(objective, &window)?;
        let mut plan = Plan {
            window,
            lookbacks,
            excluded: merge(excluded_instants),
            slices,
            pieces: Vec::new(),
        };
        plan.pieces = plan.cut(&spans)?;
        Ok(plan)
    }

    /// The data span: the evaluated window and the lookbacks, merged (two
    /// parts when an explicit interval or a past period lies before the
    /// longest lookback). Samples and downtime are read over these.
    pub fn spans(&self) -> Vec<Interval> {
        data_spans(&self.window, &self.lookbacks)
    }

    /// The excluded instants inside the evaluated window: the exclusions
    /// applied.
    pub fn excluded_in_window(&self) -> Vec<Interval> {
        clip(self.excluded.iter().copied(), &self.window.interval)
    }

    /// Excluded time inside the evaluated window, in microseconds.
    pub fn excluded_micros(&self) -> i64 {
        total_micros(&self.excluded_in_window())
    }

    fn cut(&self, spans: &[Interval]) -> Result<Vec<Interval>, ComplianceError> {
        let mut pieces = Vec::new();
        for span in spans {
            let mut cuts = self.boundaries_within(span)?;
            cuts.push(span.start);
            cuts.push(span.end);
            cuts.sort_unstable();
            cuts.dedup();
            pieces.extend(cuts.windows(2).map(|w| Interval::new(w[0], w[1])));
        }
        Ok(pieces)
    }

    /// Every boundary strictly inside `span`.
    fn boundaries_within(&self, span: &Interval) -> Result<Vec<DateTime<Utc>>, ComplianceError> {
        let mut cuts = vec![
            self.window.interval.start,
            self.window.interval.end,
            self.window.as_of,
        ];
        cuts.extend(self.lookbacks.iter().map(|l| l.interval.start));
        cuts.extend(self.excluded.iter().flat_map(|e| [e.start, e.end]));
        if let Some(grid) = &self.slices {
            let slices = grid.edge_count_within(span);
            if slices > MAX_SLICES {
                return Err(ComplianceError::TooManySlices {
                    slices,
                    max: MAX_SLICES,
                });
            }
            cuts.extend(grid.edges_within(span));
        }
        cuts.retain(|t| span.start < *t && *t < span.end);
        Ok(cuts)
    }
}

fn lookbacks_at(as_of: DateTime<Utc>) -> Vec<Lookback> {
    LOOKBACK_SECONDS
        .iter()
        .map(|&seconds| {
            let length = TimeDelta::seconds(seconds);
            Lookback {
                length,
                interval: Interval::ending_at(as_of, length),
            }
        })
        .collect()
}

fn data_spans(window: &EvaluationWindow, lookbacks: &[Lookback]) -> Vec<Interval> {
    merge(
        std::iter::once(window.interval)
            .chain(lookbacks.iter().map(|l| l.interval))
            .collect(),
    )
}

fn slice_grid(
    objective: &Objective,
    window: &EvaluationWindow,
) -> Result<Option<SliceGrid>, ComplianceError> {
    if objective.kind != ObjectiveKind::Timeslice {
        return Ok(None);
    }
    let seconds = objective
        .slice_seconds
        .filter(|s| *s > 0)
        .ok_or(ComplianceError::Incomplete("slice"))?;
    let anchor = match window.kind {
        WindowKind::Rolling => DateTime::UNIX_EPOCH,
        WindowKind::Calendar { .. } | WindowKind::Explicit { .. } => window.period.start,
    };
    Ok(Some(SliceGrid {
        anchor,
        length: TimeDelta::seconds(seconds),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn complete_slices_and_edges_follow_the_anchor() {
        // Ten-minute slices from 00:05: [00:05, 00:15), [00:15, 00:25), ...
        let grid = SliceGrid {
            anchor: utc("2026-01-01T00:05:00Z"),
            length: TimeDelta::minutes(10),
        };
        let scope = Interval::new(utc("2026-01-01T00:00:00Z"), utc("2026-01-01T00:40:00Z"));
        // Complete inside [00:00, 00:40): slices 0, 1, 2 ([00:05, 00:35)).
        assert_eq!(grid.complete_in(&scope), 0..3);
        assert_eq!(grid.index_of(utc("2026-01-01T00:04:59Z")), -1);
        let edges: Vec<_> = grid.edges_within(&scope).collect();
        assert_eq!(
            edges,
            [
                utc("2026-01-01T00:05:00Z"),
                utc("2026-01-01T00:15:00Z"),
                utc("2026-01-01T00:25:00Z"),
                utc("2026-01-01T00:35:00Z"),
            ]
        );
        assert_eq!(grid.edge_count_within(&scope), 4);
        // A scope shorter than a slice holds none.
        let short = Interval::new(utc("2026-01-01T00:06:00Z"), utc("2026-01-01T00:14:00Z"));
        assert!(grid.complete_in(&short).is_empty());
        assert_eq!(grid.edge_count_within(&short), 0);
    }
}
