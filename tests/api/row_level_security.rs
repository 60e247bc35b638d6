//! PostgreSQL's second isolation layer: row-level security, checked from the
//! catalog, by the database roles, under a store query that names the wrong
//! tenant, and across a pool of one connection serving two tenants in turn.
//! Runs only with ACCORD_TEST_DATABASE_URL.

use std::collections::BTreeSet;
use std::sync::Arc;

use accord::domain::audit::Caller;
use accord::domain::names::Id;
use accord::domain::party::{Party, PartyFields, PartyKind};
use accord::error::{Error, Violations};
use accord::service::Registry;
use accord::store::{Access, PostgresStore, Store};
use chrono::Utc;
use sqlx::{Connection, PgConnection};

use crate::support::*;

/// Every table with a tenant column (`tenants` has it as `id`), partitions
/// aside (each is checked as well, but their months come and go). A new
/// table must be added here and get policies like those of migration 0004.
const TENANT_TABLES: &[&str] = &[
    "agreement_labels",
    "agreement_revisions",
    "agreement_services",
    "agreement_supports",
    "agreements",
    "api_keys",
    "audit_events",
    "breach_revisions",
    "breaches",
    "compliance_dirty",
    "count_rollups_day",
    "count_rollups_hour",
    "count_rollups_minute",
    "measurement_counts",
    "measurement_downtime",
    "measurement_keys",
    "measurement_samples",
    "objective_alerts",
    "override_history",
    "overrides",
    "parties",
    "party_history",
    "period_evaluations",
    "request_ids",
    "revision_services",
    "services",
    "tenants",
];

/// The tables partitioned by time, each with a DEFAULT partition and monthly
/// ones.
const PARTITIONED: &[&str] = &[
    "count_rollups_day",
    "count_rollups_hour",
    "count_rollups_minute",
    "measurement_counts",
    "measurement_downtime",
    "measurement_samples",
];

fn id(s: &str) -> Id {
    Id::parse("id", s).unwrap()
}

async fn postgres_server() -> Option<TestServer> {
    TestServer::start(Backend::Postgres).await
}

/// Two tenants, each a `World::new` with an agreement and a measurement of
/// each kind.
async fn two_tenants(s: &TestServer) {
    for t in ["alpha", "bravo"] {
        let w = World::new(s, t).await;
        w.measured_sla().await;
        let pay = &w.payments;
        let reported = w
            .report(vec![
                counts("c", pay, ago(60), 1, 2),
                sample("s", pay, ago(60), 1.0),
                downtime("d", pay, ago(60), ago(30)),
            ])
            .await;
        assert_eq!(reported.accepted, 3);
    }
}

