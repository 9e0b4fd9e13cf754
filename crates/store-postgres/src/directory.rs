//! Tenants, roles, permissions, custom attribute definitions; saving changed users with their
//! references checked; the tenant names and permissions shown on loaded users.
//!
//! Concurrency: a user write checks the user's roles, tenants and attributes against the
//! directory, and a directory write (deleting or renaming a role, tenant or permission) rewrites
//! the users and roles that refer to it. In SQLite the single writer serializes the two. Here
//! every user write takes the project's directory advisory lock shared
//! (`pg_advisory_xact_lock_shared`) and every directory write takes it exclusively, as the first
//! statement of their transactions: user writes still run in parallel with each other, a check
//! never races a cascade, and since the advisory lock always comes before any row lock the two
//! kinds of transactions cannot deadlock.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use serde_json::{Map, Value};
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use idvault_core::directory::cascade::{permission_renamed, UserCascade};
use idvault_core::directory::errors;
use idvault_core::directory::references::{self, DirectoryFacts, DirectoryNeeds};
use idvault_core::directory::{AttributeDef, AttributeOption, AttributeType, Permission, Role, Tenant};
use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, UserId};
use idvault_core::store::{DirectoryStore, LoginRecord};
use idvault_core::user::Contact;
use idvault_core::user::{User, UserUpdate};

use crate::rows::{col, json_col, user_columns, user_from_row};
use crate::users::{insert_login_id, insert_user, lock_login_ids, write_user_index};
use crate::{pg_err, unique_violation, PgStore};

/// Takes the project's directory lock for the rest of the transaction: shared for user writes,
/// exclusive for directory writes.
pub(crate) async fn lock_directory(tx: &Transaction<'_>, project: &ProjectId, exclusive: bool) -> Result<()> {
    let sql = if exclusive {
        "SELECT pg_advisory_xact_lock($1)"
    } else {
        "SELECT pg_advisory_xact_lock_shared($1)"
    };
    let stmt = tx.prepare_cached(sql).await.map_err(pg_err)?;
    tx.execute(&stmt, &[&crate::lock::directory_key(project)]).await.map(|_| ()).map_err(pg_err)
}

fn json_list(value: Option<Json<Vec<String>>>) -> Vec<String> {
    value.map(|Json(v)| v).unwrap_or_default()
}

