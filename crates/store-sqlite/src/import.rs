//! The bulk import path: a batch of new users with their tokens in one transaction, every
//! statement prepared once per batch, the JSON columns encoded before the writer is taken, and
//! the batch's directory references read once (not once per user).
//!
//! Users go in as multi-row inserts of [`USERS_PER_INSERT`] rows, before any other row of the
//! batch. History: the free-text index (FTS5) writes its in-memory entries to disk at every
//! savepoint, and every statement with a foreign key opens one; when V4's trigger filled the index
//! row by row, one insert per user made each user's trigrams a segment of its own (a bulk load 3 to
//! 4 times slower), and the multi-row inserts were the way around it. Since V12 the triggers only
//! note the new row keys and the writer indexes the whole batch once, just before the COMMIT of
//! the group the batch runs in (`users::flush_pending_text_index`), so the import fills the index
//! in a few large segments whatever its statements; the multi-row inserts remain as fewer
//! statements to run.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use idvault_core::directory::references::{self, DirectoryNeeds};
use idvault_core::error::{Error, Result};
use idvault_core::ids::ProjectId;
use idvault_core::store::{ImportStore, ImportedUser, TakenUserKeys};

use crate::rows::to_json;
use crate::users::{insert_login_ids, user_row, write_user_index, UserJson, INSERT_USERS, USER_ROW};
use crate::{storage_err, SqliteStore};

/// Rows per multi-row insert into `users` (21 parameters each; SQLite allows 32,766).
const USERS_PER_INSERT: usize = 400;

