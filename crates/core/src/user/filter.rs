//! A user search lowered into a small filter model: every Descope search rule (which values
//! match, how case and JSON types compare, how results are ordered and paged) is decided here,
//! once, so that a store only renders each predicate kind into its SQL dialect.
//!
//! [`UserQuery::filter`] produces it from a validated query. A store scopes the filter to the
//! project, renders [`UserFilter::predicates`] as a conjunction, orders by
//! [`UserFilter::order`] and then by creation order ([`UserFilter::ties_descending`]), and reads
//! one page ([`UserFilter::limit`], [`UserFilter::offset`]).

use std::collections::HashSet;

use serde_json::Value;

use crate::user::search::{SortField, TestUserFilter, UserQuery};

/// The conditions of a search whose total a store may answer from per-(test flag, status) user
/// counts rather than by counting rows: the project, then at most the test flag and a list of
/// statuses. See [`UserFilter::total_by_test_and_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedByTestAndStatus<'a> {
    /// `None`: test and regular users alike.
    pub test: Option<bool>,
    /// `None`: every status.
    pub statuses: Option<&'a [String]>,
}

/// A validated search, lowered.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFilter {
    /// All of them must hold. Every list in a predicate is non-empty: a filter that can match
    /// no user is lowered to [`Predicate::Nothing`].
    pub predicates: Vec<Predicate>,
    /// Sort keys, most significant first.
    pub order: Vec<SortKey>,
    /// Ties (and a search without sort keys) fall back to creation order, in the direction of
    /// the first sort key, so that pages are stable.
    pub ties_descending: bool,
    pub limit: i64,
    pub offset: i64,
}

/// One condition on a user.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// The user's `test` flag is this value.
    TestUser(bool),
    /// One of the user's login ids is one of these (exactly).
    LoginIdIn(Vec<String>),
    /// The column's value is one of these.
    AnyOf { column: MatchColumn, values: Vec<String> },
    /// The user is a member of one of these tenants.
    InTenant(Vec<String>),
    /// The user holds roles: project-level or in any tenant when `tenant` is `None`, otherwise
    /// in that tenant.
    HasRole { tenant: Option<String>, roles: RoleMatch },
    /// Case-insensitive substring of the user's login ids, name, given, middle and family
    /// names, email or phone. Never empty.
    TextContains(String),
    /// The custom attribute equals one of these JSON values (equivalences already expanded by
    /// [`attribute_candidates`]). A JSON null is never among them.
    Attribute { name: String, values: Vec<Value> },
    /// The user has one of these SSO applications.
    SsoAppIn(Vec<String>),
    /// The time column lies within the bounds (Unix milliseconds, inclusive); at least one is
    /// set.
    Between { column: TimeColumn, from_ms: Option<i64>, to_ms: Option<i64> },
    /// The flag column is this value.
    Flag { column: FlagColumn, value: bool },
    /// Matches no user (for example an attribute filter whose only value is null, or every
    /// role of an empty list).
    Nothing,
}

/// Columns a list filter compares for equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchColumn {
    UserId,
    /// Compared ASCII-case-insensitively (SQLite's NOCASE): the values are already folded with
    /// [`fold_case`], and a store compares them with the column folded the same way.
    Email,
    Phone,
    /// The values are [`UserStatus::as_str`](crate::user::UserStatus::as_str) strings.
    Status,
}

/// Which roles, among those held in the predicate's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleMatch {
    /// Any role at all (a tenant filter with an empty list: any member holding a role there).
    Any,
    /// At least one of these.
    AnyOf(Vec<String>),
    /// Every one of these; distinct, so a store may compare the number of distinct roles held
    /// among them with the length of the list.
    AllOf(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeColumn {
    Created,
    Modified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagColumn {
    VerifiedEmail,
    VerifiedPhone,
}

/// One sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub field: SortField,
    pub collation: Collation,
    pub desc: bool,
    /// NULLs (an absent name, email...) sort before every value; always `!desc`: first
    /// ascending, last descending (SQLite's natural order, spelled out for other stores).
    pub nulls_first: bool,
}

/// How a sort key compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collation {
    /// Text, ASCII letters folded (SQLite's NOCASE).
    CaseFolded,
    /// Text, byte by byte (SQLite's BINARY, PostgreSQL's "C").
    Bytewise,
    /// Numbers.
    Numeric,
}

