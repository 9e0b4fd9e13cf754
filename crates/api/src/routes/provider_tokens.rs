//! `/v1/mgmt/user/provider/token`: read (Descope), and the idvault extensions to store (PUT) and
//! forget (DELETE) a user's provider tokens.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use idvault_core::ids::ProviderName;
use idvault_core::user::UserRef;
use idvault_core::vault::ReadOptions;
use idvault_core::vault::{ProviderToken, StoreTokenRequest};

use crate::error::ApiResult;
use crate::extract::{query_bool, AppJson, AppQuery, MgmtAuth};
use crate::routes::empty_ok;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/mgmt/user/provider/token",
        get(get_provider_token).put(put_provider_token).delete(delete_provider_token),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenQuery {
    login_id: Option<String>,
    user_id: Option<String>,
    #[serde(default)]
    provider: String,
    #[serde(default, deserialize_with = "query_bool")]
    with_refresh_token: bool,
    #[serde(default, deserialize_with = "query_bool")]
    force_refresh: bool,
}

/// The wire answer. `providerUserId` as the Descope docs show it; Go's case-insensitive JSON
/// decoding maps it onto its `providerUserID` field.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenResponse {
    provider: String,
    provider_user_id: String,
    access_token: String,
    expiration: i64,
    scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

impl From<ProviderToken> for TokenResponse {
    fn from(t: ProviderToken) -> Self {
        TokenResponse {
            provider: t.provider.into_string(),
            provider_user_id: t.provider_user_id,
            access_token: t.access_token.expose_secret().to_owned(),
            expiration: t.expiration,
            scopes: t.scopes,
            refresh_token: t.refresh_token.map(|r| r.expose_secret().to_owned()),
        }
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn get_provider_token(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppQuery(q): AppQuery<TokenQuery>,
) -> ApiResult<Json<TokenResponse>> {
    let user = UserRef::from_parts(q.login_id.as_deref(), q.user_id.as_deref())?;
    let provider = ProviderName::parse(&q.provider)?;
    let opts = ReadOptions { with_refresh_token: q.with_refresh_token, force_refresh: q.force_refresh };
    let token = state.vault.get(&project, &user, &provider, opts).await?;
    Ok(Json(token.into()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutTokenRequest {
    login_id: Option<String>,
    user_id: Option<String>,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    provider_user_id: Option<String>,
    #[serde(default)]
    access_token: Option<SecretString>,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    #[serde(default)]
    expiration: Option<i64>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn put_provider_token(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<PutTokenRequest>,
) -> ApiResult<Json<Value>> {
    let user = UserRef::from_parts(body.login_id.as_deref(), body.user_id.as_deref())?;
    let req = StoreTokenRequest {
        provider: ProviderName::parse(&body.provider)?,
        provider_user_id: body.provider_user_id.unwrap_or_default(),
        access_token: body.access_token.unwrap_or_else(|| SecretString::from(String::new())),
        refresh_token: body.refresh_token.filter(|r| !r.expose_secret().is_empty()),
        expiration: body.expiration.unwrap_or(0),
        scopes: body.scopes.unwrap_or_default(),
    };
    state.vault.put(&project, &user, req).await?;
    Ok(empty_ok())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteTokenQuery {
    login_id: Option<String>,
    user_id: Option<String>,
    #[serde(default)]
    provider: String,
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_provider_token(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppQuery(q): AppQuery<DeleteTokenQuery>,
) -> ApiResult<Json<Value>> {
    let user = UserRef::from_parts(q.login_id.as_deref(), q.user_id.as_deref())?;
    let provider = ProviderName::parse(&q.provider)?;
    state.vault.delete(&project, &user, &provider).await?;
    Ok(empty_ok())
}
