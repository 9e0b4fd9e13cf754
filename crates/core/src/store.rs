//! The storage seam. Each backend (idvault-store-sqlite now, PostgreSQL later) implements these
//! traits; the domain never sees a driver type. Methods are whole units of work: a backend makes
//! each one atomic.

use std::sync::Arc;

use async_trait::async_trait;

use crate::access_key::AccessKey;
use crate::audit::{AuditQuery, AuditRecord};
use crate::auth::{AuthCode, OAuthState, ProjectAuthSettings, SessionRecord, SigningKeyRecord};
use crate::directory::{AttributeDef, Permission, Role, Tenant};
use crate::error::Result;
use crate::ids::{ProjectId, ProviderName, UserId};
use crate::outbound::{OverfullSlot, SealedOutboundToken, TokenOwner};
use crate::project::{ManagementKey, Project};
use crate::provider::ProviderConfig;
use crate::user::{User, UserQuery, UserRef, UserUpdate};
use crate::vault::SealedToken;

#[async_trait]
pub trait ProjectStore: Send + Sync {
    async fn create_project(&self, project: &Project) -> Result<()>;
    async fn get_project(&self, id: &ProjectId) -> Result<Option<Project>>;
    async fn list_projects(&self) -> Result<Vec<Project>>;
    async fn insert_key(&self, key: &ManagementKey) -> Result<()>;
    /// Hot path: called on every management request.
    async fn get_key(&self, key_id: &str) -> Result<Option<ManagementKey>>;
    async fn list_keys(&self, project: &ProjectId) -> Result<Vec<ManagementKey>>;
    /// Marks a key revoked; answers false when the project has no such key.
    async fn revoke_key(&self, project: &ProjectId, key_id: &str, at_ms: i64) -> Result<bool>;
    /// Sets a key's name and expiry; answers false when the project has no such key.
    async fn update_key(
        &self,
        project: &ProjectId,
        key_id: &str,
        name: &str,
        expires_ms: Option<i64>,
    ) -> Result<bool>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts all users or none. A login id already taken in the project (or twice in the
    /// batch) fails with `Error::UserAlreadyExists`.
    async fn create_users(&self, project: &ProjectId, users: &[User]) -> Result<()>;
    /// Exact lookup by login id or by user id. Hot path.
    async fn get_user(&self, project: &ProjectId, user: &UserRef) -> Result<Option<User>>;
    /// Users with the given ids, in the order given; unknown ids are skipped.
    async fn load_users(&self, project: &ProjectId, user_ids: &[String]) -> Result<Vec<User>>;
    /// One page of matching users, oldest first, and the total number of matches.
    async fn search_users(&self, project: &ProjectId, query: &UserQuery) -> Result<(Vec<User>, u64)>;
    /// Deletes the user and everything it owns (login ids, tokens). Answers whether it existed.
    async fn delete_user(&self, project: &ProjectId, user_id: &UserId) -> Result<bool>;
    async fn delete_test_users(&self, project: &ProjectId) -> Result<u64>;
}

/// The answer of a token lookup, distinguishing an unknown user from a user without a token.
#[derive(Debug)]
pub enum TokenLookup {
    NoUser,
    NoToken,
    Found { user_id: UserId, token: SealedToken },
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Hot path: the sealed token of a user (by login id or id) for a provider, in one read.
    async fn get_token(
        &self,
        project: &ProjectId,
        user: &UserRef,
        provider: &ProviderName,
    ) -> Result<TokenLookup>;
    /// Inserts or replaces the token row (a new sign-in or import: clears any re-authentication
    /// flag, bumps the version) and marks the provider on the user. Answers false if the user
    /// does not exist.
    async fn put_token(&self, project: &ProjectId, user_id: &UserId, token: &SealedToken) -> Result<bool>;
    /// Replaces the row with refreshed tokens only if its version is still `expected_version`
    /// (compare-and-swap), bumping the version. Answers whether it did.
    async fn replace_refreshed_token(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        token: &SealedToken,
        expected_version: i64,
    ) -> Result<bool>;
    /// Flags the row as needing a new sign-in, if its version is still `expected_version`.
    async fn flag_reauth_required(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        provider: &ProviderName,
        expected_version: i64,
    ) -> Result<bool>;
    /// Answers whether a row was deleted.
    async fn delete_token(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        provider: &ProviderName,
    ) -> Result<bool>;
}

#[async_trait]
pub trait ProviderStore: Send + Sync {
    /// Inserts or replaces a provider configuration.
    async fn put_provider(&self, project: &ProjectId, config: &ProviderConfig) -> Result<()>;
    async fn get_provider(&self, project: &ProjectId, name: &ProviderName) -> Result<Option<ProviderConfig>>;
    async fn list_providers(&self, project: &ProjectId) -> Result<Vec<ProviderConfig>>;
    async fn delete_provider(&self, project: &ProjectId, name: &ProviderName) -> Result<bool>;
}

/// Outbound app tokens (sealed by the domain before they get here). Deleting the app, the user
/// or the tenant a token belongs to deletes the token.
#[async_trait]
pub trait OutboundTokenStore: Send + Sync {
    /// The tokens of `owner` for `app`, of the tenant `tenant` when given (user tokens; `Some("")`
    /// means "without a tenant"), any tenant otherwise. At most `limit` rows, newest first.
    async fn list_outbound_tokens(
        &self,
        project: &ProjectId,
        app: &ProviderName,
        owner: &TokenOwner,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SealedOutboundToken>>;
    async fn get_outbound_token(&self, project: &ProjectId, id: &str) -> Result<Option<SealedOutboundToken>>;
    /// Stores `token`: it replaces the token with the same (app, owner, tenant, scope set), which
    /// keeps its id and created time, bumps its version and clears its re-authentication flag;
    /// otherwise it is inserted with `token.id`, unless the owner already has `max_per_owner`
    /// tokens for the app and tenant (then `None`). Answers the id of the stored token. Its
    /// `updated_ms` is stored as at least one more than that of every other token of the owner
    /// for the app, so that of two uploads within one millisecond the later is the latest.
    async fn put_outbound_token(
        &self,
        project: &ProjectId,
        token: &SealedOutboundToken,
        max_per_owner: usize,
    ) -> Result<Option<String>>;
    /// Stores every token of a batch as [`Self::put_outbound_token`] would (a token replaces the
    /// one of the same slot, keeping its id), all in one transaction. `tokens` has at most one
    /// token per slot. If an owner of the batch would then hold more than `max_per_owner` tokens
    /// of an app and tenant, nothing is written and those slots are answered.
    async fn put_outbound_tokens(
        &self,
        project: &ProjectId,
        tokens: Vec<SealedOutboundToken>,
        max_per_owner: usize,
    ) -> Result<Vec<OverfullSlot>>;
    /// Of `user_ids`, the ids of the project's users (one query for a whole batch).
    async fn existing_user_ids(
        &self,
        project: &ProjectId,
        user_ids: &[String],
    ) -> Result<std::collections::HashSet<String>>;
    /// Replaces the secrets, expiry and refresh bookkeeping of the token `token.id` if its version
    /// is still `expected_version` (compare-and-swap), bumping the version.
    async fn replace_refreshed_outbound_token(
        &self,
        project: &ProjectId,
        token: &SealedOutboundToken,
        expected_version: i64,
    ) -> Result<bool>;
    /// Flags the token as refused by the provider (with `error` as its last refresh error), if its
    /// version is still `expected_version`.
    async fn flag_outbound_reauth(
        &self,
        project: &ProjectId,
        id: &str,
        expected_version: i64,
        error: &str,
        at_ms: i64,
    ) -> Result<bool>;
    /// Deletes user tokens of `app`, of `user`, or of both (at least one is given). Answers how
    /// many.
    async fn delete_user_outbound_tokens(
        &self,
        project: &ProjectId,
        app: Option<&ProviderName>,
        user: Option<&UserId>,
    ) -> Result<u64>;
    async fn delete_outbound_token(&self, project: &ProjectId, id: &str) -> Result<bool>;
    /// The ids of the apps `user` holds a token for that is not flagged for re-authentication
    /// (of `tenant` only, when given), sorted.
    async fn apps_with_user_token(
        &self,
        project: &ProjectId,
        user: &UserId,
        tenant: Option<&str>,
    ) -> Result<Vec<String>>;
}

/// A project's data key, wrapped (encrypted) by a master key version.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    pub project_id: ProjectId,
    pub version: u32,
    pub wrapped: Vec<u8>,
    pub master_key_version: u32,
    pub created_ms: i64,
}

impl std::fmt::Debug for WrappedDataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedDataKey")
            .field("project_id", &self.project_id)
            .field("version", &self.version)
            .field("master_key_version", &self.master_key_version)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait DataKeyStore: Send + Sync {
    async fn get_data_key(&self, project: &ProjectId, version: u32) -> Result<Option<WrappedDataKey>>;
    /// Inserts unless a key with that project and version exists; answers whether it inserted.
    async fn insert_data_key(&self, key: &WrappedDataKey) -> Result<bool>;
    async fn list_data_keys(&self) -> Result<Vec<WrappedDataKey>>;
    /// Replaces the wrapping if it is still under `expected_master_version`; answers whether it
    /// did.
    async fn rewrap_data_key(&self, key: &WrappedDataKey, expected_master_version: u32) -> Result<bool>;
}

/// Who a completed sign-in belongs to.
#[derive(Debug, Clone)]
pub enum SignInUser {
    Existing(UserId),
    New(Box<User>),
}

/// Everything a provider callback writes, in one transaction: the user (when new), the link from
/// the provider identity to the user, and the provider tokens.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub user: SignInUser,
    pub provider_user_id: String,
    pub token: SealedToken,
}

