//! The project directory: tenants, roles, permissions and custom attribute definitions, and the
//! rules users must satisfy against them (known tenants and roles, typed attribute values).

pub mod cascade;
pub mod errors;
pub mod references;

use std::sync::Arc;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{Map, Value};

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::ids::ProjectId;
use crate::limits::{
    MAX_ATTRIBUTE_NAME_LEN, MAX_CUSTOM_ATTRIBUTES_BYTES, MAX_FIELD_LEN, MAX_FILTER_VALUES, MAX_LIST_ITEMS,
    MAX_SEARCH_FILTERS,
};
use crate::store::SharedStore;
use crate::user::model::check_json_text;

fn random_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        rand::thread_rng().sample_iter(&Alphanumeric).take(27).map(char::from).collect::<String>()
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub self_provisioning_domains: Vec<String>,
    pub custom_attributes: Map<String, Value>,
    pub disabled: bool,
    /// Users of this tenant must sign in with its SSO.
    pub enforce_sso: bool,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: String,
    pub name: String,
    /// None for a project-level role.
    pub tenant_id: Option<String>,
    pub description: String,
    pub permission_names: Vec<String>,
    pub default: bool,
    pub private: bool,
    pub created_ms: i64,
}

/// Custom attribute types, numbered as Descope's tools number them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    String = 1,
    Number = 2,
    Boolean = 3,
    SingleSelect = 4,
    MultiSelect = 5,
    Date = 6,
}

impl AttributeType {
    pub fn from_number(n: i64) -> Result<Self> {
        Ok(match n {
            1 => AttributeType::String,
            2 => AttributeType::Number,
            3 => AttributeType::Boolean,
            4 => AttributeType::SingleSelect,
            5 => AttributeType::MultiSelect,
            6 => AttributeType::Date,
            _ => return Err(Error::invalid("type", "must be 1 (string) to 6 (date)")),
        })
    }

