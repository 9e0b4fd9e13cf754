-- Version 4: tenants, roles, permissions, custom attribute definitions, login history, and a
-- trigram full-text index over users for free-text search.

CREATE TABLE tenants (
    project_id                 TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    id                         TEXT NOT NULL,
    name                       TEXT NOT NULL,
    self_provisioning_domains  TEXT NOT NULL,   -- JSON array
    custom_attributes          TEXT NOT NULL,   -- JSON object
    disabled                   INTEGER NOT NULL,
    created_ms                 INTEGER NOT NULL,
    PRIMARY KEY (project_id, id)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX tenants_name ON tenants(project_id, name COLLATE NOCASE);

CREATE TABLE permissions (
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    id           TEXT NOT NULL,
    description  TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (project_id, name)
) STRICT, WITHOUT ROWID;

-- tenant_id '' is a project-level role.
CREATE TABLE roles (
    project_id        TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    tenant_id         TEXT NOT NULL,
    name              TEXT NOT NULL,
    id                TEXT NOT NULL,
    description       TEXT NOT NULL,
    permission_names  TEXT NOT NULL,   -- JSON array
    is_default        INTEGER NOT NULL,
    is_private        INTEGER NOT NULL,
    created_ms        INTEGER NOT NULL,
    PRIMARY KEY (project_id, tenant_id, name)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX roles_id ON roles(project_id, id);

CREATE TABLE custom_attribute_defs (
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    type          INTEGER NOT NULL,   -- 1 string, 2 number, 3 boolean, 4 single select, 5 multi select, 6 date
    display_name  TEXT NOT NULL,
    options       TEXT NOT NULL,      -- JSON array of {value, label}
    required      INTEGER NOT NULL,
    PRIMARY KEY (project_id, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE login_history (
    user_pk    INTEGER NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    login_ms   INTEGER NOT NULL,
    ip         TEXT NOT NULL
) STRICT;
CREATE INDEX login_history_user ON login_history(user_pk, login_ms);

CREATE INDEX users_project_created ON users(project_id, created_ms);
CREATE INDEX users_project_modified ON users(project_id, modified_ms);
CREATE INDEX user_roles_tenant_role ON user_roles(tenant_id, role_name, user_pk);

-- Free text: a contentless trigram index (substring matching, case-insensitive) keyed by the
-- user's row id and kept in step by triggers.
CREATE VIRTUAL TABLE users_fts USING fts5(body, content='', contentless_delete=1, tokenize='trigram');

CREATE TRIGGER users_fts_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_fts(rowid, body) VALUES (new.pk,
        new.login_ids || ' ' || coalesce(new.name, '') || ' ' || coalesce(new.given_name, '') || ' ' ||
        coalesce(new.middle_name, '') || ' ' || coalesce(new.family_name, '') || ' ' ||
        coalesce(new.email, '') || ' ' || coalesce(new.phone, ''));
END;
CREATE TRIGGER users_fts_update AFTER UPDATE OF login_ids, name, given_name, middle_name, family_name, email, phone ON users BEGIN
    DELETE FROM users_fts WHERE rowid = old.pk;
    INSERT INTO users_fts(rowid, body) VALUES (new.pk,
        new.login_ids || ' ' || coalesce(new.name, '') || ' ' || coalesce(new.given_name, '') || ' ' ||
        coalesce(new.middle_name, '') || ' ' || coalesce(new.family_name, '') || ' ' ||
        coalesce(new.email, '') || ' ' || coalesce(new.phone, ''));
END;
CREATE TRIGGER users_fts_delete AFTER DELETE ON users BEGIN
    DELETE FROM users_fts WHERE rowid = old.pk;
END;

INSERT INTO users_fts(rowid, body)
    SELECT pk, login_ids || ' ' || coalesce(name, '') || ' ' || coalesce(given_name, '') || ' ' ||
        coalesce(middle_name, '') || ' ' || coalesce(family_name, '') || ' ' ||
        coalesce(email, '') || ' ' || coalesce(phone, '')
    FROM users;
