//! Setting, reading and removing a project's provider configurations.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, ProviderName};
use crate::limits::{MAX_FIELD_LEN, MAX_SCOPES};
use crate::provider::presets::preset;
use crate::provider::{validate_url, ClientAuthMethod, OAuthClient, ProviderConfig};
use crate::secrets::{client_secret_aad, Cipher};
use crate::store::SharedStore;

/// A set (create or replace) request. `None` fields take the preset's or discovered value; on
/// replace, an absent client secret keeps the stored one.
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
}

#[derive(Clone)]
pub struct ProviderService {
    store: SharedStore,
    cipher: Arc<dyn Cipher>,
    oauth: Arc<dyn OAuthClient>,
    clock: SharedClock,
}

fn opt_url(field: &'static str, v: Option<String>) -> Result<Option<String>> {
    v.filter(|s| !s.is_empty()).map(|s| validate_url(field, &s)).transpose()
}

impl ProviderService {
    pub fn new(
        store: SharedStore,
        cipher: Arc<dyn Cipher>,
        oauth: Arc<dyn OAuthClient>,
        clock: SharedClock,
    ) -> Self {
        Self { store, cipher, oauth, clock }
    }

    pub async fn set(&self, project: &ProjectId, req: SetProvider) -> Result<ProviderConfig> {
        let name = ProviderName::parse(&req.name)?;
        if req.client_id.is_empty() {
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
        let mut issuer = opt_url("issuer", req.issuer)?.or(base.and_then(|b| b.issuer.map(str::to_owned)));
        let mut authorization = base.map(|b| b.authorization_endpoint.to_owned());
        let mut token = base.map(|b| b.token_endpoint.to_owned());
        let mut userinfo = base.map(|b| b.userinfo_endpoint.to_owned());
        let mut jwks = base.and_then(|b| b.jwks_uri.map(str::to_owned));
        let explicit_token = opt_url("tokenEndpoint", req.token_endpoint)?;
        // Discovery fills the endpoints of a custom OIDC provider given by its issuer.
        if base.is_none() && explicit_token.is_none() {
            if let Some(iss) = &issuer {
                let found = self
                    .oauth
                    .discover(iss)
                    .await
                    .map_err(|f| Error::invalid("issuer", format!("OIDC discovery failed: {f}")))?;
                issuer = Some(found.issuer);
                authorization = found.authorization_endpoint.or(authorization);
                token = found.token_endpoint.or(token);
                userinfo = found.userinfo_endpoint.or(userinfo);
                jwks = found.jwks_uri.or(jwks);
            }
        }
        let token_endpoint = explicit_token.or(token).ok_or(Error::MissingArgument("tokenEndpoint"))?;
        let token_endpoint = validate_url("tokenEndpoint", &token_endpoint)?;
        let scopes = req.scopes.unwrap_or_else(|| {
            base.map(|b| b.scopes.iter().map(|s| (*s).to_owned()).collect()).unwrap_or_default()
        });
        if scopes.len() > MAX_SCOPES
            || scopes.iter().any(|s| s.is_empty() || s.len() > MAX_FIELD_LEN || s.contains(' '))
        {
            return Err(Error::invalid("scopes", format!("at most {MAX_SCOPES} scopes without spaces")));
        }

        let existing = self.store.get_provider(project, &name).await?;
        let client_secret = match req.client_secret.filter(|s| !s.expose_secret().is_empty()) {
            Some(secret) => {
                let aad = client_secret_aad(project, &name);
                Some(self.cipher.seal(project, secret.expose_secret().as_bytes(), &aad).await?)
            }
            None => existing.as_ref().and_then(|e| e.client_secret.clone()),
        };
        let now = self.clock.now_ms();
        let config = ProviderConfig {
            client_id: req.client_id,
            client_secret,
            issuer,
            authorization_endpoint: opt_url("authorizationEndpoint", req.authorization_endpoint)?
                .or(authorization),
            token_endpoint,
            userinfo_endpoint: opt_url("userinfoEndpoint", req.userinfo_endpoint)?.or(userinfo),
            jwks_uri: opt_url("jwksUri", req.jwks_uri)?.or(jwks),
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
        Ok(config)
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
