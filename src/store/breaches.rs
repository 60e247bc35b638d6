//! Breaches and what the period closer keeps to write each once (tables of
//! migration 0010): the breaches and their revisions, the evaluations of
//! each period with the generation that orders their writes, the late-data
//! markers ingestion upserts, and the state of each page alert. What to
//! write the services decide (`crate::domain::breach`).

use std::collections::BTreeSet;
use std::ops::Range;

use chrono::{DateTime, Utc};

use super::connection::{Array, Column, Connection, RowSet, Statement, Value};
use super::constraints::{Subject, internal};
use crate::domain::breach::{
    AlertKey, AlertState, Breach, BreachCursor, BreachKey, BreachState, Marker,
};
use crate::domain::filter::{BreachFilter, BreachTerm};
use crate::domain::names::Id;
use crate::error::Result;

// --- late-data markers ----------------------------------------------------

/// Tenant `$1`'s markers from the rows that follow (a `WHERE` clause
/// between the two parts), due at `$2`: a new row, or one more version of
/// an existing one.
pub(super) const MARK: (&str, &str) = (
    "INSERT INTO compliance_dirty \
     (tenant, service, indicator, consumer, day, changed_at, version, due_at) \
     SELECT $1, r.service, r.indicator, r.consumer, r.day, $2, 1, $2 FROM ",
    " ON CONFLICT (tenant, service, indicator, consumer, day) DO UPDATE SET \
     changed_at = excluded.changed_at, version = compliance_dirty.version + 1, \
     due_at = excluded.due_at",
);

pub(super) async fn mark(
    conn: &mut dyn Connection,
    tenant: &Id,
    markers: &BTreeSet<Marker>,
    now: DateTime<Utc>,
) -> Result<()> {
    if markers.is_empty() {
        return Ok(());
    }
    let statement = Statement::new(MARK.0).text(tenant.as_str()).time(now);
    let statement = conn
        .push_rows(statement, "r", marker_rows(markers))
        .push(" WHERE true")
        .push(MARK.1);
    conn.run(statement, "mark late data").await?;
    Ok(())
}

/// The rows of `MARK`.
pub(super) fn marker_rows(markers: &BTreeSet<Marker>) -> RowSet<'_> {
    RowSet::new()
        .column(
            "service",
            Array::Text(markers.iter().map(|m| m.service.as_str()).collect()),
        )
        .column(
            "indicator",
            Array::Text(markers.iter().map(|m| m.indicator.as_str()).collect()),
        )
        .column(
            "consumer",
            Array::Text(markers.iter().map(|m| m.consumer.as_str()).collect()),
        )
        .column("day", Array::Time(markers.iter().map(|m| m.day).collect()))
}

/// A marker the closer should look at, and the version it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueMarker {
    pub marker: Marker,
    pub version: i64,
}

const TENANTS_DUE: &str = "\
    SELECT DISTINCT tenant FROM compliance_dirty WHERE due_at IS NOT NULL AND due_at <= $1 \
    ORDER BY tenant LIMIT $2";

