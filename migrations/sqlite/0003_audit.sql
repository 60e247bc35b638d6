-- The audit trail: one append-only event per change. There is no foreign key
-- to tenants: the trail outlives what it describes, a deleted tenant included.
CREATE TABLE audit_events (
    tenant     TEXT NOT NULL,
    id         TEXT NOT NULL,
    event_time INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    resource   TEXT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX audit_events_time ON audit_events (tenant, event_time DESC, id DESC);
CREATE INDEX audit_events_resource ON audit_events (tenant, resource, event_time DESC);

-- Append-only: SQLite has no privileges, so triggers refuse changes. Deleting
-- a tenant leaves its trail.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
