//! SQLite: the embedded default. One file in WAL mode; timestamps are integer
//! microseconds so they compare in SQL; writing transactions begin IMMEDIATE,
//! which serialises writers, so row and tenant locks are not needed. One
//! server owns the file, so there is no one to notify of changes.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use chrono::NaiveDate;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::JsonRawValue;
use sqlx::{Arguments, AssertSqlSafe, Row, Sqlite, SqlitePool, ValueRef};
use tracing::Instrument as _;

use super::connection::{
    Cell, Column, Connection, Failure, RowSet, Rows, Statement, Value, Violation,
};
use super::constraints::{begin_failed, internal};
use super::spans;
use super::transaction::Transaction;
use super::{Access, ChangeFeed, PoolUse, Store, Tx, millis, settings, statement_budget};
use crate::domain::changes::Change;
use crate::domain::measurement::Cutoffs;
use crate::domain::names::Id;
use crate::error::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// `db.system.name` in the statements' spans.
const SYSTEM: &str = "sqlite";

pub struct SqliteStore {
    pool: SqlitePool,
    /// The longest a statement may wait for the write lock
    /// (`statement_timeout_seconds`).
    statement_timeout: Duration,
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

/// SQLite's result codes that `classify` tells apart (sqlite.org/rescode.html).
const SQLITE_BUSY: i32 = 5;
const SQLITE_CONSTRAINT_FOREIGNKEY: i32 = 787;
const SQLITE_CONSTRAINT_PRIMARYKEY: i32 = 1555;
const SQLITE_CONSTRAINT_UNIQUE: i32 = 2067;

/// What SQLite says of a failed statement: out of time when the busy timeout
/// ran out (SQLITE_BUSY, and its extended codes, which keep it in their low
/// byte); a taken key by its columns ("UNIQUE constraint failed: t.a, t.b");
/// a foreign key without saying which.
fn classify(error: sqlx::Error) -> Failure {
    let Some(db) = error.as_database_error() else {
        return Failure::Other(error);
    };
    let code = db.code().and_then(|code| code.parse::<i32>().ok());
    let violation = match code {
        Some(code) if code & 0xff == SQLITE_BUSY => return Failure::OutOfTime,
        Some(SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY) => db
            .message()
            .strip_prefix("UNIQUE constraint failed: ")
            .map(|columns| Violation::UniqueColumns(columns.to_owned())),
        Some(SQLITE_CONSTRAINT_FOREIGNKEY) => Some(Violation::ForeignKey),
        _ => None,
    };
    match violation {
        Some(violation) => Failure::Constraint(violation, error),
        None => Failure::Other(error),
    }
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

    /// Opens a transaction (SQLite has no scopes), taking the write lock at
    /// once for a writing one.
    async fn open_transaction(&self, access: Access) -> Result<SqliteConnection> {
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
            .begin_with(AssertSqlSafe(format!(
                "PRAGMA busy_timeout = {ms}; {begin}"
            )))
            .instrument(spans::statement(SYSTEM, begin))
            .await
            .map_err(|e| begin_failed(classify(e)))?;
        Ok(SqliteConnection { tx })
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn change_feed(&self) -> Option<Box<dyn ChangeFeed>> {
        None
    }

    async fn begin(&self, _tenant: Option<&Id>, access: Access) -> Result<Box<dyn Tx>> {
        let conn = self.open_transaction(access).await?;
        Ok(Box::new(Transaction::new(Box::new(conn))))
    }

    async fn page_token_secret(&self) -> Result<Vec<u8>> {
        let conn = self.open_transaction(Access::Write).await?;
        settings::page_token_secret(Box::new(conn)).await
    }

    async fn partition_measurements(
        &self,
        months: (NaiveDate, NaiveDate),
        cutoffs: Option<&Cutoffs>,
    ) -> Result<Vec<String>> {
        // Plain tables: retention deletes rows (`Tx::delete_expired_measurements`).
        let _ = (months, cutoffs);
        Ok(Vec::new())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("pinging SQLite")))
    }

