//! The audit trail: every change writes one event in its own transaction;
//! failed and no-op calls write none; ListAuditEvents filters and pages; the
//! trail is append-only.

use accord::proto::v1 as pb;
use prost_types::value::Kind;
use prost_types::{FieldMask, Timestamp};
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    changes_are_recorded_with_actor_method_and_before_after,
    failed_and_unchanged_calls_write_no_event,
    filters_and_pages_narrow_the_trail,
    bad_filters_are_refused,
    api_key_events_never_show_the_hash,
);

fn create_party(tenant: &str, id: &str, request_id: &str) -> pb::CreatePartyRequest {
    pb::CreatePartyRequest {
        parent: tenant.into(),
        party_id: id.into(),
        party: Some(pb::Party {
            kind: pb::PartyKind::Customer.into(),
            display_name: "Before".into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
    }
}

fn rename_party(party: &pb::Party, display_name: &str) -> pb::UpdatePartyRequest {
    pb::UpdatePartyRequest {
        party: Some(pb::Party {
            name: party.name.clone(),
            display_name: display_name.into(),
            etag: party.etag.clone(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["display_name".into()],
        }),
    }
}

async fn changes_are_recorded_with_actor_method_and_before_after(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut parties = w.parties();
    let created = parties
        .create_party(create_party(&w.tenant, "shop", "req-1"))
        .await
        .unwrap()
        .into_inner();
    let updated = parties
        .update_party(rename_party(&created, "After"))
        .await
        .unwrap()
        .into_inner();
    parties
        .delete_party(pb::DeletePartyRequest {
            name: created.name.clone(),
            etag: updated.etag.clone(),
        })
        .await
        .unwrap();

    let events = w.audit_events(&created.name).await;
    assert_eq!(
        events.iter().map(rpc_of).collect::<Vec<_>>(),
        ["DeleteParty", "UpdateParty", "CreateParty"],
        "newest first"
    );
    let [delete, update, create] = &events[..] else {
        unreachable!()
    };
    for e in &events {
        assert_eq!(e.actor, "tenants/acme/apiKeys/admin");
        assert_eq!(e.resource, created.name);
        assert!(
            e.name.starts_with("tenants/acme/auditEvents/"),
            "{}",
            e.name
        );
        assert!(e.method.starts_with("/accord.v1.PartyService/"));
    }
    assert_eq!(create.request_id, "req-1");
    assert_eq!(update.request_id, "");
    assert!(create.before.is_none());
    assert_eq!(
        string_field(&create.after, "display_name").as_deref(),
        Some("Before")
    );
    assert_eq!(
        string_field(&update.before, "display_name").as_deref(),
        Some("Before")
    );
    assert_eq!(
        string_field(&update.after, "display_name").as_deref(),
        Some("After")
    );
    assert_eq!(
        string_field(&delete.before, "display_name").as_deref(),
        Some("After")
    );
    assert!(delete.after.is_none());
    let time = |e: &pb::AuditEvent| {
        let t = e.event_time.unwrap();
        (t.seconds, t.nanos)
    };
    assert!(time(create) <= time(update) && time(update) <= time(delete));

    // Platform changes are recorded too, with the bootstrap key as actor.
    let tenant_events = w.audit_events(&w.tenant).await;
    assert_eq!(tenant_events.len(), 1);
    assert_eq!(tenant_events[0].actor, "bootstrap");
    assert_eq!(
        tenant_events[0].method,
        "/accord.v1.TenantService/CreateTenant"
    );
}

async fn failed_and_unchanged_calls_write_no_event(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut parties = w.parties();
    let created = parties
        .create_party(create_party(&w.tenant, "shop", "req-1"))
        .await
        .unwrap()
        .into_inner();
    // A retry of the create replays its answer and changes nothing.
    parties
        .create_party(create_party(&w.tenant, "shop", "req-1"))
        .await
        .unwrap();
    // A stale etag is refused.
    let stale = pb::Party {
        etag: "stale".into(),
        ..created.clone()
    };
    assert_code(
        parties.update_party(rename_party(&stale, "After")).await,
        Code::Aborted,
    );
    // A change the domain refuses.
    assert_invalid_field(
        parties
            .update_party(rename_party(&created, &"x".repeat(10_000)))
            .await,
        "party.display_name",
    );
    // Deleting a party still in use is refused.
    assert_code(
        parties
            .delete_party(pb::DeletePartyRequest {
                name: w.provider.clone(),
                etag: String::new(),
            })
            .await,
        Code::FailedPrecondition,
    );
    let events = w.audit_events(&created.name).await;
    assert_eq!(events.len(), 1, "only the first create: {events:#?}");
    let provider_events = w.audit_events(&w.provider).await;
    assert_eq!(provider_events.len(), 1, "only the world's create");
}

async fn list(w: &World, request: pb::ListAuditEventsRequest) -> Vec<pb::AuditEvent> {
    w.audit()
        .list_audit_events(request)
        .await
        .unwrap()
        .into_inner()
        .audit_events
}

async fn filters_and_pages_narrow_the_trail(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let editor = w.key("editor", pb::Role::Editor).await;
    let before_editor = std::time::SystemTime::now();
    let mut parties = w.calling_with(&editor).parties();
    for i in 0..5 {
        parties
            .create_party(create_party(&w.tenant, &format!("p{i}"), ""))
            .await
            .unwrap();
    }
    let all = list(
        &w,
        pb::ListAuditEventsRequest {
            parent: w.tenant.clone(),
            page_size: 1000,
            ..Default::default()
        },
    )
    .await;
    // Tenant, two keys, two parties, one service (World::new), then five parties.
    assert_eq!(all.len(), 11, "{all:#?}");

    // Paging one at a time gives the same events in the same order.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = w
            .audit()
            .list_audit_events(pb::ListAuditEventsRequest {
                parent: w.tenant.clone(),
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        paged.extend(page.audit_events);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, all);

    let by_actor = list(
        &w,
        pb::ListAuditEventsRequest {
            parent: w.tenant.clone(),
            actor: "tenants/acme/apiKeys/editor".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_actor.len(), 5);
    let by_bootstrap = list(
        &w,
        pb::ListAuditEventsRequest {
            parent: w.tenant.clone(),
            actor: "bootstrap".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        by_bootstrap.len(),
        3,
        "the tenant and two keys: {by_bootstrap:#?}"
    );

    let since = Timestamp::from(before_editor);
    let recent = list(
        &w,
        pb::ListAuditEventsRequest {
            parent: w.tenant.clone(),
            start_time: Some(since),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(recent, by_actor);
    let older = list(
        &w,
        pb::ListAuditEventsRequest {
            parent: w.tenant.clone(),
            end_time: Some(since),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(older.len() + recent.len(), all.len());
    assert!(older.iter().all(|e| !by_actor.contains(e)));

    // A page token only continues the list it came from.
    let first = w
        .audit()
        .list_audit_events(pb::ListAuditEventsRequest {
            parent: w.tenant.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_invalid_field(
        w.audit()
            .list_audit_events(pb::ListAuditEventsRequest {
                parent: w.tenant.clone(),
                page_size: 1,
                page_token: first.next_page_token,
                actor: "bootstrap".into(),
                ..Default::default()
            })
            .await,
        "page_token",
    );
}

async fn bad_filters_are_refused(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let request = |f: fn(&mut pb::ListAuditEventsRequest)| {
        let mut r = pb::ListAuditEventsRequest {
            parent: w.tenant.clone(),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    type Tweak = fn(&mut pb::ListAuditEventsRequest);
    let cases: [(Tweak, &str); 6] = [
        (
            |r| r.resource = "tenants/other/parties/x".into(),
            "resource",
        ),
        (|r| r.resource = "tenants/acmex".into(), "resource"),
        (|r| r.actor = "tenants/other/apiKeys/admin".into(), "actor"),
        (
            |r| {
                r.start_time = Some(Timestamp {
                    seconds: 0,
                    nanos: -1,
                })
            },
            "start_time",
        ),
        (
            |r| {
                r.start_time = Some(ts(JAN_2026));
                r.end_time = Some(ts(JAN_2026));
            },
            "end_time",
        ),
        (|r| r.page_token = "garbage".into(), "page_token"),
    ];
    for (tweak, bad_field) in cases {
        assert_invalid_field(w.audit().list_audit_events(request(tweak)).await, bad_field);
    }
    assert_code(
        w.audit()
            .list_audit_events(pb::ListAuditEventsRequest {
                parent: "tenants/other".into(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );
}

async fn api_key_events_never_show_the_hash(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let mut keys = s.api_keys();
    let key = keys
        .create_api_key(pb::CreateApiKeyRequest {
            parent: w.tenant.clone(),
            api_key_id: "ci".into(),
            api_key: Some(pb::ApiKey {
                role: pb::Role::Reader.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let api_key = key.api_key.unwrap();
    keys.revoke_api_key(pb::RevokeApiKeyRequest {
        name: api_key.name.clone(),
        etag: api_key.etag.clone(),
    })
    .await
    .unwrap();
    let events = w.audit_events(&api_key.name).await;
    assert_eq!(events.len(), 2);
    for e in &events {
        for snapshot in [&e.before, &e.after].into_iter().flatten() {
            assert!(!snapshot.fields.contains_key("key_hash"), "{snapshot:?}");
            let text = format!("{snapshot:?}");
            assert!(!text.contains(&key.secret[4..]), "the secret leaked");
        }
    }
    assert_eq!(
        string_field(&events[1].after, "role").as_deref(),
        Some("READER")
    );
    assert!(snapshot_field(&events[0].before, "revoke_time") == Some(&Kind::NullValue(0)));
    assert!(matches!(
        snapshot_field(&events[0].after, "revoke_time"),
        Some(Kind::StringValue(_))
    ));
}

/// SQLite has no privileges: triggers keep the trail append-only there. (On
/// PostgreSQL the server's role lacks the privileges: row_level_security.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_to_change_or_delete_audit_events() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    World::new(&s, "acme").await;
    let pool = sqlx::SqlitePool::connect(&s.database_url).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(events > 0);
    for sql in [
        "UPDATE audit_events SET actor = 'someone else'",
        "DELETE FROM audit_events",
    ] {
        let error = sqlx::query(sql).execute(&pool).await.unwrap_err();
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    pool.close().await;
}
