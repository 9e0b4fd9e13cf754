//! The Descope auth API used by the SDKs for OAuth sign-in and sessions:
//! `/v1/auth/oauth/{authorize,exchange}`, the provider callback, `/v1/auth/{refresh,logout,
//! logoutall,me}` and the public keys at `/v2/keys/{projectId}`. These endpoints carry
//! `Authorization: Bearer <projectId>[:<refreshJwt>]`, not a management key.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::{AUTHORIZATION, LOCATION};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use idvault_core::auth::service::CallbackParams;
use idvault_core::auth::JwtResponse;
use idvault_core::error::Error;
use idvault_core::ids::ProjectId;

use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppQuery, MgmtAuth};
use crate::routes::empty_ok;
use crate::routes::users::dto::UserResponse;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/oauth/authorize", post(oauth_authorize))
        .route("/v1/auth/oauth/callback", get(oauth_callback))
        .route("/v1/auth/oauth/exchange", post(oauth_exchange))
        .route("/v1/auth/refresh", post(refresh_session))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/logoutall", post(logout_all))
        .route("/v1/auth/me", get(me))
        .route("/v2/keys/{project_id}", get(public_keys))
        .route("/v1/mgmt/auth/settings", get(load_auth_settings).post(set_auth_settings))
        .route("/v1/mgmt/auth/signingkey/rotate", post(rotate_signing_key))
}

/// `Bearer <projectId>[:<refreshJwt>][:<key>]`: the project, and the JWT part if any (a JWT has
/// two dots and no colon, which tells it from a key).
pub struct ProjectBearer {
    pub project: ProjectId,
    pub jwt: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ProjectBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let refused =
            || ApiError::from(Error::Unauthorized("authorization must be 'Bearer <projectId>[:<token>]'"));
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(refused)?;
        let token =
            header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).ok_or_else(refused)?;
        let mut pieces = token.trim().split(':');
        let project = ProjectId::parse(pieces.next().unwrap_or_default()).map_err(|_| refused())?;
        let jwt = pieces.find(|p| p.matches('.').count() == 2).map(str::to_owned);
        Ok(ProjectBearer { project, jwt })
    }
}

/// The Descope JWT response.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JwtResponseBody {
    session_jwt: String,
    refresh_jwt: String,
    cookie_domain: String,
    cookie_path: &'static str,
    /// Seconds; an int32 for the Go SDK.
    cookie_max_age: i32,
    /// Unix seconds; an int32 for the Go SDK.
    cookie_expiration: i32,
    user: UserResponse,
    first_seen: bool,
}

fn jwt_body(r: JwtResponse) -> Json<JwtResponseBody> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Json(JwtResponseBody {
        session_jwt: r.session_jwt,
        refresh_jwt: r.refresh_jwt,
        cookie_domain: String::new(),
        cookie_path: "/",
        cookie_max_age: i32::try_from((r.refresh_expires_secs - now).max(0)).unwrap_or(i32::MAX),
        cookie_expiration: i32::try_from(r.refresh_expires_secs).unwrap_or(i32::MAX),
        user: r.user.into(),
        first_seen: r.first_seen,
    })
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    #[serde(default)]
    provider: String,
    #[serde(rename = "redirectURL", alias = "redirectUrl")]
    redirect_url: Option<String>,
    #[serde(rename = "loginHint")]
    login_hint: Option<String>,
}

#[derive(Serialize)]
struct UrlBody {
    url: String,
}

