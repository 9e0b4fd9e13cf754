//! Changing users: replace, patch (one or many), status, single-field updates, roles, tenants,
//! SSO apps, logout and login history. Every change is applied by the store to the current row
//! inside one write transaction; every answer is `{"user": <user>}` unless noted.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::error::Error;
use idvault_core::user::model::add_all;
use idvault_core::user::{User, UserRef, UserStatus};

use super::dto::{CreateUserRequest, TenantDto, UserEnvelope, UserResponse};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, MgmtAuth};
use crate::fields as f;
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::empty_ok;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(update_user))
        .routes(routes!(patch_user))
        .routes(routes!(patch_users_batch))
        .routes(routes!(update_status))
        .routes(routes!(update_login_id))
        .routes(routes!(update_email))
        .routes(routes!(update_phone))
        .routes(routes!(update_name))
        .routes(routes!(update_picture))
        .routes(routes!(update_custom_attribute))
        .routes(routes!(set_roles))
        .routes(routes!(add_roles))
        .routes(routes!(add_roles_v2))
        .routes(routes!(remove_roles))
        .routes(routes!(add_tenant))
        .routes(routes!(remove_tenant))
        .routes(routes!(add_sso_apps))
        .routes(routes!(set_sso_apps))
        .routes(routes!(remove_sso_apps))
        .routes(routes!(logout_user))
        .routes(routes!(user_history))
}

fn user_ref(login_id: &Option<String>, user_id: &Option<String>) -> Result<UserRef, Error> {
    UserRef::from_parts(login_id.as_deref(), user_id.as_deref())
}

fn envelope(user: User) -> Json<UserEnvelope> {
    Json(UserEnvelope { user: user.into() })
}

