//! Compliance mathematics: from measurements to attainment, error budgets,
//! burn rates, alerts and credits, as `/docs/compliance.md` defines them.
//! Pure: the caller resolves the window, builds a `Plan`, reads what the plan
//! asks for from the store, and hands it to `evaluate`.
//!
//! The steps, in the order the compliance service calls them:
//! 1. `EvaluationWindow::resolve(window, as_of, period_containing, explicit)`
//!    picks the evaluated interval (`calendar_period` for calendar windows).
//! 2. `Plan::new(objective, window, exclusions)` expands the exclusions
//!    (`excluded`), adds the burn-rate lookbacks and cuts the data span into
//!    `pieces`.
//! 3. The store reads counts over `decompose(&plan.pieces)` (rollups are
//!    keyed by `Level::bucket_start`, the type ingestion writes them with), or samples or downtime over
//!    `plan.spans()`.
//! 4. `evaluate(objective, &plan, measurements)` gives the verdict;
//!    `credit(&evaluation, schedule)` what it earns, `agreement_credit` and
//!    `split_liability_cap` what is owed across objectives and agreements.

mod credits;
mod evaluate;
mod exact;
mod exclusions;
mod interval;
mod plan;
mod question;
mod rollup;
mod tally;
mod window;

#[cfg(test)]
mod golden_tests;

/// The rollup levels `decompose` cuts reads into: ingestion's own type.
pub use crate::domain::measurement::Level;
pub use credits::{Credit, agreement_credit, credit, split_liability_cap, tier_credit};
pub use evaluate::{
    ALERT_RULES, Alert, AlertRule, Attainment, BudgetUnit, BurnRate, ErrorBudget,
    ObjectiveEvaluation, Status, evaluate,
};
pub use exact::{MICROS_PER_SECOND, decimal};
pub use exclusions::{MAX_INSTANCES, excluded};
pub use interval::{Interval, merge};
pub use plan::{LOOKBACK_SECONDS, Lookback, MAX_SLICES, Plan, SliceGrid};
pub use question::{AS_OF_SKEW, AskedInterval, MAX_INTERVAL, Question};
pub use rollup::decompose;
pub use tally::{CountBucket, Measurements, Sample};
pub use window::{EvaluationWindow, WindowKind, calendar_period, local_midnight, zone};

use crate::domain::terms::ObjectiveKind;

/// Why an objective cannot be evaluated. Terms are validated when they are
/// written, so apart from `EmptyInterval` (a caller's explicit interval) and
/// `TooManySlices` these mean stored terms the domain cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComplianceError {
    #[error("`{0}` is not an IANA time zone name")]
    UnknownTimeZone(String),
    #[error("the recurrence rule `{rule}` cannot be expanded: {why}")]
    InvalidRule { rule: String, why: String },
    /// A required part of the terms is missing or unusable (named as the
    /// field is).
    #[error("the terms have no usable {0}")]
    Incomplete(&'static str),
    #[error("the interval is empty: its end must be after its start")]
    EmptyInterval,
    #[error("the window holds {slices} slices; at most {max} can be evaluated")]
    TooManySlices { slices: i64, max: i64 },
    #[error("{kind:?} objectives are not evaluated from {given}")]
    WrongMeasurements {
        kind: ObjectiveKind,
        given: &'static str,
    },
}
