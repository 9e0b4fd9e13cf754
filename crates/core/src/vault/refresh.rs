//! The one refresh procedure of every stored token, whichever table holds it: the provider tokens
//! of `/v1/mgmt/user/provider/token` and the tokens of outbound apps. Each kind describes its row
//! through [`RefreshSlot`] (how to re-read it, open its refresh token, write a refreshed row with
//! compare-and-swap, flag it); everything else is here, once:
//! - one refresh at a time per stored token in this process ([`RefreshLocks`]) and across replicas
//!   sharing the database ([`crate::store::RefreshLock`]);
//! - per (project, provider), a bound on concurrent refresh calls and a circuit breaker
//!   ([`ProviderGuards`]), both applied before the cross-replica lock is taken, so that a hung or
//!   failing provider holds neither every lock connection nor anyone's time once it is known bad;
//! - a caller that waited finds the row's version changed and answers the row as now stored,
//!   without calling the provider again (its refresh token may be rotated away already);
//! - the provider is called with the app's client credentials; `invalid_grant` flags the row so
//!   that later reads fail fast; any other failure leaves the row exactly as it was;
//! - the refreshed tokens are committed before anyone is answered.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::error::{Error, ProviderFailure, Result};
use crate::ids::ProjectId;
use crate::provider::{OAuthClient, ProviderConfig, ProviderService, TokenEndpoint, TokenGrant};
use crate::store::{RefreshKey, SharedStore};
use crate::vault::provider_guard::{BreakerReport, ProviderGuardSettings, ProviderGuards};
use crate::vault::single_flight::RefreshLocks;

/// Refresh attempts by `provider` (the configured provider or app name) and `outcome`:
/// `refreshed`, `invalid_grant` (flagged for re-consent), `provider_error`, `meanwhile` (another
/// caller refreshed while this one waited) or `reauth_required` (the same, and it was flagged).
pub const REFRESHES: &str = "idvault_token_refreshes_total";
/// Callers that found a refresh of the same token in flight and waited for it, by `provider`.
pub const REFRESH_WAITS: &str = "idvault_token_refresh_waits_total";
/// Callers waiting for an in-flight refresh now.
pub const REFRESH_WAITING: &str = "idvault_token_refresh_waiting";
/// Stored tokens flagged as needing re-consent (the provider refused their refresh token).
pub const FLAGGED_REAUTH: &str = "idvault_tokens_flagged_reauth_total";

/// Labels are the provider's configured name (an operator's choice, never user data).
fn count_refresh(provider: &str, outcome: &'static str) {
    metrics::counter!(REFRESHES, "provider" => provider.to_owned(), "outcome" => outcome).increment(1);
}

struct DecrementOnDrop(metrics::Gauge);

impl Drop for DecrementOnDrop {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// What the refresh procedure reads from a stored row.
pub struct SlotState<'a> {
    pub version: i64,
    pub reauth_required: bool,
    pub refresh_token: Option<&'a [u8]>,
}

/// One stored token, as the refresh procedure sees it.
#[async_trait]
pub trait RefreshSlot: Send + Sync {
    type Row: Send + Sync;
    fn key(&self) -> RefreshKey;
    fn state(row: &Self::Row) -> SlotState<'_>;
    /// The row as stored now.
    async fn reload(&self) -> Result<Self::Row>;
    async fn open_refresh_token(&self, current: &Self::Row, sealed: &[u8]) -> Result<SecretString>;
    /// Seals `grant` into the row and writes it if the row's version is still `current`'s.
    /// Answers the row written, or `None` if the version moved.
    async fn commit(&self, current: &Self::Row, grant: &TokenGrant) -> Result<Option<Self::Row>>;
    /// Marks the row as refused by the provider, if its version is still `current`'s.
    async fn flag_reauth(&self, current: &Self::Row) -> Result<()>;
}

/// The outcome of [`Refresher::refresh`].
pub enum Refreshed<R> {
    /// This call refreshed: the row written, the provider's answer (secrets in clear) and the
    /// refresh token used (to answer when the provider did not rotate it).
    Fresh { row: R, grant: TokenGrant, used_refresh_token: SecretString },
    /// Another caller wrote the row while this one waited: the row as stored now.
    Meanwhile(R),
}

/// The shared refresh machinery. Cheap to clone; clones share their locks and provider guards.
#[derive(Clone)]
pub struct Refresher {
    store: SharedStore,
    providers: ProviderService,
    oauth: Arc<dyn OAuthClient>,
    locks: Arc<RefreshLocks>,
    guards: Arc<ProviderGuards>,
}

impl Refresher {
    pub fn new(
        store: SharedStore,
        providers: ProviderService,
        oauth: Arc<dyn OAuthClient>,
        guard_settings: ProviderGuardSettings,
    ) -> Self {
        Self {
            store,
            providers,
            oauth,
            locks: Arc::default(),
            guards: Arc::new(ProviderGuards::new(guard_settings)),
        }
    }

    /// The providers whose circuit breaker is open or half-open in this process.
    pub fn provider_breakers(&self) -> Vec<BreakerReport> {
        self.guards.report()
    }

