use accord::proto::v1 as pb;
use prost_types::FieldMask;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

fn gold(seed: &Seed) -> pb::Override {
    pb::Override {
        consumer: seed.customer.clone(),
        effective_from: Some(ts(JAN_2026)),
        objective_patches: vec![pb::ObjectivePatch {
            key: "availability".into(),
            target: Some(0.9999),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn create(
    s: &TestServer,
    parent: &str,
    id: &str,
    o: pb::Override,
) -> Result<pb::Override, tonic::Status> {
    s.agreements()
        .create_override(pb::CreateOverrideRequest {
            parent: parent.into(),
            override_id: id.into(),
            r#override: Some(o),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn overrides_round_trip(s: TestServer) {
    let seed = seed(&s, "acme").await;
    let sla = seed.create_agreement(&s, "sla", seed.service_level()).await;
    let mut api = s.agreements();
    let created = create(&s, &sla.name, "bank-gold", gold(&seed))
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
    let seed = seed(&s, "acme").await;
    let sla = seed.create_agreement(&s, "sla", seed.service_level()).await;
    create(&s, &sla.name, "bank-gold", gold(&seed))
        .await
        .unwrap();
    assert_code(
        create(&s, &sla.name, "bank-gold", gold(&seed)).await,
        Code::AlreadyExists,
    );
    assert_code(
        create(&s, "tenants/acme/agreements/ghost", "x", gold(&seed)).await,
        Code::NotFound,
    );
    let mut unknown_key = gold(&seed);
    unknown_key.objective_patches[0].key = "latency".into();
    assert_invalid_field(
        create(&s, &sla.name, "x", unknown_key).await,
        "override.objective_patches[0].key",
    );
    let mut bad_target = gold(&seed);
    bad_target.objective_patches[0].target = Some(2.0);
    assert_invalid_field(
        create(&s, &sla.name, "x", bad_target).await,
        "override.objective_patches[0].target",
    );
    let mut ratio_threshold = gold(&seed);
    ratio_threshold.objective_patches[0].threshold = Some(300.0);
    assert_invalid_field(
        create(&s, &sla.name, "x", ratio_threshold).await,
        "override.objective_patches[0].threshold",
    );
    let mut clash = gold(&seed);
    clash.added_objectives = vec![availability(0.9)];
    assert_invalid_field(
        create(&s, &sla.name, "x", clash).await,
        "override.added_objectives[0].key",
    );
    let mut no_consumer = gold(&seed);
    no_consumer.consumer = String::new();
    assert_invalid_field(
        create(&s, &sla.name, "x", no_consumer).await,
        "override.consumer",
    );
    let mut ghost = gold(&seed);
    ghost.consumer = "tenants/acme/parties/ghost".into();
    assert_invalid_field(create(&s, &sla.name, "x", ghost).await, "override.consumer");
    let mut backwards = gold(&seed);
    backwards.effective_until = Some(ts(JAN_2026 - DAY));
    assert_invalid_field(
        create(&s, &sla.name, "x", backwards).await,
        "override.effective_until",
    );

    let deal = seed
        .create_agreement(&s, "deal", seed.customer_agreement())
        .await;
    let status = assert_code(
        create(&s, &deal.name, "x", gold(&seed)).await,
        Code::FailedPrecondition,
    );
    assert_reason(&status, "AGREEMENT_STATE");

    // The override's consumer is in use.
    let status = assert_code(
        s.parties()
            .delete_party(pb::DeletePartyRequest {
                name: seed.customer.clone(),
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