pub(super) async fn tenants_due(
    conn: &mut dyn Connection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Id>> {
    let statement = Statement::new(TENANTS_DUE).time(now).int(limit);
    Ok(conn
        .texts(statement, "read tenants with late data")
        .await?
        .into_iter()
        .map(Id::generated)
        .collect())
}

const DUE: &str = "\
    SELECT service, indicator, consumer, day, version FROM compliance_dirty \
    WHERE due_at IS NOT NULL AND due_at <= $2 AND tenant = $1 \
    ORDER BY service, indicator, consumer, day LIMIT $3";

pub(super) async fn due(
    conn: &mut dyn Connection,
    tenant: &Id,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueMarker>> {
    let statement = Statement::new(DUE)
        .text(tenant.as_str())
        .time(now)
        .int(limit);
    let mut rows = conn
        .fetch(
            statement,
            &[
                Column::Text,
                Column::Text,
                Column::Text,
                Column::Time,
                Column::Int,
            ],
        )
        .await
        .map_err(internal("read due late-data markers"))?;
    rows.iter_mut()
        .map(|mut row| {
            Ok(DueMarker {
                marker: Marker {
                    service: Id::generated(row.text(0)?),
                    indicator: row.text(1)?,
                    consumer: row.text(2)?,
                    day: row.time(3)?,
                },
                version: row.int(4)?,
            })
        })
        .collect()
}

/// Sets when the marker is due next (`$6`; NULL: never), unless a batch has
/// marked it again since version `$7` was read.
const SETTLE: &str = "\
    UPDATE compliance_dirty SET due_at = $6 \
    WHERE tenant = $1 AND service = $2 AND indicator = $3 AND consumer = $4 AND day = $5 \
    AND version = $7";

pub(super) async fn settle(
    conn: &mut dyn Connection,
    tenant: &Id,
    due: &DueMarker,
    next: Option<DateTime<Utc>>,
) -> Result<bool> {
    let m = &due.marker;
    let statement = Statement::new(SETTLE)
        .text(tenant.as_str())
        .text(m.service.as_str())
        .text(m.indicator.as_str())
        .text(m.consumer.as_str())
        .time(m.day)
        .time(next)
        .int(due.version);
    Ok(conn.run(statement, "settle a late-data marker").await? == 1)
}

/// The parties with tagged data of service `$2` in the days from `$3` to
/// `$4` (exclusive).
const TAGGED: &str = "\
    SELECT DISTINCT consumer FROM compliance_dirty \
    WHERE tenant = $1 AND service = $2 AND day >= $3 AND day < $4 AND consumer <> '' \
    ORDER BY consumer";

pub(super) async fn tagged_consumers(
    conn: &mut dyn Connection,
    tenant: &Id,
    service: &Id,
    span: &Range<DateTime<Utc>>,
) -> Result<Vec<Id>> {
    let statement = Statement::new(TAGGED)
        .text(tenant.as_str())
        .text(service.as_str())
        .time(crate::domain::breach::utc_day(span.start))
        .time(span.end);
    Ok(conn
        .texts(statement, "read consumers with tagged data")
        .await?
        .into_iter()
        .map(Id::generated)
        .collect())
}

// --- period evaluations ---------------------------------------------------

/// The generations of the evaluations of tenant `$1`'s subject (consumer
/// `$2`, `''` service-wide) on the services that follow, whose periods
/// overlap [`$3`, `$4`).
const GENERATIONS: &str = "\
    SELECT agreement, objective_key, service, period_start, generation FROM period_evaluations \
    WHERE tenant = $1 AND consumer = $2 AND period_end > $3 AND period_start < $4 \
    AND service IN (";

pub(super) async fn generations(
    conn: &mut dyn Connection,
    tenant: &Id,
    consumer: Option<&Id>,
    services: &[Id],
    span: &Range<DateTime<Utc>>,
) -> Result<Vec<(BreachKey, i64)>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let statement = Statement::new(GENERATIONS)
        .text(tenant.as_str())
        .text(consumer.map_or("", Id::as_str))
        .time(span.start)
        .time(span.end)
        .push_texts(services.iter().map(Id::as_str))
        .push(")");
    let mut rows = conn
        .fetch(
            statement,
            &[
                Column::Text,
                Column::Text,
                Column::Text,
                Column::Time,
                Column::Int,
            ],
        )
        .await
        .map_err(internal("read period evaluations"))?;
    rows.iter_mut()
        .map(|mut row| {
            Ok((
                BreachKey {
                    agreement: Id::generated(row.text(0)?),
                    objective_key: row.text(1)?,
                    consumer: consumer.cloned(),
                    service: Id::generated(row.text(2)?),
                    period_start: row.time(3)?,
                },
                row.int(4)?,
            ))
        })
        .collect()
}

/// The evaluation of a period as the closer records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodEvaluation<'a> {
    pub key: &'a BreachKey,
    pub period_end: DateTime<Utc>,
    /// `BREACHED`, `MET` or `NO_DATA`.
    pub status: &'a str,
    pub evaluated_at: DateTime<Utc>,
}

