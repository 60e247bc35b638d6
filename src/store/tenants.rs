//! Tenants, and the deletion of everything a tenant holds. The audit trail
//! is not removed with it: events outlive what they describe.

use super::connection::{Connection, RowLock, Statement};
use super::constraints::Subject;
use crate::domain::names::Id;
use crate::domain::tenant::Tenant;
use crate::error::Result;

const INSERT: &str = "INSERT INTO tenants (id, uid, body) VALUES ($1, $2, $3)";

const GET: &str = "SELECT body FROM tenants WHERE id = $1";

const LIST: &str = "SELECT body FROM tenants WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2";

const UPDATE: &str = "UPDATE tenants SET body = $2 WHERE id = $1";

/// The names of the resources of tenant `$1` that keep it from being
/// deleted without `force`, at most `$2`.
const CONTENTS: &str = "\
    SELECT name FROM ( \
      SELECT 'tenants/' || tenant || '/parties/' || id AS name FROM parties WHERE tenant = $1 \
      UNION ALL \
      SELECT 'tenants/' || tenant || '/services/' || id FROM services WHERE tenant = $1 \
      UNION ALL \
      SELECT 'tenants/' || tenant || '/agreements/' || id FROM agreements WHERE tenant = $1 \
    ) AS contents ORDER BY name LIMIT $2";

/// Everything of tenant `$1`, children before parents so that no foreign
/// key is ever left dangling.
const DELETE: &[&str] = &[
    "DELETE FROM override_history WHERE tenant = $1",
    "DELETE FROM party_history WHERE tenant = $1",
    "DELETE FROM overrides WHERE tenant = $1",
    "DELETE FROM revision_services WHERE tenant = $1",
    "DELETE FROM agreement_revisions WHERE tenant = $1",
    "DELETE FROM agreement_supports WHERE tenant = $1",
    "DELETE FROM agreement_labels WHERE tenant = $1",
    "DELETE FROM agreement_services WHERE tenant = $1",
    "DELETE FROM agreements WHERE tenant = $1",
    "DELETE FROM services WHERE tenant = $1",
    "DELETE FROM parties WHERE tenant = $1",
    // After the services: a batch of measurements holds the services it
    // names until it commits, so its rows are there to delete by now.
    "DELETE FROM measurement_keys WHERE tenant = $1",
    "DELETE FROM measurement_counts WHERE tenant = $1",
    "DELETE FROM measurement_samples WHERE tenant = $1",
    "DELETE FROM measurement_downtime WHERE tenant = $1",
    "DELETE FROM count_rollups_minute WHERE tenant = $1",
    "DELETE FROM count_rollups_hour WHERE tenant = $1",
    "DELETE FROM count_rollups_day WHERE tenant = $1",
    "DELETE FROM breach_revisions WHERE tenant = $1",
    "DELETE FROM breaches WHERE tenant = $1",
    "DELETE FROM period_evaluations WHERE tenant = $1",
    "DELETE FROM compliance_dirty WHERE tenant = $1",
    "DELETE FROM objective_alerts WHERE tenant = $1",
    "DELETE FROM request_ids WHERE tenant = $1",
    "DELETE FROM api_keys WHERE tenant = $1",
    "DELETE FROM tenants WHERE id = $1",
];

pub(super) async fn insert(conn: &mut dyn Connection, tenant: &Tenant) -> Result<()> {
    let statement = Statement::new(INSERT)
        .text(tenant.id.as_str())
        .text(tenant.uid.as_str())
        .json(tenant)?;
    conn.write(statement, Subject::Writes(&tenant.name()))
        .await?;
    Ok(())
}

pub(super) async fn get(
    conn: &mut dyn Connection,
    id: &Id,
    lock: RowLock,
) -> Result<Option<Tenant>> {
    conn.body_by_key(GET, &[id.as_str()], lock, "get tenant")
        .await
}

pub(super) async fn list(
    conn: &mut dyn Connection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Tenant>> {
    conn.page(LIST, &[], after, limit, "list tenants").await
}

pub(super) async fn update(conn: &mut dyn Connection, tenant: &Tenant) -> Result<()> {
    let statement = Statement::new(UPDATE)
        .text(tenant.id.as_str())
        .json(tenant)?;
    conn.write(statement, Subject::Writes(&tenant.name()))
        .await?;
    Ok(())
}

pub(super) async fn contents(
    conn: &mut dyn Connection,
    id: &Id,
    limit: i64,
) -> Result<Vec<String>> {
    let statement = Statement::new(CONTENTS).text(id.as_str()).int(limit);
    conn.texts(statement, "tenant contents").await
}

pub(super) async fn delete(conn: &mut dyn Connection, id: &Id) -> Result<()> {
    let name = format!("tenants/{id}");
    for sql in DELETE {
        let statement = Statement::new(sql).text(id.as_str());
        conn.write(statement, Subject::Deletes(&name)).await?;
    }
    Ok(())
}
