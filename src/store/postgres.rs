//! PostgreSQL: the production backend. Timestamps are `timestamptz`, bodies
//! `jsonb`; rows read for update are locked, and writers that check rules across
//! rows take a per-tenant advisory lock.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres};

use super::sql::impl_tx;
use super::{Access, Store, StoredRequest, Tx, internal, translate};
use crate::domain::agreement::{Agreement, AgreementKind, AgreementState, Revision};
use crate::domain::api_key::ApiKey;
use crate::domain::audit::{AuditCursor, AuditEvent, AuditFilter};
use crate::domain::filter::{AgreementFilter, FilterTerm};
use crate::domain::names::{Id, agreement_name, party_name, service_name};
use crate::domain::overrides::Override;
use crate::domain::party::Party;
use crate::domain::service::Service;
use crate::domain::tenant::Tenant;
use crate::error::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
}

fn db_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t
}

async fn lock_tenant(conn: &mut sqlx::PgConnection, tenant: &Id) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("accord.tenant:{tenant}"))
        .execute(conn)
        .await
        .map_err(internal("lock tenant"))?;
    Ok(())
}

fn options(url: &str) -> Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|e| {
        Error::Internal(anyhow::anyhow!(
            "invalid PostgreSQL URL: {}",
            // The parser's message can quote the URL, password included.
            e.to_string().replace(url, "<database url>")
        ))
    })
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options(url)?)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        Ok(Self { pool })
    }

    /// Applies pending migrations. sqlx's migrator holds a PostgreSQL advisory
    /// lock while it runs, so replicas starting together apply them once.
    pub async fn migrate(url: &str) -> Result<()> {
        let store = Self::connect(url, 2).await?;
        MIGRATOR
            .run(&store.pool)
            .await
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("migrating PostgreSQL")))?;
        store.pool.close().await;
        Ok(())
    }
}

pub struct PostgresTx {
    tx: sqlx::Transaction<'static, Postgres>,
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn begin(&self, _tenant: Option<&Id>, access: Access) -> Result<Box<dyn Tx>> {
        let tx = match access {
            Access::Read => self.pool.begin_with("BEGIN READ ONLY").await,
            Access::Write => self.pool.begin().await,
        }
        .map_err(|e| Error::Unavailable(format!("database unavailable: {e}")))?;
        Ok(Box::new(PostgresTx { tx }))
    }

    async fn page_token_secret(&self) -> Result<Vec<u8>> {
        page_token_secret(&self.pool).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

impl_tx!(PostgresTx, Postgres, " FOR UPDATE");
