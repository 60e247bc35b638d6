//! SQLite: the embedded default. One file in WAL mode; timestamps are integer
//! microseconds so they compare in SQL; writing transactions begin IMMEDIATE,
//! which serialises writers, so row and tenant locks are not needed.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::{Sqlite, SqlitePool};

use super::sql::impl_tx;
use super::{
    Access, ChangeFeed, EntitlementRows, MAX_ANCESTRY, Store, StoredRequest, Tx, begin_failed,
    from_json, internal, millis, statement_budget, translate,
};
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
    /// The longest a statement may wait for the write lock
    /// (`statement_timeout_seconds`).
    statement_timeout: Duration,
}

fn db_time(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

async fn notify(
    _conn: &mut sqlx::SqliteConnection,
    _change: &crate::domain::changes::Change,
) -> Result<()> {
    // One server per SQLite file: the registry applies its changes itself.
    Ok(())
}

async fn lock_tenant(_conn: &mut sqlx::SqliteConnection, _tenant: &Id) -> Result<()> {
    // Writing transactions begin IMMEDIATE and already exclude each other.
    Ok(())
}

fn options(url: &str, busy_timeout: Duration) -> Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::Internal(anyhow::anyhow!("invalid SQLite URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(busy_timeout)
        .foreign_keys(true))
}

impl SqliteStore {
    /// Opens a pool whose statements wait for a lock for at most
    /// `statement_timeout`.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        statement_timeout: Duration,
    ) -> Result<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options(
                url,
                Duration::from_millis(millis(statement_timeout) as u64),
            )?)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot open SQLite database: {e}")))?;
        Ok(Self {
            pool,
            statement_timeout,
        })
    }

    pub async fn migrate(url: &str) -> Result<()> {
        let store = Self::connect(url, 1, Duration::from_secs(10)).await?;
        MIGRATOR
            .run(&store.pool)
            .await
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("migrating SQLite")))?;
        store.pool.close().await;
        Ok(())
    }
}

pub struct SqliteTx {
    tx: sqlx::Transaction<'static, Sqlite>,
}

#[async_trait]
impl Store for SqliteStore {
    fn change_feed(&self) -> Option<Box<dyn ChangeFeed>> {
        None
    }

    async fn begin(&self, _tenant: Option<&Id>, access: Access) -> Result<Box<dyn Tx>> {
        let begin = match access {
            Access::Read => "BEGIN",
            Access::Write => "BEGIN IMMEDIATE",
        };
        // What takes time on SQLite is waiting for the write lock (Accord's
        // statements are short and in-process, and a running one cannot be
        // interrupted): the busy timeout bounds that wait by the call's
        // deadline. It belongs to the connection, so every transaction sets
        // its own, in the same call as BEGIN.
        let ms = millis(statement_budget(self.statement_timeout)?);
        let tx = self
            .pool
            .begin_with(sqlx::AssertSqlSafe(format!(
                "PRAGMA busy_timeout = {ms}; {begin}"
            )))
            .await
            .map_err(begin_failed)?;
        Ok(Box::new(SqliteTx { tx }))
    }

    async fn page_token_secret(&self) -> Result<Vec<u8>> {
        page_token_secret(&self.pool).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

impl_tx!(SqliteTx, Sqlite, "");
