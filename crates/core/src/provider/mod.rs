//! OAuth/OIDC provider configuration per project: the project's own OAuth app (client id and
//! secret) and the provider's endpoints, either from a preset, from OIDC discovery, or given.
//! The domain only describes providers; talking to them is idvault-oauth's job, reached through
//! the [`OAuthClient`] trait.

pub mod address;
pub mod presets;
pub mod service;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ProviderFailure, Result};
use crate::ids::{ProjectId, ProviderName};

pub use address::{AllowedHosts, UrlKind, PROVIDER_UNUSABLE};
pub use service::ProviderService;

/// How the client authenticates at the token endpoint (RFC 6749 section 2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
}

impl ClientAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "client_secret_basic" => Ok(ClientAuthMethod::ClientSecretBasic),
            "client_secret_post" => Ok(ClientAuthMethod::ClientSecretPost),
            _ => Err(Error::invalid("authMethod", "must be client_secret_basic or client_secret_post")),
        }
    }
}

/// A provider as stored: the client secret sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub name: ProviderName,
    pub client_id: String,
    pub client_secret: Option<Vec<u8>>,
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    /// Empty for an outbound app created without one (an API-key app, or an OAuth app whose
    /// endpoints are not known yet): such an app cannot refresh tokens.
    pub token_endpoint: String,
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub scopes: Vec<String>,
    pub auth_method: ClientAuthMethod,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The outbound app's name, unique per project; `None` for a provider set through
    /// `/v1/mgmt/provider/set` that was never created or updated as an app.
    pub display_name: Option<String>,
    /// The outbound app fields (a provider is an app); `None` for a plain provider.
    pub app: Option<AppSettings>,
}

/// What kind of secret an outbound app stores for its users and tenants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppType {
    #[default]
    OAuth,
    ApiKey,
}

impl AppType {
    pub fn as_str(self) -> &'static str {
        match self {
            AppType::OAuth => "oauth",
            AppType::ApiKey => "apikey",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "" | "oauth" => Ok(AppType::OAuth),
            "apikey" => Ok(AppType::ApiKey),
            _ => Err(Error::invalid("appType", "must be oauth or apikey")),
        }
    }
}

/// One extra parameter an outbound app sends on its authorization or token requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlParam {
    pub key: String,
    pub value: String,
}

/// The outbound app fields beyond a provider's OAuth client configuration. Stored as one JSON
/// document with the provider row: nothing queries them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AppSettings {
    pub app_type: AppType,
    pub description: String,
    pub logo: String,
    pub template_id: String,
    pub discovery_url: String,
    pub authorization_url_params: Vec<UrlParam>,
    pub token_url_params: Vec<UrlParam>,
    pub revocation_url: String,
    pub default_redirect_url: String,
    pub callback_domain: String,
    pub pkce: bool,
    pub access_type: String,
    pub prompt: Vec<String>,
    pub use_dcr: bool,
    pub dcr_url: String,
}

impl ProviderConfig {
    /// The token endpoint, if the app has one.
    pub fn token_url(&self) -> Option<&str> {
        Some(self.token_endpoint.as_str()).filter(|u| !u.is_empty())
    }

    pub fn app_type(&self) -> AppType {
        self.app.as_ref().map(|a| a.app_type).unwrap_or_default()
    }
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("has_client_secret", &self.client_secret.is_some())
            .field("token_endpoint", &self.token_endpoint)
            .finish_non_exhaustive()
    }
}

/// Endpoints found through OIDC discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveredEndpoints {
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
}

/// What a token endpoint call needs, secrets opened.
pub struct TokenEndpoint<'a> {
    /// The project whose provider this is: concurrency slots are per project and host, so one
    /// project cannot starve another's calls to a shared provider.
    pub project: &'a ProjectId,
    pub url: &'a str,
    pub client_id: &'a str,
    pub client_secret: Option<&'a SecretString>,
    pub auth_method: ClientAuthMethod,
    /// An outbound app's `tokenUrlParams`, added to the form; they never replace a parameter of
    /// the grant itself or of client authentication.
    pub extra_params: &'a [UrlParam],
}

/// A successful token endpoint answer.
#[derive(Debug)]
pub struct TokenGrant {
    pub access_token: SecretString,
    /// Present when the provider rotated (or issued) a refresh token.
    pub refresh_token: Option<SecretString>,
    /// Seconds from now; absent for tokens that do not expire.
    pub expires_in: Option<i64>,
    /// Space-separated granted scopes, when the provider says.
    pub scope: Option<String>,
    /// The OIDC id_token, when the provider sent one.
    pub id_token: Option<String>,
}

/// What an id_token must satisfy.
pub struct IdTokenCheck<'a> {
    pub project: &'a ProjectId,
    pub jwks_uri: &'a str,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
}

/// Outbound OAuth calls, implemented by idvault-oauth.
#[async_trait]
pub trait OAuthClient: Send + Sync + 'static {
    /// RFC 6749 section 6: exchanges a refresh token for new tokens.
    async fn refresh(
        &self,
        endpoint: &TokenEndpoint<'_>,
        refresh_token: &SecretString,
    ) -> std::result::Result<TokenGrant, ProviderFailure>;

    /// The hosts providers may use although they are not public (`--provider-allowed-hosts`):
    /// the same list the client enforces on every call, for checks before anything is stored.
    fn allowed_hosts(&self) -> &AllowedHosts;

    /// Fetches `<issuer>/.well-known/openid-configuration`.
    async fn discover(
        &self,
        project: &ProjectId,
        issuer: &str,
    ) -> std::result::Result<DiscoveredEndpoints, ProviderFailure>;

    /// RFC 6749 section 4.1.3 with PKCE (RFC 7636): exchanges an authorization code.
    async fn exchange_code(
        &self,
        endpoint: &TokenEndpoint<'_>,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> std::result::Result<TokenGrant, ProviderFailure>;

    /// Verifies an id_token's signature against the provider's JWKS, and its issuer, audience,
    /// nonce and expiry. The error says which check failed.
    async fn verify_id_token(
        &self,
        id_token: &str,
        check: &IdTokenCheck<'_>,
    ) -> Result<serde_json::Map<String, serde_json::Value>>;

    /// GETs a JSON document with the user's access token (userinfo, GitHub's /user and
    /// /user/emails).
    async fn get_json(
        &self,
        project: &ProjectId,
        url: &str,
        access_token: &SecretString,
    ) -> std::result::Result<serde_json::Value, ProviderFailure>;
}

/// Accepts absolute http(s) URLs only.
pub fn validate_url(field: &'static str, url: &str) -> Result<String> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= crate::limits::MAX_URL_LEN
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && url.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if ok {
        Ok(url.to_owned())
    } else {
        Err(Error::invalid(field, "must be an absolute http(s) URL"))
    }
}
