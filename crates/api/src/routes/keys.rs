//! `/v1/mgmt/managementkey`: an idvault extension (not in Descope's API) to list and revoke the
//! management keys of the project the calling key belongs to. A key can revoke any key of its
//! own project, itself included; keys are created with the CLI (`idvault key create`), which
//! shows the secret once. No answer ever contains a key's secret or its digest.
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
use idvault_core::project::{KeyState, ManagementKey};

use crate::error::ApiResult;
use crate::extract::{AppJson, MgmtAuth};
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::empty_ok;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_keys)).routes(routes!(revoke_key))
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<RevokeKeyRequest>,
) -> ApiResult<Json<Value>> {
    let key_id = body.key_id.filter(|k| !k.is_empty()).ok_or(Error::MissingArgument("keyId"))?;
    state.projects.revoke_key(&project, &key_id).await?;
    tracing::info!(project = %project, key_id = %key_id, "management key revoked over the API");
    Ok(empty_ok())
}
