//! User management: create, load, search, delete.

pub mod dto;
mod lists;
pub mod mutations;

use axum::extract::State;
use axum::Json;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::error::{bounded_echo, Error};
use idvault_core::limits::{MAX_ERROR_MESSAGE_LEN, MAX_FIELD_LEN};
use idvault_core::user::UserRef;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, MgmtAuth};
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::empty_ok;
use crate::state::AppState;
use dto::*;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user))
        .routes(routes!(create_test_user))
        .routes(routes!(create_users_batch))
        .routes(routes!(load_user))
        .routes(routes!(load_users))
        .routes(routes!(search_users))
        .routes(routes!(search_test_users))
        .routes(routes!(delete_user))
        .routes(routes!(delete_users_batch))
        .routes(routes!(delete_all_test_users))
        .merge(mutations::router())
}

/// Creates a user.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/create",
    tag = "users",
    security(("management_key" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 200, description = "The new user", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 409, description = "A user with one of these login ids exists (`E062107`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_user(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<CreateUserRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    if body.invite == Some(true) {
        if let Some(user) = state.users.already_invited(&project, body.login_id.as_deref()).await? {
            return Ok(Json(UserEnvelope { user: user.into() }));
        }
    }
    let user = state.users.create(&project, body.into_new_user(false)?).await?;
    Ok(Json(UserEnvelope { user: user.into() }))
}

/// Creates a test user.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/create/test",
    tag = "users",
    security(("management_key" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 200, description = "The new test user", body = UserEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 409, description = "A user with one of these login ids exists (`E062107`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_test_user(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<CreateUserRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let user = state.users.create(&project, body.into_new_user(true)?).await?;
    Ok(Json(UserEnvelope { user: user.into() }))
}

/// Creates many users; each succeeds or fails on its own.
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/create/batch",
    tag = "users",
    security(("management_key" = [])),
    request_body = BatchCreateRequest,
    responses(
        (status = 200, description = "The users created and the failures", body = BatchCreateResponse),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_users_batch(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<BatchCreateRequest>,
) -> ApiResult<Json<BatchCreateResponse>> {
    // A user whose request cannot even be parsed into a user fails alone, like any other.
    let mut failed_users = Vec::new();
    let mut news = Vec::new();
    for u in body.users.ok_or(Error::MissingArgument("users"))? {
        // Repeated in the failure: cut if far over any login id's length.
        let login = bounded_echo(u.login_id.clone().unwrap_or_default(), MAX_FIELD_LEN);
        match u.into_new_user(false) {
            Ok(n) => news.push(n),
            Err(e) => failed_users.push(FailedUser {
                failure: bounded_echo(e.to_string(), MAX_ERROR_MESSAGE_LEN),
                user: serde_json::json!({"loginIds": [login]}),
            }),
        }
    }
    let (created, failed) = state.users.create_each(&project, news).await?;
    failed_users.extend(failed.into_iter().map(|(login, e)| FailedUser {
        failure: bounded_echo(e.to_string(), MAX_ERROR_MESSAGE_LEN),
        user: serde_json::json!({"loginIds": [bounded_echo(login, MAX_FIELD_LEN)]}),
    }));
    Ok(Json(BatchCreateResponse {
        created_users: created.into_iter().map(Into::into).collect(),
        failed_users,
    }))
}

/// One user, by login id or user id.
#[utoipa::path(
    get,
    path = "/v1/mgmt/user",
    tag = "users",
    security(("management_key" = [])),
    params(UserRefQuery),
    responses(
        (status = 200, description = "The user", body = UserEnvelope),
        MgmtErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_user(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppQuery(q): AppQuery<UserRefQuery>,
) -> ApiResult<Json<UserEnvelope>> {
    let user_ref = UserRef::from_parts(q.login_id.as_deref(), q.user_id.as_deref())?;
    let user = state.users.load(&project, &user_ref).await?;
    Ok(Json(UserEnvelope { user: user.into() }))
}

/// Users by id, in the order given; unknown ids are skipped.
#[utoipa::path(
    post,
    path = "/v1/mgmt/users/load",
    tag = "users",
    security(("management_key" = [])),
    request_body = LoadUsersRequest,
    responses(
        (status = 200, description = "The users found", body = UsersEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_users(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<LoadUsersRequest>,
) -> ApiResult<Json<UsersEnvelope>> {
    let include_invalid = body.include_invalid_users.unwrap_or(false);
    let users =
        state.users.load_many_filtered(&project, &body.user_ids.unwrap_or_default(), include_invalid).await?;
    Ok(Json(UsersEnvelope { users: users.into_iter().map(Into::into).collect() }))
}

/// Searches users (test users only on request).
#[utoipa::path(
    post,
    path = "/v2/mgmt/user/search",
    tag = "users",
    security(("management_key" = [])),
    request_body = SearchRequest,
    responses(
        (status = 200, description = "One page of users, and the total", body = SearchResponse),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn search_users(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<SearchRequest>,
) -> ApiResult<Json<SearchResponse>> {
    let query = body.into_query(&state, &project, false).await?;
    let (users, total) = state.users.search(&project, &query).await?;
    Ok(Json(SearchResponse { users: users.into_iter().map(Into::into).collect(), total }))
}

/// Searches test users.
#[utoipa::path(
    post,
    path = "/v2/mgmt/user/search/test",
    tag = "users",
    security(("management_key" = [])),
    request_body = SearchRequest,
    responses(
        (status = 200, description = "One page of test users, and the total", body = SearchResponse),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn search_test_users(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<SearchRequest>,
) -> ApiResult<Json<SearchResponse>> {
    let query = body.into_query(&state, &project, true).await?;
    let (users, total) = state.users.search(&project, &query).await?;
    Ok(Json(SearchResponse { users: users.into_iter().map(Into::into).collect(), total }))
}

/// Deletes a user (idempotent: an unknown user is not an error).
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/delete",
    tag = "users",
    security(("management_key" = [])),
    request_body = UserRefBody,
    responses(
        (status = 200, description = "Deleted", body = Empty),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_user(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<UserRefBody>,
) -> ApiResult<Json<Value>> {
    let user_ref = UserRef::from_parts(body.login_id.as_deref(), body.user_id.as_deref())?;
    state.users.delete(&project, &user_ref).await?;
    Ok(empty_ok())
}

/// Deletes every test user of the project.
#[utoipa::path(
    delete,
    path = "/v1/mgmt/user/test/delete/all",
    tag = "users",
    security(("management_key" = [])),
    responses(
        (status = 200, description = "Deleted", body = Empty),
        MgmtErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_all_test_users(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
) -> ApiResult<Json<Value>> {
    state.users.delete_all_test_users(&project).await?;
    Ok(empty_ok())
}

/// Deletes several users by id (idempotent).
#[utoipa::path(
    post,
    path = "/v1/mgmt/user/delete/batch",
    tag = "users",
    security(("management_key" = [])),
    request_body = LoadUsersRequest,
    responses(
        (status = 200, description = "Deleted", body = Empty),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_users_batch(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<LoadUsersRequest>,
) -> ApiResult<Json<Value>> {
    state.users.delete_many(&project, &body.user_ids.unwrap_or_default()).await?;
    Ok(empty_ok())
}
