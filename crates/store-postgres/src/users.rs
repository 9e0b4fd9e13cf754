//! Users: create, load, search, delete.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::types::Json;
use tokio_postgres::IsolationLevel;

use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, UserId};
use idvault_core::store::UserStore;
use idvault_core::user::{User, UserQuery, UserRef};

use crate::rows::{user_columns, user_from_row, Params, USER_COLUMNS};
use crate::{pg_err, unique_violation, PgStore};

/// Writes the side tables (roles, tenants) of a user from its domain value.
pub(crate) async fn write_user_index(tx: &Transaction<'_>, pk: i64, user: &User) -> Result<()> {
    let mut role_tenants: Vec<String> = Vec::new();
    let mut role_names: Vec<String> = Vec::new();
    for r in &user.role_names {
        role_tenants.push(String::new());
        role_names.push(r.clone());
    }
    for t in &user.tenants {
        for r in &t.role_names {
            role_tenants.push(t.tenant_id.clone());
            role_names.push(r.clone());
        }
    }
    if !role_names.is_empty() {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO user_roles (user_pk, tenant_id, role_name) \
                 SELECT $1, t, r FROM unnest($2::text[], $3::text[]) AS x(t, r) ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(pg_err)?;
        tx.execute(&stmt, &[&pk, &role_tenants, &role_names]).await.map_err(pg_err)?;
    }
    if !user.tenants.is_empty() {
        let tenants: Vec<&str> = user.tenants.iter().map(|t| t.tenant_id.as_str()).collect();
        let stmt = tx
            .prepare_cached(
                "INSERT INTO user_tenants (user_pk, tenant_id) SELECT $1, t FROM unnest($2::text[]) AS x(t) \
                 ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(pg_err)?;
        tx.execute(&stmt, &[&pk, &tenants]).await.map_err(pg_err)?;
    }
    Ok(())
}

/// Login ids are locked through this many advisory-lock buckets per project.
const LOGIN_ID_LOCK_BUCKETS: i64 = 64;

/// Takes, in key order, the advisory transaction locks of the buckets of `login_ids`, before any
/// of them is inserted.
///
/// Without this, two transactions inserting the same login ids in opposite orders (two batch
/// imports, a batch and an update) would each wait on a unique-index entry the other wrote:
/// PostgreSQL would abort one with "deadlock detected" instead of one answering
/// `UserAlreadyExists`. Holding the bucket locks first, always in ascending key order, means a
/// transaction that could conflict waits for the other to finish, then sees its rows, so every
/// writer gets SQLite's answer (the first taken login id in its own order). Buckets (a hash of
/// the login id modulo 64) bound the number of locks one batch takes.
pub(crate) async fn lock_login_ids<'a>(
    tx: &Transaction<'_>,
    project: &ProjectId,
    login_ids: impl Iterator<Item = &'a String>,
) -> Result<()> {
    let keys: BTreeSet<i64> = login_ids
        .map(|l| {
            let bucket = crate::lock::advisory_key(&[l]).rem_euclid(LOGIN_ID_LOCK_BUCKETS);
            crate::lock::advisory_key(&["login-ids", project.as_str(), &bucket.to_string()])
        })
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let keys: Vec<i64> = keys.into_iter().collect();
    let stmt = tx
        .prepare_cached("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS x(k)")
        .await
        .map_err(pg_err)?;
    // The function scan takes them in array order, i.e. ascending.
    tx.execute(&stmt, &[&keys]).await.map(|_| ()).map_err(pg_err)
}

/// Inserts one login id of a user; a taken one is `UserAlreadyExists`.
pub(crate) async fn insert_login_id(
    tx: &Transaction<'_>,
    project: &ProjectId,
    login_id: &str,
    pk: i64,
) -> Result<()> {
    let stmt = tx
        .prepare_cached("INSERT INTO user_login_ids (project_id, login_id, user_pk) VALUES ($1, $2, $3)")
        .await
        .map_err(pg_err)?;
    tx.execute(&stmt, &[&project.as_str(), &login_id, &pk]).await.map(|_| ()).map_err(|e| {
        if unique_violation(&e).is_some() {
            Error::UserAlreadyExists(login_id.to_owned())
        } else {
            pg_err(e)
        }
    })
}

/// Inserts a user with its login ids and index rows; answers its row key. The caller holds the
/// project's directory lock (shared) for the reference checks.
pub(crate) async fn insert_user(tx: &Transaction<'_>, project: &ProjectId, user: &User) -> Result<i64> {
    crate::directory::check_references(tx, project, user).await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO users (project_id, user_id, login_ids, name, given_name, middle_name, family_name, email, \
             phone, verified_email, verified_phone, status, picture, test, role_names, tenants, custom_attributes, \
             sso_app_ids, oauth_providers, created_ms, modified_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) \
             RETURNING pk",
        )
        .await
        .map_err(pg_err)?;
    let row = tx
        .query_one(
            &stmt,
            &[
                &project.as_str(),
                &user.user_id.as_str(),
                &Json(&user.login_ids),
                &user.name,
                &user.given_name,
                &user.middle_name,
                &user.family_name,
                &user.email,
                &user.phone,
                &user.verified_email,
                &user.verified_phone,
                &user.status.as_str(),
                &user.picture,
                &user.test,
                &Json(&user.role_names),
                &Json(&user.tenants),
                &Json(&user.custom_attributes),
                &Json(&user.sso_app_ids),
                &Json(&user.oauth_providers),
                &user.created_ms,
                &user.modified_ms,
            ],
        )
        .await
        .map_err(|e| {
            if unique_violation(&e).is_some() {
                Error::Internal("generated user id collided; retry".into())
            } else {
                pg_err(e)
            }
        })?;
    let pk: i64 = row.try_get(0).map_err(pg_err)?;
    for l in &user.login_ids {
        insert_login_id(tx, project, l, pk).await?;
    }
    write_user_index(tx, pk, user).await?;
    Ok(pk)
}

