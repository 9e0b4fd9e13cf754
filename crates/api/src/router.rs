//! The whole route table, with the layers every request passes through, and the OpenAPI document
//! built from the same route registrations.

use std::any::Any;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use idvault_core::error::Code;
use idvault_core::limits::MAX_BODY_BYTES;

use crate::error::ApiError;
use crate::openapi::{ApiDoc, DOCS_HTML};
use crate::routes;
use crate::state::AppState;

/// Every documented route, with the document that describes them.
fn api_routes() -> OpenApiRouter<AppState> {
    let mut routes = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::auth::router())
        .merge(routes::directory::router())
        .merge(routes::license::router())
        .merge(routes::users::router())
        .merge(routes::provider_tokens::router())
        .merge(routes::providers::router());
    crate::openapi::finish(routes.get_openapi_mut());
    routes
}

/// The OpenAPI document of the API, as served at `/openapi.json` (needs no state).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

pub fn router(state: AppState) -> Router {
    let (routes, doc) = api_routes().split_for_parts();
    let doc = Arc::new(doc);
    routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(&*doc).into_response() }
            }),
        )
        .route("/docs", get(|| async { Html(DOCS_HTML) }))
        .fallback(|| async { ApiError::new(Code::RouteNotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "method not allowed on this route")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    let mut resp = ApiError::new(Code::Internal, "internal server error").into_response();
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp
}
