//! Whole-project reads and writes for export/import between backends.

use async_trait::async_trait;
use rusqlite::params;

use idvault_core::error::Result;
use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::store::{IdentityLink, TransferStore};
use idvault_core::vault::SealedToken;

use crate::{storage_err, SqliteStore};

#[async_trait]
impl TransferStore for SqliteStore {
    async fn export_tokens(&self, project: &ProjectId) -> Result<Vec<(UserId, SealedToken)>> {
        let project = project.clone();
        let rows = self
            .read_blocking(move |c| {
                let mut s = c
                    .prepare(
                        "SELECT u.user_id, t.provider, t.provider_user_id, t.access_token, t.refresh_token, t.expiration, \
                         t.scopes, t.updated_ms, t.version, t.reauth_required FROM provider_tokens t \
                         JOIN users u ON u.pk = t.user_pk WHERE u.project_id = ?1 ORDER BY u.pk, t.provider",
                    )
                    .map_err(storage_err)?;
                let rows = s
                    .query_map([project.as_str()], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                            r.get::<_, Option<Vec<u8>>>(4)?,
                            r.get::<_, i64>(5)?,
                            r.get::<_, String>(6)?,
                            r.get::<_, i64>(7)?,
                            r.get::<_, i64>(8)?,
                            r.get::<_, bool>(9)?,
                        ))
                    })
                    .map_err(storage_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)
            })
            .await?;
        rows.into_iter()
            .map(
                |(user, provider, puid, access, refresh, expiration, scopes, updated_ms, version, reauth)| {
                    Ok((
                        UserId::parse(&user)?,
                        SealedToken {
                            provider: ProviderName::parse(&provider)?,
                            provider_user_id: puid,
                            access_token: access,
                            refresh_token: refresh,
                            expiration,
                            scopes: serde_json::from_str(&scopes).unwrap_or_default(),
                            updated_ms,
                            version,
                            reauth_required: reauth,
                        },
                    ))
                },
            )
            .collect()
    }

    async fn export_outbound_tokens(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<idvault_core::outbound::SealedOutboundToken>> {
        let project = project.clone();
        self.read_blocking(move |c| crate::outbound::export_all(c, &project)).await
    }

    async fn export_identities(&self, project: &ProjectId) -> Result<Vec<IdentityLink>> {
        let project = project.clone();
        let rows = self
            .read_blocking(move |c| {
                let mut s = c
                    .prepare(
                        "SELECT i.provider, i.provider_user_id, u.user_id FROM user_identities i \
                         JOIN users u ON u.pk = i.user_pk WHERE i.project_id = ?1 ORDER BY i.provider, i.provider_user_id",
                    )
                    .map_err(storage_err)?;
                let rows = s
                    .query_map([project.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
                    .map_err(storage_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)
            })
            .await?;
        rows.into_iter()
            .map(|(provider, provider_user_id, user)| {
                Ok(IdentityLink {
                    provider: ProviderName::parse(&provider)?,
                    provider_user_id,
                    user_id: UserId::parse(&user)?,
                })
            })
            .collect()
    }

    async fn import_identity(&self, project: &ProjectId, link: &IdentityLink) -> Result<()> {
        let (project, link) = (project.clone(), link.clone());
        self.write(move |c| {
            c.execute(
                "INSERT INTO user_identities (project_id, provider, provider_user_id, user_pk) \
                 SELECT ?1, ?2, ?3, pk FROM users WHERE project_id = ?1 AND user_id = ?4 \
                 ON CONFLICT (project_id, provider, provider_user_id) DO UPDATE SET user_pk = excluded.user_pk",
                params![project.as_str(), link.provider.as_str(), link.provider_user_id, link.user_id.as_str()],
            )
            .map(|_| ())
            .map_err(storage_err)
        })
        .await
    }
}
