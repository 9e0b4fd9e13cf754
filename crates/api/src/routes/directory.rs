//! Tenants, roles, permissions and custom attribute definitions, with the verbs, paths and
//! bodies of the Descope SDKs.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::directory::{
    AttributeDef, AttributeOption, AttributeType, Permission, Role, RoleQuery, Tenant, TenantQuery,
};
use idvault_core::error::Error;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, MgmtAuth};
use crate::fields as f;
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::empty_ok;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant))
        .routes(routes!(update_tenant))
        .routes(routes!(patch_tenant))
        .routes(routes!(delete_tenant))
        .routes(routes!(load_tenant))
        .routes(routes!(load_all_tenants))
        .routes(routes!(search_tenants))
        .routes(routes!(create_role))
        .routes(routes!(update_role))
        .routes(routes!(delete_role))
        .routes(routes!(load_all_roles))
        .routes(routes!(search_roles))
        .routes(routes!(create_permission))
        .routes(routes!(update_permission))
        .routes(routes!(delete_permission))
        .routes(routes!(load_all_permissions))
        .routes(routes!(create_custom_attributes))
        .routes(routes!(delete_custom_attributes))
        .routes(routes!(load_custom_attributes))
}

// ---- tenants ----

/// A tenant to create (the id is generated when absent) or to replace (the id is required).
/// Only the given fields change.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TenantPatchRequest {
    #[schema(schema_with = f::name_req, required = true)]
    id: Option<String>,
    #[schema(schema_with = f::name_opt)]
    name: Option<String>,
    #[schema(schema_with = f::name_list_opt)]
    self_provisioning_domains: Option<Vec<String>>,
    #[schema(schema_with = f::custom_attributes_opt)]
    custom_attributes: Option<Map<String, Value>>,
    disabled: Option<bool>,
    #[serde(rename = "enforceSSO")]
    enforce_sso: Option<bool>,
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
    MgmtAuth(project): MgmtAuth,
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

/// A tenant to create; the id is generated when absent or empty.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TenantRequest {
    #[schema(schema_with = f::text_opt)]
    id: Option<String>,
    #[schema(schema_with = f::name_req, required = true)]
    name: Option<String>,
    #[schema(schema_with = f::name_list_opt)]
    self_provisioning_domains: Option<Vec<String>>,
    #[schema(schema_with = f::custom_attributes_opt)]
    custom_attributes: Option<Map<String, Value>>,
    disabled: Option<bool>,
    #[serde(rename = "enforceSSO")]
    enforce_sso: Option<bool>,
}

/// The new state of a tenant, found by its id.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TenantUpdateRequest {
    #[schema(schema_with = f::name_req, required = true)]
    id: Option<String>,
    #[schema(schema_with = f::name_req, required = true)]
    name: Option<String>,
    #[schema(schema_with = f::name_list_opt)]
    self_provisioning_domains: Option<Vec<String>>,
    #[schema(schema_with = f::custom_attributes_opt)]
    custom_attributes: Option<Map<String, Value>>,
    disabled: Option<bool>,
    #[serde(rename = "enforceSSO")]
    enforce_sso: Option<bool>,
}

impl From<TenantUpdateRequest> for TenantRequest {
    fn from(t: TenantUpdateRequest) -> Self {
        TenantRequest {
            id: t.id,
            name: t.name,
            self_provisioning_domains: t.self_provisioning_domains,
            custom_attributes: t.custom_attributes,
            disabled: t.disabled,
            enforce_sso: t.enforce_sso,
        }
    }
}

