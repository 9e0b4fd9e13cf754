//! Vault records: what is stored (sealed) and what is handed out (opened).

use secrecy::SecretString;

use crate::ids::ProviderName;

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
    /// Bumped by the store on every write; the compare-and-swap token of refreshes.
    pub version: i64,
    /// The provider refused the refresh token; the user must sign in again.
    pub reauth_required: bool,
}

impl std::fmt::Debug for SealedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedToken")
            .field("provider", &self.provider)
            .field("expiration", &self.expiration)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("version", &self.version)
            .field("reauth_required", &self.reauth_required)
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