async fn attribute_defs<C: GenericClient>(c: &C, project: &ProjectId) -> Result<Vec<AttributeDef>> {
    let stmt = c
        .prepare_cached(
            "SELECT name, type, display_name, options, required FROM custom_attribute_defs \
             WHERE project_id = $1 ORDER BY name COLLATE \"C\"",
        )
        .await
        .map_err(pg_err)?;
    let rows = c.query(&stmt, &[&project.as_str()]).await.map_err(pg_err)?;
    rows.iter()
        .map(|r| {
            let options: Vec<Value> = json_col::<Vec<Value>>(r, 3).unwrap_or_default();
            Ok(AttributeDef {
                name: col(r, 0)?,
                kind: AttributeType::from_number(i64::from(col::<i32>(r, 1)?))?,
                display_name: col(r, 2)?,
                options: options
                    .iter()
                    .map(|o| AttributeOption {
                        value: o["value"].as_str().unwrap_or_default().to_owned(),
                        label: o["label"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect(),
                required: col(r, 4)?,
            })
        })
        .collect()
}

fn push_once<'a>(list: &mut Vec<&'a str>, value: &'a str) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// Reads, with SQL only, the directory facts core asked for (see
/// `idvault_core::directory::references`): at most one query per kind of fact, pipelined on the
/// connection; none for an empty ask.
pub(crate) async fn load_facts<C: GenericClient>(
    c: &C,
    project: &ProjectId,
    needs: &DirectoryNeeds<'_>,
) -> Result<DirectoryFacts> {
    let mut role_tenants: Vec<&str> = vec![""];
    let mut role_names: Vec<&str> = Vec::new();
    for (scope, name) in &needs.roles {
        if let Some(t) = scope {
            push_once(&mut role_tenants, t);
        }
        push_once(&mut role_names, name);
    }
    let project_id = project.as_str();
    let (tenant_rows, role_rows, permission_rows, attribute_defs, contact_taken) = tokio::try_join!(
        async {
            if needs.tenant_ids.is_empty() {
                return Ok(Vec::new());
            }
            let stmt = c
                .prepare_cached("SELECT id, name FROM tenants WHERE project_id = $1 AND id = ANY($2::text[])")
                .await
                .map_err(pg_err)?;
            c.query(&stmt, &[&project_id, &needs.tenant_ids]).await.map_err(pg_err)
        },
        async {
            if role_names.is_empty() {
                return Ok(Vec::new());
            }
            // Every (scope, name) pair asked about is inside this product.
            let stmt = c
                .prepare_cached(
                    "SELECT tenant_id, name, permission_names FROM roles \
                     WHERE project_id = $1 AND tenant_id = ANY($2::text[]) AND name = ANY($3::text[])",
                )
                .await
                .map_err(pg_err)?;
            c.query(&stmt, &[&project_id, &role_tenants, &role_names]).await.map_err(pg_err)
        },
        async {
            if needs.permissions.is_empty() {
                return Ok(Vec::new());
            }
            let stmt = c
                .prepare_cached(
                    "SELECT name FROM permissions WHERE project_id = $1 AND name = ANY($2::text[])",
                )
                .await
                .map_err(pg_err)?;
            c.query(&stmt, &[&project_id, &needs.permissions]).await.map_err(pg_err)
        },
        async {
            if !needs.attribute_defs {
                return Ok(Vec::new());
            }
            attribute_defs(c, project).await
        },
        async {
            let Some((contact, user_id)) = needs.contact_taken else {
                return Ok(false);
            };
            // Emails compare case-insensitively, as the email index does; phones exactly.
            let (sql, value) = match contact {
                Contact::Email(e) => (
                    "SELECT 1 FROM users WHERE project_id = $1 AND lower(email COLLATE \"C\") = $2 \
                     AND NOT test AND user_id <> $3 LIMIT 1",
                    e.to_ascii_lowercase(),
                ),
                Contact::Phone(p) => (
                    "SELECT 1 FROM users WHERE project_id = $1 AND phone = $2 AND NOT test AND user_id <> $3 LIMIT 1",
                    p.to_owned(),
                ),
            };
            let stmt = c.prepare_cached(sql).await.map_err(pg_err)?;
            c.query_opt(&stmt, &[&project_id, &value, &user_id]).await.map(|r| r.is_some()).map_err(pg_err)
        },
    )?;
    let mut facts = DirectoryFacts { attribute_defs, contact_taken, ..Default::default() };
    for r in &tenant_rows {
        facts.tenants.insert(col(r, 0)?, col(r, 1)?);
    }
    for r in &role_rows {
        facts.add_role(col(r, 0)?, col(r, 1)?, json_list(col(r, 2)?));
    }
    for r in &permission_rows {
        facts.permissions.insert(col(r, 0)?);
    }
    Ok(facts)
}

/// Serializes the transactions that check an address is free (fail-on-conflict updates of two
/// users to one email): the second waits for the first to commit, then sees its row. Taken
/// after the user's row lock; no transaction waits for a row lock while holding this one, so
/// the two cannot deadlock.
async fn lock_contact(tx: &Transaction<'_>, project: &ProjectId, contact: Contact<'_>) -> Result<()> {
    let key = match contact {
        Contact::Email(e) => crate::lock::advisory_key(&["email", project.as_str(), &e.to_ascii_lowercase()]),
        Contact::Phone(p) => crate::lock::advisory_key(&["phone", project.as_str(), p]),
    };
    let stmt = tx.prepare_cached("SELECT pg_advisory_xact_lock($1)").await.map_err(pg_err)?;
    tx.execute(&stmt, &[&key]).await.map(|_| ()).map_err(pg_err)
}

/// Refuses a user whose references core finds unknown.
pub(crate) async fn check_references<C: GenericClient>(
    c: &C,
    project: &ProjectId,
    user: &User,
) -> Result<()> {
    references::check_references(user, &load_facts(c, project, &DirectoryNeeds::to_check(user)).await?)
}

/// Fills in what core shows on loaded users (tenant names, permissions): one round trip for
/// the whole batch, none when no user belongs to a tenant.
pub(crate) async fn enrich<C: GenericClient>(c: &C, project: &ProjectId, users: &mut [User]) -> Result<()> {
    let facts = {
        let needs = DirectoryNeeds::to_enrich(users);
        if needs.is_empty() {
            return Ok(());
        }
        load_facts(c, project, &needs).await?
    };
    for u in users.iter_mut() {
        references::enrich(u, &facts);
    }
    Ok(())
}

const USER_FOR_UPDATE: &str = concat!(
    "SELECT u.pk, ",
    user_columns!(),
    " FROM users u WHERE u.project_id = $1 AND u.user_id = $2 FOR UPDATE"
);

/// Writes a changed user: the row, its login ids (when changed) and its index rows.
pub(crate) async fn save_user(
    tx: &Transaction<'_>,
    project: &ProjectId,
    pk: i64,
    old: &User,
    new: &User,
) -> Result<()> {
    let stmt = tx
        .prepare_cached(
            "UPDATE users SET login_ids = $2, name = $3, given_name = $4, middle_name = $5, family_name = $6, \
             email = $7, phone = $8, verified_email = $9, verified_phone = $10, status = $11, picture = $12, \
             test = $13, role_names = $14, tenants = $15, custom_attributes = $16, sso_app_ids = $17, \
             modified_ms = $18 WHERE pk = $1",
        )
        .await
        .map_err(pg_err)?;
    tx.execute(
        &stmt,
        &[
            &pk,
            &Json(&new.login_ids),
            &new.name,
            &new.given_name,
            &new.middle_name,
            &new.family_name,
            &new.email,
            &new.phone,
            &new.verified_email,
            &new.verified_phone,
            &new.status.as_str(),
            &new.picture,
            &new.test,
            &Json(&new.role_names),
            &Json(&new.tenants),
            &Json(&new.custom_attributes),
            &Json(&new.sso_app_ids),
            &new.modified_ms,
        ],
    )
    .await
    .map_err(pg_err)?;
    if old.login_ids != new.login_ids {
        // Freed ids too: a create waiting to reuse one must wait for this transaction.
        lock_login_ids(tx, project, old.login_ids.iter().chain(new.login_ids.iter())).await?;
        tx.execute("DELETE FROM user_login_ids WHERE user_pk = $1", &[&pk]).await.map_err(pg_err)?;
        for l in &new.login_ids {
            insert_login_id(tx, project, l, pk).await?;
        }
    }
    reindex(tx, pk, new).await
}

/// Replaces the role and tenant index rows of a user.
async fn reindex(tx: &Transaction<'_>, pk: i64, user: &User) -> Result<()> {
    tx.execute("DELETE FROM user_roles WHERE user_pk = $1", &[&pk]).await.map_err(pg_err)?;
    tx.execute("DELETE FROM user_tenants WHERE user_pk = $1", &[&pk]).await.map_err(pg_err)?;
    write_user_index(tx, pk, user).await
}

/// Writes back every user of the project whose row key is in `pks` that `cascade` changes.
/// Rows are locked in key order.
async fn rewrite_users(
    tx: &Transaction<'_>,
    project: &ProjectId,
    pks: &[i64],
    cascade: &UserCascade<'_>,
    now_ms: i64,
) -> Result<()> {
    if pks.is_empty() {
        return Ok(());
    }
    let rows = tx
        .query(
            concat!(
                "SELECT u.pk, ",
                user_columns!(),
                " FROM users u WHERE u.pk = ANY($1::bigint[]) AND u.project_id = $2 ORDER BY u.pk FOR UPDATE"
            ),
            &[&pks, &project.as_str()],
        )
        .await
        .map_err(pg_err)?;
    for row in &rows {
        let pk: i64 = col(row, 0)?;
        let old = user_from_row(row, 1)?;
        if let Some(new) = cascade.apply(&old, now_ms) {
            tx.execute(
                "UPDATE users SET role_names = $2, tenants = $3, modified_ms = $4 WHERE pk = $1",
                &[&pk, &Json(&new.role_names), &Json(&new.tenants), &new.modified_ms],
            )
            .await
            .map_err(pg_err)?;
            reindex(tx, pk, &new).await?;
        }
    }
    Ok(())
}

const TENANT_COLUMNS: &str =
    "id, name, self_provisioning_domains, custom_attributes, disabled, created_ms, enforce_sso";

fn tenant_row(r: &Row) -> Result<Tenant> {
    Ok(Tenant {
        id: col(r, 0)?,
        name: col(r, 1)?,
        self_provisioning_domains: json_list(col(r, 2)?),
        custom_attributes: col::<Option<Json<Map<String, Value>>>>(r, 3)?
            .map(|Json(m)| m)
            .unwrap_or_default(),
        disabled: col(r, 4)?,
        created_ms: col(r, 5)?,
        enforce_sso: col(r, 6)?,
    })
}

const ROLE_COLUMNS: &str =
    "project_id, tenant_id, name, id, description, permission_names, is_default, is_private, created_ms";

fn role_row(r: &Row) -> Result<Role> {
    let tenant: String = col(r, 1)?;
    Ok(Role {
        id: col(r, 3)?,
        name: col(r, 2)?,
        tenant_id: if tenant.is_empty() { None } else { Some(tenant) },
        description: col(r, 4)?,
        permission_names: json_list(col(r, 5)?),
        default: col(r, 6)?,
        private: col(r, 7)?,
        created_ms: col(r, 8)?,
    })
}

#[async_trait]
impl DirectoryStore for PgStore {
    async fn create_tenant(&self, project: &ProjectId, tenant: &Tenant) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO tenants (project_id, id, name, self_provisioning_domains, custom_attributes, disabled, \
             created_ms, enforce_sso) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &project.as_str(),
                &tenant.id,
                &tenant.name,
                &Json(&tenant.self_provisioning_domains),
                &Json(&tenant.custom_attributes),
                &tenant.disabled,
                &tenant.created_ms,
                &tenant.enforce_sso,
            ],
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            if unique_violation(&e).is_some() {
                errors::tenant_taken(&tenant.id)
            } else {
                pg_err(e)
            }
        })
    }

    async fn update_tenant(&self, project: &ProjectId, tenant: &Tenant) -> Result<Tenant> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "UPDATE tenants SET name = $3, self_provisioning_domains = $4, custom_attributes = $5, disabled = $6, \
                     enforce_sso = $7 WHERE project_id = $1 AND id = $2 RETURNING {TENANT_COLUMNS}"
                ),
                &[
                    &project.as_str(),
                    &tenant.id,
                    &tenant.name,
                    &Json(&tenant.self_provisioning_domains),
                    &Json(&tenant.custom_attributes),
                    &tenant.disabled,
                    &tenant.enforce_sso,
                ],
            )
            .await
            .map_err(|e| {
                if unique_violation(&e).is_some() {
                    errors::tenant_name_taken(&tenant.name)
                } else {
                    pg_err(e)
                }
            })?;
        match row {
            Some(r) => tenant_row(&r),
            None => Err(errors::tenant_not_found(&tenant.id)),
        }
    }

    async fn get_tenant(&self, project: &ProjectId, id: &str) -> Result<Option<Tenant>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {TENANT_COLUMNS} FROM tenants WHERE project_id = $1 AND id = $2"
            ))
            .await
            .map_err(pg_err)?;
        c.query_opt(&stmt, &[&project.as_str(), &id])
            .await
            .map_err(pg_err)?
            .map(|r| tenant_row(&r))
            .transpose()
    }

    async fn list_tenants(&self, project: &ProjectId) -> Result<Vec<Tenant>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {TENANT_COLUMNS} FROM tenants WHERE project_id = $1 ORDER BY created_ms, id COLLATE \"C\""
            ))
            .await
            .map_err(pg_err)?;
        let rows = c.query(&stmt, &[&project.as_str()]).await.map_err(pg_err)?;
        rows.iter().map(tenant_row).collect()
    }

    async fn delete_tenant(&self, project: &ProjectId, id: &str, now_ms: i64) -> Result<bool> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        lock_directory(&tx, project, true).await?;
        let members: Vec<i64> = tx
            .query(
                "SELECT t.user_pk FROM user_tenants t JOIN users u ON u.pk = t.user_pk \
                 WHERE t.tenant_id = $1 AND u.project_id = $2",
                &[&id, &project.as_str()],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| col(r, 0))
            .collect::<Result<_>>()?;
        rewrite_users(&tx, project, &members, &UserCascade::TenantDeleted(id), now_ms).await?;
        tx.execute("DELETE FROM roles WHERE project_id = $1 AND tenant_id = $2", &[&project.as_str(), &id])
            .await
            .map_err(pg_err)?;
        let n = tx
            .execute("DELETE FROM tenants WHERE project_id = $1 AND id = $2", &[&project.as_str(), &id])
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(n > 0)
    }

    async fn create_permission(&self, project: &ProjectId, permission: &Permission) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO permissions (project_id, name, id, description, created_ms) VALUES ($1, $2, $3, $4, $5)",
            &[&project.as_str(), &permission.name, &permission.id, &permission.description, &permission.created_ms],
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            if unique_violation(&e).is_some() {
                errors::permission_taken(&permission.name)
            } else {
                pg_err(e)
            }
        })
    }

    async fn update_permission(
        &self,
        project: &ProjectId,
        name: &str,
        new_name: &str,
        description: &str,
    ) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        lock_directory(&tx, project, true).await?;
        let n = tx
            .execute(
                "UPDATE permissions SET name = $3, description = $4 WHERE project_id = $1 AND name = $2",
                &[&project.as_str(), &name, &new_name, &description],
            )
            .await
            .map_err(|e| {
                if unique_violation(&e).is_some() {
                    errors::permission_taken(new_name)
                } else {
                    pg_err(e)
                }
            })?;
        if n == 0 {
            return Err(errors::permission_not_found(name));
        }
        if name != new_name {
            rename_in_roles(&tx, project, name, Some(new_name)).await?;
        }
        tx.commit().await.map_err(pg_err)
    }

    async fn delete_permission(&self, project: &ProjectId, name: &str) -> Result<bool> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        lock_directory(&tx, project, true).await?;
        let n = tx
            .execute(
                "DELETE FROM permissions WHERE project_id = $1 AND name = $2",
                &[&project.as_str(), &name],
            )
            .await
            .map_err(pg_err)?;
        rename_in_roles(&tx, project, name, None).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(n > 0)
    }

    async fn list_permissions(&self, project: &ProjectId) -> Result<Vec<Permission>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT id, name, description, created_ms FROM permissions WHERE project_id = $1 \
                 ORDER BY name COLLATE \"C\"",
            )
            .await
            .map_err(pg_err)?;
        let rows = c.query(&stmt, &[&project.as_str()]).await.map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                Ok(Permission {
                    id: col(r, 0)?,
                    name: col(r, 1)?,
                    description: col(r, 2)?,
                    created_ms: col(r, 3)?,
                })
            })
            .collect()
    }

    async fn create_role(&self, project: &ProjectId, role: &Role) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        lock_directory(&tx, project, true).await?;
        let facts = load_facts(&tx, project, &DirectoryNeeds::to_check_role(role)).await?;
        references::check_role_references(role, &facts)?;
        tx.execute(
            &format!("INSERT INTO roles ({ROLE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
            &[
                &project.as_str(),
                &role.tenant_id.as_deref().unwrap_or(""),
                &role.name,
                &role.id,
                &role.description,
                &Json(&role.permission_names),
                &role.default,
                &role.private,
                &role.created_ms,
            ],
        )
        .await
        .map_err(|e| {
            if unique_violation(&e).is_some() {
                errors::role_taken(&role.name)
            } else {
                pg_err(e)
            }
        })?;
        tx.commit().await.map_err(pg_err)
    }

    async fn update_role(
        &self,
        project: &ProjectId,
        name: &str,
        tenant: Option<&str>,
        role: &Role,
        now_ms: i64,
    ) -> Result<()> {
        let tenant = tenant.unwrap_or("");
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        lock_directory(&tx, project, true).await?;
        let facts =
            load_facts(&tx, project, &DirectoryNeeds::to_check_permissions(&role.permission_names)).await?;
        references::check_permissions(&role.permission_names, &facts)?;
        let n = tx
            .execute(
                "UPDATE roles SET name = $4, description = $5, permission_names = $6, is_default = $7, is_private = $8 \
                 WHERE project_id = $1 AND tenant_id = $2 AND name = $3",
                &[
                    &project.as_str(),
                    &tenant,
                    &name,
                    &role.name,
                    &role.description,
                    &Json(&role.permission_names),
                    &role.default,
                    &role.private,
                ],
            )
            .await
            .map_err(|e| {
                if unique_violation(&e).is_some() {
                    errors::role_taken(&role.name)
                } else {
                    pg_err(e)
                }
            })?;
        if n == 0 {
            return Err(errors::role_not_found(name));
        }
        if name != role.name {
            rename_role_on_users(&tx, project, tenant, name, Some(&role.name), now_ms).await?;
        }
        tx.commit().await.map_err(pg_err)
    }

    async fn delete_role(
        &self,
        project: &ProjectId,
        name: &str,
        tenant: Option<&str>,
        now_ms: i64,
    ) -> Result<bool> {
        let tenant = tenant.unwrap_or("");
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        lock_directory(&tx, project, true).await?;
        let n = tx
            .execute(
                "DELETE FROM roles WHERE project_id = $1 AND tenant_id = $2 AND name = $3",
                &[&project.as_str(), &tenant, &name],
            )
            .await
            .map_err(pg_err)?;
        if n > 0 {
            rename_role_on_users(&tx, project, tenant, name, None, now_ms).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(n > 0)
    }

    async fn list_roles(&self, project: &ProjectId) -> Result<Vec<Role>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {ROLE_COLUMNS} FROM roles WHERE project_id = $1 \
                 ORDER BY tenant_id COLLATE \"C\", name COLLATE \"C\""
            ))
            .await
            .map_err(pg_err)?;
        let rows = c.query(&stmt, &[&project.as_str()]).await.map_err(pg_err)?;
        rows.iter().map(role_row).collect()
    }

    async fn put_attribute_defs(&self, project: &ProjectId, defs: &[AttributeDef]) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        lock_directory(&tx, project, true).await?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO custom_attribute_defs (project_id, name, type, display_name, options, required) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (project_id, name) DO UPDATE SET type = excluded.type, \
                 display_name = excluded.display_name, options = excluded.options, required = excluded.required",
            )
            .await
            .map_err(pg_err)?;
        for d in defs {
            let options: Vec<Value> =
                d.options.iter().map(|o| serde_json::json!({"value": o.value, "label": o.label})).collect();
            tx.execute(
                &stmt,
                &[
                    &project.as_str(),
                    &d.name,
                    &(d.kind as i32),
                    &d.display_name,
                    &Json(&options),
                    &d.required,
                ],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)
    }

    async fn delete_attribute_defs(&self, project: &ProjectId, names: &[String]) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        lock_directory(&tx, project, true).await?;
        tx.execute(
            "DELETE FROM custom_attribute_defs WHERE project_id = $1 AND name = ANY($2::text[])",
            &[&project.as_str(), &names],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)
    }

    async fn list_attribute_defs(&self, project: &ProjectId) -> Result<Vec<AttributeDef>> {
        let c = self.conn().await?;
        attribute_defs(&c, project).await
    }

    async fn update_user(&self, project: &ProjectId, user_id: &UserId, update: &UserUpdate) -> Result<User> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        lock_directory(&tx, project, false).await?;
        // The row lock makes concurrent updates of one user take turns, each applying its
        // change to the row the previous one committed.
        let stmt = tx.prepare_cached(USER_FOR_UPDATE).await.map_err(pg_err)?;
        let row = tx
            .query_opt(&stmt, &[&project.as_str(), &user_id.as_str()])
            .await
            .map_err(pg_err)?
            .ok_or(Error::UserNotFound)?;
        let pk: i64 = col(&row, 0)?;
        let old = user_from_row(&row, 1)?;
        let new = update.apply(&old)?;
        let needs = update.needs(&new);
        if let Some((contact, _)) = needs.contact_taken {
            lock_contact(&tx, project, contact).await?;
        }
        update.check(&new, &load_facts(&tx, project, &needs).await?)?;
        save_user(&tx, project, pk, &old, &new).await?;
        let mut saved = [new];
        enrich(&tx, project, &mut saved).await?;
        tx.commit().await.map_err(pg_err)?;
        let [new] = saved;
        Ok(new)
    }

    async fn create_users_each(&self, project: &ProjectId, users: &[User]) -> Result<Vec<Result<User>>> {
        let mut c = self.conn().await?;
        let mut tx = c.transaction().await.map_err(pg_err)?;
        lock_directory(&tx, project, false).await?;
        lock_login_ids(&tx, project, users.iter().flat_map(|u| u.login_ids.iter())).await?;
        let mut results = Vec::with_capacity(users.len());
        for u in users {
            let sp = tx.transaction().await.map_err(pg_err)?;
            match insert_user(&sp, project, u).await {
                Ok(_) => {
                    sp.commit().await.map_err(pg_err)?;
                    results.push(Ok(u.clone()));
                }
                Err(e) => {
                    // Rolling back to the savepoint undoes this user; the others stay.
                    sp.rollback().await.map_err(pg_err)?;
                    results.push(Err(e));
                }
            }
        }
        let mut created: Vec<User> = results.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
        enrich(&tx, project, &mut created).await?;
        tx.commit().await.map_err(pg_err)?;
        let mut created = created.into_iter();
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(u) => Ok(created.next().unwrap_or(u)),
                Err(e) => Err(e),
            })
            .collect())
    }

    async fn record_login(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        login_ms: i64,
        ip: &str,
    ) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO login_history (user_pk, login_ms, ip) \
             SELECT pk, $3, $4 FROM users WHERE project_id = $1 AND user_id = $2",
            &[&project.as_str(), &user_id.as_str(), &login_ms, &ip],
        )
        .await
        .map(|_| ())
        .map_err(pg_err)
    }

    async fn login_history(&self, project: &ProjectId, user_ids: &[String]) -> Result<Vec<LoginRecord>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.conn().await?;
        // Per user, in the order given, the latest 100 logins, newest first.
        let rows = c
            .query(
                "SELECT u.user_id, h.login_ms, h.ip FROM unnest($2::text[]) WITH ORDINALITY AS x(id, ord) \
                 JOIN users u ON u.project_id = $1 AND u.user_id = x.id \
                 CROSS JOIN LATERAL (SELECT login_ms, ip FROM login_history WHERE user_pk = u.pk \
                                     ORDER BY login_ms DESC LIMIT 100) h \
                 ORDER BY x.ord, h.login_ms DESC",
                &[&project.as_str(), &user_ids],
            )
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                let uid: String = col(r, 0)?;
                Ok(LoginRecord { user_id: UserId::parse(&uid)?, login_ms: col(r, 1)?, ip: col(r, 2)? })
            })
            .collect()
    }
}

