-- Version 10: the audit trail, and a name for every management key.
--
-- Keys have always been created with a name, but nothing in the schema refused an empty one: any
-- such key gets a default name, so that every audit record names its actor.
UPDATE management_keys SET name = 'key-' || key_id WHERE trim(name) = '';

-- One row per audit record. Written in batches by the server's background writer; never holds a
-- secret. No foreign key to projects: a failed management-key check is recorded under the
-- project id it presented, and records outlive nothing but their retention.
CREATE TABLE audit_events (
    id              INTEGER PRIMARY KEY,
    project_id      TEXT NOT NULL,
    occurred_ms     INTEGER NOT NULL,
    action          TEXT NOT NULL,
    kind            TEXT NOT NULL,      -- info, warn or error
    actor_type      TEXT NOT NULL,      -- managementKey, accessKey, user, external, or '' (anonymous)
    actor_id        TEXT NOT NULL,
    actor_name      TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    login_ids       TEXT NOT NULL,      -- JSON array
    tenants         TEXT NOT NULL,      -- JSON array
    remote_address  TEXT NOT NULL,
    device          TEXT NOT NULL,
    method          TEXT NOT NULL,
    geo             TEXT NOT NULL,
    data            TEXT NOT NULL       -- JSON object
) STRICT;
-- Searches are per project within a time window, often by user or by action; the purge is by
-- time alone.
CREATE INDEX audit_events_project_time ON audit_events(project_id, occurred_ms);
CREATE INDEX audit_events_project_user ON audit_events(project_id, user_id, occurred_ms);
CREATE INDEX audit_events_project_action ON audit_events(project_id, action, occurred_ms);
CREATE INDEX audit_events_time ON audit_events(occurred_ms);
