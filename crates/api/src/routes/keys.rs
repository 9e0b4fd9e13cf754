//! `/v1/mgmt/managementkey`: an idvault extension (not in Descope's API) to create, list, rename,
//! expire and revoke the management keys of the project the calling key belongs to. A key can
//! change or revoke any key of its own project, itself included. A created key's secret is in
//! the create answer and nowhere else, ever (the CLI's `idvault key create` likewise shows it
//! once); no other answer contains a key's secret or its digest.
//!
//! A revoked key is refused from the very next request on this server; other replicas sharing a
//! PostgreSQL database evict it on the database's notification (see docs/api.md).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::error::Error;
use idvault_core::project::{KeyState, KeyUpdate, ManagementKey};
use secrecy::ExposeSecret;

use crate::error::ApiResult;
use crate::extract::{AppJson, MgmtAuth};
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::empty_ok;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_key))
        .routes(routes!(list_keys))
        .routes(routes!(update_key))
        .routes(routes!(expire_key))
        .routes(routes!(revoke_key))
}

/// A management key as answered: everything but the secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct KeyView {
    /// The key id: the part of the key between `idv_` and the dot.
    id: String,
    name: String,
    /// `active`, `expired` or `revoked`.
    #[schema(example = "active")]
    status: &'static str,
    /// Unix seconds.
    created_time: i64,
    /// Unix seconds; 0 for a key that does not expire.
    expire_time: i64,
    /// Unix seconds; 0 for a key not revoked.
    revoked_time: i64,
}

