//! What entitlement resolution reads, as known at a transaction time: the
//! revisions of the agreements that count in a resolution and, in one
//! statement, everything the resolution of one pair, or of many, needs. Which kinds count, and
//! which kind is the base the overrides apply to, are the domain's
//! (`AgreementKind::RESOLVED`, `AgreementKind::ServiceLevel`), written into
//! the statements' text once, when first used.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::EntitlementRows;
use super::connection::{Column, Connection, Statement};
use super::constraints::internal;
use super::parties::{chain, chain_statement};
use crate::domain::agreement::{AgreementKind, Revision};
use crate::domain::names::Id;
use crate::domain::overrides::Override;
use crate::domain::service::Service;
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

/// Resolving one pair, consumer `$4` on service `$5`, as known at `$2`, in
/// one round trip: the ancestry (up to depth `$3`), the service, the
/// revisions of the agreements that cover the service for the ancestry, and
/// the overrides of its base (service-level) agreements for the ancestry,
/// told apart by `part`. What `rows_statement` reads for many pairs, minus
/// the sorting out: the uncached ResolveEntitlement, the hot path.
static ROWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{chain}\
         SELECT * FROM ( \
           SELECT CAST(0 AS BIGINT) AS part, CAST(depth AS BIGINT) AS n, \
                  id AS party, NULL AS body FROM chain \
           UNION ALL \
           SELECT 1, 0, NULL, body FROM services WHERE tenant = $1 AND id = $5 \
           UNION ALL \
           SELECT 2, r.seq, NULL, r.body FROM agreement_revisions r \
             WHERE r.tenant = $1 AND r.create_time <= $2 \
             AND r.agreement_id IN ({covering}) \
           UNION ALL \
           SELECT 3, 0, NULL, o.body FROM override_history o \
             WHERE o.tenant = $1 AND o.recorded_from <= $2 \
             AND (o.recorded_until IS NULL OR o.recorded_until > $2) \
             AND o.consumer IN (SELECT id FROM chain) \
             AND o.agreement_id IN (SELECT s.agreement_id FROM revision_services s \
               WHERE s.tenant = $1 AND s.service_id = $5 AND s.kind = {base}) \
         ) AS parts ORDER BY part, n",
        chain = chain("$4"),
        covering = covering_agreements(
            "$5",
            " AND (s.consumer IS NULL OR s.consumer IN (SELECT id FROM chain))"
        ),
        base = literals([AgreementKind::ServiceLevel.as_str()]),
    )
});

/// Resolving many (consumer, service) pairs as known at `$2`, in one round
/// trip, whatever their number: the ancestries of the consumers `{consumers}`
/// (up to depth `$3`, each row with the consumer it starts from), the
/// services `{services}`, which agreements cover those services and for
/// whom, the revisions of the agreements that cover them for a party of
/// those ancestries, and the overrides of their base (service-level)
/// agreements for such a party; told apart by `part`. `rows_for` sorts them
/// out pair by pair. `o.consumer || ''` keeps SQLite from probing its
/// (tenant, agreement, consumer) index of overrides for every agreement and
/// every party of every ancestry — 600,000 probes, 54 ms, for a batch of
/// 1,000 — instead of reading each agreement's overrides once and checking
/// the consumer (3 ms); PostgreSQL hashes the parties either way.
fn rows_statement(consumers: &str, services: &str) -> String {
    format!(
        "{chain}, \
         covering (agreement_id, service_id, base, consumer) AS ( \
           SELECT DISTINCT s.agreement_id, s.service_id, \
                  CASE WHEN s.kind = {base} THEN 1 ELSE 0 END, s.consumer \
           FROM revision_services s \
           WHERE s.tenant = $1 AND s.service_id IN ({services}) AND s.kind IN ({resolved}) \
         ) \
         SELECT * FROM ( \
           SELECT CAST(0 AS BIGINT) AS part, CAST(depth AS BIGINT) AS n, \
                  root AS a, id AS b, NULL AS c, NULL AS body FROM chain \
           UNION ALL \
           SELECT 1, 0, NULL, NULL, NULL, body FROM services \
             WHERE tenant = $1 AND id IN ({services}) \
           UNION ALL \
           SELECT 2, base, agreement_id, service_id, consumer, NULL FROM covering \
           UNION ALL \
           SELECT 3, r.seq, NULL, NULL, NULL, r.body FROM agreement_revisions r \
             WHERE r.tenant = $1 AND r.create_time <= $2 \
             AND r.agreement_id IN (SELECT agreement_id FROM covering \
               WHERE consumer IS NULL OR consumer IN (SELECT id FROM chain)) \
           UNION ALL \
           SELECT 4, 0, NULL, NULL, NULL, o.body FROM override_history o \
             WHERE o.tenant = $1 AND o.recorded_from <= $2 \
             AND (o.recorded_until IS NULL OR o.recorded_until > $2) \
             AND o.consumer || '' IN (SELECT id FROM chain) \
             AND o.agreement_id IN (SELECT agreement_id FROM covering WHERE base = 1) \
         ) AS parts ORDER BY part, n",
        chain = chain(consumers).trim_end(),
        base = literals([AgreementKind::ServiceLevel.as_str()]),
        resolved = literals(AgreementKind::RESOLVED.iter().map(|k| k.as_str())),
    )
}

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

