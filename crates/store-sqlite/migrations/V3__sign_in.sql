-- Version 3: OAuth sign-in and sessions.

-- Session-JWT signing keys per project; the private key is sealed like every secret.
CREATE TABLE signing_keys (
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kid          TEXT NOT NULL,
    alg          TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    public_jwk   TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    retired_ms   INTEGER,
    PRIMARY KEY (project_id, kid)
) STRICT;

-- Pending sign-ins (state hashed; single use).
CREATE TABLE oauth_states (
    state_hash     BLOB PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    redirect_url   TEXT NOT NULL,
    code_verifier  BLOB NOT NULL,
    nonce          TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    expires_ms     INTEGER NOT NULL
) STRICT;

-- One-time codes handed to the application after a sign-in (hashed; single use).
CREATE TABLE auth_codes (
    code_hash    BLOB PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL,
    first_seen   INTEGER NOT NULL,
    amr          TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL
) STRICT;

-- Refresh sessions; the refresh JWT's jti is the id. Deleting a user ends its sessions.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL,
    user_pk      INTEGER NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    revoked_ms   INTEGER
) STRICT;
CREATE INDEX sessions_user ON sessions(user_pk);

-- Which provider identity is which user.
CREATE TABLE user_identities (
    project_id        TEXT NOT NULL,
    provider          TEXT NOT NULL,
    provider_user_id  TEXT NOT NULL,
    user_pk           INTEGER NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
    PRIMARY KEY (project_id, provider, provider_user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX user_identities_user ON user_identities(user_pk);

ALTER TABLE projects ADD COLUMN redirect_urls TEXT NOT NULL DEFAULT '[]';
ALTER TABLE projects ADD COLUMN link_by_verified_email INTEGER NOT NULL DEFAULT 1;
