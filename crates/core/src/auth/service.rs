//! The sign-in flow and sessions.
//!
//! `authorize` makes a state (stored hashed, single use, short-lived) with a PKCE verifier and a
//! nonce, and answers the provider's authorization URL. The provider's `callback` consumes the
//! state, exchanges the code, establishes the identity (a validated id_token, or userinfo),
//! creates or links the user, stores the provider tokens in the vault, all in one transaction,
//! and redirects to the application with a one-time code. `exchange` turns that code into a
//! session: a short session JWT (`drn: DS`) and a refresh JWT (`drn: DSR`, `sid` = session id)
//! that logout revokes.
//!
//! Refresh JWTs rotate (RFC 9700 section 4.14): each refresh answers a new refresh JWT of the
//! same session with the next `gen`eration, and the previous one stops working. A refresh JWT
//! presented after it was rotated (by a thief or by the real client, whichever came second) is
//! reuse: the whole session is revoked. The generation moves by compare-and-swap in the store,
//! so of two concurrent refreshes with one token exactly one wins.
//!
//! A disabled or expired user is refused at the provider callback (no code is issued) and again
//! at the code exchange. Nothing here logs a code, a state or a token.
//!
//! Refusals are audited as `LoginFailed` (kind `warn`, the reason in `data.error_message`): a
//! callback whose state was found (the project is known from it) and then failed (expired state,
//! provider error, rejected id_token, disabled user), a code exchange that failed (unknown, used,
//! expired or foreign code, disabled user), a refresh with a logged-out session or of a disabled
//! user, and any presentation of a rotated refresh JWT (reuse, which revokes the session). The
//! record names the user when the refusal got that far, never the code, state or token.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use secrecy::ExposeSecret;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::audit::{actions, failure_reason, Actor, AuditRecord};
use crate::auth::{AuthCode, JwtResponse, OAuthState, SessionRecord, SessionSigner};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, ProviderName, UserId};
use crate::provider::{
    IdTokenCheck, OAuthClient, ProviderConfig, ProviderService, TokenEndpoint, TokenGrant,
};
use crate::secrets::{token_aad, Cipher, TokenField};
use crate::store::{SharedStore, SignIn, SignInUser};
use crate::user::{NewUser, User, UserRef, UserService, UserStatus};
use crate::vault::SealedToken;

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// idvault's externally reachable base URL; the provider redirects to
    /// `<public_url>/v1/auth/oauth/callback`.
    pub public_url: String,
    pub session_ttl: Duration,
    pub refresh_ttl: Duration,
    pub state_ttl: Duration,
    pub code_ttl: Duration,
    /// Most pending sign-ins per project (see [`crate::limits::MAX_PENDING_SIGN_INS`]).
    pub max_pending_sign_ins: u64,
}

impl AuthSettings {
    pub fn with_public_url(public_url: String) -> Self {
        AuthSettings {
            public_url,
            session_ttl: Duration::from_secs(10 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            state_ttl: Duration::from_secs(10 * 60),
            code_ttl: Duration::from_secs(2 * 60),
            max_pending_sign_ins: crate::limits::MAX_PENDING_SIGN_INS,
        }
    }
}

/// The query of the provider's redirect to the callback.
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

#[derive(Clone)]
pub struct AuthService {
    store: SharedStore,
    cipher: Arc<dyn Cipher>,
    signer: Arc<dyn SessionSigner>,
    oauth: Arc<dyn OAuthClient>,
    providers: ProviderService,
    users: UserService,
    clock: SharedClock,
    settings: Arc<AuthSettings>,
}

pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

pub(crate) fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn state_aad(project: &ProjectId, state_hash: &[u8; 32]) -> Vec<u8> {
    let mut aad = b"idvault/oauth-state/v1".to_vec();
    aad.extend_from_slice(project.as_str().as_bytes());
    aad.extend_from_slice(state_hash);
    aad
}

/// Appends query parameters to a URL that may already have some.
pub fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let encoded = serde_urlencoded::to_string(pairs).unwrap_or_default();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{encoded}")
}

/// Whether the URL's query has a `code` parameter: the one-time code is appended to the redirect
/// URL, and a second `code` would leave the application to pick one.
pub fn has_code_param(url: &str) -> bool {
    let Some((_, rest)) = url.split_once('?') else {
        return false;
    };
    let query = rest.split('#').next().unwrap_or_default();
    match serde_urlencoded::from_str::<Vec<(String, String)>>(query) {
        Ok(pairs) => pairs.iter().any(|(k, _)| k == "code"),
        // Unreadable: refuse rather than guess.
        Err(_) => true,
    }
}

