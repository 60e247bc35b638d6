//! Ids are reused; what belonged to the resource that had the id before must
//! not reach the next one. A tenant deleted and created again under the same
//! id gets another `uid`, and its trail holds only its own events (the
//! platform admin reads the earlier ones with `show_deleted`); an agreement
//! deleted and created again does not inherit the overrides of the first.

use accord::proto::v1 as pb;
use pb::audit_service_client::AuditServiceClient;
use tonic::{Code, Status};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    every_tenant_gets_a_uid_the_next_tenant_of_its_id_does_not_share,
    recreated_tenant_admin_sees_only_its_own_events,
    platform_admin_reads_every_trail_of_the_id_with_show_deleted,
    show_deleted_is_permission_denied_below_the_platform_admin,
    page_tokens_do_not_carry_over_to_the_next_tenant_of_the_id,
    deleted_agreement_leaves_no_ghost_override_to_its_successor,
    deleting_an_agreement_audits_each_override_it_removes,
    known_at_before_the_deletion_resolves_as_the_registry_knew_it_then,
);

// --- helpers -------------------------------------------------------------------

fn audit_as(s: &TestServer, key: &str) -> AuditServiceClient<Authed> {
    s.clients(key).audit()
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
    let first = s.create_tenant("acme", "Acme").await;
    assert!(!first.uid.is_empty(), "CreateTenant returns a uid");
    assert_eq!(s.get_tenant("acme").await.uid, first.uid);
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

    let other = s.create_tenant("other", "Other").await;
    assert_ne!(other.uid, first.uid, "uids are unique");
    s.force_delete_tenant("acme").await;
    let second = s.create_tenant("acme", "Another organisation").await;
    assert!(!second.uid.is_empty());
    assert_ne!(second.uid, first.uid, "a new incarnation, a new uid");
    assert_eq!(s.get_tenant("acme").await.uid, second.uid);
}

