//! `accord.v1.ComplianceService`: compliance of an agreement or of a
//! (consumer, service) pair, and a consumer's credit statement. Names must
//! lie in the request's tenant; instants are kept to the microsecond.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use prost_types::Timestamp;
use tonic::{Request, Response, Status};

use super::convert::{money_out, objective_out, opt_time_in, time_out};
use super::entitlement::provenance_out;
use crate::auth::authorize;
use crate::domain::compliance::{
    AskedInterval, Credit, Interval, ObjectiveEvaluation, Question, Status as Verdict,
};
use crate::domain::entitlement::Pair;
use crate::domain::names::{Collection, Id, ResourceName, TenantName, party_name, service_name};
use crate::domain::terms::Money;
use crate::error::Violations;
use crate::proto::v1 as pb;
use crate::proto::v1::compliance_service_server::ComplianceService;
use crate::service::compliance::{
    AgreementCredit, Compliance, CreditStatement, ObjectiveCompliance, Subject,
};

pub struct ComplianceApi {
    compliance: Arc<Compliance>,
}

impl ComplianceApi {
    pub fn new(compliance: Arc<Compliance>) -> Self {
        Self { compliance }
    }
}

/// An optional instant, truncated to the microsecond (what the stores keep).
fn instant_in(v: &mut Violations, field: &str, t: &Option<Timestamp>) -> Option<DateTime<Utc>> {
    opt_time_in(v, field, t).map(|t| t.trunc_subsecs(6))
}

fn subject_in(
    v: &mut Violations,
    tenant: &Id,
    subject: &Option<pb::get_compliance_request::Subject>,
) -> Option<Subject> {
    use pb::get_compliance_request::Subject as S;
    match subject {
        None => {
            v.add("subject", "is required: set agreement or pair");
            None
        }
        Some(S::Agreement(name)) => v
            .check(ResourceName::parse_in(
                "agreement",
                name,
                Collection::Agreements,
                tenant,
            ))
            .map(Subject::Agreement),
        Some(S::Pair(pair)) => {
            let consumer = v.check(ResourceName::parse_in(
                "pair.consumer",
                &pair.consumer,
                Collection::Parties,
                tenant,
            ));
            let service = v.check(ResourceName::parse_in(
                "pair.service",
                &pair.service,
                Collection::Services,
                tenant,
            ));
            Some(Subject::Pair(Pair {
                consumer: consumer?,
                service: service?,
            }))
        }
    }
}

fn interval_out(i: &Interval) -> pb::TimeInterval {
    pb::TimeInterval {
        start_time: Some(time_out(i.start)),
        end_time: Some(time_out(i.end)),
    }
}

fn status_out(s: Verdict) -> pb::ComplianceStatus {
    match s {
        Verdict::Met => pb::ComplianceStatus::Met,
        Verdict::BelowTarget => pb::ComplianceStatus::BelowTarget,
        Verdict::Breached => pb::ComplianceStatus::Breached,
        Verdict::NoData => pb::ComplianceStatus::NoData,
    }
}

fn credit_out(c: &Credit) -> pb::Credit {
    pb::Credit {
        percent: c.percent,
        amount: Some(pb::Money {
            amount_minor: c.amount_minor,
            currency_code: c.currency.clone(),
        }),
    }
}

fn lookback_out(d: chrono::TimeDelta) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.num_seconds(),
        nanos: d.subsec_nanos(),
    }
}

fn evaluation_out(e: &ObjectiveEvaluation, into: &mut pb::ObjectiveCompliance) {
    into.period = Some(interval_out(&e.window.period));
    into.closed = e.window.closed();
    into.status = status_out(e.status).into();
    into.attainment = e.attainment.as_ref().map(|a| a.value);
    into.good = e.good;
    into.total = e.total;
    into.error_budget = e.error_budget.map(|b| pb::ErrorBudget {
        total: b.total,
        spent: b.spent,
        remaining: b.remaining,
        unit: b.unit.as_str().to_string(),
    });
    into.burn_rates = e
        .burn_rates
        .iter()
        .map(|r| pb::BurnRate {
            lookback: Some(lookback_out(r.lookback)),
            rate: r.rate,
        })
        .collect();
    into.alerts = e
        .alerts
        .iter()
        .map(|a| pb::BurnRateAlert {
            name: a.name.to_string(),
            firing: a.firing,
            factor: a.factor,
        })
        .collect();
    into.excluded_seconds = e.excluded_seconds;
    into.exclusions_applied = e.exclusions_applied.iter().map(interval_out).collect();
}

