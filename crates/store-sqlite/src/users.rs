//! Users: create, load, search, delete.

use async_trait::async_trait;
use rusqlite::types::ToSqlOutput;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, ErrorCode, OptionalExtension, ToSql};

use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, UserId};
use idvault_core::store::UserStore;
use idvault_core::user::{User, UserQuery, UserRef};

use crate::rows::{to_json, user_columns, user_from_row, USER_COLUMNS};
use crate::{storage_err, SqliteStore};

pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
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

/// Indexes the pending users that still exist (see [`flush_pending_text_index`]).
pub(crate) const FLUSH_INSERT: &str = "INSERT INTO users_fts (rowid, body) SELECT u.pk, u.login_ids || ' ' || \
     coalesce(u.name, '') || ' ' || coalesce(u.given_name, '') || ' ' || coalesce(u.middle_name, '') || ' ' || \
     coalesce(u.family_name, '') || ' ' || coalesce(u.email, '') || ' ' || coalesce(u.phone, '') \
     FROM users_fts_pending p CROSS JOIN users u ON u.pk = p.pk ORDER BY p.pk";

/// Brings the free-text index (`users_fts`) up to date with the users noted in
/// `users_fts_pending` by the V12 triggers, and empties that table. The writer runs this once
/// per write group, inside the group's transaction just before its COMMIT (see V12 for why not
/// per write), so a write is never answered before its text is searchable.
///
/// Every noted row's entry is removed first (removing a row key the index does not hold, as for
/// a user created in this group, is a no-op), then the noted rows that still exist are indexed,
/// in row-key order: FTS5 keeps a run of ascending row keys in memory and writes them as one
/// segment at COMMIT.
///
/// The insert walks the pending rows and looks each user up (`CROSS JOIN` fixes that order in
/// SQLite): without it, at a million users and with no statistics for the small pending table
/// (SQLite then assumes a million rows), the planner scanned all of `users` in row-key order to
/// save a sort, which made every group of writes cost ~250 ms (measured: 115 creates/s instead
/// of 7,000).
pub(crate) fn flush_pending_text_index(c: &Connection) -> Result<()> {
    let pending: Vec<i64> = c
        .prepare_cached("SELECT pk FROM users_fts_pending ORDER BY pk")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(storage_err)?;
    if pending.is_empty() {
        return Ok(());
    }
    let mut remove = c.prepare_cached("DELETE FROM users_fts WHERE rowid = ?1").map_err(storage_err)?;
    for pk in &pending {
        remove.execute([pk]).map_err(storage_err)?;
    }
    c.prepare_cached(FLUSH_INSERT).and_then(|mut s| s.execute([])).map_err(storage_err)?;
    c.prepare_cached("DELETE FROM users_fts_pending").and_then(|mut s| s.execute([])).map_err(storage_err)?;
    Ok(())
}

/// A user's JSON columns, encoded before the writer connection is taken (a bulk import encodes
/// the next batch while the current one is written).
pub(crate) struct UserJson {
    login_ids: String,
    role_names: String,
    tenants: String,
    custom_attributes: String,
    sso_app_ids: String,
    oauth_providers: String,
}

impl UserJson {
    pub(crate) fn new(user: &User) -> Result<Self> {
        Ok(UserJson {
            login_ids: to_json(&user.login_ids)?,
            role_names: to_json(&user.role_names)?,
            tenants: to_json(&user.tenants)?,
            custom_attributes: to_json(&user.custom_attributes)?,
            sso_app_ids: to_json(&user.sso_app_ids)?,
            oauth_providers: to_json(&user.oauth_providers)?,
        })
    }
}

/// The start of an insert into `users`; each row is [`USER_ROW`], bound by [`user_row`].
pub(crate) const INSERT_USERS: &str = "INSERT INTO users (project_id, user_id, login_ids, name, given_name, \
     middle_name, family_name, email, phone, verified_email, verified_phone, status, picture, test, role_names, \
     tenants, custom_attributes, sso_app_ids, oauth_providers, created_ms, modified_ms) VALUES ";
