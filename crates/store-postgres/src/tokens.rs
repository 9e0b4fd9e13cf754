//! Provider tokens (sealed by the domain before they get here).

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use idvault_core::error::Result;
use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::store::{TokenLookup, TokenStore};
use idvault_core::user::UserRef;
use idvault_core::vault::{JoinedTokenRow, SealedToken};

use crate::rows::col;
use crate::{pg_err, PgStore};

/// The token columns, all NULL when the user exists but has no token for the provider.
macro_rules! token_columns {
    () => {
        "u.user_id, t.provider_user_id, t.access_token, t.refresh_token, t.expiration, t.scopes, \
         t.updated_ms, t.version, t.reauth_required"
    };
}

pub(crate) const TOKEN_BY_LOGIN: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM user_login_ids l JOIN users u ON u.pk = l.user_pk \
     LEFT JOIN provider_tokens t ON t.user_pk = u.pk AND t.provider = $3 \
     WHERE l.project_id = $1 AND l.login_id = $2"
);

const TOKEN_BY_ID: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM users u LEFT JOIN provider_tokens t ON t.user_pk = u.pk AND t.provider = $3 \
     WHERE u.project_id = $1 AND u.user_id = $2"
);

/// The joined row's columns, in `token_columns!` order.
fn joined_row(row: &Row) -> Result<JoinedTokenRow> {
    Ok(JoinedTokenRow {
        user_id: col(row, 0)?,
        provider_user_id: col(row, 1)?,
        access_token: col(row, 2)?,
        refresh_token: col(row, 3)?,
        expiration: col(row, 4)?,
        scopes: col::<Option<Json<Vec<String>>>>(row, 5)?.map(|Json(scopes)| scopes),
        updated_ms: col(row, 6)?,
        version: col(row, 7)?,
        reauth_required: col(row, 8)?,
    })
}

/// The user's row key, if the user exists. The row is share-locked (`FOR KEY SHARE`) so that the
/// user cannot be deleted before the transaction writes rows that refer to it.
pub(crate) async fn user_pk(
    tx: &Transaction<'_>,
    project: &ProjectId,
    user_id: &UserId,
) -> Result<Option<i64>> {
    let stmt = tx
        .prepare_cached("SELECT pk FROM users WHERE project_id = $1 AND user_id = $2 FOR KEY SHARE")
        .await
        .map_err(pg_err)?;
    tx.query_opt(&stmt, &[&project.as_str(), &user_id.as_str()])
        .await
        .map_err(pg_err)?
        .map(|r| col(&r, 0))
        .transpose()
}

/// Inserts or replaces a token row (clearing the re-authentication flag, bumping the version)
/// and adds the provider to the user's list, in one statement each, so that concurrent writes
/// for different providers never drop each other's entry.
pub(crate) async fn upsert_token(tx: &Transaction<'_>, pk: i64, token: &SealedToken) -> Result<()> {
    let upsert = tx
        .prepare_cached(
            "INSERT INTO provider_tokens (user_pk, provider, provider_user_id, access_token, refresh_token, \
             expiration, scopes, updated_ms, version, reauth_required) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, FALSE) \
             ON CONFLICT (user_pk, provider) DO UPDATE SET provider_user_id = excluded.provider_user_id, \
             access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
             expiration = excluded.expiration, scopes = excluded.scopes, updated_ms = excluded.updated_ms, \
             version = provider_tokens.version + 1, reauth_required = FALSE",
        )
        .await
        .map_err(pg_err)?;
    tx.execute(
        &upsert,
        &[
            &pk,
            &token.provider.as_str(),
            &token.provider_user_id,
            &token.access_token,
            &token.refresh_token,
            &token.expiration,
            &Json(&token.scopes),
            &token.updated_ms,
        ],
    )
    .await
    .map_err(pg_err)?;
    let mark = tx
        .prepare_cached(
            "UPDATE users SET oauth_providers = oauth_providers || jsonb_build_array($2::text), modified_ms = $3 \
             WHERE pk = $1 AND NOT (oauth_providers ? $2::text)",
        )
        .await
        .map_err(pg_err)?;
    tx.execute(&mark, &[&pk, &token.provider.as_str(), &token.updated_ms]).await.map_err(pg_err)?;
    Ok(())
}

#[async_trait]
impl TokenStore for PgStore {
    async fn get_token(
        &self,
        project: &ProjectId,
        user: &UserRef,
        provider: &ProviderName,
    ) -> Result<TokenLookup> {
        let (sql, key) = match user {
            UserRef::LoginId(l) => (TOKEN_BY_LOGIN, l.as_str()),
            UserRef::UserId(id) => (TOKEN_BY_ID, id.as_str()),
        };
        let c = self.conn().await?;
        let stmt = c.prepare_cached(sql).await.map_err(pg_err)?;
        let row = c.query_opt(&stmt, &[&project.as_str(), &key, &provider.as_str()]).await.map_err(pg_err)?;
        TokenLookup::from_joined_row(provider, row.as_ref().map(joined_row).transpose()?)
    }

    async fn put_token(&self, project: &ProjectId, user_id: &UserId, token: &SealedToken) -> Result<bool> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let Some(pk) = user_pk(&tx, project, user_id).await? else {
            return Ok(false);
        };
        upsert_token(&tx, pk, token).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(true)
    }

    async fn replace_refreshed_token(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        token: &SealedToken,
        expected_version: i64,
    ) -> Result<bool> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "UPDATE provider_tokens SET access_token = $4, refresh_token = $5, expiration = $6, scopes = $7, \
                 updated_ms = $8, version = version + 1, reauth_required = FALSE \
                 WHERE user_pk = (SELECT pk FROM users WHERE project_id = $1 AND user_id = $2) \
                 AND provider = $3 AND version = $9",
            )
            .await
            .map_err(pg_err)?;
        c.execute(
            &stmt,
            &[
                &project.as_str(),
                &user_id.as_str(),
                &token.provider.as_str(),
                &token.access_token,
                &token.refresh_token,
                &token.expiration,
                &Json(&token.scopes),
                &token.updated_ms,
                &expected_version,
            ],
        )
        .await
        .map(|n| n == 1)
        .map_err(pg_err)
    }

    async fn flag_reauth_required(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        provider: &ProviderName,
        expected_version: i64,
    ) -> Result<bool> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "UPDATE provider_tokens SET reauth_required = TRUE, version = version + 1 \
                 WHERE user_pk = (SELECT pk FROM users WHERE project_id = $1 AND user_id = $2) \
                 AND provider = $3 AND version = $4",
            )
            .await
            .map_err(pg_err)?;
        c.execute(&stmt, &[&project.as_str(), &user_id.as_str(), &provider.as_str(), &expected_version])
            .await
            .map(|n| n == 1)
            .map_err(pg_err)
    }

    async fn delete_token(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        provider: &ProviderName,
    ) -> Result<bool> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let Some(pk) = user_pk(&tx, project, user_id).await? else {
            return Ok(false);
        };
        let deleted = tx
            .execute(
                "DELETE FROM provider_tokens WHERE user_pk = $1 AND provider = $2",
                &[&pk, &provider.as_str()],
            )
            .await
            .map_err(pg_err)?;
        tx.execute(
            "UPDATE users SET oauth_providers = oauth_providers - $2::text WHERE pk = $1 AND oauth_providers ? $2::text",
            &[&pk, &provider.as_str()],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(deleted > 0)
    }
}
