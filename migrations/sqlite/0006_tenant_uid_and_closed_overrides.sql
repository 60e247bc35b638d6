-- Ids are reused: a tenant, or an agreement, can be deleted and created again
-- under the same id. What belonged to the first must not reach the second;
-- see migrations/postgres/0006_tenant_uid_and_closed_overrides.sql for the
-- full story.
--
-- 1. Tenants get a uid (random version 4 UUID, in the body; the column is a
--    copy for the unique index). Audit events are stamped with their
--    tenant's uid (`tenant_uid`, column and body): an event of an existing
--    tenant recorded at or after its creation gets its uid, any other ''.
--    Creation times are read from the bodies (RFC 3339 with up to nine
--    fractional digits) and cut to the microseconds event_time keeps.
--    CreateTenant responses kept for request_id replays get the uid of the
--    tenant they created, or '' when it is gone.
-- 2. Override history left open by deleted agreements ends at the
--    agreement's deletion, found in the audit trail (or now).
--
-- The audit trail's update trigger (0003) is lifted for the backfill, inside
-- this migration's transaction, and put back as it was.

-- 1. Tenant uids and the audit trail.

ALTER TABLE tenants ADD COLUMN uid TEXT NOT NULL DEFAULT '';
UPDATE tenants SET uid =
    lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
    || substr(lower(hex(randomblob(2))), 2) || '-'
    || substr('89ab', 1 + abs(random() % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-'
    || lower(hex(randomblob(6)));
UPDATE tenants SET body = json_set(body, '$.uid', uid);
CREATE UNIQUE INDEX tenants_uid ON tenants (uid);

UPDATE request_ids
SET response = json_set(response, '$.uid', coalesce(
    (SELECT t.uid FROM tenants t
     WHERE t.id = json_extract(request_ids.response, '$.id')
       AND json_extract(t.body, '$.meta.create_time')
           = json_extract(request_ids.response, '$.meta.create_time')),
    ''))
WHERE tenant = '' AND response IS NOT NULL;

DROP TRIGGER audit_events_no_update;

ALTER TABLE audit_events ADD COLUMN tenant_uid TEXT NOT NULL DEFAULT '';
UPDATE audit_events
SET tenant_uid = t.uid
FROM (
    SELECT id, uid, created,
           CAST(strftime('%s', created) AS INTEGER) * 1000000
           + CASE WHEN instr(created, '.') = 0 THEN 0
                  ELSE CAST(substr(substr(rtrim(created, 'Z'), instr(created, '.') + 1)
                                   || '000000', 1, 6) AS INTEGER)
             END AS since
    FROM (SELECT id, uid, json_extract(body, '$.meta.create_time') AS created FROM tenants)
) AS t
WHERE t.id = audit_events.tenant AND audit_events.event_time >= t.since;
UPDATE audit_events SET body = json_set(body, '$.tenant_uid', tenant_uid);
CREATE INDEX audit_events_uid_time ON audit_events (tenant, tenant_uid, event_time DESC, id DESC);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

-- 2. Override history left open by deleted agreements.

UPDATE override_history
SET recorded_until = (
    SELECT min(e.event_time) FROM audit_events e
    WHERE e.tenant = override_history.tenant
      AND e.resource = 'tenants/' || override_history.tenant || '/agreements/'
                       || override_history.agreement_id
      AND json_extract(e.body, '$.method') = '/accord.v1.AgreementService/DeleteAgreement'
      AND e.event_time >= override_history.recorded_from)
WHERE EXISTS (
    SELECT 1 FROM audit_events e
    WHERE e.tenant = override_history.tenant
      AND e.resource = 'tenants/' || override_history.tenant || '/agreements/'
                       || override_history.agreement_id
      AND json_extract(e.body, '$.method') = '/accord.v1.AgreementService/DeleteAgreement'
      AND e.event_time >= override_history.recorded_from
      AND (override_history.recorded_until IS NULL
           OR e.event_time < override_history.recorded_until));

UPDATE override_history
SET recorded_until = CAST(strftime('%s', 'now') AS INTEGER) * 1000000
WHERE recorded_until IS NULL
  AND NOT EXISTS (
    SELECT 1 FROM overrides o
    WHERE o.tenant = override_history.tenant
      AND o.agreement_id = override_history.agreement_id
      AND o.id = override_history.override_id);
