//! Changes to one user as data. The management API's update endpoints each become one
//! [`UserChange`]; core applies it to the user the store holds locked in its write transaction
//! ([`UserUpdate::apply`]), then checks the result against the directory facts the store read in
//! that same transaction ([`UserUpdate::check`]). A rule that must see the state it changes
//! (another user holding this email) therefore cannot race a concurrent write.

use serde_json::{Map, Value};

use crate::directory::references::{check_references, DirectoryFacts, DirectoryNeeds};
use crate::error::{Error, Result};
use crate::limits::{MAX_FIELD_LEN, MAX_LIST_ITEMS};
use crate::user::model::{add_all, Contact, NewUser, User, UserStatus, UserTenant};

/// How a list of names changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOp {
    /// The list becomes the values given.
    Set,
    /// Values not yet in the list are appended, in order.
    Add,
    /// Every occurrence of the values given leaves the list.
    Remove,
}

impl ListOp {
    pub fn apply(self, list: &mut Vec<String>, values: Vec<String>) {
        match self {
            ListOp::Set => *list = values,
            ListOp::Add => add_all(list, &values),
            ListOp::Remove => list.retain(|v| !values.contains(v)),
        }
    }
}

/// The fields of a patch; `None` leaves a field as it is, an empty text clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub verified_email: Option<bool>,
    pub verified_phone: Option<bool>,
    pub names: NameParts,
    pub picture: Option<String>,
    pub role_names: Option<Vec<String>>,
    pub tenants: Option<Vec<UserTenant>>,
    /// Merged into the user's values: the attributes given change, the others stay.
    pub custom_attributes: Option<Map<String, Value>>,
    pub sso_app_ids: Option<Vec<String>>,
    /// The status as sent, parsed when the patch is applied, so that an unknown user is
    /// reported before a bad status (as the patch endpoints always did). Empty: unchanged.
    pub status: Option<String>,
}

/// Display name and name parts; `None` leaves a part as it is, an empty text clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameParts {
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub family_name: Option<String>,
}

/// Where a role list lives: the project, or one tenant membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleScope {
    Project,
    /// The membership is added when the user is not yet in the tenant (even to remove roles).
    Tenant(String),
}

/// One change to one user, as a management endpoint asks for it.
#[derive(Debug, Clone, PartialEq)]
pub enum UserChange {
    /// `/user/update`: every field becomes the request's. The primary login id (which found the
    /// user) and the test flag stay; absent fields are cleared; the status changes only when
    /// given; a verified flag not given stays for an unchanged address and is set for a new one.
    Replace(Box<NewUser>),
    /// Only the fields given change.
    Patch(Box<UserPatch>),
    Status(UserStatus),
    /// Replaces `old` (or, when the user has no such login id, the primary one) by `new`; an
    /// empty `new` removes it. A `new` the user already has changes nothing.
    LoginId {
        old: String,
        new: String,
    },
    /// Appends a login id (one the user has changes nothing).
    AddLoginId(String),
    /// Sets (None: clears) the email, verified only when `verified` says so. With
    /// `fail_on_conflict`, another (non-test) user holding the address fails the change.
    Email {
        email: Option<String>,
        verified: Option<bool>,
        fail_on_conflict: bool,
    },
    /// As `Email`, for the phone.
    Phone {
        phone: Option<String>,
        verified: Option<bool>,
        fail_on_conflict: bool,
    },
    Names(NameParts),
    /// Sets (None or empty: clears) the picture URL.
    Picture(Option<String>),
    /// Sets one custom attribute; a null value is kept as null.
    CustomAttribute {
        key: String,
        value: Value,
    },
    Roles {
        scope: RoleScope,
        op: ListOp,
        roles: Vec<String>,
    },
    /// Adds the membership (without roles) unless the user has it.
    AddTenant(String),
    RemoveTenant(String),
    SsoApps {
        op: ListOp,
        apps: Vec<String>,
    },
    /// Several changes, applied in order and saved together: all of them or none.
    Several(Vec<UserChange>),
}

