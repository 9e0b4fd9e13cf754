//! Outbound app tokens (sealed by the domain before they get here).

use std::collections::HashSet;

use async_trait::async_trait;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::outbound::{OverfullSlot, SealedOutboundToken, TokenOwner};
use idvault_core::store::OutboundTokenStore;

impl PgStore {
    /// Every outbound token of a project, for `idvault export`.
    pub(crate) async fn export_outbound(&self, project: &ProjectId) -> Result<Vec<SealedOutboundToken>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM outbound_tokens WHERE project_id = $1 ORDER BY id COLLATE \"C\""
                ),
                &[&project.as_str()],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(to_token).collect()
    }
}

use crate::rows::{col, col as col_at, json_col};
use crate::{pg_err, PgStore};

const COLUMNS: &str = "id, app_id, owner_kind, owner_id, tenant_id, scopes, access_token, refresh_token, \
     access_token_type, expiration, granted_by, external_identifier, token_sub, last_refresh_ms, \
     last_refresh_error, created_ms, updated_ms, version, reauth_required";

fn to_token(r: &Row) -> Result<SealedOutboundToken> {
    let owner_kind: String = col(r, 2)?;
    let owner_id: String = col(r, 3)?;
    let owner = match owner_kind.as_str() {
        "user" => TokenOwner::User(UserId::parse(&owner_id)?),
        "tenant" => TokenOwner::Tenant(owner_id),
        _ => return Err(Error::Storage("outbound token owner kind is neither user nor tenant".into())),
    };
    let app_id: String = col(r, 1)?;
    Ok(SealedOutboundToken {
        id: col(r, 0)?,
        app_id: ProviderName::parse(&app_id)?,
        owner,
        tenant_id: col(r, 4)?,
        scopes: json_col(r, 5)
            .map_err(|_| Error::Storage("outbound token scopes are not a JSON array".into()))?,
        access_token: col(r, 6)?,
        refresh_token: col(r, 7)?,
        access_token_type: col(r, 8)?,
        expiration: col(r, 9)?,
        granted_by: col(r, 10)?,
        external_identifier: col(r, 11)?,
        token_sub: col(r, 12)?,
        last_refresh_ms: col(r, 13)?,
        last_refresh_error: col(r, 14)?,
        created_ms: col(r, 15)?,
        updated_ms: col(r, 16)?,
        version: col(r, 17)?,
        reauth_required: col(r, 18)?,
    })
}

/// Tokens per multi-row upsert of a batch (21 array parameters of this many elements).
const BATCH_CHUNK: usize = 5_000;

/// A chunk of a batch upload: a token of an existing slot replaces its secrets and metadata,
/// keeping its id and created time, and its updated time is later than every other token of the
/// owner for the app (the rules of single uploads). The statement sees the table as it was before
/// it, so `rank` (1, 2, ... among the chunk's tokens of one owner and app) keeps them apart in
/// batch order.
const BATCH_UPSERT: &str =
    "INSERT INTO outbound_tokens (project_id, id, app_id, owner_kind, owner_id, tenant_id, \
     user_pk, owner_tenant, scope_key, scopes, access_token, refresh_token, access_token_type, expiration, \
     granted_by, external_identifier, token_sub, last_refresh_ms, last_refresh_error, created_ms, \
     updated_ms, version, reauth_required) \
     SELECT $1, t.id, t.app_id, t.owner_kind, t.owner_id, t.tenant_id, \
     (SELECT u.pk FROM users u WHERE u.project_id = $1 AND u.user_id = t.user_id), t.owner_tenant, \
     t.scope_key, t.scopes::jsonb, t.access_token, t.refresh_token, t.access_token_type, t.expiration, \
     t.granted_by, t.external_identifier, t.token_sub, t.last_refresh_ms, t.last_refresh_error, \
     t.created_ms, \
     GREATEST(t.updated_ms, (SELECT COALESCE(MAX(o.updated_ms), 0) FROM outbound_tokens o \
     WHERE o.project_id = $1 AND o.app_id = t.app_id AND o.owner_kind = t.owner_kind \
     AND o.owner_id = t.owner_id) + t.rank), 1, FALSE \
     FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
     $9::text[], $10::text[], $11::bytea[], $12::bytea[], $13::text[], $14::int8[], $15::text[], \
     $16::text[], $17::text[], $18::int8[], $19::text[], $20::int8[], $21::int8[], $22::int8[]) \
     AS t(id, app_id, owner_kind, owner_id, tenant_id, user_id, owner_tenant, scope_key, scopes, \
     access_token, refresh_token, access_token_type, expiration, granted_by, external_identifier, \
     token_sub, last_refresh_ms, last_refresh_error, created_ms, updated_ms, rank) \
     ON CONFLICT (project_id, app_id, owner_kind, owner_id, tenant_id, scope_key) DO UPDATE SET \
     access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
     access_token_type = excluded.access_token_type, expiration = excluded.expiration, \
     granted_by = excluded.granted_by, external_identifier = excluded.external_identifier, \
     token_sub = excluded.token_sub, last_refresh_ms = excluded.last_refresh_ms, \
     last_refresh_error = '', updated_ms = excluded.updated_ms, \
     version = outbound_tokens.version + 1, reauth_required = FALSE";