/// An email or phone set by management is verified unless the caller says otherwise.
fn contact(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// Replaces every field of the user with the request's.
///
/// The login id identifies the user; absent or null fields are cleared; verified flags and status
/// change only when given.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update",
    tag = "users",
    security(("management_key" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 409, description = "Another user has one of these login ids (`E062107`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_user(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<CreateUserRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &None)?;
    let new = body.into_new_user(false)?;
    let user = state
        .users
        .mutate(&project, &who, move |u| {
            let primary = u.login_ids.first().cloned().unwrap_or_default();
            let mut login_ids = vec![primary];
            add_all(&mut login_ids, &new.additional_login_ids);
            u.login_ids = login_ids;
            let email = contact(new.email);
            let phone = contact(new.phone);
            u.verified_email = match (&email, new.verified_email) {
                (_, Some(v)) => v,
                (Some(e), None) => {
                    u.email.as_ref() == Some(e) && u.verified_email || u.email.as_ref() != Some(e)
                }
                (None, None) => false,
            };
            u.verified_phone = match (&phone, new.verified_phone) {
                (_, Some(v)) => v,
                (Some(p), None) => {
                    u.phone.as_ref() == Some(p) && u.verified_phone || u.phone.as_ref() != Some(p)
                }
                (None, None) => false,
            };
            u.email = email;
            u.phone = phone;
            u.name = new.name.filter(|s| !s.is_empty());
            u.given_name = new.given_name.filter(|s| !s.is_empty());
            u.middle_name = new.middle_name.filter(|s| !s.is_empty());
            u.family_name = new.family_name.filter(|s| !s.is_empty());
            u.role_names = new.role_names;
            u.tenants = new.tenants;
            u.picture = new.picture.filter(|s| !s.is_empty());
            u.custom_attributes = new.custom_attributes;
            u.sso_app_ids = new.sso_app_ids;
            if let Some(status) = new.status {
                u.status = status;
            }
            Ok(())
        })
        .await?;
    Ok(envelope(user))
}

/// A patch: only the fields present change.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchUserRequest {
    #[schema(schema_with = f::login_id_opt)]
    login_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    #[schema(schema_with = f::email_opt)]
    email: Option<String>,
    #[schema(schema_with = f::phone_opt)]
    phone: Option<String>,
    #[schema(schema_with = f::text_opt)]
    display_name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    given_name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    middle_name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    family_name: Option<String>,
    #[schema(schema_with = f::name_list_opt)]
    role_names: Option<Vec<String>>,
    #[schema(schema_with = f::user_tenants_opt::<TenantDto>)]
    user_tenants: Option<Vec<TenantDto>>,
    #[schema(schema_with = f::text_opt)]
    picture: Option<String>,
    /// Merged into the user's values: the attributes given change, the others stay.
    #[schema(schema_with = f::custom_attributes_opt)]
    custom_attributes: Option<Map<String, Value>>,
    verified_email: Option<bool>,
    verified_phone: Option<bool>,
    /// Also accepted as `ssoAppIDs`.
    #[serde(alias = "ssoAppIDs")]
    #[schema(schema_with = f::name_list_opt)]
    sso_app_ids: Option<Vec<String>>,
    /// `enabled`, `disabled`, `invited` or `expired`.
    #[schema(schema_with = f::status_opt)]
    status: Option<String>,
}

impl PatchUserRequest {
    fn apply(self, u: &mut User) -> Result<(), Error> {
        if let Some(e) = self.email {
            let changed = u.email.as_deref() != Some(e.as_str());
            u.email = contact(Some(e));
            if changed {
                u.verified_email = self.verified_email.unwrap_or(u.email.is_some());
            }
        }
        if let Some(v) = self.verified_email {
            u.verified_email = v;
        }
        if let Some(p) = self.phone {
            let changed = u.phone.as_deref() != Some(p.as_str());
            u.phone = contact(Some(p));
            if changed {
                u.verified_phone = self.verified_phone.unwrap_or(u.phone.is_some());
            }
        }
        if let Some(v) = self.verified_phone {
            u.verified_phone = v;
        }
        for (field, value) in [
            (&mut u.name, self.display_name),
            (&mut u.given_name, self.given_name),
            (&mut u.middle_name, self.middle_name),
            (&mut u.family_name, self.family_name),
            (&mut u.picture, self.picture),
        ] {
            if let Some(v) = value {
                *field = Some(v).filter(|s| !s.is_empty());
            }
        }
        if let Some(r) = self.role_names {
            u.role_names = r;
        }
        if let Some(t) = self.user_tenants {
            u.tenants = t
                .into_iter()
                .map(|t| idvault_core::user::UserTenant {
                    tenant_id: t.tenant_id.unwrap_or_default(),
                    role_names: t.role_names.unwrap_or_default(),
                    ..Default::default()
                })
                .collect();
        }
        if let Some(attrs) = self.custom_attributes {
            for (k, v) in attrs {
                u.custom_attributes.insert(k, v);
            }
        }
        if let Some(apps) = self.sso_app_ids {
            u.sso_app_ids = apps;
        }
        if let Some(s) = self.status.filter(|s| !s.is_empty()) {
            u.status = UserStatus::parse(&s)?;
        }
        Ok(())
    }
}

/// Changes the fields given, and only those.
#[utoipa::path(
    patch,
    path = "/v1/mgmt/user/patch",
    tag = "users",
    security(("management_key" = [])),
    request_body = PatchUserRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn patch_user(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<PatchUserRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let user = state.users.mutate(&project, &who, move |u| body.apply(u)).await?;
    Ok(envelope(user))
}

#[derive(Deserialize, Default, ToSchema)]
struct PatchBatchRequest {
    #[schema(schema_with = f::batch_patch_users_req, required = true)]
    users: Option<Vec<PatchUserRequest>>,
}

#[derive(Serialize, ToSchema)]
struct FailedPatch {
    /// Why this user was not patched.
    failure: String,
    /// `{"loginId": <login id>}`.
    #[schema(value_type = Object)]
    user: Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PatchBatchResponse {
    patched_users: Vec<UserResponse>,
    failed_users: Vec<FailedPatch>,
}

/// Patches many users; each succeeds or fails on its own.
#[utoipa::path(
    patch,
    path = "/v1/mgmt/user/patch/batch",
    tag = "users",
    security(("management_key" = [])),
    request_body = PatchBatchRequest,
    responses(
        (status = 200, description = "The users patched and the failures", body = PatchBatchResponse),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn patch_users_batch(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<PatchBatchRequest>,
) -> ApiResult<Json<PatchBatchResponse>> {
    let users = body.users.ok_or(Error::MissingArgument("users"))?;
    if users.len() > idvault_core::limits::MAX_BATCH_USERS {
        return Err(Error::invalid("users", "too many users in one batch").into());
    }
    let mut out = PatchBatchResponse { patched_users: Vec::new(), failed_users: Vec::new() };
    for patch in users {
        let login = patch.login_id.clone().unwrap_or_default();
        let result = match user_ref(&patch.login_id, &patch.user_id) {
            Ok(who) => state.users.mutate(&project, &who, move |u| patch.apply(u)).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(u) => out.patched_users.push(u.into()),
            Err(e @ (Error::Storage(_) | Error::Internal(_))) => return Err(e.into()),
            Err(e) => out
                .failed_users
                .push(FailedPatch { failure: e.to_string(), user: serde_json::json!({"loginId": login}) }),
        }
    }
    Ok(Json(out))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserStatusRequest)]
struct StatusRequest {
    #[schema(schema_with = f::login_id_opt)]
    login_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    /// `enabled`, `disabled`, `invited` or `expired`.
    #[schema(schema_with = f::status_req, required = true)]
    status: Option<String>,
}

/// Sets the user's status.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/status",
    tag = "users",
    security(("management_key" = [])),
    request_body = StatusRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_status(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<StatusRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let status = UserStatus::parse(body.status.as_deref().ok_or(Error::MissingArgument("status"))?)?;
    Ok(envelope(
        state
            .users
            .mutate(&project, &who, move |u| {
                u.status = status;
                Ok(())
            })
            .await?,
    ))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserLoginIdRequest)]
struct LoginIdRequest {
    /// The login id to replace (it also finds the user).
    #[schema(schema_with = f::login_id_req, required = true)]
    login_id: Option<String>,
    /// Empty or absent removes the login id.
    #[schema(schema_with = f::login_id_opt)]
    new_login_id: Option<String>,
}

/// Replaces the login id the user was found by.
///
/// An empty new id removes it (the user must keep at least one).
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/loginid",
    tag = "users",
    security(("management_key" = [])),
    request_body = LoginIdRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 409, description = "Another user has the new login id (`E062107`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_login_id(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<LoginIdRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let old = body.login_id.clone().unwrap_or_default();
    let who = user_ref(&body.login_id, &None)?;
    let new = body.new_login_id.unwrap_or_default();
    Ok(envelope(
        state
            .users
            .mutate(&project, &who, move |u| {
                let pos = u.login_ids.iter().position(|l| *l == old).unwrap_or(0);
                if new.is_empty() {
                    u.login_ids.remove(pos);
                } else if !u.login_ids.contains(&new) {
                    u.login_ids[pos] = new;
                }
                Ok(())
            })
            .await?,
    ))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserContactRequest)]
