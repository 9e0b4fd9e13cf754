//! Tenants: create, replace, patch, delete, load and search.

pub mod dto;

use axum::extract::State;
use axum::Json;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::directory::TenantQuery;
use idvault_core::error::Error;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, MgmtAuth};
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::empty_ok;
use crate::state::AppState;
use dto::*;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant))
        .routes(routes!(update_tenant))
        .routes(routes!(patch_tenant))
        .routes(routes!(delete_tenant))
        .routes(routes!(load_tenant))
        .routes(routes!(load_all_tenants))
        .routes(routes!(search_tenants))
}

/// Changes only the given fields of a tenant.
#[utoipa::path(
    patch,
    path = "/v1/mgmt/tenant/patch",
    tag = "tenants",
    security(("management_key" = [])),
    request_body = TenantPatchRequest,
    responses(
        (status = 200, description = "Updated", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such tenant (`E011406`)", body = ErrorBody),
        (status = 409, description = "Another tenant has this name (`E011409`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn patch_tenant(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<TenantPatchRequest>,
) -> ApiResult<Json<Value>> {
    let id = body.id.clone().filter(|i| !i.is_empty()).ok_or(Error::MissingArgument("id"))?;
    state
        .directory
        .patch_tenant(&project, &id, move |t| {
            if let Some(n) = body.name {
                t.name = n;
            }
            if let Some(d) = body.self_provisioning_domains {
                t.self_provisioning_domains = d;
            }
            if let Some(a) = body.custom_attributes {
                t.custom_attributes.extend(a);
            }
            if let Some(d) = body.disabled {
                t.disabled = d;
            }
            if let Some(e) = body.enforce_sso {
                t.enforce_sso = e;
            }
        })
        .await?;
    Ok(empty_ok())
}

/// Creates a tenant.
#[utoipa::path(
    post,
    path = "/v1/mgmt/tenant/create",
    tag = "tenants",
    security(("management_key" = [])),
    request_body = TenantRequest,
    responses(
        (status = 200, description = "The new tenant's id", body = IdBody),
        MgmtErrors,
        BodyErrors,
        (status = 409, description = "A tenant with this id or name exists (`E011409`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_tenant(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<TenantRequest>,
) -> ApiResult<Json<IdBody>> {
    let t = state.directory.create_tenant(&project, body.into_tenant()).await?;
    Ok(Json(IdBody { id: t.id }))
}

/// Replaces a tenant's fields.
#[utoipa::path(
    post,
    path = "/v1/mgmt/tenant/update",
    tag = "tenants",
    security(("management_key" = [])),
    request_body = TenantUpdateRequest,
    responses(
        (status = 200, description = "Updated", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such tenant (`E011406`)", body = ErrorBody),
        (status = 409, description = "Another tenant has this name (`E011409`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_tenant(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<TenantUpdateRequest>,
) -> ApiResult<Json<Value>> {
    if body.id.as_deref().is_none_or(str::is_empty) {
        return Err(Error::MissingArgument("id").into());
    }
    state.directory.update_tenant(&project, TenantRequest::from(body).into_tenant()).await?;
    Ok(empty_ok())
}

/// Deletes a tenant.
///
/// Its roles and memberships go with it; with `cascade`, so do the users who belong to no other
/// tenant.
#[utoipa::path(
    post,
    path = "/v1/mgmt/tenant/delete",
    tag = "tenants",
    security(("management_key" = [])),
    request_body = IdRequest,
    responses(
        (status = 200, description = "Deleted", body = Empty),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_tenant(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<IdRequest>,
) -> ApiResult<Json<Value>> {
    state.directory.delete_tenant(&project, &body.id, body.cascade).await?;
    Ok(empty_ok())
}

/// One tenant.
#[utoipa::path(
    get,
    path = "/v1/mgmt/tenant",
    tag = "tenants",
    security(("management_key" = [])),
    params(IdQuery),
    responses(
        (status = 200, description = "The tenant", body = TenantResponse),
        MgmtErrors,
        (status = 404, description = "No such tenant (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_tenant(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppQuery(q): AppQuery<IdQuery>,
) -> ApiResult<Json<TenantResponse>> {
    if q.id.is_empty() {
        return Err(Error::MissingArgument("id").into());
    }
    Ok(Json(state.directory.load_tenant(&project, &q.id).await?.into()))
}

/// Every tenant of the project.
#[utoipa::path(
    get,
    path = "/v1/mgmt/tenant/all",
    tag = "tenants",
    security(("management_key" = [])),
    responses(
        (status = 200, description = "The tenants", body = TenantsBody),
        MgmtErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_all_tenants(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
) -> ApiResult<Json<TenantsBody>> {
    Ok(Json(state.directory.search_tenants(&project, &TenantQuery::default()).await?.into()))
}

/// Tenants matching every filter given.
#[utoipa::path(
    post,
    path = "/v1/mgmt/tenant/search",
    tag = "tenants",
    security(("management_key" = [])),
    request_body = TenantSearchRequest,
    responses(
        (status = 200, description = "The tenants found", body = TenantsBody),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn search_tenants(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<TenantSearchRequest>,
) -> ApiResult<Json<TenantsBody>> {
    Ok(Json(state.directory.search_tenants(&project, &body.into_query()).await?.into()))
}
