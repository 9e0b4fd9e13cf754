//! The errors a directory write answers when a name is taken or missing, worded once for every
//! backend (the stores detect the case with their constraints; the wording is the API's).

use crate::error::Error;

/// A tenant id or name (case-insensitive) already in use, on create.
pub fn tenant_taken(id: &str) -> Error {
    Error::AlreadyExists(format!("tenant '{id}' (id or name)"))
}

/// Another tenant has this name (case-insensitive), on update.
pub fn tenant_name_taken(name: &str) -> Error {
    Error::AlreadyExists(format!("tenant name '{name}'"))
}

pub fn tenant_not_found(id: &str) -> Error {
    Error::NotFound(format!("tenant '{id}'"))
}

pub fn permission_taken(name: &str) -> Error {
    Error::AlreadyExists(format!("permission '{name}'"))
}

pub fn permission_not_found(name: &str) -> Error {
    Error::NotFound(format!("permission '{name}'"))
}

/// A role of this name exists in the same scope (the project, or the tenant).
pub fn role_taken(name: &str) -> Error {
    Error::AlreadyExists(format!("role '{name}'"))
}

pub fn role_not_found(name: &str) -> Error {
    Error::NotFound(format!("role '{name}'"))
}
