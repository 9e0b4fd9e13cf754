//! Renders core's user filter ([`UserFilter`]) into PostgreSQL SQL: each predicate kind into
//! one condition over the `users` row `u`. What matches is decided in core; this is only syntax,
//! written so that the same indexes serve it as before (the `lower(email COLLATE "C")` index,
//! the pg_trgm index on `search_text`).

use idvault_core::ids::ProjectId;
use idvault_core::user::filter::{
    Collation, FlagColumn, MatchColumn, Predicate, RoleMatch, SortKey, TimeColumn, UserFilter,
};
use idvault_core::user::SortField;

use crate::rows::Params;

/// Escapes LIKE wildcards so that the text matches literally (backslash is PostgreSQL's default
/// LIKE escape character).
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

fn predicate(p: &Predicate, params: &mut Params, project_param: &str) -> String {
    match p {
        Predicate::TestUser(true) => "u.test".into(),
        Predicate::TestUser(false) => "NOT u.test".into(),
        Predicate::LoginIdIn(ids) => format!(
            "u.pk IN (SELECT user_pk FROM user_login_ids WHERE project_id = {project_param} \
             AND login_id = ANY({}::text[]))",
            params.push(ids.clone())
        ),
        Predicate::AnyOf { column, values } => {
            let column = match column {
                MatchColumn::UserId => "u.user_id",
                // Core folds the values as this expression folds the column (and it is indexed).
                MatchColumn::Email => "lower(u.email COLLATE \"C\")",
                MatchColumn::Phone => "u.phone",
                MatchColumn::Status => "u.status",
            };
            match values.as_slice() {
                // One value is an equality, so that an index on the column followed by pk
                // serves creation order (an index scan over `= ANY(array)` does not promise
                // order, and a deep page would sort every match).
                [one] => format!("{column} = {}::text", params.push(one.clone())),
                _ => format!("{column} = ANY({}::text[])", params.push(values.clone())),
            }
        }
        Predicate::InTenant(tenants) => format!(
            "u.pk IN (SELECT user_pk FROM user_tenants WHERE tenant_id = ANY({}::text[]))",
            params.push(tenants.clone())
        ),
        Predicate::HasRole { tenant, roles } => {
            let mut conditions = Vec::new();
            if let Some(tenant) = tenant {
                conditions.push(format!("tenant_id = {}::text", params.push(tenant.clone())));
            }
            if let RoleMatch::AnyOf(names) | RoleMatch::AllOf(names) = roles {
                conditions.push(format!("role_name = ANY({}::text[])", params.push(names.clone())));
            }
            let mut sql = String::from("u.pk IN (SELECT user_pk FROM user_roles");
            if !conditions.is_empty() {
                sql.push_str(" WHERE ");
                sql.push_str(&conditions.join(" AND "));
            }
            if let RoleMatch::AllOf(names) = roles {
                let count = i64::try_from(names.len()).unwrap_or(i64::MAX);
                sql.push_str(&format!(
                    " GROUP BY user_pk HAVING COUNT(DISTINCT role_name) = {}::bigint",
                    params.push(count)
                ));
            }
            sql.push(')');
            sql
        }
        // Served by the pg_trgm GIN index on search_text (for three characters or more; shorter
        // text cannot use trigrams and scans, as SQLite's LIKE fallback does).
        Predicate::TextContains(text) => {
            format!("u.search_text ILIKE '%' || {}::text || '%'", params.push(like_literal(text)))
        }
        Predicate::Attribute { name, values } => format!(
            "(u.custom_attributes -> {}::text) = ANY({}::jsonb[])",
            params.push(name.clone()),
            params.push(values.clone())
        ),
        Predicate::SsoAppIn(apps) => format!("u.sso_app_ids ?| {}::text[]", params.push(apps.clone())),
        Predicate::Between { column, from_ms, to_ms } => {
            let column = match column {
                TimeColumn::Created => "u.created_ms",
                TimeColumn::Modified => "u.modified_ms",
            };
            [(">=", from_ms), ("<=", to_ms)]
                .into_iter()
                .filter_map(|(op, ms)| Some(format!("{column} {op} {}::bigint", params.push((*ms)?))))
                .collect::<Vec<_>>()
                .join(" AND ")
        }
        Predicate::Flag { column, value } => {
            let column = match column {
                FlagColumn::VerifiedEmail => "u.verified_email",
                FlagColumn::VerifiedPhone => "u.verified_phone",
            };
            format!("{column} = {}::boolean", params.push(*value))
        }
        Predicate::Nothing => "FALSE".into(),
    }
}

/// The WHERE clause of a search in `project`, pushing its parameters (the project is `$1`).
pub(crate) fn where_clause(project: &ProjectId, filter: &UserFilter, params: &mut Params) -> String {
    let project_param = params.push(project.to_string());
    let mut sql = format!("u.project_id = {project_param}");
    for p in &filter.predicates {
        sql.push_str(" AND ");
        sql.push_str(&predicate(p, params, &project_param));
    }
    sql
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
        SortField::LoginId => "u.login_ids::text",
        SortField::CreatedTime => "u.created_ms",
        SortField::ModifiedTime => "u.modified_ms",
    };
    // lower() of the "C" collation folds ASCII letters only, as SQLite's NOCASE.
    let expr = match key.collation {
        Collation::CaseFolded => format!("lower({column} COLLATE \"C\")"),
        Collation::Bytewise => format!("{column} COLLATE \"C\""),
        Collation::Numeric => column.to_owned(),
    };
    let direction = if key.desc { "DESC" } else { "ASC" };
    let nulls = if key.nulls_first { "FIRST" } else { "LAST" };
    format!("{expr} {direction} NULLS {nulls}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(like_literal("50%_a\\b"), "50\\%\\_a\\\\b");
    }
}
