//! The terms agreements and overrides are made of, with defaults a test need
//! not spell out: objectives, windows, support, credits, clauses, exclusions,
//! and the patches and bodies of overrides.

use accord::proto::v1 as pb;

use super::clock::{DAY, JAN_2026, ts};
use super::compliance::calendar;

pub fn rolling(days: i64) -> pb::Window {
    pb::Window {
        window: Some(pb::window::Window::Rolling(pb::RollingWindow {
            duration: Some(prost_types::Duration {
                seconds: days * DAY,
                nanos: 0,
            }),
        })),
    }
}

/// `objective` judged over calendar days in UTC.
pub fn daily(objective: pb::Objective) -> pb::Objective {
    pb::Objective {
        window: Some(calendar(pb::CalendarPeriod::Day, "")),
        ..objective
    }
}

/// The RATIO objective `availability` (indicator `http_success`) over 30 days.
pub fn availability(target: f64) -> pb::Objective {
    pb::Objective {
        key: "availability".into(),
        display_name: "Availability".into(),
        indicator: "http_success".into(),
        kind: pb::ObjectiveKind::Ratio.into(),
        target,
        window: Some(rolling(30)),
        ..Default::default()
    }
}

/// A RATIO objective with `key` over 30 days.
pub fn ratio(key: &str, target: f64) -> pb::Objective {
    pb::Objective {
        key: key.into(),
        display_name: key.into(),
        indicator: format!("{key}_events"),
        ..availability(target)
    }
}

/// A THRESHOLD objective `latency`: p99 at most `threshold` ms.
pub fn latency(threshold: f64, target: f64) -> pb::Objective {
    pb::Objective {
        key: "latency".into(),
        display_name: "Latency".into(),
        indicator: "p99_latency_ms".into(),
        kind: pb::ObjectiveKind::Threshold.into(),
        target,
        threshold: Some(threshold),
        comparison: pb::Comparison::LessThanOrEqual.into(),
        window: Some(rolling(30)),
        slice: None,
    }
}

/// The UPTIME objective `uptime` (indicator `downtime`) over 30 days:
/// time-based availability fed by downtime reports.
pub fn uptime(target: f64) -> pb::Objective {
    pb::Objective {
        key: "uptime".into(),
        display_name: "Uptime".into(),
        indicator: "downtime".into(),
        kind: pb::ObjectiveKind::Uptime.into(),
        target,
        window: Some(rolling(30)),
        ..Default::default()
    }
}

/// Support terms told apart by the P1 response time.
pub fn support(response_minutes: i64) -> pb::SupportTerms {
    pb::SupportTerms {
        calendar: None,
        priorities: vec![pb::PriorityTarget {
            priority: "P1".into(),
            response: Some(prost_types::Duration {
                seconds: response_minutes * 60,
                nanos: 0,
            }),
            resolution: Some(prost_types::Duration {
                seconds: response_minutes * 240,
                nanos: 0,
            }),
        }],
    }
}

/// A credit schedule told apart by its cap.
pub fn credits(cap_percent: f64) -> pb::CreditSchedule {
    pb::CreditSchedule {
        tiers: vec![pb::CreditTier {
            attainment_below: 0.999,
            credit_percent: 10.0,
        }],
        cap_percent: Some(cap_percent),
        fee: Some(pb::Money {
            amount_minor: 100_000,
            currency_code: "EUR".into(),
        }),
        claim_window: None,
    }
}

pub fn clause(title: &str) -> pb::Clause {
    pb::Clause {
        kind: pb::ClauseKind::Other.into(),
        title: title.into(),
        text: format!("{title}: the text."),
        amount: None,
    }
}

pub fn exclusion(reason: &str) -> pb::Exclusion {
    pb::Exclusion {
        reason: reason.into(),
        schedule: Some(pb::exclusion::Schedule::OneOff(pb::OneOffWindow {
            start_time: Some(ts(JAN_2026 + 40 * DAY)),
            end_time: Some(ts(JAN_2026 + 41 * DAY)),
        })),
    }
}

pub fn patch_target(key: &str, target: f64) -> pb::ObjectivePatch {
    pb::ObjectivePatch {
        key: key.into(),
        target: Some(target),
        ..Default::default()
    }
}

pub fn patch_threshold(key: &str, threshold: f64) -> pb::ObjectivePatch {
    pb::ObjectivePatch {
        key: key.into(),
        threshold: Some(threshold),
        ..Default::default()
    }
}

pub fn patch_window(key: &str, days: i64) -> pb::ObjectivePatch {
    pb::ObjectivePatch {
        key: key.into(),
        window: Some(rolling(days)),
        ..Default::default()
    }
}

/// An override for `consumer` from `from` (seconds), changing nothing yet.
pub fn ovr(consumer: &str, from: i64) -> pb::Override {
    pb::Override {
        consumer: consumer.into(),
        effective_from: Some(ts(from)),
        ..Default::default()
    }
}

/// The override most tests need: `consumer` gets availability `target` from
/// 2026-01-01.
pub fn target_override(consumer: &str, target: f64) -> pb::Override {
    pb::Override {
        objective_patches: vec![patch_target("availability", target)],
        ..ovr(consumer, JAN_2026)
    }
}
