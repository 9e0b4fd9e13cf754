//! `GET /v1/mgmt/license`: the Python SDK's handshake at construction. It reads `rateLimitTier`
//! and sends it back as `x-descope-license`, which idvault accepts and ignores.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::extract::MgmtAuth;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/mgmt/license", get(get_license))
}

async fn get_license(MgmtAuth(_project): MgmtAuth) -> Json<Value> {
    Json(json!({"rateLimitTier": "self-hosted"}))
}
