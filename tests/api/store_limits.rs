//! Limits the store must hold without failing a valid call: PostgreSQL's NOTIFY
//! payload (a change to many services still reaches other replicas), how long
//! a request_id is remembered (AIP-155), and how long a statement may run (no
//! query outlives its call's deadline).

use std::sync::Arc;
use std::time::Duration;

use accord::config::Config;
use accord::domain::names::Id;
use accord::proto::v1 as pb;
use accord::store::{self, Access, Store};
use chrono::Utc;
use pb::entitlement_service_client::EntitlementServiceClient;
use tonic::Code;

use crate::entitlement_cache::{eventually, second_replica};
use crate::on_both_backends;
use crate::support::*;

// --- a change to many services --------------------------------------------------

/// `n` services of the seed's provider, each with a 63-character id (the
/// longest an id may be).
async fn long_named_services(s: &TestServer, seed: &Seed, n: usize) -> Vec<String> {
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("service-{i:03}-{}", "x".repeat(51));
        assert_eq!(id.len(), 63);
        let created = s
            .services()
            .create_service(pb::CreateServiceRequest {
                parent: seed.tenant.clone(),
                service_id: id,
                service: Some(pb::Service {
                    owner: seed.provider.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("create service")
            .into_inner();
        names.push(created.name);
    }
    names
}

/// Creates and publishes a SERVICE_LEVEL agreement over `services`.
async fn publish_sla(
    s: &TestServer,
    seed: &Seed,
    services: &[String],
) -> Result<pb::Agreement, tonic::Status> {
    let draft = seed
        .create_agreement(
            s,
            "wide",
            pb::Agreement {
                services: services.to_vec(),
                objectives: vec![availability(0.99)],
                ..seed.service_level()
            },
        )
        .await;
    s.agreements()
        .publish_agreement(pb::PublishAgreementRequest {
            name: draft.name,
            etag: draft.etag,
        })
        .await
        .map(|r| r.into_inner())
}

async fn an_agreement_over_150_long_named_services_publishes(s: TestServer) {
    let seed = seed(&s, "t").await;
    let services = long_named_services(&s, &seed, 150).await;

    let published = publish_sla(&s, &seed, &services).await;

    let published = published.expect("publishing a valid agreement succeeds");
    assert_eq!(published.state, pb::AgreementState::Active as i32);
    assert_eq!(published.services.len(), 150);
}

/// The availability target `client` resolves for the seed's customer on
/// `service`, or the code of its error.
async fn target_on<T>(
    client: &mut EntitlementServiceClient<T>,
    seed: &Seed,
    service: &str,
) -> Result<f64, Code>
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    client
        .resolve_entitlement(pb::ResolveEntitlementRequest {
            parent: seed.tenant.clone(),
            consumer: seed.customer.clone(),
            service: service.into(),
            ..Default::default()
        })
        .await
        .map(|r| {
            r.into_inner().objectives[0]
                .objective
                .as_ref()
                .expect("objective")
                .target
        })
        .map_err(|status| status.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_replicas_follow_a_change_to_150_long_named_services() {
    let Some(first) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let seed = seed(&first, "t").await;
    let services = long_named_services(&first, &seed, 150).await;
    let (channel, _replica) = second_replica(&first).await;
    let mut other = EntitlementServiceClient::new(
        tonic::service::interceptor::InterceptedService::new(channel, Bearer::new(&seed.admin_key)),
    );
    let (head, tail) = (&services[0], &services[149]);
    // Cached on the other replica: no entitlement yet.
    for service in [head, tail] {
        assert_eq!(
            target_on(&mut other, &seed, service).await,
            Err(Code::NotFound)
        );
        assert_eq!(
            target_on(&mut other, &seed, service).await,
            Err(Code::NotFound)
        );
    }

    let published = publish_sla(&first, &seed, &services)
        .await
        .expect("publishing on the first replica succeeds");

    for service in [head, tail] {
        eventually(Duration::from_secs(1), || {
            let mut other = other.clone();
            let seed = &seed;
            async move { target_on(&mut other, seed, service).await == Ok(0.99) }
        })
        .await;
    }
    // Cached there now; an update through the first replica replaces it.
    assert_eq!(target_on(&mut other, &seed, tail).await, Ok(0.99));
    first
        .agreements()
        .update_agreement(pb::UpdateAgreementRequest {
            agreement: Some(pb::Agreement {
                name: published.name.clone(),
                etag: published.etag.clone(),
                objectives: vec![availability(0.995)],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["objectives".into()],
            }),
        })
        .await
        .expect("update on the first replica");
    for service in [head, tail] {
        eventually(Duration::from_secs(1), || {
            let mut other = other.clone();
            let seed = &seed;
            async move { target_on(&mut other, seed, service).await == Ok(0.995) }
        })
        .await;
    }
}

on_both_backends!(an_agreement_over_150_long_named_services_publishes);

// --- request_id expiry ------------------------------------------------------------

/// A request_id window short enough to wait out in a test.
const SHORT_TTL: Duration = Duration::from_secs(2);

/// Generates one test per backend for each named `async fn(TestServer)`, on a
/// server that remembers request_ids for `SHORT_TTL`.
macro_rules! with_short_request_id_ttl {
    ($($name:ident),* $(,)?) => {
        mod short_ttl {
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::super::on_short_ttl(
                            $crate::support::Backend::Sqlite,
                            super::super::$name,
                        )
                        .await
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::super::on_short_ttl(
                            $crate::support::Backend::Postgres,
                            super::super::$name,
                        )
                        .await
                    }
                )*
            }
        }
    };
}

async fn on_short_ttl<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestServer) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let tweak = |c: &mut Config| c.request_id_ttl = SHORT_TTL;
    if let Some(server) = TestServer::start_with(backend, tweak).await {
        test(server).await;
    }
}

