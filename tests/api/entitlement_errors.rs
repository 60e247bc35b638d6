//! The error paths of EntitlementService: codes and details (BadRequest field
//! violations, ResourceInfo and ErrorInfo), for single calls, explanations
//! and each pair of a batch.

use accord::proto::v1 as pb;
use prost_types::Timestamp;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::on_both_backends;
use crate::support::*;

/// The fields an INVALID_ARGUMENT's BadRequest names, in order.
#[track_caller]
fn violations<T: std::fmt::Debug>(result: Result<T, Status>) -> Vec<String> {
    let status = result.expect_err("expected INVALID_ARGUMENT");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_reason(&status, "INVALID_ARGUMENT");
    let bad = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    for v in &bad.field_violations {
        assert!(!v.description.is_empty(), "{v:?} says why");
    }
    bad.field_violations.into_iter().map(|v| v.field).collect()
}

async fn malformed_names_are_invalid_arguments(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let mut api = w.entitlements();
    let (bank, payments) = (w.bank.as_str(), w.payments.as_str());
    for (consumer, service, fields) in [
        ("bank", payments, vec!["consumer"]),
        ("", payments, vec!["consumer"]),
        ("tenants/acme/parties/", payments, vec!["consumer"]),
        ("tenants/acme/parties/Bank", payments, vec!["consumer"]),
        ("tenants/acme/services/payments", payments, vec!["consumer"]),
        (
            "tenants/acme/parties/bank/extra",
            payments,
            vec!["consumer"],
        ),
        (bank, "payments", vec!["service"]),
        (bank, "", vec!["service"]),
        (bank, "tenants/acme/parties/bank", vec!["service"]),
        ("bank", "payments", vec!["consumer", "service"]),
    ] {
        let context = format!("consumer {consumer:?}, service {service:?}");
        assert_eq!(
            violations(
                api.resolve_entitlement(w.resolve_request(consumer, service))
                    .await
            ),
            fields,
            "resolve: {context}"
        );
        assert_eq!(
            violations(
                api.explain_entitlement(w.explain_request(consumer, service))
                    .await
            ),
            fields,
            "explain: {context}"
        );
    }
    for parent in ["", "acme", "tenants/", "tenants/acme/parties/bank"] {
        let request = pb::ResolveEntitlementRequest {
            parent: parent.into(),
            ..w.resolve_request(bank, payments)
        };
        assert_eq!(
            violations(api.resolve_entitlement(request).await),
            ["parent"],
            "parent {parent:?}"
        );
    }
    // In a batch, malformed names refuse the whole request, each named by
    // its pair's index.
    let bad_batch = w.batch_request(&[
        (bank, payments),
        (bank, "payments"),
        ("bank", payments),
        ("x", "y"),
    ]);
    assert_eq!(
        violations(api.batch_resolve_entitlements(bad_batch).await),
        [
            "pairs[1].service",
            "pairs[2].consumer",
            "pairs[3].consumer",
            "pairs[3].service",
        ]
    );
}

async fn instants_are_checked(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let mut api = w.entitlements();
    let (bank, payments) = (w.bank.as_str(), w.payments.as_str());
    let future = Timestamp {
        seconds: now_ts().seconds + 60,
        nanos: 0,
    };
    let resolve = |as_of, known_at| pb::ResolveEntitlementRequest {
        as_of,
        known_at,
        ..w.resolve_request(bank, payments)
    };
    // The registry cannot know what it has not recorded yet.
    assert_eq!(
        violations(api.resolve_entitlement(resolve(None, Some(future))).await),
        ["known_at"]
    );
    assert_eq!(
        violations(
            api.explain_entitlement(pb::ExplainEntitlementRequest {
                known_at: Some(future),
                ..w.explain_request(bank, payments)
            })
            .await
        ),
        ["known_at"]
    );
    assert_eq!(
        violations(
            api.batch_resolve_entitlements(pb::BatchResolveEntitlementsRequest {
                known_at: Some(future),
                ..w.batch_request(&[(bank, payments)])
            })
            .await
        ),
        ["known_at"]
    );
    // Valid time may be in the future, and known_at may be now.
    api.resolve_entitlement(resolve(Some(future), Some(now_ts())))
        .await
        .expect("as_of in the future, known_at now");
    // Timestamps out of range.
    let bad_nanos = Timestamp {
        seconds: JAN_2026,
        nanos: 1_500_000_000,
    };
    let negative_nanos = Timestamp {
        seconds: JAN_2026,
        nanos: -1,
    };
    assert_eq!(
        violations(
            api.resolve_entitlement(resolve(Some(bad_nanos), None))
                .await
        ),
        ["as_of"]
    );
    assert_eq!(
        violations(
            api.resolve_entitlement(resolve(None, Some(negative_nanos)))
                .await
        ),
        ["known_at"]
    );
    assert_eq!(
        violations(
            api.resolve_entitlement(resolve(Some(bad_nanos), Some(negative_nanos)))
                .await
        ),
        ["as_of", "known_at"]
    );
    assert_eq!(
        violations(
            api.explain_entitlement(pb::ExplainEntitlementRequest {
                as_of: Some(bad_nanos),
                ..w.explain_request(bank, payments)
            })
            .await
        ),
        ["as_of"]
    );
}

