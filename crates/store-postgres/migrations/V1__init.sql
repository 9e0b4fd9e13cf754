-- idvault schema, version 1 (PostgreSQL translation of crates/store-sqlite/migrations/V1__init.sql;
-- the file names of both directories must stay identical: a unit test checks it).
-- Users keep a denormalized copy of login ids, roles and tenants (JSONB columns) so that a load is
-- one indexed read; the side tables exist for lookup, uniqueness and search, and are written in
-- the same transaction as the user row. Text columns compare bytewise (COLLATE "C") wherever
-- SQLite compares with BINARY, and with lower(... COLLATE "C") (ASCII case folding, like SQLite's
-- NOCASE) wherever SQLite uses NOCASE.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE management_keys (
    key_id      TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    key_hash    BYTEA NOT NULL,         -- SHA-256 of the whole key; the key itself is never stored
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT,
    revoked_ms  BIGINT
);
CREATE INDEX management_keys_project ON management_keys(project_id);

CREATE TABLE users (
    pk                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects(id),
    user_id           TEXT NOT NULL,
    login_ids         JSONB NOT NULL,   -- array, primary first
    name              TEXT,
    given_name        TEXT,
    middle_name       TEXT,
    family_name       TEXT,
    email             TEXT,             -- compared case-insensitively: lower(email COLLATE "C")
    phone             TEXT,
    verified_email    BOOLEAN NOT NULL,
    verified_phone    BOOLEAN NOT NULL,
    status            TEXT NOT NULL,
    picture           TEXT,
    test              BOOLEAN NOT NULL,
    role_names        JSONB NOT NULL,   -- array of project-level roles
    tenants           JSONB NOT NULL,   -- array of {tenantId, roleNames}
    custom_attributes JSONB NOT NULL,   -- object
    sso_app_ids       JSONB NOT NULL,   -- array
    oauth_providers   JSONB NOT NULL,   -- array of provider names with stored tokens
    created_ms        BIGINT NOT NULL,
    modified_ms       BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_project_user_id ON users(project_id, user_id);
CREATE INDEX users_project_email ON users(project_id, lower(email COLLATE "C")) WHERE email IS NOT NULL;
CREATE INDEX users_project_phone ON users(project_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX users_project_test ON users(project_id, test, pk);

-- The primary key is what makes a login id unique per project, also under concurrent creates.
CREATE TABLE user_login_ids (
    project_id  TEXT NOT NULL,
    login_id    TEXT NOT NULL,
    user_pk     BIGINT NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    PRIMARY KEY (project_id, login_id)
);
CREATE INDEX user_login_ids_user ON user_login_ids(user_pk);

CREATE TABLE user_roles (
    user_pk     BIGINT NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL,          -- '' for a project-level role
    role_name   TEXT NOT NULL,
    PRIMARY KEY (user_pk, tenant_id, role_name)
);
CREATE INDEX user_roles_role ON user_roles(role_name, user_pk);

CREATE TABLE user_tenants (
    user_pk     BIGINT NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL,
    PRIMARY KEY (user_pk, tenant_id)
);
CREATE INDEX user_tenants_tenant ON user_tenants(tenant_id, user_pk);

CREATE TABLE provider_tokens (
    user_pk           BIGINT NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    provider          TEXT NOT NULL,
    provider_user_id  TEXT NOT NULL,
    access_token      BYTEA NOT NULL,   -- sealed (idvault-crypto), bound to project/user/provider
    refresh_token     BYTEA,            -- sealed likewise
    expiration        BIGINT NOT NULL,  -- Unix seconds, 0 = no expiry
    scopes            JSONB NOT NULL,   -- array
    updated_ms        BIGINT NOT NULL,
    PRIMARY KEY (user_pk, provider)
);
