//! `accord apply --prune`: what the server holds and the files no longer
//! do, among the kinds the files manage, and its deletion. The plan is made
//! from the server's lists before apply writes anything, so the operator
//! confirms it first. Only never-published agreements can be deleted (the
//! API's rule); a published one is reported, with everything it still
//! refers to, and never terminated on the operator's behalf.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;

use super::Failure;
use super::connection::Connection;
use super::manifest::Kind;
use super::output;
use crate::proto::v1 as pb;
use pb::agreement_service_client::AgreementServiceClient;
use pb::party_service_client::PartyServiceClient;
use pb::service_catalog_service_client::ServiceCatalogServiceClient;

/// What the files hold, as prune needs it.
pub struct InFiles {
    /// The kinds with at least one document: only these are pruned.
    pub kinds: BTreeSet<Kind>,
    /// Each resource's name and the names it refers to (the files' version
    /// of it, which apply is about to write).
    pub references: BTreeMap<String, Vec<String>>,
    /// The agreements the files define or give overrides to: their
    /// overrides are the files' to keep or prune.
    pub override_parents: BTreeSet<String>,
}

/// A resource on the server.
#[derive(Debug, Clone)]
struct Held {
    kind: Kind,
    name: String,
    etag: String,
    references: Vec<String>,
    /// An agreement's state.
    state: Option<pb::AgreementState>,
    /// An override's agreement.
    agreement: Option<String>,
}

impl Held {
    /// `party bank`, `override gold (agreement sla)`.
    fn shown(&self) -> String {
        let id = self.name.rsplit('/').next().unwrap_or(&self.name);
        match &self.agreement {
            Some(a) => format!(
                "{} {id} (agreement {})",
                self.kind,
                a.rsplit('/').next().unwrap_or(a)
            ),
            None => format!("{} {id}", self.kind),
        }
    }
}

/// What prune will delete, in order, and what it leaves with the reason.
pub struct Plan {
    deletions: Vec<Held>,
    kept: Vec<(Held, String)>,
}

