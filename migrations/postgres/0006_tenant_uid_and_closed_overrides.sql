-- Ids are reused: a tenant, or an agreement, can be deleted and created again
-- under the same id. What belonged to the first must not reach the second.
--
-- 1. Tenants get a uid (AIP-148): random, unique, never reused. It is part of
--    the tenant's body like every other field; the column is a copy, for the
--    unique constraint. Every audit event is stamped with the uid of its
--    tenant (`tenant_uid`, also in its body), and a tenant lists only the
--    events of its own uid; the platform admin lists every trail of an id
--    with show_deleted.
--
--    Backfill: every tenant gets a random uid. An event of an existing tenant
--    recorded at or after that tenant's creation gets its uid; the others
--    (those of earlier tenants with the id, and of tenants deleted since) get
--    '', which no tenant has, so only show_deleted lists them. Creation times
--    are read from the bodies, which keep nanoseconds, and cut to the
--    microseconds event_time keeps (the CreateTenant event has the same
--    instant). CreateTenant responses kept for request_id replays get the
--    uid of the tenant they created, or '' when it is gone.
--
-- 2. Deleting a draft agreement removed its overrides but left their history
--    open, so a later agreement with the same id resolved with them. Such
--    history ends at the agreement's deletion, found in the audit trail
--    (every deletion has written an event since 0003, before override_history
--    existed in 0005); should one be missing, now.
--
-- RLS is FORCEd on these tables (0004), which binds their owner too: the
-- backfill lifts it for this transaction only.

ALTER TABLE tenants NO FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_events NO FORCE ROW LEVEL SECURITY;
ALTER TABLE request_ids NO FORCE ROW LEVEL SECURITY;
ALTER TABLE overrides NO FORCE ROW LEVEL SECURITY;
ALTER TABLE override_history NO FORCE ROW LEVEL SECURITY;

-- 1. Tenant uids and the audit trail.

ALTER TABLE tenants ADD COLUMN uid TEXT COLLATE "C";
UPDATE tenants SET uid = gen_random_uuid()::text;
UPDATE tenants SET body = jsonb_set(body, '{uid}', to_jsonb(uid));
ALTER TABLE tenants ALTER COLUMN uid SET NOT NULL;
ALTER TABLE tenants ADD CONSTRAINT tenants_uid UNIQUE (uid);

UPDATE request_ids r
SET response = jsonb_set(r.response, '{uid}', to_jsonb(coalesce(
    (SELECT t.uid FROM tenants t
     WHERE t.id = r.response ->> 'id'
       AND t.body -> 'meta' -> 'create_time' = r.response -> 'meta' -> 'create_time'),
    '')))
WHERE r.tenant = '' AND r.response IS NOT NULL;

ALTER TABLE audit_events ADD COLUMN tenant_uid TEXT COLLATE "C" NOT NULL DEFAULT '';
UPDATE audit_events e
SET tenant_uid = t.uid
FROM tenants t
WHERE t.id = e.tenant
  AND e.event_time >= regexp_replace(
        t.body -> 'meta' ->> 'create_time', '(\.[0-9]{6})[0-9]+', '\1')::timestamptz;
UPDATE audit_events SET body = jsonb_set(body, '{tenant_uid}', to_jsonb(tenant_uid));
-- The server always says which tenant an event belongs to.
ALTER TABLE audit_events ALTER COLUMN tenant_uid DROP DEFAULT;
CREATE INDEX audit_events_uid_time ON audit_events (tenant, tenant_uid, event_time DESC, id DESC);

-- The second isolation layer: a tenant's scope reads only the events of the
-- tenant that has the id now (0004 let it read every event of the id). The
-- platform scope reads every trail, for show_deleted. Appending is unchanged.
DROP POLICY tenant_reads ON audit_events;
CREATE POLICY tenant_reads ON audit_events FOR SELECT
    USING (tenant = accord_tenant()
           AND tenant_uid = (SELECT t.uid FROM tenants t WHERE t.id = accord_tenant()));
CREATE POLICY platform_reads ON audit_events FOR SELECT USING (accord_platform());

-- 2. Override history left open by deleted agreements.

UPDATE override_history h
SET recorded_until = (
    SELECT min(e.event_time) FROM audit_events e
    WHERE e.tenant = h.tenant
      AND e.resource = 'tenants/' || h.tenant || '/agreements/' || h.agreement_id
      AND e.body ->> 'method' = '/accord.v1.AgreementService/DeleteAgreement'
      AND e.event_time >= h.recorded_from)
WHERE EXISTS (
    SELECT 1 FROM audit_events e
    WHERE e.tenant = h.tenant
      AND e.resource = 'tenants/' || h.tenant || '/agreements/' || h.agreement_id
      AND e.body ->> 'method' = '/accord.v1.AgreementService/DeleteAgreement'
      AND e.event_time >= h.recorded_from
      AND (h.recorded_until IS NULL OR e.event_time < h.recorded_until));

UPDATE override_history h
SET recorded_until = now()
WHERE h.recorded_until IS NULL
  AND NOT EXISTS (
    SELECT 1 FROM overrides o
    WHERE o.tenant = h.tenant AND o.agreement_id = h.agreement_id AND o.id = h.override_id);

ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
ALTER TABLE request_ids FORCE ROW LEVEL SECURITY;
ALTER TABLE overrides FORCE ROW LEVEL SECURITY;
ALTER TABLE override_history FORCE ROW LEVEL SECURITY;

-- The server role's grants (accord_grant_server, 0005) are per table, so they
-- cover the new columns: nothing to replace. audit_events stays SELECT and
-- INSERT only.
