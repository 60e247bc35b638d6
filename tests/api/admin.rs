//! The admin HTTP server, on a port of its own: `/livez` while the process
//! runs, `/readyz` while it serves and its database answers, `/metrics` in
//! Prometheus text from the same meter provider as OTLP.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use accord::proto::v1 as pb;
use accord::store::Store;
use sqlx::Connection;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(backend:
    livez_and_readyz_answer_200_while_serving,
    metrics_show_the_entitlement_cache_after_calls,
    readyz_fails_while_the_database_is_unreachable,
    readyz_fails_once_shutdown_starts
);

fn admin_port(s: &TestServer) -> u16 {
    s.admin_port.expect("the test server runs the admin server")
}

async fn get(port: u16, path: &str) -> HttpAnswer {
    http_get(port, path)
        .await
        .unwrap_or_else(|| panic!("no HTTP answer to GET {path}"))
}

/// Waits until `/readyz` says ready: the server reports it once it serves
/// gRPC, a moment after its port accepts connections.
async fn until_ready(port: u16) {
    let ready = async || get(port, "/readyz").await.status == 200;
    eventually(Duration::from_secs(10), ready).await;
}

async fn livez_and_readyz_answer_200_while_serving(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let port = admin_port(&s);
    assert_ne!(port, s.port);
    let live = get(port, "/livez").await;
    assert_eq!(live.status, 200, "{live:?}");
    until_ready(port).await;
    let ready = get(port, "/readyz").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(get(port, "/nothing-here").await.status, 404);
    // The gRPC port speaks HTTP/2 only and serves none of it.
    for path in ["/livez", "/readyz", "/metrics"] {
        if let Some(answer) = http_get(s.port, path).await {
            assert_ne!(answer.status, 200, "{path} on the gRPC port: {answer:?}");
            assert!(!answer.body.contains("accord_"), "{answer:?}");
        }
    }
}

/// The one sample of `name` in `scrape`, from Accord's meter.
fn value(scrape: &Scrape, name: &str) -> f64 {
    let series = scrape
        .samples
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from {scrape:?}"));
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0].labels["otel_scope_name"], "accord");
    series[0].value
}

const HITS: &str = "accord_entitlement_cache_hits_total";
const MISSES: &str = "accord_entitlement_cache_misses_total";

async fn metrics_show_the_entitlement_cache_after_calls(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let port = admin_port(&s);
    let w = World::new(&s, "t").await;
    w.publish("sla", w.sla(vec![availability(0.99)])).await;
    let mut client = w.entitlements();
    for _ in 0..4 {
        assert_eq!(w.availability_of(&mut client).await, Ok(0.99));
    }
    let first = scrape(port).await;
    assert_eq!(first.types[HITS], "counter");
    assert_eq!(first.types["accord_entitlement_cache_entries"], "gauge");
    assert_eq!(
        first.samples["target_info"][0].labels["service_name"],
        "accord"
    );
    let (hits, misses) = (value(&first, HITS), value(&first, MISSES));
    assert!(misses >= 1.0 && hits + misses <= 4.0, "{first:?}");
    assert_eq!(
        value(&first, "accord_entitlement_cache_hit_ratio"),
        hits / (hits + misses)
    );
    if backend == Backend::Sqlite {
        // One miss, then three hits, as OTLP reports them. (PostgreSQL
        // bypasses or drops the cache until its LISTEN connection is up.)
        assert_eq!((misses, hits), (1.0, 3.0));
        assert_eq!(value(&first, "accord_entitlement_cache_entries"), 1.0);
    }
    // Once the cache answers, each resolution is one more hit.
    let warm = async || {
        assert_eq!(w.availability_of(&mut w.entitlements()).await, Ok(0.99));
        value(&scrape(port).await, HITS) > hits
    };
    eventually(Duration::from_secs(10), warm).await;
    let before = scrape(port).await;
    assert_eq!(w.availability_of(&mut client).await, Ok(0.99));
    let after = scrape(port).await;
    assert_eq!(value(&after, HITS), value(&before, HITS) + 1.0);
    assert_eq!(value(&after, MISSES), value(&before, MISSES));
}

