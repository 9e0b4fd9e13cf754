//! Users: create, load, search, delete.

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, ErrorCode, OptionalExtension};

use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, UserId};
use idvault_core::store::UserStore;
use idvault_core::user::{SortBy, SortField, TestUserFilter, User, UserQuery, UserRef};
use serde_json::Value;

use crate::rows::{to_json, user_columns, user_from_row, USER_COLUMNS};
use crate::{storage_err, SqliteStore};

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

/// Writes the side tables (roles, tenants) of a user from its domain value.
pub(crate) fn write_user_index(tx: &Connection, pk: i64, user: &User) -> Result<()> {
    let mut role = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO user_roles (user_pk, tenant_id, role_name) VALUES (?1, ?2, ?3)",
        )
        .map_err(storage_err)?;
    for r in &user.role_names {
        role.execute(params![pk, "", r]).map_err(storage_err)?;
    }
    let mut tenant = tx
        .prepare_cached("INSERT OR IGNORE INTO user_tenants (user_pk, tenant_id) VALUES (?1, ?2)")
        .map_err(storage_err)?;
    for t in &user.tenants {
        tenant.execute(params![pk, t.tenant_id]).map_err(storage_err)?;
        for r in &t.role_names {
            role.execute(params![pk, t.tenant_id, r]).map_err(storage_err)?;
        }
    }
    Ok(())
}

/// Inserts a user with its login ids and index rows; answers its row key.
pub(crate) fn insert_user(tx: &Connection, project: &ProjectId, user: &User) -> Result<i64> {
    crate::directory::check_references(tx, project, user)?;
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO users (project_id, user_id, login_ids, name, given_name, middle_name, family_name, email, \
             phone, verified_email, verified_phone, status, picture, test, role_names, tenants, custom_attributes, \
             sso_app_ids, oauth_providers, created_ms, modified_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
        )
        .map_err(storage_err)?;
    insert
        .execute(params![
            project.as_str(),
            user.user_id.as_str(),
            to_json(&user.login_ids)?,
            user.name,
            user.given_name,
            user.middle_name,
            user.family_name,
            user.email,
            user.phone,
            user.verified_email,
            user.verified_phone,
            user.status.as_str(),
            user.picture,
            user.test,
            to_json(&user.role_names)?,
            to_json(&user.tenants)?,
            to_json(&user.custom_attributes)?,
            to_json(&user.sso_app_ids)?,
            to_json(&user.oauth_providers)?,
            user.created_ms,
            user.modified_ms,
        ])
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Internal("generated user id collided; retry".into())
            } else {
                storage_err(e)
            }
        })?;
    let pk = tx.last_insert_rowid();
    let mut login = tx
        .prepare_cached("INSERT INTO user_login_ids (project_id, login_id, user_pk) VALUES (?1, ?2, ?3)")
        .map_err(storage_err)?;
    for l in &user.login_ids {
        login.execute(params![project.as_str(), l, pk]).map_err(|e| {
            if is_unique_violation(&e) {
                Error::UserAlreadyExists(l.clone())
            } else {
                storage_err(e)
            }
        })?;
    }
    write_user_index(tx, pk, user)?;
    Ok(pk)
}

/// The stored user, not yet enriched.
fn find_user(conn: &Connection, project: &ProjectId, user: &UserRef) -> Result<Option<User>> {
    let (sql, key) = match user {
        UserRef::LoginId(l) => (USER_BY_LOGIN_ID, l.as_str()),
        UserRef::UserId(id) => (USER_BY_ID, id.as_str()),
    };
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params![project.as_str(), key], user_from_row).optional())
        .map_err(storage_err)
}

fn get_user_on(conn: &Connection, project: &ProjectId, user: &UserRef) -> Result<Option<User>> {
    match find_user(conn, project, user)? {
        Some(mut u) => {
            crate::directory::enrich(conn, project, std::slice::from_mut(&mut u))?;
            Ok(Some(u))
        }
        None => Ok(None),
    }
}

pub(crate) const USER_BY_LOGIN_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM user_login_ids l JOIN users u ON u.pk = l.user_pk WHERE l.project_id = ?1 AND l.login_id = ?2"
);

const USER_BY_ID: &str =
    concat!("SELECT ", user_columns!(), " FROM users u WHERE u.project_id = ?1 AND u.user_id = ?2");

