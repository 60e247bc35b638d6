use accord::proto::v1 as pb;
use prost_types::FieldMask;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

fn create(id: &str) -> pb::CreateTenantRequest {
    pb::CreateTenantRequest {
        tenant_id: id.into(),
        tenant: Some(pb::Tenant {
            display_name: "Acme".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

async fn tenant_crud_round_trips(s: TestServer) {
    let mut tenants = s.tenants();
    let created = tenants
        .create_tenant(create("acme"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.name, "tenants/acme");
    assert_eq!(created.display_name, "Acme");
    assert!(!created.etag.is_empty());

    let got = tenants
        .get_tenant(pb::GetTenantRequest {
            name: "tenants/acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);

    let updated = tenants
        .update_tenant(pb::UpdateTenantRequest {
            tenant: Some(pb::Tenant {
                name: "tenants/acme".into(),
                display_name: "Acme Corp".into(),
                etag: created.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.display_name, "Acme Corp");
    assert_ne!(updated.etag, created.etag);

    let list = tenants
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.tenants, vec![updated.clone()]);

    tenants
        .delete_tenant(pb::DeleteTenantRequest {
            name: "tenants/acme".into(),
            etag: updated.etag,
            force: false,
        })
        .await
        .unwrap();
    let missing = tenants
        .get_tenant(pb::GetTenantRequest {
            name: "tenants/acme".into(),
        })
        .await;
    assert_code(missing, Code::NotFound);
}

async fn tenant_errors_carry_codes_and_fields(s: TestServer) {
    let mut tenants = s.tenants();
    tenants.create_tenant(create("acme")).await.unwrap();
    let status = assert_code(
        tenants.create_tenant(create("acme")).await,
        Code::AlreadyExists,
    );
    assert_reason(&status, "ALREADY_EXISTS");
    assert_invalid_field(tenants.create_tenant(create("Bad_Id")).await, "tenant_id");
    assert_invalid_field(
        tenants
            .get_tenant(pb::GetTenantRequest {
                name: "acme".into(),
            })
            .await,
        "name",
    );
    assert_code(
        tenants
            .get_tenant(pb::GetTenantRequest {
                name: "tenants/nope".into(),
            })
            .await,
        Code::NotFound,
    );
    let stale = tenants
        .update_tenant(pb::UpdateTenantRequest {
            tenant: Some(pb::Tenant {
                name: "tenants/acme".into(),
                display_name: "x".into(),
                etag: "stale".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await;
    let status = assert_code(stale, Code::Aborted);
    assert_reason(&status, "ETAG_MISMATCH");
    assert_invalid_field(
        tenants
            .update_tenant(pb::UpdateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: "tenants/acme".into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["colour".into()],
                }),
            })
            .await,
        "update_mask",
    );
    assert_invalid_field(
        tenants
            .update_tenant(pb::UpdateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: "tenants/acme".into(),
                    labels: [("Bad Key".to_string(), "v".to_string())].into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["labels".into()],
                }),
            })
            .await,
        "tenant.labels.Bad Key",
    );
    assert_invalid_field(
        tenants
            .list_tenants(pb::ListTenantsRequest {
                page_size: -1,
                page_token: String::new(),
            })
            .await,
        "page_size",
    );
}

async fn deleting_a_tenant_with_resources_needs_force(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut tenants = s.tenants();
    let status = assert_code(
        tenants
            .delete_tenant(pb::DeleteTenantRequest {
                name: w.tenant.clone(),
                etag: String::new(),
                force: false,
            })
            .await,
        Code::FailedPrecondition,
    );
    assert_reason(&status, "TENANT_NOT_EMPTY");
    assert!(
        status.message().contains("tenants/acme/parties/bank"),
        "{status:?}"
    );

    w.publish("sla", w.standard_sla()).await;
    tenants
        .delete_tenant(pb::DeleteTenantRequest {
            name: w.tenant.clone(),
            etag: String::new(),
            force: true,
        })
        .await
        .unwrap();
    // The tenant's keys went with it.
    assert_code(
        w.parties()
            .get_party(pb::GetPartyRequest {
                name: w.bank.clone(),
            })
            .await,
        Code::Unauthenticated,
    );
    // The id is free again.
    World::new(&s, "acme").await;
}

async fn update_with_star_mask_replaces_every_field(s: TestServer) {
    let mut tenants = s.tenants();
    let mut req = create("acme");
    req.tenant.as_mut().unwrap().labels = [("env".to_string(), "prod".to_string())].into();
    tenants.create_tenant(req).await.unwrap();
    let updated = tenants
        .update_tenant(pb::UpdateTenantRequest {
            tenant: Some(pb::Tenant {
                name: "tenants/acme".into(),
                display_name: "Only name".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["*".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.display_name, "Only name");
    assert!(updated.labels.is_empty(), "`*` clears fields left unset");
}

on_both_backends!(
    tenant_crud_round_trips,
    tenant_errors_carry_codes_and_fields,
    deleting_a_tenant_with_resources_needs_force,
    update_with_star_mask_replaces_every_field,
);