/// Checks an allowed redirect URL of the project settings: an absolute http(s) URL without a
/// `code` query parameter.
pub fn validate_redirect_url(field: &'static str, url: &str) -> Result<()> {
    crate::provider::validate_url(field, url)?;
    if has_code_param(url) {
        return Err(Error::invalid(
            field,
            "must not have a 'code' query parameter: the sign-in appends its own",
        ));
    }
    Ok(())
}

/// Refuses a sign-in of a user that may not sign in.
fn ensure_may_sign_in(user: &User) -> Result<()> {
    match user.status {
        UserStatus::Disabled => Err(Error::UserDisabled("disabled")),
        UserStatus::Expired => Err(Error::UserDisabled("expired")),
        UserStatus::Enabled | UserStatus::Invited => Ok(()),
    }
}

/// The session a refresh JWT names and the generation it carries. Refresh JWTs issued before
/// rotation name the session in `jti` and have no `gen`: they are generation 0.
fn session_claims(claims: &Map<String, Value>) -> Result<(&str, i64)> {
    let sid = claims
        .get("sid")
        .or_else(|| claims.get("jti"))
        .and_then(Value::as_str)
        .ok_or(Error::InvalidSession("no session id"))?;
    let generation = match claims.get("gen") {
        None => 0,
        Some(g) => g.as_i64().ok_or(Error::InvalidSession("malformed generation"))?,
    };
    Ok((sid, generation))
}

/// The URL without its query string or fragment, for comparison with allowed redirect URLs.
pub(crate) fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

fn str_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A refused sign-in and, when it got that far, the user it was for: what `LoginFailed` records.
struct Refusal {
    error: Error,
    user: Option<User>,
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal { error, user: None }
    }
}

/// What a refresh JWT is presented for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionUse {
    Refresh,
    Logout,
    LogoutAll,
    Me,
}

impl SessionUse {
    fn as_str(self) -> &'static str {
        match self {
            SessionUse::Refresh => "refresh",
            SessionUse::Logout => "logout",
            SessionUse::LogoutAll => "logoutAll",
            SessionUse::Me => "me",
        }
    }
}

/// Who the provider says signed in.
#[derive(Debug, Default)]
struct Identity {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    picture: Option<String>,
}

