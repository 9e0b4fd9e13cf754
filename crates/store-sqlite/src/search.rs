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
            Predicate::TextContains(text) => self.text_contains(text, false),
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

    /// `joined`: the search joins `users_fts` ([`Driver::Text`]) and this is its text.
    fn text_contains(&mut self, text: &str, joined: bool) {
        if uses_trigrams(text) {
            // The trigram index matches any substring of three characters or more, as a phrase.
            self.sql.push_str(if joined {
                "users_fts MATCH "
            } else {
                "u.pk IN (SELECT rowid FROM users_fts WHERE users_fts MATCH "
            });
            self.arg(SqlValue::Text(format!("\"{}\"", text.replace('"', "\"\""))));
            if !joined {
                self.sql.push(')');
            }
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

/// Text the trigram index can answer: three characters or more.
fn uses_trigrams(text: &str) -> bool {
    text.chars().count() >= 3
}

/// A predicate the search joins instead of testing `u.pk IN (subquery)`: its table yields each
/// matching user once, in creation order (its key is `u.pk`), so a page in creation order walks it
/// and stops after `limit` matches instead of collecting every match first; the planner may still
/// start from a more selective users index.
#[derive(Clone, Copy)]
enum Driver<'a> {
    /// Text the trigram index answers: `users_fts`, in rowid order.
    Text,
    /// One role in one tenant: `user_roles r` through (tenant_id, role_name, user_pk). One row
    /// per user, as (user_pk, tenant_id, role_name) is the table's key.
    TenantRole { tenant: &'a str, role: &'a str },
}

impl Driver<'_> {
    fn from(self) -> &'static str {
        match self {
            Driver::Text => "users u JOIN users_fts ON users_fts.rowid = u.pk",
            Driver::TenantRole { .. } => "users u JOIN user_roles r ON r.user_pk = u.pk",
        }
    }

    /// The row key as the joined table names it: only so does SQLite see that the join's scan
    /// order already is creation order.
    fn row_key(self) -> &'static str {
        match self {
            Driver::Text => "users_fts.rowid",
            Driver::TenantRole { .. } => "r.user_pk",
        }
    }
}

/// The first predicate a search can join (see [`Driver`]), and its position.
fn driver(filter: &UserFilter) -> Option<(usize, Driver<'_>)> {
    filter.predicates.iter().enumerate().find_map(|(i, p)| match p {
        Predicate::TextContains(t) if uses_trigrams(t) => Some((i, Driver::Text)),
        Predicate::HasRole { tenant: Some(tenant), roles: RoleMatch::AnyOf(names) } => match names.as_slice()
        {
            [role] => Some((i, Driver::TenantRole { tenant, role })),
            _ => None,
        },
        _ => None,
    })
}

/// The FROM clause of a search: `users u`, joined with the table of its [`Driver`] if any.
pub(crate) fn from_clause(filter: &UserFilter) -> &'static str {
    driver(filter).map_or("users u", |(_, d)| d.from())
}

/// The WHERE clause of a search in `project` (over [`from_clause`]), and its parameters.
pub(crate) fn where_clause(project: &ProjectId, filter: &UserFilter) -> (String, Vec<SqlValue>) {
    let mut w = Where { sql: String::new(), args: Vec::new() };
    w.sql.push_str("u.project_id = ");
    w.arg(SqlValue::Text(project.to_string()));
    let driver = driver(filter);
    for (i, p) in filter.predicates.iter().enumerate() {
        w.sql.push_str(" AND ");
        match (p, driver) {
            (Predicate::TextContains(text), Some((at, Driver::Text))) if at == i => {
                w.text_contains(text, true)
            }
            (_, Some((at, Driver::TenantRole { tenant, role }))) if at == i => {
                w.sql.push_str("r.tenant_id = ");
                w.arg(SqlValue::Text(tenant.to_owned()));
                w.sql.push_str(" AND r.role_name = ");
                w.arg(SqlValue::Text(role.to_owned()));
            }
            (p, _) => w.predicate(project, p),
        }
    }
    (w.sql, w.args)
}

/// The query answering a search's total, and its parameters. A filter of only the test flag and
/// statuses sums the per-(test, status) counters that V9's triggers keep exact in every write's
/// transaction: a few index rows instead of a count over every matching user.
pub(crate) fn total_query(project: &ProjectId, filter: &UserFilter) -> (String, Vec<SqlValue>) {
    let Some(counted) = filter.total_by_test_and_status() else {
        let (where_sql, args) = where_clause(project, filter);
        return (format!("SELECT COUNT(*) FROM {} WHERE {where_sql}", from_clause(filter)), args);
    };
    let mut w = Where {
        sql: "SELECT coalesce(SUM(n), 0) FROM user_counts WHERE project_id = ".into(),
        args: Vec::new(),
    };
    w.arg(SqlValue::Text(project.to_string()));
    if let Some(test) = counted.test {
        w.sql.push_str(if test { " AND test = 1" } else { " AND test = 0" });
    }
    if let Some(statuses) = counted.statuses {
        w.sql.push_str(" AND ");
        w.in_list("status", statuses);
    }
    (w.sql, w.args)
}

/// The ORDER BY list, ending with the row key (creation order) so that pages are stable.
pub(crate) fn order_by(filter: &UserFilter) -> String {
    let mut parts: Vec<String> = filter.order.iter().map(sort_key).collect();
    let row_key = driver(filter).map_or("u.pk", |(_, d)| d.row_key());
    parts.push(if filter.ties_descending { format!("{row_key} DESC") } else { row_key.to_owned() });
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