const KEY: &str = "tenant = $1 AND agreement = $2 AND objective_key = $3 AND consumer = $4 \
    AND service = $5 AND period_start = $6";

const ENSURE_EVALUATION: &str = "\
    INSERT INTO period_evaluations (tenant, agreement, objective_key, consumer, service, \
    period_start, period_end, evaluated_at, status, generation) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '', 0) \
    ON CONFLICT (tenant, agreement, objective_key, consumer, service, period_start) DO NOTHING";

/// `statement` with the evaluation key's `$1` to `$6` bound.
fn keyed<'a>(statement: Statement<'a>, tenant: &'a Id, key: &'a BreachKey) -> Statement<'a> {
    statement
        .text(tenant.as_str())
        .text(key.agreement.as_str())
        .text(key.objective_key.as_str())
        .text(key.consumer_column())
        .text(key.service.as_str())
        .time(key.period_start)
}

/// Locks the evaluation row of `e.key` (made if need be) and, if its
/// generation is still `seen`, records `e` as the next one; returns whether
/// it did. A concurrent claimant of the same row waits for this
/// transaction, then finds the generation moved.
pub(super) async fn claim_evaluation(
    conn: &mut dyn Connection,
    tenant: &Id,
    e: &PeriodEvaluation<'_>,
    seen: i64,
) -> Result<bool> {
    let statement = keyed(Statement::new(ENSURE_EVALUATION), tenant, e.key)
        .time(e.period_end)
        .time(e.evaluated_at);
    conn.run(statement, "record a period evaluation").await?;
    let select = format!(
        "SELECT generation FROM period_evaluations WHERE {KEY}{}",
        conn.row_lock()
    );
    let statement = keyed(Statement::new("").push(&select), tenant, e.key);
    let generation = conn.int(statement, "lock a period evaluation").await?;
    if generation != seen {
        return Ok(false);
    }
    let update = format!(
        "UPDATE period_evaluations SET period_end = $7, evaluated_at = $8, status = $9, \
         generation = generation + 1 WHERE {KEY}"
    );
    let statement = keyed(Statement::new("").push(&update), tenant, e.key)
        .time(e.period_end)
        .time(e.evaluated_at)
        .text(e.status);
    conn.run(statement, "record a period evaluation").await?;
    Ok(true)
}

// --- breaches ---------------------------------------------------------------

const INSERT: &str = "\
    INSERT INTO breaches (tenant, id, agreement, objective_key, consumer, service, period_start, \
    period_end, state, revision, update_time, body) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
    ON CONFLICT (tenant, agreement, objective_key, consumer, service, period_start) DO NOTHING";

const UPDATE: &str = "\
    UPDATE breaches SET period_end = $3, state = $4, revision = $5, update_time = $6, body = $7 \
    WHERE tenant = $1 AND id = $2";

const INSERT_REVISION: &str = "\
    INSERT INTO breach_revisions (tenant, breach_id, revision, body) VALUES ($1, $2, $3, $4)";

const GET: &str = "SELECT body FROM breaches WHERE tenant = $1 AND id = $2";

/// Inserts the breach unless its key is taken; returns whether it did.
pub(super) async fn insert(conn: &mut dyn Connection, b: &Breach) -> Result<bool> {
    let name = b.name();
    let consumer = b.consumer.as_ref().map_or("", Id::as_str);
    let statement = Statement::new(INSERT)
        .text(b.tenant.as_str())
        .text(b.id.as_str())
        .text(b.agreement.as_str())
        .text(b.objective_key.as_str())
        .text(consumer)
        .text(b.service.as_str())
        .time(b.period_start)
        .time(b.period_end)
        .text(b.state.as_str())
        .int(b.revision)
        .time(b.update_time)
        .json(b)?;
    let inserted = conn.write(statement, Subject::Writes(&name)).await? == 1;
    if inserted {
        insert_revision(conn, b).await?;
    }
    Ok(inserted)
}

