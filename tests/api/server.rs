use std::time::Duration;

use accord::proto::v1 as pb;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::on_both_backends;
use crate::support::*;

async fn health_reports_serving_for_every_service(s: TestServer) {
    for service in [
        "",
        "accord.v1.TenantService",
        "accord.v1.PartyService",
        "accord.v1.ServiceCatalogService",
        "accord.v1.AgreementService",
    ] {
        assert_eq!(
            health_of(s.channel.clone(), service).await.unwrap(),
            ServingStatus::Serving,
            "{service}"
        );
    }
}

async fn oversized_messages_are_refused(s: TestServer) {
    let huge = "x".repeat(5 * 1024 * 1024);
    let result = s
        .tenants()
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "acme".into(),
            tenant: Some(pb::Tenant {
                display_name: huge,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await;
    // tonic answers a message over the decoding limit with OUT_OF_RANGE.
    let status = assert_code(result, Code::OutOfRange);
    assert!(status.message().contains("4194304"), "{status:?}");
}

on_both_backends!(
    health_reports_serving_for_every_service,
    oversized_messages_are_refused
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_load_is_shed_with_resource_exhausted() {
    // One tenant may use the whole limit here, so the server's limit refuses.
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.max_concurrent_requests = 2;
        c.max_concurrent_requests_per_tenant = Some(2);
    })
    .await
    .unwrap();
    let w = World::new(&server, "acme").await;
    let calls = (0..64).map(|_| {
        let mut api = w.agreements();
        tokio::spawn(async move {
            api.list_agreements(pb::ListAgreementsRequest {
                parent: "tenants/acme".into(),
                ..Default::default()
            })
            .await
        })
    });
    let results = futures::future::join_all(calls).await;
    let shed: Vec<_> = results
        .into_iter()
        .map(|r| r.unwrap())
        .filter_map(|r| r.err())
        .collect();
    assert!(
        !shed.is_empty(),
        "64 concurrent calls over a limit of 2 shed some"
    );
    for status in &shed {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_reason(status, "OVERLOADED");
    }
    // Health checks are never shed.
    assert_eq!(
        health_of(server.channel.clone(), "").await.unwrap(),
        ServingStatus::Serving
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_not_serving_and_lets_calls_finish() {
    let (db, url) = TestDb::create(Backend::Sqlite).await.unwrap();
    let config = accord::config::Config {
        database_url: url,
        drain_delay: Duration::ZERO,
        shutdown_grace: Duration::from_secs(5),
        ..Default::default()
    };
    let (_, channel, stop, task) = spawn_server(config).await;
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    stop.send(()).unwrap();
    let update = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("a health update as shutdown starts")
        .expect("the watch stream is still open")
        .expect("a message");
    assert_eq!(update.status(), ServingStatus::NotServing);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("server stops within the grace period")
        .unwrap()
        .unwrap();
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_errors_reveal_no_sql() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let w = World::new(&server, "acme").await;
    // Break the database behind the server's back.
    let pool = sqlx::SqlitePool::connect(&server.database_url)
        .await
        .unwrap();
    sqlx::query("DROP TABLE agreement_labels")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let status = assert_code(
        w.agreements()
            .create_agreement(pb::CreateAgreementRequest {
                parent: "tenants/acme".into(),
                agreement_id: "a".into(),
                agreement: Some(pb::Agreement {
                    labels: [("tier".to_string(), "gold".to_string())].into(),
                    ..w.standard_sla()
                }),
                request_id: String::new(),
            })
            .await,
        Code::Internal,
    );
    assert_eq!(status.message(), "internal error");
    assert!(
        !format!("{status:?}")
            .to_lowercase()
            .contains("agreement_labels")
    );
}

/// Holds SQLite's write lock from outside the server, so the server's next
/// write waits (up to its busy timeout) until the returned guard is released.
async fn hold_write_lock(url: &str) -> sqlx::pool::PoolConnection<sqlx::Sqlite> {
    use sqlx::Executor;
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    conn.execute("BEGIN IMMEDIATE").await.unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_end_at_their_grpc_timeout() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let _lock = hold_write_lock(&server.database_url).await;
    let mut request = tonic::Request::new(pb::CreateTenantRequest {
        tenant_id: "acme".into(),
        tenant: None,
        request_id: String::new(),
    });
    request.set_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let status = server.tenants().create_tenant(request).await.unwrap_err();
    let elapsed = started.elapsed();
    // Without the deadline the write would wait for the lock for 10 seconds.
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_calls_finish_during_shutdown() {
    let (db, url) = TestDb::create(Backend::Sqlite).await.unwrap();
    let platform_key = new_platform_key();
    let config = accord::config::Config {
        database_url: url.clone(),
        drain_delay: Duration::ZERO,
        shutdown_grace: Duration::from_secs(10),
        bootstrap_key: Some(accord::domain::api_key::Secret::new(platform_key.clone())),
        ..Default::default()
    };
    let (_, channel, stop, task) = spawn_server(config).await;
    let lock = hold_write_lock(&url).await;
    let mut tenants = pb::tenant_service_client::TenantServiceClient::with_interceptor(
        channel,
        Bearer::new(&platform_key),
    );
    let call = tokio::spawn(async move {
        tenants
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "acme".into(),
                tenant: None,
                request_id: String::new(),
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !call.is_finished(),
        "the call is still waiting for the lock"
    );
    drop(lock);
    let created = call.await.unwrap().expect("the in-flight call completes");
    assert_eq!(created.into_inner().name, "tenants/acme");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server stops once the call is done")
        .unwrap()
        .unwrap();
    drop(db);
}
