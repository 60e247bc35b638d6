-- API keys. Only a SHA-256 hash of each secret is stored; secrets are 190+
-- bits of randomness, so a plain hash cannot be reversed.
CREATE TABLE api_keys (
    tenant   TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    id       TEXT COLLATE "C" NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    body     JSONB NOT NULL,
    PRIMARY KEY (tenant, id)
);
