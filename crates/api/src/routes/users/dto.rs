//! Wire types of the user endpoints: camelCase, as the SDKs send and expect them. Every field a
//! SDK may send as `null` is an `Option`, where null means "not given".

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};

use crate::fields as f;
use idvault_core::error::{Error, Result};
use idvault_core::user::search::RawPaging;
use idvault_core::user::{
    NewUser, SortBy, SortField, TenantRoleFilter, User, UserQuery, UserStatus, UserTenant,
};

/// A tenant membership of the user, with the user's roles in it.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDto {
    #[serde(default)]
    #[schema(schema_with = f::name_req, required = true)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    #[schema(schema_with = f::name_list_opt)]
    pub role_names: Option<Vec<String>>,
}

/// A user to create, or (update) the whole new state of a user. Invitation options (`invite`,
/// `inviteUrl`, `sendMail`, `sendSMS`, `templateId`, `locale`) are accepted and ignored.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateUserRequest {
    #[schema(schema_with = f::login_id_req, required = true)]
    pub login_id: Option<String>,
    #[schema(schema_with = f::email_opt)]
    pub email: Option<String>,
    #[schema(schema_with = f::phone_opt)]
    pub phone: Option<String>,
    #[schema(schema_with = f::text_opt)]
    pub display_name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    pub given_name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    pub middle_name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    pub family_name: Option<String>,
    #[schema(schema_with = f::name_list_opt)]
    pub role_names: Option<Vec<String>>,
    #[schema(schema_with = f::user_tenants_opt::<TenantDto>)]
    pub user_tenants: Option<Vec<TenantDto>>,
    pub test: Option<bool>,
    #[schema(schema_with = f::text_opt)]
    pub picture: Option<String>,
    /// Values of defined custom attributes, by name.
    #[schema(schema_with = f::custom_attributes_opt)]
    pub custom_attributes: Option<Map<String, Value>>,
    #[schema(schema_with = f::login_id_list_opt)]
    pub additional_login_ids: Option<Vec<String>>,
    /// Python sends `ssoAppIDs`, Node `ssoAppIds`.
    #[serde(rename = "ssoAppIDs", alias = "ssoAppIds")]
    #[schema(schema_with = f::name_list_opt)]
    pub sso_app_ids: Option<Vec<String>>,
    pub verified_email: Option<bool>,
    pub verified_phone: Option<bool>,
    #[schema(schema_with = f::status_opt)]
    pub status: Option<String>,
    /// Send an invitation; for an existing user, a re-invitation (idvault sends no messages).
    pub invite: Option<bool>,
    // Invitation options (invite, inviteUrl, sendMail, sendSMS, templateId, locale) are accepted
    // and ignored: idvault sends no messages.
}

impl TenantDto {
    pub fn into_user_tenant(self) -> UserTenant {
        UserTenant {
            tenant_id: self.tenant_id.unwrap_or_default(),
            role_names: self.role_names.unwrap_or_default(),
            ..Default::default()
        }
    }
}

impl CreateUserRequest {
    pub fn into_new_user(self, force_test: bool) -> Result<NewUser> {
        let tenants =
            self.user_tenants.unwrap_or_default().into_iter().map(TenantDto::into_user_tenant).collect();
        Ok(NewUser {
            login_id: self.login_id.unwrap_or_default(),
            additional_login_ids: self.additional_login_ids.unwrap_or_default(),
            email: self.email,
            phone: self.phone,
            name: self.display_name,
            given_name: self.given_name,
            middle_name: self.middle_name,
            family_name: self.family_name,
            verified_email: self.verified_email,
            verified_phone: self.verified_phone,
            role_names: self.role_names.unwrap_or_default(),
            tenants,
            status: self.status.as_deref().filter(|s| !s.is_empty()).map(UserStatus::parse).transpose()?,
            picture: self.picture,
            test: force_test || self.test.unwrap_or(false),
            custom_attributes: self.custom_attributes.unwrap_or_default(),
            sso_app_ids: self.sso_app_ids.unwrap_or_default(),
        })
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchCreateRequest {
    #[schema(schema_with = f::batch_create_users_req, required = true)]
    pub users: Option<Vec<CreateUserRequest>>,
}

/// Names a user by `loginId` or `userId`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRefBody {
    #[schema(schema_with = f::login_id_opt)]
    pub login_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    pub user_id: Option<String>,
}

/// Names a user by `loginId` or `userId` (one of them is required).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRefQuery {
    pub login_id: Option<String>,
    pub user_id: Option<String>,
}

