//! Outbound app tokens (sealed by the domain before they get here).

use std::collections::HashSet;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::outbound::{OverfullSlot, SealedOutboundToken, TokenOwner};
use idvault_core::store::OutboundTokenStore;

/// Every outbound token of a project, for `idvault export`.
pub(crate) fn export_all(c: &rusqlite::Connection, project: &ProjectId) -> Result<Vec<SealedOutboundToken>> {
    let mut s = c
        .prepare(&format!("SELECT {COLUMNS} FROM outbound_tokens WHERE project_id = ?1 ORDER BY id"))
        .map_err(storage_err)?;
    let rows = s.query_map([project.as_str()], raw).map_err(storage_err)?;
    let rows = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)?;
    rows.into_iter().map(to_token).collect()
}

use crate::rows::to_json;
use crate::{storage_err, SqliteStore};

const COLUMNS: &str = "id, app_id, owner_kind, owner_id, tenant_id, scopes, access_token, refresh_token, \
     access_token_type, expiration, granted_by, external_identifier, token_sub, last_refresh_ms, \
     last_refresh_error, created_ms, updated_ms, version, reauth_required";

/// A row before validation (scopes as JSON text).
struct RawToken {
    id: String,
    app_id: String,
    owner_kind: String,
    owner_id: String,
    tenant_id: String,
    scopes: String,
    access_token: Option<Vec<u8>>,
    refresh_token: Option<Vec<u8>>,
    access_token_type: String,
    expiration: i64,
    granted_by: String,
    external_identifier: String,
    token_sub: String,
    last_refresh_ms: i64,
    last_refresh_error: String,
    created_ms: i64,
    updated_ms: i64,
    version: i64,
    reauth_required: bool,
}

fn raw(r: &Row<'_>) -> rusqlite::Result<RawToken> {
    Ok(RawToken {
        id: r.get(0)?,
        app_id: r.get(1)?,
        owner_kind: r.get(2)?,
        owner_id: r.get(3)?,
        tenant_id: r.get(4)?,
        scopes: r.get(5)?,
        access_token: r.get(6)?,
        refresh_token: r.get(7)?,
        access_token_type: r.get(8)?,
        expiration: r.get(9)?,
        granted_by: r.get(10)?,
        external_identifier: r.get(11)?,
        token_sub: r.get(12)?,
        last_refresh_ms: r.get(13)?,
        last_refresh_error: r.get(14)?,
        created_ms: r.get(15)?,
        updated_ms: r.get(16)?,
        version: r.get(17)?,
        reauth_required: r.get(18)?,
    })
}

fn to_token(r: RawToken) -> Result<SealedOutboundToken> {
    let owner = match r.owner_kind.as_str() {
        "user" => TokenOwner::User(UserId::parse(&r.owner_id)?),
        "tenant" => TokenOwner::Tenant(r.owner_id),
        _ => return Err(Error::Storage("outbound token owner kind is neither user nor tenant".into())),
    };
    Ok(SealedOutboundToken {
        id: r.id,
        app_id: ProviderName::parse(&r.app_id)?,
        owner,
        tenant_id: r.tenant_id,
        scopes: serde_json::from_str(&r.scopes)
            .map_err(|_| Error::Storage("outbound token scopes are not a JSON array".into()))?,
        access_token: r.access_token,
        refresh_token: r.refresh_token,
        access_token_type: r.access_token_type,
        expiration: r.expiration,
        granted_by: r.granted_by,
        external_identifier: r.external_identifier,
        token_sub: r.token_sub,
        last_refresh_ms: r.last_refresh_ms,
        last_refresh_error: r.last_refresh_error,
        created_ms: r.created_ms,
        updated_ms: r.updated_ms,
        version: r.version,
        reauth_required: r.reauth_required,
    })
}

/// The columns of a new row, in the order of [`with_row_params`] (?1 to ?21), then `user_pk`
/// when a bulk import binds it (?22).
macro_rules! insert_columns {
    () => {
        "INSERT INTO outbound_tokens (project_id, id, app_id, owner_kind, owner_id, tenant_id, \
         user_pk, owner_tenant, scope_key, scopes, access_token, refresh_token, access_token_type, expiration, \
         granted_by, external_identifier, token_sub, last_refresh_ms, last_refresh_error, created_ms, \
         updated_ms, version, reauth_required) "
    };
}

/// A token of a new user (a bulk import): its user's row key is known (?22) and it has no
/// earlier token to be later than; ?7 (the user id) is bound and unused.
pub(crate) const IMPORT_INSERT: &str = concat!(
    insert_columns!(),
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?22, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, 1, 0)"
);

