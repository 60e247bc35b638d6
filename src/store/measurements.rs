//! Measurements: idempotency keys, raw counts, samples, downtime and count
//! rollups (tables of migration 0009), written set-wise, one statement per
//! table a batch touches, whatever its size (`Connection::push_rows`: UNNEST
//! on PostgreSQL, json_each on SQLite); and the reads compliance makes.
//! Which rows a batch writes, and their rollups, the services decide.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::MeasurementKey;
use super::breaches;
use super::connection::{Array, Column, Connection, RowSet, Statement, Value};
use super::constraints::internal;
use crate::domain::breach::Marker;
use crate::domain::measurement::{
    Catalog, CountBucket, Cutoffs, Level, Measurement, RollupKey, SampleAt, Value as Measured, View,
};
use crate::domain::names::Id;
use crate::domain::terms::ObjectiveKind;
use crate::error::Result;

// --- writes --------------------------------------------------------------

/// Keys of tenant `$1` from the rows that follow, each taken unless the
/// tenant has it already; returns the ids taken. A key being taken by a
/// concurrent transaction waits for it (PostgreSQL), then counts as had.
const INSERT_KEYS: (&str, &str) = (
    "INSERT INTO measurement_keys (tenant, id, digest, time) \
     SELECT $1, k.id, k.digest, k.time FROM ",
    " WHERE true ON CONFLICT (tenant, id) DO NOTHING RETURNING id",
);

/// The stored digests of tenant `$1`'s keys among the ids that follow.
const DIGESTS: (&str, &str) = (
    "SELECT id, digest FROM measurement_keys WHERE tenant = $1 AND id IN (SELECT k.id FROM ",
    ")",
);

const INSERT_COUNTS: &str = "\
    INSERT INTO measurement_counts (tenant, service, consumer, indicator, time, good, total) \
    SELECT $1, r.service, r.consumer, r.indicator, r.time, r.good, r.total FROM ";

const INSERT_SAMPLES: &str = "\
    INSERT INTO measurement_samples (tenant, service, consumer, indicator, time, value) \
    SELECT $1, r.service, r.consumer, r.indicator, r.time, r.value FROM ";

const INSERT_DOWNTIME: &str = "\
    INSERT INTO measurement_downtime (tenant, service, consumer, indicator, start_time, end_time) \
    SELECT $1, r.service, r.consumer, r.indicator, r.start_time, r.end_time FROM ";

/// Adds the rows that follow (a `WHERE` clause between the two parts) to
/// tenant `$1`'s rollups of one level.
const ADD_ROLLUPS: [(Level, &str, &str); 3] = [
    (
        Level::Minute,
        "INSERT INTO count_rollups_minute (tenant, service, consumer, indicator, bucket, good, total) \
         SELECT $1, r.service, r.consumer, r.indicator, r.bucket, r.good, r.total FROM ",
        " ON CONFLICT (tenant, service, indicator, consumer, bucket) DO UPDATE SET \
         good = count_rollups_minute.good + excluded.good, \
         total = count_rollups_minute.total + excluded.total",
    ),
    (
        Level::Hour,
        "INSERT INTO count_rollups_hour (tenant, service, consumer, indicator, bucket, good, total) \
         SELECT $1, r.service, r.consumer, r.indicator, r.bucket, r.good, r.total FROM ",
        " ON CONFLICT (tenant, service, indicator, consumer, bucket) DO UPDATE SET \
         good = count_rollups_hour.good + excluded.good, \
         total = count_rollups_hour.total + excluded.total",
    ),
    (
        Level::Day,
        "INSERT INTO count_rollups_day (tenant, service, consumer, indicator, bucket, good, total) \
         SELECT $1, r.service, r.consumer, r.indicator, r.bucket, r.good, r.total FROM ",
        " ON CONFLICT (tenant, service, indicator, consumer, bucket) DO UPDATE SET \
         good = count_rollups_day.good + excluded.good, \
         total = count_rollups_day.total + excluded.total",
    ),
];

fn key_rows<'a>(keys: &[MeasurementKey<'a>]) -> RowSet<'a> {
    RowSet::new()
        .column("id", Array::Text(keys.iter().map(|k| k.id).collect()))
        .column(
            "digest",
            Array::Text(keys.iter().map(|k| k.digest).collect()),
        )
        .column("time", Array::Time(keys.iter().map(|k| k.time).collect()))
}

