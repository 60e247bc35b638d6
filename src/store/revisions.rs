//! Revisions: immutable snapshots of an agreement, numbered by `seq`, and
//! the services each covers (`revision_services`), by which resolution
//! finds the revisions that matter for a service without decoding bodies.

use super::connection::{Connection, RowLock, Statement};
use super::constraints::Subject;
use crate::domain::agreement::Revision;
use crate::domain::names::Id;
use crate::error::Result;

const INSERT: &str = "\
    INSERT INTO agreement_revisions (tenant, agreement_id, id, seq, create_time, body) \
    VALUES ($1, $2, $3, $4, $5, $6)";

const INSERT_SERVICE: &str = "\
    INSERT INTO revision_services (tenant, agreement_id, seq, service_id, kind, consumer) \
    VALUES ($1, $2, $3, $4, $5, $6)";

const GET: &str =
    "SELECT body FROM agreement_revisions WHERE tenant = $1 AND agreement_id = $2 AND id = $3";

/// Newest first, older than sequence number `$3` when given.
const LIST: &str = "\
    SELECT body FROM agreement_revisions WHERE tenant = $1 AND agreement_id = $2 \
    AND ($3 IS NULL OR seq < $3) ORDER BY seq DESC LIMIT $4";

const COUNT: &str =
    "SELECT COUNT(*) FROM agreement_revisions WHERE tenant = $1 AND agreement_id = $2";

pub(super) async fn insert(conn: &mut dyn Connection, r: &Revision) -> Result<()> {
    let name = r.name();
    let statement = Statement::new(INSERT)
        .text(r.tenant.as_str())
        .text(r.agreement.as_str())
        .text(r.id.as_str())
        .int(r.seq)
        .time(r.create_time)
        .json(r)?;
    conn.write(statement, Subject::Writes(&name)).await?;
    for service in &r.snapshot.services {
        let statement = Statement::new(INSERT_SERVICE)
            .text(r.tenant.as_str())
            .text(r.agreement.as_str())
            .int(r.seq)
            .text(service.as_str())
            .text(r.snapshot.kind.as_str())
            .text(r.snapshot.consumer.as_ref().map(Id::as_str));
        conn.write(statement, Subject::Writes(&name)).await?;
    }
    Ok(())
}

pub(super) async fn get(
    conn: &mut dyn Connection,
    tenant: &Id,
    agreement: &Id,
    id: &Id,
) -> Result<Option<Revision>> {
    let keys = [tenant.as_str(), agreement.as_str(), id.as_str()];
    conn.body_by_key(GET, &keys, RowLock::None, "get revision")
        .await
}

pub(super) async fn list(
    conn: &mut dyn Connection,
    tenant: &Id,
    agreement: &Id,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Revision>> {
    let statement = Statement::new(LIST)
        .text(tenant.as_str())
        .text(agreement.as_str())
        .int(before)
        .int(limit);
    conn.bodies(statement, "list revisions").await
}

pub(super) async fn count(conn: &mut dyn Connection, tenant: &Id, agreement: &Id) -> Result<i64> {
    let statement = Statement::new(COUNT)
        .text(tenant.as_str())
        .text(agreement.as_str());
    conn.int(statement, "count revisions").await
}