const INSERT: &str = concat!(
    insert_columns!(),
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
     (SELECT pk FROM users WHERE project_id = ?1 AND user_id = ?7), ?8, ?9, ?10, ?11, ?12, ?13, \
     ?14, ?15, ?16, ?17, ?18, ?19, ?20, \
     MAX(?21, (SELECT COALESCE(MAX(updated_ms), 0) + 1 FROM outbound_tokens \
     WHERE project_id = ?1 AND app_id = ?3 AND owner_kind = ?4 AND owner_id = ?5)), 1, 0)"
);

/// A token of an existing slot replaces its secrets and metadata, keeping its id and created
/// time, and its updated time is later than every other token of the owner for the app (the rules
/// of single uploads: the later write is the latest, even within one millisecond).
const UPSERT: &str =
    "ON CONFLICT (project_id, app_id, owner_kind, owner_id, tenant_id, scope_key) DO UPDATE SET \
     access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
     access_token_type = excluded.access_token_type, expiration = excluded.expiration, \
     granted_by = excluded.granted_by, external_identifier = excluded.external_identifier, \
     token_sub = excluded.token_sub, last_refresh_ms = excluded.last_refresh_ms, \
     last_refresh_error = '', updated_ms = excluded.updated_ms, \
     version = outbound_tokens.version + 1, reauth_required = 0";

/// The `user_pk` lookup key and the `owner_tenant` column of a token.
fn owner_columns(owner: &TokenOwner) -> (Option<&str>, Option<&str>) {
    match owner {
        TokenOwner::User(u) => (Some(u.as_str()), None),
        TokenOwner::Tenant(tenant) => (None, Some(tenant.as_str())),
    }
}

/// Runs `f` with the parameters ?1 to ?21 of a token row, in the column order of every insert
/// into `outbound_tokens` (one place, so the single and the batch upload cannot disagree).
pub(crate) fn with_row_params<R>(
    project: &ProjectId,
    t: &SealedOutboundToken,
    f: impl FnOnce(&[&dyn rusqlite::ToSql]) -> rusqlite::Result<R>,
) -> Result<R> {
    let (user_id, owner_tenant) = owner_columns(&t.owner);
    let (kind, owner_id, scope_key, scopes) =
        (t.owner.kind(), t.owner.id(), t.scope_key(), to_json(&t.scopes)?);
    f(params![
        project.as_str(),
        t.id,
        t.app_id.as_str(),
        kind,
        owner_id,
        t.tenant_id,
        user_id,
        owner_tenant,
        scope_key,
        scopes,
        t.access_token,
        t.refresh_token,
        t.access_token_type,
        t.expiration,
        t.granted_by,
        t.external_identifier,
        t.token_sub,
        t.last_refresh_ms,
        t.last_refresh_error,
        t.created_ms,
        t.updated_ms
    ])
    .map_err(storage_err)
}

/// The (app, owner, tenant) groups of `tokens` holding more than `max` tokens now.
fn overfull_slots(
    c: &rusqlite::Connection,
    project: &ProjectId,
    tokens: &[SealedOutboundToken],
    max: i64,
) -> Result<Vec<OverfullSlot>> {
    let mut s = c
        .prepare_cached(
            "SELECT count(*) FROM outbound_tokens WHERE project_id = ?1 AND app_id = ?2 AND owner_kind = ?3 \
             AND owner_id = ?4 AND tenant_id = ?5",
        )
        .map_err(storage_err)?;
    let mut seen = HashSet::new();
    let mut overfull = Vec::new();
    for t in tokens {
        if !seen.insert((t.app_id.as_str(), t.owner.kind(), t.owner.id(), t.tenant_id.as_str())) {
            continue;
        }
        let held: i64 = s
            .query_row(
                params![project.as_str(), t.app_id.as_str(), t.owner.kind(), t.owner.id(), t.tenant_id],
                |r| r.get(0),
            )
            .map_err(storage_err)?;
        if held > max {
            overfull.push(OverfullSlot {
                app_id: t.app_id.clone(),
                owner: t.owner.clone(),
                tenant_id: t.tenant_id.clone(),
            });
        }
    }
    Ok(overfull)
}