struct ContactRequest {
    #[schema(schema_with = f::login_id_opt)]
    login_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    #[schema(schema_with = f::email_opt)]
    email: Option<String>,
    #[schema(schema_with = f::phone_opt)]
    phone: Option<String>,
    verified: Option<bool>,
    /// Fail (409) when another user has this email or phone.
    fail_on_conflict: Option<bool>,
}

/// Sets (or, when empty, clears) the user's email.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/email",
    tag = "users",
    security(("management_key" = [])),
    request_body = ContactRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 409, description = "With `failOnConflict`: another user has this email (`E062107`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_email(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<ContactRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let email = contact(body.email);
    if let (Some(e), Some(true)) = (&email, body.fail_on_conflict) {
        let q = idvault_core::user::UserQuery { emails: vec![e.clone()], limit: 2, ..Default::default() };
        let (found, _) = state.users.search(&project, &q).await?;
        let me = state.users.load(&project, &who).await?;
        if found.iter().any(|f| f.user_id != me.user_id) {
            return Err(Error::UserAlreadyExists(e.clone()).into());
        }
    }
    let verified = body.verified;
    Ok(envelope(
        state
            .users
            .mutate(&project, &who, move |u| {
                u.verified_email = email.is_some() && verified.unwrap_or(false);
                u.email = email;
                Ok(())
            })
            .await?,
    ))
}