impl SortField {
    /// Names and login ids sort as people read them; so do emails, which also compare
    /// case-insensitively in filters. Identifiers, phones and statuses sort bytewise.
    pub fn collation(self) -> Collation {
        match self {
            SortField::Name
            | SortField::GivenName
            | SortField::FamilyName
            | SortField::Email
            | SortField::LoginId => Collation::CaseFolded,
            SortField::Phone | SortField::Status | SortField::UserId => Collation::Bytewise,
            SortField::CreatedTime | SortField::ModifiedTime => Collation::Numeric,
        }
    }
}

/// Folds a value compared case-insensitively: ASCII letters only, as SQLite's NOCASE does (so
/// that both stores answer the same for non-ASCII text).
pub fn fold_case(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// The JSON values a custom-attribute filter value matches. Attributes compare as SQLite's
/// `json_extract` results do: `true`/`false` equal the numbers 1/0 (either way round), and a
/// JSON null equals nothing. A list matches any of its items.
pub fn attribute_candidates(value: &Value) -> Vec<Value> {
    let one = |v: &Value| -> Vec<Value> {
        match v {
            Value::Null => vec![],
            Value::Bool(b) => vec![Value::Bool(*b), Value::from(i64::from(*b))],
            Value::Number(n) if n.as_f64() == Some(0.0) => vec![v.clone(), Value::Bool(false)],
            Value::Number(n) if n.as_f64() == Some(1.0) => vec![v.clone(), Value::Bool(true)],
            other => vec![other.clone()],
        }
    };
    match value {
        Value::Array(items) => items.iter().flat_map(one).collect(),
        other => one(other),
    }
}

/// The list without repeats, in first-seen order.
fn distinct(values: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    values.iter().filter(|v| seen.insert(v.as_str())).cloned().collect()
}

impl UserFilter {
    /// Whether the total is a sum of per-(test flag, status) counts: true when the filter has no
    /// condition but the test flag and statuses (the empty filter, a status filter). A store
    /// that keeps such counts exactly answers these totals without counting rows.
    pub fn total_by_test_and_status(&self) -> Option<CountedByTestAndStatus<'_>> {
        let mut counted = CountedByTestAndStatus { test: None, statuses: None };
        for p in &self.predicates {
            match p {
                Predicate::TestUser(test) if counted.test.is_none() => counted.test = Some(*test),
                Predicate::AnyOf { column: MatchColumn::Status, values } if counted.statuses.is_none() => {
                    counted.statuses = Some(values)
                }
                _ => return None,
            }
        }
        Some(counted)
    }
}

