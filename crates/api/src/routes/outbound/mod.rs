//! `/v1/mgmt/outbound/*`: Descope's outbound application API (the token vault the SDKs call
//! `outbound_application` / `outboundApplication`), by part: `apps` (the app configuration),
//! `tokens` (fetch, single uploads, deletes, listing), `batch` (batch uploads) and `connect`
//! (consent and its callback). Apps are the project's providers with the app
//! fields; the client secret, tokens and keys are write-only except through the fetch calls.
//!
//! Wire quirks handled here: Python sends `null` for every absent field (read as absent); Node
//! puts an absent query value in the query string as the text `undefined` (read as absent);
//! `authorizationUrlParams` items carry `name` (Python) or `key` (Node); unknown `options` keys
//! are ignored.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

mod apps;
mod batch;
mod connect;
mod tokens;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(apps::router())
        .merge(tokens::router())
        .merge(batch::router())
        .merge(connect::router())
}

/// A required string field: absent, null and empty are all "missing".
pub(super) fn required(value: Option<String>, name: &'static str) -> Result<String, idvault_core::Error> {
    value.filter(|v| !v.is_empty()).ok_or(idvault_core::Error::MissingArgument(name))
}
