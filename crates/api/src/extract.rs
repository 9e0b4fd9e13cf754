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
use idvault_core::project::KeyIdentity;

use crate::error::ApiError;
use crate::state::AppState;

/// The project a request's management key grants, and that key (id and name: the actor of the
/// request's audit records). Rejects with 401 before the body is read.
pub struct MgmtAuth(pub ProjectId, pub KeyIdentity);

impl<S> FromRequestParts<S> for MgmtAuth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let (project, key) = state.projects.authenticate(header).await?;
        crate::observe::record_project(project.as_str());
        Ok(MgmtAuth(project, key))
    }
}

/// A JSON body. Unlike `axum::Json` it does not insist on a content type (SDKs differ), treats an
/// empty body as `{}`, and reports malformed or mistyped JSON as a Descope `E011001` and a NUL
/// character anywhere as `E011004` (see [`has_nul_escape`]).
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        parse_json_body(&bytes).map(AppJson)
    }
}

/// A request body as [`AppJson`] reads it, once the bytes are in: blank is `{}`, malformed or
/// mistyped JSON is `E011001`, a NUL character is `E011004`. Public for the fuzz targets, which
/// feed it arbitrary bytes.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let slice: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let value = serde_json::from_slice(slice)
        .map_err(|e| ApiError::new(Code::BadRequest, format!("invalid JSON body: {e}")))?;
    if has_nul_escape(slice) {
        return Err(nul_refused());
    }
    Ok(value)
}

/// Whether a JSON text holds a NUL character (`\u0000`) in a string or a key. PostgreSQL cannot
/// store NUL in text, so a value with one would be stored by SQLite and fail with a 500 on
/// PostgreSQL; no field of the API has a use for it, so it is refused everywhere, on every
/// backend. A backslash only occurs inside a string of valid JSON, so this scan is exact.
pub fn has_nul_escape(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000".as_slice()) {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

fn nul_refused() -> ApiError {
    ApiError::new(Code::InvalidArguments, "invalid request: must not contain NUL characters")
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            Code::PayloadTooLarge,
            format!(
                "request body exceeds {} bytes ({} for the outbound batch uploads)",
                idvault_core::limits::MAX_BODY_BYTES,
                idvault_core::limits::MAX_BATCH_BODY_BYTES
            ),
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
        // A NUL character, as in a JSON body, is refused (`%00`; `%2500` is a literal "%00").
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(nul_refused());
        }
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

#[cfg(test)]
mod tests {
    use super::has_nul_escape;

    #[test]
    fn nul_escapes_are_found_in_strings_and_keys_only() {
        assert!(has_nul_escape(br#"{"a":"x\u0000y"}"#));
        assert!(has_nul_escape(br#"{"a\u0000":1}"#));
        assert!(has_nul_escape(br#"["\\\u0000"]"#), "an escaped backslash, then a NUL");
        assert!(!has_nul_escape(br#"{"a":"\\u0000"}"#), "a backslash and the text u0000");
        assert!(!has_nul_escape(br#"{"a":"\u0001 \n"}"#));
    }
}
