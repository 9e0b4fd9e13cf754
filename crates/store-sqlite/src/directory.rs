//! Tenants, roles, permissions, custom attribute definitions; saving changed users with their
//! references checked; the tenant names and permissions shown on loaded users.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{Map, Value};

use idvault_core::directory::cascade::{permission_renamed, UserCascade};
use idvault_core::directory::errors;
use idvault_core::directory::references::{self, DirectoryFacts, DirectoryNeeds};
use idvault_core::directory::{AttributeDef, AttributeOption, AttributeType, Permission, Role, Tenant};
use idvault_core::error::{Error, Result};
use idvault_core::ids::{ProjectId, UserId};
use idvault_core::store::{DirectoryStore, LoginRecord};
use idvault_core::user::Contact;
use idvault_core::user::{User, UserUpdate};

use crate::rows::{to_json, user_columns};
use crate::users::{insert_user, write_user_index};
use crate::{storage_err, SqliteStore};

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn attribute_defs(conn: &Connection, project: &ProjectId) -> Result<Vec<AttributeDef>> {
    let mut s = conn
        .prepare_cached("SELECT name, type, display_name, options, required FROM custom_attribute_defs WHERE project_id = ?1 ORDER BY name")
        .map_err(storage_err)?;
    let rows = s
        .query_map([project.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })
        .map_err(storage_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage_err)?;
    rows.into_iter()
        .map(|(name, kind, display_name, options, required)| {
            let options: Vec<Value> = serde_json::from_str(&options).unwrap_or_default();
            Ok(AttributeDef {
                name,
                kind: AttributeType::from_number(kind)?,
                display_name,
                options: options
                    .iter()
                    .map(|o| AttributeOption {
                        value: o["value"].as_str().unwrap_or_default().to_owned(),
                        label: o["label"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect(),
                required,
            })
        })
        .collect()
}

/// Reads, with SQL only, the directory facts core asked for (see
/// `idvault_core::directory::references`): one indexed point read per tenant, role name in its
/// scope, or permission; nothing for an empty ask.
pub(crate) fn load_facts(
    conn: &Connection,
    project: &ProjectId,
    needs: &DirectoryNeeds<'_>,
) -> Result<DirectoryFacts> {
    let mut facts = DirectoryFacts::default();
    if !needs.tenant_ids.is_empty() {
        let mut s = conn
            .prepare_cached("SELECT name FROM tenants WHERE project_id = ?1 AND id = ?2")
            .map_err(storage_err)?;
        for id in &needs.tenant_ids {
            let name: Option<String> =
                s.query_row(params![project.as_str(), id], |r| r.get(0)).optional().map_err(storage_err)?;
            if let Some(name) = name {
                facts.tenants.insert((*id).to_owned(), name);
            }
        }
    }
    if !needs.roles.is_empty() {
        let mut s = conn
            .prepare_cached(
                "SELECT tenant_id, permission_names FROM roles WHERE project_id = ?1 AND name = ?2 AND tenant_id IN ('', ?3)",
            )
            .map_err(storage_err)?;
        for (scope, name) in &needs.roles {
            let mut rows =
                s.query(params![project.as_str(), name, scope.unwrap_or("")]).map_err(storage_err)?;
            while let Some(r) = rows.next().map_err(storage_err)? {
                let (tenant, perms): (String, String) =
                    (r.get(0).map_err(storage_err)?, r.get(1).map_err(storage_err)?);
                facts.add_role(tenant, (*name).to_owned(), json_list(&perms));
            }
        }
    }
    if !needs.permissions.is_empty() {
        let mut s = conn
            .prepare_cached("SELECT 1 FROM permissions WHERE project_id = ?1 AND name = ?2")
            .map_err(storage_err)?;
        for p in &needs.permissions {
            if s.exists(params![project.as_str(), p]).map_err(storage_err)? {
                facts.permissions.insert((*p).to_owned());
            }
        }
    }
    if needs.attribute_defs {
        facts.attribute_defs = attribute_defs(conn, project)?;
    }
    if let Some((contact, user_id)) = needs.contact_taken {
        // The email column compares case-insensitively (COLLATE NOCASE), the phone exactly.
        let (sql, value) = match contact {
            Contact::Email(e) => {
                ("SELECT 1 FROM users WHERE project_id = ?1 AND email = ?2 AND test = 0 AND user_id <> ?3", e)
            }
            Contact::Phone(p) => {
                ("SELECT 1 FROM users WHERE project_id = ?1 AND phone = ?2 AND test = 0 AND user_id <> ?3", p)
            }
        };
        facts.contact_taken = conn
            .prepare_cached(sql)
            .and_then(|mut s| s.exists(params![project.as_str(), value, user_id]))
            .map_err(storage_err)?;
    }
    Ok(facts)
}

/// Refuses a user whose references core finds unknown.
pub(crate) fn check_references(conn: &Connection, project: &ProjectId, user: &User) -> Result<()> {
    references::check_references(user, &load_facts(conn, project, &DirectoryNeeds::to_check(user))?)
}

/// Fills in what core shows on loaded users (tenant names, permissions), reading each tenant
/// and role once for the whole batch; no query when no user is in a tenant.
pub(crate) fn enrich(conn: &Connection, project: &ProjectId, users: &mut [User]) -> Result<()> {
    let facts = {
        let needs = DirectoryNeeds::to_enrich(users);
        if needs.is_empty() {
            return Ok(());
        }
        load_facts(conn, project, &needs)?
    };
    for user in users.iter_mut() {
        references::enrich(user, &facts);
    }
    Ok(())
}

const USER_FOR_UPDATE: &str =
    concat!("SELECT u.pk, ", user_columns!(), " FROM users u WHERE u.project_id = ?1 AND u.user_id = ?2");

fn user_with_pk(r: &Row<'_>) -> rusqlite::Result<(i64, User)> {
    let pk = r.get(0)?;
    // user_from_row reads columns from 0: shift by reading through a view of the row.
    let user = crate::rows::user_from_row_at(r, 1)?;
    Ok((pk, user))
}

/// Writes a changed user: the row, its login ids (when changed) and its index rows.
pub(crate) fn save_user(tx: &Connection, project: &ProjectId, pk: i64, old: &User, new: &User) -> Result<()> {
    tx.prepare_cached(
        "UPDATE users SET login_ids = ?2, name = ?3, given_name = ?4, middle_name = ?5, family_name = ?6, email = ?7, \
         phone = ?8, verified_email = ?9, verified_phone = ?10, status = ?11, picture = ?12, test = ?13, role_names = ?14, \
         tenants = ?15, custom_attributes = ?16, sso_app_ids = ?17, modified_ms = ?18 WHERE pk = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            pk,
            to_json(&new.login_ids).unwrap_or_default(),
            new.name,
            new.given_name,
            new.middle_name,
            new.family_name,
            new.email,
            new.phone,
            new.verified_email,
            new.verified_phone,
            new.status.as_str(),
            new.picture,
            new.test,
            to_json(&new.role_names).unwrap_or_default(),
            to_json(&new.tenants).unwrap_or_default(),
            to_json(&new.custom_attributes).unwrap_or_default(),
            to_json(&new.sso_app_ids).unwrap_or_default(),
            new.modified_ms
        ])
    })
    .map_err(storage_err)?;
    if old.login_ids != new.login_ids {
        tx.execute("DELETE FROM user_login_ids WHERE user_pk = ?1", [pk]).map_err(storage_err)?;
        for l in &new.login_ids {
            tx.execute(
                "INSERT INTO user_login_ids (project_id, login_id, user_pk) VALUES (?1, ?2, ?3)",
                params![project.as_str(), l, pk],
            )
            .map_err(|e| {
                if is_constraint(&e) {
                    Error::UserAlreadyExists(l.clone())
                } else {
                    storage_err(e)
                }
            })?;
        }
    }
    tx.execute("DELETE FROM user_roles WHERE user_pk = ?1", [pk]).map_err(storage_err)?;
    tx.execute("DELETE FROM user_tenants WHERE user_pk = ?1", [pk]).map_err(storage_err)?;
    write_user_index(tx, pk, new)
}

