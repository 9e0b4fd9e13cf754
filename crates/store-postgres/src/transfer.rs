//! Whole-project reads and writes for export/import between backends.

use async_trait::async_trait;
use serde_json::Value;

use idvault_core::error::Result;
use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::store::{IdentityLink, TransferStore};
use idvault_core::vault::SealedToken;

use crate::{pg_err, PgStore};

#[async_trait]
impl TransferStore for PgStore {
    async fn export_tokens(&self, project: &ProjectId) -> Result<Vec<(UserId, SealedToken)>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT u.user_id, t.provider, t.provider_user_id, t.access_token, t.refresh_token, t.expiration, \
                 t.scopes, t.updated_ms, t.version, t.reauth_required FROM provider_tokens t \
                 JOIN users u ON u.pk = t.user_pk WHERE u.project_id = $1 ORDER BY u.pk, t.provider",
                &[&project.as_str()],
            )
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                let scopes: Value = r.get(6);
                Ok((
                    UserId::parse(r.get::<_, &str>(0))?,
                    SealedToken {
                        provider: ProviderName::parse(r.get::<_, &str>(1))?,
                        provider_user_id: r.get(2),
                        access_token: r.get(3),
                        refresh_token: r.get(4),
                        expiration: r.get(5),
                        scopes: serde_json::from_value(scopes).unwrap_or_default(),
                        updated_ms: r.get(7),
                        version: r.get(8),
                        reauth_required: r.get(9),
                    },
                ))
            })
            .collect()
    }

    async fn export_outbound_tokens(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<idvault_core::outbound::SealedOutboundToken>> {
        self.export_outbound(project).await
    }

    async fn export_identities(&self, project: &ProjectId) -> Result<Vec<IdentityLink>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT i.provider, i.provider_user_id, u.user_id FROM user_identities i \
                 JOIN users u ON u.pk = i.user_pk WHERE i.project_id = $1 ORDER BY i.provider, i.provider_user_id",
                &[&project.as_str()],
            )
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                Ok(IdentityLink {
                    provider: ProviderName::parse(r.get::<_, &str>(0))?,
                    provider_user_id: r.get(1),
                    user_id: UserId::parse(r.get::<_, &str>(2))?,
                })
            })
            .collect()
    }

    async fn import_identity(&self, project: &ProjectId, link: &IdentityLink) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO user_identities (project_id, provider, provider_user_id, user_pk) \
             SELECT $1, $2, $3, pk FROM users WHERE project_id = $1 AND user_id = $4 \
             ON CONFLICT (project_id, provider, provider_user_id) DO UPDATE SET user_pk = excluded.user_pk",
            &[&project.as_str(), &link.provider.as_str(), &link.provider_user_id, &link.user_id.as_str()],
        )
        .await
        .map(|_| ())
        .map_err(pg_err)
    }
}
