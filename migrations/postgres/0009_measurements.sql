-- Measurements (issue 10). A series is (tenant, service, consumer, indicator);
-- `consumer` is '' for service-wide (untagged) data, the party id for tagged
-- data, and rollups also keep the series '*', the sum of every report, so
-- that the service-wide view reads one series and a consumer's view two
-- ('' and its own).
--
-- measurement_keys holds the clients' idempotency keys with the digest of
-- each payload. It is not partitioned: a unique key on a partitioned table
-- must include the partition key, so (tenant, id) could only be unique within
-- one month, and a retry landing in another month would count twice. Keys
-- are kept for measurement_max_age (a measurement older than that is refused
-- as TOO_OLD anyway) and deleted by the retention job.
--
-- The other tables are RANGE-partitioned by time, one partition a month and a
-- DEFAULT partition for anything outside them, so that retention drops whole
-- months instead of deleting rows: raw counts (for window edges finer than a
-- minute) are kept for measurement_max_age; rollups, samples and downtime for
-- rollup_retention. Each server creates the months ahead and drops the
-- months past, one partition per transaction, through the functions below.

CREATE TABLE measurement_keys (
    tenant TEXT COLLATE "C" NOT NULL,
    id     TEXT COLLATE "C" NOT NULL,
    -- SHA-256 (hex) of the canonical payload: service, consumer, indicator,
    -- time, value.
    digest TEXT NOT NULL,
    -- The measurement's time (a downtime's start): what retention ages.
    time   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX measurement_keys_time ON measurement_keys (tenant, time);

CREATE TABLE measurement_counts (
    tenant    TEXT COLLATE "C" NOT NULL,
    service   TEXT COLLATE "C" NOT NULL,
    consumer  TEXT COLLATE "C" NOT NULL,
    indicator TEXT COLLATE "C" NOT NULL,
    time      TIMESTAMPTZ NOT NULL,
    good      BIGINT NOT NULL,
    total     BIGINT NOT NULL
) PARTITION BY RANGE (time);
CREATE INDEX measurement_counts_series ON measurement_counts (tenant, service, indicator, time);

CREATE TABLE measurement_samples (
    tenant    TEXT COLLATE "C" NOT NULL,
    service   TEXT COLLATE "C" NOT NULL,
    consumer  TEXT COLLATE "C" NOT NULL,
    indicator TEXT COLLATE "C" NOT NULL,
    time      TIMESTAMPTZ NOT NULL,
    value     DOUBLE PRECISION NOT NULL
) PARTITION BY RANGE (time);
CREATE INDEX measurement_samples_series ON measurement_samples (tenant, service, indicator, time);

CREATE TABLE measurement_downtime (
    tenant     TEXT COLLATE "C" NOT NULL,
    service    TEXT COLLATE "C" NOT NULL,
    consumer   TEXT COLLATE "C" NOT NULL,
    indicator  TEXT COLLATE "C" NOT NULL,
    start_time TIMESTAMPTZ NOT NULL,
    end_time   TIMESTAMPTZ NOT NULL
) PARTITION BY RANGE (start_time);
CREATE INDEX measurement_downtime_series
    ON measurement_downtime (tenant, service, indicator, start_time);

