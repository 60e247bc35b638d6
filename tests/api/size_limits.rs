//! Size limits (issue 9, defect 7). Every string and repeated field a request
//! carries is bounded: the limit is accepted, one more is INVALID_ARGUMENT
//! naming the field as the client sent it, through Create and Update alike;
//! oversized input is refused before anything is stored, without being echoed
//! back; and list pages stop at a byte budget as well as at `page_size`.
//!
//! The limits below are the contract documented in docs/api.md ("Limits"),
//! written out rather than imported, so that changing one is a visible change.

use std::collections::BTreeSet;

use accord::proto::v1 as pb;
use prost::Message;
use prost_types::FieldMask;
use tonic::Code;
use tonic_types::StatusExt;

use crate::on_both_backends;
use crate::support::*;

/// The byte budget of one list page (docs/api.md).
const PAGE_BYTES: usize = 1024 * 1024;

/// `n` characters of free text, two bytes each in UTF-8: limits count
/// characters, not bytes.
fn text(n: usize) -> String {
    "é".repeat(n)
}

/// `n` characters of ASCII, for fields that allow nothing else.
fn ascii(n: usize) -> String {
    "a".repeat(n)
}

fn duration(seconds: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos: 0 })
}

fn objective(key: String) -> pb::Objective {
    pb::Objective {
        key,
        ..availability(0.99)
    }
}

/// A valid RRULE of exactly `n` characters (`n` >= 22): the interval is padded
/// with leading zeros.
fn rrule(n: usize) -> String {
    let head = "FREQ=DAILY;INTERVAL=";
    format!("{head}{}1", "0".repeat(n - head.len() - 1))
}

fn exclusion(reason: String, rrule: String) -> pb::Exclusion {
    pb::Exclusion {
        reason,
        schedule: Some(pb::exclusion::Schedule::Recurring(pb::RecurringWindow {
            rrule,
            start: Some(ts(JAN_2026)),
            duration: duration(3600),
            time_zone: String::new(),
        })),
    }
}

fn clause(title: String, text: String) -> pb::Clause {
    pb::Clause {
        kind: pb::ClauseKind::Other.into(),
        title,
        text,
        amount: None,
    }
}

/// `n` characters of clause text, in as few clauses as the per-clause limit
/// allows.
fn clauses_totalling(n: usize) -> Vec<pb::Clause> {
    let mut left = n;
    let mut clauses = Vec::new();
    while left > 0 {
        let this = left.min(32_768);
        clauses.push(clause("Terms".into(), ascii(this)));
        left -= this;
    }
    clauses
}

fn map(n: usize, key: impl Fn(usize) -> String) -> std::collections::BTreeMap<String, String> {
    (0..n).map(|i| (key(i), "v".to_string())).collect()
}

fn support(edit: impl FnOnce(&mut pb::SupportTerms)) -> Option<pb::SupportTerms> {
    let mut s = pb::SupportTerms {
        calendar: Some(pb::BusinessCalendar::default()),
        priorities: Vec::new(),
    };
    edit(&mut s);
    Some(s)
}

fn calendar(s: &mut pb::SupportTerms) -> &mut pb::BusinessCalendar {
    s.calendar.as_mut().expect("calendar")
}

fn credits(tiers: usize) -> Option<pb::CreditSchedule> {
    Some(pb::CreditSchedule {
        tiers: (0..tiers)
            .map(|i| pb::CreditTier {
                attainment_below: (100 - i) as f64 / 100.0,
                credit_percent: (i + 1) as f64,
            })
            .collect(),
        cap_percent: None,
        fee: Some(pb::Money {
            amount_minor: 100,
            currency_code: "EUR".into(),
        }),
        claim_window: None,
    })
}

/// A world filled with what the largest allowed values refer to: enough
/// services for one agreement to cover the most it may, agreements for an OLA
/// to support, and a SERVICE_LEVEL agreement with the most objectives an
/// override may patch.
struct Filled {
    w: World,
    services: Vec<String>,
    agreements: Vec<String>,
    sla: String,
}

const MAX_SERVICES: usize = 1000;
const MAX_SUPPORTS: usize = 100;
const MAX_OBJECTIVES: usize = 100;

async fn fill(s: &TestServer) -> Filled {
    let w = World::new(s, "acme").await;
    let ids: Vec<String> = (1..MAX_SERVICES).map(|i| format!("svc-{i:04}")).collect();
    let mut services = vec![w.payments.clone()];
    let created = futures::future::join_all(ids.chunks(MAX_SERVICES / 8).map(|chunk| {
        let w = w.clone();
        async move {
            let mut names = Vec::new();
            for id in chunk {
                names.push(w.service(id).await);
            }
            names
        }
    }))
    .await;
    services.extend(created.into_iter().flatten());
    let mut agreements = Vec::new();
    for i in 0..MAX_SUPPORTS {
        let a = w.draft(&format!("backed-{i:03}"), w.standard_deal()).await;
        agreements.push(a.name);
    }
    let sla = pb::Agreement {
        objectives: (0..MAX_OBJECTIVES)
            .map(|i| objective(format!("o{i}")))
            .collect(),
        ..w.standard_sla()
    };
    let sla = w.draft("sla", sla).await.name;
    Filled {
        w,
        services,
        agreements,
        sla,
    }
}

