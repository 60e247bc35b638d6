//! One objective's verdict over a plan: status, attainment, error budget,
//! burn rates over the lookbacks and the multi-window, multi-burn-rate
//! alerts of the Google SRE workbook. Verdicts are decided on exact
//! rationals; the doubles are for the wire.

use chrono::TimeDelta;
use num_rational::BigRational;
use num_traits::{One, Zero};

use super::ComplianceError;
use super::exact::{MICROS_PER_SECOND, decimal, ratio, seconds, to_f64};
use super::interval::{Interval, micros, total_micros};
use super::plan::Plan;
use super::tally::{
    Measurements, SliceThreshold, Tally, count_events, count_samples, count_slices, count_uptime,
};
use super::window::{EvaluationWindow, WindowKind};
use crate::domain::terms::{Comparison, Objective, ObjectiveKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Attainment at or above target.
    Met,
    /// Under target in a rolling window, an open period or an explicit
    /// interval.
    BelowTarget,
    /// Under target in a closed calendar period.
    Breached,
    /// Nothing to judge: no events, no samples, no slice holding counts, or
    /// no eligible time.
    NoData,
}

/// Attainment, exact for verdicts and credits, and as a double.
#[derive(Debug, Clone, PartialEq)]
pub struct Attainment {
    pub exact: BigRational,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetUnit {
    Events,
    Samples,
    Seconds,
}

impl BudgetUnit {
    /// The wire name: "events", "samples" or "seconds".
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetUnit::Events => "events",
            BudgetUnit::Samples => "samples",
            BudgetUnit::Seconds => "seconds",
        }
    }
}

/// `total` = (1 − target) × the window's denominator; `spent` = its bad
/// part; `remaining` = total − spent, negative once overspent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorBudget {
    pub total: f64,
    pub spent: f64,
    pub remaining: f64,
    pub unit: BudgetUnit,
}

/// The error ratio over `[as_of − lookback, as_of)` divided by the budget
/// ratio (1 − target). `None` when the lookback holds no data. With a target
/// of 1 any error burns infinitely fast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnRate {
    pub lookback: TimeDelta,
    pub rate: Option<f64>,
}

/// A multi-window alert: fires when the burn rates over both its lookbacks
/// are defined and strictly above `factor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertRule {
    pub name: &'static str,
    pub long_seconds: i64,
    pub short_seconds: i64,
    /// The share of the window's budget that burning at `factor` for the
    /// long lookback spends, in percent.
    pub budget_share_percent: i64,
}

impl AlertRule {
    /// share × W / long: for a 30-day window 14.4, 6, 3 and 1.
    pub fn factor(&self, window_length: TimeDelta) -> BigRational {
        ratio(self.budget_share_percent, 100) * seconds(micros(window_length))
            / ratio(self.long_seconds, 1)
    }
}

/// The alerts, as the SRE workbook and Sloth define them.
pub const ALERT_RULES: [AlertRule; 4] = [
    AlertRule {
        name: "page-fast",
        long_seconds: 3600,
        short_seconds: 300,
        budget_share_percent: 2,
    },
    AlertRule {
        name: "page-slow",
        long_seconds: 21_600,
        short_seconds: 1800,
        budget_share_percent: 5,
    },
    AlertRule {
        name: "ticket-fast",
        long_seconds: 86_400,
        short_seconds: 7200,
        budget_share_percent: 10,
    },
    AlertRule {
        name: "ticket-slow",
        long_seconds: 259_200,
        short_seconds: 21_600,
        budget_share_percent: 10,
    },
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alert {
    pub name: &'static str,
    pub firing: bool,
    /// The burn rate both lookbacks must exceed, as a double.
    pub factor: f64,
}

/// One objective's compliance over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectiveEvaluation {
    pub window: EvaluationWindow,
    pub status: Status,
    /// `None` with NO_DATA.
    pub attainment: Option<Attainment>,
    /// Good and total in the kind's unit: events (RATIO), samples
    /// (THRESHOLD), slices (TIMESLICE), eligible seconds (UPTIME).
    pub good: f64,
    pub total: f64,
    /// `None` with NO_DATA.
    pub error_budget: Option<ErrorBudget>,
    /// One per `plan::LOOKBACK_SECONDS`, shortest first.
    pub burn_rates: Vec<BurnRate>,
    /// One per `ALERT_RULES`.
    pub alerts: Vec<Alert>,
    /// Excluded time inside the evaluated window.
    pub excluded_seconds: f64,
    /// The excluded instants inside the evaluated window, merged.
    pub exclusions_applied: Vec<Interval>,
}