fn create_party(
    seed: &Seed,
    id: &str,
    display_name: &str,
    request_id: &str,
) -> pb::CreatePartyRequest {
    pb::CreatePartyRequest {
        parent: seed.tenant.clone(),
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
    let seed = seed(&s, "t").await;
    let mut parties = s.parties();
    let request = create_party(&seed, "shop", "Shop", "req-shop");
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
            .create_party(create_party(&seed, "kiosk", "Kiosk", "req-shop"))
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
    let recreated = parties
        .get_party(pb::GetPartyRequest {
            name: first.name.clone(),
        })
        .await
        .expect("the party exists again")
        .into_inner();
    let seconds = |p: &pb::Party| p.create_time.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(seconds(&recreated) > seconds(&first));
    // The new request owns the id now: its retry replays it.
    let retry = parties.create_party(request).await.unwrap().into_inner();
    assert_eq!(retry, recreated);

    // An expired id may carry another request.
    parties
        .create_party(create_party(&seed, "cafe", "Cafe", "req-cafe"))
        .await
        .unwrap();
    eventually(SHORT_TTL * 3, || {
        let mut parties = parties.clone();
        let seed = &seed;
        async move {
            parties
                .create_party(create_party(seed, "bakery", "Bakery", "req-cafe"))
                .await
                .is_ok()
        }
    })
    .await;
    assert_eq!(
        s.audit_events("tenants/t", "tenants/t/parties/bakery")
            .await
            .len(),
        1
    );
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
    let seed = seed(&s, "t").await;
    for i in 0..5 {
        s.parties()
            .create_party(create_party(
                &seed,
                &format!("p{i}"),
                "P",
                &format!("req-{i}"),
            ))
            .await
            .unwrap();
    }
    assert_eq!(request_id_rows(&s).await, 5);

    let took = eventually(SHORT_TTL * 4, || async { request_id_rows(&s).await == 0 }).await;

    println!("swept {took:?} after they were recorded");
}

with_short_request_id_ttl!(
    a_request_id_is_remembered_for_its_ttl_and_new_after_it,
    expired_request_ids_are_swept_from_the_database,
);

fn id(s: &str) -> Id {
    Id::parse("id", s).unwrap()
}

/// The store on a fresh database, without a server (so without a sweeper).
async fn open_store(backend: Backend) -> Option<(TestDb, Arc<dyn Store>)> {
    let (db, url) = TestDb::create(backend).await?;
    let owner_url = db.migration_url().unwrap_or_else(|| url.clone());
    store::migrate(&owner_url, &url).await.unwrap();
    let store = store::connect(&url, 2, Duration::from_secs(5))
        .await
        .unwrap();
    Some((db, store))
}

/// Correctness does not wait for the sweeper: a claim of an expired id takes
/// it over, whatever request it carried.
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

/// Generates one test per backend for each named `async fn(Backend)`.
macro_rules! on_each_store {
    ($($name:ident),* $(,)?) => {
        mod store_level {
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::super::$name($crate::support::Backend::Sqlite).await
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::super::$name($crate::support::Backend::Postgres).await
                    }
                )*
            }
        }
    };
}