/// Writes back every user of the project whose row key is in `pks` that `cascade` changes.
fn rewrite_users(
    tx: &Connection,
    project: &ProjectId,
    pks: &[i64],
    cascade: &UserCascade<'_>,
    now_ms: i64,
) -> Result<()> {
    for pk in pks {
        let found = tx
            .prepare_cached(concat!(
                "SELECT u.pk, ",
                user_columns!(),
                " FROM users u WHERE u.pk = ?1 AND u.project_id = ?2"
            ))
            .and_then(|mut s| s.query_row(params![pk, project.as_str()], user_with_pk).optional())
            .map_err(storage_err)?;
        let Some((pk, old)) = found else { continue };
        if let Some(new) = cascade.apply(&old, now_ms) {
            tx.execute(
                "UPDATE users SET role_names = ?2, tenants = ?3, modified_ms = ?4 WHERE pk = ?1",
                params![pk, to_json(&new.role_names)?, to_json(&new.tenants)?, new.modified_ms],
            )
            .map_err(storage_err)?;
            tx.execute("DELETE FROM user_roles WHERE user_pk = ?1", [pk]).map_err(storage_err)?;
            tx.execute("DELETE FROM user_tenants WHERE user_pk = ?1", [pk]).map_err(storage_err)?;
            write_user_index(tx, pk, &new)?;
        }
    }
    Ok(())
}