/// Sets (or, when empty, clears) the user's phone.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/phone",
    tag = "users",
    security(("management_key" = [])),
    request_body = ContactRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 409, description = "With `failOnConflict`: another user has this phone (`E062107`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_phone(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<ContactRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let phone = contact(body.phone);
    if let (Some(p), Some(true)) = (&phone, body.fail_on_conflict) {
        let q = idvault_core::user::UserQuery { phones: vec![p.clone()], limit: 2, ..Default::default() };
        let (found, _) = state.users.search(&project, &q).await?;
        let me = state.users.load(&project, &who).await?;
        if found.iter().any(|f| f.user_id != me.user_id) {
            return Err(Error::UserAlreadyExists(p.clone()).into());
        }
    }
    let verified = body.verified;
    Ok(envelope(
        state
            .users
            .mutate(&project, &who, move |u| {
                u.verified_phone = phone.is_some() && verified.unwrap_or(false);
                u.phone = phone;
                Ok(())
            })
            .await?,
    ))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserNameRequest)]
struct NameRequest {
    #[schema(schema_with = f::login_id_opt)]
    login_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    #[schema(schema_with = f::text_opt)]
    display_name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    given_name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    middle_name: Option<String>,
    #[schema(schema_with = f::text_opt)]
    family_name: Option<String>,
}

/// Sets the user's names given (an empty one clears it).
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/name",
    tag = "users",
    security(("management_key" = [])),
    request_body = NameRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_name(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<NameRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    Ok(envelope(
        state
            .users
            .mutate(&project, &who, move |u| {
                for (field, value) in [
                    (&mut u.name, body.display_name),
                    (&mut u.given_name, body.given_name),
                    (&mut u.middle_name, body.middle_name),
                    (&mut u.family_name, body.family_name),
                ] {
                    if let Some(v) = value {
                        *field = Some(v).filter(|s| !s.is_empty());
                    }
                }
                Ok(())
            })
            .await?,
    ))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserPictureRequest)]
struct PictureRequest {
    #[schema(schema_with = f::login_id_opt)]
    login_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    #[schema(schema_with = f::text_opt)]
    picture: Option<String>,
}

/// Sets (or, when empty, clears) the user's picture URL.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/picture",
    tag = "users",
    security(("management_key" = [])),
    request_body = PictureRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_picture(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<PictureRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    Ok(envelope(
        state
            .users
            .mutate(&project, &who, move |u| {
                u.picture = body.picture.filter(|p| !p.is_empty());
                Ok(())
            })
            .await?,
    ))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserAttributeRequest)]
struct AttributeRequest {
    #[schema(schema_with = f::login_id_opt)]
    login_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    #[schema(schema_with = f::name_req, required = true)]
    attribute_key: Option<String>,
    /// A value of the attribute's type; null clears it.
    #[schema(schema_with = f::attribute_value_schema)]
    attribute_value: Option<Value>,
}

