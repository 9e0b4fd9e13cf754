//! Outbound tokens: fetch (by scopes, latest; user and tenant), single uploads of OAuth tokens
//! and API keys, deletes, and the apps a user holds a token for.

use axum::extract::State;
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::ids::UserId;
use idvault_core::outbound::{FetchRequest, OutboundToken, TokenOwner, UploadRequest};

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, MgmtAuth};
use crate::fields as f;
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::empty_ok;
use crate::state::AppState;

use super::required;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(fetch_user_token))
        .routes(routes!(fetch_latest_user_token))
        .routes(routes!(fetch_tenant_token))
        .routes(routes!(fetch_latest_tenant_token))
        .routes(routes!(upload_user_token))
        .routes(routes!(upload_tenant_token))
        .routes(routes!(upload_user_api_key))
        .routes(routes!(upload_tenant_api_key))
        .routes(routes!(delete_user_tokens))
        .routes(routes!(delete_token))
        .routes(routes!(apps_with_user_token))
}

// ---- token fetch ----------------------------------------------------------------------------

/// Fetch options; unknown keys are ignored.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OutboundFetchOptions)]
struct FetchOptions {
    /// Answer the refresh token too.
    with_refresh_token: Option<bool>,
    /// Refresh at the provider first, even if the access token is fresh.
    force_refresh: Option<bool>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct FetchBody {
    #[schema(schema_with = f::app_id_opt, required = true)]
    app_id: Option<String>,
    /// User fetches only.
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    /// Required on tenant fetches; on user fetches, only tokens of this tenant.
    #[schema(schema_with = f::outbound_text_opt)]
    tenant_id: Option<String>,
    /// By-scopes fetches: the token's granted scopes must include all of these.
    #[schema(schema_with = f::scopes_opt)]
    scopes: Option<Vec<String>>,
    options: Option<FetchOptions>,
}

/// A token as answered.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TokenView {
    id: String,
    app_id: String,
    /// Empty on tenant tokens.
    user_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    tenant_id: String,
    /// The access token, or the API key of an API-key app.
    access_token: String,
    access_token_type: String,
    /// Unix seconds; 0 when unknown (and for API keys).
    access_token_expiry: i64,
    has_refresh_token: bool,
    /// Only with `options.withRefreshToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// Unix seconds of the last refresh; 0 for never.
    last_refresh_time: i64,
    last_refresh_error: String,
    scopes: Vec<String>,
    granted_by: String,
    external_identifier: String,
    token_sub: String,
}

