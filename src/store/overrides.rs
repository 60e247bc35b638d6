//! Overrides of an agreement for one consumer, and their history: every
//! version with the span of transaction time it was current
//! (`override_history`), written in the same transaction as the change, so
//! that a resolution can read them as known at a past time.

use chrono::{DateTime, Utc};

use super::connection::{Column, Connection, RowLock, Statement};
use super::constraints::{Subject, refused};
use crate::domain::names::Id;
use crate::domain::overrides::Override;
use crate::error::Result;

const INSERT: &str = "\
    INSERT INTO overrides (tenant, agreement_id, id, consumer, body) \
    VALUES ($1, $2, $3, $4, $5)";

const GET: &str = "SELECT body FROM overrides WHERE tenant = $1 AND agreement_id = $2 AND id = $3";

const LIST: &str = "\
    SELECT body FROM overrides WHERE tenant = $1 AND agreement_id = $2 \
    AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4";

const UPDATE: &str = "\
    UPDATE overrides SET consumer = $4, body = $5 \
    WHERE tenant = $1 AND agreement_id = $2 AND id = $3";

const DELETE: &str = "DELETE FROM overrides WHERE tenant = $1 AND agreement_id = $2 AND id = $3";

const DELETE_OF_AGREEMENT: &str =
    "DELETE FROM overrides WHERE tenant = $1 AND agreement_id = $2 RETURNING body";

/// Override `$3` of agreement `$2` is `$6` from `$5`.
const RECORD: &str = "\
    INSERT INTO override_history \
    (tenant, agreement_id, override_id, consumer, recorded_from, body) \
    VALUES ($1, $2, $3, $4, $5, $6)";

/// Ends the current version of override `$3` at `$4`.
const CLOSE: &str = "\
    UPDATE override_history SET recorded_until = $4 WHERE tenant = $1 \
    AND agreement_id = $2 AND override_id = $3 AND recorded_until IS NULL";

/// Ends the current version of every override of agreement `$2` at `$3`.
const CLOSE_OF_AGREEMENT: &str = "\
    UPDATE override_history SET recorded_until = $3 \
    WHERE tenant = $1 AND agreement_id = $2 AND recorded_until IS NULL";

/// The versions current at `$2` of the overrides of the agreements listed
/// after it, closed by `AS_OF_END`.
const AS_OF: &str = "\
    SELECT body FROM override_history WHERE tenant = $1 \
    AND recorded_from <= $2 AND (recorded_until IS NULL OR recorded_until > $2) \
    AND agreement_id IN (";
const AS_OF_END: &str = ") ORDER BY agreement_id, override_id";

/// The first versions, recorded after `$2`, of the overrides of the
/// agreements listed after it, closed by `AS_OF_END`.
const FIRST_RECORDED_AFTER: &str = "\
    SELECT h.body FROM override_history h WHERE h.tenant = $1 AND h.recorded_from > $2 \
    AND h.recorded_from = (SELECT MIN(f.recorded_from) FROM override_history f \
      WHERE f.tenant = h.tenant AND f.agreement_id = h.agreement_id \
      AND f.override_id = h.override_id) \
    AND h.agreement_id IN (";
const FIRST_RECORDED_AFTER_END: &str = ") ORDER BY h.agreement_id, h.override_id";

/// `sql` (INSERT or UPDATE, keyed by `$1`, `$2`, `$3`) with the override's
/// columns bound.
fn with_columns<'a>(sql: &'static str, o: &'a Override) -> Result<Statement<'a>> {
    Statement::new(sql)
        .text(o.tenant.as_str())
        .text(o.agreement.as_str())
        .text(o.id.as_str())
        .text(o.consumer.as_str())
        .json(o)
}

pub(super) async fn insert(conn: &mut dyn Connection, o: &Override) -> Result<()> {
    conn.write(with_columns(INSERT, o)?, Subject::Writes(&o.name()))
        .await?;
    record(conn, o).await
}

/// Records the override's current version in its history, closing the one
/// before.
async fn record(conn: &mut dyn Connection, o: &Override) -> Result<()> {
    let at = o.meta.update_time;
    close(conn, &o.tenant, &o.agreement, &o.id, at).await?;
    let statement = Statement::new(RECORD)
        .text(o.tenant.as_str())
        .text(o.agreement.as_str())
        .text(o.id.as_str())
        .text(o.consumer.as_str())
        .time(at)
        .json(o)?;
    conn.run(statement, "record override history").await?;
    Ok(())
}

