//! Entitlement resolution through the API: a table of small worlds, each in
//! its own tenant, with what ResolveEntitlement must answer (and, for the same
//! question, BatchResolveEntitlements and ExplainEntitlement); provenance
//! traced back to the revisions and overrides it names. The randomised
//! comparison with a reference model is in `entitlement_model.rs`, the error
//! paths in `entitlement_errors.rs`. The worlds, terms and views of what an
//! entitlement says are in `support`.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::Duration;

use accord::proto::v1 as pb;
use futures::{FutureExt, StreamExt};
use pb::LayerOutcome as O;
use prost_types::Timestamp;
use tonic::{Code, Status};

use crate::on_both_backends;
use crate::support::*;

// --- the table ---------------------------------------------------------------------------

/// A question about one pair.
pub struct Q {
    label: String,
    consumer: String,
    service: String,
    as_of: Option<Timestamp>,
    known_at: Option<Timestamp>,
}

pub fn q(label: &str, consumer: &str, service: &str) -> Q {
    Q {
        label: label.into(),
        consumer: consumer.into(),
        service: service.into(),
        as_of: None,
        known_at: None,
    }
}

pub enum Expect {
    /// These terms, from ResolveEntitlement, a batch of the pair and the
    /// explanation alike.
    Terms(View),
    /// NOT_FOUND naming this resource.
    NotFound(String),
    /// ExplainEntitlement lists each of these layers (by agreement or override
    /// name) once, with this outcome; the APPLIED ones are all those applied,
    /// in this order.
    Layers(Vec<(String, O)>),
}

pub struct Ask {
    q: Q,
    expect: Expect,
}

impl Q {
    pub fn valid_at(mut self, seconds: i64) -> Self {
        self.as_of = Some(ts(seconds));
        self
    }

    pub fn valid_at_ts(mut self, t: Timestamp) -> Self {
        self.as_of = Some(t);
        self
    }

    pub fn known_at(mut self, t: Timestamp) -> Self {
        self.known_at = Some(t);
        self
    }

    pub fn terms(self, view: View) -> Ask {
        Ask {
            q: self,
            expect: Expect::Terms(view),
        }
    }

    pub fn not_found(self, name: impl Into<String>) -> Ask {
        Ask {
            q: self,
            expect: Expect::NotFound(name.into()),
        }
    }

    pub fn layers(self, layers: &[(&str, O)]) -> Ask {
        Ask {
            q: self,
            expect: Expect::Layers(layers.iter().map(|(n, o)| (n.to_string(), *o)).collect()),
        }
    }
}

fn layer_label(l: &pb::EntitlementLayer) -> String {
    let s = l.source.as_ref().expect("a layer's source");
    if s.r#override.is_empty() {
        s.agreement.clone()
    } else {
        s.r#override.clone()
    }
}

#[track_caller]
fn check_layers(x: &pb::EntitlementExplanation, expected: &[(String, O)], context: &str) {
    let layers: Vec<(String, O, String)> = x
        .layers
        .iter()
        .map(|l| (layer_label(l), l.outcome(), l.reason.clone()))
        .collect();
    for l in &x.layers {
        assert!(
            !l.reason.is_empty(),
            "{context}: a layer without a reason: {l:?}"
        );
        let is_override = !l.source.as_ref().expect("source").r#override.is_empty();
        assert_eq!(
            l.kind() == pb::LayerKind::Override,
            is_override,
            "{context}: {l:?}"
        );
        if l.kind() != pb::LayerKind::Base {
            assert!(!l.party.is_empty(), "{context}: {l:?} is for no party");
        }
    }
    for (name, outcome) in expected {
        let found: Vec<&(String, O, String)> = layers.iter().filter(|(n, ..)| n == name).collect();
        assert_eq!(
            found.len(),
            1,
            "{context}: {name} listed once in {layers:#?}"
        );
        assert_eq!(
            found[0].1, *outcome,
            "{context}: the outcome of {name} in {layers:#?}"
        );
    }
    let applied: Vec<&String> = layers
        .iter()
        .filter(|(_, o, _)| *o == O::Applied)
        .map(|(n, ..)| n)
        .collect();
    let expected_applied: Vec<&String> = expected
        .iter()
        .filter(|(_, o)| *o == O::Applied)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        applied, expected_applied,
        "{context}: the layers applied, in order"
    );
    assert_eq!(
        x.entitlement.is_some(),
        !applied.is_empty(),
        "{context}: an entitlement exactly when a layer applied"
    );
}

/// Asks the question of ResolveEntitlement, of a batch of one pair and of
/// ExplainEntitlement, and checks all three answer as expected.
async fn check(w: &World, ask: &Ask) {
    let Q {
        label,
        consumer,
        service,
        as_of,
        known_at,
    } = &ask.q;
    let resolved = w.resolve(consumer, service, *as_of, *known_at).await;
    let batch = w
        .batch(&[(consumer.as_str(), service.as_str())], *as_of, *known_at)
        .await
        .unwrap_or_else(|e| panic!("{label}: the batch failed: {e:?}"));
    assert_eq!(batch.len(), 1, "{label}");
    assert_eq!(
        batch[0].pair,
        Some(pb::EntitlementPair {
            consumer: consumer.clone(),
            service: service.clone(),
        }),
        "{label}: the batch names its pair"
    );
    let explained = w.explain(consumer, service, *as_of, *known_at).await;
    use pb::entitlement_result::Result as Item;
    match &ask.expect {
        Expect::Terms(view) => {
            let e =
                resolved.unwrap_or_else(|s| panic!("{label}: expected an entitlement, got {s:?}"));
            assert_eq!(&view_of(&e), view, "{label}: {e:#?}");
            assert_eq!((&e.consumer, &e.service), (consumer, service), "{label}");
            if as_of.is_some() {
                assert_eq!(e.as_of, *as_of, "{label}: as_of is the one asked");
            }
            if known_at.is_some() {
                assert_eq!(e.known_at, *known_at, "{label}: known_at is the one asked");
            }
            assert!(!e.version.is_empty(), "{label}: a version");
            match &batch[0].result {
                Some(Item::Entitlement(b)) => {
                    assert_eq!(&view_of(b), view, "{label}: the batch");
                    assert_eq!(b.version, e.version, "{label}: the batch's version");
                }
                other => panic!("{label}: the batch answered {other:?}"),
            }
            let x = explained.unwrap_or_else(|s| panic!("{label}: explain failed: {s:?}"));
            let xe = x
                .entitlement
                .as_ref()
                .unwrap_or_else(|| panic!("{label}: the explanation has no entitlement: {x:#?}"));
            assert_eq!(&view_of(xe), view, "{label}: the explanation");
            assert_eq!(xe.version, e.version, "{label}: the explanation's version");
            assert_eq!(x.ancestry.first(), Some(consumer), "{label}: ancestry");
            if known_at.is_none() {
                check_provenance(w, &e).await;
            }
        }
        Expect::NotFound(name) => {
            let status = resolved.expect_err(&format!("{label}: expected NOT_FOUND"));
            assert_not_found(&status, name, label);
            match &batch[0].result {
                Some(Item::Error(s)) => {
                    assert_eq!(s.code, Code::NotFound as i32, "{label}: the batch");
                    assert_not_found(&rpc_status(s), name, &format!("{label}: the batch"));
                }
                other => panic!("{label}: the batch answered {other:?}"),
            }
            if name.starts_with("entitlement of ") {
                let x = explained.unwrap_or_else(|s| panic!("{label}: explain failed: {s:?}"));
                assert!(x.entitlement.is_none(), "{label}: {x:#?}");
                assert!(
                    x.layers.iter().all(|l| l.outcome() != O::Applied),
                    "{label}: nothing applied: {x:#?}"
                );
            } else {
                let status = explained.expect_err(&format!("{label}: expected explain to fail"));
                assert_not_found(&status, name, &format!("{label}: explain"));
            }
        }
        Expect::Layers(expected) => {
            let x = explained.unwrap_or_else(|s| panic!("{label}: explain failed: {s:?}"));
            check_layers(&x, expected, label);
            match (&x.entitlement, resolved) {
                (Some(xe), Ok(e)) => {
                    assert_eq!(view_of(xe), view_of(&e), "{label}: explained as resolved");
                    assert_eq!(xe.version, e.version, "{label}");
                }
                (None, Err(s)) => assert_eq!(s.code(), Code::NotFound, "{label}"),
                (x, r) => panic!("{label}: explained {x:?}, resolved {r:?}"),
            }
        }
    }
}

type Build = fn(World, World) -> Pin<Box<dyn Future<Output = Vec<Ask>>>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), {
            fn build(w: World, other: World) -> Pin<Box<dyn Future<Output = Vec<Ask>>>> {
                Box::pin($name(w, other))
            }
            build as Build
        })),*]
    };
}

