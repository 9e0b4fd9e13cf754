//! Renders core's user filter ([`UserFilter`]) into SQLite SQL: each predicate kind into one
//! condition over the `users` row `u`. What matches is decided in core; this is only syntax.

use rusqlite::types::Value as SqlValue;
use serde_json::Value;

use idvault_core::ids::ProjectId;
use idvault_core::user::filter::{
    Collation, FlagColumn, MatchColumn, Predicate, RoleMatch, SortKey, TimeColumn, UserFilter,
};
use idvault_core::user::SortField;

/// A WHERE clause under construction, with its positional parameters.
struct Where {
    sql: String,
    args: Vec<SqlValue>,
}

impl Where {
    fn arg(&mut self, value: SqlValue) {
        self.sql.push('?');
        self.args.push(value);
    }

    /// `expr IN (?, ?...)` over text values (never empty: core does not lower empty lists).
    fn in_list(&mut self, expr: &str, values: &[String]) {
        self.sql.push_str(expr);
        self.sql.push_str(" IN (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.arg(SqlValue::Text(v.clone()));
        }
        self.sql.push(')');
    }

    fn predicate(&mut self, project: &ProjectId, p: &Predicate) {
        match p {
            Predicate::TestUser(test) => self.sql.push_str(if *test { "u.test = 1" } else { "u.test = 0" }),
            Predicate::LoginIdIn(ids) => {
                // Constrain the subquery to the project first so the primary key serves it.
                self.sql.push_str("u.pk IN (SELECT user_pk FROM user_login_ids WHERE project_id = ");
                self.arg(SqlValue::Text(project.to_string()));
                self.sql.push_str(" AND ");
                self.in_list("login_id", ids);
                self.sql.push(')');
            }
            Predicate::AnyOf { column, values } => {
                let column = match column {
                    MatchColumn::UserId => "u.user_id",
                    // The column is declared COLLATE NOCASE: it compares as core folds.
                    MatchColumn::Email => "u.email",
                    MatchColumn::Phone => "u.phone",
                    MatchColumn::Status => "u.status",
                };
                self.in_list(column, values);
            }
            Predicate::InTenant(tenants) => {
                self.sql.push_str("u.pk IN (SELECT user_pk FROM user_tenants WHERE ");
                self.in_list("tenant_id", tenants);
                self.sql.push(')');
            }
            Predicate::HasRole { tenant, roles } => self.has_role(tenant.as_deref(), roles),
            Predicate::TextContains(text) => self.text_contains(text),
            Predicate::Attribute { name, values } => {
                self.sql.push_str("json_extract(u.custom_attributes, ");
                self.arg(SqlValue::Text(format!("$.\"{name}\"")));
                self.sql.push_str(") IN (");
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(", ");
                    }
                    self.arg(json_extract_value(v));
                }
                self.sql.push(')');
            }
            Predicate::SsoAppIn(apps) => {
                self.sql.push_str("EXISTS (SELECT 1 FROM json_each(u.sso_app_ids) j WHERE ");
                self.in_list("j.value", apps);
                self.sql.push(')');
            }
            Predicate::Between { column, from_ms, to_ms } => {
                let column = match column {
                    TimeColumn::Created => "u.created_ms",
                    TimeColumn::Modified => "u.modified_ms",
                };
                let bounds = [(">=", from_ms), ("<=", to_ms)];
                for (i, (op, ms)) in bounds.into_iter().filter_map(|(op, ms)| Some((op, (*ms)?))).enumerate()
                {
                    if i > 0 {
                        self.sql.push_str(" AND ");
                    }
                    self.sql.push_str(&format!("{column} {op} "));
                    self.arg(SqlValue::Integer(ms));
                }
            }
            Predicate::Flag { column, value } => {
                self.sql.push_str(match column {
                    FlagColumn::VerifiedEmail => "u.verified_email = ",
                    FlagColumn::VerifiedPhone => "u.verified_phone = ",
                });
                self.arg(SqlValue::Integer(i64::from(*value)));
            }
            Predicate::Nothing => self.sql.push('0'),
        }
    }

    fn has_role(&mut self, tenant: Option<&str>, roles: &RoleMatch) {
        self.sql.push_str("u.pk IN (SELECT user_pk FROM user_roles");
        let names = match roles {
            RoleMatch::Any => None,
            RoleMatch::AnyOf(names) | RoleMatch::AllOf(names) => Some(names),
        };
        if let Some(tenant) = tenant {
            self.sql.push_str(" WHERE tenant_id = ");
            self.arg(SqlValue::Text(tenant.to_owned()));
        }
        if let Some(names) = names {
            self.sql.push_str(if tenant.is_some() { " AND " } else { " WHERE " });
            self.in_list("role_name", names);
        }
        if let RoleMatch::AllOf(names) = roles {
            self.sql.push_str(" GROUP BY user_pk HAVING COUNT(DISTINCT role_name) = ");
            self.arg(SqlValue::Integer(i64::try_from(names.len()).unwrap_or(i64::MAX)));
        }
        self.sql.push(')');
    }

    fn text_contains(&mut self, text: &str) {
        if text.chars().count() >= 3 {
            // The trigram index matches any substring of three characters or more, as a phrase.
            self.sql.push_str("u.pk IN (SELECT rowid FROM users_fts WHERE users_fts MATCH ");
            self.arg(SqlValue::Text(format!("\"{}\"", text.replace('"', "\"\""))));
            self.sql.push(')');
            return;
        }
        // Shorter text cannot use trigrams: scan the columns the index's body is made of.
        let pattern = format!("%{}%", text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let columns =
            ["u.name", "u.given_name", "u.middle_name", "u.family_name", "u.email", "u.phone", "u.login_ids"];
        self.sql.push('(');
        for (i, column) in columns.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(" OR ");
            }
            self.sql.push_str(column);
            self.sql.push_str(" LIKE ");
            self.arg(SqlValue::Text(pattern.clone()));
            self.sql.push_str(" ESCAPE '\\'");
        }
        self.sql.push(')');
    }
}

