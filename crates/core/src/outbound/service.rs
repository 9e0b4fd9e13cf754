//! Outbound apps and their tokens: the rules of Descope's outbound application API.
//!
//! Apps are provider rows (`ProviderService::save` stores them, with the same SSRF policy and
//! secret sealing; this service records them as `OutboundAppCreated`, `OutboundAppModified` with
//! the fields changed by name, and `OutboundAppDeleted`); tokens are refreshed by the shared
//! machinery of `crate::vault::refresh`.

mod batch;
mod connect;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::audit::{actions, AuditRecord};
use crate::clock::SharedClock;
use crate::error::{Error, ProviderFailure, Result};
use crate::ids::{generate_app_id, generate_token_id, ProjectId, ProviderName, UserId};
use crate::limits::{
    MAX_APP_URL_PARAMS, MAX_FIELD_LEN, MAX_OUTBOUND_APPS, MAX_OUTBOUND_TEXT_LEN, MAX_SCOPES,
    MAX_TOKENS_PER_OWNER, MAX_TOKEN_LEN,
};
use crate::outbound::{
    normalize_scopes, select_token, OutboundToken, SealedOutboundToken, TokenOwner, RESERVED_APP_IDS,
};
use crate::provider::address::{check_url, host_for_log, UrlKind, PROVIDER_UNUSABLE};
use crate::provider::service::SetProvider;
use crate::provider::{
    validate_url, AppSettings, AppType, OAuthClient, ProviderConfig, ProviderService, TokenGrant, UrlParam,
};
use crate::secrets::{outbound_token_aad, Cipher, TokenField};
use crate::store::{RefreshKey, SharedStore};
use crate::user::{UserRef, UserService};
use crate::vault::refresh::{RefreshSlot, Refreshed, Refresher, SlotState};

pub(crate) use batch::{check as check_batch_token, seal_checked, Checked as CheckedToken};
pub use batch::{BatchFailure, BatchKind, BatchToken};
pub use connect::{ConnectOutcome, ConnectRequest, ConnectSettings};

/// The suffix of an OIDC discovery URL; what precedes it is the issuer.
const DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";

/// A create, create-by-template or update of an app. Empty strings mean "not given".
#[derive(Debug, Default)]
pub struct AppRequest {
    pub id: String,
    pub name: String,
    pub template_id: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub app_type: String,
    pub description: String,
    pub logo: String,
    pub discovery_url: String,
    pub authorization_url: String,
    pub authorization_url_params: Vec<UrlParam>,
    pub token_url: String,
    pub token_url_params: Vec<UrlParam>,
    pub revocation_url: String,
    /// `None`: the template's (or nothing).
    pub default_scopes: Option<Vec<String>>,
    pub default_redirect_url: String,
    pub callback_domain: String,
    pub pkce: bool,
    pub access_type: String,
    pub prompt: Vec<String>,
    pub use_dcr: bool,
    pub dcr_url: String,
}

/// An upload of one token (OAuth) or key (API key).
#[derive(Debug)]
pub struct UploadRequest {
    pub app_id: String,
    pub owner: TokenOwner,
    /// The tenant a user token is for ("" for none).
    pub tenant_id: String,
    pub access_token: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    /// Unix seconds; 0 for unknown.
    pub expiration: i64,
    pub access_token_type: String,
    pub scopes: Vec<String>,
    pub external_identifier: String,
    pub granted_by: String,
    pub verify_refresh: bool,
}

/// A fetch of a user's or tenant's token.
#[derive(Debug)]
pub struct FetchRequest {
    pub app_id: String,
    pub owner: TokenOwner,
    /// User tokens: only those of this tenant; `None`: any.
    pub tenant_id: Option<String>,
    /// `None`: the latest token; otherwise one whose scopes include these.
    pub scopes: Option<Vec<String>>,
    pub with_refresh_token: bool,
    pub force_refresh: bool,
}

/// An audit record about an outbound token of `owner` (a user, or a tenant) for `app`.
pub(crate) fn token_record(
    project: &ProjectId,
    action: &str,
    app: &str,
    owner: &TokenOwner,
    tenant: &str,
) -> AuditRecord {
    let mut record = AuditRecord::new(project, action).data("appId", app);
    match owner {
        TokenOwner::User(user) => record = record.user(user.as_str()),
        TokenOwner::Tenant(t) => record = record.tenants(vec![t.clone()]),
    }
    if !tenant.is_empty() && !record.tenants.iter().any(|t| t == tenant) {
        record.tenants.push(tenant.to_owned());
    }
    record
}