/// Renames (or with None, removes) a permission in every role of the project that grants it.
async fn rename_in_roles(
    tx: &Transaction<'_>,
    project: &ProjectId,
    name: &str,
    new_name: Option<&str>,
) -> Result<()> {
    let rows = tx
        .query(
            "SELECT tenant_id, name, permission_names FROM roles WHERE project_id = $1 AND permission_names ? $2 \
             FOR UPDATE",
            &[&project.as_str(), &name],
        )
        .await
        .map_err(pg_err)?;
    for r in &rows {
        let (tenant, role): (String, String) = (col(r, 0)?, col(r, 1)?);
        let Some(updated) = permission_renamed(&json_list(col(r, 2)?), name, new_name) else { continue };
        tx.execute(
            "UPDATE roles SET permission_names = $4 WHERE project_id = $1 AND tenant_id = $2 AND name = $3",
            &[&project.as_str(), &tenant, &role, &Json(&updated)],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(())
}

/// Renames (or removes) a role on the users holding it, as core's `UserCascade::Role` says
/// (the tenants with their own role of that name are read here).
async fn rename_role_on_users(
    tx: &Transaction<'_>,
    project: &ProjectId,
    tenant: &str,
    name: &str,
    new_name: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    let holders: Vec<i64> = tx
        .query(
            "SELECT DISTINCT r.user_pk FROM user_roles r JOIN users u ON u.pk = r.user_pk \
             WHERE r.role_name = $1 AND u.project_id = $2",
            &[&name, &project.as_str()],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| col(r, 0))
        .collect::<Result<_>>()?;
    let shadowing: Vec<String> = tx
        .query(
            "SELECT tenant_id FROM roles WHERE project_id = $1 AND name = $2 AND tenant_id <> ''",
            &[&project.as_str(), &name],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| col(r, 0))
        .collect::<Result<_>>()?;
    let cascade = UserCascade::Role {
        tenant: Some(tenant).filter(|t| !t.is_empty()),
        name,
        new_name,
        shadowed_in: &shadowing,
    };
    rewrite_users(tx, project, &holders, &cascade, now_ms).await
}