-- Sums of counts per UTC-aligned bucket, upserted in the transaction that
-- stores the raw rows.
CREATE TABLE count_rollups_minute (
    tenant    TEXT COLLATE "C" NOT NULL,
    service   TEXT COLLATE "C" NOT NULL,
    consumer  TEXT COLLATE "C" NOT NULL,
    indicator TEXT COLLATE "C" NOT NULL,
    bucket    TIMESTAMPTZ NOT NULL,
    good      BIGINT NOT NULL,
    total     BIGINT NOT NULL,
    PRIMARY KEY (tenant, service, indicator, consumer, bucket)
) PARTITION BY RANGE (bucket);
CREATE TABLE count_rollups_hour (
    tenant    TEXT COLLATE "C" NOT NULL,
    service   TEXT COLLATE "C" NOT NULL,
    consumer  TEXT COLLATE "C" NOT NULL,
    indicator TEXT COLLATE "C" NOT NULL,
    bucket    TIMESTAMPTZ NOT NULL,
    good      BIGINT NOT NULL,
    total     BIGINT NOT NULL,
    PRIMARY KEY (tenant, service, indicator, consumer, bucket)
) PARTITION BY RANGE (bucket);
CREATE TABLE count_rollups_day (
    tenant    TEXT COLLATE "C" NOT NULL,
    service   TEXT COLLATE "C" NOT NULL,
    consumer  TEXT COLLATE "C" NOT NULL,
    indicator TEXT COLLATE "C" NOT NULL,
    bucket    TIMESTAMPTZ NOT NULL,
    good      BIGINT NOT NULL,
    total     BIGINT NOT NULL,
    PRIMARY KEY (tenant, service, indicator, consumer, bucket)
) PARTITION BY RANGE (bucket);

-- Row-level security on every new table, as on the others (0004): the
-- parents, their DEFAULT partitions and, as they are created (below), the
-- monthly partitions. The server reaches rows through the parents,
-- whose policies apply; it is granted the DEFAULT partitions too, to delete
-- what has expired there (months without a partition of their own).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'measurement_keys', 'measurement_counts', 'measurement_samples',
        'measurement_downtime', 'count_rollups_minute', 'count_rollups_hour',
        'count_rollups_day'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_rows ON %I USING (tenant = accord_tenant()) '
            'WITH CHECK (tenant = accord_tenant())', t);
        IF t <> 'measurement_keys' THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', t || '_default', t);
            EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t || '_default');
            EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t || '_default');
            EXECUTE format(
                'CREATE POLICY tenant_rows ON %I USING (tenant = accord_tenant()) '
                'WITH CHECK (tenant = accord_tenant())', t || '_default');
        END IF;
    END LOOP;
END $$;

-- The tables partitioned by month, which the two functions below change.
CREATE FUNCTION accord_measurement_partitioned(parent text) RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
    SELECT parent IN (
        'measurement_counts', 'measurement_samples', 'measurement_downtime',
        'count_rollups_minute', 'count_rollups_hour', 'count_rollups_day')
$$;

-- Partition maintenance changes one partition per call, and the server runs
-- each call in a transaction of its own bounded by lock_timeout: creating or
-- dropping a partition takes an ACCESS EXCLUSIVE lock on its parent (and
-- its DEFAULT partition), and a transaction holding one table's lock while
-- it waits for another's can deadlock with a call that reads or writes
-- several measurement tables (SQLSTATE 40P01). The server reads which
-- partitions exist from the catalogue, which locks no table, and calls these
-- only for what is missing or expired.
--
-- Both run with their owner's rights (SECURITY DEFINER: partitions are DDL,
-- which the server's role may not run), on this schema only, on the tables
-- above only. Replicas take turns per table (an advisory lock, taken before
-- the table's lock): two creating the same partition at once would collide
-- in the catalogue.

-- Creates `parent`'s partition of the month of `month`, behind row-level
-- security like its parent. Returns 'created', 'exists', or 'blocked' when
-- rows of that month already sit in the DEFAULT partition (written before
-- the month had a partition): PostgreSQL then refuses the partition, the
-- rows stay where they are (reads go through the parent and find them) and
-- retention deletes them from the DEFAULT partition once expired.
CREATE FUNCTION accord_create_measurement_partition(parent text, month date)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    p text := parent || '_p' || to_char(month, 'YYYY_MM');
BEGIN
    IF NOT accord_measurement_partitioned(parent) THEN
        RAISE EXCEPTION '% is not partitioned by month', parent
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('accord.measurement_partitions:' || parent, 0));
    IF to_regclass(p) IS NOT NULL THEN
        RETURN 'exists';
    END IF;
    BEGIN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
            p, parent,
            first_day::timestamp AT TIME ZONE 'UTC',
            (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    EXCEPTION WHEN check_violation THEN
        RETURN 'blocked';
    END;
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', p);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', p);
    EXECUTE format(
        'CREATE POLICY tenant_rows ON %I USING (tenant = accord_tenant()) '
        'WITH CHECK (tenant = accord_tenant())', p);
    RETURN 'created';
