//! Agreements: the body beside the columns that keys, foreign keys and
//! filters need (kind, state, parties, validity), and side tables for the
//! services they cover, their labels and the agreements they support.
//! Which states and kinds a query asks for comes from the domain.

use chrono::{DateTime, Utc};

use super::connection::{Column, Connection, RowLock, Statement, Value};
use super::constraints::{Subject, internal};
use super::overrides;
use crate::domain::agreement::{Agreement, AgreementKind, AgreementState};
use crate::domain::filter::{AgreementFilter, FilterTerm};
use crate::domain::names::{Id, agreement_name};
use crate::domain::overrides::Override;
use crate::error::Result;

const INSERT: &str = "\
    INSERT INTO agreements \
    (tenant, id, kind, state, provider, consumer, effective_from, effective_until, body) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

const GET: &str = "SELECT body FROM agreements WHERE tenant = $1 AND id = $2";

const UPDATE: &str = "\
    UPDATE agreements SET kind = $3, state = $4, provider = $5, consumer = $6, \
    effective_from = $7, effective_until = $8, body = $9 WHERE tenant = $1 AND id = $2";

const DELETE: &str = "DELETE FROM agreements WHERE tenant = $1 AND id = $2";

const INSERT_SERVICE: &str =
    "INSERT INTO agreement_services (tenant, agreement_id, service_id) VALUES ($1, $2, $3)";

const INSERT_LABEL: &str =
    "INSERT INTO agreement_labels (tenant, agreement_id, key, value) VALUES ($1, $2, $3, $4)";

const INSERT_SUPPORTED: &str =
    "INSERT INTO agreement_supports (tenant, agreement_id, supported_id) VALUES ($1, $2, $3)";

/// The side tables of agreement `$2`, emptied before they are written again
/// or the agreement is deleted.
const DELETE_LINKS: &[&str] = &[
    "DELETE FROM agreement_services WHERE tenant = $1 AND agreement_id = $2",
    "DELETE FROM agreement_labels WHERE tenant = $1 AND agreement_id = $2",
    "DELETE FROM agreement_supports WHERE tenant = $1 AND agreement_id = $2",
];

/// ListAgreements: the agreements of tenant `$1`, each filter term adding a
/// condition (`list`).
const LIST: &str = "SELECT a.body FROM agreements a WHERE a.tenant = $1";

const LIST_AFTER: &str = " AND a.id > ";
const LIST_KIND: &str = " AND a.kind = ";
const LIST_STATE: &str = " AND a.state = ";
/// The validity has ended (`StoredState::ended` true) at the bound instant.
const LIST_ENDED_BY: &str = " AND a.effective_until <= ";
/// The validity has not ended (`StoredState::ended` false) at the bound
/// instant; closed by `)`.
const LIST_NOT_ENDED_BY: &str = " AND (a.effective_until IS NULL OR a.effective_until > ";
const LIST_CONSUMER: &str = " AND a.consumer = ";
const LIST_PROVIDER: &str = " AND a.provider = ";
/// Closed by `)`.
const LIST_SERVICE: &str = " AND EXISTS (SELECT 1 FROM agreement_services s \
    WHERE s.tenant = a.tenant AND s.agreement_id = a.id AND s.service_id = ";
/// Followed by `LIST_LABEL_VALUE`, the value and `)`.
const LIST_LABEL_KEY: &str = " AND EXISTS (SELECT 1 FROM agreement_labels l \
    WHERE l.tenant = a.tenant AND l.agreement_id = a.id AND l.key = ";
const LIST_LABEL_VALUE: &str = " AND l.value = ";
const LIST_END: &str = " ORDER BY a.id LIMIT ";

/// The agreements of tenant `$1` of kind `$2`, not in state `$3` (a draft),
/// that cover any of the services listed after it, closed by `))`.
const PUBLISHED_COVERING: &str = "\
    SELECT a.body FROM agreements a WHERE a.tenant = $1 AND a.kind = $2 AND a.state <> $3 \
    AND EXISTS (SELECT 1 FROM agreement_services s \
      WHERE s.tenant = a.tenant AND s.agreement_id = a.id AND s.service_id IN (";
const PUBLISHED_COVERING_END: &str = ")) ORDER BY a.id";