impl AuthService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: SharedStore,
        cipher: Arc<dyn Cipher>,
        signer: Arc<dyn SessionSigner>,
        oauth: Arc<dyn OAuthClient>,
        providers: ProviderService,
        users: UserService,
        clock: SharedClock,
        settings: AuthSettings,
    ) -> Self {
        Self { store, cipher, signer, oauth, providers, users, clock, settings: Arc::new(settings) }
    }

    pub fn callback_url(&self) -> String {
        format!("{}/v1/auth/oauth/callback", self.settings.public_url.trim_end_matches('/'))
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    pub fn signer(&self) -> &Arc<dyn SessionSigner> {
        &self.signer
    }

    /// Checks that the project exists (auth endpoints carry only a project id).
    pub async fn require_project(&self, project: &ProjectId) -> Result<()> {
        match self.store.get_project(project).await? {
            Some(_) => Ok(()),
            None => Err(Error::Unauthorized("unknown project")),
        }
    }

    /// Starts a sign-in: answers the provider's authorization URL.
    pub async fn authorize(
        &self,
        project: &ProjectId,
        provider: &str,
        redirect_url: Option<&str>,
        login_hint: Option<&str>,
    ) -> Result<String> {
        self.require_project(project).await?;
        // Bounded before anything is stored: the redirect URL (query included) is kept with the
        // pending sign-in.
        if redirect_url.is_some_and(|u| u.len() > crate::limits::MAX_REDIRECT_URL_LEN) {
            return Err(Error::invalid(
                "redirectURL",
                format!("longer than {} bytes", crate::limits::MAX_REDIRECT_URL_LEN),
            ));
        }
        if login_hint.is_some_and(|h| h.len() > crate::limits::MAX_LOGIN_HINT_LEN) {
            return Err(Error::invalid(
                "loginHint",
                format!("longer than {} bytes", crate::limits::MAX_LOGIN_HINT_LEN),
            ));
        }
        let config = self.providers.get(project, provider).await?;
        let authorization_endpoint = config
            .authorization_endpoint
            .clone()
            .ok_or_else(|| Error::invalid("provider", "has no authorization endpoint configured"))?;
        // Browsers are sent there: a configuration stored before the URL policy existed (a
        // `javascript:` URL, say) is checked again rather than trusted.
        crate::provider::address::check_url(
            &authorization_endpoint,
            crate::provider::address::UrlKind::Endpoint,
            self.oauth.allowed_hosts(),
        )
        .map_err(|why| {
            tracing::warn!(%project, %why, "stored authorization endpoint refused");
            Error::invalid("provider", crate::provider::address::PROVIDER_UNUSABLE)
        })?;
        let settings = self.store.get_auth_settings(project).await?;
        let redirect_url = match redirect_url.filter(|u| !u.is_empty()) {
            Some(u) => u.to_owned(),
            None => match settings.redirect_urls.as_slice() {
                [only] => only.clone(),
                _ => return Err(Error::MissingArgument("redirectURL")),
            },
        };
        if !settings
            .redirect_urls
            .iter()
            .any(|allowed| without_query(allowed) == without_query(&redirect_url))
        {
            return Err(Error::RedirectNotAllowed(redirect_url));
        }
        if has_code_param(&redirect_url) {
            return Err(Error::invalid("redirectURL", "must not have a 'code' query parameter"));
        }

        let state = random_token(32);
        let verifier = random_token(32);
        let nonce = random_token(16);
        let state_hash = sha256(&state);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let now = self.clock.now_ms();
        let record = OAuthState {
            state_hash,
            project_id: project.clone(),
            provider: config.name.clone(),
            redirect_url,
            code_verifier: self
                .cipher
                .seal(project, verifier.as_bytes(), &state_aad(project, &state_hash))
                .await?,
            nonce: nonce.clone(),
            created_ms: now,
            expires_ms: now.saturating_add(ms(self.settings.state_ttl)),
            connect: None,
        };
        if !self.store.insert_oauth_state(&record, self.settings.max_pending_sign_ins).await? {
            return Err(Error::TooManyRequests(
                "too many sign-ins of this project are pending: retry when some have completed or expired",
            ));
        }

        let scope = config.scopes.join(" ");
        let callback = self.callback_url();
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &config.client_id),
            ("redirect_uri", &callback),
            ("scope", &scope),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        if config.scopes.iter().any(|s| s == "openid") {
            params.push(("nonce", &nonce));
        }
        // Refresh tokens: OIDC's offline_access needs prompt=consent; Google wants
        // access_type=offline (and consent, or it issues a refresh token only once).
        if config.scopes.iter().any(|s| s == "offline_access") || config.name.as_str() == "google" {
            params.push(("prompt", "consent"));
        }
        if config.name.as_str() == "google" {
            params.push(("access_type", "offline"));
        }
        if let Some(hint) = login_hint.filter(|h| !h.is_empty()) {
            params.push(("login_hint", hint));
        }
        Ok(with_query(&authorization_endpoint, &params))
    }

    /// The provider's redirect back. Answers where to send the browser: the application's
    /// redirect URL with a one-time `code`.
    pub async fn callback(&self, mut params: CallbackParams) -> Result<String> {
        let state =
            params.state.take().filter(|s| !s.is_empty()).ok_or(Error::InvalidOAuthState("missing state"))?;
        if state.len() > 128 {
            return Err(Error::InvalidOAuthState("unknown state"));
        }
        // Until the state is found, the project is not known: such refusals have no trail to go to.
        let record = self
            .store
            .take_oauth_state(&sha256(&state))
            .await?
            .ok_or(Error::InvalidOAuthState("unknown, tampered or already used state"))?;
        if record.connect.is_some() {
            // An outbound connect's state has its own callback; used here it is spent.
            return Err(Error::InvalidOAuthState("unknown, tampered or already used state"));
        }
        let project = record.project_id.clone();
        let provider = record.provider.clone();
        let failed = AuditRecord::new(&project, actions::LOGIN_FAILED)
            .method("oauth")
            .data("provider", provider.as_str());
        self.complete_callback(record, params).await.map_err(|refusal| self.refused(refusal, failed))
    }

    /// The callback once its state is found: a refusal from here on is audited.
    async fn complete_callback(
        &self,
        record: OAuthState,
        params: CallbackParams,
    ) -> std::result::Result<String, Refusal> {
        if record.expires_ms <= self.clock.now_ms() {
            return Err(Error::InvalidOAuthState("expired state").into());
        }
        if let Some(error) = params.error.filter(|e| !e.is_empty()) {
            let description = params.error_description.unwrap_or_default();
            let shown: String = format!("{error}: {description}").chars().take(200).collect();
            return Err(Error::ProviderCallbackError(shown).into());
        }
        let code = params
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::ProviderCallbackError("no code".into()))?;
        let project = record.project_id.clone();
        let config = self.providers.get(&project, record.provider.as_str()).await?;
        let verifier = self
            .cipher
            .open(&project, &record.code_verifier, &state_aad(&project, &record.state_hash))
            .await?;
        let verifier =
            std::str::from_utf8(&verifier).map_err(|_| Error::Decrypt("code verifier is not UTF-8"))?;
        let client_secret = self.providers.open_client_secret(&project, &config).await?;
        let endpoint = TokenEndpoint {
            project: &project,
            url: &config.token_endpoint,
            client_id: &config.client_id,
            client_secret: client_secret.as_ref(),
            auth_method: config.auth_method,
            extra_params: config.app.as_ref().map(|a| a.token_url_params.as_slice()).unwrap_or_default(),
        };
        let grant = self
            .oauth
            .exchange_code(&endpoint, &code, &self.callback_url(), verifier)
            .await
            .map_err(|failure| Error::Provider { provider: config.name.to_string(), failure })?;
        let identity = self.identity(&project, &config, &grant, &record.nonce).await?;

        let (user, first_seen) = self.resolve_user(&project, &config.name, &identity).await?;
        let user_id = match &user {
            SignInUser::Existing(id) => id.clone(),
            SignInUser::New(u) => u.user_id.clone(),
        };
        let mut token = self.seal_grant(&project, &user_id, &config, &grant).await?;
        token.provider_user_id = identity.subject.clone();
        let sign_in = SignIn { user, provider_user_id: identity.subject.clone(), token };
        let user_id = self.store.complete_sign_in(&project, &config.name, &sign_in).await?;
        // The provider's tokens went into the vault with the sign-in.
        self.users.audit().record(
            AuditRecord::new(&project, actions::PROVIDER_TOKEN_UPLOADED)
                .actor(Actor::User { id: user_id.to_string() })
                .user(user_id.as_str())
                .method("oauth")
                .data("provider", config.name.as_str())
                .data("via", "signIn")
                .data("newUser", first_seen),
        );

        let code = random_token(32);
        let now = self.clock.now_ms();
        self.store
            .insert_auth_code(&AuthCode {
                code_hash: sha256(&code),
                project_id: project,
                user_id,
                first_seen,
                amr: "oauth".into(),
                created_ms: now,
                expires_ms: now.saturating_add(ms(self.settings.code_ttl)),
            })
            .await?;
        Ok(with_query(&record.redirect_url, &[("code", &code)]))
    }

    async fn identity(
        &self,
        project: &ProjectId,
        config: &ProviderConfig,
        grant: &TokenGrant,
        nonce: &str,
    ) -> Result<Identity> {
        if let (Some(id_token), Some(jwks_uri), Some(issuer)) =
            (&grant.id_token, &config.jwks_uri, &config.issuer)
        {
            let check = IdTokenCheck { project, jwks_uri, issuer, client_id: &config.client_id, nonce };
            let mut claims = self.oauth.verify_id_token(id_token, &check).await?;
            let subject =
                str_claim(&claims, "sub").ok_or_else(|| Error::InvalidIdToken("no sub claim".into()))?;
            // Providers may keep profile claims out of the id_token (OIDC Core 5.4): ask
            // userinfo, and accept its answer only for the same subject.
            if claims.get("email").is_none() {
                if let Some(url) = &config.userinfo_endpoint {
                    let fail = |failure| Error::Provider { provider: config.name.to_string(), failure };
                    let info = self.oauth.get_json(project, url, &grant.access_token).await.map_err(fail)?;
                    if let Some(info) =
                        info.as_object().filter(|i| str_claim(i, "sub").as_deref() == Some(subject.as_str()))
                    {
                        for (k, v) in info {
                            claims.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                }
            }
            return Ok(Identity {
                subject,
                email: str_claim(&claims, "email"),
                email_verified: claims.get("email_verified").and_then(Value::as_bool).unwrap_or(false),
                name: str_claim(&claims, "name"),
                given_name: str_claim(&claims, "given_name"),
                family_name: str_claim(&claims, "family_name"),
                picture: str_claim(&claims, "picture"),
            });
        }
        let userinfo_url = config.userinfo_endpoint.as_deref().ok_or_else(|| {
            Error::ProviderCallbackError("no id_token and no userinfo endpoint to identify the user".into())
        })?;
        let fail = |failure| Error::Provider { provider: config.name.to_string(), failure };
        let info = self.oauth.get_json(project, userinfo_url, &grant.access_token).await.map_err(fail)?;
        let info = info.as_object().cloned().unwrap_or_default();
        let is_github = userinfo_url.starts_with("https://api.github.com/");
        let subject = str_claim(&info, "sub")
            .or_else(|| str_claim(&info, "id"))
            .ok_or_else(|| Error::ProviderCallbackError("userinfo has no subject".into()))?;
        let mut identity = Identity {
            subject,
            email: str_claim(&info, "email"),
            email_verified: info.get("email_verified").and_then(Value::as_bool).unwrap_or(false),
            name: str_claim(&info, "name").or_else(|| str_claim(&info, "login")),
            given_name: str_claim(&info, "given_name"),
            family_name: str_claim(&info, "family_name"),
            picture: str_claim(&info, "picture").or_else(|| str_claim(&info, "avatar_url")),
        };
        if is_github {
            // GitHub's /user email is whatever the user made public; the verified primary address
            // comes from /user/emails.
            let emails = self
                .oauth
                .get_json(project, &format!("{userinfo_url}/emails"), &grant.access_token)
                .await
                .map_err(fail)?;
            let primary = emails.as_array().and_then(|list| {
                list.iter().find(|e| e["primary"] == Value::Bool(true) && e["verified"] == Value::Bool(true))
            });
            if let Some(p) = primary.and_then(|p| p["email"].as_str()) {
                identity.email = Some(p.to_owned());
                identity.email_verified = true;
            }
        }
        Ok(identity)
    }

    async fn resolve_user(
        &self,
        project: &ProjectId,
        provider: &ProviderName,
        identity: &Identity,
    ) -> std::result::Result<(SignInUser, bool), Refusal> {
        if let Some(id) = self.store.find_identity(project, provider, &identity.subject).await? {
            return self.existing_user(project, id).await;
        }
        let settings = self.store.get_auth_settings(project).await?;
        if let (true, true, Some(email)) =
            (settings.link_by_verified_email, identity.email_verified, &identity.email)
        {
            if let Some(id) = self.store.find_user_by_verified_email(project, email).await? {
                return self.existing_user(project, id).await;
            }
        }
        // Only a verified email may become the login id: an unverified one (or none) would let
        // anyone claim an address and make its owner's later sign-in collide with it. The email
        // is kept on the user, unverified.
        let login_id = match (&identity.email, identity.email_verified) {
            (Some(email), true) => email.clone(),
            _ => format!("{provider}-{}", identity.subject),
        };
        let new = NewUser {
            login_id,
            email: identity.email.clone(),
            verified_email: Some(identity.email_verified),
            name: identity.name.clone(),
            given_name: identity.given_name.clone(),
            family_name: identity.family_name.clone(),
            picture: identity.picture.clone(),
            status: Some(UserStatus::Enabled),
            ..Default::default()
        };
        let user = new.into_user(UserId::generate(), self.clock.now_ms())?;
        Ok((SignInUser::New(Box::new(user)), true))
    }

    /// An existing user the sign-in resolved to, if it may sign in.
    async fn existing_user(
        &self,
        project: &ProjectId,
        id: UserId,
    ) -> std::result::Result<(SignInUser, bool), Refusal> {
        let user = self.users.load(project, &UserRef::UserId(id.clone())).await?;
        if let Err(error) = ensure_may_sign_in(&user) {
            return Err(Refusal { error, user: Some(user) });
        }
        Ok((SignInUser::Existing(id), false))
    }

    /// Records a refusal as `LoginFailed` on `failed` (the project's record, with its method and
    /// details) and answers the error to return.
    fn refused(&self, refusal: Refusal, failed: AuditRecord) -> Error {
        let mut record = failed.kind("warn").data("error_message", failure_reason(&refusal.error));
        if let Some(user) = &refusal.user {
            record = record
                .user(user.user_id.as_str())
                .login_ids(user.login_ids.clone())
                .tenants(user.tenants.iter().map(|t| t.tenant_id.clone()).collect());
        }
        self.users.audit().record(record);
        refusal.error
    }

    async fn seal_grant(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        config: &ProviderConfig,
        grant: &TokenGrant,
    ) -> Result<SealedToken> {
        let provider = &config.name;
        let access = self
            .cipher
            .seal(
                project,
                grant.access_token.expose_secret().as_bytes(),
                &token_aad(project, user_id, provider, TokenField::Access),
            )
            .await?;
        let refresh = match &grant.refresh_token {
            Some(rt) => Some(
                self.cipher
                    .seal(
                        project,
                        rt.expose_secret().as_bytes(),
                        &token_aad(project, user_id, provider, TokenField::Refresh),
                    )
                    .await?,
            ),
            None => None,
        };
        let now = self.clock.now_ms();
        let scopes = match &grant.scope {
            Some(s) if !s.trim().is_empty() => s.split_whitespace().map(str::to_owned).collect(),
            _ => config.scopes.clone(),
        };
        Ok(SealedToken {
            provider: provider.clone(),
            provider_user_id: String::new(),
            access_token: access,
            refresh_token: refresh,
            expiration: grant.expires_in.map(|s| now.div_euclid(1000).saturating_add(s)).unwrap_or(0),
            scopes,
            updated_ms: now,
            version: 0,
            reauth_required: false,
        })
    }

    /// Exchanges the one-time code for a session. A refusal of a project's exchange is audited.
    pub async fn exchange(&self, project: &ProjectId, code: &str) -> Result<JwtResponse> {
        // An unknown project is refused before anything is recorded for it.
        self.require_project(project).await?;
        if code.is_empty() {
            return Err(Error::MissingArgument("code"));
        }
        self.exchange_code(project, code).await.map_err(|refusal| {
            self.refused(refusal, AuditRecord::new(project, actions::LOGIN_FAILED).method("oauth"))
        })
    }

    async fn exchange_code(
        &self,
        project: &ProjectId,
        code: &str,
    ) -> std::result::Result<JwtResponse, Refusal> {
        let record = self.store.take_auth_code(&sha256(code)).await?.ok_or(Error::InvalidAuthCode)?;
        // Another project's code names a user of that project: nothing of it goes in this trail.
        if &record.project_id != project {
            return Err(Error::InvalidAuthCode.into());
        }
        if record.expires_ms <= self.clock.now_ms() {
            let user = self.users.load(project, &UserRef::UserId(record.user_id.clone())).await.ok();
            return Err(Refusal { error: Error::InvalidAuthCode, user });
        }
        let user = self.users.load(project, &UserRef::UserId(record.user_id.clone())).await?;
        // Checked at the callback too; the user may have been disabled since.
        if let Err(error) = ensure_may_sign_in(&user) {
            return Err(Refusal { error, user: Some(user) });
        }
        let now = self.clock.now_ms();
        let session = SessionRecord {
            id: random_token(24),
            project_id: project.clone(),
            user_id: user.user_id.clone(),
            created_ms: now,
            expires_ms: now.saturating_add(ms(self.settings.refresh_ttl)),
            revoked_ms: None,
            generation: 0,
        };
        self.store.insert_session(&session).await?;
        self.store.record_login(project, &user.user_id, now, "").await?;
        self.users.audit().record(
            crate::user::service::user_record(project, actions::LOGIN_SUCCEED, &user)
                .actor(Actor::User { id: user.user_id.to_string() })
                .method("oauth"),
        );
        let refresh_jwt = self.sign_refresh(project, &user, &session, 0).await?;
        Ok(self.respond(project, user, refresh_jwt, &session, record.first_seen).await?)
    }

    async fn respond(
        &self,
        project: &ProjectId,
        user: User,
        refresh_jwt: String,
        session: &SessionRecord,
        first_seen: bool,
    ) -> Result<JwtResponse> {
        let session_exp = self
            .clock
            .now_secs()
            .saturating_add(i64::try_from(self.settings.session_ttl.as_secs()).unwrap_or(600));
        // A session token never outlives its refresh session.
        let session_exp = session_exp.min(session.expires_ms.div_euclid(1000));
        let session_jwt = self.sign(project, &user, "DS", session_exp, None).await?;
        Ok(JwtResponse {
            session_jwt,
            refresh_jwt,
            refresh_expires_secs: session.expires_ms.div_euclid(1000),
            user,
            first_seen,
        })
    }

    async fn sign(
        &self,
        project: &ProjectId,
        user: &User,
        drn: &str,
        exp: i64,
        refresh: Option<(&str, i64)>,
    ) -> Result<String> {
        // Tenant permissions come with the loaded user; project-level ones from its roles.
        let mut tenants = Map::new();
        for t in &user.tenants {
            tenants.insert(t.tenant_id.clone(), json!({"roles": t.role_names, "permissions": t.permissions}));
        }
        let mut permissions = std::collections::BTreeSet::new();
        if !user.role_names.is_empty() {
            for role in self.store.list_roles(project).await? {
                if role.tenant_id.is_none() && user.role_names.contains(&role.name) {
                    permissions.extend(role.permission_names);
                }
            }
        }
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(user.user_id.as_str()));
        claims.insert("iss".into(), json!(project.as_str()));
        claims.insert("iat".into(), json!(self.clock.now_secs()));
        claims.insert("exp".into(), json!(exp));
        claims.insert("drn".into(), json!(drn));
        claims.insert("amr".into(), json!(["oauth"]));
        claims.insert("roles".into(), json!(user.role_names));
        claims.insert("permissions".into(), json!(permissions));
        claims.insert("tenants".into(), Value::Object(tenants));
        if let Some((sid, generation)) = refresh {
            claims.insert("sid".into(), json!(sid));
            claims.insert("gen".into(), json!(generation));
            claims.insert("jti".into(), json!(format!("{sid}.{generation}")));
        }
        self.signer.sign(project, &claims).await
    }

    /// The refresh JWT of `generation` of a session; it lives as long as the session.
    async fn sign_refresh(
        &self,
        project: &ProjectId,
        user: &User,
        session: &SessionRecord,
        generation: i64,
    ) -> Result<String> {
        let exp = session.expires_ms.div_euclid(1000);
        self.sign(project, user, "DSR", exp, Some((&session.id, generation))).await
    }

    /// A refresh JWT was presented after it was rotated: revoke its whole session. Audited
    /// whatever it was presented for (the session ends either way).
    async fn reuse_detected(&self, project: &ProjectId, session: &SessionRecord, used: SessionUse) -> Error {
        tracing::warn!(project = %project, "a rotated refresh token was presented again; its session is revoked");
        if let Err(e) = self.store.revoke_session(project, &session.id, self.clock.now_ms()).await {
            return e;
        }
        let error = Error::InvalidSession("the refresh token was already used: the session is revoked");
        self.session_refused(project, &session.user_id, used, error).await
    }

    /// Records a refused use of a session as `LoginFailed` for its user, and answers the error.
    async fn session_refused(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        used: SessionUse,
        error: Error,
    ) -> Error {
        let user = self.users.load(project, &UserRef::UserId(user_id.clone())).await.ok();
        let mut failed = AuditRecord::new(project, actions::LOGIN_FAILED).data("operation", used.as_str());
        if user.is_none() {
            failed = failed.user(user_id.as_str());
        }
        self.refused(Refusal { error, user }, failed)
    }

    /// Verifies a refresh JWT and answers its live session. A refresh of a logged-out session or
    /// of a disabled user, and any presentation of a rotated refresh JWT, are audited; the other
    /// refusals (malformed, forged, expired) name no session worth a record.
    async fn live_session(
        &self,
        project: &ProjectId,
        refresh_jwt: &str,
        used: SessionUse,
    ) -> Result<(SessionRecord, User)> {
        if refresh_jwt.is_empty() {
            return Err(Error::InvalidSession("missing refresh token"));
        }
        // An unknown project is refused before the signer looks for its keys.
        self.require_project(project).await?;
        let claims = self.signer.verify(project, refresh_jwt).await?;
        if claims.get("drn").and_then(Value::as_str) != Some("DSR") {
            return Err(Error::InvalidSession("not a refresh token"));
        }
        if claims.get("iss").and_then(Value::as_str) != Some(project.as_str()) {
            return Err(Error::InvalidSession("issued for another project"));
        }
        let (sid, generation) = session_claims(&claims)?;
        let session =
            self.store.get_session(project, sid).await?.ok_or(Error::InvalidSession("unknown session"))?;
        if session.revoked_ms.is_some() {
            // A client may well log out a session twice; only a refresh of one is a refusal.
            if used == SessionUse::Refresh {
                return Err(self
                    .session_refused(project, &session.user_id, used, Error::SessionRevoked)
                    .await);
            }
            return Err(Error::SessionRevoked);
        }
        if session.expires_ms <= self.clock.now_ms() {
            return Err(Error::InvalidSession("session expired"));
        }
        if generation != session.generation {
            return Err(self.reuse_detected(project, &session, used).await);
        }
        let user = match self.users.load(project, &UserRef::UserId(session.user_id.clone())).await {
            Ok(u) => u,
            Err(Error::UserNotFound) => return Err(Error::InvalidSession("the user no longer exists")),
            Err(e) => return Err(e),
        };
        if matches!(user.status, UserStatus::Disabled | UserStatus::Expired) {
            let error = Error::InvalidSession("the user is disabled");
            if used == SessionUse::Refresh {
                let failed =
                    AuditRecord::new(project, actions::LOGIN_FAILED).data("operation", used.as_str());
                return Err(self.refused(Refusal { error, user: Some(user) }, failed));
            }
            return Err(error);
        }
        Ok((session, user))
    }

    /// A new session JWT and a new (rotated) refresh JWT for a live refresh JWT, which stops
    /// working. The session keeps its expiry: rotation does not extend it.
    pub async fn refresh(&self, project: &ProjectId, refresh_jwt: &str) -> Result<JwtResponse> {
        let (session, user) = self.live_session(project, refresh_jwt, SessionUse::Refresh).await?;
        if !self.store.advance_session(project, &session.id, session.generation).await? {
            // Another refresh with the same token won (or the session was revoked meanwhile).
            return Err(self.reuse_detected(project, &session, SessionUse::Refresh).await);
        }
        let next = session.generation.saturating_add(1);
        let session = SessionRecord { generation: next, ..session };
        let refresh_jwt = self.sign_refresh(project, &user, &session, next).await?;
        self.users.audit().record(
            crate::user::service::user_record(project, actions::SESSION_REFRESHED, &user)
                .actor(Actor::User { id: user.user_id.to_string() }),
        );
        self.respond(project, user, refresh_jwt, &session, false).await
    }

    /// Ends the refresh JWT's session (the user logs out here).
    pub async fn logout(&self, project: &ProjectId, refresh_jwt: &str) -> Result<()> {
        let (session, user) = self.live_session(project, refresh_jwt, SessionUse::Logout).await?;
        self.store.revoke_session(project, &session.id, self.clock.now_ms()).await?;
        self.logged_out(project, &user, "current");
        Ok(())
    }

    /// Ends every session of the refresh JWT's user.
    pub async fn logout_all(&self, project: &ProjectId, refresh_jwt: &str) -> Result<()> {
        let (session, user) = self.live_session(project, refresh_jwt, SessionUse::LogoutAll).await?;
        self.store.revoke_user_sessions(project, &session.user_id, self.clock.now_ms()).await?;
        self.logged_out(project, &user, "all");
        Ok(())
    }

    /// `UserLoggedOut` by the user itself; `sessions` says which ended (`current` or `all`).
    fn logged_out(&self, project: &ProjectId, user: &User, sessions: &str) {
        self.users.audit().record(
            crate::user::service::user_record(project, actions::USER_LOGGED_OUT, user)
                .actor(Actor::User { id: user.user_id.to_string() })
                .data("sessions", sessions),
        );
    }

    pub async fn me(&self, project: &ProjectId, refresh_jwt: &str) -> Result<User> {
        self.live_session(project, refresh_jwt, SessionUse::Me).await.map(|(_, user)| user)
    }

    /// Sets the project's allowed redirect URLs and linking rule.
    pub async fn set_settings(
        &self,
        project: &ProjectId,
        redirect_urls: Vec<String>,
        link_by_verified_email: bool,
    ) -> Result<()> {
        let most = crate::limits::MAX_REDIRECT_URLS;
        if redirect_urls.len() > most {
            return Err(Error::invalid("redirectUrls", format!("at most {most} URLs")));
        }
        for u in &redirect_urls {
            validate_redirect_url("redirectUrls", u)?;
        }
        let settings = crate::auth::ProjectAuthSettings { redirect_urls, link_by_verified_email };
        self.store.set_auth_settings(project, &settings).await
    }

    pub async fn settings_of(&self, project: &ProjectId) -> Result<crate::auth::ProjectAuthSettings> {
        self.store.get_auth_settings(project).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_parameter_is_found_however_written() {
        for url in [
            "http://app.example/done?code=X",
            "http://app.example/done?next=1&code=",
            "http://app.example/done?code",
            "http://app.example/done?%63ode=1",
            "http://app.example/done?code=1#frag",
        ] {
            assert!(has_code_param(url), "{url}");
        }
        for url in [
            "http://app.example/done",
            "http://app.example/done?next=%2Fhome",
            "http://app.example/done?codes=1&xcode=2",
            "http://app.example/done#code=1",
        ] {
            assert!(!has_code_param(url), "{url}");
        }
    }

    #[test]
    fn refresh_jwts_from_before_rotation_are_generation_0() {
        let legacy = json!({"jti": "S1"}).as_object().cloned().unwrap_or_default();
        assert_eq!(session_claims(&legacy).ok(), Some(("S1", 0)));
        let rotated = json!({"sid": "S1", "gen": 3, "jti": "S1.3"}).as_object().cloned().unwrap_or_default();
        assert_eq!(session_claims(&rotated).ok(), Some(("S1", 3)));
        let bad = json!({"sid": "S1", "gen": "3"}).as_object().cloned().unwrap_or_default();
        assert!(session_claims(&bad).is_err());
    }
}
