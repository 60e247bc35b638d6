//! API keys, stored by the hash of their secret; the one lookup made before
//! the tenant is known (authentication) finds a key by that hash.

use super::connection::{Connection, RowLock, Statement};
use super::constraints::Subject;
use crate::domain::api_key::ApiKey;
use crate::domain::names::Id;
use crate::error::Result;

const INSERT: &str = "INSERT INTO api_keys (tenant, id, key_hash, body) VALUES ($1, $2, $3, $4)";

const GET: &str = "SELECT body FROM api_keys WHERE tenant = $1 AND id = $2";

const LIST: &str = "\
    SELECT body FROM api_keys WHERE tenant = $1 AND ($2 IS NULL OR id > $2) \
    ORDER BY id LIMIT $3";

const UPDATE: &str = "UPDATE api_keys SET body = $3 WHERE tenant = $1 AND id = $2";

const FIND: &str = "SELECT body FROM api_keys WHERE key_hash = $1";

pub(super) async fn insert(conn: &mut dyn Connection, key: &ApiKey) -> Result<()> {
    let statement = Statement::new(INSERT)
        .text(key.tenant.as_str())
        .text(key.id.as_str())
        .text(key.key_hash.as_str())
        .json(key)?;
    conn.write(statement, Subject::Writes(&key.name())).await?;
    Ok(())
}

pub(super) async fn get(
    conn: &mut dyn Connection,
    tenant: &Id,
    id: &Id,
    lock: RowLock,
) -> Result<Option<ApiKey>> {
    let keys = [tenant.as_str(), id.as_str()];
    conn.body_by_key(GET, &keys, lock, "get api key").await
}

pub(super) async fn list(
    conn: &mut dyn Connection,
    tenant: &Id,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ApiKey>> {
    conn.page(LIST, &[tenant.as_str()], after, limit, "list api keys")
        .await
}

pub(super) async fn update(conn: &mut dyn Connection, key: &ApiKey) -> Result<()> {
    let statement = Statement::new(UPDATE)
        .text(key.tenant.as_str())
        .text(key.id.as_str())
        .json(key)?;
    conn.write(statement, Subject::Writes(&key.name())).await?;
    Ok(())
}

pub(super) async fn find(conn: &mut dyn Connection, key_hash: &str) -> Result<Option<ApiKey>> {
    conn.body_by_key(FIND, &[key_hash], RowLock::None, "find api key")
        .await
}