#[derive(Clone)]
pub struct OutboundService {
    store: SharedStore,
    cipher: Arc<dyn Cipher>,
    providers: ProviderService,
    users: UserService,
    oauth: Arc<dyn OAuthClient>,
    refresher: Refresher,
    clock: SharedClock,
    refresh_skew: Duration,
}

impl OutboundService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: SharedStore,
        cipher: Arc<dyn Cipher>,
        providers: ProviderService,
        users: UserService,
        oauth: Arc<dyn OAuthClient>,
        refresher: Refresher,
        clock: SharedClock,
        refresh_skew: Duration,
    ) -> Self {
        Self { store, cipher, providers, users, oauth, refresher, clock, refresh_skew }
    }

    // ---- apps ------------------------------------------------------------------------------

    /// Creates an app; `templateId` (a preset such as `google`) fills what is not given.
    pub async fn create_app(&self, project: &ProjectId, mut req: AppRequest) -> Result<ProviderConfig> {
        if req.id.is_empty() {
            req.id = generate_app_id();
        }
        let id = parse_app_id(&req.id)?;
        if RESERVED_APP_IDS.contains(&id.as_str()) {
            return Err(Error::invalid("id", "is reserved (create, update, delete, connect, bytemplate)"));
        }
        if req.name.is_empty() && !req.template_id.is_empty() {
            req.name = req.template_id.clone();
        }
        let existing = self.store.list_providers(project).await?;
        if existing.iter().any(|p| p.name == id) {
            return Err(Error::AlreadyExists(format!("outbound application '{id}'")));
        }
        if existing.len() >= MAX_OUTBOUND_APPS {
            return Err(Error::invalid("id", format!("a project has at most {MAX_OUTBOUND_APPS} apps")));
        }
        self.save(project, id, req, &existing).await
    }

    /// Replaces every field of an existing app with the request's ("override as is"), except
    /// the client secret, which an absent value keeps (while the endpoints and client id stay).
    pub async fn update_app(&self, project: &ProjectId, mut req: AppRequest) -> Result<ProviderConfig> {
        if req.id.is_empty() {
            return Err(Error::MissingArgument("id"));
        }
        let id = parse_app_id(&req.id)?;
        let existing = self.store.list_providers(project).await?;
        let Some(current) = existing.iter().find(|p| p.name == id) else {
            return Err(Error::OutboundAppNotFound(id.to_string()));
        };
        if req.template_id.is_empty() {
            req.template_id = current.app.as_ref().map(|a| a.template_id.clone()).unwrap_or_default();
        }
        self.save(project, id, req, &existing).await
    }

    async fn save(
        &self,
        project: &ProjectId,
        id: ProviderName,
        req: AppRequest,
        existing: &[ProviderConfig],
    ) -> Result<ProviderConfig> {
        let name = req.name.trim().to_owned();
        if name.is_empty() {
            return Err(Error::MissingArgument("name"));
        }
        text("name", &name, MAX_OUTBOUND_TEXT_LEN)?;
        if existing
            .iter()
            .any(|p| p.name != id && p.display_name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&name)))
        {
            return Err(Error::AlreadyExists(format!("outbound application named '{name}'")));
        }
        let app = self.validate_settings(project, &req)?;
        let issuer = req.discovery_url.strip_suffix(DISCOVERY_SUFFIX).map(str::to_owned);
        let set = SetProvider {
            name: id.into_string(),
            preset: Some(req.template_id).filter(|t| !t.is_empty()),
            client_id: req.client_id,
            client_secret: req.client_secret,
            issuer,
            authorization_endpoint: Some(req.authorization_url).filter(|u| !u.is_empty()),
            token_endpoint: Some(req.token_url).filter(|u| !u.is_empty()),
            userinfo_endpoint: None,
            jwks_uri: None,
            scopes: req.default_scopes,
            auth_method: None,
            app: Some((name, app)),
        };
        let (config, before) = self.providers.save(project, set).await?;
        let action =
            if before.is_some() { actions::OUTBOUND_APP_MODIFIED } else { actions::OUTBOUND_APP_CREATED };
        self.providers.audit().record(
            AuditRecord::new(project, action)
                .data("appId", config.name.as_str())
                .data("fields", crate::provider::service::changed_fields(before.as_ref(), &config)),
        );
        Ok(config)
    }

    /// Checks the app fields `ProviderService::set` does not know, and builds them. Every URL
    /// the server may fetch goes through the SSRF policy.
    fn validate_settings(&self, project: &ProjectId, req: &AppRequest) -> Result<AppSettings> {
        let allowed = self.oauth.allowed_hosts();
        for (field, url) in [
            ("discoveryUrl", &req.discovery_url),
            ("revocationUrl", &req.revocation_url),
            ("dcrUrl", &req.dcr_url),
        ] {
            if !url.is_empty() {
                check_url(url, UrlKind::Endpoint, allowed).map_err(|why| {
                    tracing::warn!(%project, field, host = %host_for_log(url), %why, "outbound app URL refused");
                    Error::invalid(field, PROVIDER_UNUSABLE)
                })?;
            }
        }
        for (field, url) in [("logo", &req.logo), ("defaultRedirectUrl", &req.default_redirect_url)] {
            if !url.is_empty() {
                validate_url(field, url)?;
            }
        }
        text("description", &req.description, MAX_FIELD_LEN)?;
        text("clientId", &req.client_id, MAX_FIELD_LEN)?;
        text("callbackDomain", &req.callback_domain, MAX_FIELD_LEN)?;
        if req.callback_domain.chars().any(char::is_whitespace) {
            return Err(Error::invalid("callbackDomain", "must be a host name"));
        }
        for (field, params) in [
            ("authorizationUrlParams", &req.authorization_url_params),
            ("tokenUrlParams", &req.token_url_params),
        ] {
            if params.len() > MAX_APP_URL_PARAMS
                || params.iter().any(|p| {
                    p.key.is_empty()
                        || p.key.len() > MAX_FIELD_LEN
                        || p.value.len() > MAX_FIELD_LEN
                        || p.key.chars().chain(p.value.chars()).any(char::is_control)
                })
            {
                return Err(Error::invalid(
                    field,
                    format!("at most {MAX_APP_URL_PARAMS} parameters with a non-empty key, each at most {MAX_FIELD_LEN} bytes"),
                ));
            }
        }
        if !matches!(req.access_type.as_str(), "" | "offline" | "online") {
            return Err(Error::invalid("accessType", "must be offline or online"));
        }
        if req.prompt.len() > MAX_APP_URL_PARAMS
            || req
                .prompt
                .iter()
                .any(|p| !matches!(p.as_str(), "none" | "login" | "consent" | "select_account"))
        {
            return Err(Error::invalid("prompt", "values must be none, login, consent or select_account"));
        }
        if req.template_id.len() > MAX_OUTBOUND_TEXT_LEN {
            return Err(Error::invalid("templateId", "unknown template"));
        }
        Ok(AppSettings {
            app_type: AppType::parse(&req.app_type)?,
            description: req.description.clone(),
            logo: req.logo.clone(),
            template_id: req.template_id.clone(),
            discovery_url: req.discovery_url.clone(),
            authorization_url_params: req.authorization_url_params.clone(),
            token_url_params: req.token_url_params.clone(),
            revocation_url: req.revocation_url.clone(),
            default_redirect_url: req.default_redirect_url.clone(),
            callback_domain: req.callback_domain.clone(),
            pkce: req.pkce,
            access_type: req.access_type.clone(),
            prompt: req.prompt.clone(),
            use_dcr: req.use_dcr,
            dcr_url: req.dcr_url.clone(),
        })
    }

    pub async fn load_app(&self, project: &ProjectId, id: &str) -> Result<ProviderConfig> {
        let id = parse_app_id(id)?;
        self.store.get_provider(project, &id).await?.ok_or_else(|| Error::OutboundAppNotFound(id.to_string()))
    }

    /// Every app of the project (providers set through `/v1/mgmt/provider` included).
    pub async fn list_apps(&self, project: &ProjectId) -> Result<Vec<ProviderConfig>> {
        self.store.list_providers(project).await
    }

    /// Deletes an app and every token stored for it.
    pub async fn delete_app(&self, project: &ProjectId, id: &str) -> Result<()> {
        let id = parse_app_id(id)?;
        if self.store.delete_provider(project, &id).await? {
            self.providers
                .audit()
                .record(AuditRecord::new(project, actions::OUTBOUND_APP_DELETED).data("appId", id.as_str()));
            Ok(())
        } else {
            Err(Error::OutboundAppNotFound(id.to_string()))
        }
    }

    // ---- tokens ----------------------------------------------------------------------------

    /// Stores an OAuth token of a user or tenant (replacing the one with the same scope set).
    /// With `verify_refresh` the refresh token is used at the provider first, and the tokens it
    /// answers are stored; nothing is written if that fails.
    pub async fn upload_token(&self, project: &ProjectId, req: UploadRequest) -> Result<String> {
        let app = self.load_app(project, &req.app_id).await?;
        let UploadedToken { access, refresh, scopes } = check_uploaded_token(
            &app,
            req.access_token,
            req.refresh_token,
            req.expiration,
            req.scopes,
            [&req.access_token_type, &req.external_identifier, &req.granted_by],
        )?;
        let owner = self.existing_owner(project, req.owner, &req.tenant_id).await?;
        let now = self.clock.now_ms();
        let (mut access, mut refresh, mut expiration, mut last_refresh_ms) =
            (access, refresh, req.expiration, 0);
        if req.verify_refresh {
            let Some(rt) = &refresh else {
                return Err(Error::MissingArgument("refreshToken"));
            };
            let grant = match self.refresher.grant(project, &app, rt).await? {
                Ok(grant) => grant,
                Err(ProviderFailure::InvalidGrant) => {
                    return Err(Error::ProviderReauthRequired(app.name.to_string()))
                }
                Err(failure) => return Err(Error::Provider { provider: app.name.to_string(), failure }),
            };
            expiration = expires_at(now, &grant);
            access = Some(grant.access_token);
            refresh = grant.refresh_token.or(refresh);
            last_refresh_ms = now;
        }
        let access_token_type =
            if req.access_token_type.is_empty() { "Bearer".to_owned() } else { req.access_token_type };
        let token = SealedOutboundToken {
            id: generate_token_id(),
            app_id: app.name,
            owner,
            tenant_id: String::new(),
            scopes,
            access_token: None,
            refresh_token: None,
            access_token_type,
            expiration,
            granted_by: req.granted_by,
            external_identifier: req.external_identifier,
            token_sub: String::new(),
            last_refresh_ms,
            last_refresh_error: String::new(),
            created_ms: now,
            updated_ms: now,
            version: 1,
            reauth_required: false,
        };
        let token = SealedOutboundToken { tenant_id: user_tenant(&token.owner, req.tenant_id), ..token };
        self.seal_and_put(project, token, access.as_ref(), refresh.as_ref()).await
    }

    /// Stores the API key of a user or tenant for an API-key app (one key per owner and tenant:
    /// a new upload replaces it).
    pub async fn upload_api_key(
        &self,
        project: &ProjectId,
        app_id: &str,
        owner: TokenOwner,
        tenant_id: String,
        api_key: Option<SecretString>,
    ) -> Result<String> {
        let app = self.load_app(project, app_id).await?;
        if app.app_type() != AppType::ApiKey {
            return Err(Error::invalid("appId", "is not an API-key app (create it with appType \"apikey\")"));
        }
        let Some(key) = api_key.filter(|k| !k.expose_secret().is_empty()) else {
            return Err(Error::MissingArgument("apiKey"));
        };
        if key.expose_secret().len() > MAX_TOKEN_LEN {
            return Err(Error::invalid("apiKey", format!("must be at most {MAX_TOKEN_LEN} bytes")));
        }
        let owner = self.existing_owner(project, owner, &tenant_id).await?;
        let now = self.clock.now_ms();
        let token = SealedOutboundToken {
            id: generate_token_id(),
            app_id: app.name,
            tenant_id: user_tenant(&owner, tenant_id),
            owner,
            scopes: Vec::new(),
            access_token: None,
            refresh_token: None,
            access_token_type: "ApiKey".to_owned(),
            expiration: 0,
            granted_by: String::new(),
            external_identifier: String::new(),
            token_sub: String::new(),
            last_refresh_ms: 0,
            last_refresh_error: String::new(),
            created_ms: now,
            updated_ms: now,
            version: 1,
            reauth_required: false,
        };
        self.seal_and_put(project, token, Some(&key), None).await
    }

    async fn seal_and_put(
        &self,
        project: &ProjectId,
        mut token: SealedOutboundToken,
        access: Option<&SecretString>,
        refresh: Option<&SecretString>,
    ) -> Result<String> {
        token.access_token = match access {
            Some(a) => Some(self.seal(project, &token, TokenField::Access, a).await?),
            None => None,
        };
        token.refresh_token = match refresh {
            Some(r) => Some(self.seal(project, &token, TokenField::Refresh, r).await?),
            None => None,
        };
        match self.store.put_outbound_token(project, &token, MAX_TOKENS_PER_OWNER).await? {
            Some(id) => {
                self.users.audit().record(
                    token_record(
                        project,
                        actions::OUTBOUND_TOKEN_UPLOADED,
                        token.app_id.as_str(),
                        &token.owner,
                        &token.tenant_id,
                    )
                    .data("tokenId", id.as_str()),
                );
                Ok(id)
            }
            None => Err(Error::invalid(
                "scopes",
                format!(
                    "an owner holds at most {MAX_TOKENS_PER_OWNER} tokens (scope sets) per app and tenant"
                ),
            )),
        }
    }

    /// The user (who must exist) or tenant (likewise) a token is stored for.
    async fn existing_owner(
        &self,
        project: &ProjectId,
        owner: TokenOwner,
        tenant_id: &str,
    ) -> Result<TokenOwner> {
        text("tenantId", tenant_id, MAX_OUTBOUND_TEXT_LEN)?;
        match owner {
            TokenOwner::User(user_id) => {
                let user = self.users.load(project, &UserRef::UserId(user_id)).await?;
                if !tenant_id.is_empty() && self.store.get_tenant(project, tenant_id).await?.is_none() {
                    return Err(Error::NotFound(format!("tenant '{tenant_id}'")));
                }
                Ok(TokenOwner::User(user.user_id))
            }
            TokenOwner::Tenant(tenant) => {
                if tenant.is_empty() {
                    return Err(Error::MissingArgument("tenantId"));
                }
                text("tenantId", &tenant, MAX_OUTBOUND_TEXT_LEN)?;
                if self.store.get_tenant(project, &tenant).await?.is_none() {
                    return Err(Error::NotFound(format!("tenant '{tenant}'")));
                }
                Ok(TokenOwner::Tenant(tenant))
            }
        }
    }

    /// The token a fetch answers (see [`select_token`]), refreshed first when forced, when it has
    /// no access token (a refresh-only upload) or when it expires within the skew.
    pub async fn fetch(&self, project: &ProjectId, req: FetchRequest) -> Result<OutboundToken> {
        let (owner, tenant, force) = (req.owner.clone(), req.tenant_id.clone(), req.force_refresh);
        let token = self.fetch_unaudited(project, req).await?;
        let mut record = token_record(
            project,
            actions::OUTBOUND_TOKEN_FETCHED,
            &token.app_id,
            &owner,
            tenant.as_deref().unwrap_or_default(),
        )
        .data("tokenId", token.id.as_str());
        if force {
            record = record.data("forceRefresh", true);
        }
        self.users.audit().record(record);
        Ok(token)
    }

    async fn fetch_unaudited(&self, project: &ProjectId, req: FetchRequest) -> Result<OutboundToken> {
        let app_id = parse_app_id(&req.app_id)?;
        let wanted = match req.scopes {
            Some(s) => Some(validate_scopes(s)?),
            None => None,
        };
        if let Some(t) = &req.tenant_id {
            text("tenantId", t, MAX_OUTBOUND_TEXT_LEN)?;
        }
        let tokens = self
            .store
            .list_outbound_tokens(
                project,
                &app_id,
                &req.owner,
                req.tenant_id.as_deref(),
                MAX_TOKENS_PER_OWNER,
            )
            .await?;
        let Some(sealed) = select_token(tokens, wanted.as_deref()) else {
            // Tell an unknown app from a missing token (only on this miss path).
            if self.store.get_provider(project, &app_id).await?.is_none() {
                return Err(Error::OutboundAppNotFound(app_id.to_string()));
            }
            return Err(Error::OutboundTokenNotFound);
        };
        if sealed.reauth_required {
            return Err(Error::ProviderReauthRequired(app_id.to_string()));
        }
        let skew = i64::try_from(self.refresh_skew.as_secs()).unwrap_or(i64::MAX);
        let expiring =
            sealed.expiration != 0 && sealed.expiration <= self.clock.now_secs().saturating_add(skew);
        let needs_refresh = req.force_refresh || sealed.access_token.is_none() || expiring;
        if !needs_refresh || (sealed.refresh_token.is_none() && !req.force_refresh) {
            return self.open(project, sealed, req.with_refresh_token).await;
        }
        if sealed.refresh_token.is_none() {
            return Err(Error::NoRefreshToken(app_id.to_string()));
        }
        let config = self.load_app(project, app_id.as_str()).await?;
        let slot = OutboundSlot { service: self, project, id: sealed.id.clone() };
        let outcome = self.refresher.refresh(project, &config, sealed.version, &slot).await;
        let fresh = matches!(outcome, Ok(Refreshed::Fresh { .. }));
        if req.force_refresh || fresh {
            let action = if req.force_refresh {
                actions::OUTBOUND_TOKEN_FORCED_REFRESH
            } else {
                actions::OUTBOUND_TOKEN_REFRESHED
            };
            let mut record = token_record(project, action, app_id.as_str(), &sealed.owner, &sealed.tenant_id)
                .data("tokenId", sealed.id.as_str())
                .data("calledProvider", fresh);
            if let Err(e) = &outcome {
                record = record.kind("error").data("error", format!("{:?}", e.code()));
            }
            self.users.audit().record(record);
        }
        match outcome? {
            Refreshed::Meanwhile(current) => self.open(project, current, req.with_refresh_token).await,
            Refreshed::Fresh { row, grant, used_refresh_token } => {
                let refresh_token = if req.with_refresh_token {
                    Some(grant.refresh_token.unwrap_or(used_refresh_token))
                } else {
                    None
                };
                Ok(view(row, grant.access_token, refresh_token))
            }
        }
    }

    /// Deletes user tokens by app, by user, or both.
    pub async fn delete_user_tokens(
        &self,
        project: &ProjectId,
        app_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<u64> {
        if app_id.is_none() && user_id.is_none() {
            // Either is enough; the error names the first.
            return Err(Error::MissingArgument("appId"));
        }
        let app = app_id.map(parse_app_id).transpose()?;
        let user = user_id.map(UserId::parse).transpose()?;
        let deleted = self.store.delete_user_outbound_tokens(project, app.as_ref(), user.as_ref()).await?;
        if deleted > 0 {
            let mut record =
                AuditRecord::new(project, actions::OUTBOUND_TOKEN_DELETED).data("count", deleted);
            if let Some(user) = &user {
                record = record.user(user.as_str());
            }
            if let Some(app) = &app {
                record = record.data("appId", app.as_str());
            }
            self.users.audit().record(record);
        }
        Ok(deleted)
    }

    pub async fn delete_token(&self, project: &ProjectId, id: &str) -> Result<()> {
        if id.is_empty() {
            return Err(Error::MissingArgument("id"));
        }
        text("id", id, MAX_OUTBOUND_TEXT_LEN)?;
        let token = self.store.get_outbound_token(project, id).await?;
        if self.store.delete_outbound_token(project, id).await? {
            let mut record = AuditRecord::new(project, actions::OUTBOUND_TOKEN_DELETED).data("tokenId", id);
            if let Some(t) = &token {
                record = token_record(
                    project,
                    actions::OUTBOUND_TOKEN_DELETED,
                    t.app_id.as_str(),
                    &t.owner,
                    &t.tenant_id,
                )
                .data("tokenId", id);
            }
            self.users.audit().record(record);
            Ok(())
        } else {
            Err(Error::OutboundTokenNotFound)
        }
    }

    /// The apps the user holds a valid (not flagged) token for.
    pub async fn apps_with_user_token(
        &self,
        project: &ProjectId,
        user_id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<String>> {
        let user = UserId::parse(user_id)?;
        if let Some(t) = tenant_id {
            text("tenantId", t, MAX_OUTBOUND_TEXT_LEN)?;
        }
        self.store.apps_with_user_token(project, &user, tenant_id).await
    }

    // ---- sealing ---------------------------------------------------------------------------

    fn aad(project: &ProjectId, token: &SealedOutboundToken, field: TokenField) -> Vec<u8> {
        outbound_token_aad(
            project,
            &token.app_id,
            token.owner.kind(),
            token.owner.id(),
            &token.tenant_id,
            field,
        )
    }

    async fn seal(
        &self,
        project: &ProjectId,
        token: &SealedOutboundToken,
        field: TokenField,
        secret: &SecretString,
    ) -> Result<Vec<u8>> {
        let aad = Self::aad(project, token, field);
        self.cipher.seal(project, secret.expose_secret().as_bytes(), &aad).await
    }

    async fn open_secret(
        &self,
        project: &ProjectId,
        token: &SealedOutboundToken,
        field: TokenField,
        sealed: &[u8],
    ) -> Result<SecretString> {
        let aad = Self::aad(project, token, field);
        let bytes = self.cipher.open(project, sealed, &aad).await?;
        std::str::from_utf8(&bytes)
            .map(|s| SecretString::from(s.to_owned()))
            .map_err(|_| Error::Decrypt("token is not UTF-8"))
    }

    async fn open(
        &self,
        project: &ProjectId,
        sealed: SealedOutboundToken,
        with_refresh: bool,
    ) -> Result<OutboundToken> {
        let Some(access) = &sealed.access_token else {
            // Only a refresh-only token without a refresh token could get here; uploads refuse it.
            return Err(Error::OutboundTokenNotFound);
        };
        let access = self.open_secret(project, &sealed, TokenField::Access, access).await?;
        let refresh = match (&sealed.refresh_token, with_refresh) {
            (Some(ct), true) => Some(self.open_secret(project, &sealed, TokenField::Refresh, ct).await?),
            _ => None,
        };
        Ok(view(sealed, access, refresh))
    }
}

fn view(sealed: SealedOutboundToken, access: SecretString, refresh: Option<SecretString>) -> OutboundToken {
    OutboundToken {
        tenant_id: sealed.tenant().to_owned(),
        user_id: match &sealed.owner {
            TokenOwner::User(u) => u.to_string(),
            TokenOwner::Tenant(_) => String::new(),
        },
        id: sealed.id,
        app_id: sealed.app_id.into_string(),
        access_token: access,
        access_token_type: sealed.access_token_type,
        expiration: sealed.expiration,
        has_refresh_token: sealed.refresh_token.is_some(),
        refresh_token: refresh,
        last_refresh_ms: sealed.last_refresh_ms,
        last_refresh_error: sealed.last_refresh_error,
        scopes: sealed.scopes,
        granted_by: sealed.granted_by,
        external_identifier: sealed.external_identifier,
        token_sub: sealed.token_sub,
    }
}

/// An outbound token, as the shared refresh machinery sees it.
struct OutboundSlot<'a> {
    service: &'a OutboundService,
    project: &'a ProjectId,
    id: String,
}