/// Each case builds its world in a tenant of its own (the second world is a
/// neighbouring tenant, the same for all) and returns its questions.
const CASES: &[(&str, Build)] = cases![
    base_only,
    an_override_on_an_ancestor_applies_to_its_descendants,
    the_nearest_override_wins,
    an_override_on_the_party_reaches_neither_ancestors_nor_siblings,
    overrides_patching_different_fields_both_apply,
    an_expired_override_no_longer_applies,
    an_override_not_yet_effective_does_not_apply,
    an_agreement_terminated_in_the_past,
    an_agreement_terminated_in_the_future,
    known_at_before_an_override_was_recorded,
    no_published_layer_is_not_found,
    names_in_another_tenant_answer_like_missing_ones,
    the_revision_in_force_at_as_of_after_an_update,
    as_of_before_publication_uses_the_first_revision,
    an_agreement_not_yet_effective,
    an_expired_agreement,
    validity_comes_from_the_latest_known_revision,
    an_internal_agreement_for_an_ancestor_unit,
    a_customer_agreement_replaces_one_objective,
    a_customer_agreement_on_another_service_does_not_apply,
    a_customer_agreement_replaces_an_overridden_objective,
    an_override_replaces_support_and_credits,
    consumer_agreements_layer_from_the_farthest_ancestor,
    an_override_adds_an_objective,
    a_deleted_override_is_seen_only_before_its_deletion,
    an_updated_override_is_seen_as_it_was_at_known_at,
    a_reparented_party_keeps_its_old_ancestry_at_known_at,
    a_deleted_party_is_known_before_its_deletion,
    a_party_created_after_known_at_is_not_found,
    a_service_removed_from_a_customer_agreement,
    a_patch_of_an_objective_the_revision_lacks_is_skipped,
    three_generations_layer_in_order,
    the_version_is_stable_across_as_of_and_changes_with_the_terms,
    a_batch_answers_each_pair_on_its_own,
    explain_gives_each_layer_its_outcome,
    of_two_service_level_agreements_in_force_one_is_superseded,
    writes_after_a_cached_answer_are_seen_now,
    a_cached_answer_changes_when_a_validity_window_opens,
    operational_agreements_are_not_layers,
    a_customer_agreement_moved_to_another_consumer,
    an_override_made_on_a_draft_applies_once_it_is_published,
    an_agreement_terminated_before_its_end_is_terminated,
];

async fn resolution_cases(s: TestServer) {
    let other = World::new(&s, "elsewhere").await;
    other
        .publish("sla", other.sla(vec![availability(0.999)]))
        .await;
    let started = std::time::Instant::now();
    let outcomes: Vec<(&str, usize, Result<(), String>)> =
        futures::stream::iter(CASES.iter().enumerate())
            .map(|(i, (name, build))| {
                let (s, other) = (&s, other.clone());
                async move {
                    let w = World::new(s, &format!("case{i}")).await;
                    let run = AssertUnwindSafe(async {
                        let asks = build(w.clone(), other).await;
                        for ask in &asks {
                            check(&w, ask).await;
                        }
                        asks.len()
                    })
                    .catch_unwind()
                    .await;
                    match run {
                        Ok(n) => (*name, n, Ok(())),
                        Err(panic) => {
                            let why = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default();
                            (*name, 0, Err(why))
                        }
                    }
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
    let asked: usize = outcomes.iter().map(|(_, n, _)| n).sum();
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|(name, _, r)| r.as_ref().err().map(|why| format!("{name}: {why}")))
        .collect();
    eprintln!(
        "{} cases, {asked} questions, {} failed, in {:?}",
        CASES.len(),
        failed.len(),
        started.elapsed()
    );
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n\n"));
}

// --- the cases --------------------------------------------------------------------------

fn base_view(sla: &pb::Agreement, target: f64) -> View {
    View::default().with("availability", obj(target, at(sla)))
}

/// Availability `target`, patched by override `o` of `sla`.
fn patched_view(sla: &pb::Agreement, target: f64, o: &pb::Override) -> View {
    View::default().with(
        "availability",
        obj(target, at(sla)).patched("target", via(sla, o)),
    )
}

async fn base_only(w: World, _: World) -> Vec<Ask> {
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let base = base_view(&sla, 0.999);
    vec![
        q("now", &w.bank, &w.payments).terms(base.clone()),
        q("early 2026, before publication", &w.bank, &w.payments)
            .valid_at(JAN_2026 + 10 * DAY)
            .terms(base.clone()),
        q("at the start of validity", &w.bank, &w.payments)
            .valid_at(JAN_2026)
            .terms(base.clone()),
        q("before the validity", &w.bank, &w.payments)
            .valid_at(JAN_2026 - 1)
            .not_found(w.no_entitlement(&w.bank, &w.payments)),
        q("any party", &w.provider, &w.payments).terms(base),
        q("explained", &w.bank, &w.payments).layers(&[(&sla.name, O::Applied)]),
    ]
}

async fn an_override_on_an_ancestor_applies_to_its_descendants(w: World, _: World) -> Vec<Ask> {
    let eu = w.party("bank-eu", Some(&w.bank)).await;
    let shop = w.party("shop", None).await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let gold = w
        .add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.9995))
        .await;
    let patched = patched_view(&sla, 0.9995, &gold);
    vec![
        q("a child of the override's party", &eu, &w.payments).terms(patched.clone()),
        q("the override's party", &w.bank, &w.payments).terms(patched),
        q("an unrelated party", &shop, &w.payments).terms(base_view(&sla, 0.999)),
        q("explained for the child", &eu, &w.payments)
            .layers(&[(&sla.name, O::Applied), (&gold.name, O::Applied)]),
        q("explained for the unrelated party", &shop, &w.payments)
            .layers(&[(&sla.name, O::Applied), (&gold.name, O::NotInAncestry)]),
    ]
}

async fn the_nearest_override_wins(w: World, _: World) -> Vec<Ask> {
    let eu = w.party("bank-eu", Some(&w.bank)).await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let gold = w
        .add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.9995))
        .await;
    let platinum = w
        .add_override(&sla.name, "eu-platinum", target_override(&eu, 0.9999))
        .await;
    vec![
        q("the party's override beats its parent's", &eu, &w.payments)
            .terms(patched_view(&sla, 0.9999, &platinum)),
        q("the parent keeps its own", &w.bank, &w.payments)
            .terms(patched_view(&sla, 0.9995, &gold)),
        q("applied farthest first", &eu, &w.payments).layers(&[
            (&sla.name, O::Applied),
            (&gold.name, O::Applied),
            (&platinum.name, O::Applied),
        ]),
    ]
}

async fn an_override_on_the_party_reaches_neither_ancestors_nor_siblings(
    w: World,
    _: World,
) -> Vec<Ask> {
    let eu = w.party("bank-eu", Some(&w.bank)).await;
    let us = w.party("bank-us", Some(&w.bank)).await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let fast = w
        .add_override(&sla.name, "eu-fast", target_override(&eu, 0.9999))
        .await;
    let base = base_view(&sla, 0.999);
    vec![
        q("the party", &eu, &w.payments).terms(patched_view(&sla, 0.9999, &fast)),
        q("its parent", &w.bank, &w.payments).terms(base.clone()),
        q("its sibling", &us, &w.payments).terms(base),
        q("explained for the parent", &w.bank, &w.payments)
            .layers(&[(&sla.name, O::Applied), (&fast.name, O::NotInAncestry)]),
    ]
}

async fn overrides_patching_different_fields_both_apply(w: World, _: World) -> Vec<Ask> {
    let eu = w.party("bank-eu", Some(&w.bank)).await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let gold = w
        .add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.9995))
        .await;
    let weekly = w
        .add_override(
            &sla.name,
            "eu-weekly",
            pb::Override {
                objective_patches: vec![patch_window("availability", 7)],
                ..ovr(&eu, JAN_2026)
            },
        )
        .await;
    vec![
        q(
            "target from the parent's, window from the party's",
            &eu,
            &w.payments,
        )
        .terms(
            View::default().with(
                "availability",
                obj(0.9995, at(&sla))
                    .window(7)
                    .patched("target", via(&sla, &gold))
                    .patched("window", via(&sla, &weekly)),
            ),
        ),
    ]
}

async fn an_expired_override_no_longer_applies(w: World, _: World) -> Vec<Ask> {
    let r = horizon();
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let gold = w
        .add_override(
            &sla.name,
            "bank-gold",
            pb::Override {
                effective_until: Some(ts(r - 30 * DAY)),
                objective_patches: vec![patch_target("availability", 0.9995)],
                ..ovr(&w.bank, JAN_2026)
            },
        )
        .await;
    let patched = patched_view(&sla, 0.9995, &gold);
    let base = base_view(&sla, 0.999);
    vec![
        q("now", &w.bank, &w.payments).terms(base.clone()),
        q("during its validity", &w.bank, &w.payments)
            .valid_at(r - 31 * DAY)
            .terms(patched.clone()),
        q("at its start", &w.bank, &w.payments)
            .valid_at(JAN_2026)
            .terms(patched),
        q("at its end, which is excluded", &w.bank, &w.payments)
            .valid_at(r - 30 * DAY)
            .terms(base),
        q("explained now", &w.bank, &w.payments)
            .layers(&[(&sla.name, O::Applied), (&gold.name, O::Expired)]),
    ]
}

