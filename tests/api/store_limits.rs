//! Limits the store must hold without failing a valid call: PostgreSQL's NOTIFY
//! payload (a change to many services still reaches other replicas), how long
//! a request_id is remembered (AIP-155), how long a statement may run (no
//! query outlives its call's deadline), and what a transaction the database
//! aborts in a deadlock tells its client (retry: UNAVAILABLE).

use std::time::Duration;

use accord::config::Config;
use accord::domain::names::Id;
use accord::proto::v1 as pb;
use accord::store::Access;
use chrono::Utc;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

// --- a change to many services --------------------------------------------------

/// `n` services of the provider, each with a 63-character id (the longest
/// an id may be).
async fn long_named_services(w: &World, n: usize) -> Vec<String> {
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("service-{i:03}-{}", "x".repeat(51));
        assert_eq!(id.len(), 63);
        names.push(w.service(&id).await);
    }
    names
}

/// Creates and publishes a SERVICE_LEVEL agreement over `services`.
async fn publish_sla(w: &World, services: &[String]) -> Result<pb::Agreement, tonic::Status> {
    let draft = w
        .draft(
            "wide",
            pb::Agreement {
                services: services.to_vec(),
                ..w.sla(vec![availability(0.99)])
            },
        )
        .await;
    w.try_publish(&draft.name).await
}

