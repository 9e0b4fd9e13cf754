//! What happens to users and roles when a directory entry they name is renamed or deleted.
//! The store finds the rows that may be affected and writes back what these functions answer.

use crate::user::User;

/// A directory change that users follow. Users are rewritten without reference checks: a
/// cascade only removes or renames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCascade<'a> {
    /// The tenant was deleted: its memberships go.
    TenantDeleted(&'a str),
    /// The role `name` of `tenant` (None: the project) was renamed to `new_name`, or deleted
    /// (None). A project role changes at project level and in the tenants that have no role of
    /// their own under that name (`shadowed_in` lists those that do: there the name means the
    /// tenant's role); a tenant role changes in that tenant only.
    Role { tenant: Option<&'a str>, name: &'a str, new_name: Option<&'a str>, shadowed_in: &'a [String] },
}

impl UserCascade<'_> {
    /// The user as it must be saved, stamped `now_ms`; None when it does not change.
    pub fn apply(&self, user: &User, now_ms: i64) -> Option<User> {
        let mut changed = user.clone();
        match *self {
            UserCascade::TenantDeleted(id) => changed.tenants.retain(|t| t.tenant_id != id),
            UserCascade::Role { tenant: None, name, new_name, shadowed_in } => {
                rename_in(&mut changed.role_names, name, new_name);
                for t in changed.tenants.iter_mut().filter(|t| !shadowed_in.contains(&t.tenant_id)) {
                    rename_in(&mut t.role_names, name, new_name);
                }
            }
            UserCascade::Role { tenant: Some(tenant), name, new_name, .. } => {
                for t in changed.tenants.iter_mut().filter(|t| t.tenant_id == tenant) {
                    rename_in(&mut t.role_names, name, new_name);
                }
            }
        }
        if changed == *user {
            return None;
        }
        changed.modified_ms = now_ms;
        Some(changed)
    }
}

/// Renames (or with None, removes) `name` in a list of names.
fn rename_in(list: &mut Vec<String>, name: &str, new_name: Option<&str>) {
    match new_name {
        Some(n) => list.iter_mut().filter(|v| v.as_str() == name).for_each(|v| n.clone_into(v)),
        None => list.retain(|v| v != name),
    }
}

/// A role's permissions after the permission `name` was renamed (or with None, deleted); None
/// when the role does not grant it.
pub fn permission_renamed(permissions: &[String], name: &str, new_name: Option<&str>) -> Option<Vec<String>> {
    if !permissions.iter().any(|p| p == name) {
        return None;
    }
    let mut updated = permissions.to_vec();
    rename_in(&mut updated, name, new_name);
    Some(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::user::{NewUser, UserTenant};

    fn user() -> User {
        let mut u = NewUser { login_id: "dana".into(), ..Default::default() }
            .into_user(UserId::generate(), 1)
            .unwrap();
        u.role_names = vec!["viewer".into(), "other".into()];
        u.tenants = ["t1", "t2"]
            .iter()
            .map(|t| UserTenant {
                tenant_id: (*t).into(),
                role_names: vec!["viewer".into()],
                ..Default::default()
            })
            .collect();
        u
    }

    #[test]
    fn a_project_role_rename_skips_tenants_with_their_own_role_of_that_name() {
        let shadowed = vec!["t2".to_owned()];
        let cascade = UserCascade::Role {
            tenant: None,
            name: "viewer",
            new_name: Some("reader"),
            shadowed_in: &shadowed,
        };
        let u = cascade.apply(&user(), 9).unwrap();
        assert_eq!(u.role_names, ["reader", "other"]);
        assert_eq!(u.tenants[0].role_names, ["reader"]);
        assert_eq!(u.tenants[1].role_names, ["viewer"], "t2's own viewer role is another role");
        assert_eq!(u.modified_ms, 9);
    }

    #[test]
    fn a_tenant_role_delete_touches_that_tenant_only() {
        let cascade =
            UserCascade::Role { tenant: Some("t1"), name: "viewer", new_name: None, shadowed_in: &[] };
        let u = cascade.apply(&user(), 9).unwrap();
        assert_eq!(u.role_names, ["viewer", "other"]);
        assert!(u.tenants[0].role_names.is_empty());
        assert_eq!(u.tenants[1].role_names, ["viewer"]);
    }

    #[test]
    fn a_project_role_delete_removes_it_everywhere_not_shadowed() {
        let cascade = UserCascade::Role { tenant: None, name: "viewer", new_name: None, shadowed_in: &[] };
        let u = cascade.apply(&user(), 9).unwrap();
        assert_eq!(u.role_names, ["other"]);
        assert!(u.tenants.iter().all(|t| t.role_names.is_empty()));
    }

    #[test]
    fn an_unaffected_user_is_not_rewritten() {
        let cascade =
            UserCascade::Role { tenant: Some("t3"), name: "viewer", new_name: None, shadowed_in: &[] };
        assert_eq!(cascade.apply(&user(), 9), None);
        assert_eq!(UserCascade::TenantDeleted("t3").apply(&user(), 9), None);
        let u = UserCascade::TenantDeleted("t1").apply(&user(), 9).unwrap();
        assert_eq!(u.tenants.len(), 1);
    }

    #[test]
    fn permission_rename_and_delete_in_roles() {
        let perms = vec!["read".to_owned(), "write".to_owned()];
        assert_eq!(
            permission_renamed(&perms, "read", Some("view")),
            Some(vec!["view".into(), "write".into()])
        );
        assert_eq!(permission_renamed(&perms, "read", None), Some(vec!["write".into()]));
        assert_eq!(permission_renamed(&perms, "fly", None), None);
    }
}
