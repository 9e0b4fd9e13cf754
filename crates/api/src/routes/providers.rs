//! `/v1/mgmt/provider`: an idvault extension (not in Descope's API) to configure a project's own
//! OAuth app per provider, which token refresh uses. The client secret is write-only: no answer
//! ever contains it.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use idvault_core::provider::service::SetProvider;
use idvault_core::provider::{ClientAuthMethod, ProviderConfig};

use crate::error::ApiResult;
use crate::extract::{AppJson, AppQuery, MgmtAuth};
use crate::routes::empty_ok;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/mgmt/provider", get(load_provider))
        .route("/v1/mgmt/provider/all", get(load_all_providers))
        .route("/v1/mgmt/provider/set", post(set_provider))
        .route("/v1/mgmt/provider/delete", post(delete_provider))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SetProviderRequest {
    name: Option<String>,
    preset: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    jwks_uri: Option<String>,
    scopes: Option<Vec<String>>,
    auth_method: Option<String>,
}

/// A provider as answered: everything but the secret.
#[derive(Serialize)]
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
    auth_method: &'static str,
    created_time: i64,
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

#[derive(Serialize)]
struct ProviderEnvelope {
    provider: ProviderView,
}

#[derive(Serialize)]
struct ProvidersEnvelope {
    providers: Vec<ProviderView>,
}

#[derive(Deserialize)]
struct NameQuery {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize, Default)]
struct NameBody {
    #[serde(default)]
    name: String,
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn set_provider(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
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
    };
    let config = state.providers.set(&project, req).await?;
    Ok(Json(ProviderEnvelope { provider: config.into() }))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_provider(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppQuery(q): AppQuery<NameQuery>,
) -> ApiResult<Json<ProviderEnvelope>> {
    let config = state.providers.get(&project, &q.name).await?;
    Ok(Json(ProviderEnvelope { provider: config.into() }))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_all_providers(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<ProvidersEnvelope>> {
    let providers = state.providers.list(&project).await?;
    Ok(Json(ProvidersEnvelope { providers: providers.into_iter().map(Into::into).collect() }))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_provider(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<NameBody>,
) -> ApiResult<Json<Value>> {
    state.providers.remove(&project, &body.name).await?;
    Ok(empty_ok())
}
