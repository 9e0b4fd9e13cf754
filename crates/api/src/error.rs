//! The single table from domain error codes to HTTP statuses and Descope `errorCode`s, and the
//! Descope error body `{errorCode, errorDescription, errorMessage}`.
//!
//! 5xx answers carry a generic message; the cause is logged here, never sent. No answer here is
//! 503 or 52x, which the SDKs retry.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use idvault_core::error::{bounded_echo, Code, Error};
use idvault_core::limits::MAX_ERROR_MESSAGE_LEN;

/// One row of the error table: what a [`Code`] answers on the wire, and when.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCodeDoc {
    pub code: Code,
    pub status: StatusCode,
    /// The Descope `errorCode`.
    pub error_code: &'static str,
    /// The fixed `errorDescription`.
    pub description: &'static str,
    /// When it is answered (Markdown, for docs/api.md).
    pub when: &'static str,
}

/// Declares the error table once and derives from it both [`describe`] (an exhaustive match, so
/// a new [`Code`] does not compile until it has a row) and [`ERROR_CODES`] (the same rows, which
/// docs/api.md's "Errors" table is rendered from by `crate::docs`).
macro_rules! error_table {
    ($($code:ident => $status:ident, $error_code:literal, $description:literal, $when:literal;)*) => {
        /// Maps a code to its status, Descope error code and fixed description.
        pub fn describe(code: Code) -> (StatusCode, &'static str, &'static str) {
            match code {
                $(Code::$code => (StatusCode::$status, $error_code, $description),)*
            }
        }

        /// Every code, in the order of the table above.
        pub const ERROR_CODES: &[ErrorCodeDoc] = &[
            $(ErrorCodeDoc {
                code: Code::$code,
                status: StatusCode::$status,
                error_code: $error_code,
                description: $description,
                when: $when,
            },)*
        ];
    };
}

