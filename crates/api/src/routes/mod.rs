//! Route handlers by area; each area's `router()` sits next to its handlers.

pub mod access_keys;
pub mod attributes;
pub mod audit;
pub mod auth;
pub mod health;
pub mod keys;
pub mod license;
pub mod outbound;
pub mod permissions;
pub mod provider_tokens;
pub mod providers;
pub mod roles;
pub mod tenants;
pub mod users;

/// The `{}` body the SDKs expect from a success with nothing to say (the Node SDK parses every
/// body).
pub(crate) fn empty_ok() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::Value::Object(serde_json::Map::new()))
}

/// The name a request gives, or, when it gives only an id (the SDKs' `*_by_id` calls), the name
/// of the entry with that id among `entries` (`(id, name)` pairs, loaded only then). `what`
/// names the kind of entry in the not-found error.
pub(crate) async fn name_or_by_id<F, Fut>(
    what: &str,
    name: Option<&str>,
    id: Option<&str>,
    entries: F,
) -> Result<String, idvault_core::error::Error>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(String, String)>, idvault_core::error::Error>>,
{
    use idvault_core::error::Error;
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        return Ok(name.to_owned());
    }
    let id = id.filter(|i| !i.is_empty()).ok_or(Error::MissingArgument("name"))?;
    entries()
        .await?
        .into_iter()
        .find(|(entry_id, _)| entry_id == id)
        .map(|(_, name)| name)
        .ok_or_else(|| Error::NotFound(format!("{what} '{id}'")))
}