async fn recreated_tenant_admin_sees_only_its_own_events(s: TestServer) {
    let old = World::new(&s, "acme").await;
    let old_uid = s.get_tenant("acme").await.uid;
    let mut old_admin = audit_as(&s, &old.admin_key);
    let old_trail = list_all(&mut old_admin, list_request("acme", false))
        .await
        .unwrap();
    assert!(old_trail.iter().any(|e| e.resource == old.bank));
    assert!(old_trail.iter().all(|e| e.tenant_uid == old_uid));

    s.force_delete_tenant("acme").await;
    let new = s.create_tenant("acme", "Another organisation").await;
    let new_admin_key = s.create_key("acme", "admin", pb::Role::TenantAdmin).await;
    let events = list_all(
        &mut audit_as(&s, &new_admin_key),
        list_request("acme", false),
    )
    .await
    .unwrap();

    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (rpc_of(e), e.resource.as_str()))
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
    for resource in [&old.bank, &old.provider, &old.payments, &old.tenant] {
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
    let old = World::new(&s, "acme").await;
    let old_uid = s.get_tenant("acme").await.uid;
    let mut platform = audit_as(&s, &s.platform_key);
    let before_delete = list_all(&mut platform, list_request("acme", false))
        .await
        .unwrap();
    s.force_delete_tenant("acme").await;

    // No tenant has the id: its own trail is gone with it, the former one is
    // still there for the platform admin.
    assert_code(
        list_all(&mut platform, list_request("acme", false)).await,
        Code::NotFound,
    );
    let deleted_trail = list_all(&mut platform, list_request("acme", true))
        .await
        .unwrap();
    assert_eq!(uids(&deleted_trail), std::slice::from_ref(&old_uid));
    assert_eq!(rpc_of(&deleted_trail[0]), "DeleteTenant");
    assert_eq!(deleted_trail[0].resource, "tenants/acme");
    assert_eq!(
        deleted_trail[0].tenant_uid, old_uid,
        "the uid of the tenant it deleted"
    );
    assert!(deleted_trail[0].after.is_none());
    assert_eq!(&deleted_trail[1..], &before_delete[..]);
    assert!(deleted_trail.iter().any(|e| e.resource == old.bank));

    let new = s.create_tenant("acme", "Another organisation").await;
    let current = list_all(&mut platform, list_request("acme", false))
        .await
        .unwrap();
    assert_eq!(current.len(), 1);
    assert_eq!(rpc_of(&current[0]), "CreateTenant");
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
    let w = World::new(&s, "acme").await;
    let status = assert_code(
        audit_as(&s, &w.admin_key)
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
    audit_as(&s, &w.admin_key)
        .list_audit_events(list_request("acme", false))
        .await
        .unwrap();
}

async fn page_tokens_do_not_carry_over_to_the_next_tenant_of_the_id(s: TestServer) {
    World::new(&s, "acme").await;
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
    s.force_delete_tenant("acme").await;
    s.create_tenant("acme", "Another organisation").await;
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

// --- defect 2: an agreement id reused ------------------------------------------------

/// A draft `sla` with the override `bank-gold` (availability 0.9999 for the
/// bank), deleted; then a new `sla` (availability 0.999) published. Returns
/// the instants after the override was created and after the deletion.
async fn ghost_scenario(w: &World) -> (prost_types::Timestamp, prost_types::Timestamp) {
    let draft = w.draft("sla", w.standard_sla()).await;
    w.add_override(&draft.name, "bank-gold", target_override(&w.bank, 0.9999))
        .await;
    let with_override = mark().await;
    w.delete_agreement(&draft.name).await;
    let deleted = mark().await;
    w.publish("sla", w.standard_sla()).await;
    (with_override, deleted)
}

async fn deleted_agreement_leaves_no_ghost_override_to_its_successor(s: TestServer) {
    let w = World::new(&s, "acme").await;
    ghost_scenario(&w).await;
    let sla = w.name("agreements", "sla");

    let overrides = w
        .agreements()
        .list_overrides(pb::ListOverridesRequest {
            parent: sla.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .overrides;
    assert!(overrides.is_empty(), "{overrides:#?}");

    let resolved = w.resolve_now(&w.bank, &w.payments).await;
    let [objective] = &resolved.objectives[..] else {
        panic!("one objective: {resolved:#?}")
    };
    assert_eq!(objective.objective.as_ref().unwrap().target, 0.999);
    let provenance = objective.provenance.as_ref().unwrap();
    assert_eq!(provenance.agreement, sla);
    assert_eq!(provenance.r#override, "");
    assert!(objective.patched_fields.is_empty(), "{objective:#?}");

    let explanation = w.explain(&w.bank, &w.payments, None, None).await.unwrap();
    let layers: Vec<(i32, &str)> = explanation
        .layers
        .iter()
        .map(|l| (l.kind, l.source.as_ref().unwrap().r#override.as_str()))
        .collect();
    assert_eq!(
        layers,
        [(pb::LayerKind::Base as i32, "")],
        "the new agreement alone, no ghost layer: {explanation:#?}"
    );
}

async fn deleting_an_agreement_audits_each_override_it_removes(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let shop = w.party("shop", None).await;
    let draft = w.draft("sla", w.standard_sla()).await;
    let bank_gold = w
        .add_override(&draft.name, "bank-gold", target_override(&w.bank, 0.9999))
        .await;
    let shop_gold = w
        .add_override(&draft.name, "shop-gold", target_override(&shop, 0.9999))
        .await;
    w.delete_agreement(&draft.name).await;

    let deletion = w.audit_events(&draft.name).await;
    assert_eq!(rpc_of(&deletion[0]), "DeleteAgreement");
    for removed in [&bank_gold, &shop_gold] {
        let events = w.audit_events(&removed.name).await;
        let rpcs: Vec<&str> = events.iter().map(rpc_of).collect();
        assert_eq!(
            rpcs,
            ["DeleteAgreement", "CreateOverride"],
            "{}",
            removed.name
        );
        let event = &events[0];
        assert_eq!(event.resource, removed.name);
        assert_eq!(event.actor, "tenants/acme/apiKeys/admin");
        assert!(event.after.is_none());
        assert_eq!(
            string_field(&event.before, "consumer"),
            Some(removed.consumer.rsplit('/').next().unwrap().to_string()),
            "the override as it was: {:#?}",
            event.before
        );
        assert_eq!(
            event.event_time, deletion[0].event_time,
            "one change, one time"
        );
        assert_eq!(event.tenant_uid, deletion[0].tenant_uid);
    }
    // The whole trail of the deletion: the agreement and its two overrides.
    let all = w.audit_events("").await;
    assert_eq!(
        all.iter()
            .filter(|e| rpc_of(e) == "DeleteAgreement")
            .count(),
        3
    );
}

async fn known_at_before_the_deletion_resolves_as_the_registry_knew_it_then(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let (with_override, deleted) = ghost_scenario(&w).await;

    // While the override existed, its agreement was a draft: nothing was in
    // force, so nothing resolves, and the explanation shows the override as
    // the registry held it then, on an agreement that was not the base.
    for known_at in [with_override, deleted] {
        let status = assert_code(
            w.resolve(&w.bank, &w.payments, None, Some(known_at)).await,
            Code::NotFound,
        );
        assert_reason(&status, "NOT_FOUND");
    }
    let then = w
        .explain(&w.bank, &w.payments, None, Some(with_override))
        .await
        .unwrap();
    assert!(then.entitlement.is_none());
    let outcomes: Vec<(i32, &str, i32)> = then
        .layers
        .iter()
        .map(|l| {
            (
                l.kind,
                l.source.as_ref().unwrap().r#override.as_str(),
                l.outcome,
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                pb::LayerKind::Base as i32,
                "",
                pb::LayerOutcome::NotRecorded as i32
            ),
            (
                pb::LayerKind::Override as i32,
                "tenants/acme/agreements/sla/overrides/bank-gold",
                pb::LayerOutcome::BaseNotApplied as i32
            ),
        ],
        "{then:#?}"
    );
    // Once it was deleted, the override is gone from every later known_at.
    let after = w
        .explain(&w.bank, &w.payments, None, Some(deleted))
        .await
        .unwrap();
    assert!(
        after
            .layers
            .iter()
            .all(|l| l.kind != pb::LayerKind::Override as i32),
        "{after:#?}"
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
    World::new(&s, "acme").await;
    let old_uid = s.get_tenant("acme").await.uid;
    s.force_delete_tenant("acme").await;
    let new_uid = s.create_tenant("acme", "Another organisation").await.uid;

    let store = PostgresStore::connect(&s.database_url, 1, std::time::Duration::from_secs(30))
        .await
        .unwrap();
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
    assert_eq!(every_uid(unfiltered), std::slice::from_ref(&new_uid));
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

// --- migration 0006 on a registry that has been used -----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_0006_backfills_uids_and_closes_left_open_history() {
    migration_0006_backfills_uids_and_closes_left_open_history(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_0006_backfills_uids_and_closes_left_open_history() {
    migration_0006_backfills_uids_and_closes_left_open_history(Backend::Postgres).await;
}

/// A connection that looks under the store: the superuser's on PostgreSQL,
/// so that row-level security does not hide the rows.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

enum Arg {
    Text(&'static str),
    Time(chrono::DateTime<chrono::Utc>),
    Body(serde_json::Value),
}

impl Raw {
    async fn exec(&self, sql: &'static str, args: Vec<Arg>) {
        match self {
            Raw::Sqlite(pool) => {
                let mut q = sqlx::query(sql);
                for a in args {
                    q = match a {
                        Arg::Text(t) => q.bind(t),
                        Arg::Time(t) => q.bind(t.timestamp_micros()),
                        Arg::Body(b) => q.bind(b.to_string()),
                    };
                }
                q.execute(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Raw::Postgres(pool) => {
                let mut q = sqlx::query(sql);
                for a in args {
                    q = match a {
                        Arg::Text(t) => q.bind(t),
                        Arg::Time(t) => q.bind(t),
                        Arg::Body(b) => q.bind(sqlx::types::Json(b)),
                    };
                }
                q.execute(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// One text column of each row, in order.
    async fn texts(&self, sql: &'static str) -> Vec<String> {
        match self {
            Raw::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
            Raw::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        }
    }

    /// `recorded_until` of an override's history, in microseconds.
    async fn recorded_until(&self, agreement: &str) -> Option<i64> {
        let sql = "SELECT recorded_until FROM override_history WHERE agreement_id = $1";
        match self {
            Raw::Sqlite(pool) => sqlx::query_scalar(sql)
                .bind(agreement)
                .fetch_one(pool)
                .await
                .unwrap(),
            Raw::Postgres(pool) => {
                sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(sql)
                    .bind(agreement)
                    .fetch_one(pool)
                    .await
                    .unwrap()
                    .map(|t| t.timestamp_micros())
            }
        }
    }
}

fn time(text: &str) -> chrono::DateTime<chrono::Utc> {
    text.parse().unwrap()
}

fn tenant_body(id: &str, created: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "display_name": id,
        "labels": {},
        "meta": {"etag": "0", "create_time": created, "update_time": created},
    })
}

fn event_body(tenant: &str, id: &str, at: &str, method: &str, resource: &str) -> serde_json::Value {
    serde_json::json!({
        "tenant": tenant,
        "id": id,
        "event_time": at,
        "actor": "bootstrap",
        "method": format!("/accord.v1.{method}"),
        "resource": resource,
        "request_id": "",
        "before": null,
        "after": null,
    })
}

async fn migration_0006_backfills_uids_and_closes_left_open_history(backend: Backend) {
    init_logs();
    let Some((db, url)) = TestDb::create(backend).await else {
        return;
    };
    // The schema as released before 0006.
    let dir = match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    };
    let migrator =
        sqlx::migrate::Migrator::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
            .await
            .unwrap();
    let raw = match backend {
        Backend::Sqlite => {
            let options = url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            migrator.run_to(5, &pool).await.unwrap();
            Raw::Sqlite(pool)
        }
        Backend::Postgres => {
            let owner = sqlx::PgPool::connect(&db.migration_url().unwrap())
                .await
                .unwrap();
            migrator.run_to(5, &owner).await.unwrap();
            owner.close().await;
            Raw::Postgres(
                sqlx::PgPool::connect(&db.admin_url().unwrap())
                    .await
                    .unwrap(),
            )
        }
    };

    // acme was created at `created` (nanoseconds in the body, as serde writes
    // them) after an earlier acme was deleted a microsecond before; `gone`
    // has been deleted. acme's draft `sla` had the override `gold` and was
    // deleted, leaving its history open; `lost` lost its override with no
    // trace in the audit trail; `live` still has its override.
    let created = "2026-03-01T12:00:00.123456789Z";
    let acme_body = tenant_body("acme", created);
    raw.exec(
        "INSERT INTO tenants (id, body) VALUES ($1, $2)",
        vec![Arg::Text("acme"), Arg::Body(acme_body.clone())],
    )
    .await;
    let events = [
        (
            "acme",
            "e-old",
            "2026-03-01T12:00:00.123455Z",
            "TenantService/DeleteTenant",
            "tenants/acme",
        ),
        (
            "acme",
            "e-create",
            "2026-03-01T12:00:00.123456Z",
            "TenantService/CreateTenant",
            "tenants/acme",
        ),
        (
            "acme",
            "e-party",
            "2026-03-01T12:01:00Z",
            "PartyService/CreateParty",
            "tenants/acme/parties/bank",
        ),
        (
            "acme",
            "e-delete",
            "2026-03-01T12:03:00.5Z",
            "AgreementService/DeleteAgreement",
            "tenants/acme/agreements/sla",
        ),
        (
            "gone",
            "e-gone",
            "2026-02-01T00:00:00Z",
            "TenantService/CreateTenant",
            "tenants/gone",
        ),
    ];
    for (tenant, id, at, method, resource) in events {
        raw.exec(
            "INSERT INTO audit_events (tenant, id, event_time, actor, resource, body) \
             VALUES ($1, $2, $3, 'bootstrap', $4, $5)",
            vec![
                Arg::Text(tenant),
                Arg::Text(id),
                Arg::Time(time(at)),
                Arg::Text(resource),
                Arg::Body(event_body(tenant, id, at, method, resource)),
            ],
        )
        .await;
    }
    raw.exec(
        "INSERT INTO parties (tenant, id, kind, body) VALUES ('acme', 'bank', 'CUSTOMER', $1)",
        vec![Arg::Body(serde_json::json!({}))],
    )
    .await;
    raw.exec(
        "INSERT INTO agreements (tenant, id, kind, state, provider, effective_from, body) \
         VALUES ('acme', 'live', 'SERVICE_LEVEL', 'DRAFT', 'bank', $1, $2)",
        vec![Arg::Time(time(created)), Arg::Body(serde_json::json!({}))],
    )
    .await;
    raw.exec(
        "INSERT INTO overrides (tenant, agreement_id, id, consumer, body) \
         VALUES ('acme', 'live', 'gold', 'bank', $1)",
        vec![Arg::Body(serde_json::json!({}))],
    )
    .await;
    for agreement in ["sla", "lost", "live"] {
        raw.exec(
            "INSERT INTO override_history \
             (tenant, agreement_id, override_id, consumer, recorded_from, body) \
             VALUES ('acme', $1, 'gold', 'bank', $2, $3)",
            vec![
                Arg::Text(agreement),
                Arg::Time(time("2026-03-01T12:02:00Z")),
                Arg::Body(serde_json::json!({})),
            ],
        )
        .await;
    }
    let earlier_acme = tenant_body("acme", "2026-01-01T00:00:00Z");
    for (request_id, response) in [("r-now", acme_body), ("r-before", earlier_acme)] {
        raw.exec(
            "INSERT INTO request_ids (tenant, request_id, fingerprint, response, create_time) \
             VALUES ('', $1, 'f', $2, $3)",
            vec![
                Arg::Text(request_id),
                Arg::Body(response),
                Arg::Time(time(created)),
            ],
        )
        .await;
    }

    // The server applies 0006 as it starts.
    let platform_key = new_platform_key();
    let config = accord::config::Config {
        database_url: url.clone(),
        migration_database_url: db.migration_url(),
        bootstrap_key: Some(accord::domain::api_key::Secret::new(platform_key.clone())),
        ..accord::config::Config::default()
    };
    let (_, channel, stop, _task) = spawn_server(config).await;

    let uid = raw.texts("SELECT uid FROM tenants").await.remove(0);
    assert_eq!(uid.len(), 36, "a UUID: {uid}");
    assert_eq!(&uid[14..15], "4", "{uid}");
    assert_eq!(
        raw.texts("SELECT body ->> 'uid' FROM tenants").await,
        std::slice::from_ref(&uid)
    );
    let stamps = raw
        .texts(
            "SELECT id || '=' || tenant_uid || '=' || (body ->> 'tenant_uid') \
             FROM audit_events ORDER BY id",
        )
        .await;
    let expected: Vec<String> = [
        ("e-create", uid.as_str()),
        ("e-delete", &uid),
        ("e-gone", ""),
        ("e-old", ""),
        ("e-party", &uid),
    ]
    .iter()
    .map(|(id, u)| format!("{id}={u}={u}"))
    .collect();
    assert_eq!(stamps, expected);
    assert_eq!(
        raw.texts(
            "SELECT request_id || '=' || (response ->> 'uid') FROM request_ids ORDER BY request_id"
        )
        .await,
        ["r-before=".to_string(), format!("r-now={uid}")]
    );
    assert_eq!(
        raw.recorded_until("sla").await,
        Some(time("2026-03-01T12:03:00.5Z").timestamp_micros()),
        "closed when its agreement was deleted"
    );
    let lost = raw.recorded_until("lost").await.expect("closed");
    assert!(
        lost > time("2026-11-01T00:00:00Z").timestamp_micros(),
        "closed now"
    );
    assert_eq!(raw.recorded_until("live").await, None, "still current");
    match &raw {
        Raw::Sqlite(pool) => {
            let error = sqlx::query("UPDATE audit_events SET actor = 'x'")
                .execute(pool)
                .await
                .unwrap_err();
            assert!(error.to_string().contains("append-only"), "{error}");
        }
        Raw::Postgres(pool) => {
            let not_forced: Vec<String> = sqlx::query_scalar(
                "SELECT relname::text FROM pg_class WHERE relname IN \
                 ('tenants', 'audit_events', 'request_ids', 'overrides', 'override_history') \
                 AND NOT (relrowsecurity AND relforcerowsecurity)",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            assert!(
                not_forced.is_empty(),
                "RLS no longer forced on {not_forced:?}"
            );
        }
    }

    // Through the API: acme lists its own events, the platform admin every
    // trail of the id.
    let mut audit = AuditServiceClient::new(tonic::service::interceptor::InterceptedService::new(
        channel.clone(),
        Bearer::new(&platform_key),
    ));
    let ids = |events: Vec<pb::AuditEvent>| -> Vec<String> {
        events
            .into_iter()
            .map(|e| e.name.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    let own = list_all(&mut audit, list_request("acme", false))
        .await
        .unwrap();
    assert_eq!(ids(own), ["e-delete", "e-party", "e-create"]);
    let every = list_all(&mut audit, list_request("acme", true))
        .await
        .unwrap();
    assert_eq!(ids(every), ["e-delete", "e-party", "e-create", "e-old"]);
    let gone = list_all(&mut audit, list_request("gone", true))
        .await
        .unwrap();
    assert_eq!(ids(gone), ["e-gone"]);
    let tenant = pb::tenant_service_client::TenantServiceClient::new(
        tonic::service::interceptor::InterceptedService::new(channel, Bearer::new(&platform_key)),
    )
    .get_tenant(pb::GetTenantRequest {
        name: "tenants/acme".into(),
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(tenant.uid, uid);
    let _ = stop.send(());
    match raw {
        Raw::Sqlite(pool) => pool.close().await,
        Raw::Postgres(pool) => pool.close().await,
    }
}
