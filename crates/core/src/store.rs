//! The storage seam. Each backend (idvault-store-sqlite now, PostgreSQL later) implements these
//! traits; the domain never sees a driver type. Methods are whole units of work: a backend makes
//! each one atomic.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{ProjectId, ProviderName, UserId};
use crate::project::{ManagementKey, Project};
use crate::user::{User, UserQuery, UserRef};
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
    /// Inserts or replaces the token row and marks the provider on the user. Answers false if the
    /// user does not exist.
    async fn put_token(&self, project: &ProjectId, user_id: &UserId, token: &SealedToken) -> Result<bool>;
    /// Answers whether a row was deleted.
    async fn delete_token(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        provider: &ProviderName,
    ) -> Result<bool>;
}

#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Answers Ok when the database answers a trivial query.
    async fn ping(&self) -> Result<()>;
}

/// Everything a backend provides.
pub trait Store: ProjectStore + UserStore + TokenStore + HealthCheck {}
impl<T: ProjectStore + UserStore + TokenStore + HealthCheck> Store for T {}

pub type SharedStore = Arc<dyn Store>;
