-- idvault schema, version 1. STRICT tables so that a wrong type is an error, not a surprise.
-- Users keep a denormalized copy of login ids, roles and tenants (JSON columns) so that a load is
-- one indexed read; the side tables exist for lookup and search, and are written in the same
-- transaction as the user row.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
) STRICT;

CREATE TABLE management_keys (
    key_id      TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    key_hash    BLOB NOT NULL,          -- SHA-256 of the whole key; the key itself is never stored
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER,
    revoked_ms  INTEGER
) STRICT;
CREATE INDEX management_keys_project ON management_keys(project_id);

CREATE TABLE users (
    pk                INTEGER PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects(id),
    user_id           TEXT NOT NULL,
    login_ids         TEXT NOT NULL,    -- JSON array, primary first
    name              TEXT,
    given_name        TEXT,
    middle_name       TEXT,
    family_name       TEXT,
    email             TEXT COLLATE NOCASE,
    phone             TEXT,
    verified_email    INTEGER NOT NULL,
    verified_phone    INTEGER NOT NULL,
    status            TEXT NOT NULL,
    picture           TEXT,
    test              INTEGER NOT NULL,
    role_names        TEXT NOT NULL,    -- JSON array of project-level roles
    tenants           TEXT NOT NULL,    -- JSON array of {tenantId, roleNames}
    custom_attributes TEXT NOT NULL,    -- JSON object
    sso_app_ids       TEXT NOT NULL,    -- JSON array
    oauth_providers   TEXT NOT NULL,    -- JSON array of provider names with stored tokens
    created_ms        INTEGER NOT NULL,
    modified_ms       INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_project_user_id ON users(project_id, user_id);
CREATE INDEX users_project_email ON users(project_id, email) WHERE email IS NOT NULL;
CREATE INDEX users_project_phone ON users(project_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX users_project_test ON users(project_id, test, pk);

CREATE TABLE user_login_ids (
    project_id  TEXT NOT NULL,
    login_id    TEXT NOT NULL,
    user_pk     INTEGER NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    PRIMARY KEY (project_id, login_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX user_login_ids_user ON user_login_ids(user_pk);

CREATE TABLE user_roles (
    user_pk     INTEGER NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL,          -- '' for a project-level role
    role_name   TEXT NOT NULL,
    PRIMARY KEY (user_pk, tenant_id, role_name)
) STRICT, WITHOUT ROWID;
CREATE INDEX user_roles_role ON user_roles(role_name, user_pk);

CREATE TABLE user_tenants (
    user_pk     INTEGER NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL,
    PRIMARY KEY (user_pk, tenant_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX user_tenants_tenant ON user_tenants(tenant_id, user_pk);

CREATE TABLE provider_tokens (
    user_pk           INTEGER NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    provider          TEXT NOT NULL,
    provider_user_id  TEXT NOT NULL,
    access_token      BLOB NOT NULL,    -- sealed (idvault-crypto), bound to project/user/provider
    refresh_token     BLOB,             -- sealed likewise
    expiration        INTEGER NOT NULL, -- Unix seconds, 0 = no expiry
    scopes            TEXT NOT NULL,    -- JSON array
    updated_ms        INTEGER NOT NULL,
    PRIMARY KEY (user_pk, provider)
) STRICT, WITHOUT ROWID;
