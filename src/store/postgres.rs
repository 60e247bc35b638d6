//! PostgreSQL: the production backend. Timestamps are `timestamptz`, bodies
//! `jsonb`; rows read for update are locked, and writers that check rules across
//! rows take a per-tenant advisory lock. Every transaction starts by setting the
//! tenant (or platform) scope that row-level security checks (migration 0004),
//! and changes are announced to other replicas with NOTIFY.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgDatabaseError, PgPoolOptions, PgRow, PgValueFormat, PgValueRef,
};
use sqlx::types::Json;
use sqlx::{Arguments, AssertSqlSafe, PgPool, Postgres, Row, TypeInfo, ValueRef};
use tracing::{Instrument as _, warn};

use super::connection::{
    Array, Cell, Column, Connection, Failure, RowSet, Rows, Statement, Value, Violation,
};
use super::constraints::{begin_failed, internal};
use super::partitions::{self, Outcome};
use super::spans;
use super::transaction::Transaction;
use super::{Access, ChangeFeed, PoolUse, Store, Tx, millis, settings, statement_budget};
use crate::domain::changes::Change;
use crate::domain::measurement::Cutoffs;
use crate::domain::names::Id;
use crate::error::{Error, Result};
use crate::redact::{Secrets, redact_url, url_secrets};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// `db.system.name` in the statements' spans.
const SYSTEM: &str = "postgresql";

/// The channel changes are announced on.
const CHANGES_CHANNEL: &str = "accord_changes";

/// The longest NOTIFY payload PostgreSQL accepts ("shorter than 8000 bytes").
const MAX_NOTIFY_PAYLOAD: usize = 7999;

pub struct PostgresStore {
    pool: PgPool,
    /// The longest a statement may run (`statement_timeout_seconds`).
    statement_timeout: Duration,
    /// The URL connected to, for the connection that follows changes.
    url: String,
    /// The password of the URL, masked in the errors of new connections.
    secrets: Secrets,
}

/// `error` as text with the password of `url` masked: a driver's message
/// may quote the URL or a piece of it.
fn describe(error: &impl std::fmt::Display, url: &str, secrets: &Secrets) -> String {
    let text = error.to_string().replace(url, &redact_url(url));
    secrets.scrub(&text).into_owned()
}

fn options(url: &str) -> Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|e| {
        let secrets = Secrets::new(url_secrets(url, false));
        Error::Internal(anyhow::anyhow!(
            "invalid PostgreSQL URL: {}",
            describe(&e, url, &secrets)
        ))
    })
}

/// `options` whose sessions bound every statement, and every wait for a lock,
/// by `timeout`: what a statement outside a call's transaction gets (a
/// transaction narrows it to its call's deadline in `begin_statement`).
fn bounded(options: PgConnectOptions, timeout: Duration) -> PgConnectOptions {
    let ms = millis(timeout).to_string();
    options.options([
        ("statement_timeout", ms.as_str()),
        ("lock_timeout", ms.as_str()),
    ])
}

/// What PostgreSQL says of a failed statement: out of time when
/// `statement_timeout` (57014 query_canceled) or `lock_timeout` (55P03
/// lock_not_available) ended it; contention when it aborted the transaction
/// as a deadlock's victim (40P01 deadlock_detected) or for a serialization
/// conflict (40001 serialization_failure); a unique (23505) or foreign-key
/// (23503) violation by the constraint's name.
fn classify(error: sqlx::Error) -> Failure {
    let Some(pg) = error
        .as_database_error()
        .and_then(|db| db.try_downcast_ref::<PgDatabaseError>())
    else {
        return Failure::Other(error);
    };
    match (pg.code(), pg.constraint()) {
        ("57014" | "55P03", _) => Failure::OutOfTime,
        ("40P01" | "40001", _) => Failure::Contention(error),
        ("23505" | "23503", Some(name)) => {
            let violation = Violation::Named(name.to_owned());
            Failure::Constraint(violation, error)
        }
        _ => Failure::Other(error),
    }
}

/// `internal`, for the statements this module runs with sqlx directly.
fn failed(context: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |error| internal(context)(classify(error))
}

