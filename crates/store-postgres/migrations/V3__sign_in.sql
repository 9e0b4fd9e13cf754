-- Version 3: OAuth sign-in and sessions.

-- Session-JWT signing keys per project; the private key is sealed like every secret.
CREATE TABLE signing_keys (
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kid          TEXT NOT NULL,
    alg          TEXT NOT NULL,
    private_key  BYTEA NOT NULL,
    public_jwk   TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    retired_ms   BIGINT,
    PRIMARY KEY (project_id, kid)
);

-- Pending sign-ins (state hashed; single use).
CREATE TABLE oauth_states (
    state_hash     BYTEA PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    redirect_url   TEXT NOT NULL,
    code_verifier  BYTEA NOT NULL,
    nonce          TEXT NOT NULL,
    created_ms     BIGINT NOT NULL,
    expires_ms     BIGINT NOT NULL
);
CREATE INDEX oauth_states_expires ON oauth_states(expires_ms);

-- One-time codes handed to the application after a sign-in (hashed; single use).
CREATE TABLE auth_codes (
    code_hash    BYTEA PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL,
    first_seen   BOOLEAN NOT NULL,
    amr          TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL
);
CREATE INDEX auth_codes_expires ON auth_codes(expires_ms);

-- Refresh sessions; the refresh JWT's jti is the id. Deleting a user ends its sessions.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL,
    user_pk      BIGINT NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL,
    revoked_ms   BIGINT
);
CREATE INDEX sessions_user ON sessions(user_pk);

-- Which provider identity is which user.
CREATE TABLE user_identities (
    project_id        TEXT NOT NULL,
    provider          TEXT NOT NULL,
    provider_user_id  TEXT NOT NULL,
    user_pk           BIGINT NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    PRIMARY KEY (project_id, provider, provider_user_id)
);
CREATE INDEX user_identities_user ON user_identities(user_pk);

ALTER TABLE projects ADD COLUMN redirect_urls JSONB NOT NULL DEFAULT '[]';
ALTER TABLE projects ADD COLUMN link_by_verified_email BOOLEAN NOT NULL DEFAULT TRUE;
