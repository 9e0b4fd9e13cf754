//! Changing users: replace, patch (one or many), status, single-field updates, tenants, logout
//! and login history (role and SSO app lists: `lists.rs`). Each handler only turns the request
//! into a core `UserChange`; core applies and checks it inside the store's write transaction.
//! Every answer is `{"user": <user>}` unless noted.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::error::{bounded_echo, Error};
use idvault_core::limits::{MAX_ERROR_MESSAGE_LEN, MAX_FIELD_LEN};
use idvault_core::user::{NameParts, User, UserChange, UserPatch, UserRef, UserStatus};

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
        .routes(routes!(add_tenant))
        .routes(routes!(remove_tenant))
        .routes(routes!(logout_user))
        .routes(routes!(user_history))
        .merge(super::lists::router())
}

fn user_ref(login_id: &Option<String>, user_id: &Option<String>) -> Result<UserRef, Error> {
    UserRef::from_parts(login_id.as_deref(), user_id.as_deref())
}

fn envelope(user: User) -> Json<UserEnvelope> {
    Json(UserEnvelope { user: user.into() })
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
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<CreateUserRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &None)?;
    let new = body.into_new_user(false)?;
    let user = state.users.change(&project, &who, UserChange::Replace(Box::new(new))).await?;
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
    fn into_change(self) -> UserChange {
        UserChange::Patch(Box::new(UserPatch {
            email: self.email,
            phone: self.phone,
            verified_email: self.verified_email,
            verified_phone: self.verified_phone,
            names: NameParts {
                name: self.display_name,
                given_name: self.given_name,
                middle_name: self.middle_name,
                family_name: self.family_name,
            },
            picture: self.picture,
            role_names: self.role_names,
            tenants: self
                .user_tenants
                .map(|tenants| tenants.into_iter().map(TenantDto::into_user_tenant).collect()),
            custom_attributes: self.custom_attributes,
            sso_app_ids: self.sso_app_ids,
            status: self.status,
        }))
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
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<PatchUserRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let user = state.users.change(&project, &who, body.into_change()).await?;
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
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<PatchBatchRequest>,
) -> ApiResult<Json<PatchBatchResponse>> {
    let users = body.users.ok_or(Error::MissingArgument("users"))?;
    let logins: Vec<String> = users.iter().map(|p| p.login_id.clone().unwrap_or_default()).collect();
    let changes = users.into_iter().map(|p| (user_ref(&p.login_id, &p.user_id), p.into_change())).collect();
    let mut out = PatchBatchResponse { patched_users: Vec::new(), failed_users: Vec::new() };
    for (result, login) in state.users.change_each(&project, changes).await?.into_iter().zip(logins) {
        match result {
            Ok(u) => out.patched_users.push(u.into()),
            // Both repeat the request: cut if far over any login id's length.
            Err(e) => out.failed_users.push(FailedPatch {
                failure: bounded_echo(e.to_string(), MAX_ERROR_MESSAGE_LEN),
                user: serde_json::json!({"loginId": bounded_echo(login, MAX_FIELD_LEN)}),
            }),
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
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<StatusRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let status = UserStatus::parse(body.status.as_deref().ok_or(Error::MissingArgument("status"))?)?;
    Ok(envelope(state.users.change(&project, &who, UserChange::Status(status)).await?))
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
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<LoginIdRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let old = body.login_id.clone().unwrap_or_default();
    let who = user_ref(&body.login_id, &None)?;
    let new = body.new_login_id.unwrap_or_default();
    Ok(envelope(state.users.change(&project, &who, UserChange::LoginId { old, new }).await?))
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
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<ContactRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let change = UserChange::Email {
        email: body.email,
        verified: body.verified,
        fail_on_conflict: body.fail_on_conflict == Some(true),
    };
    Ok(envelope(state.users.change(&project, &who, change).await?))
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
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<ContactRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let change = UserChange::Phone {
        phone: body.phone,
        verified: body.verified,
        fail_on_conflict: body.fail_on_conflict == Some(true),
    };
    Ok(envelope(state.users.change(&project, &who, change).await?))
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
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<NameRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let names = NameParts {
        name: body.display_name,
        given_name: body.given_name,
        middle_name: body.middle_name,
        family_name: body.family_name,
    };
    Ok(envelope(state.users.change(&project, &who, UserChange::Names(names)).await?))
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
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<PictureRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    Ok(envelope(state.users.change(&project, &who, UserChange::Picture(body.picture)).await?))
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
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<AttributeRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let key = body.attribute_key.filter(|k| !k.is_empty()).ok_or(Error::MissingArgument("attributeKey"))?;
    let value = body.attribute_value.unwrap_or(Value::Null);
    Ok(envelope(state.users.change(&project, &who, UserChange::CustomAttribute { key, value }).await?))
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
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<TenantRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let tenant = body.tenant_id.filter(|t| !t.is_empty()).ok_or(Error::MissingArgument("tenantId"))?;
    Ok(envelope(state.users.change(&project, &who, UserChange::AddTenant(tenant)).await?))
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
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<TenantRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let who = user_ref(&body.login_id, &body.user_id)?;
    let tenant = body.tenant_id.filter(|t| !t.is_empty()).ok_or(Error::MissingArgument("tenantId"))?;
    Ok(envelope(state.users.change(&project, &who, UserChange::RemoveTenant(tenant)).await?))
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
    MgmtAuth(project, _): MgmtAuth,
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
    MgmtAuth(project, _): MgmtAuth,
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