impl PostgresStore {
    /// Connects a pool whose statements run for at most `statement_timeout`.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        statement_timeout: Duration,
    ) -> Result<Self> {
        let options = bounded(options(url)?, statement_timeout);
        Self::open(url, options, max_connections, statement_timeout).await
    }

    async fn open(
        url: &str,
        options: PgConnectOptions,
        max_connections: u32,
        statement_timeout: Duration,
    ) -> Result<Self> {
        let secrets = Secrets::new(url_secrets(url, false));
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| {
                Error::Unavailable(format!(
                    "cannot connect to PostgreSQL: {}",
                    describe(&e, url, &secrets)
                ))
            })?;
        Ok(Self {
            pool,
            statement_timeout,
            url: url.to_string(),
            secrets,
        })
    }

    /// The connection pool, for diagnostics and tests that look under the store.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations as the role of `owner_url`. sqlx's migrator
    /// holds a PostgreSQL advisory lock while it runs, so replicas starting
    /// together apply them once. When the server connects as another role
    /// (`serving_url`), that role is granted what the server needs.
    pub async fn migrate(owner_url: &str, serving_url: &str) -> Result<()> {
        // Unbounded: a migration may rewrite a large table.
        let store = Self::open(owner_url, options(owner_url)?, 2, Duration::MAX).await?;
        MIGRATOR
            .run(&store.pool)
            .await
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("migrating PostgreSQL")))?;
        let owner = options(owner_url)?.get_username().to_string();
        let server = options(serving_url)?.get_username().to_string();
        if server != owner {
            grant_server(&store.pool, &server).await?;
        }
        store.pool.close().await;
        Ok(())
    }

    /// Warns when row-level security cannot hold for the role the server
    /// connects as.
    pub(crate) async fn check_role(&self) -> Result<()> {
        let (role, superuser, bypass, owned): (String, bool, bool, i64) = sqlx::query_as(
            "SELECT r.rolname::text, r.rolsuper, r.rolbypassrls, \
                    (SELECT COUNT(*) FROM pg_tables t \
                     WHERE t.schemaname = current_schema() AND t.tableowner = r.rolname) \
             FROM pg_roles r WHERE r.rolname = current_user",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(failed("read the server's role"))?;
        if superuser || bypass {
            warn!(
                %role,
                "the server connects as a superuser or a role with BYPASSRLS: row-level security \
                 does not apply; connect as a role that owns no table (docs/security.md)"
            );
        } else if owned > 0 {
            warn!(
                %role,
                "the server connects as the role that owns the tables; row-level security holds, \
                 but a separate server role is safer (ACCORD_MIGRATION_DATABASE_URL, docs/security.md)"
            );
        }
        Ok(())
    }

    /// Opens a transaction scoped to `tenant`, its statements bounded by the
    /// call's deadline.
    async fn open_transaction(
        &self,
        tenant: Option<&Id>,
        access: Access,
    ) -> Result<PostgresConnection> {
        // A dropped call does not cancel the statement it was waiting for;
        // this bound ends it by the call's deadline.
        let budget = statement_budget(self.statement_timeout)?;
        let tx = self
            .pool
            .begin_with(AssertSqlSafe(begin_statement(tenant, access, budget)))
            .instrument(spans::statement(SYSTEM, "BEGIN"))
            .await
            .map_err(|e| match begin_failed(classify(e)) {
                Error::Unavailable(message) => {
                    Error::Unavailable(self.secrets.scrub(&message).into_owned())
                }
                other => other,
            })?;
        Ok(PostgresConnection { tx, generic: false })
    }

    /// Makes one partition change in a transaction of its own, which holds
    /// no other lock and waits at most `partitions::LOCK_WAIT` for its
    /// table's; tried again shortly when the lock was not granted.
    async fn change_partition(&self, change: &partitions::Change) -> Result<Outcome> {
        let wait = partitions::LOCK_WAIT.min(self.statement_timeout);
        let mut attempt = 1;
        loop {
            let mut conn: Box<dyn Connection> =
                Box::new(self.open_transaction(None, Access::Write).await?);
            match partitions::apply(&mut *conn, change, wait).await {
                Ok(outcome) => {
                    conn.commit().await?;
                    return Ok(outcome);
                }
                Err(Error::DeadlineExceeded(_)) if attempt < partitions::ATTEMPTS => {
                    drop(conn);
                    tokio::time::sleep(wait * attempt).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// Grants the server's role what it needs (migration 0004's function), once at
/// a time: concurrent GRANTs of one object can fail.
async fn grant_server(pool: &PgPool, role: &str) -> Result<()> {
    let mut tx = pool.begin().await.map_err(failed("begin grant"))?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('accord.grant_server', 0))")
        .execute(&mut *tx)
        .await
        .map_err(failed("lock grants"))?;
    sqlx::query("SELECT accord_grant_server($1)")
        .bind(role)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            Error::Internal(
                anyhow::Error::new(e).context(format!("granting the server role `{role}`")),
            )
        })?;
    tx.commit().await.map_err(failed("commit grants"))
}

/// The statement that opens a transaction, sets its scope and bounds each of
/// its statements (and lock waits) by `budget`. Ids are `[a-z][a-z0-9-]*`
/// (validated when parsed) and the budget a number, so quoting them is safe,
/// and one round trip does it all.
fn begin_statement(tenant: Option<&Id>, access: Access, budget: Duration) -> String {
    let begin = match access {
        Access::Read => "BEGIN READ ONLY",
        Access::Write => "BEGIN",
    };
    let (tenant, platform) = match tenant {
        Some(t) => (t.as_str(), ""),
        None => ("", "on"),
    };
    debug_assert!(
        tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    );
    let ms = millis(budget);
    format!(
        "{begin}; SELECT set_config('accord.tenant', '{tenant}', true), \
         set_config('accord.platform', '{platform}', true), \
         set_config('statement_timeout', '{ms}', true), \
         set_config('lock_timeout', '{ms}', true)"
    )
}

#[async_trait]
impl Store for PostgresStore {
    fn change_feed(&self) -> Option<Box<dyn ChangeFeed>> {
        Some(Box::new(PostgresChangeFeed {
            url: self.url.clone(),
            options: self.pool.connect_options().as_ref().clone(),
        }))
    }

    async fn begin(&self, tenant: Option<&Id>, access: Access) -> Result<Box<dyn Tx>> {
        let conn = self.open_transaction(tenant, access).await?;
        Ok(Box::new(Transaction::new(Box::new(conn))))
    }

    async fn page_token_secret(&self) -> Result<Vec<u8>> {
        let conn = self.open_transaction(None, Access::Write).await?;
        settings::page_token_secret(Box::new(conn)).await
    }

    async fn partition_measurements(
        &self,
        months: (NaiveDate, NaiveDate),
        cutoffs: Option<&Cutoffs>,
    ) -> Result<Vec<String>> {
        let existing = {
            let mut conn: Box<dyn Connection> =
                Box::new(self.open_transaction(None, Access::Read).await?);
            partitions::existing(&mut *conn).await?
        };
        let mut done = Vec::new();
        for change in partitions::plan(months, cutoffs, &existing) {
            match self.change_partition(&change).await {
                Ok(Outcome::Done(what)) => done.push(what),
                Ok(Outcome::AlreadyDone) => {}
                Ok(Outcome::Blocked) => warn!(
                    partition = %change,
                    "rows of the month are in the DEFAULT partition: the month stays there until \
                     it expires"
                ),
                // The next run tries again; the months ahead leave it time.
                Err(error) => warn!(
                    partition = %change,
                    %error,
                    "could not change a measurement partition"
                ),
            }
        }
        Ok(done)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("pinging PostgreSQL")))
    }

    fn pool_use(&self) -> PoolUse {
        PoolUse::of(&self.pool)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// One PostgreSQL transaction.
struct PostgresConnection {
    tx: sqlx::Transaction<'static, Postgres>,
    /// `plan_generically` has been called in this transaction.
    generic: bool,
}

/// Binds `values` in order: text, bigint, `timestamptz`, `jsonb`.
fn arguments(values: Vec<Value<'_>>) -> Result<PgArguments, Failure> {
    let mut args = PgArguments::default();
    for value in values {
        let added = match value {
            Value::Text(text) => args.add(text),
            Value::Int(n) => args.add(n),
            Value::Time(time) => args.add(time),
            Value::Json(raw) => args.add(Json(raw)),
            Value::Array(Array::Text(v)) => args.add(v),
            Value::Array(Array::Int(v)) => args.add(v),
            Value::Array(Array::Float(v)) => args.add(v),
            Value::Array(Array::Time(v)) => args.add(v),
        };
        added.map_err(|e| Failure::Other(sqlx::Error::Encode(e)))?;
    }
    Ok(args)
}

/// The text of a JSON value as the server sent it: `jsonb` in binary
/// format is a version byte (1) and the text.
fn json_text(value: PgValueRef<'_>) -> Result<String, sqlx::error::BoxDynError> {
    let binary_jsonb =
        value.format() == PgValueFormat::Binary && value.type_info().name() == "JSONB";
    let bytes = value.as_bytes()?;
    let text = match bytes.split_first() {
        Some((1, text)) if binary_jsonb => text,
        Some((version, _)) if binary_jsonb => {
            return Err(format!("unsupported jsonb format version {version}").into());
        }
        _ => bytes,
    };
    Ok(std::str::from_utf8(text)?.to_owned())
}

fn decode(row: &PgRow, i: usize, column: Column) -> Result<Cell, sqlx::Error> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Cell::Null);
    }
    Ok(match column {
        Column::Text => Cell::Text(row.try_get(i)?),
        Column::Int => Cell::Int(row.try_get(i)?),
        Column::Float => Cell::Float(row.try_get(i)?),
        Column::Time => Cell::Time(row.try_get(i)?),
        Column::Json => Cell::Json(json_text(raw).map_err(|source| sqlx::Error::ColumnDecode {
            index: i.to_string(),
            source,
        })?),
    })
}