#[async_trait]
pub trait AuthStore: Send + Sync {
    async fn list_signing_keys(&self, project: &ProjectId) -> Result<Vec<SigningKeyRecord>>;
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<()>;
    /// Marks every other unretired key of the project retired at `at_ms`.
    async fn retire_signing_keys_except(&self, project: &ProjectId, kid: &str, at_ms: i64) -> Result<()>;

    /// Inserts a pending sign-in unless its project already has `max_pending` unexpired ones (at
    /// `state.created_ms`); answers whether it inserted. Expired states may be swept on the way.
    /// The count and the insert are one atomic unit, so concurrent calls cannot overshoot.
    async fn insert_oauth_state(&self, state: &OAuthState, max_pending: u64) -> Result<bool>;
    /// Removes and answers the state: a state is usable once.
    async fn take_oauth_state(&self, state_hash: &[u8; 32]) -> Result<Option<OAuthState>>;
    async fn insert_auth_code(&self, code: &AuthCode) -> Result<()>;
    /// Removes and answers the code: a code is usable once.
    async fn take_auth_code(&self, code_hash: &[u8; 32]) -> Result<Option<AuthCode>>;

    async fn insert_session(&self, session: &SessionRecord) -> Result<()>;
    async fn get_session(&self, project: &ProjectId, id: &str) -> Result<Option<SessionRecord>>;
    async fn revoke_session(&self, project: &ProjectId, id: &str, at_ms: i64) -> Result<bool>;
    /// Moves an unrevoked session from `expected_generation` to the next one (compare-and-swap):
    /// of two concurrent calls with the same expected generation, exactly one answers true.
    async fn advance_session(&self, project: &ProjectId, id: &str, expected_generation: i64) -> Result<bool>;
    async fn revoke_user_sessions(&self, project: &ProjectId, user_id: &UserId, at_ms: i64) -> Result<u64>;