async fn readyz_fails_while_the_database_is_unreachable(backend: Backend) {
    let store: Arc<Mutex<Option<Arc<dyn Store>>>> = Arc::default();
    let kept = store.clone();
    let Some(s) = TestServer::start_prepared(
        backend,
        |_| {},
        move |app| *kept.lock().unwrap() = Some(app.store().clone()),
    )
    .await
    else {
        return;
    };
    let port = admin_port(&s);
    until_ready(port).await;
    match &s.db {
        // An embedded database has no server to lose: what the server loses
        // is its pool, closed under it.
        TestDb::Sqlite { .. } => {
            let store = store.lock().unwrap().take().unwrap();
            store.close().await;
        }
        // Refuse new connections to the server's database and end the ones
        // it holds, as a failover or a network partition would.
        TestDb::Postgres { admin_url, name } => {
            let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
            set_allow_connections(&mut admin, name, false).await;
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(name)
            .execute(&mut admin)
            .await
            .unwrap();
        }
    }
    let unready = async || get(port, "/readyz").await.status == 503;
    eventually(Duration::from_secs(10), unready).await;
    let answer = get(port, "/readyz").await;
    assert!(answer.body.contains("database"), "{answer:?}");
    // The process is fine: restarting it would not bring the database back.
    assert_eq!(get(port, "/livez").await.status, 200);
    if let TestDb::Postgres { admin_url, name } = &s.db {
        let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
        set_allow_connections(&mut admin, name, true).await;
        until_ready(port).await;
    }
}

async fn set_allow_connections(admin: &mut sqlx::PgConnection, database: &str, allow: bool) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {database} ALLOW_CONNECTIONS {allow}"
    )))
    .execute(admin)
    .await
    .unwrap();
}

/// Holds a lock that keeps the server's next tenant creation waiting: the
/// write lock on SQLite, the `tenants` table on PostgreSQL.
pub(crate) enum TenantsLock {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::PgConnection),
}

impl TenantsLock {
    pub(crate) async fn take(db: &TestDb, url: &str) -> Self {
        use sqlx::Executor;
        match db.admin_url() {
            None => {
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                let mut conn = pool.acquire().await.unwrap();
                conn.execute("BEGIN IMMEDIATE").await.unwrap();
                TenantsLock::Sqlite(conn)
            }
            Some(admin_url) => {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
                conn.execute("BEGIN; LOCK TABLE tenants IN EXCLUSIVE MODE")
                    .await
                    .unwrap();
                TenantsLock::Postgres(conn)
            }
        }
    }

    pub(crate) async fn release(self) {
        use sqlx::Executor;
        match self {
            TenantsLock::Sqlite(mut conn) => drop(conn.execute("ROLLBACK").await.unwrap()),
            TenantsLock::Postgres(mut conn) => drop(conn.execute("ROLLBACK").await.unwrap()),
        }
    }
}

async fn readyz_fails_once_shutdown_starts(backend: Backend) {
    let Some((db, url)) = TestDb::create(backend).await else {
        return;
    };
    let platform_key = new_platform_key();
    let config = test_config(&url, &db, &platform_key);
    let mut admin_port = None;
    let (_, channel, stop, task) =
        spawn_prepared(config, |app| admin_port = app.admin_port()).await;
    let port = admin_port.unwrap();
    until_ready(port).await;
    // A call in flight keeps the server draining while we look.
    let lock = TenantsLock::take(&db, &url).await;
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
    let unready = async || get(port, "/readyz").await.status == 503;
    eventually(Duration::from_secs(5), unready).await;
    assert_eq!(get(port, "/readyz").await.body, "not serving\n");
    assert_eq!(get(port, "/livez").await.status, 200);
    assert!(!call.is_finished(), "the call is still in flight");
    lock.release().await;
    let created = call.await.unwrap().expect("the in-flight call completes");
    assert_eq!(created.into_inner().name, "tenants/acme");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server stops once the call is done")
        .unwrap()
        .unwrap();
    // The admin server stops with the server.
    assert!(http_get(port, "/livez").await.is_none());
    drop(db);
}