#[async_trait]
impl OutboundTokenStore for PgStore {
    async fn list_outbound_tokens(
        &self,
        project: &ProjectId,
        app: &ProviderName,
        owner: &TokenOwner,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SealedOutboundToken>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbound_tokens WHERE project_id = $1 AND app_id = $2 \
                 AND owner_kind = $3 AND owner_id = $4 AND ($5::text IS NULL OR tenant_id = $5) \
                 ORDER BY updated_ms DESC, id DESC LIMIT $6"
            ))
            .await
            .map_err(pg_err)?;
        let rows = c
            .query(&stmt, &[&project.as_str(), &app.as_str(), &owner.kind(), &owner.id(), &tenant, &limit])
            .await
            .map_err(pg_err)?;
        rows.iter().map(to_token).collect()
    }

    async fn get_outbound_token(&self, project: &ProjectId, id: &str) -> Result<Option<SealedOutboundToken>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbound_tokens WHERE project_id = $1 AND id = $2"
            ))
            .await
            .map_err(pg_err)?;
        c.query_opt(&stmt, &[&project.as_str(), &id]).await.map_err(pg_err)?.map(|r| to_token(&r)).transpose()
    }

    async fn put_outbound_token(
        &self,
        project: &ProjectId,
        t: &SealedOutboundToken,
        max_per_owner: usize,
    ) -> Result<Option<String>> {
        let max = i64::try_from(max_per_owner).unwrap_or(i64::MAX);
        let scope_key = t.scope_key();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        // Other scope sets the owner holds: a new one beyond the bound is refused. (Two concurrent
        // uploads of new scope sets may each see room for one: the bound can be passed by the
        // number of concurrent uploads, never by a sequence of them.)
        let held: i64 = tx
            .query_one(
                "SELECT count(*) FROM outbound_tokens WHERE project_id = $1 AND app_id = $2 AND owner_kind = $3 \
                 AND owner_id = $4 AND tenant_id = $5 AND scope_key <> $6",
                &[&project.as_str(), &t.app_id.as_str(), &t.owner.kind(), &t.owner.id(), &t.tenant_id, &scope_key],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(pg_err)?;
        if held >= max {
            return Ok(None);
        }
        let (user_id, owner_tenant) = match &t.owner {
            TokenOwner::User(u) => (Some(u.as_str()), None),
            TokenOwner::Tenant(tenant) => (None, Some(tenant.as_str())),
        };
        let id: String = tx
            .query_one(
                "INSERT INTO outbound_tokens (project_id, id, app_id, owner_kind, owner_id, tenant_id, user_pk, \
                 owner_tenant, scope_key, scopes, access_token, refresh_token, access_token_type, expiration, \
                 granted_by, external_identifier, token_sub, last_refresh_ms, last_refresh_error, created_ms, \
                 updated_ms, version, reauth_required) \
                 VALUES ($1, $2, $3, $4, $5, $6, \
                 (SELECT pk FROM users WHERE project_id = $1 AND user_id = $7), $8, $9, $10, $11, $12, $13, \
                 $14, $15, $16, $17, $18, $19, $20, \
                 GREATEST($21, (SELECT COALESCE(MAX(updated_ms), 0) + 1 FROM outbound_tokens \
                 WHERE project_id = $1 AND app_id = $3 AND owner_kind = $4 AND owner_id = $5)), 1, FALSE) \
                 ON CONFLICT (project_id, app_id, owner_kind, owner_id, tenant_id, scope_key) DO UPDATE SET \
                 access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
                 access_token_type = excluded.access_token_type, expiration = excluded.expiration, \
                 granted_by = excluded.granted_by, external_identifier = excluded.external_identifier, \
                 token_sub = excluded.token_sub, last_refresh_ms = excluded.last_refresh_ms, \
                 last_refresh_error = '', updated_ms = excluded.updated_ms, \
                 version = outbound_tokens.version + 1, reauth_required = FALSE \
                 RETURNING id",
                &[
                    &project.as_str(),
                    &t.id,
                    &t.app_id.as_str(),
                    &t.owner.kind(),
                    &t.owner.id(),
                    &t.tenant_id,
                    &user_id,
                    &owner_tenant,
                    &scope_key,
                    &Json(&t.scopes),
                    &t.access_token,
                    &t.refresh_token,
                    &t.access_token_type,
                    &t.expiration,
                    &t.granted_by,
                    &t.external_identifier,
                    &t.token_sub,
                    &t.last_refresh_ms,
                    &t.last_refresh_error,
                    &t.created_ms,
                    &t.updated_ms,
                ],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(Some(id))
    }

    async fn put_outbound_tokens(
        &self,
        project: &ProjectId,
        tokens: Vec<SealedOutboundToken>,
        max_per_owner: usize,
    ) -> Result<Vec<OverfullSlot>> {
        let max = i64::try_from(max_per_owner).unwrap_or(i64::MAX);
        // Rows are locked in (app, owner) order, so two concurrent batches over the same owners
        // wait for each other instead of deadlocking; the sort is stable, so an owner's tokens
        // keep their batch order (which `rank` turns into their order of recency).
        let mut tokens = tokens;
        tokens.sort_by(|a, b| {
            (a.app_id.as_str(), a.owner.kind(), a.owner.id()).cmp(&(
                b.app_id.as_str(),
                b.owner.kind(),
                b.owner.id(),
            ))
        });
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let upsert = tx.prepare_cached(BATCH_UPSERT).await.map_err(pg_err)?;
        // Multi-row statements (the columns as arrays, UNNEST'ed): one round trip per chunk
        // instead of one per token.
        for chunk in tokens.chunks(BATCH_CHUNK) {
            let col = |f: fn(&SealedOutboundToken) -> &str| chunk.iter().map(f).collect::<Vec<&str>>();
            let scope_keys: Vec<String> = chunk.iter().map(SealedOutboundToken::scope_key).collect();
            let scopes = chunk
                .iter()
                .map(|t| serde_json::to_string(&t.scopes))
                .collect::<std::result::Result<Vec<String>, _>>()
                .map_err(|e| Error::Internal(format!("encoding scopes: {e}")))?;
            let user_ids: Vec<Option<&str>> = chunk
                .iter()
                .map(|t| match &t.owner {
                    TokenOwner::User(u) => Some(u.as_str()),
                    TokenOwner::Tenant(_) => None,
                })
                .collect();
            let owner_tenants: Vec<Option<&str>> = chunk
                .iter()
                .map(|t| match &t.owner {
                    TokenOwner::User(_) => None,
                    TokenOwner::Tenant(tenant) => Some(tenant.as_str()),
                })
                .collect();
            let access: Vec<Option<&[u8]>> = chunk.iter().map(|t| t.access_token.as_deref()).collect();
            let refresh: Vec<Option<&[u8]>> = chunk.iter().map(|t| t.refresh_token.as_deref()).collect();
            let int = |f: fn(&SealedOutboundToken) -> i64| chunk.iter().map(f).collect::<Vec<i64>>();
            let mut seen: std::collections::HashMap<(&str, &str, &str), i64> =
                std::collections::HashMap::new();
            let ranks: Vec<i64> = chunk
                .iter()
                .map(|t| {
                    let rank = seen.entry((t.app_id.as_str(), t.owner.kind(), t.owner.id())).or_insert(0);
                    *rank += 1;
                    *rank
                })
                .collect();
            tx.execute(
                &upsert,
                &[
                    &project.as_str(),
                    &col(|t| &t.id),
                    &col(|t| t.app_id.as_str()),
                    &col(|t| t.owner.kind()),
                    &col(|t| t.owner.id()),
                    &col(|t| &t.tenant_id),
                    &user_ids,
                    &owner_tenants,
                    &scope_keys,
                    &scopes,
                    &access,
                    &refresh,
                    &col(|t| &t.access_token_type),
                    &int(|t| t.expiration),
                    &col(|t| &t.granted_by),
                    &col(|t| &t.external_identifier),
                    &col(|t| &t.token_sub),
                    &int(|t| t.last_refresh_ms),
                    &col(|t| &t.last_refresh_error),
                    &int(|t| t.created_ms),
                    &int(|t| t.updated_ms),
                    &ranks,
                ],
            )
            .await
            .map_err(pg_err)?;
        }
        // The owners of the batch that now hold too many tokens of an app and tenant.
        let mut seen = std::collections::HashSet::new();
        let groups: Vec<&SealedOutboundToken> = tokens
            .iter()
            .filter(|t| seen.insert((t.app_id.as_str(), t.owner.kind(), t.owner.id(), t.tenant_id.as_str())))
            .collect();
        let col = |f: fn(&SealedOutboundToken) -> &str| groups.iter().map(|t| f(t)).collect::<Vec<&str>>();
        let rows = tx
            .query(
                "SELECT g.n FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY \
                 AS g(app_id, owner_kind, owner_id, tenant_id, n) \
                 WHERE (SELECT count(*) FROM outbound_tokens o WHERE o.project_id = $1 AND o.app_id = g.app_id \
                 AND o.owner_kind = g.owner_kind AND o.owner_id = g.owner_id AND o.tenant_id = g.tenant_id) > $6",
                &[
                    &project.as_str(),
                    &col(|t| t.app_id.as_str()),
                    &col(|t| t.owner.kind()),
                    &col(|t| t.owner.id()),
                    &col(|t| &t.tenant_id),
                    &max,
                ],
            )
            .await
            .map_err(pg_err)?;
        let mut overfull = Vec::with_capacity(rows.len());
        for r in &rows {
            let n: i64 = col_at(r, 0)?;
            let t = usize::try_from(n - 1)
                .ok()
                .and_then(|i| groups.get(i))
                .ok_or_else(|| Error::Internal("ordinality out of range".into()))?;
            overfull.push(OverfullSlot {
                app_id: t.app_id.clone(),
                owner: t.owner.clone(),
                tenant_id: t.tenant_id.clone(),
            });
        }
        if overfull.is_empty() {
            tx.commit().await.map_err(pg_err)?;
        }
        // Otherwise the transaction is dropped: rolled back, nothing written.
        Ok(overfull)
    }

    async fn existing_user_ids(&self, project: &ProjectId, user_ids: &[String]) -> Result<HashSet<String>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT user_id FROM users WHERE project_id = $1 AND user_id = ANY($2::text[])",
                &[&project.as_str(), &user_ids],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(|r| col_at(r, 0)).collect()
    }

    async fn replace_refreshed_outbound_token(
        &self,
        project: &ProjectId,
        t: &SealedOutboundToken,
        expected_version: i64,
    ) -> Result<bool> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE outbound_tokens SET access_token = $3, refresh_token = $4, expiration = $5, \
             last_refresh_ms = $6, last_refresh_error = $7, updated_ms = $8, version = version + 1, \
             reauth_required = FALSE WHERE project_id = $1 AND id = $2 AND version = $9",
            &[
                &project.as_str(),
                &t.id,
                &t.access_token,
                &t.refresh_token,
                &t.expiration,
                &t.last_refresh_ms,
                &t.last_refresh_error,
                &t.updated_ms,
                &expected_version,
            ],
        )
        .await
        .map(|n| n == 1)
        .map_err(pg_err)
    }

    async fn flag_outbound_reauth(
        &self,
        project: &ProjectId,
        id: &str,
        expected_version: i64,
        error: &str,
        at_ms: i64,
    ) -> Result<bool> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE outbound_tokens SET reauth_required = TRUE, last_refresh_error = $4, last_refresh_ms = $5, \
             version = version + 1 WHERE project_id = $1 AND id = $2 AND version = $3",
            &[&project.as_str(), &id, &expected_version, &error, &at_ms],
        )
        .await
        .map(|n| n == 1)
        .map_err(pg_err)
    }

    async fn delete_user_outbound_tokens(
        &self,
        project: &ProjectId,
        app: Option<&ProviderName>,
        user: Option<&UserId>,
    ) -> Result<u64> {
        let c = self.conn().await?;
        c.execute(
            "DELETE FROM outbound_tokens WHERE project_id = $1 AND owner_kind = 'user' \
             AND ($2::text IS NULL OR app_id = $2) AND ($3::text IS NULL OR owner_id = $3)",
            &[&project.as_str(), &app.map(ProviderName::as_str), &user.map(UserId::as_str)],
        )
        .await
        .map_err(pg_err)
    }

    async fn delete_outbound_token(&self, project: &ProjectId, id: &str) -> Result<bool> {
        let c = self.conn().await?;
        c.execute("DELETE FROM outbound_tokens WHERE project_id = $1 AND id = $2", &[&project.as_str(), &id])
            .await
            .map(|n| n > 0)
            .map_err(pg_err)
    }

    async fn apps_with_user_token(
        &self,
        project: &ProjectId,
        user: &UserId,
        tenant: Option<&str>,
    ) -> Result<Vec<String>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT app_id FROM outbound_tokens WHERE project_id = $1 AND owner_kind = 'user' \
                 AND owner_id = $2 AND NOT reauth_required AND ($3::text IS NULL OR tenant_id = $3) \
                 GROUP BY app_id ORDER BY app_id COLLATE \"C\"",
                &[&project.as_str(), &user.as_str(), &tenant],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(|r| col(r, 0)).collect()
    }
}
