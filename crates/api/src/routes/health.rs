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

/// The readiness probe's answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadyStatus {
    /// `ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// The providers this process currently does not call, or calls only with a probe, because
    /// their refreshes failed in a row (their circuit breaker is open or half-open). Empty when
    /// every provider is called normally. Per process: each replica judges for itself.
    provider_circuits: Vec<ProviderCircuit>,
}

/// The circuit breaker of one project's provider.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderCircuit {
    project_id: String,
    /// The provider's (or outbound app's) name.
    provider: String,
    /// `open` (refreshes fail at once with `E112113`) or `halfOpen` (one refresh goes through as
    /// a probe).
    #[schema(example = "open")]
    state: &'static str,
    /// Failed refreshes in a row.
    consecutive_failures: u32,
    /// Seconds until a probe is let through (0 once half-open).
    retry_in_seconds: u64,
    /// Refresh calls to it still running in this process.
    refreshes_in_flight: usize,
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

/// The database answers. A provider's open circuit does not make the process unready (every
/// replica would see the same provider fail, and none could then serve anything); it is shown
/// in `providerCircuits`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "The database answers: `{\"status\": \"ready\", \"providerCircuits\": [...]}`", body = ReadyStatus),
        (status = 500, description = "The database does not answer (`E011500`)", body = crate::error::ErrorBody),
    ),
)]
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<ReadyStatus>> {
    state.store.ping().await?;
    let provider_circuits = state
        .vault
        .provider_breakers()
        .into_iter()
        .map(|b| ProviderCircuit {
            project_id: b.project.to_string(),
            provider: b.provider.to_string(),
            state: b.state.as_str(),
            consecutive_failures: b.consecutive_failures,
            retry_in_seconds: b.retry_in.as_secs_f64().ceil() as u64,
            refreshes_in_flight: b.refreshes_in_flight,
        })
        .collect();
    Ok(Json(ReadyStatus { status: "ready", provider_circuits }))
}
