//! Provider tokens (sealed by the domain before they get here).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::store::{TokenLookup, TokenStore};
use idvault_core::user::UserRef;
use idvault_core::vault::SealedToken;

use crate::rows::to_json;
use crate::{storage_err, SqliteStore};

type TokenRow = (
    String,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

const TOKEN_BY_LOGIN: &str =
    "SELECT u.user_id, t.provider_user_id, t.access_token, t.refresh_token, t.expiration, \
     t.scopes, t.updated_ms FROM user_login_ids l JOIN users u ON u.pk = l.user_pk \
     LEFT JOIN provider_tokens t ON t.user_pk = u.pk AND t.provider = ?3 \
     WHERE l.project_id = ?1 AND l.login_id = ?2";

const TOKEN_BY_ID: &str =
    "SELECT u.user_id, t.provider_user_id, t.access_token, t.refresh_token, t.expiration, \
     t.scopes, t.updated_ms FROM users u \
     LEFT JOIN provider_tokens t ON t.user_pk = u.pk AND t.provider = ?3 \
     WHERE u.project_id = ?1 AND u.user_id = ?2";

fn lookup_from_row(provider: &ProviderName, row: Option<TokenRow>) -> Result<TokenLookup> {
    let Some((user_id, provider_user_id, access, refresh, expiration, scopes, updated_ms)) = row else {
        return Ok(TokenLookup::NoUser);
    };
    let (Some(provider_user_id), Some(access_token), Some(expiration), Some(scopes), Some(updated_ms)) =
        (provider_user_id, access, expiration, scopes, updated_ms)
    else {
        return Ok(TokenLookup::NoToken);
    };
    let scopes: Vec<String> = serde_json::from_str(&scopes)
        .map_err(|_| Error::Storage("token scopes column is not a JSON array".into()))?;
    Ok(TokenLookup::Found {
        user_id: UserId::parse(&user_id)?,
        token: SealedToken {
            provider: provider.clone(),
            provider_user_id,
            access_token,
            refresh_token: refresh,
            expiration,
            scopes,
            updated_ms,
        },
    })
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
                    s.query_row(params![project.as_str(), key, provider.as_str()], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ))
                    })
                    .optional()
                })
                .map_err(storage_err)
        })?;
        lookup_from_row(provider, row)
    }

    async fn put_token(&self, project: &ProjectId, user_id: &UserId, token: &SealedToken) -> Result<bool> {
        let (project, user_id, token) = (project.clone(), user_id.clone(), token.clone());
        self.write(move |c| {
            let tx = c.transaction().map_err(storage_err)?;
            let found: Option<(i64, String)> = tx
                .query_row(
                    "SELECT pk, oauth_providers FROM users WHERE project_id = ?1 AND user_id = ?2",
                    params![project.as_str(), user_id.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(storage_err)?;
            let Some((pk, providers)) = found else { return Ok(false) };
            tx.execute(
                "INSERT INTO provider_tokens (user_pk, provider, provider_user_id, access_token, refresh_token, \
                 expiration, scopes, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (user_pk, provider) DO UPDATE SET provider_user_id = excluded.provider_user_id, \
                 access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
                 expiration = excluded.expiration, scopes = excluded.scopes, updated_ms = excluded.updated_ms",
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
            let mut list: Vec<String> = serde_json::from_str(&providers).unwrap_or_default();
            if !list.iter().any(|p| p == token.provider.as_str()) {
                list.push(token.provider.to_string());
                tx.execute(
                    "UPDATE users SET oauth_providers = ?2, modified_ms = ?3 WHERE pk = ?1",
                    params![pk, to_json(&list)?, token.updated_ms],
                )
                .map_err(storage_err)?;
            }
            tx.commit().map_err(storage_err)?;
            Ok(true)
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
            let tx = c.transaction().map_err(storage_err)?;
            let found: Option<(i64, String)> = tx
                .query_row(
                    "SELECT pk, oauth_providers FROM users WHERE project_id = ?1 AND user_id = ?2",
                    params![project.as_str(), user_id.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(storage_err)?;
            let Some((pk, providers)) = found else {
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
            tx.execute(
                "UPDATE users SET oauth_providers = ?2 WHERE pk = ?1",
                params![pk, to_json(&list)?],
            )
            .map_err(storage_err)?;
            tx.commit().map_err(storage_err)?;
            Ok(deleted > 0)
        })
        .await
    }
}