/// Starts an OAuth sign-in. The body (login options) is accepted and not needed: idvault has no
/// step-up or MFA yet.
#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn oauth_authorize(
    State(state): State<AppState>,
    bearer: ProjectBearer,
    AppQuery(q): AppQuery<AuthorizeQuery>,
) -> ApiResult<Json<UrlBody>> {
    if q.provider.is_empty() {
        return Err(Error::MissingArgument("provider").into());
    }
    let url = state
        .auth
        .authorize(&bearer.project, &q.provider, q.redirect_url.as_deref(), q.login_hint.as_deref())
        .await?;
    Ok(Json(UrlBody { url }))
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the provider sends the browser back. Redirects (302) to the application with a code.
#[tracing::instrument(level = "debug", skip_all)]
async fn oauth_callback(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<CallbackQuery>,
) -> ApiResult<Response> {
    let params = CallbackParams {
        code: q.code,
        state: q.state,
        error: q.error,
        error_description: q.error_description,
    };
    let location = state.auth.callback(params).await?;
    Ok((StatusCode::FOUND, [(LOCATION, location)]).into_response())
}

#[derive(Deserialize, Default)]
struct ExchangeBody {
    #[serde(default)]
    code: String,
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn oauth_exchange(
    State(state): State<AppState>,
    bearer: ProjectBearer,
    AppJson(body): AppJson<ExchangeBody>,
) -> ApiResult<Json<JwtResponseBody>> {
    state.auth.require_project(&bearer.project).await?;
    Ok(jwt_body(state.auth.exchange(&bearer.project, &body.code).await?))
}

fn refresh_jwt(bearer: &ProjectBearer) -> ApiResult<&str> {
    bearer.jwt.as_deref().ok_or_else(|| Error::InvalidSession("missing refresh token").into())
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn refresh_session(
    State(state): State<AppState>,
    bearer: ProjectBearer,
) -> ApiResult<Json<JwtResponseBody>> {
    Ok(jwt_body(state.auth.refresh(&bearer.project, refresh_jwt(&bearer)?).await?))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn logout(State(state): State<AppState>, bearer: ProjectBearer) -> ApiResult<Json<Value>> {
    state.auth.logout(&bearer.project, refresh_jwt(&bearer)?).await?;
    Ok(empty_ok())
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn logout_all(State(state): State<AppState>, bearer: ProjectBearer) -> ApiResult<Json<Value>> {
    state.auth.logout_all(&bearer.project, refresh_jwt(&bearer)?).await?;
    Ok(empty_ok())
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn me(State(state): State<AppState>, bearer: ProjectBearer) -> ApiResult<Json<UserResponse>> {
    Ok(Json(state.auth.me(&bearer.project, refresh_jwt(&bearer)?).await?.into()))
}

#[derive(Serialize)]
struct KeysBody {
    keys: Vec<Value>,
}

/// The project's public signing keys (no auth: they are public).
#[tracing::instrument(level = "debug", skip_all)]
async fn public_keys(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
) -> ApiResult<Json<KeysBody>> {
    let project = ProjectId::parse(&project_id).map_err(|_| Error::Unauthorized("unknown project"))?;
    state.auth.require_project(&project).await?;
    Ok(Json(KeysBody { keys: state.auth.signer().jwks(&project).await? }))
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthSettingsBody {
    #[serde(default)]
    redirect_urls: Vec<String>,
    #[serde(default = "default_true")]
    link_by_verified_email: bool,
}

fn default_true() -> bool {
    true
}

/// idvault extension: the project's allowed redirect URLs and account-linking rule.
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_auth_settings(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<AuthSettingsBody>> {
    let s = state.auth.settings_of(&project).await?;
    Ok(Json(AuthSettingsBody {
        redirect_urls: s.redirect_urls,
        link_by_verified_email: s.link_by_verified_email,
    }))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn set_auth_settings(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<AuthSettingsBody>,
) -> ApiResult<Json<AuthSettingsBody>> {
    state.auth.set_settings(&project, body.redirect_urls.clone(), body.link_by_verified_email).await?;
    Ok(Json(body))
}

#[derive(Serialize)]
struct RotatedBody {
    kid: String,
}

/// idvault extension: a new session-signing key; the previous ones stay published until the
/// tokens they signed have expired.
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn rotate_signing_key(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<RotatedBody>> {
    Ok(Json(RotatedBody { kid: state.auth.signer().rotate(&project).await? }))
}
