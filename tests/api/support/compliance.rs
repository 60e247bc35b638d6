//! What compliance and credit tests share: fixed instants in 2026 (the
//! golden scenarios are worked out on real calendars), a server that accepts
//! measurements that old, objectives over calendar periods and their
//! measurements, and the requests and answers of ComplianceService.
//!
//! The scenarios lie in 2026 and the server is told to accept measurements
//! up to 1,000 days old (`remembers_2026`), so they hold until late 2028.

use accord::config::Config;
use accord::proto::v1 as pb;
use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use tonic::Status;

use super::server::TestServer;
use super::world::World;

/// Accepts and keeps measurements from 2026 (1,000 days), so that the
/// scenarios can use real, fixed calendars.
pub fn remembers_2026(config: &mut Config) {
    let long = std::time::Duration::from_secs(1000 * 86_400);
    config.measurement_max_age = long;
    config.rollup_retention = long;
}

/// Returns once the partitions of every month a `remembers_2026` server
/// accepts exist (PostgreSQL; SQLite partitions nothing). The server's
/// retention job creates them at start-up, 36 months of six tables in one
/// transaction that locks each table in turn; a test's read of several of
/// them meanwhile could deadlock with it. The partition function runs one
/// call at a time, so this call returns after the job's, or does its work.
pub async fn partitions_settled(s: &TestServer) {
    let mut config = Config::default();
    remembers_2026(&mut config);
    let months = config.measurement_policy().months(Utc::now());
    s.store()
        .await
        .partition_measurements(months, None)
        .await
        .expect("create the partitions of the months accepted");
}

/// `s` (RFC 3339) as a timestamp.
pub fn utc(s: &str) -> Timestamp {
    let t: DateTime<Utc> = s.parse().expect("an RFC 3339 instant");
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// A calendar window of `period` in `time_zone` (empty: UTC).
pub fn calendar(period: pb::CalendarPeriod, time_zone: &str) -> pb::Window {
    pb::Window {
        window: Some(pb::window::Window::Calendar(pb::CalendarWindow {
            period: period.into(),
            time_zone: time_zone.into(),
        })),
    }
}

pub fn monthly() -> pb::Window {
    calendar(pb::CalendarPeriod::Month, "")
}

/// `objective` over `window` instead of its own.
pub fn over(window: pb::Window, objective: pb::Objective) -> pb::Objective {
    pb::Objective {
        window: Some(window),
        ..objective
    }
}

/// A weekly maintenance window: `rrule` from `start`, `hours` long, in `tz`.
pub fn maintenance(rrule: &str, start: &str, hours: i64, tz: &str) -> pb::Exclusion {
    pb::Exclusion {
        reason: "maintenance".into(),
        schedule: Some(pb::exclusion::Schedule::Recurring(pb::RecurringWindow {
            rrule: rrule.into(),
            start: Some(utc(start)),
            duration: Some(prost_types::Duration {
                seconds: hours * 3600,
                nanos: 0,
            }),
            time_zone: tz.into(),
        })),
    }
}

/// A credit schedule: `fee` minor units of EUR a period, `tiers` as
/// (attainment below, percent).
pub fn fee_credits(fee: i64, tiers: &[(f64, f64)]) -> pb::CreditSchedule {
    pb::CreditSchedule {
        tiers: tiers
            .iter()
            .map(|&(attainment_below, credit_percent)| pb::CreditTier {
                attainment_below,
                credit_percent,
            })
            .collect(),
        cap_percent: None,
        fee: Some(eur(fee)),
        claim_window: None,
    }
}

pub fn eur(amount_minor: i64) -> pb::Money {
    pb::Money {
        amount_minor,
        currency_code: "EUR".into(),
    }
}

/// A LIABILITY_CAP clause of `amount_minor` EUR.
pub fn liability_cap(amount_minor: i64) -> pb::Clause {
    pb::Clause {
        kind: pb::ClauseKind::LiabilityCap.into(),
        title: "Liability cap".into(),
        text: "Credits owed for one period never exceed the cap.".into(),
        amount: Some(eur(amount_minor)),
    }
}

/// What GetCompliance answers for one objective, checked to be there once.
#[track_caller]
pub fn objective<'a>(c: &'a pb::Compliance, key: &str) -> &'a pb::ObjectiveCompliance {
    let found: Vec<_> = c.objectives.iter().filter(|o| o.key == key).collect();
    assert_eq!(found.len(), 1, "objective {key} in {c:#?}");
    found[0]
}

