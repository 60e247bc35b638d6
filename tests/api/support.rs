//! The test harness: the real server on 127.0.0.1:0 with a fresh database per
//! test, on SQLite (a temporary file) or PostgreSQL (a database created for the
//! test and dropped after it). PostgreSQL tests run when
//! `ACCORD_TEST_DATABASE_URL` names a server; set and unreachable, they fail.

use std::future::Future;
use std::time::Duration;

use accord::app::Application;
use accord::config::Config;
use accord::proto::v1 as pb;
use pb::agreement_service_client::AgreementServiceClient;
use pb::api_key_service_client::ApiKeyServiceClient;
use pb::audit_service_client::AuditServiceClient;
use pb::entitlement_service_client::EntitlementServiceClient;
use pb::party_service_client::PartyServiceClient;
use pb::service_catalog_service_client::ServiceCatalogServiceClient;
use pb::tenant_service_client::TenantServiceClient;
use sqlx::Connection;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

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
        let _ = accord::telemetry::init("info,accord=debug", accord::config::LogFormat::Text);
    }
}

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    pub fn new(key: &str) -> Self {
        Bearer(Some(format!("Bearer {key}").parse().expect("ASCII key")))
    }

    /// No credentials at all.
    pub fn none() -> Self {
        Bearer(None)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Authed = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

/// A running server and clients for it. Tenant calls use the bootstrap
/// (PLATFORM_ADMIN) key; the others use the TENANT_ADMIN key of the first
/// tenant `seed` made, or whatever `use_key` set.
pub struct TestServer {
    pub port: u16,
    pub database_url: String,
    pub channel: Channel,
    pub platform_key: String,
    key: std::sync::Mutex<Option<String>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Last, so the database outlives the server.
    pub db: TestDb,
}

/// A random bootstrap key for one test server.
pub fn new_platform_key() -> String {
    format!("acc_platform_{}", hex::encode(rand::random::<[u8; 16]>()))
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
        let mut config = Config {
            database_url: url.clone(),
            migration_database_url: db.migration_url(),
            max_connections: 5,
            bootstrap_key: Some(accord::domain::api_key::Secret::new(platform_key.clone())),
            ..Config::default()
        };
        tweak(&mut config);
        let (port, channel, stop, task) = spawn_prepared(config, prepare).await;
        Some(Self {
            port,
            database_url: url,
            channel,
            platform_key,
            key: std::sync::Mutex::new(None),
            stop: Some(stop),
            task: Some(task),
            db,
        })
    }

    /// The key tenant-scoped clients use from now on.
    pub fn use_key(&self, key: &str) {
        *self.key.lock().unwrap() = Some(key.to_string());
    }

    fn tenant_bearer(&self) -> Bearer {
        match &*self.key.lock().unwrap() {
            Some(key) => Bearer::new(key),
            None => Bearer::new(&self.platform_key),
        }
    }

    pub fn authed(&self, bearer: Bearer) -> Authed {
        tonic::service::interceptor::InterceptedService::new(self.channel.clone(), bearer)
    }

    pub fn tenants(&self) -> TenantServiceClient<Authed> {
        TenantServiceClient::new(self.authed(Bearer::new(&self.platform_key)))
    }

    pub fn api_keys(&self) -> ApiKeyServiceClient<Authed> {
        ApiKeyServiceClient::new(self.authed(Bearer::new(&self.platform_key)))
    }

    pub fn parties(&self) -> PartyServiceClient<Authed> {
        PartyServiceClient::new(self.authed(self.tenant_bearer()))
    }

    pub fn services(&self) -> ServiceCatalogServiceClient<Authed> {
        ServiceCatalogServiceClient::new(self.authed(self.tenant_bearer()))
    }

    pub fn agreements(&self) -> AgreementServiceClient<Authed> {
        AgreementServiceClient::new(self.authed(self.tenant_bearer()))
    }

    pub fn audit(&self) -> AuditServiceClient<Authed> {
        AuditServiceClient::new(self.authed(self.tenant_bearer()))
    }

    pub fn entitlements(&self) -> EntitlementServiceClient<Authed> {
        EntitlementServiceClient::new(self.authed(self.tenant_bearer()))
    }

    /// Every audit event of `tenant` about `resource`, newest first (pages
    /// end early when their events are large).
    pub async fn audit_events(&self, tenant: &str, resource: &str) -> Vec<pb::AuditEvent> {
        let (mut events, mut page_token) = (Vec::new(), String::new());
        loop {
            let page = self
                .audit()
                .list_audit_events(pb::ListAuditEventsRequest {
                    parent: tenant.into(),
                    resource: resource.into(),
                    page_size: 1000,
                    page_token,
                    ..Default::default()
                })
                .await
                .expect("list audit events")
                .into_inner();
            events.extend(page.audit_events);
            if page.next_page_token.is_empty() {
                return events;
            }
            page_token = page.next_page_token;
        }
    }

    /// Creates a key with `role` in `tenant` (with the bootstrap key) and
    /// returns its secret.
    pub async fn create_key(&self, tenant: &str, id: &str, role: pb::Role) -> String {
        self.api_keys()
            .create_api_key(pb::CreateApiKeyRequest {
                parent: format!("tenants/{tenant}"),
                api_key_id: id.into(),
                api_key: Some(pb::ApiKey {
                    role: role.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("create API key")
            .into_inner()
            .secret
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
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

/// Runs `test` against a fresh server on `backend`; skips PostgreSQL when it
/// is not configured.
pub async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestServer) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(server) = TestServer::start(backend).await {
        test(server).await;
    }
}

/// Generates one test per backend for each named `async fn(TestServer)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::support::run($crate::support::Backend::Sqlite, super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::support::run($crate::support::Backend::Postgres, super::$name).await
                }
            )*
        }
    };
}

