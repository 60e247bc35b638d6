use accord::proto::v1 as pb;
use prost_types::FieldMask;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

fn party(tenant: &str, id: &str, kind: pb::PartyKind, parent: &str) -> pb::CreatePartyRequest {
    pb::CreatePartyRequest {
        parent: tenant.into(),
        party_id: id.into(),
        party: Some(pb::Party {
            kind: kind.into(),
            parent: parent.into(),
            display_name: id.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

async fn parties_round_trip_with_parents(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut parties = w.parties();
    let dept = parties
        .create_party(party(
            &w.tenant,
            "bank-eu",
            pb::PartyKind::InternalUnit,
            &w.bank,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dept.name, "tenants/acme/parties/bank-eu");
    assert_eq!(dept.parent, w.bank);
    assert_eq!(dept.kind(), pb::PartyKind::InternalUnit);

    let got = parties
        .get_party(pb::GetPartyRequest {
            name: dept.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, dept);

    let list = parties
        .list_parties(pb::ListPartiesRequest {
            parent: w.tenant.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = list.parties.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "tenants/acme/parties/bank",
            "tenants/acme/parties/bank-eu",
            "tenants/acme/parties/platform"
        ]
    );

    let moved = parties
        .update_party(pb::UpdatePartyRequest {
            party: Some(pb::Party {
                name: dept.name.clone(),
                etag: dept.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["parent".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.parent, "", "an empty parent in the mask clears it");

    parties
        .delete_party(pb::DeletePartyRequest {
            name: moved.name,
            etag: moved.etag,
        })
        .await
        .unwrap();
}

async fn party_cycles_are_invalid(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut parties = w.parties();
    let a = w.party("a", None).await;
    let b = w.unit("b", Some(&a)).await;
    w.unit("c", Some(&b)).await;
    let cycle = parties
        .update_party(pb::UpdatePartyRequest {
            party: Some(pb::Party {
                name: "tenants/acme/parties/a".into(),
                parent: "tenants/acme/parties/c".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["parent".into()],
            }),
        })
        .await;
    assert_invalid_field(cycle, "party.parent");
    let own = parties
        .update_party(pb::UpdatePartyRequest {
            party: Some(pb::Party {
                name: "tenants/acme/parties/a".into(),
                parent: "tenants/acme/parties/a".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await;
    assert_invalid_field(own, "party.parent");
}

async fn party_errors_carry_codes_and_fields(s: TestServer) {
    let w = World::new(&s, "acme").await;
    World::new(&s, "other").await;
    let mut parties = w.parties();
    assert_code(
        parties
            .create_party(party(&w.tenant, "bank", pb::PartyKind::Customer, ""))
            .await,
        Code::AlreadyExists,
    );
    assert_invalid_field(
        parties
            .create_party(party(&w.tenant, "x", pb::PartyKind::Unspecified, ""))
            .await,
        "party.kind",
    );
    assert_invalid_field(
        parties
            .create_party(party(
                &w.tenant,
                "x",
                pb::PartyKind::Customer,
                "tenants/acme/parties/ghost",
            ))
            .await,
        "party.parent",
    );
    assert_invalid_field(
        parties
            .create_party(party(
                &w.tenant,
                "x",
                pb::PartyKind::Customer,
                "tenants/other/parties/bank",
            ))
            .await,
        "party.parent",
    );
    assert_invalid_field(
        parties
            .create_party(party(&w.tenant, "9x", pb::PartyKind::Customer, ""))
            .await,
        "party_id",
    );
    assert_code(
        parties
            .create_party(party("tenants/ghost", "x", pb::PartyKind::Customer, ""))
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        parties
            .get_party(pb::GetPartyRequest {
                name: "tenants/acme/parties/ghost".into(),
            })
            .await,
        Code::NotFound,
    );
    assert_invalid_field(
        parties
            .get_party(pb::GetPartyRequest {
                name: "tenants/acme/services/payments".into(),
            })
            .await,
        "name",
    );
    assert_code(
        parties
            .delete_party(pb::DeletePartyRequest {
                name: w.bank.clone(),
                etag: "stale".into(),
            })
            .await,
        Code::Aborted,
    );
    assert_code(
        parties
            .update_party(pb::UpdatePartyRequest {
                party: Some(pb::Party {
                    name: "tenants/acme/parties/ghost".into(),
                    display_name: "x".into(),
                    ..Default::default()
                }),
                update_mask: None,
            })
            .await,
        Code::NotFound,
    );
    assert_invalid_field(
        parties
            .update_party(pb::UpdatePartyRequest {
                party: None,
                update_mask: None,
            })
            .await,
        "party",
    );
}

async fn parties_in_use_cannot_be_deleted(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut parties = w.parties();
    // The provider owns the service.
    let status = assert_code(
        parties
            .delete_party(pb::DeletePartyRequest {
                name: w.provider.clone(),
                etag: String::new(),
            })
            .await,
        Code::FailedPrecondition,
    );
    assert_reason(&status, "RESOURCE_IN_USE");
    assert!(
        status.message().contains("tenants/acme/services/payments"),
        "{status:?}"
    );

    // The customer is the consumer of an agreement.
    let deal = w.draft("bank-deal", w.standard_deal()).await;
    let status = assert_code(
        parties
            .delete_party(pb::DeletePartyRequest {
                name: w.bank.clone(),
                etag: String::new(),
            })
            .await,
        Code::FailedPrecondition,
    );
    assert!(
        status
            .message()
            .contains("tenants/acme/agreements/bank-deal"),
        "{status:?}"
    );

    // A parent with children.
    w.party("child", Some(&w.bank)).await;
    w.delete_agreement(&deal.name).await;
    let status = assert_code(
        parties
            .delete_party(pb::DeletePartyRequest {
                name: w.bank.clone(),
                etag: String::new(),
            })
            .await,
        Code::FailedPrecondition,
    );
    assert!(
        status.message().contains("tenants/acme/parties/child"),
        "{status:?}"
    );
}

on_both_backends!(
    parties_round_trip_with_parents,
    party_cycles_are_invalid,
    party_errors_carry_codes_and_fields,
    parties_in_use_cannot_be_deleted,
);
