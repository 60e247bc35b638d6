//! The one interface each engine implements: run a statement, fetch rows of
//! the column kinds asked for, lock, notify, commit. The resource modules
//! write their SQL once against `&mut dyn Connection`; what differs between
//! PostgreSQL and SQLite stays behind it (see `docs/architecture.md`).
//!
//! Placeholders are `$N` on both engines, numbered by `Statement` when it
//! appends arguments itself.

use std::borrow::Cow;
use std::fmt::Write as _;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::{Stream, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::types::JsonRawValue;
use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use super::constraints::{Subject, internal, refused};
use crate::domain::changes::Change;
use crate::domain::names::Id;
use crate::error::{Error, Result};

/// A transaction on one engine.
#[async_trait]
pub(crate) trait Connection: Send {
    /// Runs `statement`; returns how many rows it changed.
    async fn execute(&mut self, statement: Statement<'_>) -> Result<u64, Failure>;

    /// Runs `statement` and reads each row's `columns`, in order.
    async fn fetch(
        &mut self,
        statement: Statement<'_>,
        columns: &[Column],
    ) -> Result<Rows, Failure>;

    /// What a read of rows the transaction will change appends to keep
    /// other writers off them until it ends: ` FOR UPDATE` on PostgreSQL,
    /// nothing on SQLite, whose writing transactions already exclude each
    /// other.
    fn row_lock(&self) -> &'static str;

    /// What a read of rows that must not be deleted before the transaction
    /// ends appends, letting other readers and writers of other columns
    /// through: ` FOR KEY SHARE` on PostgreSQL, nothing on SQLite.
    fn share_lock(&self) -> &'static str;

    /// Appends `rows` to `statement` as a table the SQL can select from,
    /// called `alias`, its columns named as `rows` names them: on
    /// PostgreSQL `UNNEST($n, $n+1, ...) AS alias (a, b, ...)`, one array
    /// per column; on SQLite `(SELECT value ->> 0 AS a, ... FROM
    /// json_each($n)) AS alias`, one JSON array of rows. One statement
    /// writes or reads any number of rows, and its text stays the same.
    fn push_rows<'a>(
        &self,
        statement: Statement<'a>,
        alias: &str,
        rows: RowSet<'a>,
    ) -> Statement<'a>;

    /// Whether one statement may write several tables through
    /// data-modifying `WITH` queries (PostgreSQL; SQLite has none): a batch
    /// of measurements is then recorded in one round trip.
    fn writes_in_with(&self) -> bool;

    /// Whether the time-series tables of measurements are partitioned by
    /// time (PostgreSQL): retention then drops whole partitions and deletes
    /// rows only from the DEFAULT ones.
    fn partitions_by_time(&self) -> bool;

    /// Plans the statements that follow, until the transaction ends, once
    /// for any arguments instead of for each call's: on PostgreSQL
    /// `plan_cache_mode = force_generic_plan`, set for the transaction
    /// only; nothing on SQLite, which compiles a statement once. For the
    /// reads of the measurement tables, partitioned by month: a custom plan
    /// weighs every index of every partition the statement names (2–4 ms
    /// for a read of counts, several times what running it takes), while a
    /// generic plan, kept with the prepared statement, prunes the
    /// partitions when it runs. The first call of a transaction costs a
    /// round trip; the others nothing.
    async fn plan_generically(&mut self) -> Result<()>;

    /// Serialises the writers of one tenant (see `Tx::lock_tenant`).
    async fn lock_tenant(&mut self, tenant: &Id) -> Result<()>;

    /// Tells other replicas of `change` once the transaction commits, where
    /// there can be other replicas (see `Tx::notify`).
    async fn notify(&mut self, change: &Change) -> Result<()>;

    async fn commit(self: Box<Self>) -> Result<()>;
}

/// A bound argument. Nulls carry their kind, because PostgreSQL types each
/// parameter from what is bound.
#[derive(Debug)]
pub(crate) enum Value<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    /// `timestamptz` on PostgreSQL, integer microseconds on SQLite.
    Time(Option<DateTime<Utc>>),
    /// A column of a `RowSet`, bound as an array (PostgreSQL only; SQLite
    /// takes a `RowSet` as one JSON document).
    Array(Array<'a>),
    /// A JSON document, encoded once when bound: `jsonb` on PostgreSQL,
    /// text on SQLite.
    Json(Box<JsonRawValue>),
}

impl<'a> Value<'a> {
    pub(crate) fn text(value: impl Into<Option<&'a str>>) -> Self {
        Value::Text(value.into())
    }

    pub(crate) fn time(value: impl Into<Option<DateTime<Utc>>>) -> Self {
        Value::Time(value.into())
    }
}

/// The values of one column of many rows.
#[derive(Debug, Clone)]
pub(crate) enum Array<'a> {
    Text(Vec<&'a str>),
    Int(Vec<i64>),
    Float(Vec<f64>),
    Time(Vec<DateTime<Utc>>),
}

impl Array<'_> {
    fn len(&self) -> usize {
        match self {
            Array::Text(v) => v.len(),
            Array::Int(v) => v.len(),
            Array::Float(v) => v.len(),
            Array::Time(v) => v.len(),
        }
    }
}

