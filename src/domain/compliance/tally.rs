//! The measurements an evaluation is handed, and how each objective kind
//! counts them over one scope (the evaluated window, or a burn-rate
//! lookback): good and total in the kind's own unit (events, samples,
//! slices, microseconds of eligible time). Excluded data is dropped
//! everywhere, lookbacks included.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use num_rational::BigRational;
use num_traits::ToPrimitive;

use super::exact::ratio;
use super::interval::{Interval, clip, in_any, subtract, total_micros};
use super::plan::SliceGrid;
use crate::domain::terms::Comparison;

/// Summed counts over `interval`: a raw report (`interval` one microsecond
/// long at its time) or a rollup bucket. The store returns buckets that each
/// lie inside one piece of the plan, so a bucket is placed by its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountBucket {
    pub interval: Interval,
    pub good: u64,
    pub total: u64,
}

/// One reported value, for THRESHOLD objectives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub time: DateTime<Utc>,
    pub value: f64,
}

/// What the store read for one objective, by the kind of value its indicator
/// carries.
#[derive(Debug, Clone, Copy)]
pub enum Measurements<'a> {
    /// RATIO and TIMESLICE: count buckets over `decompose(&plan.pieces)`.
    Counts(&'a [CountBucket]),
    /// THRESHOLD: every sample over `plan.spans()`.
    Samples(&'a [Sample]),
    /// UPTIME: every downtime interval meeting `plan.spans()`, as reported
    /// (overlaps allowed).
    Downtime(&'a [Interval]),
}

/// What one scope holds, in the kind's counting unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub good: u128,
    pub total: u128,
    /// Whether the scope holds data at all: events or samples, a slice with
    /// counts, or eligible time. Without it there is no attainment and no
    /// burn rate.
    pub holds_data: bool,
}

impl Tally {
    pub fn bad(&self) -> u128 {
        self.total.saturating_sub(self.good)
    }
}

/// Whether `value <comparison> threshold` holds, given how they compare.
pub(crate) fn satisfies(comparison: Comparison, order: Ordering) -> bool {
    match comparison {
        Comparison::LessThan => order.is_lt(),
        Comparison::LessThanOrEqual => order.is_le(),
        Comparison::GreaterThan => order.is_gt(),
        Comparison::GreaterThanOrEqual => order.is_ge(),
    }
}

/// RATIO: Σgood and Σtotal of the buckets starting in each scope.
pub(crate) fn count_events(
    buckets: &[CountBucket],
    excluded: &[Interval],
    scopes: &[Interval],
) -> Vec<Tally> {
    let mut tallies = vec![Tally::default(); scopes.len()];
    for b in buckets
        .iter()
        .filter(|b| !in_any(excluded, b.interval.start))
    {
        for (tally, scope) in tallies.iter_mut().zip(scopes) {
            if scope.contains(b.interval.start) {
                tally.good += u128::from(b.good.min(b.total));
                tally.total += u128::from(b.total);
            }
        }
    }
    for tally in &mut tallies {
        tally.holds_data = tally.total > 0;
    }
    tallies
}

/// THRESHOLD: the samples in each scope, and those for which
/// `value <comparison> threshold` holds.
///
/// Comparing the doubles is exact for the decimals they stand for: distinct
/// doubles have distinct shortest representations in the same order, and
/// equal doubles the same one, so `value` against `threshold` orders as
/// their decimals do.
pub(crate) fn count_samples(
    samples: &[Sample],
    threshold: f64,
    comparison: Comparison,
    excluded: &[Interval],
    scopes: &[Interval],
) -> Vec<Tally> {
    let mut tallies = vec![Tally::default(); scopes.len()];
    let kept = samples
        .iter()
        .filter(|s| s.value.is_finite() && !in_any(excluded, s.time));
    for s in kept {
        let good = s
            .value
            .partial_cmp(&threshold)
            .is_some_and(|order| satisfies(comparison, order));
        for (tally, scope) in tallies.iter_mut().zip(scopes) {
            if scope.contains(s.time) {
                tally.total += 1;
                tally.good += u128::from(good);
            }
        }
    }
    for tally in &mut tallies {
        tally.holds_data = tally.total > 0;
    }
    tallies
}

/// UPTIME, in microseconds: eligible time is the scope minus excluded time;
/// downtime is the union of the reported intervals within the scope, minus
/// excluded time; good = eligible − downtime.
pub(crate) fn count_uptime(
    downtime: &[Interval],
    excluded: &[Interval],
    scopes: &[Interval],
) -> Vec<Tally> {
    scopes
        .iter()
        .map(|scope| {
            let eligible = subtract(&[*scope], excluded);
            let down = subtract(&clip(downtime.iter().copied(), scope), excluded);
            let eligible = total_micros(&eligible) as u128;
            let down = total_micros(&down) as u128;
            Tally {
                good: eligible - down.min(eligible),
                total: eligible,
                holds_data: eligible > 0,
            }
        })
        .collect()
}

/// A TIMESLICE threshold, compared exactly with a slice's `good/total`.
/// Slices are many (a year of one-minute slices is 525,600), so the
/// comparison cross-multiplies integers when they cannot overflow and builds
/// rationals only when they might.
pub(crate) struct SliceThreshold {
    exact: BigRational,
    /// `numer / denom` of `exact`, when both fit in 64 bits.
    small: Option<(u128, u128)>,
}

impl SliceThreshold {
    pub fn new(exact: BigRational) -> Self {
        let small = match (exact.numer().to_u64(), exact.denom().to_u64()) {
            (Some(n), Some(d)) => Some((u128::from(n), u128::from(d))),
            _ => None,
        };
        SliceThreshold { exact, small }
    }

    /// How `good / total` (total > 0) compares with the threshold.
    pub fn against(&self, good: u128, total: u128) -> Ordering {
        // good/total ⋛ n/d  ⇔  good·d ⋛ n·total, as d and total are positive.
        let crossed = self
            .small
            .and_then(|(n, d)| Some((good.checked_mul(d)?, n.checked_mul(total)?)));
        match crossed {
            Some((left, right)) => left.cmp(&right),
            None => ratio(good, total).cmp(&self.exact),
        }
    }
}

/// TIMESLICE, in slices: the complete slices of each scope that are not
/// wholly excluded; a slice is good when it holds no counts or when
/// `Σgood/Σtotal <comparison> threshold` holds over its non-excluded counts.
///
/// Work grows with the slices holding data, not with all slices: the
/// counted slices are the complete ones minus those wholly inside an
/// exclusion (each lies inside exactly one merged exclusion), and a wholly
/// excluded slice holds no data, since every bucket in it starts inside the
/// exclusion and is dropped.
pub(crate) fn count_slices(
    buckets: &[CountBucket],
    grid: &SliceGrid,
    threshold: &SliceThreshold,
    comparison: Comparison,
    excluded: &[Interval],
    scopes: &[Interval],
) -> Vec<Tally> {
    let with_data = sums_by_slice(buckets, grid, excluded);
    scopes
        .iter()
        .map(|scope| {
            let complete = grid.complete_in(scope);
            let excluded_slices: i64 = excluded
                .iter()
                .filter_map(|e| e.intersect(scope))
                .map(|part| grid.complete_in(&part).count() as i64)
                .sum();
            let counted = (complete.end - complete.start - excluded_slices).max(0) as u128;
            let first = with_data.partition_point(|s| s.0 < complete.start);
            let mut tally = Tally {
                good: counted,
                total: counted,
                holds_data: false,
            };
            for &(_, good, total) in with_data[first..].iter().take_while(|s| s.0 < complete.end) {
                tally.holds_data = true;
                if !satisfies(comparison, threshold.against(good, total)) {
                    tally.good -= 1;
                }
            }
            tally
        })
        .collect()
}

/// (slice index, Σgood, Σtotal) of the slices holding counts (Σtotal > 0)
/// outside exclusions, sorted by index.
fn sums_by_slice(
    buckets: &[CountBucket],
    grid: &SliceGrid,
    excluded: &[Interval],
) -> Vec<(i64, u128, u128)> {
    let mut parts: Vec<(i64, u128, u128)> = buckets
        .iter()
        .filter(|b| b.total > 0 && !in_any(excluded, b.interval.start))
        .map(|b| {
            (
                grid.index_of(b.interval.start),
                u128::from(b.good.min(b.total)),
                u128::from(b.total),
            )
        })
        .collect();
    parts.sort_unstable_by_key(|p| p.0);
    let mut sums: Vec<(i64, u128, u128)> = Vec::with_capacity(parts.len());
    for (k, good, total) in parts {
        match sums.last_mut() {
            Some(last) if last.0 == k => {
                last.1 += good;
                last.2 += total;
            }
            _ => sums.push((k, good, total)),
        }
    }
    sums
}
