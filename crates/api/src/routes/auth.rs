//! The Descope auth API used by the SDKs for OAuth sign-in and sessions:
//! `/v1/auth/oauth/{authorize,exchange}`, the provider callback, `/v1/auth/{refresh,logout,
//! logoutall,me}` and the public keys at `/v2/keys/{projectId}`. These endpoints carry
//! `Authorization: Bearer <projectId>[:<refreshJwt>]`, not a management key.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::{AUTHORIZATION, LOCATION};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::auth::service::CallbackParams;
use idvault_core::auth::JwtResponse;
use idvault_core::error::Error;
use idvault_core::ids::ProjectId;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, MgmtAuth};
use crate::openapi::{BodyErrors, Empty, MgmtErrors, SessionErrors};
use crate::routes::empty_ok;
use crate::routes::users::dto::UserResponse;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(oauth_authorize))
        .routes(routes!(oauth_callback))
        .routes(routes!(oauth_exchange))
        .routes(routes!(refresh_session))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(me))
        .routes(routes!(public_keys))
        .routes(routes!(load_auth_settings, set_auth_settings))
        .routes(routes!(rotate_signing_key))
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
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct JwtResponseBody {
    session_jwt: String,
    refresh_jwt: String,
    /// Always empty.
    cookie_domain: String,
    /// Always `/`.
    #[schema(example = "/")]
    cookie_path: &'static str,
    /// Seconds; an int32 for the Go SDK.
    cookie_max_age: i32,
    /// Unix seconds; an int32 for the Go SDK.
    cookie_expiration: i32,
    user: UserResponse,
    /// The user was created by this sign-in.
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuthorizeQuery {
    /// The provider's name, such as `google`.
    #[serde(default)]
    #[param(required = true, min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]{1,64}$")]
    provider: String,
    /// Where to send the browser after the sign-in (also accepted as `redirectUrl`); one of the
    /// project's allowed redirect URLs (compared without the query), without a `code` query
    /// parameter. May be left out when exactly one is allowed.
    #[serde(rename = "redirectURL", alias = "redirectUrl")]
    #[param(max_length = 2048)]
    redirect_url: Option<String>,
    /// Passed to the provider as `login_hint`.
    #[serde(rename = "loginHint")]
    #[param(max_length = 256)]
    login_hint: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct UrlBody {
    /// The provider's authorization URL, where to send the browser.
    url: String,
}

/// Starts an OAuth sign-in.
///
/// Answers the provider's authorization URL, with `state`, PKCE S256, a `nonce`, and
/// `prompt=consent` when `offline_access` is requested. The body (login options) is accepted and
/// not needed: idvault has no step-up or MFA yet. A project has at most 10,000 pending sign-ins
/// (started, not completed, unexpired); beyond that this answers 429 until some complete or
/// expire.
#[utoipa::path(
    post,
    path = "/v1/auth/oauth/authorize",
    tag = "auth",
    security(("project" = [])),
    params(AuthorizeQuery),
    request_body(content = Option<Object>, description = "Login options: optional, accepted and ignored"),
    responses(
        (status = 200, description = "The provider's authorization URL", body = UrlBody),
        SessionErrors,
        BodyErrors,
        (status = 404, description = "The provider is not configured (`E112112`)", body = ErrorBody),
        (status = 429, description = "Too many pending sign-ins in this project (`E130429`)", body = ErrorBody),
    ),
)]
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

/// The provider's redirect back (RFC 6749 section 4.1.2), to the sign-in callback and to the
/// outbound connect callback alike.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    pub(crate) code: Option<String>,
    #[param(required = true, min_length = 1, max_length = 128)]
    pub(crate) state: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) error_description: Option<String>,
}

impl From<CallbackQuery> for CallbackParams {
    fn from(q: CallbackQuery) -> Self {
        CallbackParams {
            code: q.code,
            state: q.state,
            error: q.error,
            error_description: q.error_description,
        }
    }
}

