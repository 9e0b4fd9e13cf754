//! The one domain error type. Each variant is a meaning, not a transport detail; the HTTP layer
//! owns the single table that maps [`Code`] to an HTTP status and a Descope `errorCode`
//! (crates/api/src/error.rs, documented in docs/api.md).

use std::fmt;

/// Stable, documented error categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BadRequest,
    MissingArguments,
    ValidationFailure,
    InvalidArguments,
    Unauthorized,
    UserNotFound,
    UserAlreadyExists,
    ProviderTokenNotFound,
    TokenUndecryptable,
    ProviderReauthRequired,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    ProviderBadResponse,
    ProviderNetwork,
    ProviderSuspended,
    NoRefreshToken,
    ProviderNotConfigured,
    OutboundAppNotFound,
    OutboundTokenNotFound,
    AlreadyExists,
    NotFound,
    InvalidOAuthState,
    RedirectNotAllowed,
    ProviderCallbackError,
    InvalidIdToken,
    InvalidAuthCode,
    InvalidSession,
    SessionRevoked,
    UserDisabled,
    /// Too many requests: one client address over the auth routes' rate limit, or a project's
    /// pending sign-ins at their bound.
    TooManyRequests,
    PayloadTooLarge,
    RouteNotFound,
    MethodNotAllowed,
    Internal,
}

/// Why a call to an OAuth provider failed. The stored tokens are untouched in every case but
/// `InvalidGrant`, where they are kept and flagged as needing a new sign-in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderFailure {
    /// `invalid_grant` (or GitHub's `bad_refresh_token`): the user revoked access or the refresh
    /// token expired.
    #[error("the provider refused the refresh token (invalid_grant): the user must sign in again")]
    InvalidGrant,
    /// Another OAuth error code from the provider (`invalid_client`, `unauthorized_client`...).
    #[error("the provider answered OAuth error '{error}'")]
    OAuth { error: String },
    #[error("the provider did not answer within {0} ms")]
    Timeout(u64),
    #[error("the provider answered HTTP {0}")]
    Unavailable(u16),
    #[error("the provider's answer could not be used: {0}")]
    BadResponse(String),
    #[error("the provider could not be reached: {0}")]
    Network(String),
    /// Not called: its last `failures` refreshes failed in a row (its circuit breaker is open),
    /// and idvault lets a call through again in `retry_in_secs` seconds.
    #[error(
        "the provider failed {failures} times in a row; idvault does not call it for now (next attempt in {retry_in_secs} s)"
    )]
    Suspended { failures: u32, retry_in_secs: u64 },
}

