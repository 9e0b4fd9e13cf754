//! Sign-in: the Descope OAuth flow (start, provider callback, code exchange) and sessions
//! (session and refresh JWTs, refresh, logout, me). Signing keys live behind
//! [`SessionSigner`] (idvault-crypto); provider calls behind [`crate::provider::OAuthClient`].

pub mod service;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::error::Result;
use crate::ids::{ProjectId, ProviderName, UserId};

pub use service::{AuthService, AuthSettings};

/// Signs and verifies a project's session JWTs, and publishes its public keys.
#[async_trait]
pub trait SessionSigner: Send + Sync + 'static {
    /// Signs `claims` with the project's active key (created on first use). The header carries
    /// `kid` and `alg`.
    async fn sign(&self, project: &ProjectId, claims: &Map<String, Value>) -> Result<String>;
    /// Verifies signature and `exp` (no leeway) and answers the claims. A token this server did
    /// not sign (malformed, unknown key, bad signature) is `Error::ForgedSession`; an expired one
    /// is `Error::InvalidSession`.
    async fn verify(&self, project: &ProjectId, token: &str) -> Result<Map<String, Value>>;
    /// The public JWKs to publish: the active key, and retired keys whose tokens may still live.
    async fn jwks(&self, project: &ProjectId) -> Result<Vec<Value>>;
    /// Makes a new active key; the previous one stays published for `keep_published_ms`.
    async fn rotate(&self, project: &ProjectId) -> Result<String>;
}

/// A stored signing key (private part sealed).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub project_id: ProjectId,
    pub kid: String,
    pub alg: String,
    pub private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_ms: i64,
    pub retired_ms: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("project_id", &self.project_id)
            .field("kid", &self.kid)
            .field("retired_ms", &self.retired_ms)
            .finish_non_exhaustive()
    }
}

/// A pending sign-in between `authorize` and the provider's callback.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthState {
    /// SHA-256 of the state value sent to the provider; the value itself is not stored.
    pub state_hash: [u8; 32],
    pub project_id: ProjectId,
    pub provider: ProviderName,
    pub redirect_url: String,
    /// The PKCE verifier, sealed.
    pub code_verifier: Vec<u8>,
    pub nonce: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// `Some` for an outbound app connect (the provider is the app), `None` for a sign-in. Each
    /// callback refuses the other's states.
    pub connect: Option<crate::outbound::ConnectIntent>,
}

/// A one-time code handed to the application's redirect URL, exchanged for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    pub code_hash: [u8; 32],
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub first_seen: bool,
    pub amr: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// A refresh session (a token family): the refresh JWT's `sid` claim names it (`jti` in tokens
/// issued before rotation), logout revokes it. Each refresh rotates the refresh JWT: the session's
/// `generation` moves on, and only a refresh JWT carrying the current generation is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub revoked_ms: Option<i64>,
    /// The generation of the one live refresh JWT of this session (0 at sign-in).
    pub generation: i64,
}

/// Per-project sign-in settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectAuthSettings {
    /// Where `authorize` may send users back; compared exactly, query string ignored. None carries
    /// a `code` parameter or a fragment.
    pub redirect_urls: Vec<String>,
    /// Link a sign-in to an existing user with the same email when the provider says it is
    /// verified (otherwise a new user is created).
    pub link_by_verified_email: bool,
}

/// The Descope JWT response of exchange and refresh.
#[derive(Debug, Clone)]
pub struct JwtResponse {
    pub session_jwt: String,
    pub refresh_jwt: String,
    pub refresh_expires_secs: i64,
    pub user: crate::user::User,
    pub first_seen: bool,
}
