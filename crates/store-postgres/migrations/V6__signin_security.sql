-- Version 6: sign-in hardening.

-- The count of a project's pending sign-ins goes through an index (the expiry indexes of the
-- sweeps exist since version 3).
CREATE INDEX oauth_states_project ON oauth_states(project_id, expires_ms);

-- Refresh-JWT rotation: the generation of the one live refresh JWT of each session.
ALTER TABLE sessions ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