#[async_trait]
impl RefreshSlot for OutboundSlot<'_> {
    type Row = SealedOutboundToken;

    fn key(&self) -> RefreshKey {
        RefreshKey::OutboundToken { id: self.id.clone() }
    }

    fn state(row: &SealedOutboundToken) -> SlotState<'_> {
        SlotState {
            version: row.version,
            reauth_required: row.reauth_required,
            refresh_token: row.refresh_token.as_deref(),
        }
    }

    async fn reload(&self) -> Result<SealedOutboundToken> {
        self.service
            .store
            .get_outbound_token(self.project, &self.id)
            .await?
            .ok_or(Error::OutboundTokenNotFound)
    }

    async fn open_refresh_token(&self, current: &SealedOutboundToken, sealed: &[u8]) -> Result<SecretString> {
        self.service.open_secret(self.project, current, TokenField::Refresh, sealed).await
    }

    async fn commit(
        &self,
        current: &SealedOutboundToken,
        grant: &TokenGrant,
    ) -> Result<Option<SealedOutboundToken>> {
        let s = self.service;
        let now = s.clock.now_ms();
        let access = s.seal(self.project, current, TokenField::Access, &grant.access_token).await?;
        // A provider that does not rotate refresh tokens answers none: keep the stored one.
        let refresh = match &grant.refresh_token {
            Some(rt) => Some(s.seal(self.project, current, TokenField::Refresh, rt).await?),
            None => current.refresh_token.clone(),
        };
        // The scope set stays: it is the token's identity (the upload that stored it named it).
        let refreshed = SealedOutboundToken {
            access_token: Some(access),
            refresh_token: refresh,
            expiration: expires_at(now, grant),
            last_refresh_ms: now,
            last_refresh_error: String::new(),
            updated_ms: now,
            version: current.version + 1,
            reauth_required: false,
            ..current.clone()
        };
        let written =
            s.store.replace_refreshed_outbound_token(self.project, &refreshed, current.version).await?;
        Ok(written.then_some(refreshed))
    }

    async fn flag_reauth(&self, current: &SealedOutboundToken) -> Result<()> {
        let now = self.service.clock.now_ms();
        self.service
            .store
            .flag_outbound_reauth(self.project, &current.id, current.version, "invalid_grant", now)
            .await?;
        Ok(())
    }
}

