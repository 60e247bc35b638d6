//! Service credits: which tier an attainment falls in, what it is worth in
//! the fee's currency, and how a liability cap shares itself out. Amounts are
//! integer minor units, rounded down; tiers are decided exactly.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{ToPrimitive, Zero};

use super::ComplianceError;
use super::evaluate::{ObjectiveEvaluation, Status};
use super::exact::{decimal, ratio, to_f64};
use super::window::WindowKind;
use crate::domain::terms::CreditSchedule;

/// A credit owed (closed period) or earned so far (open period).
#[derive(Debug, Clone, PartialEq)]
pub struct Credit {
    /// The percent of the fee credited, after `cap_percent`: the tier's
    /// percent, or the cap when it is lower. 0 when no tier applies.
    pub percent: f64,
    /// `floor(fee × percent / 100)`, never more than the fee.
    pub amount_minor: i64,
    /// The fee's ISO 4217 code; empty when the schedule has no fee.
    pub currency: String,
}

impl Credit {
    fn nothing(schedule: &CreditSchedule) -> Credit {
        Credit {
            percent: 0.0,
            amount_minor: 0,
            currency: currency(schedule),
        }
    }
}

fn currency(schedule: &CreditSchedule) -> String {
    schedule
        .fee
        .as_ref()
        .map(|f| f.currency_code.clone())
        .unwrap_or_default()
}

/// The credit an evaluation earns under `schedule`. Only calendar periods
/// earn credits (a closed one what is owed, an open one what it earns so
/// far), and only when under target: MET and NO_DATA earn nothing, even if
/// a tier's bound lies above the target.
pub fn credit(
    evaluation: &ObjectiveEvaluation,
    schedule: &CreditSchedule,
) -> Result<Credit, ComplianceError> {
    let calendar = matches!(evaluation.window.kind, WindowKind::Calendar { .. });
    let under_target = matches!(evaluation.status, Status::Breached | Status::BelowTarget);
    match &evaluation.attainment {
        Some(a) if calendar && under_target => tier_credit(&a.exact, schedule),
        _ => Ok(Credit::nothing(schedule)),
    }
}

/// The tier rule alone: a tier applies when `attainment < attainment_below`
/// (strictly), and the credit is that of the lowest bound still above the
/// attainment. fee × percent / 100, then at most `cap_percent` of the fee,
/// then at most the fee, rounded down to the minor unit.
pub fn tier_credit(
    attainment: &BigRational,
    schedule: &CreditSchedule,
) -> Result<Credit, ComplianceError> {
    let Some(percent) = tier_percent(attainment, schedule)? else {
        return Ok(Credit::nothing(schedule));
    };
    let mut percent = percent.min(ratio(100, 1));
    if let Some(cap) = schedule.cap_percent {
        let cap = decimal(cap).ok_or(ComplianceError::Incomplete("credits.cap_percent"))?;
        percent = percent.min(cap);
    }
    let fee = schedule.fee.as_ref().map_or(0, |f| f.amount_minor.max(0));
    let amount = (ratio(fee, 1) * &percent / ratio(100, 1)).floor();
    Ok(Credit {
        percent: to_f64(&percent),
        amount_minor: amount.to_integer().to_i64().unwrap_or(0).min(fee),
        currency: currency(schedule),
    })
}

/// The percent of the tier with the lowest bound strictly above
/// `attainment`, if any.
fn tier_percent(
    attainment: &BigRational,
    schedule: &CreditSchedule,
) -> Result<Option<BigRational>, ComplianceError> {
    let mut chosen: Option<(BigRational, BigRational)> = None;
    for tier in &schedule.tiers {
        let below = decimal(tier.attainment_below).ok_or(ComplianceError::Incomplete(
            "credits.tiers.attainment_below",
        ))?;
        let percent = decimal(tier.credit_percent)
            .ok_or(ComplianceError::Incomplete("credits.tiers.credit_percent"))?;
        let lower = chosen.as_ref().is_none_or(|(bound, _)| below < *bound);
        if attainment < &below && lower {
            chosen = Some((below, percent));
        }
    }
    Ok(chosen.map(|(_, percent)| percent))
}

/// An agreement's credit for a period: the largest credit of its objectives
/// for that period (credits for several missed objectives of one agreement
/// do not add up), ties to the larger percent. `None` for no objectives.
pub fn agreement_credit(objective_credits: &[Credit]) -> Option<Credit> {
    objective_credits
        .iter()
        .max_by(|a, b| {
            a.amount_minor
                .cmp(&b.amount_minor)
                .then(a.percent.total_cmp(&b.percent))
        })
        .cloned()
}

/// What one provider owes one consumer for one period across agreements
/// (`uncapped`, one credit each, in one currency), capped at `cap`: when the
/// credits add up to more than the cap, each becomes
/// `floor(credit × cap / Σcredits)`, so that the shares keep their
/// proportions and never add up to more than the cap. Negative inputs count
/// as zero.
pub fn split_liability_cap(uncapped: &[i64], cap: i64) -> Vec<i64> {
    let cap = cap.max(0);
    let owed: Vec<i64> = uncapped.iter().map(|c| (*c).max(0)).collect();
    let sum: BigInt = owed.iter().map(|c| BigInt::from(*c)).sum();
    if sum <= BigInt::from(cap) || sum.is_zero() {
        return owed;
    }
    owed.iter()
        .map(|c| (BigInt::from(*c) * cap / &sum).to_i64().unwrap_or(0))
        .collect()
}
