//! Services of the catalogue, each owned by a party.

use super::connection::{Collection, Connection, Statement};
use super::constraints::Subject;
use crate::domain::names::{Id, service_name};
use crate::domain::service::Service;
use crate::error::Result;

const INSERT: &str = "INSERT INTO services (tenant, id, owner, body) VALUES ($1, $2, $3, $4)";

/// The services of a tenant, by id.
pub(super) const SERVICES: Collection = Collection {
    get: "SELECT body FROM services WHERE tenant = $1 AND id = $2",
    list: "\
        SELECT body FROM services WHERE tenant = $1 AND ($2 IS NULL OR id > $2) \
        ORDER BY id LIMIT $3",
    context: "read services",
};

const UPDATE: &str = "UPDATE services SET owner = $3, body = $4 WHERE tenant = $1 AND id = $2";

const DELETE: &str = "DELETE FROM services WHERE tenant = $1 AND id = $2";

/// What tenant `$1` keeps of service `$2`'s measurements and their
/// evaluations, deleted with the service: a service created again under
/// the same id starts without them. Run after the service's row is gone: a
/// batch of measurements holds the services it names until it commits, so
/// none can add rows behind these. (The idempotency keys name no service:
/// they stay until retention.)
const DELETE_MEASURED: [&str; 9] = [
    "DELETE FROM measurement_counts WHERE tenant = $1 AND service = $2",
    "DELETE FROM measurement_samples WHERE tenant = $1 AND service = $2",
    "DELETE FROM measurement_downtime WHERE tenant = $1 AND service = $2",
    "DELETE FROM count_rollups_minute WHERE tenant = $1 AND service = $2",
    "DELETE FROM count_rollups_hour WHERE tenant = $1 AND service = $2",
    "DELETE FROM count_rollups_day WHERE tenant = $1 AND service = $2",
    "DELETE FROM compliance_dirty WHERE tenant = $1 AND service = $2",
    "DELETE FROM period_evaluations WHERE tenant = $1 AND service = $2",
    "DELETE FROM objective_alerts WHERE tenant = $1 AND service = $2",
];

/// The names of the agreements that cover service `$2`, at most `$3`.
const USERS: &str = "\
    SELECT 'tenants/' || tenant || '/agreements/' || agreement_id FROM agreement_services \
    WHERE tenant = $1 AND service_id = $2 ORDER BY agreement_id LIMIT $3";

/// `sql` (INSERT or UPDATE, keyed by `$1`, `$2`) with the service's columns
/// bound.
fn with_columns<'a>(sql: &'static str, service: &'a Service) -> Result<Statement<'a>> {
    Statement::new(sql)
        .text(service.tenant.as_str())
        .text(service.id.as_str())
        .text(service.owner.as_str())
        .json(service)
}

pub(super) async fn insert(conn: &mut dyn Connection, service: &Service) -> Result<()> {
    let statement = with_columns(INSERT, service)?;
    conn.write(statement, Subject::Writes(&service.name()))
        .await?;
    Ok(())
}

pub(super) async fn update(conn: &mut dyn Connection, service: &Service) -> Result<()> {
    let statement = with_columns(UPDATE, service)?;
    conn.write(statement, Subject::Writes(&service.name()))
        .await?;
    Ok(())
}

pub(super) async fn delete(conn: &mut dyn Connection, tenant: &Id, id: &Id) -> Result<()> {
    let statement = Statement::new(DELETE)
        .text(tenant.as_str())
        .text(id.as_str());
    conn.write(statement, Subject::Deletes(&service_name(tenant, id)))
        .await?;
    for sql in DELETE_MEASURED {
        let statement = Statement::new(sql).text(tenant.as_str()).text(id.as_str());
        conn.run(statement, "delete a service's measurements")
            .await?;
    }
    Ok(())
}

pub(super) async fn users(
    conn: &mut dyn Connection,
    tenant: &Id,
    id: &Id,
    limit: i64,
) -> Result<Vec<String>> {
    conn.referrers(USERS, tenant, id, limit, "service users")
        .await
}