impl TenantRequest {
    fn into_tenant(self) -> Tenant {
        Tenant {
            id: self.id.unwrap_or_default(),
            name: self.name.unwrap_or_default(),
            self_provisioning_domains: self.self_provisioning_domains.unwrap_or_default(),
            custom_attributes: self.custom_attributes.unwrap_or_default(),
            disabled: self.disabled.unwrap_or(false),
            enforce_sso: self.enforce_sso.unwrap_or(false),
            created_ms: 0,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TenantResponse {
    id: String,
    name: String,
    self_provisioning_domains: Vec<String>,
    #[schema(value_type = Object)]
    custom_attributes: Map<String, Value>,
    disabled: bool,
    #[serde(rename = "enforceSSO")]
    enforce_sso: bool,
    /// Unix seconds.
    created_time: i64,
}

impl From<Tenant> for TenantResponse {
    fn from(t: Tenant) -> Self {
        TenantResponse {
            id: t.id,
            name: t.name,
            self_provisioning_domains: t.self_provisioning_domains,
            custom_attributes: t.custom_attributes,
            disabled: t.disabled,
            enforce_sso: t.enforce_sso,
            created_time: t.created_ms.div_euclid(1000),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct IdBody {
    /// The new tenant's id.
    id: String,
}

#[derive(Serialize, ToSchema)]
struct TenantsBody {
    tenants: Vec<TenantResponse>,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<TenantUpdateRequest>,
) -> ApiResult<Json<Value>> {
    if body.id.as_deref().is_none_or(str::is_empty) {
        return Err(Error::MissingArgument("id").into());
    }
    state.directory.update_tenant(&project, TenantRequest::from(body).into_tenant()).await?;
    Ok(empty_ok())
}

#[derive(Deserialize, Default, ToSchema)]
#[schema(as = TenantIdBody)]
struct IdRequest {
    /// The tenant's id.
    #[serde(default)]
    #[schema(schema_with = f::name_req, required = true)]
    id: String,
    /// Also delete the users who belong to no other tenant.
    #[serde(default)]
    cascade: bool,
}

#[derive(Deserialize)]
struct IdQuery {
    #[serde(default)]
    id: String,
}

impl IntoParams for IdQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![f::query("id", true, "The tenant's id.", f::name_req())]
    }
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<TenantsBody>> {
    let all = state.directory.search_tenants(&project, &TenantQuery::default()).await?;
    Ok(Json(TenantsBody { tenants: all.into_iter().map(Into::into).collect() }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TenantSearchRequest {
    #[schema(schema_with = f::filter_list_opt)]
    tenant_ids: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    tenant_names: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    tenant_self_provisioning_domains: Option<Vec<String>>,
    /// Attribute values the tenant must have.
    #[schema(schema_with = f::custom_attributes_opt)]
    custom_attributes: Option<Map<String, Value>>,
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
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<TenantSearchRequest>,
) -> ApiResult<Json<TenantsBody>> {
    let q = TenantQuery {
        ids: body.tenant_ids.unwrap_or_default(),
        names: body.tenant_names.unwrap_or_default(),
        self_provisioning_domains: body.tenant_self_provisioning_domains.unwrap_or_default(),
        custom_attributes: body.custom_attributes.unwrap_or_default(),
    };
    let found = state.directory.search_tenants(&project, &q).await?;
    Ok(Json(TenantsBody { tenants: found.into_iter().map(Into::into).collect() }))
}

// ---- roles ----

/// A role, named by `name` (update and delete also find it by `id` when `name` is empty).
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RoleRequest {
    #[schema(schema_with = f::text_opt)]
    id: Option<String>,
    #[schema(schema_with = f::name_req, required = true)]
    name: Option<String>,
    /// Update only: the new name.
    #[schema(schema_with = f::new_name_opt)]
    new_name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    description: Option<String>,
    #[schema(schema_with = f::name_list_opt)]
    permission_names: Option<Vec<String>>,
    /// The tenant of a tenant role; absent for a project role.
    #[schema(schema_with = f::text_opt)]
    tenant_id: Option<String>,
    default: Option<bool>,
    private: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RoleResponse {
    id: String,
    name: String,
    description: String,
    permission_names: Vec<String>,
    /// Empty for a project role.
    tenant_id: String,
    default: bool,
    private: bool,
    /// Unix seconds.
    created_time: i64,
}

impl From<Role> for RoleResponse {
    fn from(r: Role) -> Self {
        RoleResponse {
            id: r.id,
            name: r.name,
            description: r.description,
            permission_names: r.permission_names,
            tenant_id: r.tenant_id.unwrap_or_default(),
            default: r.default,
            private: r.private,
            created_time: r.created_ms.div_euclid(1000),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct RolesBody {
    roles: Vec<RoleResponse>,
}

/// Finds a role's name from `name`, or from `id` (the `*_by_id` SDK calls).
async fn role_name(
    state: &AppState,
    project: &idvault_core::ids::ProjectId,
    body: &RoleRequest,
) -> Result<String, Error> {
    if let Some(n) = body.name.as_ref().filter(|n| !n.is_empty()) {
        return Ok(n.clone());
    }
    let id = body.id.as_ref().filter(|i| !i.is_empty()).ok_or(Error::MissingArgument("name"))?;
    state
        .directory
        .list_roles(project)
        .await?
        .into_iter()
        .find(|r| &r.id == id)
        .map(|r| r.name)
        .ok_or_else(|| Error::NotFound(format!("role '{id}'")))
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
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<RoleRequest>,
) -> ApiResult<Json<Value>> {
    let role = Role {
        id: String::new(),
        name: body.name.unwrap_or_default(),
        tenant_id: body.tenant_id,
        description: body.description.unwrap_or_default(),
        permission_names: body.permission_names.unwrap_or_default(),
        default: body.default.unwrap_or(false),
        private: body.private.unwrap_or(false),
        created_ms: 0,
    };
    state.directory.create_role(&project, role).await?;
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
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<RoleRequest>,
) -> ApiResult<Json<Value>> {
    let name = role_name(&state, &project, &body).await?;
    let role = Role {
        id: String::new(),
        name: body.new_name.filter(|n| !n.is_empty()).unwrap_or_else(|| name.clone()),
        tenant_id: body.tenant_id.clone(),
        description: body.description.unwrap_or_default(),
        permission_names: body.permission_names.unwrap_or_default(),
        default: body.default.unwrap_or(false),
        private: body.private.unwrap_or(false),
        created_ms: 0,
    };
    state.directory.update_role(&project, &name, body.tenant_id.as_deref(), role).await?;
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<RolesBody>> {
    let roles = state.directory.list_roles(&project).await?;
    Ok(Json(RolesBody { roles: roles.into_iter().map(Into::into).collect() }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RoleSearchRequest {
    #[schema(schema_with = f::filter_list_opt)]
    tenant_ids: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    role_names: Option<Vec<String>>,
    #[schema(schema_with = f::text_opt)]
    role_name_like: Option<String>,
    #[schema(schema_with = f::filter_list_opt)]
    permission_names: Option<Vec<String>>,
    include_project_roles: Option<bool>,
    #[schema(schema_with = f::filter_list_opt)]
    role_ids: Option<Vec<String>>,
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
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<RoleSearchRequest>,
) -> ApiResult<Json<RolesBody>> {
    let tenant_ids = body.tenant_ids.unwrap_or_default();
    let q = RoleQuery {
        // Without tenant filters, project roles are part of the answer.
        include_project_roles: body.include_project_roles.unwrap_or(tenant_ids.is_empty()),
        tenant_ids,
        role_names: body.role_names.unwrap_or_default(),
        role_name_like: body.role_name_like.filter(|s| !s.is_empty()),
        permission_names: body.permission_names.unwrap_or_default(),
        role_ids: body.role_ids.unwrap_or_default(),
    };
    let roles = state.directory.search_roles(&project, &q).await?;
    Ok(Json(RolesBody { roles: roles.into_iter().map(Into::into).collect() }))
}

// ---- permissions ----

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

async fn permission_name(
    state: &AppState,
    project: &idvault_core::ids::ProjectId,
    body: &PermissionRequest,
) -> Result<String, Error> {
    if let Some(n) = body.name.as_ref().filter(|n| !n.is_empty()) {
        return Ok(n.clone());
    }
    let id = body.id.as_ref().filter(|i| !i.is_empty()).ok_or(Error::MissingArgument("name"))?;
    state
        .directory
        .list_permissions(project)
        .await?
        .into_iter()
        .find(|p: &Permission| &p.id == id)
        .map(|p| p.name)
        .ok_or_else(|| Error::NotFound(format!("permission '{id}'")))
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<PermissionsBody>> {
    let all = state.directory.list_permissions(&project).await?;
    Ok(Json(PermissionsBody {
        permissions: all
            .into_iter()
            .map(|p| PermissionResponse {
                id: p.id,
                name: p.name,
                description: p.description,
                system_default: false,
            })
            .collect(),
    }))
}

// ---- custom attributes ----

/// A custom attribute definition.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AttributeDto {
    #[serde(default)]
    #[schema(schema_with = f::attribute_name_req, required = true)]
    name: String,
    #[serde(rename = "type", default, deserialize_with = "f::opt_value_int")]
    #[schema(schema_with = f::attribute_type_req, required = true)]
    kind: Option<Value>,
    /// Defaults to the name.
    #[serde(default)]
    #[schema(schema_with = f::text)]
    display_name: String,
    #[serde(default)]
    #[schema(schema_with = f::attribute_options)]
    options: Vec<Value>,
    #[serde(default)]
    required: bool,
}

#[derive(Deserialize, Default, ToSchema)]
struct AttributesRequest {
    #[serde(default)]
    #[schema(schema_with = f::attributes_req::<AttributeDto>, required = true)]
    attributes: Vec<AttributeDto>,
}

#[derive(Serialize, ToSchema)]
struct AttributeOptionBody {
    value: String,
    label: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AttributeResponse {
    name: String,
    /// A number from 1 (string) to 6 (date).
    #[serde(rename = "type")]
    kind: i64,
    display_name: String,
    options: Vec<AttributeOptionBody>,
    required: bool,
}

#[derive(Serialize, ToSchema)]
struct AttributesBody {
    data: Vec<AttributeResponse>,
}

fn attributes_body(defs: Vec<AttributeDef>) -> Json<AttributesBody> {
    Json(AttributesBody {
        data: defs
            .into_iter()
            .map(|d| AttributeResponse {
                name: d.name,
                kind: d.kind as i64,
                display_name: d.display_name,
                options: d
                    .options
                    .into_iter()
                    .map(|o| AttributeOptionBody { value: o.value, label: o.label })
                    .collect(),
                required: d.required,
            })
            .collect(),
    })
}

/// Options as Python sends them (strings) or as Node sends them (`{value, label}`).
fn option_of(v: &Value) -> Result<AttributeOption, Error> {
    match v {
        Value::String(s) => Ok(AttributeOption { value: s.clone(), label: s.clone() }),
        Value::Object(o) => {
            let value = o.get("value").and_then(Value::as_str).unwrap_or_default().to_owned();
            let label =
                o.get("label").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| value.clone());
            Ok(AttributeOption { value, label })
        }
        _ => Err(Error::invalid("options", "options are strings or {value, label}")),
    }
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
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<AttributesRequest>,
) -> ApiResult<Json<AttributesBody>> {
    let defs = body
        .attributes
        .into_iter()
        .map(|a| {
            Ok(AttributeDef {
                kind: AttributeType::from_json(a.kind.as_ref().ok_or(Error::MissingArgument("type"))?)?,
                options: a.options.iter().map(option_of).collect::<Result<_, _>>()?,
                display_name: if a.display_name.is_empty() { a.name.clone() } else { a.display_name },
                name: a.name,
                required: a.required,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(attributes_body(state.directory.create_attributes(&project, defs).await?))
}

#[derive(Deserialize, Default, ToSchema)]
struct NamesRequest {
    /// The names of the definitions to delete.
    #[serde(default)]
    #[schema(schema_with = f::name_list_req)]
    names: Vec<String>,
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
    MgmtAuth(project): MgmtAuth,
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
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<AttributesBody>> {
    Ok(attributes_body(state.directory.list_attributes(&project).await?))
}
