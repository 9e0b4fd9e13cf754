//! Setting, reading and removing a project's provider configurations.
//!
//! Audited: each provider configuration set (`ProviderConfigCreated` or `ProviderConfigModified`,
//! with the fields it changed by name) and removed. Outbound apps are provider configurations
//! too; their service records them as apps (see `crate::outbound`). A record never holds the
//! client secret: a new one shows as the field name `clientSecret` among the changed fields.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::audit::{actions, Audit, AuditRecord};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, ProviderName};
use crate::limits::{MAX_FIELD_LEN, MAX_SCOPES};
use crate::provider::address::{check_url, host_for_log, UrlKind, PROVIDER_UNUSABLE};
use crate::provider::presets::preset;
use crate::provider::{AppSettings, ClientAuthMethod, OAuthClient, ProviderConfig};
use crate::secrets::{client_secret_aad, Cipher};
use crate::store::SharedStore;

/// A set (create or replace) request. `None` fields take the preset's or discovered value; on
/// replace, an absent client secret keeps the stored one, unless the issuer, an endpoint or the
/// client id changes (then the secret is required again).
#[derive(Debug, Default)]
pub struct SetProvider {
    pub name: String,
    /// A preset to start from; defaults to the preset of the same name, if any.
    pub preset: Option<String>,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub auth_method: Option<ClientAuthMethod>,
    /// Set by the outbound app service (`crate::outbound`): the app's name and fields. `None`
    /// (a set through `/v1/mgmt/provider/set`) keeps the stored ones.
    pub app: Option<(String, AppSettings)>,
}

#[derive(Clone)]
pub struct ProviderService {
    store: SharedStore,
    cipher: Arc<dyn Cipher>,
    oauth: Arc<dyn OAuthClient>,
    clock: SharedClock,
    audit: Audit,
}

