//! The measurements an evaluation is handed, and how each objective kind
//! counts them over one scope (the evaluated window, or a burn-rate
//! lookback): good and total in the kind's own unit (events, samples,
//! slices, microseconds of eligible time). Excluded data is dropped
//! everywhere, lookbacks included.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use num_rational::BigRational;

use super::exact::ratio;
use super::interval::{Interval, clip, covered_by_any, in_any, subtract, total_micros};
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

/// TIMESLICE, in slices: the complete slices of each scope that are not
/// wholly excluded; a slice is good when it holds no counts or when
/// `Σgood/Σtotal <comparison> threshold` holds over its non-excluded counts.
pub(crate) fn count_slices(
    buckets: &[CountBucket],
    grid: &SliceGrid,
    threshold: &BigRational,
    comparison: Comparison,
    excluded: &[Interval],
    scopes: &[Interval],
) -> Vec<Tally> {
    let mut per_slice: HashMap<i64, (u128, u128)> = HashMap::new();
    for b in buckets
        .iter()
        .filter(|b| !in_any(excluded, b.interval.start))
    {
        let sums = per_slice
            .entry(grid.index_of(b.interval.start))
            .or_default();
        sums.0 += u128::from(b.good.min(b.total));
        sums.1 += u128::from(b.total);
    }
    scopes
        .iter()
        .map(|scope| {
            let mut tally = Tally::default();
            for k in grid.complete_in(scope) {
                if covered_by_any(excluded, &grid.slice(k)) {
                    continue;
                }
                tally.total += 1;
                let good = match per_slice.get(&k) {
                    Some(&(good, total)) if total > 0 => {
                        tally.holds_data = true;
                        satisfies(comparison, ratio(good, total).cmp(threshold))
                    }
                    _ => true,
                };
                tally.good += u128::from(good);
            }
            tally
        })
        .collect()
}