pub(super) async fn insert_keys(
    conn: &mut dyn Connection,
    tenant: &Id,
    keys: &[MeasurementKey<'_>],
) -> Result<Vec<String>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let statement = Statement::new(INSERT_KEYS.0).text(tenant.as_str());
    let statement = conn
        .push_rows(statement, "k", key_rows(keys))
        .push(INSERT_KEYS.1);
    conn.texts(statement, "insert measurement keys").await
}

pub(super) async fn digests(
    conn: &mut dyn Connection,
    tenant: &Id,
    ids: &[&str],
) -> Result<Vec<(String, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = RowSet::new().column("id", Array::Text(ids.to_vec()));
    let statement = Statement::new(DIGESTS.0).text(tenant.as_str());
    let statement = conn.push_rows(statement, "k", rows).push(DIGESTS.1);
    let mut rows = conn
        .fetch(statement, &[Column::Text, Column::Text])
        .await
        .map_err(internal("read measurement digests"))?;
    rows.iter_mut()
        .map(|mut row| Ok((row.text(0)?, row.text(1)?)))
        .collect()
}

/// The measurements of a batch by the kind of row that keeps them.
struct Kinds<'m> {
    counts: Vec<&'m Measurement>,
    samples: Vec<&'m Measurement>,
    downtime: Vec<&'m Measurement>,
}

impl<'m> Kinds<'m> {
    fn of(measurements: impl IntoIterator<Item = &'m Measurement>) -> Self {
        let mut kinds = Kinds {
            counts: Vec::new(),
            samples: Vec::new(),
            downtime: Vec::new(),
        };
        for m in measurements {
            match m.value {
                Measured::Counts { .. } => kinds.counts.push(m),
                Measured::Sample(_) => kinds.samples.push(m),
                Measured::Downtime { .. } => kinds.downtime.push(m),
            }
        }
        kinds
    }

    /// Each kind's insert and rows, for the kinds present; with `ids`, the
    /// rows carry their measurement's id too (column `id`).
    fn inserts(&self, ids: bool) -> Vec<(&'static str, RowSet<'m>)> {
        let mut inserts = Vec::new();
        let start = |of: &[&'m Measurement]| {
            let rows = series_columns(of);
            if ids {
                rows.column(
                    "id",
                    Array::Text(of.iter().map(|m| m.id.as_str()).collect()),
                )
            } else {
                rows
            }
        };
        if !self.counts.is_empty() {
            let (good, total) = self
                .counts
                .iter()
                .map(|m| match m.value {
                    Measured::Counts { good, total } => (good, total),
                    _ => unreachable!("only counts"),
                })
                .unzip();
            let rows = start(&self.counts)
                .column(
                    "time",
                    Array::Time(self.counts.iter().map(|m| m.time).collect()),
                )
                .column("good", Array::Int(good))
                .column("total", Array::Int(total));
            inserts.push((INSERT_COUNTS, rows));
        }
        if !self.samples.is_empty() {
            let values = self
                .samples
                .iter()
                .map(|m| match m.value {
                    Measured::Sample(v) => v,
                    _ => unreachable!("only samples"),
                })
                .collect();
            let rows = start(&self.samples)
                .column(
                    "time",
                    Array::Time(self.samples.iter().map(|m| m.time).collect()),
                )
                .column("value", Array::Float(values));
            inserts.push((INSERT_SAMPLES, rows));
        }
        if !self.downtime.is_empty() {
            let (starts, ends) = self
                .downtime
                .iter()
                .map(|m| match m.value {
                    Measured::Downtime { start, end } => (start, end),
                    _ => unreachable!("only downtime"),
                })
                .unzip();
            let rows = start(&self.downtime)
                .column("start_time", Array::Time(starts))
                .column("end_time", Array::Time(ends));
            inserts.push((INSERT_DOWNTIME, rows));
        }
        inserts
    }
}

/// The columns every time-series row starts with.
fn series_columns<'a>(of: &[&'a Measurement]) -> RowSet<'a> {
    RowSet::new()
        .column(
            "service",
            Array::Text(of.iter().map(|m| m.service.as_str()).collect()),
        )
        .column(
            "consumer",
            Array::Text(of.iter().map(|m| m.series()).collect()),
        )
        .column(
            "indicator",
            Array::Text(of.iter().map(|m| m.indicator.as_str()).collect()),
        )
}