/// The plan for the tenant's resources against what the files hold.
pub async fn plan(connection: &Connection, files: &InFiles) -> Result<Plan, Failure> {
    let held = everything(connection).await?;
    let managed = |kind: Kind, name: &str| {
        kind != Kind::Override
            && !files.references.contains_key(name)
            && files.kinds.contains(&kind)
    };
    // Candidates, by name; `None` while they are to be deleted, the reason
    // once they are kept.
    let mut candidates: BTreeMap<String, Option<String>> = BTreeMap::new();
    for h in held.iter().filter(|h| managed(h.kind, &h.name)) {
        let reason = match h.state {
            Some(pb::AgreementState::Draft) | None => None,
            Some(pb::AgreementState::Active) => Some(
                "it is ACTIVE, and a published agreement cannot be deleted: terminate it instead"
                    .to_string(),
            ),
            // Ended agreements stay as history; nothing to say about them.
            Some(_) => Some(String::new()),
        };
        candidates.insert(h.name.clone(), reason);
    }
    // Overrides of the agreements the files own, and of the drafts about to
    // be deleted (which the server deletes with them: they are listed).
    for h in &held {
        if let Some(a) = &h.agreement
            && !files.references.contains_key(&h.name)
            && (files.override_parents.contains(a) || candidates.get(a) == Some(&None))
        {
            candidates.insert(h.name.clone(), None);
        }
    }
    let deleted = |candidates: &BTreeMap<String, Option<String>>, name: &str| {
        matches!(candidates.get(name), Some(None))
    };
    // Whether `h` will be deleted: an override taken in only for its
    // agreement's sake stays when its agreement does.
    let goes = |candidates: &BTreeMap<String, Option<String>>, h: &Held| {
        deleted(candidates, &h.name)
            && h.agreement
                .as_deref()
                .is_none_or(|a| files.override_parents.contains(a) || deleted(candidates, a))
    };
    // What stays refers to what it needs, which then stays too.
    loop {
        let mut referred: BTreeMap<String, String> = BTreeMap::new();
        for (name, references) in &files.references {
            for r in references {
                referred
                    .entry(r.clone())
                    .or_insert_with(|| format!("{name} in the files"));
            }
        }
        for h in &held {
            if files.references.contains_key(&h.name) || goes(&candidates, h) {
                continue;
            }
            for r in &h.references {
                referred.entry(r.clone()).or_insert_with(|| h.shown());
            }
        }
        let mut changed = false;
        for (name, reason) in candidates.iter_mut() {
            if reason.is_none()
                && let Some(by) = referred.get(name)
            {
                *reason = Some(format!("{by} refers to it"));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut deletions = Vec::new();
    let mut kept = Vec::new();
    for h in &held {
        match candidates.get(&h.name) {
            Some(None) if goes(&candidates, h) => deletions.push(h.clone()),
            Some(Some(reason)) if !reason.is_empty() => kept.push((h.clone(), reason.clone())),
            _ => {}
        }
    }
    Ok(Plan {
        deletions: in_deletion_order(deletions),
        kept,
    })
}

/// Overrides, agreements, services, parties; within a kind, whatever
/// refers to another before it (children before parents).
fn in_deletion_order(mut deletions: Vec<Held>) -> Vec<Held> {
    deletions.sort_by_key(|h| std::cmp::Reverse(h.kind));
    let mut ordered = Vec::with_capacity(deletions.len());
    let mut rest = deletions;
    while !rest.is_empty() {
        let kind = rest[0].kind;
        let (mut of_kind, others): (Vec<Held>, Vec<Held>) =
            rest.into_iter().partition(|h| h.kind == kind);
        rest = others;
        while !of_kind.is_empty() {
            let referred: BTreeSet<&String> =
                of_kind.iter().flat_map(|h| h.references.iter()).collect();
            let (free, waiting): (Vec<Held>, Vec<Held>) = of_kind
                .clone()
                .into_iter()
                .partition(|h| !referred.contains(&h.name));
            if free.is_empty() {
                // A cycle: the server says which one it refuses.
                ordered.extend(waiting);
                break;
            }
            ordered.extend(free);
            of_kind = waiting;
        }
    }
    ordered
}

/// Asks on the terminal before anything is written; without one refuses
/// unless `--yes` was given. The list is shown either way.
pub fn confirm(plan: &Plan, yes: bool) -> Result<(), Failure> {
    if plan.deletions.is_empty() || yes {
        return Ok(());
    }
    let n = plan.deletions.len();
    let list: Vec<String> = plan
        .deletions
        .iter()
        .map(|h| format!("  {}", h.shown()))
        .collect();
    let refused = || {
        Failure::Usage(format!(
            "error: apply --prune would delete {n} resources:\n{}\nno terminal to confirm on; \
             pass --yes to delete without asking, nothing was changed",
            list.join("\n")
        ))
    };
    if std::io::stdin().is_terminal() {
        eprintln!("apply --prune will delete:\n{}", list.join("\n"));
    }
    match output::ask(&format!("delete {n} resources?"))? {
        None => Err(refused()),
        Some(true) => Ok(()),
        Some(false) => Err(Failure::Input(
            "error: nothing applied, nothing deleted".to_string(),
        )),
    }
}

/// Deletes what the plan says (or only says so, in a dry run), each with
/// the etag it was listed with, and says what it keeps. The count deleted.
pub async fn run(connection: &Connection, plan: &Plan, dry_run: bool) -> Result<usize, Failure> {
    for h in &plan.deletions {
        if dry_run {
            println!("- {} would be deleted", h.shown());
            continue;
        }
        delete(connection, h).await?;
        println!("- {} deleted", h.shown());
    }
    for (h, reason) in &plan.kept {
        println!("! {} not deleted: {reason}", h.shown());
    }
    Ok(plan.deletions.len())
}

async fn delete(connection: &Connection, h: &Held) -> Result<(), Failure> {
    let authed = connection.authed();
    let (name, etag) = (h.name.clone(), h.etag.clone());
    let answer = match h.kind {
        Kind::Party => PartyServiceClient::new(authed)
            .delete_party(pb::DeletePartyRequest { name, etag })
            .await
            .map(|_| ()),
        Kind::Service => ServiceCatalogServiceClient::new(authed)
            .delete_service(pb::DeleteServiceRequest { name, etag })
            .await
            .map(|_| ()),
        Kind::Agreement => AgreementServiceClient::new(authed)
            .delete_agreement(pb::DeleteAgreementRequest { name, etag })
            .await
            .map(|_| ()),
        Kind::Override => AgreementServiceClient::new(authed)
            .delete_override(pb::DeleteOverrideRequest { name, etag })
            .await
            .map(|_| ()),
    };
    answer.map_err(|s| connection.failure(&s, &format!("delete {}", h.shown())))
}

/// Every party, service, agreement and override of the tenant.
async fn everything(connection: &Connection) -> Result<Vec<Held>, Failure> {
    let tenant = connection.tenant()?;
    let mut held = Vec::new();
    let mut token = String::new();
    loop {
        let page = PartyServiceClient::new(connection.authed())
            .list_parties(pb::ListPartiesRequest {
                parent: tenant.clone(),
                page_size: 1000,
                page_token: token,
            })
            .await
            .map_err(|s| connection.failure(&s, "list parties"))?
            .into_inner();
        held.extend(page.parties.into_iter().map(|p| Held {
            kind: Kind::Party,
            references: [p.parent].into_iter().filter(|r| !r.is_empty()).collect(),
            name: p.name,
            etag: p.etag,
            state: None,
            agreement: None,
        }));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    loop {
        let page = ServiceCatalogServiceClient::new(connection.authed())
            .list_services(pb::ListServicesRequest {
                parent: tenant.clone(),
                page_size: 1000,
                page_token: token,
            })
            .await
            .map_err(|s| connection.failure(&s, "list services"))?
            .into_inner();
        held.extend(page.services.into_iter().map(|s| Held {
            kind: Kind::Service,
            references: [s.owner].into_iter().filter(|r| !r.is_empty()).collect(),
            name: s.name,
            etag: s.etag,
            state: None,
            agreement: None,
        }));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let mut agreements = Vec::new();
    loop {
        let page = AgreementServiceClient::new(connection.authed())
            .list_agreements(pb::ListAgreementsRequest {
                parent: tenant.clone(),
                page_size: 1000,
                page_token: token,
                filter: String::new(),
            })
            .await
            .map_err(|s| connection.failure(&s, "list agreements"))?
            .into_inner();
        for a in page.agreements {
            let state = a.state();
            let mut references = vec![a.provider, a.consumer];
            references.extend(a.services);
            references.extend(a.supports);
            references.retain(|r| !r.is_empty());
            agreements.push(a.name.clone());
            held.push(Held {
                kind: Kind::Agreement,
                name: a.name,
                etag: a.etag,
                references,
                state: Some(state),
                agreement: None,
            });
        }
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    for agreement in agreements {
        loop {
            let page = AgreementServiceClient::new(connection.authed())
                .list_overrides(pb::ListOverridesRequest {
                    parent: agreement.clone(),
                    page_size: 1000,
                    page_token: token,
                })
                .await
                .map_err(|s| connection.failure(&s, &format!("list overrides of {agreement}")))?
                .into_inner();
            held.extend(page.overrides.into_iter().map(|o| {
                Held {
                    kind: Kind::Override,
                    references: [agreement.clone(), o.consumer]
                        .into_iter()
                        .filter(|r| !r.is_empty())
                        .collect(),
                    name: o.name,
                    etag: o.etag,
                    state: None,
                    agreement: Some(agreement.clone()),
                }
            }));
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
        }
    }
    Ok(held)
}