/// The fields of a configuration that differ between `before` (none: created) and `after`, by
/// name, for the audit trail: never a value, so never the secret.
pub(crate) fn changed_fields(before: Option<&ProviderConfig>, after: &ProviderConfig) -> Vec<String> {
    let Some(before) = before else {
        return Vec::new();
    };
    let mut fields: Vec<String> = [
        ("clientId", before.client_id != after.client_id),
        // Sealed anew whenever one is given, so this says "a secret was given", changed or not.
        ("clientSecret", before.client_secret != after.client_secret),
        ("issuer", before.issuer != after.issuer),
        ("authorizationEndpoint", before.authorization_endpoint != after.authorization_endpoint),
        ("tokenEndpoint", before.token_endpoint != after.token_endpoint),
        ("userinfoEndpoint", before.userinfo_endpoint != after.userinfo_endpoint),
        ("jwksUri", before.jwks_uri != after.jwks_uri),
        ("scopes", before.scopes != after.scopes),
        ("authMethod", before.auth_method != after.auth_method),
        ("name", before.display_name != after.display_name),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(field, _)| field.to_owned())
    .collect();
    // The app's own fields, named as the API names them.
    let as_map = |app: Option<&crate::provider::AppSettings>| match app.map(serde_json::to_value) {
        Some(Ok(serde_json::Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (as_map(before.app.as_ref()), as_map(after.app.as_ref()));
    for (key, value) in &new {
        if old.get(key) != Some(value) {
            fields.push(key.clone());
        }
    }
    for key in old.keys() {
        if !new.contains_key(key) {
            fields.push(key.clone());
        }
    }
    fields
}

impl ProviderService {
    pub fn new(
        store: SharedStore,
        cipher: Arc<dyn Cipher>,
        oauth: Arc<dyn OAuthClient>,
        clock: SharedClock,
    ) -> Self {
        let audit = Audit::disabled(clock.clone());
        Self { store, cipher, oauth, clock, audit }
    }

    /// Records configuration changes in `audit`.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    pub(crate) fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Creates or replaces a provider configuration (`/v1/mgmt/provider/set`).
    pub async fn set(&self, project: &ProjectId, req: SetProvider) -> Result<ProviderConfig> {
        let (config, before) = self.save(project, req).await?;
        let action = if before.is_some() {
            actions::PROVIDER_CONFIG_MODIFIED
        } else {
            actions::PROVIDER_CONFIG_CREATED
        };
        self.audit.record(
            AuditRecord::new(project, action)
                .data("provider", config.name.as_str())
                .data("fields", changed_fields(before.as_ref(), &config)),
        );
        Ok(config)
    }

    /// [`Self::set`] without the audit (the outbound app service records its own): answers the
    /// stored configuration and the one it replaced.
    pub(crate) async fn save(
        &self,
        project: &ProjectId,
        req: SetProvider,
    ) -> Result<(ProviderConfig, Option<ProviderConfig>)> {
        let name = ProviderName::parse(&req.name)?;
        // An outbound app may be created before its client is registered (or be an API-key app
        // that has none); a provider needs one.
        if req.client_id.is_empty() && req.app.is_none() {
            return Err(Error::MissingArgument("clientId"));
        }
        if req.client_id.len() > MAX_FIELD_LEN {
            return Err(Error::invalid("clientId", format!("at most {MAX_FIELD_LEN} bytes")));
        }
        let base = match req.preset.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => {
                Some(preset(p).ok_or_else(|| Error::invalid("preset", format!("unknown preset '{p}'")))?)
            }
            None => preset(name.as_str()),
        };
        // Every URL runs through the SSRF policy (crate::provider::address) before anything is
        // fetched or stored; a refusal and a failed discovery answer the same generic error.
        let allowed = self.oauth.allowed_hosts();
        let check = |field: &'static str, origin: &'static str, url: &str, kind: UrlKind| -> Result<()> {
            check_url(url, kind, allowed).map(|_| ()).map_err(|why| {
                tracing::warn!(%project, field, origin, host = %host_for_log(url), %why, "provider URL refused");
                Error::invalid(origin, PROVIDER_UNUSABLE)
            })
        };
        let given = |field: &'static str, v: Option<String>| -> Result<Option<String>> {
            let v = v.filter(|s| !s.is_empty());
            if let Some(url) = &v {
                let kind = if field == "issuer" { UrlKind::Issuer } else { UrlKind::Endpoint };
                check(field, field, url, kind)?;
            }
            Ok(v)
        };
        let given_issuer = given("issuer", req.issuer)?;
        let given_authorization = given("authorizationEndpoint", req.authorization_endpoint)?;
        let explicit_token = given("tokenEndpoint", req.token_endpoint)?;
        let given_userinfo = given("userinfoEndpoint", req.userinfo_endpoint)?;
        let given_jwks = given("jwksUri", req.jwks_uri)?;

        let mut issuer = given_issuer.or(base.and_then(|b| b.issuer.map(str::to_owned)));
        let mut authorization = base.map(|b| b.authorization_endpoint.to_owned());
        let mut token = base.map(|b| b.token_endpoint.to_owned());
        let mut userinfo = base.map(|b| b.userinfo_endpoint.to_owned());
        let mut jwks = base.and_then(|b| b.jwks_uri.map(str::to_owned));
        // Discovery fills the endpoints of a custom OIDC provider given by its issuer. What it
        // names goes through the same policy: a refusal is reported against the issuer.
        if base.is_none() && explicit_token.is_none() {
            if let Some(iss) = &issuer {
                let found = self.oauth.discover(project, iss).await.map_err(|failure| {
                    tracing::warn!(%project, host = %host_for_log(iss), %failure, "OIDC discovery failed");
                    Error::invalid("issuer", PROVIDER_UNUSABLE)
                })?;
                check("issuer", "issuer", &found.issuer, UrlKind::Issuer)?;
                for (field, url) in [
                    ("authorizationEndpoint", &found.authorization_endpoint),
                    ("tokenEndpoint", &found.token_endpoint),
                    ("userinfoEndpoint", &found.userinfo_endpoint),
                    ("jwksUri", &found.jwks_uri),
                ] {
                    if let Some(url) = url {
                        check(field, "issuer", url, UrlKind::Endpoint)?;
                    }
                }
                issuer = Some(found.issuer);
                authorization = found.authorization_endpoint.or(authorization);
                token = found.token_endpoint.or(token);
                userinfo = found.userinfo_endpoint.or(userinfo);
                jwks = found.jwks_uri.or(jwks);
            }
        }
        let token_endpoint = match explicit_token.or(token) {
            Some(url) => url,
            // An app without a token endpoint is stored; it cannot refresh tokens until it has one.
            None if req.app.is_some() => String::new(),
            None => return Err(Error::MissingArgument("tokenEndpoint")),
        };
        let authorization_endpoint = given_authorization.or(authorization);
        let userinfo_endpoint = given_userinfo.or(userinfo);
        let jwks_uri = given_jwks.or(jwks);
        // Presets too (one rule for every URL the server uses).
        if !token_endpoint.is_empty() {
            check("tokenEndpoint", "tokenEndpoint", &token_endpoint, UrlKind::Endpoint)?;
        }
        if let Some(iss) = &issuer {
            check("issuer", "issuer", iss, UrlKind::Issuer)?;
        }
        for (field, url) in [
            ("authorizationEndpoint", &authorization_endpoint),
            ("userinfoEndpoint", &userinfo_endpoint),
            ("jwksUri", &jwks_uri),
        ] {
            if let Some(url) = url {
                check(field, field, url, UrlKind::Endpoint)?;
            }
        }
        let scopes = req.scopes.unwrap_or_else(|| {
            base.map(|b| b.scopes.iter().map(|s| (*s).to_owned()).collect()).unwrap_or_default()
        });
        if scopes.len() > MAX_SCOPES
            || scopes.iter().any(|s| s.is_empty() || s.len() > MAX_FIELD_LEN || s.contains(' '))
        {
            return Err(Error::invalid("scopes", format!("at most {MAX_SCOPES} scopes without spaces")));
        }

        let existing = self.store.get_provider(project, &name).await?;
        let new_secret = req.client_secret.filter(|s| !s.expose_secret().is_empty());
        // The stored secret is write-only: it may be kept only while it keeps going to the same
        // provider. A new issuer, endpoint or client id needs the secret again, or a caller could
        // point the token endpoint at itself and receive the secret on the next refresh.
        if let (None, Some(old)) = (&new_secret, &existing) {
            let moved = old.client_id != req.client_id
                || old.issuer != issuer
                || old.token_endpoint != token_endpoint
                || old.authorization_endpoint != authorization_endpoint
                || old.userinfo_endpoint != userinfo_endpoint
                || old.jwks_uri != jwks_uri;
            if moved && old.client_secret.is_some() {
                return Err(Error::invalid(
                    "clientSecret",
                    "required again when the issuer, an endpoint or the client id changes",
                ));
            }
        }
        let client_secret = match new_secret {
            Some(secret) => {
                let aad = client_secret_aad(project, &name);
                Some(self.cipher.seal(project, secret.expose_secret().as_bytes(), &aad).await?)
            }
            None => existing.as_ref().and_then(|e| e.client_secret.clone()),
        };
        let now = self.clock.now_ms();
        let (display_name, app) = match req.app {
            Some((display_name, app)) => (Some(display_name), Some(app)),
            None => (
                existing.as_ref().and_then(|e| e.display_name.clone()),
                existing.as_ref().and_then(|e| e.app.clone()),
            ),
        };
        let config = ProviderConfig {
            display_name,
            app,
            client_id: req.client_id,
            client_secret,
            issuer,
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            jwks_uri,
            scopes,
            auth_method: req
                .auth_method
                .or(base.map(|b| b.auth_method))
                .unwrap_or(ClientAuthMethod::ClientSecretBasic),
            created_ms: existing.as_ref().map(|e| e.created_ms).unwrap_or(now),
            updated_ms: now,
            name,
        };
        self.store.put_provider(project, &config).await?;
        Ok((config, existing))
    }

    pub async fn get(&self, project: &ProjectId, name: &str) -> Result<ProviderConfig> {
        let name = ProviderName::parse(name)?;
        self.store
            .get_provider(project, &name)
            .await?
            .ok_or_else(|| Error::ProviderNotConfigured(name.to_string()))
    }

    pub async fn list(&self, project: &ProjectId) -> Result<Vec<ProviderConfig>> {
        self.store.list_providers(project).await
    }

    pub async fn remove(&self, project: &ProjectId, name: &str) -> Result<()> {
        let name = ProviderName::parse(name)?;
        if self.store.delete_provider(project, &name).await? {
            self.audit.record(
                AuditRecord::new(project, actions::PROVIDER_CONFIG_DELETED).data("provider", name.as_str()),
            );
            Ok(())
        } else {
            Err(Error::ProviderNotConfigured(name.to_string()))
        }
    }

    /// Opens a stored client secret.
    pub async fn open_client_secret(
        &self,
        project: &ProjectId,
        config: &ProviderConfig,
    ) -> Result<Option<SecretString>> {
        let Some(sealed) = &config.client_secret else {
            return Ok(None);
        };
        let aad = client_secret_aad(project, &config.name);
        let bytes = self.cipher.open(project, sealed, &aad).await?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::Decrypt("client secret is not UTF-8"))?;
        Ok(Some(SecretString::from(text.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::AppSettings;

    fn config() -> ProviderConfig {
        ProviderConfig {
            name: ProviderName::parse("acme").unwrap_or_else(|e| panic!("{e}")),
            client_id: "cid".into(),
            client_secret: Some(b"sealed-1".to_vec()),
            issuer: None,
            authorization_endpoint: Some("https://idp.example.com/auth".into()),
            token_endpoint: "https://idp.example.com/token".into(),
            userinfo_endpoint: None,
            jwks_uri: None,
            scopes: vec!["openid".into()],
            auth_method: ClientAuthMethod::ClientSecretBasic,
            created_ms: 1,
            updated_ms: 1,
            display_name: None,
            app: None,
        }
    }

    /// Changes are named, never valued: a new secret shows as `clientSecret` only.
    #[test]
    fn changed_fields_name_what_changed_and_never_a_value() {
        let before = config();
        assert!(changed_fields(None, &before).is_empty(), "a creation changes nothing");
        assert!(changed_fields(Some(&before), &ProviderConfig { updated_ms: 9, ..config() }).is_empty());
        let after = ProviderConfig {
            client_secret: Some(b"sealed-2".to_vec()),
            scopes: vec!["openid".into(), "email".into()],
            display_name: Some("Acme".into()),
            app: Some(AppSettings { description: "d".into(), ..Default::default() }),
            ..config()
        };
        let fields = changed_fields(Some(&before), &after);
        assert_eq!(fields[..3], ["clientSecret", "scopes", "name"]);
        // Every app field is new to a provider that had none; each by its API name.
        assert!(
            fields.contains(&"description".to_owned()) && fields.contains(&"appType".to_owned()),
            "{fields:?}"
        );
        assert!(!fields.iter().any(|f| f.contains("sealed") || f == "d"), "{fields:?}");
    }
}
