//! `POST /v1/mgmt/outbound/app/{user,tenant}/oauthtoken/batch/upload`: a migration of many
//! tokens in one call. All or nothing: a per-item validation failure answers 200 with the
//! `failures` (and nothing is written), as the SDKs document; `{"failures": []}` means every
//! token was written. These two routes take bodies up to `MAX_BATCH_BODY_BYTES`, the others
//! `MAX_BODY_BYTES`.

use axum::extract::{DefaultBodyLimit, State};
use axum::Json;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use idvault_core::ids::ProjectId;
use idvault_core::limits::MAX_BATCH_BODY_BYTES;
use idvault_core::outbound::{BatchFailure, BatchKind, BatchToken};

use crate::error::{describe, ApiResult};
use crate::extract::{AppJson, MgmtAuth};
use crate::fields as f;
use crate::openapi::{BodyErrors, MgmtErrors};
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(batch_upload_user_tokens))
        .routes(routes!(batch_upload_tenant_tokens))
        // Replaces the global limit for these two routes only (the innermost limit wins).
        .layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES))
}

/// One token of a batch: the fields of a single upload, without `verifyRefresh` (batches do not
/// call the provider).
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OutboundBatchToken)]
struct BatchTokenBody {
    #[schema(schema_with = f::app_id_opt, required = true)]
    app_id: Option<String>,
    /// User batches: required.
    #[schema(schema_with = f::user_id_opt)]
    user_id: Option<String>,
    /// Tenant batches: required (the owner). User batches: the tenant the token is for.
    #[schema(schema_with = f::outbound_text_opt)]
    tenant_id: Option<String>,
    /// At least one of `accessToken` and `refreshToken`.
    #[schema(schema_with = f::token_opt)]
    access_token: Option<SecretString>,
    #[schema(schema_with = f::token_opt)]
    refresh_token: Option<SecretString>,
    /// Unix seconds; 0 or absent when unknown.
    #[serde(default, deserialize_with = "f::opt_int")]
    #[schema(schema_with = f::expiration_opt)]
    access_token_expiry: Option<i64>,
    /// Default `Bearer`.
    #[schema(schema_with = f::outbound_text_opt)]
    access_token_type: Option<String>,
    #[schema(schema_with = f::scopes_opt)]
    scopes: Option<Vec<String>>,
    #[schema(schema_with = f::outbound_text_opt)]
    external_identifier: Option<String>,
    /// Accepted and not stored.
    #[schema(schema_with = f::token_opt)]
    id_token: Option<SecretString>,
    #[schema(schema_with = f::outbound_text_opt)]
    granted_by: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[schema(as = OutboundBatchUpload)]
struct BatchBody {
    #[schema(schema_with = f::batch_tokens_req::<BatchTokenBody>, required = true)]
    tokens: Option<Vec<BatchTokenBody>>,
}

/// Why one token was refused.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OutboundBatchFailure)]
struct FailureView {
    app_id: String,
    /// User batches.
    #[serde(skip_serializing_if = "String::is_empty")]
    user_id: String,
    /// Tenant batches, and user tokens for a tenant.
    #[serde(skip_serializing_if = "String::is_empty")]
    tenant_id: String,
    /// The error code a single upload of this token would answer (`E152101`, `E011002`, ...).
    error_code: &'static str,
    reason: String,
}

impl From<BatchFailure> for FailureView {
    fn from(f: BatchFailure) -> Self {
        let (_, error_code, _) = describe(f.error.code());
        FailureView {
            app_id: f.app_id,
            user_id: f.user_id,
            tenant_id: f.tenant_id,
            error_code,
            reason: f.error.to_string(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = OutboundBatchResult)]
struct FailuresEnvelope {
    /// Empty: every token was written. Otherwise none was.
    failures: Vec<FailureView>,
}

async fn batch(
    state: &AppState,
    project: &ProjectId,
    body: BatchBody,
    kind: BatchKind,
) -> ApiResult<Json<FailuresEnvelope>> {
    let Some(tokens) = body.tokens else {
        return Err(idvault_core::Error::MissingArgument("tokens").into());
    };
    let items = tokens
        .into_iter()
        .map(|t| {
            // An id token is accepted for compatibility and not stored.
            drop(t.id_token);
            BatchToken {
                app_id: t.app_id.unwrap_or_default(),
                user_id: t.user_id.unwrap_or_default(),
                tenant_id: t.tenant_id.unwrap_or_default(),
                access_token: t.access_token,
                refresh_token: t.refresh_token,
                expiration: t.access_token_expiry.unwrap_or(0),
                access_token_type: t.access_token_type.unwrap_or_default(),
                scopes: t.scopes.unwrap_or_default(),
                external_identifier: t.external_identifier.unwrap_or_default(),
                granted_by: t.granted_by.unwrap_or_default(),
            }
        })
        .collect();
    let failures = state.outbound.batch_upload(project, kind, items).await?;
    Ok(Json(FailuresEnvelope { failures: failures.into_iter().map(FailureView::from).collect() }))
}

/// Uploads many users' tokens at once (a migration): each item as a single upload would store
/// it. All or nothing: if any item fails validation (unknown app, user or tenant, API-key app,
/// missing token, bad field), the answer lists the `failures` and nothing is written. Two items
/// of the same app, user, tenant and scope set: the later one is stored.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/user/oauthtoken/batch/upload",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = BatchBody,
    responses(
        (status = 200, description = "`failures` empty: all written; otherwise nothing written", body = FailuresEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn batch_upload_user_tokens(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<BatchBody>,
) -> ApiResult<Json<FailuresEnvelope>> {
    batch(&state, &project, body, BatchKind::User).await
}

/// Uploads many tenants' tokens at once, with the same all-or-nothing rule as the user batch.
#[utoipa::path(
    post,
    path = "/v1/mgmt/outbound/app/tenant/oauthtoken/batch/upload",
    tag = "outbound-apps",
    security(("management_key" = [])),
    request_body = BatchBody,
    responses(
        (status = 200, description = "`failures` empty: all written; otherwise nothing written", body = FailuresEnvelope),
        MgmtErrors,
        BodyErrors,
    ),
)]
#[tracing::instrument(level = "debug", skip_all, fields(project = %project))]
async fn batch_upload_tenant_tokens(
    State(state): State<AppState>,
    MgmtAuth(project, _): MgmtAuth,
    AppJson(body): AppJson<BatchBody>,
) -> ApiResult<Json<FailuresEnvelope>> {
    batch(&state, &project, body, BatchKind::Tenant).await
}