impl ProviderFailure {
    /// Whether this says the provider is failing (what opens its circuit breaker), as opposed to
    /// a provider that works and refused the request (`invalid_grant`, another OAuth error).
    pub fn is_provider_fault(&self) -> bool {
        match self {
            ProviderFailure::Timeout(_)
            | ProviderFailure::Unavailable(_)
            | ProviderFailure::BadResponse(_)
            | ProviderFailure::Network(_) => true,
            ProviderFailure::InvalidGrant
            | ProviderFailure::OAuth { .. }
            | ProviderFailure::Suspended { .. } => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be parsed (malformed JSON, wrong types).
    #[error("{0}")]
    BadRequest(String),
    /// A required argument is absent.
    #[error("missing argument: {0}")]
    MissingArgument(&'static str),
    /// An argument is present but not acceptable (format, length, range).
    #[error("invalid {field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// Missing, malformed, unknown, expired or revoked management key. The message never
    /// contains the presented key.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A management key that matches no key issued to the project: an unknown key id, a wrong
    /// secret, a string that is no key, or another project's key. Answered like
    /// [`Error::Unauthorized`]; unlike a missing, expired or revoked key (which a real client can
    /// present), it may be a guess, so it counts against the client address's failure budget
    /// (see [`Error::is_failed_credential`]).
    #[error("invalid management key")]
    WrongManagementKey,
    /// An access key that matches no key of the project (unknown id, wrong secret, not a key).
    /// Answered like [`Error::Unauthorized`] and counted like [`Error::WrongManagementKey`].
    #[error("invalid access key")]
    WrongAccessKey,
    #[error("user not found")]
    UserNotFound,
    #[error("user already exists: {0}")]
    UserAlreadyExists(String),
    #[error("no {0} token is stored for this user")]
    ProviderTokenNotFound(String),
    #[error("project not found: {0}")]
    ProjectNotFound(String),
    #[error("management key not found: {0}")]
    KeyNotFound(String),
    #[error("no provider named '{0}' is configured in this project")]
    ProviderNotConfigured(String),
    /// The stored grant was refused by the provider earlier; no provider call is made until the
    /// user signs in again (or new tokens are stored).
    #[error("the {0} grant was revoked or expired at the provider: the user must sign in again")]
    ProviderReauthRequired(String),
    #[error("a refresh was requested but no {0} refresh token is stored for this user")]
    NoRefreshToken(String),
    #[error("refreshing the {provider} token failed: {failure}")]
    Provider { provider: String, failure: ProviderFailure },
    #[error("no outbound application '{0}' in this project")]
    OutboundAppNotFound(String),
    /// No stored outbound token matches (app, owner, tenant, scopes), or no token has that id.
    #[error("no matching outbound token is stored")]
    OutboundTokenNotFound,
    /// A tenant, role or permission with that id or name exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A tenant, role or permission does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Unknown, tampered, expired or already used OAuth `state`.
    #[error("invalid OAuth state: {0}")]
    InvalidOAuthState(&'static str),
    #[error("redirect URL not allowed for this project: {0}")]
    RedirectNotAllowed(String),
    /// The provider answered the authorization request with an error.
    #[error("the provider returned an error: {0}")]
    ProviderCallbackError(String),
    #[error("the provider's id_token was rejected: {0}")]
    InvalidIdToken(String),
    #[error("invalid, expired or already used code")]
    InvalidAuthCode,
    /// A session or refresh JWT that is malformed, wrongly signed, expired or of the wrong kind.
    #[error("invalid session token: {0}")]
    InvalidSession(&'static str),
    /// A session or refresh JWT that this server did not sign: malformed, an unexpected
    /// algorithm, no or an unknown key id, a bad signature. Answered like
    /// [`Error::InvalidSession`]; unlike an expired or logged-out token (which a real client
    /// holds), it may be a forgery, so it counts against the client address's failure budget.
    #[error("invalid session token: {0}")]
    ForgedSession(&'static str),
    #[error("the session was logged out")]
    SessionRevoked,
    /// A sign-in of a disabled or expired user is refused.
    #[error("sign-in refused: the user is {0}")]
    UserDisabled(&'static str),
    /// A bounded resource is full (such as a project's pending sign-ins); retry later.
    #[error("too many requests: {0}")]
    TooManyRequests(&'static str),
    /// Stored data could not be decrypted or decoded: a wrong master key, or a ciphertext that was
    /// moved to another row. Reported without any of the data itself.
    #[error("stored secret could not be decrypted ({0})")]
    Decrypt(&'static str),
    /// The storage backend failed. The cause is kept for logs; the wire answer is generic.
    #[error("storage error: {0}")]
    Storage(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: &'static str, message: impl fmt::Display) -> Self {
        Error::Invalid { field, message: message.to_string() }
    }

    /// Whether the request presented a credential that this server never issued (a wrong
    /// management key, a forged session token): the failures that the per-address brute-force
    /// limit counts. Credentials that are only missing, expired, revoked or logged out are not
    /// counted, so that a client with a stale credential does not lock out others at its address.
    pub fn is_failed_credential(&self) -> bool {
        matches!(self, Error::WrongManagementKey | Error::WrongAccessKey | Error::ForgedSession(_))
    }

    pub fn code(&self) -> Code {
        match self {
            Error::BadRequest(_) => Code::BadRequest,
            Error::MissingArgument(_) => Code::MissingArguments,
            Error::Invalid { .. } => Code::InvalidArguments,
            Error::Unauthorized(_) | Error::WrongManagementKey | Error::WrongAccessKey => Code::Unauthorized,
            Error::UserNotFound => Code::UserNotFound,
            Error::UserAlreadyExists(_) => Code::UserAlreadyExists,
            Error::ProviderTokenNotFound(_) => Code::ProviderTokenNotFound,
            Error::ProjectNotFound(_) | Error::KeyNotFound(_) => Code::InvalidArguments,
            Error::ProviderNotConfigured(_) => Code::ProviderNotConfigured,
            Error::ProviderReauthRequired(_) => Code::ProviderReauthRequired,
            Error::NoRefreshToken(_) => Code::NoRefreshToken,
            Error::Provider { failure, .. } => match failure {
                ProviderFailure::InvalidGrant => Code::ProviderReauthRequired,
                ProviderFailure::OAuth { .. } => Code::ProviderRejected,
                ProviderFailure::Timeout(_) => Code::ProviderTimeout,
                ProviderFailure::Unavailable(_) => Code::ProviderUnavailable,
                ProviderFailure::BadResponse(_) => Code::ProviderBadResponse,
                ProviderFailure::Network(_) => Code::ProviderNetwork,
                ProviderFailure::Suspended { .. } => Code::ProviderSuspended,
            },
            Error::OutboundAppNotFound(_) => Code::OutboundAppNotFound,
            Error::OutboundTokenNotFound => Code::OutboundTokenNotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::NotFound(_) => Code::NotFound,
            Error::InvalidOAuthState(_) => Code::InvalidOAuthState,
            Error::RedirectNotAllowed(_) => Code::RedirectNotAllowed,
            Error::ProviderCallbackError(_) => Code::ProviderCallbackError,
            Error::InvalidIdToken(_) => Code::InvalidIdToken,
            Error::InvalidAuthCode => Code::InvalidAuthCode,
            Error::InvalidSession(_) | Error::ForgedSession(_) => Code::InvalidSession,
            Error::SessionRevoked => Code::SessionRevoked,
            Error::UserDisabled(_) => Code::UserDisabled,
            Error::TooManyRequests(_) => Code::TooManyRequests,
            Error::Decrypt(_) => Code::TokenUndecryptable,
            Error::Storage(_) | Error::Internal(_) => Code::Internal,
        }
    }
}

/// `text` as an answer may repeat it: at most `max` bytes. A longer text (a value far over its
/// own limit, a megabyte where an id belongs) is cut at a character and ends in `…`.
pub fn bounded_echo(mut text: String, max: usize) -> String {
    const MARK: char = '…';
    if text.len() > max {
        let mut end = max.saturating_sub(MARK.len_utf8());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push(MARK);
    }
    text
}

#[cfg(test)]
mod echo_tests {
    use super::bounded_echo;

    #[test]
    fn long_texts_are_cut_at_a_character_and_marked() {
        assert_eq!(bounded_echo("user x not found".into(), 20), "user x not found");
        assert_eq!(bounded_echo("x".repeat(20), 20), "x".repeat(20));
        let cut = bounded_echo(format!("a{}", "😀".repeat(100)), 256);
        assert!(cut.len() <= 256 && cut.starts_with("a😀") && cut.ends_with('…'), "{cut}");
        // 256 - 3 bytes for the mark = 253 = "a" and 63 whole emoji.
        assert_eq!(cut.len(), 1 + 63 * 4 + 3);
        assert_eq!(bounded_echo("x".repeat(1_000_000), 4096).len(), 4096);
    }
}