    fn pool_use(&self) -> PoolUse {
        PoolUse::of(&self.pool)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// One SQLite transaction.
struct SqliteConnection {
    tx: sqlx::Transaction<'static, Sqlite>,
}

/// Binds `values` in order: text, integer, integer microseconds, JSON text.
fn arguments(values: Vec<Value<'_>>) -> Result<SqliteArguments, Failure> {
    let mut args = SqliteArguments::default();
    for value in values {
        let added = match value {
            Value::Text(text) => args.add(text),
            Value::Int(n) => args.add(n),
            Value::Time(time) => args.add(time.map(|t| t.timestamp_micros())),
            Value::Json(raw) => args.add(String::from(Box::<str>::from(raw))),
            // Rows reach SQLite as one JSON document (`push_rows`).
            Value::Array(_) => {
                return Err(Failure::Other(sqlx::Error::Protocol(
                    "SQLite binds no arrays".into(),
                )));
            }
        };
        added.map_err(|e| Failure::Other(sqlx::Error::Encode(e)))?;
    }
    Ok(args)
}

fn decode(row: &SqliteRow, i: usize, column: Column) -> Result<Cell, sqlx::Error> {
    if row.try_get_raw(i)?.is_null() {
        return Ok(Cell::Null);
    }
    Ok(match column {
        Column::Text => Cell::Text(row.try_get(i)?),
        Column::Int => Cell::Int(row.try_get(i)?),
        // Stored as its bits (`Column::Float`).
        Column::Float => Cell::Float(f64::from_bits(row.try_get::<i64, _>(i)? as u64)),
        Column::Time => {
            let micros: i64 = row.try_get(i)?;
            Cell::Time(DateTime::from_timestamp_micros(micros).ok_or_else(|| {
                sqlx::Error::ColumnDecode {
                    index: i.to_string(),
                    source: format!("{micros} µs is out of range").into(),
                }
            })?)
        }
        Column::Json => Cell::Json(row.try_get(i)?),
    })
}

#[async_trait]
impl Connection for SqliteConnection {
    async fn execute(&mut self, statement: Statement<'_>) -> Result<u64, Failure> {
        let span = spans::statement(SYSTEM, statement.sql());
        let (sql, values) = statement.into_parts();
        let done = sqlx::query_with(sql, arguments(values)?)
            .execute(&mut *self.tx)
            .instrument(span)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }

    async fn fetch(
        &mut self,
        statement: Statement<'_>,
        columns: &[Column],
    ) -> Result<Rows, Failure> {
        let span = spans::statement(SYSTEM, statement.sql());
        let (sql, values) = statement.into_parts();
        let stream = sqlx::query_with(sql, arguments(values)?).fetch(&mut *self.tx);
        Rows::read(stream, columns, decode, classify)
            .instrument(span)
            .await
    }

    fn row_lock(&self) -> &'static str {
        // Writing transactions begin IMMEDIATE and exclude each other.
        ""
    }

    fn share_lock(&self) -> &'static str {
        // Writing transactions begin IMMEDIATE and exclude each other.
        ""
    }

    /// `json_each` of one JSON array of rows.
    fn push_rows<'a>(
        &self,
        statement: Statement<'a>,
        alias: &str,
        rows: RowSet<'a>,
    ) -> Statement<'a> {
        let columns: Vec<String> = rows
            .columns
            .iter()
            .enumerate()
            .map(|(i, (name, _))| format!("value ->> {i} AS {name}"))
            .collect();
        let document =
            JsonRawValue::from_string(rows.to_json_rows()).expect("a row set writes valid JSON");
        statement
            .push(&format!("(SELECT {} FROM json_each(", columns.join(", ")))
            .push_arg(Value::Json(document))
            .push(&format!(")) AS {alias}"))
    }

    fn writes_in_with(&self) -> bool {
        false
    }

    fn partitions_by_time(&self) -> bool {
        false
    }

    async fn plan_generically(&mut self) -> Result<()> {
        // A prepared statement is compiled once; its plan does not depend
        // on the arguments.
        Ok(())
    }

    async fn lock_tenant(&mut self, _tenant: &Id) -> Result<()> {
        // Writing transactions begin IMMEDIATE and already exclude each other.
        Ok(())
    }

    async fn notify(&mut self, _change: &Change) -> Result<()> {
        // One server per SQLite file: the registry applies its changes itself.
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx
            .commit()
            .instrument(spans::statement(SYSTEM, "COMMIT"))
            .await
            .map_err(|e| internal("commit")(classify(e)))
    }
}
