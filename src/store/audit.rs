//! The audit trail: append-only (SQLite triggers, PostgreSQL privileges),
//! with no foreign key to the tenant so that it outlives what it describes.
//! Each event carries its tenant's uid, by which a tenant lists only its own.

use super::connection::{Connection, Statement};
use super::constraints::Subject;
use crate::domain::audit::{AuditCursor, AuditEvent, AuditFilter};
use crate::domain::names::Id;
use crate::error::Result;

const INSERT: &str = "\
    INSERT INTO audit_events (tenant, id, tenant_uid, event_time, actor, resource, body) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Newest first, by `(event_time, id)`; each condition holds when its
/// argument is NULL: tenant uid `$2`, resource `$3`, actor `$4`, from `$5`,
/// until `$6`, strictly older than the cursor (`$7`, `$8`).
const LIST: &str = "\
    SELECT body FROM audit_events WHERE tenant = $1 \
    AND ($2 IS NULL OR tenant_uid = $2) \
    AND ($3 IS NULL OR resource = $3) \
    AND ($4 IS NULL OR actor = $4) \
    AND ($5 IS NULL OR event_time >= $5) \
    AND ($6 IS NULL OR event_time < $6) \
    AND ($7 IS NULL OR event_time < $7 OR (event_time = $7 AND id < $8)) \
    ORDER BY event_time DESC, id DESC LIMIT $9";

pub(super) async fn insert(conn: &mut dyn Connection, event: &AuditEvent) -> Result<()> {
    let statement = Statement::new(INSERT)
        .text(event.tenant.as_str())
        .text(event.id.as_str())
        .text(event.tenant_uid.as_str())
        .time(event.event_time)
        .text(event.actor.as_str())
        .text(event.resource.as_str())
        .json(event)?;
    conn.write(statement, Subject::Writes(&event.name()))
        .await?;
    Ok(())
}

pub(super) async fn list(
    conn: &mut dyn Connection,
    tenant: &Id,
    tenant_uid: Option<&str>,
    filter: &AuditFilter,
    before: Option<&AuditCursor>,
    limit: i64,
) -> Result<Vec<AuditEvent>> {
    let statement = Statement::new(LIST)
        .text(tenant.as_str())
        .text(tenant_uid)
        .text(filter.resource.as_deref())
        .text(filter.actor.as_deref())
        .time(filter.start_time)
        .time(filter.end_time)
        .time(before.map(|c| c.time))
        .text(before.map(|c| c.id.as_str()))
        .int(limit);
    conn.bodies(statement, "list audit events").await
}