    /// The user a provider identity is linked to.
    async fn find_identity(
        &self,
        project: &ProjectId,
        provider: &ProviderName,
        provider_user_id: &str,
    ) -> Result<Option<UserId>>;
    /// A user whose email matches (case-insensitively) and is verified.
    async fn find_user_by_verified_email(&self, project: &ProjectId, email: &str) -> Result<Option<UserId>>;
    /// Writes a completed sign-in atomically. A new user whose login id is taken fails with
    /// `Error::UserAlreadyExists` and nothing is written.
    async fn complete_sign_in(
        &self,
        project: &ProjectId,
        provider: &ProviderName,
        sign_in: &SignIn,
    ) -> Result<UserId>;

    async fn get_auth_settings(&self, project: &ProjectId) -> Result<ProjectAuthSettings>;
    async fn set_auth_settings(&self, project: &ProjectId, settings: &ProjectAuthSettings) -> Result<()>;
}

/// Access keys (their secrets only as digests). Every method is one atomic unit.
#[async_trait]
pub trait AccessKeyStore: Send + Sync {
    /// Inserts the key unless its project already has `max_per_project` keys; answers whether it
    /// inserted. The count and the insert are one atomic unit, so concurrent calls cannot
    /// overshoot.
    async fn insert_access_key(&self, key: &AccessKey, max_per_project: u64) -> Result<bool>;
    async fn get_access_key(&self, project: &ProjectId, id: &str) -> Result<Option<AccessKey>>;
    /// Every key of the project, oldest first (then by id).
    async fn list_access_keys(&self, project: &ProjectId) -> Result<Vec<AccessKey>>;
    /// Replaces name, description, roles, tenants, custom claims, permitted IPs, custom
    /// attributes and `updated_ms` with those of `key`; the secret, status, expiry, creator and
    /// bound user stay. Answers whether the key exists.
    async fn update_access_key(&self, project: &ProjectId, key: &AccessKey) -> Result<bool>;
    /// Activates or deactivates every key of `ids`, or none: answers the ids that are not keys of
    /// the project, and when there are any nothing is written.
    async fn set_access_keys_active(
        &self,
        project: &ProjectId,
        ids: &[String],
        active: bool,
        at_ms: i64,
    ) -> Result<Vec<String>>;
    /// Deletes every key of `ids`, or none: answers the ids that are not keys of the project, and
    /// when there are any nothing is deleted.
    async fn delete_access_keys(&self, project: &ProjectId, ids: &[String]) -> Result<Vec<String>>;
    /// Replaces the key's secret digest; answers whether the key exists.
    async fn replace_access_key_secret(
        &self,
        project: &ProjectId,
        id: &str,
        secret_hash: &[u8; 32],
        at_ms: i64,
    ) -> Result<bool>;
}

