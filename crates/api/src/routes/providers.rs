//! `/v1/mgmt/provider`: an idvault extension (not in Descope's API) to configure a project's own
//! OAuth app per provider, which token refresh uses. The client secret is write-only: no answer
//! ever contains it.

use axum::extract::State;
use axum::Json;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::provider::service::SetProvider;
use idvault_core::provider::{ClientAuthMethod, ProviderConfig};

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, MgmtAuth};
use crate::fields as f;
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::empty_ok;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(load_provider))
        .routes(routes!(load_all_providers))
        .routes(routes!(set_provider))
        .routes(routes!(delete_provider))
}

/// A provider's OAuth app. A `preset` (such as `google`) fills the endpoints; fields given
/// override it.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SetProviderRequest {
    /// The provider's name, such as `google`.
    #[schema(schema_with = f::provider_req, required = true)]
    name: Option<String>,
    #[schema(schema_with = f::preset_opt)]
    preset: Option<String>,
    #[schema(schema_with = f::client_id_req, required = true)]
    client_id: Option<String>,
    /// Write-only: never answered. Absent keeps the stored secret, unless the client id, the
    /// issuer or an endpoint changes.
    #[schema(schema_with = f::client_secret_opt)]
    client_secret: Option<SecretString>,
    #[schema(schema_with = f::issuer_opt)]
    issuer: Option<String>,
    #[schema(schema_with = f::provider_url_opt)]
    authorization_endpoint: Option<String>,
    #[schema(schema_with = f::provider_url_opt)]
    token_endpoint: Option<String>,
    #[schema(schema_with = f::provider_url_opt)]
    userinfo_endpoint: Option<String>,
    #[schema(schema_with = f::provider_url_opt)]
    jwks_uri: Option<String>,
    #[schema(schema_with = f::scopes_opt)]
    scopes: Option<Vec<String>>,
    /// How the client authenticates at the token endpoint: `client_secret_basic` or
    /// `client_secret_post`.
    #[schema(schema_with = f::auth_method_opt)]
    auth_method: Option<String>,
}

/// A provider as answered: everything but the secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProviderView {
    name: String,
    client_id: String,
    has_client_secret: bool,
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    jwks_uri: Option<String>,
    scopes: Vec<String>,
    /// `client_secret_basic` or `client_secret_post`.
    #[schema(example = "client_secret_post")]
    auth_method: &'static str,
    /// Unix seconds.
    created_time: i64,
    /// Unix seconds.
    modified_time: i64,
}

impl From<ProviderConfig> for ProviderView {
    fn from(p: ProviderConfig) -> Self {
        ProviderView {
            name: p.name.into_string(),
            client_id: p.client_id,
            has_client_secret: p.client_secret.is_some(),
            issuer: p.issuer,
            authorization_endpoint: p.authorization_endpoint,
            token_endpoint: p.token_endpoint,
            userinfo_endpoint: p.userinfo_endpoint,
            jwks_uri: p.jwks_uri,
            scopes: p.scopes,
            auth_method: p.auth_method.as_str(),
            created_time: p.created_ms.div_euclid(1000),
            modified_time: p.updated_ms.div_euclid(1000),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct ProviderEnvelope {
    provider: ProviderView,
}

#[derive(Serialize, ToSchema)]
struct ProvidersEnvelope {
    providers: Vec<ProviderView>,
}

#[derive(Deserialize)]
struct NameQuery {
    #[serde(default)]
    name: String,
}

impl IntoParams for NameQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![f::query("name", true, "The provider's name.", f::provider_req())]
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[schema(as = ProviderNameBody)]
struct NameBody {
    /// The provider's name.
    #[serde(default)]
    #[schema(schema_with = f::provider_req, required = true)]
    name: String,
}

/// Creates or replaces a provider's OAuth app.
#[utoipa::path(
    post,
    path = "/v1/mgmt/provider/set",
    tag = "providers",
    security(("management_key" = [])),
    request_body = SetProviderRequest,
    responses((status = 200, description = "The provider as stored", body = ProviderEnvelope), MgmtErrors, BodyErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn set_provider(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<SetProviderRequest>,
) -> ApiResult<Json<ProviderEnvelope>> {
    let req = SetProvider {
        name: body.name.unwrap_or_default(),
        preset: body.preset,
        client_id: body.client_id.unwrap_or_default(),
        client_secret: body.client_secret,
        issuer: body.issuer,
        authorization_endpoint: body.authorization_endpoint,
        token_endpoint: body.token_endpoint,
        userinfo_endpoint: body.userinfo_endpoint,
        jwks_uri: body.jwks_uri,
        scopes: body.scopes,
        auth_method: body.auth_method.as_deref().map(ClientAuthMethod::parse).transpose()?,
        app: None,
    };
    let config = state.providers.set(&project, req).await?;
    Ok(Json(ProviderEnvelope { provider: config.into() }))
}

/// One provider.
#[utoipa::path(
    get,
    path = "/v1/mgmt/provider",
    tag = "providers",
    security(("management_key" = [])),
    params(NameQuery),
    responses(
        (status = 200, description = "The provider", body = ProviderEnvelope),
        MgmtErrors,
        (status = 404, description = "No such provider (`E112112`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_provider(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppQuery(q): AppQuery<NameQuery>,
) -> ApiResult<Json<ProviderEnvelope>> {
    let config = state.providers.get(&project, &q.name).await?;
    Ok(Json(ProviderEnvelope { provider: config.into() }))
}

/// Every provider of the project.
#[utoipa::path(
    get,
    path = "/v1/mgmt/provider/all",
    tag = "providers",
    security(("management_key" = [])),
    responses((status = 200, description = "The providers", body = ProvidersEnvelope), MgmtErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_all_providers(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
) -> ApiResult<Json<ProvidersEnvelope>> {
    let providers = state.providers.list(&project).await?;
    Ok(Json(ProvidersEnvelope { providers: providers.into_iter().map(Into::into).collect() }))
}

/// Deletes a provider.
#[utoipa::path(
    post,
    path = "/v1/mgmt/provider/delete",
    tag = "providers",
    security(("management_key" = [])),
    request_body = NameBody,
    responses(
        (status = 200, description = "Deleted", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such provider (`E112112`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_provider(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<NameBody>,
) -> ApiResult<Json<Value>> {
    state.providers.remove(&project, &body.name).await?;
    Ok(empty_ok())
}