impl IntoParams for UserRefQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![f::user_query()]
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadUsersRequest {
    #[schema(schema_with = f::user_ids_req, required = true)]
    pub user_ids: Option<Vec<String>>,
    /// Also answer disabled and expired users.
    pub include_invalid_users: Option<bool>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
/// User search filters; every filter given must match.
pub struct SearchRequest {
    #[schema(schema_with = f::filter_list_opt)]
    pub tenant_ids: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    pub role_names: Option<Vec<String>>,
    #[serde(default, deserialize_with = "f::opt_int")]
    #[schema(schema_with = f::limit_opt)]
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "f::opt_int")]
    #[schema(schema_with = f::page_opt)]
    pub page: Option<i64>,
    pub test_users_only: Option<bool>,
    pub with_test_user: Option<bool>,
    #[schema(schema_with = f::status_list_opt)]
    pub statuses: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    pub emails: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    pub phones: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    pub login_ids: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    pub user_ids: Option<Vec<String>>,
    #[schema(schema_with = f::search_text_opt)]
    pub text: Option<String>,
    #[schema(schema_with = f::search_attributes_opt)]
    pub custom_attributes: Option<Map<String, Value>>,
    /// Also accepted as `ssoAppIDs`.
    #[serde(alias = "ssoAppIDs")]
    #[schema(schema_with = f::filter_list_opt)]
    pub sso_app_ids: Option<Vec<String>>,
    #[schema(schema_with = f::sort_opt::<SortDto>)]
    pub sort: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "f::opt_int")]
    #[schema(schema_with = f::time_ms_opt)]
    pub from_created_time: Option<i64>,
    #[serde(default, deserialize_with = "f::opt_int")]
    #[schema(schema_with = f::time_ms_opt)]
    pub to_created_time: Option<i64>,
    #[serde(default, deserialize_with = "f::opt_int")]
    #[schema(schema_with = f::time_ms_opt)]
    pub from_modified_time: Option<i64>,
    #[serde(default, deserialize_with = "f::opt_int")]
    #[schema(schema_with = f::time_ms_opt)]
    pub to_modified_time: Option<i64>,
    /// Per tenant id, role ids the user must have in it.
    #[schema(schema_with = f::tenant_roles_opt::<RoleValues>)]
    pub tenant_role_ids: Option<Map<String, Value>>,
    /// Per tenant id, role names the user must have in it.
    #[schema(schema_with = f::tenant_roles_opt::<RoleValues>)]
    pub tenant_role_names: Option<Map<String, Value>>,
    pub verified_email: Option<bool>,
    pub verified_phone: Option<bool>,
}

/// `{"values": [...], "and": bool}` of `tenantRoleIds` / `tenantRoleNames`.
#[derive(Deserialize, Default, ToSchema)]
pub struct RoleValues {
    #[serde(default)]
    #[schema(schema_with = f::filter_list)]
    pub values: Vec<String>,
    /// The user must have all the roles (default: any of them).
    #[serde(default)]
    pub and: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct SortDto {
    #[schema(schema_with = f::sort_field_req)]
    pub field: String,
    #[serde(default)]
    pub desc: bool,
}

impl SearchRequest {
    pub async fn into_query(
        self,
        state: &crate::state::AppState,
        project: &idvault_core::ids::ProjectId,
        test_only: bool,
    ) -> Result<UserQuery> {
        self.into_query_with(test_only, |tenant, ids| async move {
            state.users.role_names_for_ids(project, &tenant, &ids).await
        })
        .await
    }

