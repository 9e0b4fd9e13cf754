//! Route handlers by area; each area's `router()` sits next to its handlers.

pub mod auth;
pub mod directory;
pub mod health;
pub mod keys;
pub mod license;
pub mod provider_tokens;
pub mod providers;
pub mod users;

/// The `{}` body the SDKs expect from a success with nothing to say (the Node SDK parses every
/// body).
pub(crate) fn empty_ok() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::Value::Object(serde_json::Map::new()))
}
