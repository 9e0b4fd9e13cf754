-- Version 7: outbound apps. A provider is an app: the app fields extend the provider row (one
-- copy of each OAuth client configuration), and outbound tokens are many per owner.

-- The app's display name (unique per project; NULL for providers set through /v1/mgmt/provider)
-- and the app fields no query filters on, as one JSON object (NULL: a plain provider).
ALTER TABLE oauth_providers ADD COLUMN display_name TEXT;
ALTER TABLE oauth_providers ADD COLUMN app JSONB;
CREATE UNIQUE INDEX oauth_providers_display_name ON oauth_providers(project_id, display_name);

-- One stored token (or API key) of an app for a user or a tenant. Secrets are sealed by the
-- domain, bound to project, app, owner and field. A user token may name a tenant ('' = none).
-- scope_key is the sorted, space-joined scope set: an upload with the same (app, owner, tenant,
-- scope set) replaces the token (new version) instead of adding one.
CREATE TABLE outbound_tokens (
    project_id          TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    id                  TEXT NOT NULL,
    app_id              TEXT NOT NULL,
    owner_kind          TEXT NOT NULL,      -- user | tenant
    owner_id            TEXT NOT NULL,      -- user id or tenant id
    tenant_id           TEXT NOT NULL,      -- a user token's tenant, '' for none; '' on tenant tokens
    user_pk             BIGINT REFERENCES users(pk) ON DELETE CASCADE,  -- user tokens only
    owner_tenant        TEXT,               -- tenant tokens only (deleting the tenant deletes them)
    scope_key           TEXT NOT NULL,
    scopes              JSONB NOT NULL,     -- array, sorted
    access_token        BYTEA,               -- sealed; NULL for a refresh-only upload
    refresh_token       BYTEA,               -- sealed
    access_token_type   TEXT NOT NULL,
    expiration          BIGINT NOT NULL,   -- Unix seconds, 0 = unknown / none
    granted_by          TEXT NOT NULL,
    external_identifier TEXT NOT NULL,
    token_sub           TEXT NOT NULL,
    last_refresh_ms     BIGINT NOT NULL,   -- 0 = never
    last_refresh_error  TEXT NOT NULL,
    created_ms          BIGINT NOT NULL,
    updated_ms          BIGINT NOT NULL,
    version             BIGINT NOT NULL,
    reauth_required     BOOLEAN NOT NULL,
    PRIMARY KEY (project_id, id),
    FOREIGN KEY (project_id, app_id) REFERENCES oauth_providers(project_id, name) ON DELETE CASCADE,
    FOREIGN KEY (project_id, owner_tenant) REFERENCES tenants(project_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX outbound_tokens_slot
    ON outbound_tokens(project_id, app_id, owner_kind, owner_id, tenant_id, scope_key);
CREATE INDEX outbound_tokens_owner ON outbound_tokens(project_id, owner_kind, owner_id);
CREATE INDEX outbound_tokens_user_pk ON outbound_tokens(user_pk) WHERE user_pk IS NOT NULL;