async fn batches_hold_one_to_a_thousand_pairs(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let mut api = w.entitlements();
    let ghost = w.name("parties", "ghost");
    assert_eq!(
        violations(api.batch_resolve_entitlements(w.batch_request(&[])).await),
        ["pairs"]
    );
    let mut pairs = vec![(ghost.as_str(), w.payments.as_str()); 1001];
    assert_eq!(
        violations(
            api.batch_resolve_entitlements(w.batch_request(&pairs))
                .await
        ),
        ["pairs"]
    );
    pairs.pop();
    pairs[500] = (w.bank.as_str(), w.payments.as_str());
    let results = api
        .batch_resolve_entitlements(w.batch_request(&pairs))
        .await
        .expect("1,000 pairs")
        .into_inner()
        .results;
    assert_eq!(results.len(), 1000);
    for (i, r) in results.iter().enumerate() {
        match (&r.result, i) {
            (Some(pb::entitlement_result::Result::Entitlement(e)), 500) => {
                assert_eq!(e.consumer, w.bank)
            }
            (Some(pb::entitlement_result::Result::Error(status)), _) if i != 500 => {
                assert_not_found(&rpc_status(status), &ghost, &format!("pair {i}"))
            }
            (other, _) => panic!("pair {i}: {other:?}"),
        }
    }
}

async fn not_found_names_what_is_missing(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let ledger = w.service("ledger").await;
    w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let ghost = w.name("parties", "ghost");
    let nowhere = w.name("services", "nowhere");
    for (consumer, service, missing) in [
        (ghost.as_str(), w.payments.as_str(), ghost.clone()),
        (w.bank.as_str(), nowhere.as_str(), nowhere.clone()),
        // Both missing: the consumer is named.
        (ghost.as_str(), nowhere.as_str(), ghost.clone()),
        (
            w.bank.as_str(),
            ledger.as_str(),
            format!("entitlement of {} on {ledger}", w.bank),
        ),
    ] {
        let context = format!("{consumer} on {service}");
        let status = w
            .resolve(consumer, service, None, None)
            .await
            .expect_err("NOT_FOUND");
        assert_not_found(&status, &missing, &context);
        let at = Some(ts(JAN_2026 + DAY));
        let status = w
            .resolve(consumer, service, at, Some(now_ts()))
            .await
            .expect_err("NOT_FOUND");
        assert_not_found(&status, &missing, &format!("{context}, at given instants"));
        let explained = w.explain(consumer, service, at, None).await;
        if missing.starts_with("entitlement of ") {
            // Explained, with nothing applied and no entitlement.
            let x = explained.expect("an explanation without entitlement");
            assert!(x.entitlement.is_none(), "{x:#?}");
            assert_eq!(x.consumer, consumer);
            assert_eq!(x.service, service);
            assert_eq!(x.as_of, at, "the as_of asked");
            assert_eq!(x.ancestry, vec![consumer.to_string()]);
        } else {
            assert_not_found(
                &explained.expect_err("NOT_FOUND"),
                &missing,
                &format!("{context}: explain"),
            );
        }
    }
}

