//! The user search query, validated. Semantics (documented in docs/api.md):
//! each list filter matches a user having ANY of its values; different filters combine with AND.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::limits::{
    MAX_FILTER_VALUES, MAX_SEARCH_ATTRIBUTES, MAX_SEARCH_ATTRIBUTE_NAME_LEN, MAX_SEARCH_TEXT_LEN,
    MAX_SORT_FIELDS, SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT,
};
use crate::user::model::UserStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TestUserFilter {
    /// Regular users only (the default).
    #[default]
    Exclude,
    /// Regular and test users.
    Include,
    /// Test users only.
    Only,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserQuery {
    pub login_ids: Vec<String>,
    pub user_ids: Vec<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub tenant_ids: Vec<String>,
    /// Matches a role held at project level or in any tenant.
    pub role_names: Vec<String>,
    pub statuses: Vec<UserStatus>,
    /// Case-insensitive substring over login ids, names, email and phone.
    pub text: Option<String>,
    pub test: TestUserFilter,
    /// Attribute → value (or list of values, any of which matches).
    pub custom_attributes: Map<String, Value>,
    pub sso_app_ids: Vec<String>,
    pub sort: Vec<SortBy>,
    /// Unix milliseconds, inclusive.
    pub from_created_ms: Option<i64>,
    pub to_created_ms: Option<i64>,
    pub from_modified_ms: Option<i64>,
    pub to_modified_ms: Option<i64>,
    /// Roles held in given tenants (role ids already resolved to names).
    pub tenant_roles: Vec<TenantRoleFilter>,
    pub verified_email: Option<bool>,
    pub verified_phone: Option<bool>,
    pub limit: u32,
    pub page: u32,
}

/// A sortable user field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Name,
    GivenName,
    FamilyName,
    Email,
    Phone,
    Status,
    UserId,
    LoginId,
    CreatedTime,
    ModifiedTime,
}

impl SortField {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "name" | "displayName" => SortField::Name,
            "givenName" => SortField::GivenName,
            "familyName" => SortField::FamilyName,
            "email" => SortField::Email,
            "phone" => SortField::Phone,
            "status" => SortField::Status,
            "userId" => SortField::UserId,
            "loginId" | "loginIds" => SortField::LoginId,
            "createdTime" => SortField::CreatedTime,
            "modifiedTime" => SortField::ModifiedTime,
            other => return Err(Error::invalid("sort", format!("cannot sort by '{other}'"))),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortBy {
    pub field: SortField,
    pub desc: bool,
}

/// `tenantRoleNames`/`tenantRoleIds`: users holding any (or, with `all`, every) of `roles` in
/// `tenant_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRoleFilter {
    pub tenant_id: String,
    pub roles: Vec<String>,
    pub all: bool,
}

/// Raw paging and flags as the SDKs send them, before validation.
#[derive(Debug, Clone, Default)]
pub struct RawPaging {
    pub limit: Option<i64>,
    pub page: Option<i64>,
    pub test_users_only: bool,
    pub with_test_user: bool,
}

impl UserQuery {
    /// Applies defaults and limits: `limit` absent or 0 means the default page size; a limit
    /// over the maximum and a negative page are refused, not clamped.
    pub fn paging(mut self, raw: RawPaging) -> Result<Self> {
        let limit = raw.limit.unwrap_or(0);
        if limit < 0 {
            return Err(Error::invalid("limit", "must not be negative"));
        }
        if limit > i64::from(SEARCH_MAX_LIMIT) {
            return Err(Error::invalid("limit", format!("must be at most {SEARCH_MAX_LIMIT}")));
        }
        let page = raw.page.unwrap_or(0);
        if page < 0 {
            return Err(Error::invalid("page", "must not be negative"));
        }
        self.limit = if limit == 0 { SEARCH_DEFAULT_LIMIT } else { limit as u32 };
        self.page = u32::try_from(page).map_err(|_| Error::invalid("page", "is too large"))?;
        self.test = if raw.test_users_only {
            TestUserFilter::Only
        } else if raw.with_test_user {
            TestUserFilter::Include
        } else {
            TestUserFilter::Exclude
        };
        Ok(self)
    }

    pub fn validate(&self) -> Result<()> {
        for (field, list) in [
            ("loginIds", &self.login_ids),
            ("userIds", &self.user_ids),
            ("emails", &self.emails),
            ("phones", &self.phones),
            ("tenantIds", &self.tenant_ids),
            ("roleNames", &self.role_names),
        ] {
            if list.len() > MAX_FILTER_VALUES {
                return Err(Error::invalid(field, format!("at most {MAX_FILTER_VALUES} values")));
            }
        }
        if self.sso_app_ids.len() > MAX_FILTER_VALUES
            || self.custom_attributes.len() > MAX_SEARCH_ATTRIBUTES
            || self.sort.len() > MAX_SORT_FIELDS
        {
            return Err(Error::invalid("search", "too many filter values"));
        }
        if self
            .custom_attributes
            .keys()
            .any(|k| k.is_empty() || k.contains('"') || k.len() > MAX_SEARCH_ATTRIBUTE_NAME_LEN)
        {
            return Err(Error::invalid(
                "customAttributes",
                format!("attribute names must be 1 to {MAX_SEARCH_ATTRIBUTE_NAME_LEN} bytes without quotes"),
            ));
        }
        if self.text.as_ref().is_some_and(|t| t.len() > MAX_SEARCH_TEXT_LEN) {
            return Err(Error::invalid("text", format!("at most {MAX_SEARCH_TEXT_LEN} bytes")));
        }
        Ok(())
    }

    /// Offset of the first row of the requested page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page) * u64::from(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limit_means_default_and_bounds_are_enforced() {
        let q = UserQuery::default().paging(RawPaging { limit: Some(0), ..Default::default() }).unwrap();
        assert_eq!(q.limit, SEARCH_DEFAULT_LIMIT);
        assert!(UserQuery::default().paging(RawPaging { limit: Some(-1), ..Default::default() }).is_err());
        assert!(UserQuery::default().paging(RawPaging { page: Some(-1), ..Default::default() }).is_err());
        let over = i64::from(SEARCH_MAX_LIMIT) + 1;
        assert!(UserQuery::default().paging(RawPaging { limit: Some(over), ..Default::default() }).is_err());
        let q = UserQuery::default()
            .paging(RawPaging { limit: Some(10), page: Some(3), ..Default::default() })
            .unwrap();
        assert_eq!(q.offset(), 30);
    }

    #[test]
    fn test_user_flags() {
        let only = RawPaging { test_users_only: true, with_test_user: true, ..Default::default() };
        assert_eq!(UserQuery::default().paging(only).unwrap().test, TestUserFilter::Only);
        let incl = RawPaging { with_test_user: true, ..Default::default() };
        assert_eq!(UserQuery::default().paging(incl).unwrap().test, TestUserFilter::Include);
    }
}