async fn an_override_not_yet_effective_does_not_apply(w: World, _: World) -> Vec<Ask> {
    let r = horizon();
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let gold = w
        .add_override(
            &sla.name,
            "bank-gold",
            pb::Override {
                objective_patches: vec![patch_target("availability", 0.9995)],
                ..ovr(&w.bank, r + 30 * DAY)
            },
        )
        .await;
    let patched = patched_view(&sla, 0.9995, &gold);
    let base = base_view(&sla, 0.999);
    vec![
        q("now", &w.bank, &w.payments).terms(base.clone()),
        q("a second before it starts", &w.bank, &w.payments)
            .valid_at(r + 30 * DAY - 1)
            .terms(base),
        q("once it starts", &w.bank, &w.payments)
            .valid_at(r + 30 * DAY)
            .terms(patched),
        q("explained now", &w.bank, &w.payments)
            .layers(&[(&sla.name, O::Applied), (&gold.name, O::NotYetEffective)]),
    ]
}

async fn an_agreement_terminated_in_the_past(w: World, _: World) -> Vec<Ask> {
    let r = horizon();
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    w.resolve_now(&w.bank, &w.payments).await;
    let before = mark().await;
    let ended = w.terminate(&sla.name, r - 30 * DAY).await;
    assert_ne!(
        ended.revision_id, sla.revision_id,
        "termination writes a revision"
    );
    let none = w.no_entitlement(&w.bank, &w.payments);
    vec![
        q(
            "before the termination (the first revision)",
            &w.bank,
            &w.payments,
        )
        .valid_at(r - 31 * DAY)
        .terms(base_view(&sla, 0.999)),
        q("at the termination", &w.bank, &w.payments)
            .valid_at(r - 30 * DAY)
            .not_found(none.clone()),
        q("now", &w.bank, &w.payments).not_found(none),
        q("now, as known before the termination", &w.bank, &w.payments)
            .known_at(before)
            .terms(base_view(&sla, 0.999)),
        q("explained now", &w.bank, &w.payments).layers(&[(&sla.name, O::Terminated)]),
        q("explained as known before", &w.bank, &w.payments)
            .known_at(before)
            .layers(&[(&sla.name, O::Applied)]),
    ]
}

async fn an_agreement_terminated_in_the_future(w: World, _: World) -> Vec<Ask> {
    let r = horizon();
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    w.resolve_now(&w.bank, &w.payments).await;
    let ended = w.terminate(&sla.name, r + 10 * DAY).await;
    vec![
        q(
            "now: the termination's revision is in force",
            &w.bank,
            &w.payments,
        )
        .terms(base_view(&ended, 0.999)),
        q("the last second", &w.bank, &w.payments)
            .valid_at(r + 10 * DAY - 1)
            .terms(base_view(&ended, 0.999)),
        q("at the termination", &w.bank, &w.payments)
            .valid_at(r + 10 * DAY)
            .not_found(w.no_entitlement(&w.bank, &w.payments)),
        q(
            "before publication: the first revision",
            &w.bank,
            &w.payments,
        )
        .valid_at(JAN_2026 + 10 * DAY)
        .terms(base_view(&sla, 0.999)),
        q("explained at the termination", &w.bank, &w.payments)
            .valid_at(r + 10 * DAY)
            .layers(&[(&sla.name, O::Terminated)]),
    ]
}

async fn known_at_before_an_override_was_recorded(w: World, _: World) -> Vec<Ask> {
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let before = mark().await;
    let gold = w
        .add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.9995))
        .await;
    let recorded = gold.create_time.expect("create_time");
    let patched = patched_view(&sla, 0.9995, &gold);
    let base = base_view(&sla, 0.999);
    vec![
        q("known before", &w.bank, &w.payments)
            .known_at(before)
            .terms(base.clone()),
        q(
            "known a microsecond before it was recorded",
            &w.bank,
            &w.payments,
        )
        .known_at(just_before(&recorded))
        .terms(base),
        q("known at the instant it was recorded", &w.bank, &w.payments)
            .known_at(recorded)
            .terms(patched.clone()),
        q("now", &w.bank, &w.payments).terms(patched),
    ]
}

async fn no_published_layer_is_not_found(w: World, _: World) -> Vec<Ask> {
    w.draft("sla", w.sla(vec![availability(0.999)])).await;
    w.draft("deal", w.deal(&w.bank, vec![availability(0.9999)]))
        .await;
    let none = w.no_entitlement(&w.bank, &w.payments);
    vec![
        q("drafts resolve nothing", &w.bank, &w.payments).not_found(none),
        q("explained: no layer", &w.bank, &w.payments).layers(&[]),
    ]
}

async fn names_in_another_tenant_answer_like_missing_ones(w: World, other: World) -> Vec<Ask> {
    w.publish("sla", w.sla(vec![availability(0.999)])).await;
    // The neighbour's bank exists and is entitled there.
    other.resolve_now(&other.bank, &other.payments).await;
    let ghost = w.name("parties", "ghost");
    let ghost_there = other.name("parties", "ghost");
    let missing_service = w.name("services", "ghost");
    let shapes = [
        (
            other.bank.clone(),
            w.resolve(&other.bank, &w.payments, None, None).await,
        ),
        (
            ghost_there.clone(),
            w.resolve(&ghost_there, &w.payments, None, None).await,
        ),
        (
            ghost.clone(),
            w.resolve(&ghost, &w.payments, None, None).await,
        ),
        (
            other.payments.clone(),
            w.resolve(&w.bank, &other.payments, None, None).await,
        ),
        (
            missing_service.clone(),
            w.resolve(&w.bank, &missing_service, None, None).await,
        ),
    ]
    .map(|(name, r)| shape(&r.expect_err("NOT_FOUND"), &name));
    for s in &shapes[1..] {
        assert_eq!(s, &shapes[0], "every unknown name answers alike");
    }
    vec![
        q("a party of another tenant", &other.bank, &w.payments).not_found(other.bank.clone()),
        q(
            "a missing party of another tenant",
            &ghost_there,
            &w.payments,
        )
        .not_found(ghost_there.clone()),
        q("a missing party", &ghost, &w.payments).not_found(ghost.clone()),
        q("a service of another tenant", &w.bank, &other.payments)
            .not_found(other.payments.clone()),
        q("a missing service", &w.bank, &missing_service).not_found(missing_service.clone()),
        q("both of another tenant", &other.bank, &other.payments).not_found(other.bank.clone()),
    ]
}

async fn the_revision_in_force_at_as_of_after_an_update(w: World, _: World) -> Vec<Ask> {
    let r = horizon();
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let between = mark().await;
    let v2 = w
        .update(
            &sla.name,
            pb::Agreement {
                objectives: vec![availability(0.9995)],
                ..Default::default()
            },
            &["objectives"],
        )
        .await;
    assert_ne!(v2.revision_id, sla.revision_id);
    let recorded = v2.revision_create_time.expect("revision_create_time");
    let (old, new) = (base_view(&sla, 0.999), base_view(&v2, 0.9995));
    vec![
        q("now", &w.bank, &w.payments).terms(new.clone()),
        q("as of between publication and update", &w.bank, &w.payments)
            .valid_at_ts(between)
            .terms(old.clone()),
        q(
            "as of a microsecond before the update",
            &w.bank,
            &w.payments,
        )
        .valid_at_ts(just_before(&recorded))
        .terms(old.clone()),
        q("as of the update's instant", &w.bank, &w.payments)
            .valid_at_ts(recorded)
            .terms(new.clone()),
        q("in the future", &w.bank, &w.payments)
            .valid_at(r + 100 * DAY)
            .terms(new),
        q("now, as known before the update", &w.bank, &w.payments)
            .known_at(between)
            .terms(old.clone()),
        q(
            "in the future, as known before the update",
            &w.bank,
            &w.payments,
        )
        .valid_at(r + 100 * DAY)
        .known_at(between)
        .terms(old),
    ]
}

async fn as_of_before_publication_uses_the_first_revision(w: World, _: World) -> Vec<Ask> {
    let r = horizon();
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let v2 = w
        .update(
            &sla.name,
            pb::Agreement {
                objectives: vec![availability(0.9995)],
                ..Default::default()
            },
            &["objectives"],
        )
        .await;
    let between = mark().await;
    let v3 = w
        .update(
            &sla.name,
            pb::Agreement {
                objectives: vec![availability(0.9999)],
                ..Default::default()
            },
            &["objectives"],
        )
        .await;
    vec![
        q(
            "before publication: the first, not the latest",
            &w.bank,
            &w.payments,
        )
        .valid_at(JAN_2026 + 10 * DAY)
        .terms(base_view(&sla, 0.999)),
        q("in the future: the latest", &w.bank, &w.payments)
            .valid_at(r + 100 * DAY)
            .terms(base_view(&v3, 0.9999)),
        q(
            "in the future, as known before the third",
            &w.bank,
            &w.payments,
        )
        .valid_at(r + 100 * DAY)
        .known_at(between)
        .terms(base_view(&v2, 0.9995)),
        q(
            "before publication, as known before the third",
            &w.bank,
            &w.payments,
        )
        .valid_at(JAN_2026 + 10 * DAY)
        .known_at(between)
        .terms(base_view(&sla, 0.999)),
    ]
}

