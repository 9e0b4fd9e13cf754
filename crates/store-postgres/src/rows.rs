//! Mapping between rows and domain values; small query helpers.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio_postgres::types::{FromSql, Json, ToSql};
use tokio_postgres::Row;

use idvault_core::error::{Error, Result};
use idvault_core::ids::UserId;
use idvault_core::user::{User, UserStatus, UserTenant};

use crate::pg_err;

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

/// One column, typed.
pub(crate) fn col<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T> {
    row.try_get(idx).map_err(pg_err)
}

/// One JSON(B) column, decoded.
pub(crate) fn json_col<T: DeserializeOwned>(row: &Row, idx: usize) -> Result<T> {
    let Json(value) = row.try_get::<_, Json<T>>(idx).map_err(pg_err)?;
    Ok(value)
}

/// Reads the user columns starting at column `base` (for queries that select something first).
pub(crate) fn user_from_row(row: &Row, base: usize) -> Result<User> {
    let status: String = col(row, base + 10)?;
    let user_id: String = col(row, base)?;
    Ok(User {
        user_id: UserId::parse(&user_id)
            .map_err(|e| Error::Storage(format!("stored user id is invalid: {e}")))?,
        login_ids: json_col(row, base + 1)?,
        name: col(row, base + 2)?,
        given_name: col(row, base + 3)?,
        middle_name: col(row, base + 4)?,
        family_name: col(row, base + 5)?,
        email: col(row, base + 6)?,
        phone: col(row, base + 7)?,
        verified_email: col(row, base + 8)?,
        verified_phone: col(row, base + 9)?,
        status: UserStatus::parse(&status)
            .map_err(|e| Error::Storage(format!("stored user status is invalid: {e}")))?,
        picture: col(row, base + 11)?,
        test: col(row, base + 12)?,
        role_names: json_col(row, base + 13)?,
        tenants: json_col::<Vec<UserTenant>>(row, base + 14)?,
        custom_attributes: json_col::<Map<String, Value>>(row, base + 15)?,
        sso_app_ids: json_col(row, base + 16)?,
        oauth_providers: json_col(row, base + 17)?,
        created_ms: col(row, base + 18)?,
        modified_ms: col(row, base + 19)?,
    })
}

/// Parameters of a query built at run time, numbered `$1`, `$2`... in the order pushed.
#[derive(Default)]
pub(crate) struct Params {
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Params {
    /// Adds a value and answers its placeholder.
    pub(crate) fn push(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    pub(crate) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)).collect()
    }
}

/// A data-key version (u32 in the domain, BIGINT in the table).
pub(crate) fn to_u32(value: i64, what: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Storage(format!("stored {what} is out of range")))
}
