//! User management: create, load, search, delete.

pub mod dto;
pub mod mutations;

use axum::extract::State;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::Value;

use idvault_core::error::Error;
use idvault_core::user::UserRef;

use crate::error::ApiResult;
use crate::extract::{AppJson, AppQuery, MgmtAuth};
use crate::routes::empty_ok;
use crate::state::AppState;
use dto::*;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/mgmt/user/create", post(create_user))
        .route("/v1/mgmt/user/create/test", post(create_test_user))
        .route("/v1/mgmt/user/create/batch", post(create_users_batch))
        .route("/v1/mgmt/user", get(load_user))
        .route("/v1/mgmt/users/load", post(load_users))
        .route("/v2/mgmt/user/search", post(search_users))
        .route("/v2/mgmt/user/search/test", post(search_test_users))
        .route("/v1/mgmt/user/delete", post(delete_user))
        .route("/v1/mgmt/user/test/delete/all", delete(delete_all_test_users))
        .merge(mutations::router())
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_user(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<CreateUserRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let user = state.users.create(&project, body.into_new_user(false)?).await?;
    Ok(Json(UserEnvelope { user: user.into() }))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_test_user(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<CreateUserRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let user = state.users.create(&project, body.into_new_user(true)?).await?;
    Ok(Json(UserEnvelope { user: user.into() }))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_users_batch(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<BatchCreateRequest>,
) -> ApiResult<Json<BatchCreateResponse>> {
    // A user whose request cannot even be parsed into a user fails alone, like any other.
    let mut failed_users = Vec::new();
    let mut news = Vec::new();
    for u in body.users.ok_or(Error::MissingArgument("users"))? {
        let login = u.login_id.clone().unwrap_or_default();
        match u.into_new_user(false) {
            Ok(n) => news.push(n),
            Err(e) => failed_users
                .push(FailedUser { failure: e.to_string(), user: serde_json::json!({"loginIds": [login]}) }),
        }
    }
    let (created, failed) = state.users.create_each(&project, news).await?;
    failed_users.extend(failed.into_iter().map(|(login, e)| FailedUser {
        failure: e.to_string(),
        user: serde_json::json!({"loginIds": [login]}),
    }));
    Ok(Json(BatchCreateResponse {
        created_users: created.into_iter().map(Into::into).collect(),
        failed_users,
    }))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_user(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppQuery(q): AppQuery<UserRefQuery>,
) -> ApiResult<Json<UserEnvelope>> {
    let user_ref = UserRef::from_parts(q.login_id.as_deref(), q.user_id.as_deref())?;
    let user = state.users.load(&project, &user_ref).await?;
    Ok(Json(UserEnvelope { user: user.into() }))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_users(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<LoadUsersRequest>,
) -> ApiResult<Json<UsersEnvelope>> {
    let users = state.users.load_many(&project, &body.user_ids.unwrap_or_default()).await?;
    Ok(Json(UsersEnvelope { users: users.into_iter().map(Into::into).collect() }))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn search_users(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<SearchRequest>,
) -> ApiResult<Json<SearchResponse>> {
    let query = body.into_query(&state, &project, false).await?;
    let (users, total) = state.users.search(&project, &query).await?;
    Ok(Json(SearchResponse { users: users.into_iter().map(Into::into).collect(), total }))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn search_test_users(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<SearchRequest>,
) -> ApiResult<Json<SearchResponse>> {
    let query = body.into_query(&state, &project, true).await?;
    let (users, total) = state.users.search(&project, &query).await?;
    Ok(Json(SearchResponse { users: users.into_iter().map(Into::into).collect(), total }))
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_user(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<UserRefBody>,
) -> ApiResult<Json<Value>> {
    let user_ref = UserRef::from_parts(body.login_id.as_deref(), body.user_id.as_deref())?;
    state.users.delete(&project, &user_ref).await?;
    Ok(empty_ok())
}

#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_all_test_users(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<Value>> {
    state.users.delete_all_test_users(&project).await?;
    Ok(empty_ok())
}
