//! Outbound connect (consent, incremental scopes): `POST /v1/mgmt/outbound/app/connect` (Descope's
//! API reference) and `POST /v1/outbound/oauth/connect` (what core-js `outbound.connect` calls),
//! one handler, authorised by the user's refresh JWT (`Bearer <projectId>:<refreshJwt>`), and the
//! provider's redirect back, `GET /v1/outbound/oauth/callback`.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::auth::service::with_query;
use idvault_core::error::Error;
use idvault_core::outbound::{ConnectRequest, ConnectSettings};

use crate::error::{describe, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery};
use crate::fields as f;
use crate::openapi::{BodyErrors, SessionErrors};
use crate::routes::auth::{CallbackQuery, ProjectBearer};
use crate::state::AppState;

/// The path of the provider's redirect back, under the public URL.
pub const CALLBACK_PATH: &str = "/v1/outbound/oauth/callback";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(connect_mgmt))
        .routes(routes!(connect_client))
        .routes(routes!(connect_callback))
}

fn settings(state: &AppState) -> ConnectSettings {
    let auth = state.auth.settings();
    ConnectSettings {
        callback_url: format!("{}{CALLBACK_PATH}", auth.public_url.trim_end_matches('/')),
        state_ttl: auth.state_ttl,
        max_pending: auth.max_pending_sign_ins,
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OutboundConnectOptions)]
struct ConnectOptions {
    /// Where to send the browser afterwards (also accepted as `redirectURL`). One of the project's
    /// allowed redirect URLs or the app's `defaultRedirectUrl` (compared without the query), or a
    /// URL on the app's `callbackDomain`. Absent: the app's default, or the project's only
    /// allowed redirect URL.
    #[serde(alias = "redirectURL")]
    #[schema(schema_with = f::url_opt)]
    redirect_url: Option<String>,
    /// Absent or empty: the app's default scopes. Scopes the owner already granted the app are
    /// asked for again (incremental consent).
    #[schema(schema_with = f::scopes_opt)]
    scopes: Option<Vec<String>>,
    #[schema(schema_with = f::outbound_text_opt)]
    external_identifier: Option<String>,
    /// Also accepted here (the API reference's form).
    #[schema(schema_with = f::outbound_text_opt)]
    tenant_id: Option<String>,
    tenant_level: Option<bool>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OutboundConnectRequest)]
struct ConnectBody {
    #[schema(schema_with = f::app_id_opt, required = true)]
    app_id: Option<String>,
    /// A tenant the user belongs to: the token is for that tenant (with `tenantLevel`, it is the
    /// tenant's token).
    #[schema(schema_with = f::outbound_text_opt)]
    tenant_id: Option<String>,
    /// Store a token of the tenant rather than of the user.
    tenant_level: Option<bool>,
    options: Option<ConnectOptions>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = OutboundConnectUrl)]
struct UrlBody {
    /// The provider's authorization URL, where to send the browser.
    url: String,
}

async fn connect(state: &AppState, bearer: ProjectBearer, body: ConnectBody) -> ApiResult<Json<UrlBody>> {
    let jwt = bearer.jwt.as_deref().ok_or(Error::InvalidSession("missing refresh token"))?;
    // The refresh JWT's live session names the user; a disabled or expired user has none.
    let user = state.auth.me(&bearer.project, jwt).await?;
    let options = body.options.unwrap_or_default();
    let app_id = body.app_id.filter(|a| !a.is_empty()).ok_or(Error::MissingArgument("appId"))?;
    let req = ConnectRequest {
        app_id,
        tenant_id: body.tenant_id.or(options.tenant_id).unwrap_or_default(),
        tenant_level: body.tenant_level.or(options.tenant_level).unwrap_or(false),
        redirect_url: options.redirect_url.unwrap_or_default(),
        scopes: options.scopes,
        external_identifier: options.external_identifier.unwrap_or_default(),
    };
    let url = state.outbound.connect(&bearer.project, &user, req, &settings(state)).await?;
    Ok(Json(UrlBody { url }))
}

/// Connects the signed-in user's account at the app's provider (or grants it more scopes).
///
/// Answers the provider's authorization URL (state, PKCE S256, the app's `accessType`, `prompt`
/// and `authorizationUrlParams`). The provider sends the browser back to
/// `/v1/outbound/oauth/callback`, which stores the granted token and redirects to the redirect
/// URL. Pending connects count against the project's bound of pending sign-ins (10,000) and
/// expire like them.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/connect",
    tag = "outbound-apps",
    security(("project" = [])),
    request_body = ConnectBody,
    responses(
        (status = 200, description = "The provider's authorization URL", body = UrlBody),
        SessionErrors,
        BodyErrors,
        (status = 404, description = "No such app (`E152101`) or tenant (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn connect_mgmt(
    State(state): State<AppState>,
    bearer: ProjectBearer,
    AppJson(body): AppJson<ConnectBody>,
) -> ApiResult<Json<UrlBody>> {
    connect(&state, bearer, body).await
}

/// The same as `/v1/mgmt/outbound/app/connect`, at the path the client SDKs (`outbound.connect`)
/// call.
#[utoipa::path(
    post,
    path = "/v1/outbound/oauth/connect",
    tag = "outbound-apps",
    security(("project" = [])),
    request_body = ConnectBody,
    responses(
        (status = 200, description = "The provider's authorization URL", body = UrlBody),
        SessionErrors,
        BodyErrors,
        (status = 404, description = "No such app (`E152101`) or tenant (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn connect_client(
    State(state): State<AppState>,
    bearer: ProjectBearer,
    AppJson(body): AppJson<ConnectBody>,
) -> ApiResult<Json<UrlBody>> {
    connect(&state, bearer, body).await
}

/// Where the provider sends the browser back after a connect: stores the granted token and
/// redirects (302) to the connect's redirect URL.
///
/// If the token cannot be stored (the provider refused, the code exchange failed, the user was
/// disabled meanwhile...), the redirect carries `error=<errorCode>` and a fixed
/// `error_description`, never a provider message or secret. A missing, unknown, used or expired
/// state answers 400 (`E113001`): there is no redirect URL to trust.
#[utoipa::path(
    get,
    path = "/v1/outbound/oauth/callback",
    tag = "outbound-apps",
    params(CallbackQuery),
    responses(
        (status = 302, description = "To the redirect URL; with `error` and `error_description` on failure",
            headers(("Location" = String, description = "The redirect URL"))),
        (status = 400, description = "Missing, unknown, used or expired state (`E113001`)", body = ErrorBody),
        (status = 429, description = "Too many requests from this client address (`E130429`)", body = ErrorBody),
        (status = 500, description = "Internal error (`E011500`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn connect_callback(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<CallbackQuery>,
) -> ApiResult<Response> {
    let outcome = state.outbound.connect_callback(q.into(), &settings(&state)).await?;
    let location = match outcome.error {
        None => outcome.redirect_url,
        Some(e) => {
            if e.code() == idvault_core::error::Code::Internal {
                tracing::error!(error = %e, "connect callback failed");
            }
            let (_, error_code, description) = describe(e.code());
            with_query(&outcome.redirect_url, &[("error", error_code), ("error_description", description)])
        }
    };
    Ok((StatusCode::FOUND, [(LOCATION, location)]).into_response())
}
