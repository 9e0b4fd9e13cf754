//! Custom attribute definitions: create (or replace), delete and list.

pub mod dto;

use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::error::Error;

use crate::error::ApiResult;
use crate::extract::{AppJson, MgmtAuth};
use crate::openapi::{BodyErrors, MgmtErrors};
use crate::state::AppState;
use dto::*;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_custom_attributes))
        .routes(routes!(delete_custom_attributes))
        .routes(routes!(load_custom_attributes))
}

/// Creates (or replaces) custom attribute definitions.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/customattribute/create",
    tag = "custom-attributes",
    security(("management_key" = [])),
    request_body = AttributesRequest,
    responses(
        (status = 200, description = "Every definition of the project", body = AttributesBody),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_custom_attributes(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<AttributesRequest>,
) -> ApiResult<Json<AttributesBody>> {
    let defs = body.attributes.into_iter().map(AttributeDto::into_def).collect::<Result<Vec<_>, Error>>()?;
    Ok(attributes_body(state.directory.create_attributes(&project, defs).await?))
}

/// Deletes custom attribute definitions by name.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/customattribute/delete",
    tag = "custom-attributes",
    security(("management_key" = [])),
    request_body = NamesRequest,
    responses(
        (status = 200, description = "The definitions left", body = AttributesBody),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_custom_attributes(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<NamesRequest>,
) -> ApiResult<Json<AttributesBody>> {
    Ok(attributes_body(state.directory.delete_attributes(&project, &body.names).await?))
}

/// Every custom attribute definition of the project.
#[utoipa::path(
    get,
    path = "/v1/mgmt/user/customattributes",
    tag = "custom-attributes",
    security(("management_key" = [])),
    responses(
        (status = 200, description = "The definitions", body = AttributesBody),
        MgmtErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_custom_attributes(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
) -> ApiResult<Json<AttributesBody>> {
    Ok(attributes_body(state.directory.list_attributes(&project).await?))
}
