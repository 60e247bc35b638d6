//! What entitlement resolution reads, as known at a transaction time: the
//! revisions of the agreements that count in a resolution and, in one
//! statement, everything a single resolution needs. Which kinds count, and
//! which kind is the base the overrides apply to, are the domain's
//! (`AgreementKind::RESOLVED`, `AgreementKind::ServiceLevel`), written into
//! the statements' text once, when first used.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::EntitlementRows;
use super::connection::{Column, Connection, Statement};
use super::constraints::internal;
use super::parties::{ANCESTRY, ancestry_of};
use crate::domain::agreement::{AgreementKind, Revision};
use crate::domain::names::Id;
use crate::error::Result;

/// The agreements of tenant `$1` one of whose revisions covers service
/// `service` and counts in a resolution, and meets `condition` (on `s`).
fn covering_agreements(service: &str, condition: &str) -> String {
    format!(
        "SELECT s.agreement_id FROM revision_services s \
         WHERE s.tenant = $1 AND s.service_id = {service} \
         AND s.kind IN ({resolved}){condition}",
        resolved = literals(AgreementKind::RESOLVED.iter().map(|k| k.as_str())),
    )
}

/// Every revision of the agreements covering service `$2` that count in a
/// resolution; by agreement, then sequence.
static REVISIONS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT r.body FROM agreement_revisions r WHERE r.tenant = $1 \
         AND r.agreement_id IN ({covering}) ORDER BY r.agreement_id, r.seq",
        covering = covering_agreements("$2", ""),
    )
});

/// Resolving consumer `$2` on service `$5` as known at `$3`, in one round
/// trip: the ancestry (up to depth `$4`), the service, the revisions of the
/// agreements that cover the service for the ancestry, and the overrides of
/// its base (service-level) agreements for the ancestry, told apart by
/// `part` and ordered by `n` within it.
static ROWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{ANCESTRY}\
         SELECT * FROM ( \
           SELECT CAST(0 AS BIGINT) AS part, CAST(depth AS BIGINT) AS n, \
                  id AS party, NULL AS body FROM chain \
           UNION ALL \
           SELECT 1, 0, NULL, body FROM services WHERE tenant = $1 AND id = $5 \
           UNION ALL \
           SELECT 2, r.seq, NULL, r.body FROM agreement_revisions r \
             WHERE r.tenant = $1 AND r.create_time <= $3 \
             AND r.agreement_id IN ({covering}) \
           UNION ALL \
           SELECT 3, 0, NULL, o.body FROM override_history o \
             WHERE o.tenant = $1 AND o.recorded_from <= $3 \
             AND (o.recorded_until IS NULL OR o.recorded_until > $3) \
             AND o.consumer IN (SELECT id FROM chain) \
             AND o.agreement_id IN (SELECT s.agreement_id FROM revision_services s \
               WHERE s.tenant = $1 AND s.service_id = $5 AND s.kind = {base}) \
         ) AS parts ORDER BY part, n",
        covering = covering_agreements(
            "$5",
            " AND (s.consumer IS NULL OR s.consumer IN (SELECT id FROM chain))"
        ),
        base = literals([AgreementKind::ServiceLevel.as_str()]),
    )
});

/// `'A', 'B'`: domain words as SQL literals. They are the names of enum
/// variants (`[A-Z_]+`), never input, so they need no escaping; written
/// into the text rather than bound, the statement is the same every call and
/// the planner sees them.
fn literals(words: impl IntoIterator<Item = &'static str>) -> String {
    let quoted: Vec<String> = words
        .into_iter()
        .map(|word| {
            assert!(
                word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{word} is not a domain word"
            );
            format!("'{word}'")
        })
        .collect();
    quoted.join(", ")
}

pub(super) async fn rows(
    conn: &mut dyn Connection,
    tenant: &Id,
    consumer: &Id,
    service: &Id,
    known_at: DateTime<Utc>,
) -> Result<EntitlementRows> {
    let statement = ancestry_of(ROWS.as_str(), tenant, consumer, known_at).text(service.as_str());
    let columns = [Column::Int, Column::Int, Column::Text, Column::Json];
    let mut rows = conn
        .fetch(statement, &columns)
        .await
        .map_err(internal("entitlement rows"))?;
    let mut out = EntitlementRows::default();
    for mut row in rows.iter_mut() {
        match row.int(0)? {
            0 => out.ancestry.push(Id::generated(row.text(2)?)),
            1 => out.service = Some(row.json(3)?),
            2 => out.revisions.push(row.json(3)?),
            _ => out.overrides.push(row.json(3)?),
        }
    }
    Ok(out)
}

pub(super) async fn revisions(
    conn: &mut dyn Connection,
    tenant: &Id,
    service: &Id,
) -> Result<Vec<Revision>> {
    let statement = Statement::new(REVISIONS.as_str())
        .text(tenant.as_str())
        .text(service.as_str());
    conn.bodies(statement, "entitlement revisions").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kinds_that_count_come_from_the_domain() {
        assert!(REVISIONS.contains("s.kind IN ('SERVICE_LEVEL', 'CUSTOMER', 'INTERNAL')"));
        assert!(ROWS.contains("s.kind = 'SERVICE_LEVEL'"));
    }
}
