-- Row-level security: the second isolation layer. The store scopes every query
-- by tenant; these policies refuse what a bug there would let through.
--
-- Every transaction the server opens sets, with set_config(..., true) so it
-- ends with the transaction, either `accord.tenant` to the one tenant it
-- serves, or `accord.platform` to 'on' for the few platform operations that
-- span tenants (creating and listing tenants, finding an API key by its hash).
-- An unset setting matches no row. RLS is FORCEd, so the tables' owner is
-- bound by it too; the server should connect as a role that owns no table,
-- is not a superuser and has no BYPASSRLS (see docs/security.md).

CREATE FUNCTION accord_tenant() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('accord.tenant', true), '') $$;

CREATE FUNCTION accord_platform() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('accord.platform', true), '') = 'on' $$;

-- Tables whose rows belong to the tenant in their `tenant` column, and only
-- to it.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'parties', 'services', 'agreements', 'agreement_services',
        'agreement_labels', 'agreement_supports', 'agreement_revisions',
        'overrides', 'request_ids', 'api_keys'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_rows ON %I USING (tenant = accord_tenant()) '
            'WITH CHECK (tenant = accord_tenant())', t);
    END LOOP;
END $$;

-- Tenants: a tenant sees its own row; the platform scope lists and creates
-- them (updates and deletes run in the tenant's own scope).
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON tenants
    USING (id = accord_tenant()) WITH CHECK (id = accord_tenant());
CREATE POLICY platform_reads ON tenants FOR SELECT USING (accord_platform());
CREATE POLICY platform_creates ON tenants FOR INSERT WITH CHECK (accord_platform());

-- API keys: authentication finds a key by its hash before it knows the
-- tenant, so the platform scope may read them, and only read them.
CREATE POLICY platform_reads ON api_keys FOR SELECT USING (accord_platform());

-- request_ids of platform requests (CreateTenant) have tenant ''.
CREATE POLICY platform_requests ON request_ids
    USING (tenant = '' AND accord_platform())
    WITH CHECK (tenant = '' AND accord_platform());

-- Audit events: read and appended in the tenant's scope; the platform scope
-- appends the events of tenants it creates. No policy allows UPDATE or
-- DELETE, and the server's role is granted neither.
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads ON audit_events FOR SELECT USING (tenant = accord_tenant());
CREATE POLICY tenant_appends ON audit_events FOR INSERT
    WITH CHECK (tenant = accord_tenant());
CREATE POLICY platform_appends ON audit_events FOR INSERT
    WITH CHECK (accord_platform() AND resource = 'tenants/' || tenant);

-- What the server's role may do. `accord migrate` (and `accord serve`) call
-- this for the role of ACCORD_DATABASE_URL when migrations run as another
-- role. Later migrations that add tables replace this function.
CREATE FUNCTION accord_grant_server(server_role name) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), server_role);
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, parties, services, agreements, '
        'agreement_services, agreement_labels, agreement_supports, overrides, request_ids, '
        'api_keys TO %I', server_role);
    -- Revisions are immutable; only a forced tenant deletion removes them.
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON agreement_revisions TO %I', server_role);
    -- The audit trail is append-only.
    EXECUTE format('GRANT SELECT, INSERT ON audit_events TO %I', server_role);
    EXECUTE format('GRANT SELECT, INSERT ON server_settings TO %I', server_role);
END $$;
REVOKE ALL ON FUNCTION accord_grant_server(name) FROM PUBLIC;
