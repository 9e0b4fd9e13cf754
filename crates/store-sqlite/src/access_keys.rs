//! Access keys.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use idvault_core::access_key::{AccessKey, KeyTenant};
use idvault_core::error::{Error, Result};
use idvault_core::ids::ProjectId;
use idvault_core::store::AccessKeyStore;

use crate::rows::to_json;
use crate::{storage_err, SqliteStore};

const COLUMNS: &str = "project_id, id, name, description, role_names, key_tenants, active, expire_time, \
     created_by, bound_user_id, custom_claims, custom_attributes, permitted_ips, secret_hash, created_ms, updated_ms";

/// A row before its JSON columns are decoded.
struct KeyRow {
    project_id: String,
    id: String,
    name: String,
    description: String,
    role_names: String,
    key_tenants: String,
    active: bool,
    expire_time: i64,
    created_by: String,
    bound_user_id: String,
    custom_claims: String,
    custom_attributes: String,
    permitted_ips: String,
    secret_hash: Vec<u8>,
    created_ms: i64,
    updated_ms: i64,
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        project_id: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        role_names: r.get(4)?,
        key_tenants: r.get(5)?,
        active: r.get(6)?,
        expire_time: r.get(7)?,
        created_by: r.get(8)?,
        bound_user_id: r.get(9)?,
        custom_claims: r.get(10)?,
        custom_attributes: r.get(11)?,
        permitted_ips: r.get(12)?,
        secret_hash: r.get(13)?,
        created_ms: r.get(14)?,
        updated_ms: r.get(15)?,
    })
}

fn json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|_| Error::Storage(format!("access key column {column} is not valid JSON")))
}

fn to_key(row: KeyRow) -> Result<AccessKey> {
    let secret_hash: [u8; 32] = row
        .secret_hash
        .as_slice()
        .try_into()
        .map_err(|_| Error::Storage("access key digest has the wrong length".into()))?;
    let key_tenants: Vec<KeyTenant> = json("key_tenants", &row.key_tenants)?;
    Ok(AccessKey {
        project_id: ProjectId::parse(&row.project_id)?,
        id: row.id,
        name: row.name,
        description: row.description,
        role_names: json("role_names", &row.role_names)?,
        key_tenants,
        active: row.active,
        expire_time: row.expire_time,
        created_by: row.created_by,
        bound_user_id: row.bound_user_id,
        custom_claims: json("custom_claims", &row.custom_claims)?,
        custom_attributes: json("custom_attributes", &row.custom_attributes)?,
        permitted_ips: json("permitted_ips", &row.permitted_ips)?,
        secret_hash,
        created_ms: row.created_ms,
        updated_ms: row.updated_ms,
    })
}

/// Of `ids`, those that are not keys of the project.
fn unknown_ids(c: &Connection, project: &str, ids: &[String]) -> Result<Vec<String>> {
    let mut s = c
        .prepare_cached("SELECT 1 FROM access_keys WHERE project_id = ?1 AND id = ?2")
        .map_err(storage_err)?;
    let mut missing = Vec::new();
    for id in ids {
        if !s.exists(params![project, id]).map_err(storage_err)? {
            missing.push(id.clone());
        }
    }
    Ok(missing)
}

