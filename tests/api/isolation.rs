//! Tenant isolation under random traffic.
//!
//! Two tenants, `alpha-co` (A) and `bravo-co` (B), are populated alike:
//! parties (one with a parent), services, draft, published and terminated
//! agreements with revisions and overrides, measurements, the breaches the
//! period closer opens from them, and API keys of every tenant role.
//! B also holds a few resources whose ids A does not have (`private-*`), and
//! the display names of B's resources carry `B_NOTE`.
//!
//! Then 10,000 random calls, made with A's keys only, go to every RPC of
//! `accord.v1`, with arguments mixing A's names, B's names, B's page tokens,
//! filters naming B's parties and services, A resources whose bodies name B's
//! (an A party whose parent is B's, an A agreement whose provider is B's...),
//! and A-shaped names carrying ids only B has ("ghosts"). The test proves:
//!
//! - no answer, OK or error, carries B's data: an OK response never contains
//!   B's tenant id, and no answer contains `B_NOTE`;
//! - a call naming B in `name`/`parent` is PERMISSION_DENIED; one naming B in
//!   a body, a filter or through a page token is INVALID_ARGUMENT on exactly
//!   those fields; one naming a ghost fails; one that the key's role may not
//!   make is PERMISSION_DENIED (`accord::auth::methods` is the oracle);
//! - an entitlement question about a consumer or service of B's is answered
//!   as one about a missing resource: NOT_FOUND naming it, for the call or,
//!   in a batch or a watch, for that pair alone in an OK answer, which may
//!   repeat the pair's own names and nothing else of B's;
//! - a compliance question or credit statement naming an agreement, a
//!   consumer or a service of B's is INVALID_ARGUMENT on that field, one
//!   naming a ghost NOT_FOUND naming it;
//! - a measurement naming a service or consumer of B's (or a ghost) is
//!   rejected on its own, UNKNOWN_SERVICE or UNKNOWN_CONSUMER, in an OK answer
//!   that says nothing of B; a report or stream to B's parent is refused;
//! - breaches (each tenant has two, from missed days on `search`) are listed,
//!   got and watched like any resource: a breach filter naming B is
//!   INVALID_ARGUMENT on `filter`, one naming a ghost lists nothing, and a
//!   watch of A's own begins with its heartbeat;
//! - A's own calls may fail as the domain says (NOT_FOUND, ABORTED, ...), but
//!   never with INTERNAL, UNKNOWN or any other non-domain code;
//! - B, as B's TENANT_ADMIN lists it through the API, is byte for byte the same
//!   afterwards (a SHA-256 over every message, `last_use_time` aside), and so
//!   are its measurements as the store reads them.
//!
//! The run is reproducible from its seed, printed at the start; set
//! `ACCORD_ISOLATION_SEED` to replay one. Calls run 16 at a time, so their
//! interleaving, and hence the outcome counts, vary a little between runs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use accord::auth::methods::{accord_methods, roles_for};
use accord::domain::api_key::Role;
use accord::domain::measurement::{Level, View};
use accord::domain::names::Id;
use accord::proto::v1 as pb;
use futures::future::LocalBoxFuture;
use futures::{FutureExt, StreamExt};
use prost::Message;
use prost_types::FieldMask;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::on_both_backends;
use crate::support::*;

/// Neither id is a prefix of the other, so finding one in bytes means it.
const A: &str = "alpha-co";
const B: &str = "bravo-co";
/// In the display names of B's resources: no answer to A may contain it.
const B_NOTE: &str = "classified-7f3a";
const A_NOTE: &str = "public";

const CALLS: usize = 10_000;
const CONCURRENCY: usize = 16;
const SEED_VAR: &str = "ACCORD_ISOLATION_SEED";
/// How long a watch may take to send the initial result of every pair.
const WATCH_INITIAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Codes that the domain answers with; anything else from A's own traffic is
/// a fault.
const DOMAIN_ERRORS: &[Code] = &[
    Code::InvalidArgument,
    Code::NotFound,
    Code::AlreadyExists,
    Code::Aborted,
    Code::FailedPrecondition,
];

// --- population ----------------------------------------------------------------

/// A populated tenant and the secrets of its keys, one per tenant role.
struct Populated {
    keys: Vec<(Role, String)>,
}

impl Populated {
    fn key(&self, role: Role) -> &str {
        &self.keys.iter().find(|(r, _)| *r == role).unwrap().1
    }
}

/// Populates tenant `t` on top of `World::new`: parties `retail`, its child
/// `retail-emea`, `ops` and `vendor`; services `ledger` and `search`;
/// agreements `payments-sla` (published, then updated: two revisions, three
/// overrides), `ledger-sla` (draft, one override), `search-sla` (published),
/// `bank-terms` (published then terminated: two revisions), `retail-terms`
/// (draft) and `vendor-uc` (draft, supports `payments-sla`); keys of every
/// tenant role and two spare READER keys. With `private`, also resources whose
/// ids only this tenant has. Display names carry `note`; every create made
/// here carries the request_id `setup-{id}`.
async fn populate(s: &TestServer, t: &str, note: &str, private: bool) -> Populated {
    let w = World::new(s, t).await.with_request_ids("setup");
    let name = |collection: &str, id: &str| w.name(collection, id);
    let shown = |id: &str| format!("{id} ({note})");
    let gold = || [("tier".to_string(), "gold".to_string())].into();

    let mut parties = vec![
        ("retail", pb::PartyKind::Customer, ""),
        ("retail-emea", pb::PartyKind::Customer, "retail"),
        ("ops", pb::PartyKind::InternalUnit, ""),
        ("vendor", pb::PartyKind::Supplier, "platform"),
    ];
    if private {
        parties.push(("private-partner", pb::PartyKind::Customer, "retail"));
    }
    for (id, kind, parent) in parties {
        let parent = if parent.is_empty() {
            String::new()
        } else {
            name("parties", parent)
        };
        w.create_party(
            id,
            pb::Party {
                display_name: shown(id),
                kind: kind.into(),
                parent,
                labels: gold(),
                ..Default::default()
            },
        )
        .await;
    }

    let mut services = vec![("ledger", "platform"), ("search", "vendor")];
    if private {
        services.push(("private-service", "private-partner"));
    }
    for (id, owner) in services {
        w.create_service(
            id,
            pb::Service {
                display_name: shown(id),
                owner: name("parties", owner),
                labels: gold(),
                ..Default::default()
            },
        )
        .await;
    }

    let sla = |services: &[&str]| pb::Agreement {
        services: services.iter().map(|s| name("services", s)).collect(),
        labels: gold(),
        ..w.standard_sla()
    };
    let customer = |consumer: &str| pb::Agreement {
        consumer: name("parties", consumer),
        labels: gold(),
        ..w.standard_deal()
    };
    // Search is also judged per UTC day: the period closer opens breaches.
    let daily_search = pb::Agreement {
        objectives: vec![
            availability(0.999),
            pb::Objective {
                key: "daily".into(),
                ..daily(availability(0.999))
            },
        ],
        ..sla(&["search"])
    };
    let mut agreements = vec![
        ("payments-sla", sla(&["payments"])),
        ("ledger-sla", sla(&["ledger"])),
        ("search-sla", daily_search),
        ("bank-terms", customer("bank")),
        ("retail-terms", customer("retail-emea")),
        (
            "vendor-uc",
            pb::Agreement {
                kind: pb::AgreementKind::Underpinning.into(),
                provider: name("parties", "vendor"),
                consumer: name("parties", "platform"),
                supports: vec![name("agreements", "payments-sla")],
                ..sla(&["payments"])
            },
        ),
    ];
    if private {
        agreements.push((
            "private-deal",
            pb::Agreement {
                services: vec![name("services", "private-service")],
                ..customer("private-partner")
            },
        ));
    }
    for (id, agreement) in agreements {
        let shown = pb::Agreement {
            display_name: shown(id),
            ..agreement
        };
        w.draft(id, shown).await;
    }
    for id in ["payments-sla", "search-sla", "bank-terms"] {
        w.publish_draft(&name("agreements", id)).await;
    }
    w.set_availability(&name("agreements", "payments-sla"), 0.9995)
        .await;
    w.terminate(&name("agreements", "bank-terms"), JAN_2026 + 100 * DAY)
        .await;

    let mut overrides = vec![
        ("payments-sla", "bank-gold", "bank"),
        ("payments-sla", "retail-gold", "retail"),
        ("payments-sla", "emea-gold", "retail-emea"),
        ("ledger-sla", "bank-gold", "bank"),
    ];
    if private {
        overrides.push(("payments-sla", "private-override", "private-partner"));
    }
    for (agreement, id, consumer) in overrides {
        let o = pb::Override {
            display_name: shown(id),
            labels: gold(),
            ..target_override(&name("parties", consumer), 0.9999)
        };
        w.add_override(&name("agreements", agreement), id, o).await;
    }

    // Measurements of payments: the bank's, and service-wide.
    let measured: Vec<pb::Measurement> = (0..20)
        .map(|i| {
            let m = counts(&format!("setup-m{i}"), &w.payments, ago(120 + i), i % 3, 3);
            if i % 2 == 0 { tagged(m, &w.bank) } else { m }
        })
        .collect();
    assert_eq!(w.report(measured).await.accepted, 20);
    // Two missed days on search: two breaches.
    let search = name("services", "search");
    let missed = vec![
        counts("setup-s1", &search, days_ago(1, 12), 1, 2),
        counts("setup-s2", &search, days_ago(2, 12), 1, 2),
    ];
    assert_eq!(w.report(missed).await.accepted, 2);

    let keys = w.key_of_each_role().await;
    let mut spare = vec!["spare-1", "spare-2"];
    if private {
        spare.push("private-key");
    }
    for id in spare {
        w.key(id, pb::Role::Reader).await;
    }
    Populated { keys }
}

// --- what a tenant looks like through the API ------------------------------------

/// Everything a TENANT_ADMIN can list of its tenant.
#[derive(Default)]
struct Snapshot {
    tenant: pb::Tenant,
    parties: Vec<pb::Party>,
    services: Vec<pb::Service>,
    agreements: Vec<pb::Agreement>,
    revisions: Vec<pb::AgreementRevision>,
    overrides: Vec<pb::Override>,
    api_keys: Vec<pb::ApiKey>,
    audit_events: Vec<pb::AuditEvent>,
    breaches: Vec<pb::Breach>,
}

/// Every item of a paginated list, three at a time.
macro_rules! list_all {
    ($client:expr, $method:ident, $items:ident, $request:expr) => {{
        let mut request = $request;
        request.page_size = 3;
        let mut items = Vec::new();
        loop {
            let page = $client
                .clone()
                .$method(request.clone())
                .await
                .expect(stringify!($method))
                .into_inner();
            items.extend(page.$items);
            if page.next_page_token.is_empty() {
                break items;
            }
            request.page_token = page.next_page_token;
        }
    }};
}

async fn snapshot(c: &Clients, tenant: &str) -> Snapshot {
    let parent = format!("tenants/{tenant}");
    let tenant = c
        .tenants()
        .get_tenant(pb::GetTenantRequest {
            name: parent.clone(),
        })
        .await
        .expect("get tenant")
        .into_inner();
    let parties = list_all!(
        c.parties(),
        list_parties,
        parties,
        pb::ListPartiesRequest {
            parent: parent.clone(),
            ..Default::default()
        }
    );
    let services = list_all!(
        c.services(),
        list_services,
        services,
        pb::ListServicesRequest {
            parent: parent.clone(),
            ..Default::default()
        }
    );
    let agreements = list_all!(
        c.agreements(),
        list_agreements,
        agreements,
        pb::ListAgreementsRequest {
            parent: parent.clone(),
            ..Default::default()
        }
    );
    let mut revisions = Vec::new();
    let mut overrides = Vec::new();
    for a in &agreements {
        revisions.extend(list_all!(
            c.agreements(),
            list_agreement_revisions,
            revisions,
            pb::ListAgreementRevisionsRequest {
                name: a.name.clone(),
                ..Default::default()
            }
        ));
        overrides.extend(list_all!(
            c.agreements(),
            list_overrides,
            overrides,
            pb::ListOverridesRequest {
                parent: a.name.clone(),
                ..Default::default()
            }
        ));
    }
    let mut api_keys = list_all!(
        c.api_keys(),
        list_api_keys,
        api_keys,
        pb::ListApiKeysRequest {
            parent: parent.clone(),
            ..Default::default()
        }
    );
    // Using a key records its last use; that is not a change to the tenant.
    for key in &mut api_keys {
        key.last_use_time = None;
    }
    let audit_events = list_all!(
        c.audit(),
        list_audit_events,
        audit_events,
        pb::ListAuditEventsRequest {
            parent: parent.clone(),
            ..Default::default()
        }
    );
    let breaches = list_all!(
        c.breaches(),
        list_breaches,
        breaches,
        pb::ListBreachesRequest {
            parent: parent.clone(),
            ..Default::default()
        }
    );
    Snapshot {
        tenant,
        parties,
        services,
        agreements,
        revisions,
        overrides,
        api_keys,
        audit_events,
        breaches,
    }
}

