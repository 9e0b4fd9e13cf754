//! The audit trail.

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::Row;

use idvault_core::audit::{Actor, AuditQuery, AuditRecord};
use idvault_core::error::{Error, Result};
use idvault_core::ids::ProjectId;
use idvault_core::store::AuditStore;

use crate::{storage_err, SqliteStore};

const COLUMNS: &str = "project_id, occurred_ms, action, kind, actor_type, actor_id, actor_name, user_id, \
                       login_ids, tenants, remote_address, device, method, geo, data";
const COLUMN_COUNT: usize = 15;
/// Rows per INSERT statement: 15 columns each stays well under SQLite's 32766 variables.
const ROWS_PER_INSERT: usize = 500;
/// Records deleted per write transaction by a purge.
const PURGE_SLICE: i64 = 10_000;

fn json_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(format!("encoding an audit record: {e}")))
}

fn bind(record: &AuditRecord, values: &mut Vec<SqlValue>) -> Result<()> {
    let (actor_type, actor_id, actor_name) = record.actor.parts();
    values.extend([
        SqlValue::Text(record.project_id.clone()),
        SqlValue::Integer(record.occurred_ms),
        SqlValue::Text(record.action.clone()),
        SqlValue::Text(record.kind.clone()),
        SqlValue::Text(actor_type.to_owned()),
        SqlValue::Text(actor_id.to_owned()),
        SqlValue::Text(actor_name.to_owned()),
        SqlValue::Text(record.user_id.clone()),
        SqlValue::Text(json_text(&record.login_ids)?),
        SqlValue::Text(json_text(&record.tenants)?),
        SqlValue::Text(record.remote_address.clone()),
        SqlValue::Text(record.device.clone()),
        SqlValue::Text(record.method.clone()),
        SqlValue::Text(record.geo.clone()),
        SqlValue::Text(json_text(&record.data)?),
    ]);
    Ok(())
}

type AuditRow = (
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

fn from_row(r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
        r.get(14)?,
    ))
}

fn to_record(row: AuditRow) -> Result<AuditRecord> {
    let (
        project_id,
        occurred_ms,
        action,
        kind,
        actor_type,
        actor_id,
        actor_name,
        user_id,
        login_ids,
        tenants,
        remote_address,
        device,
        method,
        geo,
        data,
    ) = row;
    let bad = |e: serde_json::Error| Error::Storage(format!("audit record with malformed JSON: {e}"));
    Ok(AuditRecord {
        project_id,
        occurred_ms,
        action,
        kind,
        actor: Actor::from_parts(&actor_type, actor_id, actor_name),
        user_id,
        login_ids: serde_json::from_str(&login_ids).map_err(bad)?,
        tenants: serde_json::from_str(&tenants).map_err(bad)?,
        remote_address,
        device,
        method,
        geo,
        data: serde_json::from_str(&data).map_err(bad)?,
    })
}

