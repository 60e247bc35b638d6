//! The monthly partitions of the measurement tables (PostgreSQL). What
//! exists is read from the catalogue, which locks no table; each partition
//! to create or drop is then one short transaction through migration 0009's
//! functions, so that maintenance never holds more than one table's lock
//! (holding one while waiting for another can deadlock with a call that
//! reads or writes several measurement tables).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use chrono::{Datelike, Months, NaiveDate};

use super::connection::{Array, Column, Connection, Statement, Value};
use super::constraints::internal;
use super::millis;
use crate::domain::measurement::Cutoffs;
use crate::error::{Error, Result};

/// The tables partitioned by month, and whether each holds raw counts
/// (expiring after `measurement_max_age`) rather than what is kept for
/// `rollup_retention`.
const TABLES: [(&str, bool); 6] = [
    ("measurement_counts", true),
    ("measurement_samples", false),
    ("measurement_downtime", false),
    ("count_rollups_minute", false),
    ("count_rollups_hour", false),
    ("count_rollups_day", false),
];

/// The longest a change waits for its table's lock. While it waits, the
/// table's new readers and writers queue behind it, so the wait is short; a
/// change that cannot get its lock is tried again a little later, then at
/// the next run.
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(1);

/// How many times a change is tried in one run when its lock is not granted.
pub(super) const ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Create,
    Drop,
}

/// One partition to create or drop: `table`'s of the month starting `month`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    pub action: Action,
    pub table: &'static str,
    pub month: NaiveDate,
}

impl fmt::Display for Change {
    /// The partition's name, `<table>_pYYYY_MM`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_p{}", self.table, self.month.format("%Y_%m"))
    }
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// `created <partition>` or `dropped <partition>`.
    Done(String),
    /// Another replica did it first.
    AlreadyDone,
    /// Rows of the month sit in the DEFAULT partition, which PostgreSQL will
    /// not split: the month stays there until it expires.
    Blocked,
}

/// The first day of `date`'s month.
fn first_day(date: NaiveDate) -> NaiveDate {
    date.with_day(1).expect("every month has a first day")
}

/// The monthly partitions of `existing` (a partitioned table's name, its
/// partition's name) as (table, first day of the month); the DEFAULT
/// partitions and any other table are left out.
fn monthly(existing: &[(String, String)]) -> BTreeSet<(&'static str, NaiveDate)> {
    existing
        .iter()
        .filter_map(|(parent, child)| {
            let (table, _) = TABLES.iter().find(|(t, _)| t == parent)?;
            let month = child.strip_prefix(table)?.strip_prefix("_p")?;
            let (year, month) = month.split_once('_')?;
            if year.len() != 4 || month.len() != 2 {
                return None;
            }
            let date = NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)?;
            Some((*table, date))
        })
        .collect()
}

/// What brings the partitions `existing` to those of every month from
/// `months.0` through `months.1`, none of them wholly before `cutoffs`
/// (`raw_before` for raw counts, `kept_before` for the others; nothing is
/// dropped without cutoffs): the missing months to create, nearest first,
/// then the expired ones to drop, table by table, oldest first.
pub(super) fn plan(
    months: (NaiveDate, NaiveDate),
    cutoffs: Option<&Cutoffs>,
    existing: &[(String, String)],
) -> Vec<Change> {
    let existing = monthly(existing);
    let mut wanted = Vec::new();
    let mut month = first_day(months.0);
    while month <= months.1 {
        wanted.push(month);
        month = month + Months::new(1);
    }
    let mut changes = Vec::new();
    // Nearest first: the months about now matter before the oldest.
    wanted.sort_by_key(|m| std::cmp::Reverse(*m));
    for month in wanted {
        for (table, _) in TABLES {
            if !existing.contains(&(table, month)) {
                changes.push(Change {
                    action: Action::Create,
                    table,
                    month,
                });
            }
        }
    }
    if let Some(cutoffs) = cutoffs {
        for &(table, month) in &existing {
            let raw = TABLES.iter().any(|&(t, raw)| t == table && raw);
            let cutoff = if raw {
                cutoffs.raw_before
            } else {
                cutoffs.kept_before
            };
            let end = (month + Months::new(1))
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc();
            if end <= cutoff {
                changes.push(Change {
                    action: Action::Drop,
                    table,
                    month,
                });
            }
        }
    }
    changes
}

/// The partitions of the monthly tables, as (parent, partition) names. The
/// catalogue read takes no lock on any table, so it neither waits for calls
/// in flight nor makes them wait.
const PARTITIONS: &str = "\
    SELECT parent.relname::text, child.relname::text \
    FROM pg_inherits i \
    JOIN pg_class parent ON parent.oid = i.inhparent \
    JOIN pg_class child ON child.oid = i.inhrelid \
    WHERE i.inhparent = ANY (CAST($1 AS regclass[]))";

