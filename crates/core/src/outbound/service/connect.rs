//! Connect (consent, incremental scopes): a signed-in user sends the browser to the app's
//! provider and idvault's outbound callback stores the granted token for that user (or, at
//! tenant level, for the user's tenant).
//!
//! The pending connect is an OAuth state of the sign-in machinery: the state value is stored
//! hashed and single use, the PKCE verifier sealed, it expires, and it counts against the
//! project's bound of pending sign-ins. The scopes asked for are the requested ones (or the app's
//! defaults) together with every scope the owner already granted the app, so that a second
//! connect adds scopes instead of replacing a broader token. The browser only ever goes back to
//! a redirect URL the project or the app allows.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::{expires_at, text, validate_scopes, OutboundService};
use crate::auth::service::{
    has_code_param, ms, random_token, sha256, state_aad, with_query, without_query, CallbackParams,
};
use crate::auth::OAuthState;
use crate::error::{Error, Result};
use crate::ids::{generate_token_id, ProjectId};
use crate::limits::{MAX_OUTBOUND_TEXT_LEN, MAX_REDIRECT_URL_LEN, MAX_TOKENS_PER_OWNER};
use crate::outbound::{normalize_scopes, ConnectIntent, SealedOutboundToken, TokenOwner};
use crate::provider::address::{check_url, UrlKind, PROVIDER_UNUSABLE};
use crate::provider::{AppType, ProviderConfig, TokenEndpoint};
use crate::user::{User, UserRef, UserStatus};

/// Where the provider sends the browser back, and the bounds of pending states (the sign-in
/// settings).
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    /// `<public_url>/v1/outbound/oauth/callback`.
    pub callback_url: String,
    pub state_ttl: Duration,
    pub max_pending: u64,
}

/// A connect request of the signed-in user.
#[derive(Debug, Default)]
pub struct ConnectRequest {
    pub app_id: String,
    pub tenant_id: String,
    pub tenant_level: bool,
    /// Where to send the browser afterwards; "" for the app's default redirect URL (or the
    /// project's only allowed one).
    pub redirect_url: String,
    /// `None` or empty: the app's default scopes.
    pub scopes: Option<Vec<String>>,
    pub external_identifier: String,
}

/// How a connect callback ended, once its state was valid: where to send the browser, and the
/// error to report there (as a query parameter) if storing the token failed.
#[derive(Debug)]
pub struct ConnectOutcome {
    pub redirect_url: String,
    pub error: Option<Error>,
}

/// Parameters a connect sets itself; the app's `authorizationUrlParams` cannot override them.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

