-- Breaches (issue 10); see the PostgreSQL migration of the same number for
-- what each table is for. Times are INTEGER microseconds since the Unix
-- epoch; `consumer` is '' for the service-wide data.

CREATE TABLE breaches (
    tenant        TEXT NOT NULL,
    id            TEXT NOT NULL,
    agreement     TEXT NOT NULL,
    objective_key TEXT NOT NULL,
    consumer      TEXT NOT NULL,
    service       TEXT NOT NULL,
    period_start  INTEGER NOT NULL,
    period_end    INTEGER NOT NULL,
    state         TEXT NOT NULL,
    revision      INTEGER NOT NULL,
    update_time   INTEGER NOT NULL,
    body          TEXT NOT NULL,
    PRIMARY KEY (tenant, id),
    CONSTRAINT breaches_key
        UNIQUE (tenant, agreement, objective_key, consumer, service, period_start)
);
CREATE INDEX breaches_by_period ON breaches (tenant, period_start DESC, id);

CREATE TABLE breach_revisions (
    tenant    TEXT NOT NULL,
    breach_id TEXT NOT NULL,
    revision  INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (tenant, breach_id, revision)
);

CREATE TABLE period_evaluations (
    tenant        TEXT NOT NULL,
    agreement     TEXT NOT NULL,
    objective_key TEXT NOT NULL,
    consumer      TEXT NOT NULL,
    service       TEXT NOT NULL,
    period_start  INTEGER NOT NULL,
    period_end    INTEGER NOT NULL,
    evaluated_at  INTEGER NOT NULL,
    status        TEXT NOT NULL,
    generation    INTEGER NOT NULL,
    PRIMARY KEY (tenant, agreement, objective_key, consumer, service, period_start)
);
CREATE INDEX period_evaluations_end ON period_evaluations (tenant, period_end);

CREATE TABLE compliance_dirty (
    tenant     TEXT NOT NULL,
    service    TEXT NOT NULL,
    indicator  TEXT NOT NULL,
    consumer   TEXT NOT NULL,
    day        INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    due_at     INTEGER,
    PRIMARY KEY (tenant, service, indicator, consumer, day)
);
CREATE INDEX compliance_dirty_due ON compliance_dirty (due_at, tenant) WHERE due_at IS NOT NULL;
CREATE INDEX compliance_dirty_days ON compliance_dirty (tenant, service, day);

CREATE TABLE objective_alerts (
    tenant        TEXT NOT NULL,
    agreement     TEXT NOT NULL,
    objective_key TEXT NOT NULL,
    consumer      TEXT NOT NULL,
    service       TEXT NOT NULL,
    alert         TEXT NOT NULL,
    firing_since  INTEGER,
    as_of         INTEGER NOT NULL,
    PRIMARY KEY (tenant, agreement, objective_key, consumer, service, alert)
);

-- Measurements stored before this migration get their markers, due now
-- (downtime: every UTC day it spans).
INSERT INTO compliance_dirty (tenant, service, indicator, consumer, day, changed_at, version, due_at)
WITH RECURSIVE downtime_days (tenant, service, indicator, consumer, day, end_time) AS (
    SELECT tenant, service, indicator, consumer, start_time - (start_time % 86400000000), end_time
    FROM measurement_downtime
    UNION
    SELECT tenant, service, indicator, consumer, day + 86400000000, end_time
    FROM downtime_days WHERE day + 86400000000 < end_time
)
SELECT tenant, service, indicator, consumer, day,
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER), 1,
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
FROM (
    SELECT tenant, service, indicator, consumer, bucket AS day
    FROM count_rollups_day WHERE consumer <> '*'
    UNION
    SELECT tenant, service, indicator, consumer, time - (time % 86400000000)
    FROM measurement_samples
    UNION
    SELECT tenant, service, indicator, consumer, day FROM downtime_days
);