/// One entry of a user's login history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    pub user_id: UserId,
    pub login_ms: i64,
    pub ip: String,
}

#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Fails with `AlreadyExists` when the id or the name (case-insensitive) is taken.
    async fn create_tenant(&self, project: &ProjectId, tenant: &Tenant) -> Result<()>;
    /// Replaces name, domains, attributes and the disabled flag; answers the stored tenant.
    async fn update_tenant(&self, project: &ProjectId, tenant: &Tenant) -> Result<Tenant>;
    async fn get_tenant(&self, project: &ProjectId, id: &str) -> Result<Option<Tenant>>;
    async fn list_tenants(&self, project: &ProjectId) -> Result<Vec<Tenant>>;
    /// Deletes the tenant, its roles, and its membership from every user (stamped `now_ms`).
    async fn delete_tenant(&self, project: &ProjectId, id: &str, now_ms: i64) -> Result<bool>;

    async fn create_permission(&self, project: &ProjectId, permission: &Permission) -> Result<()>;
    /// Renames (in roles too) and re-describes a permission.
    async fn update_permission(
        &self,
        project: &ProjectId,
        name: &str,
        new_name: &str,
        description: &str,
    ) -> Result<()>;
    /// Deletes the permission and removes it from every role.
    async fn delete_permission(&self, project: &ProjectId, name: &str) -> Result<bool>;
    async fn list_permissions(&self, project: &ProjectId) -> Result<Vec<Permission>>;

    /// Fails with `AlreadyExists` for a taken (tenant, name); unknown permissions or tenant fail.
    async fn create_role(&self, project: &ProjectId, role: &Role) -> Result<()>;
    /// Replaces the role found by (tenant, name) with `role` (whose name may be new: users follow,
    /// stamped `now_ms`).
    async fn update_role(
        &self,
        project: &ProjectId,
        name: &str,
        tenant: Option<&str>,
        role: &Role,
        now_ms: i64,
    ) -> Result<()>;
    /// Deletes the role and removes it from every user that had it (stamped `now_ms`).
    async fn delete_role(
        &self,
        project: &ProjectId,
        name: &str,
        tenant: Option<&str>,
        now_ms: i64,
    ) -> Result<bool>;
    async fn list_roles(&self, project: &ProjectId) -> Result<Vec<Role>>;

    /// Creates or replaces definitions by name.
    async fn put_attribute_defs(&self, project: &ProjectId, defs: &[AttributeDef]) -> Result<()>;
    async fn delete_attribute_defs(&self, project: &ProjectId, names: &[String]) -> Result<()>;
    async fn list_attribute_defs(&self, project: &ProjectId) -> Result<Vec<AttributeDef>>;

    /// Applies `update` to the current user and saves it, in one write transaction that holds
    /// the user's row: [`UserUpdate::apply`], then the facts [`UserUpdate::needs`] names read
    /// with the store's SQL, then [`UserUpdate::check`] (conflicts, references), then the write.
    /// Concurrent updates of one user take turns. Answers the saved user, enriched.
    async fn update_user(&self, project: &ProjectId, user_id: &UserId, update: &UserUpdate) -> Result<User>;
    /// Creates each user in its own savepoint: one failure does not stop the others. Answers,
    /// per input, the created user or the error.
    async fn create_users_each(&self, project: &ProjectId, users: &[User]) -> Result<Vec<Result<User>>>;

    async fn record_login(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        login_ms: i64,
        ip: &str,
    ) -> Result<()>;
    async fn login_history(&self, project: &ProjectId, user_ids: &[String]) -> Result<Vec<LoginRecord>>;
}

