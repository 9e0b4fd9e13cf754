//! Access keys.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use idvault_core::access_key::AccessKey;
use idvault_core::error::{Error, Result};
use idvault_core::ids::ProjectId;
use idvault_core::store::AccessKeyStore;

use crate::lock::advisory_key;
use crate::rows::{col, json_col};
use crate::{pg_err, unique_violation, PgStore};

const COLUMNS: &str = "project_id, id, name, description, role_names, key_tenants, active, expire_time, \
     created_by, bound_user_id, custom_claims, custom_attributes, permitted_ips, secret_hash, created_ms, updated_ms";

fn to_key(r: &Row) -> Result<AccessKey> {
    let hash: Vec<u8> = col(r, 13)?;
    let secret_hash: [u8; 32] = hash
        .as_slice()
        .try_into()
        .map_err(|_| Error::Storage("access key digest has the wrong length".into()))?;
    let project_id: String = col(r, 0)?;
    Ok(AccessKey {
        project_id: ProjectId::parse(&project_id)?,
        id: col(r, 1)?,
        name: col(r, 2)?,
        description: col(r, 3)?,
        role_names: json_col(r, 4)?,
        key_tenants: json_col(r, 5)?,
        active: col(r, 6)?,
        expire_time: col(r, 7)?,
        created_by: col(r, 8)?,
        bound_user_id: col(r, 9)?,
        custom_claims: json_col(r, 10)?,
        custom_attributes: json_col(r, 11)?,
        permitted_ips: json_col(r, 12)?,
        secret_hash,
        created_ms: col(r, 14)?,
        updated_ms: col(r, 15)?,
    })
}

/// Of `ids`, those that are not keys of the project; the rows found are locked until the end of
/// the transaction, so that nothing changes them between this check and the write.
async fn unknown_ids(c: &Transaction<'_>, project: &str, ids: &[String]) -> Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT id FROM access_keys WHERE project_id = $1 AND id = ANY($2) FOR UPDATE",
            &[&project, &ids],
        )
        .await
        .map_err(pg_err)?;
    let found: std::collections::HashSet<String> = rows.iter().map(|r| col(r, 0)).collect::<Result<_>>()?;
    Ok(ids.iter().filter(|id| !found.contains(*id)).cloned().collect())
}

#[async_trait]
impl AccessKeyStore for PgStore {
    async fn insert_access_key(&self, k: &AccessKey, max_per_project: u64) -> Result<bool> {
        let max = i64::try_from(max_per_project).unwrap_or(i64::MAX);
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        // The count and the insert under one per-project lock (released at commit), so that
        // concurrent creates, on any replica, cannot overshoot the bound.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&advisory_key(&["access-keys", k.project_id.as_str()])],
        )
        .await
        .map_err(pg_err)?;
        let n: i64 = tx
            .query_one("SELECT count(*) FROM access_keys WHERE project_id = $1", &[&k.project_id.as_str()])
            .await
            .map_err(pg_err)
            .and_then(|r| col(&r, 0))?;
        if n >= max {
            return Ok(false);
        }
        tx.execute(
            &format!(
                "INSERT INTO access_keys ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            ),
            &[
                &k.project_id.as_str(),
                &k.id,
                &k.name,
                &k.description,
                &Json(&k.role_names),
                &Json(&k.key_tenants),
                &k.active,
                &k.expire_time,
                &k.created_by,
                &k.bound_user_id,
                &Json(&k.custom_claims),
                &Json(&k.custom_attributes),
                &Json(&k.permitted_ips),
                &&k.secret_hash[..],
                &k.created_ms,
                &k.updated_ms,
            ],
        )
        .await
        .map_err(|e| {
            if unique_violation(&e).is_some() {
                Error::AlreadyExists(format!("access key '{}'", k.id))
            } else {
                pg_err(e)
            }
        })?;
        tx.commit().await.map_err(pg_err)?;
        Ok(true)
    }

    async fn get_access_key(&self, project: &ProjectId, id: &str) -> Result<Option<AccessKey>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!("SELECT {COLUMNS} FROM access_keys WHERE project_id = $1 AND id = $2"))
            .await
            .map_err(pg_err)?;
        c.query_opt(&stmt, &[&project.as_str(), &id]).await.map_err(pg_err)?.as_ref().map(to_key).transpose()
    }

    async fn list_access_keys(&self, project: &ProjectId) -> Result<Vec<AccessKey>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {COLUMNS} FROM access_keys WHERE project_id = $1 ORDER BY created_ms, id"),
                &[&project.as_str()],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(to_key).collect()
    }

    async fn update_access_key(&self, project: &ProjectId, k: &AccessKey) -> Result<bool> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE access_keys SET name = $3, description = $4, role_names = $5, key_tenants = $6, \
             custom_claims = $7, custom_attributes = $8, permitted_ips = $9, updated_ms = $10 \
             WHERE project_id = $1 AND id = $2",
            &[
                &project.as_str(),
                &k.id,
                &k.name,
                &k.description,
                &Json(&k.role_names),
                &Json(&k.key_tenants),
                &Json(&k.custom_claims),
                &Json(&k.custom_attributes),
                &Json(&k.permitted_ips),
                &k.updated_ms,
            ],
        )
        .await
        .map(|n| n == 1)
        .map_err(pg_err)
    }

    async fn set_access_keys_active(
        &self,
        project: &ProjectId,
        ids: &[String],
        active: bool,
        at_ms: i64,
    ) -> Result<Vec<String>> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let missing = unknown_ids(&tx, project.as_str(), ids).await?;
        if !missing.is_empty() {
            return Ok(missing);
        }
        tx.execute(
            "UPDATE access_keys SET active = $3, updated_ms = $4 WHERE project_id = $1 AND id = ANY($2)",
            &[&project.as_str(), &ids, &active, &at_ms],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(Vec::new())
    }

    async fn delete_access_keys(&self, project: &ProjectId, ids: &[String]) -> Result<Vec<String>> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let missing = unknown_ids(&tx, project.as_str(), ids).await?;
        if !missing.is_empty() {
            return Ok(missing);
        }
        tx.execute(
            "DELETE FROM access_keys WHERE project_id = $1 AND id = ANY($2)",
            &[&project.as_str(), &ids],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(Vec::new())
    }

    async fn replace_access_key_secret(
        &self,
        project: &ProjectId,
        id: &str,
        secret_hash: &[u8; 32],
        at_ms: i64,
    ) -> Result<bool> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE access_keys SET secret_hash = $3, updated_ms = $4 WHERE project_id = $1 AND id = $2",
            &[&project.as_str(), &id, &&secret_hash[..], &at_ms],
        )
        .await
        .map(|n| n == 1)
        .map_err(pg_err)
    }
}
