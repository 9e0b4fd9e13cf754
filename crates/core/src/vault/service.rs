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

use crate::audit::{actions, AuditRecord};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, ProviderName, UserId};
use crate::limits::{MAX_FIELD_LEN, MAX_SCOPES, MAX_TOKEN_LEN};
use crate::provider::{OAuthClient, ProviderService, TokenGrant};
use crate::secrets::{token_aad, Cipher, Sealer, TokenField};
use crate::store::{RefreshKey, SharedStore, TokenLookup};
use crate::user::{UserRef, UserService};
use crate::vault::model::{ProviderToken, SealedToken, StoreTokenRequest};
use crate::vault::provider_guard::ProviderGuardSettings;
use crate::vault::refresh::{RefreshSlot, Refreshed, Refresher, SlotState};

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
    /// Concurrency bound and circuit breaker of refresh calls, per project and provider.
    pub provider_guard: ProviderGuardSettings,
}

impl Default for VaultSettings {
    fn default() -> Self {
        VaultSettings {
            refresh_skew: Duration::from_secs(60),
            provider_guard: ProviderGuardSettings::default(),
        }
    }
}

#[derive(Clone)]
pub struct VaultService {
    store: SharedStore,
    cipher: Arc<dyn Cipher>,
    users: UserService,
    clock: SharedClock,
    refresher: Refresher,
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
        let refresher = Refresher::new(store.clone(), providers, oauth, settings.provider_guard);
        Self { store, cipher, users, clock, refresher, settings }
    }

    /// The token of `user` for `provider`, refreshed first when forced or about to expire. Every
    /// token handed out is audited (a refresh on the way gets a record of its own).
    pub async fn get(
        &self,
        project: &ProjectId,
        user: &UserRef,
        provider: &ProviderName,
        opts: ReadOptions,
    ) -> Result<ProviderToken> {
        let (user_id, sealed) = self.lookup(project, user, provider).await?;
        let token = self.get_found(project, &user_id, sealed, provider, opts).await?;
        // The user's tenants would cost a read on the hottest path: records of token reads carry
        // the user id and the login id the caller named, not the tenants.
        let mut record = AuditRecord::new(project, actions::PROVIDER_TOKEN_READ)
            .user(user_id.as_str())
            .data("provider", provider.as_str())
            .data("withRefreshToken", opts.with_refresh_token);
        if let UserRef::LoginId(login_id) = user {
            if login_id.as_str() != user_id.as_str() {
                record = record.login_ids(vec![login_id.as_str().to_owned()]);
            }
        }
        self.users.audit().record(record);
        Ok(token)
    }

    async fn get_found(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        sealed: SealedToken,
        provider: &ProviderName,
        opts: ReadOptions,
    ) -> Result<ProviderToken> {
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
            return self.refresh(project, user_id, sealed, opts.with_refresh_token, true).await;
        }
        if expiring && sealed.refresh_token.is_some() {
            return self.refresh(project, user_id, sealed, opts.with_refresh_token, false).await;
        }
        self.open(project, user_id, sealed, opts.with_refresh_token).await
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

    /// Refreshes through the shared machinery (`crate::vault::refresh`). `seen` is the row the
    /// caller read before waiting.
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
        let slot = ProviderTokenSlot { vault: self, project, user_id, provider: &provider };
        let outcome = self.refresher.refresh(project, &config, seen.version, &slot).await;
        // A forced refresh is audited whether or not it reached the provider (another caller's
        // refresh may have answered it); an automatic one only when this caller refreshed.
        let fresh = matches!(outcome, Ok(Refreshed::Fresh { .. }));
        if forced || fresh {
            let action = if forced {
                actions::PROVIDER_TOKEN_FORCED_REFRESH
            } else {
                actions::PROVIDER_TOKEN_REFRESHED
            };
            let mut record = AuditRecord::new(project, action)
                .user(user_id.as_str())
                .data("provider", provider.as_str())
                .data("calledProvider", fresh);
            if let Err(e) = &outcome {
                record = record.kind("error").data("error", format!("{:?}", e.code()));
            }
            self.users.audit().record(record);
        }
        match outcome? {
            Refreshed::Meanwhile(current) => self.open(project, user_id, current, with_refresh).await,
            Refreshed::Fresh { row, grant, used_refresh_token } => Ok(ProviderToken {
                provider,
                provider_user_id: row.provider_user_id,
                access_token: grant.access_token,
                refresh_token: if with_refresh {
                    grant.refresh_token.or(Some(used_refresh_token))
                } else {
                    None
                },
                expiration: row.expiration,
                scopes: row.scopes,
            }),
        }
    }

    /// The providers whose refresh circuit breaker is open or half-open in this process (provider
    /// and outbound-app tokens share the breakers).
    pub fn provider_breakers(&self) -> Vec<crate::vault::BreakerReport> {
        self.refresher.provider_breakers()
    }

    /// The refresh machinery, shared with the outbound apps' tokens.
    pub fn refresher(&self) -> Refresher {
        self.refresher.clone()
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
            self.users.audit().record(
                crate::user::service::user_record(project, actions::PROVIDER_TOKEN_UPLOADED, &owner)
                    .data("provider", sealed.provider.as_str())
                    .data("withRefreshToken", sealed.refresh_token.is_some()),
            );
            Ok(())
        } else {
            // The user was deleted between the load and the write.
            Err(Error::UserNotFound)
        }
    }

    /// Forgets the tokens of `user` for a provider. Answers whether there were any.
    pub async fn delete(&self, project: &ProjectId, user: &UserRef, provider: &ProviderName) -> Result<bool> {
        let owner = self.users.load(project, user).await?;
        let deleted = self.store.delete_token(project, &owner.user_id, provider).await?;
        if deleted {
            self.users.audit().record(
                crate::user::service::user_record(project, actions::PROVIDER_TOKEN_DELETED, &owner)
                    .data("provider", provider.as_str()),
            );
        }
        Ok(deleted)
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

    /// [`Self::seal`] without awaiting: with one project's [`Sealer`], for sealing many tokens on
    /// several threads at once (a bulk import). The same associated data, the same row.
    pub(crate) fn seal_blocking(
        sealer: &dyn Sealer,
        project: &ProjectId,
        user_id: &UserId,
        req: StoreTokenRequest,
        now_ms: i64,
    ) -> Result<SealedToken> {
        let access_aad = token_aad(project, user_id, &req.provider, TokenField::Access);
        let access_token = sealer.seal(req.access_token.expose_secret().as_bytes(), &access_aad)?;
        let refresh_token = match &req.refresh_token {
            Some(rt) => {
                let aad = token_aad(project, user_id, &req.provider, TokenField::Refresh);
                Some(sealer.seal(rt.expose_secret().as_bytes(), &aad)?)
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
            updated_ms: now_ms,
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

/// The rules of a stored token (a `PUT` of tokens, or a token in a bulk import of users).
pub(crate) fn validate_request(req: &StoreTokenRequest) -> Result<()> {
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

/// A provider-token row, as the shared refresh machinery sees it.
struct ProviderTokenSlot<'a> {
    vault: &'a VaultService,
    project: &'a ProjectId,
    user_id: &'a UserId,
    provider: &'a ProviderName,
}

#[async_trait::async_trait]
impl RefreshSlot for ProviderTokenSlot<'_> {
    type Row = SealedToken;

    fn key(&self) -> RefreshKey {
        RefreshKey::ProviderToken { user_id: self.user_id.clone(), provider: self.provider.clone() }
    }

    fn state(row: &SealedToken) -> SlotState<'_> {
        SlotState {
            version: row.version,
            reauth_required: row.reauth_required,
            refresh_token: row.refresh_token.as_deref(),
        }
    }

    async fn reload(&self) -> Result<SealedToken> {
        let user = UserRef::UserId(self.user_id.clone());
        Ok(self.vault.lookup(self.project, &user, self.provider).await?.1)
    }

    async fn open_refresh_token(&self, _current: &SealedToken, sealed: &[u8]) -> Result<SecretString> {
        self.vault.open_secret(self.project, self.user_id, self.provider, TokenField::Refresh, sealed).await
    }

    async fn commit(&self, current: &SealedToken, grant: &TokenGrant) -> Result<Option<SealedToken>> {
        let refreshed = self.vault.seal_refreshed(self.project, self.user_id, current, grant).await?;
        let written = self
            .vault
            .store
            .replace_refreshed_token(self.project, self.user_id, &refreshed, current.version)
            .await?;
        Ok(written.then_some(refreshed))
    }

    async fn flag_reauth(&self, current: &SealedToken) -> Result<()> {
        self.vault
            .store
            .flag_reauth_required(self.project, self.user_id, self.provider, current.version)
            .await?;
        Ok(())
    }
}
