//! NOT_FOUND for every RPC that names a missing resource, and ABORTED for every
//! RPC that takes a stale etag.

use accord::proto::v1 as pb;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

async fn every_rpc_naming_a_missing_resource_is_not_found(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let ghost_agreement = "tenants/acme/agreements/ghost".to_string();
    let ghost_override = "tenants/acme/agreements/ghost/overrides/o".to_string();
    let (mut t, mut p, mut sv, mut a) = (s.tenants(), w.parties(), w.services(), w.agreements());

    assert_code(
        t.update_tenant(pb::UpdateTenantRequest {
            tenant: Some(pb::Tenant {
                name: "tenants/ghost".into(),
                display_name: "x".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await,
        Code::NotFound,
    );
    assert_code(
        t.delete_tenant(pb::DeleteTenantRequest {
            name: "tenants/ghost".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
    );
    // A tenant key naming another tenant is refused whether or not it exists.
    assert_code(
        p.list_parties(pb::ListPartiesRequest {
            parent: "tenants/ghost".into(),
            ..Default::default()
        })
        .await,
        Code::PermissionDenied,
    );
    assert_code(
        p.delete_party(pb::DeletePartyRequest {
            name: "tenants/acme/parties/ghost".into(),
            etag: String::new(),
        })
        .await,
        Code::NotFound,
    );
    assert_code(
        sv.list_services(pb::ListServicesRequest {
            parent: "tenants/ghost".into(),
            ..Default::default()
        })
        .await,
        Code::PermissionDenied,
    );
    assert_code(
        sv.update_service(pb::UpdateServiceRequest {
            service: Some(pb::Service {
                name: "tenants/acme/services/ghost".into(),
                description: "x".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await,
        Code::NotFound,
    );
    assert_code(
        a.update_agreement(pb::UpdateAgreementRequest {
            agreement: Some(pb::Agreement {
                name: ghost_agreement.clone(),
                display_name: "x".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await,
        Code::NotFound,
    );
    assert_code(
        a.delete_agreement(pb::DeleteAgreementRequest {
            name: ghost_agreement.clone(),
            etag: String::new(),
        })
        .await,
        Code::NotFound,
    );
    assert_code(
        a.publish_agreement(pb::PublishAgreementRequest {
            name: ghost_agreement.clone(),
            etag: String::new(),
        })
        .await,
        Code::NotFound,
    );
    assert_code(
        a.terminate_agreement(pb::TerminateAgreementRequest {
            name: ghost_agreement.clone(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
    );
    assert_code(
        a.list_overrides(pb::ListOverridesRequest {
            parent: ghost_agreement.clone(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
    );
    assert_code(
        a.update_override(pb::UpdateOverrideRequest {
            r#override: Some(pb::Override {
                name: ghost_override.clone(),
                display_name: "x".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await,
        Code::NotFound,
    );
    assert_code(
        a.delete_override(pb::DeleteOverrideRequest {
            name: ghost_override,
            etag: String::new(),
        })
        .await,
        Code::NotFound,
    );
}

async fn every_rpc_taking_an_etag_refuses_a_stale_one(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let (mut t, mut a) = (s.tenants(), w.agreements());
    let stale = "0000000000000000".to_string();
    assert_code(
        t.delete_tenant(pb::DeleteTenantRequest {
            name: w.tenant.clone(),
            etag: stale.clone(),
            force: true,
        })
        .await,
        Code::Aborted,
    );
    assert_code(
        w.parties()
            .update_party(pb::UpdatePartyRequest {
                party: Some(pb::Party {
                    name: w.bank.clone(),
                    display_name: "x".into(),
                    etag: stale.clone(),
                    ..Default::default()
                }),
                update_mask: None,
            })
            .await,
        Code::Aborted,
    );
    assert_code(
        w.services()
            .delete_service(pb::DeleteServiceRequest {
                name: w.payments.clone(),
                etag: stale.clone(),
            })
            .await,
        Code::Aborted,
    );
    let sla = w.draft("sla", w.standard_sla()).await;
    assert_code(
        a.update_agreement(pb::UpdateAgreementRequest {
            agreement: Some(pb::Agreement {
                name: sla.name.clone(),
                display_name: "x".into(),
                etag: stale.clone(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await,
        Code::Aborted,
    );
    assert_code(
        a.publish_agreement(pb::PublishAgreementRequest {
            name: sla.name.clone(),
            etag: stale.clone(),
        })
        .await,
        Code::Aborted,
    );
    let published = a
        .publish_agreement(pb::PublishAgreementRequest {
            name: sla.name.clone(),
            etag: sla.etag.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_code(
        a.terminate_agreement(pb::TerminateAgreementRequest {
            name: sla.name.clone(),
            etag: sla.etag.clone(),
            terminate_time: None,
        })
        .await,
        Code::Aborted,
    );
    let o = w.add_override(&sla.name, "o", ovr(&w.bank, JAN_2026)).await;
    assert_code(
        a.update_override(pb::UpdateOverrideRequest {
            r#override: Some(pb::Override {
                name: o.name.clone(),
                display_name: "x".into(),
                etag: stale.clone(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await,
        Code::Aborted,
    );
    // A terminate_time before the agreement starts is refused.
    assert_invalid_field(
        a.terminate_agreement(pb::TerminateAgreementRequest {
            name: sla.name.clone(),
            etag: published.etag,
            terminate_time: Some(ts(JAN_2026 - DAY)),
        })
        .await,
        "terminate_time",
    );
}

on_both_backends!(
    every_rpc_naming_a_missing_resource_is_not_found,
    every_rpc_taking_an_etag_refuses_a_stale_one,
);
