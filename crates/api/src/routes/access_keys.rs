//! Access keys, as the SDKs' `mgmt.access_key` calls them (`/v1/mgmt/accesskey/*`), and the
//! exchange of a key for a session JWT (`POST /v1/auth/accesskey/exchange`, the SDKs'
//! `exchange_access_key`). The rules are in `idvault_core::access_key`; this is the wire.
//!
//! A key's cleartext is answered once, by create and rotate, as `cleartext`; no other answer, and
//! no log line, carries it or its digest.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::Json;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::access_key::{
    AccessKey, AccessKeyChanges, AccessKeyFilter, ExchangeOptions, IssuedAccessKey, KeyTenant, NewAccessKey,
};
use idvault_core::error::Error;
use idvault_core::ids::ProjectId;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, MgmtAuth};
use crate::fields as f;
use crate::openapi::{BodyErrors, Empty, MgmtErrors, SessionErrors};
use crate::routes::empty_ok;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_access_key))
        .routes(routes!(load_access_key))
        .routes(routes!(search_access_keys))
        .routes(routes!(update_access_key))
        .routes(routes!(activate_access_key))
        .routes(routes!(deactivate_access_key))
        .routes(routes!(delete_access_key))
        .routes(routes!(activate_access_keys))
        .routes(routes!(deactivate_access_keys))
        .routes(routes!(delete_access_keys))
        .routes(routes!(rotate_access_key))
        .routes(routes!(exchange_access_key))
}

/// A key's roles in one tenant, as sent.
#[derive(Deserialize, Serialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct KeyTenantBody {
    #[schema(schema_with = f::name_req, required = true)]
    tenant_id: Option<String>,
    #[schema(schema_with = f::name_list_opt)]
    role_names: Option<Vec<String>>,
}

impl KeyTenantBody {
    fn into_core(list: Option<Vec<KeyTenantBody>>) -> Option<Vec<KeyTenant>> {
        list.map(|l| {
            l.into_iter()
                .map(|t| KeyTenant {
                    tenant_id: t.tenant_id.unwrap_or_default(),
                    role_names: t.role_names.unwrap_or_default(),
                    ..KeyTenant::default()
                })
                .collect()
        })
    }
}

/// An access key as answered: everything but the secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AccessKeyView {
    id: String,
    name: String,
    description: String,
    /// Project-level roles.
    role_names: Vec<String>,
    key_tenants: Vec<KeyTenantView>,
    /// `active` or `inactive`.
    #[schema(example = "active")]
    status: &'static str,
    /// Unix seconds.
    created_time: i64,
    /// Unix seconds; 0 for a key that does not expire.
    expire_time: i64,
    /// The management key id that created it.
    created_by: String,
    /// The key id (Descope's client id of the key).
    client_id: String,
    /// The user whose authorization the key carries; empty for none.
    bound_user_id: String,
    custom_claims: Map<String, Value>,
    custom_attributes: Map<String, Value>,
    permitted_ips: Vec<String>,
    /// Always true.
    editable: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct KeyTenantView {
    tenant_id: String,
    role_names: Vec<String>,
    /// The tenant's name now; empty for a tenant deleted since.
    tenant_name: String,
}

