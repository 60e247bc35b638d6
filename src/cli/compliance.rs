//! `accord compliance AGREEMENT | --consumer P --service S`: GetCompliance,
//! one row per objective (attainment, status, error budget, credit), then
//! its burn rates and the alerts firing.

use clap::{ArgGroup, Args};
use serde_json::{Value, json};

use super::Failure;
use super::connection::{Connection, ConnectionArgs};
use super::get::resource_name;
use super::output::{self, Format, decimal, ids, interval, money, text};
use super::reflect::to_json;
use super::resolve::timestamp;
use crate::proto::v1 as pb;
use pb::compliance_service_client::ComplianceServiceClient;
use pb::get_compliance_request::Subject;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("subject").required(true).args(["agreement", "consumer"])))]
pub struct ComplianceArgs {
    /// The agreement (its id or resource name), judged on its own terms.
    pub agreement: Option<String>,
    /// Instead of an agreement: a consumer party, judged on its resolved
    /// entitlement on --service.
    #[arg(long, requires = "service", conflicts_with = "agreement")]
    pub consumer: Option<String>,
    /// The service of --consumer.
    #[arg(long, requires = "consumer")]
    pub service: Option<String>,
    /// The evaluation instant (RFC 3339) [default: now].
    #[arg(long, value_parser = timestamp)]
    pub as_of: Option<prost_types::Timestamp>,
    /// Calendar windows: the period containing this instant (RFC 3339) [default: --as-of].
    #[arg(long, value_parser = timestamp, conflicts_with = "start")]
    pub period_containing: Option<prost_types::Timestamp>,
    /// An explicit interval instead of each objective's window: its start (RFC 3339).
    #[arg(long, value_parser = timestamp, requires = "end")]
    pub start: Option<prost_types::Timestamp>,
    /// The end of the explicit interval (RFC 3339, exclusive).
    #[arg(long, value_parser = timestamp, requires = "start")]
    pub end: Option<prost_types::Timestamp>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

pub async fn run(args: ComplianceArgs) -> Result<(), Failure> {
    let connection = Connection::open(&args.connection)?;
    let parent = connection.tenant()?;
    let (subject, doing) = match (&args.agreement, &args.consumer, &args.service) {
        (Some(agreement), _, _) => {
            let name = resource_name(&parent, "agreements", agreement);
            let doing = format!("get compliance of {name}");
            (Subject::Agreement(name), doing)
        }
        (None, Some(consumer), Some(service)) => {
            let consumer = resource_name(&parent, "parties", consumer);
            let service = resource_name(&parent, "services", service);
            let doing = format!("get compliance of {consumer} on {service}");
            (
                Subject::Pair(pb::ConsumerService { consumer, service }),
                doing,
            )
        }
        _ => unreachable!("clap requires an agreement or --consumer with --service"),
    };
    let interval = match (args.start, args.end) {
        (Some(start_time), Some(end_time)) => Some(pb::TimeInterval {
            start_time: Some(start_time),
            end_time: Some(end_time),
        }),
        _ => None,
    };
    let compliance = ComplianceServiceClient::new(connection.authed())
        .get_compliance(pb::GetComplianceRequest {
            parent,
            subject: Some(subject),
            as_of: args.as_of,
            period_containing: args.period_containing,
            interval,
        })
        .await
        .map_err(|s| connection.failure(&s, &doing))?
        .into_inner();
    match args.output {
        Format::Table => {
            print_compliance(&compliance);
            Ok(())
        }
        format => output::print(&[to_json(&compliance)], true, format, &[]),
    }
}

fn status_name(status: i32) -> String {
    pb::ComplianceStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("COMPLIANCE_STATUS_")
                .to_string()
        })
        .unwrap_or_else(|_| status.to_string())
}

/// "-99 of 1 events": what is left of the error budget, of how much.
fn budget(b: Option<&pb::ErrorBudget>) -> String {
    match b {
        Some(b) => format!(
            "{} of {} {}",
            decimal(b.remaining),
            decimal(b.total),
            b.unit
        ),
        None => String::new(),
    }
}

/// "10% 100.00 EUR", or the percent alone without a fee.
pub fn credit(c: Option<&pb::Credit>) -> String {
    match c {
        Some(c) => match &c.amount {
            Some(amount) => format!("{}% {}", decimal(c.percent), money(amount)),
            None => format!("{}%", decimal(c.percent)),
        },
        None => String::new(),
    }
}

/// "5m" for a lookback of 300 s.
fn lookback(d: Option<&prost_types::Duration>) -> String {
    let seconds = d.map_or(0, |d| d.seconds);
    match seconds {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn print_compliance(c: &pb::Compliance) {
    println!("compliance as of {}", output::instant(c.as_of.as_ref()));
    let rows: Vec<Value> = c
        .objectives
        .iter()
        .map(|o| {
            let indicator = o
                .objective
                .as_ref()
                .map(|x| x.indicator.clone())
                .unwrap_or_default();
            let closed = if o.closed { " (closed)" } else { "" };
            json!({
                "key": o.key,
                "service": o.service,
                "consumer": o.consumer,
                "indicator": indicator,
                "target": decimal(o.target),
                "attained": o.attainment.map(decimal).unwrap_or_default(),
                "good": format!("{}/{}", decimal(o.good), decimal(o.total)),
                "status": status_name(o.status),
                "budget": budget(o.error_budget.as_ref()),
                "period": format!("{}{closed}", interval(o.period.as_ref())),
                "credit": credit(o.credit.as_ref()),
            })
        })
        .collect();
    println!();
    print!(
        "{}",
        output::table(
            &rows,
            &[
                text("KEY", "key"),
                ids("SERVICE", "service"),
                ids("CONSUMER", "consumer"),
                text("INDICATOR", "indicator"),
                text("TARGET", "target"),
                text("ATTAINED", "attained"),
                text("GOOD/TOTAL", "good"),
                text("STATUS", "status"),
                text("BUDGET LEFT", "budget"),
                text("PERIOD", "period"),
                text("CREDIT", "credit"),
            ],
        )
    );
    let rates: Vec<Value> = c
        .objectives
        .iter()
        .filter(|o| !o.burn_rates.is_empty() || !o.alerts.is_empty())
        .map(|o| {
            let burn: Vec<String> = o
                .burn_rates
                .iter()
                .map(|r| {
                    let rate = r.rate.map(decimal).unwrap_or_else(|| "-".into());
                    format!("{} {rate}", lookback(r.lookback.as_ref()))
                })
                .collect();
            let firing: Vec<&str> = o
                .alerts
                .iter()
                .filter(|a| a.firing)
                .map(|a| a.name.as_str())
                .collect();
            json!({
                "key": o.key,
                "service": o.service,
                "rates": burn.join(", "),
                "firing": if firing.is_empty() { "none".to_string() } else { firing.join(", ") },
            })
        })
        .collect();
    if !rates.is_empty() {
        println!("\nburn rates:");
        print!(
            "{}",
            output::table(
                &rates,
                &[
                    text("KEY", "key"),
                    ids("SERVICE", "service"),
                    text("BURN RATES", "rates"),
                    text("ALERTS FIRING", "firing"),
                ],
            )
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookbacks_are_named_in_their_largest_whole_unit() {
        let d = |seconds| Some(prost_types::Duration { seconds, nanos: 0 });
        assert_eq!(lookback(d(300).as_ref()), "5m");
        assert_eq!(lookback(d(7_200).as_ref()), "2h");
        assert_eq!(lookback(d(259_200).as_ref()), "3d");
        assert_eq!(lookback(d(90).as_ref()), "90s");
    }
}