/// Writes each measurement as its kind is kept: counts as raw rows,
/// samples and downtime as they are.
pub(super) async fn insert(
    conn: &mut dyn Connection,
    tenant: &Id,
    measurements: &[Measurement],
) -> Result<()> {
    for (sql, rows) in Kinds::of(measurements).inserts(false) {
        let statement = Statement::new(sql).text(tenant.as_str());
        let statement = conn.push_rows(statement, "r", rows);
        conn.run(statement, "insert measurements").await?;
    }
    Ok(())
}

/// The rows of one level's rollups in `sums`, in key order; `None` if the
/// level has none.
fn rollup_rows<'a>(
    level: Level,
    sums: &'a BTreeMap<RollupKey<'a>, (i64, i64)>,
) -> Option<RowSet<'a>> {
    let rows: Vec<(&RollupKey<'_>, &(i64, i64))> =
        sums.iter().filter(|(key, _)| key.level == level).collect();
    if rows.is_empty() {
        return None;
    }
    Some(
        RowSet::new()
            .column(
                "service",
                Array::Text(rows.iter().map(|(k, _)| k.service).collect()),
            )
            .column(
                "consumer",
                Array::Text(rows.iter().map(|(k, _)| k.series).collect()),
            )
            .column(
                "indicator",
                Array::Text(rows.iter().map(|(k, _)| k.indicator).collect()),
            )
            .column(
                "bucket",
                Array::Time(rows.iter().map(|(k, _)| k.bucket).collect()),
            )
            .column("good", Array::Int(rows.iter().map(|(_, s)| s.0).collect()))
            .column("total", Array::Int(rows.iter().map(|(_, s)| s.1).collect())),
    )
}

/// Adds `sums` to the rollups, one upsert per level, rows in key order.
pub(super) async fn add_rollups(
    conn: &mut dyn Connection,
    tenant: &Id,
    sums: &BTreeMap<RollupKey<'_>, (i64, i64)>,
) -> Result<()> {
    for (level, insert, on_conflict) in ADD_ROLLUPS {
        let Some(rows) = rollup_rows(level, sums) else {
            continue;
        };
        let statement = Statement::new(insert).text(tenant.as_str());
        let statement = conn
            .push_rows(statement, "r", rows)
            .push(" WHERE true")
            .push(on_conflict);
        conn.run(statement, "add count rollups").await?;
    }
    Ok(())
}

/// What `record` stored of a batch.
pub struct Recorded {
    /// The ids whose keys it took: their measurements are stored.
    pub ids: Vec<String>,
    /// Whether the rollups and markers it was given are added: only if
    /// every key was new, for they were derived from every candidate.
    pub derived: bool,
}

