//! `accord apply -f FILE_OR_DIR [--dry-run]`: makes the server hold what
//! the files say. Parties (parents first), then services, agreements
//! (supported ones first, each published when the file says so), then
//! overrides. Each is read first: missing → created, different → updated
//! with its etag and only the fields that differ, the same → left alone,
//! so a second apply changes nothing and says so. With `--prune`, what
//! the server holds and the files no longer do is deleted afterwards (see
//! `prune`), once confirmed before anything is written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use clap::Args;
use prost_types::FieldMask;
use serde_json::Value;
use tonic::Code;

use super::Failure;
use super::connection::{Connection, ConnectionArgs};
use super::get::resource_name;
use super::manifest::{self, Document, Kind, Origin, Reference};
use super::prune::{self, InFiles};
use super::reflect::to_json;
use crate::proto::v1 as pb;
use pb::agreement_service_client::AgreementServiceClient;
use pb::party_service_client::PartyServiceClient;
use pb::service_catalog_service_client::ServiceCatalogServiceClient;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A YAML file, or a directory of them (.yaml, .yml); may be repeated.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE_OR_DIR",
        required = true
    )]
    pub files: Vec<PathBuf>,
    /// Show what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete the tenant's parties, services, agreements and overrides
    /// of the kinds the files hold that the files no longer hold.
    #[arg(long)]
    pub prune: bool,
    /// Delete without asking (needed for --prune without a terminal).
    #[arg(long, short, requires = "prune")]
    pub yes: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// A resource as a file wants it: its full name, its references expanded
/// to resource names.
// A few per document, built once each: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Resource {
    Party(pb::Party),
    Service(pb::Service),
    Agreement(pb::Agreement),
    Override(pb::Override),
}

/// One document, ready to apply.
struct Desired {
    kind: Kind,
    id: String,
    /// Where it is created: the tenant, or an Override's agreement.
    parent: String,
    resource: Resource,
    published: bool,
    origin: Origin,
    /// Where the file writes each reference.
    written: Vec<Reference>,
    tenant: String,
}

impl Desired {
    /// `file:line:column` of the reference `name` in `field`, or the
    /// document's `file:line` when it cannot be told.
    fn place_of(&self, field: &str, collection: &str, name: &str) -> String {
        self.written
            .iter()
            .find(|r| r.field == field && expand(&self.tenant, collection, &r.text) == name)
            .map(|r| format!("{}:{}:{}", self.origin.file.display(), r.line, r.column))
            .unwrap_or_else(|| self.origin.to_string())
    }

    fn name(&self) -> &str {
        match &self.resource {
            Resource::Party(r) => &r.name,
            Resource::Service(r) => &r.name,
            Resource::Agreement(r) => &r.name,
            Resource::Override(r) => &r.name,
        }
    }

    /// The names it refers to, each with the field and the kind it must be.
    fn references(&self) -> Vec<(&'static str, Kind, String)> {
        let mut refs = Vec::new();
        let mut add = |field, kind, name: &str| {
            if !name.is_empty() {
                refs.push((field, kind, name.to_string()));
            }
        };
        match &self.resource {
            Resource::Party(p) => add("parent", Kind::Party, &p.parent),
            Resource::Service(s) => add("owner", Kind::Party, &s.owner),
            Resource::Agreement(a) => {
                add("provider", Kind::Party, &a.provider);
                add("consumer", Kind::Party, &a.consumer);
                for s in &a.services {
                    add("services", Kind::Service, s);
                }
                for s in &a.supports {
                    add("supports", Kind::Agreement, s);
                }
            }
            Resource::Override(o) => {
                add("agreement", Kind::Agreement, &self.parent);
                add("consumer", Kind::Party, &o.consumer);
            }
        }
        refs
    }
}

/// What happened to one resource.
#[derive(Default)]
struct Tally {
    created: usize,
    updated: usize,
    published: usize,
    unchanged: usize,
}