impl From<OutboundToken> for TokenView {
    fn from(t: OutboundToken) -> Self {
        TokenView {
            id: t.id,
            app_id: t.app_id,
            user_id: t.user_id,
            tenant_id: t.tenant_id,
            access_token: t.access_token.expose_secret().to_owned(),
            access_token_type: t.access_token_type,
            access_token_expiry: t.expiration,
            has_refresh_token: t.has_refresh_token,
            refresh_token: t.refresh_token.map(|r| r.expose_secret().to_owned()),
            last_refresh_time: t.last_refresh_ms.div_euclid(1000),
            last_refresh_error: t.last_refresh_error,
            scopes: t.scopes,
            granted_by: t.granted_by,
            external_identifier: t.external_identifier,
            token_sub: t.token_sub,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct TokenEnvelope {
    token: TokenView,
}

/// Which fetch a route is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fetch {
    UserByScopes,
    UserLatest,
    TenantByScopes,
    TenantLatest,
}

async fn fetch(
    state: &AppState,
    project: &idvault_core::ids::ProjectId,
    body: FetchBody,
    kind: Fetch,
) -> ApiResult<Json<TokenEnvelope>> {
    let app_id = required(body.app_id, "appId")?;
    let tenant = body.tenant_id.filter(|t| !t.is_empty());
    let (owner, tenant_filter) = match kind {
        Fetch::UserByScopes | Fetch::UserLatest => {
            let user = UserId::parse(body.user_id.as_deref().unwrap_or_default())?;
            (TokenOwner::User(user), tenant)
        }
        Fetch::TenantByScopes | Fetch::TenantLatest => {
            let Some(tenant) = tenant else {
                return Err(idvault_core::Error::MissingArgument("tenantId").into());
            };
            (TokenOwner::Tenant(tenant), None)
        }
    };
    let scopes = match kind {
        Fetch::UserByScopes | Fetch::TenantByScopes => Some(body.scopes.unwrap_or_default()),
        Fetch::UserLatest | Fetch::TenantLatest => None,
    };
    let options = body.options.unwrap_or_default();
    let req = FetchRequest {
        app_id,
        owner,
        tenant_id: tenant_filter,
        scopes,
        with_refresh_token: options.with_refresh_token.unwrap_or(false),
        force_refresh: options.force_refresh.unwrap_or(false),
    };
    let token = state.outbound.fetch(project, req).await?;
    Ok(Json(TokenEnvelope { token: token.into() }))
}

/// A user's token whose granted scopes include the requested ones (the most recently updated of
/// those), refreshed first if it expires within a minute or `forceRefresh` is set.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/user/token",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = FetchBody,
    responses(
        (status = 200, description = "The token", body = TokenEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No matching token (`E152102`) or no such app (`E152101`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn fetch_user_token(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<FetchBody>,
) -> ApiResult<Json<TokenEnvelope>> {
    fetch(&state, &project, body, Fetch::UserByScopes).await
}

/// A user's most recently updated token for the app.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/user/token/latest",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = FetchBody,
    responses(
        (status = 200, description = "The token", body = TokenEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No token (`E152102`) or no such app (`E152101`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn fetch_latest_user_token(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<FetchBody>,
) -> ApiResult<Json<TokenEnvelope>> {
    fetch(&state, &project, body, Fetch::UserLatest).await
}

/// A tenant's token whose granted scopes include the requested ones.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/tenant/token",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = FetchBody,
    responses(
        (status = 200, description = "The token", body = TokenEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No matching token (`E152102`) or no such app (`E152101`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn fetch_tenant_token(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<FetchBody>,
) -> ApiResult<Json<TokenEnvelope>> {
    fetch(&state, &project, body, Fetch::TenantByScopes).await
}

/// A tenant's most recently updated token for the app.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/tenant/token/latest",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = FetchBody,
    responses(
        (status = 200, description = "The token", body = TokenEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No token (`E152102`) or no such app (`E152101`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn fetch_latest_tenant_token(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<FetchBody>,
) -> ApiResult<Json<TokenEnvelope>> {
    fetch(&state, &project, body, Fetch::TenantLatest).await
}

// ---- uploads ------------------------------------------------------------------------------

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UploadBody {
    #[schema(schema_with = f::app_id_opt, required = true)]
    app_id: Option<String>,
    /// User uploads.
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    /// Required on tenant uploads; on user uploads, the tenant the token is for.
    #[schema(schema_with = f::outbound_text_opt)]
    tenant_id: Option<String>,
    /// At least one of `accessToken` and `refreshToken`.
    #[schema(schema_with = f::token_opt)]
    access_token: Option<SecretString>,
    #[schema(schema_with = f::token_opt)]
    refresh_token: Option<SecretString>,
    /// Unix seconds; 0 or absent when unknown.
    #[serde(default, deserialize_with = "f::opt_int")]
    #[schema(schema_with = f::expiration_opt)]
    access_token_expiry: Option<i64>,
    /// Default `Bearer`.
    #[schema(schema_with = f::outbound_text_opt)]
    access_token_type: Option<String>,
    #[schema(schema_with = f::scopes_opt)]
    scopes: Option<Vec<String>>,
    #[schema(schema_with = f::outbound_text_opt)]
    external_identifier: Option<String>,
    /// Accepted and not stored.
    #[schema(schema_with = f::token_opt)]
    id_token: Option<SecretString>,
    #[schema(schema_with = f::outbound_text_opt)]
    granted_by: Option<String>,
    /// Refresh at the provider before storing; nothing is stored if that fails.
    verify_refresh: Option<bool>,
}

async fn upload(
    state: &AppState,
    project: &idvault_core::ids::ProjectId,
    body: UploadBody,
    tenant_owned: bool,
) -> ApiResult<Json<Value>> {
    let app_id = required(body.app_id, "appId")?;
    let tenant = body.tenant_id.unwrap_or_default();
    let (owner, tenant_id) = if tenant_owned {
        (TokenOwner::Tenant(tenant), String::new())
    } else {
        (TokenOwner::User(UserId::parse(body.user_id.as_deref().unwrap_or_default())?), tenant)
    };
    let _ = body.id_token;
    let req = UploadRequest {
        app_id,
        owner,
        tenant_id,
        access_token: body.access_token,
        refresh_token: body.refresh_token,
        expiration: body.access_token_expiry.unwrap_or(0),
        access_token_type: body.access_token_type.unwrap_or_default(),
        scopes: body.scopes.unwrap_or_default(),
        external_identifier: body.external_identifier.unwrap_or_default(),
        granted_by: body.granted_by.unwrap_or_default(),
        verify_refresh: body.verify_refresh.unwrap_or(false),
    };
    state.outbound.upload_token(project, req).await?;
    Ok(empty_ok())
}

/// Stores a user's OAuth token: it replaces the user's token with the same app, tenant and
/// scope set, or is added beside the others.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/user/oauthtoken/upload",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = UploadBody,
    responses(
        (status = 200, description = "Stored", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such app (`E152101`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn upload_user_token(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<UploadBody>,
) -> ApiResult<Json<Value>> {
    upload(&state, &project, body, false).await
}

/// Stores a tenant's OAuth token (same replacement rule as the user upload).
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/tenant/oauthtoken/upload",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = UploadBody,
    responses(
        (status = 200, description = "Stored", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such app (`E152101`) or tenant (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn upload_tenant_token(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<UploadBody>,
) -> ApiResult<Json<Value>> {
    upload(&state, &project, body, true).await
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ApiKeyBody {
    #[schema(schema_with = f::app_id_opt, required = true)]
    app_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    #[schema(schema_with = f::outbound_text_opt)]
    tenant_id: Option<String>,
    #[schema(schema_with = f::token_opt, required = true)]
    api_key: Option<SecretString>,
}

async fn upload_key(
    state: &AppState,
    project: &idvault_core::ids::ProjectId,
    body: ApiKeyBody,
    tenant_owned: bool,
) -> ApiResult<Json<Value>> {
    let app_id = required(body.app_id, "appId")?;
    let tenant = body.tenant_id.unwrap_or_default();
    let (owner, tenant_id) = if tenant_owned {
        (TokenOwner::Tenant(tenant), String::new())
    } else {
        (TokenOwner::User(UserId::parse(body.user_id.as_deref().unwrap_or_default())?), tenant)
    };
    state.outbound.upload_api_key(project, &app_id, owner, tenant_id, body.api_key).await?;
    Ok(empty_ok())
}

/// Stores a user's API key for an API-key app (answered by the fetch calls as `accessToken`).
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/user/apikey/upload",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = ApiKeyBody,
    responses(
        (status = 200, description = "Stored", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such app (`E152101`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn upload_user_api_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<ApiKeyBody>,
) -> ApiResult<Json<Value>> {
    upload_key(&state, &project, body, false).await
}

/// Stores a tenant's API key for an API-key app.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/tenant/apikey/upload",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = ApiKeyBody,
    responses(
        (status = 200, description = "Stored", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such app (`E152101`) or tenant (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn upload_tenant_api_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<ApiKeyBody>,
) -> ApiResult<Json<Value>> {
    upload_key(&state, &project, body, true).await
}

// ---- deletes and listing --------------------------------------------------------------------

/// A query value as the SDKs send it: Node writes an absent value as the text `undefined`.
fn given(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty() && s != "undefined" && s != "null")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserTokensQuery {
    app_id: Option<String>,
    user_id: Option<String>,
}

impl IntoParams for UserTokensQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![f::app_or_user_query()]
    }
}

/// Deletes user tokens of an app, of a user, or of both (at least one is required).
#[utoipa::path(
    delete,
    path = "/v1/mgmt/outbound/user/tokens",
    tag = "outbound-apps",
    security(("management_key" = [])),
    params(UserTokensQuery),
    responses((status = 200, description = "Deleted", body = Empty), MgmtErrors, BodyErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_user_tokens(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppQuery(q): AppQuery<UserTokensQuery>,
) -> ApiResult<Json<Value>> {
    let (app, user) = (given(q.app_id), given(q.user_id));
    state.outbound.delete_user_tokens(&project, app.as_deref(), user.as_deref()).await?;
    Ok(empty_ok())
}

#[derive(Deserialize)]
struct TokenIdQuery {
    id: Option<String>,
}

impl IntoParams for TokenIdQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![f::query("id", true, "The token id.", f::outbound_text_opt())]
    }
}

/// Deletes one token (user or tenant) by id.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/outbound/token",
    tag = "outbound-apps",
    security(("management_key" = [])),
    params(TokenIdQuery),
    responses(
        (status = 200, description = "Deleted", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such token (`E152102`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_token(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppQuery(q): AppQuery<TokenIdQuery>,
) -> ApiResult<Json<Value>> {
    state.outbound.delete_token(&project, given(q.id).as_deref().unwrap_or_default()).await?;
    Ok(empty_ok())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppsWithTokenQuery {
    user_id: Option<String>,
    tenant_id: Option<String>,
}

impl IntoParams for AppsWithTokenQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            f::query("userId", true, "The user.", f::user_id_opt()),
            f::query("tenantId", false, "Only tokens of this tenant.", f::outbound_text_opt()),
        ]
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AppIdsEnvelope {
    app_ids: Vec<String>,
}

/// The ids of the apps the user holds a valid token for (tokens refused by the provider are
/// left out).
#[utoipa::path(
    get,
    path = "/v1/mgmt/outbound/apps-with-user-token",
    tag = "outbound-apps",
    security(("management_key" = [])),
    params(AppsWithTokenQuery),
    responses((status = 200, description = "The app ids", body = AppIdsEnvelope), MgmtErrors, BodyErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn apps_with_user_token(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppQuery(q): AppQuery<AppsWithTokenQuery>,
) -> ApiResult<Json<AppIdsEnvelope>> {
    let user = given(q.user_id).unwrap_or_default();
    let tenant = given(q.tenant_id);
    let app_ids = state.outbound.apps_with_user_token(&project, &user, tenant.as_deref()).await?;
    Ok(Json(AppIdsEnvelope { app_ids }))
}
