//! Reading, refreshing, importing and forgetting provider tokens.
//!
//! A read is one store read and one or two AEAD opens. A refresh happens when the caller forces
//! it, or when the stored access token expires within the skew and a refresh token is stored:
//! - one refresh at a time per (project, user, provider): later callers wait, then find the row's
//!   version changed and answer the refreshed tokens without calling the provider again;
//! - the new tokens are committed (compare-and-swap on the version) before anyone is answered;
//! - a failed refresh leaves the row exactly as it was, except `invalid_grant`, which flags the
//!   row so that later reads fail fast without calling the provider.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::clock::SharedClock;
use crate::error::{Error, ProviderFailure, Result};
use crate::ids::{ProjectId, ProviderName, UserId};
use crate::limits::{MAX_FIELD_LEN, MAX_SCOPES, MAX_TOKEN_LEN};
use crate::provider::{OAuthClient, ProviderService, TokenEndpoint, TokenGrant};
use crate::secrets::{token_aad, Cipher, TokenField};
use crate::store::{SharedStore, TokenLookup};
use crate::user::{UserRef, UserService};
use crate::vault::model::{ProviderToken, SealedToken, StoreTokenRequest};
use crate::vault::single_flight::RefreshLocks;

/// What the caller asked for on a read.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    pub with_refresh_token: bool,
    pub force_refresh: bool,
}

/// Vault tuning.
#[derive(Debug, Clone, Copy)]
pub struct VaultSettings {
    /// A token expiring within this margin is refreshed on read.
    pub refresh_skew: Duration,
}

impl Default for VaultSettings {
    fn default() -> Self {
        VaultSettings { refresh_skew: Duration::from_secs(60) }
    }
}

#[derive(Clone)]
pub struct VaultService {
    store: SharedStore,
    cipher: Arc<dyn Cipher>,
    users: UserService,
    providers: ProviderService,
    oauth: Arc<dyn OAuthClient>,
    clock: SharedClock,
    locks: Arc<RefreshLocks>,
    settings: VaultSettings,
}