/// Records the keys of `candidates` (one measurement per id, by id) and
/// stores the measurements whose keys were new; if all were, adds `sums`
/// (their rollups) and `markers` (the days they touch, due at `now`) too.
/// On PostgreSQL all in one statement, its data-modifying `WITH` queries
/// seeing what the key insert took; elsewhere a statement at a time.
pub(super) async fn record(
    conn: &mut dyn Connection,
    tenant: &Id,
    candidates: &[(&Measurement, &str)],
    sums: &BTreeMap<RollupKey<'_>, (i64, i64)>,
    markers: &BTreeSet<Marker>,
    now: DateTime<Utc>,
) -> Result<Recorded> {
    let keys: Vec<MeasurementKey<'_>> = candidates
        .iter()
        .map(|(m, digest)| MeasurementKey {
            id: &m.id,
            digest,
            time: m.time,
        })
        .collect();
    if !conn.writes_in_with() {
        let ids = insert_keys(conn, tenant, &keys).await?;
        let derived = ids.len() == candidates.len();
        let taken: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let new = candidates
            .iter()
            .map(|(m, _)| *m)
            .filter(|m| taken.contains(m.id.as_str()));
        for (sql, rows) in Kinds::of(new).inserts(false) {
            let statement = Statement::new(sql).text(tenant.as_str());
            let statement = conn.push_rows(statement, "r", rows);
            conn.run(statement, "insert measurements").await?;
        }
        if derived {
            add_rollups(conn, tenant, sums).await?;
            breaches::mark(conn, tenant, markers, now).await?;
        }
        return Ok(Recorded { ids, derived });
    }
    if keys.is_empty() {
        return Ok(Recorded {
            ids: Vec::new(),
            derived: true,
        });
    }
    // $1 the tenant, $2 `now` (for the markers).
    let statement = Statement::new("WITH k AS (")
        .text(tenant.as_str())
        .time(now)
        .push(INSERT_KEYS.0);
    let mut statement = conn
        .push_rows(statement, "k", key_rows(&keys))
        .push(INSERT_KEYS.1)
        .push(")");
    let kinds = Kinds::of(candidates.iter().map(|(m, _)| *m));
    for (i, (sql, rows)) in kinds.inserts(true).into_iter().enumerate() {
        statement = statement.push(&format!(", m{i} AS ({sql}"));
        statement = conn
            .push_rows(statement, "r", rows)
            .push(" WHERE r.id IN (SELECT id FROM k))");
    }
    let n = keys.len() as i64;
    // The upserts take row locks, and PostgreSQL runs the queries of a WITH
    // in an order of its own: each one waits for the one before it (reads
    // its RETURNING in a condition), so that every transaction locks rollup
    // and marker rows in the order the separate statements do (minute,
    // hour, day, markers). Two orders could deadlock.
    fn after<'s>(statement: Statement<'s>, n: i64, before: &str) -> Statement<'s> {
        statement
            .push(" WHERE (SELECT count(*) FROM k) = ")
            .push_arg(Value::Int(Some(n)))
            .push(&format!(" AND (SELECT count(*) FROM {before}) >= 0"))
    }
    let mut before = "k".to_string();
    for (i, (level, insert, on_conflict)) in ADD_ROLLUPS.into_iter().enumerate() {
        let Some(rows) = rollup_rows(level, sums) else {
            continue;
        };
        statement = statement.push(&format!(", r{i} AS ({insert}"));
        statement = after(conn.push_rows(statement, "r", rows), n, &before)
            .push(on_conflict)
            .push(" RETURNING 1)");
        before = format!("r{i}");
    }
    if !markers.is_empty() {
        statement = statement.push(", d AS (").push(breaches::MARK.0);
        statement = after(
            conn.push_rows(statement, "r", breaches::marker_rows(markers)),
            n,
            &before,
        )
        .push(breaches::MARK.1)
        .push(")");
    }
    let ids = conn
        .texts(statement.push(" SELECT id FROM k"), "record measurements")
        .await?;
    let derived = ids.len() as i64 == n;
    Ok(Recorded { ids, derived })
}

// --- the catalogue a batch is judged against ------------------------------

/// The indicator and kind of a stored objective: all a batch needs of it.
#[derive(Deserialize)]
struct ObjectiveUse {
    indicator: String,
    kind: ObjectiveKind,
}

/// In one statement, of tenant `$1`: the objectives of every agreement
/// covering the services named that exist (in any state) and of those
/// agreements' overrides (added objectives); the services themselves (held
/// against deletion until the transaction ends) and the parties named that
/// exist. The objectives come first: PostgreSQL types each column of a
/// UNION from its first rows, and a NULL there would be text, not jsonb.
const CATALOG: [&str; 4] = [
    "WITH named AS (SELECT id FROM services WHERE tenant = $1 AND id IN (SELECT s.id FROM ",
    ")",
    ") \
     SELECT 'objectives', x.service_id, a.body -> 'objectives' \
       FROM agreement_services x JOIN agreements a ON a.tenant = x.tenant AND a.id = x.agreement_id \
       WHERE x.tenant = $1 AND x.service_id IN (SELECT id FROM named) \
     UNION ALL SELECT 'objectives', x.service_id, o.body -> 'added_objectives' \
       FROM agreement_services x JOIN overrides o \
         ON o.tenant = x.tenant AND o.agreement_id = x.agreement_id \
       WHERE x.tenant = $1 AND x.service_id IN (SELECT id FROM named) \
     UNION ALL SELECT 'service', id, NULL FROM named \
     UNION ALL SELECT 'party', id, NULL FROM parties WHERE tenant = $1 AND id IN (SELECT p.id FROM ",
    ")",
];

