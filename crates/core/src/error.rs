//! The one domain error type. Each variant is a meaning, not a transport detail; the HTTP layer
//! owns the single table that maps [`Code`] to an HTTP status and a Descope `errorCode`.

use std::fmt;

/// Stable, documented error categories (see docs/errors.md). The HTTP layer maps each to a status
/// code and a Descope-style `errorCode`.
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
    PayloadTooLarge,
    RouteNotFound,
    MethodNotAllowed,
    Internal,
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
        Error::Invalid {
            field,
            message: message.to_string(),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Error::BadRequest(_) => Code::BadRequest,
            Error::MissingArgument(_) => Code::MissingArguments,
            Error::Invalid { .. } => Code::InvalidArguments,
            Error::Unauthorized(_) => Code::Unauthorized,
            Error::UserNotFound => Code::UserNotFound,
            Error::UserAlreadyExists(_) => Code::UserAlreadyExists,
            Error::ProviderTokenNotFound(_) => Code::ProviderTokenNotFound,
            Error::ProjectNotFound(_) | Error::KeyNotFound(_) => Code::InvalidArguments,
            Error::Decrypt(_) => Code::TokenUndecryptable,
            Error::Storage(_) | Error::Internal(_) => Code::Internal,
        }
    }
}
