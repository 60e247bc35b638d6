use accord::proto::v1 as pb;
use prost_types::FieldMask;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

async fn overrides_round_trip(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let sla = w.draft("sla", w.standard_sla()).await;
    let mut api = w.agreements();
    let created = w
        .try_add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.9999))
        .await
        .unwrap();
    assert_eq!(
        created.name,
        "tenants/acme/agreements/sla/overrides/bank-gold"
    );
    assert_eq!(created.objective_patches[0].target, Some(0.9999));

    let got = api
        .get_override(pb::GetOverrideRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);

    let updated = api
        .update_override(pb::UpdateOverrideRequest {
            r#override: Some(pb::Override {
                name: created.name.clone(),
                etag: created.etag.clone(),
                effective_until: Some(ts(JAN_2026 + 90 * DAY)),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["effective_until".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.effective_until, Some(ts(JAN_2026 + 90 * DAY)));
    assert_eq!(updated.objective_patches, created.objective_patches);

    let list = api
        .list_overrides(pb::ListOverridesRequest {
            parent: sla.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.overrides, vec![updated.clone()]);

    assert_code(
        api.delete_override(pb::DeleteOverrideRequest {
            name: created.name.clone(),
            etag: created.etag,
        })
        .await,
        Code::Aborted,
    );
    api.delete_override(pb::DeleteOverrideRequest {
        name: created.name.clone(),
        etag: updated.etag,
    })
    .await
    .unwrap();
    assert_code(
        api.get_override(pb::GetOverrideRequest { name: created.name })
            .await,
        Code::NotFound,
    );
}

async fn override_errors_carry_codes_and_fields(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let sla = w.draft("sla", w.standard_sla()).await;
    let gold = target_override(&w.bank, 0.9999);
    w.add_override(&sla.name, "bank-gold", gold.clone()).await;
    assert_code(
        w.try_add_override(&sla.name, "bank-gold", gold.clone())
            .await,
        Code::AlreadyExists,
    );
    assert_code(
        w.try_add_override("tenants/acme/agreements/ghost", "x", gold.clone())
            .await,
        Code::NotFound,
    );
    let mut unknown_key = gold.clone();
    unknown_key.objective_patches[0].key = "latency".into();
    assert_invalid_field(
        w.try_add_override(&sla.name, "x", unknown_key).await,
        "override.objective_patches[0].key",
    );
    let mut bad_target = gold.clone();
    bad_target.objective_patches[0].target = Some(2.0);
    assert_invalid_field(
        w.try_add_override(&sla.name, "x", bad_target).await,
        "override.objective_patches[0].target",
    );
    let mut ratio_threshold = gold.clone();
    ratio_threshold.objective_patches[0].threshold = Some(300.0);
    assert_invalid_field(
        w.try_add_override(&sla.name, "x", ratio_threshold).await,
        "override.objective_patches[0].threshold",
    );
    let mut clash = gold.clone();
    clash.added_objectives = vec![availability(0.9)];
    assert_invalid_field(
        w.try_add_override(&sla.name, "x", clash).await,
        "override.added_objectives[0].key",
    );
    let mut no_consumer = gold.clone();
    no_consumer.consumer = String::new();
    assert_invalid_field(
        w.try_add_override(&sla.name, "x", no_consumer).await,
        "override.consumer",
    );
    let mut ghost = gold.clone();
    ghost.consumer = "tenants/acme/parties/ghost".into();
    assert_invalid_field(
        w.try_add_override(&sla.name, "x", ghost).await,
        "override.consumer",
    );
    let mut backwards = gold.clone();
    backwards.effective_until = Some(ts(JAN_2026 - DAY));
    assert_invalid_field(
        w.try_add_override(&sla.name, "x", backwards).await,
        "override.effective_until",
    );

    let deal = w.draft("deal", w.standard_deal()).await;
    let status = assert_code(
        w.try_add_override(&deal.name, "x", gold.clone()).await,
        Code::FailedPrecondition,
    );
    assert_reason(&status, "AGREEMENT_STATE");

    // The override's consumer is in use.
    let status = assert_code(
        w.parties()
            .delete_party(pb::DeletePartyRequest {
                name: w.bank.clone(),
                etag: String::new(),
            })
            .await,
        Code::FailedPrecondition,
    );
    assert!(
        status.message().contains("overrides/bank-gold"),
        "{status:?}"
    );
}

on_both_backends!(overrides_round_trip, override_errors_carry_codes_and_fields);