END $$;

-- Drops `parent`'s partition of the month of `month`, rows and all. Returns
-- 'dropped', or 'absent' when there is no such partition. Which months have
-- expired the caller decides.
CREATE FUNCTION accord_drop_measurement_partition(parent text, month date)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
    p text := parent || '_p' || to_char(month, 'YYYY_MM');
BEGIN
    IF NOT accord_measurement_partitioned(parent) THEN
        RAISE EXCEPTION '% is not partitioned by month', parent
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('accord.measurement_partitions:' || parent, 0));
    IF NOT EXISTS (
        SELECT FROM pg_inherits
        WHERE inhparent = to_regclass(parent) AND inhrelid = to_regclass(p)
    ) THEN
        RETURN 'absent';
    END IF;
    EXECUTE format('DROP TABLE %I', p);
    RETURN 'dropped';
END $$;

DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'accord_measurement_partitioned(text)',
        'accord_create_measurement_partition(text, date)',
        'accord_drop_measurement_partition(text, date)'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END $$;

-- The months around now, so that a database migrated ahead of a rollout
-- (`accord migrate`) has partitions before a server starts; each server
-- keeps them ahead. The tables are new in this transaction: nothing else
-- can hold their locks.
DO $$
DECLARE
    t text;
    i int;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'measurement_counts', 'measurement_samples', 'measurement_downtime',
        'count_rollups_minute', 'count_rollups_hour', 'count_rollups_day'
    ] LOOP
        FOR i IN -2..2 LOOP
            PERFORM accord_create_measurement_partition(
                t, (date_trunc('month', now()) + make_interval(months => i))::date);
        END LOOP;
    END LOOP;
END $$;

-- The server role's grants, now with the measurement tables. Keys are
-- inserted, read and expired; raw rows, samples and downtime are inserted,
-- read and deleted (with their tenant, or expired from a DEFAULT partition);
-- rollups are also updated (good += ...). The partition functions are the
-- server's only way to DDL.
CREATE OR REPLACE FUNCTION accord_grant_server(server_role name) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), server_role);
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, parties, services, agreements, '
        'agreement_services, agreement_labels, agreement_supports, overrides, request_ids, '
        'api_keys, override_history, party_history TO %I', server_role);
    -- Revisions are immutable; only a forced tenant deletion removes them.
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON agreement_revisions, revision_services TO %I',
        server_role);
    -- The audit trail is append-only.
    EXECUTE format('GRANT SELECT, INSERT ON audit_events TO %I', server_role);
    EXECUTE format('GRANT SELECT, INSERT ON server_settings TO %I', server_role);
    EXECUTE format(
        'GRANT SELECT, INSERT, DELETE ON measurement_keys, measurement_counts, '
        'measurement_samples, measurement_downtime TO %I', server_role);
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON count_rollups_minute, count_rollups_hour, '
        'count_rollups_day TO %I', server_role);
    EXECUTE format(
        'GRANT SELECT, DELETE ON measurement_counts_default, measurement_samples_default, '
        'measurement_downtime_default, count_rollups_minute_default, count_rollups_hour_default, '
        'count_rollups_day_default TO %I', server_role);
    EXECUTE format(
        'GRANT EXECUTE ON FUNCTION accord_create_measurement_partition(text, date), '
        'accord_drop_measurement_partition(text, date) TO %I', server_role);
END $$;
REVOKE ALL ON FUNCTION accord_grant_server(name) FROM PUBLIC;
