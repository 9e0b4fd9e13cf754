//! `/v1/mgmt/audit/*`: Descope's audit trail API, as the SDKs call it (`audit.search`,
//! `audit.create_event` / `createEvent`). What is recorded is core's business
//! (`idvault_core::audit`); this is the wire form.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::audit::{AuditQuery, AuditRecord, NewEvent, MAX_SEARCH_LIMIT};
use idvault_core::error::Error;

use crate::error::ApiResult;
use crate::extract::{AppJson, MgmtAuth};
use crate::fields as f;
use crate::openapi::{BodyErrors, Empty, MgmtErrors};
use crate::routes::empty_ok;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search)).routes(routes!(create_event))
}

/// A search, as the SDKs send it. Every list filter matches any of its values; absent or empty
/// lists do not filter.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
struct AuditSearchRequest {
    #[schema(schema_with = f::filter_list_opt)]
    user_ids: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    actions: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    excluded_actions: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    devices: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    methods: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    geos: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    remote_addresses: Option<Vec<String>>,
    /// Login ids (the SDKs' `loginIds`, sent as `externalIds`).
    #[schema(schema_with = f::filter_list_opt)]
    external_ids: Option<Vec<String>>,
    #[schema(schema_with = f::filter_list_opt)]
    tenants: Option<Vec<String>>,
    /// With `tenants`: records without any tenant match too.
    no_tenants: Option<bool>,
    /// Case-insensitive substring of any field.
    #[schema(schema_with = f::audit_text_opt)]
    text: Option<String>,
    /// Unix ms, inclusive; at most 30 days ago (an earlier one starts 30 days ago).
    #[schema(schema_with = f::time_ms_opt)]
    from: Option<i64>,
    /// Unix ms, inclusive; now when absent.
    #[schema(schema_with = f::time_ms_opt)]
    to: Option<i64>,
    /// idvault extension: records per page, at most 1000 (the default).
    #[schema(schema_with = f::audit_limit_opt)]
    limit: Option<u32>,
    /// idvault extension: the page, from 0.
    #[schema(schema_with = f::page_opt)]
    page: Option<u32>,
}

/// An audit record as Descope answers it, with idvault's actor fields.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AuditView {
    project_id: String,
    user_id: String,
    action: String,
    /// Unix ms, as a decimal string (Descope's int64 encoding; the SDKs parse it).
    #[schema(example = "1764480000000")]
    occurred: String,
    device: String,
    method: String,
    geo: String,
    remote_address: String,
    /// The user's login ids (the SDKs rename this `loginIds`).
    external_ids: Vec<String>,
    tenants: Vec<String>,
    #[schema(value_type = Object)]
    data: Map<String, Value>,
    /// idvault extension: `info`, `warn` or `error`.
    #[serde(rename = "type")]
    kind: String,
    /// idvault extension: `managementKey`, `accessKey`, `user`, `external`, or empty.
    actor_type: String,
    /// idvault extension: the management key id, user id or named actor; empty when anonymous.
    actor_id: String,
    /// idvault extension: the management key's name.
    actor_name: String,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        let (actor_type, actor_id, actor_name) = r.actor.parts();
        let (actor_type, actor_id, actor_name) =
            (actor_type.to_owned(), actor_id.to_owned(), actor_name.to_owned());
        AuditView {
            project_id: r.project_id,
            user_id: r.user_id,
            action: r.action,
            occurred: r.occurred_ms.to_string(),
            device: r.device,
            method: r.method,
            geo: r.geo,
            remote_address: r.remote_address,
            external_ids: r.login_ids,
            tenants: r.tenants,
            data: r.data,
            kind: r.kind,
            actor_type,
            actor_id,
            actor_name,
        }
    }
}

/// A record in the search API's shape, as JSON (for `idvault audit export`).
pub fn record_json(record: AuditRecord) -> Value {
    serde_json::to_value(AuditView::from(record)).unwrap_or(Value::Null)
}

#[derive(Serialize, ToSchema)]
struct AuditSearchResponse {
    audits: Vec<AuditView>,
    /// All matches, over every page (the Node SDK's `searchAll`).
    total: u64,
}

/// Searches the project's audit trail (newest first), within the last 30 days.
#[utoipa::path(
    post,
    path = "/v1/mgmt/audit/search",
    tag = "audit",
    security(("management_key" = [])),
    request_body = AuditSearchRequest,
    responses((status = 200, description = "Matching records, newest first", body = AuditSearchResponse), MgmtErrors, BodyErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn search(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<AuditSearchRequest>,
) -> ApiResult<Json<AuditSearchResponse>> {
    // 0 (or none) is the largest page; core refuses a larger one.
    let limit = body.limit.map_or(MAX_SEARCH_LIMIT, |l| l as usize);
    let limit = if limit == 0 { MAX_SEARCH_LIMIT } else { limit };
    let query = AuditQuery {
        user_ids: body.user_ids.unwrap_or_default(),
        actions: body.actions.unwrap_or_default(),
        excluded_actions: body.excluded_actions.unwrap_or_default(),
        devices: body.devices.unwrap_or_default(),
        methods: body.methods.unwrap_or_default(),
        geos: body.geos.unwrap_or_default(),
        remote_addresses: body.remote_addresses.unwrap_or_default(),
        login_ids: body.external_ids.unwrap_or_default(),
        tenants: body.tenants.unwrap_or_default(),
        no_tenants: body.no_tenants.unwrap_or(false),
        text: body.text,
        from_ms: body.from.unwrap_or(0),
        to_ms: body.to.unwrap_or(0),
        limit,
        offset: (body.page.unwrap_or(0) as usize).saturating_mul(limit.min(MAX_SEARCH_LIMIT)),
        oldest_first: false,
    };
    let (records, total) = state.audit.search(&project, query).await?;
    Ok(Json(AuditSearchResponse { audits: records.into_iter().map(AuditView::from).collect(), total }))
}

/// An event the application records in the trail (Descope's `create_event`).
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", default)]
struct AuditEventRequest {
    #[schema(schema_with = f::audit_field_req, required = true)]
    action: Option<String>,
    /// `info`, `warn` or `error`.
    #[serde(rename = "type")]
    #[schema(schema_with = f::audit_type_req, required = true)]
    kind: Option<String>,
    /// Who did it, as the application names them.
    #[schema(schema_with = f::audit_field_req, required = true)]
    actor_id: Option<String>,
    #[schema(schema_with = f::audit_field_req, required = true)]
    tenant_id: Option<String>,
    #[schema(schema_with = f::audit_field_opt)]
    user_id: Option<String>,
    #[schema(value_type = Object)]
    data: Option<Map<String, Value>>,
}

/// Records an event of the application's own in the project's audit trail. Like every record it
/// is stored by the background writer within about 100 ms.
#[utoipa::path(
    post,
    path = "/v1/mgmt/audit/event",
    tag = "audit",
    security(("management_key" = [])),
    request_body = AuditEventRequest,
    responses((status = 200, description = "Recorded", body = Empty), MgmtErrors, BodyErrors),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn create_event(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<AuditEventRequest>,
) -> ApiResult<Json<Value>> {
    let event = NewEvent {
        action: body.action.ok_or(Error::MissingArgument("action"))?,
        kind: body.kind.ok_or(Error::MissingArgument("type"))?,
        actor_id: body.actor_id.ok_or(Error::MissingArgument("actorId"))?,
        tenant_id: body.tenant_id.ok_or(Error::MissingArgument("tenantId"))?,
        user_id: body.user_id,
        data: body.data.unwrap_or_default(),
    };
    state.audit.create_event(&project, event).await?;
    Ok(empty_ok())
}