error_table! {
    BadRequest => BAD_REQUEST, "E011001", "Bad request",
        "malformed JSON, wrong types, bad query string";
    MissingArguments => BAD_REQUEST, "E011002", "Missing arguments",
        "a required argument is missing";
    ValidationFailure => BAD_REQUEST, "E011003", "Request is invalid",
        "Descope's code for a request that fails validation; idvault answers `E011004` instead";
    InvalidArguments => BAD_REQUEST, "E011004", "Invalid arguments",
        "an argument is invalid (format, length, range, unknown status, unsupported filter)";
    Unauthorized => UNAUTHORIZED, "E011401", "Unauthorized",
        "missing, malformed, unknown, expired or revoked management key, or a key of another project";
    UserNotFound => BAD_REQUEST, "E112102", "User not found",
        "user not found (Descope's code and status)";
    UserAlreadyExists => CONFLICT, "E062107", "User already exists",
        "a login id is already taken (Descope's code)";
    ProviderTokenNotFound => NOT_FOUND, "E112103", "Provider token not found",
        "the user has no token for that provider";
    // Integrity failure of stored data (wrong master key, or a ciphertext moved between rows):
    // a server-side condition, reported distinctly so that operators can tell it apart.
    TokenUndecryptable => INTERNAL_SERVER_ERROR, "E112104", "Stored provider token could not be decrypted",
        "a stored token failed authenticated decryption (wrong master key, or a ciphertext moved between rows)";
    ProviderReauthRequired => CONFLICT, "E112105", "Provider grant revoked: user must sign in again",
        "the provider refused the refresh token (`invalid_grant`, GitHub's `bad_refresh_token`): tokens \
         kept and flagged; later reads answer this without calling the provider until new tokens are stored";
    // Provider failures are 502: the SDKs retry 503 and 52x, which must not repeat a refresh.
    ProviderRejected => BAD_GATEWAY, "E112106", "Provider rejected the token request",
        "the provider answered another OAuth error (`invalid_client`...)";
    ProviderTimeout => BAD_GATEWAY, "E112107", "Provider did not answer in time",
        "the provider did not answer within the timeout";
    ProviderUnavailable => BAD_GATEWAY, "E112108", "Provider unavailable",
        "the provider answered 5xx";
    ProviderBadResponse => BAD_GATEWAY, "E112109", "Provider answer unusable",
        "the provider's answer was malformed, had no access token, or was over 256 KiB";
    ProviderNetwork => BAD_GATEWAY, "E112110", "Provider unreachable",
        "the provider could not be reached";
    ProviderSuspended => BAD_GATEWAY, "E112113", "Provider calls suspended after repeated failures",
        "the provider's last refreshes failed in a row (timeouts, 5xx, unusable answers, unreachable), so this \
         process does not call it for a cool-down, then lets one probe through; the message says when";
    NoRefreshToken => BAD_REQUEST, "E112111", "No refresh token stored",
        "`forceRefresh=true` but no refresh token is stored";
    ProviderNotConfigured => NOT_FOUND, "E112112", "Provider not configured",
        "the provider is not configured in this project";
    OutboundAppNotFound => NOT_FOUND, "E152101", "Outbound application not found",
        "no outbound application (or provider) with that id in the project";
    OutboundTokenNotFound => NOT_FOUND, "E152102", "Outbound token not found",
        "no stored outbound token matches the app, owner, tenant and scopes asked for (by scopes: none whose \
         granted scopes include them), or none has that id";
    AlreadyExists => CONFLICT, "E011409", "Already exists",
        "a tenant, role or permission with that id or name exists";
    NotFound => NOT_FOUND, "E011406", "Not found",
        "tenant, role or permission not found";
    InvalidOAuthState => BAD_REQUEST, "E113001", "Invalid OAuth state",
        "OAuth state unknown, tampered, expired or already used";
    RedirectNotAllowed => BAD_REQUEST, "E113002", "Redirect URL not allowed",
        "redirect URL not in the project's allowed list";
    ProviderCallbackError => BAD_REQUEST, "E113003", "The provider returned an error",
        "the provider answered the sign-in with an error (e.g. the user denied consent)";
    InvalidIdToken => BAD_REQUEST, "E113004", "The provider's id_token was rejected",
        "the provider's id_token failed a check (the message says which: signature, issuer, audience, nonce, expiry)";
    InvalidAuthCode => BAD_REQUEST, "E113005", "Invalid or used code",
        "exchange code unknown, expired or already used";
    InvalidSession => UNAUTHORIZED, "E061001", "Invalid session token",
        "session or refresh JWT invalid, expired, of the wrong kind, already rotated (reuse: the session \
         is revoked), or its user is gone or disabled";
    // Go SDK's ErrTokenExpiredByLoggedOut.
    SessionRevoked => UNAUTHORIZED, "E064001", "Session logged out",
        "the session was logged out";
    UserDisabled => FORBIDDEN, "E113006", "Sign-in refused: the user is disabled",
        "sign-in refused: the user is disabled or expired (at the provider callback, or at the code exchange)";
    // Descope's rate-limit code: the SDKs raise their rate-limit exception on a 429 and read
    // `Retry-After`. Both the per-address limit and the pending sign-in bound answer it.
    TooManyRequests => TOO_MANY_REQUESTS, "E130429", "Too many requests",
        "too many requests from this client address on the `/v1/auth/*` and outbound connect routes, or too \
         many wrong management keys or forged session tokens from it (then every request of it with an \
         `Authorization` header is refused), with `Retry-After` saying in how many seconds to retry (the \
         Descope SDKs' rate-limit error); or too many pending sign-ins and connects in the project \
         (`/v1/auth/oauth/authorize`, outbound connect): retry when some have completed or expired";
    PayloadTooLarge => PAYLOAD_TOO_LARGE, "E011413", "Request body too large",
        "request body over the limit";
    RouteNotFound => NOT_FOUND, "E011404", "Route not found",
        "no such route";
    MethodNotAllowed => METHOD_NOT_ALLOWED, "E011405", "Method not allowed",
        "method not allowed on this route";
    Internal => INTERNAL_SERVER_ERROR, "E011500", "Internal server error",
        "internal error; the body is generic, and the cause goes to the server log";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_each_code_once_with_a_distinct_descope_code() {
        let mut codes = std::collections::HashSet::new();
        let mut error_codes = std::collections::HashSet::new();
        for row in ERROR_CODES {
            assert!(codes.insert(format!("{:?}", row.code)), "{:?} listed twice", row.code);
            assert!(error_codes.insert(row.error_code), "{} listed twice", row.error_code);
            assert_eq!(describe(row.code), (row.status, row.error_code, row.description));
            // The table is Markdown: a `|` would split a cell.
            assert!(!row.when.contains('|') && !row.description.contains('|'), "{}", row.error_code);
            // No answer is 503 or 52x, which the SDKs retry.
            let status = row.status.as_u16();
            assert!(status != 503 && !(520..530).contains(&status), "{}", row.error_code);
        }
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
    failed_credential: bool,
}

/// Marks an error answer to a credential this server never issued (see
/// [`Error::is_failed_credential`]), for the per-address failure limit
/// (`crate::ratelimit::limit_failed_credentials`) to count. It travels in the response's
/// extensions, never on the wire.
#[derive(Debug, Clone, Copy)]
pub struct FailedCredential;

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        // A message repeating a value far over its limit is cut (see `bounded_echo`).
        ApiError {
            code,
            message: bounded_echo(message.into(), MAX_ERROR_MESSAGE_LEN),
            failed_credential: false,
        }
    }

    pub fn code(&self) -> Code {
        self.code
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let code = err.code();
        if matches!(err, Error::Storage(_)) {
            metrics::counter!(STORAGE_ERRORS).increment(1);
        }
        if code == Code::TokenUndecryptable {
            tracing::error!(error = %err, "stored secret failed authentication");
        }
        if code == Code::Internal {
            // The cause may name files or database details: log it, answer generically.
            tracing::error!(error = %err, "internal error");
            ApiError::new(code, "internal server error")
        } else {
            ApiError {
                code,
                message: bounded_echo(err.to_string(), MAX_ERROR_MESSAGE_LEN),
                failed_credential: err.is_failed_credential(),
            }
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
        if self.failed_credential {
            response.extensions_mut().insert(FailedCredential);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Requests answered with a storage error (the database unreachable, full, timed out...).
pub const STORAGE_ERRORS: &str = "idvault_storage_errors_total";
