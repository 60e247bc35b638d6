-- request_ids expire (AIP-155 asks servers to remember them for "a reasonable
-- time"). Each row records when it expires (microseconds since the epoch, as
-- every SQLite timestamp here), computed from the server's
-- request_id_ttl_seconds when it is claimed; a claim of an expired id takes
-- the row over, and the server's sweeper deletes expired rows in batches.
--
-- SQLite cannot add a NOT NULL column without a default; the server always
-- sets it. Rows recorded before this migration expire one default window
-- (24 hours) after it: never earlier than a retry could still expect them.
ALTER TABLE request_ids ADD COLUMN expire_time INTEGER NOT NULL DEFAULT 0;
UPDATE request_ids
    SET expire_time = (CAST(strftime('%s', 'now') AS INTEGER) + 86400) * 1000000;

CREATE INDEX request_ids_expiry ON request_ids (expire_time);
