//! Liveness and readiness probes (no auth).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

/// A probe's answer.
#[derive(Serialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` (liveness) or `ready` (readiness).
    #[schema(example = "ok")]
    status: &'static str,
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process is up: `{\"status\": \"ok\"}`", body = HealthStatus)),
)]
async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus { status: "ok" })
}

/// The database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "The database answers: `{\"status\": \"ready\"}`", body = HealthStatus),
        (status = 500, description = "The database does not answer (`E011500`)", body = crate::error::ErrorBody),
    ),
)]
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<HealthStatus>> {
    state.store.ping().await?;
    Ok(Json(HealthStatus { status: "ready" }))
}
