-- request_ids expire (AIP-155 asks servers to remember them for "a reasonable
-- time"). Each row records when it expires, computed from the server's
-- request_id_ttl_seconds when it is claimed; a claim of an expired id takes
-- the row over, and each server's sweeper deletes expired rows in batches.
--
-- Rows recorded before this migration expire one default window (24 hours)
-- after it: never earlier than a retry could still expect them. now() is
-- evaluated once, so the column is added without rewriting the table.
ALTER TABLE request_ids
    ADD COLUMN expire_time TIMESTAMPTZ NOT NULL DEFAULT now() + interval '24 hours';
ALTER TABLE request_ids ALTER COLUMN expire_time DROP DEFAULT;

CREATE INDEX request_ids_expiry ON request_ids (expire_time);

-- The sweeper works in the platform scope, across tenants: it may see and
-- delete expired rows of every tenant, and no live one. (Its DELETE names
-- columns in WHERE, which needs the SELECT policy as well.)
CREATE POLICY platform_sweeps ON request_ids FOR SELECT
    USING (accord_platform() AND expire_time <= now());
CREATE POLICY platform_deletes_expired ON request_ids FOR DELETE
    USING (accord_platform() AND expire_time <= now());
