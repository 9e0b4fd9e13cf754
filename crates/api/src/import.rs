//! One line of a users JSON Lines import (`idvault import --project P --users FILE.jsonl`): the
//! body of `POST /v1/mgmt/user/create` (same fields, same meaning), plus an optional `userId`
//! (kept, for migrations) and the user's `tokens`. The wire shape lives here with the other wire
//! types; the rules are core's (`idvault_core::user::import`).
//!
//! ```json
//! {"loginId": "ada@example.com", "displayName": "Ada", "userTenants": [{"tenantId": "t1", "roleNames": ["admin"]}],
//!  "customAttributes": {"plan": "pro"}, "userId": "U2abc",
//!  "tokens": {
//!    "provider": [{"provider": "google", "accessToken": "ya29...", "refreshToken": "1//...", "expiration": 1767225600,
//!                  "scopes": ["openid"], "providerUserId": "1234"}],
//!    "outbound": [{"appId": "github", "accessToken": "gho_...", "expiresIn": 3600, "scopes": ["repo"]}]}}
//! ```

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use idvault_core::error::{Error, Result};
use idvault_core::ids::ProviderName;
use idvault_core::outbound::BatchToken;
use idvault_core::user::import::ImportUser;
use idvault_core::vault::StoreTokenRequest;

use crate::fields as f;
use crate::routes::users::dto::CreateUserRequest;

/// One line of the file.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImportLine {
    #[serde(flatten)]
    pub user: CreateUserRequest,
    /// Kept as the user's id when given; generated otherwise.
    pub user_id: Option<String>,
    pub tokens: Option<ImportTokens>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImportTokens {
    /// As `PUT /v1/mgmt/user/provider/token` takes them.
    pub provider: Option<Vec<ProviderTokenLine>>,
    /// As the outbound user-token batch upload takes them, owned by this user.
    pub outbound: Option<Vec<OutboundTokenLine>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProviderTokenLine {
    pub provider: Option<String>,
    pub provider_user_id: Option<String>,
    pub access_token: Option<SecretString>,
    /// An empty string stores no refresh token.
    pub refresh_token: Option<SecretString>,
    /// Unix seconds when the access token expires; 0 or absent when unknown.
    #[serde(default, deserialize_with = "f::opt_int")]
    pub expiration: Option<i64>,
    pub scopes: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OutboundTokenLine {
    pub app_id: Option<String>,
    /// The tenant the token is for; absent for none.
    pub tenant_id: Option<String>,
    pub access_token: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    /// Unix seconds when the access token expires (the batch upload's `accessTokenExpiry` is
    /// accepted too).
    #[serde(default, alias = "accessTokenExpiry", deserialize_with = "f::opt_int")]
    pub expiration: Option<i64>,
    /// Seconds from the import on, as a provider's token answer gives it (instead of
    /// `expiration`).
    #[serde(default, deserialize_with = "f::opt_int")]
    pub expires_in: Option<i64>,
    pub access_token_type: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub external_identifier: Option<String>,
    pub granted_by: Option<String>,
}

impl ImportLine {
    /// Parses one line: a JSON error is a `BadRequest` naming what is wrong. A NUL character is
    /// refused here as the API's body extractor refuses it: PostgreSQL cannot store one, and
    /// finding it only at write time would leave the batches before it written.
    pub fn parse(line: &str) -> Result<ImportLine> {
        if crate::extract::has_nul_escape(line.as_bytes()) {
            return Err(Error::invalid("line", "must not contain NUL characters"));
        }
        serde_json::from_str(line).map_err(|e| Error::BadRequest(format!("malformed line: {e}")))
    }

    /// The domain request. `now_secs` turns an outbound token's `expiresIn` into a time.
    pub fn into_import_user(self, now_secs: i64) -> Result<ImportUser> {
        let tokens = self.tokens.unwrap_or_default();
        let provider = tokens
            .provider
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                Ok(StoreTokenRequest {
                    provider: ProviderName::parse(t.provider.as_deref().unwrap_or_default())?,
                    provider_user_id: t.provider_user_id.unwrap_or_default(),
                    access_token: t.access_token.unwrap_or_else(|| SecretString::from(String::new())),
                    refresh_token: t.refresh_token.filter(|r| !r.expose_secret().is_empty()),
                    expiration: t.expiration.unwrap_or(0),
                    scopes: t.scopes.unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let outbound = tokens
            .outbound
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                let expiration = match (t.expiration, t.expires_in) {
                    (Some(_), Some(_)) => {
                        return Err(Error::invalid("expiresIn", "give expiration or expiresIn, not both"))
                    }
                    (_, Some(secs)) if secs < 0 => {
                        return Err(Error::invalid("expiresIn", "must not be negative"))
                    }
                    (_, Some(secs)) => now_secs.saturating_add(secs),
                    (Some(at), None) => at,
                    (None, None) => 0,
                };
                Ok(BatchToken {
                    app_id: t.app_id.unwrap_or_default(),
                    user_id: String::new(),
                    tenant_id: t.tenant_id.unwrap_or_default(),
                    access_token: t.access_token,
                    refresh_token: t.refresh_token,
                    expiration,
                    access_token_type: t.access_token_type.unwrap_or_default(),
                    scopes: t.scopes.unwrap_or_default(),
                    external_identifier: t.external_identifier.unwrap_or_default(),
                    granted_by: t.granted_by.unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ImportUser {
            user_id: self.user_id.filter(|id| !id.is_empty()),
            user: self.user.into_new_user(false)?,
            tokens: provider,
            outbound_tokens: outbound,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_nul_character_is_refused_before_any_write() {
        let line = r#"{"loginId":"nul@example.com","displayName":"a\u0000b"}"#;
        assert!(matches!(ImportLine::parse(line), Err(Error::Invalid { .. })));
    }

    #[test]
    fn a_line_reads_like_a_create_body_with_tokens() {
        let line = r#"{"loginId":"ada@example.com","displayName":"Ada","userId":"Uada",
            "userTenants":[{"tenantId":"t1","roleNames":["admin"]}],"customAttributes":{"plan":"pro"},
            "tokens":{"provider":[{"provider":"google","accessToken":"at","expiration":5}],
                      "outbound":[{"appId":"gh","accessToken":"o","expiresIn":10,"scopes":["repo"]}]}}"#;
        let u = ImportLine::parse(line).unwrap().into_import_user(100).unwrap();
        assert_eq!(u.user_id.as_deref(), Some("Uada"));
        assert_eq!(u.user.name.as_deref(), Some("Ada"));
        assert_eq!(u.user.tenants[0].role_names, ["admin"]);
        assert_eq!(u.tokens[0].expiration, 5);
        assert_eq!(u.outbound_tokens[0].expiration, 110);
        assert!(matches!(ImportLine::parse("{nope"), Err(Error::BadRequest(_))));
    }
}
