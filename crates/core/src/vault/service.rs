//! Reading, importing and forgetting provider tokens.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, ProviderName, UserId};
use crate::limits::{MAX_FIELD_LEN, MAX_SCOPES, MAX_TOKEN_LEN};
use crate::store::{SharedStore, TokenLookup};
use crate::user::{UserRef, UserService};
use crate::vault::model::{
    token_aad, ProviderToken, SealedToken, StoreTokenRequest, TokenCipher, TokenField,
};

#[derive(Clone)]
pub struct VaultService {
    store: SharedStore,
    cipher: Arc<dyn TokenCipher>,
    users: UserService,
    clock: SharedClock,
}

/// What the caller asked for on a read.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    pub with_refresh_token: bool,
    pub force_refresh: bool,
}

impl VaultService {
    pub fn new(
        store: SharedStore,
        cipher: Arc<dyn TokenCipher>,
        users: UserService,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            cipher,
            users,
            clock,
        }
    }

    /// The stored token of `user` for `provider`. This is a hot path: one store read by login id
    /// (a second one only when the login id turns out to be a user id), then one or two AEAD
    /// opens.
    pub async fn get(
        &self,
        project: &ProjectId,
        user: &UserRef,
        provider: &ProviderName,
        opts: ReadOptions,
    ) -> Result<ProviderToken> {
        let mut lookup = self.store.get_token(project, user, provider).await?;
        if let (TokenLookup::NoUser, UserRef::LoginId(l)) = (&lookup, user) {
            if let Ok(id) = UserId::parse(l.as_str()) {
                lookup = self
                    .store
                    .get_token(project, &UserRef::UserId(id), provider)
                    .await?;
            }
        }
        let (user_id, sealed) = match lookup {
            TokenLookup::Found { user_id, token } => (user_id, token),
            TokenLookup::NoToken => return Err(Error::ProviderTokenNotFound(provider.to_string())),
            TokenLookup::NoUser => return Err(Error::UserNotFound),
        };
        // Refreshing with the provider arrives with provider configuration; until then a token
        // is returned as stored, expired or not.
        let _ = opts.force_refresh;
        self.open(project, &user_id, sealed, opts.with_refresh_token)
    }

    /// Stores or replaces the tokens of `user` for a provider.
    pub async fn put(&self, project: &ProjectId, user: &UserRef, req: StoreTokenRequest) -> Result<()> {
        validate_request(&req)?;
        let owner = self.users.load(project, user).await?;
        let sealed = self.seal(project, &owner.user_id, req)?;
        if self.store.put_token(project, &owner.user_id, &sealed).await? {
            Ok(())
        } else {
            // The user was deleted between the load and the write.
            Err(Error::UserNotFound)
        }
    }

    /// Forgets the tokens of `user` for a provider. Answers whether there were any.
    pub async fn delete(&self, project: &ProjectId, user: &UserRef, provider: &ProviderName) -> Result<bool> {
        let owner = self.users.load(project, user).await?;
        self.store.delete_token(project, &owner.user_id, provider).await
    }

    fn seal(&self, project: &ProjectId, user_id: &UserId, req: StoreTokenRequest) -> Result<SealedToken> {
        let access_aad = token_aad(project, user_id, &req.provider, TokenField::Access);
        let access_token = self
            .cipher
            .seal(req.access_token.expose_secret().as_bytes(), &access_aad)?;
        let refresh_token = match &req.refresh_token {
            Some(rt) => {
                let aad = token_aad(project, user_id, &req.provider, TokenField::Refresh);
                Some(self.cipher.seal(rt.expose_secret().as_bytes(), &aad)?)
            }
            None => None,
        };
        Ok(SealedToken {
            provider: req.provider,
            provider_user_id: req.provider_user_id,
            access_token,
            refresh_token,
            expiration: req.expiration,
            scopes: req.scopes,
            updated_ms: self.clock.now_ms(),
        })
    }

    fn open(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        sealed: SealedToken,
        with_refresh: bool,
    ) -> Result<ProviderToken> {
        let aad = token_aad(project, user_id, &sealed.provider, TokenField::Access);
        let access_token = secret_from_bytes(self.cipher.open(&sealed.access_token, &aad)?)?;
        let refresh_token = match (&sealed.refresh_token, with_refresh) {
            (Some(ct), true) => {
                let aad = token_aad(project, user_id, &sealed.provider, TokenField::Refresh);
                Some(secret_from_bytes(self.cipher.open(ct, &aad)?)?)
            }
            _ => None,
        };
        Ok(ProviderToken {
            provider: sealed.provider,
            provider_user_id: sealed.provider_user_id,
            access_token,
            refresh_token,
            expiration: sealed.expiration,
            scopes: sealed.scopes,
        })
    }
}

fn secret_from_bytes(bytes: zeroize::Zeroizing<Vec<u8>>) -> Result<SecretString> {
    std::str::from_utf8(&bytes)
        .map(|s| SecretString::from(s.to_owned()))
        .map_err(|_| Error::Decrypt("token is not UTF-8"))
}

fn validate_request(req: &StoreTokenRequest) -> Result<()> {
    let access = req.access_token.expose_secret();
    if access.is_empty() {
        return Err(Error::MissingArgument("accessToken"));
    }
    if access.len() > MAX_TOKEN_LEN {
        return Err(Error::invalid(
            "accessToken",
            format!("must be at most {MAX_TOKEN_LEN} bytes"),
        ));
    }
    if let Some(rt) = &req.refresh_token {
        if rt.expose_secret().len() > MAX_TOKEN_LEN {
            return Err(Error::invalid(
                "refreshToken",
                format!("must be at most {MAX_TOKEN_LEN} bytes"),
            ));
        }
    }
    if req.provider_user_id.len() > MAX_FIELD_LEN {
        return Err(Error::invalid(
            "providerUserId",
            format!("must be at most {MAX_FIELD_LEN} bytes"),
        ));
    }
    if req.expiration < 0 {
        return Err(Error::invalid(
            "expiration",
            "must be Unix seconds, or 0 for none",
        ));
    }
    if req.scopes.len() > MAX_SCOPES || req.scopes.iter().any(|s| s.is_empty() || s.len() > MAX_FIELD_LEN) {
        return Err(Error::invalid(
            "scopes",
            format!("at most {MAX_SCOPES} non-empty scopes"),
        ));
    }
    Ok(())
}
