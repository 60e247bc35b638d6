//! The server a test talks to: a fresh database on SQLite (a temporary file)
//! or PostgreSQL (a database created for the test and dropped after it), the
//! real application serving it on 127.0.0.1:0, and more replicas on the same
//! database. PostgreSQL tests run when `ACCORD_TEST_DATABASE_URL` names a
//! server; set and unreachable, they fail.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use accord::app::Application;
use accord::config::Config;
use accord::proto::v1 as pb;
use accord::store::Store;
use pb::api_key_service_client::ApiKeyServiceClient;
use pb::tenant_service_client::TenantServiceClient;
use sqlx::Connection;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::clients::{Authed, Bearer, Clients, authed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const PG_URL_VAR: &str = "ACCORD_TEST_DATABASE_URL";

/// The PostgreSQL roles of the test databases, as production has them: the
/// owner runs migrations and owns the tables; the server connects as a role
/// that owns none, is not a superuser and has no BYPASSRLS.
pub const PG_OWNER_ROLE: &str = "accord_test_owner";
pub const PG_SERVER_ROLE: &str = "accord_test_server";

/// A database that lives as long as the test.
pub enum TestDb {
    /// The directory holds the SQLite file and goes with it.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

/// Creates the test roles unless they exist. Roles belong to the cluster, so
/// concurrent tests may race to create them: losing the race is fine.
async fn ensure_pg_roles(conn: &mut sqlx::PgConnection) {
    for (role, attributes) in [
        (
            PG_OWNER_ROLE,
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS",
        ),
        (
            PG_SERVER_ROLE,
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS",
        ),
    ] {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(role)
                .fetch_one(&mut *conn)
                .await
                .expect("read roles");
        if !exists {
            let created = sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE ROLE {role} {attributes}"
            )))
            .execute(&mut *conn)
            .await;
            if let Err(e) = created {
                let code = e.as_database_error().and_then(|d| d.code());
                assert!(
                    matches!(code.as_deref(), Some("42710" | "23505")),
                    "create role {role}: {e}"
                );
            }
        }
    }
}

/// `url` connecting as `role` (no password: the test cluster trusts local
/// connections).
pub fn with_role(url: &str, role: &str) -> String {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => host,
        None => &rest[..authority_end],
    };
    format!(
        "{}{role}@{host}{}",
        &url[..scheme_end],
        &rest[authority_end..]
    )
}

impl TestDb {
    pub async fn create(backend: Backend) -> Option<(TestDb, String)> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite:{}", dir.path().join("accord.db").display());
                Some((TestDb::Sqlite { _dir: dir }, url))
            }
            Backend::Postgres => {
                let admin_url = match std::env::var(PG_URL_VAR) {
                    Ok(url) if !url.is_empty() => url,
                    _ => {
                        eprintln!("skipped: set {PG_URL_VAR} to run the PostgreSQL suite");
                        return None;
                    }
                };
                let name = format!("accord_test_{}", hex::encode(rand::random::<[u8; 6]>()));
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{PG_URL_VAR} is set but PostgreSQL is unreachable: {e}")
                    });
                ensure_pg_roles(&mut conn).await;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE {name} OWNER {PG_OWNER_ROLE}"
                )))
                .execute(&mut conn)
                .await
                .expect("create test database");
                // Test databases need no durability; commits without fsync
                // keep the suite fast.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "ALTER DATABASE {name} SET synchronous_commit = off"
                )))
                .execute(&mut conn)
                .await
                .expect("configure test database");
                let url = with_role(&with_database(&admin_url, &name), PG_SERVER_ROLE);
                Some((TestDb::Postgres { admin_url, name }, url))
            }
        }
    }

    /// The URL migrations run with: the owner role's (PostgreSQL only).
    pub fn migration_url(&self) -> Option<String> {
        match self {
            TestDb::Sqlite { .. } => None,
            TestDb::Postgres { admin_url, name } => {
                Some(with_role(&with_database(admin_url, name), PG_OWNER_ROLE))
            }
        }
    }

    /// A superuser's URL for this database, to inspect it behind RLS's back.
    pub fn admin_url(&self) -> Option<String> {
        match self {
            TestDb::Sqlite { .. } => None,
            TestDb::Postgres { admin_url, name } => Some(with_database(admin_url, name)),
        }
    }

    /// Ends every server's LISTEN connection to this database (PostgreSQL),
    /// as a network fault would; returns how many it ended.
    pub async fn terminate_listeners(&self) -> i64 {
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.admin_url().expect("a PostgreSQL database"))
            .await
            .expect("connect as admin");
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN%accord_changes%' AND datname = current_database()) AS t",
        )
        .fetch_one(&admin)
        .await
        .expect("terminate the listeners");
        admin.close().await;
        killed
    }
}