pub(super) async fn existing(conn: &mut dyn Connection) -> Result<Vec<(String, String)>> {
    let tables = Array::Text(TABLES.iter().map(|(t, _)| *t).collect());
    let statement = Statement::new(PARTITIONS).bind(Value::Array(tables));
    let mut rows = conn
        .fetch(statement, &[Column::Text, Column::Text])
        .await
        .map_err(internal("read the measurement partitions"))?;
    rows.iter_mut()
        .map(|mut row| Ok((row.text(0)?, row.text(1)?)))
        .collect()
}

/// Bounds the transaction's waits for a lock by `wait`.
const LOCK_TIMEOUT: &str = "SELECT set_config('lock_timeout', $1, true)";
const CREATE: &str = "SELECT accord_create_measurement_partition($1, CAST($2 AS date))";
const DROP: &str = "SELECT accord_drop_measurement_partition($1, CAST($2 AS date))";

/// Makes `change` in the transaction `conn` (which holds nothing else and
/// commits right after), waiting at most `wait` for any lock.
pub(super) async fn apply(
    conn: &mut dyn Connection,
    change: &Change,
    wait: Duration,
) -> Result<Outcome> {
    let ms = millis(wait).to_string();
    conn.texts(
        Statement::new(LOCK_TIMEOUT).text(ms.as_str()),
        "bound partition maintenance's lock waits",
    )
    .await?;
    let sql = match change.action {
        Action::Create => CREATE,
        Action::Drop => DROP,
    };
    let month = change.month.format("%Y-%m-%d").to_string();
    let statement = Statement::new(sql).text(change.table).text(month.as_str());
    let said = conn
        .texts(statement, "change a measurement partition")
        .await?;
    match said.first().map(String::as_str) {
        Some("created") => Ok(Outcome::Done(format!("created {change}"))),
        Some("dropped") => Ok(Outcome::Done(format!("dropped {change}"))),
        Some("exists" | "absent") => Ok(Outcome::AlreadyDone),
        Some("blocked") => Ok(Outcome::Blocked),
        other => Err(Error::internal(format!(
            "the partition function answered {other:?} for {change}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    use super::*;

    fn day(y: i32, m: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, 1).unwrap()
    }

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn partition(table: &str, y: i32, m: u32) -> (String, String) {
        (table.to_string(), format!("{table}_p{y}_{m:02}"))
    }

    fn named(changes: &[Change], action: Action) -> Vec<String> {
        changes
            .iter()
            .filter(|c| c.action == action)
            .map(|c| c.to_string())
            .collect()
    }

    #[test]
    fn only_missing_months_are_created_nearest_first() {
        let mut existing: Vec<_> = TABLES.iter().map(|(t, _)| partition(t, 2026, 3)).collect();
        existing.push((
            "measurement_counts".into(),
            "measurement_counts_default".into(),
        ));
        existing.push(partition("measurement_samples", 2026, 4));
        // The first day of the range's first month counts, whatever its day.
        let changes = plan(
            (day(2026, 3) + chrono::Days::new(9), day(2026, 4)),
            None,
            &existing,
        );
        let created = named(&changes, Action::Create);
        assert_eq!(created.len(), 5, "{created:?}");
        assert!(
            created.iter().all(|c| c.ends_with("_p2026_04")),
            "{created:?}"
        );
        assert!(!created.contains(&"measurement_samples_p2026_04".to_string()));
        assert!(named(&changes, Action::Drop).is_empty());

        let changes = plan((day(2026, 1), day(2026, 2)), None, &[]);
        assert_eq!(changes.len(), 12);
        assert_eq!(changes[0].to_string(), "measurement_counts_p2026_02");
        assert_eq!(changes[11].to_string(), "count_rollups_day_p2026_01");
    }

    #[test]
    fn a_month_is_dropped_once_wholly_before_its_tables_cutoff() {
        let existing = vec![
            partition("measurement_counts", 2026, 2),
            partition("measurement_counts", 2026, 3),
            partition("count_rollups_hour", 2026, 2),
            partition("count_rollups_hour", 2026, 3),
            partition("count_rollups_hour_default", 2026, 1),
        ];
        let cutoffs = Cutoffs {
            // Raw counts: March ends April 1, at the cutoff: dropped.
            raw_before: at(2026, 4, 1),
            keys_before: at(2026, 1, 1),
            // The others: March ends after the cutoff, February before.
            kept_before: at(2026, 3, 31),
        };
        let changes = plan((day(2026, 2), day(2026, 3)), Some(&cutoffs), &existing);
        assert_eq!(
            named(&changes, Action::Drop),
            [
                "count_rollups_hour_p2026_02",
                "measurement_counts_p2026_02",
                "measurement_counts_p2026_03",
            ]
        );
    }

    #[test]
    fn names_that_are_not_monthly_partitions_are_ignored() {
        let existing = vec![
            (
                "measurement_counts".into(),
                "measurement_counts_p2026_13".into(),
            ),
            (
                "measurement_counts".into(),
                "measurement_counts_p26_01".into(),
            ),
            ("measurement_counts".into(), "other_p2026_01".into()),
            ("agreements".into(), "agreements_p2026_01".into()),
        ];
        assert!(monthly(&existing).is_empty());
    }
}