pub async fn run(args: ApplyArgs) -> Result<(), Failure> {
    let documents = manifest::read(&args.files)?;
    let connection = Connection::open(&args.connection)?;
    let tenant = connection.tenant()?;
    let desired = in_dependency_order(
        documents
            .into_iter()
            .map(|d| desire(&tenant, d))
            .collect::<Result<Vec<_>, _>>()?,
    )?;
    check_references(&connection, &desired).await?;
    let plan = if args.prune {
        let plan = prune::plan(&connection, &in_files(&desired)).await?;
        if !args.dry_run {
            prune::confirm(&plan, args.yes)?;
        }
        Some(plan)
    } else {
        None
    };
    if args.dry_run {
        println!("dry run: nothing will be changed");
    }
    let mut tally = Tally::default();
    for d in &desired {
        apply_one(&connection, d, args.dry_run, &mut tally).await?;
    }
    let deleted = match &plan {
        Some(plan) => prune::run(&connection, plan, args.dry_run).await?,
        None => 0,
    };
    let Tally {
        created,
        updated,
        published,
        unchanged,
    } = tally;
    if created + updated + published + deleted == 0 {
        println!("no changes: {unchanged} unchanged");
    } else if args.dry_run {
        let delete = if args.prune {
            format!(", delete {deleted}")
        } else {
            String::new()
        };
        println!(
            "dry run, nothing changed: would create {created}, update {updated}, \
             publish {published}{delete}; {unchanged} unchanged"
        );
    } else {
        let deleted = if args.prune {
            format!(", {deleted} deleted")
        } else {
            String::new()
        };
        println!(
            "applied: {created} created, {updated} updated, {published} published, \
             {unchanged} unchanged{deleted}"
        );
    }
    Ok(())
}

/// What prune needs to know of the files.
fn in_files(desired: &[Desired]) -> InFiles {
    InFiles {
        kinds: desired.iter().map(|d| d.kind).collect(),
        references: desired
            .iter()
            .map(|d| {
                let names = d.references().into_iter().map(|(_, _, n)| n).collect();
                (d.name().to_string(), names)
            })
            .collect(),
        override_parents: desired
            .iter()
            .filter_map(|d| match d.kind {
                Kind::Agreement => Some(d.name().to_string()),
                Kind::Override => Some(d.parent.clone()),
                _ => None,
            })
            .collect(),
    }
}

/// A document as the resource it describes, named in `tenant`.
fn desire(tenant: &str, d: Document) -> Result<Desired, Failure> {
    let bad = |e: prost::DecodeError| {
        Failure::Input(format!("error: {}: {} {}: {e}", d.origin, d.kind, d.id))
    };
    let party = |id: &str| expand(tenant, "parties", id);
    let (parent, resource) = match d.kind {
        Kind::Party => {
            let mut p: pb::Party = d.spec.transcode_to().map_err(bad)?;
            p.name = resource_name(tenant, "parties", &d.id);
            p.parent = party(&p.parent);
            (tenant.to_string(), Resource::Party(p))
        }
        Kind::Service => {
            let mut s: pb::Service = d.spec.transcode_to().map_err(bad)?;
            s.name = resource_name(tenant, "services", &d.id);
            s.owner = party(&s.owner);
            (tenant.to_string(), Resource::Service(s))
        }
        Kind::Agreement => {
            let mut a: pb::Agreement = d.spec.transcode_to().map_err(bad)?;
            a.name = resource_name(tenant, "agreements", &d.id);
            a.provider = party(&a.provider);
            a.consumer = party(&a.consumer);
            for s in &mut a.services {
                *s = expand(tenant, "services", s);
            }
            for s in &mut a.supports {
                *s = expand(tenant, "agreements", s);
            }
            (tenant.to_string(), Resource::Agreement(a))
        }
        Kind::Override => {
            let mut o: pb::Override = d.spec.transcode_to().map_err(bad)?;
            let agreement = expand(
                tenant,
                "agreements",
                d.agreement.as_deref().unwrap_or_default(),
            );
            o.name = resource_name(&agreement, "overrides", &d.id);
            o.consumer = party(&o.consumer);
            (agreement, Resource::Override(o))
        }
    };
    Ok(Desired {
        kind: d.kind,
        id: d.id,
        parent,
        resource,
        published: d.published,
        origin: d.origin,
        written: d.references,
        tenant: tenant.to_string(),
    })
}

/// A reference as a resource name: an id becomes `tenant/collection/id`.
fn expand(tenant: &str, collection: &str, reference: &str) -> String {
    if reference.is_empty() {
        String::new()
    } else {
        resource_name(tenant, collection, reference)
    }
}