/// Names of `n` items: the world's as far as they go, then well-formed names
/// of resources that do not exist (a list over its limit is refused before its
/// references are looked up).
fn names(existing: &[String], n: usize, collection: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            existing
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("tenants/acme/{collection}/extra-{i}"))
        })
        .collect()
}

type Set<T> = Box<dyn Fn(&mut T, usize)>;

/// Sets a bounded field of one kind of resource to `n` characters or items.
enum Setter {
    Tenant(Set<pb::Tenant>),
    Party(Set<pb::Party>),
    Service(Set<pb::Service>),
    /// API keys have no Update.
    ApiKey(Set<pb::ApiKey>),
    Agreement(Set<pb::Agreement>),
    Override(Set<pb::Override>),
}

struct Case {
    /// The field a violation names, as the client sent it.
    field: String,
    limit: usize,
    set: Setter,
}

fn case(field: impl Into<String>, limit: usize, set: Setter) -> Case {
    Case {
        field: field.into(),
        limit,
        set,
    }
}

/// Every bounded field of every resource a client writes.
fn cases(f: &Filled) -> Vec<Case> {
    use Setter::*;
    let (services, agreements) = (f.services.clone(), f.agreements.clone());
    let label_key = |n: usize| format!("k{}", ascii(n - 1));
    vec![
        // Tenants.
        case(
            "tenant.display_name",
            200,
            Tenant(Box::new(|t, n| t.display_name = text(n))),
        ),
        case(
            "tenant.labels",
            64,
            Tenant(Box::new(|t, n| t.labels = map(n, |i| format!("l{i}")))),
        ),
        case(
            format!("tenant.labels.{}", label_key(64)),
            63,
            Tenant(Box::new(move |t, n| t.labels = map(1, |_| label_key(n)))),
        ),
        case(
            "tenant.labels.tier",
            63,
            Tenant(Box::new(|t, n| {
                t.labels = [("tier".to_string(), ascii(n))].into()
            })),
        ),
        // Parties.
        case(
            "party.display_name",
            200,
            Party(Box::new(|p, n| p.display_name = text(n))),
        ),
        case(
            "party.labels",
            64,
            Party(Box::new(|p, n| p.labels = map(n, |i| format!("l{i}")))),
        ),
        // Services.
        case(
            "service.display_name",
            200,
            Service(Box::new(|s, n| s.display_name = text(n))),
        ),
        case(
            "service.description",
            4000,
            Service(Box::new(|s, n| s.description = text(n))),
        ),
        case(
            "service.labels",
            64,
            Service(Box::new(|s, n| s.labels = map(n, |i| format!("l{i}")))),
        ),
        // API keys.
        case(
            "api_key.display_name",
            200,
            ApiKey(Box::new(|k, n| k.display_name = text(n))),
        ),
        // Agreements.
        case(
            "agreement.display_name",
            200,
            Agreement(Box::new(|a, n| a.display_name = text(n))),
        ),
        case(
            "agreement.description",
            10_000,
            Agreement(Box::new(|a, n| a.description = text(n))),
        ),
        case(
            "agreement.services",
            MAX_SERVICES,
            Agreement(Box::new(move |a, n| {
                a.services = names(&services, n, "services")
            })),
        ),
        case(
            "agreement.supports",
            MAX_SUPPORTS,
            Agreement(Box::new(move |a, n| {
                a.kind = pb::AgreementKind::Operational.into();
                a.supports = names(&agreements, n, "agreements");
            })),
        ),
        case(
            "agreement.objectives",
            MAX_OBJECTIVES,
            Agreement(Box::new(|a, n| {
                a.objectives = (0..n).map(|i| objective(format!("o{i}"))).collect()
            })),
        ),
        case(
            "agreement.objectives[0].key",
            63,
            Agreement(Box::new(|a, n| a.objectives[0].key = ascii(n))),
        ),
        case(
            "agreement.objectives[0].display_name",
            200,
            Agreement(Box::new(|a, n| a.objectives[0].display_name = text(n))),
        ),
        case(
            "agreement.objectives[0].indicator",
            256,
            Agreement(Box::new(|a, n| a.objectives[0].indicator = text(n))),
        ),
        case(
            "agreement.exclusions",
            100,
            Agreement(Box::new(|a, n| {
                a.exclusions = (0..n)
                    .map(|_| exclusion("maintenance".into(), "FREQ=WEEKLY".into()))
                    .collect()
            })),
        ),
        case(
            "agreement.exclusions[0].reason",
            500,
            Agreement(Box::new(|a, n| {
                a.exclusions = vec![exclusion(text(n), "FREQ=WEEKLY".into())]
            })),
        ),
        case(
            "agreement.exclusions[0].recurring.rrule",
            500,
            Agreement(Box::new(|a, n| {
                a.exclusions = vec![exclusion("maintenance".into(), rrule(n))]
            })),
        ),
        case(
            "agreement.clauses",
            100,
            Agreement(Box::new(|a, n| {
                a.clauses = (0..n).map(|_| clause("Terms".into(), "…".into())).collect()
            })),
        ),
        case(
            "agreement.clauses[0].title",
            200,
            Agreement(Box::new(|a, n| {
                a.clauses = vec![clause(text(n), "…".into())]
            })),
        ),
        case(
            "agreement.clauses[0].text",
            32_768,
            Agreement(Box::new(|a, n| {
                a.clauses = vec![clause("Terms".into(), text(n))]
            })),
        ),
        // All clause texts together, each within its own limit.
        case(
            "agreement.clauses",
            131_072,
            Agreement(Box::new(|a, n| a.clauses = clauses_totalling(n))),
        ),
        case(
            "agreement.support.calendar.hours",
            100,
            Agreement(Box::new(|a, n| {
                a.support = support(|s| {
                    calendar(s).hours = (0..n)
                        .map(|_| pb::BusinessHours {
                            day: pb::DayOfWeek::Monday.into(),
                            start: "09:00".into(),
                            end: "17:00".into(),
                        })
                        .collect()
                })
            })),
        ),
        case(
            "agreement.support.calendar.holidays",
            1000,
            Agreement(Box::new(|a, n| {
                a.support = support(|s| {
                    calendar(s).holidays = (0..n)
                        .map(|i| pb::Date {
                            year: 2026 + (i / 300) as i32,
                            month: 1 + (i % 300 / 25) as i32,
                            day: 1 + (i % 25) as i32,
                        })
                        .collect()
                })
            })),
        ),
        case(
            "agreement.support.priorities",
            20,
            Agreement(Box::new(|a, n| {
                a.support = support(|s| {
                    s.priorities = (0..n)
                        .map(|i| pb::PriorityTarget {
                            priority: format!("P{i}"),
                            response: duration(3600),
                            resolution: duration(7200),
                        })
                        .collect()
                })
            })),
        ),
        case(
            "agreement.credits.tiers",
            20,
            Agreement(Box::new(|a, n| a.credits = credits(n))),
        ),
        case(
            "agreement.labels",
            64,
            Agreement(Box::new(|a, n| a.labels = map(n, |i| format!("l{i}")))),
        ),
        case(
            "agreement.annotations",
            64,
            Agreement(Box::new(|a, n| {
                a.annotations = map(n, |i| format!("example.com/a{i}"))
            })),
        ),
        case(
            format!("agreement.annotations.{}", ascii(254)),
            253,
            Agreement(Box::new(|a, n| a.annotations = map(1, |_| ascii(n)))),
        ),
        // Keys and values together.
        case(
            "agreement.annotations",
            65_536,
            Agreement(Box::new(|a, n| {
                a.annotations = [("note".to_string(), text(n - 4))].into()
            })),
        ),
        // Overrides.
        case(
            "override.display_name",
            200,
            Override(Box::new(|o, n| o.display_name = text(n))),
        ),
        case(
            "override.objective_patches",
            MAX_OBJECTIVES,
            Override(Box::new(|o, n| {
                o.objective_patches = (0..n)
                    .map(|i| pb::ObjectivePatch {
                        key: format!("o{i}"),
                        target: Some(0.9),
                        ..Default::default()
                    })
                    .collect()
            })),
        ),
        case(
            "override.added_objectives",
            MAX_OBJECTIVES,
            Override(Box::new(|o, n| {
                o.added_objectives = (0..n).map(|i| objective(format!("x{i}"))).collect()
            })),
        ),
        case(
            "override.credits.tiers",
            20,
            Override(Box::new(|o, n| o.credits = credits(n))),
        ),
        case(
            "override.labels",
            64,
            Override(Box::new(|o, n| o.labels = map(n, |i| format!("l{i}")))),
        ),
    ]
}