impl Snapshot {
    /// Every message, named, in list order (which the server fixes).
    fn entries(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![(self.tenant.name.clone(), self.tenant.encode_to_vec())];
        out.extend(
            self.parties
                .iter()
                .map(|m| (m.name.clone(), m.encode_to_vec())),
        );
        out.extend(
            self.services
                .iter()
                .map(|m| (m.name.clone(), m.encode_to_vec())),
        );
        out.extend(
            self.agreements
                .iter()
                .map(|m| (m.name.clone(), m.encode_to_vec())),
        );
        out.extend(
            self.revisions
                .iter()
                .map(|m| (m.name.clone(), m.encode_to_vec())),
        );
        out.extend(
            self.overrides
                .iter()
                .map(|m| (m.name.clone(), m.encode_to_vec())),
        );
        out.extend(
            self.api_keys
                .iter()
                .map(|m| (m.name.clone(), m.encode_to_vec())),
        );
        out.extend(
            self.audit_events
                .iter()
                .map(|m| (m.name.clone(), m.encode_to_vec())),
        );
        out.extend(
            self.breaches
                .iter()
                .map(|m| (m.name.clone(), m.encode_to_vec())),
        );
        out
    }

    fn checksum(&self) -> String {
        let mut hasher = Sha256::new();
        for (name, bytes) in self.entries() {
            for part in [name.as_bytes(), &bytes] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
        }
        hex::encode(hasher.finalize())
    }

    /// The names whose messages differ between `self` and `other`.
    fn differences(&self, other: &Snapshot) -> Vec<String> {
        let before: BTreeMap<_, _> = self.entries().into_iter().collect();
        let after: BTreeMap<_, _> = other.entries().into_iter().collect();
        let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        names
            .into_iter()
            .filter(|n| before.get(*n) != after.get(*n))
            .map(|n| match (before.contains_key(n), after.contains_key(n)) {
                (true, false) => format!("{n} disappeared"),
                (false, true) => format!("{n} appeared"),
                _ => format!("{n} changed"),
            })
            .collect()
    }
}

// --- argument pools --------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tenant,
    Party,
    Service,
    Agreement,
    Override,
    Revision,
    ApiKey,
    /// A key A may revoke without locking itself out (not one of its role keys).
    RevocableKey,
    Breach,
}

/// The names of one tenant's resources, and its etags.
#[derive(Default)]
struct Names {
    tenant: Vec<String>,
    parties: Vec<String>,
    services: Vec<String>,
    agreements: Vec<String>,
    overrides: Vec<String>,
    revisions: Vec<String>,
    api_keys: Vec<String>,
    revocable_keys: Vec<String>,
    breaches: Vec<String>,
    etags: Vec<String>,
}

impl Names {
    fn of(snap: &Snapshot) -> Self {
        let api_keys: Vec<String> = snap.api_keys.iter().map(|k| k.name.clone()).collect();
        let role_keys = ["admin", "editor", "reader", "reporter"];
        let mut etags = vec![snap.tenant.etag.clone()];
        etags.extend(snap.parties.iter().map(|m| m.etag.clone()));
        etags.extend(snap.services.iter().map(|m| m.etag.clone()));
        etags.extend(snap.agreements.iter().map(|m| m.etag.clone()));
        etags.extend(snap.overrides.iter().map(|m| m.etag.clone()));
        etags.extend(snap.api_keys.iter().map(|m| m.etag.clone()));
        Names {
            tenant: vec![snap.tenant.name.clone()],
            parties: snap.parties.iter().map(|m| m.name.clone()).collect(),
            services: snap.services.iter().map(|m| m.name.clone()).collect(),
            agreements: snap.agreements.iter().map(|m| m.name.clone()).collect(),
            overrides: snap.overrides.iter().map(|m| m.name.clone()).collect(),
            revisions: snap.revisions.iter().map(|m| m.name.clone()).collect(),
            revocable_keys: api_keys
                .iter()
                .filter(|n| !role_keys.iter().any(|r| n.ends_with(&format!("/{r}"))))
                .cloned()
                .collect(),
            api_keys,
            breaches: snap.breaches.iter().map(|m| m.name.clone()).collect(),
            etags,
        }
    }

    /// B's names moved into A, less those A has: A-shaped names that nothing
    /// in A answers to.
    fn ghosts(a: &Names, b: &Names) -> Names {
        let swap = |theirs: &[String], ours: &[String]| -> Vec<String> {
            theirs
                .iter()
                .map(|n| n.replacen(&format!("tenants/{B}/"), &format!("tenants/{A}/"), 1))
                .filter(|n| !ours.contains(n))
                .collect()
        };
        Names {
            tenant: Vec::new(),
            parties: swap(&b.parties, &a.parties),
            services: swap(&b.services, &a.services),
            agreements: swap(&b.agreements, &a.agreements),
            overrides: swap(&b.overrides, &a.overrides),
            revisions: swap(&b.revisions, &a.revisions),
            api_keys: swap(&b.api_keys, &a.api_keys),
            revocable_keys: swap(&b.api_keys, &a.api_keys),
            breaches: swap(&b.breaches, &a.breaches),
            etags: Vec::new(),
        }
    }

    fn get(&self, kind: Kind) -> &[String] {
        match kind {
            Kind::Tenant => &self.tenant,
            Kind::Party => &self.parties,
            Kind::Service => &self.services,
            Kind::Agreement => &self.agreements,
            Kind::Override => &self.overrides,
            Kind::Revision => &self.revisions,
            Kind::ApiKey => &self.api_keys,
            Kind::RevocableKey => &self.revocable_keys,
            Kind::Breach => &self.breaches,
        }
    }
}

/// The six paginated lists below a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum List {
    Parties,
    Services,
    Agreements,
    ApiKeys,
    Overrides,
    Revisions,
    AuditEvents,
    Breaches,
}

/// The token of a list's second page, with the parent and filter it is for.
struct Token {
    list: List,
    parent: String,
    filter: String,
    token: String,
}

/// The page tokens of every paginated list of the tenant `snap` shows, read
/// with `reader` (and `admin` for API keys).
async fn page_tokens(reader: &Clients, admin: &Clients, snap: &Snapshot) -> Vec<Token> {
    let parent = snap.tenant.name.clone();
    let mut tokens = Vec::new();
    let mut keep = |list, parent: &str, filter: &str, token: String| {
        if !token.is_empty() {
            tokens.push(Token {
                list,
                parent: parent.into(),
                filter: filter.into(),
                token,
            });
        }
    };
    let (p, size, none) = (parent.clone(), 1, String::new());
    keep(
        List::Parties,
        &p,
        "",
        reader
            .parties()
            .list_parties(pb::ListPartiesRequest {
                parent: p.clone(),
                page_size: size,
                page_token: none.clone(),
            })
            .await
            .expect("list parties")
            .into_inner()
            .next_page_token,
    );
    keep(
        List::Services,
        &p,
        "",
        reader
            .services()
            .list_services(pb::ListServicesRequest {
                parent: p.clone(),
                page_size: size,
                page_token: none.clone(),
            })
            .await
            .expect("list services")
            .into_inner()
            .next_page_token,
    );
    keep(
        List::ApiKeys,
        &p,
        "",
        admin
            .api_keys()
            .list_api_keys(pb::ListApiKeysRequest {
                parent: p.clone(),
                page_size: size,
                page_token: none.clone(),
            })
            .await
            .expect("list API keys")
            .into_inner()
            .next_page_token,
    );
    keep(
        List::AuditEvents,
        &p,
        "",
        admin
            .audit()
            .list_audit_events(pb::ListAuditEventsRequest {
                parent: p.clone(),
                page_size: size,
                ..Default::default()
            })
            .await
            .expect("list audit events")
            .into_inner()
            .next_page_token,
    );
    for filter in ["", "state = OPEN"] {
        keep(
            List::Breaches,
            &p,
            filter,
            reader
                .breaches()
                .list_breaches(pb::ListBreachesRequest {
                    parent: p.clone(),
                    page_size: size,
                    page_token: none.clone(),
                    filter: filter.into(),
                })
                .await
                .expect("list breaches")
                .into_inner()
                .next_page_token,
        );
    }
    for filter in ["", "kind = SERVICE_LEVEL", "labels.tier = gold"] {
        keep(
            List::Agreements,
            &p,
            filter,
            reader
                .agreements()
                .list_agreements(pb::ListAgreementsRequest {
                    parent: p.clone(),
                    page_size: size,
                    page_token: none.clone(),
                    filter: filter.into(),
                })
                .await
                .expect("list agreements")
                .into_inner()
                .next_page_token,
        );
    }
    for a in &snap.agreements {
        let mut api = reader.agreements();
        let overrides = api
            .list_overrides(pb::ListOverridesRequest {
                parent: a.name.clone(),
                page_size: size,
                page_token: none.clone(),
            })
            .await
            .expect("list overrides")
            .into_inner();
        keep(List::Overrides, &a.name, "", overrides.next_page_token);
        let revisions = api
            .list_agreement_revisions(pb::ListAgreementRevisionsRequest {
                name: a.name.clone(),
                page_size: size,
                page_token: none.clone(),
            })
            .await
            .expect("list revisions")
            .into_inner();
        keep(List::Revisions, &a.name, "", revisions.next_page_token);
    }
    tokens
}

// --- the calls --------------------------------------------------------------------

/// Where a call carries names that are not A's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Twist {
    /// A's names only: anything the domain says goes.
    Own,
    /// B's resource (or tenant) in `name`, `parent` or an Update's resource name.
    ForeignName,
    /// An A resource whose body, filter or page token refers to B.
    ForeignRef,
    /// An A-shaped name (or reference) with an id only B has.
    Ghost,
}

impl Twist {
    const ALL: [Twist; 4] = [
        Twist::Own,
        Twist::ForeignName,
        Twist::ForeignRef,
        Twist::Ghost,
    ];

    fn label(self) -> &'static str {
        match self {
            Twist::Own => "A only",
            Twist::ForeignName => "B in name/parent",
            Twist::ForeignRef => "B in body/filter/token",
            Twist::Ghost => "A name, B-only id",
        }
    }
}

/// What the server must answer a call that the key's role may make.
#[derive(Debug, Clone)]
enum Expect {
    /// OK or a domain error.
    Anything,
    /// PERMISSION_DENIED.
    Denied,
    /// PERMISSION_DENIED or INVALID_ARGUMENT (a mangled name of B's).
    Rejected,
    /// INVALID_ARGUMENT naming (at least) each of these fields.
    Invalid(Vec<String>),
    /// A domain error, not OK.
    Failure,
    /// OK, listing no agreement (a filter naming a ghost).
    NoAgreements,
    /// OK, listing no breach (a filter naming a ghost).
    NoBreaches,
    /// OK: a watch whose first message is its heartbeat.
    Watching,
    /// A's own entitlement question: OK answering for exactly that consumer
    /// and service, or NOT_FOUND (A's random traffic decides which).
    Entitled {
        explain: bool,
        consumer: String,
        service: String,
    },
    /// NOT_FOUND naming one of these names as a missing resource is named: a
    /// name of B's is answered as if it did not exist.
    NotFound(Vec<String>),
    /// OK, with one result per pair, in order, each answering for its pair as
    /// expected (a watch: the initial results).
    Results {
        watch: bool,
        pairs: Vec<(pb::EntitlementPair, PairExpect)>,
    },
    /// OK, answering for every measurement of the batch (a stream: its first
    /// answer), each expected as listed.
    Measured {
        stream: bool,
        items: Vec<ItemExpect>,
    },
}

/// What one measurement of a report or a stream's batch must become.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ItemExpect {
    /// A's names only: anything the domain says.
    Own,
    /// It names a service or consumer of B's, or a ghost: rejected as
    /// unknown.
    Unknown,
}

/// What one pair of a batch or a watch must answer.
#[derive(Debug, Clone)]
enum PairExpect {
    /// A's names: its entitlement, or NOT_FOUND.
    Own,
    /// A name of B's or a ghost: NOT_FOUND naming one of these (the pair's).
    NotFound(Vec<String>),
}