fn pks(tx: &Connection, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<i64>> {
    let mut s = tx.prepare(sql).map_err(storage_err)?;
    let rows = s.query_map(args, |r| r.get(0)).map_err(storage_err)?;
    rows.collect::<rusqlite::Result<Vec<i64>>>().map_err(storage_err)
}

fn tenant_row(r: &Row<'_>) -> rusqlite::Result<Tenant> {
    let domains: String = r.get(2)?;
    let attrs: String = r.get(3)?;
    Ok(Tenant {
        id: r.get(0)?,
        name: r.get(1)?,
        self_provisioning_domains: json_list(&domains),
        custom_attributes: serde_json::from_str::<Map<String, Value>>(&attrs).unwrap_or_default(),
        disabled: r.get(4)?,
        created_ms: r.get(5)?,
        enforce_sso: r.get(6)?,
    })
}

fn role_row(r: &Row<'_>) -> rusqlite::Result<Role> {
    let tenant: String = r.get(1)?;
    let perms: String = r.get(5)?;
    Ok(Role {
        id: r.get(3)?,
        name: r.get(2)?,
        tenant_id: if tenant.is_empty() { None } else { Some(tenant) },
        description: r.get(4)?,
        permission_names: json_list(&perms),
        default: r.get(6)?,
        private: r.get(7)?,
        created_ms: r.get(8)?,
    })
}

const ROLE_COLUMNS: &str =
    "project_id, tenant_id, name, id, description, permission_names, is_default, is_private, created_ms";

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn create_tenant(&self, project: &ProjectId, tenant: &Tenant) -> Result<()> {
        let (project, t) = (project.clone(), tenant.clone());
        self.write(move |c| {
            c.execute(
                "INSERT INTO tenants (project_id, id, name, self_provisioning_domains, custom_attributes, disabled, created_ms, enforce_sso) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    project.as_str(),
                    t.id,
                    t.name,
                    to_json(&t.self_provisioning_domains)?,
                    to_json(&t.custom_attributes)?,
                    t.disabled,
                    t.created_ms,
                    t.enforce_sso
                ],
            )
            .map(|_| ())
            .map_err(|e| if is_constraint(&e) { errors::tenant_taken(&t.id) } else { storage_err(e) })
        })
        .await
    }

    async fn update_tenant(&self, project: &ProjectId, tenant: &Tenant) -> Result<Tenant> {
        let (project, t) = (project.clone(), tenant.clone());
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE tenants SET name = ?3, self_provisioning_domains = ?4, custom_attributes = ?5, disabled = ?6, \
                     enforce_sso = ?7 WHERE project_id = ?1 AND id = ?2",
                    params![
                        project.as_str(),
                        t.id,
                        t.name,
                        to_json(&t.self_provisioning_domains)?,
                        to_json(&t.custom_attributes)?,
                        t.disabled,
                        t.enforce_sso
                    ],
                )
                .map_err(|e| if is_constraint(&e) { errors::tenant_name_taken(&t.name) } else { storage_err(e) })?;
            if n == 0 {
                return Err(errors::tenant_not_found(&t.id));
            }
            c.query_row(
                "SELECT id, name, self_provisioning_domains, custom_attributes, disabled, created_ms, enforce_sso FROM tenants \
                 WHERE project_id = ?1 AND id = ?2",
                params![project.as_str(), t.id],
                tenant_row,
            )
            .map_err(storage_err)
        })
        .await
    }

    async fn get_tenant(&self, project: &ProjectId, id: &str) -> Result<Option<Tenant>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, name, self_provisioning_domains, custom_attributes, disabled, created_ms, enforce_sso FROM tenants \
                 WHERE project_id = ?1 AND id = ?2",
            )
            .and_then(|mut s| s.query_row(params![project.as_str(), id], tenant_row).optional())
            .map_err(storage_err)
        })
    }

    async fn list_tenants(&self, project: &ProjectId) -> Result<Vec<Tenant>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT id, name, self_provisioning_domains, custom_attributes, disabled, created_ms, enforce_sso FROM tenants \
                     WHERE project_id = ?1 ORDER BY created_ms, id",
                )
                .map_err(storage_err)?;
            let rows = s.query_map([project.as_str()], tenant_row).map_err(storage_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)
        })
    }

    async fn delete_tenant(&self, project: &ProjectId, id: &str, now_ms: i64) -> Result<bool> {
        let (project, id) = (project.clone(), id.to_owned());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let members = pks(
                &tx,
                "SELECT t.user_pk FROM user_tenants t JOIN users u ON u.pk = t.user_pk WHERE t.tenant_id = ?1 AND u.project_id = ?2",
                &[&id, &project.as_str()],
            )?;
            rewrite_users(&tx, &project, &members, &UserCascade::TenantDeleted(&id), now_ms)?;
            tx.execute("DELETE FROM roles WHERE project_id = ?1 AND tenant_id = ?2", params![project.as_str(), id])
                .map_err(storage_err)?;
            let n = tx
                .execute("DELETE FROM tenants WHERE project_id = ?1 AND id = ?2", params![project.as_str(), id])
                .map_err(storage_err)?;
            tx.commit().map_err(storage_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn create_permission(&self, project: &ProjectId, permission: &Permission) -> Result<()> {
        let (project, p) = (project.clone(), permission.clone());
        self.write(move |c| {
            c.execute(
                "INSERT INTO permissions (project_id, name, id, description, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![project.as_str(), p.name, p.id, p.description, p.created_ms],
            )
            .map(|_| ())
            .map_err(|e| if is_constraint(&e) { errors::permission_taken(&p.name) } else { storage_err(e) })
        })
        .await
    }

    async fn update_permission(
        &self,
        project: &ProjectId,
        name: &str,
        new_name: &str,
        description: &str,
    ) -> Result<()> {
        let (project, name, new_name, description) =
            (project.clone(), name.to_owned(), new_name.to_owned(), description.to_owned());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let n = tx
                .execute(
                    "UPDATE permissions SET name = ?3, description = ?4 WHERE project_id = ?1 AND name = ?2",
                    params![project.as_str(), name, new_name, description],
                )
                .map_err(|e| {
                    if is_constraint(&e) {
                        errors::permission_taken(&new_name)
                    } else {
                        storage_err(e)
                    }
                })?;
            if n == 0 {
                return Err(errors::permission_not_found(&name));
            }
            if name != new_name {
                rename_in_roles(&tx, &project, &name, Some(&new_name))?;
            }
            tx.commit().map_err(storage_err)
        })
        .await
    }

    async fn delete_permission(&self, project: &ProjectId, name: &str) -> Result<bool> {
        let (project, name) = (project.clone(), name.to_owned());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let n = tx
                .execute(
                    "DELETE FROM permissions WHERE project_id = ?1 AND name = ?2",
                    params![project.as_str(), name],
                )
                .map_err(storage_err)?;
            rename_in_roles(&tx, &project, &name, None)?;
            tx.commit().map_err(storage_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_permissions(&self, project: &ProjectId) -> Result<Vec<Permission>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT id, name, description, created_ms FROM permissions WHERE project_id = ?1 ORDER BY name")
                .map_err(storage_err)?;
            let rows = s
                .query_map([project.as_str()], |r| {
                    Ok(Permission { id: r.get(0)?, name: r.get(1)?, description: r.get(2)?, created_ms: r.get(3)? })
                })
                .map_err(storage_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)
        })
    }

    async fn create_role(&self, project: &ProjectId, role: &Role) -> Result<()> {
        let (project, r) = (project.clone(), role.clone());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            references::check_role_references(
                &r,
                &load_facts(&tx, &project, &DirectoryNeeds::to_check_role(&r))?,
            )?;
            tx.execute(
                &format!("INSERT INTO roles ({ROLE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    project.as_str(),
                    r.tenant_id.as_deref().unwrap_or(""),
                    r.name,
                    r.id,
                    r.description,
                    to_json(&r.permission_names)?,
                    r.default,
                    r.private,
                    r.created_ms
                ],
            )
            .map_err(|e| {
                if is_constraint(&e) {
                    errors::role_taken(&r.name)
                } else {
                    storage_err(e)
                }
            })?;
            tx.commit().map_err(storage_err)
        })
        .await
    }

    async fn update_role(
        &self,
        project: &ProjectId,
        name: &str,
        tenant: Option<&str>,
        role: &Role,
        now_ms: i64,
    ) -> Result<()> {
        let (project, name, tenant, r) =
            (project.clone(), name.to_owned(), tenant.unwrap_or("").to_owned(), role.clone());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let needs = DirectoryNeeds::to_check_permissions(&r.permission_names);
            references::check_permissions(&r.permission_names, &load_facts(&tx, &project, &needs)?)?;
            let n = tx
                .execute(
                    "UPDATE roles SET name = ?4, description = ?5, permission_names = ?6, is_default = ?7, is_private = ?8 \
                     WHERE project_id = ?1 AND tenant_id = ?2 AND name = ?3",
                    params![project.as_str(), tenant, name, r.name, r.description, to_json(&r.permission_names)?, r.default, r.private],
                )
                .map_err(|e| if is_constraint(&e) { errors::role_taken(&r.name) } else { storage_err(e) })?;
            if n == 0 {
                return Err(errors::role_not_found(&name));
            }
            if name != r.name {
                rename_role_on_users(&tx, &project, &tenant, &name, Some(&r.name), now_ms)?;
            }
            tx.commit().map_err(storage_err)
        })
        .await
    }

    async fn delete_role(
        &self,
        project: &ProjectId,
        name: &str,
        tenant: Option<&str>,
        now_ms: i64,
    ) -> Result<bool> {
        let (project, name, tenant) = (project.clone(), name.to_owned(), tenant.unwrap_or("").to_owned());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let n = tx
                .execute(
                    "DELETE FROM roles WHERE project_id = ?1 AND tenant_id = ?2 AND name = ?3",
                    params![project.as_str(), tenant, name],
                )
                .map_err(storage_err)?;
            if n > 0 {
                rename_role_on_users(&tx, &project, &tenant, &name, None, now_ms)?;
            }
            tx.commit().map_err(storage_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_roles(&self, project: &ProjectId) -> Result<Vec<Role>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {ROLE_COLUMNS} FROM roles WHERE project_id = ?1 ORDER BY tenant_id, name"
                ))
                .map_err(storage_err)?;
            let rows = s.query_map([project.as_str()], role_row).map_err(storage_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage_err)
        })
    }

    async fn put_attribute_defs(&self, project: &ProjectId, defs: &[AttributeDef]) -> Result<()> {
        let (project, defs) = (project.clone(), defs.to_vec());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            for d in &defs {
                let options: Vec<Value> =
                    d.options.iter().map(|o| serde_json::json!({"value": o.value, "label": o.label})).collect();
                tx.execute(
                    "INSERT INTO custom_attribute_defs (project_id, name, type, display_name, options, required) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (project_id, name) DO UPDATE SET type = excluded.type, \
                     display_name = excluded.display_name, options = excluded.options, required = excluded.required",
                    params![project.as_str(), d.name, d.kind as i64, d.display_name, to_json(&options)?, d.required],
                )
                .map_err(storage_err)?;
            }
            tx.commit().map_err(storage_err)
        })
        .await
    }

    async fn delete_attribute_defs(&self, project: &ProjectId, names: &[String]) -> Result<()> {
        let (project, names) = (project.clone(), names.to_vec());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            for n in &names {
                tx.execute(
                    "DELETE FROM custom_attribute_defs WHERE project_id = ?1 AND name = ?2",
                    params![project.as_str(), n],
                )
                .map_err(storage_err)?;
            }
            tx.commit().map_err(storage_err)
        })
        .await
    }

    async fn list_attribute_defs(&self, project: &ProjectId) -> Result<Vec<AttributeDef>> {
        self.read(|c| attribute_defs(c, project))
    }

    async fn update_user(&self, project: &ProjectId, user_id: &UserId, update: &UserUpdate) -> Result<User> {
        let (project, user_id, update) = (project.clone(), user_id.clone(), update.clone());
        self.write(move |c| {
            let tx = c.savepoint().map_err(storage_err)?;
            let (pk, old) = tx
                .prepare_cached(USER_FOR_UPDATE)
                .and_then(|mut s| {
                    s.query_row(params![project.as_str(), user_id.as_str()], user_with_pk).optional()
                })
                .map_err(storage_err)?
                .ok_or(Error::UserNotFound)?;
            let mut new = update.apply(&old)?;
            update.check(&new, &load_facts(&tx, &project, &update.needs(&new))?)?;
            save_user(&tx, &project, pk, &old, &new)?;
            tx.commit().map_err(storage_err)?;
            enrich(c, &project, std::slice::from_mut(&mut new))?;
            Ok(new)
        })
        .await
    }

    async fn create_users_each(&self, project: &ProjectId, users: &[User]) -> Result<Vec<Result<User>>> {
        let (project, users) = (project.clone(), users.to_vec());
        self.write(move |c| {
            let mut tx = c.savepoint().map_err(storage_err)?;
            let mut results = Vec::with_capacity(users.len());
            for u in users {
                let sp = tx.savepoint().map_err(storage_err)?;
                match insert_user(&sp, &project, &u) {
                    Ok(_) => {
                        sp.commit().map_err(storage_err)?;
                        results.push(Ok(u));
                    }
                    // Dropping the savepoint rolls this user back; the others stay.
                    Err(e) => results.push(Err(e)),
                }
            }
            tx.commit().map_err(storage_err)?;
            for u in results.iter_mut().flatten() {
                enrich(c, &project, std::slice::from_mut(u))?;
            }
            Ok(results)
        })
        .await
    }

    async fn record_login(
        &self,
        project: &ProjectId,
        user_id: &UserId,
        login_ms: i64,
        ip: &str,
    ) -> Result<()> {
        let (project, user_id, ip) = (project.clone(), user_id.clone(), ip.to_owned());
        self.write(move |c| {
            c.execute(
                "INSERT INTO login_history (user_pk, login_ms, ip) \
                 SELECT pk, ?3, ?4 FROM users WHERE project_id = ?1 AND user_id = ?2",
                params![project.as_str(), user_id.as_str(), login_ms, ip],
            )
            .map(|_| ())
            .map_err(storage_err)
        })
        .await
    }

    async fn login_history(&self, project: &ProjectId, user_ids: &[String]) -> Result<Vec<LoginRecord>> {
        let (project, ids) = (project.clone(), user_ids.to_vec());
        self.read_blocking(move |c| {
            let mut out = Vec::new();
            let mut s = c
                .prepare_cached(
                    "SELECT u.user_id, h.login_ms, h.ip FROM login_history h JOIN users u ON u.pk = h.user_pk \
                     WHERE u.project_id = ?1 AND u.user_id = ?2 ORDER BY h.login_ms DESC LIMIT 100",
                )
                .map_err(storage_err)?;
            for id in &ids {
                let rows = s
                    .query_map(params![project.as_str(), id], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(storage_err)?;
                for row in rows {
                    let (uid, login_ms, ip) = row.map_err(storage_err)?;
                    out.push(LoginRecord { user_id: UserId::parse(&uid)?, login_ms, ip });
                }
            }
            Ok(out)
        })
        .await
    }
}

