//! Wire types of the role endpoints, as the SDKs send and expect them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use idvault_core::directory::{Role, RoleQuery};

use crate::fields as f;

/// A role, named by `name` (update and delete also find it by `id` when `name` is empty).
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleRequest {
    #[schema(schema_with = f::text_opt)]
    pub id: Option<String>,
    #[schema(schema_with = f::name_req, required = true)]
    pub name: Option<String>,
    /// Update only: the new name.
    #[schema(schema_with = f::new_name_opt)]
    pub new_name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    pub description: Option<String>,
    #[schema(schema_with = f::name_list_opt)]
    pub permission_names: Option<Vec<String>>,
    /// The tenant of a tenant role; absent for a project role.
    #[schema(schema_with = f::text_opt)]
    pub tenant_id: Option<String>,
    pub default: Option<bool>,
    pub private: Option<bool>,
}

impl RoleRequest {
    /// The role the request describes, under `name` (the create name, or an update's new one).
    pub fn into_role(self, name: String) -> Role {
        Role {
            id: String::new(),
            name,
            tenant_id: self.tenant_id,
            description: self.description.unwrap_or_default(),
            permission_names: self.permission_names.unwrap_or_default(),
            default: self.default.unwrap_or(false),
            private: self.private.unwrap_or(false),
            created_ms: 0,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleResponse {
    pub id: String,
    pub name: String,
    pub description: String,
    pub permission_names: Vec<String>,
    /// Empty for a project role.
    pub tenant_id: String,
    pub default: bool,
    pub private: bool,
    /// Unix seconds.
    pub created_time: i64,
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
pub struct RolesBody {
    pub roles: Vec<RoleResponse>,
}

impl From<Vec<Role>> for RolesBody {
    fn from(roles: Vec<Role>) -> Self {
        RolesBody { roles: roles.into_iter().map(Into::into).collect() }
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleSearchRequest {
    #[schema(schema_with = f::filter_list_opt)]
    pub tenant_ids: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    pub role_names: Option<Vec<String>>,
    #[schema(schema_with = f::text_opt)]
    pub role_name_like: Option<String>,
    #[schema(schema_with = f::filter_list_opt)]
    pub permission_names: Option<Vec<String>>,
    pub include_project_roles: Option<bool>,
    #[schema(schema_with = f::filter_list_opt)]
    pub role_ids: Option<Vec<String>>,
}

impl RoleSearchRequest {
    pub fn into_query(self) -> RoleQuery {
        RoleQuery {
            include_project_roles: self.include_project_roles.unwrap_or_default(),
            tenant_ids: self.tenant_ids.unwrap_or_default(),
            role_names: self.role_names.unwrap_or_default(),
            role_name_like: self.role_name_like.filter(|s| !s.is_empty()),
            permission_names: self.permission_names.unwrap_or_default(),
            role_ids: self.role_ids.unwrap_or_default(),
        }
    }
}