    /// Accepts the number (Node SDK) or the name (Python SDK).
    pub fn from_json(v: &Value) -> Result<Self> {
        match v {
            Value::Number(n) => Self::from_number(n.as_i64().unwrap_or(0)),
            Value::String(s) => Ok(match s.to_ascii_lowercase().as_str() {
                "string" | "text" => AttributeType::String,
                "number" | "numeric" => AttributeType::Number,
                "boolean" | "bool" => AttributeType::Boolean,
                "singleselect" | "single_select" | "select" => AttributeType::SingleSelect,
                "multiselect" | "multi_select" | "array" => AttributeType::MultiSelect,
                "date" => AttributeType::Date,
                other => match other.parse::<i64>() {
                    Ok(n) => Self::from_number(n)?,
                    Err(_) => return Err(Error::invalid("type", format!("unknown attribute type '{s}'"))),
                },
            }),
            _ => Err(Error::invalid("type", "must be a type name or number")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeOption {
    pub value: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeDef {
    pub name: String,
    pub kind: AttributeType,
    pub display_name: String,
    pub options: Vec<AttributeOption>,
    pub required: bool,
}

impl AttributeDef {
    /// Checks one value against the definition. Null clears an attribute and is always allowed.
    pub fn check(&self, value: &Value) -> Result<()> {
        let allowed = |s: &str| self.options.is_empty() || self.options.iter().any(|o| o.value == s);
        let ok = match (self.kind, value) {
            (_, Value::Null) => true,
            (AttributeType::String, Value::String(s)) => s.len() <= MAX_FIELD_LEN,
            (AttributeType::Number, Value::Number(_)) => true,
            (AttributeType::Boolean, Value::Bool(_)) => true,
            (AttributeType::SingleSelect, Value::String(s)) => allowed(s),
            (AttributeType::MultiSelect, Value::Array(items)) => {
                items.iter().all(|i| i.as_str().is_some_and(allowed))
            }
            // Dates as Unix milliseconds or ISO-8601 text.
            (AttributeType::Date, Value::Number(_)) => true,
            (AttributeType::Date, Value::String(s)) => {
                s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-'
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid("customAttributes", format!("value of '{}' does not fit its type", self.name)))
        }
    }
}

/// Validates a user's custom attributes against the project's definitions: every key must be
/// defined, and every value fit its type.
pub fn check_custom_attributes(defs: &[AttributeDef], attrs: &Map<String, Value>) -> Result<()> {
    for (key, value) in attrs {
        let def = defs.iter().find(|d| &d.name == key).ok_or_else(|| {
            Error::invalid("customAttributes", format!("'{key}' is not a defined custom attribute"))
        })?;
        def.check(value)?;
    }
    Ok(())
}

/// The rule of a custom attribute name, for definitions and search filters alike: 1 to
/// [`MAX_ATTRIBUTE_NAME_LEN`] bytes of printable text without quotes or backslashes (names end up
/// inside JSON paths such as `$."name"`).
pub fn check_attribute_name(field: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::MissingArgument(field));
    }
    if name.len() > MAX_ATTRIBUTE_NAME_LEN
        || name.chars().any(|c| c.is_control() || c == '"' || c == '\\')
        || name.trim() != name
    {
        return Err(Error::invalid(
            field,
            format!(
                "custom attribute names are 1 to {MAX_ATTRIBUTE_NAME_LEN} bytes of printable text without \
                 quotes, backslashes or surrounding spaces"
            ),
        ));
    }
    Ok(())
}

fn check_name(field: &'static str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::MissingArgument(field));
    }
    if name.len() > MAX_FIELD_LEN || name.chars().any(char::is_control) {
        return Err(Error::invalid(field, format!("at most {MAX_FIELD_LEN} printable bytes")));
    }
    Ok(name.to_owned())
}

/// The tenant a role request names: none when absent or empty; otherwise a value no longer than
/// any tenant id can be, without control characters (compared as given).
fn tenant_ref(tenant: Option<&str>) -> Result<Option<&str>> {
    match tenant.filter(|t| !t.is_empty()) {
        Some(t) if t.len() > MAX_FIELD_LEN || t.chars().any(char::is_control) => {
            Err(Error::invalid("tenantId", format!("at most {MAX_FIELD_LEN} printable bytes")))
        }
        other => Ok(other),
    }
}

/// A tenant's custom attributes (free-form, unlike users' typed ones): no NUL, and bounded like
/// a user's.
fn check_tenant_attributes(attrs: &Map<String, Value>) -> Result<()> {
    check_json_text("customAttributes", attrs)?;
    let len = serde_json::to_vec(attrs).map(|v| v.len()).unwrap_or(usize::MAX);
    if len > MAX_CUSTOM_ATTRIBUTES_BYTES {
        return Err(Error::invalid(
            "customAttributes",
            format!("must serialize to at most {MAX_CUSTOM_ATTRIBUTES_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// A search filter list of tenants or roles: bounded like the user search's lists, each value
/// no longer than a name can be (a longer one could match nothing).
fn check_filter(field: &'static str, values: &[String]) -> Result<()> {
    if values.len() > MAX_FILTER_VALUES || values.iter().any(|v| v.len() > MAX_FIELD_LEN) {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_FILTER_VALUES} values of at most {MAX_FIELD_LEN} bytes"),
        ));
    }
    Ok(())
}

fn check_list(field: &'static str, values: &[String]) -> Result<()> {
    if values.len() > MAX_LIST_ITEMS || values.iter().any(|v| v.is_empty() || v.len() > MAX_FIELD_LEN) {
        return Err(Error::invalid(field, format!("at most {MAX_LIST_ITEMS} non-empty values")));
    }
    Ok(())
}

/// A tenant search (tenants per project are few: filtered in memory).
#[derive(Debug, Clone, Default)]
pub struct TenantQuery {
    pub ids: Vec<String>,
    pub names: Vec<String>,
    pub self_provisioning_domains: Vec<String>,
    pub custom_attributes: Map<String, Value>,
}

/// A role search. Project roles are part of the answer when no tenant is named, or when
/// `include_project_roles` asks for them beside the named tenants' roles.
#[derive(Debug, Clone, Default)]
pub struct RoleQuery {
    pub tenant_ids: Vec<String>,
    pub role_names: Vec<String>,
    pub role_name_like: Option<String>,
    pub permission_names: Vec<String>,
    pub include_project_roles: bool,
    pub role_ids: Vec<String>,
}

#[derive(Clone)]
pub struct DirectoryService {
    store: SharedStore,
    clock: SharedClock,
    audit: crate::audit::Audit,
}

fn tenant_record(project: &ProjectId, action: &str, tenant_id: &str) -> crate::audit::AuditRecord {
    crate::audit::AuditRecord::new(project, action).tenants(vec![tenant_id.to_owned()])
}

/// An audit record about the role `name` of `tenant` (none: a project role).
fn role_record(
    project: &ProjectId,
    action: &str,
    name: &str,
    tenant: Option<&str>,
) -> crate::audit::AuditRecord {
    let record = crate::audit::AuditRecord::new(project, action).data("name", name);
    match tenant {
        Some(t) => record.tenants(vec![t.to_owned()]).data("tenantId", t),
        None => record,
    }
}

impl DirectoryService {
    pub fn new(store: SharedStore, clock: SharedClock) -> Self {
        let audit = crate::audit::Audit::disabled(clock.clone());
        Self { store, clock, audit }
    }

    /// Records tenant, role and permission changes in `audit`.
    pub fn with_audit(mut self, audit: crate::audit::Audit) -> Self {
        self.audit = audit;
        self
    }

    // ---- tenants ----

    pub async fn create_tenant(&self, project: &ProjectId, mut tenant: Tenant) -> Result<Tenant> {
        tenant.name = check_name("name", &tenant.name)?;
        check_tenant_attributes(&tenant.custom_attributes)?;
        tenant.id = match tenant.id.trim() {
            "" => random_id("T"),
            id => check_name("id", id)?,
        };
        check_list("selfProvisioningDomains", &tenant.self_provisioning_domains)?;
        tenant.created_ms = self.clock.now_ms();
        self.store.create_tenant(project, &tenant).await?;
        self.audit.record(
            tenant_record(project, crate::audit::actions::TENANT_CREATED, &tenant.id)
                .data("name", tenant.name.as_str()),
        );
        Ok(tenant)
    }

    pub async fn update_tenant(&self, project: &ProjectId, mut tenant: Tenant) -> Result<Tenant> {
        tenant.name = check_name("name", &tenant.name)?;
        check_tenant_attributes(&tenant.custom_attributes)?;
        check_list("selfProvisioningDomains", &tenant.self_provisioning_domains)?;
        let saved = self.store.update_tenant(project, &tenant).await?;
        self.audit.record(
            tenant_record(project, crate::audit::actions::TENANT_MODIFIED, &saved.id)
                .data("name", saved.name.as_str()),
        );
        Ok(saved)
    }

    pub async fn load_tenant(&self, project: &ProjectId, id: &str) -> Result<Tenant> {
        self.store.get_tenant(project, id).await?.ok_or_else(|| errors::tenant_not_found(id))
    }

    /// Deletes a tenant (and its roles and memberships). With `cascade`, the users who belonged
    /// to no other tenant are deleted too, each in its own transaction, before the tenant.
    pub async fn delete_tenant(&self, project: &ProjectId, id: &str, cascade: bool) -> Result<()> {
        if id.is_empty() {
            return Err(Error::MissingArgument("id"));
        }
        if id.len() > MAX_FIELD_LEN || id.chars().any(char::is_control) {
            return Err(Error::invalid("id", format!("at most {MAX_FIELD_LEN} printable bytes")));
        }
        if cascade {
            let mut only_here = Vec::new();
            for page in 0.. {
                let q = crate::user::UserQuery {
                    tenant_ids: vec![id.to_owned()],
                    test: crate::user::TestUserFilter::Include,
                    limit: 1000,
                    page,
                    ..Default::default()
                };
                let (members, _) = self.store.search_users(project, &q).await?;
                if members.is_empty() {
                    break;
                }
                only_here.extend(members.into_iter().filter(|u| u.tenants.len() == 1).map(|u| u.user_id));
            }
            for user_id in only_here {
                if self.store.delete_user(project, &user_id).await? {
                    self.audit.record(
                        tenant_record(project, crate::audit::actions::USER_DELETED, id)
                            .user(user_id.as_str())
                            .data("cascade", true),
                    );
                }
            }
        }
        if self.store.delete_tenant(project, id, self.clock.now_ms()).await? {
            self.audit.record(
                tenant_record(project, crate::audit::actions::TENANT_DELETED, id).data("cascade", cascade),
            );
        }
        Ok(())
    }

    /// Changes only the given fields of a tenant.
    pub async fn patch_tenant(
        &self,
        project: &ProjectId,
        id: &str,
        change: impl FnOnce(&mut Tenant),
    ) -> Result<Tenant> {
        let mut tenant = self.load_tenant(project, id).await?;
        change(&mut tenant);
        self.update_tenant(project, tenant).await
    }

    pub async fn search_tenants(&self, project: &ProjectId, q: &TenantQuery) -> Result<Vec<Tenant>> {
        check_filter("tenantIds", &q.ids)?;
        check_filter("tenantNames", &q.names)?;
        check_filter("tenantSelfProvisioningDomains", &q.self_provisioning_domains)?;
        if q.custom_attributes.len() > MAX_SEARCH_FILTERS {
            return Err(Error::invalid(
                "customAttributes",
                format!("at most {MAX_SEARCH_FILTERS} attributes in one search"),
            ));
        }
        check_json_text("customAttributes", &q.custom_attributes)?;
        let all = self.store.list_tenants(project).await?;
        Ok(all
            .into_iter()
            .filter(|t| q.ids.is_empty() || q.ids.contains(&t.id))
            .filter(|t| q.names.is_empty() || q.names.iter().any(|n| n.eq_ignore_ascii_case(&t.name)))
            .filter(|t| {
                q.self_provisioning_domains.is_empty()
                    || t.self_provisioning_domains.iter().any(|d| q.self_provisioning_domains.contains(d))
            })
            .filter(|t| q.custom_attributes.iter().all(|(k, v)| t.custom_attributes.get(k) == Some(v)))
            .collect())
    }

    // ---- permissions ----

    pub async fn create_permission(
        &self,
        project: &ProjectId,
        name: &str,
        description: &str,
    ) -> Result<Permission> {
        let p = Permission {
            id: random_id("PRM"),
            name: check_name("name", name)?,
            description: description.to_owned(),
            created_ms: self.clock.now_ms(),
        };
        self.store.create_permission(project, &p).await?;
        self.audit.record(
            crate::audit::AuditRecord::new(project, crate::audit::actions::PERMISSION_CREATED)
                .data("name", p.name.as_str())
                .data("permissionId", p.id.as_str()),
        );
        Ok(p)
    }

    pub async fn update_permission(
        &self,
        project: &ProjectId,
        name: &str,
        new_name: &str,
        description: &str,
    ) -> Result<()> {
        let new_name = check_name("newName", if new_name.is_empty() { name } else { new_name })?;
        let name = check_name("name", name)?;
        self.store.update_permission(project, &name, &new_name, description).await?;
        self.audit.record(
            crate::audit::AuditRecord::new(project, crate::audit::actions::PERMISSION_MODIFIED)
                .data("name", name.as_str())
                .data("newName", new_name.as_str()),
        );
        Ok(())
    }

    pub async fn delete_permission(&self, project: &ProjectId, name: &str) -> Result<()> {
        let name = check_name("name", name)?;
        if self.store.delete_permission(project, &name).await? {
            self.audit.record(
                crate::audit::AuditRecord::new(project, crate::audit::actions::PERMISSION_DELETED)
                    .data("name", name.as_str()),
            );
        }
        Ok(())
    }

    pub async fn list_permissions(&self, project: &ProjectId) -> Result<Vec<Permission>> {
        self.store.list_permissions(project).await
    }

    // ---- roles ----

    pub async fn create_role(&self, project: &ProjectId, mut role: Role) -> Result<Role> {
        role.name = check_name("name", &role.name)?;
        role.id = random_id("ROL");
        role.tenant_id = tenant_ref(role.tenant_id.as_deref())?.map(str::to_owned);
        check_list("permissionNames", &role.permission_names)?;
        role.created_ms = self.clock.now_ms();
        self.store.create_role(project, &role).await?;
        self.audit.record(
            role_record(project, crate::audit::actions::ROLE_CREATED, &role.name, role.tenant_id.as_deref())
                .data("roleId", role.id.as_str())
                .data("permissionNames", role.permission_names.clone()),
        );
        Ok(role)
    }

    /// Replaces a role found by name (and tenant); `new_name` renames it, also on users.
    pub async fn update_role(
        &self,
        project: &ProjectId,
        name: &str,
        tenant: Option<&str>,
        mut role: Role,
    ) -> Result<()> {
        role.name = check_name("newName", &role.name)?;
        check_list("permissionNames", &role.permission_names)?;
        let name = check_name("name", name)?;
        let tenant = tenant_ref(tenant)?;
        self.store.update_role(project, &name, tenant, &role, self.clock.now_ms()).await?;
        self.audit.record(
            role_record(project, crate::audit::actions::ROLE_MODIFIED, &name, tenant)
                .data("newName", role.name.as_str())
                .data("permissionNames", role.permission_names.clone()),
        );
        Ok(())
    }

    pub async fn delete_role(&self, project: &ProjectId, name: &str, tenant: Option<&str>) -> Result<()> {
        let name = check_name("name", name)?;
        let tenant = tenant_ref(tenant)?;
        if self.store.delete_role(project, &name, tenant, self.clock.now_ms()).await? {
            self.audit.record(role_record(project, crate::audit::actions::ROLE_DELETED, &name, tenant));
        }
        Ok(())
    }

    pub async fn list_roles(&self, project: &ProjectId) -> Result<Vec<Role>> {
        self.store.list_roles(project).await
    }

    pub async fn search_roles(&self, project: &ProjectId, q: &RoleQuery) -> Result<Vec<Role>> {
        check_filter("tenantIds", &q.tenant_ids)?;
        check_filter("roleNames", &q.role_names)?;
        check_filter("roleIds", &q.role_ids)?;
        check_filter("permissionNames", &q.permission_names)?;
        if q.role_name_like.as_ref().is_some_and(|l| l.len() > MAX_FIELD_LEN) {
            return Err(Error::invalid("roleNameLike", format!("at most {MAX_FIELD_LEN} bytes")));
        }
        let like = q.role_name_like.as_ref().map(|s| s.to_lowercase());
        Ok(self
            .store
            .list_roles(project)
            .await?
            .into_iter()
            .filter(|r| match &r.tenant_id {
                Some(t) => q.tenant_ids.is_empty() || q.tenant_ids.contains(t),
                None => q.tenant_ids.is_empty() || q.include_project_roles,
            })
            .filter(|r| q.role_names.is_empty() || q.role_names.contains(&r.name))
            .filter(|r| q.role_ids.is_empty() || q.role_ids.contains(&r.id))
            .filter(|r| like.as_ref().is_none_or(|l| r.name.to_lowercase().contains(l)))
            .filter(|r| {
                q.permission_names.is_empty()
                    || r.permission_names.iter().any(|p| q.permission_names.contains(p))
            })
            .collect())
    }

    // ---- custom attributes ----

    /// Creates or replaces definitions by name; a definition without a display name shows its
    /// name, as in Descope's console.
    pub async fn create_attributes(
        &self,
        project: &ProjectId,
        mut defs: Vec<AttributeDef>,
    ) -> Result<Vec<AttributeDef>> {
        if defs.is_empty() {
            return Err(Error::MissingArgument("attributes"));
        }
        for d in &mut defs {
            if d.display_name.is_empty() {
                d.display_name = d.name.clone();
            }
        }
        for d in &defs {
            check_attribute_name("name", &d.name)?;
            let texts =
                std::iter::once(&d.display_name).chain(d.options.iter().flat_map(|o| [&o.value, &o.label]));
            if texts.into_iter().any(|t| t.contains('\0') || t.len() > MAX_FIELD_LEN) {
                return Err(Error::invalid("attributes", "display names and options must be printable text"));
            }
        }
        self.store.put_attribute_defs(project, &defs).await?;
        self.store.list_attribute_defs(project).await
    }

    pub async fn delete_attributes(
        &self,
        project: &ProjectId,
        names: &[String],
    ) -> Result<Vec<AttributeDef>> {
        if names.len() > MAX_FILTER_VALUES || names.iter().any(|n| n.len() > MAX_ATTRIBUTE_NAME_LEN) {
            return Err(Error::invalid(
                "names",
                format!("at most {MAX_FILTER_VALUES} names of at most {MAX_ATTRIBUTE_NAME_LEN} bytes"),
            ));
        }
        self.store.delete_attribute_defs(project, names).await?;
        self.store.list_attribute_defs(project).await
    }

    pub async fn list_attributes(&self, project: &ProjectId) -> Result<Vec<AttributeDef>> {
        self.store.list_attribute_defs(project).await
    }
}

/// Keeps `Arc` in the public API surface for services built around the directory.
pub type SharedDirectory = Arc<DirectoryService>;