/// `admin_url` with its database replaced by `name`.
pub fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{base}/{name}{query}")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = accord::telemetry::init("info,accord=debug", accord::config::LogFormat::Text, None);
    }
}

/// The store on a fresh, migrated database, without a server: for tests of
/// the store itself.
pub async fn open_store(backend: Backend) -> Option<(TestDb, Arc<dyn Store>)> {
    let (db, url) = TestDb::create(backend).await?;
    let owner_url = db.migration_url().unwrap_or_else(|| url.clone());
    accord::store::migrate(&owner_url, &url).await.unwrap();
    let store = accord::store::connect(&url, 4, Config::default().statement_timeout)
        .await
        .unwrap();
    Some((db, store))
}

/// A random bootstrap key for one test server.
pub fn new_platform_key() -> String {
    format!("acc_platform_{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// What every test server runs with: `database_url` (migrated as the owner
/// role on PostgreSQL), a small pool, `platform_key` as the bootstrap key and
/// the admin HTTP server on a free port.
pub fn test_config(database_url: &str, db: &TestDb, platform_key: &str) -> Config {
    Config {
        database_url: database_url.into(),
        migration_database_url: db.migration_url(),
        max_connections: 5,
        admin_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        bootstrap_key: Some(accord::domain::api_key::Secret::new(platform_key.into())),
        // Stopping a test server waits for no load balancer.
        drain_delay: std::time::Duration::ZERO,
        ..Config::default()
    }
}

/// A served application: stopped, and its task ended, when this is dropped.
struct Serving {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// A running server on a database of its own. Platform calls (`tenants`,
/// `api_keys`) use the bootstrap (PLATFORM_ADMIN) key; a tenant's calls go
/// through its `World`, or `clients(key)` for any other key.
pub struct TestServer {
    pub port: u16,
    /// The admin HTTP server's port (`None` if a tweak turned it off).
    pub admin_port: Option<u16>,
    pub database_url: String,
    pub channel: Channel,
    pub platform_key: String,
    _serving: Serving,
    // Last, so the database outlives the server.
    pub db: TestDb,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        Self::start_prepared(backend, tweak, |_| {}).await
    }

    /// As `start_with`, and `prepare` may change the application before it
    /// serves (replace a service behind the same layers, as the benchmark does).
    pub async fn start_prepared(
        backend: Backend,
        tweak: impl FnOnce(&mut Config),
        prepare: impl FnOnce(&mut Application),
    ) -> Option<Self> {
        init_logs();
        let (db, url) = TestDb::create(backend).await?;
        let platform_key = new_platform_key();
        let mut config = test_config(&url, &db, &platform_key);
        tweak(&mut config);
        let mut admin_port = None;
        let (port, channel, stop, task) = spawn_prepared(config, |app| {
            admin_port = app.admin_port();
            prepare(app)
        })
        .await;
        Some(Self {
            port,
            admin_port,
            database_url: url,
            channel,
            platform_key,
            _serving: Serving {
                stop: Some(stop),
                task,
            },
            db,
        })
    }

    /// A store on this server's database, connected as the server is: for
    /// reading back what the API stored where no RPC reads it yet.
    pub async fn store(&self) -> Arc<dyn Store> {
        accord::store::connect(&self.database_url, 2, Config::default().statement_timeout)
            .await
            .expect("connect a store to the test server's database")
    }

    pub fn authed(&self, bearer: Bearer) -> Authed {
        authed(&self.channel, bearer)
    }

    /// Clients that call with `key`.
    pub fn clients(&self, key: &str) -> Clients {
        Clients::new(&self.channel, key)
    }

    pub fn tenants(&self) -> TenantServiceClient<Authed> {
        TenantServiceClient::new(self.authed(Bearer::new(&self.platform_key)))
    }

    pub fn api_keys(&self) -> ApiKeyServiceClient<Authed> {
        ApiKeyServiceClient::new(self.authed(Bearer::new(&self.platform_key)))
    }

    /// Creates the tenant `id`, nothing in it (with the bootstrap key).
    pub async fn create_tenant(&self, id: &str, display_name: &str) -> pb::Tenant {
        self.tenants()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: id.into(),
                tenant: Some(pb::Tenant {
                    display_name: display_name.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("create tenant {id}: {e:?}"))
            .into_inner()
    }

    pub async fn get_tenant(&self, id: &str) -> pb::Tenant {
        self.tenants()
            .get_tenant(pb::GetTenantRequest {
                name: format!("tenants/{id}"),
            })
            .await
            .unwrap_or_else(|e| panic!("get tenant {id}: {e:?}"))
            .into_inner()
    }

    /// Deletes the tenant `id` and everything in it.
    pub async fn force_delete_tenant(&self, id: &str) {
        self.tenants()
            .delete_tenant(pb::DeleteTenantRequest {
                name: format!("tenants/{id}"),
                etag: String::new(),
                force: true,
            })
            .await
            .unwrap_or_else(|e| panic!("force-delete tenant {id}: {e:?}"));
    }

    /// Creates a key with `role` in `tenant` (with the bootstrap key) and
    /// returns its secret.
    pub async fn create_key(&self, tenant: &str, id: &str, role: pb::Role) -> String {
        self.create_key_expiring(tenant, id, role, None).await
    }

    /// As `create_key`, the key expiring at `expire_time` when given.
    pub async fn create_key_expiring(
        &self,
        tenant: &str,
        id: &str,
        role: pb::Role,
        expire_time: Option<prost_types::Timestamp>,
    ) -> String {
        create_key(
            &self.clients(&self.platform_key),
            tenant,
            id,
            role,
            expire_time,
        )
        .await
    }

    /// Another replica on this server's database, with the same bootstrap
    /// key and caches of its own, as a second pod would be (PostgreSQL: the
    /// replicas learn of each other's writes through LISTEN/NOTIFY).
    pub async fn second_replica(&self) -> Replica {
        self.second_replica_with(|_| {}).await
    }

    /// As `second_replica`, with the settings `tweak` changes.
    pub async fn second_replica_with(&self, tweak: impl FnOnce(&mut Config)) -> Replica {
        let mut config = test_config(&self.database_url, &self.db, &self.platform_key);
        tweak(&mut config);
        let (_, channel, stop, task) = spawn_server(config).await;
        Replica {
            channel,
            _serving: Serving {
                stop: Some(stop),
                task,
            },
        }
    }
}

/// Creates a key with `role` in `tenant` through `platform` (the bootstrap
/// key's clients) and returns its secret.
pub async fn create_key(
    platform: &Clients,
    tenant: &str,
    id: &str,
    role: pb::Role,
    expire_time: Option<prost_types::Timestamp>,
) -> String {
    platform
        .api_keys()
        .create_api_key(pb::CreateApiKeyRequest {
            parent: format!("tenants/{tenant}"),
            api_key_id: id.into(),
            api_key: Some(pb::ApiKey {
                role: role.into(),
                expire_time,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("create API key {id}: {e:?}"))
        .into_inner()
        .secret
}

/// A second server on a `TestServer`'s database, serving until dropped.
pub struct Replica {
    pub channel: Channel,
    _serving: Serving,
}

impl Replica {
    /// Clients of this replica that call with `key`.
    pub fn clients(&self, key: &str) -> Clients {
        Clients::new(&self.channel, key)
    }
}

/// Builds and serves an application on 127.0.0.1:0; returns its port, a
/// channel to it, a stop switch and the serving task.
pub async fn spawn_server(
    config: Config,
) -> (
    u16,
    Channel,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    spawn_prepared(config, |_| {}).await
}

/// As `spawn_server`, with `prepare` called on the application before it serves.
pub async fn spawn_prepared(
    config: Config,
    prepare: impl FnOnce(&mut Application),
) -> (
    u16,
    Channel,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut app = Application::build(config, listener)
        .await
        .expect("build application");
    prepare(&mut app);
    let port = app.port();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.serve_until(async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to test server");
    (port, channel, stop, task)
}

/// What `grpc.health.v1` says of `service` (`""`: the whole server).
pub async fn health_of(channel: Channel, service: &str) -> Result<ServingStatus, tonic::Status> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?;
    Ok(response.into_inner().status())
}

/// Runs `test` against a fresh server on `backend`; skips PostgreSQL when it
/// is not configured.
pub async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestServer) -> Fut,
    Fut: Future<Output = ()>,
{
    run_configured(backend, |_| {}, test).await
}

/// As `run`, on a server whose configuration `tweak` changed.
pub async fn run_configured<F, Fut>(backend: Backend, tweak: fn(&mut Config), test: F)
where
    F: FnOnce(TestServer) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(server) = TestServer::start_with(backend, tweak).await {
        test(server).await;
    }
}

/// Runs `test`, which starts what it needs itself, with `backend`.
pub async fn run_on<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    test(backend).await
}
