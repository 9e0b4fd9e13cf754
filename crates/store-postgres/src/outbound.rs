//! Outbound app tokens (sealed by the domain before they get here).

use async_trait::async_trait;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::outbound::{SealedOutboundToken, TokenOwner};
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

use crate::rows::{col, json_col};
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