async fn an_agreement_not_yet_effective(w: World, _: World) -> Vec<Ask> {
    let r = horizon();
    let sla = w
        .publish(
            "sla",
            pb::Agreement {
                effective_from: Some(ts(r + 30 * DAY)),
                ..w.sla(vec![availability(0.999)])
            },
        )
        .await;
    let none = w.no_entitlement(&w.bank, &w.payments);
    vec![
        q("now", &w.bank, &w.payments).not_found(none.clone()),
        q("a second before", &w.bank, &w.payments)
            .valid_at(r + 30 * DAY - 1)
            .not_found(none),
        q("from its start", &w.bank, &w.payments)
            .valid_at(r + 30 * DAY)
            .terms(base_view(&sla, 0.999)),
        q("explained now", &w.bank, &w.payments).layers(&[(&sla.name, O::NotYetEffective)]),
    ]
}

async fn an_expired_agreement(w: World, _: World) -> Vec<Ask> {
    let r = horizon();
    let sla = w
        .publish(
            "sla",
            pb::Agreement {
                effective_until: Some(ts(r + 10 * DAY)),
                ..w.sla(vec![availability(0.999)])
            },
        )
        .await;
    vec![
        q("now", &w.bank, &w.payments).terms(base_view(&sla, 0.999)),
        q("its last second", &w.bank, &w.payments)
            .valid_at(r + 10 * DAY - 1)
            .terms(base_view(&sla, 0.999)),
        q("at its end", &w.bank, &w.payments)
            .valid_at(r + 10 * DAY)
            .not_found(w.no_entitlement(&w.bank, &w.payments)),
        q("explained after its end", &w.bank, &w.payments)
            .valid_at(r + 20 * DAY)
            .layers(&[(&sla.name, O::Expired)]),
    ]
}

async fn validity_comes_from_the_latest_known_revision(w: World, _: World) -> Vec<Ask> {
    let r = horizon();
    let sla = w
        .publish(
            "sla",
            pb::Agreement {
                effective_until: Some(ts(r + 100 * DAY)),
                ..w.sla(vec![availability(0.999)])
            },
        )
        .await;
    let before = mark().await;
    let shortened = w
        .update(
            &sla.name,
            pb::Agreement {
                effective_until: Some(ts(r + 50 * DAY)),
                ..Default::default()
            },
            &["effective_until"],
        )
        .await;
    vec![
        q("after the new end", &w.bank, &w.payments)
            .valid_at(r + 70 * DAY)
            .not_found(w.no_entitlement(&w.bank, &w.payments)),
        q(
            "after the new end, as known before it was set",
            &w.bank,
            &w.payments,
        )
        .valid_at(r + 70 * DAY)
        .known_at(before)
        .terms(base_view(&sla, 0.999)),
        q("before the new end", &w.bank, &w.payments)
            .valid_at(r + 40 * DAY)
            .terms(base_view(&shortened, 0.999)),
        q("explained after the new end", &w.bank, &w.payments)
            .valid_at(r + 70 * DAY)
            .layers(&[(&sla.name, O::Expired)]),
    ]
}

async fn an_internal_agreement_for_an_ancestor_unit(w: World, _: World) -> Vec<Ask> {
    let ops = w.unit("ops", None).await;
    let eu = w.unit("ops-eu", Some(&ops)).await;
    let lab = w.unit("lab", None).await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let ola = w
        .publish("ops-ola", w.internal(&ops, vec![latency(250.0, 0.95)]))
        .await;
    let both = base_view(&sla, 0.999).with("latency", obj(0.95, at(&ola)).threshold(250.0));
    vec![
        q("a unit under the agreement's", &eu, &w.payments).terms(both.clone()),
        q("the agreement's unit", &ops, &w.payments).terms(both),
        q("another unit", &lab, &w.payments).terms(base_view(&sla, 0.999)),
        q("explained for the unit below", &eu, &w.payments)
            .layers(&[(&sla.name, O::Applied), (&ola.name, O::Applied)]),
        q("explained for another unit", &lab, &w.payments)
            .layers(&[(&sla.name, O::Applied), (&ola.name, O::NotInAncestry)]),
    ]
}

async fn a_customer_agreement_replaces_one_objective(w: World, _: World) -> Vec<Ask> {
    let shop = w.party("shop", None).await;
    let sla = w
        .publish(
            "sla",
            w.sla(vec![availability(0.999), latency(300.0, 0.99)]),
        )
        .await;
    let deal = w
        .publish("deal", w.deal(&w.bank, vec![availability(0.9999)]))
        .await;
    vec![
        q("the customer", &w.bank, &w.payments).terms(
            View::default()
                .with("availability", obj(0.9999, at(&deal)))
                .with("latency", obj(0.99, at(&sla)).threshold(300.0)),
        ),
        q("another customer", &shop, &w.payments)
            .terms(base_view(&sla, 0.999).with("latency", obj(0.99, at(&sla)).threshold(300.0))),
        q("explained", &w.bank, &w.payments)
            .layers(&[(&sla.name, O::Applied), (&deal.name, O::Applied)]),
    ]
}

async fn a_customer_agreement_on_another_service_does_not_apply(w: World, _: World) -> Vec<Ask> {
    let ledger = w.service("ledger").await;
    let shop = w.party("shop", None).await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let deal = w
        .publish(
            "deal",
            pb::Agreement {
                services: vec![ledger.clone()],
                ..w.deal(&w.bank, vec![availability(0.9999)])
            },
        )
        .await;
    vec![
        q("on the base's service", &w.bank, &w.payments).terms(base_view(&sla, 0.999)),
        q("on the deal's service, which has no base", &w.bank, &ledger)
            .terms(base_view(&deal, 0.9999)),
        q("another party on the deal's service", &shop, &ledger)
            .not_found(w.no_entitlement(&shop, &ledger)),
        q("explained on the base's service", &w.bank, &w.payments)
            .layers(&[(&sla.name, O::Applied)]),
    ]
}

async fn a_customer_agreement_replaces_an_overridden_objective(w: World, _: World) -> Vec<Ask> {
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let gold = w
        .add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.9995))
        .await;
    let deal = w
        .publish("deal", w.deal(&w.bank, vec![availability(0.9999)]))
        .await;
    vec![
        q("the deal's objective, unpatched", &w.bank, &w.payments).terms(base_view(&deal, 0.9999)),
        q("explained", &w.bank, &w.payments).layers(&[
            (&sla.name, O::Applied),
            (&gold.name, O::Applied),
            (&deal.name, O::Applied),
        ]),
    ]
}

async fn an_override_replaces_support_and_credits(w: World, _: World) -> Vec<Ask> {
    let shop = w.party("shop", None).await;
    let sla = w
        .publish(
            "sla",
            pb::Agreement {
                support: Some(support(60)),
                credits: Some(credits(50.0)),
                ..w.sla(vec![availability(0.999)])
            },
        )
        .await;
    let gold = w
        .add_override(
            &sla.name,
            "bank-gold",
            pb::Override {
                support: Some(support(15)),
                credits: Some(credits(80.0)),
                ..ovr(&w.bank, JAN_2026)
            },
        )
        .await;
    vec![
        q("the override's party", &w.bank, &w.payments).terms(
            base_view(&sla, 0.999)
                .support(15, via(&sla, &gold))
                .credits(80.0, via(&sla, &gold)),
        ),
        q("another party", &shop, &w.payments).terms(
            base_view(&sla, 0.999)
                .support(60, at(&sla))
                .credits(50.0, at(&sla)),
        ),
    ]
}

async fn consumer_agreements_layer_from_the_farthest_ancestor(w: World, _: World) -> Vec<Ask> {
    let eu = w.party("bank-eu", Some(&w.bank)).await;
    let sla = w
        .publish(
            "sla",
            pb::Agreement {
                clauses: vec![clause("Base terms")],
                exclusions: vec![exclusion("Maintenance")],
                ..w.sla(vec![availability(0.999)])
            },
        )
        .await;
    let group = w
        .publish(
            "group-deal",
            pb::Agreement {
                clauses: vec![clause("Group liability")],
                support: Some(support(30)),
                credits: Some(credits(70.0)),
                ..w.deal(&w.bank, vec![availability(0.9995)])
            },
        )
        .await;
    let local = w
        .publish(
            "local-deal",
            pb::Agreement {
                clauses: vec![clause("Local liability")],
                exclusions: vec![exclusion("Local freeze")],
                support: Some(support(10)),
                ..w.deal(&eu, vec![availability(0.9999)])
            },
        )
        .await;
    vec![
        q("the party: every layer, nearest last", &eu, &w.payments).terms(
            base_view(&local, 0.9999)
                .support(10, at(&local))
                .credits(70.0, at(&group))
                .clause("Base terms", at(&sla))
                .clause("Group liability", at(&group))
                .clause("Local liability", at(&local))
                .exclusion("Maintenance", at(&sla))
                .exclusion("Local freeze", at(&local)),
        ),
        q("the ancestor", &w.bank, &w.payments).terms(
            base_view(&group, 0.9995)
                .support(30, at(&group))
                .credits(70.0, at(&group))
                .clause("Base terms", at(&sla))
                .clause("Group liability", at(&group))
                .exclusion("Maintenance", at(&sla)),
        ),
        q("explained", &eu, &w.payments).layers(&[
            (&sla.name, O::Applied),
            (&group.name, O::Applied),
            (&local.name, O::Applied),
        ]),
    ]
}

