//! Upgrades: a registry used under an older schema keeps resolving after the
//! migrations since. The rows are made by today's server (so their bodies are
//! what the store writes), copied into a database migrated only to 0004, and
//! that database is then served, which applies the rest.

use accord::config::Config;
use accord::domain::api_key::Secret;
use accord::proto::v1 as pb;
use pb::entitlement_service_client::EntitlementServiceClient;

use crate::on_both_backends;
use crate::support::*;

/// The tables and columns that exist at 0004, in an order foreign keys accept.
const TABLES_AT_0004: &[(&str, &str)] = &[
    ("tenants", "id, body"),
    ("parties", "tenant, id, kind, parent, body"),
    ("services", "tenant, id, owner, body"),
    (
        "agreements",
        "tenant, id, kind, state, provider, consumer, effective_from, effective_until, body",
    ),
    ("agreement_services", "tenant, agreement_id, service_id"),
    ("agreement_labels", "tenant, agreement_id, key, value"),
    ("agreement_supports", "tenant, agreement_id, supported_id"),
    (
        "agreement_revisions",
        "tenant, agreement_id, id, seq, create_time, body",
    ),
    ("overrides", "tenant, agreement_id, id, consumer, body"),
];

/// `bank-eu`, a department of `bank`, on `payments`: the SLA's 0.999, raised
/// to 0.9999 by the override for its parent. Every layer of resolution is
/// there: the ancestry, the revision and the override.
async fn used_registry(s: &TestServer) -> World {
    let w = World::new(s, "acme").await;
    w.party("bank-eu", Some(&w.bank)).await;
    let sla = w.draft("sla", w.standard_sla()).await;
    w.add_override(&sla.name, "bank-gold", target_override(&w.bank, 0.9999))
        .await;
    w.publish_draft(&sla.name).await;
    w
}

async fn availability_of_department(
    entitlements: &mut EntitlementServiceClient<Authed>,
    w: &World,
) -> f64 {
    let department = w.name("parties", "bank-eu");
    let entitlement = entitlements
        .resolve_entitlement(w.resolve_request(&department, &w.payments))
        .await
        .expect("resolve the department's entitlement")
        .into_inner();
    entitlement.objectives[0]
        .objective
        .as_ref()
        .expect("objective")
        .target
}

/// Applies the released migrations up to 0004 only.
async fn migrate_to_0004(backend: Backend, db: &TestDb, url: &str) {
    let dir = match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    };
    let migrator =
        sqlx::migrate::Migrator::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
            .await
            .expect("read migrations");
    match backend {
        Backend::Sqlite => {
            let options = url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .expect("SQLite URL")
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            migrator.run_to(4, &pool).await.expect("migrate to 0004");
            pool.close().await;
        }
        Backend::Postgres => {
            let owner = sqlx::PgPool::connect(&db.migration_url().unwrap())
                .await
                .unwrap();
            migrator.run_to(4, &owner).await.expect("migrate to 0004");
            owner.close().await;
        }
    }
}

/// Copies the registry's rows from `from` into `to` (migrated to 0004), under
/// row-level security's back on PostgreSQL.
async fn copy_rows(backend: Backend, from: &TestServer, to: &TestDb, to_url: &str) {
    match backend {
        Backend::Sqlite => {
            let source = from
                .database_url
                .strip_prefix("sqlite:")
                .expect("a SQLite URL");
            let pool = sqlx::SqlitePool::connect(to_url).await.unwrap();
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("ATTACH DATABASE $1 AS source")
                .bind(source)
                .execute(&mut *conn)
                .await
                .expect("attach the source");
            for (table, columns) in TABLES_AT_0004 {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO main.{table} ({columns}) SELECT {columns} FROM source.{table}"
                )))
                .execute(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("copy {table}: {e}"));
            }
            drop(conn);
            pool.close().await;
        }
        Backend::Postgres => {
            let source = sqlx::PgPool::connect(&from.db.admin_url().unwrap())
                .await
                .unwrap();
            let target = sqlx::PgPool::connect(&to.admin_url().unwrap())
                .await
                .unwrap();
            for (table, columns) in TABLES_AT_0004 {
                let rows: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT coalesce(json_agg(t), '[]') FROM {table} t"
                )))
                .fetch_one(&source)
                .await
                .unwrap_or_else(|e| panic!("read {table}: {e}"));
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {table} ({columns}) SELECT {columns} \
                     FROM jsonb_populate_recordset(NULL::{table}, $1)"
                )))
                .bind(rows)
                .execute(&target)
                .await
                .unwrap_or_else(|e| panic!("copy {table}: {e}"));
            }
            source.close().await;
            target.close().await;
        }
    }
}

async fn a_registry_used_at_0004_resolves_as_before_after_the_upgrade(backend: Backend) {
    let Some(before) = TestServer::start(backend).await else {
        return;
    };
    let w = used_registry(&before).await;
    let mut reader = w
        .calling_with(&w.key("reader", pb::Role::Reader).await)
        .entitlements();
    assert_eq!(availability_of_department(&mut reader, &w).await, 0.9999);
    let (db, url) = TestDb::create(backend).await.expect("a second database");
    migrate_to_0004(backend, &db, &url).await;
    copy_rows(backend, &before, &db, &url).await;

    let platform_key = new_platform_key();
    let (_, channel, _stop, _task) = spawn_server(Config {
        database_url: url.clone(),
        migration_database_url: db.migration_url(),
        max_connections: 5,
        bootstrap_key: Some(Secret::new(platform_key.clone())),
        ..Config::default()
    })
    .await;
    let platform = tonic::service::interceptor::InterceptedService::new(
        channel.clone(),
        Bearer::new(&platform_key),
    );
    let key = pb::api_key_service_client::ApiKeyServiceClient::new(platform)
        .create_api_key(pb::CreateApiKeyRequest {
            parent: w.tenant.clone(),
            api_key_id: "reader".into(),
            api_key: Some(pb::ApiKey {
                role: pb::Role::Reader.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create a key after the upgrade")
        .into_inner()
        .secret;
    let mut upgraded = EntitlementServiceClient::new(
        tonic::service::interceptor::InterceptedService::new(channel, Bearer::new(&key)),
    );

    assert_eq!(
        availability_of_department(&mut upgraded, &w).await,
        0.9999,
        "the upgraded registry lost a layer of the department's entitlement"
    );
}

on_both_backends!(backend: a_registry_used_at_0004_resolves_as_before_after_the_upgrade);