/// How a kind's counting unit reads on the wire and in its budget.
struct Units {
    /// One counting unit in the unit of `good` and `total`.
    shown: BigRational,
    /// One counting unit in the budget's unit.
    budget: BigRational,
    unit: BudgetUnit,
}

/// Evaluates `objective` over `plan` from `data`, which must be the kind of
/// measurements the objective counts (counts for RATIO and TIMESLICE,
/// samples for THRESHOLD, downtime for UPTIME).
pub fn evaluate(
    objective: &Objective,
    plan: &Plan,
    data: Measurements<'_>,
) -> Result<ObjectiveEvaluation, ComplianceError> {
    let target = decimal(objective.target).ok_or(ComplianceError::Incomplete("target"))?;
    let scopes: Vec<Interval> = std::iter::once(plan.window.interval)
        .chain(plan.lookbacks.iter().map(|l| l.interval))
        .collect();
    let tallies = count_scopes(objective, plan, data, &scopes)?;
    let (window, lookbacks) = tallies
        .split_first()
        .expect("the window is always the first scope");
    let units = units(objective, plan);
    let budget_ratio = BigRational::one() - &target;
    let attainment = window.holds_data.then(|| ratio(window.good, window.total));
    let status = status(&plan.window, attainment.as_ref(), &target);
    let error_ratios: Vec<Option<BigRational>> = lookbacks.iter().map(error_ratio).collect();
    let excluded = plan.excluded_in_window();
    Ok(ObjectiveEvaluation {
        window: plan.window,
        status,
        good: to_f64(&(ratio(window.good, 1) * &units.shown)),
        total: to_f64(&(ratio(window.total, 1) * &units.shown)),
        error_budget: window
            .holds_data
            .then(|| error_budget(window, &budget_ratio, &units)),
        attainment: attainment.map(|exact| Attainment {
            value: to_f64(&exact),
            exact,
        }),
        burn_rates: plan
            .lookbacks
            .iter()
            .zip(&error_ratios)
            .map(|(l, e)| BurnRate {
                lookback: l.length,
                rate: e.as_ref().map(|e| burn_rate(e, &budget_ratio)),
            })
            .collect(),
        alerts: alerts(plan, &error_ratios, &budget_ratio),
        excluded_seconds: to_f64(&seconds(total_micros(&excluded))),
        exclusions_applied: excluded,
    })
}

/// Good and total over each scope, counted as the objective's kind counts.
fn count_scopes(
    objective: &Objective,
    plan: &Plan,
    data: Measurements<'_>,
    scopes: &[Interval],
) -> Result<Vec<Tally>, ComplianceError> {
    let excluded = &plan.excluded;
    match (objective.kind, data) {
        (ObjectiveKind::Ratio, Measurements::Counts(buckets)) => {
            Ok(count_events(buckets, excluded, scopes))
        }
        (ObjectiveKind::Threshold, Measurements::Samples(samples)) => {
            let (threshold, comparison) = bound(objective)?;
            Ok(count_samples(
                samples, threshold, comparison, excluded, scopes,
            ))
        }
        (ObjectiveKind::Timeslice, Measurements::Counts(buckets)) => {
            let (threshold, comparison) = bound(objective)?;
            let threshold = decimal(threshold)
                .map(SliceThreshold::new)
                .ok_or(ComplianceError::Incomplete("threshold"))?;
            let grid = plan.slices.ok_or(ComplianceError::Incomplete("slice"))?;
            Ok(count_slices(
                buckets, &grid, &threshold, comparison, excluded, scopes,
            ))
        }
        (ObjectiveKind::Uptime, Measurements::Downtime(downtime)) => {
            Ok(count_uptime(downtime, excluded, scopes))
        }
        (kind, data) => Err(ComplianceError::WrongMeasurements {
            kind,
            given: match data {
                Measurements::Counts(_) => "counts",
                Measurements::Samples(_) => "samples",
                Measurements::Downtime(_) => "downtime",
            },
        }),
    }
}