async fn an_override_adds_an_objective(w: World, _: World) -> Vec<Ask> {
    let shop = w.party("shop", None).await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let gold = w
        .add_override(
            &sla.name,
            "bank-gold",
            pb::Override {
                added_objectives: vec![ratio("errors", 0.98)],
                ..ovr(&w.bank, JAN_2026)
            },
        )
        .await;
    vec![
        q("the override's party", &w.bank, &w.payments)
            .terms(base_view(&sla, 0.999).with("errors", obj(0.98, via(&sla, &gold)))),
        q("another party", &shop, &w.payments).terms(base_view(&sla, 0.999)),
    ]
}

async fn a_deleted_override_is_seen_only_before_its_deletion(w: World, _: World) -> Vec<Ask> {
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let gold = w
        .add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.9995))
        .await;
    let patched = patched_view(&sla, 0.9995, &gold);
    assert_eq!(view_of(&w.resolve_now(&w.bank, &w.payments).await), patched);
    let before = mark().await;
    w.delete_override(&gold.name).await;
    vec![
        q("now", &w.bank, &w.payments).terms(base_view(&sla, 0.999)),
        q("as known before the deletion", &w.bank, &w.payments)
            .known_at(before)
            .terms(patched),
        q("explained as known before", &w.bank, &w.payments)
            .known_at(before)
            .layers(&[(&sla.name, O::Applied), (&gold.name, O::Applied)]),
    ]
}

async fn an_updated_override_is_seen_as_it_was_at_known_at(w: World, _: World) -> Vec<Ask> {
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let gold = w
        .add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.9995))
        .await;
    let first = w.resolve_now(&w.bank, &w.payments).await;
    let before = mark().await;
    let raised = w
        .update_override(
            &gold.name,
            pb::Override {
                objective_patches: vec![patch_target("availability", 0.9999)],
                ..Default::default()
            },
            &["objective_patches"],
        )
        .await;
    let now = w.resolve_now(&w.bank, &w.payments).await;
    assert_ne!(
        now.version, first.version,
        "the terms changed, so does the version"
    );
    let then = w
        .resolve(&w.bank, &w.payments, None, Some(before))
        .await
        .expect("as known before");
    assert_eq!(
        then.version, first.version,
        "the same terms, the same version"
    );
    vec![
        q("now", &w.bank, &w.payments).terms(patched_view(&sla, 0.9999, &raised)),
        q("as known before the update", &w.bank, &w.payments)
            .known_at(before)
            .terms(patched_view(&sla, 0.9995, &gold)),
    ]
}

async fn a_reparented_party_keeps_its_old_ancestry_at_known_at(w: World, _: World) -> Vec<Ask> {
    let shop = w.party("shop", None).await;
    let dept = w.party("dept", Some(&w.bank)).await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let gold = w
        .add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.9995))
        .await;
    let silver = w
        .add_override(&sla.name, "shop-silver", target_override(&shop, 0.998))
        .await;
    let gold_view = patched_view(&sla, 0.9995, &gold);
    assert_eq!(view_of(&w.resolve_now(&dept, &w.payments).await), gold_view);
    let before = mark().await;
    w.reparent(&dept, Some(&shop)).await;
    let now = w.explain(&dept, &w.payments, None, None).await.unwrap();
    assert_eq!(now.ancestry, vec![dept.clone(), shop.clone()]);
    let then = w
        .explain(&dept, &w.payments, None, Some(before))
        .await
        .unwrap();
    assert_eq!(then.ancestry, vec![dept.clone(), w.bank.clone()]);
    vec![
        q("now, under the new parent", &dept, &w.payments)
            .terms(patched_view(&sla, 0.998, &silver)),
        q("as known before the move", &dept, &w.payments)
            .known_at(before)
            .terms(gold_view),
        q("explained now", &dept, &w.payments).layers(&[
            (&sla.name, O::Applied),
            (&silver.name, O::Applied),
            (&gold.name, O::NotInAncestry),
        ]),
    ]
}

async fn a_deleted_party_is_known_before_its_deletion(w: World, _: World) -> Vec<Ask> {
    let temp = w.party("temp", Some(&w.bank)).await;
    w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let deal = w
        .publish("deal", w.deal(&w.bank, vec![availability(0.9999)]))
        .await;
    w.resolve_now(&temp, &w.payments).await;
    let before = mark().await;
    w.delete_party(&temp).await;
    vec![
        q("now", &temp, &w.payments).not_found(temp.clone()),
        q(
            "as known before the deletion, through its parent",
            &temp,
            &w.payments,
        )
        .known_at(before)
        .terms(base_view(&deal, 0.9999)),
    ]
}

async fn a_party_created_after_known_at_is_not_found(w: World, _: World) -> Vec<Ask> {
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let before = mark().await;
    let late = w.party("late", Some(&w.bank)).await;
    vec![
        q("as known before it existed", &late, &w.payments)
            .known_at(before)
            .not_found(late.clone()),
        q("now", &late, &w.payments).terms(base_view(&sla, 0.999)),
    ]
}

async fn a_service_removed_from_a_customer_agreement(w: World, _: World) -> Vec<Ask> {
    let ledger = w.service("ledger").await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let deal = w
        .publish(
            "deal",
            pb::Agreement {
                services: vec![w.payments.clone(), ledger.clone()],
                ..w.deal(&w.bank, vec![availability(0.9999)])
            },
        )
        .await;
    assert_eq!(
        view_of(&w.resolve_now(&w.bank, &w.payments).await),
        base_view(&deal, 0.9999)
    );
    let before = mark().await;
    let narrowed = w
        .update(
            &deal.name,
            pb::Agreement {
                services: vec![ledger.clone()],
                ..Default::default()
            },
            &["services"],
        )
        .await;
    vec![
        q("now", &w.bank, &w.payments).terms(base_view(&sla, 0.999)),
        q("as of before the change", &w.bank, &w.payments)
            .valid_at_ts(before)
            .terms(base_view(&deal, 0.9999)),
        q("as known before the change", &w.bank, &w.payments)
            .known_at(before)
            .terms(base_view(&deal, 0.9999)),
        q("the service it still covers", &w.bank, &ledger).terms(base_view(&narrowed, 0.9999)),
        q("explained now", &w.bank, &w.payments)
            .layers(&[(&sla.name, O::Applied), (&deal.name, O::ServiceNotCovered)]),
    ]
}

async fn a_patch_of_an_objective_the_revision_lacks_is_skipped(w: World, _: World) -> Vec<Ask> {
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let v2 = w
        .update(
            &sla.name,
            pb::Agreement {
                objectives: vec![availability(0.999), latency(300.0, 0.99)],
                ..Default::default()
            },
            &["objectives"],
        )
        .await;
    let fast = w
        .add_override(
            &sla.name,
            "bank-fast",
            pb::Override {
                objective_patches: vec![patch_threshold("latency", 250.0)],
                ..ovr(&w.bank, JAN_2026)
            },
        )
        .await;
    let early = Some(ts(JAN_2026 + 10 * DAY));
    let x = w.explain(&w.bank, &w.payments, early, None).await.unwrap();
    let layer = x
        .layers
        .iter()
        .find(|l| layer_label(l) == fast.name)
        .expect("the override is listed");
    assert_eq!(layer.outcome(), O::Applied);
    assert!(
        layer.reason.contains("latency"),
        "the reason names the skipped patch: {layer:?}"
    );
    vec![
        q(
            "before publication: the first revision has no latency",
            &w.bank,
            &w.payments,
        )
        .valid_at(JAN_2026 + 10 * DAY)
        .terms(base_view(&sla, 0.999)),
        q("now", &w.bank, &w.payments).terms(
            base_view(&v2, 0.999).with(
                "latency",
                obj(0.99, at(&v2))
                    .threshold(250.0)
                    .patched("threshold", via(&v2, &fast)),
            ),
        ),
    ]
}

