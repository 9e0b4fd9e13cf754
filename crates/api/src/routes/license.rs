//! `GET /v1/mgmt/license`: the Python SDK's handshake at construction. It reads `rateLimitTier`
//! and sends it back as `x-descope-license`, which idvault accepts and ignores.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::MgmtAuth;
use crate::openapi::MgmtErrors;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_license))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseResponse {
    /// Always `self-hosted`.
    #[schema(example = "self-hosted")]
    rate_limit_tier: &'static str,
}

/// The license handshake of the Python SDK.
#[utoipa::path(
    get,
    path = "/v1/mgmt/license",
    tag = "license",
    security(("management_key" = [])),
    responses((status = 200, description = "The rate-limit tier", body = LicenseResponse), MgmtErrors),
)]
async fn get_license(MgmtAuth(..): MgmtAuth) -> Json<LicenseResponse> {
    Json(LicenseResponse { rate_limit_tier: "self-hosted" })
}
