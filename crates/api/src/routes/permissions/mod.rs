//! Permissions: create, replace, delete and list.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::directory::Permission;
use idvault_core::error::Error;
use idvault_core::ids::ProjectId;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, MgmtAuth};
use crate::fields as f;
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::{empty_ok, name_or_by_id};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_permission))
        .routes(routes!(update_permission))
        .routes(routes!(delete_permission))
        .routes(routes!(load_all_permissions))
}

/// A permission, named by `name` (update and delete also find it by `id` when `name` is empty).
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PermissionRequest {
    #[schema(schema_with = f::text_opt)]
    id: Option<String>,
    #[schema(schema_with = f::name_req, required = true)]
    name: Option<String>,
    /// Update only: the new name.
    #[schema(schema_with = f::new_name_opt)]
    new_name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    description: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PermissionResponse {
    id: String,
    name: String,
    description: String,
    system_default: bool,
}

#[derive(Serialize, ToSchema)]
struct PermissionsBody {
    permissions: Vec<PermissionResponse>,
}

impl From<Vec<Permission>> for PermissionsBody {
    fn from(all: Vec<Permission>) -> Self {
        let permissions = all
            .into_iter()
            .map(|p| PermissionResponse {
                id: p.id,
                name: p.name,
                description: p.description,
                system_default: false,
            })
            .collect();
        PermissionsBody { permissions }
    }
}

/// Finds a permission's name from `name`, or from `id` (the `*_by_id` SDK calls).
async fn permission_name(
    state: &AppState,
    project: &ProjectId,
    body: &PermissionRequest,
) -> Result<String, Error> {
    name_or_by_id("permission", body.name.as_deref(), body.id.as_deref(), || async {
        let permissions = state.directory.list_permissions(project).await?;
        Ok(permissions.into_iter().map(|p| (p.id, p.name)).collect())
    })
    .await
}

/// Creates a permission.
#[utoipa::path(
    post,
    path = "/v1/mgmt/permission/create",
    tag = "permissions",
    security(("management_key" = [])),
    request_body = PermissionRequest,
    responses(
        (status = 200, description = "Created", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 409, description = "A permission with this name exists (`E011409`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_permission(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<PermissionRequest>,
) -> ApiResult<Json<Value>> {
    state
        .directory
        .create_permission(
            &project,
            body.name.as_deref().unwrap_or_default(),
            body.description.as_deref().unwrap_or_default(),
        )
        .await?;
    Ok(empty_ok())
}

/// Replaces a permission, found by `name` or `id`; `newName` renames it.
#[utoipa::path(
    post,
    path = "/v1/mgmt/permission/update",
    tag = "permissions",
    security(("management_key" = [])),
    request_body = PermissionRequest,
    responses(
        (status = 200, description = "Updated", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such permission (`E011406`)", body = ErrorBody),
        (status = 409, description = "A permission with the new name exists (`E011409`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_permission(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<PermissionRequest>,
) -> ApiResult<Json<Value>> {
    let name = permission_name(&state, &project, &body).await?;
    state
        .directory
        .update_permission(
            &project,
            &name,
            body.new_name.as_deref().unwrap_or_default(),
            body.description.as_deref().unwrap_or_default(),
        )
        .await?;
    Ok(empty_ok())
}

/// Deletes a permission, found by `name` or `id`.
#[utoipa::path(
    post,
    path = "/v1/mgmt/permission/delete",
    tag = "permissions",
    security(("management_key" = [])),
    request_body = PermissionRequest,
    responses(
        (status = 200, description = "Deleted", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such permission (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_permission(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<PermissionRequest>,
) -> ApiResult<Json<Value>> {
    let name = permission_name(&state, &project, &body).await?;
    state.directory.delete_permission(&project, &name).await?;
    Ok(empty_ok())
}

/// Every permission of the project.
#[utoipa::path(
    get,
    path = "/v1/mgmt/permission/all",
    tag = "permissions",
    security(("management_key" = [])),
    responses(
        (status = 200, description = "The permissions", body = PermissionsBody),
        MgmtErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_all_permissions(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
) -> ApiResult<Json<PermissionsBody>> {
    Ok(Json(state.directory.list_permissions(&project).await?.into()))
}