/// Many rows of named columns, bound at once (`Connection::push_rows`).
#[derive(Debug, Clone, Default)]
pub(crate) struct RowSet<'a> {
    pub(crate) columns: Vec<(&'static str, Array<'a>)>,
}

impl<'a> RowSet<'a> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a column; every column holds as many values.
    pub(crate) fn column(mut self, name: &'static str, values: Array<'a>) -> Self {
        if let Some((_, first)) = self.columns.first() {
            assert_eq!(first.len(), values.len(), "column {name} of a row set");
        }
        self.columns.push((name, values));
        self
    }

    pub(crate) fn len(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }

    /// The rows as one JSON array of arrays (`[["a", 1], ["b", 2]]`), times
    /// as integer microseconds, floats as their IEEE-754 bits (SQLite's
    /// encodings).
    pub(crate) fn to_json_rows(&self) -> String {
        let mut out = String::with_capacity(self.len() * 16 * self.columns.len() + 2);
        out.push('[');
        for row in 0..self.len() {
            if row > 0 {
                out.push(',');
            }
            out.push('[');
            for (i, (_, column)) in self.columns.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // Writing to a String cannot fail.
                let _ = match column {
                    Array::Text(v) => write!(
                        out,
                        "{}",
                        serde_json::to_string(v[row]).expect("a string serialises")
                    ),
                    Array::Int(v) => write!(out, "{}", v[row]),
                    // Its bits: SQLite's JSON parser does not read every
                    // double back exactly (see `Column::Float`).
                    Array::Float(v) => write!(out, "{}", v[row].to_bits() as i64),
                    Array::Time(v) => write!(out, "{}", v[row].timestamp_micros()),
                };
            }
            out.push(']');
        }
        out.push(']');
        out
    }
}

/// SQL and its arguments, the `N`th bound to `$N`.
#[derive(Debug)]
pub(crate) struct Statement<'a> {
    sql: Cow<'static, str>,
    args: Vec<Value<'a>>,
}

impl<'a> Statement<'a> {
    pub(crate) fn new(sql: &'static str) -> Self {
        Self {
            sql: Cow::Borrowed(sql),
            args: Vec::new(),
        }
    }

    /// Binds the next `$N` of the SQL.
    pub(crate) fn bind(mut self, value: Value<'a>) -> Self {
        self.args.push(value);
        self
    }

    pub(crate) fn text(self, value: impl Into<Option<&'a str>>) -> Self {
        self.bind(Value::text(value))
    }

    pub(crate) fn int(self, value: impl Into<Option<i64>>) -> Self {
        self.bind(Value::Int(value.into()))
    }

    pub(crate) fn time(self, value: impl Into<Option<DateTime<Utc>>>) -> Self {
        self.bind(Value::time(value))
    }

    /// Binds `body` as JSON, serialised here once.
    pub(crate) fn json(self, body: &impl Serialize) -> Result<Self> {
        let raw = serde_json::value::to_raw_value(body)
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("encode a body")))?;
        Ok(self.bind(Value::Json(raw)))
    }

    /// Appends SQL text.
    pub(crate) fn push(mut self, sql: &str) -> Self {
        self.sql.to_mut().push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn push_arg(mut self, value: Value<'a>) -> Self {
        self.args.push(value);
        let n = self.args.len();
        // Writing to a String cannot fail.
        let _ = write!(self.sql.to_mut(), "${n}");
        self
    }

    /// Appends `$N, $N+1, ...` bound to `values`, for an `IN (...)` list.
    pub(crate) fn push_texts(mut self, values: impl IntoIterator<Item = &'a str>) -> Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self = self.push(", ");
            }
            self = self.push_arg(Value::text(value));
        }
        self
    }

    /// The SQL text, placeholders and all, for the statement's span.
    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    /// The SQL, as sqlx takes it (a constant is not copied), and its
    /// arguments, for an engine to run.
    pub(crate) fn into_parts(self) -> (SqlStr, Vec<Value<'a>>) {
        let sql = match self.sql {
            Cow::Borrowed(sql) => sql.into_sql_str(),
            Cow::Owned(sql) => AssertSqlSafe(sql).into_sql_str(),
        };
        (sql, self.args)
    }
}

