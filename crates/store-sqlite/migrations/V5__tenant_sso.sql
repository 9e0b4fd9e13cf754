-- Version 5: a tenant can require SSO for its users.
ALTER TABLE tenants ADD COLUMN enforce_sso INTEGER NOT NULL DEFAULT 0;
