//! The single table from domain error codes to HTTP statuses and Descope `errorCode`s, and the
//! Descope error body `{errorCode, errorDescription, errorMessage}`.
//!
//! 5xx answers carry a generic message; the cause is logged here, never sent. No answer here is
//! 503 or 52x, which the SDKs retry.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use idvault_core::error::{Code, Error};

/// Maps a code to its status, Descope error code and fixed description (listed in docs/api.md,
/// "Errors").
pub fn describe(code: Code) -> (StatusCode, &'static str, &'static str) {
    match code {
        Code::BadRequest => (StatusCode::BAD_REQUEST, "E011001", "Bad request"),
        Code::MissingArguments => (StatusCode::BAD_REQUEST, "E011002", "Missing arguments"),
        Code::ValidationFailure => (StatusCode::BAD_REQUEST, "E011003", "Request is invalid"),
        Code::InvalidArguments => (StatusCode::BAD_REQUEST, "E011004", "Invalid arguments"),
        Code::Unauthorized => (StatusCode::UNAUTHORIZED, "E011401", "Unauthorized"),
        Code::UserNotFound => (StatusCode::BAD_REQUEST, "E112102", "User not found"),
        Code::UserAlreadyExists => (StatusCode::CONFLICT, "E062107", "User already exists"),
        Code::ProviderTokenNotFound => (StatusCode::NOT_FOUND, "E112103", "Provider token not found"),
        // Integrity failure of stored data (wrong master key, or a ciphertext moved between rows):
        // a server-side condition, reported distinctly so that operators can tell it apart.
        Code::TokenUndecryptable => {
            (StatusCode::INTERNAL_SERVER_ERROR, "E112104", "Stored provider token could not be decrypted")
        }
        Code::ProviderReauthRequired => {
            (StatusCode::CONFLICT, "E112105", "Provider grant revoked: user must sign in again")
        }
        // Provider failures are 502: the SDKs retry 503 and 52x, which must not repeat a refresh.
        Code::ProviderRejected => (StatusCode::BAD_GATEWAY, "E112106", "Provider rejected the token request"),
        Code::ProviderTimeout => (StatusCode::BAD_GATEWAY, "E112107", "Provider did not answer in time"),
        Code::ProviderUnavailable => (StatusCode::BAD_GATEWAY, "E112108", "Provider unavailable"),
        Code::ProviderBadResponse => (StatusCode::BAD_GATEWAY, "E112109", "Provider answer unusable"),
        Code::ProviderNetwork => (StatusCode::BAD_GATEWAY, "E112110", "Provider unreachable"),
        Code::NoRefreshToken => (StatusCode::BAD_REQUEST, "E112111", "No refresh token stored"),
        Code::ProviderNotConfigured => (StatusCode::NOT_FOUND, "E112112", "Provider not configured"),
        Code::AlreadyExists => (StatusCode::CONFLICT, "E011409", "Already exists"),
        Code::NotFound => (StatusCode::NOT_FOUND, "E011406", "Not found"),
        Code::InvalidOAuthState => (StatusCode::BAD_REQUEST, "E113001", "Invalid OAuth state"),
        Code::RedirectNotAllowed => (StatusCode::BAD_REQUEST, "E113002", "Redirect URL not allowed"),
        Code::ProviderCallbackError => (StatusCode::BAD_REQUEST, "E113003", "The provider returned an error"),
        Code::InvalidIdToken => (StatusCode::BAD_REQUEST, "E113004", "The provider's id_token was rejected"),
        Code::InvalidAuthCode => (StatusCode::BAD_REQUEST, "E113005", "Invalid or used code"),
        Code::InvalidSession => (StatusCode::UNAUTHORIZED, "E061001", "Invalid session token"),
        // Go SDK's ErrTokenExpiredByLoggedOut.
        Code::SessionRevoked => (StatusCode::UNAUTHORIZED, "E064001", "Session logged out"),
        Code::UserDisabled => (StatusCode::FORBIDDEN, "E113006", "Sign-in refused: the user is disabled"),
        // Descope's rate-limit code: the SDKs raise their rate-limit exception on a 429 and read
        // `Retry-After`. Both the per-address limit and the pending sign-in bound answer it.
        Code::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "E130429", "Too many requests"),
        Code::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "E011413", "Request body too large"),
        Code::RouteNotFound => (StatusCode::NOT_FOUND, "E011404", "Route not found"),
        Code::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "E011405", "Method not allowed"),
        Code::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "E011500", "Internal server error"),
    }
}

/// The Descope error body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The Descope error code, such as `E011002`.
    #[schema(example = "E011002")]
    pub error_code: &'static str,
    /// The fixed description of the code.
    #[schema(example = "Missing arguments")]
    pub error_description: &'static str,
    /// What went wrong in this request.
    #[schema(example = "missing argument: loginId")]
    pub error_message: String,
}

/// An error on its way to the wire.
#[derive(Debug)]
pub struct ApiError {
    code: Code,
    message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }

    pub fn code(&self) -> Code {
        self.code
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let code = err.code();
        if code == Code::TokenUndecryptable {
            tracing::error!(error = %err, "stored secret failed authentication");
        }
        if code == Code::Internal {
            // The cause may name files or database details: log it, answer generically.
            tracing::error!(error = %err, "internal error");
            ApiError::new(code, "internal server error")
        } else {
            ApiError::new(code, err.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error_code, error_description) = describe(self.code);
        let body = ErrorBody { error_code, error_description, error_message: self.message };
        let mut response = (status, Json(body)).into_response();
        if self.code == Code::PayloadTooLarge {
            // The rest of the oversized body was never read, so the connection cannot carry
            // another request: tell the client not to reuse it.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
