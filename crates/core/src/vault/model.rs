//! Vault records: what is stored (sealed) and what is handed out (opened).

use secrecy::SecretString;

use crate::error::Result;
use crate::ids::{ProjectId, ProviderName, UserId};

/// Authenticated encryption of one secret, bound to where it is stored. Implemented by
/// idvault-crypto; the domain only decides what the associated data is.
pub trait TokenCipher: Send + Sync + 'static {
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>>;
    /// Fails (without revealing anything) if the key is wrong or the associated data differs from
    /// the one used to seal.
    fn open(&self, ciphertext: &[u8], aad: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>>;
}

/// Which secret of a token row a ciphertext holds; part of the associated data so that an
/// access token cannot be swapped for a refresh token either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenField {
    Access,
    Refresh,
}

/// Associated data binding a ciphertext to its project, user, provider and field. Each part is
/// length-prefixed so that no two different tuples give the same bytes.
pub fn token_aad(project: &ProjectId, user: &UserId, provider: &ProviderName, field: TokenField) -> Vec<u8> {
    let field = match field {
        TokenField::Access => "access",
        TokenField::Refresh => "refresh",
    };
    let mut aad = Vec::with_capacity(96);
    aad.extend_from_slice(b"idvault/provider-token/v1");
    for part in [project.as_str(), user.as_str(), provider.as_str(), field] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// A token row as the store keeps it: secrets sealed, metadata in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedToken {
    pub provider: ProviderName,
    pub provider_user_id: String,
    pub access_token: Vec<u8>,
    pub refresh_token: Option<Vec<u8>>,
    /// Unix seconds; 0 when the provider gave no expiry.
    pub expiration: i64,
    pub scopes: Vec<String>,
    pub updated_ms: i64,
}

impl std::fmt::Debug for SealedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedToken")
            .field("provider", &self.provider)
            .field("expiration", &self.expiration)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// A token opened for the caller. Secrets stay in `SecretString` until serialized on the wire.
#[derive(Debug)]
pub struct ProviderToken {
    pub provider: ProviderName,
    pub provider_user_id: String,
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expiration: i64,
    pub scopes: Vec<String>,
}

/// An import of tokens (the `PUT /v1/mgmt/user/provider/token` extension).
#[derive(Debug)]
pub struct StoreTokenRequest {
    pub provider: ProviderName,
    pub provider_user_id: String,
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expiration: i64,
    pub scopes: Vec<String>,
}
