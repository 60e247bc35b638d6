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
-- rollup_retention. accord_measurement_partitions, run by each server's
-- retention job, creates the months ahead and drops the months past.

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
-- parents, their DEFAULT partitions and, as the partition function creates
-- them, each monthly partition. The server reaches rows through the parents,
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

-- Creates the monthly partitions from first_month through last_month that do
-- not exist yet, each behind row-level security like its parent, and drops
-- the monthly partitions wholly before their table's cutoff: raw counts
-- before raw_before, the others before kept_before (NULL: drop nothing).
-- Returns what it did, a row per partition.
--
-- A month whose rows already sit in the DEFAULT partition (written before the
-- month had a partition) cannot be given one: it is skipped with a warning,
-- its rows stay where they are (reads go through the parent and find them)
-- and the retention job deletes them from the DEFAULT partition once expired.
--
-- It runs with its owner's rights (SECURITY DEFINER: partitions are DDL, which
-- the server's role may not run), on this schema only, one call at a time.
-- Dropping a partition takes a brief exclusive lock on its parent, so it
-- waits for the writes in flight (bounded by the caller's lock_timeout).
CREATE FUNCTION accord_measurement_partitions(
    first_month date, last_month date, raw_before timestamptz, kept_before timestamptz)
RETURNS TABLE (action text, partition_name text)
LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
    t text;
    month date;
    p text;
    lower_bound timestamptz;
    upper_bound timestamptz;
    cutoff timestamptz;
BEGIN
    -- Every replica runs this: one at a time, each seeing what the last did.
    PERFORM pg_advisory_xact_lock(hashtextextended('accord.measurement_partitions', 0));
    FOREACH t IN ARRAY ARRAY[
        'measurement_counts', 'measurement_samples', 'measurement_downtime',
        'count_rollups_minute', 'count_rollups_hour', 'count_rollups_day'
    ] LOOP
        month := date_trunc('month', first_month)::date;
        WHILE month <= last_month LOOP
            p := t || '_p' || to_char(month, 'YYYY_MM');
            lower_bound := month::timestamp AT TIME ZONE 'UTC';
            upper_bound := (month + interval '1 month')::timestamp AT TIME ZONE 'UTC';
            IF to_regclass(p) IS NULL THEN
                BEGIN
                    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                        p, t, lower_bound, upper_bound);
                    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', p);
                    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', p);
                    EXECUTE format(
                        'CREATE POLICY tenant_rows ON %I USING (tenant = accord_tenant()) '
                        'WITH CHECK (tenant = accord_tenant())', p);
                    action := 'created';
                    partition_name := p;
                    RETURN NEXT;
                EXCEPTION WHEN check_violation THEN
                    RAISE WARNING 'rows of % are in the default partition of %: not partitioned',
                        to_char(month, 'YYYY-MM'), t;
                END;
            END IF;
            month := (month + interval '1 month')::date;
        END LOOP;

        cutoff := CASE WHEN t = 'measurement_counts' THEN raw_before ELSE kept_before END;
        IF cutoff IS NOT NULL THEN
            FOR p, upper_bound IN
                SELECT c.relname::text,
                       (to_date(right(c.relname, 7), 'YYYY_MM') + interval '1 month')::timestamp
                           AT TIME ZONE 'UTC'
                FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = t::regclass AND c.relname ~ '_p[0-9]{4}_[0-9]{2}$'
                ORDER BY 1
            LOOP
                IF upper_bound <= cutoff THEN
                    EXECUTE format('DROP TABLE %I', p);
                    action := 'dropped';
                    partition_name := p;
                    RETURN NEXT;
                END IF;
            END LOOP;
        END IF;
    END LOOP;
END $$;
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION accord_measurement_partitions(date, date, timestamptz, timestamptz) '
        'SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE ALL ON FUNCTION accord_measurement_partitions(date, date, timestamptz, timestamptz)
    FROM PUBLIC;

-- The months around now, so that a server has partitions before its first
-- retention run; the job keeps creating them ahead.
SELECT accord_measurement_partitions(
    (date_trunc('month', now()) - interval '2 months')::date,
    (date_trunc('month', now()) + interval '2 months')::date,
    NULL, NULL);

-- The server role's grants, now with the measurement tables. Keys are
-- inserted, read and expired; raw rows, samples and downtime are inserted,
-- read and deleted (with their tenant, or expired from a DEFAULT partition);
-- rollups are also updated (good += ...). The partition function is the
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
        'GRANT EXECUTE ON FUNCTION accord_measurement_partitions(date, date, timestamptz, '
        'timestamptz) TO %I', server_role);
END $$;
REVOKE ALL ON FUNCTION accord_grant_server(name) FROM PUBLIC;
