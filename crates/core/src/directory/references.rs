//! What a user's or a role's references to the directory mean, decided in one place for every
//! backend. The store reads, with its own SQL and inside its transaction, the few facts a
//! [`DirectoryNeeds`] names into a [`DirectoryFacts`]; the functions here decide from them (a
//! read view in two steps, so that a synchronous store and an asynchronous one implement it
//! alike, without a per-query thread hop or executor).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::directory::{check_custom_attributes, AttributeDef, Role, Tenant};
use crate::error::{Error, Result};
use crate::user::model::Contact;
use crate::user::User;

/// The key of a role: its tenant (empty for a project role) and its name.
pub type RoleKey = (String, String);

/// What a store must look up before core can check or enrich.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryNeeds<'a> {
    /// Tenants whose existence (and name) matter, each once.
    pub tenant_ids: Vec<&'a str>,
    /// Roles of `name` usable in `scope` (None: the project), each pair once: the store
    /// answers the project role of that name and, for a tenant scope, that tenant's role.
    pub roles: Vec<(Option<&'a str>, &'a str)>,
    /// Permissions whose existence matters, each once.
    pub permissions: Vec<&'a str>,
    /// Whether the custom attribute definitions matter.
    pub attribute_defs: bool,
    /// Whether a regular (not test) user other than the one with this id holds the address.
    /// Emails compare case-insensitively (ASCII), phones exactly.
    pub contact_taken: Option<(Contact<'a>, &'a str)>,
}

/// The answers to a [`DirectoryNeeds`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectoryFacts {
    /// Name of each tenant asked about that exists.
    pub tenants: HashMap<String, String>,
    /// Permission names of each role found, by [`RoleKey`].
    pub roles: HashMap<RoleKey, Vec<String>>,
    /// The permissions asked about that exist.
    pub permissions: HashSet<String>,
    pub attribute_defs: Vec<AttributeDef>,
    pub contact_taken: bool,
}

fn push_once<'a>(list: &mut Vec<&'a str>, value: &'a str) {
    if !list.contains(&value) {
        list.push(value);
    }
}

impl<'a> DirectoryNeeds<'a> {
    /// Before saving a user: its tenants, its roles in their scopes, and the attribute
    /// definitions when it has attributes.
    pub fn to_check(user: &'a User) -> Self {
        Self::to_check_all(std::iter::once(user))
    }

    /// Before saving many users at once (a bulk import): the union of what each one needs, so
    /// that one read of the facts serves the whole batch.
    pub fn to_check_all(users: impl IntoIterator<Item = &'a User>) -> Self {
        let mut needs = DirectoryNeeds::default();
        for user in users {
            for role in &user.role_names {
                needs.add_role(None, role);
            }
            for t in &user.tenants {
                push_once(&mut needs.tenant_ids, &t.tenant_id);
                for role in &t.role_names {
                    needs.add_role(Some(&t.tenant_id), role);
                }
            }
            needs.attribute_defs |= !user.custom_attributes.is_empty();
        }
        needs
    }

    /// Before answering users: the names of their tenants and the roles they hold there.
    /// Nothing for users in no tenant.
    pub fn to_enrich(users: &'a [User]) -> Self {
        let mut needs = DirectoryNeeds::default();
        for t in users.iter().flat_map(|u| &u.tenants) {
            push_once(&mut needs.tenant_ids, &t.tenant_id);
            for role in &t.role_names {
                needs.add_role(Some(&t.tenant_id), role);
            }
        }
        needs
    }

    /// Before saving a role: its tenant and its permissions.
    pub fn to_check_role(role: &'a Role) -> Self {
        let mut needs = Self::to_check_permissions(&role.permission_names);
        if let Some(t) = &role.tenant_id {
            needs.tenant_ids.push(t);
        }
        needs
    }

    /// Before saving a role's permission list.
    pub fn to_check_permissions(names: &'a [String]) -> Self {
        let mut needs = DirectoryNeeds::default();
        for p in names {
            push_once(&mut needs.permissions, p);
        }
        needs
    }

    fn add_role(&mut self, scope: Option<&'a str>, name: &'a str) {
        if !self.roles.contains(&(scope, name)) {
            self.roles.push((scope, name));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tenant_ids.is_empty()
            && self.roles.is_empty()
            && self.permissions.is_empty()
            && !self.attribute_defs
            && self.contact_taken.is_none()
    }
}

impl DirectoryFacts {
    /// The role of `name` that applies in `tenant` (None: the project): a tenant's own role of
    /// that name wins over a project role.
    pub fn role(&self, tenant: Option<&str>, name: &str) -> Option<&[String]> {
        tenant
            .and_then(|t| self.roles.get(&(t.to_owned(), name.to_owned())))
            .or_else(|| self.roles.get(&(String::new(), name.to_owned())))
            .map(Vec::as_slice)
    }