impl KeyView {
    fn new(k: ManagementKey, now_ms: i64) -> Self {
        KeyView {
            status: match k.state(now_ms) {
                KeyState::Active => "active",
                KeyState::Expired => "expired",
                KeyState::Revoked => "revoked",
            },
            id: k.key_id,
            name: k.name,
            created_time: k.created_ms.div_euclid(1000),
            expire_time: k.expires_ms.map_or(0, |ms| ms.div_euclid(1000)),
            revoked_time: k.revoked_ms.map_or(0, |ms| ms.div_euclid(1000)),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct KeysEnvelope {
    keys: Vec<KeyView>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RevokeKeyRequest {
    /// The id of the key to revoke (as listed): `idvault_core::project::KEY_ID_LEN` alphanumerics.
    #[schema(
        required = true,
        nullable = false,
        min_length = 16,
        max_length = 16,
        pattern = "^[A-Za-z0-9]+$"
    )]
    key_id: Option<String>,
}

/// The management keys of the calling key's project (idvault extension).
#[utoipa::path(
    get,
    path = "/v1/mgmt/managementkey/list",
    tag = "management-keys",
    security(("management_key" = [])),
    responses((status = 200, description = "The project's keys, secrets excluded", body = KeysEnvelope), MgmtErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn list_keys(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
) -> ApiResult<Json<KeysEnvelope>> {
    let keys = state.projects.list_keys(&project).await?;
    let now = state.projects.now_ms();
    Ok(Json(KeysEnvelope { keys: keys.into_iter().map(|k| KeyView::new(k, now)).collect() }))
}

/// Revokes a management key of the calling key's project (idvault extension). Revoking a revoked
/// key again succeeds; an unknown key, or one of another project, is `E011004`.
#[utoipa::path(
    post,
    path = "/v1/mgmt/managementkey/revoke",
    tag = "management-keys",
    security(("management_key" = [])),
    request_body = RevokeKeyRequest,
    responses((status = 200, description = "Revoked", body = Empty), MgmtErrors, BodyErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn revoke_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<RevokeKeyRequest>,
) -> ApiResult<Json<Value>> {
    let key_id = body.key_id.filter(|k| !k.is_empty()).ok_or(Error::MissingArgument("keyId"))?;
    state.projects.revoke_key(&project, &key_id).await?;
    tracing::info!(project = %project, key_id = %key_id, "management key revoked over the API");
    Ok(empty_ok())
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
struct CreateKeyBody {
    /// 1 to 100 printable characters; names the key in listings and audit records.
    #[schema(required = true, min_length = 1, max_length = 100)]
    name: Option<String>,
    /// Unix seconds, in the future; absent or 0: the key does not expire.
    #[schema(schema_with = crate::fields::expire_time_opt)]
    expire_time: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct CreatedKeyBody {
    key: KeyView,
    /// The whole key (`idv_<keyId>.<secret>`), for `Authorization: Bearer <projectId>:<key>`.
    /// Shown in this answer only: it is stored as a digest and cannot be shown again.
    cleartext: String,
}

/// Creates a management key for the calling key's project (idvault extension). The answer holds
/// the key's secret, once.
#[utoipa::path(
    post,
    path = "/v1/mgmt/managementkey/create",
    tag = "management-keys",
    security(("management_key" = [])),
    request_body = CreateKeyBody,
    responses((status = 200, description = "The new key and, this once, its secret", body = CreatedKeyBody), MgmtErrors, BodyErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<CreateKeyBody>,
) -> ApiResult<Json<CreatedKeyBody>> {
    let name = body.name.filter(|n| !n.is_empty()).ok_or(Error::MissingArgument("name"))?;
    let now = state.projects.now_ms();
    let expires_in_ms =
        body.expire_time.filter(|t| *t != 0).map(|secs| secs.saturating_mul(1000).saturating_sub(now));
    let issued = state.projects.create_key(&project, &name, expires_in_ms).await?;
    tracing::info!(project = %project, key_id = %issued.record.key_id, "management key created over the API");
    let cleartext = issued.secret.expose_secret().to_owned();
    Ok(Json(CreatedKeyBody { key: KeyView::new(issued.record, now), cleartext }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
struct UpdateKeyBody {
    #[schema(required = true, min_length = 16, max_length = 16, pattern = "^[A-Za-z0-9]+$")]
    key_id: Option<String>,
    /// A new name; absent: unchanged.
    #[schema(schema_with = crate::fields::key_name_opt)]
    name: Option<String>,
    /// A new expiry, Unix seconds (one in the past expires the key now); 0: never expires;
    /// absent: unchanged.
    #[schema(schema_with = crate::fields::expire_time_opt)]
    expire_time: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct KeyEnvelope {
    key: KeyView,
}

/// Renames a management key of the calling key's project or changes its expiry (idvault
/// extension). A revoked key cannot be changed (`E011004`).
#[utoipa::path(
    post,
    path = "/v1/mgmt/managementkey/update",
    tag = "management-keys",
    security(("management_key" = [])),
    request_body = UpdateKeyBody,
    responses((status = 200, description = "The changed key", body = KeyEnvelope), MgmtErrors, BodyErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<UpdateKeyBody>,
) -> ApiResult<Json<KeyEnvelope>> {
    let key_id = body.key_id.filter(|k| !k.is_empty()).ok_or(Error::MissingArgument("keyId"))?;
    let update = KeyUpdate {
        name: body.name,
        expires_ms: body.expire_time.map(|t| (t != 0).then(|| t.saturating_mul(1000))),
    };
    let key = state.projects.update_key(&project, &key_id, update).await?;
    Ok(Json(KeyEnvelope { key: KeyView::new(key, state.projects.now_ms()) }))
}

/// Expires a management key of the calling key's project now (idvault extension): it is refused
/// from the next request on; unlike a revocation, a later update can give it a new expiry.
#[utoipa::path(
    post,
    path = "/v1/mgmt/managementkey/expire",
    tag = "management-keys",
    security(("management_key" = [])),
    request_body = RevokeKeyRequest,
    responses((status = 200, description = "The expired key", body = KeyEnvelope), MgmtErrors, BodyErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn expire_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<RevokeKeyRequest>,
) -> ApiResult<Json<KeyEnvelope>> {
    let key_id = body.key_id.filter(|k| !k.is_empty()).ok_or(Error::MissingArgument("keyId"))?;
    let key = state.projects.expire_key(&project, &key_id).await?;
    Ok(Json(KeyEnvelope { key: KeyView::new(key, state.projects.now_ms()) }))
}