pub(crate) const USER_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// The values of one `users` row, in the column order of [`INSERT_USERS`], borrowed.
pub(crate) fn user_row<'a>(
    project: &'a ProjectId,
    user: &'a User,
    json: &'a UserJson,
) -> rusqlite::Result<[ToSqlOutput<'a>; 21]> {
    Ok([
        project.as_str().to_sql()?,
        user.user_id.as_str().to_sql()?,
        json.login_ids.to_sql()?,
        user.name.to_sql()?,
        user.given_name.to_sql()?,
        user.middle_name.to_sql()?,
        user.family_name.to_sql()?,
        user.email.to_sql()?,
        user.phone.to_sql()?,
        user.verified_email.to_sql()?,
        user.verified_phone.to_sql()?,
        user.status.as_str().to_sql()?,
        user.picture.to_sql()?,
        user.test.to_sql()?,
        json.role_names.to_sql()?,
        json.tenants.to_sql()?,
        json.custom_attributes.to_sql()?,
        json.sso_app_ids.to_sql()?,
        json.oauth_providers.to_sql()?,
        user.created_ms.to_sql()?,
        user.modified_ms.to_sql()?,
    ])
}

/// Inserts the `users` row (the free-text index follows by trigger); answers its row key. A
/// taken user id is the unique violation the caller maps.
pub(crate) fn insert_user_row(
    tx: &Connection,
    project: &ProjectId,
    user: &User,
    json: &UserJson,
) -> rusqlite::Result<i64> {
    let mut insert = tx.prepare_cached(&format!("{INSERT_USERS}{USER_ROW}"))?;
    insert.execute(params_from_iter(user_row(project, user, json)?.iter()))?;
    Ok(tx.last_insert_rowid())
}

/// Inserts the login ids of the user with row key `pk`; a taken one is `UserAlreadyExists`.
pub(crate) fn insert_login_ids(
    tx: &Connection,
    project: &ProjectId,
    pk: i64,
    login_ids: &[String],
) -> Result<()> {
    let mut login = tx
        .prepare_cached("INSERT INTO user_login_ids (project_id, login_id, user_pk) VALUES (?1, ?2, ?3)")
        .map_err(storage_err)?;
    for l in login_ids {
        login.execute(params![project.as_str(), l, pk]).map_err(|e| {
            if is_unique_violation(&e) {
                Error::UserAlreadyExists(l.clone())
            } else {
                storage_err(e)
            }
        })?;
    }
    Ok(())
}

/// Inserts a user with its login ids and index rows; answers its row key.
pub(crate) fn insert_user(tx: &Connection, project: &ProjectId, user: &User) -> Result<i64> {
    crate::directory::check_references(tx, project, user)?;
    let pk = insert_user_row(tx, project, user, &UserJson::new(user)?).map_err(|e| {
        if is_unique_violation(&e) {
            Error::Internal("generated user id collided; retry".into())
        } else {
            storage_err(e)
        }
    })?;
    insert_login_ids(tx, project, pk, &user.login_ids)?;
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

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_users(&self, project: &ProjectId, users: &[User]) -> Result<()> {
        let (project, users) = (project.clone(), users.to_vec());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
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
        let (project, ids) = (project.clone(), UserId::parse_distinct(user_ids));
        self.read_blocking(move |c| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(u) = find_user(c, &project, &UserRef::UserId(id))? {
                    out.push(u);
                }
            }
            crate::directory::enrich(c, &project, &mut out)?;
            Ok(out)
        })
        .await
    }

    async fn search_users(&self, project: &ProjectId, query: &UserQuery) -> Result<(Vec<User>, u64)> {
        let lowered = query.filter();
        let (filter, args) = crate::search::where_clause(project, &lowered);
        let (total_sql, total_args) = crate::search::total_query(project, &lowered);
        let order = crate::search::order_by(&lowered);
        let from = crate::search::from_clause(&lowered);
        let project_for_enrich = project.clone();
        let (limit, offset) = (lowered.limit, lowered.offset);
        self.read_blocking(move |c| {
            // One read transaction, so that the page and the total see the same snapshot.
            c.execute_batch("BEGIN").map_err(storage_err)?;
            let result = (|| {
                let total: i64 = c
                    .prepare(&total_sql)
                    .and_then(|mut s| s.query_row(params_from_iter(total_args.iter()), |r| r.get(0)))
                    .map_err(storage_err)?;
                let mut page_args = args.clone();
                page_args.push(SqlValue::Integer(limit));
                page_args.push(SqlValue::Integer(offset));
                let mut stmt = c
                    .prepare(&format!(
                        "SELECT {USER_COLUMNS} FROM {from} WHERE {filter} ORDER BY {order} LIMIT ? OFFSET ?"
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
