//! The whole route table, with the layers every request passes through, and the OpenAPI document
//! built from the same route registrations.

use std::any::Any;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use idvault_core::error::Code;
use idvault_core::limits::MAX_BODY_BYTES;

use crate::error::ApiError;
use crate::observe::{self, HttpMetrics, MetricsRoute};
use crate::openapi::{ApiDoc, DOCS_CSP, DOCS_HTML};
use crate::ratelimit::{FailureLimit, FailureLimiter, KeyedLimiter, RateLimit};
use crate::routes;
use crate::state::AppState;

/// Every documented route, with the document that describes them.
fn api_routes() -> OpenApiRouter<AppState> {
    let mut routes = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::auth::router())
        .merge(routes::tenants::router())
        .merge(routes::roles::router())
        .merge(routes::permissions::router())
        .merge(routes::attributes::router())
        .merge(routes::license::router())
        .merge(routes::users::router())
        .merge(routes::provider_tokens::router())
        .merge(routes::providers::router())
        .merge(routes::outbound::router())
        .merge(routes::keys::router())
        .merge(routes::access_keys::router())
        .merge(routes::audit::router());
    crate::openapi::finish(routes.get_openapi_mut());
    routes
}

/// The OpenAPI document of the API, as served at `/openapi.json` (needs no state).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

/// Settings of the HTTP layer itself (not of the domain services).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Per-client-address limit of the `/v1/auth/*` routes; `None` (or a zero rate) disables it.
    pub auth_rate_limit: Option<RateLimit>,
    /// Per-client-address budget of wrong management keys and forged session tokens; `None` (or
    /// a zero rate) disables it.
    pub credential_failure_limit: Option<FailureLimit>,
    /// `/metrics` on this router; `None` when it is served elsewhere (or not at all).
    pub metrics: Option<MetricsRoute>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            auth_rate_limit: Some(RateLimit::AUTH_DEFAULT),
            credential_failure_limit: Some(FailureLimit::DEFAULT),
            metrics: None,
        }
    }
}

pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    let (routes, doc) = api_routes().split_for_parts();
    let doc = Arc::new(doc);
    let mut routes = routes;
    if let Some(metrics) = &settings.metrics {
        routes = routes.merge(metrics_router(metrics.clone()));
    }
    let mut app = routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(&*doc).into_response() }
            }),
        )
        .route("/docs", get(|| async { ([(header::CONTENT_SECURITY_POLICY, DOCS_CSP)], Html(DOCS_HTML)) }))
        .fallback(|| async { ApiError::new(Code::RouteNotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "method not allowed on this route")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .layer(middleware::from_fn(audit_scope));
    if let Some(limit) = settings.auth_rate_limit.filter(RateLimit::is_enabled) {
        let limiter = Arc::new(KeyedLimiter::new(limit));
        app = app.layer(middleware::from_fn_with_state(limiter, crate::ratelimit::limit_auth_routes));
    }
    // Outside the auth routes' limit: a blocked address's requests do not spend its tokens.
    if let Some(limit) = settings.credential_failure_limit.filter(FailureLimit::is_enabled) {
        let limiter = Arc::new(FailureLimiter::new(limit));
        app = app.layer(middleware::from_fn_with_state(limiter, crate::ratelimit::limit_failed_credentials));
    }
    app.layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::map_response(security_headers))
        .layer(middleware::from_fn_with_state(Arc::new(HttpMetrics::default()), observe::observe))
}

/// A router with only `GET /metrics`: for a separate metrics listener, or merged into the API's.
pub fn metrics_router<S: Clone + Send + Sync + 'static>(metrics: MetricsRoute) -> Router<S> {
    Router::new().route("/metrics", get(observe::metrics_handler).with_state(metrics))
}

/// Runs the request in an audit scope whose records carry the client's address (`ConnectInfo`:
/// the TCP peer, or behind a trusted proxy the forwarded client, see [`crate::proxy`]; no port;
/// an IPv4 client of a dual-stack listener as plain IPv4). Without one (in-process tests) the
/// address is empty.
async fn audit_scope(req: axum::extract::Request, next: middleware::Next) -> Response {
    let remote = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|axum::extract::ConnectInfo(peer)| peer.ip().to_canonical().to_string())
        .unwrap_or_default();
    idvault_core::audit::scope(remote, next.run(req)).await
}

/// The policy of HTML answers that set none of their own: nothing may load, nothing may frame it.
const HTML_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `nosniff` on every answer; on HTML answers also a Content-Security-Policy (the route's own, or
/// a deny-all one), no framing (CSP `frame-ancestors 'none'` and `X-Frame-Options: DENY` for
/// older browsers) and no referrer.
async fn security_headers(mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.trim_start().get(..9))
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("text/html"));
    if html {
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(HTML_CSP));
        }
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    resp
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    let mut resp = ApiError::new(Code::Internal, "internal server error").into_response();
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp
}