/// Kinds in the order they may depend on each other; within a kind,
/// parents before children and supported agreements before the ones
/// supporting them; otherwise file order. The same resource twice, or a
/// cycle, is an error.
fn in_dependency_order(mut desired: Vec<Desired>) -> Result<Vec<Desired>, Failure> {
    let mut seen: HashMap<String, Origin> = HashMap::new();
    for d in &desired {
        if let Some(first) = seen.insert(d.name().to_string(), d.origin.clone()) {
            return Err(Failure::Input(format!(
                "error: {}: {} {} is also defined at {first}",
                d.origin, d.kind, d.id
            )));
        }
    }
    desired.sort_by_key(|d| d.kind);
    let in_files: BTreeSet<String> = desired.iter().map(|d| d.name().to_string()).collect();
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut ordered = Vec::with_capacity(desired.len());
    let mut rest = desired.into_iter().peekable();
    while let Some(kind) = rest.peek().map(|d| d.kind) {
        let mut waiting = Vec::new();
        while let Some(d) = rest.next_if(|d| d.kind == kind) {
            waiting.push(d);
        }
        while !waiting.is_empty() {
            let before = waiting.len();
            let mut still = Vec::new();
            for d in waiting {
                let ready = d.references().iter().all(|(_, kind, name)| {
                    *kind != d.kind || !in_files.contains(name) || placed.contains(name)
                });
                if ready {
                    placed.insert(d.name().to_string());
                    ordered.push(d);
                } else {
                    still.push(d);
                }
            }
            if still.len() == before {
                let cycle: Vec<String> = still
                    .iter()
                    .map(|d| format!("{} {} ({})", d.kind, d.id, d.origin))
                    .collect();
                return Err(Failure::Input(format!(
                    "error: these refer to each other in a cycle: {}",
                    cycle.join(", ")
                )));
            }
            waiting = still;
        }
    }
    Ok(ordered)
}