/// The update-mask path that replaces `field`: its top-level field.
fn mask_of(field: &str) -> FieldMask {
    let (_, rest) = field.split_once('.').expect("resource.field");
    let top = rest.split(['.', '[']).next().expect("a path");
    FieldMask {
        paths: vec![top.to_string()],
    }
}

/// Creates a resource with the field at `n` characters or items (`None`:
/// left as the fixture has it); its name when accepted.
async fn create(
    s: &TestServer,
    filled: &Filled,
    set: &Setter,
    id: &str,
    n: Option<usize>,
) -> Result<String, tonic::Status> {
    let parent = filled.w.tenant.clone();
    fn apply<T>(f: &Set<T>, value: &mut T, n: Option<usize>) {
        if let Some(n) = n {
            f(value, n);
        }
    }
    Ok(match set {
        Setter::Tenant(f) => {
            let mut t = pb::Tenant::default();
            apply(f, &mut t, n);
            s.tenants()
                .create_tenant(pb::CreateTenantRequest {
                    tenant_id: id.into(),
                    tenant: Some(t),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .name
        }
        Setter::Party(f) => {
            let mut p = pb::Party {
                kind: pb::PartyKind::Customer.into(),
                ..Default::default()
            };
            apply(f, &mut p, n);
            filled
                .w
                .parties()
                .create_party(pb::CreatePartyRequest {
                    parent,
                    party_id: id.into(),
                    party: Some(p),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .name
        }
        Setter::Service(f) => {
            let mut sv = pb::Service {
                owner: filled.w.provider.clone(),
                ..Default::default()
            };
            apply(f, &mut sv, n);
            filled
                .w
                .services()
                .create_service(pb::CreateServiceRequest {
                    parent,
                    service_id: id.into(),
                    service: Some(sv),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .name
        }
        Setter::ApiKey(f) => {
            let mut k = pb::ApiKey {
                role: pb::Role::Reader.into(),
                ..Default::default()
            };
            apply(f, &mut k, n);
            s.api_keys()
                .create_api_key(pb::CreateApiKeyRequest {
                    parent,
                    api_key_id: id.into(),
                    api_key: Some(k),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .api_key
                .expect("key")
                .name
        }
        Setter::Agreement(f) => {
            let mut a = filled.w.standard_deal();
            apply(f, &mut a, n);
            filled
                .w
                .agreements()
                .create_agreement(pb::CreateAgreementRequest {
                    parent,
                    agreement_id: id.into(),
                    agreement: Some(a),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .name
        }
        Setter::Override(f) => {
            let mut o = base_override(filled);
            apply(f, &mut o, n);
            filled
                .w
                .agreements()
                .create_override(pb::CreateOverrideRequest {
                    parent: filled.sla.clone(),
                    override_id: id.into(),
                    r#override: Some(o),
                    request_id: String::new(),
                })
                .await?
                .into_inner()
                .name
        }
    })
}

fn base_override(filled: &Filled) -> pb::Override {
    pb::Override {
        consumer: filled.w.bank.clone(),
        effective_from: Some(ts(JAN_2026)),
        ..Default::default()
    }
}

/// Replaces the field of the resource `name` (created without it) with one
/// at `n`; `None` for resources without an Update.
async fn update(
    s: &TestServer,
    filled: &Filled,
    set: &Setter,
    name: &str,
    field: &str,
    n: usize,
) -> Option<Result<(), tonic::Status>> {
    let mask = Some(mask_of(field));
    let name = name.to_string();
    Some(match set {
        Setter::Tenant(f) => {
            let mut t = pb::Tenant {
                name,
                ..Default::default()
            };
            f(&mut t, n);
            s.tenants()
                .update_tenant(pb::UpdateTenantRequest {
                    tenant: Some(t),
                    update_mask: mask,
                })
                .await
                .map(drop)
        }
        Setter::Party(f) => {
            let mut p = pb::Party {
                name,
                ..Default::default()
            };
            f(&mut p, n);
            filled
                .w
                .parties()
                .update_party(pb::UpdatePartyRequest {
                    party: Some(p),
                    update_mask: mask,
                })
                .await
                .map(drop)
        }
        Setter::Service(f) => {
            let mut sv = pb::Service {
                name,
                ..Default::default()
            };
            f(&mut sv, n);
            filled
                .w
                .services()
                .update_service(pb::UpdateServiceRequest {
                    service: Some(sv),
                    update_mask: mask,
                })
                .await
                .map(drop)
        }
        Setter::ApiKey(_) => return None,
        Setter::Agreement(f) => {
            // Setters may change more than their field (an OLA's kind), so
            // the whole agreement is replaced.
            let mut a = filled.w.standard_deal();
            f(&mut a, n);
            a.name = name;
            filled
                .w
                .agreements()
                .update_agreement(pb::UpdateAgreementRequest {
                    agreement: Some(a),
                    update_mask: Some(FieldMask {
                        paths: vec!["*".into()],
                    }),
                })
                .await
                .map(drop)
        }
        Setter::Override(f) => {
            let mut o = base_override(filled);
            f(&mut o, n);
            o.name = name;
            filled
                .w
                .agreements()
                .update_override(pb::UpdateOverrideRequest {
                    r#override: Some(o),
                    update_mask: mask,
                })
                .await
                .map(drop)
        }
    })
}

async fn every_bounded_field_takes_its_limit_and_refuses_one_more(s: TestServer) {
    let f = fill(&s).await;
    for (i, c) in cases(&f).iter().enumerate() {
        let what = format!("{} (limit {})", c.field, c.limit);
        let at = create(&s, &f, &c.set, &format!("c{i}-at"), Some(c.limit)).await;
        at.unwrap_or_else(|e| panic!("{what}: a create at the limit is refused: {e:?}"));
        let over = create(&s, &f, &c.set, &format!("c{i}-over"), Some(c.limit + 1)).await;
        assert_invalid_field(over, &c.field);

        let base = create(&s, &f, &c.set, &format!("c{i}-base"), None)
            .await
            .unwrap_or_else(|e| panic!("{what}: the fixture is refused: {e:?}"));
        let Some(at) = update(&s, &f, &c.set, &base, &c.field, c.limit).await else {
            continue;
        };
        at.unwrap_or_else(|e| panic!("{what}: an update to the limit is refused: {e:?}"));
        let over = update(&s, &f, &c.set, &base, &c.field, c.limit + 1).await;
        assert_invalid_field(over.expect("an update"), &c.field);
    }
}

/// Request fields that are not part of a resource.
async fn request_fields_take_their_limit_and_refuse_one_more(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let party = |id: &str| pb::Party {
        kind: pb::PartyKind::Customer.into(),
        display_name: id.into(),
        ..Default::default()
    };
    let create_party = |id: &str, request_id: String| pb::CreatePartyRequest {
        parent: w.tenant.clone(),
        party_id: id.into(),
        party: Some(party(id)),
        request_id,
    };

    // request_id: 1 to 128 printable ASCII characters.
    w.parties()
        .create_party(create_party("r-at", ascii(128)))
        .await
        .expect("a request_id of 128 characters");
    assert_invalid_field(
        w.parties()
            .create_party(create_party("r-over", ascii(129)))
            .await,
        "request_id",
    );

    // update_mask: at most 64 paths.
    let mask = |n: usize| FieldMask {
        paths: vec!["display_name".to_string(); n],
    };
    let rename = |n: usize| pb::UpdatePartyRequest {
        party: Some(pb::Party {
            name: w.bank.clone(),
            display_name: "Bank".into(),
            ..Default::default()
        }),
        update_mask: Some(mask(n)),
    };
    w.parties()
        .update_party(rename(64))
        .await
        .expect("64 mask paths");
    assert_invalid_field(w.parties().update_party(rename(65)).await, "update_mask");

    // filter: at most 2,048 characters and 20 terms.
    let list = |filter: String| pb::ListAgreementsRequest {
        parent: w.tenant.clone(),
        filter,
        ..Default::default()
    };
    let long_filter = |n: usize| {
        let head = "labels.tier = \"";
        format!("{head}{}\"", ascii(n - head.len() - 1))
    };
    let terms = |n: usize| vec!["kind = CUSTOMER"; n].join(" AND ");
    for (filter, ok) in [
        (long_filter(2048), true),
        (long_filter(2049), false),
        (terms(20), true),
        (terms(21), false),
    ] {
        let result = w.agreements().list_agreements(list(filter.clone())).await;
        if ok {
            result.unwrap_or_else(|e| panic!("{filter}: {e:?}"));
        } else {
            assert_invalid_field(result, "filter");
        }
    }

    // The audit trail's resource and actor: names, at most 256 characters.
    let events = |resource: String, actor: String| pb::ListAuditEventsRequest {
        parent: w.tenant.clone(),
        resource,
        actor,
        ..Default::default()
    };
    let name = |n: usize| format!("tenants/acme/parties/{}", ascii(n - 21));
    w.audit()
        .list_audit_events(events(name(256), String::new()))
        .await
        .expect("a resource of 256 characters");
    assert_invalid_field(
        w.audit()
            .list_audit_events(events(name(257), String::new()))
            .await,
        "resource",
    );
    let key = |n: usize| format!("tenants/acme/apiKeys/{}", ascii(n - 21));
    w.audit()
        .list_audit_events(events(String::new(), key(256)))
        .await
        .expect("an actor of 256 characters");
    assert_invalid_field(
        w.audit()
            .list_audit_events(events(String::new(), key(257)))
            .await,
        "actor",
    );
}

/// 3 MB: below the server's 4 MiB message limit, far above any field's.
fn huge() -> String {
    ascii(3_000_000)
}

/// An INVALID_ARGUMENT on `field` whose message and details are short: a
/// client's headers are limited (16 KiB by default in tonic and Go, 8 KiB in
/// Java), and a refused value is not sent back.
#[track_caller]
fn assert_refused_briefly<T: std::fmt::Debug>(result: Result<T, tonic::Status>, field: &str) {
    let status = result.expect_err("expected INVALID_ARGUMENT");
    assert!(
        status.message().len() + status.details().len() < 4096,
        "{field}: {} bytes of message, {} of details",
        status.message().len(),
        status.details().len()
    );
    assert_invalid_field(Err::<T, _>(status), field);
}

async fn oversized_values_are_refused_without_being_echoed(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let sla = w.draft("sla", w.standard_sla()).await;
    let party = w.get_party(&w.bank).await;

    assert_refused_briefly(
        w.parties()
            .get_party(pb::GetPartyRequest { name: huge() })
            .await,
        "name",
    );
    assert_refused_briefly(
        w.parties()
            .create_party(pb::CreatePartyRequest {
                parent: w.tenant.clone(),
                party_id: huge(),
                party: Some(party.clone()),
                request_id: String::new(),
            })
            .await,
        "party_id",
    );
    assert_refused_briefly(
        w.parties()
            .delete_party(pb::DeletePartyRequest {
                name: w.bank.clone(),
                etag: huge(),
            })
            .await,
        "etag",
    );
    assert_refused_briefly(
        w.parties()
            .update_party(pb::UpdatePartyRequest {
                party: Some(pb::Party {
                    etag: ascii(65),
                    display_name: "Bank".into(),
                    ..party.clone()
                }),
                update_mask: None,
            })
            .await,
        "party.etag",
    );
    assert_refused_briefly(
        w.parties()
            .update_party(pb::UpdatePartyRequest {
                party: Some(party.clone()),
                update_mask: Some(FieldMask {
                    paths: vec![huge()],
                }),
            })
            .await,
        "update_mask",
    );
    assert_refused_briefly(
        w.parties()
            .list_parties(pb::ListPartiesRequest {
                parent: w.tenant.clone(),
                page_token: huge(),
                ..Default::default()
            })
            .await,
        "page_token",
    );
    assert_refused_briefly(
        w.agreements()
            .list_agreements(pb::ListAgreementsRequest {
                parent: w.tenant.clone(),
                filter: format!("kind = {}", huge()),
                ..Default::default()
            })
            .await,
        "filter",
    );
    let agreement = |edit: &dyn Fn(&mut pb::Agreement)| {
        let mut a = w.standard_deal();
        edit(&mut a);
        pb::CreateAgreementRequest {
            parent: w.tenant.clone(),
            agreement_id: "big".into(),
            agreement: Some(a),
            request_id: String::new(),
        }
    };
    for (field, edit) in [
        (
            "agreement.objectives[0].key",
            Box::new(|a: &mut pb::Agreement| a.objectives[0].key = huge())
                as Box<dyn Fn(&mut pb::Agreement)>,
        ),
        (
            "agreement.objectives[0].window.calendar.time_zone",
            Box::new(|a: &mut pb::Agreement| {
                a.objectives[0].window = Some(pb::Window {
                    window: Some(pb::window::Window::Calendar(pb::CalendarWindow {
                        period: pb::CalendarPeriod::Month.into(),
                        time_zone: huge(),
                    })),
                })
            }),
        ),
        (
            "agreement.credits.fee.currency_code",
            Box::new(|a: &mut pb::Agreement| {
                a.credits = credits(1);
                a.credits
                    .as_mut()
                    .unwrap()
                    .fee
                    .as_mut()
                    .unwrap()
                    .currency_code = huge();
            }),
        ),
        (
            "agreement.provider",
            Box::new(|a: &mut pb::Agreement| a.provider = huge()),
        ),
    ] {
        assert_refused_briefly(
            w.agreements().create_agreement(agreement(&*edit)).await,
            field,
        );
    }
    assert_refused_briefly(
        w.agreements()
            .create_override(pb::CreateOverrideRequest {
                parent: sla.name.clone(),
                override_id: "gold".into(),
                r#override: Some(pb::Override {
                    consumer: w.bank.clone(),
                    effective_from: Some(ts(JAN_2026)),
                    objective_patches: vec![pb::ObjectivePatch {
                        key: huge(),
                        target: Some(0.9),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await,
        "override.objective_patches[0].key",
    );
}

/// A list over its limit is refused as one violation on the list, not one per
/// item; a list within it reports its items' violations in a status every
/// client can read.
async fn oversized_lists_are_refused_as_a_whole(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let create = |services: Vec<String>| pb::CreateAgreementRequest {
        parent: w.tenant.clone(),
        agreement_id: "wide".into(),
        agreement: Some(pb::Agreement {
            services,
            ..w.standard_deal()
        }),
        request_id: String::new(),
    };
    // Two bytes each on the wire: the most items a message can carry.
    let empty = vec![String::new(); 1_500_000];
    assert_refused_briefly(
        w.agreements().create_agreement(create(empty)).await,
        "agreement.services",
    );
    let malformed = vec!["x".to_string(); MAX_SERVICES];
    let status = w
        .agreements()
        .create_agreement(create(malformed))
        .await
        .expect_err("malformed services");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let reported = status.get_details_bad_request().expect("BadRequest");
    assert_eq!(reported.field_violations[0].field, "agreement.services[0]");
    assert!(
        status.message().len() + status.details().len() < 8192,
        "{} bytes of message, {} of details",
        status.message().len(),
        status.details().len()
    );
}

/// The defect as reported: a 3 MB clause text, on create and on an update of
/// a published agreement. Nothing is stored: no agreement, revision or audit
/// event.
async fn a_three_megabyte_clause_is_refused_before_anything_is_stored(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut api = w.agreements();
    let big = vec![clause("Indemnification".into(), huge())];
    let result = api
        .create_agreement(pb::CreateAgreementRequest {
            parent: w.tenant.clone(),
            agreement_id: "big".into(),
            agreement: Some(pb::Agreement {
                clauses: big.clone(),
                ..w.standard_sla()
            }),
            request_id: "3c1f0e2a-7d4b-4e0f-9a51-2b6d8c1e4f70".into(),
        })
        .await;
    assert_invalid_field(result, "agreement.clauses[0].text");
    let name = format!("{}/agreements/big", w.tenant);
    assert_code(
        api.get_agreement(pb::GetAgreementRequest { name: name.clone() })
            .await,
        Code::NotFound,
    );
    assert!(w.audit_events(&name).await.is_empty());

    let sla = w.publish("sla", w.standard_sla()).await;
    let events_before = w.audit_events(&sla.name).await.len();
    let result = api
        .update_agreement(pb::UpdateAgreementRequest {
            agreement: Some(pb::Agreement {
                name: sla.name.clone(),
                clauses: big,
                ..Default::default()
            }),
            update_mask: None,
        })
        .await;
    assert_invalid_field(result, "agreement.clauses[0].text");
    let revisions = w.revisions(&sla.name).await;
    assert_eq!(revisions.len(), 1, "only the publication's revision");
    assert_eq!(w.get_agreement(&sla.name).await, sla);
    assert_eq!(w.audit_events(&sla.name).await.len(), events_before);
}

/// What a page's items weigh on the wire: the response without its token.
fn items_len<T: Message>(items: &[T]) -> usize {
    items
        .iter()
        .map(|m| {
            let len = m.encoded_len();
            1 + prost::length_delimiter_len(len) + len
        })
        .sum()
}

async fn pages_of_large_resources_stop_at_the_byte_budget_and_miss_nothing(s: TestServer) {
    let w = World::new(&s, "acme").await;
    // Twelve agreements of ~130 KB each: about 1.5 MiB in all.
    let mut expected = Vec::new();
    for i in 0..12 {
        let a = pb::Agreement {
            clauses: clauses_totalling(131_072),
            ..w.standard_deal()
        };
        expected.push(w.draft(&format!("a{i:02}"), a).await.name);
    }

    let mut api = w.agreements();
    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = api
            .list_agreements(pb::ListAgreementsRequest {
                parent: w.tenant.clone(),
                page_size: 1000,
                page_token: token,
                filter: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(!page.agreements.is_empty());
        assert!(items_len(&page.agreements) <= PAGE_BYTES, "page {pages}");
        seen.extend(page.agreements.into_iter().map(|a| a.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(pages >= 2, "a page of 1.5 MiB was not split");
    assert_eq!(seen, expected, "every agreement once, in order");

    // The audit trail carries each agreement whole as well.
    let mut audit = w.audit();
    let (mut events, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = audit
            .list_audit_events(pb::ListAuditEventsRequest {
                parent: w.tenant.clone(),
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(items_len(&page.audit_events) <= PAGE_BYTES, "page {pages}");
        events.extend(page.audit_events.into_iter().map(|e| e.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(pages >= 2, "a page of 1.5 MiB was not split");
    let unique: BTreeSet<&String> = events.iter().collect();
    assert_eq!(unique.len(), events.len(), "an event came twice");
    // The world's tenant, key, two parties and service, then the agreements.
    assert_eq!(events.len(), 5 + expected.len());
}

/// `n` characters of four bytes each: the most bytes a limit in characters
/// lets through.
fn wide(n: usize) -> String {
    "𝄞".repeat(n)
}

/// A CUSTOMER agreement with every field at its limit, in four-byte
/// characters where any character is allowed.
fn largest(f: &Filled) -> pb::Agreement {
    let objectives = (0..MAX_OBJECTIVES)
        .map(|i| pb::Objective {
            key: format!("o{i:0>62}"),
            display_name: wide(200),
            indicator: wide(256),
            ..availability(0.99)
        })
        .collect();
    let mut a = pb::Agreement {
        display_name: wide(200),
        description: wide(10_000),
        services: f.services.clone(),
        objectives,
        exclusions: (0..100).map(|_| exclusion(wide(500), rrule(500))).collect(),
        clauses: (0..4).map(|_| clause(wide(200), wide(32_768))).collect(),
        labels: map(64, |i| format!("l{i:0>62}"))
            .into_keys()
            .map(|k| (k, ascii(63)))
            .collect(),
        annotations: (0..64).map(|i| (format!("k{i:03}"), wide(1020))).collect(),
        credits: credits(20),
        ..f.w.standard_deal()
    };
    a.support = support(|s| {
        let c = calendar(s);
        c.time_zone = "America/Argentina/Buenos_Aires".into();
        c.hours = (0..100)
            .map(|_| pb::BusinessHours {
                day: pb::DayOfWeek::Monday.into(),
                start: "09:00".into(),
                end: "17:00".into(),
            })
            .collect();
        c.holidays = (0..1000)
            .map(|i| pb::Date {
                year: 2026 + i / 300,
                month: 1 + i % 300 / 25,
                day: 1 + i % 25,
            })
            .collect();
        s.priorities = (0..20)
            .map(|i| pb::PriorityTarget {
                priority: format!("P{i:0>15}"),
                response: duration(3600),
                resolution: duration(7200),
            })
            .collect();
    });
    a
}

/// The limits fit together: the largest agreement they allow, and the audit
/// event of replacing it with another (both copies), its revision and the
/// entitlement it yields all fit the server's 4 MiB messages.
async fn the_largest_agreement_fits_every_response(s: TestServer) {
    let f = fill(&s).await;
    let w = &f.w;
    let mut api = w.agreements();
    let big = largest(&f);
    let created = w.draft("largest", big.clone()).await;
    let size = created.encoded_len();
    assert!(size > 1_000_000, "only {size} bytes");
    assert_eq!(w.get_agreement(&created.name).await, created);
    api.update_agreement(pb::UpdateAgreementRequest {
        agreement: Some(pb::Agreement {
            name: created.name.clone(),
            description: "𝄢".repeat(10_000),
            clauses: (0..4)
                .map(|_| clause(wide(200), "𝄢".repeat(32_768)))
                .collect(),
            ..Default::default()
        }),
        update_mask: None,
    })
    .await
    .expect("update the largest agreement");
    let events = w.audit_events(&created.name).await;
    assert_eq!(events.len(), 2);
    assert!(events[0].before.is_some() && events[0].after.is_some());

    // Published (with one service: a wide publication's change notice is
    // another defect's), it has a revision and an entitlement.
    let one = pb::Agreement {
        services: vec![w.payments.clone()],
        ..big
    };
    let published = w.publish("largest-published", one).await;
    assert_eq!(w.revisions(&published.name).await.len(), 1);
    let entitlement = w.resolve_now(&w.bank, &w.payments).await;
    assert_eq!(entitlement.clauses.len(), 4);
    assert_eq!(entitlement.objectives.len(), MAX_OBJECTIVES);
}

/// A server with a lower message limit lowers the page budget to half of it;
/// a response over the limit (here an audit event holding two large copies)
/// is OUT_OF_RANGE from tonic, as a request over it is.
async fn a_lower_message_limit_lowers_the_page_budget(s: TestServer) {
    let limit = 64 * 1024;
    let w = World::new(&s, "acme").await;
    let mut expected = Vec::new();
    for i in 0..3 {
        let a = pb::Agreement {
            clauses: vec![clause("Terms".into(), ascii(20_000))],
            ..w.standard_deal()
        };
        expected.push(w.draft(&format!("a{i}"), a).await.name);
    }
    let mut api = w.agreements();
    let (mut seen, mut token) = (Vec::new(), String::new());
    loop {
        let page = api
            .list_agreements(pb::ListAgreementsRequest {
                parent: w.tenant.clone(),
                page_size: 1000,
                page_token: token,
                filter: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(items_len(&page.agreements) <= limit / 2);
        assert_eq!(page.agreements.len(), 1, "20 KB each, 32 KiB a page");
        seen.extend(page.agreements.into_iter().map(|a| a.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, expected);

    // 20 KB before, 60 KB after: one event of 80 KB.
    api.update_agreement(pb::UpdateAgreementRequest {
        agreement: Some(pb::Agreement {
            name: expected[0].clone(),
            clauses: (0..3)
                .map(|_| clause("Terms".into(), "b".repeat(20_000)))
                .collect(),
            ..Default::default()
        }),
        update_mask: None,
    })
    .await
    .unwrap();
    let events = w
        .audit()
        .list_audit_events(pb::ListAuditEventsRequest {
            parent: w.tenant.clone(),
            resource: expected[0].clone(),
            ..Default::default()
        })
        .await;
    let status = assert_code(events, Code::OutOfRange);
    assert!(
        status
            .message()
            .contains("encoded message length too large"),
        "{status:?}"
    );
}

/// Servers whose messages are at most 64 KiB.
fn small_messages(c: &mut accord::config::Config) {
    c.max_message_bytes = 64 * 1024;
}

mod small_message_limit {
    use super::*;
    on_both_backends!(configured by small_messages: a_lower_message_limit_lowers_the_page_budget);
}

on_both_backends!(
    every_bounded_field_takes_its_limit_and_refuses_one_more,
    request_fields_take_their_limit_and_refuse_one_more,
    oversized_values_are_refused_without_being_echoed,
    oversized_lists_are_refused_as_a_whole,
    a_three_megabyte_clause_is_refused_before_anything_is_stored,
    pages_of_large_resources_stop_at_the_byte_budget_and_miss_nothing,
    the_largest_agreement_fits_every_response,
);
