//! Projects and management keys.

use async_trait::async_trait;
use tokio_postgres::Row;

use idvault_core::error::{Error, Result};
use idvault_core::ids::ProjectId;
use idvault_core::project::{ManagementKey, Project};
use idvault_core::store::ProjectStore;

use crate::rows::col;
use crate::{pg_err, unique_violation, PgStore};

fn to_project(r: &Row) -> Result<Project> {
    let id: String = col(r, 0)?;
    Ok(Project { id: ProjectId::parse(&id)?, name: col(r, 1)?, created_ms: col(r, 2)? })
}

const KEY_COLUMNS: &str = "key_id, project_id, name, key_hash, created_ms, expires_ms, revoked_ms";

fn to_key(r: &Row) -> Result<ManagementKey> {
    let hash: Vec<u8> = col(r, 3)?;
    let key_hash: [u8; 32] = hash
        .as_slice()
        .try_into()
        .map_err(|_| Error::Storage("management key hash has the wrong length".into()))?;
    let project_id: String = col(r, 1)?;
    Ok(ManagementKey {
        key_id: col(r, 0)?,
        project_id: ProjectId::parse(&project_id)?,
        name: col(r, 2)?,
        key_hash,
        created_ms: col(r, 4)?,
        expires_ms: col(r, 5)?,
        revoked_ms: col(r, 6)?,
    })
}

#[async_trait]
impl ProjectStore for PgStore {
    async fn create_project(&self, project: &Project) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO projects (id, name, created_ms) VALUES ($1, $2, $3)",
            &[&project.id.as_str(), &project.name, &project.created_ms],
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            if unique_violation(&e).is_some() {
                Error::AlreadyExists(format!("project '{}'", project.id))
            } else {
                pg_err(e)
            }
        })
    }

    async fn get_project(&self, id: &ProjectId) -> Result<Option<Project>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached("SELECT id, name, created_ms FROM projects WHERE id = $1")
            .await
            .map_err(pg_err)?;
        c.query_opt(&stmt, &[&id.as_str()]).await.map_err(pg_err)?.map(|r| to_project(&r)).transpose()
    }

    async fn list_projects(&self) -> Result<Vec<Project>> {
        let c = self.conn().await?;
        let rows = c
            .query("SELECT id, name, created_ms FROM projects ORDER BY created_ms, id COLLATE \"C\"", &[])
            .await
            .map_err(pg_err)?;
        rows.iter().map(to_project).collect()
    }

    async fn insert_key(&self, key: &ManagementKey) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO management_keys (key_id, project_id, name, key_hash, created_ms, expires_ms, revoked_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &key.key_id,
                &key.project_id.as_str(),
                &key.name,
                &&key.key_hash[..],
                &key.created_ms,
                &key.expires_ms,
                &key.revoked_ms,
            ],
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            if unique_violation(&e).is_some() {
                Error::AlreadyExists(format!("management key '{}'", key.key_id))
            } else {
                pg_err(e)
            }
        })
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<ManagementKey>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM management_keys WHERE key_id = $1"))
            .await
            .map_err(pg_err)?;
        c.query_opt(&stmt, &[&key_id]).await.map_err(pg_err)?.map(|r| to_key(&r)).transpose()
    }

    async fn list_keys(&self, project: &ProjectId) -> Result<Vec<ManagementKey>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM management_keys WHERE project_id = $1 \
                     ORDER BY created_ms, key_id COLLATE \"C\""
                ),
                &[&project.as_str()],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(to_key).collect()
    }

    async fn revoke_key(&self, project: &ProjectId, key_id: &str, at_ms: i64) -> Result<bool> {
        let c = self.conn().await?;
        // The notification goes out when the statement commits; every replica listening on the
        // channel evicts the key from its cache (see `PgStore::listen_key_revocations`).
        c.execute(
            &format!(
                "WITH revoked AS (UPDATE management_keys SET revoked_ms = COALESCE(revoked_ms, $3) \
                 WHERE project_id = $1 AND key_id = $2 RETURNING key_id) \
                 SELECT pg_notify('{}', key_id) FROM revoked",
                crate::KEY_REVOCATION_CHANNEL
            ),
            &[&project.as_str(), &key_id, &at_ms],
        )
        .await
        .map(|n| n > 0)
        .map_err(pg_err)
    }

    async fn update_key(
        &self,
        project: &ProjectId,
        key_id: &str,
        name: &str,
        expires_ms: Option<i64>,
    ) -> Result<bool> {
        let c = self.conn().await?;
        // Notified like a revocation: other replicas drop their cached record, so a new expiry
        // applies everywhere at once.
        c.execute(
            &format!(
                "WITH updated AS (UPDATE management_keys SET name = $3, expires_ms = $4 \
                 WHERE project_id = $1 AND key_id = $2 RETURNING key_id) \
                 SELECT pg_notify('{}', key_id) FROM updated",
                crate::KEY_REVOCATION_CHANNEL
            ),
            &[&project.as_str(), &key_id, &name, &expires_ms],
        )
        .await
        .map(|n| n > 0)
        .map_err(pg_err)
    }
}
