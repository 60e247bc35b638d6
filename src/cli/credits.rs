//! `accord credits [AGREEMENT] --consumer P [--period T]`: the consumer's
//! credit statement for one billing period (GetCreditStatement), per
//! agreement and objective, money in the fee's currency; with AGREEMENT,
//! that agreement's part only.

use std::collections::BTreeMap;

use clap::Args;
use serde_json::{Value, json};

use super::Failure;
use super::compliance::credit;
use super::connection::{Connection, ConnectionArgs};
use super::get::resource_name;
use super::output::{self, Format, decimal, ids, interval, money, text};
use super::reflect::to_json;
use super::resolve::timestamp;
use crate::proto::v1 as pb;
use pb::agreement_service_client::AgreementServiceClient;
use pb::compliance_service_client::ComplianceServiceClient;

#[derive(Debug, Args)]
pub struct CreditsArgs {
    /// Only this agreement's part of the statement (its id or resource name).
    pub agreement: Option<String>,
    /// The consumer party owed the credits (its id or resource name).
    #[arg(long)]
    pub consumer: String,
    /// The billing period: each agreement's calendar period containing this
    /// instant (RFC 3339) [default: now].
    #[arg(long, value_parser = timestamp)]
    pub period: Option<prost_types::Timestamp>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

pub async fn run(args: CreditsArgs) -> Result<(), Failure> {
    let connection = Connection::open(&args.connection)?;
    let parent = connection.tenant()?;
    let consumer = resource_name(&parent, "parties", &args.consumer);
    let doing = format!("get the credit statement of {consumer}");
    let mut statement = ComplianceServiceClient::new(connection.authed())
        .get_credit_statement(pb::GetCreditStatementRequest {
            parent: parent.clone(),
            consumer,
            period_containing: args.period,
        })
        .await
        .map_err(|s| connection.failure(&s, &doing))?
        .into_inner();
    if let Some(agreement) = &args.agreement {
        let name = resource_name(&parent, "agreements", agreement);
        statement.agreements.retain(|a| a.agreement == name);
        if statement.agreements.is_empty() {
            // Not in the statement: owed nothing, unless there is no such
            // agreement, which the server says.
            AgreementServiceClient::new(connection.authed())
                .get_agreement(pb::GetAgreementRequest { name: name.clone() })
                .await
                .map_err(|s| connection.failure(&s, &format!("get {name}")))?;
        }
        statement.totals = totals(&statement.agreements);
    }
    match args.output {
        Format::Table => {
            print_statement(&statement);
            Ok(())
        }
        format => output::print(&[to_json(&statement)], true, format, &[]),
    }
}

/// The sum of the agreements' credits per currency, by currency code.
fn totals(agreements: &[pb::AgreementCredit]) -> Vec<pb::Money> {
    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    for m in agreements.iter().filter_map(|a| a.credit.as_ref()) {
        *sums.entry(m.currency_code.clone()).or_default() += m.amount_minor;
    }
    sums.into_iter()
        .map(|(currency_code, amount_minor)| pb::Money {
            amount_minor,
            currency_code,
        })
        .collect()
}

fn print_statement(s: &pb::CreditStatement) {
    println!(
        "credits of {} as of {}",
        s.consumer.rsplit('/').next().unwrap_or(&s.consumer),
        output::instant(s.as_of.as_ref())
    );
    let optional_money = |m: Option<&pb::Money>| m.map(money).unwrap_or_default();
    let agreements: Vec<Value> = s
        .agreements
        .iter()
        .map(|a| {
            json!({
                "agreement": a.agreement,
                "provider": a.provider,
                "period": interval(a.period.as_ref()),
                "closed": if a.closed { "owed" } else { "so far" },
                "uncapped": optional_money(a.uncapped.as_ref()),
                "credit": optional_money(a.credit.as_ref()),
            })
        })
        .collect();
    println!();
    print!(
        "{}",
        output::table(
            &agreements,
            &[
                ids("AGREEMENT", "agreement"),
                ids("PROVIDER", "provider"),
                text("PERIOD", "period"),
                text("STATE", "closed"),
                text("UNCAPPED", "uncapped"),
                text("CREDIT", "credit"),
            ],
        )
    );
    let objectives: Vec<Value> = s
        .agreements
        .iter()
        .flat_map(|a| {
            a.objectives.iter().map(|o| {
                let status = pb::ComplianceStatus::try_from(o.status)
                    .map(|s| s.as_str_name().trim_start_matches("COMPLIANCE_STATUS_"))
                    .unwrap_or_default();
                json!({
                    "agreement": a.agreement,
                    "key": o.key,
                    "service": o.service,
                    "status": status,
                    "attained": o.attainment.map(decimal).unwrap_or_default(),
                    "credit": credit(o.credit.as_ref()),
                })
            })
        })
        .collect();
    if !objectives.is_empty() {
        println!("\nobjectives:");
        print!(
            "{}",
            output::table(
                &objectives,
                &[
                    ids("AGREEMENT", "agreement"),
                    text("KEY", "key"),
                    ids("SERVICE", "service"),
                    text("STATUS", "status"),
                    text("ATTAINED", "attained"),
                    text("CREDIT", "credit"),
                ],
            )
        );
    }
    let totals: Vec<String> = s.totals.iter().map(money).collect();
    if totals.is_empty() {
        println!("\ntotal: nothing owed");
    } else {
        println!("\ntotal: {}", totals.join(", "));
    }
}
