//! Ids are reused; what belonged to the resource that had the id before must
//! not reach the next one. A tenant deleted and created again under the same
//! id gets another `uid`, and its trail holds only its own events (the
//! platform admin reads the earlier ones with `show_deleted`); an agreement
//! deleted and created again does not inherit the overrides of the first.

use accord::proto::v1 as pb;
use pb::audit_service_client::AuditServiceClient;
use prost_types::value::Kind;
use tonic::{Code, Status};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    every_tenant_gets_a_uid_the_next_tenant_of_its_id_does_not_share,
    recreated_tenant_admin_sees_only_its_own_events,
    platform_admin_reads_every_trail_of_the_id_with_show_deleted,
    show_deleted_is_permission_denied_below_the_platform_admin,
    page_tokens_do_not_carry_over_to_the_next_tenant_of_the_id,
);

// --- helpers -------------------------------------------------------------------

async fn create_tenant(s: &TestServer, id: &str, display_name: &str) -> pb::Tenant {
    s.tenants()
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: id.into(),
            tenant: Some(pb::Tenant {
                display_name: display_name.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create tenant")
        .into_inner()
}

async fn get_tenant(s: &TestServer, id: &str) -> pb::Tenant {
    s.tenants()
        .get_tenant(pb::GetTenantRequest {
            name: format!("tenants/{id}"),
        })
        .await
        .expect("get tenant")
        .into_inner()
}

async fn force_delete_tenant(s: &TestServer, id: &str) {
    s.tenants()
        .delete_tenant(pb::DeleteTenantRequest {
            name: format!("tenants/{id}"),
            etag: String::new(),
            force: true,
        })
        .await
        .expect("force-delete tenant");
}

fn audit_as(s: &TestServer, key: &str) -> AuditServiceClient<Authed> {
    AuditServiceClient::new(s.authed(Bearer::new(key)))
}

fn list_request(tenant: &str, show_deleted: bool) -> pb::ListAuditEventsRequest {
    pb::ListAuditEventsRequest {
        parent: format!("tenants/{tenant}"),
        page_size: 1000,
        show_deleted,
        ..Default::default()
    }
}

/// Every event the list returns, following its page tokens.
async fn list_all(
    client: &mut AuditServiceClient<Authed>,
    mut request: pb::ListAuditEventsRequest,
) -> Result<Vec<pb::AuditEvent>, Status> {
    let mut events = Vec::new();
    loop {
        let page = client
            .list_audit_events(request.clone())
            .await?
            .into_inner();
        events.extend(page.audit_events);
        if page.next_page_token.is_empty() {
            return Ok(events);
        }
        request.page_token = page.next_page_token;
    }
}

fn rpc(e: &pb::AuditEvent) -> &str {
    e.method.rsplit('/').next().unwrap_or_default()
}

fn string_field(snapshot: &Option<prost_types::Struct>, name: &str) -> Option<String> {
    match snapshot.as_ref()?.fields.get(name)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// The uids the events carry, each once, in the order first seen.
fn uids(events: &[pb::AuditEvent]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for e in events {
        if !seen.contains(&e.tenant_uid) {
            seen.push(e.tenant_uid.clone());
        }
    }
    seen
}

// --- defect 1: a tenant id reused ---------------------------------------------------

async fn every_tenant_gets_a_uid_the_next_tenant_of_its_id_does_not_share(s: TestServer) {
    let first = create_tenant(&s, "acme", "Acme").await;
    assert!(!first.uid.is_empty(), "CreateTenant returns a uid");
    assert_eq!(get_tenant(&s, "acme").await.uid, first.uid);
    let listed = s
        .tenants()
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tenants;
    assert_eq!(listed[0].uid, first.uid);
    // Output only: an update cannot set it and keeps it.
    let updated = s
        .tenants()
        .update_tenant(pb::UpdateTenantRequest {
            tenant: Some(pb::Tenant {
                name: first.name.clone(),
                display_name: "Acme Corp".into(),
                uid: "chosen-by-the-client".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into(), "uid".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.uid, first.uid);

    let other = create_tenant(&s, "other", "Other").await;
    assert_ne!(other.uid, first.uid, "uids are unique");
    force_delete_tenant(&s, "acme").await;
    let second = create_tenant(&s, "acme", "Another organisation").await;
    assert!(!second.uid.is_empty());
    assert_ne!(second.uid, first.uid, "a new incarnation, a new uid");
    assert_eq!(get_tenant(&s, "acme").await.uid, second.uid);
}

async fn recreated_tenant_admin_sees_only_its_own_events(s: TestServer) {
    let old = seed(&s, "acme").await;
    let old_uid = get_tenant(&s, "acme").await.uid;
    let mut old_admin = audit_as(&s, &old.admin_key);
    let old_trail = list_all(&mut old_admin, list_request("acme", false))
        .await
        .unwrap();
    assert!(old_trail.iter().any(|e| e.resource == old.customer));
    assert!(old_trail.iter().all(|e| e.tenant_uid == old_uid));

    force_delete_tenant(&s, "acme").await;
    let new = create_tenant(&s, "acme", "Another organisation").await;
    let new_admin_key = s.create_key("acme", "admin", pb::Role::TenantAdmin).await;
    let events = list_all(
        &mut audit_as(&s, &new_admin_key),
        list_request("acme", false),
    )
    .await
    .unwrap();

    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (rpc(e), e.resource.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("CreateApiKey", "tenants/acme/apiKeys/admin"),
            ("CreateTenant", "tenants/acme"),
        ],
        "only the new tenant's events, newest first"
    );
    assert!(events.iter().all(|e| e.tenant_uid == new.uid));
    assert_eq!(
        string_field(&events[1].after, "display_name").as_deref(),
        Some("Another organisation")
    );
    // Nothing of the former tenant, filtered by resource either.
    for resource in [&old.customer, &old.provider, &old.service, &old.tenant] {
        let about = list_all(
            &mut audit_as(&s, &new_admin_key),
            pb::ListAuditEventsRequest {
                resource: resource.clone(),
                ..list_request("acme", false)
            },
        )
        .await
        .unwrap();
        assert!(
            about.iter().all(|e| e.tenant_uid == new.uid),
            "{resource}: {about:#?}"
        );
    }
}

async fn platform_admin_reads_every_trail_of_the_id_with_show_deleted(s: TestServer) {
    let old = seed(&s, "acme").await;
    let old_uid = get_tenant(&s, "acme").await.uid;
    let mut platform = audit_as(&s, &s.platform_key);
    let before_delete = list_all(&mut platform, list_request("acme", false))
        .await
        .unwrap();
    force_delete_tenant(&s, "acme").await;

    // No tenant has the id: its own trail is gone with it, the former one is
    // still there for the platform admin.
    assert_code(
        list_all(&mut platform, list_request("acme", false)).await,
        Code::NotFound,
    );
    let deleted_trail = list_all(&mut platform, list_request("acme", true))
        .await
        .unwrap();
    assert_eq!(uids(&deleted_trail), [old_uid.clone()]);
    assert_eq!(rpc(&deleted_trail[0]), "DeleteTenant");
    assert_eq!(deleted_trail[0].resource, "tenants/acme");
    assert_eq!(
        deleted_trail[0].tenant_uid, old_uid,
        "the uid of the tenant it deleted"
    );
    assert!(deleted_trail[0].after.is_none());
    assert_eq!(&deleted_trail[1..], &before_delete[..]);
    assert!(deleted_trail.iter().any(|e| e.resource == old.customer));

    let new = create_tenant(&s, "acme", "Another organisation").await;
    let current = list_all(&mut platform, list_request("acme", false))
        .await
        .unwrap();
    assert_eq!(current.len(), 1);
    assert_eq!(rpc(&current[0]), "CreateTenant");
    assert_eq!(
        current[0].tenant_uid, new.uid,
        "the uid of the tenant it created"
    );
    let every = list_all(&mut platform, list_request("acme", true))
        .await
        .unwrap();
    assert_eq!(uids(&every), [new.uid.clone(), old_uid.clone()]);
    assert_eq!(every[0], current[0]);
    assert_eq!(&every[1..], &deleted_trail[..]);
    // Paging one event at a time gives the same list.
    let paged = list_all(
        &mut platform,
        pb::ListAuditEventsRequest {
            page_size: 1,
            ..list_request("acme", true)
        },
    )
    .await
    .unwrap();
    assert_eq!(paged, every);
}

async fn show_deleted_is_permission_denied_below_the_platform_admin(s: TestServer) {
    let seed = seed(&s, "acme").await;
    let status = assert_code(
        audit_as(&s, &seed.admin_key)
            .list_audit_events(list_request("acme", true))
            .await,
        Code::PermissionDenied,
    );
    assert_reason(&status, "PERMISSION_DENIED");
    assert!(
        status.message().contains("show_deleted"),
        "{}",
        status.message()
    );
    // Without it the same key lists its trail.
    audit_as(&s, &seed.admin_key)
        .list_audit_events(list_request("acme", false))
        .await
        .unwrap();
}

async fn page_tokens_do_not_carry_over_to_the_next_tenant_of_the_id(s: TestServer) {
    seed(&s, "acme").await;
    let mut platform = audit_as(&s, &s.platform_key);
    let first_page = |show_deleted| pb::ListAuditEventsRequest {
        page_size: 1,
        ..list_request("acme", show_deleted)
    };
    let old_token = platform
        .list_audit_events(first_page(false))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!old_token.is_empty());
    force_delete_tenant(&s, "acme").await;
    create_tenant(&s, "acme", "Another organisation").await;
    s.create_key("acme", "admin", pb::Role::TenantAdmin).await;

    assert_invalid_field(
        platform
            .list_audit_events(pb::ListAuditEventsRequest {
                page_token: old_token,
                ..first_page(false)
            })
            .await,
        "page_token",
    );
    // Nor does a token of the list with show_deleted continue the one without.
    let every_token = platform
        .list_audit_events(first_page(true))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert_invalid_field(
        platform
            .list_audit_events(pb::ListAuditEventsRequest {
                page_token: every_token,
                ..first_page(false)
            })
            .await,
        "page_token",
    );
}

// --- the second layer: PostgreSQL row-level security --------------------------------

/// On PostgreSQL, a store query that forgets the uid still finds only the
/// current tenant's events in the tenant's scope; the platform scope, which
/// show_deleted reads in, finds every trail of the id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tenant_scope_reads_only_the_current_tenants_events() {
    use accord::domain::audit::AuditFilter;
    use accord::store::{Access, PostgresStore, Store};

    let Some(s) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    seed(&s, "acme").await;
    let old_uid = get_tenant(&s, "acme").await.uid;
    force_delete_tenant(&s, "acme").await;
    let new_uid = create_tenant(&s, "acme", "Another organisation").await.uid;

    let store = PostgresStore::connect(&s.database_url, 1).await.unwrap();
    let acme = accord::domain::names::Id::parse("id", "acme").unwrap();
    let every_uid = |events: Vec<accord::domain::audit::AuditEvent>| {
        let mut uids: Vec<String> = events.into_iter().map(|e| e.tenant_uid).collect();
        uids.dedup();
        uids
    };
    let mut tx = store.begin(Some(&acme), Access::Read).await.unwrap();
    let unfiltered = tx
        .list_audit_events(&acme, None, &AuditFilter::default(), None, 1000)
        .await
        .unwrap();
    assert_eq!(every_uid(unfiltered), [new_uid.clone()]);
    drop(tx);
    let mut tx = store.begin(None, Access::Read).await.unwrap();
    let every = tx
        .list_audit_events(&acme, None, &AuditFilter::default(), None, 1000)
        .await
        .unwrap();
    assert_eq!(every_uid(every), [new_uid, old_uid]);
    drop(tx);
    store.close().await;
}
