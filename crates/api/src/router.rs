//! The whole route table, with the layers every request passes through.

use std::any::Any;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use idvault_core::error::Code;
use idvault_core::limits::MAX_BODY_BYTES;

use crate::error::ApiError;
use crate::routes;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::health::router())
        .merge(routes::auth::router())
        .merge(routes::directory::router())
        .merge(routes::license::router())
        .merge(routes::users::router())
        .merge(routes::provider_tokens::router())
        .merge(routes::providers::router())
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
