//! Tenants, roles, permissions and custom attribute definitions, with the verbs, paths and
//! bodies of the Descope SDKs.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use idvault_core::directory::{
    AttributeDef, AttributeOption, AttributeType, Permission, Role, RoleQuery, Tenant, TenantQuery,
};
use idvault_core::error::Error;

use crate::error::ApiResult;
use crate::extract::{AppJson, AppQuery, MgmtAuth};
use crate::routes::empty_ok;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/mgmt/tenant/create", post(create_tenant))
        .route("/v1/mgmt/tenant/update", post(update_tenant))
        .route("/v1/mgmt/tenant/delete", post(delete_tenant))
        .route("/v1/mgmt/tenant", get(load_tenant))
        .route("/v1/mgmt/tenant/all", get(load_all_tenants))
        .route("/v1/mgmt/tenant/search", post(search_tenants))
        .route("/v1/mgmt/role/create", post(create_role))
        .route("/v1/mgmt/role/update", post(update_role))
        .route("/v1/mgmt/role/delete", post(delete_role))
        .route("/v1/mgmt/role/all", get(load_all_roles))
        .route("/v1/mgmt/role/search", post(search_roles))
        .route("/v1/mgmt/permission/create", post(create_permission))
        .route("/v1/mgmt/permission/update", post(update_permission))
        .route("/v1/mgmt/permission/delete", post(delete_permission))
        .route("/v1/mgmt/permission/all", get(load_all_permissions))
        .route("/v1/mgmt/user/customattribute/create", post(create_custom_attributes))
        .route("/v1/mgmt/user/customattribute/delete", post(delete_custom_attributes))
        .route("/v1/mgmt/user/customattributes", get(load_custom_attributes))
}

// ---- tenants ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TenantRequest {
    id: Option<String>,
    name: Option<String>,
    self_provisioning_domains: Option<Vec<String>>,
    custom_attributes: Option<Map<String, Value>>,
    disabled: Option<bool>,
}

impl TenantRequest {
    fn into_tenant(self) -> Tenant {
        Tenant {
            id: self.id.unwrap_or_default(),
            name: self.name.unwrap_or_default(),
            self_provisioning_domains: self.self_provisioning_domains.unwrap_or_default(),
            custom_attributes: self.custom_attributes.unwrap_or_default(),
            disabled: self.disabled.unwrap_or(false),
            created_ms: 0,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TenantResponse {
    id: String,
    name: String,
    self_provisioning_domains: Vec<String>,
    custom_attributes: Map<String, Value>,
    disabled: bool,
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
            created_time: t.created_ms.div_euclid(1000),
        }
    }
}

#[derive(Serialize)]
struct IdBody {
    id: String,
}

#[derive(Serialize)]
struct TenantsBody {
    tenants: Vec<TenantResponse>,
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_tenant(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<TenantRequest>,
) -> ApiResult<Json<IdBody>> {
    let t = state.directory.create_tenant(&project, body.into_tenant()).await?;
    Ok(Json(IdBody { id: t.id }))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_tenant(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<TenantRequest>,
) -> ApiResult<Json<Value>> {
    if body.id.as_deref().is_none_or(str::is_empty) {
        return Err(Error::MissingArgument("id").into());
    }
    state.directory.update_tenant(&project, body.into_tenant()).await?;
    Ok(empty_ok())
}

#[derive(Deserialize, Default)]
struct IdRequest {
    #[serde(default)]
    id: String,
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_tenant(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<IdRequest>,
) -> ApiResult<Json<Value>> {
    state.directory.delete_tenant(&project, &body.id).await?;
    Ok(empty_ok())
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_tenant(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppQuery(q): AppQuery<IdRequest>,
) -> ApiResult<Json<TenantResponse>> {
    if q.id.is_empty() {
        return Err(Error::MissingArgument("id").into());
    }
    Ok(Json(state.directory.load_tenant(&project, &q.id).await?.into()))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_all_tenants(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<TenantsBody>> {
    let all = state.directory.search_tenants(&project, &TenantQuery::default()).await?;
    Ok(Json(TenantsBody { tenants: all.into_iter().map(Into::into).collect() }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TenantSearchRequest {
    tenant_ids: Option<Vec<String>>,
    tenant_names: Option<Vec<String>>,
    tenant_self_provisioning_domains: Option<Vec<String>>,
    custom_attributes: Option<Map<String, Value>>,
}

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

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RoleRequest {
    id: Option<String>,
    name: Option<String>,
    new_name: Option<String>,
    description: Option<String>,
    permission_names: Option<Vec<String>>,
    tenant_id: Option<String>,
    default: Option<bool>,
    private: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoleResponse {
    id: String,
    name: String,
    description: String,
    permission_names: Vec<String>,
    tenant_id: String,
    default: bool,
    private: bool,
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

#[derive(Serialize)]
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

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_all_roles(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<RolesBody>> {
    let roles = state.directory.list_roles(&project).await?;
    Ok(Json(RolesBody { roles: roles.into_iter().map(Into::into).collect() }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RoleSearchRequest {
    tenant_ids: Option<Vec<String>>,
    role_names: Option<Vec<String>>,
    role_name_like: Option<String>,
    permission_names: Option<Vec<String>>,
    include_project_roles: Option<bool>,
    role_ids: Option<Vec<String>>,
}

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

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PermissionRequest {
    id: Option<String>,
    name: Option<String>,
    new_name: Option<String>,
    description: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PermissionResponse {
    id: String,
    name: String,
    description: String,
    system_default: bool,
}

#[derive(Serialize)]
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttributeDto {
    #[serde(default)]
    name: String,
    #[serde(rename = "type")]
    kind: Option<Value>,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    options: Vec<Value>,
    #[serde(default)]
    required: bool,
}

#[derive(Deserialize, Default)]
struct AttributesRequest {
    #[serde(default)]
    attributes: Vec<AttributeDto>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttributeResponse {
    name: String,
    #[serde(rename = "type")]
    kind: i64,
    display_name: String,
    options: Vec<Value>,
    required: bool,
}

#[derive(Serialize)]
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
                    .map(|o| serde_json::json!({"value": o.value, "label": o.label}))
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

#[derive(Deserialize, Default)]
struct NamesRequest {
    #[serde(default)]
    names: Vec<String>,
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_custom_attributes(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<NamesRequest>,
) -> ApiResult<Json<AttributesBody>> {
    Ok(attributes_body(state.directory.delete_attributes(&project, &body.names).await?))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_custom_attributes(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<AttributesBody>> {
    Ok(attributes_body(state.directory.list_attributes(&project).await?))
}
