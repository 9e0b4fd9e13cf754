//! Sign-in bookkeeping: signing keys, OAuth states, one-time codes, sessions, identities,
//! project sign-in settings.

use async_trait::async_trait;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use idvault_core::auth::{AuthCode, OAuthState, ProjectAuthSettings, SessionRecord, SigningKeyRecord};
use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::store::{AuthStore, SignIn, SignInUser};

use crate::directory::lock_directory;
use crate::lock::advisory_key;
use crate::rows::col;
use crate::tokens::{upsert_token, user_pk};
use crate::users::{insert_user, lock_login_ids};
use crate::{pg_err, PgStore};

fn hash_from(r: &Row, idx: usize) -> Result<[u8; 32]> {
    let v: Vec<u8> = col(r, idx)?;
    v.as_slice().try_into().map_err(|_| Error::Storage("stored hash has the wrong length".into()))
}

fn to_state(r: &Row) -> Result<OAuthState> {
    let project: String = col(r, 1)?;
    let provider: String = col(r, 2)?;
    Ok(OAuthState {
        state_hash: hash_from(r, 0)?,
        project_id: ProjectId::parse(&project)?,
        provider: ProviderName::parse(&provider)?,
        redirect_url: col(r, 3)?,
        code_verifier: col(r, 4)?,
        nonce: col(r, 5)?,
        created_ms: col(r, 6)?,
        expires_ms: col(r, 7)?,
        connect: col::<Option<String>>(r, 8)?
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .map_err(|_| Error::Storage("a pending connect is not valid JSON".into()))?,
    })
}

fn to_code(r: &Row) -> Result<AuthCode> {
    let project: String = col(r, 1)?;
    let user_id: String = col(r, 2)?;
    Ok(AuthCode {
        code_hash: hash_from(r, 0)?,
        project_id: ProjectId::parse(&project)?,
        user_id: UserId::parse(&user_id)?,
        first_seen: col(r, 3)?,
        amr: col(r, 4)?,
        created_ms: col(r, 5)?,
        expires_ms: col(r, 6)?,
    })
}

