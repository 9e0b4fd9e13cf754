//! Mapping between `users` rows and the domain `User`.

use rusqlite::Row;
use serde_json::{Map, Value};

use idvault_core::error::{Error, Result};
use idvault_core::ids::UserId;
use idvault_core::user::{User, UserStatus, UserTenant};

/// The `users` columns a load selects, in the order [`user_from_row`] reads them, prefixed with
/// the `u` alias every query uses. A macro so that queries can be `concat!`-ed at compile time.
macro_rules! user_columns {
    () => {
        "u.user_id, u.login_ids, u.name, u.given_name, u.middle_name, u.family_name, u.email, u.phone, \
         u.verified_email, u.verified_phone, u.status, u.picture, u.test, u.role_names, u.tenants, \
         u.custom_attributes, u.sso_app_ids, u.oauth_providers, u.created_ms, u.modified_ms"
    };
}
pub(crate) use user_columns;

pub(crate) const USER_COLUMNS: &str = user_columns!();

fn json_col<T: serde::de::DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

pub(crate) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    user_from_row_at(row, 0)
}

/// Reads the user columns starting at column `base` (for queries that select something first).
pub(crate) fn user_from_row_at(row: &Row<'_>, base: usize) -> rusqlite::Result<User> {
    let status: String = row.get(base + 10)?;
    let status = UserStatus::parse(&status).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            base + 10,
            rusqlite::types::Type::Text,
            Box::new(std::io::Error::other(e.to_string())),
        )
    })?;
    let user_id: String = row.get(base)?;
    Ok(User {
        user_id: UserId::parse(&user_id).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                base,
                rusqlite::types::Type::Text,
                Box::new(std::io::Error::other(e.to_string())),
            )
        })?,
        login_ids: json_col(row, base + 1)?,
        name: row.get(base + 2)?,
        given_name: row.get(base + 3)?,
        middle_name: row.get(base + 4)?,
        family_name: row.get(base + 5)?,
        email: row.get(base + 6)?,
        phone: row.get(base + 7)?,
        verified_email: row.get(base + 8)?,
        verified_phone: row.get(base + 9)?,
        status,
        picture: row.get(base + 11)?,
        test: row.get(base + 12)?,
        role_names: json_col(row, base + 13)?,
        tenants: json_col::<Vec<UserTenant>>(row, base + 14)?,
        custom_attributes: json_col::<Map<String, Value>>(row, base + 15)?,
        sso_app_ids: json_col(row, base + 16)?,
        oauth_providers: json_col(row, base + 17)?,
        created_ms: row.get(base + 18)?,
        modified_ms: row.get(base + 19)?,
    })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("encoding a column: {e}")))
}
