//! API keys, stored by the hash of their secret; the one lookup made before
//! the tenant is known (authentication) finds a key by that hash.

use super::connection::{Collection, Connection, RowLock, Statement};
use super::constraints::Subject;
use crate::domain::api_key::ApiKey;
use crate::error::Result;

const INSERT: &str = "INSERT INTO api_keys (tenant, id, key_hash, body) VALUES ($1, $2, $3, $4)";

/// The API keys of a tenant, by id.
pub(super) const API_KEYS: Collection = Collection {
    get: "SELECT body FROM api_keys WHERE tenant = $1 AND id = $2",
    list: "\
        SELECT body FROM api_keys WHERE tenant = $1 AND ($2 IS NULL OR id > $2) \
        ORDER BY id LIMIT $3",
    context: "read api keys",
};

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