/// The names a list change gives. A removal leaves a valid user valid whatever it names, so the
/// user's own checks never see them: they are bounded here like the lists they change.
fn check_given(field: &'static str, values: &[String]) -> Result<()> {
    if values.len() > MAX_LIST_ITEMS || values.iter().any(|v| v.len() > MAX_FIELD_LEN) {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_LIST_ITEMS} values of at most {MAX_FIELD_LEN} bytes"),
        ));
    }
    Ok(())
}

impl UserChange {
    /// What kind of change this is, for the audit trail (never the values: an email or a custom
    /// attribute may be personal data).
    pub fn kind(&self) -> &'static str {
        match self {
            UserChange::Replace(_) => "update",
            UserChange::Patch(_) => "patch",
            UserChange::Status(_) => "status",
            UserChange::LoginId { .. } => "loginId",
            UserChange::AddLoginId(_) => "addLoginId",
            UserChange::Email { .. } => "email",
            UserChange::Phone { .. } => "phone",
            UserChange::Names(_) => "names",
            UserChange::Picture(_) => "picture",
            UserChange::CustomAttribute { .. } => "customAttribute",
            UserChange::Roles { .. } => "roles",
            UserChange::AddTenant(_) => "addTenant",
            UserChange::RemoveTenant(_) => "removeTenant",
            UserChange::SsoApps { .. } => "ssoApps",
            UserChange::Several(_) => "several",
        }
    }
}

/// Empty text means absent.
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// The verified flag of a replaced address: the flag given wins; without one, an unchanged
/// address keeps its flag and a new address counts as verified (management sets it); no
/// address is never verified.
fn replaced_verified(
    current: &Option<String>,
    current_verified: bool,
    new: &Option<String>,
    given: Option<bool>,
) -> bool {
    match (new, given) {
        (_, Some(v)) => v,
        (Some(n), None) => current.as_ref() != Some(n) || current_verified,
        (None, None) => false,
    }
}

/// A patched address: the flag given wins; otherwise a changed address is verified when
/// present, and an unchanged one keeps its flag.
fn patch_contact(
    address: &mut Option<String>,
    verified: &mut bool,
    new: Option<String>,
    given: Option<bool>,
) {
    if let Some(n) = new {
        let changed = address.as_deref() != Some(n.as_str());
        *address = non_empty(Some(n));
        if changed {
            *verified = given.unwrap_or(address.is_some());
        }
    }
    if let Some(v) = given {
        *verified = v;
    }
}

impl NameParts {
    fn apply(self, u: &mut User) {
        for (field, value) in [
            (&mut u.name, self.name),
            (&mut u.given_name, self.given_name),
            (&mut u.middle_name, self.middle_name),
            (&mut u.family_name, self.family_name),
        ] {
            if let Some(v) = value {
                *field = non_empty(Some(v));
            }
        }
    }
}

impl UserPatch {
    fn apply(self, u: &mut User) -> Result<()> {
        patch_contact(&mut u.email, &mut u.verified_email, self.email, self.verified_email);
        patch_contact(&mut u.phone, &mut u.verified_phone, self.phone, self.verified_phone);
        self.names.apply(u);
        if let Some(p) = self.picture {
            u.picture = non_empty(Some(p));
        }
        if let Some(r) = self.role_names {
            u.role_names = r;
        }
        if let Some(t) = self.tenants {
            u.tenants = t;
        }
        if let Some(attrs) = self.custom_attributes {
            u.custom_attributes.extend(attrs);
        }
        if let Some(apps) = self.sso_app_ids {
            u.sso_app_ids = apps;
        }
        if let Some(s) = self.status.filter(|s| !s.is_empty()) {
            u.status = UserStatus::parse(&s)?;
        }
        Ok(())
    }
}

