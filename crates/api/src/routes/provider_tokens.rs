//! `/v1/mgmt/user/provider/token`: read (Descope), and the idvault extensions to store (PUT) and
//! forget (DELETE) a user's provider tokens.

use axum::extract::State;
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::ids::ProviderName;
use idvault_core::user::UserRef;
use idvault_core::vault::ReadOptions;
use idvault_core::vault::{ProviderToken, StoreTokenRequest};

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{query_bool, AppJson, AppQuery, MgmtAuth};
use crate::fields as f;
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::empty_ok;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_provider_token, put_provider_token, delete_provider_token))
}

/// The user is named by `loginId` or `userId` (one of them is required).
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

/// `loginId` or `userId`, and the provider.
fn user_and_provider() -> Vec<Parameter> {
    vec![
        f::user_query(),
        f::query("provider", true, "The provider's name, such as `google`.", f::provider_req()),
    ]
}

impl IntoParams for TokenQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let flag = || ObjectBuilder::new().schema_type(Type::Boolean).build();
        let mut params = user_and_provider();
        params.push(f::query(
            "withRefreshToken",
            false,
            "Also answer the refresh token (`true`/`false`, `1`/`0`).",
            flag(),
        ));
        params.push(f::query(
            "forceRefresh",
            false,
            "Refresh the access token at the provider first, even if it has not expired.",
            flag(),
        ));
        params
    }
}

/// The wire answer. `providerUserId` as the Descope docs show it; Go's case-insensitive JSON
/// decoding maps it onto its `providerUserID` field.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TokenResponse {
    provider: String,
    provider_user_id: String,
    access_token: String,
    /// Unix seconds when the access token expires; 0 when unknown.
    expiration: i64,
    scopes: Vec<String>,
    /// Only with `withRefreshToken=true`, when one is stored.
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

/// A user's access token for a provider.
///
/// The token is refreshed at the provider first when it has expired, or when `forceRefresh` is
/// set.
#[utoipa::path(
    get,
    path = "/v1/mgmt/user/provider/token",
    tag = "provider-tokens",
    security(("management_key" = [])),
    params(TokenQuery),
    responses(
        (status = 200, description = "The token", body = TokenResponse),
        MgmtErrors,
        (status = 500, description = "Internal error (`E011500`), or the stored token could not be \
            decrypted (`E112104`)", body = ErrorBody),
        (status = 404, description = "No token stored for this user and provider (`E112103`), or a refresh \
            is needed and the provider is not configured (`E112112`)", body = ErrorBody),
        (status = 409, description = "The provider revoked the grant: the user must sign in again \
            (`E112105`)", body = ErrorBody),
        (status = 502, description = "The provider failed the refresh (`E112106`–`E112110`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn get_provider_token(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppQuery(q): AppQuery<TokenQuery>,
) -> ApiResult<Json<TokenResponse>> {
    let user = UserRef::from_parts(q.login_id.as_deref(), q.user_id.as_deref())?;
    let provider = ProviderName::parse(&q.provider)?;
    let opts = ReadOptions { with_refresh_token: q.with_refresh_token, force_refresh: q.force_refresh };
    let token = state.vault.get(&project, &user, &provider, opts).await?;
    Ok(Json(token.into()))
}

/// A provider token to store; the user is named by `loginId` or `userId`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PutTokenRequest {
    #[schema(schema_with = f::login_id_opt)]
    login_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    /// The provider's name, such as `google`.
    #[serde(default)]
    #[schema(schema_with = f::provider_req, required = true)]
    provider: String,
    #[serde(default)]
    #[schema(schema_with = f::text_opt)]
    provider_user_id: Option<String>,
    #[serde(default)]
    #[schema(schema_with = f::token_req, required = true)]
    access_token: Option<SecretString>,
    /// An empty string stores no refresh token.
    #[serde(default)]
    #[schema(schema_with = f::token_opt)]
    refresh_token: Option<SecretString>,
    /// Unix seconds when the access token expires; 0 or absent when unknown.
    #[serde(default, deserialize_with = "f::opt_int")]
    #[schema(schema_with = f::expiration_opt)]
    expiration: Option<i64>,
    #[serde(default)]
    #[schema(schema_with = f::scopes_opt)]
    scopes: Option<Vec<String>>,
}

/// idvault extension: stores (replaces) a user's tokens for a provider, encrypted at rest.
#[utoipa::path(
    put,
    path = "/v1/mgmt/user/provider/token",
    tag = "provider-tokens",
    security(("management_key" = [])),
    request_body = PutTokenRequest,
    responses((status = 200, description = "Stored", body = Empty), MgmtErrors, BodyErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn put_provider_token(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
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

/// The user is named by `loginId` or `userId` (one of them is required).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteTokenQuery {
    login_id: Option<String>,
    user_id: Option<String>,
    #[serde(default)]
    provider: String,
}

impl IntoParams for DeleteTokenQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        user_and_provider()
    }
}

/// idvault extension: forgets a user's tokens for a provider.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/user/provider/token",
    tag = "provider-tokens",
    security(("management_key" = [])),
    params(DeleteTokenQuery),
    responses((status = 200, description = "Forgotten (also when none was stored)", body = Empty), MgmtErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_provider_token(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppQuery(q): AppQuery<DeleteTokenQuery>,
) -> ApiResult<Json<Value>> {
    let user = UserRef::from_parts(q.login_id.as_deref(), q.user_id.as_deref())?;
    let provider = ProviderName::parse(&q.provider)?;
    state.vault.delete(&project, &user, &provider).await?;
    Ok(empty_ok())
}