pub(super) async fn catalog(
    conn: &mut dyn Connection,
    tenant: &Id,
    services: &[&str],
    parties: &[&str],
) -> Result<Catalog> {
    let mut catalog = Catalog::default();
    if services.is_empty() {
        return Ok(catalog);
    }
    let statement = Statement::new(CATALOG[0]).text(tenant.as_str());
    let statement = conn
        .push_rows(
            statement,
            "s",
            RowSet::new().column("id", Array::Text(services.to_vec())),
        )
        .push(CATALOG[1])
        .push(conn.share_lock())
        .push(CATALOG[2]);
    let statement = conn
        .push_rows(
            statement,
            "p",
            RowSet::new().column("id", Array::Text(parties.to_vec())),
        )
        .push(CATALOG[3]);
    let mut rows = conn
        .fetch(statement, &[Column::Text, Column::Text, Column::Json])
        .await
        .map_err(internal("read the measurement catalogue"))?;
    let mut objectives = Vec::new();
    for mut row in rows.iter_mut() {
        let what = row.text(0)?;
        let id = Id::generated(row.text(1)?);
        match what.as_str() {
            "service" => catalog.add_service(id),
            "party" => catalog.add_party(id),
            _ => {
                let uses: Option<Vec<ObjectiveUse>> = row.opt_json(2)?;
                objectives.push((id, uses.unwrap_or_default()));
            }
        }
    }
    for (service, uses) in objectives {
        for u in uses {
            catalog.add_objective(&service, &u.indicator, u.kind);
        }
    }
    Ok(catalog)
}

// --- reads ----------------------------------------------------------------

/// Appends ` AND consumer IN (...)`, unless `series` is `None` (every one).
fn push_series<'a>(statement: Statement<'a>, series: Option<Vec<&'a str>>) -> Statement<'a> {
    match series {
        None => statement,
        Some(series) => statement
            .push(" AND consumer IN (")
            .push_texts(series)
            .push(")"),
    }
}

/// The table and time column counts of `level` are read from.
fn counts_table(level: Level) -> (&'static str, &'static str) {
    match level {
        Level::Raw => ("measurement_counts", "time"),
        Level::Minute => ("count_rollups_minute", "bucket"),
        Level::Hour => ("count_rollups_hour", "bucket"),
        Level::Day => ("count_rollups_day", "bucket"),
    }
}

/// The levels as `count_buckets` numbers them in its statement, in the
/// order it returns them.
const COUNT_LEVELS: [(i64, Level); 4] = [
    (0, Level::Raw),
    (1, Level::Minute),
    (2, Level::Hour),
    (3, Level::Day),
];