/// What resolving `consumer` on `service` as known at `known_at` reads (see
/// `ROWS`).
pub(super) async fn rows(
    conn: &mut dyn Connection,
    tenant: &Id,
    consumer: &Id,
    service: &Id,
    known_at: DateTime<Utc>,
) -> Result<EntitlementRows> {
    let statement = chain_statement(&ROWS, tenant, known_at)
        .text(consumer.as_str())
        .text(service.as_str());
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

/// Which agreement covers which service, for whom, as `revision_services`
/// records it.
struct Covering {
    agreement: String,
    service: String,
    base: bool,
    consumer: Option<String>,
}

/// What resolving each of `pairs` (consumer, service) as known at
/// `known_at` reads, in the order of `pairs`, in one round trip: for each,
/// the rows `Tx::entitlement_rows` describes.
pub(super) async fn rows_for(
    conn: &mut dyn Connection,
    tenant: &Id,
    pairs: &[(Id, Id)],
    known_at: DateTime<Utc>,
) -> Result<Vec<EntitlementRows>> {
    match pairs {
        [] => return Ok(Vec::new()),
        [(consumer, service)] => {
            return Ok(vec![rows(conn, tenant, consumer, service, known_at).await?]);
        }
        _ => {}
    }
    let consumers: BTreeSet<&str> = pairs.iter().map(|(c, _)| c.as_str()).collect();
    let services: BTreeSet<&str> = pairs.iter().map(|(_, s)| s.as_str()).collect();
    // $1 tenant, $2 known_at, $3 depth, then the consumers, then the services.
    let placeholders = |first: usize, n: usize| {
        (first..first + n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = rows_statement(
        &placeholders(4, consumers.len()),
        &placeholders(4 + consumers.len(), services.len()),
    );
    let mut statement = chain_statement(&sql, tenant, known_at);
    for value in consumers.iter().chain(services.iter()) {
        statement = statement.text(*value);
    }
    let columns = [
        Column::Int,
        Column::Int,
        Column::Text,
        Column::Text,
        Column::Text,
        Column::Json,
    ];
    let mut rows = conn
        .fetch(statement, &columns)
        .await
        .map_err(internal("entitlement rows"))?;

    let mut ancestries: HashMap<String, Vec<Id>> = HashMap::new();
    let mut found_services: HashMap<Id, Service> = HashMap::new();
    let mut covering: Vec<Covering> = Vec::new();
    let mut revisions: Vec<Revision> = Vec::new();
    let mut overrides: Vec<Override> = Vec::new();
    // Ordered by part, then depth: each ancestry comes nearest party first.
    for mut row in rows.iter_mut() {
        match row.int(0)? {
            0 => ancestries
                .entry(row.text(2)?)
                .or_default()
                .push(Id::generated(row.text(3)?)),
            1 => {
                let service: Service = row.json(5)?;
                found_services.insert(service.id.clone(), service);
            }
            2 => covering.push(Covering {
                base: row.int(1)? == 1,
                agreement: row.text(2)?,
                service: row.text(3)?,
                consumer: row.opt_text(4)?,
            }),
            3 => revisions.push(row.json(5)?),
            _ => overrides.push(row.json(5)?),
        }
    }

    // Looked up by service and by agreement, so that sorting the rows out
    // costs each pair only what concerns it.
    let mut covering_service: HashMap<&str, Vec<&Covering>> = HashMap::new();
    for c in &covering {
        covering_service
            .entry(c.service.as_str())
            .or_default()
            .push(c);
    }
    let mut revisions_of: HashMap<&str, Vec<&Revision>> = HashMap::new();
    for r in &revisions {
        revisions_of
            .entry(r.agreement.as_str())
            .or_default()
            .push(r);
    }
    let mut overrides_of: HashMap<&str, Vec<&Override>> = HashMap::new();
    for o in &overrides {
        overrides_of
            .entry(o.agreement.as_str())
            .or_default()
            .push(o);
    }
    Ok(pairs
        .iter()
        .map(|(consumer, service)| {
            let ancestry = ancestries
                .get(consumer.as_str())
                .cloned()
                .unwrap_or_default();
            let in_ancestry = |party: &str| ancestry.iter().any(|p| p.as_str() == party);
            let covers = covering_service
                .get(service.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            // As the one-pair statement read them: the revisions of the
            // agreements that cover the service for the ancestry (or for
            // anyone), the overrides of its base agreements for the ancestry.
            let counted: BTreeSet<&str> = covers
                .iter()
                .filter(|c| c.consumer.as_deref().is_none_or(in_ancestry))
                .map(|c| c.agreement.as_str())
                .collect();
            let bases: BTreeSet<&str> = covers
                .iter()
                .filter(|c| c.base)
                .map(|c| c.agreement.as_str())
                .collect();
            EntitlementRows {
                service: found_services.get(service).cloned(),
                revisions: counted
                    .iter()
                    .flat_map(|a| revisions_of.get(a).into_iter().flatten())
                    .map(|r| (*r).clone())
                    .collect(),
                overrides: bases
                    .iter()
                    .flat_map(|a| overrides_of.get(a).into_iter().flatten())
                    .filter(|o| in_ancestry(o.consumer.as_str()))
                    .map(|o| (*o).clone())
                    .collect(),
                ancestry,
            }
        })
        .collect())
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
        let rows = rows_statement("$4", "$5");
        assert!(rows.contains("s.kind IN ('SERVICE_LEVEL', 'CUSTOMER', 'INTERNAL')"));
        assert!(rows.contains("CASE WHEN s.kind = 'SERVICE_LEVEL'"));
    }
}
