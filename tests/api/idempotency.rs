use accord::proto::v1 as pb;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

async fn concurrent_creates_with_one_request_id_make_one_agreement(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let request = pb::CreateAgreementRequest {
        parent: w.tenant.clone(),
        agreement_id: "sla".into(),
        agreement: Some(w.standard_sla()),
        request_id: "5f0c6b8e-8d3a-4a43-9d1b-2b7f1c1f4e11".into(),
    };
    let calls = (0..20).map(|_| {
        let mut api = w.agreements();
        let request = request.clone();
        tokio::spawn(async move { api.create_agreement(request).await.map(|r| r.into_inner()) })
    });
    let responses: Vec<pb::Agreement> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("every retry succeeds"))
        .collect();
    assert_eq!(responses.len(), 20);
    for r in &responses {
        assert_eq!(r, &responses[0], "every retry returns the same agreement");
    }
    let list = w
        .agreements()
        .list_agreements(pb::ListAgreementsRequest {
            parent: w.tenant.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.agreements.len(), 1);
}

async fn a_request_id_reused_for_another_request_is_invalid(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut api = w.agreements();
    let request = pb::CreateAgreementRequest {
        parent: w.tenant.clone(),
        agreement_id: "sla".into(),
        agreement: Some(w.standard_sla()),
        request_id: "req-1".into(),
    };
    let first = api
        .create_agreement(request.clone())
        .await
        .unwrap()
        .into_inner();
    // A retry after a change still returns what the first call returned.
    api.update_agreement(pb::UpdateAgreementRequest {
        agreement: Some(pb::Agreement {
            name: first.name.clone(),
            display_name: "changed".into(),
            ..Default::default()
        }),
        update_mask: None,
    })
    .await
    .unwrap();
    let retry = api
        .create_agreement(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry, first);

    let other = pb::CreateAgreementRequest {
        agreement_id: "sla-2".into(),
        ..request.clone()
    };
    assert_invalid_field(api.create_agreement(other).await, "request_id");

    // Without a request_id, a second create is a duplicate.
    let plain = pb::CreateAgreementRequest {
        request_id: String::new(),
        ..request
    };
    assert_code(api.create_agreement(plain).await, Code::AlreadyExists);
    assert_invalid_field(
        api.create_agreement(pb::CreateAgreementRequest {
            parent: w.tenant.clone(),
            agreement_id: "x".into(),
            agreement: Some(w.standard_sla()),
            request_id: "has spaces".into(),
        })
        .await,
        "request_id",
    );
}

async fn every_create_honours_request_ids(s: TestServer) {
    let create_tenant = pb::CreateTenantRequest {
        tenant_id: "acme".into(),
        tenant: None,
        request_id: "t-1".into(),
    };
    let a = s
        .tenants()
        .create_tenant(create_tenant.clone())
        .await
        .unwrap()
        .into_inner();
    let b = s
        .tenants()
        .create_tenant(create_tenant)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    let admin = s.clients(&s.create_key("acme", "admin", pb::Role::TenantAdmin).await);
    let party = pb::CreatePartyRequest {
        parent: "tenants/acme".into(),
        party_id: "p".into(),
        party: Some(pb::Party {
            kind: pb::PartyKind::Provider.into(),
            ..Default::default()
        }),
        request_id: "p-1".into(),
    };
    let a = admin
        .parties()
        .create_party(party.clone())
        .await
        .unwrap()
        .into_inner();
    let b = admin
        .parties()
        .create_party(party)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    let service = pb::CreateServiceRequest {
        parent: "tenants/acme".into(),
        service_id: "svc".into(),
        service: Some(pb::Service {
            owner: "tenants/acme/parties/p".into(),
            ..Default::default()
        }),
        request_id: "s-1".into(),
    };
    let a = admin
        .services()
        .create_service(service.clone())
        .await
        .unwrap()
        .into_inner();
    let b = admin
        .services()
        .create_service(service)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
}

on_both_backends!(
    concurrent_creates_with_one_request_id_make_one_agreement,
    a_request_id_reused_for_another_request_is_invalid,
    every_create_honours_request_ids,
);
