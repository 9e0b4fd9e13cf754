//! `/v1/mgmt/outbound/*`: Descope's outbound application API (the token vault the SDKs call
//! `outbound_application` / `outboundApplication`). Apps are the project's providers with the app
//! fields; the client secret, tokens and keys are write-only except through the fetch calls.
//!
//! Wire quirks handled here: Python sends `null` for every absent field (read as absent); Node
//! puts an absent query value in the query string as the text `undefined` (read as absent);
//! `authorizationUrlParams` items carry `name` (Python) or `key` (Node); unknown `options` keys
//! are ignored.

use axum::extract::{Path, State};
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::ids::UserId;
use idvault_core::outbound::{AppRequest, FetchRequest, OutboundToken, TokenOwner, UploadRequest};
use idvault_core::provider::{ProviderConfig, UrlParam};

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, MgmtAuth};
use crate::fields as f;
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::empty_ok;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_app))
        .routes(routes!(create_app_by_template))
        .routes(routes!(update_app))
        .routes(routes!(delete_app))
        .routes(routes!(load_app))
        .routes(routes!(load_all_apps))
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

/// A required string field: absent, null and empty are all "missing".
fn required(value: Option<String>, name: &'static str) -> Result<String, idvault_core::Error> {
    value.filter(|v| !v.is_empty()).ok_or(idvault_core::Error::MissingArgument(name))
}

// ---- apps ---------------------------------------------------------------------------------

/// One extra authorization or token request parameter. Python sends `name`, Node `key`.
#[derive(Deserialize, ToSchema)]
#[schema(as = OutboundUrlParam)]
struct UrlParamBody {
    #[schema(schema_with = f::text_opt)]
    key: Option<String>,
    #[schema(schema_with = f::text_opt)]
    name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    value: Option<String>,
}

/// The app fields of a create or update (and of a template's overrides).
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AppBody {
    #[schema(schema_with = f::app_id_opt)]
    id: Option<String>,
    /// Unique per project. Required on create and update; in a template's `overrides` it
    /// defaults to the template id.
    #[schema(schema_with = f::text_opt, required = true)]
    name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    description: Option<String>,
    #[schema(schema_with = f::url_opt)]
    logo: Option<String>,
    #[schema(schema_with = f::client_id_opt)]
    client_id: Option<String>,
    /// Write-only: never answered. Absent keeps the stored secret, unless the client id or an
    /// endpoint changes.
    #[schema(schema_with = f::client_secret_opt)]
    client_secret: Option<SecretString>,
    /// idvault extension: `apikey` for an API-key app.
    #[schema(schema_with = f::app_type_opt)]
    app_type: Option<String>,
    /// `<issuer>/.well-known/openid-configuration`: endpoints not given are discovered.
    #[schema(schema_with = f::provider_url_opt)]
    discovery_url: Option<String>,
    #[schema(schema_with = f::provider_url_opt)]
    authorization_url: Option<String>,
    #[schema(schema_with = f::url_params_opt::<UrlParamBody>)]
    authorization_url_params: Option<Vec<UrlParamBody>>,
    #[schema(schema_with = f::provider_url_opt)]
    token_url: Option<String>,
    #[schema(schema_with = f::url_params_opt::<UrlParamBody>)]
    token_url_params: Option<Vec<UrlParamBody>>,
    #[schema(schema_with = f::provider_url_opt)]
    revocation_url: Option<String>,
    #[schema(schema_with = f::scopes_opt)]
    default_scopes: Option<Vec<String>>,
    #[schema(schema_with = f::url_opt)]
    default_redirect_url: Option<String>,
    #[schema(schema_with = f::text_opt)]
    callback_domain: Option<String>,
    pkce: Option<bool>,
    #[schema(schema_with = f::access_type_opt)]
    access_type: Option<String>,
    #[schema(schema_with = f::prompt_opt)]
    prompt: Option<Vec<String>>,
    use_dcr: Option<bool>,
    #[schema(schema_with = f::provider_url_opt)]
    dcr_url: Option<String>,
}

fn params(list: Option<Vec<UrlParamBody>>) -> Vec<UrlParam> {
    list.unwrap_or_default()
        .into_iter()
        .map(|p| UrlParam { key: p.key.or(p.name).unwrap_or_default(), value: p.value.unwrap_or_default() })
        .collect()
}

