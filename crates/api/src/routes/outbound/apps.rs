//! Outbound apps: create (also from a template), update, delete, load, list.

use axum::extract::{Path, State};
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::outbound::AppRequest;
use idvault_core::provider::{ProviderConfig, UrlParam};

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, MgmtAuth};
use crate::fields as f;
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::empty_ok;
use crate::state::AppState;

use super::required;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_app))
        .routes(routes!(create_app_by_template))
        .routes(routes!(update_app))
        .routes(routes!(delete_app))
        .routes(routes!(load_app))
        .routes(routes!(load_all_apps))
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
    MgmtAuth(project, _): MgmtAuth,
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
    MgmtAuth(project, _): MgmtAuth,
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
        (status = 409, description = "Another app has this name (`E011409`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_app(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
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
    MgmtAuth(project, _): MgmtAuth,
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
    MgmtAuth(project, _): MgmtAuth,
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
    MgmtAuth(project, _): MgmtAuth,
) -> ApiResult<Json<AppsEnvelope>> {
    let apps = state.outbound.list_apps(&project).await?;
    Ok(Json(AppsEnvelope { apps: apps.into_iter().map(Into::into).collect() }))
}