/// The names of the agreements whose `supports` name agreement `$2`, at
/// most `$3`.
const SUPPORTERS: &str = "\
    SELECT 'tenants/' || tenant || '/agreements/' || agreement_id FROM agreement_supports \
    WHERE tenant = $1 AND supported_id = $2 ORDER BY agreement_id LIMIT $3";

/// `sql` (INSERT or UPDATE, keyed by `$1`, `$2`) with the agreement's
/// columns bound.
fn with_columns<'a>(sql: &'static str, a: &'a Agreement) -> Result<Statement<'a>> {
    Statement::new(sql)
        .text(a.tenant.as_str())
        .text(a.id.as_str())
        .text(a.kind.as_str())
        .text(a.state.as_str())
        .text(a.provider.as_str())
        .text(a.consumer.as_ref().map(Id::as_str))
        .time(a.effective_from)
        .time(a.effective_end())
        .json(a)
}

pub(super) async fn insert(conn: &mut dyn Connection, a: &Agreement) -> Result<()> {
    conn.write(with_columns(INSERT, a)?, Subject::Writes(&a.name()))
        .await?;
    write_links(conn, a).await
}

pub(super) async fn get(
    conn: &mut dyn Connection,
    tenant: &Id,
    id: &Id,
    lock: RowLock,
) -> Result<Option<Agreement>> {
    let keys = [tenant.as_str(), id.as_str()];
    conn.body_by_key(GET, &keys, lock, "get agreement").await
}

pub(super) async fn list(
    conn: &mut dyn Connection,
    tenant: &Id,
    filter: &AgreementFilter,
    now: DateTime<Utc>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Agreement>> {
    let mut statement = Statement::new(LIST).text(tenant.as_str());
    if let Some(after) = after {
        statement = statement.push(LIST_AFTER).push_arg(Value::text(after));
    }
    for term in &filter.terms {
        statement = match term {
            FilterTerm::Kind(kind) => statement
                .push(LIST_KIND)
                .push_arg(Value::text(kind.as_str())),
            FilterTerm::State(state) => {
                // EXPIRED is never stored: how a state reads in the
                // columns is the domain's (`StoredState::matches`).
                let condition = state.stored_condition();
                let statement = statement
                    .push(LIST_STATE)
                    .push_arg(Value::text(condition.stored.as_str()));
                match condition.ended {
                    Some(true) => statement.push(LIST_ENDED_BY).push_arg(Value::time(now)),
                    Some(false) => statement
                        .push(LIST_NOT_ENDED_BY)
                        .push_arg(Value::time(now))
                        .push(")"),
                    None => statement,
                }
            }
            FilterTerm::Consumer(id) => statement
                .push(LIST_CONSUMER)
                .push_arg(Value::text(id.as_str())),
            FilterTerm::Provider(id) => statement
                .push(LIST_PROVIDER)
                .push_arg(Value::text(id.as_str())),
            FilterTerm::Service(id) => statement
                .push(LIST_SERVICE)
                .push_arg(Value::text(id.as_str()))
                .push(")"),
            FilterTerm::Label(key, value) => statement
                .push(LIST_LABEL_KEY)
                .push_arg(Value::text(key.as_str()))
                .push(LIST_LABEL_VALUE)
                .push_arg(Value::text(value.as_str()))
                .push(")"),
        };
    }
    let statement = statement.push(LIST_END).push_arg(Value::Int(Some(limit)));
    conn.bodies(statement, "list agreements").await
}

pub(super) async fn update(conn: &mut dyn Connection, a: &Agreement) -> Result<()> {
    let name = a.name();
    conn.write(with_columns(UPDATE, a)?, Subject::Writes(&name))
        .await?;
    delete_links(conn, &a.tenant, &a.id, Subject::Writes(&name)).await?;
    write_links(conn, a).await
}

/// Deletes the agreement, its side tables and its overrides, whose history
/// ends at `now`; returns the overrides, by id.
pub(super) async fn delete(
    conn: &mut dyn Connection,
    tenant: &Id,
    id: &Id,
    now: DateTime<Utc>,
) -> Result<Vec<Override>> {
    let name = agreement_name(tenant, id);
    let removed = overrides::delete_of_agreement(conn, tenant, id, now, &name).await?;
    delete_links(conn, tenant, id, Subject::Deletes(&name)).await?;
    let statement = Statement::new(DELETE)
        .text(tenant.as_str())
        .text(id.as_str());
    conn.write(statement, Subject::Deletes(&name)).await?;
    Ok(removed)
}

pub(super) async fn published_covering(
    conn: &mut dyn Connection,
    tenant: &Id,
    kind: AgreementKind,
    services: &[Id],
) -> Result<Vec<Agreement>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let statement = Statement::new(PUBLISHED_COVERING)
        .text(tenant.as_str())
        .text(kind.as_str())
        .text(AgreementState::Draft.as_str())
        .push_texts(services.iter().map(Id::as_str))
        .push(PUBLISHED_COVERING_END);
    conn.bodies(statement, "published agreements covering services")
        .await
}