/// One planned call, before it is sent.
struct Meta {
    method: String,
    role: Role,
    /// Whether `role` may call `method` at all.
    allowed: bool,
    twist: Twist,
    expect: Expect,
    /// The request's Debug, for failure reports.
    request: String,
}

type Answer = Result<Vec<u8>, Status>;

/// Sends `$request` with `$client.$method` later, answering the encoded
/// response; evaluates to the request's Debug and that future.
macro_rules! rpc {
    ($client:expr, $method:ident, $request:expr) => {{
        let request = $request;
        let shown = format!("{request:?}");
        let mut client = $client.clone();
        let send: LocalBoxFuture<'static, Answer> = async move {
            client
                .$method(request)
                .await
                .map(|r| r.into_inner().encode_to_vec())
        }
        .boxed_local();
        (shown, send)
    }};
}

/// Opens a WatchEntitlements stream, reads its first message for each pair
/// (the initial results, sent before any change or heartbeat) and drops it,
/// which ends the call; answers those messages, length-delimited, in order.
fn watch_initial(
    c: &Clients,
    request: pb::WatchEntitlementsRequest,
) -> (String, LocalBoxFuture<'static, Answer>) {
    let shown = format!("{request:?}");
    let wanted = request.pairs.len();
    let mut client = c.entitlements();
    let send: LocalBoxFuture<'static, Answer> = async move {
        let initial = async {
            let mut stream = client.watch_entitlements(request).await?.into_inner();
            let mut bytes = Vec::new();
            for _ in 0..wanted {
                match stream.message().await? {
                    Some(message) => bytes.extend(message.encode_length_delimited_to_vec()),
                    None => break,
                }
            }
            Ok(bytes)
        };
        tokio::time::timeout(WATCH_INITIAL, initial)
            .await
            .unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(
                    "the watch sent no initial result for every pair in time",
                ))
            })
    }
    .boxed_local();
    (shown, send)
}

/// Opens a WatchBreaches stream and answers its first message (a heartbeat
/// once it watches), or the status that ends it; dropping it ends the call.
fn watch_first(
    c: &Clients,
    request: pb::WatchBreachesRequest,
) -> (String, LocalBoxFuture<'static, Answer>) {
    let shown = format!("{request:?}");
    let mut client = c.breaches();
    let send: LocalBoxFuture<'static, Answer> = async move {
        let first = async {
            let mut stream = client.watch_breaches(request).await?.into_inner();
            match stream.message().await? {
                Some(message) => Ok(message.encode_to_vec()),
                None => Err(Status::unknown("the watch ended without a message")),
            }
        };
        tokio::time::timeout(WATCH_INITIAL, first)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("the watch sent nothing in time")))
    }
    .boxed_local();
    (shown, send)
}

/// Opens a StreamMeasurements stream, sends `request` as its one batch and
/// answers its first message (or the status that ends it).
fn stream_once(
    c: &Clients,
    request: pb::StreamMeasurementsRequest,
) -> (String, LocalBoxFuture<'static, Answer>) {
    let shown = format!("{request:?}");
    let mut client = c.measurements();
    let send: LocalBoxFuture<'static, Answer> = async move {
        let first = async {
            let mut answers = client
                .stream_measurements(tokio_stream::iter([request]))
                .await?
                .into_inner();
            match answers.message().await? {
                Some(answer) => Ok(answer.encode_to_vec()),
                None => Err(Status::unknown("the stream ended without an answer")),
            }
        };
        tokio::time::timeout(WATCH_INITIAL, first)
            .await
            .unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(
                    "the stream did not answer in time",
                ))
            })
    }
    .boxed_local();
    (shown, send)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    A,
    B,
    Ghost,
}

/// Draws the calls, deterministically from its seed.
struct Plan<'a> {
    rng: StdRng,
    a: &'a Names,
    b: &'a Names,
    ghost: &'a Names,
    a_tokens: &'a [Token],
    b_tokens: &'a [Token],
    methods: Vec<String>,
    keys: Vec<(Role, Clients)>,
    /// When the random phase began (seconds): a `known_at` after setup.
    began: i64,
}