/// A JSON value as `json_extract` answers it: booleans are integers, numbers stay numbers,
/// strings are text, and arrays and objects are their JSON text.
fn json_extract_value(v: &Value) -> SqlValue {
    match v {
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => {
            n.as_i64().map(SqlValue::Integer).unwrap_or_else(|| SqlValue::Real(n.as_f64().unwrap_or(0.0)))
        }
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

/// The WHERE clause of a search in `project`, and its parameters.
pub(crate) fn where_clause(project: &ProjectId, filter: &UserFilter) -> (String, Vec<SqlValue>) {
    let mut w = Where { sql: String::new(), args: Vec::new() };
    w.sql.push_str("u.project_id = ");
    w.arg(SqlValue::Text(project.to_string()));
    for p in &filter.predicates {
        w.sql.push_str(" AND ");
        w.predicate(project, p);
    }
    (w.sql, w.args)
}

/// The ORDER BY list, ending with the row key (creation order) so that pages are stable.
pub(crate) fn order_by(filter: &UserFilter) -> String {
    let mut parts: Vec<String> = filter.order.iter().map(sort_key).collect();
    parts.push(if filter.ties_descending { "u.pk DESC".into() } else { "u.pk".into() });
    parts.join(", ")
}

fn sort_key(key: &SortKey) -> String {
    let column = match key.field {
        SortField::Name => "u.name",
        SortField::GivenName => "u.given_name",
        SortField::FamilyName => "u.family_name",
        SortField::Email => "u.email",
        SortField::Phone => "u.phone",
        SortField::Status => "u.status",
        SortField::UserId => "u.user_id",
        SortField::LoginId => "u.login_ids",
        SortField::CreatedTime => "u.created_ms",
        SortField::ModifiedTime => "u.modified_ms",
    };
    let collation = match key.collation {
        Collation::CaseFolded => " COLLATE NOCASE",
        // Text columns other than email are declared BINARY; numbers need none.
        Collation::Bytewise | Collation::Numeric => "",
    };
    let direction = if key.desc { "DESC" } else { "ASC" };
    // SQLite puts NULLs first ascending and last descending; say so only otherwise.
    let nulls = match (key.nulls_first, key.desc) {
        (true, true) => " NULLS FIRST",
        (false, false) => " NULLS LAST",
        _ => "",
    };
    format!("{column}{collation} {direction}{nulls}")
}
