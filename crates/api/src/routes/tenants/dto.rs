//! Wire types of the tenant endpoints, as the SDKs send and expect them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};

use idvault_core::directory::{Tenant, TenantQuery};

use crate::fields as f;

/// A tenant to create (the id is generated when absent) or to replace (the id is required).
/// Only the given fields change.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantPatchRequest {
    #[schema(schema_with = f::name_req, required = true)]
    pub id: Option<String>,
    #[schema(schema_with = f::name_opt)]
    pub name: Option<String>,
    #[schema(schema_with = f::name_list_opt)]
    pub self_provisioning_domains: Option<Vec<String>>,
    #[schema(schema_with = f::custom_attributes_opt)]
    pub custom_attributes: Option<Map<String, Value>>,
    pub disabled: Option<bool>,
    #[serde(rename = "enforceSSO")]
    pub enforce_sso: Option<bool>,
}

/// A tenant to create; the id is generated when absent or empty.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantRequest {
    #[schema(schema_with = f::text_opt)]
    pub id: Option<String>,
    #[schema(schema_with = f::name_req, required = true)]
    pub name: Option<String>,
    #[schema(schema_with = f::name_list_opt)]
    pub self_provisioning_domains: Option<Vec<String>>,
    #[schema(schema_with = f::custom_attributes_opt)]
    pub custom_attributes: Option<Map<String, Value>>,
    pub disabled: Option<bool>,
    #[serde(rename = "enforceSSO")]
    pub enforce_sso: Option<bool>,
}

/// The new state of a tenant, found by its id.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantUpdateRequest {
    #[schema(schema_with = f::name_req, required = true)]
    pub id: Option<String>,
    #[schema(schema_with = f::name_req, required = true)]
    pub name: Option<String>,
    #[schema(schema_with = f::name_list_opt)]
    pub self_provisioning_domains: Option<Vec<String>>,
    #[schema(schema_with = f::custom_attributes_opt)]
    pub custom_attributes: Option<Map<String, Value>>,
    pub disabled: Option<bool>,
    #[serde(rename = "enforceSSO")]
    pub enforce_sso: Option<bool>,
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
    pub fn into_tenant(self) -> Tenant {
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
pub struct TenantResponse {
    pub id: String,
    pub name: String,
    pub self_provisioning_domains: Vec<String>,
    #[schema(value_type = Object)]
    pub custom_attributes: Map<String, Value>,
    pub disabled: bool,
    #[serde(rename = "enforceSSO")]
    pub enforce_sso: bool,
    /// Unix seconds.
    pub created_time: i64,
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
pub struct IdBody {
    /// The new tenant's id.
    pub id: String,
}

#[derive(Serialize, ToSchema)]
pub struct TenantsBody {
    pub tenants: Vec<TenantResponse>,
}

impl From<Vec<Tenant>> for TenantsBody {
    fn from(tenants: Vec<Tenant>) -> Self {
        TenantsBody { tenants: tenants.into_iter().map(Into::into).collect() }
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[schema(as = TenantIdBody)]
pub struct IdRequest {
    /// The tenant's id.
    #[serde(default)]
    #[schema(schema_with = f::name_req, required = true)]
    pub id: String,
    /// Also delete the users who belong to no other tenant.
    #[serde(default)]
    pub cascade: bool,
}

#[derive(Deserialize)]
pub struct IdQuery {
    #[serde(default)]
    pub id: String,
}

impl IntoParams for IdQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![f::query("id", true, "The tenant's id.", f::name_req())]
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantSearchRequest {
    #[schema(schema_with = f::filter_list_opt)]
    pub tenant_ids: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    pub tenant_names: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    pub tenant_self_provisioning_domains: Option<Vec<String>>,
    /// Attribute values the tenant must have.
    #[schema(schema_with = f::custom_attributes_opt)]
    pub custom_attributes: Option<Map<String, Value>>,
}

impl TenantSearchRequest {
    pub fn into_query(self) -> TenantQuery {
        TenantQuery {
            ids: self.tenant_ids.unwrap_or_default(),
            names: self.tenant_names.unwrap_or_default(),
            self_provisioning_domains: self.tenant_self_provisioning_domains.unwrap_or_default(),
            custom_attributes: self.custom_attributes.unwrap_or_default(),
        }
    }
}