impl From<AccessKey> for AccessKeyView {
    fn from(k: AccessKey) -> Self {
        AccessKeyView {
            status: if k.active { "active" } else { "inactive" },
            created_time: k.created_ms.div_euclid(1000),
            expire_time: k.expire_time,
            client_id: k.id.clone(),
            id: k.id,
            name: k.name,
            description: k.description,
            role_names: k.role_names,
            key_tenants: k
                .key_tenants
                .into_iter()
                .map(|t| KeyTenantView {
                    tenant_id: t.tenant_id,
                    role_names: t.role_names,
                    tenant_name: t.tenant_name,
                })
                .collect(),
            created_by: k.created_by,
            bound_user_id: k.bound_user_id,
            custom_claims: k.custom_claims,
            custom_attributes: k.custom_attributes,
            permitted_ips: k.permitted_ips,
            editable: true,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct AccessKeyEnvelope {
    key: AccessKeyView,
}

#[derive(Serialize, ToSchema)]
struct AccessKeysEnvelope {
    keys: Vec<AccessKeyView>,
}

/// A new key and its cleartext: the only time the cleartext is shown.
#[derive(Serialize, ToSchema)]
struct CreatedAccessKey {
    key: AccessKeyView,
    /// `<keyId>.<secret>`: what `exchange_access_key` takes. Not stored; save it now.
    cleartext: String,
}

impl From<IssuedAccessKey> for CreatedAccessKey {
    fn from(issued: IssuedAccessKey) -> Self {
        CreatedAccessKey { cleartext: issued.cleartext.expose_secret().to_owned(), key: issued.key.into() }
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CreateAccessKeyRequest {
    #[schema(schema_with = f::name_req, required = true)]
    name: Option<String>,
    #[serde(default, deserialize_with = "f::opt_int")]
    #[schema(schema_with = f::access_key_expire_time_opt)]
    expire_time: Option<i64>,
    #[schema(schema_with = f::name_list_opt)]
    role_names: Option<Vec<String>>,
    #[schema(schema_with = f::key_tenants_opt::<KeyTenantBody>)]
    key_tenants: Option<Vec<KeyTenantBody>>,
    /// Bind the key to this user: its sessions carry the user's roles and tenants instead.
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    #[schema(schema_with = f::custom_claims_opt)]
    custom_claims: Option<Map<String, Value>>,
    #[schema(schema_with = f::access_key_description_opt)]
    description: Option<String>,
    #[schema(schema_with = f::permitted_ips_opt)]
    permitted_ips: Option<Vec<String>>,
    #[schema(schema_with = f::custom_attributes_opt)]
    custom_attributes: Option<Map<String, Value>>,
}

/// Creates an access key. The answer holds its cleartext, shown this once.
#[utoipa::path(
    post,
    path = "/v1/mgmt/accesskey/create",
    tag = "access-keys",
    security(("management_key" = [])),
    request_body = CreateAccessKeyRequest,
    responses(
        (status = 200, description = "The key and its cleartext", body = CreatedAccessKey),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "A role, tenant or user it names does not exist (`E011406`, `E112102`)", body = ErrorBody),
        (status = 429, description = "The project has the most access keys it may have (`E130429`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_access_key(
    State(state): State<AppState>,
    MgmtAuth(project, key): MgmtAuth,
    AppJson(body): AppJson<CreateAccessKeyRequest>,
) -> ApiResult<Json<CreatedAccessKey>> {
    let new = NewAccessKey {
        name: body.name.unwrap_or_default(),
        expire_time: body.expire_time.unwrap_or(0),
        role_names: body.role_names.unwrap_or_default(),
        key_tenants: KeyTenantBody::into_core(body.key_tenants).unwrap_or_default(),
        user_id: body.user_id,
        custom_claims: body.custom_claims.unwrap_or_default(),
        description: body.description,
        permitted_ips: body.permitted_ips.unwrap_or_default(),
        custom_attributes: body.custom_attributes.unwrap_or_default(),
    };
    let issued = state.access_keys.create(&project, &key.key_id, new).await?;
    Ok(Json(issued.into()))
}

#[derive(Deserialize)]
struct IdQuery {
    #[serde(default)]
    id: String,
}

impl IntoParams for IdQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![f::query("id", true, "The access key's id.", f::access_key_id_req())]
    }
}

/// Loads an access key.
#[utoipa::path(
    get,
    path = "/v1/mgmt/accesskey",
    tag = "access-keys",
    security(("management_key" = [])),
    params(IdQuery),
    responses(
        (status = 200, description = "The key", body = AccessKeyEnvelope),
        MgmtErrors,
        (status = 404, description = "No such key (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn load_access_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppQuery(q): AppQuery<IdQuery>,
) -> ApiResult<Json<AccessKeyEnvelope>> {
    let key = state.access_keys.load(&project, &q.id).await?;
    Ok(Json(AccessKeyEnvelope { key: key.into() }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SearchAccessKeysRequest {
    /// Keys with any of these tenants.
    #[schema(schema_with = f::filter_list_opt)]
    tenant_ids: Option<Vec<String>>,
    #[schema(schema_with = f::user_id_opt)]
    bound_user_id: Option<String>,
    /// The management key id that created the keys.
    #[schema(schema_with = f::text_opt)]
    creating_user: Option<String>,
    /// Keys whose custom attributes have each of these values.
    #[schema(schema_with = f::custom_attributes_opt)]
    custom_attributes: Option<Map<String, Value>>,
}

/// Searches the project's access keys, oldest first; every filter given must match.
#[utoipa::path(
    post,
    path = "/v1/mgmt/accesskey/search",
    tag = "access-keys",
    security(("management_key" = [])),
    request_body = SearchAccessKeysRequest,
    responses((status = 200, description = "The matching keys", body = AccessKeysEnvelope), MgmtErrors, BodyErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn search_access_keys(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<SearchAccessKeysRequest>,
) -> ApiResult<Json<AccessKeysEnvelope>> {
    let filter = AccessKeyFilter {
        tenant_ids: body.tenant_ids.unwrap_or_default(),
        bound_user_id: body.bound_user_id,
        creating_user: body.creating_user,
        custom_attributes: body.custom_attributes.unwrap_or_default(),
    };
    let keys = state.access_keys.search(&project, &filter).await?;
    Ok(Json(AccessKeysEnvelope { keys: keys.into_iter().map(Into::into).collect() }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UpdateAccessKeyRequest {
    #[schema(schema_with = f::access_key_id_req, required = true)]
    id: Option<String>,
    #[schema(schema_with = f::name_req, required = true)]
    name: Option<String>,
    /// Absent or null: unchanged (as every field below).
    #[schema(schema_with = f::access_key_description_opt)]
    description: Option<String>,
    #[schema(schema_with = f::name_list_opt)]
    role_names: Option<Vec<String>>,
    #[schema(schema_with = f::key_tenants_opt::<KeyTenantBody>)]
    key_tenants: Option<Vec<KeyTenantBody>>,
    #[schema(schema_with = f::custom_claims_opt)]
    custom_claims: Option<Map<String, Value>>,
    #[schema(schema_with = f::permitted_ips_opt)]
    permitted_ips: Option<Vec<String>>,
    #[schema(schema_with = f::custom_attributes_opt)]
    custom_attributes: Option<Map<String, Value>>,
}

/// Updates an access key: its name, and each other field given.
#[utoipa::path(
    post,
    path = "/v1/mgmt/accesskey/update",
    tag = "access-keys",
    security(("management_key" = [])),
    request_body = UpdateAccessKeyRequest,
    responses(
        (status = 200, description = "The updated key", body = AccessKeyEnvelope),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such key, or a role or tenant it names does not exist (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn update_access_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<UpdateAccessKeyRequest>,
) -> ApiResult<Json<AccessKeyEnvelope>> {
    let id = body.id.filter(|i| !i.is_empty()).ok_or(Error::MissingArgument("id"))?;
    let changes = AccessKeyChanges {
        name: body.name.unwrap_or_default(),
        description: body.description,
        role_names: body.role_names,
        key_tenants: KeyTenantBody::into_core(body.key_tenants),
        custom_claims: body.custom_claims,
        permitted_ips: body.permitted_ips,
        custom_attributes: body.custom_attributes,
    };
    let key = state.access_keys.update(&project, &id, changes).await?;
    Ok(Json(AccessKeyEnvelope { key: key.into() }))
}

#[derive(Deserialize, Default, ToSchema)]
struct AccessKeyIdRequest {
    #[schema(schema_with = f::access_key_id_req, required = true)]
    id: Option<String>,
}

impl AccessKeyIdRequest {
    fn ids(self) -> Result<Vec<String>, Error> {
        Ok(vec![self.id.filter(|i| !i.is_empty()).ok_or(Error::MissingArgument("id"))?])
    }
}

#[derive(Deserialize, Default, ToSchema)]
struct AccessKeyIdsRequest {
    #[schema(schema_with = f::access_key_ids_req, required = true)]
    ids: Option<Vec<String>>,
}

impl AccessKeyIdsRequest {
    fn ids(self) -> Result<Vec<String>, Error> {
        self.ids.filter(|i| !i.is_empty()).ok_or(Error::MissingArgument("ids"))
    }
}

/// Activates a deactivated access key.
#[utoipa::path(
    post,
    path = "/v1/mgmt/accesskey/activate",
    tag = "access-keys",
    security(("management_key" = [])),
    request_body = AccessKeyIdRequest,
    responses(
        (status = 200, description = "Active", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such key (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn activate_access_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<AccessKeyIdRequest>,
) -> ApiResult<Json<Value>> {
    state.access_keys.set_active(&project, &body.ids()?, true).await?;
    Ok(empty_ok())
}

/// Deactivates an access key: its exchanges are refused until it is activated again.
#[utoipa::path(
    post,
    path = "/v1/mgmt/accesskey/deactivate",
    tag = "access-keys",
    security(("management_key" = [])),
    request_body = AccessKeyIdRequest,
    responses(
        (status = 200, description = "Inactive", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such key (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn deactivate_access_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<AccessKeyIdRequest>,
) -> ApiResult<Json<Value>> {
    state.access_keys.set_active(&project, &body.ids()?, false).await?;
    Ok(empty_ok())
}

/// Deletes an access key.
#[utoipa::path(
    post,
    path = "/v1/mgmt/accesskey/delete",
    tag = "access-keys",
    security(("management_key" = [])),
    request_body = AccessKeyIdRequest,
    responses(
        (status = 200, description = "Deleted", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such key (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_access_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<AccessKeyIdRequest>,
) -> ApiResult<Json<Value>> {
    state.access_keys.delete(&project, &body.ids()?).await?;
    Ok(empty_ok())
}

/// Activates access keys, all or none: an unknown id changes nothing.
#[utoipa::path(
    post,
    path = "/v1/mgmt/accesskey/activate/batch",
    tag = "access-keys",
    security(("management_key" = [])),
    request_body = AccessKeyIdsRequest,
    responses(
        (status = 200, description = "Active", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "An id is no key of the project (`E011406`); nothing changed", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn activate_access_keys(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<AccessKeyIdsRequest>,
) -> ApiResult<Json<Value>> {
    state.access_keys.set_active(&project, &body.ids()?, true).await?;
    Ok(empty_ok())
}

/// Deactivates access keys, all or none: an unknown id changes nothing.
#[utoipa::path(
    post,
    path = "/v1/mgmt/accesskey/deactivate/batch",
    tag = "access-keys",
    security(("management_key" = [])),
    request_body = AccessKeyIdsRequest,
    responses(
        (status = 200, description = "Inactive", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "An id is no key of the project (`E011406`); nothing changed", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn deactivate_access_keys(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<AccessKeyIdsRequest>,
) -> ApiResult<Json<Value>> {
    state.access_keys.set_active(&project, &body.ids()?, false).await?;
    Ok(empty_ok())
}

/// Deletes access keys, all or none: an unknown id deletes nothing.
#[utoipa::path(
    post,
    path = "/v1/mgmt/accesskey/delete/batch",
    tag = "access-keys",
    security(("management_key" = [])),
    request_body = AccessKeyIdsRequest,
    responses(
        (status = 200, description = "Deleted", body = Empty),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "An id is no key of the project (`E011406`); nothing deleted", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn delete_access_keys(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<AccessKeyIdsRequest>,
) -> ApiResult<Json<Value>> {
    state.access_keys.delete(&project, &body.ids()?).await?;
    Ok(empty_ok())
}

/// Gives an access key a new secret; the previous one is refused from now on. The answer holds
/// the new cleartext, shown this once.
#[utoipa::path(
    post,
    path = "/v1/mgmt/accesskey/rotate",
    tag = "access-keys",
    security(("management_key" = [])),
    request_body = AccessKeyIdRequest,
    responses(
        (status = 200, description = "The key and its new cleartext", body = CreatedAccessKey),
        MgmtErrors,
        BodyErrors,
        (status = 404, description = "No such key (`E011406`)", body = ErrorBody),
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn rotate_access_key(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<AccessKeyIdRequest>,
) -> ApiResult<Json<CreatedAccessKey>> {
    let id = body.id.filter(|i| !i.is_empty()).ok_or(Error::MissingArgument("id"))?;
    Ok(Json(state.access_keys.rotate(&project, &id).await?.into()))
}

/// `Authorization: Bearer <projectId>:<accessKey>` (the SDKs append `:<managementKey>` when the
/// client has one, which is ignored), and the client's address as the connection reports it.
struct AccessKeyBearer {
    project: ProjectId,
    key: String,
    peer: Option<std::net::IpAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for AccessKeyBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let refused =
            || ApiError::from(Error::Unauthorized("authorization must be 'Bearer <projectId>:<accessKey>'"));
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(refused)?;
        let token =
            header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).ok_or_else(refused)?;
        let mut pieces = token.trim().split(':');
        let project = ProjectId::parse(pieces.next().unwrap_or_default()).map_err(|_| refused())?;
        let key = pieces.next().filter(|k| !k.is_empty()).ok_or_else(refused)?.to_owned();
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        Ok(AccessKeyBearer { project, key, peer })
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ExchangeLoginOptions {
    /// Put in the session's `nsec` claim, as Descope does with the custom claims a client adds:
    /// they never replace the key's own claims or the session's.
    #[schema(schema_with = f::custom_claims_opt)]
    custom_claims: Option<Map<String, Value>>,
    /// One of the key's tenants: the session's `dct` claim.
    #[schema(schema_with = f::text_opt)]
    selected_tenant: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ExchangeRequest {
    #[schema(inline)]
    login_options: Option<ExchangeLoginOptions>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ExchangeResponse {
    key_id: String,
    /// A session JWT (`sub` = the key id; `roles`, `permissions`, `tenants` claims), signed
    /// with the keys at `/v2/keys/{projectId}`.
    session_jwt: String,
    /// Unix seconds: the session's `exp`, never after the key's own expiry.
    expiration: i64,
    // No refresh JWT: Descope's exchange answers none either; a machine exchanges its key again.
}

/// Exchanges an access key for a session JWT.
///
/// Refused (`E011401`) for an unknown key or a wrong secret, a deactivated key, an expired key, a
/// key whose `permittedIps` do not include the client's address (the TCP peer, or the client a
/// trusted proxy forwarded), and a key bound to a user that is gone or disabled. Wrong keys count against the client address's brute-force budget.
#[utoipa::path(
    post,
    path = "/v1/auth/accesskey/exchange",
    tag = "auth",
    security(("project" = [])),
    request_body(content = Option<ExchangeRequest>, description = "Login options: optional"),
    responses(
        (status = 200, description = "A session JWT", body = ExchangeResponse),
        SessionErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %bearer.project))]
async fn exchange_access_key(
    State(state): State<AppState>,
    bearer: AccessKeyBearer,
    AppJson(body): AppJson<ExchangeRequest>,
) -> ApiResult<Json<ExchangeResponse>> {
    let options = body.login_options.unwrap_or_default();
    let options = ExchangeOptions {
        custom_claims: options.custom_claims.unwrap_or_default(),
        selected_tenant: options.selected_tenant,
    };
    let session = state.access_keys.exchange(&bearer.project, &bearer.key, bearer.peer, options).await?;
    Ok(Json(ExchangeResponse {
        key_id: session.key_id,
        session_jwt: session.session_jwt,
        expiration: session.expiration,
    }))
}
