//! Provider tokens (sealed by the domain before they get here).

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::store::{TokenLookup, TokenStore};
use idvault_core::user::UserRef;
use idvault_core::vault::{JoinedTokenRow, SealedToken};

use crate::rows::to_json;
use crate::{storage_err, SqliteStore};

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
     LEFT JOIN provider_tokens t ON t.user_pk = u.pk AND t.provider = ?3 \
     WHERE l.project_id = ?1 AND l.login_id = ?2"
);

const TOKEN_BY_ID: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM users u LEFT JOIN provider_tokens t ON t.user_pk = u.pk AND t.provider = ?3 \
     WHERE u.project_id = ?1 AND u.user_id = ?2"
);

/// The joined row's columns, in `token_columns!` order (scopes as JSON text, decoded later).
fn token_row(r: &Row<'_>) -> rusqlite::Result<(JoinedTokenRow, Option<String>)> {
    let row = JoinedTokenRow {
        user_id: r.get(0)?,
        provider_user_id: r.get(1)?,
        access_token: r.get(2)?,
        refresh_token: r.get(3)?,
        expiration: r.get(4)?,
        scopes: None,
        updated_ms: r.get(6)?,
        version: r.get(7)?,
        reauth_required: r.get(8)?,
    };
    Ok((row, r.get(5)?))
}

/// Decodes the scopes column of a joined row.
fn with_scopes((mut row, scopes): (JoinedTokenRow, Option<String>)) -> Result<JoinedTokenRow> {
    row.scopes = scopes
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|_| Error::Storage("token scopes column is not a JSON array".into()))?;
    Ok(row)
}

/// The user's row key and provider list, if the user exists.
pub(crate) fn user_pk(
    tx: &Connection,
    project: &ProjectId,
    user_id: &UserId,
) -> Result<Option<(i64, String)>> {
    tx.query_row(
        "SELECT pk, oauth_providers FROM users WHERE project_id = ?1 AND user_id = ?2",
        params![project.as_str(), user_id.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(storage_err)
}

/// Inserts or replaces a token row (clearing the re-authentication flag, bumping the version)
/// and adds the provider to the user's list.
pub(crate) fn upsert_token(
    tx: &Connection,
    pk: i64,
    providers_json: &str,
    token: &SealedToken,
) -> Result<()> {
    tx.execute(
        "INSERT INTO provider_tokens (user_pk, provider, provider_user_id, access_token, refresh_token, \
         expiration, scopes, updated_ms, version, reauth_required) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, 0) \
         ON CONFLICT (user_pk, provider) DO UPDATE SET provider_user_id = excluded.provider_user_id, \
         access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
         expiration = excluded.expiration, scopes = excluded.scopes, updated_ms = excluded.updated_ms, \
         version = provider_tokens.version + 1, reauth_required = 0",
        params![
            pk,
            token.provider.as_str(),
            token.provider_user_id,
            token.access_token,
            token.refresh_token,
            token.expiration,
            to_json(&token.scopes)?,
            token.updated_ms
        ],
    )
    .map_err(storage_err)?;
    let mut list: Vec<String> = serde_json::from_str(providers_json).unwrap_or_default();
    if !list.iter().any(|p| p == token.provider.as_str()) {
        list.push(token.provider.to_string());
        tx.execute(
            "UPDATE users SET oauth_providers = ?2, modified_ms = ?3 WHERE pk = ?1",
            params![pk, to_json(&list)?, token.updated_ms],
        )
        .map_err(storage_err)?;
    }
    Ok(())
}

#[async_trait]
impl TokenStore for SqliteStore {
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
        let row = self.read(|c| {
            c.prepare_cached(sql)
                .and_then(|mut s| {
                    s.query_row(params![project.as_str(), key, provider.as_str()], token_row).optional()
                })
                .map_err(storage_err)
        })?;
        TokenLookup::from_joined_row(provider, row.map(with_scopes).transpose()?)
    }

    async fn put_token(&self, project: &ProjectId, user_id: &UserId, token: &SealedToken) -> Result<bool> {
        let (project, user_id, token) = (project.clone(), user_id.clone(), token.clone());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let Some((pk, providers)) = user_pk(&tx, &project, &user_id)? else {
                return Ok(false);
            };
            upsert_token(&tx, pk, &providers, &token)?;
            tx.commit().map_err(storage_err)?;
            Ok(true)
        })
        .await
    }

    async fn replace_refreshed_token(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        token: &SealedToken,
        expected_version: i64,
    ) -> Result<bool> {
        let (project, user_id, token) = (project.clone(), user_id.clone(), token.clone());
        self.write(move |c| {
            c.execute(
                "UPDATE provider_tokens SET access_token = ?4, refresh_token = ?5, expiration = ?6, scopes = ?7, \
                 updated_ms = ?8, version = version + 1, reauth_required = 0 \
                 WHERE user_pk = (SELECT pk FROM users WHERE project_id = ?1 AND user_id = ?2) \
                 AND provider = ?3 AND version = ?9",
                params![
                    project.as_str(),
                    user_id.as_str(),
                    token.provider.as_str(),
                    token.access_token,
                    token.refresh_token,
                    token.expiration,
                    to_json(&token.scopes)?,
                    token.updated_ms,
                    expected_version
                ],
            )
            .map(|n| n == 1)
            .map_err(storage_err)
        })
        .await
    }

    async fn flag_reauth_required(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        provider: &ProviderName,
        expected_version: i64,
    ) -> Result<bool> {
        let (project, user_id, provider) = (project.clone(), user_id.clone(), provider.clone());
        self.write(move |c| {
            c.execute(
                "UPDATE provider_tokens SET reauth_required = 1, version = version + 1 \
                 WHERE user_pk = (SELECT pk FROM users WHERE project_id = ?1 AND user_id = ?2) \
                 AND provider = ?3 AND version = ?4",
                params![project.as_str(), user_id.as_str(), provider.as_str(), expected_version],
            )
            .map(|n| n == 1)
            .map_err(storage_err)
        })
        .await
    }

    async fn delete_token(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        provider: &ProviderName,
    ) -> Result<bool> {
        let (project, user_id, provider) = (project.clone(), user_id.clone(), provider.clone());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let Some((pk, providers)) = user_pk(&tx, &project, &user_id)? else {
                return Ok(false);
            };
            let deleted = tx
                .execute(
                    "DELETE FROM provider_tokens WHERE user_pk = ?1 AND provider = ?2",
                    params![pk, provider.as_str()],
                )
                .map_err(storage_err)?;
            let mut list: Vec<String> = serde_json::from_str(&providers).unwrap_or_default();
            list.retain(|p| p != provider.as_str());
            tx.execute("UPDATE users SET oauth_providers = ?2 WHERE pk = ?1", params![pk, to_json(&list)?])
                .map_err(storage_err)?;
            tx.commit().map_err(storage_err)?;
            Ok(deleted > 0)
        })
        .await
    }
}
