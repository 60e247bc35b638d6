-- The registry: tenants, parties, services, agreements with their revisions and
-- overrides. Every row carries its tenant and every key includes it. Resources
-- are stored as a JSON body beside the columns keys, foreign keys and filters
-- need. Ids use the "C" collation so keyset pagination orders them bytewise,
-- as SQLite does.

CREATE TABLE tenants (
    id   TEXT COLLATE "C" PRIMARY KEY,
    body JSONB NOT NULL
);

CREATE TABLE parties (
    tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id     TEXT COLLATE "C" NOT NULL,
    kind   TEXT NOT NULL,
    parent TEXT COLLATE "C",
    body   JSONB NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, parent) REFERENCES parties (tenant, id)
);
CREATE INDEX parties_parent ON parties (tenant, parent);

CREATE TABLE services (
    tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id     TEXT COLLATE "C" NOT NULL,
    owner  TEXT COLLATE "C" NOT NULL,
    body   JSONB NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, owner) REFERENCES parties (tenant, id)
);
CREATE INDEX services_owner ON services (tenant, owner);

CREATE TABLE agreements (
    tenant          TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id              TEXT COLLATE "C" NOT NULL,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    provider        TEXT COLLATE "C" NOT NULL,
    consumer        TEXT COLLATE "C",
    effective_from  TIMESTAMPTZ NOT NULL,
    -- The end of validity: effective_until, or the termination time if earlier.
    effective_until TIMESTAMPTZ,
    body            JSONB NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, provider) REFERENCES parties (tenant, id),
    FOREIGN KEY (tenant, consumer) REFERENCES parties (tenant, id)
);
CREATE INDEX agreements_provider ON agreements (tenant, provider);
CREATE INDEX agreements_consumer ON agreements (tenant, consumer);

CREATE TABLE agreement_services (
    tenant       TEXT COLLATE "C" NOT NULL,
    agreement_id TEXT COLLATE "C" NOT NULL,
    service_id   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, agreement_id, service_id),
    FOREIGN KEY (tenant, agreement_id) REFERENCES agreements (tenant, id),
    FOREIGN KEY (tenant, service_id) REFERENCES services (tenant, id)
);
CREATE INDEX agreement_services_service ON agreement_services (tenant, service_id);

CREATE TABLE agreement_labels (
    tenant       TEXT COLLATE "C" NOT NULL,
    agreement_id TEXT COLLATE "C" NOT NULL,
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (tenant, agreement_id, key),
    FOREIGN KEY (tenant, agreement_id) REFERENCES agreements (tenant, id)
);
CREATE INDEX agreement_labels_key ON agreement_labels (tenant, key, value);

CREATE TABLE agreement_supports (
    tenant       TEXT COLLATE "C" NOT NULL,
    agreement_id TEXT COLLATE "C" NOT NULL,
    supported_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, agreement_id, supported_id),
    FOREIGN KEY (tenant, agreement_id) REFERENCES agreements (tenant, id),
    FOREIGN KEY (tenant, supported_id) REFERENCES agreements (tenant, id)
);
CREATE INDEX agreement_supports_supported ON agreement_supports (tenant, supported_id);

-- Immutable snapshots; the application never updates or deletes them (only a
-- forced tenant deletion removes a tenant's rows).
CREATE TABLE agreement_revisions (
    tenant       TEXT COLLATE "C" NOT NULL,
    agreement_id TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    seq          BIGINT NOT NULL,
    create_time  TIMESTAMPTZ NOT NULL,
    body         JSONB NOT NULL,
    PRIMARY KEY (tenant, agreement_id, id),
    UNIQUE (tenant, agreement_id, seq),
    FOREIGN KEY (tenant, agreement_id) REFERENCES agreements (tenant, id)
);

CREATE TABLE overrides (
    tenant       TEXT COLLATE "C" NOT NULL,
    agreement_id TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    consumer     TEXT COLLATE "C" NOT NULL,
    body         JSONB NOT NULL,
    PRIMARY KEY (tenant, agreement_id, id),
    FOREIGN KEY (tenant, agreement_id) REFERENCES agreements (tenant, id),
    FOREIGN KEY (tenant, consumer) REFERENCES parties (tenant, id)
);
CREATE INDEX overrides_consumer ON overrides (tenant, consumer);

-- request_id of creates (AIP-155). tenant is '' for platform requests
-- (CreateTenant).
CREATE TABLE request_ids (
    tenant      TEXT COLLATE "C" NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    JSONB,
    create_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, request_id)
);

CREATE TABLE server_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