async fn three_generations_layer_in_order(w: World, _: World) -> Vec<Ask> {
    let group = w.party("group", None).await;
    let division = w.party("division", Some(&group)).await;
    let team = w.party("team", Some(&division)).await;
    let sla = w
        .publish(
            "sla",
            w.sla(vec![availability(0.999), latency(300.0, 0.99)]),
        )
        .await;
    let g = w
        .add_override(&sla.name, "group-gold", target_override(&group, 0.9995))
        .await;
    let t = w
        .add_override(
            &sla.name,
            "team-weekly",
            pb::Override {
                objective_patches: vec![patch_window("availability", 7)],
                ..ovr(&team, JAN_2026)
            },
        )
        .await;
    let d = w
        .publish(
            "division-deal",
            w.deal(&division, vec![latency(200.0, 0.95)]),
        )
        .await;
    let by_group = obj(0.9995, at(&sla)).patched("target", via(&sla, &g));
    vec![
        q("the grandchild", &team, &w.payments).terms(
            View::default()
                .with(
                    "availability",
                    by_group.clone().window(7).patched("window", via(&sla, &t)),
                )
                .with("latency", obj(0.95, at(&d)).threshold(200.0)),
        ),
        q("the child", &division, &w.payments).terms(
            View::default()
                .with("availability", by_group.clone())
                .with("latency", obj(0.95, at(&d)).threshold(200.0)),
        ),
        q("the root", &group, &w.payments).terms(
            View::default()
                .with("availability", by_group)
                .with("latency", obj(0.99, at(&sla)).threshold(300.0)),
        ),
        q("explained for the grandchild", &team, &w.payments).layers(&[
            (&sla.name, O::Applied),
            (&g.name, O::Applied),
            (&t.name, O::Applied),
            (&d.name, O::Applied),
        ]),
    ]
}

async fn the_version_is_stable_across_as_of_and_changes_with_the_terms(
    w: World,
    _: World,
) -> Vec<Ask> {
    let r = horizon();
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let version = |e: Result<pb::Entitlement, Status>| e.expect("an entitlement").version;
    let early = Some(ts(JAN_2026 + 10 * DAY));
    let late = Some(ts(r + 100 * DAY));
    let first = version(w.resolve(&w.bank, &w.payments, None, None).await);
    assert_eq!(
        version(w.resolve(&w.bank, &w.payments, early, None).await),
        first
    );
    assert_eq!(
        version(w.resolve(&w.bank, &w.payments, late, None).await),
        first
    );
    let shop = w.party("shop", None).await;
    assert_eq!(
        version(w.resolve(&shop, &w.payments, None, None).await),
        first,
        "the same terms for another party"
    );
    let before = mark().await;
    let renamed = w
        .update(
            &sla.name,
            pb::Agreement {
                display_name: "Renamed".into(),
                ..Default::default()
            },
            &["display_name"],
        )
        .await;
    let second = version(w.resolve(&w.bank, &w.payments, None, None).await);
    assert_ne!(second, first, "a new revision is a new provenance");
    let raised = w
        .update(
            &sla.name,
            pb::Agreement {
                objectives: vec![availability(0.9995)],
                ..Default::default()
            },
            &["objectives"],
        )
        .await;
    let third = version(w.resolve(&w.bank, &w.payments, None, None).await);
    assert_ne!(third, first);
    assert_ne!(third, second);
    assert_eq!(
        version(w.resolve(&w.bank, &w.payments, late, None).await),
        third
    );
    assert_eq!(
        version(w.resolve(&w.bank, &w.payments, early, None).await),
        first,
        "before publication the first revision is in force again"
    );
    assert_eq!(
        version(w.resolve(&w.bank, &w.payments, None, Some(before)).await),
        first,
        "as known before the updates"
    );
    vec![
        q("before publication", &w.bank, &w.payments)
            .valid_at(JAN_2026 + 10 * DAY)
            .terms(base_view(&sla, 0.999)),
        q("now", &w.bank, &w.payments).terms(base_view(&raised, 0.9995)),
        q("as known between the updates", &w.bank, &w.payments)
            .known_at(renamed.revision_create_time.expect("revision_create_time"))
            .terms(base_view(&renamed, 0.999)),
    ]
}

async fn a_batch_answers_each_pair_on_its_own(w: World, other: World) -> Vec<Ask> {
    let eu = w.party("bank-eu", Some(&w.bank)).await;
    let ledger = w.service("ledger").await;
    let ghost = w.name("parties", "ghost");
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let gold = w
        .add_override(&sla.name, "eu-gold", target_override(&eu, 0.9995))
        .await;
    let base = base_view(&sla, 0.999);
    let patched = patched_view(&sla, 0.9995, &gold);
    let pairs: Vec<(&str, &str, Result<View, String>)> = vec![
        (w.bank.as_str(), w.payments.as_str(), Ok(base.clone())),
        (ghost.as_str(), w.payments.as_str(), Err(ghost.clone())),
        (
            w.bank.as_str(),
            other.payments.as_str(),
            Err(other.payments.clone()),
        ),
        (
            w.bank.as_str(),
            ledger.as_str(),
            Err(w.no_entitlement(&w.bank, &ledger)),
        ),
        (eu.as_str(), w.payments.as_str(), Ok(patched)),
        (
            other.bank.as_str(),
            other.payments.as_str(),
            Err(other.bank.clone()),
        ),
        (w.bank.as_str(), w.payments.as_str(), Ok(base)),
    ];
    let asked: Vec<(&str, &str)> = pairs.iter().map(|(c, s, _)| (*c, *s)).collect();
    let results = w.batch(&asked, None, None).await.expect("the batch");
    assert_eq!(results.len(), pairs.len(), "one result per pair");
    let mut versions = Vec::new();
    for (i, ((c, s, expected), result)) in pairs.iter().zip(&results).enumerate() {
        let context = format!("pair {i} ({c} on {s})");
        assert_eq!(
            result.pair,
            Some(pb::EntitlementPair {
                consumer: c.to_string(),
                service: s.to_string(),
            }),
            "{context}: in the order asked"
        );
        match (expected, &result.result) {
            (Ok(view), Some(pb::entitlement_result::Result::Entitlement(e))) => {
                assert_eq!(&view_of(e), view, "{context}");
                versions.push(e.version.clone());
            }
            (Err(name), Some(pb::entitlement_result::Result::Error(status))) => {
                assert_eq!(status.code, 5, "{context}: NOT_FOUND");
                assert_not_found(&rpc_status(status), name, &context);
            }
            (expected, got) => panic!("{context}: expected {expected:?}, got {got:?}"),
        }
    }
    assert_eq!(
        versions[0], versions[2],
        "the same pair twice, the same answer"
    );
    // The instants apply to every pair.
    let early = w
        .batch(&asked, Some(ts(JAN_2026 - DAY)), None)
        .await
        .expect("the batch");
    for (i, result) in early.iter().enumerate() {
        match &result.result {
            Some(pb::entitlement_result::Result::Error(status)) => {
                assert_eq!(status.code, 5, "pair {i}")
            }
            other => panic!("pair {i}: nothing is in force then, got {other:?}"),
        }
    }
    vec![]
}

