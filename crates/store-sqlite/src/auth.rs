//! Sign-in bookkeeping: signing keys, OAuth states, one-time codes, sessions, identities,
//! project sign-in settings.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

use idvault_core::auth::{AuthCode, OAuthState, ProjectAuthSettings, SessionRecord, SigningKeyRecord};
use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::store::{AuthStore, SignIn, SignInUser};

use crate::rows::to_json;
use crate::tokens::{upsert_token, user_pk};
use crate::users::insert_user;
use crate::{storage_err, SqliteStore};

fn hash_from(v: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    v.as_slice()
        .try_into()
        .map_err(|_| rusqlite::Error::InvalidColumnType(0, "hash".into(), rusqlite::types::Type::Blob))
}

/// A `signing_keys` row before validation.
type SigningKeyRow = (String, String, String, Vec<u8>, String, i64, Option<i64>);

fn signing_key_row(r: &Row<'_>) -> rusqlite::Result<SigningKeyRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
}

/// A `sessions` row before validation.
type SessionRow = (String, String, String, i64, i64, Option<i64>, i64);

fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
}

#[async_trait]
impl AuthStore for SqliteStore {
    async fn list_signing_keys(&self, project: &ProjectId) -> Result<Vec<SigningKeyRecord>> {
        let rows = self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT project_id, kid, alg, private_key, public_jwk, created_ms, retired_ms FROM signing_keys \
                     WHERE project_id = ?1 ORDER BY created_ms, kid",
                )
                .map_err(storage_err)?;
            let rows = s.query_map([project.as_str()], signing_key_row).map_err(storage_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)
        })?;
        rows.into_iter()
            .map(|(p, kid, alg, private_key, public_jwk, created_ms, retired_ms)| {
                Ok(SigningKeyRecord {
                    project_id: ProjectId::parse(&p)?,
                    kid,
                    alg,
                    private_key,
                    public_jwk,
                    created_ms,
                    retired_ms,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        let k = key.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO signing_keys (project_id, kid, alg, private_key, public_jwk, created_ms, retired_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![k.project_id.as_str(), k.kid, k.alg, k.private_key, k.public_jwk, k.created_ms, k.retired_ms],
            )
            .map(|_| ())
            .map_err(storage_err)
        })
        .await
    }

    async fn retire_signing_keys_except(&self, project: &ProjectId, kid: &str, at_ms: i64) -> Result<()> {
        let (project, kid) = (project.clone(), kid.to_owned());
        self.write(move |c| {
            c.execute(
                "UPDATE signing_keys SET retired_ms = ?3 WHERE project_id = ?1 AND kid <> ?2 AND retired_ms IS NULL",
                params![project.as_str(), kid, at_ms],
            )
            .map(|_| ())
            .map_err(storage_err)
        })
        .await
    }

    async fn insert_oauth_state(&self, state: &OAuthState, max_pending: u64) -> Result<bool> {
        let s = state.clone();
        let connect = s.connect.as_ref().map(to_json).transpose()?;
        let max_pending = i64::try_from(max_pending).unwrap_or(i64::MAX);
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            // Expired states are swept on the way in (through oauth_states_expires), so the table
            // stays small.
            tx.execute("DELETE FROM oauth_states WHERE expires_ms < ?1", [s.created_ms]).map_err(storage_err)?;
            let pending: i64 = tx
                .query_row(
                    "SELECT count(*) FROM oauth_states WHERE project_id = ?1 AND expires_ms >= ?2",
                    params![s.project_id.as_str(), s.created_ms],
                    |r| r.get(0),
                )
                .map_err(storage_err)?;
            if pending >= max_pending {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO oauth_states (state_hash, project_id, provider, redirect_url, code_verifier, nonce, created_ms, expires_ms, \
                 connect) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    &s.state_hash[..],
                    s.project_id.as_str(),
                    s.provider.as_str(),
                    s.redirect_url,
                    s.code_verifier,
                    s.nonce,
                    s.created_ms,
                    s.expires_ms,
                    connect
                ],
            )
            .map_err(storage_err)?;
            tx.commit().map_err(storage_err)?;
            Ok(true)
        })
        .await
    }

    async fn take_oauth_state(&self, state_hash: &[u8; 32]) -> Result<Option<OAuthState>> {
        let hash = *state_hash;
        let row = self
            .write(move |c| {
                c.query_row(
                    "DELETE FROM oauth_states WHERE state_hash = ?1 RETURNING state_hash, project_id, provider, \
                     redirect_url, code_verifier, nonce, created_ms, expires_ms, connect",
                    [&hash[..]],
                    |r| {
                        Ok((
                            hash_from(r.get(0)?)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Vec<u8>>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, i64>(6)?,
                            r.get::<_, i64>(7)?,
                            r.get::<_, Option<String>>(8)?,
                        ))
                    },
                )
                .optional()
                .map_err(storage_err)
            })
            .await?;
        row.map(
            |(
                state_hash,
                p,
                provider,
                redirect_url,
                code_verifier,
                nonce,
                created_ms,
                expires_ms,
                connect,
            )| {
                Ok(OAuthState {
                    connect: connect
                        .map(|c| serde_json::from_str(&c))
                        .transpose()
                        .map_err(|_| Error::Storage("a pending connect is not valid JSON".into()))?,
                    state_hash,
                    project_id: ProjectId::parse(&p)?,
                    provider: ProviderName::parse(&provider)?,
                    redirect_url,
                    code_verifier,
                    nonce,
                    created_ms,
                    expires_ms,
                })
            },
        )
        .transpose()
    }

    async fn insert_auth_code(&self, code: &AuthCode) -> Result<()> {
        let a = code.clone();
        self.write(move |c| {
            c.execute("DELETE FROM auth_codes WHERE expires_ms < ?1", [a.created_ms]).map_err(storage_err)?;
            c.execute(
                "INSERT INTO auth_codes (code_hash, project_id, user_id, first_seen, amr, created_ms, expires_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![&a.code_hash[..], a.project_id.as_str(), a.user_id.as_str(), a.first_seen, a.amr, a.created_ms, a.expires_ms],
            )
            .map(|_| ())
            .map_err(storage_err)
        })
        .await
    }

    async fn take_auth_code(&self, code_hash: &[u8; 32]) -> Result<Option<AuthCode>> {
        let hash = *code_hash;
        let row = self
            .write(move |c| {
                c.query_row(
                    "DELETE FROM auth_codes WHERE code_hash = ?1 RETURNING code_hash, project_id, user_id, first_seen, amr, \
                     created_ms, expires_ms",
                    [&hash[..]],
                    |r| {
                        Ok((
                            hash_from(r.get(0)?)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, bool>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, i64>(5)?,
                            r.get::<_, i64>(6)?,
                        ))
                    },
                )
                .optional()
                .map_err(storage_err)
            })
            .await?;
        row.map(|(code_hash, p, user_id, first_seen, amr, created_ms, expires_ms)| {
            Ok(AuthCode {
                code_hash,
                project_id: ProjectId::parse(&p)?,
                user_id: UserId::parse(&user_id)?,
                first_seen,
                amr,
                created_ms,
                expires_ms,
            })
        })
        .transpose()
    }

    async fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        let s = session.clone();
        self.write(move |c| {
            let pk: Option<i64> = c
                .query_row(
                    "SELECT pk FROM users WHERE project_id = ?1 AND user_id = ?2",
                    params![s.project_id.as_str(), s.user_id.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(storage_err)?;
            let pk = pk.ok_or(Error::UserNotFound)?;
            c.execute(
                "INSERT INTO sessions (id, project_id, user_pk, created_ms, expires_ms, revoked_ms, generation) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![s.id, s.project_id.as_str(), pk, s.created_ms, s.expires_ms, s.revoked_ms, s.generation],
            )
            .map(|_| ())
            .map_err(storage_err)
        })
        .await
    }

    async fn get_session(&self, project: &ProjectId, id: &str) -> Result<Option<SessionRecord>> {
        let row = self.read(|c| {
            c.prepare_cached(
                "SELECT s.id, s.project_id, u.user_id, s.created_ms, s.expires_ms, s.revoked_ms, s.generation FROM sessions s \
                 JOIN users u ON u.pk = s.user_pk WHERE s.id = ?1 AND s.project_id = ?2",
            )
            .and_then(|mut st| st.query_row(params![id, project.as_str()], session_row).optional())
            .map_err(storage_err)
        })?;
        row.map(|(id, p, user_id, created_ms, expires_ms, revoked_ms, generation)| {
            Ok(SessionRecord {
                id,
                project_id: ProjectId::parse(&p)?,
                user_id: UserId::parse(&user_id)?,
                created_ms,
                expires_ms,
                revoked_ms,
                generation,
            })
        })
        .transpose()
    }

    async fn revoke_session(&self, project: &ProjectId, id: &str, at_ms: i64) -> Result<bool> {
        let (project, id) = (project.clone(), id.to_owned());
        self.write(move |c| {
            c.execute(
                "UPDATE sessions SET revoked_ms = ?3 WHERE id = ?1 AND project_id = ?2 AND revoked_ms IS NULL",
                params![id, project.as_str(), at_ms],
            )
            .map(|n| n > 0)
            .map_err(storage_err)
        })
        .await
    }

    async fn advance_session(&self, project: &ProjectId, id: &str, expected_generation: i64) -> Result<bool> {
        let (project, id) = (project.clone(), id.to_owned());
        self.write(move |c| {
            c.execute(
                "UPDATE sessions SET generation = generation + 1 \
                 WHERE id = ?1 AND project_id = ?2 AND generation = ?3 AND revoked_ms IS NULL",
                params![id, project.as_str(), expected_generation],
            )
            .map(|n| n > 0)
            .map_err(storage_err)
        })
        .await
    }

    async fn revoke_user_sessions(&self, project: &ProjectId, user_id: &UserId, at_ms: i64) -> Result<u64> {
        let (project, user_id) = (project.clone(), user_id.clone());
        self.write(move |c| {
            c.execute(
                "UPDATE sessions SET revoked_ms = ?3 WHERE revoked_ms IS NULL AND user_pk = \
                 (SELECT pk FROM users WHERE project_id = ?1 AND user_id = ?2)",
                params![project.as_str(), user_id.as_str(), at_ms],
            )
            .map(|n| n as u64)
            .map_err(storage_err)
        })
        .await
    }

    async fn find_identity(
        &self,
        project: &ProjectId,
        provider: &ProviderName,
        provider_user_id: &str,
    ) -> Result<Option<UserId>> {
        let id: Option<String> = self.read(|c| {
            c.prepare_cached(
                "SELECT u.user_id FROM user_identities i JOIN users u ON u.pk = i.user_pk \
                 WHERE i.project_id = ?1 AND i.provider = ?2 AND i.provider_user_id = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![project.as_str(), provider.as_str(), provider_user_id], |r| r.get(0))
                    .optional()
            })
            .map_err(storage_err)
        })?;
        id.map(|i| UserId::parse(&i)).transpose()
    }

    async fn find_user_by_verified_email(&self, project: &ProjectId, email: &str) -> Result<Option<UserId>> {
        let id: Option<String> = self.read(|c| {
            c.prepare_cached(
                "SELECT user_id FROM users WHERE project_id = ?1 AND email = ?2 AND verified_email = 1 ORDER BY pk LIMIT 1",
            )
            .and_then(|mut s| s.query_row(params![project.as_str(), email], |r| r.get(0)).optional())
            .map_err(storage_err)
        })?;
        id.map(|i| UserId::parse(&i)).transpose()
    }

    async fn complete_sign_in(
        &self,
        project: &ProjectId,
        provider: &ProviderName,
        sign_in: &SignIn,
    ) -> Result<UserId> {
        let (project, provider, sign_in) = (project.clone(), provider.clone(), sign_in.clone());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let user_id = match &sign_in.user {
                SignInUser::New(user) => {
                    insert_user(&tx, &project, user)?;
                    user.user_id.clone()
                }
                SignInUser::Existing(id) => id.clone(),
            };
            let (pk, providers) = user_pk(&tx, &project, &user_id)?.ok_or(Error::UserNotFound)?;
            tx.execute(
                "INSERT INTO user_identities (project_id, provider, provider_user_id, user_pk) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (project_id, provider, provider_user_id) DO UPDATE SET user_pk = excluded.user_pk",
                params![project.as_str(), provider.as_str(), sign_in.provider_user_id, pk],
            )
            .map_err(storage_err)?;
            upsert_token(&tx, pk, &providers, &sign_in.token)?;
            tx.commit().map_err(storage_err)?;
            Ok(user_id)
        })
        .await
    }

    async fn get_auth_settings(&self, project: &ProjectId) -> Result<ProjectAuthSettings> {
        let row: Option<(String, bool)> = self.read(|c| {
            c.prepare_cached("SELECT redirect_urls, link_by_verified_email FROM projects WHERE id = ?1")
                .and_then(|mut s| s.query_row([project.as_str()], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(storage_err)
        })?;
        let (urls, link) = row.ok_or_else(|| Error::ProjectNotFound(project.to_string()))?;
        Ok(ProjectAuthSettings {
            redirect_urls: serde_json::from_str(&urls)
                .map_err(|_| Error::Storage("redirect_urls is not a JSON array".into()))?,
            link_by_verified_email: link,
        })
    }

    async fn set_auth_settings(&self, project: &ProjectId, settings: &ProjectAuthSettings) -> Result<()> {
        let (project, urls, link) =
            (project.clone(), to_json(&settings.redirect_urls)?, settings.link_by_verified_email);
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE projects SET redirect_urls = ?2, link_by_verified_email = ?3 WHERE id = ?1",
                    params![project.as_str(), urls, link],
                )
                .map_err(storage_err)?;
            if n == 0 {
                return Err(Error::ProjectNotFound(project.to_string()));
            }
            Ok(())
        })
        .await
    }
}
