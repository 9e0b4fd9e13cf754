//! Extractors whose rejections speak the Descope error shape: management auth, JSON bodies and
//! query strings.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Query, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use idvault_core::error::Code;
use idvault_core::ids::ProjectId;

use crate::error::ApiError;
use crate::state::AppState;

/// The project a request's management key grants. Rejects with 401 before the body is read.
pub struct MgmtAuth(pub ProjectId);

impl<S> FromRequestParts<S> for MgmtAuth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let project = state.projects.authenticate(header).await?;
        Ok(MgmtAuth(project))
    }
}

/// A JSON body. Unlike `axum::Json` it does not insist on a content type (SDKs differ), treats an
/// empty body as `{}`, and reports malformed or mistyped JSON as a Descope `E011001`.
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        let slice: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        serde_json::from_slice(slice)
            .map(AppJson)
            .map_err(|e| ApiError::new(Code::BadRequest, format!("invalid JSON body: {e}")))
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("request body exceeds {} bytes", idvault_core::limits::MAX_BODY_BYTES),
        )
    } else {
        ApiError::new(Code::BadRequest, "could not read the request body")
    }
}

/// A query string, with Descope-shaped rejections.
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state).await.map(|Query(v)| AppQuery(v)).map_err(
            |e: QueryRejection| ApiError::new(Code::BadRequest, format!("invalid query: {}", e.body_text())),
        )
    }
}

/// Query-string booleans as the SDKs send them (`true`/`false`; also `1`/`0`, any case).
pub fn query_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s = String::deserialize(d)?;
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(serde::de::Error::custom(format!("expected true or false, got '{s}'"))),
    }
}