#[async_trait]
impl Connection for PostgresConnection {
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
        " FOR UPDATE"
    }

    fn share_lock(&self) -> &'static str {
        " FOR KEY SHARE"
    }

    /// `UNNEST` of one array per column.
    fn push_rows<'a>(
        &self,
        statement: Statement<'a>,
        alias: &str,
        rows: RowSet<'a>,
    ) -> Statement<'a> {
        let names: Vec<&str> = rows.columns.iter().map(|(name, _)| *name).collect();
        let mut statement = statement.push("UNNEST(");
        for (i, (_, column)) in rows.columns.into_iter().enumerate() {
            if i > 0 {
                statement = statement.push(", ");
            }
            statement = statement.push_arg(Value::Array(column));
        }
        statement.push(&format!(") AS {alias} ({})", names.join(", ")))
    }

    fn writes_in_with(&self) -> bool {
        true
    }

    fn partitions_by_time(&self) -> bool {
        true
    }

    async fn plan_generically(&mut self) -> Result<()> {
        if !self.generic {
            const GENERIC: &str =
                "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)";
            sqlx::query(GENERIC)
                .execute(&mut *self.tx)
                .instrument(spans::statement(SYSTEM, GENERIC))
                .await
                .map_err(failed("plan generically"))?;
            self.generic = true;
        }
        Ok(())
    }

    /// A transaction-scoped advisory lock on the tenant's id.
    async fn lock_tenant(&mut self, tenant: &Id) -> Result<()> {
        const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";
        sqlx::query(LOCK)
            .bind(format!("accord.tenant:{tenant}"))
            .execute(&mut *self.tx)
            .instrument(spans::statement(SYSTEM, LOCK))
            .await
            .map_err(failed("lock tenant"))?;
        Ok(())
    }

    /// NOTIFY on `CHANGES_CHANNEL`. A change too long for one payload (an
    /// agreement over 150 services with long ids) goes out as several, sent
    /// in one statement of the same transaction: they are delivered together
    /// at commit, or not at all, and other replicas still invalidate only
    /// what it changed.
    async fn notify(&mut self, change: &Change) -> Result<()> {
        let payloads = change
            .clone()
            .split_to_fit(MAX_NOTIFY_PAYLOAD)
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("encode change")))?;
        const NOTIFY: &str = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload";
        sqlx::query(NOTIFY)
            .bind(CHANGES_CHANNEL)
            .bind(payloads)
            .execute(&mut *self.tx)
            .instrument(spans::statement(SYSTEM, NOTIFY))
            .await
            .map_err(failed("notify change"))?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx
            .commit()
            .instrument(spans::statement(SYSTEM, "COMMIT"))
            .await
            .map_err(failed("commit"))
    }
}