fn objective_compliance_out(tenant: &Id, o: &ObjectiveCompliance) -> pb::ObjectiveCompliance {
    let mut out = pb::ObjectiveCompliance {
        key: o.objective.key.clone(),
        service: service_name(tenant, &o.service),
        consumer: o
            .consumer
            .as_ref()
            .map(|c| party_name(tenant, c))
            .unwrap_or_default(),
        objective: Some(objective_out(&o.objective)),
        target: o.objective.target,
        target_provenance: Some(provenance_out(tenant, &o.target_provenance)),
        objective_provenance: Some(provenance_out(tenant, &o.source)),
        credit: o.credit.as_ref().map(credit_out),
        ..Default::default()
    };
    evaluation_out(&o.evaluation, &mut out);
    out
}

fn objective_credit_out(tenant: &Id, o: &ObjectiveCompliance) -> pb::ObjectiveCredit {
    pb::ObjectiveCredit {
        key: o.objective.key.clone(),
        service: service_name(tenant, &o.service),
        status: status_out(o.evaluation.status).into(),
        attainment: o.evaluation.attainment.as_ref().map(|a| a.value),
        credit: o.credit.as_ref().map(credit_out),
        period: Some(interval_out(&o.evaluation.window.period)),
    }
}

fn agreement_credit_out(tenant: &Id, a: &AgreementCredit) -> pb::AgreementCredit {
    pb::AgreementCredit {
        agreement: crate::domain::names::agreement_name(tenant, &a.agreement),
        provider: party_name(tenant, &a.provider),
        period: a.period.as_ref().map(interval_out),
        objectives: a
            .objectives
            .iter()
            .map(|o| objective_credit_out(tenant, o))
            .collect(),
        uncapped: Some(money_out(&a.uncapped)),
        credit: Some(money_out(&a.credit)),
        closed: a.closed,
    }
}

fn statement_out(tenant: &Id, s: &CreditStatement) -> pb::CreditStatement {
    pb::CreditStatement {
        consumer: party_name(tenant, &s.consumer),
        agreements: s
            .agreements
            .iter()
            .map(|a| agreement_credit_out(tenant, a))
            .collect(),
        totals: s.totals.iter().map(|m: &Money| money_out(m)).collect(),
        as_of: Some(time_out(s.as_of)),
    }
}

#[tonic::async_trait]
impl ComplianceService for ComplianceApi {
    async fn get_compliance(
        &self,
        request: Request<pb::GetComplianceRequest>,
    ) -> Result<Response<pb::Compliance>, Status> {
        let tenant = TenantName::parse("parent", &request.get_ref().parent)?.0;
        authorize(&request, &tenant)?;
        let r = request.get_ref();
        let mut v = Violations::new();
        let subject = subject_in(&mut v, &tenant, &r.subject);
        let as_of = instant_in(&mut v, "as_of", &r.as_of);
        let period_containing = instant_in(&mut v, "period_containing", &r.period_containing);
        let interval = r.interval.as_ref().map(|i| AskedInterval {
            start: instant_in(&mut v, "interval.start_time", &i.start_time),
            end: instant_in(&mut v, "interval.end_time", &i.end_time),
        });
        v.into_result()?;
        let subject = subject.expect("checked");
        let question = Question::check(Utc::now(), as_of, period_containing, interval)?;
        let evaluated = self
            .compliance
            .evaluate(&tenant, &subject, &question)
            .await?;
        Ok(Response::new(pb::Compliance {
            as_of: Some(time_out(evaluated.as_of)),
            objectives: evaluated
                .objectives
                .iter()
                .map(|o| objective_compliance_out(&tenant, o))
                .collect(),
        }))
    }

    async fn get_credit_statement(
        &self,
        request: Request<pb::GetCreditStatementRequest>,
    ) -> Result<Response<pb::CreditStatement>, Status> {
        let tenant = TenantName::parse("parent", &request.get_ref().parent)?.0;
        authorize(&request, &tenant)?;
        let r = request.get_ref();
        let mut v = Violations::new();
        let consumer = if r.consumer.is_empty() {
            v.add("consumer", "is required");
            None
        } else {
            v.check(ResourceName::parse_in(
                "consumer",
                &r.consumer,
                Collection::Parties,
                &tenant,
            ))
        };
        let period_containing = instant_in(&mut v, "period_containing", &r.period_containing);
        v.into_result()?;
        let consumer = consumer.expect("checked");
        let statement = self
            .compliance
            .credit_statement(&tenant, &consumer, period_containing)
            .await?;
        Ok(Response::new(statement_out(&tenant, &statement)))
    }
}