impl UserChange {
    /// Applies the change to `u` (no validation: see [`UserUpdate::apply`]).
    pub fn apply(self, u: &mut User) -> Result<()> {
        match self {
            UserChange::Replace(new) => replace(u, *new),
            UserChange::Patch(patch) => patch.apply(u)?,
            UserChange::Status(status) => u.status = status,
            UserChange::LoginId { old, new } => {
                let pos = u.login_ids.iter().position(|l| *l == old).unwrap_or(0);
                if pos < u.login_ids.len() {
                    if new.is_empty() {
                        u.login_ids.remove(pos);
                    } else if !u.login_ids.contains(&new) {
                        u.login_ids[pos] = new;
                    }
                }
            }
            UserChange::AddLoginId(login_id) => add_all(&mut u.login_ids, &[login_id]),
            UserChange::Email { email, verified, .. } => {
                let email = non_empty(email);
                u.verified_email = email.is_some() && verified.unwrap_or(false);
                u.email = email;
            }
            UserChange::Phone { phone, verified, .. } => {
                let phone = non_empty(phone);
                u.verified_phone = phone.is_some() && verified.unwrap_or(false);
                u.phone = phone;
            }
            UserChange::Names(names) => names.apply(u),
            UserChange::Picture(picture) => u.picture = non_empty(picture),
            UserChange::CustomAttribute { key, value } => {
                u.custom_attributes.insert(key, value);
            }
            UserChange::Roles { scope, op, roles } => {
                check_given("roleNames", &roles)?;
                if let RoleScope::Tenant(t) = &scope {
                    check_given("tenantId", std::slice::from_ref(t))?;
                }
                let list = match &scope {
                    RoleScope::Tenant(t) => &mut u.tenant_mut(t).role_names,
                    RoleScope::Project => &mut u.role_names,
                };
                op.apply(list, roles);
            }
            UserChange::AddTenant(tenant) => {
                u.tenant_mut(&tenant);
            }
            UserChange::RemoveTenant(tenant) => {
                check_given("tenantId", std::slice::from_ref(&tenant))?;
                u.tenants.retain(|t| t.tenant_id != tenant)
            }
            UserChange::SsoApps { op, apps } => {
                check_given("ssoAppIds", &apps)?;
                op.apply(&mut u.sso_app_ids, apps)
            }
            UserChange::Several(changes) => {
                for change in changes {
                    change.apply(u)?;
                }
            }
        }
        Ok(())
    }

    /// The address that no other user may hold for this change to succeed, if any.
    pub fn must_not_be_taken(&self) -> Option<Contact<'_>> {
        match self {
            UserChange::Email { email: Some(e), fail_on_conflict: true, .. } if !e.is_empty() => {
                Some(Contact::Email(e))
            }
            UserChange::Phone { phone: Some(p), fail_on_conflict: true, .. } if !p.is_empty() => {
                Some(Contact::Phone(p))
            }
            UserChange::Several(changes) => changes.iter().find_map(UserChange::must_not_be_taken),
            _ => None,
        }
    }
}

/// `/user/update`: the request's whole state replaces the user's.
fn replace(u: &mut User, new: NewUser) {
    let primary = u.login_ids.first().cloned().unwrap_or_default();
    let mut login_ids = vec![primary];
    add_all(&mut login_ids, &new.additional_login_ids);
    u.login_ids = login_ids;
    let email = non_empty(new.email);
    let phone = non_empty(new.phone);
    u.verified_email = replaced_verified(&u.email, u.verified_email, &email, new.verified_email);
    u.verified_phone = replaced_verified(&u.phone, u.verified_phone, &phone, new.verified_phone);
    u.email = email;
    u.phone = phone;
    u.name = non_empty(new.name);
    u.given_name = non_empty(new.given_name);
    u.middle_name = non_empty(new.middle_name);
    u.family_name = non_empty(new.family_name);
    u.role_names = new.role_names;
    u.tenants = new.tenants;
    u.picture = non_empty(new.picture);
    u.custom_attributes = new.custom_attributes;
    u.sso_app_ids = new.sso_app_ids;
    if let Some(status) = new.status {
        u.status = status;
    }
}