pub(crate) const USER_BY_LOGIN_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM user_login_ids l JOIN users u ON u.pk = l.user_pk WHERE l.project_id = $1 AND l.login_id = $2"
);

const USER_BY_ID: &str =
    concat!("SELECT ", user_columns!(), " FROM users u WHERE u.project_id = $1 AND u.user_id = $2");

pub(crate) async fn get_user_on<C: GenericClient>(
    c: &C,
    project: &ProjectId,
    user: &UserRef,
) -> Result<Option<User>> {
    let (sql, key) = match user {
        UserRef::LoginId(l) => (USER_BY_LOGIN_ID, l.as_str()),
        UserRef::UserId(id) => (USER_BY_ID, id.as_str()),
    };
    let stmt = c.prepare_cached(sql).await.map_err(pg_err)?;
    let Some(row) = c.query_opt(&stmt, &[&project.as_str(), &key]).await.map_err(pg_err)? else {
        return Ok(None);
    };
    let mut users = vec![user_from_row(&row, 0)?];
    crate::directory::enrich(c, project, &mut users).await?;
    Ok(users.pop())
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_users(&self, project: &ProjectId, users: &[User]) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        crate::directory::lock_directory(&tx, project, false).await?;
        lock_login_ids(&tx, project, users.iter().flat_map(|u| u.login_ids.iter())).await?;
        for u in users {
            insert_user(&tx, project, u).await?;
        }
        tx.commit().await.map_err(pg_err)
    }

    async fn get_user(&self, project: &ProjectId, user: &UserRef) -> Result<Option<User>> {
        let c = self.conn().await?;
        get_user_on(&c, project, user).await
    }

    async fn load_users(&self, project: &ProjectId, user_ids: &[String]) -> Result<Vec<User>> {
        let parsed = UserId::parse_distinct(user_ids);
        let ids: Vec<&str> = parsed.iter().map(UserId::as_str).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users u WHERE u.project_id = $1 AND u.user_id = ANY($2::text[])"
            ))
            .await
            .map_err(pg_err)?;
        let rows = c.query(&stmt, &[&project.as_str(), &ids]).await.map_err(pg_err)?;
        let mut by_id: HashMap<String, User> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let u = user_from_row(row, 0)?;
            by_id.insert(u.user_id.to_string(), u);
        }
        let mut out: Vec<User> = ids.iter().filter_map(|id| by_id.remove(*id)).collect();
        crate::directory::enrich(&c, project, &mut out).await?;
        Ok(out)
    }

    async fn search_users(&self, project: &ProjectId, query: &UserQuery) -> Result<(Vec<User>, u64)> {
        let lowered = query.filter();
        let mut params = Params::default();
        let filter = crate::search::where_clause(project, &lowered, &mut params);
        let order = crate::search::order_by(&lowered);
        let count_sql = format!("SELECT COUNT(*) FROM users u WHERE {filter}");
        let args = params.refs();
        let count_args = args.clone();
        let mut page_args = args;
        let (limit, offset) = (lowered.limit, lowered.offset);
        let limit_n = page_args.len() + 1;
        page_args.push(&limit);
        page_args.push(&offset);
        let page_sql = format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE {filter} ORDER BY {order} LIMIT ${limit_n} OFFSET ${}",
            limit_n + 1
        );

        let mut c = self.conn().await?;
        // One snapshot for the page and the total.
        let tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_err)?;
        let (total, rows) = tokio::try_join!(
            async { tx.query_one(count_sql.as_str(), &count_args).await.map_err(pg_err) },
            async { tx.query(page_sql.as_str(), &page_args).await.map_err(pg_err) },
        )?;
        let total: i64 = total.try_get(0).map_err(pg_err)?;
        let mut users = rows.iter().map(|r| user_from_row(r, 0)).collect::<Result<Vec<_>>>()?;
        crate::directory::enrich(&tx, project, &mut users).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok((users, u64::try_from(total).unwrap_or(0)))
    }

    async fn delete_user(&self, project: &ProjectId, user_id: &UserId) -> Result<bool> {
        let c = self.conn().await?;
        // Login ids, index rows, tokens, sessions, identities and login history cascade.
        c.execute(
            "DELETE FROM users WHERE project_id = $1 AND user_id = $2",
            &[&project.as_str(), &user_id.as_str()],
        )
        .await
        .map(|n| n > 0)
        .map_err(pg_err)
    }

    async fn delete_test_users(&self, project: &ProjectId) -> Result<u64> {
        let c = self.conn().await?;
        c.execute("DELETE FROM users WHERE project_id = $1 AND test", &[&project.as_str()])
            .await
            .map_err(pg_err)
    }
}