/// A new user with its sealed tokens, checked by core and ready to store (see
/// [`crate::user::import`]): `user.oauth_providers` already names the providers of `tokens`.
#[derive(Debug, Clone)]
pub struct ImportedUser {
    pub user: User,
    pub tokens: Vec<SealedToken>,
    /// User tokens of outbound apps, owned by `user` (distinct slots).
    pub outbound_tokens: Vec<SealedOutboundToken>,
}

/// Of some user ids and login ids, those the project's users already hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakenUserKeys {
    pub user_ids: std::collections::HashSet<String>,
    pub login_ids: std::collections::HashSet<String>,
}

/// The bulk import path: large batches of new users with their tokens, written with as little
/// per-row work as the backend allows.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Of `user_ids` and `login_ids`, those already held by a user of the project (a few queries
    /// for a whole batch; nothing to read in a project without users).
    async fn taken_user_keys(
        &self,
        project: &ProjectId,
        user_ids: &[String],
        login_ids: &[String],
    ) -> Result<TakenUserKeys>;
    /// Inserts the users (with their login ids, role and tenant index rows, free-text index
    /// entries), their provider tokens and their outbound user tokens, all or none, in one
    /// transaction. The users' references (roles, tenants, attributes) are checked against the
    /// directory inside that transaction, as `create_users` does; a login id or user id already
    /// taken (in the project or twice in the batch) fails with `Error::UserAlreadyExists` and
    /// nothing is written. Tokens are stored as new rows (version 1), as on a first upload.
    async fn import_users(&self, project: &ProjectId, users: Vec<ImportedUser>) -> Result<()>;
}

/// A provider identity linked to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityLink {
    pub provider: ProviderName,
    pub provider_user_id: String,
    pub user_id: UserId,
}

/// Reading and writing a whole project, for `idvault export` / `idvault import` between
/// backends. Secrets travel as stored: sealed tokens, wrapped data keys, key hashes.
#[async_trait]
pub trait TransferStore: Send + Sync {
    /// Every provider-token row of the project.
    async fn export_tokens(&self, project: &ProjectId) -> Result<Vec<(UserId, SealedToken)>>;
    async fn export_identities(&self, project: &ProjectId) -> Result<Vec<IdentityLink>>;
    /// Every outbound token of the project (imported back with `put_outbound_token`).
    async fn export_outbound_tokens(&self, project: &ProjectId) -> Result<Vec<SealedOutboundToken>>;
    async fn import_identity(&self, project: &ProjectId, link: &IdentityLink) -> Result<()>;
}

