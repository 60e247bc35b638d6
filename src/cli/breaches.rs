//! `accord breaches [--agreement A] [--consumer P] [--state S] …`: every page
//! of ListBreaches, its filter built from the flags.

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::Failure;
use super::compliance::credit;
use super::connection::{Connection, ConnectionArgs};
use super::get::resource_name;
use super::output::{self, Format, decimal, ids, text};
use super::reflect::to_json;
use super::resolve::timestamp;
use crate::proto::v1 as pb;
use pb::breach_service_client::BreachServiceClient;

#[derive(Debug, Args)]
pub struct BreachesArgs {
    /// Only the breaches of this agreement (its id or resource name).
    #[arg(long)]
    pub agreement: Option<String>,
    /// Only those judged on this consumer's data and terms (id or resource name).
    #[arg(long, conflicts_with = "service_wide")]
    pub consumer: Option<String>,
    /// Only the service-wide breaches (no consumer).
    #[arg(long)]
    pub service_wide: bool,
    /// Only those on this service (id or resource name).
    #[arg(long)]
    pub service: Option<String>,
    /// Only those of this objective key.
    #[arg(long)]
    pub objective: Option<String>,
    /// Only open or only withdrawn breaches.
    #[arg(long, value_enum)]
    pub state: Option<State>,
    /// Only the periods holding this instant (RFC 3339).
    #[arg(long, value_parser = timestamp)]
    pub period_containing: Option<prost_types::Timestamp>,
    /// How many to ask the server for per call; every page is read either way.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: i32,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum State {
    Open,
    Withdrawn,
}

/// The ListBreaches filter the flags say (AIP-160 terms joined by AND).
fn filter(args: &BreachesArgs, parent: &str) -> String {
    let mut terms = Vec::new();
    if let Some(a) = &args.agreement {
        terms.push(format!(
            "agreement = {:?}",
            resource_name(parent, "agreements", a)
        ));
    }
    if let Some(c) = &args.consumer {
        terms.push(format!(
            "consumer = {:?}",
            resource_name(parent, "parties", c)
        ));
    }
    if args.service_wide {
        terms.push("consumer = \"\"".into());
    }
    if let Some(s) = &args.service {
        terms.push(format!(
            "service = {:?}",
            resource_name(parent, "services", s)
        ));
    }
    if let Some(k) = &args.objective {
        terms.push(format!("objective_key = {k:?}"));
    }
    if let Some(state) = args.state {
        terms.push(
            match state {
                State::Open => "state = OPEN",
                State::Withdrawn => "state = WITHDRAWN",
            }
            .into(),
        );
    }
    if let Some(t) = &args.period_containing {
        terms.push(format!(
            "period_containing = {:?}",
            output::instant(Some(t))
        ));
    }
    terms.join(" AND ")
}

pub async fn run(args: BreachesArgs) -> Result<(), Failure> {
    let connection = Connection::open(&args.connection)?;
    let parent = connection.tenant()?;
    let filter = filter(&args, &parent);
    let doing = format!("list {parent}/breaches");
    let mut client = BreachServiceClient::new(connection.authed());
    let mut breaches = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_breaches(pb::ListBreachesRequest {
                parent: parent.clone(),
                page_size: args.page_size,
                page_token,
                filter: filter.clone(),
            })
            .await
            .map_err(|s| connection.failure(&s, &doing))?
            .into_inner();
        breaches.extend(page.breaches);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    match args.output {
        Format::Table => {
            print!("{}", table(&breaches));
            Ok(())
        }
        format => {
            let items: Vec<Value> = breaches.iter().map(to_json).collect();
            output::print(&items, false, format, &[])
        }
    }
}

fn table(breaches: &[pb::Breach]) -> String {
    let rows: Vec<Value> = breaches
        .iter()
        .map(|b| {
            let state = pb::BreachState::try_from(b.state)
                .map(|s| s.as_str_name().trim_start_matches("BREACH_STATE_"))
                .unwrap_or_default();
            let period = b.period.as_ref();
            json!({
                "name": b.name,
                "agreement": b.agreement,
                "objective": b.objective_key,
                "consumer": b.consumer,
                "service": b.service,
                "start": output::instant(period.and_then(|p| p.start_time.as_ref())),
                "end": output::instant(period.and_then(|p| p.end_time.as_ref())),
                "attained": b.attainment.map(decimal).unwrap_or_default(),
                "target": decimal(b.target),
                "credit": credit(b.credit.as_ref()),
                "state": state,
                "revision": b.revision,
            })
        })
        .collect();
    output::table(
        &rows,
        &[
            ids("NAME", "name"),
            ids("AGREEMENT", "agreement"),
            text("OBJECTIVE", "objective"),
            ids("CONSUMER", "consumer"),
            ids("SERVICE", "service"),
            text("PERIOD START", "start"),
            text("PERIOD END", "end"),
            text("ATTAINED", "attained"),
            text("TARGET", "target"),
            text("CREDIT", "credit"),
            text("STATE", "state"),
            text("REV", "revision"),
        ],
    )
}