/// Unix seconds at which a granted token expires; 0 when the provider did not say.
fn expires_at(now_ms: i64, grant: &TokenGrant) -> i64 {
    match grant.expires_in {
        Some(secs) if secs > 0 => now_ms.div_euclid(1000).saturating_add(secs),
        _ => 0,
    }
}

/// The tenant column of a new token: a user token's tenant, "" on a tenant token.
fn user_tenant(owner: &TokenOwner, tenant_id: String) -> String {
    match owner {
        TokenOwner::User(_) => tenant_id,
        TokenOwner::Tenant(_) => String::new(),
    }
}

/// An app id is a provider name (lowercase letters, digits, `-`, `_`): URL-safe in
/// `/v1/mgmt/outbound/app/{id}`.
fn parse_app_id(id: &str) -> Result<ProviderName> {
    ProviderName::parse(id).map_err(|e| match e {
        Error::MissingArgument(_) => Error::MissingArgument("appId"),
        _ => Error::invalid("appId", "must be 1 to 64 lowercase letters, digits, '-' or '_'"),
    })
}

/// An uploaded OAuth token's secrets and scopes, checked.
pub(super) struct UploadedToken {
    pub access: Option<SecretString>,
    pub refresh: Option<SecretString>,
    pub scopes: Vec<String>,
}