    /// Records a role row a store read.
    pub fn add_role(&mut self, tenant_id: String, name: String, permission_names: Vec<String>) {
        self.roles.insert((tenant_id, name), permission_names);
    }

    /// Every fact of a whole directory, for checking many users against it without a store read
    /// per user (a bulk import validates a whole file this way before writing anything).
    pub fn of_directory(tenants: &[Tenant], roles: &[Role], attribute_defs: Vec<AttributeDef>) -> Self {
        let mut facts = DirectoryFacts {
            tenants: tenants.iter().map(|t| (t.id.clone(), t.name.clone())).collect(),
            attribute_defs,
            ..DirectoryFacts::default()
        };
        for r in roles {
            facts.add_role(
                r.tenant_id.clone().unwrap_or_default(),
                r.name.clone(),
                r.permission_names.clone(),
            );
        }
        facts
    }
}

/// Refuses a user that names unknown tenants or roles, or undefined or mistyped custom
/// attributes (as hosted Descope does). Project roles are checked first, then each tenant and
/// its roles in order, then attributes.
pub fn check_references(user: &User, facts: &DirectoryFacts) -> Result<()> {
    for role in &user.role_names {
        if facts.role(None, role).is_none() {
            return Err(Error::invalid("roleNames", format!("unknown role '{role}'")));
        }
    }
    for t in &user.tenants {
        if !facts.tenants.contains_key(&t.tenant_id) {
            return Err(Error::invalid("userTenants", format!("unknown tenant '{}'", t.tenant_id)));
        }
        for role in &t.role_names {
            if facts.role(Some(&t.tenant_id), role).is_none() {
                return Err(Error::invalid(
                    "roleNames",
                    format!("unknown role '{role}' in tenant '{}'", t.tenant_id),
                ));
            }
        }
    }
    if !user.custom_attributes.is_empty() {
        check_custom_attributes(&facts.attribute_defs, &user.custom_attributes)?;
    }
    Ok(())
}

/// Refuses a role of an unknown tenant or with unknown permissions.
pub fn check_role_references(role: &Role, facts: &DirectoryFacts) -> Result<()> {
    if let Some(t) = &role.tenant_id {
        if !facts.tenants.contains_key(t) {
            return Err(Error::invalid("tenantId", format!("unknown tenant '{t}'")));
        }
    }
    check_permissions(&role.permission_names, facts)
}

/// Refuses permission names that are not defined.
pub fn check_permissions(names: &[String], facts: &DirectoryFacts) -> Result<()> {
    match names.iter().find(|p| !facts.permissions.contains(*p)) {
        Some(p) => Err(Error::invalid("permissionNames", format!("unknown permission '{p}'"))),
        None => Ok(()),
    }
}

/// Fills in each membership's tenant name and the permissions its roles grant (sorted, each
/// once). Tenant names and permissions are not stored with users, so renames show at once.
pub fn enrich(user: &mut User, facts: &DirectoryFacts) {
    for t in &mut user.tenants {
        t.tenant_name = facts.tenants.get(&t.tenant_id).cloned().unwrap_or_default();
        let mut perms = BTreeSet::new();
        for role in &t.role_names {
            perms.extend(facts.role(Some(&t.tenant_id), role).into_iter().flatten().cloned());
        }
        t.permissions = perms.into_iter().collect();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::directory::{AttributeDef, AttributeType};
    use crate::ids::UserId;
    use crate::user::{NewUser, UserTenant};

    /// A tiny in-memory directory answering needs as a store's SQL would.
    #[derive(Default)]
    pub(crate) struct MemoryDirectory {
        pub tenants: Vec<(String, String)>,
        pub roles: Vec<Role>,
        pub permissions: Vec<String>,
        pub defs: Vec<AttributeDef>,
    }

    impl MemoryDirectory {
        pub(crate) fn facts(&self, needs: &DirectoryNeeds<'_>) -> DirectoryFacts {
            let mut facts = DirectoryFacts::default();
            for (id, name) in &self.tenants {
                if needs.tenant_ids.contains(&id.as_str()) {
                    facts.tenants.insert(id.clone(), name.clone());
                }
            }
            for (scope, name) in &needs.roles {
                for r in &self.roles {
                    let usable = r.tenant_id.is_none() || r.tenant_id.as_deref() == *scope;
                    if r.name == *name && usable {
                        facts.add_role(
                            r.tenant_id.clone().unwrap_or_default(),
                            r.name.clone(),
                            r.permission_names.clone(),
                        );
                    }
                }
            }
            facts.permissions = self
                .permissions
                .iter()
                .filter(|p| needs.permissions.contains(&p.as_str()))
                .cloned()
                .collect();
            if needs.attribute_defs {
                facts.attribute_defs = self.defs.clone();
            }
            facts
        }
    }

    pub(crate) fn role(tenant: Option<&str>, name: &str, perms: &[&str]) -> Role {
        Role {
            id: format!("R-{name}"),
            name: name.into(),
            tenant_id: tenant.map(str::to_owned),
            description: String::new(),
            permission_names: perms.iter().map(|p| (*p).to_owned()).collect(),
            default: false,
            private: false,
            created_ms: 0,
        }
    }

    fn directory() -> MemoryDirectory {
        MemoryDirectory {
            tenants: vec![("t1".into(), "Tenant One".into()), ("t2".into(), "Tenant Two".into())],
            roles: vec![
                role(None, "viewer", &["read"]),
                role(Some("t1"), "viewer", &["read", "audit"]),
                role(Some("t2"), "admin", &["write"]),
            ],
            permissions: vec!["read".into(), "write".into(), "audit".into()],
            defs: vec![AttributeDef {
                name: "plan".into(),
                kind: AttributeType::String,
                display_name: String::new(),
                options: vec![],
                required: false,
            }],
        }
    }

    fn user(roles: &[&str], tenants: &[(&str, &[&str])]) -> User {
        let mut u = NewUser { login_id: "dana".into(), ..Default::default() }
            .into_user(UserId::generate(), 1)
            .unwrap();
        u.role_names = roles.iter().map(|r| (*r).to_owned()).collect();
        u.tenants = tenants
            .iter()
            .map(|(t, rs)| UserTenant {
                tenant_id: (*t).to_owned(),
                role_names: rs.iter().map(|r| (*r).to_owned()).collect(),
                ..Default::default()
            })
            .collect();
        u
    }

    fn check(dir: &MemoryDirectory, u: &User) -> Result<()> {
        check_references(u, &dir.facts(&DirectoryNeeds::to_check(u)))
    }

    #[test]
    fn known_references_pass_and_a_project_role_is_usable_in_any_tenant() {
        let dir = directory();
        check(&dir, &user(&["viewer"], &[("t1", &["viewer"]), ("t2", &["viewer", "admin"])])).unwrap();
    }

    #[test]
    fn unknown_references_fail_in_order() {
        let dir = directory();
        let err = check(&dir, &user(&["admin"], &[("nope", &[])])).unwrap_err();
        assert!(
            matches!(err, Error::Invalid { field: "roleNames", ref message } if message.contains("'admin'")),
            "{err:?}"
        );
        let err = check(&dir, &user(&[], &[("nope", &["x"])])).unwrap_err();
        assert!(matches!(err, Error::Invalid { field: "userTenants", .. }), "{err:?}");
        // A tenant role is usable only in its tenant.
        let err = check(&dir, &user(&[], &[("t1", &["admin"])])).unwrap_err();
        assert!(
            matches!(err, Error::Invalid { field: "roleNames", ref message } if message.contains("'t1'")),
            "{err:?}"
        );
        let mut u = user(&[], &[]);
        u.custom_attributes.insert("seats".into(), serde_json::json!(3));
        assert!(matches!(check(&dir, &u), Err(Error::Invalid { field: "customAttributes", .. })));
        u.custom_attributes.clear();
        u.custom_attributes.insert("plan".into(), serde_json::json!("pro"));
        check(&dir, &u).unwrap();
    }

    #[test]
    fn enrich_names_tenants_and_lets_a_tenants_own_role_win() {
        let dir = directory();
        let mut users =
            vec![user(&[], &[("t1", &["viewer"]), ("t2", &["viewer", "admin"]), ("gone", &["viewer"])])];
        let facts = dir.facts(&DirectoryNeeds::to_enrich(&users));
        enrich(&mut users[0], &facts);
        let t = &users[0].tenants;
        assert_eq!(
            (t[0].tenant_name.as_str(), t[0].permissions.clone()),
            ("Tenant One", vec!["audit".into(), "read".into()])
        );
        assert_eq!(t[1].permissions, ["read", "write"]);
        assert_eq!((t[2].tenant_name.as_str(), t[2].permissions.clone()), ("", vec!["read".to_owned()]));
    }

    #[test]
    fn users_without_tenants_need_nothing_to_enrich() {
        let users = vec![user(&["viewer"], &[])];
        assert!(DirectoryNeeds::to_enrich(&users).is_empty());
    }

    #[test]
    fn roles_need_a_known_tenant_and_known_permissions() {
        let dir = directory();
        let check = |r: &Role| check_role_references(r, &dir.facts(&DirectoryNeeds::to_check_role(r)));
        check(&role(Some("t1"), "new", &["read", "write"])).unwrap();
        assert!(matches!(
            check(&role(Some("nope"), "new", &[])),
            Err(Error::Invalid { field: "tenantId", .. })
        ));
        let err = check(&role(None, "new", &["read", "fly"])).unwrap_err();
        assert!(
            matches!(err, Error::Invalid { field: "permissionNames", ref message } if message.contains("'fly'"))
        );
    }
}
