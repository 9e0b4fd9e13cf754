//! Data keys (wrapped) and provider configurations.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, ProviderName};
use idvault_core::provider::{ClientAuthMethod, ProviderConfig};
use idvault_core::store::{DataKeyStore, ProviderStore, WrappedDataKey};

use crate::rows::to_json;
use crate::{storage_err, SqliteStore};

fn data_key_row(r: &Row<'_>) -> rusqlite::Result<(String, u32, Vec<u8>, u32, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn to_data_key(
    (project, version, wrapped, master_key_version, created_ms): (String, u32, Vec<u8>, u32, i64),
) -> Result<WrappedDataKey> {
    Ok(WrappedDataKey {
        project_id: ProjectId::parse(&project)?,
        version,
        wrapped,
        master_key_version,
        created_ms,
    })
}

/// Every data key of the database `c`.
pub(crate) fn all_data_keys(c: &Connection) -> Result<Vec<WrappedDataKey>> {
    let mut s = c
        .prepare(
            "SELECT project_id, version, wrapped, master_key_version, created_ms FROM data_keys \
             ORDER BY project_id, version",
        )
        .map_err(storage_err)?;
    let rows = s.query_map([], data_key_row).map_err(storage_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)?.into_iter().map(to_data_key).collect()
}

#[async_trait]
impl DataKeyStore for SqliteStore {
    async fn get_data_key(&self, project: &ProjectId, version: u32) -> Result<Option<WrappedDataKey>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT project_id, version, wrapped, master_key_version, created_ms FROM data_keys \
                 WHERE project_id = ?1 AND version = ?2",
            )
            .and_then(|mut s| s.query_row(params![project.as_str(), version], data_key_row).optional())
            .map_err(storage_err)
        })?
        .map(to_data_key)
        .transpose()
    }

    async fn insert_data_key(&self, key: &WrappedDataKey) -> Result<bool> {
        let key = key.clone();
        self.write(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO data_keys (project_id, version, wrapped, master_key_version, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key.project_id.as_str(), key.version, key.wrapped, key.master_key_version, key.created_ms],
            )
            .map(|n| n == 1)
            .map_err(storage_err)
        })
        .await
    }

    async fn list_data_keys(&self) -> Result<Vec<WrappedDataKey>> {
        self.read_blocking(all_data_keys).await
    }

    async fn rewrap_data_key(&self, key: &WrappedDataKey, expected_master_version: u32) -> Result<bool> {
        let key = key.clone();
        self.write(move |c| {
            c.execute(
                "UPDATE data_keys SET wrapped = ?3, master_key_version = ?4 \
                 WHERE project_id = ?1 AND version = ?2 AND master_key_version = ?5",
                params![
                    key.project_id.as_str(),
                    key.version,
                    key.wrapped,
                    key.master_key_version,
                    expected_master_version
                ],
            )
            .map(|n| n == 1)
            .map_err(storage_err)
        })
        .await
    }
}

const PROVIDER_COLUMNS: &str =
    "name, client_id, client_secret, issuer, authorization_endpoint, token_endpoint, \
     userinfo_endpoint, jwks_uri, scopes, auth_method, created_ms, updated_ms, display_name, app";

/// A provider row before validation.
struct ProviderRow {
    name: String,
    client_id: String,
    client_secret: Option<Vec<u8>>,
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    jwks_uri: Option<String>,
    scopes: String,
    auth_method: String,
    created_ms: i64,
    updated_ms: i64,
    display_name: Option<String>,
    app: Option<String>,
}

fn provider_row(r: &Row<'_>) -> rusqlite::Result<ProviderRow> {
    Ok(ProviderRow {
        name: r.get(0)?,
        client_id: r.get(1)?,
        client_secret: r.get(2)?,
        issuer: r.get(3)?,
        authorization_endpoint: r.get(4)?,
        token_endpoint: r.get(5)?,
        userinfo_endpoint: r.get(6)?,
        jwks_uri: r.get(7)?,
        scopes: r.get(8)?,
        auth_method: r.get(9)?,
        created_ms: r.get(10)?,
        updated_ms: r.get(11)?,
        display_name: r.get(12)?,
        app: r.get(13)?,
    })
}