/// Every reference names something in the files or on the server; all
/// that do not are reported together, before anything is written.
async fn check_references(connection: &Connection, desired: &[Desired]) -> Result<(), Failure> {
    let in_files: BTreeMap<&str, Kind> = desired.iter().map(|d| (d.name(), d.kind)).collect();
    let mut on_server: HashMap<String, bool> = HashMap::new();
    let mut errors = Vec::new();
    for d in desired {
        for (field, kind, name) in d.references() {
            let found = match in_files.get(name.as_str()) {
                Some(k) => *k == kind,
                None => match on_server.get(&name) {
                    Some(found) => *found,
                    None => {
                        let found = exists(connection, kind, &name).await?;
                        on_server.insert(name.clone(), found);
                        found
                    }
                },
            };
            if !found {
                let collection = match kind {
                    Kind::Party => "parties",
                    Kind::Service => "services",
                    Kind::Agreement => "agreements",
                    Kind::Override => "overrides",
                };
                errors.push(format!(
                    "error: {}: {} {}: {field} {name} is no {kind} in the files or on the server",
                    d.place_of(field, collection, &name),
                    d.kind,
                    d.id
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::Input(errors.join("\n")))
    }
}

async fn exists(connection: &Connection, kind: Kind, name: &str) -> Result<bool, Failure> {
    if !name.starts_with("tenants/") {
        return Ok(false);
    }
    let authed = connection.authed();
    let name = name.to_string();
    let answer = match kind {
        Kind::Party => PartyServiceClient::new(authed)
            .get_party(pb::GetPartyRequest { name: name.clone() })
            .await
            .map(|_| ()),
        Kind::Service => ServiceCatalogServiceClient::new(authed)
            .get_service(pb::GetServiceRequest { name: name.clone() })
            .await
            .map(|_| ()),
        Kind::Agreement => AgreementServiceClient::new(authed)
            .get_agreement(pb::GetAgreementRequest { name: name.clone() })
            .await
            .map(|_| ()),
        Kind::Override => AgreementServiceClient::new(authed)
            .get_override(pb::GetOverrideRequest { name: name.clone() })
            .await
            .map(|_| ()),
    };
    match answer {
        Ok(()) => Ok(true),
        Err(s) if s.code() == Code::NotFound || s.code() == Code::InvalidArgument => Ok(false),
        Err(s) => Err(connection.failure(&s, &format!("get {name}"))),
    }
}

/// The server's copy, or `None` when it has none.
async fn current(connection: &Connection, d: &Desired) -> Result<Option<Resource>, Failure> {
    let authed = connection.authed();
    let name = d.name().to_string();
    let answer = match d.kind {
        Kind::Party => PartyServiceClient::new(authed)
            .get_party(pb::GetPartyRequest { name: name.clone() })
            .await
            .map(|r| Resource::Party(r.into_inner())),
        Kind::Service => ServiceCatalogServiceClient::new(authed)
            .get_service(pb::GetServiceRequest { name: name.clone() })
            .await
            .map(|r| Resource::Service(r.into_inner())),
        Kind::Agreement => AgreementServiceClient::new(authed)
            .get_agreement(pb::GetAgreementRequest { name: name.clone() })
            .await
            .map(|r| Resource::Agreement(r.into_inner())),
        Kind::Override => AgreementServiceClient::new(authed)
            .get_override(pb::GetOverrideRequest { name: name.clone() })
            .await
            .map(|r| Resource::Override(r.into_inner())),
    };
    match answer {
        Ok(r) => Ok(Some(r)),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(located(connection, d, &s, "get")),
    }
}

fn located(connection: &Connection, d: &Desired, status: &tonic::Status, verb: &str) -> Failure {
    let failure = connection.failure(status, &format!("{verb} {} {}", d.kind, d.id));
    match failure {
        Failure::Server(text) => {
            Failure::Server(text.replacen("error: ", &format!("error: {}: ", d.origin), 1))
        }
        other => other,
    }
}

/// The fields a file may set, as JSON: the server's own fields left out.
fn comparable(resource: &Resource) -> serde_json::Map<String, Value> {
    let (value, output_only): (Value, &[&str]) = match resource {
        Resource::Party(r) => (to_json(r), &["name", "etag", "create_time", "update_time"]),
        Resource::Service(r) => (to_json(r), &["name", "etag", "create_time", "update_time"]),
        Resource::Override(r) => (to_json(r), &["name", "etag", "create_time", "update_time"]),
        Resource::Agreement(r) => (
            to_json(r),
            &[
                "name",
                "etag",
                "create_time",
                "update_time",
                "state",
                "revision_id",
                "revision_create_time",
                "terminate_time",
            ],
        ),
    };
    let Value::Object(mut map) = value else {
        unreachable!("a message serializes to an object")
    };
    for field in output_only {
        map.remove(*field);
    }
    map
}

/// One line per leaf that differs: `path: old → new`, `+ path: new`,
/// `- path: old`.
fn diff(path: &str, old: Option<&Value>, new: Option<&Value>, lines: &mut Vec<String>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                diff(&format!("{path}.{k}"), a.get(k), b.get(k), lines);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                diff(&format!("{path}[{i}]"), a.get(i), b.get(i), lines);
            }
        }
        (Some(a), Some(b)) if a == b => {}
        (Some(a), Some(b)) => lines.push(format!("~ {path}: {a} → {b}")),
        (None, Some(b)) => lines.push(format!("+ {path}: {b}")),
        (Some(a), None) => lines.push(format!("- {path}: {a}")),
        (None, None) => {}
    }
}

async fn apply_one(
    connection: &Connection,
    d: &Desired,
    dry_run: bool,
    tally: &mut Tally,
) -> Result<(), Failure> {
    let what = format!("{} {}", d.kind, d.id);
    let Some(current) = current(connection, d).await? else {
        let mut created = d.resource.clone();
        if !dry_run {
            created = create(connection, d).await?;
        }
        println!("+ {what} created");
        tally.created += 1;
        if d.published {
            if !dry_run {
                publish(connection, d, &created).await?;
            }
            println!("~ {what} published");
            tally.published += 1;
        }
        return Ok(());
    };
    let old = comparable(&current);
    let new = comparable(&d.resource);
    let mut lines = Vec::new();
    let mut paths = Vec::new();
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let before = lines.len();
        diff(key, old.get(key), new.get(key), &mut lines);
        if lines.len() > before {
            paths.push(key.clone());
        }
    }
    let state = match &current {
        Resource::Agreement(a) => Some(a.state()),
        _ => None,
    };
    if state == Some(pb::AgreementState::Active) && !d.published {
        return Err(Failure::Input(format!(
            "error: {}: {what} is published on the server and a file cannot unpublish it: \
             say published: true, or terminate it",
            d.origin
        )));
    }
    let mut latest = current;
    if paths.is_empty() {
        if !(d.published && state == Some(pb::AgreementState::Draft)) {
            println!("= {what} unchanged");
            tally.unchanged += 1;
            return Ok(());
        }
    } else {
        if !dry_run {
            latest = update(connection, d, etag(&latest), paths).await?;
        }
        println!("~ {what} updated");
        for line in lines {
            println!("    {line}");
        }
        tally.updated += 1;
    }
    if d.published && state == Some(pb::AgreementState::Draft) {
        if !dry_run {
            publish(connection, d, &latest).await?;
        }
        println!("~ {what} published");
        tally.published += 1;
    }
    Ok(())
}

