-- Version 11: access keys (machine-to-machine credentials exchanged for session JWTs).
--
-- The secret is never stored: secret_hash is the SHA-256 of the whole key string shown once at
-- creation or rotation. Lists and maps are JSONB, read and written whole with the key.
CREATE TABLE access_keys (
    project_id         TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    id                 TEXT NOT NULL,
    name               TEXT NOT NULL,
    description        TEXT NOT NULL,
    role_names         JSONB NOT NULL,
    key_tenants        JSONB NOT NULL,
    active             BOOLEAN NOT NULL,
    expire_time        BIGINT NOT NULL,
    created_by         TEXT NOT NULL,
    bound_user_id      TEXT NOT NULL,
    custom_claims      JSONB NOT NULL,
    custom_attributes  JSONB NOT NULL,
    permitted_ips      JSONB NOT NULL,
    secret_hash        BYTEA NOT NULL,
    created_ms         BIGINT NOT NULL,
    updated_ms         BIGINT NOT NULL,
    PRIMARY KEY (project_id, id)
);