on_each_store!(
    a_claim_takes_over_an_expired_request_id,
    expired_request_ids_are_deleted_in_bounded_batches,
);

// --- deadlines ----------------------------------------------------------------------

/// An update of the seed's customer that waits for at most `timeout`.
fn rename_customer(
    seed: &Seed,
    timeout: Option<Duration>,
) -> tonic::Request<pb::UpdatePartyRequest> {
    let mut request = tonic::Request::new(pb::UpdatePartyRequest {
        party: Some(pb::Party {
            name: seed.customer.clone(),
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

/// Nothing was written: the customer keeps its name and its one audit event.
async fn assert_customer_unchanged(s: &TestServer, seed: &Seed) {
    let customer = s
        .parties()
        .get_party(pb::GetPartyRequest {
            name: seed.customer.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(customer.display_name, "bank");
    assert_eq!(s.audit_events(&seed.tenant, &seed.customer).await.len(), 1);
}

/// An admin connection holding the row lock of the seed's customer in an
/// open transaction, until it is rolled back.
async fn lock_customer_row(s: &TestServer) -> sqlx::PgConnection {
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
    let seed = seed(&s, "t").await;
    let mut lock = lock_customer_row(&s).await;

    let status = assert_code(
        s.parties()
            .update_party(rename_customer(&seed, Some(Duration::from_millis(300))))
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
    assert_customer_unchanged(&s, &seed).await;
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
    let seed = seed(&s, "t").await;
    let mut lock = lock_customer_row(&s).await;

    // No grpc-timeout: the call has the server's 30 s, its statements 500 ms.
    let started = std::time::Instant::now();
    let status = assert_code(
        s.parties().update_party(rename_customer(&seed, None)).await,
        Code::DeadlineExceeded,
    );

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_reason(&status, "DEADLINE_EXCEEDED");
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    assert_customer_unchanged(&s, &seed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_past_its_deadline_on_sqlite_fails_in_time_and_writes_nothing() {
    let Some(s) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let seed = seed(&s, "t").await;
    // SQLite's write lock, held from outside the server.
    let pool = sqlx::SqlitePool::connect(&s.database_url).await.unwrap();
    let mut lock = pool.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *lock)
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let status = assert_code(
        s.parties()
            .update_party(rename_customer(&seed, Some(Duration::from_millis(300))))
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
    assert_customer_unchanged(&s, &seed).await;
    // The server is not stuck behind the abandoned write.
    let renamed = s
        .parties()
        .update_party(rename_customer(&seed, Some(Duration::from_secs(5))))
        .await
        .expect("a write once the lock is free")
        .into_inner();
    assert_eq!(renamed.display_name, "renamed");
}