/// Builds the WHERE clause of a search and its parameters.
fn search_filter(project: &ProjectId, q: &UserQuery) -> (String, Vec<SqlValue>) {
    let mut sql = String::from("u.project_id = ?");
    let mut args: Vec<SqlValue> = vec![SqlValue::Text(project.to_string())];
    match q.test {
        TestUserFilter::Exclude => sql.push_str(" AND u.test = 0"),
        TestUserFilter::Only => sql.push_str(" AND u.test = 1"),
        TestUserFilter::Include => {}
    }
    let in_list = |sql: &mut String, args: &mut Vec<SqlValue>, prefix: &str, values: &[String]| {
        if values.is_empty() {
            return;
        }
        sql.push_str(" AND ");
        sql.push_str(prefix);
        sql.push_str(" IN (");
        for (i, v) in values.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
            args.push(SqlValue::Text(v.clone()));
        }
        sql.push(')');
    };
    if !q.login_ids.is_empty() {
        // Constrain the subquery to the project first so the primary key serves it.
        sql.push_str(" AND u.pk IN (SELECT user_pk FROM user_login_ids WHERE project_id = ?");
        args.push(SqlValue::Text(project.to_string()));
        in_list(&mut sql, &mut args, "login_id", &q.login_ids);
        sql.push(')');
    }
    in_list(&mut sql, &mut args, "u.user_id", &q.user_ids);
    in_list(&mut sql, &mut args, "u.email", &q.emails);
    in_list(&mut sql, &mut args, "u.phone", &q.phones);
    let statuses: Vec<String> = q.statuses.iter().map(|s| s.as_str().to_owned()).collect();
    in_list(&mut sql, &mut args, "u.status", &statuses);
    if !q.tenant_ids.is_empty() {
        sql.push_str(" AND u.pk IN (SELECT user_pk FROM user_tenants WHERE 1");
        in_list(&mut sql, &mut args, "tenant_id", &q.tenant_ids);
        sql.push(')');
    }
    if !q.role_names.is_empty() {
        sql.push_str(" AND u.pk IN (SELECT user_pk FROM user_roles WHERE 1");
        in_list(&mut sql, &mut args, "role_name", &q.role_names);
        sql.push(')');
    }
    if let Some(text) = q.text.as_deref().filter(|t| !t.is_empty()) {
        if text.chars().count() >= 3 {
            // The trigram index matches any substring of three characters or more.
            sql.push_str(" AND u.pk IN (SELECT rowid FROM users_fts WHERE users_fts MATCH ?)");
            args.push(SqlValue::Text(format!("\"{}\"", text.replace('"', "\"\""))));
        } else {
            let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            sql.push_str(
                " AND (u.name LIKE ?1x ESCAPE '\\' OR u.given_name LIKE ?1x ESCAPE '\\' OR u.family_name LIKE ?1x ESCAPE '\\' \
                 OR u.email LIKE ?1x ESCAPE '\\' OR u.phone LIKE ?1x ESCAPE '\\' OR u.login_ids LIKE ?1x ESCAPE '\\')",
            );
            let pattern = format!("%{escaped}%");
            for _ in 0..6 {
                args.push(SqlValue::Text(pattern.clone()));
            }
        }
    }
    for (key, value) in &q.custom_attributes {
        let path = format!("$.\"{key}\"");
        let values: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        sql.push_str(" AND json_extract(u.custom_attributes, ?) IN (");
        args.push(SqlValue::Text(path));
        for (i, v) in values.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
            args.push(match v {
                Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
                Value::Number(n) => n
                    .as_i64()
                    .map(SqlValue::Integer)
                    .unwrap_or_else(|| SqlValue::Real(n.as_f64().unwrap_or(0.0))),
                Value::String(s) => SqlValue::Text(s.clone()),
                other => SqlValue::Text(other.to_string()),
            });
        }
        if values.is_empty() {
            sql.push_str("NULL");
        }
        sql.push(')');
    }
    if !q.sso_app_ids.is_empty() {
        sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(u.sso_app_ids) j WHERE 1");
        in_list(&mut sql, &mut args, "j.value", &q.sso_app_ids);
        sql.push(')');
    }
    for (column, bound, op) in [
        ("u.created_ms", q.from_created_ms, ">="),
        ("u.created_ms", q.to_created_ms, "<="),
        ("u.modified_ms", q.from_modified_ms, ">="),
        ("u.modified_ms", q.to_modified_ms, "<="),
    ] {
        if let Some(ms) = bound {
            sql.push_str(&format!(" AND {column} {op} ?"));
            args.push(SqlValue::Integer(ms));
        }
    }
    for (column, wanted) in [("u.verified_email", q.verified_email), ("u.verified_phone", q.verified_phone)] {
        if let Some(v) = wanted {
            sql.push_str(&format!(" AND {column} = ?"));
            args.push(SqlValue::Integer(i64::from(v)));
        }
    }
    for f in &q.tenant_roles {
        sql.push_str(" AND u.pk IN (SELECT user_pk FROM user_roles WHERE tenant_id = ?");
        args.push(SqlValue::Text(f.tenant_id.clone()));
        in_list(&mut sql, &mut args, "role_name", &f.roles);
        if f.all {
            sql.push_str(" GROUP BY user_pk HAVING COUNT(DISTINCT role_name) = ?");
            args.push(SqlValue::Integer(
                f.roles.iter().collect::<std::collections::BTreeSet<_>>().len() as i64
            ));
        }
        sql.push(')');
    }
    (sql.replace("?1x", "?"), args)
}

