-- Version 4: tenants, roles, permissions, custom attribute definitions, login history, and a
-- trigram index over users for free-text search.

CREATE TABLE tenants (
    project_id                 TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    id                         TEXT NOT NULL,
    name                       TEXT NOT NULL,
    self_provisioning_domains  JSONB NOT NULL,  -- array
    custom_attributes          JSONB NOT NULL,  -- object
    disabled                   BOOLEAN NOT NULL,
    created_ms                 BIGINT NOT NULL,
    PRIMARY KEY (project_id, id)
);
-- Names are unique per project ignoring ASCII case (SQLite: COLLATE NOCASE).
CREATE UNIQUE INDEX tenants_name ON tenants(project_id, lower(name COLLATE "C"));

CREATE TABLE permissions (
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    id           TEXT NOT NULL,
    description  TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    PRIMARY KEY (project_id, name)
);

-- tenant_id '' is a project-level role.
CREATE TABLE roles (
    project_id        TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    tenant_id         TEXT NOT NULL,
    name              TEXT NOT NULL,
    id                TEXT NOT NULL,
    description       TEXT NOT NULL,
    permission_names  JSONB NOT NULL,  -- array
    is_default        BOOLEAN NOT NULL,
    is_private        BOOLEAN NOT NULL,
    created_ms        BIGINT NOT NULL,
    PRIMARY KEY (project_id, tenant_id, name)
);
CREATE UNIQUE INDEX roles_id ON roles(project_id, id);

CREATE TABLE custom_attribute_defs (
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    type          INTEGER NOT NULL,   -- 1 string, 2 number, 3 boolean, 4 single select, 5 multi select, 6 date
    display_name  TEXT NOT NULL,
    options       JSONB NOT NULL,     -- array of {value, label}
    required      BOOLEAN NOT NULL,
    PRIMARY KEY (project_id, name)
);

CREATE TABLE login_history (
    user_pk    BIGINT NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    login_ms   BIGINT NOT NULL,
    ip         TEXT NOT NULL
);
CREATE INDEX login_history_user ON login_history(user_pk, login_ms);

CREATE INDEX users_project_created ON users(project_id, created_ms);
CREATE INDEX users_project_modified ON users(project_id, modified_ms);
CREATE INDEX user_roles_tenant_role ON user_roles(tenant_id, role_name, user_pk);

-- Free text: a case-insensitive substring match (ILIKE) over the same concatenation SQLite's
-- trigram FTS table indexes, served by a pg_trgm GIN index on a generated column. pg_trgm is a
-- trusted extension (PostgreSQL 13+): the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE users ADD COLUMN search_text TEXT GENERATED ALWAYS AS (
    lower(login_ids::text || ' ' || coalesce(name, '') || ' ' || coalesce(given_name, '') || ' ' ||
        coalesce(middle_name, '') || ' ' || coalesce(family_name, '') || ' ' ||
        coalesce(email, '') || ' ' || coalesce(phone, ''))
) STORED;
CREATE INDEX users_search_text ON users USING gin (search_text gin_trgm_ops);