/// Reads every range of `ranges` in one statement whose text depends only on
/// how many series the view sums (so each connection prepares it once): the
/// ranges are bound as rows `s (level, start_time, end_time)`, and each
/// level's table is joined to its ranges, one index range scan per range on
/// the table's key (tenant, service, indicator, consumer, bucket) (raw
/// rows: on their series index). A list of `bucket >= a AND bucket < b`
/// terms joined by OR, as this read was before, makes SQLite read every row
/// of the series and filter, which over a year of minute rollups is half a
/// million rows. `s CROSS JOIN` keeps the ranges the outer loop on SQLite,
/// which keeps a CROSS JOIN's order (PostgreSQL plans it as any join). On
/// PostgreSQL the plan is generic (`Connection::plan_generically`) and the
/// ranges' hull bounds each table too, so that only the partitions inside
/// it are opened.
pub(super) async fn count_buckets(
    conn: &mut dyn Connection,
    tenant: &Id,
    service: &Id,
    view: &View,
    indicator: &str,
    ranges: &[(Level, Range<DateTime<Utc>>)],
) -> Result<Vec<CountBucket>> {
    let ranges: Vec<&(Level, Range<DateTime<Utc>>)> = ranges
        .iter()
        .filter(|(_, span)| span.start < span.end)
        .collect();
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    conn.plan_generically().await?;
    let code = |level: Level| {
        COUNT_LEVELS
            .iter()
            .find(|(_, l)| *l == level)
            .map_or(0, |(c, _)| *c)
    };
    // $1 tenant, $2 service, $3 indicator, then the rollups' series, then
    // the raw rows' series (none: every one), then the ranges.
    let series = view.series();
    let raw_series = view.raw_series();
    let mut n = 3;
    let mut numbered = |count: usize| {
        let list: Vec<String> = (0..count)
            .map(|_| {
                n += 1;
                format!("${n}")
            })
            .collect();
        format!(" AND r.consumer IN ({})", list.join(", "))
    };
    let rollup_filter = numbered(series.len());
    let raw_filter = raw_series
        .as_ref()
        .map_or(String::new(), |s| numbered(s.len()));
    // Where tables are partitioned by time, the hull of the ranges as
    // arguments of its own: the generic plan prunes the partitions outside
    // it before it runs (not with SQLite, whose index would then be
    // searched over the hull instead of each range).
    let hull = conn.partitions_by_time().then(|| {
        let start = ranges.iter().map(|(_, s)| s.start).min();
        let end = ranges.iter().map(|(_, s)| s.end).max();
        (start, end, n + 1, n + 2)
    });
    let mut statement = Statement::new("WITH s AS (SELECT * FROM ")
        .text(tenant.as_str())
        .text(service.as_str())
        .text(indicator);
    for value in series.iter().chain(raw_series.iter().flatten()) {
        statement = statement.text(*value);
    }
    if let Some((start, end, _, _)) = hull {
        statement = statement.time(start).time(end);
    }
    let rows = RowSet::new()
        .column(
            "level",
            Array::Int(ranges.iter().map(|(l, _)| code(*l)).collect()),
        )
        .column(
            "start_time",
            Array::Time(ranges.iter().map(|(_, s)| s.start).collect()),
        )
        .column(
            "end_time",
            Array::Time(ranges.iter().map(|(_, s)| s.end).collect()),
        );
    let mut statement = conn.push_rows(statement, "x", rows).push(") ");
    for (i, (code, level)) in COUNT_LEVELS.iter().enumerate() {
        let (table, column) = counts_table(*level);
        let mut filter = match level {
            Level::Raw => raw_filter.clone(),
            _ => rollup_filter.clone(),
        };
        if let Some((_, _, start, end)) = hull {
            filter += &format!(" AND r.{column} >= ${start} AND r.{column} < ${end}");
        }
        statement = statement.push(&format!(
            "{union}SELECT CAST({code} AS BIGINT), r.{column}, CAST(SUM(r.good) AS BIGINT), \
             CAST(SUM(r.total) AS BIGINT) FROM s CROSS JOIN {table} r \
             WHERE s.level = {code} AND r.tenant = $1 AND r.service = $2 \
             AND r.indicator = $3{filter} AND r.{column} >= s.start_time \
             AND r.{column} < s.end_time GROUP BY r.{column}",
            union = if i > 0 { " UNION ALL " } else { "" },
        ));
    }
    let statement = statement.push(" ORDER BY 1, 2");
    let mut rows = conn
        .fetch(
            statement,
            &[Column::Int, Column::Time, Column::Int, Column::Int],
        )
        .await
        .map_err(internal("read count buckets"))?;
    rows.iter_mut()
        .map(|mut row| {
            let code = row.int(0)?;
            let level = COUNT_LEVELS
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, l)| *l)
                .ok_or_else(|| crate::error::Error::internal(format!("no level {code}")))?;
            Ok(CountBucket {
                level,
                start: row.time(1)?,
                good: row.int(2)?,
                total: row.int(3)?,
            })
        })
        .collect()
}

/// The services holding data tagged with `consumer` in `span`: counts in a
/// bucket of `level` starting in it, samples taken in it, downtime meeting
/// it.
pub(super) async fn services_with_tagged_data(
    conn: &mut dyn Connection,
    tenant: &Id,
    consumer: &Id,
    level: Level,
    span: &Range<DateTime<Utc>>,
) -> Result<Vec<Id>> {
    let (table, column) = counts_table(level);
    let statement = Statement::new("SELECT service FROM ")
        .push(table)
        .push(&format!(
            " WHERE tenant = $1 AND consumer = $2 AND {column} >= $3 AND {column} < $4 \
             UNION SELECT service FROM measurement_samples \
             WHERE tenant = $1 AND consumer = $2 AND time >= $3 AND time < $4 \
             UNION SELECT service FROM measurement_downtime \
             WHERE tenant = $1 AND consumer = $2 AND start_time < $4 AND end_time > $3 \
             ORDER BY 1"
        ))
        .bind(Value::text(tenant.as_str()))
        .bind(Value::text(consumer.as_str()))
        .bind(Value::time(span.start))
        .bind(Value::time(span.end));
    let mut rows = conn
        .fetch(statement, &[Column::Text])
        .await
        .map_err(internal("read the services holding a consumer's data"))?;
    rows.iter_mut()
        .map(|mut row| Ok(Id::generated(row.text(0)?)))
        .collect()
}