async fn explain_gives_each_layer_its_outcome(w: World, _: World) -> Vec<Ask> {
    let r = horizon();
    let eu = w.party("bank-eu", Some(&w.bank)).await;
    let shop = w.party("shop", None).await;
    let ledger = w.service("ledger").await;
    let old = w.publish("old", w.sla(vec![availability(0.99)])).await;
    let old_gold = w
        .add_override(&old.name, "old-gold", target_override(&w.bank, 0.995))
        .await;
    w.terminate(&old.name, JAN_2026 + 100 * DAY).await;
    let sla = w
        .publish(
            "sla",
            pb::Agreement {
                effective_from: Some(ts(JAN_2026 + 100 * DAY)),
                effective_until: Some(ts(r + 300 * DAY)),
                ..w.sla(vec![availability(0.999)])
            },
        )
        .await;
    let next = w
        .publish(
            "next",
            pb::Agreement {
                effective_from: Some(ts(r + 300 * DAY)),
                ..w.sla(vec![availability(0.9999)])
            },
        )
        .await;
    let target = |t| vec![patch_target("availability", t)];
    let gold = w
        .add_override(
            &sla.name,
            "gold",
            pb::Override {
                objective_patches: target(0.9995),
                ..ovr(&w.bank, JAN_2026)
            },
        )
        .await;
    let shop_ovr = w
        .add_override(
            &sla.name,
            "shop",
            pb::Override {
                objective_patches: target(0.99),
                ..ovr(&shop, JAN_2026)
            },
        )
        .await;
    let past = w
        .add_override(
            &sla.name,
            "past",
            pb::Override {
                objective_patches: target(0.9999),
                effective_until: Some(ts(r - 10 * DAY)),
                ..ovr(&eu, JAN_2026)
            },
        )
        .await;
    let future = w
        .add_override(
            &sla.name,
            "future",
            pb::Override {
                objective_patches: target(0.9999),
                ..ovr(&eu, r + 10 * DAY)
            },
        )
        .await;
    let deal = w
        .publish("deal", w.deal(&w.bank, vec![ratio("errors", 0.98)]))
        .await;
    let shop_deal = w
        .publish("shop-deal", w.deal(&shop, vec![ratio("errors", 0.97)]))
        .await;
    let moved = w
        .publish(
            "moved",
            pb::Agreement {
                services: vec![w.payments.clone(), ledger.clone()],
                ..w.deal(&eu, vec![ratio("moved", 0.9)])
            },
        )
        .await;
    w.update(
        &moved.name,
        pb::Agreement {
            services: vec![ledger],
            ..Default::default()
        },
        &["services"],
    )
    .await;
    let before = mark().await;
    let late = w
        .publish(
            "late",
            pb::Agreement {
                effective_from: Some(ts(r - DAY)),
                ..w.deal(&eu, vec![ratio("late", 0.9)])
            },
        )
        .await;
    let x = w.explain(&eu, &w.payments, None, None).await.unwrap();
    assert_eq!(x.ancestry, vec![eu.clone(), w.bank.clone()]);
    let gold_layer = x
        .layers
        .iter()
        .find(|l| layer_label(l) == gold.name)
        .unwrap();
    assert_eq!(gold_layer.party, w.bank);
    assert_eq!(gold_layer.source.as_ref().unwrap().agreement, sla.name);
    assert_eq!(
        gold_layer.source.as_ref().unwrap().revision_id,
        sla.revision_id
    );
    let then = w
        .explain(&eu, &w.payments, None, Some(before))
        .await
        .unwrap();
    let unrecorded = then
        .layers
        .iter()
        .find(|l| layer_label(l) == late.name)
        .unwrap();
    assert_eq!(
        unrecorded.source.as_ref().unwrap().revision_id,
        "",
        "no revision was recorded"
    );
    assert_eq!(unrecorded.party, eu);
    vec![
        q("now", &eu, &w.payments).layers(&[
            (&sla.name, O::Applied),
            (&gold.name, O::Applied),
            (&deal.name, O::Applied),
            (&late.name, O::Applied),
            (&old.name, O::Terminated),
            (&next.name, O::NotYetEffective),
            (&old_gold.name, O::BaseNotApplied),
            (&shop_ovr.name, O::NotInAncestry),
            (&past.name, O::Expired),
            (&future.name, O::NotYetEffective),
            (&shop_deal.name, O::NotInAncestry),
            (&moved.name, O::ServiceNotCovered),
        ]),
        q("as known before the last deal", &eu, &w.payments)
            .known_at(before)
            .layers(&[
                (&sla.name, O::Applied),
                (&gold.name, O::Applied),
                (&deal.name, O::Applied),
                (&late.name, O::NotRecorded),
                (&moved.name, O::ServiceNotCovered),
            ]),
        q("when the next base is in force", &eu, &w.payments)
            .valid_at(r + 300 * DAY)
            .layers(&[
                (&next.name, O::Applied),
                (&deal.name, O::Applied),
                (&late.name, O::Applied),
                (&sla.name, O::Expired),
                (&gold.name, O::BaseNotApplied),
                (&future.name, O::BaseNotApplied),
                (&moved.name, O::ServiceNotCovered),
            ]),
        q("when the old base was in force", &eu, &w.payments)
            .valid_at(JAN_2026 + 50 * DAY)
            .layers(&[
                (&old.name, O::Applied),
                (&old_gold.name, O::Applied),
                (&deal.name, O::Applied),
                (&moved.name, O::Applied),
                (&sla.name, O::NotYetEffective),
                (&gold.name, O::BaseNotApplied),
                (&late.name, O::NotYetEffective),
            ]),
    ]
}

async fn of_two_service_level_agreements_in_force_one_is_superseded(
    w: World,
    _: World,
) -> Vec<Ask> {
    let ledger = w.service("ledger").await;
    let a = w.publish("a", w.sla(vec![availability(0.999)])).await;
    // `a` moves to the ledger, which lets `b` take the payments; before
    // either was published, both first revisions cover the payments.
    let a2 = w
        .update(
            &a.name,
            pb::Agreement {
                services: vec![ledger.clone()],
                ..Default::default()
            },
            &["services"],
        )
        .await;
    let b = w
        .publish(
            "b",
            pb::Agreement {
                effective_from: Some(ts(JAN_2026 + 5 * DAY)),
                ..w.sla(vec![availability(0.9995)])
            },
        )
        .await;
    let early = Some(ts(JAN_2026 + 10 * DAY));
    let x = w.explain(&w.bank, &w.payments, early, None).await.unwrap();
    let outcomes: BTreeMap<String, O> = x
        .layers
        .iter()
        .map(|l| (layer_label(l), l.outcome()))
        .collect();
    let (oa, ob) = (outcomes[&a.name], outcomes[&b.name]);
    assert!(
        matches!(
            (oa, ob),
            (O::Applied, O::Superseded) | (O::Superseded, O::Applied)
        ),
        "one base applies, the other is superseded: {:#?}",
        x.layers
    );
    let winner = if oa == O::Applied { &a } else { &b };
    let e = x.entitlement.expect("an entitlement");
    assert_eq!(
        e.objectives[0].provenance.as_ref().unwrap().agreement,
        winner.name,
        "the terms are the applied base's"
    );
    vec![
        q("now", &w.bank, &w.payments).terms(base_view(&b, 0.9995)),
        q("now, on the ledger", &w.bank, &ledger).terms(base_view(&a2, 0.999)),
        q("explained now", &w.bank, &w.payments)
            .layers(&[(&b.name, O::Applied), (&a.name, O::ServiceNotCovered)]),
    ]
}

async fn writes_after_a_cached_answer_are_seen_now(w: World, _: World) -> Vec<Ask> {
    let none = w.no_entitlement(&w.bank, &w.payments);
    let answer = w.resolve(&w.bank, &w.payments, None, None).await;
    assert_not_found(
        &answer.expect_err("nothing yet"),
        &none,
        "before publication",
    );
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    assert_eq!(
        view_of(&w.resolve_now(&w.bank, &w.payments).await),
        base_view(&sla, 0.999)
    );
    let gold = w
        .add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.9995))
        .await;
    let patched = patched_view(&sla, 0.9995, &gold);
    assert_eq!(view_of(&w.resolve_now(&w.bank, &w.payments).await), patched);
    let ghost = w.name("parties", "newcomer");
    let answer = w.resolve(&ghost, &w.payments, None, None).await;
    assert_not_found(
        &answer.expect_err("no such party yet"),
        &ghost,
        "before creation",
    );
    let newcomer = w.party("newcomer", Some(&w.bank)).await;
    let ledger = w.name("services", "ledger");
    let answer = w.resolve(&w.bank, &ledger, None, None).await;
    assert_not_found(
        &answer.expect_err("no such service yet"),
        &ledger,
        "before creation",
    );
    w.service("ledger").await;
    vec![
        q("now", &w.bank, &w.payments).terms(patched.clone()),
        q(
            "a party created after its NOT_FOUND",
            &newcomer,
            &w.payments,
        )
        .terms(patched),
        q("a service created after its NOT_FOUND", &w.bank, &ledger)
            .not_found(w.no_entitlement(&w.bank, &ledger)),
    ]
}

async fn a_cached_answer_changes_when_a_validity_window_opens(w: World, _: World) -> Vec<Ask> {
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let opens = from_nanos(nanos(&now_ts()) + 1_000_000_000);
    let gold = w
        .add_override(
            &sla.name,
            "bank-gold",
            pb::Override {
                effective_from: Some(opens),
                objective_patches: vec![patch_target("availability", 0.9995)],
                ..ovr(&w.bank, JAN_2026)
            },
        )
        .await;
    assert_eq!(
        view_of(&w.resolve_now(&w.bank, &w.payments).await),
        base_view(&sla, 0.999),
        "not yet"
    );
    let wait = nanos(&opens) - nanos(&now_ts()) + 150_000_000;
    tokio::time::sleep(Duration::from_nanos(wait.max(0) as u64)).await;
    let patched = patched_view(&sla, 0.9995, &gold);
    assert_eq!(
        view_of(&w.resolve_now(&w.bank, &w.payments).await),
        patched,
        "the override's validity began meanwhile, with nothing written"
    );
    vec![q("now", &w.bank, &w.payments).terms(patched)]
}

async fn operational_agreements_are_not_layers(w: World, _: World) -> Vec<Ask> {
    let ledger = w.service("ledger").await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let operational = |service: &str| pb::Agreement {
        kind: pb::AgreementKind::Operational.into(),
        services: vec![service.to_string()],
        ..w.deal(&w.bank, vec![availability(0.9)])
    };
    let ola = w.publish("ola", operational(&w.payments)).await;
    w.publish("ledger-ola", operational(&ledger)).await;
    let x = w.explain(&w.bank, &w.payments, None, None).await.unwrap();
    assert!(
        x.layers
            .iter()
            .all(|l| l.source.as_ref().unwrap().agreement != ola.name),
        "an OPERATIONAL agreement is not considered: {x:#?}"
    );
    vec![
        q("the base alone", &w.bank, &w.payments).terms(base_view(&sla, 0.999)),
        q(
            "an OPERATIONAL agreement alone is no entitlement",
            &w.bank,
            &ledger,
        )
        .not_found(w.no_entitlement(&w.bank, &ledger)),
    ]
}