async fn batch_errors_carry_what_a_single_call_fails_with(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let other = World::new(&s, "globex").await;
    let ledger = w.service("ledger").await;
    w.publish("sla", w.sla(vec![availability(0.999)])).await;
    let ghost = w.name("parties", "ghost");
    let pairs = [
        (ghost.as_str(), w.payments.as_str()),
        (w.bank.as_str(), ledger.as_str()),
        (other.bank.as_str(), w.payments.as_str()),
        (w.bank.as_str(), other.payments.as_str()),
        (w.bank.as_str(), w.payments.as_str()),
    ];
    let at = Some(ts(JAN_2026 + 10 * DAY));
    let results = w.batch(&pairs, at, None).await.expect("the batch");
    assert_eq!(results.len(), pairs.len());
    for ((consumer, service), result) in pairs.iter().zip(&results) {
        let single = w.resolve(consumer, service, at, None).await;
        let context = format!("{consumer} on {service}");
        match (&result.result, single) {
            (Some(pb::entitlement_result::Result::Error(item)), Err(status)) => {
                let item = rpc_status(item);
                assert_eq!(item.code(), status.code(), "{context}");
                assert_eq!(item.message(), status.message(), "{context}");
                assert!(item.get_details_resource_info().is_some(), "{context}");
                // The same google.rpc.Status, details and all.
                let decode = |s: &Status| {
                    <tonic_types::Status as prost::Message>::decode(s.details())
                        .expect("google.rpc.Status details")
                };
                assert_eq!(decode(&item), decode(&status), "{context}");
            }
            (Some(pb::entitlement_result::Result::Entitlement(e)), Ok(single)) => {
                assert_eq!(view_of(e), view_of(&single), "{context}");
                assert_eq!(e.version, single.version, "{context}");
                assert_eq!(e.as_of, at, "{context}: the batch's as_of");
            }
            (item, single) => {
                panic!("{context}: the batch said {item:?}, a single call {single:?}")
            }
        }
    }
}

async fn other_tenants_are_out_of_reach(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let other = World::new(&s, "globex").await;
    other
        .publish("sla", other.sla(vec![availability(0.999)]))
        .await;
    let mut api = w.entitlements();
    // Acme's key asking about Globex, and about a tenant that does not exist:
    // the same refusal.
    for tenant in [other.tenant.as_str(), "tenants/nosuch"] {
        let status = api
            .resolve_entitlement(pb::ResolveEntitlementRequest {
                parent: tenant.into(),
                ..w.resolve_request(&other.bank, &other.payments)
            })
            .await
            .expect_err("another tenant");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{tenant}: {status:?}"
        );
        assert_reason(&status, "PERMISSION_DENIED");
        let status = api
            .explain_entitlement(pb::ExplainEntitlementRequest {
                parent: tenant.into(),
                ..w.explain_request(&other.bank, &other.payments)
            })
            .await
            .expect_err("another tenant");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{tenant}: {status:?}"
        );
        let status = api
            .batch_resolve_entitlements(pb::BatchResolveEntitlementsRequest {
                parent: tenant.into(),
                ..w.batch_request(&[(other.bank.as_str(), other.payments.as_str())])
            })
            .await
            .expect_err("another tenant");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{tenant}: {status:?}"
        );
    }
    // Globex's own key gets its entitlement.
    other.resolve_now(&other.bank, &other.payments).await;
}

/// A malformed name is the caller's bug whatever the other name of its pair
/// says: INVALID_ARGUMENT, in a single call, and in a batch, where "malformed
/// names refuse the whole request". Beside a name of another tenant (which
/// alone is NOT_FOUND), the malformed one must still be reported.
async fn a_malformed_name_beside_another_tenants_name_is_invalid(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut api = w.entitlements();
    let foreign = "tenants/other/parties/x";
    // The other way round is refused as it should be.
    assert_eq!(
        violations(
            api.resolve_entitlement(w.resolve_request("x", "tenants/other/services/y"))
                .await
        ),
        ["consumer"]
    );
    let single = api
        .resolve_entitlement(w.resolve_request(foreign, "payments"))
        .await;
    let batch = api
        .batch_resolve_entitlements(w.batch_request(&[
            (w.bank.as_str(), w.payments.as_str()),
            (foreign, "payments"),
        ]))
        .await;
    let answers = format!("a single call: {single:?}\na batch: {batch:?}");
    assert_eq!(
        single.as_ref().err().map(|s| s.code()),
        Some(Code::InvalidArgument),
        "{answers}"
    );
    assert_eq!(
        batch.as_ref().err().map(|s| s.code()),
        Some(Code::InvalidArgument),
        "{answers}"
    );
    assert_eq!(violations(single), ["service"]);
    assert_eq!(violations(batch), ["pairs[1].service"]);
}

on_both_backends!(
    a_malformed_name_beside_another_tenants_name_is_invalid,
    malformed_names_are_invalid_arguments,
    instants_are_checked,
    batches_hold_one_to_a_thousand_pairs,
    not_found_names_what_is_missing,
    batch_errors_carry_what_a_single_call_fails_with,
    other_tenants_are_out_of_reach,
);