fn to_provider(row: ProviderRow) -> Result<ProviderConfig> {
    Ok(ProviderConfig {
        name: ProviderName::parse(&row.name)?,
        client_id: row.client_id,
        client_secret: row.client_secret,
        issuer: row.issuer,
        authorization_endpoint: row.authorization_endpoint,
        token_endpoint: row.token_endpoint,
        userinfo_endpoint: row.userinfo_endpoint,
        jwks_uri: row.jwks_uri,
        scopes: serde_json::from_str(&row.scopes)
            .map_err(|_| Error::Storage("provider scopes are not a JSON array".into()))?,
        auth_method: ClientAuthMethod::parse(&row.auth_method)?,
        created_ms: row.created_ms,
        updated_ms: row.updated_ms,
        display_name: row.display_name,
        app: row
            .app
            .map(|a| serde_json::from_str(&a))
            .transpose()
            .map_err(|_| Error::Storage("provider app column is not an app JSON object".into()))?,
    })
}

#[async_trait]
impl ProviderStore for SqliteStore {
    async fn put_provider(&self, project: &ProjectId, config: &ProviderConfig) -> Result<()> {
        let (project, p) = (project.clone(), config.clone());
        self.write(move |c| {
            c.execute(
                "INSERT INTO oauth_providers (project_id, name, client_id, client_secret, issuer, authorization_endpoint, \
                 token_endpoint, userinfo_endpoint, jwks_uri, scopes, auth_method, created_ms, updated_ms, \
                 display_name, app) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
                 ON CONFLICT (project_id, name) DO UPDATE SET client_id = excluded.client_id, \
                 client_secret = excluded.client_secret, issuer = excluded.issuer, \
                 authorization_endpoint = excluded.authorization_endpoint, token_endpoint = excluded.token_endpoint, \
                 userinfo_endpoint = excluded.userinfo_endpoint, jwks_uri = excluded.jwks_uri, scopes = excluded.scopes, \
                 auth_method = excluded.auth_method, updated_ms = excluded.updated_ms, \
                 display_name = excluded.display_name, app = excluded.app",
                params![
                    project.as_str(),
                    p.name.as_str(),
                    p.client_id,
                    p.client_secret,
                    p.issuer,
                    p.authorization_endpoint,
                    p.token_endpoint,
                    p.userinfo_endpoint,
                    p.jwks_uri,
                    to_json(&p.scopes)?,
                    p.auth_method.as_str(),
                    p.created_ms,
                    p.updated_ms,
                    p.display_name,
                    p.app.as_ref().map(to_json).transpose()?
                ],
            )
            .map(|_| ())
            .map_err(|e| {
                // The one unique index besides the key: the app name.
                if crate::users::is_unique_violation(&e) {
                    Error::AlreadyExists(format!("outbound application named '{}'", p.display_name.unwrap_or_default()))
                } else {
                    storage_err(e)
                }
            })
        })
        .await
    }

    async fn get_provider(&self, project: &ProjectId, name: &ProviderName) -> Result<Option<ProviderConfig>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {PROVIDER_COLUMNS} FROM oauth_providers WHERE project_id = ?1 AND name = ?2"
            ))
            .and_then(|mut s| s.query_row(params![project.as_str(), name.as_str()], provider_row).optional())
            .map_err(storage_err)
        })?
        .map(to_provider)
        .transpose()
    }

    async fn list_providers(&self, project: &ProjectId) -> Result<Vec<ProviderConfig>> {
        let rows = self.read(|c| {
            let mut s = c
                .prepare(&format!(
                    "SELECT {PROVIDER_COLUMNS} FROM oauth_providers WHERE project_id = ?1 ORDER BY name"
                ))
                .map_err(storage_err)?;
            let rows = s.query_map([project.as_str()], provider_row).map_err(storage_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)
        })?;
        rows.into_iter().map(to_provider).collect()
    }

    async fn delete_provider(&self, project: &ProjectId, name: &ProviderName) -> Result<bool> {
        let (project, name) = (project.clone(), name.clone());
        self.write(move |c| {
            c.execute(
                "DELETE FROM oauth_providers WHERE project_id = ?1 AND name = ?2",
                params![project.as_str(), name.as_str()],
            )
            .map(|n| n > 0)
            .map_err(storage_err)
        })
        .await
    }
}
