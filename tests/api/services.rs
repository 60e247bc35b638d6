use accord::proto::v1 as pb;
use prost_types::FieldMask;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

async fn services_round_trip(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut services = w.services();
    let got = services
        .get_service(pb::GetServiceRequest {
            name: w.payments.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.owner, w.provider);
    assert_eq!(got.display_name, "Payments");

    let updated = services
        .update_service(pb::UpdateServiceRequest {
            service: Some(pb::Service {
                name: w.payments.clone(),
                description: "Card payments".into(),
                etag: got.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["description".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.description, "Card payments");
    assert_eq!(
        updated.display_name, "Payments",
        "fields outside the mask are kept"
    );

    let list = services
        .list_services(pb::ListServicesRequest {
            parent: w.tenant.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.services, vec![updated.clone()]);

    services
        .delete_service(pb::DeleteServiceRequest {
            name: w.payments.clone(),
            etag: updated.etag,
        })
        .await
        .unwrap();
    assert_code(
        services
            .get_service(pb::GetServiceRequest {
                name: w.payments.clone(),
            })
            .await,
        Code::NotFound,
    );
}

async fn service_errors_carry_codes_and_fields(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut services = w.services();
    let create = |id: &str, owner: &str| pb::CreateServiceRequest {
        parent: w.tenant.clone(),
        service_id: id.into(),
        service: Some(pb::Service {
            owner: owner.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    assert_code(
        services
            .create_service(create("payments", &w.provider))
            .await,
        Code::AlreadyExists,
    );
    assert_invalid_field(
        services.create_service(create("x", "")).await,
        "service.owner",
    );
    assert_invalid_field(
        services
            .create_service(create("x", "tenants/acme/parties/ghost"))
            .await,
        "service.owner",
    );
    assert_invalid_field(
        services.create_service(create("", &w.provider)).await,
        "service_id",
    );
    assert_code(
        services
            .update_service(pb::UpdateServiceRequest {
                service: Some(pb::Service {
                    name: w.payments.clone(),
                    description: "x".into(),
                    etag: "stale".into(),
                    ..Default::default()
                }),
                update_mask: None,
            })
            .await,
        Code::Aborted,
    );
    assert_code(
        services
            .delete_service(pb::DeleteServiceRequest {
                name: "tenants/acme/services/ghost".into(),
                etag: String::new(),
            })
            .await,
        Code::NotFound,
    );
    w.draft("sla", w.standard_sla()).await;
    let status = assert_code(
        services
            .delete_service(pb::DeleteServiceRequest {
                name: w.payments.clone(),
                etag: String::new(),
            })
            .await,
        Code::FailedPrecondition,
    );
    assert_reason(&status, "RESOURCE_IN_USE");
    assert!(
        status.message().contains("tenants/acme/agreements/sla"),
        "{status:?}"
    );
}

on_both_backends!(services_round_trip, service_errors_carry_codes_and_fields);