    /// Refreshes the row of `slot` with `config`'s client, unless it changed since the caller
    /// read it at `seen_version`.
    pub async fn refresh<S: RefreshSlot>(
        &self,
        project: &ProjectId,
        config: &ProviderConfig,
        seen_version: i64,
        slot: &S,
    ) -> Result<Refreshed<S::Row>> {
        let key = slot.key();
        let name = config.name.as_str();
        let lock = self.locks.lock_for(project, &key);
        let _guard = match lock.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Another caller is refreshing this token: wait for it (single flight).
                metrics::counter!(REFRESH_WAITS, "provider" => name.to_owned()).increment(1);
                let waiting = metrics::gauge!(REFRESH_WAITING);
                waiting.increment(1.0);
                let _waiting = DecrementOnDrop(waiting);
                lock.lock().await
            }
        };
        // Before the database lock: an open breaker answers at once, and waiting for one of the
        // provider's slots holds no lock connection.
        let Some(url) = config.token_url() else {
            return Err(Error::ProviderNotConfigured(name.to_owned()));
        };
        let pass = self.guards.enter(project, &config.name, url).await?;
        // Other replicas on the same database: their refreshes queue here.
        let _shared = self.store.refresh_lock_for(project, &key).await?;

        let current = slot.reload().await?;
        let state = S::state(&current);
        if state.version != seen_version {
            // Someone refreshed (or stored new tokens) while we waited: theirs is as fresh as a
            // refresh of ours would be, and the refresh token we saw may already be rotated away.
            if state.reauth_required {
                count_refresh(name, "reauth_required");
                return Err(Error::ProviderReauthRequired(name.to_owned()));
            }
            count_refresh(name, "meanwhile");
            return Ok(Refreshed::Meanwhile(current));
        }
        let Some(sealed_refresh) = state.refresh_token else {
            return Err(Error::NoRefreshToken(name.to_owned()));
        };
        let refresh_token = slot.open_refresh_token(&current, sealed_refresh).await?;
        let started = std::time::Instant::now();
        let outcome = self.call(project, config, &refresh_token).await?;
        pass.record(&outcome);
        let grant = match outcome {
            Ok(grant) => grant,
            Err(ProviderFailure::InvalidGrant) => {
                slot.flag_reauth(&current).await?;
                count_refresh(name, "invalid_grant");
                metrics::counter!(FLAGGED_REAUTH, "provider" => name.to_owned()).increment(1);
                tracing::warn!(
                    provider = name,
                    ?key,
                    "provider refused the refresh token; flagged for re-authentication"
                );
                return Err(Error::ProviderReauthRequired(name.to_owned()));
            }
            Err(failure) => {
                count_refresh(name, "provider_error");
                tracing::warn!(provider = name, ?key, %failure, "token refresh failed; stored tokens unchanged");
                return Err(Error::Provider { provider: name.to_owned(), failure });
            }
        };
        tracing::info!(
            provider = name,
            ?key,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "token refreshed"
        );
        count_refresh(name, "refreshed");
        match slot.commit(&current, &grant).await? {
            Some(row) => Ok(Refreshed::Fresh { row, grant, used_refresh_token: refresh_token }),
            // Only a concurrent writer outside this process's lock (an import) can get here.
            None => Err(Error::Internal("token row changed during refresh".into())),
        }
    }

    /// One refresh-token grant at `config`'s token endpoint, nothing stored: the check of an
    /// upload with `verifyRefresh`, under the same provider guard as refreshes. The outer error
    /// is ours (no token endpoint, an undecryptable client secret, the provider's breaker open
    /// or its slots busy), the inner one the provider's.
    pub async fn grant(
        &self,
        project: &ProjectId,
        config: &ProviderConfig,
        refresh_token: &SecretString,
    ) -> Result<std::result::Result<TokenGrant, ProviderFailure>> {
        let Some(url) = config.token_url() else {
            return Err(Error::ProviderNotConfigured(config.name.to_string()));
        };
        let pass = self.guards.enter(project, &config.name, url).await?;
        let outcome = self.call(project, config, refresh_token).await?;
        pass.record(&outcome);
        Ok(outcome)
    }

    /// The provider call itself, with the app's client credentials.
    async fn call(
        &self,
        project: &ProjectId,
        config: &ProviderConfig,
        refresh_token: &SecretString,
    ) -> Result<std::result::Result<TokenGrant, ProviderFailure>> {
        let Some(url) = config.token_url() else {
            return Err(Error::ProviderNotConfigured(config.name.to_string()));
        };
        let client_secret = self.providers.open_client_secret(project, config).await?;
        let endpoint = TokenEndpoint {
            project,
            url,
            client_id: &config.client_id,
            client_secret: client_secret.as_ref(),
            auth_method: config.auth_method,
            extra_params: config.app.as_ref().map(|a| a.token_url_params.as_slice()).unwrap_or_default(),
        };
        Ok(self.oauth.refresh(&endpoint, refresh_token).await)
    }
}
