-- Version 8: outbound app connect (consent). A pending connect is an OAuth state like a pending
-- sign-in (same hashing, expiry and per-project bound), plus what the callback will store: the
-- user, the tenant (and whether the token is the tenant's), the scopes and the external
-- identifier, as a JSON object. NULL: a sign-in.
ALTER TABLE oauth_states ADD COLUMN connect TEXT;