pub(super) async fn samples(
    conn: &mut dyn Connection,
    tenant: &Id,
    service: &Id,
    view: &View,
    indicator: &str,
    span: &Range<DateTime<Utc>>,
) -> Result<Vec<SampleAt>> {
    conn.plan_generically().await?;
    let statement = Statement::new(
        "SELECT time, value FROM measurement_samples WHERE tenant = $1 AND service = $2 \
         AND indicator = $3 AND time >= $4 AND time < $5",
    )
    .text(tenant.as_str())
    .text(service.as_str())
    .text(indicator)
    .time(span.start)
    .time(span.end);
    let statement = push_series(statement, view.raw_series()).push(" ORDER BY time");
    let mut rows = conn
        .fetch(statement, &[Column::Time, Column::Float])
        .await
        .map_err(internal("read samples"))?;
    rows.iter_mut()
        .map(|mut row| {
            Ok(SampleAt {
                time: row.time(0)?,
                value: row.float(1)?,
            })
        })
        .collect()
}

pub(super) async fn downtime(
    conn: &mut dyn Connection,
    tenant: &Id,
    service: &Id,
    view: &View,
    indicator: &str,
    span: &Range<DateTime<Utc>>,
) -> Result<Vec<Range<DateTime<Utc>>>> {
    conn.plan_generically().await?;
    let statement = Statement::new(
        "SELECT start_time, end_time FROM measurement_downtime WHERE tenant = $1 \
         AND service = $2 AND indicator = $3 AND start_time < $4 AND end_time > $5",
    )
    .text(tenant.as_str())
    .text(service.as_str())
    .text(indicator)
    .time(span.end)
    .time(span.start);
    let statement =
        push_series(statement, view.raw_series()).push(" ORDER BY start_time, end_time");
    let mut rows = conn
        .fetch(statement, &[Column::Time, Column::Time])
        .await
        .map_err(internal("read downtime"))?;
    rows.iter_mut()
        .map(|mut row| Ok(row.time(0)?..row.time(1)?))
        .collect()
}

// --- retention --------------------------------------------------------------

/// Up to `$3` of tenant `$1`'s keys of measurements older than `$2`.
const DELETE_KEYS: &str = "\
    DELETE FROM measurement_keys WHERE tenant = $1 AND id IN ( \
      SELECT id FROM measurement_keys WHERE tenant = $1 AND time < $2 LIMIT $3)";

/// Each table's expired rows of tenant `$1` (older than `$2`), at most `$3`:
/// the table, its time column, and whether it keeps what raw counts keep.
const AGED: [(&str, &str, bool); 6] = [
    ("measurement_counts", "time", true),
    ("measurement_samples", "time", false),
    ("measurement_downtime", "start_time", false),
    ("count_rollups_minute", "bucket", false),
    ("count_rollups_hour", "bucket", false),
    ("count_rollups_day", "bucket", false),
];

/// Deletes up to `limit` expired keys of `tenant` and, per table, up to
/// `limit` expired rows: every such row where tables are not partitioned
/// (SQLite), only those in the DEFAULT partitions where they are
/// (PostgreSQL, whose monthly partitions are dropped whole). Returns how
/// many it deleted.
pub(super) async fn delete_expired(
    conn: &mut dyn Connection,
    tenant: &Id,
    cutoffs: &Cutoffs,
    limit: i64,
) -> Result<u64> {
    let statement = Statement::new(DELETE_KEYS)
        .text(tenant.as_str())
        .time(cutoffs.keys_before)
        .int(limit);
    let mut deleted = conn
        .run(statement, "delete expired measurement keys")
        .await?;
    let partitioned = conn.partitions_by_time();
    for (table, column, raw) in AGED {
        let before = if raw {
            cutoffs.raw_before
        } else {
            cutoffs.kept_before
        };
        // The tables' names are constants: formatting them in is safe.
        let sql = if partitioned {
            format!("DELETE FROM {table}_default WHERE tenant = $1 AND {column} < $2")
        } else {
            format!(
                "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} \
                 WHERE tenant = $1 AND {column} < $2 LIMIT $3)"
            )
        };
        let statement = Statement::new("")
            .push(&sql)
            .text(tenant.as_str())
            .time(before);
        let statement = if partitioned {
            statement
        } else {
            statement.int(limit)
        };
        deleted += conn.run(statement, "delete expired measurements").await?;
    }
    Ok(deleted)
}