async fn an_agreement_over_150_long_named_services_publishes(s: TestServer) {
    let w = World::new(&s, "t").await;
    let services = long_named_services(&w, 150).await;

    let published = publish_sla(&w, &services).await;

    let published = published.expect("publishing a valid agreement succeeds");
    assert_eq!(published.state, pb::AgreementState::Active as i32);
    assert_eq!(published.services.len(), 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_replicas_follow_a_change_to_150_long_named_services() {
    let Some(first) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let w = World::new(&first, "t").await;
    let services = long_named_services(&w, 150).await;
    let replica = first.second_replica().await;
    let mut other = replica.clients(&w.admin_key).entitlements();
    let (head, tail) = (&services[0], &services[149]);
    // Cached on the other replica: no entitlement yet.
    for service in [head, tail] {
        assert_eq!(
            w.availability_on(&mut other, service).await,
            Err(Code::NotFound)
        );
        assert_eq!(
            w.availability_on(&mut other, service).await,
            Err(Code::NotFound)
        );
    }

    let published = publish_sla(&w, &services)
        .await
        .expect("publishing on the first replica succeeds");

    for service in [head, tail] {
        eventually(Duration::from_secs(1), || {
            let (mut other, w) = (other.clone(), &w);
            async move { w.availability_on(&mut other, service).await == Ok(0.99) }
        })
        .await;
    }
    // Cached there now; an update through the first replica replaces it.
    assert_eq!(w.availability_on(&mut other, tail).await, Ok(0.99));
    w.update(
        &published.name,
        pb::Agreement {
            etag: published.etag.clone(),
            objectives: vec![availability(0.995)],
            ..Default::default()
        },
        &["objectives"],
    )
    .await;
    for service in [head, tail] {
        eventually(Duration::from_secs(1), || {
            let (mut other, w) = (other.clone(), &w);
            async move { w.availability_on(&mut other, service).await == Ok(0.995) }
        })
        .await;
    }
}

on_both_backends!(an_agreement_over_150_long_named_services_publishes);

// --- request_id expiry ------------------------------------------------------------

/// A request_id window short enough to wait out in a test.
const SHORT_TTL: Duration = Duration::from_secs(2);

/// Servers that remember request_ids for `SHORT_TTL`.
fn short_request_id_ttl(c: &mut Config) {
    c.request_id_ttl = SHORT_TTL;
}

fn create_party(
    w: &World,
    id: &str,
    display_name: &str,
    request_id: &str,
) -> pb::CreatePartyRequest {
    pb::CreatePartyRequest {
        parent: w.tenant.clone(),
        party_id: id.into(),
        party: Some(pb::Party {
            kind: pb::PartyKind::Customer.into(),
            display_name: display_name.into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
    }
}

async fn a_request_id_is_remembered_for_its_ttl_and_new_after_it(s: TestServer) {
    let w = World::new(&s, "t").await;
    let mut parties = w.parties();
    let request = create_party(&w, "shop", "Shop", "req-shop");
    let first = parties
        .create_party(request.clone())
        .await
        .unwrap()
        .into_inner();
    // Within the window: a retry replays, another request under the id is refused.
    let retry = parties
        .create_party(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry, first);
    assert_invalid_field(
        parties
            .create_party(create_party(&w, "kiosk", "Kiosk", "req-shop"))
            .await,
        "request_id",
    );
    parties
        .delete_party(pb::DeletePartyRequest {
            name: first.name.clone(),
            etag: String::new(),
        })
        .await
        .expect("delete");

    // After it: the same request creates the deleted party again.
    eventually(SHORT_TTL * 3, || {
        let mut parties = parties.clone();
        let request = request.clone();
        let first = first.clone();
        async move {
            let answer = parties.create_party(request).await.unwrap().into_inner();
            answer != first
        }
    })
    .await;
    let recreated = w.get_party(&first.name).await;
    let seconds = |p: &pb::Party| p.create_time.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(seconds(&recreated) > seconds(&first));
    // The new request owns the id now: its retry replays it.
    let retry = parties.create_party(request).await.unwrap().into_inner();
    assert_eq!(retry, recreated);

    // An expired id may carry another request.
    parties
        .create_party(create_party(&w, "cafe", "Cafe", "req-cafe"))
        .await
        .unwrap();
    eventually(SHORT_TTL * 3, || {
        let mut parties = parties.clone();
        let w = &w;
        async move {
            parties
                .create_party(create_party(w, "bakery", "Bakery", "req-cafe"))
                .await
                .is_ok()
        }
    })
    .await;
    assert_eq!(w.audit_events("tenants/t/parties/bakery").await.len(), 1);
}

/// How many request_ids the database holds, read behind the server's back.
async fn request_id_rows(s: &TestServer) -> i64 {
    let sql = "SELECT COUNT(*) FROM request_ids";
    match s.db.admin_url() {
        Some(admin) => {
            let pool = sqlx::PgPool::connect(&admin).await.unwrap();
            let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
        None => {
            let pool = sqlx::SqlitePool::connect(&s.database_url).await.unwrap();
            let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
    }
}

async fn expired_request_ids_are_swept_from_the_database(s: TestServer) {
    let w = World::new(&s, "t").await;
    for i in 0..5 {
        w.parties()
            .create_party(create_party(&w, &format!("p{i}"), "P", &format!("req-{i}")))
            .await
            .unwrap();
    }
    assert_eq!(request_id_rows(&s).await, 5);

    let took = eventually(SHORT_TTL * 4, || async { request_id_rows(&s).await == 0 }).await;

    println!("swept {took:?} after they were recorded");
}

mod short_ttl {
    use super::*;
    on_both_backends!(
        configured by short_request_id_ttl:
        a_request_id_is_remembered_for_its_ttl_and_new_after_it,
        expired_request_ids_are_swept_from_the_database,
    );
}

fn id(s: &str) -> Id {
    Id::parse("id", s).unwrap()
}

/// Correctness does not wait for the sweeper: a claim of an expired id takes
/// it over, whatever request it carried. (`open_store` runs no server, so no
/// sweeper.)
async fn a_claim_takes_over_an_expired_request_id(backend: Backend) {
    let Some((_db, store)) = open_store(backend).await else {
        return;
    };
    let t = id("t");
    let now = Utc::now();
    let hour = chrono::Duration::hours(1);
    let mut tx = store.begin(Some(&t), Access::Write).await.unwrap();
    assert!(
        tx.claim_request("t", "r", "first", now, now + hour)
            .await
            .unwrap()
            .is_none()
    );
    tx.complete_request("t", "r", &serde_json::json!({"first": true}))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin(Some(&t), Access::Write).await.unwrap();
    let within = tx
        .claim_request("t", "r", "second", now + hour / 2, now + hour * 3 / 2)
        .await
        .unwrap()
        .expect("remembered within its window");
    assert_eq!(within.fingerprint, "first");
    assert_eq!(within.response, Some(serde_json::json!({"first": true})));
    let later = now + hour * 2;
    assert!(
        tx.claim_request("t", "r", "second", later, later + hour)
            .await
            .unwrap()
            .is_none(),
        "an expired id is new"
    );
    let retry = tx
        .claim_request("t", "r", "second", later, later + hour)
        .await
        .unwrap()
        .expect("the new request owns it");
    assert_eq!(retry.fingerprint, "second");
    assert_eq!(retry.response, None);
    tx.commit().await.unwrap();
}

/// The sweeper's statement deletes expired ids of every tenant (and of the
/// platform), at most `limit` at a time, and nothing else.
async fn expired_request_ids_are_deleted_in_bounded_batches(backend: Backend) {
    let Some((_db, store)) = open_store(backend).await else {
        return;
    };
    let now = Utc::now();
    let minute = chrono::Duration::minutes(1);
    for (tenant, request_id, expire_time) in [
        ("", "platform-old", now - minute),
        ("a", "a-old", now - minute),
        ("a", "a-live", now + minute),
        ("b", "b-old", now - minute),
        ("b", "b-older", now - minute * 2),
    ] {
        let scope = (!tenant.is_empty()).then(|| id(tenant));
        let mut tx = store.begin(scope.as_ref(), Access::Write).await.unwrap();
        tx.claim_request(tenant, request_id, "f", now - minute * 3, expire_time)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    let mut batches = Vec::new();
    loop {
        let mut tx = store.begin(None, Access::Write).await.unwrap();
        let deleted = tx.delete_expired_requests(now, 3).await.unwrap();
        tx.commit().await.unwrap();
        batches.push(deleted);
        if deleted < 3 {
            break;
        }
    }

    assert_eq!(batches, vec![3, 1]);
    let mut tx = store.begin(Some(&id("a")), Access::Write).await.unwrap();
    let live = tx
        .claim_request("a", "a-live", "other", now, now + minute)
        .await
        .unwrap()
        .expect("the live id is still there");
    assert_eq!(live.fingerprint, "f");
}

mod store_level {
    use super::*;
    on_both_backends!(
        backend: a_claim_takes_over_an_expired_request_id,
        expired_request_ids_are_deleted_in_bounded_batches,
    );
}

// --- deadlines ----------------------------------------------------------------------

/// An update of the bank that waits for at most `timeout`.
fn rename_bank(w: &World, timeout: Option<Duration>) -> tonic::Request<pb::UpdatePartyRequest> {
    let mut request = tonic::Request::new(pb::UpdatePartyRequest {
        party: Some(pb::Party {
            name: w.bank.clone(),
            display_name: "renamed".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["display_name".into()],
        }),
    });
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    request
}

/// Nothing was written: the bank keeps its name and its one audit event.
async fn assert_bank_unchanged(w: &World) {
    assert_eq!(w.get_party(&w.bank).await.display_name, "bank");
    assert_eq!(w.audit_events(&w.bank).await.len(), 1);
}

/// An admin connection holding the row lock of the bank in an
/// open transaction, until it is rolled back.
async fn lock_bank_row(s: &TestServer) -> sqlx::PgConnection {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&s.db.admin_url().expect("postgres"))
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut admin).await.unwrap();
    sqlx::query("SELECT id FROM parties WHERE tenant = 't' AND id = 'bank' FOR UPDATE")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    admin
}

/// Queries of the server's role that run or wait now.
async fn server_queries_running(s: &TestServer) -> Vec<String> {
    let admin = sqlx::PgPool::connect(&s.db.admin_url().expect("postgres"))
        .await
        .unwrap();
    let running = sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity WHERE datname = current_database() \
         AND usename = $1 AND (state = 'active' OR wait_event_type = 'Lock')",
    )
    .bind(PG_SERVER_ROLE)
    .fetch_all(&admin)
    .await
    .unwrap();
    admin.close().await;
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_past_its_deadline_leaves_no_query_running_and_writes_nothing() {
    let Some(s) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let w = World::new(&s, "t").await;
    let mut lock = lock_bank_row(&s).await;

    let status = assert_code(
        w.parties()
            .update_party(rename_bank(&w, Some(Duration::from_millis(300))))
            .await,
        Code::DeadlineExceeded,
    );

    assert_reason(&status, "DEADLINE_EXCEEDED");
    let cleared = eventually(Duration::from_secs(1), || async {
        server_queries_running(&s).await.is_empty()
    })
    .await;
    println!("the server's query was gone {cleared:?} after the call failed");
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    assert_bank_unchanged(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_the_server_maximum_is_deadline_exceeded() {
    let Some(s) = TestServer::start_with(Backend::Postgres, |c| {
        c.statement_timeout = Duration::from_millis(500);
    })
    .await
    else {
        return;
    };
    let w = World::new(&s, "t").await;
    let mut lock = lock_bank_row(&s).await;

    // No grpc-timeout: the call has the server's 30 s, its statements 500 ms.
    let started = std::time::Instant::now();
    let status = assert_code(
        w.parties().update_party(rename_bank(&w, None)).await,
        Code::DeadlineExceeded,
    );

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_reason(&status, "DEADLINE_EXCEEDED");
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    assert_bank_unchanged(&w).await;
}

// --- contention ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_victim_is_unavailable_and_the_same_call_then_succeeds() {
    let Some(s) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let w = World::new(&s, "t").await;
    let mut lock = lock_bank_row(&s).await;
    // The admin's transaction waits long before it looks for a deadlock,
    // so that the server's (one second) finds it and is the victim.
    sqlx::query("SET LOCAL deadlock_timeout = '10s'")
        .execute(&mut lock)
        .await
        .unwrap();

    // The update takes the tenant's lock, then waits for the bank's row.
    let mut parties = w.parties();
    let request = rename_bank(&w, None);
    let update = tokio::spawn(async move { parties.update_party(request).await });
    eventually(Duration::from_secs(5), || async {
        !server_queries_running(&s).await.is_empty()
    })
    .await;
    // The admin now waits for the tenant's lock: a deadlock.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('accord.tenant:t', 0))")
        .execute(&mut lock)
        .await
        .unwrap();

    let status = assert_code(update.await.unwrap(), Code::Unavailable);
    assert_reason(&status, "CONTENTION");
    assert!(status.message().contains("retry"), "{status:?}");
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    assert_bank_unchanged(&w).await;
    // Nothing was written: the same call, made again, goes through.
    w.parties()
        .update_party(rename_bank(&w, None))
        .await
        .expect("the update, retried");
    assert_eq!(w.get_party(&w.bank).await.display_name, "renamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_past_its_deadline_on_sqlite_fails_in_time_and_writes_nothing() {
    let Some(s) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let w = World::new(&s, "t").await;
    // SQLite's write lock, held from outside the server.
    let pool = sqlx::SqlitePool::connect(&s.database_url).await.unwrap();
    let mut lock = pool.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *lock)
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let status = assert_code(
        w.parties()
            .update_party(rename_bank(&w, Some(Duration::from_millis(300))))
            .await,
        Code::DeadlineExceeded,
    );

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_reason(&status, "DEADLINE_EXCEEDED");
    sqlx::query("ROLLBACK").execute(&mut *lock).await.unwrap();
    drop(lock);
    assert_bank_unchanged(&w).await;
    // The server is not stuck behind the abandoned write.
    let renamed = w
        .parties()
        .update_party(rename_bank(&w, Some(Duration::from_secs(5))))
        .await
        .expect("a write once the lock is free")
        .into_inner();
    assert_eq!(renamed.display_name, "renamed");
}