/// Where the provider sends the browser back. Redirects (302) to the application with a code.
///
/// A disabled or expired user gets no code: the answer is 403 (`E113006`).
#[utoipa::path(
    get,
    path = "/v1/auth/oauth/callback",
    tag = "auth",
    params(CallbackQuery),
    responses(
        (status = 302, description = "To the application's redirect URL with `?code=<one-time code>`",
            headers(("Location" = String, description = "The redirect URL with the code"))),
        (status = 400, description = "Missing, unknown, used or expired state (`E113001`), an error from \
            the provider (`E113003`) or a rejected id_token (`E113004`)", body = ErrorBody),
        (status = 403, description = "The user is disabled or expired (`E113006`)", body = ErrorBody),
        (status = 409, description = "The provider revoked the grant (`E112105`)", body = ErrorBody),
        (status = 500, description = "Internal error (`E011500`)", body = ErrorBody),
        (status = 502, description = "The provider failed the code exchange or userinfo \
            (`E112106`–`E112110`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn oauth_callback(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<CallbackQuery>,
) -> ApiResult<Response> {
    let location = state.auth.callback(q.into()).await?;
    Ok((StatusCode::FOUND, [(LOCATION, location)]).into_response())
}

#[derive(Deserialize, Default, ToSchema)]
struct ExchangeBody {
    /// The one-time code from the callback's redirect.
    #[serde(default)]
    #[schema(schema_with = crate::fields::opaque_req, required = true)]
    code: String,
}

/// Exchanges the one-time code of a sign-in for a session.
///
/// A code works once, within 2 minutes. A user disabled since the callback is refused (403,
/// `E113006`).
#[utoipa::path(
    post,
    path = "/v1/auth/oauth/exchange",
    tag = "auth",
    security(("project" = [])),
    request_body = ExchangeBody,
    responses(
        (status = 200, description = "The session", body = JwtResponseBody),
        (status = 403, description = "The user is disabled or expired (`E113006`)", body = ErrorBody),
        SessionErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn oauth_exchange(
    State(state): State<AppState>,
    bearer: ProjectBearer,
    AppJson(body): AppJson<ExchangeBody>,
) -> ApiResult<Json<JwtResponseBody>> {
    Ok(jwt_body(state.auth.exchange(&bearer.project, &body.code).await?))
}

fn refresh_jwt(bearer: &ProjectBearer) -> ApiResult<&str> {
    bearer.jwt.as_deref().ok_or_else(|| Error::InvalidSession("missing refresh token").into())
}

/// A new session JWT and a new refresh JWT for a refresh JWT.
///
/// Refresh JWTs rotate: the answer's `refreshJwt` replaces the one presented, which stops
/// working. Presenting a refresh JWT again after it was rotated revokes the whole session (401).
#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "auth",
    security(("project" = [])),
    responses((status = 200, description = "The session", body = JwtResponseBody), SessionErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn refresh_session(
    State(state): State<AppState>,
    bearer: ProjectBearer,
) -> ApiResult<Json<JwtResponseBody>> {
    Ok(jwt_body(state.auth.refresh(&bearer.project, refresh_jwt(&bearer)?).await?))
}

/// Revokes the refresh JWT's session.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "auth",
    security(("project" = [])),
    responses((status = 200, description = "Logged out", body = Empty), SessionErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn logout(State(state): State<AppState>, bearer: ProjectBearer) -> ApiResult<Json<Value>> {
    state.auth.logout(&bearer.project, refresh_jwt(&bearer)?).await?;
    Ok(empty_ok())
}

/// Revokes every session of the refresh JWT's user.
#[utoipa::path(
    post,
    path = "/v1/auth/logoutall",
    tag = "auth",
    security(("project" = [])),
    responses((status = 200, description = "Logged out everywhere", body = Empty), SessionErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn logout_all(State(state): State<AppState>, bearer: ProjectBearer) -> ApiResult<Json<Value>> {
    state.auth.logout_all(&bearer.project, refresh_jwt(&bearer)?).await?;
    Ok(empty_ok())
}

/// The refresh JWT's user.
#[utoipa::path(
    get,
    path = "/v1/auth/me",
    tag = "auth",
    security(("project" = [])),
    responses((status = 200, description = "The user", body = UserResponse), SessionErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn me(State(state): State<AppState>, bearer: ProjectBearer) -> ApiResult<Json<UserResponse>> {
    Ok(Json(state.auth.me(&bearer.project, refresh_jwt(&bearer)?).await?.into()))
}

#[derive(Serialize, ToSchema)]
struct KeysBody {
    /// JWKs (ES384, with `kid`, `alg` and `use: sig`).
    #[schema(value_type = Vec<Object>)]
    keys: Vec<Value>,
}

/// The project's public signing keys (no auth: they are public).
#[utoipa::path(
    get,
    path = "/v2/keys/{project_id}",
    tag = "auth",
    params(("project_id" = String, Path, description = "The project id", min_length = 2, max_length = 64, pattern = "^[A-Za-z0-9_-]{2,64}$")),
    responses(
        (status = 200, description = "The JWK set", body = KeysBody),
        (status = 401, description = "Unknown project (`E011401`)", body = ErrorBody),
        (status = 500, description = "Internal error (`E011500`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn public_keys(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
) -> ApiResult<Json<KeysBody>> {
    let project = ProjectId::parse(&project_id).map_err(|_| Error::Unauthorized("unknown project"))?;
    state.auth.require_project(&project).await?;
    Ok(Json(KeysBody { keys: state.auth.signer().jwks(&project).await? }))
}

#[derive(Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AuthSettingsBody {
    /// The allowed redirect URLs of sign-ins (compared without their query string). None may have
    /// a `code` query parameter: the sign-in appends its own.
    #[serde(default)]
    #[schema(schema_with = crate::fields::redirect_urls)]
    redirect_urls: Vec<String>,
    /// Sign-ins link to an existing user with the same verified email (default true).
    #[serde(default = "default_true")]
    #[schema(default = true)]
    link_by_verified_email: bool,
}

fn default_true() -> bool {
    true
}

/// idvault extension: the project's allowed redirect URLs and account-linking rule.
#[utoipa::path(
    get,
    path = "/v1/mgmt/auth/settings",
    tag = "auth",
    security(("management_key" = [])),
    responses((status = 200, description = "The settings", body = AuthSettingsBody), MgmtErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_auth_settings(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
) -> ApiResult<Json<AuthSettingsBody>> {
    let s = state.auth.settings_of(&project).await?;
    Ok(Json(AuthSettingsBody {
        redirect_urls: s.redirect_urls,
        link_by_verified_email: s.link_by_verified_email,
    }))
}

/// idvault extension: replaces the project's allowed redirect URLs and account-linking rule.
#[utoipa::path(
    post,
    path = "/v1/mgmt/auth/settings",
    tag = "auth",
    security(("management_key" = [])),
    request_body = AuthSettingsBody,
    responses((status = 200, description = "The settings as stored", body = AuthSettingsBody), MgmtErrors, BodyErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn set_auth_settings(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<AuthSettingsBody>,
) -> ApiResult<Json<AuthSettingsBody>> {
    state.auth.set_settings(&project, body.redirect_urls.clone(), body.link_by_verified_email).await?;
    Ok(Json(body))
}

#[derive(Serialize, ToSchema)]
struct RotatedBody {
    /// The new key's id.
    kid: String,
}

/// idvault extension: a new session-signing key.
///
/// The previous keys stay published until the tokens they signed have expired.
#[utoipa::path(
    post,
    path = "/v1/mgmt/auth/signingkey/rotate",
    tag = "auth",
    security(("management_key" = [])),
    responses((status = 200, description = "The new key", body = RotatedBody), MgmtErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn rotate_signing_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
) -> ApiResult<Json<RotatedBody>> {
    Ok(Json(RotatedBody { kid: state.auth.signer().rotate(&project).await? }))
}