/// The kind of a column read, which tells an engine how to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    Text,
    Int,
    /// `double precision` on PostgreSQL; on SQLite the IEEE-754 bits as an
    /// integer, so that every double round-trips exactly.
    Float,
    /// `timestamptz` on PostgreSQL, integer microseconds on SQLite.
    Time,
    /// A JSON document, handed over as its text, undecoded: it is parsed
    /// once, straight into the domain type, by `Row::json`.
    Json,
}

/// A value read.
#[derive(Debug, Default)]
pub(crate) enum Cell {
    #[default]
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Time(DateTime<Utc>),
    Json(String),
}

/// The rows a statement returned, their cells in one vector.
#[derive(Debug)]
pub(crate) struct Rows {
    width: usize,
    cells: Vec<Cell>,
}

impl Rows {
    /// Room for `rows` rows of `columns`.
    pub(crate) fn with_capacity(columns: &[Column], rows: usize) -> Self {
        assert!(!columns.is_empty(), "a fetch reads at least one column");
        Self {
            width: columns.len(),
            cells: Vec::with_capacity(columns.len() * rows),
        }
    }

    /// Appends the next cell, row by row.
    pub(crate) fn push(&mut self, cell: Cell) {
        self.cells.push(cell);
    }

    /// Reads `columns` of every row of `stream`, each cell decoded by the
    /// engine's `decode`; a failure as the engine's `classify` tells it.
    pub(crate) async fn read<R>(
        mut stream: impl Stream<Item = Result<R, sqlx::Error>> + Unpin,
        columns: &[Column],
        decode: impl Fn(&R, usize, Column) -> Result<Cell, sqlx::Error>,
        classify: impl Fn(sqlx::Error) -> Failure,
    ) -> Result<Rows, Failure> {
        let mut rows = Rows::with_capacity(columns, 1);
        while let Some(row) = stream.try_next().await.map_err(&classify)? {
            for (i, column) in columns.iter().enumerate() {
                rows.push(decode(&row, i, *column).map_err(Failure::Other)?);
            }
        }
        Ok(rows)
    }

    pub(crate) fn len(&self) -> usize {
        self.cells.len() / self.width
    }

    /// Each row in turn, its cells to be taken.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = Row<'_>> {
        self.cells.chunks_exact_mut(self.width).map(Row)
    }
}

/// One row; each cell is taken once.
pub(crate) struct Row<'r>(&'r mut [Cell]);

impl Row<'_> {
    fn take(&mut self, i: usize) -> Cell {
        std::mem::take(&mut self.0[i])
    }

    pub(crate) fn opt_text(&mut self, i: usize) -> Result<Option<String>> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Text(text) => Ok(Some(text)),
            other => Err(unexpected(i, "text", &other)),
        }
    }

    pub(crate) fn text(&mut self, i: usize) -> Result<String> {
        self.opt_text(i)?
            .ok_or_else(|| unexpected(i, "text", &Cell::Null))
    }

    pub(crate) fn int(&mut self, i: usize) -> Result<i64> {
        match self.take(i) {
            Cell::Int(n) => Ok(n),
            other => Err(unexpected(i, "an integer", &other)),
        }
    }

    pub(crate) fn float(&mut self, i: usize) -> Result<f64> {
        match self.take(i) {
            Cell::Float(x) => Ok(x),
            other => Err(unexpected(i, "a float", &other)),
        }
    }

    pub(crate) fn time(&mut self, i: usize) -> Result<DateTime<Utc>> {
        self.opt_time(i)?
            .ok_or_else(|| unexpected(i, "a time", &Cell::Null))
    }

    pub(crate) fn opt_time(&mut self, i: usize) -> Result<Option<DateTime<Utc>>> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Time(t) => Ok(Some(t)),
            other => Err(unexpected(i, "a time", &other)),
        }
    }

    /// The JSON document of column `i`, parsed into `T`; `None` for NULL.
    pub(crate) fn opt_json<T: DeserializeOwned>(&mut self, i: usize) -> Result<Option<T>> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Json(text) => from_json(&text).map(Some),
            other => Err(unexpected(i, "JSON", &other)),
        }
    }

    pub(crate) fn json<T: DeserializeOwned>(&mut self, i: usize) -> Result<T> {
        self.opt_json(i)?
            .ok_or_else(|| unexpected(i, "JSON", &Cell::Null))
    }
}

