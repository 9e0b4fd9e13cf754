//! Data keys (wrapped) and provider configurations.

use async_trait::async_trait;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, ProviderName};
use idvault_core::provider::{AppSettings, ClientAuthMethod, ProviderConfig};
use idvault_core::store::{DataKeyStore, ProviderStore, WrappedDataKey};

use crate::rows::{col, to_u32};
use crate::{pg_err, PgStore};

const DATA_KEY_COLUMNS: &str = "project_id, version, wrapped, master_key_version, created_ms";

fn to_data_key(r: &Row) -> Result<WrappedDataKey> {
    let project: String = col(r, 0)?;
    Ok(WrappedDataKey {
        project_id: ProjectId::parse(&project)?,
        version: to_u32(col(r, 1)?, "data key version")?,
        wrapped: col(r, 2)?,
        master_key_version: to_u32(col(r, 3)?, "master key version")?,
        created_ms: col(r, 4)?,
    })
}

#[async_trait]
impl DataKeyStore for PgStore {
    async fn get_data_key(&self, project: &ProjectId, version: u32) -> Result<Option<WrappedDataKey>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {DATA_KEY_COLUMNS} FROM data_keys WHERE project_id = $1 AND version = $2"
            ))
            .await
            .map_err(pg_err)?;
        c.query_opt(&stmt, &[&project.as_str(), &i64::from(version)])
            .await
            .map_err(pg_err)?
            .map(|r| to_data_key(&r))
            .transpose()
    }

    async fn insert_data_key(&self, key: &WrappedDataKey) -> Result<bool> {
        let c = self.conn().await?;
        // The first writer wins; a concurrent second insert answers false.
        c.execute(
            "INSERT INTO data_keys (project_id, version, wrapped, master_key_version, created_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, version) DO NOTHING",
            &[
                &key.project_id.as_str(),
                &i64::from(key.version),
                &key.wrapped,
                &i64::from(key.master_key_version),
                &key.created_ms,
            ],
        )
        .await
        .map(|n| n == 1)
        .map_err(pg_err)
    }

    async fn list_data_keys(&self) -> Result<Vec<WrappedDataKey>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {DATA_KEY_COLUMNS} FROM data_keys ORDER BY project_id COLLATE \"C\", version"
                ),
                &[],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(to_data_key).collect()
    }

    async fn rewrap_data_key(&self, key: &WrappedDataKey, expected_master_version: u32) -> Result<bool> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE data_keys SET wrapped = $3, master_key_version = $4 \
             WHERE project_id = $1 AND version = $2 AND master_key_version = $5",
            &[
                &key.project_id.as_str(),
                &i64::from(key.version),
                &key.wrapped,
                &i64::from(key.master_key_version),
                &i64::from(expected_master_version),
            ],
        )
        .await
        .map(|n| n == 1)
        .map_err(pg_err)
    }
}

const PROVIDER_COLUMNS: &str =
    "name, client_id, client_secret, issuer, authorization_endpoint, token_endpoint, \
     userinfo_endpoint, jwks_uri, scopes, auth_method, created_ms, updated_ms, display_name, app";

fn to_provider(r: &Row) -> Result<ProviderConfig> {
    let name: String = col(r, 0)?;
    let auth_method: String = col(r, 9)?;
    let Json(scopes) = col::<Json<Vec<String>>>(r, 8)
        .map_err(|_| Error::Storage("provider scopes are not a JSON array".into()))?;
    Ok(ProviderConfig {
        name: ProviderName::parse(&name)?,
        client_id: col(r, 1)?,
        client_secret: col(r, 2)?,
        issuer: col(r, 3)?,
        authorization_endpoint: col(r, 4)?,
        token_endpoint: col(r, 5)?,
        userinfo_endpoint: col(r, 6)?,
        jwks_uri: col(r, 7)?,
        scopes,
        auth_method: ClientAuthMethod::parse(&auth_method)?,
        created_ms: col(r, 10)?,
        updated_ms: col(r, 11)?,
        display_name: col(r, 12)?,
        app: col::<Option<Json<AppSettings>>>(r, 13)
            .map_err(|_| Error::Storage("provider app column is not an app JSON object".into()))?
            .map(|Json(app)| app),
    })
}

#[async_trait]
impl ProviderStore for PgStore {
    async fn put_provider(&self, project: &ProjectId, p: &ProviderConfig) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO oauth_providers (project_id, name, client_id, client_secret, issuer, authorization_endpoint, \
             token_endpoint, userinfo_endpoint, jwks_uri, scopes, auth_method, created_ms, updated_ms, \
             display_name, app) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (project_id, name) DO UPDATE SET client_id = excluded.client_id, \
             client_secret = excluded.client_secret, issuer = excluded.issuer, \
             authorization_endpoint = excluded.authorization_endpoint, token_endpoint = excluded.token_endpoint, \
             userinfo_endpoint = excluded.userinfo_endpoint, jwks_uri = excluded.jwks_uri, scopes = excluded.scopes, \
             auth_method = excluded.auth_method, updated_ms = excluded.updated_ms, \
             display_name = excluded.display_name, app = excluded.app",
            &[
                &project.as_str(),
                &p.name.as_str(),
                &p.client_id,
                &p.client_secret,
                &p.issuer,
                &p.authorization_endpoint,
                &p.token_endpoint,
                &p.userinfo_endpoint,
                &p.jwks_uri,
                &Json(&p.scopes),
                &p.auth_method.as_str(),
                &p.created_ms,
                &p.updated_ms,
                &p.display_name,
                &p.app.as_ref().map(Json),
            ],
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            // The one unique index besides the key: the app name.
            if crate::unique_violation(&e).is_some() {
                Error::AlreadyExists(format!(
                    "outbound application named '{}'",
                    p.display_name.as_deref().unwrap_or_default()
                ))
            } else {
                pg_err(e)
            }
        })
    }

    async fn get_provider(&self, project: &ProjectId, name: &ProviderName) -> Result<Option<ProviderConfig>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {PROVIDER_COLUMNS} FROM oauth_providers WHERE project_id = $1 AND name = $2"
            ))
            .await
            .map_err(pg_err)?;
        c.query_opt(&stmt, &[&project.as_str(), &name.as_str()])
            .await
            .map_err(pg_err)?
            .map(|r| to_provider(&r))
            .transpose()
    }

    async fn list_providers(&self, project: &ProjectId) -> Result<Vec<ProviderConfig>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {PROVIDER_COLUMNS} FROM oauth_providers WHERE project_id = $1 ORDER BY name COLLATE \"C\""
                ),
                &[&project.as_str()],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(to_provider).collect()
    }

    async fn delete_provider(&self, project: &ProjectId, name: &ProviderName) -> Result<bool> {
        let c = self.conn().await?;
        c.execute(
            "DELETE FROM oauth_providers WHERE project_id = $1 AND name = $2",
            &[&project.as_str(), &name.as_str()],
        )
        .await
        .map(|n| n > 0)
        .map_err(pg_err)
    }
}