async fn a_customer_agreement_moved_to_another_consumer(w: World, _: World) -> Vec<Ask> {
    let shop = w.party("shop", None).await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let deal = w
        .publish("deal", w.deal(&w.bank, vec![availability(0.9999)]))
        .await;
    w.resolve_now(&shop, &w.payments).await;
    let before = mark().await;
    let moved = w
        .update(
            &deal.name,
            pb::Agreement {
                consumer: shop.clone(),
                ..Default::default()
            },
            &["consumer"],
        )
        .await;
    vec![
        q("the new consumer", &shop, &w.payments).terms(base_view(&moved, 0.9999)),
        q("the old consumer", &w.bank, &w.payments).terms(base_view(&sla, 0.999)),
        q(
            "the old consumer, as of before the move",
            &w.bank,
            &w.payments,
        )
        .valid_at_ts(before)
        .terms(base_view(&deal, 0.9999)),
        q(
            "the new consumer, as of before the move",
            &shop,
            &w.payments,
        )
        .valid_at_ts(before)
        .terms(base_view(&sla, 0.999)),
        q(
            "the old consumer, as known before the move",
            &w.bank,
            &w.payments,
        )
        .known_at(before)
        .terms(base_view(&deal, 0.9999)),
        q("the old consumer, before publication", &w.bank, &w.payments)
            .valid_at(JAN_2026 + 10 * DAY)
            .terms(base_view(&deal, 0.9999)),
        q("explained for the old consumer", &w.bank, &w.payments)
            .layers(&[(&sla.name, O::Applied), (&deal.name, O::NotInAncestry)]),
    ]
}

async fn an_override_made_on_a_draft_applies_once_it_is_published(w: World, _: World) -> Vec<Ask> {
    let draft = w.draft("sla", w.sla(vec![availability(0.999)])).await;
    let gold = w
        .add_override(&draft.name, "bank-gold", target_override(&w.bank, 0.9995))
        .await;
    let before = mark().await;
    let sla = w.try_publish(&draft.name).await.expect("publish");
    let patched = patched_view(&sla, 0.9995, &gold);
    vec![
        q("now", &w.bank, &w.payments).terms(patched.clone()),
        q("before publication", &w.bank, &w.payments)
            .valid_at(JAN_2026 + 10 * DAY)
            .terms(patched),
        q("as known before publication", &w.bank, &w.payments)
            .known_at(before)
            .not_found(w.no_entitlement(&w.bank, &w.payments)),
        q(
            "explained as known before publication",
            &w.bank,
            &w.payments,
        )
        .known_at(before)
        .layers(&[(&sla.name, O::NotRecorded)]),
    ]
}

async fn an_agreement_terminated_before_its_end_is_terminated(w: World, _: World) -> Vec<Ask> {
    let r = horizon();
    let sla = w
        .publish(
            "sla",
            pb::Agreement {
                effective_until: Some(ts(r + 10 * DAY)),
                ..w.sla(vec![availability(0.999)])
            },
        )
        .await;
    let ended = w.terminate(&sla.name, r + 5 * DAY).await;
    assert_eq!(ended.state(), pb::AgreementState::Terminated);
    vec![
        q("before the termination", &w.bank, &w.payments)
            .valid_at(r + 4 * DAY)
            .terms(base_view(&ended, 0.999)),
        q("between the termination and the end", &w.bank, &w.payments)
            .valid_at(r + 7 * DAY)
            .not_found(w.no_entitlement(&w.bank, &w.payments)),
        q(
            "explained between the termination and the end",
            &w.bank,
            &w.payments,
        )
        .valid_at(r + 7 * DAY)
        .layers(&[(&sla.name, O::Terminated)]),
    ]
}

// --- tests outside the table -----------------------------------------------------------

/// Every value of several entitlements names a layer that holds it.
async fn provenance_names_the_layers_that_hold_each_value(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let eu = w.party("bank-eu", Some(&w.bank)).await;
    let shop = w.party("shop", None).await;
    let sla = w
        .publish(
            "sla",
            pb::Agreement {
                support: Some(support(60)),
                credits: Some(credits(50.0)),
                clauses: vec![clause("Base terms")],
                exclusions: vec![exclusion("Maintenance")],
                ..w.sla(vec![availability(0.999), latency(300.0, 0.99)])
            },
        )
        .await;
    w.update(
        &sla.name,
        pb::Agreement {
            objectives: vec![
                availability(0.9991),
                latency(300.0, 0.99),
                ratio("errors", 0.97),
            ],
            ..Default::default()
        },
        &["objectives"],
    )
    .await;
    w.add_override(
        &sla.name,
        "bank-gold",
        pb::Override {
            objective_patches: vec![
                pb::ObjectivePatch {
                    window: Some(rolling(7)),
                    ..patch_target("availability", 0.9995)
                },
                patch_threshold("latency", 250.0),
            ],
            added_objectives: vec![ratio("durability", 0.99999)],
            credits: Some(credits(80.0)),
            ..ovr(&w.bank, JAN_2026)
        },
    )
    .await;
    w.add_override(
        &sla.name,
        "eu-fast",
        pb::Override {
            objective_patches: vec![patch_threshold("latency", 200.0)],
            support: Some(support(15)),
            ..ovr(&eu, JAN_2026)
        },
    )
    .await;
    w.publish(
        "group-deal",
        pb::Agreement {
            clauses: vec![clause("Group liability")],
            exclusions: vec![exclusion("Group freeze")],
            ..w.deal(&w.bank, vec![ratio("errors", 0.99)])
        },
    )
    .await;
    w.publish(
        "local-deal",
        pb::Agreement {
            support: Some(support(5)),
            clauses: vec![clause("Local liability")],
            ..w.deal(&eu, vec![ratio("local", 0.95)])
        },
    )
    .await;
    let mut checked = 0;
    for consumer in [&eu, &w.bank, &shop] {
        for as_of in [None, Some(ts(JAN_2026 + 10 * DAY))] {
            let e = w
                .resolve(consumer, &w.payments, as_of, None)
                .await
                .expect("an entitlement");
            check_provenance(&w, &e).await;
            checked += e.objectives.len() + e.exclusions.len() + e.clauses.len();
        }
    }
    // The richest one has values from every kind of layer.
    let e = w.resolve_now(&eu, &w.payments).await;
    let view = view_of(&e);
    assert_eq!(view.objectives.len(), 5, "{view:#?}");
    assert_eq!(
        view.objectives["latency"].patched.len(),
        1,
        "the nearest threshold patch"
    );
    assert_eq!(view.objectives["latency"].threshold, Some(200.0));
    assert_eq!(
        view.objectives["availability"].patched.len(),
        2,
        "target and window"
    );
    assert!(view.support.as_ref().unwrap().1.contains("local-deal"));
    assert!(view.credits.as_ref().unwrap().1.contains("bank-gold"));
    assert_eq!(view.clauses.len(), 3);
    assert_eq!(view.exclusions.len(), 2);
    assert!(checked > 20, "{checked} values checked");
}

/// ExplainEntitlement lists "every layer considered"; the proto says
/// NOT_RECORDED is for an agreement not yet published "or the override not
/// yet recorded, at known_at", so an override recorded after known_at is
/// listed with that outcome, as an agreement published after it is.
async fn explain_lists_an_override_recorded_after_known_at_as_not_recorded(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let sla = w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let before = mark().await;
    let gold = w
        .add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.9995))
        .await;
    let deal = w
        .publish("deal", w.deal(&w.bank, vec![ratio("errors", 0.98)]))
        .await;
    let x = w
        .explain(&w.bank, &w.payments, None, Some(before))
        .await
        .expect("explain");
    let listed: Vec<(String, O)> = x
        .layers
        .iter()
        .map(|l| (layer_label(l), l.outcome()))
        .collect();
    assert!(
        listed.contains(&(deal.name.clone(), O::NotRecorded)),
        "the agreement published after known_at: {listed:#?}"
    );
    assert!(
        listed.contains(&(gold.name.clone(), O::NotRecorded)),
        "the override recorded after known_at is listed as NOT_RECORDED: {listed:#?}"
    );
}

/// "A consumer or service that does not exist (in this tenant, or as known at
/// `known_at`) is NOT_FOUND": a service created after known_at is missing at
/// known_at, as a party created after it is, and the answer names it.
async fn a_service_created_after_known_at_is_not_found_by_name(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let before = mark().await;
    let ledger = w.service("ledger").await;
    let late = w.party("late", None).await;
    let party_answer = w
        .resolve(&late, &w.payments, None, Some(before))
        .await
        .expect_err("the party did not exist");
    assert_not_found(&party_answer, &late, "a party created after known_at");
    let service_answer = w
        .resolve(&w.bank, &ledger, None, Some(before))
        .await
        .expect_err("the service did not exist");
    assert_not_found(&service_answer, &ledger, "a service created after known_at");
}

on_both_backends!(
    resolution_cases,
    provenance_names_the_layers_that_hold_each_value,
    explain_lists_an_override_recorded_after_known_at_as_not_recorded,
    a_service_created_after_known_at_is_not_found_by_name,
);
