-- Version 11: access keys (machine-to-machine credentials exchanged for session JWTs).
--
-- The secret is never stored: secret_hash is the SHA-256 of the whole key string shown once at
-- creation or rotation. Lists and maps are JSON text, read and written whole with the key.
CREATE TABLE access_keys (
    project_id         TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    id                 TEXT NOT NULL,
    name               TEXT NOT NULL,
    description        TEXT NOT NULL,
    role_names         TEXT NOT NULL,
    key_tenants        TEXT NOT NULL,
    active             INTEGER NOT NULL,
    expire_time        INTEGER NOT NULL,
    created_by         TEXT NOT NULL,
    bound_user_id      TEXT NOT NULL,
    custom_claims      TEXT NOT NULL,
    custom_attributes  TEXT NOT NULL,
    permitted_ips      TEXT NOT NULL,
    secret_hash        BLOB NOT NULL,
    created_ms         INTEGER NOT NULL,
    updated_ms         INTEGER NOT NULL,
    PRIMARY KEY (project_id, id)
) STRICT, WITHOUT ROWID;
