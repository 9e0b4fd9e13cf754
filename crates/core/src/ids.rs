//! Identifier newtypes with parse constructors, so that an unchecked string never reaches a query.

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::Error;
use crate::limits::{MAX_FIELD_LEN, MAX_PROVIDER_NAME_LEN, MAX_USER_ID_LEN};

fn random_alnum(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// A fresh outbound app id: a valid [`ProviderName`] (lowercase), URL-safe.
pub fn generate_app_id() -> String {
    format!("app-{}", random_alnum(20).to_ascii_lowercase())
}

/// A fresh outbound token id, URL-safe.
pub fn generate_token_id() -> String {
    format!("OT{}", random_alnum(26))
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A project id: `P` followed by 27 letters and digits, like Descope's.
    ProjectId
);
string_id!(
    /// A user id: `U` followed by 27 letters and digits, like Descope's.
    UserId
);
string_id!(
    /// A login id as the caller gave it (email, phone, username...). Non-empty, bounded, no
    /// control characters; compared exactly.
    LoginId
);
string_id!(
    /// An OAuth/OIDC provider name (`google`, `github`, or a custom name): lowercase letters,
    /// digits, `-` and `_`.
    ProviderName
);

impl ProjectId {
    pub fn generate() -> Self {
        ProjectId(format!("P{}", random_alnum(27)))
    }

    pub fn parse(s: &str) -> Result<Self, Error> {
        let ok = s.len() >= 2
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(ProjectId(s.to_owned()))
        } else {
            Err(Error::invalid("projectId", "must be 2 to 64 letters, digits, '-' or '_'"))
        }
    }
}

impl UserId {
    pub fn generate() -> Self {
        UserId(format!("U{}", random_alnum(27)))
    }

    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::MissingArgument("userId"));
        }
        if s.len() > MAX_USER_ID_LEN || s.chars().any(char::is_control) {
            return Err(Error::invalid(
                "userId",
                format!("must be at most {MAX_USER_ID_LEN} printable bytes"),
            ));
        }
        Ok(UserId(s.to_owned()))
    }

    /// The ids of a bulk load: invalid ones dropped (they cannot name a user), each id once, in
    /// the order given.
    pub fn parse_distinct(ids: &[String]) -> Vec<UserId> {
        let mut seen = std::collections::HashSet::new();
        ids.iter().filter(|id| seen.insert(id.as_str())).filter_map(|id| UserId::parse(id).ok()).collect()
    }
}

impl LoginId {
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.trim().is_empty() {
            return Err(Error::MissingArgument("loginId"));
        }
        if s.len() > MAX_FIELD_LEN || s.chars().any(char::is_control) {
            return Err(Error::invalid(
                "loginId",
                format!("must be at most {MAX_FIELD_LEN} bytes without control characters"),
            ));
        }
        Ok(LoginId(s.to_owned()))
    }
}

impl ProviderName {
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::MissingArgument("provider"));
        }
        let ok = s.len() <= MAX_PROVIDER_NAME_LEN
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(ProviderName(s.to_owned()))
        } else {
            Err(Error::invalid(
                "provider",
                format!("must be at most {MAX_PROVIDER_NAME_LEN} lowercase letters, digits, '-' or '_'"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_descope_shape() {
        let p = ProjectId::generate();
        assert_eq!(p.as_str().len(), 28);
        assert!(p.as_str().starts_with('P'));
        let u = UserId::generate();
        assert_eq!(u.as_str().len(), 28);
        assert!(u.as_str().starts_with('U'));
        assert_ne!(UserId::generate(), u);
    }

    #[test]
    fn a_bulk_load_drops_invalid_and_repeated_ids_and_keeps_the_order() {
        let ids: Vec<String> =
            ["U2", "", "U1", "U2", "a\u{1}b", "U3"].iter().map(|s| (*s).to_owned()).collect();
        let parsed: Vec<String> =
            UserId::parse_distinct(&ids).iter().map(|u| u.as_str().to_owned()).collect();
        assert_eq!(parsed, ["U2", "U1", "U3"]);
    }

    #[test]
    fn login_id_rejects_empty_and_control_chars() {
        assert!(LoginId::parse("").is_err());
        assert!(LoginId::parse("  ").is_err());
        assert!(LoginId::parse("a\u{0}b").is_err());
        assert!(LoginId::parse(&"x".repeat(MAX_FIELD_LEN + 1)).is_err());
        assert_eq!(
            LoginId::parse("dana@example.com").map(|l| l.into_string()).ok(),
            Some("dana@example.com".into())
        );
    }

    #[test]
    fn provider_names_are_normalised_lowercase_only() {
        assert!(ProviderName::parse("google").is_ok());
        assert!(ProviderName::parse("my-okta_2").is_ok());
        assert!(ProviderName::parse("Google").is_err());
        assert!(ProviderName::parse("a/b").is_err());
    }
}