impl AppBody {
    fn into_request(self, template_id: String) -> AppRequest {
        AppRequest {
            id: self.id.unwrap_or_default(),
            name: self.name.unwrap_or_default(),
            template_id,
            client_id: self.client_id.unwrap_or_default(),
            client_secret: self.client_secret.filter(|s| !s.expose_secret().is_empty()),
            app_type: self.app_type.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            logo: self.logo.unwrap_or_default(),
            discovery_url: self.discovery_url.unwrap_or_default(),
            authorization_url: self.authorization_url.unwrap_or_default(),
            authorization_url_params: params(self.authorization_url_params),
            token_url: self.token_url.unwrap_or_default(),
            token_url_params: params(self.token_url_params),
            revocation_url: self.revocation_url.unwrap_or_default(),
            default_scopes: self.default_scopes,
            default_redirect_url: self.default_redirect_url.unwrap_or_default(),
            callback_domain: self.callback_domain.unwrap_or_default(),
            pkce: self.pkce.unwrap_or(false),
            access_type: self.access_type.unwrap_or_default(),
            prompt: self.prompt.unwrap_or_default(),
            use_dcr: self.use_dcr.unwrap_or(false),
            dcr_url: self.dcr_url.unwrap_or_default(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OutboundUrlParamView)]
struct UrlParamView {
    key: String,
    value: String,
}

/// An app as answered: everything but the client secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AppView {
    id: String,
    name: String,
    description: String,
    logo: String,
    client_id: String,
    has_client_secret: bool,
    /// `oauth` or `apikey`.
    app_type: &'static str,
    template_id: String,
    discovery_url: String,
    authorization_url: String,
    authorization_url_params: Vec<UrlParamView>,
    token_url: String,
    token_url_params: Vec<UrlParamView>,
    revocation_url: String,
    default_scopes: Vec<String>,
    default_redirect_url: String,
    callback_domain: String,
    pkce: bool,
    access_type: String,
    prompt: Vec<String>,
    use_dcr: bool,
    dcr_url: String,
    /// Unix seconds.
    created_time: i64,
    /// Unix seconds.
    modified_time: i64,
}

impl From<ProviderConfig> for AppView {
    fn from(p: ProviderConfig) -> Self {
        let app = p.app.unwrap_or_default();
        let view = |list: Vec<UrlParam>| {
            list.into_iter().map(|u| UrlParamView { key: u.key, value: u.value }).collect()
        };
        AppView {
            name: p.display_name.unwrap_or_else(|| p.name.to_string()),
            id: p.name.into_string(),
            description: app.description,
            logo: app.logo,
            client_id: p.client_id,
            has_client_secret: p.client_secret.is_some(),
            app_type: app.app_type.as_str(),
            template_id: app.template_id,
            discovery_url: app.discovery_url,
            authorization_url: p.authorization_endpoint.unwrap_or_default(),
            authorization_url_params: view(app.authorization_url_params),
            token_url: p.token_endpoint,
            token_url_params: view(app.token_url_params),
            revocation_url: app.revocation_url,
            default_scopes: p.scopes,
            default_redirect_url: app.default_redirect_url,
            callback_domain: app.callback_domain,
            pkce: app.pkce,
            access_type: app.access_type,
            prompt: app.prompt,
            use_dcr: app.use_dcr,
            dcr_url: app.dcr_url,
            created_time: p.created_ms.div_euclid(1000),
            modified_time: p.updated_ms.div_euclid(1000),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct AppEnvelope {
    app: AppView,
}

#[derive(Serialize, ToSchema)]
struct AppsEnvelope {
    apps: Vec<AppView>,
}

/// Creates an app. The body is the app itself (not wrapped).
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/create",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = AppBody,
    responses(
        (status = 200, description = "The app as stored", body = AppEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 409, description = "The id or the name is taken (`E011409`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_app(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<AppBody>,
) -> ApiResult<Json<AppEnvelope>> {
    let app = state.outbound.create_app(&project, body.into_request(String::new())).await?;
    Ok(Json(AppEnvelope { app: app.into() }))
}

/// A create from a template (a provider preset such as `google`, `hubspot`, `salesforce`).
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ByTemplateBody {
    #[schema(schema_with = f::preset_opt, required = true)]
    template_id: Option<String>,
    #[schema(schema_with = f::app_id_opt)]
    id: Option<String>,
    #[schema(schema_with = f::client_id_opt)]
    client_id: Option<String>,
    #[schema(schema_with = f::client_secret_opt)]
    client_secret: Option<SecretString>,
    /// Accepted and ignored: apps are project-wide in idvault.
    #[schema(schema_with = f::outbound_text_opt)]
    tenant_id: Option<String>,
    /// Fields that take precedence over the template's.
    overrides: Option<AppBody>,
}

/// Creates an app from a template; `overrides` take precedence over the template.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/create/bytemplate",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = ByTemplateBody,
    responses(
        (status = 200, description = "The app as stored", body = AppEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 409, description = "The id or the name is taken (`E011409`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_app_by_template(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<ByTemplateBody>,
) -> ApiResult<Json<AppEnvelope>> {
    let template = body.template_id.unwrap_or_default();
    if template.is_empty() {
        return Err(idvault_core::Error::MissingArgument("templateId").into());
    }
    // Apps are project-wide in idvault: a tenant id is accepted and not used.
    drop(body.tenant_id);
    let mut app = body.overrides.unwrap_or_default();
    app.id = body.id;
    app.client_id = body.client_id;
    app.client_secret = body.client_secret;
    let app = state.outbound.create_app(&project, app.into_request(template)).await?;
    Ok(Json(AppEnvelope { app: app.into() }))
}

#[derive(Deserialize, Default, ToSchema)]
struct UpdateBody {
    #[schema(required = true)]
    app: Option<AppBody>,
}

/// Replaces every field of an app with the given ones ("override as is"); an absent client
/// secret keeps the stored one while the client id and endpoints stay the same.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/update",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = UpdateBody,
    responses(
        (status = 200, description = "The app as stored", body = AppEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such app (`E152101`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_app(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<UpdateBody>,
) -> ApiResult<Json<AppEnvelope>> {
    let Some(app) = body.app else {
        return Err(idvault_core::Error::MissingArgument("app").into());
    };
    let app = state.outbound.update_app(&project, app.into_request(String::new())).await?;
    Ok(Json(AppEnvelope { app: app.into() }))
}

#[derive(Deserialize, Default, ToSchema)]
#[schema(as = OutboundIdBody)]
struct IdBody {
    #[serde(default)]
    #[schema(schema_with = f::app_id_opt, required = true)]
    id: Option<String>,
}

/// Deletes an app and every token stored for it.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/delete",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = IdBody,
    responses(
        (status = 200, description = "Deleted", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such app (`E152101`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_app(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<IdBody>,
) -> ApiResult<Json<Value>> {
    let id = required(body.id, "id")?;
    state.outbound.delete_app(&project, &id).await?;
    Ok(empty_ok())
}

struct AppIdPath;

impl IntoParams for AppIdPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![f::path("id", "The app id.", f::app_id_opt())]
    }
}

/// One app.
#[utoipa::path(
    get,
    path = "/v1/mgmt/outbound/app/{id}",
    tag = "outbound-apps",
    security(("management_key" = [])),
    params(AppIdPath),
    responses(
        (status = 200, description = "The app", body = AppEnvelope),
        MgmtErrors,
        (status = 404, description = "No such app (`E152101`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_app(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<AppEnvelope>> {
    let app = state.outbound.load_app(&project, &id).await?;
    Ok(Json(AppEnvelope { app: app.into() }))
}

/// Every app of the project (providers set through `/v1/mgmt/provider/set` included).
#[utoipa::path(
    get,
    path = "/v1/mgmt/outbound/apps",
    tag = "outbound-apps",
    security(("management_key" = [])),
    responses((status = 200, description = "The apps", body = AppsEnvelope), MgmtErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_all_apps(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<AppsEnvelope>> {
    let apps = state.outbound.list_apps(&project).await?;
    Ok(Json(AppsEnvelope { apps: apps.into_iter().map(Into::into).collect() }))
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
    AppQuery(q): AppQuery<AppsWithTokenQuery>,
) -> ApiResult<Json<AppIdsEnvelope>> {
    let user = given(q.user_id).unwrap_or_default();
    let tenant = given(q.tenant_id);
    let app_ids = state.outbound.apps_with_user_token(&project, &user, tenant.as_deref()).await?;
    Ok(Json(AppIdsEnvelope { app_ids }))
}