fn bound(objective: &Objective) -> Result<(f64, Comparison), ComplianceError> {
    let threshold = objective
        .threshold
        .filter(|t| t.is_finite())
        .ok_or(ComplianceError::Incomplete("threshold"))?;
    let comparison = objective
        .comparison
        .ok_or(ComplianceError::Incomplete("comparison"))?;
    Ok((threshold, comparison))
}

fn units(objective: &Objective, plan: &Plan) -> Units {
    let per_second = ratio(1, MICROS_PER_SECOND);
    match objective.kind {
        ObjectiveKind::Ratio => Units {
            shown: BigRational::one(),
            budget: BigRational::one(),
            unit: BudgetUnit::Events,
        },
        ObjectiveKind::Threshold => Units {
            shown: BigRational::one(),
            budget: BigRational::one(),
            unit: BudgetUnit::Samples,
        },
        ObjectiveKind::Timeslice => Units {
            shown: BigRational::one(),
            budget: plan
                .slices
                .map(|g| seconds(micros(g.length)))
                .unwrap_or_default(),
            unit: BudgetUnit::Seconds,
        },
        ObjectiveKind::Uptime => Units {
            shown: per_second.clone(),
            budget: per_second,
            unit: BudgetUnit::Seconds,
        },
    }
}

/// MET at or above target; otherwise BREACHED in a closed calendar period
/// and BELOW_TARGET anywhere else.
fn status(
    window: &EvaluationWindow,
    attainment: Option<&BigRational>,
    target: &BigRational,
) -> Status {
    match attainment {
        None => Status::NoData,
        Some(a) if a >= target => Status::Met,
        Some(_) if window.kind == (WindowKind::Calendar { closed: true }) => Status::Breached,
        Some(_) => Status::BelowTarget,
    }
}

fn error_budget(window: &Tally, budget_ratio: &BigRational, units: &Units) -> ErrorBudget {
    let total = budget_ratio * ratio(window.total, 1) * &units.budget;
    let spent = ratio(window.bad(), 1) * &units.budget;
    let remaining = &total - &spent;
    ErrorBudget {
        total: to_f64(&total),
        spent: to_f64(&spent),
        remaining: to_f64(&remaining),
        unit: units.unit,
    }
}

/// bad / total over a lookback; `None` when it holds no data.
fn error_ratio(lookback: &Tally) -> Option<BigRational> {
    (lookback.holds_data && lookback.total > 0).then(|| ratio(lookback.bad(), lookback.total))
}

fn burn_rate(error_ratio: &BigRational, budget_ratio: &BigRational) -> f64 {
    if budget_ratio.is_zero() {
        return if error_ratio.is_zero() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    to_f64(&(error_ratio / budget_ratio))
}

/// Each rule fires when both its lookbacks burn faster than its factor:
/// error ratio / (1 − target) > factor, decided as error ratio > factor ×
/// (1 − target) so that a target of 1 needs no division.
fn alerts(
    plan: &Plan,
    error_ratios: &[Option<BigRational>],
    budget_ratio: &BigRational,
) -> Vec<Alert> {
    let ratio_over = |seconds: i64| {
        plan.lookbacks
            .iter()
            .position(|l| l.length == TimeDelta::seconds(seconds))
            .and_then(|i| error_ratios[i].as_ref())
    };
    ALERT_RULES
        .iter()
        .map(|rule| {
            let factor = rule.factor(plan.window.period.length());
            let limit = &factor * budget_ratio;
            let burns = |seconds| ratio_over(seconds).is_some_and(|e| e > &limit);
            Alert {
                name: rule.name,
                firing: burns(rule.long_seconds) && burns(rule.short_seconds),
                factor: to_f64(&factor),
            }
        })
        .collect()
}
