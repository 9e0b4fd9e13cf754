//! The user as idvault stores it, and the rules that turn a create request into one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::ids::{LoginId, UserId};
use crate::limits::{MAX_CUSTOM_ATTRIBUTES_BYTES, MAX_FIELD_LEN, MAX_LIST_ITEMS, MAX_LOGIN_IDS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Enabled,
    Disabled,
    Invited,
    Expired,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Enabled => "enabled",
            UserStatus::Disabled => "disabled",
            UserStatus::Invited => "invited",
            UserStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "enabled" => Ok(UserStatus::Enabled),
            "disabled" => Ok(UserStatus::Disabled),
            "invited" => Ok(UserStatus::Invited),
            "expired" => Ok(UserStatus::Expired),
            _ => Err(Error::invalid("status", "must be one of enabled, disabled, invited, expired")),
        }
    }
}

/// An address another user may already hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    Email(&'a str),
    Phone(&'a str),
}

impl Contact<'_> {
    pub(crate) fn value(&self) -> &str {
        match self {
            Contact::Email(v) | Contact::Phone(v) => v,
        }
    }
}

/// A user's membership in a tenant, with the roles it holds there. The tenant's name and the
/// permissions the roles grant are filled in when a user is loaded; they are not stored with
/// the user, so that renaming a tenant or changing a role shows at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserTenant {
    pub tenant_id: String,
    #[serde(default)]
    pub role_names: Vec<String>,
    #[serde(skip)]
    pub tenant_name: String,
    #[serde(skip)]
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub user_id: UserId,
    /// The primary login id first, then additional ones.
    pub login_ids: Vec<String>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub verified_email: bool,
    pub verified_phone: bool,
    /// Project-level roles.
    pub role_names: Vec<String>,
    pub tenants: Vec<UserTenant>,
    pub status: UserStatus,
    pub picture: Option<String>,
    pub test: bool,
    pub custom_attributes: Map<String, Value>,
    pub sso_app_ids: Vec<String>,
    /// Providers the user has tokens from (the `oauth` map of the wire user).
    pub oauth_providers: Vec<String>,
    pub created_ms: i64,
    pub modified_ms: i64,
}

/// How a request names a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    LoginId(LoginId),
    UserId(UserId),
}

impl UserRef {
    /// From the two optional query/body fields the SDKs send; exactly one must be present.
    pub fn from_parts(login_id: Option<&str>, user_id: Option<&str>) -> Result<Self> {
        match (login_id.filter(|s| !s.is_empty()), user_id.filter(|s| !s.is_empty())) {
            (Some(l), _) => Ok(UserRef::LoginId(LoginId::parse(l)?)),
            (None, Some(u)) => Ok(UserRef::UserId(UserId::parse(u)?)),
            (None, None) => Err(Error::MissingArgument("loginId")),
        }
    }
}

/// A create request after parsing, before the rules are applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewUser {
    pub login_id: String,
    pub additional_login_ids: Vec<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub family_name: Option<String>,
    pub verified_email: Option<bool>,
    pub verified_phone: Option<bool>,
    pub role_names: Vec<String>,
    pub tenants: Vec<UserTenant>,
    pub status: Option<UserStatus>,
    pub picture: Option<String>,
    pub test: bool,
    pub custom_attributes: Map<String, Value>,
    pub sso_app_ids: Vec<String>,
}