/// Replaces the breach with its next revision, which it also records.
pub(super) async fn update(conn: &mut dyn Connection, b: &Breach) -> Result<()> {
    let name = b.name();
    let statement = Statement::new(UPDATE)
        .text(b.tenant.as_str())
        .text(b.id.as_str())
        .time(b.period_end)
        .text(b.state.as_str())
        .int(b.revision)
        .time(b.update_time)
        .json(b)?;
    conn.write(statement, Subject::Writes(&name)).await?;
    insert_revision(conn, b).await
}

async fn insert_revision(conn: &mut dyn Connection, b: &Breach) -> Result<()> {
    let name = b.name();
    let statement = Statement::new(INSERT_REVISION)
        .text(b.tenant.as_str())
        .text(b.id.as_str())
        .int(b.revision)
        .json(b)?;
    conn.write(statement, Subject::Writes(&name)).await?;
    Ok(())
}

pub(super) async fn get(
    conn: &mut dyn Connection,
    tenant: &Id,
    id: &Id,
    lock: super::connection::RowLock,
) -> Result<Option<Breach>> {
    conn.body_by_key(GET, &[tenant.as_str(), id.as_str()], lock, "get breach")
        .await
}

const COUNT: &str = "SELECT count(*) FROM breaches WHERE tenant = $1 AND state = $2";

pub(super) async fn count(
    conn: &mut dyn Connection,
    tenant: &Id,
    state: BreachState,
) -> Result<i64> {
    let statement = Statement::new(COUNT)
        .text(tenant.as_str())
        .text(state.as_str());
    conn.int(statement, "count breaches").await
}

const REVISIONS: &str = "\
    SELECT body FROM breach_revisions WHERE tenant = $1 AND breach_id = $2 ORDER BY revision";

pub(super) async fn revisions(
    conn: &mut dyn Connection,
    tenant: &Id,
    id: &Id,
) -> Result<Vec<Breach>> {
    let statement = Statement::new(REVISIONS)
        .text(tenant.as_str())
        .text(id.as_str());
    conn.bodies(statement, "list breach revisions").await
}

/// Newest periods first, then by id; after `after` when given.
pub(super) async fn list(
    conn: &mut dyn Connection,
    tenant: &Id,
    filter: &BreachFilter,
    after: Option<&BreachCursor>,
    limit: i64,
) -> Result<Vec<Breach>> {
    let mut statement =
        Statement::new("SELECT body FROM breaches WHERE tenant = $1").text(tenant.as_str());
    if let Some(after) = after {
        statement = statement
            .push(" AND (period_start < ")
            .push_arg(Value::time(after.period_start))
            .push(" OR (period_start = ")
            .push_arg(Value::time(after.period_start))
            .push(" AND id > ")
            .push_arg(Value::text(after.id.as_str()))
            .push("))");
    }
    for term in &filter.terms {
        statement = match term {
            BreachTerm::Agreement(a) => statement
                .push(" AND agreement = ")
                .push_arg(Value::text(a.as_str())),
            BreachTerm::Consumer(c) => statement
                .push(" AND consumer = ")
                .push_arg(Value::text(c.as_ref().map_or("", Id::as_str))),
            BreachTerm::Service(s) => statement
                .push(" AND service = ")
                .push_arg(Value::text(s.as_str())),
            BreachTerm::ObjectiveKey(k) => statement
                .push(" AND objective_key = ")
                .push_arg(Value::text(k.as_str())),
            BreachTerm::State(state) => statement
                .push(" AND state = ")
                .push_arg(Value::text(state.as_str())),
            BreachTerm::PeriodStart(op, t) => statement
                .push(&format!(" AND period_start {} ", op.as_sql()))
                .push_arg(Value::time(*t)),
            BreachTerm::PeriodEnd(op, t) => statement
                .push(&format!(" AND period_end {} ", op.as_sql()))
                .push_arg(Value::time(*t)),
            BreachTerm::PeriodContaining(t) => statement
                .push(" AND period_start <= ")
                .push_arg(Value::time(*t))
                .push(" AND period_end > ")
                .push_arg(Value::time(*t)),
        };
    }
    let statement = statement
        .push(" ORDER BY period_start DESC, id LIMIT ")
        .push_arg(Value::Int(Some(limit)));
    conn.bodies(statement, "list breaches").await
}