async fn sql_error_code<T>(result: Result<T, sqlx::Error>) -> String {
    match result {
        Ok(_) => panic!("expected the database to refuse"),
        Err(e) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.to_string())
            .unwrap_or_else(|| panic!("not a database error: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_table_is_behind_forced_rls_and_the_server_role_cannot_escape() {
    let Some(s) = postgres_server().await else {
        return;
    };
    two_tenants(&s).await;
    let mut admin = PgConnection::connect(&s.db.admin_url().unwrap())
        .await
        .unwrap();

    // The catalog: RLS enabled and forced, and at least one policy, on every
    // table with a tenant column, partitions included; and no such table is
    // missing from the list.
    let tables: Vec<(String, bool, bool, i64, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity, \
                (SELECT COUNT(*) FROM pg_policies p \
                 WHERE p.schemaname = n.nspname AND p.tablename = c.relname), \
                c.relispartition \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
           AND (c.relname = 'tenants' OR EXISTS (SELECT 1 FROM pg_attribute a \
                WHERE a.attrelid = c.oid AND a.attname = 'tenant' AND NOT a.attisdropped)) \
         ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let names: Vec<&str> = tables
        .iter()
        .filter(|t| !t.4)
        .map(|t| t.0.as_str())
        .collect();
    assert_eq!(names, TENANT_TABLES);
    for (table, enabled, forced, policies, _) in &tables {
        assert!(
            *enabled && *forced,
            "{table}: RLS enabled {enabled}, forced {forced}"
        );
        assert!(*policies > 0, "{table} has no policy");
    }
    for parent in PARTITIONED {
        let partitions: Vec<&str> = tables
            .iter()
            .filter(|t| t.4 && t.0.starts_with(&format!("{parent}_")))
            .map(|t| t.0.as_str())
            .collect();
        assert!(
            partitions.contains(&format!("{parent}_default").as_str()) && partitions.len() > 1,
            "{parent}: {partitions:?}"
        );
    }

    // The server's role: no superuser, no BYPASSRLS, owns no table, and may
    // neither change nor delete audit events or revisions.
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
            .bind(PG_SERVER_ROLE)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert!(!superuser && !bypass);
    let owned: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner \
         WHERE r.rolname = $1",
    )
    .bind(PG_SERVER_ROLE)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(owned, 0, "the server role owns {owned} relations");
    for (table, privilege, expected) in [
        ("audit_events", "INSERT", true),
        ("audit_events", "UPDATE", false),
        ("audit_events", "DELETE", false),
        ("agreement_revisions", "UPDATE", false),
        ("parties", "UPDATE", true),
        ("_sqlx_migrations", "SELECT", false),
        ("measurement_keys", "UPDATE", false),
        ("measurement_counts", "UPDATE", false),
        ("count_rollups_minute", "UPDATE", true),
        ("measurement_counts_default", "DELETE", true),
        ("measurement_counts_default", "INSERT", false),
        ("breaches", "UPDATE", true),
        ("breach_revisions", "UPDATE", false),
        ("breach_revisions", "DELETE", true),
        ("compliance_dirty", "UPDATE", true),
        ("period_evaluations", "UPDATE", true),
        ("objective_alerts", "UPDATE", true),
    ] {
        let has: bool = sqlx::query_scalar("SELECT has_table_privilege($1, $2, $3)")
            .bind(PG_SERVER_ROLE)
            .bind(table)
            .bind(privilege)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(has, expected, "{privilege} on {table}");
    }

    // As the server's role, with no scope set, every tenant table looks empty,
    // though the superuser sees rows in each of the populated ones.
    let mut server = PgConnection::connect(&s.database_url).await.unwrap();
    for table in TENANT_TABLES {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let seen: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&mut server)
            .await
            .unwrap();
        assert_eq!(seen, 0, "{table} without a tenant set");
        let all: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut admin)
            .await
            .unwrap();
        let populated = [
            "parties",
            "services",
            "agreements",
            "api_keys",
            "tenants",
            "measurement_keys",
            "measurement_counts",
            "measurement_samples",
            "measurement_downtime",
            "count_rollups_minute",
            "count_rollups_hour",
            "count_rollups_day",
            "compliance_dirty",
        ];
        if populated.contains(table) {
            assert!(all > 0, "{table} should hold the worlds' rows");
        }
    }

    // With alpha set: alpha's rows only, and bravo's rows can be neither
    // written nor reached.
    let mut tx = server.begin().await.unwrap();
    sqlx::query("SELECT set_config('accord.tenant', 'alpha', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let tenants: BTreeSet<String> = sqlx::query_scalar("SELECT DISTINCT tenant FROM parties")
        .fetch_all(&mut *tx)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(tenants, BTreeSet::from(["alpha".to_string()]));
    let touched = sqlx::query("UPDATE parties SET kind = kind WHERE tenant = 'bravo'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(touched, 0);
    let insert = sqlx::query(
        "INSERT INTO parties (tenant, id, kind, body) VALUES ('bravo', 'intruder', 'CUSTOMER', '{}')",
    )
    .execute(&mut *tx)
    .await;
    assert_eq!(sql_error_code(insert).await, "42501", "RLS violation");
    drop(tx);

    // The audit trail is append-only for the server's role.
    let mut tx = server.begin().await.unwrap();
    sqlx::query("SELECT set_config('accord.tenant', 'alpha', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let update = sqlx::query("UPDATE audit_events SET actor = 'someone else'")
        .execute(&mut *tx)
        .await;
    assert_eq!(sql_error_code(update).await, "42501", "permission denied");
    drop(tx);
    let mut tx = server.begin().await.unwrap();
    let delete = sqlx::query("DELETE FROM audit_events")
        .execute(&mut *tx)
        .await;
    assert_eq!(sql_error_code(delete).await, "42501", "permission denied");
    drop(tx);

    // The server's only DDL, the partition functions, touch the monthly
    // tables alone.
    for function in [
        "accord_create_measurement_partition",
        "accord_drop_measurement_partition",
    ] {
        let mut tx = server.begin().await.unwrap();
        let sql = format!("SELECT {function}('parties', DATE '2026-01-01')");
        let call = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await;
        assert_eq!(sql_error_code(call).await, "22023", "{function} on parties");
        drop(tx);
    }

    // The platform scope reads tenants, API keys and the late-data markers
    // (which tenants the period closer has work in), and nothing else.
    let mut tx = server.begin().await.unwrap();
    sqlx::query("SELECT set_config('accord.platform', 'on', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    for (table, visible) in [
        ("tenants", true),
        ("api_keys", true),
        ("compliance_dirty", true),
        ("parties", false),
        ("count_rollups_day", false),
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(n > 0, visible, "{table} in the platform scope");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_query_naming_another_tenant_finds_nothing() {
    let Some(s) = postgres_server().await else {
        return;
    };
    two_tenants(&s).await;
    let store = PostgresStore::connect(
        &s.database_url,
        2,
        accord::config::Config::default().statement_timeout,
    )
    .await
    .unwrap();
    let (alpha, bravo) = (id("alpha"), id("bravo"));
    // The store, asked in alpha's transaction for bravo's rows (the bug the
    // first layer exists to prevent), gets nothing back.
    let mut tx = store.begin(Some(&alpha), Access::Read).await.unwrap();
    assert!(tx.get_party(&alpha, &id("bank")).await.unwrap().is_some());
    assert!(tx.get_party(&bravo, &id("bank")).await.unwrap().is_none());
    assert!(tx.list_parties(&bravo, None, 100).await.unwrap().is_empty());
    assert!(tx.get_tenant(&bravo).await.unwrap().is_none());
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    assert!(tx.due_markers(&bravo, later, 10).await.unwrap().is_empty());
    let bravo_breaches = tx
        .list_breaches(&bravo, &Default::default(), None, 10)
        .await
        .unwrap();
    assert!(bravo_breaches.is_empty());
    assert!(
        tx.get_api_key(&bravo, &id("admin"))
            .await
            .unwrap()
            .is_none()
    );
    drop(tx);
    // Nor can it write one.
    let mut tx = store.begin(Some(&alpha), Access::Write).await.unwrap();
    let mut v = Violations::new();
    let intruder = Party::new(
        &bravo,
        id("intruder"),
        PartyFields {
            kind: Some(PartyKind::Customer),
            ..Default::default()
        },
        Utc::now(),
        &mut v,
        "party",
    )
    .unwrap();
    assert!(matches!(
        tx.insert_party(&intruder).await,
        Err(Error::Internal(_))
    ));
    drop(tx);
    // With no tenant at all (the platform scope), tenant data is out of reach.
    let mut tx = store.begin(None, Access::Read).await.unwrap();
    assert!(tx.get_party(&alpha, &id("bank")).await.unwrap().is_none());
    assert_eq!(tx.list_tenants(None, 10).await.unwrap().len(), 2);
    drop(tx);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pooled_connection_serving_two_tenants_in_turn_leaks_nothing() {
    let Some(s) = postgres_server().await else {
        return;
    };
    two_tenants(&s).await;
    let store = PostgresStore::connect(
        &s.database_url,
        1,
        accord::config::Config::default().statement_timeout,
    )
    .await
    .unwrap();
    let pool = store.pool().clone();
    let registry = Registry::new(
        Arc::new(store),
        accord::config::Config::default().request_id_ttl,
    )
    .await
    .unwrap();
    let caller = Caller {
        actor: "tenants/x/apiKeys/test".into(),
        method: "/test",
        request_id: String::new(),
    };
    let mut created = 0;
    for i in 0..1000 {
        let tenant = id(if i % 2 == 0 { "alpha" } else { "bravo" });
        match i % 5 {
            0 | 1 => {
                let parties = registry.parties().list(&tenant, 100, "").await.unwrap();
                assert!(parties.items.iter().all(|p| p.tenant == tenant));
            }
            2 => {
                let party = registry.parties().get(&tenant, &id("bank")).await.unwrap();
                assert_eq!(party.tenant, tenant);
            }
            // A failing call rolls its transaction back.
            3 => {
                let missing = registry.parties().get(&tenant, &id("nobody")).await;
                assert!(matches!(missing, Err(Error::NotFound(_))));
            }
            _ => {
                let fields = PartyFields {
                    kind: Some(PartyKind::Customer),
                    ..Default::default()
                };
                let party = registry
                    .parties()
                    .create(&caller, &tenant, id(&format!("p{i}")), fields, None)
                    .await
                    .unwrap();
                assert_eq!(party.tenant, tenant);
                created += 1;
            }
        }
        // The one connection is back in the pool: take it and look at its
        // session settings, which must be as if no tenant had ever been set.
        let mut settings = pool.acquire().await.unwrap();
        let (t, p): (String, String) = sqlx::query_as(
            "SELECT coalesce(current_setting('accord.tenant', true), ''), \
                    coalesce(current_setting('accord.platform', true), '')",
        )
        .fetch_one(&mut *settings)
        .await
        .unwrap();
        assert_eq!((t.as_str(), p.as_str()), ("", ""), "after call {i}");
    }
    assert_eq!(created, 200);
    for tenant in ["alpha", "bravo"] {
        let parties = registry
            .parties()
            .list(&id(tenant), 1000, "")
            .await
            .unwrap()
            .items;
        assert_eq!(parties.len(), 2 + 100, "{tenant}: the world's and its own");
        assert!(parties.iter().all(|p| p.tenant.as_str() == tenant));
    }
}