/// What an OAuth token upload must satisfy, for one upload and for each item of a batch alike:
/// an OAuth (not API-key) app, an access or a refresh token within the size bound, a
/// non-negative expiry, valid scopes, and printable texts (`[accessTokenType,
/// externalIdentifier, grantedBy]`).
pub(super) fn check_uploaded_token(
    app: &ProviderConfig,
    access: Option<SecretString>,
    refresh: Option<SecretString>,
    expiration: i64,
    scopes: Vec<String>,
    texts: [&str; 3],
) -> Result<UploadedToken> {
    if app.app_type() == AppType::ApiKey {
        return Err(Error::invalid("appId", "is an API-key app: upload its key with apikey/upload"));
    }
    let access = access.filter(|t| !t.expose_secret().is_empty());
    let refresh = refresh.filter(|t| !t.expose_secret().is_empty());
    if access.is_none() && refresh.is_none() {
        return Err(Error::MissingArgument("accessToken or refreshToken"));
    }
    for (field, secret) in [("accessToken", &access), ("refreshToken", &refresh)] {
        if secret.as_ref().is_some_and(|s| s.expose_secret().len() > MAX_TOKEN_LEN) {
            return Err(Error::invalid(field, format!("must be at most {MAX_TOKEN_LEN} bytes")));
        }
    }
    if expiration < 0 {
        return Err(Error::invalid("accessTokenExpiry", "must be Unix seconds, or 0 for unknown"));
    }
    let scopes = validate_scopes(scopes)?;
    for (field, value) in ["accessTokenType", "externalIdentifier", "grantedBy"].into_iter().zip(texts) {
        text(field, value, MAX_OUTBOUND_TEXT_LEN)?;
    }
    Ok(UploadedToken { access, refresh, scopes })
}

fn text(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(Error::invalid(field, format!("at most {max} bytes, no control characters")));
    }
    Ok(())
}

fn validate_scopes(scopes: Vec<String>) -> Result<Vec<String>> {
    if scopes.len() > MAX_SCOPES
        || scopes
            .iter()
            .any(|s| s.is_empty() || s.len() > MAX_FIELD_LEN || s.chars().any(char::is_whitespace))
    {
        return Err(Error::invalid(
            "scopes",
            format!("at most {MAX_SCOPES} non-empty scopes without spaces"),
        ));
    }
    Ok(normalize_scopes(scopes))
}