/// Held while a token refresh runs; dropping it releases the lock.
pub type RefreshGuard = Box<dyn Send + Sync>;

/// Which stored token a refresh is for: the key of the refresh locks, in-process and across
/// replicas.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RefreshKey {
    /// A `/v1/mgmt/user/provider/token` row.
    ProviderToken { user_id: UserId, provider: ProviderName },
    /// An outbound app token, by id.
    OutboundToken { id: String },
}

impl RefreshKey {
    /// The parts a cross-replica lock key is derived from. A provider token's parts are the ones
    /// used before outbound tokens existed, so that replicas of both versions still exclude each
    /// other during a rolling upgrade.
    pub fn lock_parts<'a>(&'a self, project: &'a ProjectId) -> Vec<&'a str> {
        match self {
            RefreshKey::ProviderToken { user_id, provider } => {
                vec![project.as_str(), user_id.as_str(), provider.as_str()]
            }
            RefreshKey::OutboundToken { id } => vec!["outbound-token", project.as_str(), id.as_str()],
        }
    }
}

/// Exactly one refresh at a time per stored token across every process sharing the database.
/// Within a process the vault already serializes refreshes; a backend shared by several replicas
/// (PostgreSQL) adds a database lock that a crashed holder cannot keep.
#[async_trait]
pub trait RefreshLock: Send + Sync {
    async fn refresh_lock_for(&self, project: &ProjectId, key: &RefreshKey) -> Result<RefreshGuard>;

    /// The lock of a provider-token row.
    async fn refresh_lock(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        provider: &ProviderName,
    ) -> Result<RefreshGuard> {
        let key = RefreshKey::ProviderToken { user_id: user_id.clone(), provider: provider.clone() };
        self.refresh_lock_for(project, &key).await
    }
}

/// The audit trail. Records are written in batches by the background writer
/// ([`crate::audit::writer`]), never one per request.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Inserts every record (one multi-row insert, or a few for a very large batch).
    async fn insert_audit_records(&self, records: &[AuditRecord]) -> Result<()>;
    /// One page of the project's matching records (newest first unless `oldest_first`), and the
    /// number of matches.
    async fn search_audit(&self, project: &ProjectId, query: &AuditQuery) -> Result<(Vec<AuditRecord>, u64)>;
    /// Deletes every record (of every project) that occurred before `before_ms`; answers how many.
    async fn purge_audit(&self, before_ms: i64) -> Result<u64>;
}

#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Answers Ok when the database answers a trivial query.
    async fn ping(&self) -> Result<()>;
}

/// Everything a backend provides.
pub trait Store:
    ProjectStore
    + UserStore
    + TokenStore
    + ProviderStore
    + OutboundTokenStore
    + DataKeyStore
    + AuthStore
    + DirectoryStore
    + ImportStore
    + AccessKeyStore
    + RefreshLock
    + AuditStore
    + HealthCheck
{
}
impl<T> Store for T where
    T: ProjectStore
        + UserStore
        + TokenStore
        + ProviderStore
        + OutboundTokenStore
        + DataKeyStore
        + AuthStore
        + DirectoryStore
        + ImportStore
        + AccessKeyStore
        + RefreshLock
        + AuditStore
        + HealthCheck
{
}

pub type SharedStore = Arc<dyn Store>;

/// A snapshot of one connection pool, for metrics (read at scrape time, never on a request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// `queries`, `refresh_locks` (PostgreSQL) or `sqlite_readers`.
    pub pool: &'static str,
    pub max: usize,
    /// Connections lent out now.
    pub in_use: usize,
    /// Callers waiting for a connection now (PostgreSQL).
    pub waiting: usize,
    /// Callers that ever had to wait for a connection (SQLite readers: all were busy).
    pub waits_total: u64,
}