/// The WHERE clause of a search and its parameters. List filters travel as one JSON array each.
fn conditions(project: &ProjectId, q: &AuditQuery) -> Result<(String, Vec<SqlValue>)> {
    let mut sql = String::from("project_id = ?1 AND occurred_ms >= ?2 AND occurred_ms <= ?3");
    let mut params =
        vec![SqlValue::Text(project.to_string()), SqlValue::Integer(q.from_ms), SqlValue::Integer(q.to_ms)];
    let list = |sql: &mut String,
                params: &mut Vec<SqlValue>,
                column: &str,
                values: &[String],
                negate: bool|
     -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        params.push(SqlValue::Text(json_text(&values)?));
        let not = if negate { "NOT " } else { "" };
        sql.push_str(&format!(" AND {column} {not}IN (SELECT value FROM json_each(?{}))", params.len()));
        Ok(())
    };
    list(&mut sql, &mut params, "user_id", &q.user_ids, false)?;
    list(&mut sql, &mut params, "action", &q.actions, false)?;
    list(&mut sql, &mut params, "action", &q.excluded_actions, true)?;
    list(&mut sql, &mut params, "device", &q.devices, false)?;
    list(&mut sql, &mut params, "method", &q.methods, false)?;
    list(&mut sql, &mut params, "geo", &q.geos, false)?;
    list(&mut sql, &mut params, "remote_address", &q.remote_addresses, false)?;
    if !q.login_ids.is_empty() {
        params.push(SqlValue::Text(json_text(&q.login_ids)?));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM json_each(login_ids) l WHERE l.value IN (SELECT value FROM json_each(?{})))",
            params.len()
        ));
    }
    if !q.tenants.is_empty() {
        params.push(SqlValue::Text(json_text(&q.tenants)?));
        let empty = if q.no_tenants { "tenants = '[]' OR " } else { "" };
        sql.push_str(&format!(
            " AND ({empty}EXISTS (SELECT 1 FROM json_each(tenants) t WHERE t.value IN (SELECT value FROM json_each(?{}))))",
            params.len()
        ));
    }
    if let Some(text) = &q.text {
        params.push(SqlValue::Text(text.to_lowercase()));
        sql.push_str(&format!(
            " AND instr(lower(action || ' ' || kind || ' ' || actor_id || ' ' || actor_name || ' ' || user_id || ' ' || \
             login_ids || ' ' || tenants || ' ' || remote_address || ' ' || device || ' ' || method || ' ' || geo || ' ' || \
             data), ?{}) > 0",
            params.len()
        ));
    }
    Ok((sql, params))
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn insert_audit_records(&self, records: &[AuditRecord]) -> Result<()> {
        let mut chunks = Vec::new();
        for chunk in records.chunks(ROWS_PER_INSERT) {
            let mut values = Vec::with_capacity(chunk.len() * COLUMN_COUNT);
            for record in chunk {
                bind(record, &mut values)?;
            }
            chunks.push((chunk.len(), values));
        }
        // Through the store's single writer, as one job: the batch commits with whatever else
        // is waiting, never competing with requests for the write lock.
        self.write(move |c| {
            let row = format!("({})", vec!["?"; COLUMN_COUNT].join(", "));
            for (rows, values) in chunks {
                let sql = format!(
                    "INSERT INTO audit.audit_events ({COLUMNS}) VALUES {}",
                    vec![row.as_str(); rows].join(", ")
                );
                // A full chunk has the same text every time: cached.
                let mut stmt = c.prepare_cached(&sql).map_err(storage_err)?;
                stmt.execute(rusqlite::params_from_iter(values)).map_err(storage_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn search_audit(&self, project: &ProjectId, query: &AuditQuery) -> Result<(Vec<AuditRecord>, u64)> {
        let (condition, params) = conditions(project, query)?;
        let order = if query.oldest_first { "ASC" } else { "DESC" };
        let (limit, offset) = (query.limit as i64, query.offset as i64);
        let rows = self
            .read_blocking(move |c| {
                let total: i64 = c
                    .prepare(&format!("SELECT COUNT(*) FROM audit.audit_events WHERE {condition}"))
                    .and_then(|mut s| s.query_row(rusqlite::params_from_iter(params.iter()), |r| r.get(0)))
                    .map_err(storage_err)?;
                let sql = format!(
                    "SELECT {COLUMNS} FROM audit.audit_events WHERE {condition} \
                     ORDER BY occurred_ms {order}, id {order} LIMIT {limit} OFFSET {offset}"
                );
                let mut s = c.prepare(&sql).map_err(storage_err)?;
                let rows = s
                    .query_map(rusqlite::params_from_iter(params.iter()), from_row)
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(storage_err)?;
                Ok((rows, total))
            })
            .await?;
        let (rows, total) = rows;
        let records = rows.into_iter().map(to_record).collect::<Result<Vec<_>>>()?;
        Ok((records, u64::try_from(total).unwrap_or(0)))
    }

    async fn purge_audit(&self, before_ms: i64) -> Result<u64> {
        // In slices, so that a purge of a large backlog never holds the single writer for long.
        let mut purged = 0u64;
        loop {
            let n = self
                .write(move |c| {
                    c.execute(
                        "DELETE FROM audit.audit_events WHERE id IN \
                         (SELECT id FROM audit.audit_events WHERE occurred_ms < ?1 LIMIT ?2)",
                        rusqlite::params![before_ms, PURGE_SLICE],
                    )
                    .map_err(storage_err)
                })
                .await?;
            purged += n as u64;
            if n < PURGE_SLICE as usize {
                return Ok(purged);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::SqliteOptions;

    /// A search by user walks the (project, time, user) index over its window and checks the user
    /// in the index: no full scan, and no index keyed by user first (whose random inserts made
    /// every record cost a page of its own).
    #[test]
    fn a_search_by_user_reads_the_time_index_and_no_index_starts_with_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.db");
        drop(SqliteStore::open(&path, &SqliteOptions::default()).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("ATTACH DATABASE ?1 AS audit", [crate::audit_path(&path).to_str().unwrap()]).unwrap();
        let query = AuditQuery {
            user_ids: vec!["U1".into()],
            from_ms: 0,
            to_ms: 1_000,
            limit: 10,
            ..Default::default()
        };
        let (condition, params) = conditions(&ProjectId::generate(), &query).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN SELECT COUNT(*) FROM audit.audit_events WHERE {condition}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(params.iter()), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().any(|step| step.contains("audit_events_project_time_user")), "{plan:?}");
        assert!(!plan.iter().any(|step| step.starts_with("SCAN audit_events")), "{plan:?}");
        let by_user: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM audit.sqlite_master WHERE type = 'index' AND sql LIKE '%(project_id, user_id%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(by_user, 0);
    }

    /// An audit file of version 1 (this session's first, with the by-user index) is brought to
    /// version 2 when the store opens: the by-user index goes, the time index gains the user.
    #[test]
    fn a_version_1_audit_file_loses_its_by_user_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        drop(SqliteStore::open(&path, &SqliteOptions::default()).unwrap());
        let audit = rusqlite::Connection::open(crate::audit_path(&path)).unwrap();
        audit
            .execute_batch(
                "DROP INDEX audit_events_project_time_user;
                 CREATE INDEX audit_events_project_time ON audit_events(project_id, occurred_ms);
                 CREATE INDEX audit_events_project_user ON audit_events(project_id, user_id, occurred_ms);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        drop(audit);
        drop(SqliteStore::open(&path, &SqliteOptions::default()).unwrap());
        let audit = rusqlite::Connection::open(crate::audit_path(&path)).unwrap();
        let indexes: Vec<String> = audit
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            indexes,
            ["audit_events_project_action", "audit_events_project_time_user", "audit_events_time"]
        );
        let version: i64 = audit.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, 2);
    }
}
