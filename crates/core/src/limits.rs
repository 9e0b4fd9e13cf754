//! Size and count limits, in one place so that docs/limits.md and the code cannot drift apart.
//! Each limit is enforced with a Descope-style 4xx error, never by truncation.

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default page size of a user search when `limit` is absent or 0.
pub const SEARCH_DEFAULT_LIMIT: u32 = 100;
/// Largest page size of a user search.
pub const SEARCH_MAX_LIMIT: u32 = 1000;
/// Most users in one batch create.
pub const MAX_BATCH_USERS: usize = 1000;
/// Most ids in one `POST /v1/mgmt/users/load`.
pub const MAX_LOAD_USERS: usize = 1000;
/// Most values in one search filter list (loginIds, emails, statuses, the values of one custom
/// attribute or of one tenant's roles, ...).
pub const MAX_FILTER_VALUES: usize = 1000;
/// Most values in all the filters of one search together (keeps every query far below the
/// databases' bound-parameter limits).
pub const MAX_SEARCH_VALUES_TOTAL: usize = 10_000;
/// Most custom attributes, and most tenants of `tenantRoleNames`/`tenantRoleIds`, one search
/// filters on.
pub const MAX_SEARCH_FILTERS: usize = 50;
/// Longest custom attribute name (definitions and search filters alike).
pub const MAX_ATTRIBUTE_NAME_LEN: usize = 128;
/// Longest login id, email, name, phone, picture URL or similar string field.
pub const MAX_FIELD_LEN: usize = 1024;
/// Longest user id accepted in a request.
pub const MAX_USER_ID_LEN: usize = 128;
/// Longest provider name.
pub const MAX_PROVIDER_NAME_LEN: usize = 64;
/// Longest provider URL (issuer, endpoints).
pub const MAX_URL_LEN: usize = 2048;
/// Most login ids per user (the primary plus additional ones).
pub const MAX_LOGIN_IDS: usize = 10;
/// Most roles, tenants or SSO app ids on one user.
pub const MAX_LIST_ITEMS: usize = 200;
/// Largest serialized custom attributes object of one user or one tenant, in bytes.
pub const MAX_CUSTOM_ATTRIBUTES_BYTES: usize = 16 * 1024;
/// Longest provider access or refresh token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Most scopes stored with one provider token.
pub const MAX_SCOPES: usize = 100;
/// Longest free-text search string.
pub const MAX_SEARCH_TEXT_LEN: usize = 256;
/// Longest redirect URL accepted by `/v1/auth/oauth/authorize` (it is stored with the pending
/// sign-in), in bytes.
pub const MAX_REDIRECT_URL_LEN: usize = 2048;
/// Most allowed redirect URLs of one project (its auth settings).
pub const MAX_REDIRECT_URLS: usize = 200;
/// Longest `loginHint` passed on to the provider, in bytes.
pub const MAX_LOGIN_HINT_LEN: usize = 256;
/// Most pending (started, not yet completed and unexpired) sign-ins per project; further
/// `authorize` calls answer 429 until some complete or expire. `serve --max-pending-sign-ins`
/// overrides it.
pub const MAX_PENDING_SIGN_INS: u64 = 10_000;
/// Least time between two reloads of a project's signing keys forced by a token whose `kid` is
/// not in the cached key set, in milliseconds. A token naming an unknown key within this time is
/// refused without reading the store.
pub const SIGNING_KEY_RELOAD_INTERVAL_MS: u64 = 2_000;
/// Most sort keys in one user search.
pub const MAX_SORT_FIELDS: usize = 5;
/// Most URL parameters (`authorizationUrlParams`, `tokenUrlParams`) and `prompt` values of one
/// outbound app.
pub const MAX_APP_URL_PARAMS: usize = 50;
/// Most outbound apps (providers included) in one project.
pub const MAX_OUTBOUND_APPS: usize = 1000;
/// Most tokens one owner (a user, optionally per tenant, or a tenant) holds for one outbound app:
/// one per distinct scope set. An upload of a new scope set beyond it answers 400; a fetch reads
/// at most this many rows.
pub const MAX_TOKENS_PER_OWNER: usize = 100;
/// Longest outbound token id, app name, `grantedBy`, `externalIdentifier`, `accessTokenType`.
pub const MAX_OUTBOUND_TEXT_LEN: usize = 256;
/// Largest body of the two outbound batch uploads (`.../oauthtoken/batch/upload`), in bytes: a
/// migration of [`MAX_BATCH_TOKENS`] tokens fits. Every other route keeps [`MAX_BODY_BYTES`].
pub const MAX_BATCH_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Most tokens in one outbound batch upload; more answers 400 and nothing is written.
pub const MAX_BATCH_TOKENS: usize = 100_000;
/// Longest `errorMessage` answered, in bytes: a message repeating a value far over its own limit
/// (a megabyte where an id belongs) is cut there, ending in `…`. Every value within its limit
/// (at most [`MAX_URL_LEN`] bytes) is repeated whole.
pub const MAX_ERROR_MESSAGE_LEN: usize = 4096;
/// Longest `action`, `actorId`, `tenantId` or `userId` of an audit event an application records.
pub const MAX_AUDIT_FIELD_LEN: usize = 256;
/// Largest `data` of an audit event an application records, as serialized JSON.
pub const MAX_AUDIT_DATA_BYTES: usize = 16 * 1024;
/// Largest page of an audit search (and its default).
pub const AUDIT_SEARCH_MAX_LIMIT: usize = 1000;