impl User {
    /// Checks the fields of a changed user: formats, lengths, list sizes. (Unknown roles,
    /// tenants and attributes are the store's check, against the directory.)
    pub fn validate(&self) -> Result<()> {
        for l in &self.login_ids {
            LoginId::parse(l)?;
        }
        if self.login_ids.is_empty() {
            return Err(Error::invalid("loginId", "a user keeps at least one login id"));
        }
        if self.login_ids.len() > MAX_LOGIN_IDS {
            return Err(Error::invalid("loginIds", format!("a user has at most {MAX_LOGIN_IDS} login ids")));
        }
        for f in [
            ("email", &self.email),
            ("phone", &self.phone),
            ("displayName", &self.name),
            ("givenName", &self.given_name),
            ("middleName", &self.middle_name),
            ("familyName", &self.family_name),
            ("picture", &self.picture),
        ] {
            check_len(f.0, f.1)?;
        }
        if self.email.as_deref().is_some_and(|e| !looks_like_email(e)) {
            return Err(Error::invalid("email", "is not a valid email address"));
        }
        if self.phone.as_deref().is_some_and(|p| !looks_like_phone(p)) {
            return Err(Error::invalid("phone", "must be in E.164 format, e.g. +14155550123"));
        }
        check_list("roleNames", &self.role_names)?;
        check_list("ssoAppIds", &self.sso_app_ids)?;
        if self.tenants.len() > MAX_LIST_ITEMS {
            return Err(Error::invalid("userTenants", format!("at most {MAX_LIST_ITEMS} entries")));
        }
        for t in &self.tenants {
            check_list("userTenants.roleNames", &t.role_names)?;
        }
        check_json_text("customAttributes", &self.custom_attributes)?;
        let attrs_len = serde_json::to_vec(&self.custom_attributes).map(|v| v.len()).unwrap_or(usize::MAX);
        if attrs_len > MAX_CUSTOM_ATTRIBUTES_BYTES {
            return Err(Error::invalid(
                "customAttributes",
                format!("must serialize to at most {MAX_CUSTOM_ATTRIBUTES_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    /// The user's membership in a tenant, added if missing.
    pub fn tenant_mut(&mut self, tenant_id: &str) -> &mut UserTenant {
        if let Some(i) = self.tenants.iter().position(|t| t.tenant_id == tenant_id) {
            return &mut self.tenants[i];
        }
        self.tenants.push(UserTenant { tenant_id: tenant_id.to_owned(), ..Default::default() });
        let last = self.tenants.len() - 1;
        &mut self.tenants[last]
    }
}

/// Adds values not yet in `list`, keeping order.
pub fn add_all(list: &mut Vec<String>, values: &[String]) {
    for v in values {
        if !list.contains(v) {
            list.push(v.clone());
        }
    }
}

/// Refuses NUL characters anywhere in a JSON object (keys or string values): PostgreSQL cannot
/// store them, so they would fail on one backend only.
pub fn check_json_text(field: &'static str, object: &Map<String, Value>) -> Result<()> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    if object.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) {
        return Err(Error::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// A light email shape check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

/// E.164: `+` then 6 to 15 digits.
pub fn looks_like_phone(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn check_len(field: &'static str, value: &Option<String>) -> Result<()> {
    match value {
        Some(v) if v.len() > MAX_FIELD_LEN => {
            Err(Error::invalid(field, format!("must be at most {MAX_FIELD_LEN} bytes")))
        }
        Some(v) if v.chars().any(char::is_control) => {
            Err(Error::invalid(field, "must not contain control characters"))
        }
        _ => Ok(()),
    }
}

fn check_list(field: &'static str, values: &[String]) -> Result<()> {
    if values.len() > MAX_LIST_ITEMS {
        return Err(Error::invalid(field, format!("at most {MAX_LIST_ITEMS} entries")));
    }
    for v in values {
        if v.is_empty() || v.len() > MAX_FIELD_LEN || v.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                format!("entries must be 1 to {MAX_FIELD_LEN} printable bytes"),
            ));
        }
    }
    Ok(())
}

fn dedup_keep_order(values: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

impl NewUser {
    /// Validates the request and applies Descope's creation rules:
    /// - an email-shaped login id with no email makes that login id the email, verified (the
    ///   user proved nothing yet, but Descope treats the login id as the verified address);
    ///   likewise a phone-shaped login id and the phone;
    /// - a user with an email or phone and no explicit verified flag starts `invited`;
    ///   otherwise `enabled`, unless a status is given.
    pub fn into_user(self, user_id: UserId, now_ms: i64) -> Result<User> {
        let login_id = LoginId::parse(&self.login_id)?.into_string();
        for f in [
            ("email", &self.email),
            ("phone", &self.phone),
            ("displayName", &self.name),
            ("givenName", &self.given_name),
            ("middleName", &self.middle_name),
            ("familyName", &self.family_name),
            ("picture", &self.picture),
        ] {
            check_len(f.0, f.1)?;
        }
        check_list("roleNames", &self.role_names)?;
        check_list("ssoAppIds", &self.sso_app_ids)?;
        check_list("additionalLoginIds", &self.additional_login_ids)?;
        if self.tenants.len() > MAX_LIST_ITEMS {
            return Err(Error::invalid("userTenants", format!("at most {MAX_LIST_ITEMS} entries")));
        }
        for t in &self.tenants {
            if t.tenant_id.is_empty() {
                return Err(Error::MissingArgument("userTenants.tenantId"));
            }
            check_list("userTenants.roleNames", &t.role_names)?;
        }
        check_json_text("customAttributes", &self.custom_attributes)?;
        let attrs_len = serde_json::to_vec(&self.custom_attributes).map(|v| v.len()).unwrap_or(usize::MAX);
        if attrs_len > MAX_CUSTOM_ATTRIBUTES_BYTES {
            return Err(Error::invalid(
                "customAttributes",
                format!("must serialize to at most {MAX_CUSTOM_ATTRIBUTES_BYTES} bytes"),
            ));
        }

        let email = self.email.filter(|e| !e.is_empty());
        let phone = self.phone.filter(|p| !p.is_empty());
        if let Some(e) = &email {
            if !looks_like_email(e) {
                return Err(Error::invalid("email", "is not a valid email address"));
            }
        }
        if let Some(p) = &phone {
            if !looks_like_phone(p) {
                return Err(Error::invalid("phone", "must be in E.164 format, e.g. +14155550123"));
            }
        }

        let (email, verified_email) = match email {
            Some(e) => (Some(e), self.verified_email.unwrap_or(false)),
            None if looks_like_email(&login_id) => {
                (Some(login_id.clone()), self.verified_email.unwrap_or(true))
            }
            None => (None, self.verified_email.unwrap_or(false)),
        };
        let (phone, verified_phone) = match phone {
            Some(p) => (Some(p), self.verified_phone.unwrap_or(false)),
            None if looks_like_phone(&login_id) => {
                (Some(login_id.clone()), self.verified_phone.unwrap_or(true))
            }
            None => (None, self.verified_phone.unwrap_or(false)),
        };
        let has_contact = email.is_some() || phone.is_some();
        let any_flag_given = self.verified_email.is_some() || self.verified_phone.is_some();
        let status = self.status.unwrap_or(if has_contact && !any_flag_given {
            UserStatus::Invited
        } else {
            UserStatus::Enabled
        });

        let mut login_ids = vec![login_id];
        login_ids.extend(self.additional_login_ids);
        let login_ids = dedup_keep_order(login_ids);
        if login_ids.len() > MAX_LOGIN_IDS {
            return Err(Error::invalid(
                "additionalLoginIds",
                format!("a user has at most {MAX_LOGIN_IDS} login ids"),
            ));
        }

        Ok(User {
            user_id,
            login_ids,
            name: self.name.filter(|s| !s.is_empty()),
            given_name: self.given_name.filter(|s| !s.is_empty()),
            middle_name: self.middle_name.filter(|s| !s.is_empty()),
            family_name: self.family_name.filter(|s| !s.is_empty()),
            email,
            phone,
            verified_email,
            verified_phone,
            role_names: dedup_keep_order(self.role_names),
            tenants: self.tenants,
            status,
            picture: self.picture.filter(|s| !s.is_empty()),
            test: self.test,
            custom_attributes: self.custom_attributes,
            sso_app_ids: dedup_keep_order(self.sso_app_ids),
            oauth_providers: Vec::new(),
            created_ms: now_ms,
            modified_ms: now_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(login: &str) -> NewUser {
        NewUser { login_id: login.into(), ..Default::default() }
    }

    #[test]
    fn email_login_id_becomes_verified_email_and_user_is_invited() {
        let u = new("dana@example.com").into_user(UserId::generate(), 1).unwrap();
        assert_eq!(u.email.as_deref(), Some("dana@example.com"));
        assert!(u.verified_email);
        assert_eq!(u.status, UserStatus::Invited);
    }

    #[test]
    fn explicit_email_without_flag_is_unverified_and_invited() {
        let mut n = new("dana");
        n.email = Some("d@example.com".into());
        let u = n.into_user(UserId::generate(), 1).unwrap();
        assert!(!u.verified_email);
        assert_eq!(u.status, UserStatus::Invited);
    }

    #[test]
    fn verified_flag_or_no_contact_means_enabled() {
        let mut n = new("dana");
        n.email = Some("d@example.com".into());
        n.verified_email = Some(true);
        assert_eq!(n.into_user(UserId::generate(), 1).unwrap().status, UserStatus::Enabled);
        assert_eq!(new("plain-name").into_user(UserId::generate(), 1).unwrap().status, UserStatus::Enabled);
    }

    #[test]
    fn phone_login_id_becomes_phone() {
        let u = new("+14155550123").into_user(UserId::generate(), 1).unwrap();
        assert_eq!(u.phone.as_deref(), Some("+14155550123"));
        assert!(u.verified_phone);
    }

    #[test]
    fn bad_email_and_phone_are_rejected() {
        let mut n = new("x");
        n.email = Some("not-an-email".into());
        assert!(matches!(n.into_user(UserId::generate(), 1), Err(Error::Invalid { field: "email", .. })));
        let mut n = new("x");
        n.phone = Some("12345".into());
        assert!(matches!(n.into_user(UserId::generate(), 1), Err(Error::Invalid { field: "phone", .. })));
    }

    #[test]
    fn nul_characters_in_custom_attributes_are_refused_at_any_depth() {
        let mut ok = Map::new();
        ok.insert("plan".into(), serde_json::json!({"tags": ["a", "b"]}));
        assert!(check_json_text("customAttributes", &ok).is_ok());
        for bad in [
            serde_json::json!("a\u{0}b"),
            serde_json::json!(["x", "\u{0}"]),
            serde_json::json!({"k\u{0}": 1}),
        ] {
            let mut m = Map::new();
            m.insert("plan".into(), bad);
            assert!(matches!(check_json_text("customAttributes", &m), Err(Error::Invalid { .. })));
        }
        let mut n = new("nul");
        n.custom_attributes.insert("plan".into(), serde_json::json!("a\u{0}"));
        assert!(n.into_user(UserId::generate(), 1).is_err());
    }

    #[test]
    fn additional_login_ids_are_deduplicated_after_the_primary() {
        let mut n = new("a");
        n.additional_login_ids = vec!["b".into(), "a".into(), "b".into()];
        assert_eq!(n.into_user(UserId::generate(), 1).unwrap().login_ids, vec!["a", "b"]);
    }
}
