-- Measurements (issue 10). A series is (tenant, service, consumer, indicator);
-- `consumer` is '' for service-wide (untagged) data, the party id for tagged
-- data, and rollups also keep the series '*', the sum of every report, so
-- that the service-wide view reads one series and a consumer's view two
-- ('' and its own). Times are INTEGER microseconds since the Unix epoch.
--
-- measurement_keys holds the clients' idempotency keys with the digest of
-- each payload, kept for measurement_max_age. Raw counts are kept as long;
-- rollups, samples and downtime for rollup_retention. SQLite has no
-- partitions: the retention job deletes expired rows (PostgreSQL drops whole
-- months instead).

CREATE TABLE measurement_keys (
    tenant TEXT NOT NULL,
    id     TEXT NOT NULL,
    -- SHA-256 (hex) of the canonical payload: service, consumer, indicator,
    -- time, value.
    digest TEXT NOT NULL,
    -- The measurement's time (a downtime's start): what retention ages.
    time   INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX measurement_keys_time ON measurement_keys (tenant, time);

CREATE TABLE measurement_counts (
    tenant    TEXT NOT NULL,
    service   TEXT NOT NULL,
    consumer  TEXT NOT NULL,
    indicator TEXT NOT NULL,
    time      INTEGER NOT NULL,
    good      INTEGER NOT NULL,
    total     INTEGER NOT NULL
);
CREATE INDEX measurement_counts_series ON measurement_counts (tenant, service, indicator, time);
CREATE INDEX measurement_counts_time ON measurement_counts (tenant, time);

CREATE TABLE measurement_samples (
    tenant    TEXT NOT NULL,
    service   TEXT NOT NULL,
    consumer  TEXT NOT NULL,
    indicator TEXT NOT NULL,
    time      INTEGER NOT NULL,
    -- The sample's IEEE-754 bits, as a signed integer: SQLite's JSON
    -- parser, which bulk writes go through, does not read every double back
    -- exactly, and nothing compares samples in SQL.
    value     INTEGER NOT NULL
);
CREATE INDEX measurement_samples_series ON measurement_samples (tenant, service, indicator, time);
CREATE INDEX measurement_samples_time ON measurement_samples (tenant, time);

CREATE TABLE measurement_downtime (
    tenant     TEXT NOT NULL,
    service    TEXT NOT NULL,
    consumer   TEXT NOT NULL,
    indicator  TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time   INTEGER NOT NULL
);
CREATE INDEX measurement_downtime_series
    ON measurement_downtime (tenant, service, indicator, start_time);
CREATE INDEX measurement_downtime_time ON measurement_downtime (tenant, start_time);

CREATE TABLE count_rollups_minute (
    tenant    TEXT NOT NULL,
    service   TEXT NOT NULL,
    consumer  TEXT NOT NULL,
    indicator TEXT NOT NULL,
    bucket    INTEGER NOT NULL,
    good      INTEGER NOT NULL,
    total     INTEGER NOT NULL,
    PRIMARY KEY (tenant, service, indicator, consumer, bucket)
);
CREATE INDEX count_rollups_minute_time ON count_rollups_minute (tenant, bucket);

CREATE TABLE count_rollups_hour (
    tenant    TEXT NOT NULL,
    service   TEXT NOT NULL,
    consumer  TEXT NOT NULL,
    indicator TEXT NOT NULL,
    bucket    INTEGER NOT NULL,
    good      INTEGER NOT NULL,
    total     INTEGER NOT NULL,
    PRIMARY KEY (tenant, service, indicator, consumer, bucket)
);
CREATE INDEX count_rollups_hour_time ON count_rollups_hour (tenant, bucket);

CREATE TABLE count_rollups_day (
    tenant    TEXT NOT NULL,
    service   TEXT NOT NULL,
    consumer  TEXT NOT NULL,
    indicator TEXT NOT NULL,
    bucket    INTEGER NOT NULL,
    good      INTEGER NOT NULL,
    total     INTEGER NOT NULL,
    PRIMARY KEY (tenant, service, indicator, consumer, bucket)
);
CREATE INDEX count_rollups_day_time ON count_rollups_day (tenant, bucket);
