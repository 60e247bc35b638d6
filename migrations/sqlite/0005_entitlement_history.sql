-- What entitlement resolution reads, by transaction time (`known_at`); see
-- migrations/postgres/0005_entitlement_history.sql for the full story.
-- revision_services: the services each revision covers. override_history and
-- party_history: every version of an override and every parent of a party,
-- held in [recorded_from, recorded_until) of transaction time (microseconds;
-- recorded_until NULL for the current version). Existing rows are backfilled
-- as recorded since their last update (overrides) or creation (parties),
-- to the second.

CREATE TABLE revision_services (
    tenant       TEXT NOT NULL,
    agreement_id TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    service_id   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    consumer     TEXT,
    PRIMARY KEY (tenant, agreement_id, seq, service_id),
    FOREIGN KEY (tenant, agreement_id, seq)
        REFERENCES agreement_revisions (tenant, agreement_id, seq)
);
CREATE INDEX revision_services_service ON revision_services (tenant, service_id);

INSERT INTO revision_services (tenant, agreement_id, seq, service_id, kind, consumer)
SELECT r.tenant, r.agreement_id, r.seq, s.value,
       json_extract(r.body, '$.snapshot.kind'), json_extract(r.body, '$.snapshot.consumer')
FROM agreement_revisions r, json_each(r.body, '$.snapshot.services') AS s;

CREATE TABLE override_history (
    tenant         TEXT NOT NULL,
    agreement_id   TEXT NOT NULL,
    override_id    TEXT NOT NULL,
    consumer       TEXT NOT NULL,
    recorded_from  INTEGER NOT NULL,
    recorded_until INTEGER,
    body           TEXT NOT NULL
);
CREATE INDEX override_history_agreement
    ON override_history (tenant, agreement_id, consumer, recorded_from);

INSERT INTO override_history
    (tenant, agreement_id, override_id, consumer, recorded_from, recorded_until, body)
SELECT tenant, agreement_id, id, consumer,
       CAST(strftime('%s', json_extract(body, '$.meta.update_time')) AS INTEGER) * 1000000,
       NULL, body
FROM overrides;

CREATE TABLE party_history (
    tenant         TEXT NOT NULL,
    party_id       TEXT NOT NULL,
    parent         TEXT,
    recorded_from  INTEGER NOT NULL,
    recorded_until INTEGER
);
CREATE INDEX party_history_party ON party_history (tenant, party_id, recorded_from);

INSERT INTO party_history (tenant, party_id, parent, recorded_from, recorded_until)
SELECT tenant, id, parent,
       CAST(strftime('%s', json_extract(body, '$.meta.create_time')) AS INTEGER) * 1000000,
       NULL
FROM parties;
