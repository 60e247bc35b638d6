-- The registry: tenants, parties, services, agreements with their revisions and
-- overrides. Every row carries its tenant and every key includes it. Resources
-- are stored as a JSON body (TEXT) beside the columns keys, foreign keys and
-- filters need. Timestamps are INTEGER microseconds since the Unix epoch, so
-- they compare correctly in SQL.
CREATE TABLE tenants (
    id   TEXT PRIMARY KEY,
    body TEXT NOT NULL
);

CREATE TABLE parties (
    tenant TEXT NOT NULL REFERENCES tenants (id),
    id     TEXT NOT NULL,
    kind   TEXT NOT NULL,
    parent TEXT,
    body   TEXT NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, parent) REFERENCES parties (tenant, id)
);
CREATE INDEX parties_parent ON parties (tenant, parent);

CREATE TABLE services (
    tenant TEXT NOT NULL REFERENCES tenants (id),
    id     TEXT NOT NULL,
    owner  TEXT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, owner) REFERENCES parties (tenant, id)
);
CREATE INDEX services_owner ON services (tenant, owner);

CREATE TABLE agreements (
    tenant          TEXT NOT NULL REFERENCES tenants (id),
    id              TEXT NOT NULL,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    provider        TEXT NOT NULL,
    consumer        TEXT,
    effective_from  INTEGER NOT NULL,
    -- The end of validity: effective_until, or the termination time if earlier.
    effective_until INTEGER,
    body            TEXT NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, provider) REFERENCES parties (tenant, id),
    FOREIGN KEY (tenant, consumer) REFERENCES parties (tenant, id)
);
CREATE INDEX agreements_provider ON agreements (tenant, provider);
CREATE INDEX agreements_consumer ON agreements (tenant, consumer);

CREATE TABLE agreement_services (
    tenant       TEXT NOT NULL,
    agreement_id TEXT NOT NULL,
    service_id   TEXT NOT NULL,
    PRIMARY KEY (tenant, agreement_id, service_id),
    FOREIGN KEY (tenant, agreement_id) REFERENCES agreements (tenant, id),
    FOREIGN KEY (tenant, service_id) REFERENCES services (tenant, id)
);
CREATE INDEX agreement_services_service ON agreement_services (tenant, service_id);

CREATE TABLE agreement_labels (
    tenant       TEXT NOT NULL,
    agreement_id TEXT NOT NULL,
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (tenant, agreement_id, key),
    FOREIGN KEY (tenant, agreement_id) REFERENCES agreements (tenant, id)
);
CREATE INDEX agreement_labels_key ON agreement_labels (tenant, key, value);

CREATE TABLE agreement_supports (
    tenant       TEXT NOT NULL,
    agreement_id TEXT NOT NULL,
    supported_id TEXT NOT NULL,
    PRIMARY KEY (tenant, agreement_id, supported_id),
    FOREIGN KEY (tenant, agreement_id) REFERENCES agreements (tenant, id),
    FOREIGN KEY (tenant, supported_id) REFERENCES agreements (tenant, id)
);
CREATE INDEX agreement_supports_supported ON agreement_supports (tenant, supported_id);

-- Immutable snapshots; the application never updates or deletes them (only a
-- forced tenant deletion removes a tenant's rows).
CREATE TABLE agreement_revisions (
    tenant       TEXT NOT NULL,
    agreement_id TEXT NOT NULL,
    id           TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    create_time  INTEGER NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (tenant, agreement_id, id),
    UNIQUE (tenant, agreement_id, seq),
    FOREIGN KEY (tenant, agreement_id) REFERENCES agreements (tenant, id)
);

CREATE TABLE overrides (
    tenant       TEXT NOT NULL,
    agreement_id TEXT NOT NULL,
    id           TEXT NOT NULL,
    consumer     TEXT NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (tenant, agreement_id, id),
    FOREIGN KEY (tenant, agreement_id) REFERENCES agreements (tenant, id),
    FOREIGN KEY (tenant, consumer) REFERENCES parties (tenant, id)
);
CREATE INDEX overrides_consumer ON overrides (tenant, consumer);

-- request_id of creates (AIP-155). tenant is '' for platform requests
-- (CreateTenant).
CREATE TABLE request_ids (
    tenant      TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    TEXT,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (tenant, request_id)
);

CREATE TABLE server_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
