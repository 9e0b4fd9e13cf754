//! Roles: project-wide or per tenant; create, replace, delete, list and search.

pub mod dto;

use axum::extract::State;
use axum::Json;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::error::Error;
use idvault_core::ids::ProjectId;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, MgmtAuth};
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::{empty_ok, name_or_by_id};
use crate::state::AppState;
use dto::*;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_role))
        .routes(routes!(update_role))
        .routes(routes!(delete_role))
        .routes(routes!(load_all_roles))
        .routes(routes!(search_roles))
}

/// Finds a role's name from `name`, or from `id` (the `*_by_id` SDK calls).
async fn role_name(state: &AppState, project: &ProjectId, body: &RoleRequest) -> Result<String, Error> {
    name_or_by_id("role", body.name.as_deref(), body.id.as_deref(), || async {
        let roles = state.directory.list_roles(project).await?;
        Ok(roles.into_iter().map(|r| (r.id, r.name)).collect())
    })
    .await
}

/// Creates a role, project-wide or in a tenant.
#[utoipa::path(
    post,
    path = "/v1/mgmt/role/create",
    tag = "roles",
    security(("management_key" = [])),
    request_body = RoleRequest,
    responses(
        (status = 200, description = "Created", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 409, description = "A role with this name exists in this scope (`E011409`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_role(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<RoleRequest>,
) -> ApiResult<Json<Value>> {
    let name = body.name.clone().unwrap_or_default();
    state.directory.create_role(&project, body.into_role(name)).await?;
    Ok(empty_ok())
}

/// Replaces a role, found by `name` or `id` (and `tenantId`); `newName` renames it.
#[utoipa::path(
    post,
    path = "/v1/mgmt/role/update",
    tag = "roles",
    security(("management_key" = [])),
    request_body = RoleRequest,
    responses(
        (status = 200, description = "Updated", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such role (`E011406`)", body = ErrorBody),
        (status = 409, description = "A role with the new name exists (`E011409`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_role(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<RoleRequest>,
) -> ApiResult<Json<Value>> {
    let name = role_name(&state, &project, &body).await?;
    let tenant_id = body.tenant_id.clone();
    let new_name = body.new_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| name.clone());
    state.directory.update_role(&project, &name, tenant_id.as_deref(), body.into_role(new_name)).await?;
    Ok(empty_ok())
}

/// Deletes a role, found by `name` or `id` (and `tenantId`).
#[utoipa::path(
    post,
    path = "/v1/mgmt/role/delete",
    tag = "roles",
    security(("management_key" = [])),
    request_body = RoleRequest,
    responses(
        (status = 200, description = "Deleted", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such role (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_role(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<RoleRequest>,
) -> ApiResult<Json<Value>> {
    let name = role_name(&state, &project, &body).await?;
    state.directory.delete_role(&project, &name, body.tenant_id.as_deref()).await?;
    Ok(empty_ok())
}

/// Every role of the project, project-wide and per tenant.
#[utoipa::path(
    get,
    path = "/v1/mgmt/role/all",
    tag = "roles",
    security(("management_key" = [])),
    responses(
        (status = 200, description = "The roles", body = RolesBody),
        MgmtErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_all_roles(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
) -> ApiResult<Json<RolesBody>> {
    Ok(Json(state.directory.list_roles(&project).await?.into()))
}

/// Roles matching every filter given; without tenant filters, project roles are included.
#[utoipa::path(
    post,
    path = "/v1/mgmt/role/search",
    tag = "roles",
    security(("management_key" = [])),
    request_body = RoleSearchRequest,
    responses(
        (status = 200, description = "The roles found", body = RolesBody),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn search_roles(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<RoleSearchRequest>,
) -> ApiResult<Json<RolesBody>> {
    Ok(Json(state.directory.search_roles(&project, &body.into_query()).await?.into()))
}