impl OutboundService {
    /// Starts a connect for `user` (already authenticated by a refresh JWT of `project`, and
    /// enabled): answers the provider's authorization URL.
    pub async fn connect(
        &self,
        project: &ProjectId,
        user: &User,
        req: ConnectRequest,
        settings: &ConnectSettings,
    ) -> Result<String> {
        if matches!(user.status, UserStatus::Disabled | UserStatus::Expired) {
            return Err(Error::UserDisabled(if user.status == UserStatus::Disabled {
                "disabled"
            } else {
                "expired"
            }));
        }
        let app = self.load_app(project, &req.app_id).await?;
        if app.app_type() == AppType::ApiKey {
            return Err(Error::invalid("appId", "is an API-key app: there is nothing to connect"));
        }
        let authorization_endpoint = app
            .authorization_endpoint
            .clone()
            .ok_or_else(|| Error::invalid("appId", "the app has no authorization URL"))?;
        // Browsers are sent there: checked again rather than trusted (a stored value may predate
        // the URL policy).
        check_url(&authorization_endpoint, UrlKind::Endpoint, self.oauth.allowed_hosts()).map_err(|why| {
            tracing::warn!(%project, %why, "stored authorization URL refused");
            Error::invalid("appId", PROVIDER_UNUSABLE)
        })?;
        text("tenantId", &req.tenant_id, MAX_OUTBOUND_TEXT_LEN)?;
        text("externalIdentifier", &req.external_identifier, MAX_OUTBOUND_TEXT_LEN)?;
        let owner = self.connect_owner(project, user, &req.tenant_id, req.tenant_level).await?;
        let redirect_url = self.connect_redirect(project, &app, &req.redirect_url).await?;

        let requested = match req.scopes.filter(|s| !s.is_empty()) {
            Some(s) => validate_scopes(s)?,
            None => normalize_scopes(app.scopes.clone()),
        };
        // Incremental consent: ask again for what the owner granted before, so that the new
        // token covers it too.
        let tenant_filter = match &owner {
            TokenOwner::User(_) => Some(req.tenant_id.as_str()),
            TokenOwner::Tenant(_) => None,
        };
        let held = self
            .store
            .list_outbound_tokens(project, &app.name, &owner, tenant_filter, MAX_TOKENS_PER_OWNER)
            .await?;
        let scopes: BTreeSet<String> = requested
            .into_iter()
            .chain(held.into_iter().filter(|t| !t.reauth_required).flat_map(|t| t.scopes))
            .collect();
        let scopes: Vec<String> = validate_scopes(scopes.into_iter().collect())?;

        let state = random_token(32);
        let verifier = random_token(32);
        let state_hash = sha256(&state);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let now = self.clock.now_ms();
        let record = OAuthState {
            state_hash,
            project_id: project.clone(),
            provider: app.name.clone(),
            redirect_url,
            code_verifier: self
                .cipher
                .seal(project, verifier.as_bytes(), &state_aad(project, &state_hash))
                .await?,
            nonce: String::new(),
            created_ms: now,
            expires_ms: now.saturating_add(ms(settings.state_ttl)),
            connect: Some(ConnectIntent {
                user_id: user.user_id.clone(),
                tenant_id: req.tenant_id,
                tenant_level: req.tenant_level,
                scopes: scopes.clone(),
                external_identifier: req.external_identifier,
            }),
        };
        if !self.store.insert_oauth_state(&record, settings.max_pending).await? {
            return Err(Error::TooManyRequests(
                "too many sign-ins and connects of this project are pending: retry when some have completed or expired",
            ));
        }

        let scope = scopes.join(" ");
        let settings_app = app.app.clone().unwrap_or_default();
        let prompt = settings_app.prompt.join(" ");
        // PKCE is always used: harmless where a provider ignores it, required by many (and by
        // OAuth 2.1); the app's `pkce` flag cannot turn it off.
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &app.client_id),
            ("redirect_uri", &settings.callback_url),
            ("scope", &scope),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        if !settings_app.access_type.is_empty() {
            params.push(("access_type", &settings_app.access_type));
        }
        if !prompt.is_empty() {
            params.push(("prompt", &prompt));
        }
        // The app's extra parameters, except those the connect sets itself (and `access_type` /
        // `prompt` when the app's own fields set them).
        let set_by_app_fields = |key: &str| {
            (key == "access_type" && !settings_app.access_type.is_empty())
                || (key == "prompt" && !prompt.is_empty())
        };
        for p in &settings_app.authorization_url_params {
            if !RESERVED_PARAMS.contains(&p.key.as_str()) && !set_by_app_fields(&p.key) {
                params.push((&p.key, &p.value));
            }
        }
        Ok(with_query(&authorization_endpoint, &params))
    }

    /// The owner of the token a connect stores: the user, or at tenant level the tenant. The user
    /// must belong to the tenant either way.
    async fn connect_owner(
        &self,
        project: &ProjectId,
        user: &User,
        tenant_id: &str,
        tenant_level: bool,
    ) -> Result<TokenOwner> {
        if tenant_level && tenant_id.is_empty() {
            return Err(Error::MissingArgument("tenantId"));
        }
        if !tenant_id.is_empty() {
            if self.store.get_tenant(project, tenant_id).await?.is_none() {
                return Err(Error::NotFound(format!("tenant '{tenant_id}'")));
            }
            if !user.tenants.iter().any(|t| t.tenant_id == tenant_id) {
                return Err(Error::invalid("tenantId", "the user is not a member of this tenant"));
            }
        }
        Ok(if tenant_level {
            TokenOwner::Tenant(tenant_id.to_owned())
        } else {
            TokenOwner::User(user.user_id.clone())
        })
    }

    /// The redirect URL of a connect: the requested one (or the app's default, or the project's
    /// only allowed one), which must be one of the project's allowed redirect URLs or the app's
    /// default redirect URL (compared without the query), or be on the app's callback domain.
    async fn connect_redirect(
        &self,
        project: &ProjectId,
        app: &ProviderConfig,
        requested: &str,
    ) -> Result<String> {
        if requested.len() > MAX_REDIRECT_URL_LEN {
            return Err(Error::invalid("redirectUrl", format!("longer than {MAX_REDIRECT_URL_LEN} bytes")));
        }
        let settings = self.store.get_auth_settings(project).await?;
        let app_settings = app.app.clone().unwrap_or_default();
        let url = if !requested.is_empty() {
            requested.to_owned()
        } else if !app_settings.default_redirect_url.is_empty() {
            app_settings.default_redirect_url.clone()
        } else {
            match settings.redirect_urls.as_slice() {
                [only] => only.clone(),
                _ => return Err(Error::MissingArgument("redirectUrl")),
            }
        };
        crate::provider::validate_url("redirectUrl", &url)?;
        let on_callback_domain = !app_settings.callback_domain.is_empty()
            && url::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase))
                == Some(app_settings.callback_domain.to_ascii_lowercase());
        let allowed = settings.redirect_urls.iter().any(|a| without_query(a) == without_query(&url))
            || (!app_settings.default_redirect_url.is_empty()
                && without_query(&app_settings.default_redirect_url) == without_query(&url))
            || on_callback_domain;
        if !allowed {
            return Err(Error::RedirectNotAllowed(url));
        }
        if has_code_param(&url) {
            return Err(Error::invalid("redirectUrl", "must not have a 'code' query parameter"));
        }
        Ok(url)
    }

    /// The provider's redirect back to `/v1/outbound/oauth/callback`. An unusable state is an
    /// `Err` (there is nowhere safe to redirect); once the state is valid, the outcome names the
    /// redirect URL and, if storing the token failed, why.
    pub async fn connect_callback(
        &self,
        params: CallbackParams,
        settings: &ConnectSettings,
    ) -> Result<ConnectOutcome> {
        let state =
            params.state.filter(|s| !s.is_empty()).ok_or(Error::InvalidOAuthState("missing state"))?;
        if state.len() > 128 {
            return Err(Error::InvalidOAuthState("unknown state"));
        }
        let record = self
            .store
            .take_oauth_state(&sha256(&state))
            .await?
            .ok_or(Error::InvalidOAuthState("unknown, tampered or already used state"))?;
        if record.expires_ms <= self.clock.now_ms() {
            return Err(Error::InvalidOAuthState("expired state"));
        }
        let Some(intent) = record.connect.clone() else {
            // A sign-in's state has its own callback; used here it is spent.
            return Err(Error::InvalidOAuthState("unknown, tampered or already used state"));
        };
        let error = self
            .complete_connect(&record, intent, params.code, params.error, params.error_description, settings)
            .await
            .err();
        if let Some(e) = &error {
            tracing::info!(project = %record.project_id, app = %record.provider, code = ?e.code(), "connect failed");
        }
        Ok(ConnectOutcome { redirect_url: record.redirect_url, error })
    }

    async fn complete_connect(
        &self,
        record: &OAuthState,
        intent: ConnectIntent,
        code: Option<String>,
        provider_error: Option<String>,
        provider_error_description: Option<String>,
        settings: &ConnectSettings,
    ) -> Result<()> {
        if let Some(error) = provider_error.filter(|e| !e.is_empty()) {
            let description = provider_error_description.unwrap_or_default();
            let shown: String = format!("{error}: {description}").chars().take(200).collect();
            return Err(Error::ProviderCallbackError(shown));
        }
        let code =
            code.filter(|c| !c.is_empty()).ok_or_else(|| Error::ProviderCallbackError("no code".into()))?;
        let project = &record.project_id;
        // The user may have been disabled, removed from the tenant or deleted meanwhile.
        let user = self.users.load(project, &UserRef::UserId(intent.user_id.clone())).await?;
        let owner = self.connect_owner(project, &user, &intent.tenant_id, intent.tenant_level).await?;
        if matches!(user.status, UserStatus::Disabled | UserStatus::Expired) {
            return Err(Error::UserDisabled(if user.status == UserStatus::Disabled {
                "disabled"
            } else {
                "expired"
            }));
        }
        let app = self.load_app(project, record.provider.as_str()).await?;
        let Some(token_url) = app.token_url() else {
            return Err(Error::ProviderNotConfigured(app.name.to_string()));
        };
        let verifier =
            self.cipher.open(project, &record.code_verifier, &state_aad(project, &record.state_hash)).await?;
        let verifier =
            std::str::from_utf8(&verifier).map_err(|_| Error::Decrypt("code verifier is not UTF-8"))?;
        let client_secret = self.providers.open_client_secret(project, &app).await?;
        let endpoint = TokenEndpoint {
            project,
            url: token_url,
            client_id: &app.client_id,
            client_secret: client_secret.as_ref(),
            auth_method: app.auth_method,
            extra_params: app.app.as_ref().map(|a| a.token_url_params.as_slice()).unwrap_or_default(),
        };
        let grant = self
            .oauth
            .exchange_code(&endpoint, &code, &settings.callback_url, verifier)
            .await
            .map_err(|failure| Error::Provider { provider: app.name.to_string(), failure })?;
        // The scopes the provider says it granted (it may grant fewer than asked); what was asked
        // when it does not say.
        let scopes = match grant.scope.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => normalize_scopes(s.split_whitespace().map(str::to_owned).collect()),
            None => intent.scopes.clone(),
        };
        let now = self.clock.now_ms();
        let token = SealedOutboundToken {
            id: generate_token_id(),
            app_id: app.name.clone(),
            tenant_id: match &owner {
                TokenOwner::User(_) => intent.tenant_id.clone(),
                TokenOwner::Tenant(_) => String::new(),
            },
            owner,
            scopes,
            access_token: None,
            refresh_token: None,
            access_token_type: "Bearer".to_owned(),
            expiration: expires_at(now, &grant),
            granted_by: intent.user_id.to_string(),
            external_identifier: intent.external_identifier,
            token_sub: String::new(),
            last_refresh_ms: 0,
            last_refresh_error: String::new(),
            created_ms: now,
            updated_ms: now,
            version: 1,
            reauth_required: false,
        };
        let refresh: Option<&SecretString> = grant.refresh_token.as_ref();
        self.seal_and_put(project, token, Some(&grant.access_token), refresh).await?;
        Ok(())
    }
}