fn unexpected(column: usize, wanted: &str, found: &Cell) -> Error {
    Error::internal(format!(
        "column {column} of a stored row: expected {wanted}, found {found:?}"
    ))
}

/// Decodes a stored JSON body.
pub(crate) fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("decode a stored body")))
}

/// Why an engine refused a statement, as far as it tells.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The statement, or its wait for a lock, outlasted the transaction's
    /// budget (`statement_budget`).
    OutOfTime,
    /// A unique or foreign-key constraint refused it.
    Constraint(Violation, sqlx::Error),
    /// The engine aborted the transaction to resolve a conflict with
    /// another one (PostgreSQL: a deadlock, 40P01, or a serialization
    /// failure, 40001): nothing it did stays, and the same work may succeed
    /// when done again.
    Contention(sqlx::Error),
    Other(sqlx::Error),
}

/// Which constraint refused a statement: what each engine can say of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    /// PostgreSQL names the constraint.
    Named(String),
    /// SQLite names a unique key by its columns: `table.a, table.b`.
    UniqueColumns(String),
    /// SQLite says only that some foreign key failed.
    ForeignKey,
}

/// The statements most resources run, written once over every engine.
impl dyn Connection + '_ {
    /// Runs a statement whose failure can only be a fault.
    pub(crate) async fn run(
        &mut self,
        statement: Statement<'_>,
        context: &'static str,
    ) -> Result<u64> {
        self.execute(statement).await.map_err(internal(context))
    }

    /// Runs a statement that writes or deletes `subject`, which a
    /// constraint may refuse (`constraints::refused`).
    pub(crate) async fn write(
        &mut self,
        statement: Statement<'_>,
        subject: Subject<'_>,
    ) -> Result<u64> {
        self.execute(statement)
            .await
            .map_err(|f| refused(f, subject))
    }

    /// The body `sql` selects by `keys` (`$1`, `$2`, ...), locking its row
    /// when `lock` says so.
    pub(crate) async fn body_by_key<T: DeserializeOwned>(
        &mut self,
        sql: &'static str,
        keys: &[&str],
        lock: RowLock,
        context: &'static str,
    ) -> Result<Option<T>> {
        let statement = match lock {
            RowLock::None => Statement::new(sql),
            RowLock::ForUpdate => Statement::new(sql).push(self.row_lock()),
        };
        let statement = keys.iter().fold(statement, |s, key| s.text(*key));
        self.body(statement, context).await
    }

    /// A keyset page of bodies: `sql` takes `keys`, then the last id seen
    /// (or NULL) and the limit.
    pub(crate) async fn page<T: DeserializeOwned>(
        &mut self,
        sql: &'static str,
        keys: &[&str],
        after: Option<&str>,
        limit: i64,
        context: &'static str,
    ) -> Result<Vec<T>> {
        let statement = keys.iter().fold(Statement::new(sql), |s, key| s.text(*key));
        self.bodies(statement.text(after).int(limit), context).await
    }

    /// The JSON bodies a statement selects, each parsed into `T`.
    pub(crate) async fn bodies<T: DeserializeOwned>(
        &mut self,
        statement: Statement<'_>,
        context: &'static str,
    ) -> Result<Vec<T>> {
        let mut rows = self
            .fetch(statement, &[Column::Json])
            .await
            .map_err(internal(context))?;
        let mut bodies = Vec::with_capacity(rows.len());
        for mut row in rows.iter_mut() {
            bodies.push(row.json(0)?);
        }
        Ok(bodies)
    }

    /// The body a statement selects by key, if any.
    pub(crate) async fn body<T: DeserializeOwned>(
        &mut self,
        statement: Statement<'_>,
        context: &'static str,
    ) -> Result<Option<T>> {
        Ok(self.bodies(statement, context).await?.into_iter().next())
    }

    /// The names `sql` lists of the resources that refer to `id` of
    /// `tenant` (`$1`, `$2`), at most `limit` (`$3`).
    pub(crate) async fn referrers(
        &mut self,
        sql: &'static str,
        tenant: &Id,
        id: &Id,
        limit: i64,
        context: &'static str,
    ) -> Result<Vec<String>> {
        let statement = Statement::new(sql)
            .text(tenant.as_str())
            .text(id.as_str())
            .int(limit);
        self.texts(statement, context).await
    }

    /// The text column a statement selects.
    pub(crate) async fn texts(
        &mut self,
        statement: Statement<'_>,
        context: &'static str,
    ) -> Result<Vec<String>> {
        let mut rows = self
            .fetch(statement, &[Column::Text])
            .await
            .map_err(internal(context))?;
        rows.iter_mut().map(|mut row| row.text(0)).collect()
    }

    /// The one integer a statement selects.
    pub(crate) async fn int(
        &mut self,
        statement: Statement<'_>,
        context: &'static str,
    ) -> Result<i64> {
        let mut rows = self
            .fetch(statement, &[Column::Int])
            .await
            .map_err(internal(context))?;
        let mut row = rows
            .iter_mut()
            .next()
            .ok_or_else(|| Error::internal(format!("{context}: no row")))?;
        row.int(0)
    }
}