impl Plan<'_> {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn one<T: Clone>(&mut self, items: &[T]) -> T {
        items
            .choose(&mut self.rng)
            .expect("a non-empty pool")
            .clone()
    }

    /// A name of `kind` from `who`'s pool; A's now and then names a resource
    /// A's own random creates may have made (`x<n>`).
    fn pick(&mut self, who: Who, kind: Kind) -> String {
        let pool = match who {
            Who::A => self.a,
            Who::B => self.b,
            Who::Ghost => self.ghost,
        };
        if who == Who::A && self.chance(0.2) {
            let n = self.rng.random_range(0..40);
            let fresh = |collection: &str| format!("tenants/{A}/{collection}/x{n}");
            match kind {
                Kind::Party => return fresh("parties"),
                Kind::Service => return fresh("services"),
                Kind::Agreement => return fresh("agreements"),
                Kind::ApiKey | Kind::RevocableKey => return fresh("apiKeys"),
                Kind::Breach => return fresh("breaches"),
                Kind::Override => {
                    let agreement = self.one(pool.get(Kind::Agreement));
                    return format!("{agreement}/overrides/x{n}");
                }
                Kind::Tenant | Kind::Revision => {}
            }
        }
        self.one(pool.get(kind))
    }

    /// An id for a create: a new one, or one A already has.
    fn new_id(&mut self, existing: Kind) -> String {
        if self.chance(0.3) {
            let name = self.pick(Who::A, existing);
            name.rsplit('/').next().unwrap().to_string()
        } else {
            format!("x{}", self.rng.random_range(0..40))
        }
    }

    fn etag(&mut self) -> String {
        match self.rng.random_range(0..10) {
            0..6 => String::new(),
            6 => "stale".into(),
            7 => {
                let b = self.b;
                self.one(&b.etags)
            }
            _ => {
                let a = self.a;
                self.one(&a.etags)
            }
        }
    }

    fn request_id(&mut self) -> String {
        if self.chance(0.7) {
            return String::new();
        }
        // Ids both tenants used in setup, and ids only B used: a request_id
        // is the tenant's own, and B's never replays B's response to A.
        self.one(&[
            "setup-retail",
            "setup-ledger",
            "setup-payments-sla",
            "setup-payments-sla-bank-gold",
            "setup-private-partner",
            "setup-private-service",
            "setup-private-deal",
            "setup-payments-sla-private-override",
            "r-1",
            "r-2",
        ])
        .to_string()
    }

    fn display_name(&mut self) -> String {
        format!("renamed {}", self.rng.random_range(0..100))
    }

    fn labels(&mut self) -> BTreeMap<String, String> {
        let tier = self.one(&["gold", "silver"]);
        [("tier".to_string(), tier.to_string())].into()
    }

    /// B's name, now and then mangled (a trailing slash, upper case, a `..`
    /// segment...), which must be refused just the same.
    fn foreign(&mut self, kind: Kind) -> (String, Expect) {
        let name = self.pick(Who::B, kind);
        if !self.chance(0.15) {
            return (name, Expect::Denied);
        }
        let mangled = match self.rng.random_range(0..5) {
            0 => format!("{name}/"),
            1 => name.to_uppercase(),
            2 => name.replacen(&format!("tenants/{B}"), &format!("tenants/{A}/../{B}"), 1),
            3 => format!("/{name}"),
            _ => format!("{name}\u{0}"),
        };
        (mangled, Expect::Rejected)
    }

    /// The `name`/`parent` of a create or update: B's for ForeignName, A's
    /// otherwise.
    fn target(&mut self, twist: Twist, kind: Kind) -> (String, Expect) {
        match twist {
            Twist::ForeignName => self.foreign(kind),
            _ => (self.pick(Who::A, kind), Expect::Anything),
        }
    }

    /// The name of a Get, Delete, Publish...: A's, B's or a ghost.
    fn subject(&mut self, twist: Twist, kind: Kind) -> (Twist, String, Expect) {
        let twist = match twist {
            Twist::ForeignRef => Twist::ForeignName,
            Twist::Ghost if self.ghost.get(kind).is_empty() => Twist::ForeignName,
            t => t,
        };
        let (name, expect) = match twist {
            Twist::Ghost => (self.pick(Who::Ghost, kind), Expect::Failure),
            t => self.target(t, kind),
        };
        (twist, name, expect)
    }

    /// Whose names the references in a body are.
    fn refs(twist: Twist) -> Who {
        match twist {
            Twist::Own => Who::A,
            Twist::ForeignName | Twist::ForeignRef => Who::B,
            Twist::Ghost => Who::Ghost,
        }
    }

    /// What a create or update must answer, given its twist and the fields
    /// that carry B's names.
    fn expect(twist: Twist, target: Expect, fields: Vec<String>) -> Expect {
        match twist {
            Twist::Own => Expect::Anything,
            Twist::ForeignName => target,
            Twist::ForeignRef => Expect::Invalid(fields),
            Twist::Ghost => Expect::Failure,
        }
    }

    fn mask(&mut self, paths: &[&str]) -> Option<FieldMask> {
        self.chance(0.5).then(|| FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        })
    }

    /// A filter of ListAgreements, naming `who`'s parties or services.
    fn filter(&mut self, who: Who) -> String {
        let term = match self.rng.random_range(0..3) {
            0 => format!("consumer = \"{}\"", self.pick(who, Kind::Party)),
            1 => format!("provider = \"{}\"", self.pick(who, Kind::Party)),
            _ => format!("service = \"{}\"", self.pick(who, Kind::Service)),
        };
        match self.rng.random_range(0..3) {
            0 => format!("kind = CUSTOMER AND {term}"),
            1 => format!("{term} AND labels.tier = gold"),
            _ => term,
        }
    }

    /// A filter of ListBreaches or WatchBreaches, naming `who`'s services,
    /// agreements or parties.
    fn breach_filter(&mut self, who: Who) -> String {
        let term = match self.rng.random_range(0..3) {
            0 => format!("service = \"{}\"", self.pick(who, Kind::Service)),
            1 => format!("agreement = \"{}\"", self.pick(who, Kind::Agreement)),
            _ => format!("consumer = \"{}\"", self.pick(who, Kind::Party)),
        };
        match self.rng.random_range(0..3) {
            0 => format!("state = OPEN AND {term}"),
            1 => format!("{term} AND period_start >= \"2026-01-01T00:00:00Z\""),
            _ => term,
        }
    }

    /// The filter of a list call of `list`, naming `who`'s resources, or
    /// none.
    fn list_filter(&mut self, list: List, who: Who) -> String {
        match list {
            List::Agreements if self.chance(0.5) => self.filter(who),
            List::Breaches if self.chance(0.5) => self.breach_filter(who),
            _ => String::new(),
        }
    }

    /// The parent, page token and filter of a list call, and its expectation.
    fn list_args(&mut self, twist: Twist, list: List) -> (Twist, String, String, String, Expect) {
        let parent_kind = match list {
            List::Overrides | List::Revisions => Kind::Agreement,
            _ => Kind::Tenant,
        };
        let ghostly = matches!(
            list,
            List::Overrides | List::Revisions | List::Agreements | List::Breaches
        );
        let twist = match twist {
            Twist::Ghost if !ghostly => Twist::ForeignName,
            t => t,
        };
        let tokens_of = |tokens: &[Token]| -> Vec<usize> {
            (0..tokens.len())
                .filter(|&i| tokens[i].list == list)
                .collect()
        };
        match twist {
            Twist::Own => {
                let (parent, token, filter) = match tokens_of(self.a_tokens) {
                    own if !own.is_empty() && self.chance(0.3) => {
                        let i = self.one(&own);
                        let t = &self.a_tokens[i];
                        (t.parent.clone(), t.token.clone(), t.filter.clone())
                    }
                    _ => {
                        let parent = self.pick(Who::A, parent_kind);
                        let filter = self.list_filter(list, Who::A);
                        (parent, String::new(), filter)
                    }
                };
                (twist, parent, token, filter, Expect::Anything)
            }
            Twist::ForeignName => {
                let (parent, expect) = self.foreign(parent_kind);
                let theirs = tokens_of(self.b_tokens);
                let token = if self.chance(0.5) {
                    let i = self.one(&theirs);
                    self.b_tokens[i].token.clone()
                } else {
                    String::new()
                };
                let filter = self.list_filter(list, Who::B);
                (twist, parent, token, filter, expect)
            }
            Twist::ForeignRef => {
                if matches!(list, List::Agreements | List::Breaches) && self.chance(0.5) {
                    let mut filter = String::new();
                    while filter.is_empty() {
                        filter = self.list_filter(list, Who::B);
                    }
                    let parent = self.pick(Who::A, parent_kind);
                    let expect = Expect::Invalid(vec!["filter".into()]);
                    return (twist, parent, String::new(), filter, expect);
                }
                // B's token on A's list with the same parameters but the tenant.
                let theirs = tokens_of(self.b_tokens);
                let i = self.one(&theirs);
                let t = &self.b_tokens[i];
                let parent = t
                    .parent
                    .replacen(&format!("tenants/{B}"), &format!("tenants/{A}"), 1);
                let expect = Expect::Invalid(vec!["page_token".into()]);
                (twist, parent, t.token.clone(), t.filter.clone(), expect)
            }
            Twist::Ghost => {
                if list == List::Agreements {
                    let parent = self.pick(Who::A, parent_kind);
                    let filter = self.filter(Who::Ghost);
                    return (twist, parent, String::new(), filter, Expect::NoAgreements);
                }
                if list == List::Breaches {
                    let parent = self.pick(Who::A, parent_kind);
                    let filter = self.breach_filter(Who::Ghost);
                    return (twist, parent, String::new(), filter, Expect::NoBreaches);
                }
                let parent = self.pick(Who::Ghost, parent_kind);
                (twist, parent, String::new(), String::new(), Expect::Failure)
            }
        }
    }

    fn page_size(&mut self) -> i32 {
        self.rng.random_range(0..4)
    }

    /// An agreement whose references are `who`'s, with one or two of them
    /// (recorded with the mask path and the violation field) `foreign`'s.
    fn agreement_body(
        &mut self,
        who: Who,
        foreign: Option<Who>,
    ) -> (pb::Agreement, Vec<(&'static str, String)>) {
        let kind = self.one(&[
            pb::AgreementKind::ServiceLevel,
            pb::AgreementKind::Customer,
            pb::AgreementKind::Operational,
            pb::AgreementKind::Underpinning,
        ]);
        let sl = kind == pb::AgreementKind::ServiceLevel;
        let backs = matches!(
            kind,
            pb::AgreementKind::Operational | pb::AgreementKind::Underpinning
        );
        let mut a = pb::Agreement {
            display_name: self.display_name(),
            kind: kind.into(),
            provider: self.pick(who, Kind::Party),
            consumer: if sl {
                String::new()
            } else {
                self.pick(who, Kind::Party)
            },
            services: (0..self.rng.random_range(1..3))
                .map(|_| self.pick(who, Kind::Service))
                .collect(),
            effective_from: Some(ts(JAN_2026 + self.rng.random_range(0..300) * DAY)),
            objectives: vec![availability(0.999)],
            supports: if backs {
                vec![self.pick(who, Kind::Agreement)]
            } else {
                Vec::new()
            },
            labels: self.labels(),
            ..Default::default()
        };
        let mut fields = Vec::new();
        if let Some(f) = foreign {
            self.refer(&mut a, f, &mut fields);
            if self.chance(0.3) {
                self.refer(&mut a, f, &mut fields);
            }
        }
        (a, fields)
    }

    /// Points one reference of `a` at `who`'s and records which.
    fn refer(&mut self, a: &mut pb::Agreement, who: Who, fields: &mut Vec<(&'static str, String)>) {
        match self.rng.random_range(0..4) {
            0 => {
                a.provider = self.pick(who, Kind::Party);
                fields.push(("provider", "agreement.provider".into()));
            }
            1 => {
                a.consumer = self.pick(who, Kind::Party);
                fields.push(("consumer", "agreement.consumer".into()));
            }
            2 => {
                let i = self.rng.random_range(0..=a.services.len());
                a.services.insert(i, self.pick(who, Kind::Service));
                // The names after the new one moved too: only `i` is B's.
                fields.retain(|(path, _)| *path != "services");
                fields.push(("services", format!("agreement.services[{i}]")));
            }
            _ => {
                let i = self.rng.random_range(0..=a.supports.len());
                a.supports.insert(i, self.pick(who, Kind::Agreement));
                fields.retain(|(path, _)| *path != "supports");
                fields.push(("supports", format!("agreement.supports[{i}]")));
            }
        }
    }

    fn override_body(&mut self, consumer: String) -> pb::Override {
        pb::Override {
            display_name: self.display_name(),
            consumer,
            effective_from: Some(ts(JAN_2026 + self.rng.random_range(0..300) * DAY)),
            objective_patches: vec![pb::ObjectivePatch {
                key: "availability".into(),
                target: Some(0.9999),
                ..Default::default()
            }],
            labels: self.labels(),
            ..Default::default()
        }
    }

    /// One side of an entitlement pair: a party or service name of A's, of
    /// B's (now and then one B does not have either: the answer is the same)
    /// or a ghost.
    fn side(&mut self, who: Who, kind: Kind) -> String {
        if who == Who::B && self.chance(0.3) {
            let collection = match kind {
                Kind::Party => "parties",
                _ => "services",
            };
            let n = self.rng.random_range(0..5);
            return format!("tenants/{B}/{collection}/absent-{n}");
        }
        self.pick(who, kind)
    }

    /// Whose names a pair's consumer and service are: A's for Own, B's only
    /// for ForeignName, at least one B's for ForeignRef, at least one ghost
    /// (and none of B's) for Ghost.
    fn sides(&mut self, twist: Twist) -> (Who, Who) {
        let other = match twist {
            Twist::Own => return (Who::A, Who::A),
            Twist::ForeignName => return (Who::B, Who::B),
            Twist::ForeignRef => Who::B,
            Twist::Ghost => Who::Ghost,
        };
        match self.rng.random_range(0..3) {
            0 => (other, Who::A),
            1 => (Who::A, other),
            _ => (other, other),
        }
    }

    /// A pair of the twist's names, and what it must answer: a pair naming
    /// anything but A's is NOT_FOUND, named as a missing resource is.
    fn pair(&mut self, twist: Twist) -> (pb::EntitlementPair, PairExpect) {
        let (consumer, service) = self.sides(twist);
        let pair = pb::EntitlementPair {
            consumer: self.side(consumer, Kind::Party),
            service: self.side(service, Kind::Service),
        };
        let expect = if twist == Twist::Own {
            PairExpect::Own
        } else {
            PairExpect::NotFound(vec![pair.consumer.clone(), pair.service.clone()])
        };
        (pair, expect)
    }

    /// 1 to 4 pairs, one of them (or, for ForeignName, all) of the twist's
    /// names; the others A's own, or for ForeignRef B's or ghosts too.
    fn pairs(&mut self, twist: Twist) -> Vec<(pb::EntitlementPair, PairExpect)> {
        let n = self.rng.random_range(1..=4);
        let key = self.rng.random_range(0..n);
        (0..n)
            .map(|i| {
                let t = match twist {
                    Twist::ForeignName => twist,
                    _ if i == key => twist,
                    _ if self.chance(0.5) => Twist::Own,
                    Twist::ForeignRef => self.one(&[Twist::ForeignRef, Twist::Ghost]),
                    t => t,
                };
                self.pair(t)
            })
            .collect()
    }

    /// One measurement of the twist's names and what it must become: A's
    /// own for Own (and ForeignName, whose parent is refused anyway), else a
    /// service or consumer of B's (or a ghost) that makes it unknown.
    fn measurement(&mut self, twist: Twist) -> (pb::Measurement, ItemExpect) {
        let (consumer, service, expect) = match twist {
            Twist::Own | Twist::ForeignName => {
                let consumer = if self.chance(0.5) {
                    self.pick(Who::A, Kind::Party)
                } else {
                    String::new()
                };
                (consumer, self.pick(Who::A, Kind::Service), ItemExpect::Own)
            }
            _ => {
                let (consumer, service) = self.sides(twist);
                (
                    self.side(consumer, Kind::Party),
                    self.side(service, Kind::Service),
                    ItemExpect::Unknown,
                )
            }
        };
        let id = format!("m{}", self.rng.random_range(0..30));
        let at = ago(self.rng.random_range(1..600));
        let good = self.rng.random_range(0..3);
        (
            tagged(counts(&id, &service, at, good, 2), &consumer),
            expect,
        )
    }

    /// 1 to 4 measurements, one of them of the twist's names, the others
    /// A's own, or for ForeignRef B's or ghosts too.
    fn measurements(&mut self, twist: Twist) -> Vec<(pb::Measurement, ItemExpect)> {
        let n = self.rng.random_range(1..=4);
        let key = self.rng.random_range(0..n);
        (0..n)
            .map(|i| {
                let t = match twist {
                    Twist::ForeignName => twist,
                    _ if i == key => twist,
                    _ if self.chance(0.5) => Twist::Own,
                    Twist::ForeignRef => self.one(&[Twist::ForeignRef, Twist::Ghost]),
                    t => t,
                };
                self.measurement(t)
            })
            .collect()
    }

    /// The parent of an entitlement call: B's for ForeignName (refused before
    /// any pair is looked at), A's otherwise.
    fn entitlement_parent(&mut self, twist: Twist) -> (String, Option<Expect>) {
        match twist {
            Twist::ForeignName => {
                let (parent, expect) = self.foreign(Kind::Tenant);
                (parent, Some(expect))
            }
            _ => (format!("tenants/{A}"), None),
        }
    }

    /// Valid time: now (unset) or a day around the agreements' validity.
    fn as_of(&mut self) -> Option<prost_types::Timestamp> {
        self.chance(0.3)
            .then(|| ts(JAN_2026 + self.rng.random_range(-30..400) * DAY))
    }

    /// Transaction time: now (unset), after setup, or before anything was
    /// recorded; for A's own calls now and then in the future, which is
    /// INVALID_ARGUMENT on `known_at`.
    fn known_at(&mut self, twist: Twist) -> (Option<prost_types::Timestamp>, bool) {
        if twist == Twist::Own && self.chance(0.05) {
            return (Some(ts(chrono::Utc::now().timestamp() + DAY)), true);
        }
        let known_at = match self.rng.random_range(0..10) {
            0 => Some(ts(JAN_2026)),
            1 => Some(ts(self.began)),
            _ => None,
        };
        (known_at, false)
    }

    /// The next call: a random key of A's, a random RPC, random arguments.
    fn next(&mut self) -> (Meta, LocalBoxFuture<'static, Answer>) {
        let method = self.methods[self.rng.random_range(0..self.methods.len())].clone();
        let (role, c) = self.keys[self.rng.random_range(0..self.keys.len())].clone();
        let allowed = roles_for(&method)
            .expect("every RPC is in the table")
            .contains(&role);
        let twist = match self.rng.random_range(0..20) {
            0..8 => Twist::Own,
            8..13 => Twist::ForeignName,
            13..18 => Twist::ForeignRef,
            _ => Twist::Ghost,
        };
        let rpc = method.rsplit('/').next().unwrap();
        let (twist, expect, (request, send)) = self.call(rpc, twist, &c);
        let meta = Meta {
            method,
            role,
            allowed,
            twist,
            expect,
            request,
        };
        (meta, send)
    }

    fn call(
        &mut self,
        rpc: &str,
        twist: Twist,
        c: &Clients,
    ) -> (Twist, Expect, (String, LocalBoxFuture<'static, Answer>)) {
        match rpc {
            // --- tenants: only GetTenant is open to tenant keys.
            "CreateTenant" => {
                let (t, tenant_id, expect) = if self.chance(0.5) {
                    (Twist::ForeignName, B.to_string(), Expect::Denied)
                } else {
                    let id = format!("x{}", self.rng.random_range(0..40));
                    (Twist::Own, id, Expect::Anything)
                };
                let request = pb::CreateTenantRequest {
                    tenant_id,
                    tenant: None,
                    request_id: String::new(),
                };
                (t, expect, rpc!(c.tenants(), create_tenant, request))
            }
            "GetTenant" => {
                let (t, name, expect) = self.subject(twist, Kind::Tenant);
                (
                    t,
                    expect,
                    rpc!(c.tenants(), get_tenant, pb::GetTenantRequest { name }),
                )
            }
            "ListTenants" => {
                let request = pb::ListTenantsRequest {
                    page_size: self.page_size(),
                    page_token: String::new(),
                };
                (
                    Twist::Own,
                    Expect::Anything,
                    rpc!(c.tenants(), list_tenants, request),
                )
            }
            "UpdateTenant" => {
                let (t, name, expect) = self.subject(twist, Kind::Tenant);
                let request = pb::UpdateTenantRequest {
                    tenant: Some(pb::Tenant {
                        name,
                        display_name: self.display_name(),
                        etag: self.etag(),
                        ..Default::default()
                    }),
                    update_mask: None,
                };
                (t, expect, rpc!(c.tenants(), update_tenant, request))
            }
            "DeleteTenant" => {
                let (t, name, expect) = self.subject(twist, Kind::Tenant);
                let request = pb::DeleteTenantRequest {
                    name,
                    etag: self.etag(),
                    force: self.chance(0.5),
                };
                (t, expect, rpc!(c.tenants(), delete_tenant, request))
            }

            // --- API keys.
            "CreateApiKey" => {
                let t = if twist == Twist::Own {
                    Twist::Own
                } else {
                    Twist::ForeignName
                };
                let (parent, expect) = self.target(t, Kind::Tenant);
                let role = self.one(&[
                    pb::Role::Reader,
                    pb::Role::Editor,
                    pb::Role::Reporter,
                    pb::Role::TenantAdmin,
                    pb::Role::PlatformAdmin,
                ]);
                let request = pb::CreateApiKeyRequest {
                    parent,
                    api_key_id: self.new_id(Kind::RevocableKey),
                    api_key: Some(pb::ApiKey {
                        display_name: self.display_name(),
                        role: role.into(),
                        ..Default::default()
                    }),
                    request_id: self.request_id(),
                };
                (t, expect, rpc!(c.api_keys(), create_api_key, request))
            }
            "GetApiKey" => {
                let (t, name, expect) = self.subject(twist, Kind::ApiKey);
                (
                    t,
                    expect,
                    rpc!(c.api_keys(), get_api_key, pb::GetApiKeyRequest { name }),
                )
            }
            "ListApiKeys" => {
                let (t, parent, page_token, _, expect) = self.list_args(twist, List::ApiKeys);
                let request = pb::ListApiKeysRequest {
                    parent,
                    page_size: self.page_size(),
                    page_token,
                };
                (t, expect, rpc!(c.api_keys(), list_api_keys, request))
            }
            "RevokeApiKey" => {
                // Never A's role keys: the calls that follow need them.
                let (t, name, expect) = self.subject(twist, Kind::RevocableKey);
                let request = pb::RevokeApiKeyRequest {
                    name,
                    etag: self.etag(),
                };
                (t, expect, rpc!(c.api_keys(), revoke_api_key, request))
            }

            // --- the audit trail: its `resource` filter must stay in the tenant.
            "ListAuditEvents" => {
                let (mut t, mut parent, page_token, _, mut expect) =
                    self.list_args(twist, List::AuditEvents);
                let mut resource = String::new();
                if page_token.is_empty() && self.chance(0.5) {
                    let kind = self.one(&[Kind::Party, Kind::Service, Kind::Agreement]);
                    if t == Twist::Own {
                        resource = self.pick(Who::A, kind);
                    } else {
                        // A's trail, asked for a resource of B's.
                        resource = self.pick(Who::B, kind);
                        parent = format!("tenants/{A}");
                        t = Twist::ForeignRef;
                        expect = Expect::Invalid(vec!["resource".into()]);
                    }
                }
                let request = pb::ListAuditEventsRequest {
                    parent,
                    page_size: self.page_size(),
                    page_token,
                    resource,
                    ..Default::default()
                };
                (t, expect, rpc!(c.audit(), list_audit_events, request))
            }

            // --- parties.
            "CreateParty" => {
                let (parent, target) = self.target(twist, Kind::Tenant);
                let mut fields = Vec::new();
                let parent_party = match twist {
                    Twist::Own | Twist::ForeignName if self.chance(0.5) => String::new(),
                    t => {
                        if t == Twist::ForeignRef {
                            fields.push("party.parent".to_string());
                        }
                        self.pick(Self::refs(t), Kind::Party)
                    }
                };
                let request = pb::CreatePartyRequest {
                    parent,
                    party_id: self.new_id(Kind::Party),
                    party: Some(pb::Party {
                        display_name: self.display_name(),
                        kind: self
                            .one(&[pb::PartyKind::Customer, pb::PartyKind::Provider])
                            .into(),
                        parent: parent_party,
                        labels: self.labels(),
                        ..Default::default()
                    }),
                    request_id: if twist == Twist::Ghost {
                        String::new()
                    } else {
                        self.request_id()
                    },
                };
                let expect = Self::expect(twist, target, fields);
                (twist, expect, rpc!(c.parties(), create_party, request))
            }
            "GetParty" => {
                let (t, name, expect) = self.subject(twist, Kind::Party);
                (
                    t,
                    expect,
                    rpc!(c.parties(), get_party, pb::GetPartyRequest { name }),
                )
            }
            "ListParties" => {
                let (t, parent, page_token, _, expect) = self.list_args(twist, List::Parties);
                let request = pb::ListPartiesRequest {
                    parent,
                    page_size: self.page_size(),
                    page_token,
                };
                (t, expect, rpc!(c.parties(), list_parties, request))
            }
            "UpdateParty" => {
                let ghost_name = twist == Twist::Ghost && self.chance(0.5);
                let (name, target) = if ghost_name {
                    (self.pick(Who::Ghost, Kind::Party), Expect::Failure)
                } else {
                    self.target(twist, Kind::Party)
                };
                let mut party = pb::Party {
                    name,
                    etag: self.etag(),
                    ..Default::default()
                };
                let mut paths = Vec::new();
                if self.chance(0.5) {
                    party.display_name = self.display_name();
                    paths.push("display_name");
                }
                if self.chance(0.3) {
                    party.labels = self.labels();
                    paths.push("labels");
                }
                let mut fields = Vec::new();
                if matches!(twist, Twist::ForeignRef | Twist::Ghost) || self.chance(0.3) {
                    party.parent = self.pick(Self::refs(twist), Kind::Party);
                    paths.push("parent");
                    fields.push("party.parent".to_string());
                }
                let request = pb::UpdatePartyRequest {
                    party: Some(party),
                    update_mask: self.mask(&paths),
                };
                let expect = Self::expect(twist, target, fields);
                (twist, expect, rpc!(c.parties(), update_party, request))
            }
            "DeleteParty" => {
                let (t, name, expect) = self.subject(twist, Kind::Party);
                let request = pb::DeletePartyRequest {
                    name,
                    etag: self.etag(),
                };
                (t, expect, rpc!(c.parties(), delete_party, request))
            }

            // --- services.
            "CreateService" => {
                let (parent, target) = self.target(twist, Kind::Tenant);
                let request = pb::CreateServiceRequest {
                    parent,
                    service_id: self.new_id(Kind::Service),
                    service: Some(pb::Service {
                        display_name: self.display_name(),
                        owner: self.pick(Self::refs(twist), Kind::Party),
                        labels: self.labels(),
                        ..Default::default()
                    }),
                    request_id: if twist == Twist::Ghost {
                        String::new()
                    } else {
                        self.request_id()
                    },
                };
                let expect = Self::expect(twist, target, vec!["service.owner".into()]);
                (twist, expect, rpc!(c.services(), create_service, request))
            }
            "GetService" => {
                let (t, name, expect) = self.subject(twist, Kind::Service);
                (
                    t,
                    expect,
                    rpc!(c.services(), get_service, pb::GetServiceRequest { name }),
                )
            }
            "ListServices" => {
                let (t, parent, page_token, _, expect) = self.list_args(twist, List::Services);
                let request = pb::ListServicesRequest {
                    parent,
                    page_size: self.page_size(),
                    page_token,
                };
                (t, expect, rpc!(c.services(), list_services, request))
            }
            "UpdateService" => {
                let ghost_name = twist == Twist::Ghost && self.chance(0.5);
                let (name, target) = if ghost_name {
                    (self.pick(Who::Ghost, Kind::Service), Expect::Failure)
                } else {
                    self.target(twist, Kind::Service)
                };
                let mut service = pb::Service {
                    name,
                    etag: self.etag(),
                    ..Default::default()
                };
                let mut paths = Vec::new();
                if self.chance(0.5) {
                    service.description = self.display_name();
                    paths.push("description");
                }
                if matches!(twist, Twist::ForeignRef | Twist::Ghost) || self.chance(0.4) {
                    service.owner = self.pick(Self::refs(twist), Kind::Party);
                    paths.push("owner");
                }
                let request = pb::UpdateServiceRequest {
                    service: Some(service),
                    update_mask: self.mask(&paths),
                };
                let expect = Self::expect(twist, target, vec!["service.owner".into()]);
                (twist, expect, rpc!(c.services(), update_service, request))
            }
            "DeleteService" => {
                let (t, name, expect) = self.subject(twist, Kind::Service);
                let request = pb::DeleteServiceRequest {
                    name,
                    etag: self.etag(),
                };
                (t, expect, rpc!(c.services(), delete_service, request))
            }

            // --- agreements.
            "CreateAgreement" => {
                let (parent, target) = self.target(twist, Kind::Tenant);
                let (who, foreign) = match twist {
                    Twist::Own => (Who::A, None),
                    Twist::ForeignName => (Who::B, None),
                    Twist::ForeignRef => (Who::A, Some(Who::B)),
                    Twist::Ghost => (Who::A, Some(Who::Ghost)),
                };
                let (agreement, fields) = self.agreement_body(who, foreign);
                let request = pb::CreateAgreementRequest {
                    parent,
                    agreement_id: self.new_id(Kind::Agreement),
                    agreement: Some(agreement),
                    request_id: if twist == Twist::Ghost {
                        String::new()
                    } else {
                        self.request_id()
                    },
                };
                let fields = fields.into_iter().map(|(_, f)| f).collect();
                let expect = Self::expect(twist, target, fields);
                (
                    twist,
                    expect,
                    rpc!(c.agreements(), create_agreement, request),
                )
            }
            "GetAgreement" => {
                let (t, name, expect) = self.subject(twist, Kind::Agreement);
                let request = pb::GetAgreementRequest { name };
                (t, expect, rpc!(c.agreements(), get_agreement, request))
            }
            "ListAgreements" => {
                let (t, parent, page_token, filter, expect) =
                    self.list_args(twist, List::Agreements);
                let request = pb::ListAgreementsRequest {
                    parent,
                    page_size: self.page_size(),
                    page_token,
                    filter,
                };
                (t, expect, rpc!(c.agreements(), list_agreements, request))
            }
            "UpdateAgreement" => {
                let ghost_name = twist == Twist::Ghost && self.chance(0.5);
                let (name, target) = if ghost_name {
                    (self.pick(Who::Ghost, Kind::Agreement), Expect::Failure)
                } else {
                    self.target(twist, Kind::Agreement)
                };
                // Start from a whole body of the referenced tenant, then keep
                // some fields: the mask (or the fields set) says which count.
                let (who, foreign) = match twist {
                    Twist::Own => (Who::A, None),
                    Twist::ForeignName => (Who::B, None),
                    Twist::ForeignRef => (Who::A, Some(Who::B)),
                    Twist::Ghost => (Who::A, (!ghost_name).then_some(Who::Ghost)),
                };
                let (full, foreign_fields) = self.agreement_body(who, foreign);
                let mut a = pb::Agreement {
                    name,
                    etag: self.etag(),
                    ..Default::default()
                };
                let mut paths: Vec<&str> = foreign_fields.iter().map(|(p, _)| *p).collect();
                for path in [
                    "display_name",
                    "labels",
                    "objectives",
                    "provider",
                    "services",
                ] {
                    if !paths.contains(&path) && self.chance(0.3) {
                        paths.push(path);
                    }
                }
                for path in &paths {
                    match *path {
                        "display_name" => a.display_name = full.display_name.clone(),
                        "labels" => a.labels = full.labels.clone(),
                        "objectives" => a.objectives = full.objectives.clone(),
                        "provider" => a.provider = full.provider.clone(),
                        "consumer" => a.consumer = full.consumer.clone(),
                        "services" => a.services = full.services.clone(),
                        "supports" => a.supports = full.supports.clone(),
                        other => unreachable!("{other}"),
                    }
                }
                let fields = foreign_fields.into_iter().map(|(_, f)| f).collect();
                let request = pb::UpdateAgreementRequest {
                    agreement: Some(a),
                    update_mask: self.mask(&paths),
                };
                let expect = Self::expect(twist, target, fields);
                (
                    twist,
                    expect,
                    rpc!(c.agreements(), update_agreement, request),
                )
            }
            "DeleteAgreement" => {
                let (t, name, expect) = self.subject(twist, Kind::Agreement);
                let request = pb::DeleteAgreementRequest {
                    name,
                    etag: self.etag(),
                };
                (t, expect, rpc!(c.agreements(), delete_agreement, request))
            }
            "PublishAgreement" => {
                let (t, name, expect) = self.subject(twist, Kind::Agreement);
                let request = pb::PublishAgreementRequest {
                    name,
                    etag: self.etag(),
                };
                (t, expect, rpc!(c.agreements(), publish_agreement, request))
            }
            "TerminateAgreement" => {
                let (t, name, expect) = self.subject(twist, Kind::Agreement);
                let request = pb::TerminateAgreementRequest {
                    name,
                    etag: self.etag(),
                    terminate_time: self.chance(0.5).then(|| ts(JAN_2026 + 200 * DAY)),
                };
                (
                    t,
                    expect,
                    rpc!(c.agreements(), terminate_agreement, request),
                )
            }

            // --- revisions.
            "ListAgreementRevisions" => {
                let (t, name, page_token, _, expect) = self.list_args(twist, List::Revisions);
                let request = pb::ListAgreementRevisionsRequest {
                    name,
                    page_size: self.page_size(),
                    page_token,
                };
                (
                    t,
                    expect,
                    rpc!(c.agreements(), list_agreement_revisions, request),
                )
            }
            "GetAgreementRevision" => {
                let (t, name, expect) = self.subject(twist, Kind::Revision);
                let request = pb::GetAgreementRevisionRequest { name };
                (
                    t,
                    expect,
                    rpc!(c.agreements(), get_agreement_revision, request),
                )
            }

            // --- overrides.
            "CreateOverride" => {
                let ghost_parent = twist == Twist::Ghost && self.chance(0.5);
                let (parent, target) = if ghost_parent {
                    (self.pick(Who::Ghost, Kind::Agreement), Expect::Failure)
                } else {
                    self.target(twist, Kind::Agreement)
                };
                let consumer_of = if ghost_parent {
                    Who::A
                } else {
                    Self::refs(twist)
                };
                let consumer = self.pick(consumer_of, Kind::Party);
                let request = pb::CreateOverrideRequest {
                    parent,
                    override_id: self.new_id(Kind::Override),
                    r#override: Some(self.override_body(consumer)),
                    request_id: if twist == Twist::Ghost {
                        String::new()
                    } else {
                        self.request_id()
                    },
                };
                let expect = Self::expect(twist, target, vec!["override.consumer".into()]);
                (
                    twist,
                    expect,
                    rpc!(c.agreements(), create_override, request),
                )
            }
            "GetOverride" => {
                let (t, name, expect) = self.subject(twist, Kind::Override);
                let request = pb::GetOverrideRequest { name };
                (t, expect, rpc!(c.agreements(), get_override, request))
            }
            "ListOverrides" => {
                let (t, parent, page_token, _, expect) = self.list_args(twist, List::Overrides);
                let request = pb::ListOverridesRequest {
                    parent,
                    page_size: self.page_size(),
                    page_token,
                };
                (t, expect, rpc!(c.agreements(), list_overrides, request))
            }
            "UpdateOverride" => {
                let ghost_name = twist == Twist::Ghost && self.chance(0.5);
                let (name, target) = if ghost_name {
                    (self.pick(Who::Ghost, Kind::Override), Expect::Failure)
                } else {
                    self.target(twist, Kind::Override)
                };
                let mut o = pb::Override {
                    name,
                    etag: self.etag(),
                    ..Default::default()
                };
                let mut paths = Vec::new();
                if self.chance(0.5) {
                    o.display_name = self.display_name();
                    paths.push("display_name");
                }
                if self.chance(0.3) {
                    o.effective_until = Some(ts(JAN_2026 + 400 * DAY));
                    paths.push("effective_until");
                }
                let foreign =
                    matches!(twist, Twist::ForeignRef) || (twist == Twist::Ghost && !ghost_name);
                if foreign || self.chance(0.3) {
                    let who = if ghost_name {
                        Who::A
                    } else {
                        Self::refs(twist)
                    };
                    o.consumer = self.pick(who, Kind::Party);
                    paths.push("consumer");
                }
                let request = pb::UpdateOverrideRequest {
                    r#override: Some(o),
                    update_mask: self.mask(&paths),
                };
                let expect = Self::expect(twist, target, vec!["override.consumer".into()]);
                (
                    twist,
                    expect,
                    rpc!(c.agreements(), update_override, request),
                )
            }
            "DeleteOverride" => {
                let (t, name, expect) = self.subject(twist, Kind::Override);
                let request = pb::DeleteOverrideRequest {
                    name,
                    etag: self.etag(),
                };
                (t, expect, rpc!(c.agreements(), delete_override, request))
            }
            // --- entitlements: B's consumers and services are NOT_FOUND, as
            // missing ones are; only a parent of B's is PERMISSION_DENIED.
            "ResolveEntitlement" | "ExplainEntitlement" => {
                let explain = rpc == "ExplainEntitlement";
                let (parent, refused) = self.entitlement_parent(twist);
                let (pair, pair_expect) = self.pair(twist);
                let as_of = self.as_of();
                let (known_at, future) = self.known_at(twist);
                let expect = match (refused, pair_expect) {
                    (Some(refused), _) => refused,
                    _ if future => Expect::Invalid(vec!["known_at".into()]),
                    (None, PairExpect::Own) => Expect::Entitled {
                        explain,
                        consumer: pair.consumer.clone(),
                        service: pair.service.clone(),
                    },
                    (None, PairExpect::NotFound(names)) => Expect::NotFound(names),
                };
                let pb::EntitlementPair { consumer, service } = pair;
                if explain {
                    let request = pb::ExplainEntitlementRequest {
                        parent,
                        consumer,
                        service,
                        as_of,
                        known_at,
                    };
                    (
                        twist,
                        expect,
                        rpc!(c.entitlements(), explain_entitlement, request),
                    )
                } else {
                    let request = pb::ResolveEntitlementRequest {
                        parent,
                        consumer,
                        service,
                        as_of,
                        known_at,
                    };
                    (
                        twist,
                        expect,
                        rpc!(c.entitlements(), resolve_entitlement, request),
                    )
                }
            }
            "BatchResolveEntitlements" => {
                let (parent, refused) = self.entitlement_parent(twist);
                let pairs = self.pairs(twist);
                let none = twist == Twist::Own && self.chance(0.03);
                let as_of = self.as_of();
                let (known_at, future) = self.known_at(twist);
                let request = pb::BatchResolveEntitlementsRequest {
                    parent,
                    pairs: if none {
                        Vec::new()
                    } else {
                        pairs.iter().map(|(p, _)| p.clone()).collect()
                    },
                    as_of,
                    known_at,
                };
                let expect = match refused {
                    Some(refused) => refused,
                    None if none => Expect::Invalid(vec!["pairs".into()]),
                    None if future => Expect::Invalid(vec!["known_at".into()]),
                    None => Expect::Results {
                        watch: false,
                        pairs,
                    },
                };
                (
                    twist,
                    expect,
                    rpc!(c.entitlements(), batch_resolve_entitlements, request),
                )
            }
            "WatchEntitlements" => {
                let (parent, refused) = self.entitlement_parent(twist);
                let pairs = self.pairs(twist);
                let none = twist == Twist::Own && self.chance(0.03);
                let (heartbeat, bad_heartbeat) = match self.rng.random_range(0..20) {
                    0 if twist == Twist::Own => (Some(self.one(&[0, 301])), true),
                    0..6 => (Some(self.rng.random_range(1..=300)), false),
                    _ => (None, false),
                };
                let request = pb::WatchEntitlementsRequest {
                    parent,
                    pairs: if none {
                        Vec::new()
                    } else {
                        pairs.iter().map(|(p, _)| p.clone()).collect()
                    },
                    heartbeat_interval: heartbeat
                        .map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
                };
                let expect = match refused {
                    Some(refused) => refused,
                    None if none => Expect::Invalid(vec!["pairs".into()]),
                    None if bad_heartbeat => Expect::Invalid(vec!["heartbeat_interval".into()]),
                    None => Expect::Results { watch: true, pairs },
                };
                (twist, expect, watch_initial(c, request))
            }
            // --- measurements: B's services and consumers are unknown, item
            // by item; only a parent of B's is refused as a whole.
            "ReportMeasurements" | "StreamMeasurements" => {
                let stream = rpc == "StreamMeasurements";
                let (parent, refused) = self.entitlement_parent(twist);
                let (measurements, items): (Vec<_>, Vec<_>) =
                    self.measurements(twist).into_iter().unzip();
                let expect = refused.unwrap_or(Expect::Measured { stream, items });
                if stream {
                    let request = pb::StreamMeasurementsRequest {
                        parent,
                        measurements,
                        sequence: 7,
                    };
                    (twist, expect, stream_once(c, request))
                } else {
                    let request = pb::ReportMeasurementsRequest {
                        parent,
                        measurements,
                    };
                    (
                        twist,
                        expect,
                        rpc!(c.measurements(), report_measurements, request),
                    )
                }
            }
            // --- breaches: read like any resource; a filter naming B is
            // INVALID_ARGUMENT, one naming a ghost finds nothing.
            "GetBreach" => {
                let (t, name, expect) = self.subject(twist, Kind::Breach);
                (
                    t,
                    expect,
                    rpc!(c.breaches(), get_breach, pb::GetBreachRequest { name }),
                )
            }
            "ListBreaches" => {
                let (t, parent, page_token, filter, expect) = self.list_args(twist, List::Breaches);
                let request = pb::ListBreachesRequest {
                    parent,
                    page_size: self.page_size(),
                    page_token,
                    filter,
                };
                (t, expect, rpc!(c.breaches(), list_breaches, request))
            }
            "WatchBreaches" => {
                let (parent, refused) = self.entitlement_parent(twist);
                let (filter, expect) = match twist {
                    Twist::Own if self.chance(0.5) => (self.breach_filter(Who::A), None),
                    Twist::ForeignRef => (
                        self.breach_filter(Who::B),
                        Some(Expect::Invalid(vec!["filter".into()])),
                    ),
                    Twist::Ghost => (self.breach_filter(Who::Ghost), None),
                    _ => (String::new(), None),
                };
                let bad_heartbeat = twist == Twist::Own && self.chance(0.05);
                let request = pb::WatchBreachesRequest {
                    parent,
                    filter,
                    heartbeat_interval: Some(prost_types::Duration {
                        seconds: if bad_heartbeat { 0 } else { 30 },
                        nanos: 0,
                    }),
                };
                let expect = match (refused, expect) {
                    (Some(refused), _) => refused,
                    (None, Some(expect)) => expect,
                    (None, None) if bad_heartbeat => {
                        Expect::Invalid(vec!["heartbeat_interval".into()])
                    }
                    (None, None) => Expect::Watching,
                };
                (twist, expect, watch_first(c, request))
            }
            // --- compliance: reads. A subject or consumer of B's is a bad
            // reference (INVALID_ARGUMENT on its field), a ghost a missing
            // one (NOT_FOUND naming it); a parent of B's is refused.
            "GetCompliance" => {
                let (parent, refused) = self.entitlement_parent(twist);
                let ghostless = self.ghost.get(Kind::Agreement).is_empty();
                let (subject, expect) = if self.chance(0.5) || (twist == Twist::Ghost && ghostless)
                {
                    let (consumer_of, service_of) = self.sides(twist);
                    let consumer = self.side(consumer_of, Kind::Party);
                    let service = self.side(service_of, Kind::Service);
                    let expect = match twist {
                        Twist::Own | Twist::ForeignName => Expect::Anything,
                        Twist::ForeignRef => Expect::Invalid(
                            [(consumer_of, "pair.consumer"), (service_of, "pair.service")]
                                .iter()
                                .filter(|(who, _)| *who == Who::B)
                                .map(|(_, field)| field.to_string())
                                .collect(),
                        ),
                        Twist::Ghost => Expect::NotFound(vec![consumer.clone(), service.clone()]),
                    };
                    let pair = pb::ConsumerService { consumer, service };
                    (pb::get_compliance_request::Subject::Pair(pair), expect)
                } else {
                    let who = match twist {
                        Twist::Own | Twist::ForeignName => Who::A,
                        Twist::ForeignRef => Who::B,
                        Twist::Ghost => Who::Ghost,
                    };
                    let agreement = self.pick(who, Kind::Agreement);
                    let expect = match twist {
                        Twist::Own | Twist::ForeignName => Expect::Anything,
                        Twist::ForeignRef => Expect::Invalid(vec!["agreement".into()]),
                        Twist::Ghost => Expect::NotFound(vec![agreement.clone()]),
                    };
                    (
                        pb::get_compliance_request::Subject::Agreement(agreement),
                        expect,
                    )
                };
                let request = pb::GetComplianceRequest {
                    parent,
                    subject: Some(subject),
                    // A's own calls may ask about any instant (one in the
                    // future is INVALID_ARGUMENT); the others about now, so
                    // that only their names decide the answer.
                    as_of: if twist == Twist::Own {
                        self.as_of()
                    } else {
                        None
                    },
                    period_containing: None,
                    interval: None,
                };
                (
                    twist,
                    refused.unwrap_or(expect),
                    rpc!(c.compliance(), get_compliance, request),
                )
            }
            "GetCreditStatement" => {
                let (parent, refused) = self.entitlement_parent(twist);
                let who = match twist {
                    Twist::Own | Twist::ForeignName => Who::A,
                    Twist::ForeignRef => Who::B,
                    Twist::Ghost => Who::Ghost,
                };
                let consumer = self.side(who, Kind::Party);
                let expect = match twist {
                    Twist::Own | Twist::ForeignName => Expect::Anything,
                    Twist::ForeignRef => Expect::Invalid(vec!["consumer".into()]),
                    Twist::Ghost => Expect::NotFound(vec![consumer.clone()]),
                };
                let request = pb::GetCreditStatementRequest {
                    parent,
                    consumer,
                    period_containing: None,
                };
                (
                    twist,
                    refused.unwrap_or(expect),
                    rpc!(c.compliance(), get_credit_statement, request),
                )
            }
            other => panic!("no random request for {other}: add one here"),
        }
    }
}

// --- judging the answers ------------------------------------------------------------

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// `haystack` without the whole-name occurrences of `needles` (not followed
/// by a byte that would continue the name: removing `.../retail` must not
/// hide a `.../retail-emea`).
fn without(haystack: &[u8], needles: &[&str]) -> Vec<u8> {
    let continues = |b: &u8| b.is_ascii_alphanumeric() || b"-_./".contains(b);
    let mut out = haystack.to_vec();
    for needle in needles {
        let (mut kept, mut i) = (Vec::with_capacity(out.len()), 0);
        while i < out.len() {
            let end = i + needle.len();
            if out[i..].starts_with(needle.as_bytes()) && !out.get(end).is_some_and(continues) {
                i = end;
            } else {
                kept.push(out[i]);
                i += 1;
            }
        }
        out = kept;
    }
    out
}

/// The results of a batch's or a watch's OK answer (a watch's: its initial
/// messages, each a result).
fn results_of(watch: bool, bytes: &[u8]) -> Result<Vec<pb::EntitlementResult>, String> {
    if !watch {
        return pb::BatchResolveEntitlementsResponse::decode(bytes)
            .map(|r| r.results)
            .map_err(|e| format!("undecodable batch response: {e}"));
    }
    let mut buf = bytes;
    let mut results = Vec::new();
    while !buf.is_empty() {
        let message = pb::WatchEntitlementsResponse::decode_length_delimited(&mut buf)
            .map_err(|e| format!("undecodable watch message: {e}"))?;
        match message.event {
            Some(pb::watch_entitlements_response::Event::Result(r)) => results.push(r),
            other => return Err(format!("{other:?} before the initial result of every pair")),
        }
    }
    Ok(results)
}

/// A pair's error as the Status a single resolve would have failed with.
fn status_of(s: &tonic_types::Status) -> Status {
    Status::with_details(
        Code::from_i32(s.code),
        s.message.clone(),
        s.encode_to_vec().into(),
    )
}

/// Why `status` is not NOT_FOUND naming one of `names` exactly as a missing
/// resource is named (message and ResourceInfo), if it is not.
fn not_found_naming(status: &Status, names: &[String]) -> Option<String> {
    let named = status.get_details_resource_info().map(|r| r.resource_name);
    let right = status.code() == Code::NotFound
        && names
            .iter()
            .any(|n| named.as_ref() == Some(n) && status.message() == format!("{n} not found"));
    (!right).then(|| {
        format!(
            "expected NOT_FOUND naming one of {names:?} as a missing resource, got {:?}: {} (resource {named:?})",
            status.code(),
            status.message()
        )
    })
}

/// Why `e` is not the entitlement of `consumer` on `service`, if it is not.
fn entitled_to(e: &pb::Entitlement, consumer: &str, service: &str) -> Option<String> {
    (e.consumer != consumer || e.service != service).then(|| {
        format!(
            "asked about {consumer} on {service}, answered for {} on {}",
            e.consumer, e.service
        )
    })
}

/// Why the result of one pair is wrong, if it is.
fn pair_verdict(
    result: &pb::EntitlementResult,
    pair: &pb::EntitlementPair,
    expect: &PairExpect,
) -> Option<String> {
    use pb::entitlement_result::Result as R;
    if result.pair.as_ref() != Some(pair) {
        return Some(format!("answers for another pair: {:?}", result.pair));
    }
    match (expect, &result.result) {
        (PairExpect::Own, Some(R::Entitlement(e))) => entitled_to(e, &pair.consumer, &pair.service),
        (PairExpect::Own, Some(R::Error(s))) => (s.code != Code::NotFound as i32).then(|| {
            format!(
                "expected its entitlement or NOT_FOUND, got {:?}: {}",
                Code::from_i32(s.code),
                s.message
            )
        }),
        (PairExpect::NotFound(names), Some(R::Error(s))) => not_found_naming(&status_of(s), names),
        (PairExpect::NotFound(names), Some(R::Entitlement(e))) => Some(format!(
            "expected NOT_FOUND naming one of {names:?}, got an entitlement of {} on {}",
            e.consumer, e.service
        )),
        (_, None) => Some("neither an entitlement nor an error".into()),
    }
}

/// How many entitlements an OK answer of an entitlement call carries.
fn entitlements_in(expect: &Expect, bytes: &[u8]) -> usize {
    use pb::entitlement_result::Result as R;
    match expect {
        Expect::Entitled { explain: false, .. } => 1,
        Expect::Entitled { explain: true, .. } => pb::EntitlementExplanation::decode(bytes)
            .map_or(0, |x| usize::from(x.entitlement.is_some())),
        Expect::Results { watch, .. } => results_of(*watch, bytes).map_or(0, |results| {
            results
                .iter()
                .filter(|r| matches!(r.result, Some(R::Entitlement(_))))
                .count()
        }),
        _ => 0,
    }
}

/// The pairs of a batch or watch that name B.
fn pairs_naming_b(expect: &Expect) -> usize {
    match expect {
        Expect::Results { pairs, .. } => pairs
            .iter()
            .filter(|(p, _)| {
                contains(p.consumer.as_bytes(), B) || contains(p.service.as_bytes(), B)
            })
            .count(),
        _ => 0,
    }
}

fn code_of(answer: &Answer) -> Code {
    match answer {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Why `answer` is wrong for `call`, if it is.
fn verdict(call: &Meta, answer: &Answer) -> Option<String> {
    // Nothing of B's comes back, whatever the call. A batch's or a watch's
    // result repeats its pair, and a pair's NOT_FOUND names it: those names
    // are the request's own, and nothing else of B's may come with them.
    let echoed: Vec<&str> = match &call.expect {
        Expect::Results { pairs, .. } => pairs
            .iter()
            .flat_map(|(p, _)| [p.consumer.as_str(), p.service.as_str()])
            .filter(|n| contains(n.as_bytes(), B))
            .collect(),
        _ => Vec::new(),
    };
    match answer {
        Ok(bytes) if contains(&without(bytes, &echoed), B) || contains(bytes, B_NOTE) => {
            return Some("LEAK: the response carries tenant B's data".into());
        }
        Err(status) => {
            let mut text = status.message().as_bytes().to_vec();
            text.extend_from_slice(status.details());
            if contains(&text, B_NOTE) {
                return Some("LEAK: the error carries tenant B's data".into());
            }
            // Calls naming B may see their own argument echoed; others not.
            if matches!(call.twist, Twist::Own | Twist::Ghost) && contains(&text, B) {
                return Some("LEAK: the error names tenant B, which the request did not".into());
            }
        }
        Ok(_) => {}
    }
    let code = code_of(answer);
    let wrong = |wanted: &str| Some(format!("expected {wanted}, got {code:?}"));
    if !call.allowed {
        return (code != Code::PermissionDenied)
            .then(|| format!("the role may not make this call, yet {code:?}"));
    }
    match &call.expect {
        Expect::Anything if code != Code::Ok && !DOMAIN_ERRORS.contains(&code) => {
            wrong("OK or a domain error")
        }
        Expect::Denied if code != Code::PermissionDenied => wrong("PERMISSION_DENIED"),
        Expect::Rejected if !matches!(code, Code::PermissionDenied | Code::InvalidArgument) => {
            wrong("PERMISSION_DENIED or INVALID_ARGUMENT")
        }
        Expect::Failure if !DOMAIN_ERRORS.contains(&code) => wrong("a domain error"),
        Expect::Invalid(fields) => {
            let Err(status) = answer else {
                return wrong(&format!("INVALID_ARGUMENT on {fields:?}"));
            };
            let named: Vec<String> = status
                .get_details_bad_request()
                .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
                .unwrap_or_default();
            let missing: Vec<&String> = fields.iter().filter(|f| !named.contains(f)).collect();
            (code != Code::InvalidArgument || !missing.is_empty()).then(|| {
                format!(
                    "expected INVALID_ARGUMENT on {fields:?}, got {code:?} on {named:?}: {}",
                    status.message()
                )
            })
        }
        Expect::NoAgreements => match answer {
            Ok(bytes) => {
                let page = pb::ListAgreementsResponse::decode(&bytes[..]).expect("decode");
                (!page.agreements.is_empty()).then(|| {
                    format!(
                        "a filter naming no party of A listed {} agreements",
                        page.agreements.len()
                    )
                })
            }
            Err(_) => wrong("OK with no agreements"),
        },
        Expect::NoBreaches => match answer {
            Ok(bytes) => {
                let page = pb::ListBreachesResponse::decode(&bytes[..]).expect("decode");
                (!page.breaches.is_empty()).then(|| {
                    format!(
                        "a filter naming nothing of A listed {} breaches",
                        page.breaches.len()
                    )
                })
            }
            Err(_) => wrong("OK with no breaches"),
        },
        Expect::Watching => match answer {
            Ok(bytes) => {
                let first = pb::WatchBreachesResponse::decode(&bytes[..]).expect("decode");
                (!matches!(
                    first.event,
                    Some(pb::watch_breaches_response::Event::Heartbeat(_))
                ))
                .then(|| format!("a watch began with {first:?}, not a heartbeat"))
            }
            Err(_) => wrong("OK, a watch that begins with a heartbeat"),
        },
        Expect::Entitled {
            explain,
            consumer,
            service,
        } => match answer {
            Ok(bytes) if !explain => {
                let e = pb::Entitlement::decode(&bytes[..]).expect("decode");
                entitled_to(&e, consumer, service)
            }
            Ok(bytes) => {
                let x = pb::EntitlementExplanation::decode(&bytes[..]).expect("decode");
                if (&x.consumer, &x.service) != (consumer, service) {
                    Some(format!(
                        "asked about {consumer} on {service}, explained {} on {}",
                        x.consumer, x.service
                    ))
                } else if x.ancestry.first() != Some(consumer) {
                    Some(format!(
                        "an ancestry not from the consumer: {:?}",
                        x.ancestry
                    ))
                } else {
                    x.entitlement
                        .as_ref()
                        .and_then(|e| entitled_to(e, consumer, service))
                }
            }
            Err(_) if code == Code::NotFound => None,
            Err(_) => wrong("OK or NOT_FOUND"),
        },
        Expect::NotFound(names) => match answer {
            Ok(_) => wrong(&format!("NOT_FOUND naming one of {names:?}")),
            Err(status) => not_found_naming(status, names),
        },
        Expect::Measured { stream, items } => {
            let Ok(bytes) = answer else {
                return wrong("OK answering for every measurement");
            };
            measured_verdict(*stream, items, bytes)
        }
        Expect::Results { watch, pairs } => {
            let Ok(bytes) = answer else {
                return wrong("OK with one result per pair");
            };
            let results = match results_of(*watch, bytes) {
                Ok(results) => results,
                Err(problem) => return Some(problem),
            };
            if results.len() != pairs.len() {
                return Some(format!(
                    "{} results for {} pairs",
                    results.len(),
                    pairs.len()
                ));
            }
            results
                .iter()
                .zip(pairs)
                .enumerate()
                .find_map(|(i, (result, (pair, expect)))| {
                    pair_verdict(result, pair, expect).map(|p| format!("pairs[{i}]: {p}"))
                })
        }
        _ => None,
    }
}

/// Why the answer to a report or a stream's batch is wrong, if it is: every
/// measurement accounted for, each naming B (or a ghost) rejected as
/// unknown.
fn measured_verdict(stream: bool, items: &[ItemExpect], bytes: &[u8]) -> Option<String> {
    let (accepted, duplicates, rejections) = if stream {
        let a = pb::StreamMeasurementsResponse::decode(bytes).expect("decode");
        if a.sequence != 7 {
            return Some(format!("sequence {} for batch 7", a.sequence));
        }
        (a.accepted, a.duplicates, a.rejections)
    } else {
        let a = pb::ReportMeasurementsResponse::decode(bytes).expect("decode");
        (a.accepted, a.duplicates, a.rejections)
    };
    let accounted = accepted + duplicates + rejections.len() as i64;
    if accounted != items.len() as i64 {
        return Some(format!(
            "{accounted} measurements accounted for of {}",
            items.len()
        ));
    }
    items.iter().enumerate().find_map(|(i, expect)| {
        let rejection = rejections.iter().find(|r| r.index == i as i32);
        match (expect, rejection) {
            (ItemExpect::Own, _) => None,
            (ItemExpect::Unknown, Some(r))
                if ["UNKNOWN_SERVICE", "UNKNOWN_CONSUMER"].contains(&r.reason.as_str()) =>
            {
                None
            }
            (ItemExpect::Unknown, other) => Some(format!(
                "measurements[{i}] names B or a ghost, yet {other:?}"
            )),
        }
    })
}

/// How many measurements an OK report or stream answer says it stored.
fn accepted_in(stream: bool, bytes: &[u8]) -> i64 {
    if stream {
        pb::StreamMeasurementsResponse::decode(bytes).map_or(0, |a| a.accepted)
    } else {
        pb::ReportMeasurementsResponse::decode(bytes).map_or(0, |a| a.accepted)
    }
}

/// B's measurements as the store reads them: sums per level and view, and
/// which of the ids either tenant uses B holds.
async fn measurements_of(s: &TestServer, tenant: &str) -> String {
    let db = Stored::of(s.store().await, tenant);
    let bank = View::Consumer(Id::parse("id", "bank").unwrap());
    let mut seen = Vec::new();
    for level in [Level::Raw, Level::Minute, Level::Hour, Level::Day] {
        for view in [&View::ServiceWide, &bank] {
            let sum = db.counts("payments", view, level, around_now()).await;
            seen.push(format!("{level:?} {view:?} {sum:?}"));
        }
    }
    let ids: Vec<String> = (0..30)
        .map(|i| format!("m{i}"))
        .chain((0..20).map(|i| format!("setup-m{i}")))
        .collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    seen.push(format!("keys {:?}", db.keys(&ids).await));
    db.store.close().await;
    seen.join("\n")
}

// --- the test ------------------------------------------------------------------------

/// The period closer checks every second here.
fn fast_closer(c: &mut accord::config::Config) {
    c.breach_check_interval = std::time::Duration::from_secs(1);
}

/// Waits until the tenant's two breaches are listed.
async fn breaches_written(admin: &Clients, tenant: &str) {
    let parent = format!("tenants/{tenant}");
    eventually(std::time::Duration::from_secs(30), || {
        let mut client = admin.breaches();
        let parent = parent.clone();
        async move {
            let listed = client
                .list_breaches(pb::ListBreachesRequest {
                    parent,
                    ..Default::default()
                })
                .await
                .expect("list breaches")
                .into_inner();
            listed.breaches.len() == 2
        }
    })
    .await;
}

async fn tenant_a_can_neither_see_nor_change_tenant_b(s: TestServer) {
    let started = Instant::now();
    let a = populate(&s, A, A_NOTE, false).await;
    let b = populate(&s, B, B_NOTE, true).await;
    let a_admin = s.clients(a.key(Role::TenantAdmin));
    let b_admin = s.clients(b.key(Role::TenantAdmin));
    // The period closer has written each tenant's two breaches (and will
    // write nothing more of B's: nothing reaches B).
    for (admin, tenant) in [(&a_admin, A), (&b_admin, B)] {
        breaches_written(admin, tenant).await;
    }

    let before = snapshot(&b_admin, B).await;
    let checksum_before = before.checksum();
    let b_measured_before = measurements_of(&s, B).await;
    let a_snapshot = snapshot(&a_admin, A).await;
    let b_tokens = page_tokens(&s.clients(b.key(Role::Reader)), &b_admin, &before).await;
    let a_tokens = page_tokens(&s.clients(a.key(Role::Reader)), &a_admin, &a_snapshot).await;
    let lists: BTreeSet<List> = b_tokens.iter().map(|t| t.list).collect();
    assert_eq!(
        lists.len(),
        8,
        "B has a second page in every list (every `List`): {lists:?}"
    );
    let (a_names, b_names) = (Names::of(&a_snapshot), Names::of(&before));
    let ghosts = Names::ghosts(&a_names, &b_names);
    let setup = started.elapsed();

    let seed: u64 = match std::env::var(SEED_VAR) {
        Ok(v) => v.parse().expect("a u64 seed"),
        Err(_) => rand::random(),
    };
    println!("isolation: seed {seed} (replay with {SEED_VAR}={seed})");
    let mut plan = Plan {
        rng: StdRng::seed_from_u64(seed),
        a: &a_names,
        b: &b_names,
        ghost: &ghosts,
        a_tokens: &a_tokens,
        b_tokens: &b_tokens,
        methods: accord_methods(),
        began: chrono::Utc::now().timestamp(),
        keys: a
            .keys
            .iter()
            .map(|(role, key)| (*role, s.clients(key)))
            .collect(),
    };

    // The random phase: A's keys only, 16 calls in flight.
    let phase = Instant::now();
    let answers: Vec<(Meta, Answer)> = futures::stream::iter((0..CALLS).map(|_| {
        let (meta, send) = plan.next();
        send.map(move |answer| (meta, answer))
    }))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await;
    let random_phase = phase.elapsed();

    // Judge every answer, and count outcomes by twist, and what reached the
    // handler (the role may make the call) by method.
    let mut failures = Vec::new();
    let mut outcomes: BTreeMap<(Twist, bool), BTreeMap<String, usize>> = BTreeMap::new();
    let mut reached: BTreeMap<&str, BTreeMap<Twist, usize>> = BTreeMap::new();
    let mut b_tokens_reached: BTreeMap<&str, usize> = BTreeMap::new();
    // Entitlement calls: pairs naming B answered inside an OK batch or watch,
    // and entitlements resolved for A's own questions, by method.
    let mut b_pairs_answered: BTreeMap<&str, usize> = BTreeMap::new();
    let mut entitled: BTreeMap<&str, usize> = BTreeMap::new();
    // Measurement calls: items naming B or a ghost rejected inside an OK
    // answer, and A's own items stored, by method.
    let mut unknown_items: BTreeMap<&str, usize> = BTreeMap::new();
    let mut stored_items: BTreeMap<&str, i64> = BTreeMap::new();
    for (call, answer) in &answers {
        if let Some(problem) = verdict(call, answer) {
            let shown: String = call.request.chars().take(400).collect();
            failures.push(format!(
                "{} as {:?} ({}): {problem}\n    request: {shown}\n    answer: {:?}",
                call.method,
                call.role,
                call.twist.label(),
                answer.as_ref().map(|b| b.len()),
            ));
        }
        *outcomes
            .entry((call.twist, call.allowed))
            .or_default()
            .entry(format!("{:?}", code_of(answer)))
            .or_default() += 1;
        if call.allowed {
            *reached
                .entry(call.method.as_str())
                .or_default()
                .entry(call.twist)
                .or_default() += 1;
            if matches!(&call.expect, Expect::Invalid(f) if f.iter().any(|f| f == "page_token")) {
                *b_tokens_reached.entry(call.method.as_str()).or_default() += 1;
            }
            if let Ok(bytes) = answer {
                let method = call.method.as_str();
                let b_pairs = pairs_naming_b(&call.expect);
                if b_pairs > 0 {
                    *b_pairs_answered.entry(method).or_default() += b_pairs;
                }
                if let Expect::Measured { stream, items } = &call.expect {
                    let unknown = items.iter().filter(|i| **i == ItemExpect::Unknown).count();
                    *unknown_items.entry(method).or_default() += unknown;
                    *stored_items.entry(method).or_default() += accepted_in(*stream, bytes);
                }
                let resolved = entitlements_in(&call.expect, bytes);
                if call.twist == Twist::Own && resolved > 0 {
                    *entitled.entry(method).or_default() += resolved;
                }
            }
        }
    }

    let after = snapshot(&b_admin, B).await;
    let checksum_after = after.checksum();
    let b_measured_after = measurements_of(&s, B).await;

    println!(
        "isolation: {CALLS} calls in {random_phase:.1?} ({:.0}/s), setup {setup:.1?}, total {:.1?}",
        CALLS as f64 / random_phase.as_secs_f64(),
        started.elapsed()
    );
    println!("isolation: outcomes by what the call named (role may call / role may not):");
    for ((twist, allowed), codes) in &outcomes {
        let total: usize = codes.values().sum();
        let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let who = if *allowed { "allowed" } else { "role-denied" };
        println!(
            "  {:<24} {who:<11} {total:>5}: {}",
            twist.label(),
            codes.join(", ")
        );
    }
    println!(
        "isolation: entitlements resolved for A's own questions {entitled:?}; \
         pairs naming B answered NOT_FOUND in OK batches and watches {b_pairs_answered:?}"
    );
    println!(
        "isolation: measurements naming B or a ghost rejected in OK answers {unknown_items:?}; \
         A's own measurements stored {stored_items:?}"
    );
    println!("isolation: B's checksum {checksum_before} before, {checksum_after} after");

    // B is untouched.
    assert_eq!(
        checksum_before,
        checksum_after,
        "tenant B changed: {:?}",
        before.differences(&after)
    );
    assert_eq!(
        b_measured_before, b_measured_after,
        "tenant B's measurements changed"
    );
    assert!(
        b_measured_before.contains("setup-m19"),
        "B's measurements were read: {b_measured_before}"
    );
    // Every answer was right.
    assert!(
        failures.is_empty(),
        "{} of {CALLS} answers were wrong (seed {seed}); the first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Not vacuous: every kind of call reached the handlers, and every RPC that
    // a tenant key may make was made naming B.
    for twist in Twist::ALL {
        let n: usize = outcomes.get(&(twist, true)).map_or(0, |c| c.values().sum());
        assert!(
            n > 100,
            "only {n} calls of kind `{}` reached a handler",
            twist.label()
        );
    }
    let own_ok = outcomes
        .get(&(Twist::Own, true))
        .and_then(|c| c.get("Ok"))
        .copied()
        .unwrap_or(0);
    assert!(own_ok > 100, "only {own_ok} of A's own calls succeeded");
    for method in accord_methods() {
        let roles = roles_for(&method).unwrap();
        if !a.keys.iter().any(|(r, _)| roles.contains(r)) {
            continue;
        }
        let counts = reached.get(method.as_str()).cloned().unwrap_or_default();
        let naming_b = counts.get(&Twist::ForeignName).unwrap_or(&0)
            + counts.get(&Twist::ForeignRef).unwrap_or(&0);
        assert!(
            naming_b > 0,
            "{method} was never called naming B: {counts:?}"
        );
        if method.contains("/List") {
            assert!(
                b_tokens_reached.get(method.as_str()).copied().unwrap_or(0) > 0,
                "{method} was never called with a page token of B's"
            );
        }
        // B's names reached the items of an OK report and of an OK stream,
        // and A's own items were stored by both.
        if method.contains("/accord.v1.MeasurementService/") {
            assert!(
                unknown_items.get(method.as_str()).copied().unwrap_or(0) > 0,
                "{method} never answered a measurement naming B in an OK response"
            );
            assert!(
                stored_items.get(method.as_str()).copied().unwrap_or(0) > 0,
                "{method} never stored a measurement of A's"
            );
        }
        // B's names reached the pairs of an OK batch and of an OK watch.
        if method.ends_with("/BatchResolveEntitlements") || method.ends_with("/WatchEntitlements") {
            assert!(
                b_pairs_answered.get(method.as_str()).copied().unwrap_or(0) > 0,
                "{method} never answered a pair naming B in an OK response"
            );
        }
    }
    // A's published agreements answered some of A's own questions. (Not each
    // RPC: A's random traffic may terminate them early, and a watch resolves
    // as of now only.)
    let resolved: usize = entitled.values().sum();
    assert!(
        resolved > 0,
        "no entitlement call resolved an entitlement of A's"
    );
}

on_both_backends!(configured by fast_closer: tenant_a_can_neither_see_nor_change_tenant_b);
