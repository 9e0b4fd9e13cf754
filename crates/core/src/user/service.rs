//! User operations as the management API exposes them.

use crate::audit::{actions, Audit, AuditRecord};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, UserId};
use crate::limits::{MAX_BATCH_USERS, MAX_LOAD_USERS, MAX_USER_ID_LEN};
use crate::store::SharedStore;
use crate::user::change::{UserChange, UserUpdate};
use crate::user::model::{NewUser, User, UserRef};
use crate::user::search::UserQuery;

#[derive(Clone)]
pub struct UserService {
    store: SharedStore,
    clock: SharedClock,
    audit: Audit,
}

/// An audit record about `user`: its id, login ids and tenants.
pub(crate) fn user_record(project: &ProjectId, action: &str, user: &User) -> AuditRecord {
    AuditRecord::new(project, action)
        .user(user.user_id.as_str())
        .login_ids(user.login_ids.clone())
        .tenants(user.tenants.iter().map(|t| t.tenant_id.clone()).collect())
}

/// What a change did to a user, for its `UserModified` record: the fields that changed, by
/// name only (an email, a phone or a custom attribute may be personal data), and what changed in
/// its authorization in full (roles and tenants are the project's own names, and who gained or
/// lost which role is what an audit of access asks).
fn change_details(mut record: AuditRecord, before: &User, after: &User) -> AuditRecord {
    let mut fields = Vec::new();
    for (field, changed) in [
        ("loginIds", before.login_ids != after.login_ids),
        ("name", before.name != after.name),
        ("givenName", before.given_name != after.given_name),
        ("middleName", before.middle_name != after.middle_name),
        ("familyName", before.family_name != after.family_name),
        ("email", before.email != after.email),
        ("verifiedEmail", before.verified_email != after.verified_email),
        ("phone", before.phone != after.phone),
        ("verifiedPhone", before.verified_phone != after.verified_phone),
        ("picture", before.picture != after.picture),
        ("status", before.status != after.status),
        ("customAttributes", before.custom_attributes != after.custom_attributes),
        ("ssoAppIds", before.sso_app_ids != after.sso_app_ids),
        ("roleNames", before.role_names != after.role_names),
        ("userTenants", before.tenants != after.tenants),
    ] {
        if changed {
            fields.push(field);
        }
    }
    record = record.data("fields", fields);
    if before.status != after.status {
        record = record.data("status", after.status.as_str());
    }
    let added = |from: &[String], to: &[String]| -> Vec<String> {
        to.iter().filter(|r| !from.contains(r)).cloned().collect()
    };
    if before.role_names != after.role_names {
        record = record
            .data("rolesAdded", added(&before.role_names, &after.role_names))
            .data("rolesRemoved", added(&after.role_names, &before.role_names));
    }
    let tenant_ids = |u: &User| u.tenants.iter().map(|t| t.tenant_id.clone()).collect::<Vec<_>>();
    let (old_tenants, new_tenants) = (tenant_ids(before), tenant_ids(after));
    if old_tenants != new_tenants {
        record = record
            .data("tenantsAdded", added(&old_tenants, &new_tenants))
            .data("tenantsRemoved", added(&new_tenants, &old_tenants));
    }
    // Per tenant the user is in after the change: the roles it gained and lost there.
    let mut tenant_roles = Vec::new();
    for t in &after.tenants {
        let old_roles =
            before.tenants.iter().find(|b| b.tenant_id == t.tenant_id).map_or(&[][..], |b| &b.role_names[..]);
        let (gained, lost) = (added(old_roles, &t.role_names), added(&t.role_names, old_roles));
        if !gained.is_empty() || !lost.is_empty() {
            tenant_roles.push(
                serde_json::json!({"tenantId": t.tenant_id, "rolesAdded": gained, "rolesRemoved": lost}),
            );
        }
    }
    if !tenant_roles.is_empty() {
        record = record.data("tenantRoles", tenant_roles);
    }
    record
}

impl UserService {
    pub fn new(store: SharedStore, clock: SharedClock) -> Self {
        let audit = Audit::disabled(clock.clone());
        Self { store, clock, audit }
    }