/// The services of the published agreements of `kinds` whose consumer is
/// one of `parties`, and of the published agreements with an override for
/// one of `parties`: where those parties have terms of their own.
pub(super) async fn services_with_terms_for(
    conn: &mut dyn Connection,
    tenant: &Id,
    parties: &[Id],
    kinds: &[AgreementKind],
) -> Result<Vec<Id>> {
    if parties.is_empty() {
        return Ok(Vec::new());
    }
    let draft = AgreementState::Draft.as_str();
    let parties = || parties.iter().map(Id::as_str);
    let mut statement = Statement::new(
        "SELECT s.service_id FROM agreements a JOIN agreement_services s \
         ON s.tenant = a.tenant AND s.agreement_id = a.id \
         WHERE a.tenant = $1 AND a.state <> $2 AND a.consumer IN (",
    )
    .text(tenant.as_str())
    .text(draft)
    .push_texts(parties())
    .push(")");
    if kinds.is_empty() {
        statement = statement.push(" AND 1 = 0");
    } else {
        statement = statement
            .push(" AND a.kind IN (")
            .push_texts(kinds.iter().map(|k| k.as_str()))
            .push(")");
    }
    let statement = statement
        .push(
            " UNION SELECT s.service_id FROM overrides o JOIN agreements a \
             ON a.tenant = o.tenant AND a.id = o.agreement_id JOIN agreement_services s \
             ON s.tenant = a.tenant AND s.agreement_id = a.id \
             WHERE o.tenant = $1 AND a.state <> $2 AND o.consumer IN (",
        )
        .push_texts(parties())
        .push(") ORDER BY 1");
    let mut rows = conn
        .fetch(statement, &[Column::Text])
        .await
        .map_err(internal("read the services a party has terms for"))?;
    rows.iter_mut()
        .map(|mut row| Ok(Id::generated(row.text(0)?)))
        .collect()
}

pub(super) async fn supporters(
    conn: &mut dyn Connection,
    tenant: &Id,
    id: &Id,
    limit: i64,
) -> Result<Vec<String>> {
    conn.referrers(SUPPORTERS, tenant, id, limit, "agreement supporters")
        .await
}

async fn delete_links(
    conn: &mut dyn Connection,
    tenant: &Id,
    id: &Id,
    subject: Subject<'_>,
) -> Result<()> {
    for sql in DELETE_LINKS {
        let statement = Statement::new(sql).text(tenant.as_str()).text(id.as_str());
        conn.write(statement, subject).await?;
    }
    Ok(())
}

/// Writes the side tables that filters and foreign keys use.
async fn write_links(conn: &mut dyn Connection, a: &Agreement) -> Result<()> {
    let name = a.name();
    let keyed = |sql| {
        Statement::new(sql)
            .text(a.tenant.as_str())
            .text(a.id.as_str())
    };
    let services = a
        .services
        .iter()
        .map(|s| keyed(INSERT_SERVICE).text(s.as_str()));
    let labels = a
        .labels
        .iter()
        .map(|(key, value)| keyed(INSERT_LABEL).text(key.as_str()).text(value.as_str()));
    let supports = a
        .supports
        .iter()
        .map(|s| keyed(INSERT_SUPPORTED).text(s.as_str()));
    for statement in services.chain(labels).chain(supports) {
        conn.write(statement, Subject::Writes(&name)).await?;
    }
    Ok(())
}