/// A change as a store receives it: applied at `now_ms` to the row it holds locked.
///
/// A store's `update_user` runs, inside one write transaction: load the user (locked);
/// [`apply`](Self::apply); read the [`DirectoryFacts`] that [`needs`](Self::needs) names;
/// [`check`](Self::check); write the row; enrich the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct UserUpdate {
    pub change: UserChange,
    pub now_ms: i64,
}

impl UserUpdate {
    /// The changed user, validated and stamped, or why the change is refused.
    pub fn apply(&self, current: &User) -> Result<User> {
        let mut changed = current.clone();
        self.change.clone().apply(&mut changed)?;
        changed.validate()?;
        changed.modified_ms = self.now_ms;
        Ok(changed)
    }

    /// What the store must read, in its transaction, before [`check`](Self::check).
    pub fn needs<'a>(&'a self, changed: &'a User) -> DirectoryNeeds<'a> {
        let mut needs = DirectoryNeeds::to_check(changed);
        needs.contact_taken = self.change.must_not_be_taken().map(|c| (c, changed.user_id.as_str()));
        needs
    }

    /// Refuses an address another user holds (with fail-on-conflict), then unknown tenants,
    /// roles and attributes.
    pub fn check(&self, changed: &User, facts: &DirectoryFacts) -> Result<()> {
        if let Some(contact) = self.change.must_not_be_taken() {
            if facts.contact_taken {
                return Err(Error::UserAlreadyExists(contact.value().to_owned()));
            }
        }
        check_references(changed, facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn user() -> User {
        crate::user::NewUser { login_id: "dana".into(), ..Default::default() }
            .into_user(UserId::generate(), 1)
            .unwrap()
    }

    fn changed(u: &User, change: UserChange) -> User {
        let mut c = u.clone();
        change.apply(&mut c).unwrap();
        c
    }

    #[test]
    fn replace_keeps_the_verified_flag_of_an_unchanged_address_and_verifies_a_new_one() {
        let mut u = user();
        u.email = Some("d@example.com".into());
        u.verified_email = false;
        let same = NewUser { email: Some("d@example.com".into()), ..Default::default() };
        assert!(!changed(&u, UserChange::Replace(Box::new(same.clone()))).verified_email);
        u.verified_email = true;
        assert!(changed(&u, UserChange::Replace(Box::new(same))).verified_email);
        u.verified_email = false;
        let other = NewUser { email: Some("e@example.com".into()), ..Default::default() };
        assert!(changed(&u, UserChange::Replace(Box::new(other))).verified_email);
        let flagged = NewUser {
            email: Some("e@example.com".into()),
            verified_email: Some(false),
            ..Default::default()
        };
        assert!(!changed(&u, UserChange::Replace(Box::new(flagged))).verified_email);
        let cleared = changed(&u, UserChange::Replace(Box::default()));
        assert_eq!((cleared.email, cleared.verified_email), (None, false));
    }

    #[test]
    fn replace_keeps_the_primary_login_id_the_test_flag_and_an_absent_status() {
        let mut u = user();
        u.test = true;
        u.status = UserStatus::Disabled;
        u.login_ids.push("old-extra".into());
        let new = NewUser {
            login_id: "ignored".into(),
            additional_login_ids: vec!["dana".into(), "extra".into()],
            name: Some(String::new()),
            ..Default::default()
        };
        let c = changed(&u, UserChange::Replace(Box::new(new)));
        assert_eq!(c.login_ids, ["dana", "extra"]);
        assert!(c.test);
        assert_eq!(c.status, UserStatus::Disabled);
        assert_eq!(c.name, None);
    }

    #[test]
    fn patch_verifies_a_changed_address_keeps_an_unchanged_ones_flag_and_lets_a_flag_win() {
        let mut u = user();
        u.email = Some("d@example.com".into());
        u.verified_email = false;
        let patch = |email: &str, flag: Option<bool>| {
            UserChange::Patch(Box::new(UserPatch {
                email: Some(email.into()),
                verified_email: flag,
                ..Default::default()
            }))
        };
        assert!(!changed(&u, patch("d@example.com", None)).verified_email);
        assert!(changed(&u, patch("e@example.com", None)).verified_email);
        assert!(changed(&u, patch("d@example.com", Some(true))).verified_email);
        let cleared = changed(&u, patch("", None));
        assert_eq!((cleared.email, cleared.verified_email), (None, false));
        let flag_only =
            UserChange::Patch(Box::new(UserPatch { verified_phone: Some(true), ..Default::default() }));
        assert!(changed(&u, flag_only).verified_phone);
    }

    #[test]
    fn patch_merges_attributes_and_parses_the_status_when_applied() {
        let mut u = user();
        u.custom_attributes.insert("a".into(), Value::from(1));
        let mut attrs = Map::new();
        attrs.insert("b".into(), Value::from(2));
        let c = changed(
            &u,
            UserChange::Patch(Box::new(UserPatch {
                custom_attributes: Some(attrs),
                status: Some(String::new()),
                ..Default::default()
            })),
        );
        assert_eq!(c.custom_attributes.len(), 2);
        assert_eq!(c.status, u.status);
        let bad =
            UserChange::Patch(Box::new(UserPatch { status: Some("sleeping".into()), ..Default::default() }));
        assert!(matches!(bad.apply(&mut u.clone()), Err(Error::Invalid { field: "status", .. })));
    }

    #[test]
    fn email_change_is_unverified_unless_said_and_empty_clears() {
        let mut u = user();
        u.verified_email = true;
        let set = |email: &str, verified| UserChange::Email {
            email: Some(email.into()),
            verified,
            fail_on_conflict: false,
        };
        let c = changed(&u, set("d@example.com", None));
        assert_eq!((c.email.as_deref(), c.verified_email), (Some("d@example.com"), false));
        assert!(changed(&u, set("d@example.com", Some(true))).verified_email);
        let c = changed(&u, set("", Some(true)));
        assert_eq!((c.email, c.verified_email), (None, false));
    }

    #[test]
    fn login_id_replacement_removal_and_duplicates() {
        let mut u = user();
        u.login_ids = vec!["a".into(), "b".into()];
        let replace = |old: &str, new: &str| UserChange::LoginId { old: old.into(), new: new.into() };
        assert_eq!(changed(&u, replace("b", "c")).login_ids, ["a", "c"]);
        assert_eq!(changed(&u, replace("b", "")).login_ids, ["a"]);
        // Found by user id: the primary login id is the one replaced.
        assert_eq!(changed(&u, replace("unknown", "c")).login_ids, ["c", "b"]);
        assert_eq!(changed(&u, replace("a", "b")).login_ids, ["a", "b"]);
        // Removing the last one is refused by validation.
        let mut one = user();
        let update = UserUpdate { change: replace("dana", ""), now_ms: 5 };
        assert!(matches!(update.apply(&one), Err(Error::Invalid { field: "loginId", .. })));
        one.login_ids.clear();
        UserChange::LoginId { old: "x".into(), new: String::new() }.apply(&mut one).unwrap();
    }

    #[test]
    fn role_operations_in_a_tenant_add_the_membership() {
        let u = user();
        let c = changed(
            &u,
            UserChange::Roles {
                scope: RoleScope::Tenant("t1".into()),
                op: ListOp::Remove,
                roles: vec!["x".into()],
            },
        );
        assert_eq!(c.tenants.len(), 1);
        assert!(c.tenants[0].role_names.is_empty());
        let c = changed(
            &c,
            UserChange::Roles {
                scope: RoleScope::Tenant("t1".into()),
                op: ListOp::Add,
                roles: vec!["a".into(), "b".into(), "a".into()],
            },
        );
        assert_eq!(c.tenants[0].role_names, ["a", "b"]);
        let c = changed(
            &c,
            UserChange::Roles { scope: RoleScope::Project, op: ListOp::Set, roles: vec!["p".into()] },
        );
        assert_eq!(c.role_names, ["p"]);
        let c = changed(&c, UserChange::AddTenant("t1".into()));
        assert_eq!(c.tenants.len(), 1, "adding a tenant the user is in changes nothing");
        assert!(changed(&c, UserChange::RemoveTenant("t1".into())).tenants.is_empty());
    }

    #[test]
    fn several_changes_apply_in_order_and_fail_together() {
        let u = user();
        let both = UserChange::Several(vec![
            UserChange::LoginId { old: "dana".into(), new: "dana2".into() },
            UserChange::AddLoginId("dana-alt".into()),
            UserChange::AddLoginId("dana2".into()),
        ]);
        assert_eq!(changed(&u, both).login_ids, ["dana2", "dana-alt"]);
        let bad = UserChange::Several(vec![
            UserChange::Names(NameParts { name: Some("Dana".into()), ..Default::default() }),
            UserChange::Patch(Box::new(UserPatch { status: Some("sleeping".into()), ..Default::default() })),
        ]);
        assert!(bad.apply(&mut u.clone()).is_err());
        let strict = UserChange::Several(vec![
            UserChange::Picture(None),
            UserChange::Email { email: Some("d@example.com".into()), verified: None, fail_on_conflict: true },
        ]);
        assert_eq!(strict.must_not_be_taken(), Some(Contact::Email("d@example.com")));
    }

    #[test]
    fn sso_app_operations() {
        let u = user();
        let c = changed(&u, UserChange::SsoApps { op: ListOp::Add, apps: vec!["a".into(), "b".into()] });
        let c = changed(&c, UserChange::SsoApps { op: ListOp::Remove, apps: vec!["a".into()] });
        assert_eq!(c.sso_app_ids, ["b"]);
        assert!(changed(&c, UserChange::SsoApps { op: ListOp::Set, apps: vec![] }).sso_app_ids.is_empty());
    }

    #[test]
    fn update_stamps_the_time_and_validates() {
        let u = user();
        let update =
            UserUpdate { change: UserChange::Picture(Some("https://x.example/p.png".into())), now_ms: 42 };
        assert_eq!(update.apply(&u).unwrap().modified_ms, 42);
        let bad = UserUpdate {
            change: UserChange::Email { email: Some("nope".into()), verified: None, fail_on_conflict: false },
            now_ms: 42,
        };
        assert!(matches!(bad.apply(&u), Err(Error::Invalid { field: "email", .. })));
    }

    #[test]
    fn a_taken_address_fails_only_with_fail_on_conflict() {
        let u = user();
        let taken = DirectoryFacts { contact_taken: true, ..Default::default() };
        let update = |fail_on_conflict| UserUpdate {
            change: UserChange::Phone {
                phone: Some("+14155550123".into()),
                verified: None,
                fail_on_conflict,
            },
            now_ms: 1,
        };
        let strict = update(true);
        let c = strict.apply(&u).unwrap();
        assert_eq!(
            strict.needs(&c).contact_taken,
            Some((Contact::Phone("+14155550123"), c.user_id.as_str()))
        );
        assert!(
            matches!(strict.check(&c, &taken), Err(Error::UserAlreadyExists(ref p)) if p == "+14155550123")
        );
        let lenient = update(false);
        assert_eq!(lenient.needs(&c).contact_taken, None);
        assert!(lenient.check(&c, &taken).is_ok());
    }
}