/// ORDER BY for the requested sort, always ending with the row key so that pages are stable.
fn order_by(sort: &[SortBy]) -> String {
    let mut parts: Vec<String> = sort
        .iter()
        .map(|s| {
            let column = match s.field {
                SortField::Name => "u.name COLLATE NOCASE",
                SortField::GivenName => "u.given_name COLLATE NOCASE",
                SortField::FamilyName => "u.family_name COLLATE NOCASE",
                SortField::Email => "u.email",
                SortField::Phone => "u.phone",
                SortField::Status => "u.status",
                SortField::UserId => "u.user_id",
                SortField::LoginId => "u.login_ids COLLATE NOCASE",
                SortField::CreatedTime => "u.created_ms",
                SortField::ModifiedTime => "u.modified_ms",
            };
            format!("{column} {}", if s.desc { "DESC" } else { "ASC" })
        })
        .collect();
    // Ties fall back to creation order, in the direction of the first sort key.
    parts.push(if sort.first().is_some_and(|s| s.desc) { "u.pk DESC".into() } else { "u.pk".into() });
    parts.join(", ")
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_users(&self, project: &ProjectId, users: &[User]) -> Result<()> {
        let (project, users) = (project.clone(), users.to_vec());
        self.write(move |c| {
            let tx = c.transaction().map_err(storage_err)?;
            for u in &users {
                insert_user(&tx, &project, u)?;
            }
            tx.commit().map_err(storage_err)
        })
        .await
    }

    async fn get_user(&self, project: &ProjectId, user: &UserRef) -> Result<Option<User>> {
        self.read(|c| get_user_on(c, project, user))
    }

    async fn load_users(&self, project: &ProjectId, user_ids: &[String]) -> Result<Vec<User>> {
        let (project, ids) = (project.clone(), user_ids.to_vec());
        self.read_blocking(move |c| {
            let mut out = Vec::with_capacity(ids.len());
            let mut seen = std::collections::HashSet::new();
            for id in &ids {
                if !seen.insert(id.as_str()) {
                    continue;
                }
                let Ok(uid) = UserId::parse(id) else { continue };
                if let Some(u) = find_user(c, &project, &UserRef::UserId(uid))? {
                    out.push(u);
                }
            }
            crate::directory::enrich(c, &project, &mut out)?;
            Ok(out)
        })
        .await
    }

    async fn search_users(&self, project: &ProjectId, query: &UserQuery) -> Result<(Vec<User>, u64)> {
        let (filter, args) = search_filter(project, query);
        let order = order_by(&query.sort);
        let project_for_enrich = project.clone();
        let (limit, offset) = (i64::from(query.limit), i64::try_from(query.offset()).unwrap_or(i64::MAX));
        self.read_blocking(move |c| {
            // One read transaction, so that the page and the total see the same snapshot.
            c.execute_batch("BEGIN").map_err(storage_err)?;
            let result = (|| {
                let total: i64 = c
                    .prepare(&format!("SELECT COUNT(*) FROM users u WHERE {filter}"))
                    .and_then(|mut s| s.query_row(params_from_iter(args.iter()), |r| r.get(0)))
                    .map_err(storage_err)?;
                let mut page_args = args.clone();
                page_args.push(SqlValue::Integer(limit));
                page_args.push(SqlValue::Integer(offset));
                let mut stmt = c
                    .prepare(&format!(
                        "SELECT {USER_COLUMNS} FROM users u WHERE {filter} ORDER BY {order} LIMIT ? OFFSET ?"
                    ))
                    .map_err(storage_err)?;
                let mut users = stmt
                    .query_map(params_from_iter(page_args.iter()), user_from_row)
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(storage_err)?;
                crate::directory::enrich(c, &project_for_enrich, &mut users)?;
                Ok((users, u64::try_from(total).unwrap_or(0)))
            })();
            let _ = c.execute_batch("COMMIT");
            result
        })
        .await
    }

    async fn delete_user(&self, project: &ProjectId, user_id: &UserId) -> Result<bool> {
        let (project, user_id) = (project.clone(), user_id.clone());
        self.write(move |c| {
            c.execute(
                "DELETE FROM users WHERE project_id = ?1 AND user_id = ?2",
                params![project.as_str(), user_id.as_str()],
            )
            .map(|n| n > 0)
            .map_err(storage_err)
        })
        .await
    }

    async fn delete_test_users(&self, project: &ProjectId) -> Result<u64> {
        let project = project.clone();
        self.write(move |c| {
            c.execute("DELETE FROM users WHERE project_id = ?1 AND test = 1", [project.as_str()])
                .map(|n| n as u64)
                .map_err(storage_err)
        })
        .await
    }
}
