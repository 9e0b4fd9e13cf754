//! The audit trail.

use async_trait::async_trait;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use idvault_core::audit::{Actor, AuditQuery, AuditRecord};
use idvault_core::error::{Error, Result};
use idvault_core::ids::ProjectId;
use idvault_core::store::AuditStore;

use crate::rows::{col, json_col};
use crate::{pg_err, PgStore};

const COLUMNS: &str = "project_id, occurred_ms, action, kind, actor_type, actor_id, actor_name, user_id, \
                       login_ids, tenants, remote_address, device, method, geo, data";

/// A whole batch is one statement: one array per column, unnested into rows.
const INSERT: &str =
    "INSERT INTO audit_events (project_id, occurred_ms, action, kind, actor_type, actor_id, \
     actor_name, user_id, login_ids, tenants, remote_address, device, method, geo, data) \
     SELECT p, o, a, k, at, ai, an, u, l::jsonb, t::jsonb, r, d, m, g, x::jsonb \
     FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[]) \
     AS b(p, o, a, k, at, ai, an, u, l, t, r, d, m, g, x)";

/// Records deleted per statement by a purge.
const PURGE_SLICE: i64 = 10_000;

fn json_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(format!("encoding an audit record: {e}")))
}

fn to_record(r: &Row) -> Result<AuditRecord> {
    let actor_type: String = col(r, 4)?;
    Ok(AuditRecord {
        project_id: col(r, 0)?,
        occurred_ms: col(r, 1)?,
        action: col(r, 2)?,
        kind: col(r, 3)?,
        actor: Actor::from_parts(&actor_type, col(r, 5)?, col(r, 6)?),
        user_id: col(r, 7)?,
        login_ids: json_col(r, 8)?,
        tenants: json_col(r, 9)?,
        remote_address: col(r, 10)?,
        device: col(r, 11)?,
        method: col(r, 12)?,
        geo: col(r, 13)?,
        data: json_col(r, 14)?,
    })
}

type Param = Box<dyn ToSql + Sync + Send>;

/// The WHERE clause of a search and its parameters.
fn conditions(project: &ProjectId, q: &AuditQuery) -> (String, Vec<Param>) {
    let mut sql = String::from("project_id = $1 AND occurred_ms >= $2 AND occurred_ms <= $3");
    let mut params: Vec<Param> = vec![Box::new(project.to_string()), Box::new(q.from_ms), Box::new(q.to_ms)];
    let list = |sql: &mut String, params: &mut Vec<Param>, column: &str, values: &[String], negate: bool| {
        if values.is_empty() {
            return;
        }
        params.push(Box::new(values.to_vec()));
        let n = params.len();
        if negate {
            sql.push_str(&format!(" AND NOT ({column} = ANY(${n}::text[]))"));
        } else {
            sql.push_str(&format!(" AND {column} = ANY(${n}::text[])"));
        }
    };
    list(&mut sql, &mut params, "user_id", &q.user_ids, false);
    list(&mut sql, &mut params, "action", &q.actions, false);
    list(&mut sql, &mut params, "action", &q.excluded_actions, true);
    list(&mut sql, &mut params, "device", &q.devices, false);
    list(&mut sql, &mut params, "method", &q.methods, false);
    list(&mut sql, &mut params, "geo", &q.geos, false);
    list(&mut sql, &mut params, "remote_address", &q.remote_addresses, false);
    if !q.login_ids.is_empty() {
        params.push(Box::new(q.login_ids.clone()));
        sql.push_str(&format!(" AND login_ids ?| ${}::text[]", params.len()));
    }
    if !q.tenants.is_empty() {
        params.push(Box::new(q.tenants.clone()));
        let empty = if q.no_tenants { "tenants = '[]'::jsonb OR " } else { "" };
        sql.push_str(&format!(" AND ({empty}tenants ?| ${}::text[])", params.len()));
    }
    if let Some(text) = &q.text {
        params.push(Box::new(text.to_lowercase()));
        sql.push_str(&format!(
            " AND strpos(lower(concat_ws(' ', action, kind, actor_id, actor_name, user_id, login_ids::text, \
             tenants::text, remote_address, device, method, geo, data::text)), ${}) > 0",
            params.len()
        ));
    }
    (sql, params)
}

#[async_trait]
impl AuditStore for PgStore {
    async fn insert_audit_records(&self, records: &[AuditRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let n = records.len();
        let mut cols: Vec<Vec<String>> = (0..14).map(|_| Vec::with_capacity(n)).collect();
        let mut occurred = Vec::with_capacity(n);
        for r in records {
            let (actor_type, actor_id, actor_name) = r.actor.parts();
            occurred.push(r.occurred_ms);
            let texts = [
                r.project_id.clone(),
                r.action.clone(),
                r.kind.clone(),
                actor_type.to_owned(),
                actor_id.to_owned(),
                actor_name.to_owned(),
                r.user_id.clone(),
                json_text(&r.login_ids)?,
                json_text(&r.tenants)?,
                r.remote_address.clone(),
                r.device.clone(),
                r.method.clone(),
                r.geo.clone(),
                json_text(&r.data)?,
            ];
            for (col, text) in cols.iter_mut().zip(texts) {
                col.push(text);
            }
        }
        let c = self.conn().await?;
        let stmt = c.prepare_cached(INSERT).await.map_err(pg_err)?;
        c.execute(
            &stmt,
            &[
                &cols[0], &occurred, &cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &cols[6], &cols[7],
                &cols[8], &cols[9], &cols[10], &cols[11], &cols[12], &cols[13],
            ],
        )
        .await
        .map(|_| ())
        .map_err(pg_err)
    }

    async fn search_audit(&self, project: &ProjectId, query: &AuditQuery) -> Result<(Vec<AuditRecord>, u64)> {
        let (condition, params) = conditions(project, query);
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let order = if query.oldest_first { "ASC" } else { "DESC" };
        let c = self.conn().await?;
        let total: i64 = c
            .query_one(&format!("SELECT COUNT(*) FROM audit_events WHERE {condition}"), &refs)
            .await
            .map_err(pg_err)
            .and_then(|r| col(&r, 0))?;
        let rows = c
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM audit_events WHERE {condition} \
                     ORDER BY occurred_ms {order}, id {order} LIMIT {} OFFSET {}",
                    query.limit, query.offset
                ),
                &refs,
            )
            .await
            .map_err(pg_err)?;
        let records = rows.iter().map(to_record).collect::<Result<Vec<_>>>()?;
        Ok((records, u64::try_from(total).unwrap_or(0)))
    }

    async fn purge_audit(&self, before_ms: i64) -> Result<u64> {
        let c = self.conn().await?;
        let mut purged = 0;
        loop {
            let n = c
                .execute(
                    "DELETE FROM audit_events WHERE id IN \
                     (SELECT id FROM audit_events WHERE occurred_ms < $1 LIMIT $2)",
                    &[&before_ms, &PURGE_SLICE],
                )
                .await
                .map_err(pg_err)?;
            purged += n;
            if n < PURGE_SLICE as u64 {
                return Ok(purged);
            }
        }
    }
}