/// Sets one custom attribute of the user.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/customAttribute",
    tag = "users",
    security(("management_key" = [])),
    request_body = AttributeRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_custom_attribute(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<AttributeRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let key = body.attribute_key.filter(|k| !k.is_empty()).ok_or(Error::MissingArgument("attributeKey"))?;
    let value = body.attribute_value.unwrap_or(Value::Null);
    Ok(envelope(
        state
            .users
            .mutate(&project, &who, move |u| {
                u.custom_attributes.insert(key, value);
                Ok(())
            })
            .await?,
    ))
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

enum RoleChange {
    Set,
    Add,
    Remove,
}

async fn change_roles(
    state: AppState,
    project: idvault_core::ids::ProjectId,
    body: RolesRequest,
    how: RoleChange,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let tenant = body.tenant_id.filter(|t| !t.is_empty());
    let roles = body.role_names;
    Ok(envelope(
        state
            .users
            .mutate(&project, &who, move |u| {
                let list = match &tenant {
                    Some(t) => &mut u.tenant_mut(t).role_names,
                    None => &mut u.role_names,
                };
                match how {
                    RoleChange::Set => *list = roles,
                    RoleChange::Add => add_all(list, &roles),
                    RoleChange::Remove => list.retain(|r| !roles.contains(r)),
                }
                Ok(())
            })
            .await?,
    ))
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
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn set_roles(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<RolesRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    change_roles(state, project, body, RoleChange::Set).await
}

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
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn add_roles(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<RolesRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    change_roles(state, project, body, RoleChange::Add).await
}

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
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn add_roles_v2(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<RolesRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    change_roles(state, project, body, RoleChange::Add).await
}

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
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn remove_roles(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<RolesRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    change_roles(state, project, body, RoleChange::Remove).await
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserTenantRequest)]
struct TenantRequest {
    #[schema(schema_with = f::login_id_opt)]
    login_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    #[schema(schema_with = f::name_req, required = true)]
    tenant_id: Option<String>,
}

/// Adds the user to a tenant.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/tenant/add",
    tag = "users",
    security(("management_key" = [])),
    request_body = TenantRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn add_tenant(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<TenantRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let tenant = body.tenant_id.filter(|t| !t.is_empty()).ok_or(Error::MissingArgument("tenantId"))?;
    Ok(envelope(
        state
            .users
            .mutate(&project, &who, move |u| {
                u.tenant_mut(&tenant);
                Ok(())
            })
            .await?,
    ))
}

/// Removes the user from a tenant.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/update/tenant/remove",
    tag = "users",
    security(("management_key" = [])),
    request_body = TenantRequest,
    responses(
        (status = 200, description = "The user as changed", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn remove_tenant(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<TenantRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let tenant = body.tenant_id.filter(|t| !t.is_empty()).ok_or(Error::MissingArgument("tenantId"))?;
    Ok(envelope(
        state
            .users
            .mutate(&project, &who, move |u| {
                u.tenants.retain(|t| t.tenant_id != tenant);
                Ok(())
            })
            .await?,
    ))
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

async fn change_sso_apps(
    state: AppState,
    project: idvault_core::ids::ProjectId,
    body: SsoAppsRequest,
    how: RoleChange,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let apps = body.sso_app_ids;
    Ok(envelope(
        state
            .users
            .mutate(&project, &who, move |u| {
                match how {
                    RoleChange::Set => u.sso_app_ids = apps,
                    RoleChange::Add => add_all(&mut u.sso_app_ids, &apps),
                    RoleChange::Remove => u.sso_app_ids.retain(|a| !apps.contains(a)),
                }
                Ok(())
            })
            .await?,
    ))
}

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
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn add_sso_apps(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<SsoAppsRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    change_sso_apps(state, project, body, RoleChange::Add).await
}

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
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn set_sso_apps(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<SsoAppsRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    change_sso_apps(state, project, body, RoleChange::Set).await
}

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
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn remove_sso_apps(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<SsoAppsRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    change_sso_apps(state, project, body, RoleChange::Remove).await
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserLogoutRequest)]
struct LogoutRequest {
    #[schema(schema_with = f::login_id_opt)]
    login_id: Option<String>,
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
}

/// Ends every session of the user.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/logout",
    tag = "users",
    security(("management_key" = [])),
    request_body = LogoutRequest,
    responses(
        (status = 200, description = "Logged out", body = Empty),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn logout_user(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<LogoutRequest>,
) -> ApiResult<Json<Value>> {
    state.users.logout(&project, &user_ref(&body.login_id, &body.user_id)?).await?;
    Ok(empty_ok())
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct HistoryEntry {
    user_id: String,
    /// Unix seconds.
    login_time: i64,
    /// Always empty.
    city: String,
    /// Always empty.
    country: String,
    ip: String,
}

/// The body of a login history request: a JSON array of user ids.
#[derive(Deserialize)]
#[serde(transparent)]
struct HistoryRequest(Vec<String>);

impl utoipa::PartialSchema for HistoryRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        f::history_ids().into()
    }
}

impl ToSchema for HistoryRequest {}

/// Login history of users (the body is a JSON array of user ids), newest first.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/history",
    tag = "users",
    security(("management_key" = [])),
    request_body = HistoryRequest,
    responses(
        (status = 200, description = "The logins, newest first", body = Vec<HistoryEntry>),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn user_history(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(HistoryRequest(ids)): AppJson<HistoryRequest>,
) -> ApiResult<Json<Vec<HistoryEntry>>> {
    let records = state.users.history(&project, &ids).await?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| HistoryEntry {
                user_id: r.user_id.into_string(),
                login_time: r.login_ms.div_euclid(1000),
                city: String::new(),
                country: String::new(),
                ip: r.ip,
            })
            .collect(),
    ))
}
