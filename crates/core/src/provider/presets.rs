//! Well-known providers, so that a user supplies only a client id and secret. Endpoints are the
//! providers' documented production ones.

use crate::provider::ClientAuthMethod;

pub struct Preset {
    pub name: &'static str,
    pub issuer: Option<&'static str>,
    pub authorization_endpoint: &'static str,
    pub token_endpoint: &'static str,
    pub userinfo_endpoint: &'static str,
    pub jwks_uri: Option<&'static str>,
    pub scopes: &'static [&'static str],
    pub auth_method: ClientAuthMethod,
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "google",
        issuer: Some("https://accounts.google.com"),
        authorization_endpoint: "https://accounts.google.com/o/oauth2/v2/auth",
        token_endpoint: "https://oauth2.googleapis.com/token",
        userinfo_endpoint: "https://openidconnect.googleapis.com/v1/userinfo",
        jwks_uri: Some("https://www.googleapis.com/oauth2/v3/certs"),
        scopes: &["openid", "email", "profile"],
        auth_method: ClientAuthMethod::ClientSecretPost,
    },
    Preset {
        name: "github",
        issuer: None,
        authorization_endpoint: "https://github.com/login/oauth/authorize",
        token_endpoint: "https://github.com/login/oauth/access_token",
        userinfo_endpoint: "https://api.github.com/user",
        jwks_uri: None,
        scopes: &["read:user", "user:email"],
        auth_method: ClientAuthMethod::ClientSecretPost,
    },
    Preset {
        name: "microsoft",
        issuer: None,
        authorization_endpoint: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token_endpoint: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        userinfo_endpoint: "https://graph.microsoft.com/oidc/userinfo",
        jwks_uri: Some("https://login.microsoftonline.com/common/discovery/v2.0/keys"),
        scopes: &["openid", "email", "profile", "offline_access"],
        auth_method: ClientAuthMethod::ClientSecretPost,
    },
    Preset {
        name: "gitlab",
        issuer: Some("https://gitlab.com"),
        authorization_endpoint: "https://gitlab.com/oauth/authorize",
        token_endpoint: "https://gitlab.com/oauth/token",
        userinfo_endpoint: "https://gitlab.com/oauth/userinfo",
        jwks_uri: Some("https://gitlab.com/oauth/discovery/keys"),
        scopes: &["openid", "email", "profile", "read_user"],
        auth_method: ClientAuthMethod::ClientSecretPost,
    },
    Preset {
        name: "slack",
        issuer: Some("https://slack.com"),
        authorization_endpoint: "https://slack.com/openid/connect/authorize",
        token_endpoint: "https://slack.com/api/openid.connect.token",
        userinfo_endpoint: "https://slack.com/api/openid.connect.userInfo",
        jwks_uri: Some("https://slack.com/openid/connect/keys"),
        scopes: &["openid", "email", "profile"],
        auth_method: ClientAuthMethod::ClientSecretPost,
    },
    Preset {
        name: "discord",
        issuer: None,
        authorization_endpoint: "https://discord.com/oauth2/authorize",
        token_endpoint: "https://discord.com/api/oauth2/token",
        userinfo_endpoint: "https://discord.com/api/users/@me",
        jwks_uri: None,
        scopes: &["identify", "email"],
        auth_method: ClientAuthMethod::ClientSecretPost,
    },
    // Outbound-app templates (`createApplicationByTemplate`); usable for sign-in only where the
    // provider answers a user document at the userinfo endpoint.
    Preset {
        name: "hubspot",
        issuer: None,
        authorization_endpoint: "https://app.hubspot.com/oauth/authorize",
        token_endpoint: "https://api.hubapi.com/oauth/v1/token",
        userinfo_endpoint: "https://api.hubapi.com/integrations/v1/me",
        jwks_uri: None,
        scopes: &["oauth"],
        auth_method: ClientAuthMethod::ClientSecretPost,
    },
    Preset {
        name: "salesforce",
        issuer: Some("https://login.salesforce.com"),
        authorization_endpoint: "https://login.salesforce.com/services/oauth2/authorize",
        token_endpoint: "https://login.salesforce.com/services/oauth2/token",
        userinfo_endpoint: "https://login.salesforce.com/services/oauth2/userinfo",
        jwks_uri: Some("https://login.salesforce.com/id/keys"),
        scopes: &["openid", "email", "profile", "refresh_token", "api"],
        auth_method: ClientAuthMethod::ClientSecretPost,
    },
];

pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}