/// Other replicas' changes, heard with LISTEN on a connection of its own,
/// whose statements run for at most the pool's `statement_timeout`.
struct PostgresChangeFeed {
    url: String,
    options: PgConnectOptions,
}

#[async_trait]
impl ChangeFeed for PostgresChangeFeed {
    async fn follow(self: Box<Self>, on_change: Box<dyn Fn(Option<Change>) + Send>) {
        use sqlx::postgres::PgListener;
        const RETRY: Duration = Duration::from_secs(1);
        let PostgresChangeFeed { url, options } = *self;
        // A pool of one, as `PgListener::connect` makes, for connect options.
        let listen = || async {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .max_lifetime(None)
                .idle_timeout(None)
                .connect_with(options.clone())
                .await?;
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.ignore_pool_close_event(true);
            Ok::<_, sqlx::Error>(listener)
        };
        let secrets = Secrets::new(url_secrets(&url, false));
        let shown = |e: &sqlx::Error| describe(e, &url, &secrets);
        let mut connected = false;
        loop {
            let mut listener = match listen().await {
                Ok(l) => l,
                Err(e) => {
                    if connected {
                        warn!(error = %shown(&e), "cannot reconnect to follow changes; retrying");
                    }
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANGES_CHANNEL).await {
                warn!(error = %shown(&e), "cannot LISTEN for changes; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            connected = true;
            // Back (or there for the first time): whatever happened meanwhile
            // is unknown, so everything cached goes.
            on_change(Some(Change::Everything));
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => on_change(Some(
                        serde_json::from_str(n.payload()).unwrap_or(Change::Everything),
                    )),
                    Ok(None) => {
                        warn!(
                            "lost the connection that follows changes: dropping the entitlement cache and reconnecting"
                        );
                        break;
                    }
                    Err(e) => {
                        warn!(error = %shown(&e), "error following changes: dropping the entitlement cache and reconnecting");
                        break;
                    }
                }
            }
            on_change(None);
            tokio::time::sleep(RETRY).await;
        }
    }
}