#[async_trait]
impl AuthStore for PgStore {
    async fn list_signing_keys(&self, project: &ProjectId) -> Result<Vec<SigningKeyRecord>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT project_id, kid, alg, private_key, public_jwk, created_ms, retired_ms FROM signing_keys \
                 WHERE project_id = $1 ORDER BY created_ms, kid COLLATE \"C\"",
            )
            .await
            .map_err(pg_err)?;
        let rows = c.query(&stmt, &[&project.as_str()]).await.map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                let p: String = col(r, 0)?;
                Ok(SigningKeyRecord {
                    project_id: ProjectId::parse(&p)?,
                    kid: col(r, 1)?,
                    alg: col(r, 2)?,
                    private_key: col(r, 3)?,
                    public_jwk: col(r, 4)?,
                    created_ms: col(r, 5)?,
                    retired_ms: col(r, 6)?,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO signing_keys (project_id, kid, alg, private_key, public_jwk, created_ms, retired_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&k.project_id.as_str(), &k.kid, &k.alg, &k.private_key, &k.public_jwk, &k.created_ms, &k.retired_ms],
        )
        .await
        .map(|_| ())
        .map_err(pg_err)
    }

    async fn retire_signing_keys_except(&self, project: &ProjectId, kid: &str, at_ms: i64) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE signing_keys SET retired_ms = $3 WHERE project_id = $1 AND kid <> $2 AND retired_ms IS NULL",
            &[&project.as_str(), &kid, &at_ms],
        )
        .await
        .map(|_| ())
        .map_err(pg_err)
    }

    async fn insert_oauth_state(&self, s: &OAuthState, max_pending: u64) -> Result<bool> {
        let connect = s
            .connect
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::Internal(format!("encoding a pending connect: {e}")))?;
        let mut c = self.conn().await?;
        // Expired states are swept on the way in, so the table stays small.
        c.execute("DELETE FROM oauth_states WHERE expires_ms < $1", &[&s.created_ms])
            .await
            .map_err(pg_err)?;
        let max_pending = i64::try_from(max_pending).unwrap_or(i64::MAX);
        let tx = c.transaction().await.map_err(pg_err)?;
        // The count and the insert under one per-project lock (released at commit), so that
        // concurrent starts, on any replica, cannot overshoot the bound.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&advisory_key(&["oauth-states", s.project_id.as_str()])],
        )
        .await
        .map_err(pg_err)?;
        let pending: i64 = tx
            .query_one(
                "SELECT count(*) FROM oauth_states WHERE project_id = $1 AND expires_ms >= $2",
                &[&s.project_id.as_str(), &s.created_ms],
            )
            .await
            .map_err(pg_err)
            .and_then(|r| col(&r, 0))?;
        if pending >= max_pending {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO oauth_states (state_hash, project_id, provider, redirect_url, code_verifier, nonce, created_ms, \
             expires_ms, connect) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &&s.state_hash[..],
                &s.project_id.as_str(),
                &s.provider.as_str(),
                &s.redirect_url,
                &s.code_verifier,
                &s.nonce,
                &s.created_ms,
                &s.expires_ms,
                &connect,
            ],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(true)
    }

    async fn take_oauth_state(&self, state_hash: &[u8; 32]) -> Result<Option<OAuthState>> {
        let c = self.conn().await?;
        // DELETE ... RETURNING: of two concurrent takes, exactly one gets the row.
        let stmt = c
            .prepare_cached(
                "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING state_hash, project_id, provider, \
                 redirect_url, code_verifier, nonce, created_ms, expires_ms, connect",
            )
            .await
            .map_err(pg_err)?;
        c.query_opt(&stmt, &[&&state_hash[..]]).await.map_err(pg_err)?.map(|r| to_state(&r)).transpose()
    }

    async fn insert_auth_code(&self, a: &AuthCode) -> Result<()> {
        let c = self.conn().await?;
        c.execute("DELETE FROM auth_codes WHERE expires_ms < $1", &[&a.created_ms]).await.map_err(pg_err)?;
        c.execute(
            "INSERT INTO auth_codes (code_hash, project_id, user_id, first_seen, amr, created_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &&a.code_hash[..],
                &a.project_id.as_str(),
                &a.user_id.as_str(),
                &a.first_seen,
                &a.amr,
                &a.created_ms,
                &a.expires_ms,
            ],
        )
        .await
        .map(|_| ())
        .map_err(pg_err)
    }

    async fn take_auth_code(&self, code_hash: &[u8; 32]) -> Result<Option<AuthCode>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "DELETE FROM auth_codes WHERE code_hash = $1 RETURNING code_hash, project_id, user_id, first_seen, amr, \
                 created_ms, expires_ms",
            )
            .await
            .map_err(pg_err)?;
        c.query_opt(&stmt, &[&&code_hash[..]]).await.map_err(pg_err)?.map(|r| to_code(&r)).transpose()
    }

    async fn insert_session(&self, s: &SessionRecord) -> Result<()> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "INSERT INTO sessions (id, project_id, user_pk, created_ms, expires_ms, revoked_ms, generation) \
                 SELECT $1, $2, pk, $4, $5, $6, $7 FROM users WHERE project_id = $2 AND user_id = $3",
                &[
                    &s.id,
                    &s.project_id.as_str(),
                    &s.user_id.as_str(),
                    &s.created_ms,
                    &s.expires_ms,
                    &s.revoked_ms,
                    &s.generation,
                ],
            )
            .await
            .map_err(pg_err)?;
        if n == 0 {
            return Err(Error::UserNotFound);
        }
        Ok(())
    }

    async fn get_session(&self, project: &ProjectId, id: &str) -> Result<Option<SessionRecord>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT s.id, s.project_id, u.user_id, s.created_ms, s.expires_ms, s.revoked_ms, s.generation FROM sessions s \
                 JOIN users u ON u.pk = s.user_pk WHERE s.id = $1 AND s.project_id = $2",
            )
            .await
            .map_err(pg_err)?;
        let Some(r) = c.query_opt(&stmt, &[&id, &project.as_str()]).await.map_err(pg_err)? else {
            return Ok(None);
        };
        let (p, user_id): (String, String) = (col(&r, 1)?, col(&r, 2)?);
        Ok(Some(SessionRecord {
            id: col(&r, 0)?,
            project_id: ProjectId::parse(&p)?,
            user_id: UserId::parse(&user_id)?,
            created_ms: col(&r, 3)?,
            expires_ms: col(&r, 4)?,
            revoked_ms: col(&r, 5)?,
            generation: col(&r, 6)?,
        }))
    }

    async fn revoke_session(&self, project: &ProjectId, id: &str, at_ms: i64) -> Result<bool> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE sessions SET revoked_ms = $3 WHERE id = $1 AND project_id = $2 AND revoked_ms IS NULL",
            &[&id, &project.as_str(), &at_ms],
        )
        .await
        .map(|n| n > 0)
        .map_err(pg_err)
    }

    async fn advance_session(&self, project: &ProjectId, id: &str, expected_generation: i64) -> Result<bool> {
        let c = self.conn().await?;
        // One UPDATE: of two concurrent ones, the second re-checks the row after the first
        // commits and no longer matches the generation.
        c.execute(
            "UPDATE sessions SET generation = generation + 1 \
             WHERE id = $1 AND project_id = $2 AND generation = $3 AND revoked_ms IS NULL",
            &[&id, &project.as_str(), &expected_generation],
        )
        .await
        .map(|n| n > 0)
        .map_err(pg_err)
    }

    async fn revoke_user_sessions(&self, project: &ProjectId, user_id: &UserId, at_ms: i64) -> Result<u64> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE sessions SET revoked_ms = $3 WHERE revoked_ms IS NULL AND user_pk = \
             (SELECT pk FROM users WHERE project_id = $1 AND user_id = $2)",
            &[&project.as_str(), &user_id.as_str(), &at_ms],
        )
        .await
        .map_err(pg_err)
    }

    async fn find_identity(
        &self,
        project: &ProjectId,
        provider: &ProviderName,
        provider_user_id: &str,
    ) -> Result<Option<UserId>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT u.user_id FROM user_identities i JOIN users u ON u.pk = i.user_pk \
                 WHERE i.project_id = $1 AND i.provider = $2 AND i.provider_user_id = $3",
            )
            .await
            .map_err(pg_err)?;
        let row = c
            .query_opt(&stmt, &[&project.as_str(), &provider.as_str(), &provider_user_id])
            .await
            .map_err(pg_err)?;
        row.map(|r| col::<String>(&r, 0).and_then(|id| UserId::parse(&id))).transpose()
    }

    async fn find_user_by_verified_email(&self, project: &ProjectId, email: &str) -> Result<Option<UserId>> {
        let c = self.conn().await?;
        // Case-insensitive as SQLite's NOCASE email column, through the lower(email) index.
        let stmt = c
            .prepare_cached(
                "SELECT user_id FROM users WHERE project_id = $1 AND lower(email COLLATE \"C\") = lower($2::text COLLATE \"C\") \
                 AND verified_email ORDER BY pk LIMIT 1",
            )
            .await
            .map_err(pg_err)?;
        let row = c.query_opt(&stmt, &[&project.as_str(), &email]).await.map_err(pg_err)?;
        row.map(|r| col::<String>(&r, 0).and_then(|id| UserId::parse(&id))).transpose()
    }

    async fn complete_sign_in(
        &self,
        project: &ProjectId,
        provider: &ProviderName,
        sign_in: &SignIn,
    ) -> Result<UserId> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let user_id = match &sign_in.user {
            SignInUser::New(user) => {
                lock_directory(&tx, project, false).await?;
                lock_login_ids(&tx, project, user.login_ids.iter()).await?;
                insert_user(&tx, project, user).await?;
                user.user_id.clone()
            }
            SignInUser::Existing(id) => id.clone(),
        };
        let pk = user_pk(&tx, project, &user_id).await?.ok_or(Error::UserNotFound)?;
        tx.execute(
            "INSERT INTO user_identities (project_id, provider, provider_user_id, user_pk) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (project_id, provider, provider_user_id) DO UPDATE SET user_pk = excluded.user_pk",
            &[&project.as_str(), &provider.as_str(), &sign_in.provider_user_id, &pk],
        )
        .await
        .map_err(pg_err)?;
        upsert_token(&tx, pk, &sign_in.token).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(user_id)
    }

    async fn get_auth_settings(&self, project: &ProjectId) -> Result<ProjectAuthSettings> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached("SELECT redirect_urls, link_by_verified_email FROM projects WHERE id = $1")
            .await
            .map_err(pg_err)?;
        let row = c
            .query_opt(&stmt, &[&project.as_str()])
            .await
            .map_err(pg_err)?
            .ok_or_else(|| Error::ProjectNotFound(project.to_string()))?;
        let Json(redirect_urls) = col::<Json<Vec<String>>>(&row, 0)
            .map_err(|_| Error::Storage("redirect_urls is not a JSON array".into()))?;
        Ok(ProjectAuthSettings { redirect_urls, link_by_verified_email: col(&row, 1)? })
    }

    async fn set_auth_settings(&self, project: &ProjectId, settings: &ProjectAuthSettings) -> Result<()> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "UPDATE projects SET redirect_urls = $2, link_by_verified_email = $3 WHERE id = $1",
                &[&project.as_str(), &Json(&settings.redirect_urls), &settings.link_by_verified_email],
            )
            .await
            .map_err(pg_err)?;
        if n == 0 {
            return Err(Error::ProjectNotFound(project.to_string()));
        }
        Ok(())
    }
}
