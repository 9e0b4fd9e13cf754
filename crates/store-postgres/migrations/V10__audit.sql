-- Version 10: the audit trail, and a name for every management key (PostgreSQL translation of
-- crates/store-sqlite/migrations/V10__audit.sql).
UPDATE management_keys SET name = 'key-' || key_id WHERE trim(name) = '';

CREATE TABLE audit_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id      TEXT NOT NULL,
    occurred_ms     BIGINT NOT NULL,
    action          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    actor_type      TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    actor_name      TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    login_ids       JSONB NOT NULL,
    tenants         JSONB NOT NULL,
    remote_address  TEXT NOT NULL,
    device          TEXT NOT NULL,
    method          TEXT NOT NULL,
    geo             TEXT NOT NULL,
    data            JSONB NOT NULL
);
CREATE INDEX audit_events_project_time ON audit_events(project_id, occurred_ms);
CREATE INDEX audit_events_project_user ON audit_events(project_id, user_id, occurred_ms);
CREATE INDEX audit_events_project_action ON audit_events(project_id, action, occurred_ms);
CREATE INDEX audit_events_time ON audit_events(occurred_ms);