/// A collection of resources kept by tenant and id (AIP-122), and the two
/// reads every such collection has, written once for all of them.
#[derive(Debug)]
pub(crate) struct Collection {
    /// Selects the body of id `$2` of tenant `$1`.
    pub(crate) get: &'static str,
    /// Selects the bodies of tenant `$1` after id `$2` (from the first when
    /// NULL), by id, at most `$3`.
    pub(crate) list: &'static str,
    /// What a failed read was reading, for the log.
    pub(crate) context: &'static str,
}

impl Collection {
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        conn: &mut dyn Connection,
        tenant: &Id,
        id: &Id,
        lock: RowLock,
    ) -> Result<Option<T>> {
        let keys = [tenant.as_str(), id.as_str()];
        conn.body_by_key(self.get, &keys, lock, self.context).await
    }

    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        conn: &mut dyn Connection,
        tenant: &Id,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<T>> {
        conn.page(self.list, &[tenant.as_str()], after, limit, self.context)
            .await
    }
}

/// Whether a read locks the rows it reads until the transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowLock {
    None,
    ForUpdate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_arguments_continue_the_numbering() {
        let (sql, args) = Statement::new("SELECT 1 WHERE a = $1")
            .text("x")
            .push(" AND b IN (")
            .push_texts(["p", "q"])
            .push(") AND c = ")
            .push_arg(Value::Int(Some(3)))
            .into_parts();
        assert_eq!(
            sql.as_str(),
            "SELECT 1 WHERE a = $1 AND b IN ($2, $3) AND c = $4"
        );
        assert_eq!(args.len(), 4);
    }

    #[test]
    fn a_row_set_is_one_json_array_of_rows_for_sqlite() {
        let t = DateTime::from_timestamp_micros(1_000_001).unwrap();
        let rows = RowSet::new()
            .column("id", Array::Text(vec!["a\"b", "c"]))
            .column("n", Array::Int(vec![1, -2]))
            .column("x", Array::Float(vec![0.1, -2.0]))
            .column("t", Array::Time(vec![t, t]));
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows.to_json_rows(),
            r#"[["a\"b",1,4591870180066957722,1000001],["c",-2,-4611686018427387904,1000001]]"#
        );
        assert_eq!(RowSet::new().to_json_rows(), "[]");
    }

    #[test]
    fn rows_hand_out_their_cells_by_row() {
        let mut rows = Rows::with_capacity(&[Column::Int, Column::Text], 2);
        for cell in [
            Cell::Int(1),
            Cell::Text("a".into()),
            Cell::Int(2),
            Cell::Null,
        ] {
            rows.push(cell);
        }
        assert_eq!(rows.len(), 2);
        let read: Vec<(i64, Option<String>)> = rows
            .iter_mut()
            .map(|mut row| Ok((row.int(0)?, row.opt_text(1)?)))
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(read, [(1, Some("a".into())), (2, None)]);
    }

    #[test]
    fn a_null_where_a_value_is_needed_is_internal() {
        let mut rows = Rows::with_capacity(&[Column::Json], 1);
        rows.push(Cell::Null);
        let mut row = rows.iter_mut().next().unwrap();
        assert!(matches!(row.json::<u32>(0), Err(Error::Internal(_))));
    }
}