    /// Records user changes in `audit`.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    pub(crate) fn audit(&self) -> &Audit {
        &self.audit
    }

    pub async fn create(&self, project: &ProjectId, new: NewUser) -> Result<User> {
        let user = new.into_user(UserId::generate(), self.clock.now_ms())?;
        self.store.create_users(project, std::slice::from_ref(&user)).await?;
        self.audit.record(user_record(project, actions::USER_CREATED, &user));
        // Read back: the answer shows tenant names and permissions like any load.
        Ok(self.store.get_user(project, &UserRef::UserId(user.user_id.clone())).await?.unwrap_or(user))
    }

    /// The user an invitation names, if it exists: inviting a user who exists (by login id, or
    /// user id as the Node SDK allows) re-invites them, and since idvault sends no messages the
    /// answer is the existing user. None when there is no such user (the caller creates one).
    pub async fn already_invited(&self, project: &ProjectId, login_id: Option<&str>) -> Result<Option<User>> {
        let Some(login_id) = login_id.filter(|l| !l.is_empty()) else {
            return Ok(None);
        };
        match self.load(project, &UserRef::from_parts(Some(login_id), None)?).await {
            Ok(user) => Ok(Some(user)),
            Err(Error::UserNotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All-or-nothing batch create: one invalid or duplicate user fails the whole batch, and
    /// nothing is written.
    pub async fn create_batch(&self, project: &ProjectId, news: Vec<NewUser>) -> Result<Vec<User>> {
        if news.is_empty() {
            return Err(Error::MissingArgument("users"));
        }
        if news.len() > MAX_BATCH_USERS {
            return Err(Error::invalid("users", format!("at most {MAX_BATCH_USERS} users per batch")));
        }
        let now = self.clock.now_ms();
        let users =
            news.into_iter().map(|n| n.into_user(UserId::generate(), now)).collect::<Result<Vec<_>>>()?;
        let mut seen = std::collections::HashSet::new();
        for u in &users {
            for l in &u.login_ids {
                if !seen.insert(l.as_str()) {
                    return Err(Error::UserAlreadyExists(l.clone()));
                }
            }
        }
        self.store.create_users(project, &users).await?;
        for user in &users {
            self.audit.record(user_record(project, actions::USER_CREATED, user));
        }
        Ok(users)
    }

    /// Loads by login id or user id. A `loginId` that matches no login id is also tried as a user
    /// id, as the Node SDK's `loginIdOrUserId` parameters expect.
    pub async fn load(&self, project: &ProjectId, user: &UserRef) -> Result<User> {
        if let Some(found) = self.store.get_user(project, user).await? {
            return Ok(found);
        }
        match user {
            UserRef::LoginId(login_id) => match UserId::parse(login_id.as_str()) {
                Ok(id) => {
                    self.store.get_user(project, &UserRef::UserId(id)).await?.ok_or(Error::UserNotFound)
                }
                Err(_) => Err(Error::UserNotFound),
            },
            UserRef::UserId(_) => Err(Error::UserNotFound),
        }
    }

    /// Users by id; disabled and expired users only when `include_invalid` (as the SDKs document).
    pub async fn load_many_filtered(
        &self,
        project: &ProjectId,
        user_ids: &[String],
        include_invalid: bool,
    ) -> Result<Vec<User>> {
        let mut users = self.load_many(project, user_ids).await?;
        if !include_invalid {
            users.retain(|u| {
                !matches!(u.status, crate::user::UserStatus::Disabled | crate::user::UserStatus::Expired)
            });
        }
        Ok(users)
    }

    pub async fn load_many(&self, project: &ProjectId, user_ids: &[String]) -> Result<Vec<User>> {
        if user_ids.is_empty() {
            return Err(Error::MissingArgument("userIds"));
        }
        check_id_list(user_ids)?;
        self.store.load_users(project, user_ids).await
    }

    pub async fn search(&self, project: &ProjectId, query: &UserQuery) -> Result<(Vec<User>, u64)> {
        query.validate()?;
        self.store.search_users(project, query).await
    }

    pub async fn delete(&self, project: &ProjectId, user: &UserRef) -> Result<()> {
        // Deleting is idempotent, as in Descope: an unknown user is not an error.
        match self.load(project, user).await {
            Ok(found) => {
                if self.store.delete_user(project, &found.user_id).await? {
                    self.audit.record(user_record(project, actions::USER_DELETED, &found));
                }
                Ok(())
            }
            Err(Error::UserNotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn delete_all_test_users(&self, project: &ProjectId) -> Result<u64> {
        let deleted = self.store.delete_test_users(project).await?;
        self.audit.record(AuditRecord::new(project, actions::TEST_USERS_DELETED).data("count", deleted));
        Ok(deleted)
    }
}

impl UserService {
    /// Applies `change` to the user atomically (the store applies it to the current row inside
    /// its write transaction, where core validates it, checks conflicts and references, and
    /// stamps `modified_ms` from the clock), and answers the saved user.
    pub async fn change(&self, project: &ProjectId, user: &UserRef, change: UserChange) -> Result<User> {
        let found = self.load(project, user).await?;
        let kind = change.kind();
        let update = UserUpdate { change, now_ms: self.clock.now_ms() };
        let saved = self.store.update_user(project, &found.user_id, &update).await?;
        // Tenants before and after: a user leaving a tenant is that tenant's business too.
        let mut record = change_details(
            user_record(project, actions::USER_MODIFIED, &saved).data("change", kind),
            &found,
            &saved,
        );
        for t in &found.tenants {
            if !record.tenants.contains(&t.tenant_id) {
                record.tenants.push(t.tenant_id.clone());
            }
        }
        self.audit.record(record);
        Ok(saved)
    }

    /// Changes many users, each on its own: answers, per change in order, the saved user or why
    /// it failed (including a user reference that did not parse). A storage failure stops the
    /// batch and is the answer.
    pub async fn change_each(
        &self,
        project: &ProjectId,
        changes: Vec<(Result<UserRef>, UserChange)>,
    ) -> Result<Vec<Result<User>>> {
        if changes.len() > MAX_BATCH_USERS {
            return Err(Error::invalid("users", "too many users in one batch"));
        }
        let mut results = Vec::with_capacity(changes.len());
        for (who, change) in changes {
            let result = match who {
                Ok(who) => self.change(project, &who, change).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e @ (Error::Storage(_) | Error::Internal(_))) => return Err(e),
                other => results.push(other),
            }
        }
        Ok(results)
    }

    /// Deletes users by id, in order (unknown ones are not an error, as for one).
    pub async fn delete_many(&self, project: &ProjectId, user_ids: &[String]) -> Result<()> {
        check_id_list(user_ids)?;
        for id in user_ids {
            self.delete(project, &UserRef::from_parts(None, Some(id))?).await?;
        }
        Ok(())
    }

    /// Batch create where each user succeeds or fails on its own; answers the created users and,
    /// for the others, the login id and the reason.
    pub async fn create_each(
        &self,
        project: &ProjectId,
        news: Vec<NewUser>,
    ) -> Result<(Vec<User>, Vec<(String, Error)>)> {
        if news.is_empty() {
            return Err(Error::MissingArgument("users"));
        }
        if news.len() > MAX_BATCH_USERS {
            return Err(Error::invalid("users", format!("at most {MAX_BATCH_USERS} users per batch")));
        }
        let now = self.clock.now_ms();
        let mut failed = Vec::new();
        let mut valid = Vec::new();
        for n in news {
            let login = n.login_id.clone();
            match n.into_user(UserId::generate(), now) {
                Ok(u) => valid.push(u),
                Err(e) => failed.push((login, e)),
            }
        }
        let mut created = Vec::new();
        if !valid.is_empty() {
            let results = self.store.create_users_each(project, &valid).await?;
            for (u, r) in valid.iter().zip(results) {
                match r {
                    Ok(saved) => {
                        self.audit.record(user_record(project, actions::USER_CREATED, &saved));
                        created.push(saved)
                    }
                    Err(e @ (Error::Storage(_) | Error::Internal(_))) => return Err(e),
                    Err(e) => failed.push((u.login_ids.first().cloned().unwrap_or_default(), e)),
                }
            }
        }
        Ok((created, failed))
    }

    /// Ends every session of the user.
    pub async fn logout(&self, project: &ProjectId, user: &UserRef) -> Result<()> {
        let found = self.load(project, user).await?;
        self.store.revoke_user_sessions(project, &found.user_id, self.clock.now_ms()).await?;
        self.audit.record(user_record(project, actions::USER_LOGGED_OUT, &found).data("sessions", "all"));
        Ok(())
    }

    pub async fn history(
        &self,
        project: &ProjectId,
        user_ids: &[String],
    ) -> Result<Vec<crate::store::LoginRecord>> {
        check_id_list(user_ids)?;
        self.store.login_history(project, user_ids).await
    }

    /// Resolves `tenantRoleIds` to role names for search.
    pub async fn role_names_for_ids(
        &self,
        project: &ProjectId,
        tenant: &str,
        ids: &[String],
    ) -> Result<Vec<String>> {
        crate::user::search::check_filter_len("tenantRoleIds", ids.len())?;
        let roles = self.store.list_roles(project).await?;
        Ok(roles
            .into_iter()
            .filter(|r| ids.contains(&r.id) && r.tenant_id.as_deref().is_none_or(|t| t == tenant))
            .map(|r| r.name)
            .collect())
    }
}

/// The user ids of a bulk request (load, delete, history): at most [`MAX_LOAD_USERS`], none over
/// [`MAX_USER_ID_LEN`] bytes (the documented bound of a user id in a request). Other ids that
/// cannot name a user (empty, control characters) name none, as an unknown one.
fn check_id_list(user_ids: &[String]) -> Result<()> {
    if user_ids.len() > MAX_LOAD_USERS {
        return Err(Error::invalid("userIds", format!("at most {MAX_LOAD_USERS} ids")));
    }
    if user_ids.iter().any(|id| id.len() > MAX_USER_ID_LEN) {
        return Err(Error::invalid("userIds", format!("each at most {MAX_USER_ID_LEN} bytes")));
    }
    Ok(())
}
