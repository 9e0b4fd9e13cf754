-- Version 2: provider configuration, envelope encryption, refresh bookkeeping.

-- Each project's data key, wrapped by a master key version (see idvault-crypto). Versions are
-- u32 in the domain: BIGINT holds them all.
CREATE TABLE data_keys (
    project_id          TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    version             BIGINT NOT NULL,
    wrapped             BYTEA NOT NULL,
    master_key_version  BIGINT NOT NULL,
    created_ms          BIGINT NOT NULL,
    PRIMARY KEY (project_id, version)
);
CREATE INDEX data_keys_master_version ON data_keys(master_key_version);

-- The project's own OAuth app per provider. The client secret is sealed like tokens.
CREATE TABLE oauth_providers (
    project_id              TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name                    TEXT NOT NULL,
    client_id               TEXT NOT NULL,
    client_secret           BYTEA,
    issuer                  TEXT,
    authorization_endpoint  TEXT,
    token_endpoint          TEXT NOT NULL,
    userinfo_endpoint       TEXT,
    jwks_uri                TEXT,
    scopes                  JSONB NOT NULL,  -- array
    auth_method             TEXT NOT NULL,   -- client_secret_basic | client_secret_post
    created_ms              BIGINT NOT NULL,
    updated_ms              BIGINT NOT NULL,
    PRIMARY KEY (project_id, name)
);

-- version: bumped on every write, the compare-and-swap token of refreshes.
-- reauth_required: the provider refused the refresh token; the user must sign in again.
ALTER TABLE provider_tokens ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE provider_tokens ADD COLUMN reauth_required BOOLEAN NOT NULL DEFAULT FALSE;