#[async_trait]
impl AccessKeyStore for SqliteStore {
    async fn insert_access_key(&self, key: &AccessKey, max_per_project: u64) -> Result<bool> {
        let k = key.clone();
        let columns = (
            to_json(&k.role_names)?,
            to_json(&k.key_tenants)?,
            to_json(&k.custom_claims)?,
            to_json(&k.custom_attributes)?,
            to_json(&k.permitted_ips)?,
        );
        let max = i64::try_from(max_per_project).unwrap_or(i64::MAX);
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let n: i64 = tx
                .query_row(
                    "SELECT count(*) FROM access_keys WHERE project_id = ?1",
                    [k.project_id.as_str()],
                    |r| r.get(0),
                )
                .map_err(storage_err)?;
            if n >= max {
                return Ok(false);
            }
            let (roles, tenants, claims, attributes, ips) = columns;
            tx.execute(
                &format!(
                    "INSERT INTO access_keys ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
                ),
                params![
                    k.project_id.as_str(),
                    k.id,
                    k.name,
                    k.description,
                    roles,
                    tenants,
                    k.active,
                    k.expire_time,
                    k.created_by,
                    k.bound_user_id,
                    claims,
                    attributes,
                    ips,
                    &k.secret_hash[..],
                    k.created_ms,
                    k.updated_ms
                ],
            )
            .map_err(|e| {
                if crate::users::is_unique_violation(&e) {
                    Error::AlreadyExists(format!("access key '{}'", k.id))
                } else {
                    storage_err(e)
                }
            })?;
            tx.commit().map_err(storage_err)?;
            Ok(true)
        })
        .await
    }

    async fn get_access_key(&self, project: &ProjectId, id: &str) -> Result<Option<AccessKey>> {
        self.read(|c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM access_keys WHERE project_id = ?1 AND id = ?2"))
                .and_then(|mut s| s.query_row(params![project.as_str(), id], key_row).optional())
                .map_err(storage_err)
        })?
        .map(to_key)
        .transpose()
    }

    async fn list_access_keys(&self, project: &ProjectId) -> Result<Vec<AccessKey>> {
        let project = project.clone();
        let rows = self
            .read_blocking(move |c| {
                let mut s = c
                    .prepare(&format!(
                        "SELECT {COLUMNS} FROM access_keys WHERE project_id = ?1 ORDER BY created_ms, id"
                    ))
                    .map_err(storage_err)?;
                let rows = s.query_map([project.as_str()], key_row).map_err(storage_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)
            })
            .await?;
        rows.into_iter().map(to_key).collect()
    }

    async fn update_access_key(&self, project: &ProjectId, key: &AccessKey) -> Result<bool> {
        let (project, k) = (project.clone(), key.clone());
        let columns = (
            to_json(&k.role_names)?,
            to_json(&k.key_tenants)?,
            to_json(&k.custom_claims)?,
            to_json(&k.custom_attributes)?,
            to_json(&k.permitted_ips)?,
        );
        self.write(move |c| {
            let (roles, tenants, claims, attributes, ips) = columns;
            c.execute(
                "UPDATE access_keys SET name = ?3, description = ?4, role_names = ?5, key_tenants = ?6, \
                 custom_claims = ?7, custom_attributes = ?8, permitted_ips = ?9, updated_ms = ?10 \
                 WHERE project_id = ?1 AND id = ?2",
                params![
                    project.as_str(),
                    k.id,
                    k.name,
                    k.description,
                    roles,
                    tenants,
                    claims,
                    attributes,
                    ips,
                    k.updated_ms
                ],
            )
            .map(|n| n == 1)
            .map_err(storage_err)
        })
        .await
    }

    async fn set_access_keys_active(
        &self,
        project: &ProjectId,
        ids: &[String],
        active: bool,
        at_ms: i64,
    ) -> Result<Vec<String>> {
        let (project, ids) = (project.clone(), ids.to_vec());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let missing = unknown_ids(&tx, project.as_str(), &ids)?;
            if !missing.is_empty() {
                return Ok(missing);
            }
            {
                let mut s = tx
                    .prepare_cached(
                        "UPDATE access_keys SET active = ?3, updated_ms = ?4 WHERE project_id = ?1 AND id = ?2",
                    )
                    .map_err(storage_err)?;
                for id in &ids {
                    s.execute(params![project.as_str(), id, active, at_ms]).map_err(storage_err)?;
                }
            }
            tx.commit().map_err(storage_err)?;
            Ok(Vec::new())
        })
        .await
    }

    async fn delete_access_keys(&self, project: &ProjectId, ids: &[String]) -> Result<Vec<String>> {
        let (project, ids) = (project.clone(), ids.to_vec());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let missing = unknown_ids(&tx, project.as_str(), &ids)?;
            if !missing.is_empty() {
                return Ok(missing);
            }
            {
                let mut s = tx
                    .prepare_cached("DELETE FROM access_keys WHERE project_id = ?1 AND id = ?2")
                    .map_err(storage_err)?;
                for id in &ids {
                    s.execute(params![project.as_str(), id]).map_err(storage_err)?;
                }
            }
            tx.commit().map_err(storage_err)?;
            Ok(Vec::new())
        })
        .await
    }

    async fn replace_access_key_secret(
        &self,
        project: &ProjectId,
        id: &str,
        secret_hash: &[u8; 32],
        at_ms: i64,
    ) -> Result<bool> {
        let (project, id, hash) = (project.clone(), id.to_owned(), *secret_hash);
        self.write(move |c| {
            c.execute(
                "UPDATE access_keys SET secret_hash = ?3, updated_ms = ?4 WHERE project_id = ?1 AND id = ?2",
                params![project.as_str(), id, &hash[..], at_ms],
            )
            .map(|n| n == 1)
            .map_err(storage_err)
        })
        .await
    }
}