// --- assertions --------------------------------------------------------------

/// Asserts an INVALID_ARGUMENT whose BadRequest names `field`.
#[track_caller]
pub fn assert_invalid_field<T: std::fmt::Debug>(result: Result<T, Status>, field: &str) {
    let status = result.expect_err("expected INVALID_ARGUMENT");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert!(
        fields.iter().any(|f| f == field),
        "expected a violation on `{field}`, got {fields:?} ({})",
        status.message()
    );
}

/// Asserts the code of a failed call and returns its status.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    let status = result.expect_err(&format!("expected {code:?}"));
    assert_eq!(status.code(), code, "{status:?}");
    status
}

/// Asserts the ErrorInfo reason of a status.
#[track_caller]
pub fn assert_reason(status: &Status, reason: &str) {
    let info = status.get_details_error_info().expect("ErrorInfo detail");
    assert_eq!(info.reason, reason, "{status:?}");
}

// --- fixtures ------------------------------------------------------------------

pub fn ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// 2026-01-01T00:00:00Z
pub const JAN_2026: i64 = 1_767_225_600;
pub const DAY: i64 = 86_400;

pub fn availability(target: f64) -> pb::Objective {
    pb::Objective {
        key: "availability".into(),
        display_name: "Availability".into(),
        indicator: "http_success".into(),
        kind: pb::ObjectiveKind::Ratio.into(),
        target,
        window: Some(pb::Window {
            window: Some(pb::window::Window::Rolling(pb::RollingWindow {
                duration: Some(prost_types::Duration {
                    seconds: 30 * DAY,
                    nanos: 0,
                }),
            })),
        }),
        ..Default::default()
    }
}

/// A tenant `t` with a provider `platform`, a customer `bank` and a service
/// `payments` owned by the provider.
pub struct Seed {
    pub tenant: String,
    /// The secret of the tenant's TENANT_ADMIN key `admin`.
    pub admin_key: String,
    pub provider: String,
    pub customer: String,
    pub service: String,
}

pub async fn seed(s: &TestServer, t: &str) -> Seed {
    s.tenants()
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: t.into(),
            tenant: Some(pb::Tenant {
                display_name: format!("Tenant {t}"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create tenant");
    let tenant = format!("tenants/{t}");
    let admin = s.create_key(t, "admin", pb::Role::TenantAdmin).await;
    if s.key.lock().unwrap().is_none() {
        s.use_key(&admin);
    }
    let parties = PartyServiceClient::new(s.authed(Bearer::new(&admin)));
    let services = ServiceCatalogServiceClient::new(s.authed(Bearer::new(&admin)));
    let party = |id: &str, kind: pb::PartyKind| pb::CreatePartyRequest {
        parent: tenant.clone(),
        party_id: id.into(),
        party: Some(pb::Party {
            kind: kind.into(),
            display_name: id.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let provider = parties
        .clone()
        .create_party(party("platform", pb::PartyKind::Provider))
        .await
        .expect("create provider")
        .into_inner()
        .name;
    let customer = parties
        .clone()
        .create_party(party("bank", pb::PartyKind::Customer))
        .await
        .expect("create customer")
        .into_inner()
        .name;
    let service = services
        .clone()
        .create_service(pb::CreateServiceRequest {
            parent: tenant.clone(),
            service_id: "payments".into(),
            service: Some(pb::Service {
                display_name: "Payments".into(),
                owner: provider.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create service")
        .into_inner()
        .name;
    Seed {
        tenant,
        admin_key: admin,
        provider,
        customer,
        service,
    }
}

impl Seed {
    /// A valid SERVICE_LEVEL agreement on the seed's service from 2026-01-01.
    pub fn service_level(&self) -> pb::Agreement {
        pb::Agreement {
            display_name: "Payments SLA".into(),
            kind: pb::AgreementKind::ServiceLevel.into(),
            provider: self.provider.clone(),
            services: vec![self.service.clone()],
            effective_from: Some(ts(JAN_2026)),
            objectives: vec![availability(0.999)],
            ..Default::default()
        }
    }

    /// A valid CUSTOMER agreement for the seed's customer.
    pub fn customer_agreement(&self) -> pb::Agreement {
        pb::Agreement {
            kind: pb::AgreementKind::Customer.into(),
            consumer: self.customer.clone(),
            ..self.service_level()
        }
    }

    pub async fn create_agreement(
        &self,
        s: &TestServer,
        id: &str,
        agreement: pb::Agreement,
    ) -> pb::Agreement {
        s.agreements()
            .create_agreement(pb::CreateAgreementRequest {
                parent: self.tenant.clone(),
                agreement_id: id.into(),
                agreement: Some(agreement),
                request_id: String::new(),
            })
            .await
            .expect("create agreement")
            .into_inner()
    }
}