async fn close(
    conn: &mut dyn Connection,
    tenant: &Id,
    agreement: &Id,
    id: &Id,
    at: DateTime<Utc>,
) -> Result<()> {
    let statement = Statement::new(CLOSE)
        .text(tenant.as_str())
        .text(agreement.as_str())
        .text(id.as_str())
        .time(at);
    conn.run(statement, "close override history").await?;
    Ok(())
}

pub(super) async fn get(
    conn: &mut dyn Connection,
    tenant: &Id,
    agreement: &Id,
    id: &Id,
    lock: RowLock,
) -> Result<Option<Override>> {
    let keys = [tenant.as_str(), agreement.as_str(), id.as_str()];
    conn.body_by_key(GET, &keys, lock, "get override").await
}

pub(super) async fn list(
    conn: &mut dyn Connection,
    tenant: &Id,
    agreement: &Id,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Override>> {
    let keys = [tenant.as_str(), agreement.as_str()];
    conn.page(LIST, &keys, after, limit, "list overrides").await
}

pub(super) async fn update(conn: &mut dyn Connection, o: &Override) -> Result<()> {
    conn.write(with_columns(UPDATE, o)?, Subject::Writes(&o.name()))
        .await?;
    record(conn, o).await
}

pub(super) async fn delete(
    conn: &mut dyn Connection,
    tenant: &Id,
    agreement: &Id,
    id: &Id,
    now: DateTime<Utc>,
) -> Result<()> {
    let statement = Statement::new(DELETE)
        .text(tenant.as_str())
        .text(agreement.as_str())
        .text(id.as_str());
    conn.run(statement, "delete override").await?;
    close(conn, tenant, agreement, id, now).await
}

/// Deletes the overrides of agreement `agreement` (named `name`) and ends
/// their history at `now`; returns them, by id. Their history must end, or
/// a later agreement with the same id would resolve with them
/// (`override_history` is keyed by agreement id).
pub(super) async fn delete_of_agreement(
    conn: &mut dyn Connection,
    tenant: &Id,
    agreement: &Id,
    now: DateTime<Utc>,
    name: &str,
) -> Result<Vec<Override>> {
    let statement = Statement::new(DELETE_OF_AGREEMENT)
        .text(tenant.as_str())
        .text(agreement.as_str());
    let mut rows = conn
        .fetch(statement, &[Column::Json])
        .await
        .map_err(|f| refused(f, Subject::Deletes(name)))?;
    let mut removed = rows
        .iter_mut()
        .map(|mut row| row.json(0))
        .collect::<Result<Vec<Override>>>()?;
    removed.sort_by(|a, b| a.id.cmp(&b.id));
    let close = Statement::new(CLOSE_OF_AGREEMENT)
        .text(tenant.as_str())
        .text(agreement.as_str())
        .time(now);
    conn.run(close, "close override history").await?;
    Ok(removed)
}

/// The overrides of `agreements`, each as recorded at `known_at`.
pub(super) async fn as_of(
    conn: &mut dyn Connection,
    tenant: &Id,
    agreements: &[Id],
    known_at: DateTime<Utc>,
) -> Result<Vec<Override>> {
    let sql = [AS_OF, AS_OF_END];
    read_history(
        conn,
        sql,
        tenant,
        agreements,
        known_at,
        "entitlement overrides",
    )
    .await
}

/// The overrides of `agreements` first recorded after `known_at`, each as
/// first recorded.
pub(super) async fn first_recorded_after(
    conn: &mut dyn Connection,
    tenant: &Id,
    agreements: &[Id],
    known_at: DateTime<Utc>,
) -> Result<Vec<Override>> {
    let sql = [FIRST_RECORDED_AFTER, FIRST_RECORDED_AFTER_END];
    read_history(
        conn,
        sql,
        tenant,
        agreements,
        known_at,
        "overrides recorded after",
    )
    .await
}

/// Versions of the overrides of `agreements` from `override_history`: the
/// first part of `sql` takes the tenant and an instant, then the list of
/// agreements, then the second part.
async fn read_history(
    conn: &mut dyn Connection,
    [head, tail]: [&'static str; 2],
    tenant: &Id,
    agreements: &[Id],
    at: DateTime<Utc>,
    context: &'static str,
) -> Result<Vec<Override>> {
    if agreements.is_empty() {
        return Ok(Vec::new());
    }
    let statement = Statement::new(head)
        .text(tenant.as_str())
        .time(at)
        .push_texts(agreements.iter().map(Id::as_str))
        .push(tail);
    conn.bodies(statement, context).await
}