#[async_trait]
impl OutboundTokenStore for SqliteStore {
    async fn list_outbound_tokens(
        &self,
        project: &ProjectId,
        app: &ProviderName,
        owner: &TokenOwner,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SealedOutboundToken>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.read(|c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM outbound_tokens WHERE project_id = ?1 AND app_id = ?2 \
                     AND owner_kind = ?3 AND owner_id = ?4 AND (?5 IS NULL OR tenant_id = ?5) \
                     ORDER BY updated_ms DESC, id DESC LIMIT ?6"
                ))
                .map_err(storage_err)?;
            let rows = s
                .query_map(
                    params![project.as_str(), app.as_str(), owner.kind(), owner.id(), tenant, limit],
                    raw,
                )
                .map_err(storage_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)
        })?;
        rows.into_iter().map(to_token).collect()
    }

    async fn get_outbound_token(&self, project: &ProjectId, id: &str) -> Result<Option<SealedOutboundToken>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbound_tokens WHERE project_id = ?1 AND id = ?2"
            ))
            .and_then(|mut s| s.query_row(params![project.as_str(), id], raw).optional())
            .map_err(storage_err)
        })?
        .map(to_token)
        .transpose()
    }

    async fn put_outbound_token(
        &self,
        project: &ProjectId,
        token: &SealedOutboundToken,
        max_per_owner: usize,
    ) -> Result<Option<String>> {
        let (project, t) = (project.clone(), token.clone());
        let max = i64::try_from(max_per_owner).unwrap_or(i64::MAX);
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let slot = params![project.as_str(), t.app_id.as_str(), t.owner.kind(), t.owner.id(), t.tenant_id];
            let existing: Option<String> = tx
                .query_row(
                    "SELECT id FROM outbound_tokens WHERE project_id = ?1 AND app_id = ?2 AND owner_kind = ?3 \
                     AND owner_id = ?4 AND tenant_id = ?5 AND scope_key = ?6",
                    params![project.as_str(), t.app_id.as_str(), t.owner.kind(), t.owner.id(), t.tenant_id, t.scope_key()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(storage_err)?;
            let id = match existing {
                Some(id) => {
                    tx.execute(
                        "UPDATE outbound_tokens SET access_token = ?3, refresh_token = ?4, access_token_type = ?5, \
                         expiration = ?6, granted_by = ?7, external_identifier = ?8, token_sub = ?9, \
                         last_refresh_ms = ?10, last_refresh_error = '', version = version + 1, reauth_required = 0, \
                         updated_ms = MAX(?11, (SELECT COALESCE(MAX(o.updated_ms), 0) + 1 FROM outbound_tokens o \
                         WHERE o.project_id = outbound_tokens.project_id AND o.app_id = outbound_tokens.app_id \
                         AND o.owner_kind = outbound_tokens.owner_kind AND o.owner_id = outbound_tokens.owner_id)) \
                         WHERE project_id = ?1 AND id = ?2",
                        params![
                            project.as_str(),
                            id,
                            t.access_token,
                            t.refresh_token,
                            t.access_token_type,
                            t.expiration,
                            t.granted_by,
                            t.external_identifier,
                            t.token_sub,
                            t.last_refresh_ms,
                            t.updated_ms
                        ],
                    )
                    .map_err(storage_err)?;
                    id
                }
                None => {
                    let held: i64 = tx
                        .query_row(
                            "SELECT count(*) FROM outbound_tokens WHERE project_id = ?1 AND app_id = ?2 \
                             AND owner_kind = ?3 AND owner_id = ?4 AND tenant_id = ?5",
                            slot,
                            |r| r.get(0),
                        )
                        .map_err(storage_err)?;
                    if held >= max {
                        return Ok(None);
                    }
                    with_row_params(&project, &t, |row| {
                        tx.execute(
                        "INSERT INTO outbound_tokens (project_id, id, app_id, owner_kind, owner_id, tenant_id, user_pk, \
                         owner_tenant, scope_key, scopes, access_token, refresh_token, access_token_type, expiration, \
                         granted_by, external_identifier, token_sub, last_refresh_ms, last_refresh_error, created_ms, \
                         updated_ms, version, reauth_required) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
                         (SELECT pk FROM users WHERE project_id = ?1 AND user_id = ?7), ?8, ?9, ?10, ?11, ?12, ?13, \
                         ?14, ?15, ?16, ?17, ?18, ?19, ?20, \
                         MAX(?21, (SELECT COALESCE(MAX(updated_ms), 0) + 1 FROM outbound_tokens \
                         WHERE project_id = ?1 AND app_id = ?3 AND owner_kind = ?4 AND owner_id = ?5)), 1, 0)",
                        row,
                    )
                    })?;
                    t.id.clone()
                }
            };
            tx.commit().map_err(storage_err)?;
            Ok(Some(id))
        })
        .await
    }

    async fn put_outbound_tokens(
        &self,
        project: &ProjectId,
        tokens: Vec<SealedOutboundToken>,
        max_per_owner: usize,
    ) -> Result<Vec<OverfullSlot>> {
        let project = project.clone();
        let max = i64::try_from(max_per_owner).unwrap_or(i64::MAX);
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            {
                // One prepared upsert, run per token: SQLite does no network round trip, so a
                // multi-row statement would only save the (cheap) statement steps.
                let mut upsert = tx.prepare_cached(&format!("{INSERT} {UPSERT}")).map_err(storage_err)?;
                for t in &tokens {
                    with_row_params(&project, t, |row| upsert.execute(row))?;
                }
            }
            let overfull = overfull_slots(&tx, &project, &tokens, max)?;
            if overfull.is_empty() {
                tx.commit().map_err(storage_err)?;
            }
            // Otherwise the savepoint is dropped: rolled back, nothing written.
            Ok(overfull)
        })
        .await
    }

    async fn existing_user_ids(&self, project: &ProjectId, user_ids: &[String]) -> Result<HashSet<String>> {
        // A batch may name 100,000 users: read on the blocking pool, with the ids as one JSON
        // array parameter (no bound-parameter limit, one statement).
        let (project, ids) = (project.clone(), to_json(&user_ids)?);
        self.read_blocking(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT user_id FROM users WHERE project_id = ?1 \
                     AND user_id IN (SELECT value FROM json_each(?2))",
                )
                .map_err(storage_err)?;
            let rows = s.query_map(params![project.as_str(), ids], |r| r.get(0)).map_err(storage_err)?;
            rows.collect::<rusqlite::Result<HashSet<String>>>().map_err(storage_err)
        })
        .await
    }

    async fn replace_refreshed_outbound_token(
        &self,
        project: &ProjectId,
        token: &SealedOutboundToken,
        expected_version: i64,
    ) -> Result<bool> {
        let (project, t) = (project.clone(), token.clone());
        self.write(move |c| {
            c.execute(
                "UPDATE outbound_tokens SET access_token = ?3, refresh_token = ?4, expiration = ?5, \
                 last_refresh_ms = ?6, last_refresh_error = ?7, updated_ms = ?8, version = version + 1, \
                 reauth_required = 0 WHERE project_id = ?1 AND id = ?2 AND version = ?9",
                params![
                    project.as_str(),
                    t.id,
                    t.access_token,
                    t.refresh_token,
                    t.expiration,
                    t.last_refresh_ms,
                    t.last_refresh_error,
                    t.updated_ms,
                    expected_version
                ],
            )
            .map(|n| n == 1)
            .map_err(storage_err)
        })
        .await
    }

    async fn flag_outbound_reauth(
        &self,
        project: &ProjectId,
        id: &str,
        expected_version: i64,
        error: &str,
        at_ms: i64,
    ) -> Result<bool> {
        let (project, id, error) = (project.clone(), id.to_owned(), error.to_owned());
        self.write(move |c| {
            c.execute(
                "UPDATE outbound_tokens SET reauth_required = 1, last_refresh_error = ?4, last_refresh_ms = ?5, \
                 version = version + 1 WHERE project_id = ?1 AND id = ?2 AND version = ?3",
                params![project.as_str(), id, expected_version, error, at_ms],
            )
            .map(|n| n == 1)
            .map_err(storage_err)
        })
        .await
    }

    async fn delete_user_outbound_tokens(
        &self,
        project: &ProjectId,
        app: Option<&ProviderName>,
        user: Option<&UserId>,
    ) -> Result<u64> {
        let (project, app, user) = (project.clone(), app.map(|a| a.to_string()), user.map(|u| u.to_string()));
        self.write(move |c| {
            c.execute(
                "DELETE FROM outbound_tokens WHERE project_id = ?1 AND owner_kind = 'user' \
                 AND (?2 IS NULL OR app_id = ?2) AND (?3 IS NULL OR owner_id = ?3)",
                params![project.as_str(), app, user],
            )
            .map(|n| n as u64)
            .map_err(storage_err)
        })
        .await
    }

    async fn delete_outbound_token(&self, project: &ProjectId, id: &str) -> Result<bool> {
        let (project, id) = (project.clone(), id.to_owned());
        self.write(move |c| {
            c.execute(
                "DELETE FROM outbound_tokens WHERE project_id = ?1 AND id = ?2",
                params![project.as_str(), id],
            )
            .map(|n| n > 0)
            .map_err(storage_err)
        })
        .await
    }

    async fn apps_with_user_token(
        &self,
        project: &ProjectId,
        user: &UserId,
        tenant: Option<&str>,
    ) -> Result<Vec<String>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT DISTINCT app_id FROM outbound_tokens WHERE project_id = ?1 AND owner_kind = 'user' \
                     AND owner_id = ?2 AND reauth_required = 0 AND (?3 IS NULL OR tenant_id = ?3) ORDER BY app_id",
                )
                .map_err(storage_err)?;
            let rows = s.query_map(params![project.as_str(), user.as_str(), tenant], |r| r.get(0)).map_err(storage_err)?;
            rows.collect::<rusqlite::Result<Vec<String>>>().map_err(storage_err)
        })
    }
}
