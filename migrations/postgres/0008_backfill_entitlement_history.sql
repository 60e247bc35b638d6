-- Migration 0005 meant to backfill revision_services, override_history and
-- party_history from the rows that existed before it, but on PostgreSQL
-- row-level security (0004, FORCEd, which binds the tables' owner too) hid
-- every row from it: a database upgraded from 0004 kept empty histories, so
-- parties created before the upgrade resolved as unknown consumers, and their
-- revisions and overrides were never found. (SQLite has no row-level
-- security; its 0005 backfilled as meant.)
--
-- This fills what is still missing, as 0005 would have: a revision with no
-- revision_services rows gets them; an override with no history is recorded
-- since its last update; a party with no history since its creation, under
-- its current parent (earlier parents were never kept). Rows written since
-- the upgrade are left as they are. A body without the time it names (never
-- written by the server) counts as recorded now. RLS is lifted for this
-- transaction only.

ALTER TABLE parties NO FORCE ROW LEVEL SECURITY;
ALTER TABLE overrides NO FORCE ROW LEVEL SECURITY;
ALTER TABLE agreement_revisions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE revision_services NO FORCE ROW LEVEL SECURITY;
ALTER TABLE override_history NO FORCE ROW LEVEL SECURITY;
ALTER TABLE party_history NO FORCE ROW LEVEL SECURITY;

INSERT INTO revision_services (tenant, agreement_id, seq, service_id, kind, consumer)
SELECT r.tenant, r.agreement_id, r.seq, s.value,
       r.body -> 'snapshot' ->> 'kind', r.body -> 'snapshot' ->> 'consumer'
FROM agreement_revisions r,
     jsonb_array_elements_text(r.body -> 'snapshot' -> 'services') AS s (value)
WHERE NOT EXISTS (
    SELECT 1 FROM revision_services x
    WHERE x.tenant = r.tenant AND x.agreement_id = r.agreement_id AND x.seq = r.seq);

INSERT INTO override_history
    (tenant, agreement_id, override_id, consumer, recorded_from, recorded_until, body)
SELECT o.tenant, o.agreement_id, o.id, o.consumer,
       coalesce((o.body -> 'meta' ->> 'update_time')::timestamptz, now()), NULL, o.body
FROM overrides o
WHERE NOT EXISTS (
    SELECT 1 FROM override_history h
    WHERE h.tenant = o.tenant AND h.agreement_id = o.agreement_id AND h.override_id = o.id);

INSERT INTO party_history (tenant, party_id, parent, recorded_from, recorded_until)
SELECT p.tenant, p.id, p.parent,
       coalesce((p.body -> 'meta' ->> 'create_time')::timestamptz, now()), NULL
FROM parties p
WHERE NOT EXISTS (
    SELECT 1 FROM party_history h WHERE h.tenant = p.tenant AND h.party_id = p.id);

ALTER TABLE parties FORCE ROW LEVEL SECURITY;
ALTER TABLE overrides FORCE ROW LEVEL SECURITY;
ALTER TABLE agreement_revisions FORCE ROW LEVEL SECURITY;
ALTER TABLE revision_services FORCE ROW LEVEL SECURITY;
ALTER TABLE override_history FORCE ROW LEVEL SECURITY;
ALTER TABLE party_history FORCE ROW LEVEL SECURITY;
