//! The list operations on a user (roles in a scope, SSO apps): set, add or remove, one
//! handler for every path. Each path keeps its own OpenAPI operation, documented by a
//! function that is never called.

use axum::extract::State;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use idvault_core::error::Error;
use idvault_core::user::{ListOp, RoleScope, UserChange, UserRef};

use super::dto::UserEnvelope;
use crate::error::ApiResult;
use crate::extract::{AppJson, MgmtAuth};
use crate::fields as f;
use crate::openapi::{BodyErrors, MgmtErrors};
use crate::state::AppState;

/// Routes one path to `$handler`, documented by the `#[utoipa::path]` of `$doc` (as
/// `utoipa_axum::routes!` does for a handler that documents itself).
macro_rules! documented {
    ($doc:ident => $handler:expr) => {{
        #[allow(unused_imports)]
        use utoipa::{
            Path as _,
            __dev::{SchemaReferences as _, Tags as _},
        };
        use utoipa_axum::PathItemExt as _;
        utoipa_axum::paste! {{
            let mut schemas = Vec::new();
            [<__path_ $doc>]::schemas(&mut schemas);
            let mut operation = [<__path_ $doc>]::operation();
            let tags = [<__path_ $doc>]::tags();
            if !tags.is_empty() {
                operation.tags.get_or_insert(Vec::new()).extend(tags.iter().map(ToString::to_string));
            }
            let methods = [<__path_ $doc>]::methods();
            let router = methods
                .iter()
                .fold(axum::routing::MethodRouter::new(), |router, method| router.on(method.to_method_filter(), $handler));
            let mut paths = utoipa::openapi::path::Paths::new();
            paths.add_path_operation(&[<__path_ $doc>]::path(), methods, operation);
            (schemas, paths, router)
        }}
    }};
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(documented!(set_roles => change_list::<RolesRequest, Set>))
        .routes(documented!(add_roles => change_list::<RolesRequest, Add>))
        .routes(documented!(add_roles_v2 => change_list::<RolesRequest, Add>))
        .routes(documented!(remove_roles => change_list::<RolesRequest, Remove>))
        .routes(documented!(add_sso_apps => change_list::<SsoAppsRequest, Add>))
        .routes(documented!(set_sso_apps => change_list::<SsoAppsRequest, Set>))
        .routes(documented!(remove_sso_apps => change_list::<SsoAppsRequest, Remove>))
}

/// A request naming a user and the values of one of its lists.
trait ListRequest: DeserializeOwned + Send + 'static {
    fn into_change(self, op: ListOp) -> Result<(UserRef, UserChange), Error>;
}

/// The operation of a path, as a type so that each path gets its own handler instance.
trait Operation {
    const OP: ListOp;
}

struct Set;
struct Add;
struct Remove;

impl Operation for Set {
    const OP: ListOp = ListOp::Set;
}
impl Operation for Add {
    const OP: ListOp = ListOp::Add;
}
impl Operation for Remove {
    const OP: ListOp = ListOp::Remove;
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn change_list<R: ListRequest, O: Operation>(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<R>,
) -> ApiResult<Json<UserEnvelope>> {
    let (who, change) = body.into_change(O::OP)?;
    let user = state.users.change(&project, &who, change).await?;
    Ok(Json(UserEnvelope { user: user.into() }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserRolesRequest)]
struct RolesRequest {
    #[schema(schema_with = f::login_id_opt)]
    login_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    /// The tenant whose roles change; absent for project roles.
    #[schema(schema_with = f::text_opt)]
    tenant_id: Option<String>,
    #[serde(default)]
    #[schema(schema_with = f::name_list_req)]
    role_names: Vec<String>,
}

impl ListRequest for RolesRequest {
    fn into_change(self, op: ListOp) -> Result<(UserRef, UserChange), Error> {
        let who = UserRef::from_parts(self.login_id.as_deref(), self.user_id.as_deref())?;
        let scope = match self.tenant_id.filter(|t| !t.is_empty()) {
            Some(tenant) => RoleScope::Tenant(tenant),
            None => RoleScope::Project,
        };
        Ok((who, UserChange::Roles { scope, op, roles: self.role_names }))
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserSsoAppsRequest)]
struct SsoAppsRequest {
    #[schema(schema_with = f::login_id_opt)]
    login_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    /// Also accepted as `ssoAppIDs`.
    #[serde(default, alias = "ssoAppIDs")]
    #[schema(schema_with = f::name_list_req)]
    sso_app_ids: Vec<String>,
}

impl ListRequest for SsoAppsRequest {
    fn into_change(self, op: ListOp) -> Result<(UserRef, UserChange), Error> {
        let who = UserRef::from_parts(self.login_id.as_deref(), self.user_id.as_deref())?;
        Ok((who, UserChange::SsoApps { op, apps: self.sso_app_ids }))
    }
}

/// Replaces the user's roles, project-wide or in `tenantId`.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/role/set",
    tag = "users",
    security(("management_key" = [])),
    request_body = RolesRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[allow(dead_code)] // Documentation only: `change_list` handles the path.
fn set_roles() {}

/// Adds roles to the user, project-wide or in `tenantId`.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/role/add",
    tag = "users",
    security(("management_key" = [])),
    request_body = RolesRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[allow(dead_code)] // Documentation only: `change_list` handles the path.
fn add_roles() {}

/// Adds roles to the user, project-wide or in `tenantId` (the v2 path of the newer SDKs).
#[utoipa::path(
    post,
    path = "/v2/mgmt/user/update/role/add",
    tag = "users",
    security(("management_key" = [])),
    request_body = RolesRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[allow(dead_code)] // Documentation only: `change_list` handles the path.
fn add_roles_v2() {}

/// Removes roles from the user, project-wide or in `tenantId`.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/role/remove",
    tag = "users",
    security(("management_key" = [])),
    request_body = RolesRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[allow(dead_code)] // Documentation only: `change_list` handles the path.
fn remove_roles() {}

/// Adds SSO apps to the user.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/ssoapp/add",
    tag = "users",
    security(("management_key" = [])),
    request_body = SsoAppsRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[allow(dead_code)] // Documentation only: `change_list` handles the path.
fn add_sso_apps() {}

/// Replaces the user's SSO apps.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/ssoapp/set",
    tag = "users",
    security(("management_key" = [])),
    request_body = SsoAppsRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[allow(dead_code)] // Documentation only: `change_list` handles the path.
fn set_sso_apps() {}

/// Removes SSO apps from the user.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/ssoapp/remove",
    tag = "users",
    security(("management_key" = [])),
    request_body = SsoAppsRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[allow(dead_code)] // Documentation only: `change_list` handles the path.
fn remove_sso_apps() {}
