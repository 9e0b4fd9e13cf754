//! Vault records: what is stored (sealed) and what is handed out (opened).

use secrecy::SecretString;

use crate::error::Result;
use crate::ids::{ProviderName, UserId};
use crate::store::TokenLookup;

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

/// A user row left-joined with its token row for one provider, as a store reads it (every
/// token column is NULL when the user has no token for the provider).
#[derive(Default)]
pub struct JoinedTokenRow {
    pub user_id: String,
    pub provider_user_id: Option<String>,
    pub access_token: Option<Vec<u8>>,
    pub refresh_token: Option<Vec<u8>>,
    pub expiration: Option<i64>,
    pub scopes: Option<Vec<String>>,
    pub updated_ms: Option<i64>,
    pub version: Option<i64>,
    pub reauth_required: Option<bool>,
}

impl TokenLookup {
    /// What a token read found: no row means no such user; a row missing any column a token
    /// must have means the user has no token for `provider`. The refresh token is optional, and
    /// an unset re-authentication flag means "not required".
    pub fn from_joined_row(provider: &ProviderName, row: Option<JoinedTokenRow>) -> Result<TokenLookup> {
        let Some(row) = row else {
            return Ok(TokenLookup::NoUser);
        };
        let (
            Some(provider_user_id),
            Some(access_token),
            Some(expiration),
            Some(scopes),
            Some(updated_ms),
            Some(version),
        ) = (row.provider_user_id, row.access_token, row.expiration, row.scopes, row.updated_ms, row.version)
        else {
            return Ok(TokenLookup::NoToken);
        };
        Ok(TokenLookup::Found {
            user_id: UserId::parse(&row.user_id)?,
            token: SealedToken {
                provider: provider.clone(),
                provider_user_id,
                access_token,
                refresh_token: row.refresh_token,
                expiration,
                scopes,
                updated_ms,
                version,
                reauth_required: row.reauth_required.unwrap_or(false),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_row() -> JoinedTokenRow {
        JoinedTokenRow {
            user_id: "U1".into(),
            provider_user_id: Some("p1".into()),
            access_token: Some(vec![1]),
            refresh_token: None,
            expiration: Some(0),
            scopes: Some(vec!["openid".into()]),
            updated_ms: Some(5),
            version: Some(2),
            reauth_required: None,
        }
    }

    #[test]
    fn a_joined_row_tells_no_user_from_no_token() {
        let google = ProviderName::parse("google").unwrap();
        assert!(matches!(TokenLookup::from_joined_row(&google, None), Ok(TokenLookup::NoUser)));
        let no_token = JoinedTokenRow { user_id: "U1".into(), ..Default::default() };
        assert!(matches!(TokenLookup::from_joined_row(&google, Some(no_token)), Ok(TokenLookup::NoToken)));
        let partial = JoinedTokenRow { version: None, ..full_row() };
        assert!(matches!(TokenLookup::from_joined_row(&google, Some(partial)), Ok(TokenLookup::NoToken)));
        match TokenLookup::from_joined_row(&google, Some(full_row())) {
            Ok(TokenLookup::Found { user_id, token }) => {
                assert_eq!(user_id.as_str(), "U1");
                assert_eq!((token.version, token.refresh_token, token.reauth_required), (2, None, false));
                assert_eq!(token.provider, google);
            }
            other => panic!("{other:?}"),
        }
    }
}