fn etag(resource: &Resource) -> String {
    match resource {
        Resource::Party(r) => r.etag.clone(),
        Resource::Service(r) => r.etag.clone(),
        Resource::Agreement(r) => r.etag.clone(),
        Resource::Override(r) => r.etag.clone(),
    }
}

async fn create(connection: &Connection, d: &Desired) -> Result<Resource, Failure> {
    let authed = connection.authed();
    let parent = d.parent.clone();
    let id = d.id.clone();
    let answer = match d.resource.clone() {
        Resource::Party(party) => PartyServiceClient::new(authed)
            .create_party(pb::CreatePartyRequest {
                parent,
                party_id: id,
                party: Some(party),
                request_id: String::new(),
            })
            .await
            .map(|r| Resource::Party(r.into_inner())),
        Resource::Service(service) => ServiceCatalogServiceClient::new(authed)
            .create_service(pb::CreateServiceRequest {
                parent,
                service_id: id,
                service: Some(service),
                request_id: String::new(),
            })
            .await
            .map(|r| Resource::Service(r.into_inner())),
        Resource::Agreement(agreement) => AgreementServiceClient::new(authed)
            .create_agreement(pb::CreateAgreementRequest {
                parent,
                agreement_id: id,
                agreement: Some(agreement),
                request_id: String::new(),
            })
            .await
            .map(|r| Resource::Agreement(r.into_inner())),
        Resource::Override(r#override) => AgreementServiceClient::new(authed)
            .create_override(pb::CreateOverrideRequest {
                parent,
                override_id: id,
                r#override: Some(r#override),
                request_id: String::new(),
            })
            .await
            .map(|r| Resource::Override(r.into_inner())),
    };
    answer.map_err(|s| located(connection, d, &s, "create"))
}

async fn update(
    connection: &Connection,
    d: &Desired,
    etag: String,
    paths: Vec<String>,
) -> Result<Resource, Failure> {
    let authed = connection.authed();
    let update_mask = Some(FieldMask { paths });
    let answer = match d.resource.clone() {
        Resource::Party(party) => PartyServiceClient::new(authed)
            .update_party(pb::UpdatePartyRequest {
                party: Some(pb::Party { etag, ..party }),
                update_mask,
            })
            .await
            .map(|r| Resource::Party(r.into_inner())),
        Resource::Service(service) => ServiceCatalogServiceClient::new(authed)
            .update_service(pb::UpdateServiceRequest {
                service: Some(pb::Service { etag, ..service }),
                update_mask,
            })
            .await
            .map(|r| Resource::Service(r.into_inner())),
        Resource::Agreement(agreement) => AgreementServiceClient::new(authed)
            .update_agreement(pb::UpdateAgreementRequest {
                agreement: Some(pb::Agreement { etag, ..agreement }),
                update_mask,
            })
            .await
            .map(|r| Resource::Agreement(r.into_inner())),
        Resource::Override(r#override) => AgreementServiceClient::new(authed)
            .update_override(pb::UpdateOverrideRequest {
                r#override: Some(pb::Override { etag, ..r#override }),
                update_mask,
            })
            .await
            .map(|r| Resource::Override(r.into_inner())),
    };
    answer.map_err(|s| located(connection, d, &s, "update"))
}

async fn publish(connection: &Connection, d: &Desired, latest: &Resource) -> Result<(), Failure> {
    AgreementServiceClient::new(connection.authed())
        .publish_agreement(pb::PublishAgreementRequest {
            name: d.name().to_string(),
            etag: etag(latest),
        })
        .await
        .map(|_| ())
        .map_err(|s| located(connection, d, &s, "publish"))
}