    /// The query, with `tenantRoleIds` resolved to role names by `role_names_for_ids` (the store
    /// in the server; a stand-in in the fuzz target, which drives this without a store).
    pub async fn into_query_with<Fut>(
        self,
        test_only: bool,
        mut role_names_for_ids: impl FnMut(String, Vec<String>) -> Fut,
    ) -> Result<UserQuery>
    where
        Fut: std::future::Future<Output = Result<Vec<String>>>,
    {
        let statuses = self
            .statuses
            .unwrap_or_default()
            .iter()
            .map(|s| UserStatus::parse(s))
            .collect::<Result<Vec<_>>>()?;
        let sort = self
            .sort
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                let s: SortDto = serde_json::from_value(v)
                    .map_err(|_| Error::invalid("sort", "entries are {field, desc}"))?;
                Ok(SortBy { field: SortField::parse(&s.field)?, desc: s.desc })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut tenant_roles = Vec::new();
        for (by_id, map) in [(false, self.tenant_role_names), (true, self.tenant_role_ids)] {
            for (tenant, spec) in map.unwrap_or_default() {
                let spec: RoleValues = serde_json::from_value(spec)
                    .map_err(|_| Error::invalid("tenantRoleNames", "entries are {values, and}"))?;
                let roles =
                    if by_id { role_names_for_ids(tenant.clone(), spec.values).await? } else { spec.values };
                tenant_roles.push(TenantRoleFilter { tenant_id: tenant, roles, all: spec.and });
            }
        }
        let nonzero = |t: Option<i64>| t.filter(|v| *v != 0);
        let query = UserQuery {
            login_ids: self.login_ids.unwrap_or_default(),
            user_ids: self.user_ids.unwrap_or_default(),
            emails: self.emails.unwrap_or_default(),
            phones: self.phones.unwrap_or_default(),
            tenant_ids: self.tenant_ids.unwrap_or_default(),
            role_names: self.role_names.unwrap_or_default(),
            statuses,
            text: self.text.filter(|t| !t.is_empty()),
            custom_attributes: self.custom_attributes.unwrap_or_default(),
            sso_app_ids: self.sso_app_ids.unwrap_or_default(),
            sort,
            from_created_ms: nonzero(self.from_created_time),
            to_created_ms: nonzero(self.to_created_time),
            from_modified_ms: nonzero(self.from_modified_time),
            to_modified_ms: nonzero(self.to_modified_time),
            tenant_roles,
            verified_email: self.verified_email,
            verified_phone: self.verified_phone,
            ..Default::default()
        };
        query.paging(RawPaging {
            limit: self.limit,
            page: self.page,
            test_users_only: test_only || self.test_users_only.unwrap_or(false),
            with_test_user: test_only || self.with_test_user.unwrap_or(false),
        })
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserTenantResponse {
    pub tenant_id: String,
    pub tenant_name: String,
    pub role_names: Vec<String>,
    pub permissions: Vec<String>,
}

/// The Descope user object.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserResponse {
    pub user_id: String,
    pub login_ids: Vec<String>,
    pub name: String,
    pub given_name: String,
    pub middle_name: String,
    pub family_name: String,
    pub email: String,
    pub phone: String,
    pub verified_email: bool,
    pub verified_phone: bool,
    pub role_names: Vec<String>,
    pub user_tenants: Vec<UserTenantResponse>,
    /// `enabled`, `disabled`, `invited` or `expired`.
    #[schema(example = "enabled")]
    pub status: &'static str,
    pub picture: String,
    pub test: bool,
    #[schema(value_type = Object)]
    pub custom_attributes: Map<String, Value>,
    /// Unix seconds.
    pub created_time: i64,
    /// Unix seconds.
    pub modified_time: i64,
    pub totp: bool,
    pub webauthn: bool,
    pub password: bool,
    pub saml: bool,
    pub scim: bool,
    /// The OAuth providers the user signed in with, each mapped to `true`.
    #[schema(value_type = HashMap<String, bool>)]
    pub oauth: Map<String, Value>,
    pub sso_app_ids: Vec<String>,
    /// The same flags as spelled by the Node SDK's `UserResponse` type (`TOTP`, `SAML`, `SCIM`,
    /// `OAuth`); Go decodes either spelling.
    #[serde(rename = "TOTP")]
    pub totp_upper: bool,
    #[serde(rename = "SAML")]
    pub saml_upper: bool,
    #[serde(rename = "SCIM")]
    pub scim_upper: bool,
    #[serde(rename = "OAuth")]
    #[schema(value_type = HashMap<String, bool>)]
    pub oauth_upper: Map<String, Value>,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        UserResponse {
            user_id: u.user_id.into_string(),
            login_ids: u.login_ids,
            name: u.name.unwrap_or_default(),
            given_name: u.given_name.unwrap_or_default(),
            middle_name: u.middle_name.unwrap_or_default(),
            family_name: u.family_name.unwrap_or_default(),
            email: u.email.unwrap_or_default(),
            phone: u.phone.unwrap_or_default(),
            verified_email: u.verified_email,
            verified_phone: u.verified_phone,
            role_names: u.role_names,
            user_tenants: u
                .tenants
                .into_iter()
                .map(|t| UserTenantResponse {
                    tenant_id: t.tenant_id,
                    tenant_name: t.tenant_name,
                    role_names: t.role_names,
                    permissions: t.permissions,
                })
                .collect(),
            status: u.status.as_str(),
            picture: u.picture.unwrap_or_default(),
            test: u.test,
            custom_attributes: u.custom_attributes,
            created_time: u.created_ms.div_euclid(1000),
            modified_time: u.modified_ms.div_euclid(1000),
            totp: false,
            webauthn: false,
            password: false,
            saml: false,
            scim: false,
            oauth_upper: u.oauth_providers.iter().map(|p| (p.clone(), Value::Bool(true))).collect(),
            oauth: u.oauth_providers.into_iter().map(|p| (p, Value::Bool(true))).collect(),
            totp_upper: false,
            saml_upper: false,
            scim_upper: false,
            sso_app_ids: u.sso_app_ids,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserEnvelope {
    pub user: UserResponse,
}

#[derive(Serialize, ToSchema)]
pub struct UsersEnvelope {
    pub users: Vec<UserResponse>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResponse {
    pub users: Vec<UserResponse>,
    pub total: u64,
}

#[derive(Serialize, ToSchema)]
pub struct FailedUser {
    /// Why this user was not created.
    pub failure: String,
    /// `{"loginIds": [<login id>]}`.
    #[schema(value_type = Object)]
    pub user: Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchCreateResponse {
    pub created_users: Vec<UserResponse>,
    pub failed_users: Vec<FailedUser>,
}
