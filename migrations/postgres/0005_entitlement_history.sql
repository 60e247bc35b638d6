-- What entitlement resolution reads, by transaction time (`known_at`).
--
-- revision_services: the services each revision covers, with its kind and
-- consumer, so that the revisions that matter for a (consumer, service) pair
-- are found without decoding every body.
--
-- override_history and party_history: every version of an override, and
-- every parent of a party, with the span of transaction time in which the
-- registry held it ([recorded_from, recorded_until); recorded_until is NULL
-- for the current version). The overrides and parties tables stay the
-- current state; the store writes both in the same transaction.
--
-- Rows that exist before this migration are backfilled as recorded since
-- their last update (overrides) or creation (parties), which is all that was
-- kept.

CREATE TABLE revision_services (
    tenant       TEXT COLLATE "C" NOT NULL,
    agreement_id TEXT COLLATE "C" NOT NULL,
    seq          BIGINT NOT NULL,
    service_id   TEXT COLLATE "C" NOT NULL,
    kind         TEXT NOT NULL,
    consumer     TEXT COLLATE "C",
    PRIMARY KEY (tenant, agreement_id, seq, service_id),
    FOREIGN KEY (tenant, agreement_id, seq)
        REFERENCES agreement_revisions (tenant, agreement_id, seq)
);
CREATE INDEX revision_services_service ON revision_services (tenant, service_id);

INSERT INTO revision_services (tenant, agreement_id, seq, service_id, kind, consumer)
SELECT r.tenant, r.agreement_id, r.seq, s.value,
       r.body -> 'snapshot' ->> 'kind', r.body -> 'snapshot' ->> 'consumer'
FROM agreement_revisions r,
     jsonb_array_elements_text(r.body -> 'snapshot' -> 'services') AS s (value);

CREATE TABLE override_history (
    tenant         TEXT COLLATE "C" NOT NULL,
    agreement_id   TEXT COLLATE "C" NOT NULL,
    override_id    TEXT COLLATE "C" NOT NULL,
    consumer       TEXT COLLATE "C" NOT NULL,
    recorded_from  TIMESTAMPTZ NOT NULL,
    recorded_until TIMESTAMPTZ,
    body           JSONB NOT NULL
);
CREATE INDEX override_history_agreement
    ON override_history (tenant, agreement_id, consumer, recorded_from);

INSERT INTO override_history
    (tenant, agreement_id, override_id, consumer, recorded_from, recorded_until, body)
SELECT tenant, agreement_id, id, consumer,
       (body -> 'meta' ->> 'update_time')::timestamptz, NULL, body
FROM overrides;

CREATE TABLE party_history (
    tenant         TEXT COLLATE "C" NOT NULL,
    party_id       TEXT COLLATE "C" NOT NULL,
    parent         TEXT COLLATE "C",
    recorded_from  TIMESTAMPTZ NOT NULL,
    recorded_until TIMESTAMPTZ
);
CREATE INDEX party_history_party ON party_history (tenant, party_id, recorded_from);

INSERT INTO party_history (tenant, party_id, parent, recorded_from, recorded_until)
SELECT tenant, id, parent, (body -> 'meta' ->> 'create_time')::timestamptz, NULL
FROM parties;

-- The second isolation layer on the new tables, as on the others (0004).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['revision_services', 'override_history', 'party_history'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_rows ON %I USING (tenant = accord_tenant()) '
            'WITH CHECK (tenant = accord_tenant())', t);
    END LOOP;
END $$;

-- The server role's grants, now with the history tables. revision_services
-- rows are immutable like the revisions they describe; history rows are
-- closed (UPDATE of recorded_until) and removed only with their tenant.
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
END $$;
REVOKE ALL ON FUNCTION accord_grant_server(name) FROM PUBLIC;
