//! request_ids of creates (AIP-155): claimed until they expire, then taken
//! over in place by the next claim whether or not the sweep has deleted
//! them; the sweep only reclaims space.

use chrono::{DateTime, Utc};

use super::StoredRequest;
use super::connection::{Column, Connection, Statement};
use super::constraints::internal;
use crate::error::{Error, Result};

/// Claims request_id `$2` of tenant `$1` (fingerprint `$3`, at `$4`, until
/// `$5`), taking over a row expired by then; changes no row when a live
/// claim holds it. PostgreSQL makes a concurrent claim of the same id wait
/// for the first transaction.
const CLAIM: &str = "\
    INSERT INTO request_ids (tenant, request_id, fingerprint, create_time, expire_time) \
    VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (tenant, request_id) DO UPDATE SET \
      fingerprint = excluded.fingerprint, response = NULL, \
      create_time = excluded.create_time, expire_time = excluded.expire_time \
    WHERE request_ids.expire_time <= excluded.create_time";

const GET: &str =
    "SELECT fingerprint, response FROM request_ids WHERE tenant = $1 AND request_id = $2";

const COMPLETE: &str = "UPDATE request_ids SET response = $3 WHERE tenant = $1 AND request_id = $2";

/// Up to `$2` request_ids of any tenant expired at `$1`. The outer
/// condition is checked again on a row a concurrent claim has just taken
/// over (PostgreSQL re-reads it after waiting for the claim), so a live id
/// is never deleted.
const DELETE_EXPIRED: &str = "\
    DELETE FROM request_ids WHERE expire_time <= $1 \
    AND (tenant, request_id) IN ( \
      SELECT tenant, request_id FROM request_ids WHERE expire_time <= $1 \
      ORDER BY expire_time LIMIT $2)";

pub(super) async fn claim(
    conn: &mut dyn Connection,
    tenant: &str,
    request_id: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
    expire_time: DateTime<Utc>,
) -> Result<Option<StoredRequest>> {
    let statement = Statement::new(CLAIM)
        .text(tenant)
        .text(request_id)
        .text(fingerprint)
        .time(now)
        .time(expire_time);
    if conn.run(statement, "claim request_id").await? == 1 {
        return Ok(None);
    }
    let statement = Statement::new(GET).text(tenant).text(request_id);
    let mut rows = conn
        .fetch(statement, &[Column::Text, Column::Json])
        .await
        .map_err(internal("read request_id"))?;
    let mut row = rows
        .iter_mut()
        .next()
        .ok_or_else(|| Error::internal("request_id vanished between insert and read"))?;
    Ok(Some(StoredRequest {
        fingerprint: row.text(0)?,
        response: row.opt_json(1)?,
    }))
}

pub(super) async fn complete(
    conn: &mut dyn Connection,
    tenant: &str,
    request_id: &str,
    response: &serde_json::Value,
) -> Result<()> {
    let statement = Statement::new(COMPLETE)
        .text(tenant)
        .text(request_id)
        .json(response)?;
    conn.run(statement, "complete request_id").await?;
    Ok(())
}

pub(super) async fn delete_expired(
    conn: &mut dyn Connection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<u64> {
    let statement = Statement::new(DELETE_EXPIRED).time(now).int(limit);
    conn.run(statement, "delete expired request_ids").await
}