impl VaultService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: SharedStore,
        cipher: Arc<dyn Cipher>,
        users: UserService,
        providers: ProviderService,
        oauth: Arc<dyn OAuthClient>,
        clock: SharedClock,
        settings: VaultSettings,
    ) -> Self {
        Self { store, cipher, users, providers, oauth, clock, locks: Arc::default(), settings }
    }

    /// The token of `user` for `provider`, refreshed first when forced or about to expire.
    pub async fn get(
        &self,
        project: &ProjectId,
        user: &UserRef,
        provider: &ProviderName,
        opts: ReadOptions,
    ) -> Result<ProviderToken> {
        let (user_id, sealed) = self.lookup(project, user, provider).await?;
        if sealed.reauth_required {
            return Err(Error::ProviderReauthRequired(provider.to_string()));
        }
        let skew = i64::try_from(self.settings.refresh_skew.as_secs()).unwrap_or(i64::MAX);
        let expiring =
            sealed.expiration != 0 && sealed.expiration <= self.clock.now_secs().saturating_add(skew);
        if opts.force_refresh {
            if sealed.refresh_token.is_none() {
                return Err(Error::NoRefreshToken(provider.to_string()));
            }
            return self.refresh(project, &user_id, sealed, opts.with_refresh_token, true).await;
        }
        if expiring && sealed.refresh_token.is_some() {
            return self.refresh(project, &user_id, sealed, opts.with_refresh_token, false).await;
        }
        self.open(project, &user_id, sealed, opts.with_refresh_token).await
    }

    async fn lookup(
        &self,
        project: &ProjectId,
        user: &UserRef,
        provider: &ProviderName,
    ) -> Result<(UserId, SealedToken)> {
        let mut lookup = self.store.get_token(project, user, provider).await?;
        if let (TokenLookup::NoUser, UserRef::LoginId(l)) = (&lookup, user) {
            if let Ok(id) = UserId::parse(l.as_str()) {
                lookup = self.store.get_token(project, &UserRef::UserId(id), provider).await?;
            }
        }
        match lookup {
            TokenLookup::Found { user_id, token } => Ok((user_id, token)),
            TokenLookup::NoToken => Err(Error::ProviderTokenNotFound(provider.to_string())),
            TokenLookup::NoUser => Err(Error::UserNotFound),
        }
    }

    /// Refreshes under the single-flight lock. `seen` is the row the caller read before waiting.
    async fn refresh(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        seen: SealedToken,
        with_refresh: bool,
        forced: bool,
    ) -> Result<ProviderToken> {
        let provider = seen.provider.clone();
        // Without a provider configuration nothing can be refreshed: an expiring token is handed
        // out as stored (its expiration says so); a forced refresh is an error.
        let config = match self.store.get_provider(project, &provider).await? {
            Some(c) => c,
            None if forced => return Err(Error::ProviderNotConfigured(provider.to_string())),
            None => {
                tracing::warn!(%provider, "token expiring but provider not configured; returning it as stored");
                return self.open(project, user_id, seen, with_refresh).await;
            }
        };
        let lock = self.locks.lock_for(project, user_id, &provider);
        let _guard = lock.lock().await;
        // Other replicas on the same database: their refreshes queue here.
        let _shared = self.store.refresh_lock(project, user_id, &provider).await?;

        let (_, current) = self.lookup(project, &UserRef::UserId(user_id.clone()), &provider).await?;
        if current.version != seen.version {
            // Someone refreshed (or stored new tokens) while we waited: theirs is as fresh as a
            // refresh of ours would be, and the refresh token we saw may already be rotated away.
            if current.reauth_required {
                return Err(Error::ProviderReauthRequired(provider.to_string()));
            }
            return self.open(project, user_id, current, with_refresh).await;
        }
        let Some(sealed_refresh) = &current.refresh_token else {
            return Err(Error::NoRefreshToken(provider.to_string()));
        };
        let refresh_token =
            self.open_secret(project, user_id, &provider, TokenField::Refresh, sealed_refresh).await?;
        let client_secret = self.providers.open_client_secret(project, &config).await?;
        let endpoint = TokenEndpoint {
            project,
            url: &config.token_endpoint,
            client_id: &config.client_id,
            client_secret: client_secret.as_ref(),
            auth_method: config.auth_method,
        };
        let started = std::time::Instant::now();
        let grant = match self.oauth.refresh(&endpoint, &refresh_token).await {
            Ok(grant) => grant,
            Err(ProviderFailure::InvalidGrant) => {
                self.store.flag_reauth_required(project, user_id, &provider, current.version).await?;
                tracing::warn!(%provider, %user_id, "provider refused the refresh token; flagged for re-authentication");
                return Err(Error::ProviderReauthRequired(provider.to_string()));
            }
            Err(failure) => {
                tracing::warn!(%provider, %user_id, %failure, "token refresh failed; stored tokens unchanged");
                return Err(Error::Provider { provider: provider.to_string(), failure });
            }
        };
        tracing::info!(%provider, %user_id, elapsed_ms = started.elapsed().as_millis() as u64, "token refreshed");
        let refreshed = self.seal_refreshed(project, user_id, &current, &grant).await?;
        if !self.store.replace_refreshed_token(project, user_id, &refreshed, current.version).await? {
            // Only a concurrent writer outside this process's lock (an import) can get here.
            return Err(Error::Internal("token row changed during refresh".into()));
        }
        Ok(ProviderToken {
            provider,
            provider_user_id: current.provider_user_id,
            access_token: grant.access_token,
            refresh_token: if with_refresh { grant.refresh_token.or(Some(refresh_token)) } else { None },
            expiration: refreshed.expiration,
            scopes: refreshed.scopes,
        })
    }

    async fn seal_refreshed(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        current: &SealedToken,
        grant: &TokenGrant,
    ) -> Result<SealedToken> {
        let provider = &current.provider;
        let access_aad = token_aad(project, user_id, provider, TokenField::Access);
        let access_token =
            self.cipher.seal(project, grant.access_token.expose_secret().as_bytes(), &access_aad).await?;
        // A provider that does not rotate refresh tokens answers none: keep the stored one.
        let refresh_token = match &grant.refresh_token {
            Some(rt) => {
                let aad = token_aad(project, user_id, provider, TokenField::Refresh);
                Some(self.cipher.seal(project, rt.expose_secret().as_bytes(), &aad).await?)
            }
            None => current.refresh_token.clone(),
        };
        let now = self.clock.now_ms();
        let expiration = match grant.expires_in {
            Some(secs) if secs > 0 => now.div_euclid(1000).saturating_add(secs),
            _ => 0,
        };
        let scopes = match &grant.scope {
            Some(s) if !s.trim().is_empty() => s.split_whitespace().map(str::to_owned).collect(),
            _ => current.scopes.clone(),
        };
        Ok(SealedToken {
            provider: provider.clone(),
            provider_user_id: current.provider_user_id.clone(),
            access_token,
            refresh_token,
            expiration,
            scopes,
            updated_ms: now,
            version: current.version,
            reauth_required: false,
        })
    }

    /// Stores or replaces the tokens of `user` for a provider.
    pub async fn put(&self, project: &ProjectId, user: &UserRef, req: StoreTokenRequest) -> Result<()> {
        validate_request(&req)?;
        let owner = self.users.load(project, user).await?;
        let sealed = self.seal(project, &owner.user_id, req).await?;
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

    async fn seal(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        req: StoreTokenRequest,
    ) -> Result<SealedToken> {
        let access_aad = token_aad(project, user_id, &req.provider, TokenField::Access);
        let access_token =
            self.cipher.seal(project, req.access_token.expose_secret().as_bytes(), &access_aad).await?;
        let refresh_token = match &req.refresh_token {
            Some(rt) => {
                let aad = token_aad(project, user_id, &req.provider, TokenField::Refresh);
                Some(self.cipher.seal(project, rt.expose_secret().as_bytes(), &aad).await?)
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
            version: 0,
            reauth_required: false,
        })
    }

    async fn open_secret(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        provider: &ProviderName,
        field: TokenField,
        ciphertext: &[u8],
    ) -> Result<SecretString> {
        let aad = token_aad(project, user_id, provider, field);
        let bytes = self.cipher.open(project, ciphertext, &aad).await?;
        std::str::from_utf8(&bytes)
            .map(|s| SecretString::from(s.to_owned()))
            .map_err(|_| Error::Decrypt("token is not UTF-8"))
    }

    async fn open(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        sealed: SealedToken,
        with_refresh: bool,
    ) -> Result<ProviderToken> {
        let provider = sealed.provider;
        let access_token =
            self.open_secret(project, user_id, &provider, TokenField::Access, &sealed.access_token).await?;
        let refresh_token = match (&sealed.refresh_token, with_refresh) {
            (Some(ct), true) => {
                Some(self.open_secret(project, user_id, &provider, TokenField::Refresh, ct).await?)
            }
            _ => None,
        };
        Ok(ProviderToken {
            provider,
            provider_user_id: sealed.provider_user_id,
            access_token,
            refresh_token,
            expiration: sealed.expiration,
            scopes: sealed.scopes,
        })
    }
}

fn validate_request(req: &StoreTokenRequest) -> Result<()> {
    let access = req.access_token.expose_secret();
    if access.is_empty() {
        return Err(Error::MissingArgument("accessToken"));
    }
    if access.len() > MAX_TOKEN_LEN {
        return Err(Error::invalid("accessToken", format!("must be at most {MAX_TOKEN_LEN} bytes")));
    }
    if let Some(rt) = &req.refresh_token {
        if rt.expose_secret().len() > MAX_TOKEN_LEN {
            return Err(Error::invalid("refreshToken", format!("must be at most {MAX_TOKEN_LEN} bytes")));
        }
    }
    if req.provider_user_id.len() > MAX_FIELD_LEN {
        return Err(Error::invalid("providerUserId", format!("must be at most {MAX_FIELD_LEN} bytes")));
    }
    if req.expiration < 0 {
        return Err(Error::invalid("expiration", "must be Unix seconds, or 0 for none"));
    }
    if req.scopes.len() > MAX_SCOPES || req.scopes.iter().any(|s| s.is_empty() || s.len() > MAX_FIELD_LEN) {
        return Err(Error::invalid("scopes", format!("at most {MAX_SCOPES} non-empty scopes")));
    }
    Ok(())
}
