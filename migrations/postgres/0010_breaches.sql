-- Breaches (issue 10): an objective missed in a closed calendar period, one
-- per (agreement, objective, consumer or service-wide, service, period),
-- written by the period closer that every replica runs.
--
-- breaches holds each breach as it stands (its latest revision); the unique
-- key is what makes it exactly once: replicas closing the same period at once
-- insert with ON CONFLICT DO NOTHING, and the losers find the winner's row.
-- `consumer` is '' for the service-wide data (every consumer on the base
-- terms). breach_revisions keeps every revision, immutable.
--
-- period_evaluations records each (objective, subject, period) the closer has
-- evaluated, with a generation that each evaluation's write bumps: a write
-- whose generation moved since it started evaluating is retried, so that a
-- later write always rests on data at least as new as the one before it.
--
-- compliance_dirty is the late-data marker, upserted by ingestion in the
-- transaction that stores the measurements: one row per (service, indicator,
-- consumer series, UTC day) holding data, `version` bumped and `due_at` set to
-- now by every batch. The closer takes the rows due, evaluates the periods
-- they touch, and clears `due_at` only if `version` is still the one it read
-- (or sets it to the end of the earliest period still open). The rows also
-- tell which consumers have tagged data in a period.
--
-- objective_alerts holds whether each page alert of an objective fires, so
-- that an AT_RISK event goes out once when it starts firing, whichever
-- replica sees it first.

CREATE TABLE breaches (
    tenant        TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    agreement     TEXT COLLATE "C" NOT NULL,
    objective_key TEXT COLLATE "C" NOT NULL,
    consumer      TEXT COLLATE "C" NOT NULL,
    service       TEXT COLLATE "C" NOT NULL,
    period_start  TIMESTAMPTZ NOT NULL,
    period_end    TIMESTAMPTZ NOT NULL,
    state         TEXT NOT NULL,
    revision      BIGINT NOT NULL,
    update_time   TIMESTAMPTZ NOT NULL,
    body          JSONB NOT NULL,
    PRIMARY KEY (tenant, id),
    CONSTRAINT breaches_key
        UNIQUE (tenant, agreement, objective_key, consumer, service, period_start)
);
-- ListBreaches: newest periods first.
CREATE INDEX breaches_by_period ON breaches (tenant, period_start DESC, id);

CREATE TABLE breach_revisions (
    tenant    TEXT COLLATE "C" NOT NULL,
    breach_id TEXT COLLATE "C" NOT NULL,
    revision  BIGINT NOT NULL,
    body      JSONB NOT NULL,
    PRIMARY KEY (tenant, breach_id, revision)
);

CREATE TABLE period_evaluations (
    tenant        TEXT COLLATE "C" NOT NULL,
    agreement     TEXT COLLATE "C" NOT NULL,
    objective_key TEXT COLLATE "C" NOT NULL,
    consumer      TEXT COLLATE "C" NOT NULL,
    service       TEXT COLLATE "C" NOT NULL,
    period_start  TIMESTAMPTZ NOT NULL,
    period_end    TIMESTAMPTZ NOT NULL,
    evaluated_at  TIMESTAMPTZ NOT NULL,
    status        TEXT NOT NULL,
    generation    BIGINT NOT NULL,
    PRIMARY KEY (tenant, agreement, objective_key, consumer, service, period_start)
);
CREATE INDEX period_evaluations_end ON period_evaluations (tenant, period_end);

CREATE TABLE compliance_dirty (
    tenant     TEXT COLLATE "C" NOT NULL,
    service    TEXT COLLATE "C" NOT NULL,
    indicator  TEXT COLLATE "C" NOT NULL,
    -- '' for service-wide (untagged) data, the party id for tagged data.
    consumer   TEXT COLLATE "C" NOT NULL,
    -- The UTC midnight starting the day.
    day        TIMESTAMPTZ NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    version    BIGINT NOT NULL,
    -- When the closer should look at the row next; NULL: nothing to do.
    due_at     TIMESTAMPTZ,
    PRIMARY KEY (tenant, service, indicator, consumer, day)
);
CREATE INDEX compliance_dirty_due ON compliance_dirty (due_at, tenant) WHERE due_at IS NOT NULL;
CREATE INDEX compliance_dirty_days ON compliance_dirty (tenant, service, day);

CREATE TABLE objective_alerts (
    tenant        TEXT COLLATE "C" NOT NULL,
    agreement     TEXT COLLATE "C" NOT NULL,
    objective_key TEXT COLLATE "C" NOT NULL,
    consumer      TEXT COLLATE "C" NOT NULL,
    service       TEXT COLLATE "C" NOT NULL,
    alert         TEXT COLLATE "C" NOT NULL,
    -- Since when it fires; NULL: it does not.
    firing_since  TIMESTAMPTZ,
    -- The evaluation instant of the state: an older evaluation never
    -- overwrites a newer one.
    as_of         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, agreement, objective_key, consumer, service, alert)
);

-- Row-level security as on every tenant table (0004). The platform scope may
-- also read compliance_dirty: the closer asks, once per check, which tenants
-- have rows due, rather than asking every tenant in turn.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'breaches', 'breach_revisions', 'period_evaluations', 'compliance_dirty',
        'objective_alerts'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_rows ON %I USING (tenant = accord_tenant()) '
            'WITH CHECK (tenant = accord_tenant())', t);
    END LOOP;
END $$;
CREATE POLICY platform_reads ON compliance_dirty FOR SELECT USING (accord_platform());

-- Measurements stored before this migration get their markers, due now, so
-- that the closed periods they fall in are evaluated once. Row-level security
-- is lifted for this transaction only (it binds the tables' owner too).
ALTER TABLE compliance_dirty NO FORCE ROW LEVEL SECURITY;
ALTER TABLE count_rollups_day NO FORCE ROW LEVEL SECURITY;
ALTER TABLE measurement_samples NO FORCE ROW LEVEL SECURITY;
ALTER TABLE measurement_downtime NO FORCE ROW LEVEL SECURITY;
INSERT INTO compliance_dirty (tenant, service, indicator, consumer, day, changed_at, version, due_at)
SELECT tenant, service, indicator, consumer, day, now(), 1, now()
FROM (
    SELECT tenant, service, indicator, consumer, bucket AS day
    FROM count_rollups_day WHERE consumer <> '*'
    UNION
    SELECT tenant, service, indicator, consumer, date_trunc('day', time, 'UTC')
    FROM measurement_samples
    UNION
    SELECT d.tenant, d.service, d.indicator, d.consumer, g.day
    FROM measurement_downtime d,
         generate_series(date_trunc('day', d.start_time, 'UTC'),
                         d.end_time - interval '1 microsecond', interval '1 day') AS g (day)
) AS data;
ALTER TABLE compliance_dirty FORCE ROW LEVEL SECURITY;
ALTER TABLE count_rollups_day FORCE ROW LEVEL SECURITY;
ALTER TABLE measurement_samples FORCE ROW LEVEL SECURITY;
ALTER TABLE measurement_downtime FORCE ROW LEVEL SECURITY;

-- The server role's grants, now with the breach tables. Breach revisions are
-- immutable; only a forced tenant deletion removes them.
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
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON breaches, period_evaluations, compliance_dirty, '
        'objective_alerts TO %I', server_role);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON breach_revisions TO %I', server_role);
END $$;
REVOKE ALL ON FUNCTION accord_grant_server(name) FROM PUBLIC;
