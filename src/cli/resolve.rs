//! `accord resolve CONSUMER SERVICE [--as-of] [--known-at] [--explain]`:
//! the effective entitlement and the layer each term comes from.

use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::{Value, json};

use super::Failure;
use super::connection::{Connection, ConnectionArgs};
use super::get::resource_name;
use super::output::{self, Format, enumeration, ids, text};
use super::reflect::to_json;
use crate::proto::v1 as pb;
use pb::entitlement_service_client::EntitlementServiceClient;

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The consumer party (its id or resource name).
    pub consumer: String,
    /// The service (its id or resource name).
    pub service: String,
    /// Valid time: the terms in force then (RFC 3339) [default: now].
    #[arg(long, value_parser = timestamp)]
    pub as_of: Option<prost_types::Timestamp>,
    /// Transaction time: as the registry knew it then (RFC 3339) [default: now].
    #[arg(long, value_parser = timestamp)]
    pub known_at: Option<prost_types::Timestamp>,
    /// Also show the consumer's ancestry and every layer considered, with its outcome.
    #[arg(long)]
    pub explain: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

pub fn timestamp(text: &str) -> Result<prost_types::Timestamp, String> {
    let time = DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("not an RFC 3339 time such as 2026-03-01T00:00:00Z: {e}"))?
        .with_timezone(&Utc);
    Ok(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    })
}

pub async fn run(args: ResolveArgs) -> Result<(), Failure> {
    let connection = Connection::open(&args.connection)?;
    let parent = connection.tenant()?;
    let consumer = resource_name(&parent, "parties", &args.consumer);
    let service = resource_name(&parent, "services", &args.service);
    let doing = format!("resolve {consumer} on {service}");
    let mut client = EntitlementServiceClient::new(connection.authed());
    if args.explain {
        let explanation = client
            .explain_entitlement(pb::ExplainEntitlementRequest {
                parent,
                consumer,
                service,
                as_of: args.as_of,
                known_at: args.known_at,
            })
            .await
            .map_err(|s| connection.failure(&s, &doing))?
            .into_inner();
        return match args.output {
            Format::Table => {
                print_explanation(&explanation);
                Ok(())
            }
            format => output::print(&[to_json(&explanation)], true, format, &[]),
        };
    }
    let entitlement = client
        .resolve_entitlement(pb::ResolveEntitlementRequest {
            parent,
            consumer,
            service,
            as_of: args.as_of,
            known_at: args.known_at,
        })
        .await
        .map_err(|s| connection.failure(&s, &doing))?
        .into_inner();
    match args.output {
        Format::Table => {
            print_entitlement(&entitlement);
            Ok(())
        }
        format => output::print(&[to_json(&entitlement)], true, format, &[]),
    }
}

/// "agreement gold-sla revision abcd1234" or "override vip of agreement gold-sla".
fn source(provenance: Option<&pb::Provenance>) -> String {
    let Some(p) = provenance else {
        return String::new();
    };
    let last = |name: &str| name.rsplit('/').next().unwrap_or(name).to_string();
    if !p.r#override.is_empty() {
        let agreement = p.r#override.split("/overrides/").next().unwrap_or_default();
        format!(
            "override {} of agreement {}",
            last(&p.r#override),
            last(agreement)
        )
    } else if !p.revision_id.is_empty() {
        format!(
            "agreement {} revision {}",
            last(&p.agreement),
            p.revision_id
        )
    } else {
        format!("agreement {}", last(&p.agreement))
    }
}

fn compact(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| format!("{k} {}", compact(Some(v))))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

fn print_entitlement(e: &pb::Entitlement) {
    let value = to_json(e);
    println!(
        "{} on {}, as of {}, version {}",
        e.consumer,
        e.service,
        compact(value.get("as_of")),
        e.version
    );
    let rows: Vec<Value> = e
        .objectives
        .iter()
        .map(|o| {
            let objective = o.objective.as_ref().map(to_json).unwrap_or_default();
            let patched: Vec<String> = o
                .patched_fields
                .iter()
                .map(|f| format!("{} by {}", f.field, source(f.provenance.as_ref())))
                .collect();
            json!({
                "key": objective.get("key"),
                "kind": objective.get("kind"),
                "target": objective.get("target"),
                "threshold": objective.get("threshold"),
                "window": output::window(o.objective.as_ref().and_then(|o| o.window.as_ref())),
                "from": source(o.provenance.as_ref()),
                "patched": patched.join("; "),
            })
        })
        .collect();
    println!("\nobjectives:");
    print!(
        "{}",
        output::table(
            &rows,
            &[
                text("KEY", "key"),
                enumeration("KIND", "kind", "OBJECTIVE_KIND_"),
                text("TARGET", "target"),
                text("THRESHOLD", "threshold"),
                text("WINDOW", "window"),
                text("FROM", "from"),
                text("PATCHED", "patched"),
            ],
        )
    );
    if let Some(support) = &e.support {
        println!("\nsupport: from {}", source(support.provenance.as_ref()));
    }
    if let Some(credits) = &e.credits {
        let tiers = credits
            .credits
            .as_ref()
            .map(|c| {
                c.tiers
                    .iter()
                    .map(|t| format!("below {}: {}%", t.attainment_below, t.credit_percent))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        println!(
            "\ncredits: {tiers} (from {})",
            source(credits.provenance.as_ref())
        );
    }
    for x in &e.exclusions {
        let reason = x
            .exclusion
            .as_ref()
            .map(|x| x.reason.as_str())
            .unwrap_or_default();
        println!(
            "exclusion: {reason} (from {})",
            source(x.provenance.as_ref())
        );
    }
    for c in &e.clauses {
        let title = c
            .clause
            .as_ref()
            .map(|c| c.title.as_str())
            .unwrap_or_default();
        println!("clause: {title} (from {})", source(c.provenance.as_ref()));
    }
}

fn print_explanation(x: &pb::EntitlementExplanation) {
    let ancestry: Vec<&str> = x
        .ancestry
        .iter()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .collect();
    println!("ancestry, nearest first: {}", ancestry.join(", "));
    let rows: Vec<Value> = x
        .layers
        .iter()
        .map(|l| {
            let layer = to_json(l);
            json!({
                "kind": layer.get("kind"),
                "source": source(l.source.as_ref()),
                "party": l.party,
                "outcome": layer.get("outcome"),
                "reason": l.reason,
            })
        })
        .collect();
    println!("\nlayers:");
    print!(
        "{}",
        output::table(
            &rows,
            &[
                enumeration("LAYER", "kind", "LAYER_KIND_"),
                text("SOURCE", "source"),
                ids("PARTY", "party"),
                enumeration("OUTCOME", "outcome", "LAYER_OUTCOME_"),
                text("REASON", "reason"),
            ],
        )
    );
    match &x.entitlement {
        Some(e) => {
            println!();
            print_entitlement(e);
        }
        None => println!("\nno layer applies: no entitlement"),
    }
}
