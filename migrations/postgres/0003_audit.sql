-- The audit trail: one append-only event per change. There is no foreign key
-- to tenants: the trail outlives what it describes, a deleted tenant included.
CREATE TABLE audit_events (
    tenant     TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    event_time TIMESTAMPTZ NOT NULL,
    actor      TEXT NOT NULL,
    resource   TEXT NOT NULL,
    body       JSONB NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX audit_events_time ON audit_events (tenant, event_time DESC, id DESC);
CREATE INDEX audit_events_resource ON audit_events (tenant, resource, event_time DESC);