impl UserQuery {
    /// Lowers the query (validated with [`UserQuery::validate`]) into the filter a store
    /// renders. Predicates come in a fixed order, so each store's SQL is stable for a given
    /// query shape.
    pub fn filter(&self) -> UserFilter {
        let mut predicates = Vec::new();
        match self.test {
            TestUserFilter::Exclude => predicates.push(Predicate::TestUser(false)),
            TestUserFilter::Only => predicates.push(Predicate::TestUser(true)),
            TestUserFilter::Include => {}
        }
        if !self.login_ids.is_empty() {
            predicates.push(Predicate::LoginIdIn(self.login_ids.clone()));
        }
        let statuses: Vec<String> = self.statuses.iter().map(|s| s.as_str().to_owned()).collect();
        let emails: Vec<String> = self.emails.iter().map(|e| fold_case(e)).collect();
        for (column, values) in [
            (MatchColumn::UserId, self.user_ids.clone()),
            (MatchColumn::Email, emails),
            (MatchColumn::Phone, self.phones.clone()),
            (MatchColumn::Status, statuses),
        ] {
            if !values.is_empty() {
                predicates.push(Predicate::AnyOf { column, values });
            }
        }
        if !self.tenant_ids.is_empty() {
            predicates.push(Predicate::InTenant(self.tenant_ids.clone()));
        }
        if !self.role_names.is_empty() {
            predicates
                .push(Predicate::HasRole { tenant: None, roles: RoleMatch::AnyOf(self.role_names.clone()) });
        }
        if let Some(text) = self.text.as_deref().filter(|t| !t.is_empty()) {
            predicates.push(Predicate::TextContains(text.to_owned()));
        }
        for (name, value) in &self.custom_attributes {
            let values = attribute_candidates(value);
            predicates.push(if values.is_empty() {
                Predicate::Nothing
            } else {
                Predicate::Attribute { name: name.clone(), values }
            });
        }
        if !self.sso_app_ids.is_empty() {
            predicates.push(Predicate::SsoAppIn(self.sso_app_ids.clone()));
        }
        for (column, from_ms, to_ms) in [
            (TimeColumn::Created, self.from_created_ms, self.to_created_ms),
            (TimeColumn::Modified, self.from_modified_ms, self.to_modified_ms),
        ] {
            if from_ms.is_some() || to_ms.is_some() {
                predicates.push(Predicate::Between { column, from_ms, to_ms });
            }
        }
        for (column, wanted) in [
            (FlagColumn::VerifiedEmail, self.verified_email),
            (FlagColumn::VerifiedPhone, self.verified_phone),
        ] {
            if let Some(value) = wanted {
                predicates.push(Predicate::Flag { column, value });
            }
        }
        for f in &self.tenant_roles {
            let roles = distinct(&f.roles);
            let roles = match (roles.is_empty(), f.all) {
                // `and` over no roles: the stores have always matched no user here (a count of
                // zero distinct roles never holds), and that answer is kept.
                (true, true) => {
                    predicates.push(Predicate::Nothing);
                    continue;
                }
                (true, false) => RoleMatch::Any,
                (false, true) => RoleMatch::AllOf(roles),
                (false, false) => RoleMatch::AnyOf(roles),
            };
            predicates.push(Predicate::HasRole { tenant: Some(f.tenant_id.clone()), roles });
        }
        let order = self
            .sort
            .iter()
            .map(|s| SortKey {
                field: s.field,
                collation: s.field.collation(),
                desc: s.desc,
                nulls_first: !s.desc,
            })
            .collect();
        UserFilter {
            predicates,
            order,
            ties_descending: self.sort.first().is_some_and(|s| s.desc),
            limit: i64::from(self.limit),
            offset: i64::try_from(self.offset()).unwrap_or(i64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::user::search::{SortBy, TenantRoleFilter};
    use crate::user::UserStatus;

    fn predicates(q: UserQuery) -> Vec<Predicate> {
        q.filter().predicates
    }

    #[test]
    fn only_test_flag_and_status_filters_are_totalled_from_counts() {
        let counted = |q: UserQuery| {
            q.filter().total_by_test_and_status().map(|c| (c.test, c.statuses.map(<[String]>::to_vec)))
        };
        assert_eq!(counted(UserQuery::default()), Some((Some(false), None)));
        let all = UserQuery { test: TestUserFilter::Include, ..Default::default() };
        assert_eq!(counted(all), Some((None, None)));
        let disabled = UserQuery { statuses: vec![UserStatus::Disabled], ..Default::default() };
        assert_eq!(counted(disabled), Some((Some(false), Some(vec!["disabled".to_owned()]))));
        let text = UserQuery { text: Some("ann".into()), ..Default::default() };
        assert_eq!(counted(text), None);
        let email = UserQuery { emails: vec!["a@x.io".into()], ..Default::default() };
        assert_eq!(counted(email), None);
    }

    #[test]
    fn regular_users_only_by_default_and_test_flags_lower_to_one_predicate() {
        assert_eq!(predicates(UserQuery::default()), vec![Predicate::TestUser(false)]);
        let only = UserQuery { test: TestUserFilter::Only, ..Default::default() };
        assert_eq!(predicates(only), vec![Predicate::TestUser(true)]);
        let all = UserQuery { test: TestUserFilter::Include, ..Default::default() };
        assert!(predicates(all).is_empty());
    }

    #[test]
    fn emails_fold_ascii_case_only_and_statuses_are_their_stored_strings() {
        let q = UserQuery {
            test: TestUserFilter::Include,
            emails: vec!["Ann@Example.COM".into(), "ÉLA@x.io".into()],
            statuses: vec![UserStatus::Disabled, UserStatus::Invited],
            ..Default::default()
        };
        assert_eq!(
            predicates(q),
            vec![
                Predicate::AnyOf {
                    column: MatchColumn::Email,
                    values: vec!["ann@example.com".into(), "Éla@x.io".into()]
                },
                Predicate::AnyOf {
                    column: MatchColumn::Status,
                    values: vec!["disabled".into(), "invited".into()]
                },
            ]
        );
    }

    #[test]
    fn login_ids_user_ids_and_phones_match_exactly() {
        let q = UserQuery {
            test: TestUserFilter::Include,
            login_ids: vec!["Ann".into()],
            user_ids: vec!["U1".into()],
            phones: vec!["+1555".into()],
            ..Default::default()
        };
        assert_eq!(
            predicates(q),
            vec![
                Predicate::LoginIdIn(vec!["Ann".into()]),
                Predicate::AnyOf { column: MatchColumn::UserId, values: vec!["U1".into()] },
                Predicate::AnyOf { column: MatchColumn::Phone, values: vec!["+1555".into()] },
            ]
        );
    }

    #[test]
    fn attribute_values_follow_sqlite_equivalences() {
        assert_eq!(attribute_candidates(&Value::Bool(true)), vec![Value::Bool(true), Value::from(1)]);
        assert_eq!(attribute_candidates(&Value::from(0)), vec![Value::from(0), Value::Bool(false)]);
        assert_eq!(attribute_candidates(&json!(1.0)), vec![json!(1.0), Value::Bool(true)]);
        assert_eq!(attribute_candidates(&json!(2)), vec![json!(2)]);
        assert!(attribute_candidates(&Value::Null).is_empty());
        assert_eq!(attribute_candidates(&json!(["a", null, "b"])), vec![json!("a"), json!("b")]);
    }

    #[test]
    fn an_attribute_filter_that_can_match_nothing_is_nothing() {
        for value in [Value::Null, json!([]), json!([null])] {
            let mut q = UserQuery { test: TestUserFilter::Include, ..Default::default() };
            q.custom_attributes.insert("plan".into(), value);
            assert_eq!(predicates(q), vec![Predicate::Nothing]);
        }
        let mut q = UserQuery { test: TestUserFilter::Include, ..Default::default() };
        q.custom_attributes.insert("plan".into(), json!("pro"));
        assert_eq!(
            predicates(q),
            vec![Predicate::Attribute { name: "plan".into(), values: vec![json!("pro")] }]
        );
    }

    #[test]
    fn roles_anywhere_and_per_tenant() {
        let tenant = |roles: &[&str], all| TenantRoleFilter {
            tenant_id: "T1".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            all,
        };
        let q = UserQuery {
            test: TestUserFilter::Include,
            role_names: vec!["admin".into()],
            tenant_roles: vec![
                tenant(&["a", "b", "a"], true),
                tenant(&["a", "a"], false),
                tenant(&[], false),
                tenant(&[], true),
            ],
            ..Default::default()
        };
        let t1 = Some("T1".to_owned());
        assert_eq!(
            predicates(q),
            vec![
                Predicate::HasRole { tenant: None, roles: RoleMatch::AnyOf(vec!["admin".into()]) },
                Predicate::HasRole {
                    tenant: t1.clone(),
                    roles: RoleMatch::AllOf(vec!["a".into(), "b".into()])
                },
                Predicate::HasRole { tenant: t1.clone(), roles: RoleMatch::AnyOf(vec!["a".into()]) },
                Predicate::HasRole { tenant: t1, roles: RoleMatch::Any },
                Predicate::Nothing,
            ]
        );
    }

    #[test]
    fn time_bounds_flags_text_and_sso_apps() {
        let q = UserQuery {
            test: TestUserFilter::Include,
            text: Some("ann".into()),
            sso_app_ids: vec!["app".into()],
            from_created_ms: Some(5),
            to_modified_ms: Some(9),
            verified_phone: Some(false),
            ..Default::default()
        };
        assert_eq!(
            predicates(q),
            vec![
                Predicate::TextContains("ann".into()),
                Predicate::SsoAppIn(vec!["app".into()]),
                Predicate::Between { column: TimeColumn::Created, from_ms: Some(5), to_ms: None },
                Predicate::Between { column: TimeColumn::Modified, from_ms: None, to_ms: Some(9) },
                Predicate::Flag { column: FlagColumn::VerifiedPhone, value: false },
            ]
        );
        let empty_text =
            UserQuery { test: TestUserFilter::Include, text: Some(String::new()), ..Default::default() };
        assert!(predicates(empty_text).is_empty());
    }

    #[test]
    fn sort_keys_collate_by_field_and_ties_follow_the_first_key() {
        let q = UserQuery {
            sort: vec![
                SortBy { field: SortField::Email, desc: true },
                SortBy { field: SortField::UserId, desc: false },
                SortBy { field: SortField::CreatedTime, desc: false },
            ],
            limit: 10,
            page: 3,
            ..Default::default()
        };
        let f = q.filter();
        assert_eq!(
            f.order,
            vec![
                SortKey {
                    field: SortField::Email,
                    collation: Collation::CaseFolded,
                    desc: true,
                    nulls_first: false
                },
                SortKey {
                    field: SortField::UserId,
                    collation: Collation::Bytewise,
                    desc: false,
                    nulls_first: true
                },
                SortKey {
                    field: SortField::CreatedTime,
                    collation: Collation::Numeric,
                    desc: false,
                    nulls_first: true
                },
            ]
        );
        assert!(f.ties_descending);
        assert_eq!((f.limit, f.offset), (10, 30));
        assert!(!UserQuery::default().filter().ties_descending);
    }
}
