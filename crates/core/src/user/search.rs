//! The user search query, validated. Semantics (documented in docs/api.md):
//! each list filter matches a user having ANY of its values; different filters combine with AND.

use serde_json::{Map, Value};

use crate::directory::check_attribute_name;
use crate::error::{Error, Result};
use crate::limits::{
    MAX_FIELD_LEN, MAX_FILTER_VALUES, MAX_SEARCH_FILTERS, MAX_SEARCH_TEXT_LEN, MAX_SEARCH_VALUES_TOTAL,
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

    /// The bounds of a search, checked before any store sees it: at most [`MAX_FILTER_VALUES`]
    /// values in each filter list (a custom attribute's values and a tenant's roles included), at
    /// most [`MAX_SEARCH_FILTERS`] custom attributes and tenants, at most
    /// [`MAX_SEARCH_VALUES_TOTAL`] values in all, and attribute names by the definitions' rule.
    pub fn validate(&self) -> Result<()> {
        let lists = [
            ("loginIds", self.login_ids.len()),
            ("userIds", self.user_ids.len()),
            ("emails", self.emails.len()),
            ("phones", self.phones.len()),
            ("tenantIds", self.tenant_ids.len()),
            ("roleNames", self.role_names.len()),
            ("statuses", self.statuses.len()),
            ("ssoAppIds", self.sso_app_ids.len()),
        ];
        let attribute_values = self.custom_attributes.values().map(|v| match v {
            Value::Array(items) => items.len(),
            _ => 1,
        });
        let tenant_roles = self.tenant_roles.iter().map(|t| t.roles.len());
        let mut total = 0usize;
        for (field, len) in lists
            .into_iter()
            .chain(attribute_values.map(|n| ("customAttributes", n)))
            .chain(tenant_roles.map(|n| ("tenantRoleNames", n)))
        {
            check_filter_len(field, len)?;
            total = total.saturating_add(len);
        }
        if total > MAX_SEARCH_VALUES_TOTAL {
            return Err(Error::invalid(
                "search",
                format!("at most {MAX_SEARCH_VALUES_TOTAL} filter values in one search"),
            ));
        }
        if self.custom_attributes.len() > MAX_SEARCH_FILTERS {
            return Err(Error::invalid(
                "customAttributes",
                format!("at most {MAX_SEARCH_FILTERS} attributes in one search"),
            ));
        }
        if self.tenant_roles.len() > MAX_SEARCH_FILTERS {
            return Err(Error::invalid("tenantRoleNames", format!("at most {MAX_SEARCH_FILTERS} tenants")));
        }
        if self.sort.len() > MAX_SORT_FIELDS {
            return Err(Error::invalid("sort", format!("at most {MAX_SORT_FIELDS} sort fields")));
        }
        for name in self.custom_attributes.keys() {
            check_attribute_name("customAttributes", name)?;
        }
        if self.text.as_ref().is_some_and(|t| t.len() > MAX_SEARCH_TEXT_LEN) {
            return Err(Error::invalid("text", format!("at most {MAX_SEARCH_TEXT_LEN} bytes")));
        }
        // Values no stored text can be as long as match nothing: refused like the text itself.
        let texts = [
            ("loginIds", &self.login_ids),
            ("userIds", &self.user_ids),
            ("emails", &self.emails),
            ("phones", &self.phones),
            ("tenantIds", &self.tenant_ids),
            ("roleNames", &self.role_names),
            ("ssoAppIds", &self.sso_app_ids),
        ];
        for (field, values) in texts {
            check_filter_texts(field, values.iter().map(String::as_str))?;
        }
        for t in &self.tenant_roles {
            check_filter_texts("tenantRoleNames", std::iter::once(t.tenant_id.as_str()))?;
            check_filter_texts("tenantRoleNames", t.roles.iter().map(String::as_str))?;
        }
        for value in self.custom_attributes.values() {
            let strings: Vec<&str> = match value {
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                other => other.as_str().into_iter().collect(),
            };
            check_filter_texts("customAttributes", strings.into_iter())?;
        }
        Ok(())
    }

    /// Offset of the first row of the requested page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page) * u64::from(self.limit)
    }
}

/// Refuses a filter value longer than any stored text can be.
fn check_filter_texts<'a>(field: &'static str, mut values: impl Iterator<Item = &'a str>) -> Result<()> {
    if values.any(|v| v.len() > MAX_FIELD_LEN) {
        return Err(Error::invalid(field, format!("values of at most {MAX_FIELD_LEN} bytes")));
    }
    Ok(())
}

/// Refuses a filter list longer than [`MAX_FILTER_VALUES`] (also used before role ids are
/// resolved to names).
pub fn check_filter_len(field: &'static str, len: usize) -> Result<()> {
    if len > MAX_FILTER_VALUES {
        return Err(Error::invalid(field, format!("at most {MAX_FILTER_VALUES} values in one filter")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_bounds_and_attribute_names_are_enforced() {
        let mut q = UserQuery::default();
        q.custom_attributes.insert("seats".into(), Value::Array(vec![Value::from(1); MAX_FILTER_VALUES]));
        assert!(q.validate().is_ok());
        q.custom_attributes.insert("seats".into(), Value::Array(vec![Value::from(1); MAX_FILTER_VALUES + 1]));
        assert!(matches!(q.validate(), Err(Error::Invalid { .. })));
        for bad in ["a\\b", "a\"b", "", " a", "a\u{1}"] {
            let mut q = UserQuery::default();
            q.custom_attributes.insert(bad.into(), Value::from(1));
            assert!(q.validate().is_err(), "{bad:?}");
        }
        let mut q = UserQuery::default();
        for i in 0..11 {
            q.custom_attributes
                .insert(format!("a{i}"), Value::Array(vec![Value::from(1); MAX_FILTER_VALUES]));
        }
        assert!(q.validate().is_err(), "more than the total");
        let q =
            UserQuery { statuses: vec![UserStatus::Enabled; MAX_FILTER_VALUES + 1], ..Default::default() };
        assert!(q.validate().is_err());
    }

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