pub fn status_of(o: &pb::ObjectiveCompliance) -> pb::ComplianceStatus {
    pb::ComplianceStatus::try_from(o.status).expect("a known status")
}

/// The burn rate over `seconds`.
pub fn burn_rate(o: &pb::ObjectiveCompliance, seconds: i64) -> Option<f64> {
    o.burn_rates
        .iter()
        .find(|r| r.lookback.as_ref().map(|d| d.seconds) == Some(seconds))
        .unwrap_or_else(|| panic!("no {seconds} s lookback in {o:#?}"))
        .rate
}

pub fn firing(o: &pb::ObjectiveCompliance, alert: &str) -> bool {
    o.alerts
        .iter()
        .find(|a| a.name == alert)
        .unwrap_or_else(|| panic!("no alert {alert} in {o:#?}"))
        .firing
}

/// `[start, end)` as RFC 3339 strings.
pub fn interval(start: &str, end: &str) -> pb::TimeInterval {
    pb::TimeInterval {
        start_time: Some(utc(start)),
        end_time: Some(utc(end)),
    }
}

/// Asserts two doubles agree to 1e-9 relative (the wire's doubles are the
/// nearest to exact values; the expected ones are computed in the test).
#[track_caller]
pub fn assert_close(actual: f64, expected: f64) {
    let scale = expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= 1e-9 * scale,
        "{actual} is not {expected}"
    );
}

impl World {
    /// GetCompliance of agreement `name` at `as_of`, for the period
    /// containing `period_containing`.
    pub fn agreement_compliance(
        &self,
        name: &str,
        as_of: &str,
        period_containing: Option<&str>,
    ) -> pb::GetComplianceRequest {
        pb::GetComplianceRequest {
            parent: self.tenant.clone(),
            subject: Some(pb::get_compliance_request::Subject::Agreement(name.into())),
            as_of: Some(utc(as_of)),
            period_containing: period_containing.map(utc),
            interval: None,
        }
    }

    /// GetCompliance of (`consumer`, `service`) at `as_of`.
    pub fn pair_compliance(
        &self,
        consumer: &str,
        service: &str,
        as_of: &str,
        period_containing: Option<&str>,
    ) -> pb::GetComplianceRequest {
        pb::GetComplianceRequest {
            subject: Some(pb::get_compliance_request::Subject::Pair(
                pb::ConsumerService {
                    consumer: consumer.into(),
                    service: service.into(),
                },
            )),
            ..self.agreement_compliance("", as_of, period_containing)
        }
    }

    pub async fn try_compliance(
        &self,
        request: pb::GetComplianceRequest,
    ) -> Result<pb::Compliance, Status> {
        self.compliance()
            .get_compliance(request)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn compliance_of(&self, request: pb::GetComplianceRequest) -> pb::Compliance {
        self.try_compliance(request)
            .await
            .unwrap_or_else(|e| panic!("get compliance: {e:?}"))
    }

    pub fn statement_request(
        &self,
        consumer: &str,
        period_containing: Option<&str>,
    ) -> pb::GetCreditStatementRequest {
        pb::GetCreditStatementRequest {
            parent: self.tenant.clone(),
            consumer: consumer.into(),
            period_containing: period_containing.map(utc),
        }
    }

    pub async fn try_statement(
        &self,
        request: pb::GetCreditStatementRequest,
    ) -> Result<pb::CreditStatement, Status> {
        self.compliance()
            .get_credit_statement(request)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn statement_of(
        &self,
        consumer: &str,
        period_containing: Option<&str>,
    ) -> pb::CreditStatement {
        self.try_statement(self.statement_request(consumer, period_containing))
            .await
            .unwrap_or_else(|e| panic!("get credit statement: {e:?}"))
    }

    /// Reports `measurements` and checks every one was accepted.
    pub async fn report_all(&self, measurements: Vec<pb::Measurement>) {
        let n = measurements.len() as i64;
        let answer = self.report(measurements).await;
        assert_eq!(
            (answer.accepted, answer.rejections.len()),
            (n, 0),
            "{answer:#?}"
        );
    }
}
