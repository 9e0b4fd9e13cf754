//! The seam to idvault-crypto: sealing and opening secrets at rest (provider tokens, client
//! secrets), and the associated data that binds each ciphertext to where it is stored.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{ProjectId, ProviderName, UserId};

/// Authenticated encryption of secrets under a project's data key. Implemented by
/// idvault-crypto. Async because a project's data key may have to be loaded (then it is cached).
#[async_trait]
pub trait Cipher: Send + Sync + 'static {
    async fn seal(&self, project: &ProjectId, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>>;
    /// Fails with `Error::Decrypt` (revealing nothing) if the key is wrong or the associated data
    /// differs from the one used to seal.
    async fn open(
        &self,
        project: &ProjectId,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>>;

    /// A synchronous sealer bound to the project's current data key, for sealing many values on
    /// blocking threads in parallel (batch imports). `None` when this cipher has none: the caller
    /// then seals one value at a time through [`Cipher::seal`].
    async fn sealer(&self, _project: &ProjectId) -> Result<Option<Arc<dyn Sealer>>> {
        Ok(None)
    }
}

/// Seals with one key, without awaiting anything: cheap to call from many threads at once.
pub trait Sealer: Send + Sync + 'static {
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>>;
}

/// Which secret of a token row a ciphertext holds; part of the associated data so that an
/// access token cannot be swapped for a refresh token either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenField {
    Access,
    Refresh,
}

fn aad(label: &[u8], parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(label);
    for part in parts {
        // Length-prefixed, so that no two different tuples give the same bytes.
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Binds a token ciphertext to its project, user, provider and field.
pub fn token_aad(project: &ProjectId, user: &UserId, provider: &ProviderName, field: TokenField) -> Vec<u8> {
    let field = match field {
        TokenField::Access => "access",
        TokenField::Refresh => "refresh",
    };
    aad(b"idvault/provider-token/v1", &[project.as_str(), user.as_str(), provider.as_str(), field])
}

/// Binds an outbound-app token ciphertext (access token or API key, refresh token) to its
/// project, app, owner (`user` or `tenant`, and its id), the tenant a user token is for ("" for
/// none) and field. Not to the token id: an upload with the same scope set replaces the secrets
/// of a token in place, and a batch import seals before ids exist.
pub fn outbound_token_aad(
    project: &ProjectId,
    app: &ProviderName,
    owner_kind: &str,
    owner_id: &str,
    tenant: &str,
    field: TokenField,
) -> Vec<u8> {
    let field = match field {
        TokenField::Access => "access",
        TokenField::Refresh => "refresh",
    };
    aad(b"idvault/outbound-token/v1", &[project.as_str(), app.as_str(), owner_kind, owner_id, tenant, field])
}

/// Binds a client-secret ciphertext to its project and provider.
pub fn client_secret_aad(project: &ProjectId, provider: &ProviderName) -> Vec<u8> {
    aad(b"idvault/client-secret/v1", &[project.as_str(), provider.as_str()])
}

/// Binds a wrapped data key to its project and version.
pub fn data_key_aad(project: &ProjectId, version: u32) -> Vec<u8> {
    aad(b"idvault/data-key/v1", &[project.as_str(), &version.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_parts_cannot_be_shifted() {
        let p = ProjectId::parse("Pab").unwrap();
        let q = ProjectId::parse("Pa").unwrap();
        let u1 = UserId::parse("cd").unwrap();
        let u2 = UserId::parse("bcd").unwrap();
        let g = ProviderName::parse("google").unwrap();
        assert_ne!(token_aad(&p, &u1, &g, TokenField::Access), token_aad(&q, &u2, &g, TokenField::Access));
        assert_ne!(token_aad(&p, &u1, &g, TokenField::Access), token_aad(&p, &u1, &g, TokenField::Refresh));
    }
}