/// The values of `json` (a JSON array of strings) held in `column` of the project's rows.
fn taken(
    c: &Connection,
    sql: &str,
    project: &ProjectId,
    json: &str,
) -> Result<std::collections::HashSet<String>> {
    let mut s = c.prepare_cached(sql).map_err(storage_err)?;
    let rows = s.query_map(params![project.as_str(), json], |r| r.get(0)).map_err(storage_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(storage_err)
}

#[async_trait]
impl ImportStore for SqliteStore {
    async fn taken_user_keys(
        &self,
        project: &ProjectId,
        user_ids: &[String],
        login_ids: &[String],
    ) -> Result<TakenUserKeys> {
        let (project, ids, logins) = (project.clone(), to_json(&user_ids)?, to_json(&login_ids)?);
        let (no_ids, no_logins) = (user_ids.is_empty(), login_ids.is_empty());
        self.read_blocking(move |c| {
            let any_user = c
                .prepare_cached("SELECT EXISTS(SELECT 1 FROM users WHERE project_id = ?1)")
                .and_then(|mut s| s.query_row([project.as_str()], |r| r.get::<_, bool>(0)))
                .map_err(storage_err)?;
            let mut out = TakenUserKeys::default();
            if !any_user {
                return Ok(out);
            }
            if !no_ids {
                out.user_ids = taken(
                    c,
                    "SELECT user_id FROM users WHERE project_id = ?1 AND user_id IN (SELECT value FROM json_each(?2))",
                    &project,
                    &ids,
                )?;
            }
            if !no_logins {
                out.login_ids = taken(
                    c,
                    "SELECT login_id FROM user_login_ids WHERE project_id = ?1 \
                     AND login_id IN (SELECT value FROM json_each(?2))",
                    &project,
                    &logins,
                )?;
            }
            Ok(out)
        })
        .await
    }

    async fn import_users(&self, project: &ProjectId, users: Vec<ImportedUser>) -> Result<()> {
        if users.is_empty() {
            return Ok(());
        }
        let json = users.iter().map(|u| UserJson::new(&u.user)).collect::<Result<Vec<_>>>()?;
        let token_scopes = users
            .iter()
            .map(|u| u.tokens.iter().map(|t| to_json(&t.scopes)).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        let project = project.clone();
        self.write(move |c| {
            // A savepoint, not a transaction, so that it nests in a writer's group commit.
            let sp = c.savepoint().map_err(storage_err)?;
            let facts = crate::directory::load_facts(
                &sp,
                &project,
                &DirectoryNeeds::to_check_all(users.iter().map(|u| &u.user)),
            )?;
            for u in &users {
                references::check_references(&u.user, &facts)?;
            }
            {
                let mut token = sp
                    .prepare_cached(
                        "INSERT INTO provider_tokens (user_pk, provider, provider_user_id, access_token, \
                         refresh_token, expiration, scopes, updated_ms, version, reauth_required) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, 0)",
                    )
                    .map_err(storage_err)?;
                let mut outbound = sp.prepare_cached(crate::outbound::IMPORT_INSERT).map_err(storage_err)?;
                let pks = insert_users(&sp, &project, &users, &json)?;
                for ((u, pk), scopes) in users.iter().zip(pks).zip(&token_scopes) {
                    let user = &u.user;
                    insert_login_ids(&sp, &project, pk, &user.login_ids)?;
                    write_user_index(&sp, pk, user)?;
                    for (t, scopes) in u.tokens.iter().zip(scopes) {
                        token
                            .execute(params![
                                pk,
                                t.provider.as_str(),
                                t.provider_user_id,
                                t.access_token,
                                t.refresh_token,
                                t.expiration,
                                scopes,
                                t.updated_ms
                            ])
                            .map_err(storage_err)?;
                    }
                    for t in &u.outbound_tokens {
                        crate::outbound::with_row_params(&project, t, |row| {
                            let mut all: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(22);
                            all.extend_from_slice(row);
                            all.push(&pk);
                            outbound.execute(all.as_slice())
                        })?;
                    }
                }
            }
            sp.commit().map_err(storage_err)
        })
        .await
    }
}

/// Inserts the users' rows, [`USERS_PER_INSERT`] per statement; answers their row keys in order.
/// A user id taken in the project or twice in the batch is `UserAlreadyExists`.
fn insert_users(
    c: &Connection,
    project: &ProjectId,
    users: &[ImportedUser],
    json: &[UserJson],
) -> Result<Vec<i64>> {
    let mut seen = std::collections::HashSet::with_capacity(users.len());
    if let Some(dup) = users.iter().find(|u| !seen.insert(u.user.user_id.as_str())) {
        return Err(Error::UserAlreadyExists(format!("user id {}", dup.user.user_id)));
    }
    let ids: Vec<&str> = users.iter().map(|u| u.user.user_id.as_str()).collect();
    let taken = taken(
        c,
        "SELECT user_id FROM users WHERE project_id = ?1 AND user_id IN (SELECT value FROM json_each(?2))",
        project,
        &to_json(&ids)?,
    )?;
    if let Some(id) = ids.iter().find(|id| taken.contains(**id)) {
        return Err(Error::UserAlreadyExists(format!("user id {id}")));
    }
    let mut pks: std::collections::HashMap<String, i64> =
        std::collections::HashMap::with_capacity(users.len());
    for (part, json) in users.chunks(USERS_PER_INSERT).zip(json.chunks(USERS_PER_INSERT)) {
        let sql = format!("{INSERT_USERS}{} RETURNING user_id, pk", vec![USER_ROW; part.len()].join(", "));
        let mut insert = c.prepare_cached(&sql).map_err(storage_err)?;
        let mut values = Vec::with_capacity(21 * part.len());
        for (u, j) in part.iter().zip(json) {
            values.extend(user_row(project, &u.user, j).map_err(storage_err)?);
        }
        let mut rows = insert.query(rusqlite::params_from_iter(values.iter())).map_err(storage_err)?;
        while let Some(r) = rows.next().map_err(storage_err)? {
            pks.insert(r.get(0).map_err(storage_err)?, r.get(1).map_err(storage_err)?);
        }
    }
    ids.iter()
        .map(|id| pks.get(*id).copied().ok_or_else(|| Error::Internal(format!("no row key for user {id}"))))
        .collect()
}
