-- Version 6: sign-in hardening.

-- The sweep of expired states and codes on every insert, and the count of a project's pending
-- sign-ins, go through indexes (PostgreSQL had the expiry ones since version 3).
CREATE INDEX IF NOT EXISTS oauth_states_expires ON oauth_states(expires_ms);
CREATE INDEX IF NOT EXISTS auth_codes_expires ON auth_codes(expires_ms);
CREATE INDEX oauth_states_project ON oauth_states(project_id, expires_ms);

-- Refresh-JWT rotation: the generation of the one live refresh JWT of each session.
ALTER TABLE sessions ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