// --- alert states -------------------------------------------------------------

const ALERT_KEY: &str = "tenant = $1 AND agreement = $2 AND objective_key = $3 AND consumer = $4 \
    AND service = $5 AND alert = $6";

/// `statement` with the alert key's `$1` to `$6` bound.
fn alert_keyed<'a>(statement: Statement<'a>, tenant: &'a Id, key: &'a AlertKey) -> Statement<'a> {
    statement
        .text(tenant.as_str())
        .text(key.agreement.as_str())
        .text(key.objective_key.as_str())
        .text(key.consumer_column())
        .text(key.service.as_str())
        .text(key.alert.as_str())
}

const ENSURE_ALERT: &str = "\
    INSERT INTO objective_alerts (tenant, agreement, objective_key, consumer, service, alert, \
    firing_since, as_of) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7) \
    ON CONFLICT (tenant, agreement, objective_key, consumer, service, alert) DO NOTHING";

/// The alert's state, locked until the transaction ends; a new alert is
/// made quiet as of `origin` (before any evaluation).
pub(super) async fn lock_alert(
    conn: &mut dyn Connection,
    tenant: &Id,
    key: &AlertKey,
    origin: DateTime<Utc>,
) -> Result<AlertState> {
    let statement = alert_keyed(Statement::new(ENSURE_ALERT), tenant, key).time(origin);
    conn.run(statement, "record an alert").await?;
    let select = format!(
        "SELECT firing_since, as_of FROM objective_alerts WHERE {ALERT_KEY}{}",
        conn.row_lock()
    );
    let statement = alert_keyed(Statement::new("").push(&select), tenant, key);
    let mut rows = conn
        .fetch(statement, &[Column::Time, Column::Time])
        .await
        .map_err(internal("lock an alert"))?;
    let mut row = rows
        .iter_mut()
        .next()
        .ok_or_else(|| crate::error::Error::internal("lock an alert: no row"))?;
    Ok(AlertState {
        firing_since: row.opt_time(0)?,
        as_of: row.time(1)?,
    })
}

pub(super) async fn set_alert(
    conn: &mut dyn Connection,
    tenant: &Id,
    key: &AlertKey,
    state: &AlertState,
) -> Result<()> {
    let update =
        format!("UPDATE objective_alerts SET firing_since = $7, as_of = $8 WHERE {ALERT_KEY}");
    let statement = alert_keyed(Statement::new("").push(&update), tenant, key)
        .time(state.firing_since)
        .time(state.as_of);
    conn.run(statement, "set an alert").await?;
    Ok(())
}

// --- retention ------------------------------------------------------------------

/// Tenant `$1`'s markers of days and evaluations of periods that ended
/// before `$2`: measurements that old are no longer kept.
const EXPIRE: [&str; 2] = [
    "DELETE FROM compliance_dirty WHERE tenant = $1 AND day < $2",
    "DELETE FROM period_evaluations WHERE tenant = $1 AND period_end < $2",
];

pub(super) async fn delete_expired(
    conn: &mut dyn Connection,
    tenant: &Id,
    before: DateTime<Utc>,
) -> Result<u64> {
    let mut deleted = 0;
    for sql in EXPIRE {
        let statement = Statement::new(sql).text(tenant.as_str()).time(before);
        deleted += conn.run(statement, "delete expired breach state").await?;
    }
    Ok(deleted)
}
