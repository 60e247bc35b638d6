//! Parties and their history: every parent a party has had, with the span
//! of transaction time it was current (`party_history`), written in the
//! same transaction as the change, for resolutions as known at a past time.

use chrono::{DateTime, Utc};

use super::MAX_ANCESTRY;
use super::connection::{Collection, Connection, Statement};
use super::constraints::Subject;
use crate::domain::names::{Id, party_name};
use crate::domain::party::Party;
use crate::error::Result;

const INSERT: &str =
    "INSERT INTO parties (tenant, id, kind, parent, body) VALUES ($1, $2, $3, $4, $5)";

/// The parties of a tenant, by id.
pub(super) const PARTIES: Collection = Collection {
    get: "SELECT body FROM parties WHERE tenant = $1 AND id = $2",
    list: "\
        SELECT body FROM parties WHERE tenant = $1 AND ($2 IS NULL OR id > $2) \
        ORDER BY id LIMIT $3",
    context: "read parties",
};

const UPDATE: &str =
    "UPDATE parties SET kind = $3, parent = $4, body = $5 WHERE tenant = $1 AND id = $2";

const DELETE: &str = "DELETE FROM parties WHERE tenant = $1 AND id = $2";

/// The names of the resources that refer to party `$2`, at most `$3`.
const USERS: &str = "\
    SELECT name FROM ( \
      SELECT 'tenants/' || tenant || '/parties/' || id AS name FROM parties \
        WHERE tenant = $1 AND parent = $2 \
      UNION ALL \
      SELECT 'tenants/' || tenant || '/services/' || id FROM services \
        WHERE tenant = $1 AND owner = $2 \
      UNION ALL \
      SELECT 'tenants/' || tenant || '/agreements/' || id FROM agreements \
        WHERE tenant = $1 AND (provider = $2 OR consumer = $2) \
      UNION ALL \
      SELECT 'tenants/' || tenant || '/agreements/' || agreement_id || '/overrides/' || id \
        FROM overrides WHERE tenant = $1 AND consumer = $2 \
    ) AS users ORDER BY name LIMIT $3";

/// Party `$2` has had parent `$3` since `$4`.
const RECORD: &str = "\
    INSERT INTO party_history (tenant, party_id, parent, recorded_from) \
    VALUES ($1, $2, $3, $4)";

/// Ends the current version of party `$2` at `$3`, if its parent is no
/// longer `$4`.
const CLOSE_IF_MOVED: &str = "\
    UPDATE party_history SET recorded_until = $3 \
    WHERE tenant = $1 AND party_id = $2 AND recorded_until IS NULL \
    AND parent IS DISTINCT FROM $4";

/// Ends the current version of party `$2` at `$3`.
const CLOSE: &str = "\
    UPDATE party_history SET recorded_until = $3 \
    WHERE tenant = $1 AND party_id = $2 AND recorded_until IS NULL";

/// `chain (root, id, parent, depth)`: each of the parties `roots` (SQL: a
/// list of placeholders) of tenant `$1` and its ancestors up to depth `$3`,
/// as recorded at `$2`, each row with the party it starts from. The start
/// of the statements that read ancestries. Each step looks the parent up by
/// its key: `chain c CROSS JOIN party_history h` keeps SQLite from scanning
/// the tenant's whole history at every step instead (SQLite takes a CROSS
/// JOIN's order as written; PostgreSQL plans it as any inner join).
pub(super) fn chain(roots: &str) -> String {
    format!(
        "WITH RECURSIVE chain (root, id, parent, depth) AS ( \
           SELECT party_id, party_id, parent, 0 FROM party_history \
             WHERE tenant = $1 AND party_id IN ({roots}) AND recorded_from <= $2 \
             AND (recorded_until IS NULL OR recorded_until > $2) \
           UNION ALL \
           SELECT c.root, h.party_id, h.parent, c.depth + 1 \
             FROM chain c CROSS JOIN party_history h \
             WHERE h.party_id = c.parent AND h.tenant = $1 AND h.recorded_from <= $2 \
             AND (h.recorded_until IS NULL OR h.recorded_until > $2) AND c.depth < $3 \
         ) "
    )
}

/// A statement that starts with `chain`, its first three arguments bound.
pub(super) fn chain_statement<'a>(
    sql: &str,
    tenant: &'a Id,
    known_at: DateTime<Utc>,
) -> Statement<'a> {
    Statement::new("")
        .push(sql)
        .text(tenant.as_str())
        .time(known_at)
        .int(MAX_ANCESTRY as i64)
}

/// `sql` (INSERT or UPDATE, keyed by `$1`, `$2`) with the party's columns
/// bound.
fn with_columns<'a>(sql: &'static str, party: &'a Party) -> Result<Statement<'a>> {
    Statement::new(sql)
        .text(party.tenant.as_str())
        .text(party.id.as_str())
        .text(party.kind.as_str())
        .text(party.parent.as_ref().map(Id::as_str))
        .json(party)
}

pub(super) async fn insert(conn: &mut dyn Connection, party: &Party) -> Result<()> {
    conn.write(with_columns(INSERT, party)?, Subject::Writes(&party.name()))
        .await?;
    record(conn, party, party.meta.create_time).await
}

/// Records the party's parent as current from `at`.
async fn record(conn: &mut dyn Connection, party: &Party, at: DateTime<Utc>) -> Result<()> {
    let statement = Statement::new(RECORD)
        .text(party.tenant.as_str())
        .text(party.id.as_str())
        .text(party.parent.as_ref().map(Id::as_str))
        .time(at);
    conn.run(statement, "record party history").await?;
    Ok(())
}

pub(super) async fn update(conn: &mut dyn Connection, party: &Party) -> Result<()> {
    conn.write(with_columns(UPDATE, party)?, Subject::Writes(&party.name()))
        .await?;
    // A new version of the party's history only when its parent moves.
    let close = Statement::new(CLOSE_IF_MOVED)
        .text(party.tenant.as_str())
        .text(party.id.as_str())
        .time(party.meta.update_time)
        .text(party.parent.as_ref().map(Id::as_str));
    if conn.run(close, "close party history").await? > 0 {
        record(conn, party, party.meta.update_time).await?;
    }
    Ok(())
}

pub(super) async fn delete(
    conn: &mut dyn Connection,
    tenant: &Id,
    id: &Id,
    now: DateTime<Utc>,
) -> Result<()> {
    let statement = Statement::new(DELETE)
        .text(tenant.as_str())
        .text(id.as_str());
    conn.write(statement, Subject::Deletes(&party_name(tenant, id)))
        .await?;
    let close = Statement::new(CLOSE)
        .text(tenant.as_str())
        .text(id.as_str())
        .time(now);
    conn.run(close, "close party history").await?;
    Ok(())
}

pub(super) async fn users(
    conn: &mut dyn Connection,
    tenant: &Id,
    id: &Id,
    limit: i64,
) -> Result<Vec<String>> {
    conn.referrers(USERS, tenant, id, limit, "party users")
        .await
}

/// The party, then its parent and so on up, as recorded at `known_at`.
pub(super) async fn ancestry(
    conn: &mut dyn Connection,
    tenant: &Id,
    party: &Id,
    known_at: DateTime<Utc>,
) -> Result<Vec<Id>> {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{}SELECT id FROM chain ORDER BY depth", chain("$4")));
    let statement = chain_statement(&SQL, tenant, known_at).text(party.as_str());
    let ids = conn.texts(statement, "party ancestry").await?;
    Ok(ids.into_iter().map(Id::generated).collect())
}
