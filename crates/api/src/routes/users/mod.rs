//! User management: create, load, search, delete.

pub mod dto;

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
}

#[tracing::instrument(skip_all, fields(project = %project))]
async fn create_user(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<CreateUserRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let user = state.users.create(&project, body.into_new_user(false)?).await?;
    Ok(Json(UserEnvelope { user: user.into() }))
}

#[tracing::instrument(skip_all, fields(project = %project))]
async fn create_test_user(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<CreateUserRequest>,
) -> ApiResult<Json<UserEnvelope>> {
    let user = state.users.create(&project, body.into_new_user(true)?).await?;
    Ok(Json(UserEnvelope { user: user.into() }))
}

#[tracing::instrument(skip_all, fields(project = %project))]
async fn create_users_batch(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<BatchCreateRequest>,
) -> ApiResult<Json<BatchCreateResponse>> {
    let news = body
        .users
        .ok_or(Error::MissingArgument("users"))?
        .into_iter()
        .map(|u| u.into_new_user(false))
        .collect::<Result<Vec<_>, _>>()?;
    let users = state.users.create_batch(&project, news).await?;
    Ok(Json(BatchCreateResponse {
        created_users: users.into_iter().map(Into::into).collect(),
        failed_users: Vec::new(),
    }))
}

#[tracing::instrument(skip_all, fields(project = %project))]
async fn load_user(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppQuery(q): AppQuery<UserRefQuery>,
) -> ApiResult<Json<UserEnvelope>> {
    let user_ref = UserRef::from_parts(q.login_id.as_deref(), q.user_id.as_deref())?;
    let user = state.users.load(&project, &user_ref).await?;
    Ok(Json(UserEnvelope { user: user.into() }))
}

#[tracing::instrument(skip_all, fields(project = %project))]
async fn load_users(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<LoadUsersRequest>,
) -> ApiResult<Json<UsersEnvelope>> {
    let users = state
        .users
        .load_many(&project, &body.user_ids.unwrap_or_default())
        .await?;
    Ok(Json(UsersEnvelope {
        users: users.into_iter().map(Into::into).collect(),
    }))
}

#[tracing::instrument(skip_all, fields(project = %project))]
async fn search_users(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<SearchRequest>,
) -> ApiResult<Json<SearchResponse>> {
    let (users, total) = state.users.search(&project, &body.into_query(false)?).await?;
    Ok(Json(SearchResponse {
        users: users.into_iter().map(Into::into).collect(),
        total,
    }))
}

#[tracing::instrument(skip_all, fields(project = %project))]
async fn search_test_users(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<SearchRequest>,
) -> ApiResult<Json<SearchResponse>> {
    let (users, total) = state.users.search(&project, &body.into_query(true)?).await?;
    Ok(Json(SearchResponse {
        users: users.into_iter().map(Into::into).collect(),
        total,
    }))
}

#[tracing::instrument(skip_all, fields(project = %project))]
async fn delete_user(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
    AppJson(body): AppJson<UserRefBody>,
) -> ApiResult<Json<Value>> {
    let user_ref = UserRef::from_parts(body.login_id.as_deref(), body.user_id.as_deref())?;
    state.users.delete(&project, &user_ref).await?;
    Ok(empty_ok())
}

#[tracing::instrument(skip_all, fields(project = %project))]
async fn delete_all_test_users(
    State(state): State<AppState>,
    MgmtAuth(project): MgmtAuth,
) -> ApiResult<Json<Value>> {
    state.users.delete_all_test_users(&project).await?;
    Ok(empty_ok())
}
