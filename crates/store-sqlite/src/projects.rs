//! Projects and management keys.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

use idvault_core::error::{Error, Result};
use idvault_core::ids::ProjectId;
use idvault_core::project::{ManagementKey, Project};
use idvault_core::store::ProjectStore;

use crate::{storage_err, SqliteStore};

fn project_from_row(row: &Row<'_>) -> rusqlite::Result<(String, String, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn to_project((id, name, created_ms): (String, String, i64)) -> Result<Project> {
    Ok(Project { id: ProjectId::parse(&id)?, name, created_ms })
}

const KEY_COLUMNS: &str = "key_id, project_id, name, key_hash, created_ms, expires_ms, revoked_ms";

/// A `management_keys` row as read, before validation.
type KeyRow = (String, String, String, Vec<u8>, i64, Option<i64>, Option<i64>);

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?))
}

fn to_key(
    (key_id, project_id, name, hash, created_ms, expires_ms, revoked_ms): KeyRow,
) -> Result<ManagementKey> {
    let key_hash: [u8; 32] = hash
        .as_slice()
        .try_into()
        .map_err(|_| Error::Storage("management key hash has the wrong length".into()))?;
    Ok(ManagementKey {
        key_id,
        project_id: ProjectId::parse(&project_id)?,
        name,
        key_hash,
        created_ms,
        expires_ms,
        revoked_ms,
    })
}

#[async_trait]
impl ProjectStore for SqliteStore {
    async fn create_project(&self, project: &Project) -> Result<()> {
        let p = project.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO projects (id, name, created_ms) VALUES (?1, ?2, ?3)",
                params![p.id.as_str(), p.name, p.created_ms],
            )
            .map(|_| ())
            .map_err(|e| {
                if crate::users::is_unique_violation(&e) {
                    Error::AlreadyExists(format!("project '{}'", p.id))
                } else {
                    storage_err(e)
                }
            })
        })
        .await
    }

    async fn get_project(&self, id: &ProjectId) -> Result<Option<Project>> {
        self.read(|c| {
            c.prepare_cached("SELECT id, name, created_ms FROM projects WHERE id = ?1")
                .and_then(|mut s| s.query_row([id.as_str()], project_from_row).optional())
                .map_err(storage_err)
        })?
        .map(to_project)
        .transpose()
    }

    async fn list_projects(&self) -> Result<Vec<Project>> {
        let rows = self.read(|c| {
            let mut s = c
                .prepare("SELECT id, name, created_ms FROM projects ORDER BY created_ms, id")
                .map_err(storage_err)?;
            let rows = s.query_map([], project_from_row).map_err(storage_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)
        })?;
        rows.into_iter().map(to_project).collect()
    }

    async fn insert_key(&self, key: &ManagementKey) -> Result<()> {
        let k = key.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO management_keys (key_id, project_id, name, key_hash, created_ms, expires_ms, revoked_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![k.key_id, k.project_id.as_str(), k.name, &k.key_hash[..], k.created_ms, k.expires_ms, k.revoked_ms],
            )
            .map(|_| ())
            .map_err(storage_err)
        })
        .await
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<ManagementKey>> {
        self.read(|c| {
            c.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM management_keys WHERE key_id = ?1"))
                .and_then(|mut s| s.query_row([key_id], key_from_row).optional())
                .map_err(storage_err)
        })?
        .map(to_key)
        .transpose()
    }

    async fn list_keys(&self, project: &ProjectId) -> Result<Vec<ManagementKey>> {
        let rows = self.read(|c| {
            let mut s = c
                .prepare(&format!("SELECT {KEY_COLUMNS} FROM management_keys WHERE project_id = ?1 ORDER BY created_ms, key_id"))
                .map_err(storage_err)?;
            let rows = s.query_map([project.as_str()], key_from_row).map_err(storage_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)
        })?;
        rows.into_iter().map(to_key).collect()
    }

    async fn revoke_key(&self, project: &ProjectId, key_id: &str, at_ms: i64) -> Result<bool> {
        let (project, key_id) = (project.clone(), key_id.to_owned());
        self.write(move |c| {
            c.execute(
                "UPDATE management_keys SET revoked_ms = COALESCE(revoked_ms, ?3) WHERE project_id = ?1 AND key_id = ?2",
                params![project.as_str(), key_id, at_ms],
            )
            .map(|n| n > 0)
            .map_err(storage_err)
        })
        .await
    }

    async fn update_key(
        &self,
        project: &ProjectId,
        key_id: &str,
        name: &str,
        expires_ms: Option<i64>,
    ) -> Result<bool> {
        let (project, key_id, name) = (project.clone(), key_id.to_owned(), name.to_owned());
        self.write(move |c| {
            c.execute(
                "UPDATE management_keys SET name = ?3, expires_ms = ?4 WHERE project_id = ?1 AND key_id = ?2",
                params![project.as_str(), key_id, name, expires_ms],
            )
            .map(|n| n > 0)
            .map_err(storage_err)
        })
        .await
    }
}