/// Renames (or with None, removes) a permission in every role of the project that grants it.
fn rename_in_roles(tx: &Connection, project: &ProjectId, name: &str, new_name: Option<&str>) -> Result<()> {
    let mut s = tx
        .prepare("SELECT tenant_id, name, permission_names FROM roles WHERE project_id = ?1")
        .map_err(storage_err)?;
    let rows = s
        .query_map([project.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })
        .map_err(storage_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage_err)?;
    drop(s);
    for (tenant, role, perms) in rows {
        let Some(updated) = permission_renamed(&json_list(&perms), name, new_name) else { continue };
        tx.execute(
            "UPDATE roles SET permission_names = ?4 WHERE project_id = ?1 AND tenant_id = ?2 AND name = ?3",
            params![project.as_str(), tenant, role, to_json(&updated)?],
        )
        .map_err(storage_err)?;
    }
    Ok(())
}

/// Renames (or removes) a role on the users holding it, as core's `UserCascade::Role` says
/// (the tenants with their own role of that name are read here).
fn rename_role_on_users(
    tx: &Connection,
    project: &ProjectId,
    tenant: &str,
    name: &str,
    new_name: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    let holders = pks(
        tx,
        "SELECT DISTINCT r.user_pk FROM user_roles r JOIN users u ON u.pk = r.user_pk WHERE r.role_name = ?1 AND u.project_id = ?2",
        &[&name, &project.as_str()],
    )?;
    let shadowing: Vec<String> = {
        let mut s = tx
            .prepare("SELECT tenant_id FROM roles WHERE project_id = ?1 AND name = ?2 AND tenant_id <> ''")
            .map_err(storage_err)?;
        let rows = s.query_map(params![project.as_str(), name], |r| r.get(0)).map_err(storage_err)?;
        rows.collect::<rusqlite::Result<Vec<String>>>().map_err(storage_err)?
    };
    let cascade = UserCascade::Role {
        tenant: Some(tenant).filter(|t| !t.is_empty()),
        name,
        new_name,
        shadowed_in: &shadowing,
    };
    rewrite_users(tx, project, &holders, &cascade, now_ms)
}
