//! The store contract: what every storage backend promises, written once as async test cases
//! over a fresh store, and run against each backend by [`store_contract_tests!`].
//!
//! A backend's test file names a factory, `async fn() -> Option<TestStore>`, that opens a store
//! on a database of its own (a fresh file, a fresh PostgreSQL database, migrated as in
//! production); `None` skips the test (a server that is not there outside CI). Every case gets
//! its own store, so cases run in parallel and never see each other's rows.
//!
//! Two helpers, `update` and `cascade`, are the only callers of `DirectoryStore::update_user`
//! and of the directory changes that cascade into users and roles: when those signatures change,
//! only the helpers do.

// Test code may unwrap and panic: a failure is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use idvault_core::access_key::{AccessKey, KeyTenant};
use idvault_core::audit::{Actor, AuditQuery, AuditRecord};
use idvault_core::auth::{AuthCode, OAuthState, ProjectAuthSettings, SessionRecord, SigningKeyRecord};
use idvault_core::directory::{AttributeDef, AttributeType, Permission, Role, Tenant};
use idvault_core::error::{Error, Result};
use idvault_core::ids::{LoginId, ProjectId, ProviderName, UserId};
use idvault_core::outbound::{ConnectIntent, OverfullSlot, SealedOutboundToken, TokenOwner};
use idvault_core::project::{issue_key, Project};
use idvault_core::provider::{AppSettings, ClientAuthMethod, ProviderConfig};
use idvault_core::store::{
    ImportedUser, SharedStore, SignIn, SignInUser, Store, TokenLookup, WrappedDataKey,
};
use idvault_core::user::{
    ListOp, NameParts, NewUser, RoleScope, SortBy, SortField, TenantRoleFilter, TestUserFilter, User,
    UserChange, UserQuery, UserRef, UserStatus, UserTenant, UserUpdate,
};
use idvault_core::vault::SealedToken;

/// A store under test and whatever keeps its database alive (a temporary directory, a database
/// dropped on drop). The store is dropped first.
pub struct TestStore {
    pub store: SharedStore,
    _database: Box<dyn Send>,
}

impl TestStore {
    pub fn new(store: SharedStore, database: impl Send + 'static) -> TestStore {
        TestStore { store, _database: Box::new(database) }
    }
}

// ---------------------------------------------------------------------------------------------
// The two seams to the directory's write API.

/// A change to one user, as the suite's cases need them.
#[derive(Debug, Clone)]
enum Edit {
    Name(String),
    AddRole(String),
    AddTenant { tenant: String, roles: Vec<String> },
    AddLoginId(String),
    ReplaceLoginId { old: String, new: String },
    Attribute(String, Value),
    Status(UserStatus),
}

/// The time the helpers stamp their changes with.
const NOW_MS: i64 = 2_000;

/// Applies `edits` to the user in one `update_user` call (so all or none of them are written).
async fn update(s: &dyn Store, p: &ProjectId, user_id: &UserId, edits: Vec<Edit>) -> Result<User> {
    let changes = edits
        .into_iter()
        .map(|edit| match edit {
            Edit::Name(name) => UserChange::Names(NameParts { name: Some(name), ..Default::default() }),
            Edit::AddRole(role) => {
                UserChange::Roles { scope: RoleScope::Project, op: ListOp::Add, roles: vec![role] }
            }
            Edit::AddTenant { tenant, roles } => {
                UserChange::Roles { scope: RoleScope::Tenant(tenant), op: ListOp::Add, roles }
            }
            Edit::AddLoginId(l) => UserChange::AddLoginId(l),
            Edit::ReplaceLoginId { old, new } => UserChange::LoginId { old, new },
            Edit::Attribute(key, value) => UserChange::CustomAttribute { key, value },
            Edit::Status(status) => UserChange::Status(status),
        })
        .collect();
    s.update_user(p, user_id, &UserUpdate { change: UserChange::Several(changes), now_ms: NOW_MS }).await
}

/// A directory change that cascades into roles or users.
enum Cascade<'a> {
    DeleteTenant(&'a str),
    RenamePermission {
        name: &'a str,
        new_name: &'a str,
    },
    DeletePermission(&'a str),
    /// Replaces the role found by (tenant, name); `role.name` may be new.
    UpdateRole {
        name: &'a str,
        tenant: Option<&'a str>,
        role: Role,
    },
    DeleteRole {
        name: &'a str,
        tenant: Option<&'a str>,
    },
}

/// Runs a cascading change; answers whether something was there (always true for updates,
/// which fail when nothing is).
async fn cascade(s: &dyn Store, p: &ProjectId, change: Cascade<'_>) -> Result<bool> {
    match change {
        Cascade::DeleteTenant(id) => s.delete_tenant(p, id, NOW_MS).await,
        Cascade::RenamePermission { name, new_name } => {
            s.update_permission(p, name, new_name, "").await.map(|()| true)
        }
        Cascade::DeletePermission(name) => s.delete_permission(p, name).await,
        Cascade::UpdateRole { name, tenant, role } => {
            s.update_role(p, name, tenant, &role, NOW_MS).await.map(|()| true)
        }
        Cascade::DeleteRole { name, tenant } => s.delete_role(p, name, tenant, NOW_MS).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture and builders.

/// A project with a small directory: tenants `t1` ("Tenant One") and `acme` ("Acme"), permission
/// `read`, project roles `admin`, `viewer` (grants `read`) and `editor`, and the attributes
/// `plan` (string) and `seats` (number).
struct Fixture {
    store: SharedStore,
    project: ProjectId,
    _backend: TestStore,
}

async fn directory(backend: TestStore) -> Fixture {
    let (s, p) = (backend.store.clone(), ProjectId::generate());
    s.create_project(&Project { id: p.clone(), name: "t".into(), created_ms: 1 }).await.unwrap();
    for (id, name) in [("t1", "Tenant One"), ("acme", "Acme")] {
        s.create_tenant(&p, &tenant(id, name)).await.unwrap();
    }
    let read =
        Permission { id: "PRM1".into(), name: "read".into(), description: String::new(), created_ms: 1 };
    s.create_permission(&p, &read).await.unwrap();
    for (i, name) in ["admin", "viewer", "editor"].into_iter().enumerate() {
        let perms = if name == "viewer" { vec!["read".into()] } else { vec![] };
        s.create_role(&p, &role(&format!("ROL{i}"), name, None, perms)).await.unwrap();
    }
    let plan = AttributeDef {
        name: "plan".into(),
        kind: AttributeType::String,
        display_name: "Plan".into(),
        options: vec![],
        required: false,
    };
    let seats = AttributeDef {
        name: "seats".into(),
        kind: AttributeType::Number,
        display_name: "Seats".into(),
        ..plan.clone()
    };
    s.put_attribute_defs(&p, &[plan, seats]).await.unwrap();
    Fixture { store: s, project: p, _backend: backend }
}

fn tenant(id: &str, name: &str) -> Tenant {
    Tenant {
        id: id.into(),
        name: name.into(),
        self_provisioning_domains: vec![],
        custom_attributes: Default::default(),
        disabled: false,
        enforce_sso: false,
        created_ms: 1,
    }
}

fn role(id: &str, name: &str, tenant: Option<&str>, permission_names: Vec<String>) -> Role {
    Role {
        id: id.into(),
        name: name.into(),
        tenant_id: tenant.map(Into::into),
        description: String::new(),
        permission_names,
        default: false,
        private: false,
        created_ms: 1,
    }
}

/// A new user, created at 1,000 ms.
fn user(login: &str) -> User {
    NewUser { login_id: login.into(), ..Default::default() }.into_user(UserId::generate(), 1_000).unwrap()
}

fn member(tenant_id: &str, roles: &[&str]) -> UserTenant {
    UserTenant {
        tenant_id: tenant_id.into(),
        role_names: roles.iter().map(|r| (*r).to_owned()).collect(),
        ..Default::default()
    }
}

fn login(s: &str) -> UserRef {
    UserRef::LoginId(LoginId::parse(s).unwrap())
}

fn by_id(u: &UserId) -> UserRef {
    UserRef::UserId(u.clone())
}

fn provider(name: &str) -> ProviderName {
    ProviderName::parse(name).unwrap()
}

fn sealed(provider: &ProviderName, access: u8) -> SealedToken {
    SealedToken {
        provider: provider.clone(),
        provider_user_id: "pu".into(),
        access_token: vec![access; 40],
        refresh_token: Some(vec![2; 40]),
        expiration: 10,
        scopes: vec!["a".into()],
        updated_ms: 1,
        version: 0,
        reauth_required: false,
    }
}

fn oauth_state(p: &ProjectId, hash: u8, created_ms: i64, expires_ms: i64) -> OAuthState {
    OAuthState {
        state_hash: [hash; 32],
        project_id: p.clone(),
        provider: provider("google"),
        redirect_url: "http://127.0.0.1/cb".into(),
        code_verifier: vec![1, 2],
        nonce: "n".into(),
        created_ms,
        expires_ms,
        connect: None,
    }
}

fn session(p: &ProjectId, id: &str, user_id: &UserId) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        project_id: p.clone(),
        user_id: user_id.clone(),
        created_ms: 1,
        expires_ms: 10,
        revoked_ms: None,
        generation: 0,
    }
}

fn token_of(lookup: TokenLookup) -> SealedToken {
    match lookup {
        TokenLookup::Found { token, .. } => token,
        other => panic!("expected a token, got {other:?}"),
    }
}

/// Runs `n` copies of `task` at once and answers how many answered true.
async fn wins<F, Fut>(n: usize, task: F) -> usize
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(task(i))).collect();
    let mut won = 0;
    for h in handles {
        won += usize::from(h.await.unwrap());
    }
    won
}

async fn search(s: &dyn Store, p: &ProjectId, q: UserQuery) -> (Vec<User>, u64) {
    s.search_users(p, &q).await.unwrap()
}

/// One search filter, for the cases that check that an index follows a write. (The search
/// cases build whole queries; the others go through here, so a change of the query model
/// touches the search cases and this function only.)
enum Find<'a> {
    All,
    Role(&'a str),
    Tenant(&'a str),
    Text(&'a str),
    LoginId(&'a str),
}

async fn find(s: &dyn Store, p: &ProjectId, by: Find<'_>) -> Vec<User> {
    let one = |v: &str| vec![v.to_owned()];
    let q = match by {
        Find::All => UserQuery::default(),
        Find::Role(r) => UserQuery { role_names: one(r), ..Default::default() },
        Find::Tenant(t) => UserQuery { tenant_ids: one(t), ..Default::default() },
        Find::Text(t) => UserQuery { text: Some(t.to_owned()), ..Default::default() },
        Find::LoginId(l) => UserQuery { login_ids: one(l), ..Default::default() },
    };
    search(s, p, UserQuery { limit: 100, ..q }).await.0
}

fn first_login_ids(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.login_ids[0].as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// Projects, management keys, health.

pub async fn projects_create_get_and_list(backend: TestStore) {
    let f = directory(backend).await;
    let s = &*f.store;
    let projects = s.list_projects().await.unwrap();
    assert_eq!(projects.len(), 1);
    assert_eq!(s.get_project(&f.project).await.unwrap(), Some(projects[0].clone()));
    assert_eq!(s.get_project(&ProjectId::generate()).await.unwrap(), None);
    let dup = Project { id: f.project.clone(), name: "again".into(), created_ms: 2 };
    assert!(matches!(s.create_project(&dup).await.unwrap_err(), Error::AlreadyExists(_)));
    s.ping().await.unwrap();
}

pub async fn management_keys_insert_get_list_and_revoke(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let issued = issue_key(p, "k", 10, Some(1_000));
    let other = issue_key(p, "k2", 11, None);
    s.insert_key(&issued.record).await.unwrap();
    s.insert_key(&other.record).await.unwrap();
    assert_eq!(s.get_key(&issued.record.key_id).await.unwrap(), Some(issued.record.clone()));
    assert_eq!(s.get_key("nope").await.unwrap(), None);
    let mut listed: Vec<String> = s.list_keys(p).await.unwrap().into_iter().map(|k| k.key_id).collect();
    listed.sort();
    let mut expected = vec![issued.record.key_id.clone(), other.record.key_id.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    assert!(s.list_keys(&ProjectId::generate()).await.unwrap().is_empty());

    assert!(s.revoke_key(p, &issued.record.key_id, 20).await.unwrap());
    assert_eq!(s.get_key(&issued.record.key_id).await.unwrap().unwrap().revoked_ms, Some(20));
    assert!(s.revoke_key(p, &issued.record.key_id, 25).await.unwrap());
    assert_eq!(s.get_key(&issued.record.key_id).await.unwrap().unwrap().revoked_ms, Some(20), "first wins");
    assert!(!s.revoke_key(&ProjectId::generate(), &issued.record.key_id, 30).await.unwrap(), "other project");
    assert!(!s.revoke_key(p, "nope", 30).await.unwrap());
    assert_eq!(s.get_key(&other.record.key_id).await.unwrap().unwrap().revoked_ms, None);
}

// ---------------------------------------------------------------------------------------------
// Management keys: rename and expiry.

pub async fn management_keys_update_name_and_expiry(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let issued = issue_key(p, "old", 10, None);
    s.insert_key(&issued.record).await.unwrap();
    assert!(s.update_key(p, &issued.record.key_id, "new", Some(99)).await.unwrap());
    let stored = s.get_key(&issued.record.key_id).await.unwrap().unwrap();
    assert_eq!((stored.name.as_str(), stored.expires_ms), ("new", Some(99)));
    assert_eq!(stored.key_hash, issued.record.key_hash, "the secret's digest stays");
    assert!(s.update_key(p, &issued.record.key_id, "new", None).await.unwrap());
    assert_eq!(s.get_key(&issued.record.key_id).await.unwrap().unwrap().expires_ms, None);
    assert!(
        !s.update_key(&ProjectId::generate(), &issued.record.key_id, "x", None).await.unwrap(),
        "other project"
    );
    assert!(!s.update_key(p, "nope", "x", None).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// The audit trail.

fn audit(p: &ProjectId, at: i64, action: &str, user: &str, tenants: &[&str]) -> AuditRecord {
    AuditRecord {
        project_id: p.to_string(),
        occurred_ms: at,
        action: action.into(),
        kind: "info".into(),
        actor: Actor::ManagementKey { id: "KEY1".into(), name: "ci robot".into() },
        user_id: user.into(),
        login_ids: if user.is_empty() { vec![] } else { vec![format!("{user}@example.com")] },
        tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
        remote_address: "192.0.2.7".into(),
        device: String::new(),
        method: if action == "LoginSucceed" { "oauth".into() } else { String::new() },
        geo: String::new(),
        data: serde_json::Map::from_iter([("provider".to_owned(), json!("google"))]),
    }
}

fn window(from_ms: i64, to_ms: i64) -> AuditQuery {
    AuditQuery { from_ms, to_ms, limit: 100, ..AuditQuery::default() }
}

async fn audit_actions(s: &dyn Store, p: &ProjectId, q: AuditQuery) -> (Vec<String>, u64) {
    let (records, total) = s.search_audit(p, &q).await.unwrap();
    (records.into_iter().map(|r| r.action).collect(), total)
}

pub async fn audit_records_round_trip_and_every_filter_applies(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let other = ProjectId::generate();
    let records = vec![
        audit(p, 100, "UserCreated", "ann", &["t1"]),
        audit(p, 200, "ProviderTokenRead", "ann", &[]),
        audit(p, 300, "LoginSucceed", "bob", &["t1", "acme"]),
        audit(p, 400, "ManagementKeyCheckFailed", "", &[]),
        audit(&other, 250, "UserCreated", "ann", &["t1"]),
    ];
    s.insert_audit_records(&records).await.unwrap();
    s.insert_audit_records(&[]).await.unwrap();

    let (all, total) = s.search_audit(p, &window(0, i64::MAX)).await.unwrap();
    assert_eq!(total, 4, "the other project's record is not this one's");
    assert_eq!(all[0], records[3], "newest first, every field as written");
    assert_eq!(all[3], records[0]);

    let q = |f: fn(&mut AuditQuery)| {
        let mut q = window(0, i64::MAX);
        f(&mut q);
        q
    };
    let cases: Vec<(AuditQuery, Vec<&str>)> = vec![
        (q(|q| q.user_ids = vec!["ann".into()]), vec!["ProviderTokenRead", "UserCreated"]),
        (
            q(|q| q.actions = vec!["LoginSucceed".into(), "UserCreated".into()]),
            vec!["LoginSucceed", "UserCreated"],
        ),
        (
            q(|q| q.excluded_actions = vec!["ManagementKeyCheckFailed".into()]),
            vec!["LoginSucceed", "ProviderTokenRead", "UserCreated"],
        ),
        (q(|q| q.methods = vec!["oauth".into()]), vec!["LoginSucceed"]),
        (
            q(|q| q.remote_addresses = vec!["192.0.2.7".into()]),
            vec!["ManagementKeyCheckFailed", "LoginSucceed", "ProviderTokenRead", "UserCreated"],
        ),
        (q(|q| q.remote_addresses = vec!["192.0.2.8".into()]), vec![]),
        (q(|q| q.devices = vec!["Mobile".into()]), vec![]),
        (q(|q| q.geos = vec!["US".into()]), vec![]),
        (q(|q| q.login_ids = vec!["bob@example.com".into()]), vec!["LoginSucceed"]),
        (q(|q| q.tenants = vec!["acme".into()]), vec!["LoginSucceed"]),
        (q(|q| q.tenants = vec!["t1".into()]), vec!["LoginSucceed", "UserCreated"]),
        (
            q(|q| {
                q.tenants = vec!["acme".into()];
                q.no_tenants = true;
            }),
            vec!["ManagementKeyCheckFailed", "LoginSucceed", "ProviderTokenRead"],
        ),
        (
            q(|q| q.text = Some("ci robot".into())),
            vec!["ManagementKeyCheckFailed", "LoginSucceed", "ProviderTokenRead", "UserCreated"],
        ),
        (q(|q| q.text = Some("tokenread".into())), vec!["ProviderTokenRead"]),
        (
            q(|q| q.text = Some("google".into())),
            vec!["ManagementKeyCheckFailed", "LoginSucceed", "ProviderTokenRead", "UserCreated"],
        ),
        (q(|q| q.text = Some("nothing like it".into())), vec![]),
        (window(200, 300), vec!["LoginSucceed", "ProviderTokenRead"]),
    ];
    for (query, expected) in cases {
        let described = format!("{query:?}");
        let (actions, total) = audit_actions(s, p, query).await;
        assert_eq!(actions, expected, "{described}");
        assert_eq!(total, expected.len() as u64, "{described}");
    }

    // Pages, both orders; the total counts every match.
    let page = AuditQuery { limit: 2, offset: 2, ..window(0, i64::MAX) };
    assert_eq!(audit_actions(s, p, page).await, (vec!["ProviderTokenRead".into(), "UserCreated".into()], 4));
    let oldest = AuditQuery { limit: 1, oldest_first: true, ..window(0, i64::MAX) };
    assert_eq!(audit_actions(s, p, oldest).await.0, vec!["UserCreated".to_owned()]);
}

pub async fn audit_batches_of_a_thousand_and_more_are_stored_whole(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let many: Vec<AuditRecord> =
        (0..2_500).map(|i| audit(p, i, "ProviderTokenRead", &format!("u{i}"), &[])).collect();
    s.insert_audit_records(&many).await.unwrap();
    assert_eq!(s.search_audit(p, &window(0, i64::MAX)).await.unwrap().1, 2_500);
}

pub async fn audit_purge_deletes_only_older_records(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let other = ProjectId::generate();
    s.insert_audit_records(&[
        audit(p, 100, "Old", "", &[]),
        audit(&other, 150, "Old", "", &[]),
        audit(p, 200, "Kept", "", &[]),
    ])
    .await
    .unwrap();
    assert_eq!(s.purge_audit(200).await.unwrap(), 2, "every project's");
    assert_eq!(audit_actions(s, p, window(0, i64::MAX)).await, (vec!["Kept".into()], 1));
    assert_eq!(s.purge_audit(200).await.unwrap(), 0);
}

/// The server's writer on this store: records handed to the sink are stored, and shutting the
/// writer down stores what is still queued (well within one batch interval).
pub async fn audit_writer_stores_everything_queued_by_shutdown(backend: TestStore) {
    use idvault_core::audit::AuditSink;
    let f = directory(backend).await;
    let (s, p) = (f.store.clone(), f.project.clone());
    let (sink, writer) = idvault_core::audit::writer::start(s.clone());
    for i in 0..3_000 {
        sink.record(audit(&p, i, "ProviderTokenRead", "", &[]));
    }
    writer.shutdown().await;
    assert_eq!(s.search_audit(&p, &window(0, i64::MAX)).await.unwrap().1, 3_000);
    assert_eq!(sink.dropped(), 0);
    // After shutdown a record is refused, and counted.
    sink.record(audit(&p, 1, "Late", "", &[]));
    assert_eq!(sink.dropped(), 1);
}

// ---------------------------------------------------------------------------------------------
// Users: create, load, delete.

pub async fn users_round_trip_every_field(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let mut u = user("dana@example.com");
    u.name = Some("Dana".into());
    u.given_name = Some("Dana".into());
    u.middle_name = Some("M".into());
    u.family_name = Some("Doe".into());
    u.email = Some("dana@example.com".into());
    u.verified_email = true;
    u.phone = Some("+14155550123".into());
    u.verified_phone = true;
    u.picture = Some("https://example.com/p.png".into());
    u.status = UserStatus::Invited;
    u.sso_app_ids = vec!["app1".into()];
    u.role_names = vec!["admin".into()];
    u.tenants = vec![member("t1", &["viewer"])];
    u.custom_attributes.insert("plan".into(), json!("pro"));
    u.custom_attributes.insert("seats".into(), json!(2.5));
    u.login_ids.push("dana-alt".into());
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    // Loading fills in the tenant's name and the permissions its roles grant.
    u.tenants[0].tenant_name = "Tenant One".into();
    u.tenants[0].permissions = vec!["read".into()];

    assert_eq!(s.get_user(p, &login("dana@example.com")).await.unwrap(), Some(u.clone()));
    assert_eq!(s.get_user(p, &login("dana-alt")).await.unwrap(), Some(u.clone()));
    assert_eq!(s.get_user(p, &by_id(&u.user_id)).await.unwrap(), Some(u.clone()));
    assert_eq!(s.get_user(p, &login("Dana@example.com")).await.unwrap(), None, "login ids compare exactly");
    // Another project sees nothing.
    assert_eq!(s.get_user(&ProjectId::generate(), &login("dana@example.com")).await.unwrap(), None);
    // Bulk load keeps the order asked for, skips unknown and repeated ids.
    let other = user("other");
    s.create_users(p, std::slice::from_ref(&other)).await.unwrap();
    let ids =
        vec![other.user_id.to_string(), "Unope".into(), u.user_id.to_string(), other.user_id.to_string()];
    assert_eq!(s.load_users(p, &ids).await.unwrap(), vec![other, u]);
}

pub async fn create_users_is_all_or_nothing(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    s.create_users(p, &[user("a")]).await.unwrap();
    let err = s.create_users(p, &[user("b"), user("a")]).await.unwrap_err();
    assert!(matches!(err, Error::UserAlreadyExists(ref l) if l == "a"), "{err:?}");
    // "b" was not written: the batch is atomic.
    assert_eq!(s.get_user(p, &login("b")).await.unwrap(), None);
    let err = s.create_users(p, &[user("c"), user("c")]).await.unwrap_err();
    assert!(matches!(err, Error::UserAlreadyExists(ref l) if l == "c"), "twice in one batch: {err:?}");
    // Unknown references are refused, and nothing is written.
    let mut bad = user("c");
    bad.role_names = vec!["nope".into()];
    let err = s.create_users(p, &[user("d"), bad]).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { field: "roleNames", .. }), "{err:?}");
    let mut bad = user("c");
    bad.tenants = vec![member("nope", &[])];
    let err = s.create_users(p, &[bad]).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { field: "userTenants", .. }), "{err:?}");
    let mut bad = user("c");
    bad.custom_attributes.insert("undefined".into(), json!(1));
    let err = s.create_users(p, &[bad]).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { field: "customAttributes", .. }), "{err:?}");
    for l in ["c", "d"] {
        assert_eq!(s.get_user(p, &login(l)).await.unwrap(), None, "{l}");
    }
}

pub async fn create_users_each_keeps_the_good_ones(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    s.create_users(p, &[user("b")]).await.unwrap();
    let mut bad = user("c");
    bad.tenants = vec![member("nope", &[])];
    let mut in_tenant = user("e");
    in_tenant.tenants = vec![member("acme", &["viewer"])];
    let results = s.create_users_each(p, &[user("d"), user("b"), bad, in_tenant]).await.unwrap();
    assert_eq!(results.len(), 4);
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(Error::UserAlreadyExists(ref l)) if l == "b"), "{:?}", results[1]);
    assert!(matches!(results[2], Err(Error::Invalid { field: "userTenants", .. })), "{:?}", results[2]);
    let created = results[3].as_ref().unwrap();
    assert_eq!(created.tenants[0].tenant_name, "Acme", "answers are loaded users");
    assert!(s.get_user(p, &login("d")).await.unwrap().is_some());
    assert!(s.get_user(p, &login("c")).await.unwrap().is_none());
    assert_eq!(s.get_user(p, &login("e")).await.unwrap().as_ref(), Some(created));
}

pub async fn delete_user_cascades_to_login_ids_tokens_and_history(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let mut u = user("gone");
    u.login_ids.push("gone-alt".into());
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    let google = provider("google");
    let token = SealedToken { refresh_token: None, expiration: 0, scopes: vec![], ..sealed(&google, 1) };
    assert!(s.put_token(p, &u.user_id, &token).await.unwrap());
    s.record_login(p, &u.user_id, 5, "127.0.0.1").await.unwrap();

    assert!(s.delete_user(p, &u.user_id).await.unwrap());
    assert!(!s.delete_user(p, &u.user_id).await.unwrap());
    assert!(matches!(s.get_token(p, &login("gone"), &google).await.unwrap(), TokenLookup::NoUser));
    assert!(s.login_history(p, &[u.user_id.to_string()]).await.unwrap().is_empty());
    // Every login id is free again, and the new user has no token.
    let again = user("gone");
    let mut alt = user("gone-alt");
    alt.test = true;
    s.create_users(p, &[again.clone(), alt]).await.unwrap();
    assert!(matches!(s.get_token(p, &login("gone"), &google).await.unwrap(), TokenLookup::NoToken));
    assert!(!s.delete_user(&ProjectId::generate(), &again.user_id).await.unwrap(), "other project");
}

pub async fn delete_test_users_deletes_only_test_users(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let mut t1 = user("tester1");
    t1.test = true;
    let mut t2 = user("tester2");
    t2.test = true;
    s.create_users(p, &[t1.clone(), t2, user("regular")]).await.unwrap();
    let google = provider("google");
    assert!(s.put_token(p, &t1.user_id, &sealed(&google, 1)).await.unwrap());
    assert_eq!(s.delete_test_users(p).await.unwrap(), 2);
    assert_eq!(s.delete_test_users(p).await.unwrap(), 0);
    assert!(s.get_user(p, &login("tester1")).await.unwrap().is_none());
    assert!(s.get_user(p, &login("regular")).await.unwrap().is_some());
    assert!(matches!(s.get_token(p, &by_id(&t1.user_id), &google).await.unwrap(), TokenLookup::NoUser));
    s.create_users(p, &[user("tester1")]).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Search (through its results only).

pub async fn search_filters_paging_and_total(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let mut users = Vec::new();
    for i in 0..10 {
        let mut u = user(&format!("user{i}@example.com"));
        u.email = Some(format!("user{i}@example.com"));
        u.status = if i % 2 == 0 { UserStatus::Enabled } else { UserStatus::Disabled };
        if i < 3 {
            u.tenants = vec![member("acme", &["editor"])];
        }
        u.test = i == 9;
        users.push(u);
    }
    s.create_users(p, &users).await.unwrap();
    let base = UserQuery { limit: 100, ..Default::default() };
    let count = |q: UserQuery| async move { search(s, p, q).await.0.len() };

    let (all, total) = search(s, p, base.clone()).await;
    assert_eq!((all.len(), total), (9, 9), "test user excluded by default");
    let (_, total) = search(s, p, UserQuery { test: TestUserFilter::Include, ..base.clone() }).await;
    assert_eq!(total, 10);
    let (only, _) = search(s, p, UserQuery { test: TestUserFilter::Only, ..base.clone() }).await;
    assert_eq!(first_login_ids(&only), ["user9@example.com"]);

    let (acme, _) = search(s, p, UserQuery { tenant_ids: vec!["acme".into()], ..base.clone() }).await;
    assert_eq!(acme.len(), 3);
    assert_eq!(acme[0].tenants[0].tenant_name, "Acme", "search results are enriched");
    assert_eq!(count(UserQuery { role_names: vec!["editor".into()], ..base.clone() }).await, 3);
    let enabled_acme =
        UserQuery { tenant_ids: vec!["acme".into()], statuses: vec![UserStatus::Enabled], ..base.clone() };
    assert_eq!(count(enabled_acme).await, 2, "filters combine with AND");
    assert_eq!(
        count(UserQuery { statuses: vec![UserStatus::Enabled, UserStatus::Disabled], ..base.clone() }).await,
        9,
        "values of one filter combine with OR"
    );
    assert_eq!(count(UserQuery { emails: vec!["USER4@example.com".into()], ..base.clone() }).await, 1);
    assert_eq!(count(UserQuery { login_ids: vec!["user5@example.com".into()], ..base.clone() }).await, 1);
    let ids = vec![users[1].user_id.to_string(), users[2].user_id.to_string()];
    assert_eq!(count(UserQuery { user_ids: ids, ..base.clone() }).await, 2);
    assert_eq!(count(UserQuery { text: Some("user7".into()), ..base.clone() }).await, 1);
    assert_eq!(count(UserQuery { text: Some("USER7@EXAMPLE".into()), ..base.clone() }).await, 1, "any case");
    assert_eq!(count(UserQuery { text: Some("r7".into()), ..base.clone() }).await, 1, "short text matches");
    assert_eq!(
        count(UserQuery { text: Some("%".into()), ..base.clone() }).await,
        0,
        "LIKE wildcards are literal"
    );
    assert_eq!(
        count(UserQuery { text: Some("user_".into()), ..base.clone() }).await,
        0,
        "LIKE wildcards are literal"
    );
    let tenant_roles =
        vec![TenantRoleFilter { tenant_id: "acme".into(), roles: vec!["editor".into()], all: true }];
    assert_eq!(count(UserQuery { tenant_roles, ..base.clone() }).await, 3);
    // One role in one tenant, and text, page in creation order (or the sort's) with the right
    // total, however a store reaches the matches.
    let one_role =
        vec![TenantRoleFilter { tenant_id: "acme".into(), roles: vec!["editor".into()], all: false }];
    let (rows, total) =
        search(s, p, UserQuery { tenant_roles: one_role.clone(), limit: 2, ..base.clone() }).await;
    assert_eq!((first_login_ids(&rows), total), (vec!["user0@example.com", "user1@example.com"], 3));
    let desc = vec![SortBy { field: SortField::LoginId, desc: true }];
    let q = UserQuery { tenant_roles: one_role, sort: desc.clone(), limit: 2, page: 1, ..base.clone() };
    let (rows, total) = search(s, p, q).await;
    assert_eq!((first_login_ids(&rows), total), (vec!["user0@example.com"], 3));
    let text = Some("example.com".to_owned());
    let (rows, total) =
        search(s, p, UserQuery { text: text.clone(), limit: 3, page: 1, ..base.clone() }).await;
    assert_eq!(
        (first_login_ids(&rows), total),
        (vec!["user3@example.com", "user4@example.com", "user5@example.com"], 9)
    );
    let (rows, total) = search(s, p, UserQuery { text, sort: desc, limit: 2, ..base.clone() }).await;
    assert_eq!((first_login_ids(&rows), total), (vec!["user8@example.com", "user7@example.com"], 9));
    assert_eq!(count(UserQuery { from_created_ms: Some(1_001), ..base.clone() }).await, 0);
    assert_eq!(count(UserQuery { to_created_ms: Some(1_000), ..base.clone() }).await, 9);

    let sort = vec![SortBy { field: SortField::LoginId, desc: true }];
    let (sorted, _) = search(s, p, UserQuery { sort, ..base.clone() }).await;
    let logins = first_login_ids(&sorted);
    let mut expected = logins.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(logins, expected);

    let mut seen = HashSet::new();
    for page in 0..4 {
        let (rows, total) = search(s, p, UserQuery { limit: 4, page, ..base.clone() }).await;
        assert_eq!(total, 9);
        assert_eq!(rows.len(), [4, 4, 1, 0][page as usize]);
        for r in rows {
            assert!(seen.insert(r.user_id), "pages do not overlap");
        }
    }
    assert_eq!(seen.len(), 9);
    assert_eq!(search(s, &ProjectId::generate(), base).await.1, 0, "other project");
}

/// Totals of the empty and status-only filters may come from counts a store keeps (rather than
/// from counting rows): they must equal the number of matching users after every kind of write.
pub async fn search_totals_stay_exact_through_creates_status_changes_and_deletes(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    // Every (test flag, status) filter, each with its total counted from the rows: a bound on
    // the creation time that every user meets makes it a filter no count answers.
    let check = |when: &'static str| async move {
        let tests = [TestUserFilter::Exclude, TestUserFilter::Include, TestUserFilter::Only];
        let statuses = [vec![], vec![UserStatus::Enabled], vec![UserStatus::Disabled, UserStatus::Invited]];
        for test in tests {
            for statuses in &statuses {
                let q = UserQuery { test, statuses: statuses.clone(), limit: 1000, ..Default::default() };
                let (rows, total) = search(s, p, q.clone()).await;
                let counted = search(s, p, UserQuery { to_created_ms: Some(i64::MAX), ..q }).await.1;
                assert_eq!(total, rows.len() as u64, "{when}: {test:?} {statuses:?}");
                assert_eq!(total, counted, "{when}: {test:?} {statuses:?}");
            }
        }
    };
    check("empty").await;
    let mut users = Vec::new();
    for i in 0..12 {
        let mut u = user(&format!("count{i}"));
        u.status = [UserStatus::Enabled, UserStatus::Disabled, UserStatus::Invited][i % 3];
        u.test = i % 4 == 0;
        users.push(u);
    }
    s.create_users(p, &users[..8]).await.unwrap();
    s.create_users(p, &users[8..9]).await.unwrap();
    s.create_users(p, &users[9..]).await.unwrap();
    let (_, total) = search(s, p, UserQuery { test: TestUserFilter::Include, ..Default::default() }).await;
    assert_eq!(total, 12);
    check("after creates").await;
    assert!(s.create_users(p, &[user("count0")]).await.is_err(), "a taken login id");
    check("after a refused create").await;
    update(s, p, &users[1].user_id, vec![Edit::Status(UserStatus::Enabled)]).await.unwrap();
    update(s, p, &users[0].user_id, vec![Edit::Status(UserStatus::Disabled), Edit::Name("n".into())])
        .await
        .unwrap();
    update(s, p, &users[2].user_id, vec![Edit::Name("only a name".into())]).await.unwrap();
    check("after status changes").await;
    assert!(s.delete_user(p, &users[3].user_id).await.unwrap());
    assert!(s.delete_user(p, &users[4].user_id).await.unwrap());
    check("after deletes").await;
    assert_eq!(s.delete_test_users(p).await.unwrap(), 2, "count0 and count8 (count4 is gone)");
    check("after deleting test users").await;
    let (_, total) = search(s, p, UserQuery { test: TestUserFilter::Include, ..Default::default() }).await;
    assert_eq!(total, 8);
    let other = ProjectId::generate();
    assert_eq!(search(s, &other, UserQuery::default()).await.1, 0, "other project");
}

pub async fn search_by_custom_attributes_and_sso_apps(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let mut a = user("a");
    a.custom_attributes.insert("plan".into(), json!("pro"));
    a.custom_attributes.insert("seats".into(), json!(3));
    a.sso_app_ids = vec!["app1".into()];
    let mut b = user("b");
    b.custom_attributes.insert("plan".into(), json!("free"));
    s.create_users(p, &[a, b]).await.unwrap();
    let base = UserQuery { limit: 10, ..Default::default() };
    let found = |attrs: Value| {
        let q = UserQuery { custom_attributes: attrs.as_object().unwrap().clone(), ..base.clone() };
        async move { first_login_ids(&search(s, p, q).await.0).into_iter().map(str::to_owned).collect::<Vec<_>>() }
    };
    assert_eq!(found(json!({"plan": "pro"})).await, ["a"]);
    assert_eq!(found(json!({"plan": ["pro", "free"]})).await, ["a", "b"]);
    assert_eq!(found(json!({"seats": 3.0})).await, ["a"]);
    assert!(found(json!({"seats": "3"})).await.is_empty(), "values match by type");
    let sso = UserQuery { sso_app_ids: vec!["app2".into(), "app1".into()], ..base.clone() };
    assert_eq!(first_login_ids(&search(s, p, sso).await.0), ["a"]);
}

// ---------------------------------------------------------------------------------------------
// update_user.

/// Free text follows writes that the store commits together: creates, renames (name and email)
/// and deletes sent at once (so that a store that groups concurrent writes takes many of them in
/// one transaction, including a delete of the newest user beside creates that may take its row
/// key). Once they are answered, text search finds every current name and address, and no old
/// or deleted one.
pub async fn search_text_follows_concurrent_creates_renames_and_deletes(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    let named = |login: String, name: String, email: String| {
        NewUser { login_id: login, name: Some(name), email: Some(email), ..Default::default() }
            .into_user(UserId::generate(), 1_000)
            .unwrap()
    };
    let base: Vec<User> = (0..30)
        .map(|i| {
            named(format!("base{i:02}@ftsq.test"), format!("oldname{i:02}q"), format!("old{i:02}@mail.test"))
        })
        .collect();
    s.create_users(p, &base).await.unwrap();
    let renamed = 0..10;
    // The last one is the newest row: a create in the same transaction may reuse its row key.
    let deleted: Vec<usize> = (10..20).chain([29]).collect();
    let mut tasks = Vec::new();
    for i in renamed.clone() {
        let (s, p, id) = (s.clone(), p.clone(), base[i].user_id.clone());
        tasks.push(tokio::spawn(async move {
            let change = UserChange::Several(vec![
                UserChange::Names(NameParts { name: Some(format!("newname{i:02}q")), ..Default::default() }),
                UserChange::Email {
                    email: Some(format!("new{i:02}@mail.test")),
                    verified: None,
                    fail_on_conflict: false,
                },
            ]);
            s.update_user(&p, &id, &UserUpdate { change, now_ms: NOW_MS }).await.map(drop)
        }));
    }
    for &i in &deleted {
        let (s, p, id) = (s.clone(), p.clone(), base[i].user_id.clone());
        tasks.push(tokio::spawn(async move {
            assert!(s.delete_user(&p, &id).await?);
            Ok(())
        }));
    }
    let created: Vec<User> = (0..20)
        .map(|i| {
            named(
                format!("fresh{i:02}@ftsq.test"),
                format!("freshname{i:02}q"),
                format!("fresh{i:02}@mail.test"),
            )
        })
        .collect();
    for u in &created {
        let (s, p, u) = (s.clone(), p.clone(), u.clone());
        tasks.push(tokio::spawn(async move { s.create_users(&p, &[u]).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let s = &**s;
    let ids = |users: Vec<User>| users.into_iter().map(|u| u.user_id).collect::<Vec<_>>();
    let exactly = |text: String, user: &User| {
        let text = text.clone();
        let want = vec![user.user_id.clone()];
        async move { assert_eq!(ids(find(s, p, Find::Text(&text)).await), want, "{text}") }
    };
    let nobody = |text: String| async move {
        assert!(find(s, p, Find::Text(&text)).await.is_empty(), "{text} is still found");
    };
    for i in renamed {
        exactly(format!("newname{i:02}q"), &base[i]).await;
        exactly(format!("new{i:02}@mail"), &base[i]).await;
        nobody(format!("oldname{i:02}q")).await;
        nobody(format!("old{i:02}@mail")).await;
        exactly(format!("base{i:02}@"), &base[i]).await;
    }
    for &i in &deleted {
        nobody(format!("oldname{i:02}q")).await;
        nobody(format!("old{i:02}@mail")).await;
        nobody(format!("base{i:02}@")).await;
    }
    for (i, u) in base.iter().enumerate().take(29).skip(20) {
        exactly(format!("oldname{i:02}q"), u).await;
    }
    for (i, u) in created.iter().enumerate() {
        exactly(format!("freshname{i:02}q"), u).await;
        exactly(format!("fresh{i:02}@mail"), u).await;
    }
    let mut all: Vec<UserId> = ids(find(s, p, Find::Text("@ftsq.test")).await);
    let mut want: Vec<UserId> = (0..10)
        .chain(20..29)
        .map(|i| base[i].user_id.clone())
        .chain(created.iter().map(|u| u.user_id.clone()))
        .collect();
    all.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    want.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(all, want);
}

pub async fn update_user_applies_every_change_at_once(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let a = user("a");
    s.create_users(p, std::slice::from_ref(&a)).await.unwrap();
    let saved = update(
        s,
        p,
        &a.user_id,
        vec![
            Edit::ReplaceLoginId { old: "a".into(), new: "a2".into() },
            Edit::AddLoginId("a-alt".into()),
            Edit::Name("Zoë Smith".into()),
            Edit::AddRole("admin".into()),
            Edit::AddTenant { tenant: "t1".into(), roles: vec!["viewer".into()] },
            Edit::Attribute("plan".into(), json!("pro")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(saved.login_ids, ["a2", "a-alt"]);
    assert_eq!(saved.name.as_deref(), Some("Zoë Smith"));
    assert_eq!(saved.role_names, ["admin"]);
    assert_eq!(saved.tenants[0].tenant_name, "Tenant One", "the answer is enriched");
    assert_eq!(saved.tenants[0].permissions, ["read"]);
    assert_eq!(saved.custom_attributes.get("plan"), Some(&json!("pro")));
    assert_eq!(s.get_user(p, &login("a2")).await.unwrap().as_ref(), Some(&saved));
    assert_eq!(s.get_user(p, &login("a-alt")).await.unwrap().as_ref(), Some(&saved));
    assert_eq!(s.get_user(p, &login("a")).await.unwrap(), None);
    // The old login id is free; the index follows every change.
    s.create_users(p, &[user("a")]).await.unwrap();
    assert_eq!(find(s, p, Find::Text("SMITH")).await, std::slice::from_ref(&saved));
    assert_eq!(find(s, p, Find::Role("admin")).await.len(), 1);
    assert_eq!(find(s, p, Find::Tenant("t1")).await.len(), 1);
    assert_eq!(find(s, p, Find::LoginId("a-alt")).await.len(), 1);
}

pub async fn update_user_refuses_unknown_references_and_writes_nothing(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let a = user("a");
    s.create_users(p, std::slice::from_ref(&a)).await.unwrap();
    let before = s.get_user(p, &login("a")).await.unwrap();
    let tenant = |t: &str, roles: &[&str]| Edit::AddTenant {
        tenant: t.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    };
    let refused: Vec<(Edit, &str)> = vec![
        (Edit::AddRole("nope".into()), "roleNames"),
        (tenant("nope", &[]), "userTenants"),
        (tenant("acme", &["nope"]), "roleNames"),
        (Edit::Attribute("undefined".into(), json!(1)), "customAttributes"),
        (Edit::Attribute("seats".into(), json!("many")), "customAttributes"),
    ];
    for (bad, field) in refused {
        // The good changes of the same call are not written either.
        let edits = vec![
            Edit::Name("Changed".into()),
            Edit::AddLoginId("a-new".into()),
            Edit::AddRole("admin".into()),
            bad.clone(),
        ];
        let err = update(s, p, &a.user_id, edits).await.unwrap_err();
        assert!(matches!(err, Error::Invalid { field: f, .. } if f == field), "{bad:?}: {err:?}");
        assert_eq!(s.get_user(p, &login("a")).await.unwrap(), before, "{bad:?}");
        assert_eq!(s.get_user(p, &login("a-new")).await.unwrap(), None, "{bad:?}");
    }
    let err = update(s, p, &UserId::generate(), vec![Edit::Name("x".into())]).await.unwrap_err();
    assert!(matches!(err, Error::UserNotFound), "{err:?}");
    let err = update(&*f.store, &ProjectId::generate(), &a.user_id, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::UserNotFound), "other project: {err:?}");
}

pub async fn update_user_refuses_a_taken_login_id(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let (a, b) = (user("a"), user("b"));
    s.create_users(p, &[a.clone(), b.clone()]).await.unwrap();
    let (a_before, b_before) =
        (s.get_user(p, &login("a")).await.unwrap(), s.get_user(p, &login("b")).await.unwrap());
    for edits in [
        vec![Edit::Name("A".into()), Edit::AddLoginId("b".into())],
        vec![Edit::Name("A".into()), Edit::ReplaceLoginId { old: "a".into(), new: "b".into() }],
    ] {
        let err = update(s, p, &a.user_id, edits).await.unwrap_err();
        assert!(matches!(err, Error::UserAlreadyExists(ref l) if l == "b"), "{err:?}");
        assert_eq!(s.get_user(p, &login("a")).await.unwrap(), a_before);
        assert_eq!(s.get_user(p, &login("b")).await.unwrap(), b_before);
    }
}

pub async fn concurrent_update_user_loses_no_update(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    for i in 0..20 {
        s.create_role(p, &role(&format!("RC{i}"), &format!("r{i}"), None, vec![])).await.unwrap();
    }
    let u = user("busy");
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    let done = wins(20, |i| {
        let (s, p, id) = (s.clone(), p.clone(), u.user_id.clone());
        async move { update(&*s, &p, &id, vec![Edit::AddRole(format!("r{i}"))]).await.is_ok() }
    })
    .await;
    assert_eq!(done, 20);
    let loaded = s.get_user(p, &login("busy")).await.unwrap().unwrap();
    let roles: HashSet<String> = loaded.role_names.into_iter().collect();
    assert_eq!(roles, (0..20).map(|i| format!("r{i}")).collect::<HashSet<_>>());
}

pub async fn concurrent_creates_of_one_login_id_let_exactly_one_win(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    let created = wins(10, |_| {
        let (s, p) = (s.clone(), p.clone());
        async move {
            match s.create_users(&p, &[user("same@example.com")]).await {
                Ok(()) => true,
                Err(Error::UserAlreadyExists(l)) if l == "same@example.com" => false,
                Err(e) => panic!("{e:?}"),
            }
        }
    })
    .await;
    assert_eq!(created, 1);
    assert_eq!(find(&**s, p, Find::All).await.len(), 1);
}

pub async fn concurrent_login_id_changes_to_one_value_let_exactly_one_win(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    let users: Vec<User> = (0..8).map(|i| user(&format!("u{i}"))).collect();
    s.create_users(p, &users).await.unwrap();
    let renamed = wins(users.len(), |i| {
        let (s, p, id) = (s.clone(), p.clone(), users[i].user_id.clone());
        async move {
            match update(&*s, &p, &id, vec![Edit::AddLoginId("wanted".into())]).await {
                Ok(_) => true,
                Err(Error::UserAlreadyExists(l)) if l == "wanted" => false,
                Err(e) => panic!("{e:?}"),
            }
        }
    })
    .await;
    assert_eq!(renamed, 1);
    assert!(s.get_user(p, &login("wanted")).await.unwrap().is_some());
}

pub async fn concurrent_batches_in_opposite_orders_fail_cleanly(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    for round in 0..3 {
        let logins: Vec<String> = (0..20).map(|i| format!("r{round}-{i}")).collect();
        let created = wins(2, |reversed| {
            let (s, p) = (s.clone(), p.clone());
            let mut batch: Vec<User> = logins.iter().map(|l| user(l)).collect();
            if reversed == 1 {
                batch.reverse();
            }
            async move {
                match s.create_users(&p, &batch).await {
                    Ok(()) => true,
                    Err(Error::UserAlreadyExists(_)) => false,
                    Err(e) => panic!("{e:?}"),
                }
            }
        })
        .await;
        assert_eq!(created, 1, "round {round}");
    }
}

// ---------------------------------------------------------------------------------------------
// The directory and its cascades.

pub async fn directory_references_are_checked(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    s.create_role(p, &role("ROLT", "viewer", Some("acme"), vec![])).await.unwrap();
    let refused = [
        (role("ROLX", "admin", None, vec![]), "AlreadyExists"),
        (role("ROLT2", "viewer", Some("acme"), vec![]), "AlreadyExists"),
        (role("ROLY", "x", Some("nope"), vec![]), "tenantId"),
        (role("ROLZ", "x", None, vec!["nope".into()]), "permissionNames"),
    ];
    for (r, expected) in refused {
        let err = s.create_role(p, &r).await.unwrap_err();
        let ok = match &err {
            Error::AlreadyExists(_) => expected == "AlreadyExists",
            Error::Invalid { field, .. } => *field == expected,
            _ => false,
        };
        assert!(ok, "{r:?}: {err:?}");
    }
    let err = s.create_tenant(p, &tenant("other", "ACME")).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "names compare case-insensitively: {err:?}");
    let err = s.create_tenant(p, &tenant("acme", "Another")).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    let dup =
        Permission { id: "PRM2".into(), name: "read".into(), description: String::new(), created_ms: 1 };
    assert!(matches!(s.create_permission(p, &dup).await.unwrap_err(), Error::AlreadyExists(_)));
    let err = s.update_role(p, "nope", None, &role("R", "nope", None, vec![]), NOW_MS).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    let err = s.update_permission(p, "nope", "x", "").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}

pub async fn tenants_attributes_and_permissions_update_and_list(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let mut changed = tenant("t1", "Tenant 1");
    changed.disabled = true;
    changed.enforce_sso = true;
    changed.self_provisioning_domains = vec!["example.com".into()];
    changed.custom_attributes.insert("k".into(), json!("v"));
    changed.created_ms = 99;
    let t = s.update_tenant(p, &changed).await.unwrap();
    assert_eq!(t, Tenant { created_ms: 1, ..changed }, "the creation time is kept");
    assert_eq!(s.get_tenant(p, "t1").await.unwrap().as_ref(), Some(&t));
    assert!(matches!(s.update_tenant(p, &tenant("nope", "x")).await.unwrap_err(), Error::NotFound(_)));
    let err = s.update_tenant(p, &tenant("t1", "acme")).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "a taken name: {err:?}");
    let ids: Vec<String> = s.list_tenants(p).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"t1".to_owned()) && ids.contains(&"acme".to_owned()));
    assert_eq!(s.get_tenant(&ProjectId::generate(), "t1").await.unwrap(), None);

    let mut seats = s.list_attribute_defs(p).await.unwrap().into_iter().find(|d| d.name == "seats").unwrap();
    seats.display_name = "Seat count".into();
    s.put_attribute_defs(p, &[seats.clone()]).await.unwrap();
    assert!(s.list_attribute_defs(p).await.unwrap().contains(&seats), "put replaces by name");
    s.delete_attribute_defs(p, &["seats".into()]).await.unwrap();
    let defs = s.list_attribute_defs(p).await.unwrap();
    assert_eq!(defs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["plan"]);
    let mut u = user("u");
    u.custom_attributes.insert("seats".into(), json!(1));
    assert!(s.create_users(p, &[u]).await.is_err(), "a deleted definition is unknown");

    let names: Vec<String> = s.list_permissions(p).await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["read"]);
    let mut roles: Vec<String> = s.list_roles(p).await.unwrap().into_iter().map(|r| r.name).collect();
    roles.sort();
    assert_eq!(roles, ["admin", "editor", "viewer"]);
}

pub async fn permission_rename_and_delete_follow_into_roles(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let write =
        Permission { id: "PRM2".into(), name: "write".into(), description: String::new(), created_ms: 1 };
    s.create_permission(p, &write).await.unwrap();
    s.create_role(p, &role("ROLT", "auditor", Some("acme"), vec!["read".into(), "write".into()]))
        .await
        .unwrap();
    let mut u = user("member");
    u.tenants = vec![member("t1", &["viewer"])];
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();

    assert!(cascade(s, p, Cascade::RenamePermission { name: "read", new_name: "read-all" }).await.unwrap());
    let perms = |roles: Vec<Role>, name: &str| {
        roles.into_iter().find(|r| r.name == name).map(|r| r.permission_names).unwrap_or_default()
    };
    assert_eq!(perms(s.list_roles(p).await.unwrap(), "viewer"), ["read-all"]);
    assert_eq!(perms(s.list_roles(p).await.unwrap(), "auditor"), ["read-all", "write"]);
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    assert_eq!(loaded.tenants[0].permissions, ["read-all"], "users see it at once");
    let names: Vec<String> = s.list_permissions(p).await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["read-all", "write"]);
    let err =
        cascade(s, p, Cascade::RenamePermission { name: "write", new_name: "read-all" }).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(perms(s.list_roles(p).await.unwrap(), "auditor"), ["read-all", "write"], "nothing written");

    assert!(cascade(s, p, Cascade::DeletePermission("read-all")).await.unwrap());
    assert!(!cascade(s, p, Cascade::DeletePermission("read-all")).await.unwrap());
    assert!(perms(s.list_roles(p).await.unwrap(), "viewer").is_empty());
    assert_eq!(perms(s.list_roles(p).await.unwrap(), "auditor"), ["write"]);
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    assert!(loaded.tenants[0].permissions.is_empty());
}

/// A user holding `viewer` at project level, in `t1` (the project role) and in `acme`, which has
/// a role of its own named `viewer` (granting nothing): the tenant's role shadows the project's.
async fn shadowed_member(f: &Fixture) -> User {
    let (s, p) = (&*f.store, &f.project);
    s.create_role(p, &role("ROLT", "viewer", Some("acme"), vec![])).await.unwrap();
    let mut u = user("member");
    u.role_names = vec!["admin".into(), "viewer".into()];
    u.tenants = vec![member("t1", &["viewer"]), member("acme", &["viewer"])];
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    assert_eq!(loaded.tenants[0].permissions, ["read"], "t1 uses the project role");
    assert!(loaded.tenants[1].permissions.is_empty(), "acme's own role wins");
    loaded
}

pub async fn role_rename_follows_on_users_except_where_a_tenant_role_shadows_it(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let before = shadowed_member(&f).await;
    let renamed = role("ROL1", "reader", None, vec!["read".into()]);
    assert!(cascade(s, p, Cascade::UpdateRole { name: "viewer", tenant: None, role: renamed })
        .await
        .unwrap());
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    assert_eq!(loaded.role_names, ["admin", "reader"]);
    assert_eq!(loaded.tenants[0].role_names, ["reader"]);
    assert_eq!(loaded.tenants[0].permissions, ["read"]);
    assert_eq!(loaded.tenants[1].role_names, ["viewer"], "the tenant's own role is another role");
    assert!(loaded.modified_ms > before.modified_ms, "a user changed by a cascade is modified");
    assert_eq!(find(s, p, Find::Role("reader")).await.len(), 1, "the role index follows the rename");

    // Renaming the tenant's role touches that tenant only.
    let renamed = role("ROLT", "acme-viewer", Some("acme"), vec![]);
    let change = Cascade::UpdateRole { name: "viewer", tenant: Some("acme"), role: renamed };
    assert!(cascade(s, p, change).await.unwrap());
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    assert_eq!(loaded.role_names, ["admin", "reader"]);
    assert_eq!(loaded.tenants[0].role_names, ["reader"]);
    assert_eq!(loaded.tenants[1].role_names, ["acme-viewer"]);
    let taken =
        Cascade::UpdateRole { name: "reader", tenant: None, role: role("ROL1", "admin", None, vec![]) };
    assert!(matches!(cascade(s, p, taken).await.unwrap_err(), Error::AlreadyExists(_)));
    assert_eq!(s.get_user(p, &login("member")).await.unwrap().unwrap(), loaded, "nothing written");
}

pub async fn role_delete_follows_on_users_except_where_a_tenant_role_shadows_it(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    shadowed_member(&f).await;
    assert!(cascade(s, p, Cascade::DeleteRole { name: "viewer", tenant: None }).await.unwrap());
    assert!(!cascade(s, p, Cascade::DeleteRole { name: "viewer", tenant: None }).await.unwrap());
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    assert_eq!(loaded.role_names, ["admin"]);
    assert!(loaded.tenants[0].role_names.is_empty());
    assert_eq!(loaded.tenants[1].role_names, ["viewer"], "acme's own role stays");
    assert_eq!(find(s, p, Find::Role("viewer")).await.len(), 1, "still held in acme");

    assert!(cascade(s, p, Cascade::DeleteRole { name: "viewer", tenant: Some("acme") }).await.unwrap());
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    assert_eq!(loaded.tenants.len(), 2, "membership stays without the role");
    assert!(loaded.tenants[1].role_names.is_empty());
    assert!(find(s, p, Find::Role("viewer")).await.is_empty());
    assert!(!s.list_roles(p).await.unwrap().iter().any(|r| r.name == "viewer"));
}

pub async fn tenant_delete_removes_membership_and_tenant_roles(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let before = shadowed_member(&f).await;
    let mut bystander = user("bystander");
    bystander.tenants = vec![member("t1", &["viewer"])];
    s.create_users(p, std::slice::from_ref(&bystander)).await.unwrap();
    let bystander = s.get_user(p, &login("bystander")).await.unwrap();

    assert!(cascade(s, p, Cascade::DeleteTenant("acme")).await.unwrap());
    assert!(!cascade(s, p, Cascade::DeleteTenant("acme")).await.unwrap());
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    assert_eq!(loaded.tenants, before.tenants[..1], "only acme's membership went");
    assert_eq!(loaded.role_names, before.role_names);
    assert!(loaded.modified_ms > before.modified_ms);
    assert_eq!(s.get_user(p, &login("bystander")).await.unwrap(), bystander, "non-members untouched");
    assert!(s.list_roles(p).await.unwrap().iter().all(|r| r.tenant_id.is_none()), "its roles went");
    assert!(s.get_tenant(p, "acme").await.unwrap().is_none());
    assert!(find(s, p, Find::Tenant("acme")).await.is_empty());
    // The id and the name are free again; the new tenant has no members and no roles.
    s.create_tenant(p, &tenant("acme", "Acme")).await.unwrap();
    assert!(find(s, p, Find::Tenant("acme")).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Login history.

pub async fn login_history_is_newest_first_per_user(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let (a, b, c) = (user("a"), user("b"), user("c"));
    s.create_users(p, &[a.clone(), b.clone(), c.clone()]).await.unwrap();
    for (u, ms, ip) in [(&a, 1, "10.0.0.1"), (&b, 2, "10.0.0.2"), (&a, 3, "::1")] {
        s.record_login(p, &u.user_id, ms, ip).await.unwrap();
    }
    // A login of an unknown user records nothing.
    s.record_login(p, &UserId::generate(), 4, "10.0.0.9").await.unwrap();
    let asked = [b.user_id.to_string(), a.user_id.to_string(), c.user_id.to_string(), "Unope".into()];
    let history = s.login_history(p, &asked).await.unwrap();
    let got: Vec<(UserId, i64, &str)> =
        history.iter().map(|h| (h.user_id.clone(), h.login_ms, h.ip.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (b.user_id.clone(), 2, "10.0.0.2"),
            (a.user_id.clone(), 3, "::1"),
            (a.user_id.clone(), 1, "10.0.0.1")
        ]
    );
    assert!(s.login_history(&ProjectId::generate(), &asked).await.unwrap().is_empty(), "other project");
}

// ---------------------------------------------------------------------------------------------
// Provider tokens.

pub async fn tokens_put_get_delete_and_provider_flag(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let u = user("t");
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    let github = provider("github");
    assert!(matches!(s.get_token(p, &login("t"), &github).await.unwrap(), TokenLookup::NoToken));
    assert!(matches!(s.get_token(p, &login("nobody"), &github).await.unwrap(), TokenLookup::NoUser));
    let mut token = SealedToken {
        provider: github.clone(),
        provider_user_id: "gh".into(),
        access_token: vec![9; 40],
        refresh_token: Some(vec![8; 40]),
        expiration: 123,
        scopes: vec!["repo".into()],
        updated_ms: 5,
        version: 0,
        reauth_required: false,
    };
    assert!(s.put_token(p, &u.user_id, &token).await.unwrap());
    assert_eq!(token_of(s.get_token(p, &login("t"), &github).await.unwrap()).version, 1);
    token.access_token = vec![7; 40];
    assert!(s.put_token(p, &u.user_id, &token).await.unwrap());
    for by in [login("t"), by_id(&u.user_id)] {
        match s.get_token(p, &by, &github).await.unwrap() {
            TokenLookup::Found { user_id, token: got } => {
                assert_eq!(user_id, u.user_id);
                assert_eq!(got, SealedToken { version: 2, ..token.clone() }, "a write bumps the version");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(s.get_token(p, &login("t"), &provider("google")).await.unwrap(), TokenLookup::NoToken));
    let loaded = s.get_user(p, &login("t")).await.unwrap().unwrap();
    assert_eq!(loaded.oauth_providers, ["github"]);
    assert_eq!(loaded.modified_ms, 5, "the user is modified with its tokens");
    assert!(s.delete_token(p, &u.user_id, &github).await.unwrap());
    assert!(!s.delete_token(p, &u.user_id, &github).await.unwrap());
    let loaded = s.get_user(p, &login("t")).await.unwrap().unwrap();
    assert!(loaded.oauth_providers.is_empty());
    assert!(!s.put_token(p, &UserId::generate(), &token).await.unwrap(), "unknown user");
    assert!(!s.put_token(&ProjectId::generate(), &u.user_id, &token).await.unwrap(), "other project");
}

pub async fn token_refresh_and_reauth_flag_are_compare_and_swap(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let u = user("cas");
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    let google = provider("google");
    let token = sealed(&google, 1);
    s.put_token(p, &u.user_id, &token).await.unwrap();
    let refreshed = SealedToken { access_token: vec![3; 40], expiration: 99, ..token.clone() };
    assert!(!s.replace_refreshed_token(p, &u.user_id, &refreshed, 7).await.unwrap(), "stale version");
    assert!(s.replace_refreshed_token(p, &u.user_id, &refreshed, 1).await.unwrap());
    assert!(!s.replace_refreshed_token(p, &u.user_id, &refreshed, 1).await.unwrap(), "already swapped");
    assert!(!s.flag_reauth_required(p, &u.user_id, &google, 1).await.unwrap());
    assert!(s.flag_reauth_required(p, &u.user_id, &google, 2).await.unwrap());
    let got = token_of(s.get_token(p, &login("cas"), &google).await.unwrap());
    assert_eq!(
        (got.access_token, got.expiration, got.version, got.reauth_required),
        (vec![3; 40], 99, 3, true)
    );
    // A new sign-in or import clears the flag.
    s.put_token(p, &u.user_id, &token).await.unwrap();
    let got = token_of(s.get_token(p, &by_id(&u.user_id), &google).await.unwrap());
    assert_eq!((got.version, got.reauth_required), (4, false));
    let other = SealedToken { provider: provider("github"), ..refreshed };
    assert!(!s.replace_refreshed_token(p, &u.user_id, &other, 4).await.unwrap(), "no such row");
}

pub async fn concurrent_token_refreshes_let_exactly_one_win(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    let u = user("cas");
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    let google = provider("google");
    s.put_token(p, &u.user_id, &sealed(&google, 1)).await.unwrap();
    let swapped = wins(8, |i| {
        let (s, p, id) = (s.clone(), p.clone(), u.user_id.clone());
        let t = sealed(&google, 10 + i as u8);
        async move { s.replace_refreshed_token(&p, &id, &t, 1).await.unwrap() }
    })
    .await;
    assert_eq!(swapped, 1);
    assert_eq!(token_of(s.get_token(p, &login("cas"), &google).await.unwrap()).version, 2);
}

pub async fn concurrent_token_writes_for_different_providers_keep_both(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    let u = user("multi");
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    let written = wins(8, |i| {
        let (s, p, id) = (s.clone(), p.clone(), u.user_id.clone());
        async move { s.put_token(&p, &id, &sealed(&provider(&format!("p{i}")), i as u8)).await.unwrap() }
    })
    .await;
    assert_eq!(written, 8);
    let mut providers = s.get_user(p, &login("multi")).await.unwrap().unwrap().oauth_providers;
    providers.sort();
    assert_eq!(providers, (0..8).map(|i| format!("p{i}")).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// Providers and data keys.

pub async fn providers_put_replace_list_and_delete(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let cfg = ProviderConfig {
        name: provider("acme"),
        client_id: "cid".into(),
        client_secret: Some(vec![1, 2, 3]),
        issuer: Some("http://127.0.0.1:1".into()),
        authorization_endpoint: None,
        token_endpoint: "http://127.0.0.1:1/token".into(),
        userinfo_endpoint: None,
        jwks_uri: None,
        scopes: vec!["openid".into()],
        auth_method: ClientAuthMethod::ClientSecretPost,
        created_ms: 1,
        updated_ms: 2,
        display_name: None,
        app: None,
    };
    s.put_provider(p, &cfg).await.unwrap();
    assert_eq!(s.get_provider(p, &cfg.name).await.unwrap(), Some(cfg.clone()));
    assert_eq!(s.get_provider(&ProjectId::generate(), &cfg.name).await.unwrap(), None);
    let updated =
        ProviderConfig { client_id: "cid2".into(), client_secret: None, updated_ms: 3, ..cfg.clone() };
    s.put_provider(p, &updated).await.unwrap();
    let second = ProviderConfig {
        name: provider("beta"),
        authorization_endpoint: Some("http://127.0.0.1:1/auth".into()),
        userinfo_endpoint: Some("http://127.0.0.1:1/me".into()),
        jwks_uri: Some("http://127.0.0.1:1/jwks".into()),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        ..cfg.clone()
    };
    s.put_provider(p, &second).await.unwrap();
    let mut listed = s.list_providers(p).await.unwrap();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(listed, vec![updated, second]);
    assert!(s.delete_provider(p, &cfg.name).await.unwrap());
    assert!(!s.delete_provider(p, &cfg.name).await.unwrap());
    assert!(s.get_provider(p, &cfg.name).await.unwrap().is_none());
}

pub async fn data_keys_insert_once_and_rewrap_by_compare_and_swap(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    let key = WrappedDataKey {
        project_id: p.clone(),
        version: u32::MAX,
        wrapped: vec![9; 60],
        master_key_version: 1,
        created_ms: 5,
    };
    let inserted = wins(4, |_| {
        let (s, key) = (s.clone(), key.clone());
        async move { s.insert_data_key(&key).await.unwrap() }
    })
    .await;
    assert_eq!(inserted, 1, "the first writer wins");
    assert!(!s.insert_data_key(&WrappedDataKey { wrapped: vec![1; 60], ..key.clone() }).await.unwrap());
    assert_eq!(s.get_data_key(p, u32::MAX).await.unwrap(), Some(key.clone()));
    let rewrapped = WrappedDataKey { wrapped: vec![8; 60], master_key_version: 2, ..key.clone() };
    assert!(!s.rewrap_data_key(&rewrapped, 5).await.unwrap(), "not under that master key");
    let swapped = wins(4, |_| {
        let (s, k) = (s.clone(), rewrapped.clone());
        async move { s.rewrap_data_key(&k, 1).await.unwrap() }
    })
    .await;
    assert_eq!(swapped, 1);
    assert_eq!(s.get_data_key(p, u32::MAX).await.unwrap(), Some(rewrapped.clone()));
    assert_eq!(s.get_data_key(p, 1).await.unwrap(), None);
    let first = WrappedDataKey { version: 1, ..key.clone() };
    assert!(s.insert_data_key(&first).await.unwrap());
    let mut all = s.list_data_keys().await.unwrap();
    all.sort_by_key(|k| k.version);
    assert_eq!(all, vec![first, rewrapped]);
}

// ---------------------------------------------------------------------------------------------
// Sign-in state.

pub async fn oauth_states_are_usable_once_and_expired_ones_swept(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    let state = oauth_state(p, 7, 100, 200);
    assert!(s.insert_oauth_state(&state, 100).await.unwrap());
    let takes: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.take_oauth_state(&[7; 32]).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for t in takes {
        got.extend(t.await.unwrap());
    }
    assert!(got == vec![state.clone()], "a state is usable once");
    assert!(s.take_oauth_state(&[7; 32]).await.unwrap().is_none());
    // Expired states are swept by a later insert.
    assert!(s.insert_oauth_state(&oauth_state(p, 8, 100, 200), 100).await.unwrap());
    assert!(s.insert_oauth_state(&oauth_state(p, 9, 300, 400), 100).await.unwrap());
    assert!(s.take_oauth_state(&[8; 32]).await.unwrap().is_none());
    assert!(s.take_oauth_state(&[9; 32]).await.unwrap() == Some(oauth_state(p, 9, 300, 400)));
}

pub async fn pending_oauth_states_are_bounded_under_concurrency(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    let inserted = wins(12, |i| {
        let (s, st) = (s.clone(), oauth_state(p, 40 + i as u8, 1_000, 2_000));
        async move { s.insert_oauth_state(&st, 5).await.unwrap() }
    })
    .await;
    assert_eq!(inserted, 5, "concurrent starts stop at the bound");
    assert!(!s.insert_oauth_state(&oauth_state(p, 59, 1_500, 2_500), 5).await.unwrap());
    // Another project has a bound of its own.
    let other = ProjectId::generate();
    s.create_project(&Project { id: other.clone(), name: "o".into(), created_ms: 1 }).await.unwrap();
    assert!(s.insert_oauth_state(&oauth_state(&other, 58, 1_500, 2_500), 5).await.unwrap());
    assert!(
        s.insert_oauth_state(&oauth_state(p, 60, 2_500, 3_000), 5).await.unwrap(),
        "expired ones free it"
    );
}

pub async fn auth_codes_are_usable_once(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    let u = user("coder");
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    let code = AuthCode {
        code_hash: [3; 32],
        project_id: p.clone(),
        user_id: u.user_id.clone(),
        first_seen: true,
        amr: "oauth".into(),
        created_ms: 1,
        expires_ms: 2,
    };
    s.insert_auth_code(&code).await.unwrap();
    let takes: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.take_auth_code(&[3; 32]).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for t in takes {
        got.extend(t.await.unwrap());
    }
    assert_eq!(got, vec![code]);
    assert_eq!(s.take_auth_code(&[4; 32]).await.unwrap(), None);
}

pub async fn complete_sign_in_creates_a_new_user_with_its_identity_and_token(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let google = provider("google");
    let mut new = user("sso@example.com");
    new.email = Some("SSO@Example.com".into());
    new.verified_email = true;
    let sign_in = SignIn {
        user: SignInUser::New(Box::new(new.clone())),
        provider_user_id: "g-1".into(),
        token: sealed(&google, 4),
    };
    assert_eq!(s.complete_sign_in(p, &google, &sign_in).await.unwrap(), new.user_id);
    assert_eq!(s.find_identity(p, &google, "g-1").await.unwrap(), Some(new.user_id.clone()));
    assert_eq!(s.find_identity(p, &provider("github"), "g-1").await.unwrap(), None);
    assert_eq!(s.find_user_by_verified_email(p, "sso@EXAMPLE.com").await.unwrap(), Some(new.user_id.clone()));
    let loaded = s.get_user(p, &login("sso@example.com")).await.unwrap().unwrap();
    assert_eq!(loaded.oauth_providers, ["google"]);
    assert_eq!(token_of(s.get_token(p, &login("sso@example.com"), &google).await.unwrap()).version, 1);

    // A new user whose login id is taken: nothing is written.
    let mut twin = user("sso@example.com");
    twin.email = Some("twin@example.com".into());
    twin.verified_email = true;
    let taken = SignIn {
        user: SignInUser::New(Box::new(twin.clone())),
        provider_user_id: "g-2".into(),
        token: sealed(&google, 5),
    };
    let err = s.complete_sign_in(p, &google, &taken).await.unwrap_err();
    assert!(matches!(err, Error::UserAlreadyExists(_)), "{err:?}");
    assert_eq!(s.find_identity(p, &google, "g-2").await.unwrap(), None);
    assert_eq!(s.get_user(p, &by_id(&twin.user_id)).await.unwrap(), None);
    assert_eq!(s.find_user_by_verified_email(p, "twin@example.com").await.unwrap(), None);
    assert_eq!(
        token_of(s.get_token(p, &login("sso@example.com"), &google).await.unwrap()).access_token,
        [4; 40]
    );
}

pub async fn complete_sign_in_of_an_existing_user_replaces_its_token(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let google = provider("google");
    let mut known = user("known@example.com");
    known.email = Some("known@example.com".into());
    known.verified_email = false;
    s.create_users(p, std::slice::from_ref(&known)).await.unwrap();
    assert_eq!(s.find_user_by_verified_email(p, "known@example.com").await.unwrap(), None, "not verified");
    let sign_in = SignIn {
        user: SignInUser::Existing(known.user_id.clone()),
        provider_user_id: "g-1".into(),
        token: sealed(&google, 4),
    };
    assert_eq!(s.complete_sign_in(p, &google, &sign_in).await.unwrap(), known.user_id);
    assert_eq!(s.find_identity(p, &google, "g-1").await.unwrap(), Some(known.user_id.clone()));
    let again = SignIn { token: sealed(&google, 6), ..sign_in.clone() };
    s.complete_sign_in(p, &google, &again).await.unwrap();
    let token = token_of(s.get_token(p, &login("known@example.com"), &google).await.unwrap());
    assert_eq!((token.version, token.access_token), (2, vec![6; 40]));
    let ghost = SignIn { user: SignInUser::Existing(UserId::generate()), ..sign_in.clone() };
    let err = s.complete_sign_in(p, &google, &ghost).await.unwrap_err();
    assert!(matches!(err, Error::UserNotFound), "{err:?}");
}

pub async fn sessions_revoke_and_advance_by_compare_and_swap(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    let u = user("rotating@example.com");
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    let first = session(p, "S1", &u.user_id);
    s.insert_session(&first).await.unwrap();
    let err = s.insert_session(&session(p, "S2", &UserId::generate())).await.unwrap_err();
    assert!(matches!(err, Error::UserNotFound), "{err:?}");
    assert_eq!(s.get_session(p, "S1").await.unwrap(), Some(first.clone()));
    assert_eq!(s.get_session(p, "S2").await.unwrap(), None);
    assert_eq!(s.get_session(&ProjectId::generate(), "S1").await.unwrap(), None);

    let advanced = wins(8, |_| {
        let (s, p) = (s.clone(), p.clone());
        async move { s.advance_session(&p, "S1", 0).await.unwrap() }
    })
    .await;
    assert_eq!(advanced, 1, "of concurrent advances from one generation exactly one wins");
    assert_eq!(s.get_session(p, "S1").await.unwrap().unwrap().generation, 1);
    assert!(!s.advance_session(p, "S1", 0).await.unwrap());
    assert!(s.advance_session(p, "S1", 1).await.unwrap());
    assert!(s.revoke_session(p, "S1", 5).await.unwrap());
    assert!(!s.advance_session(p, "S1", 2).await.unwrap(), "a revoked session does not rotate");
    assert!(!s.revoke_session(p, "S1", 6).await.unwrap(), "revoked once");
    assert_eq!(s.get_session(p, "S1").await.unwrap().unwrap().revoked_ms, Some(5));
    assert!(!s.revoke_session(p, "nope", 6).await.unwrap());

    let other = user("other");
    s.create_users(p, std::slice::from_ref(&other)).await.unwrap();
    s.insert_session(&session(p, "S3", &u.user_id)).await.unwrap();
    s.insert_session(&session(p, "S4", &u.user_id)).await.unwrap();
    s.insert_session(&session(p, "S5", &other.user_id)).await.unwrap();
    assert_eq!(s.revoke_user_sessions(p, &u.user_id, 7).await.unwrap(), 2, "the revoked one is not counted");
    assert_eq!(s.get_session(p, "S3").await.unwrap().unwrap().revoked_ms, Some(7));
    assert_eq!(s.get_session(p, "S5").await.unwrap().unwrap().revoked_ms, None);
}

pub async fn delete_user_ends_its_sessions_and_identities(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let google = provider("google");
    let new = user("sso@example.com");
    let sign_in = SignIn {
        user: SignInUser::New(Box::new(new.clone())),
        provider_user_id: "g-1".into(),
        token: sealed(&google, 4),
    };
    s.complete_sign_in(p, &google, &sign_in).await.unwrap();
    s.insert_session(&session(p, "S1", &new.user_id)).await.unwrap();
    assert!(s.delete_user(p, &new.user_id).await.unwrap());
    assert_eq!(s.get_session(p, "S1").await.unwrap(), None);
    assert_eq!(s.find_identity(p, &google, "g-1").await.unwrap(), None);
    // The identity is free for a new user.
    let next = user("sso@example.com");
    let sign_in = SignIn { user: SignInUser::New(Box::new(next.clone())), ..sign_in };
    assert_eq!(s.complete_sign_in(p, &google, &sign_in).await.unwrap(), next.user_id);
}

pub async fn signing_keys_retire_all_but_the_active_one(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let key = SigningKeyRecord {
        project_id: p.clone(),
        kid: "k1".into(),
        alg: "ES256".into(),
        private_key: vec![1],
        public_jwk: "{}".into(),
        created_ms: 1,
        retired_ms: None,
    };
    s.insert_signing_key(&key).await.unwrap();
    s.insert_signing_key(&SigningKeyRecord { kid: "k2".into(), created_ms: 2, ..key.clone() }).await.unwrap();
    s.retire_signing_keys_except(p, "k2", 9).await.unwrap();
    s.insert_signing_key(&SigningKeyRecord { kid: "k3".into(), created_ms: 3, ..key.clone() }).await.unwrap();
    s.retire_signing_keys_except(p, "k3", 12).await.unwrap();
    let mut keys: Vec<(String, Option<i64>)> =
        s.list_signing_keys(p).await.unwrap().into_iter().map(|k| (k.kid, k.retired_ms)).collect();
    keys.sort();
    assert_eq!(keys, [("k1".into(), Some(9)), ("k2".into(), Some(12)), ("k3".into(), None)], "retired once");
    assert!(s.list_signing_keys(&ProjectId::generate()).await.unwrap().is_empty());
}

pub async fn auth_settings_default_and_round_trip(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let defaults = ProjectAuthSettings { redirect_urls: vec![], link_by_verified_email: true };
    assert_eq!(s.get_auth_settings(p).await.unwrap(), defaults);
    let settings = ProjectAuthSettings {
        redirect_urls: vec!["http://127.0.0.1/cb".into()],
        link_by_verified_email: false,
    };
    s.set_auth_settings(p, &settings).await.unwrap();
    assert_eq!(s.get_auth_settings(p).await.unwrap(), settings);
    let err = s.get_auth_settings(&ProjectId::generate()).await.unwrap_err();
    assert!(matches!(err, Error::ProjectNotFound(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Outbound apps and their tokens.

fn app(name: &str, display: &str) -> ProviderConfig {
    ProviderConfig {
        name: provider(name),
        client_id: String::new(),
        client_secret: None,
        issuer: None,
        authorization_endpoint: None,
        token_endpoint: String::new(),
        userinfo_endpoint: None,
        jwks_uri: None,
        scopes: vec![],
        auth_method: ClientAuthMethod::ClientSecretPost,
        created_ms: 1,
        updated_ms: 1,
        display_name: Some(display.into()),
        app: Some(AppSettings { description: "d".into(), pkce: true, ..Default::default() }),
    }
}

fn outbound(
    id: &str,
    app: &str,
    owner: TokenOwner,
    tenant: &str,
    scopes: &[&str],
    at_ms: i64,
) -> SealedOutboundToken {
    SealedOutboundToken {
        id: id.into(),
        app_id: provider(app),
        owner,
        tenant_id: tenant.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        access_token: Some(vec![1, 2]),
        refresh_token: Some(vec![3]),
        access_token_type: "Bearer".into(),
        expiration: 100,
        granted_by: "g".into(),
        external_identifier: "x".into(),
        token_sub: String::new(),
        last_refresh_ms: 0,
        last_refresh_error: String::new(),
        created_ms: at_ms,
        updated_ms: at_ms,
        version: 1,
        reauth_required: false,
    }
}

pub async fn outbound_apps_keep_their_fields_and_names_are_unique(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let docs = app("docs", "Docs");
    s.put_provider(p, &docs).await.unwrap();
    assert_eq!(s.get_provider(p, &docs.name).await.unwrap(), Some(docs.clone()));
    let err = s.put_provider(p, &app("docs2", "Docs")).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(s.get_provider(p, &provider("docs2")).await.unwrap(), None, "nothing written");
    // Plain providers (no name) do not collide with each other, and other projects are apart.
    let plain = ProviderConfig { display_name: None, app: None, ..app("plain", "") };
    s.put_provider(p, &plain).await.unwrap();
    s.put_provider(p, &ProviderConfig { name: provider("plain2"), ..plain.clone() }).await.unwrap();
    assert_eq!(s.get_provider(p, &provider("plain")).await.unwrap(), Some(plain));
    let other = ProjectId::generate();
    s.create_project(&Project { id: other.clone(), name: "o".into(), created_ms: 1 }).await.unwrap();
    s.put_provider(&other, &app("docs", "Docs")).await.unwrap();
}

pub async fn outbound_tokens_upsert_by_scope_set_and_list_newest_first(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    s.put_provider(p, &app("docs", "Docs")).await.unwrap();
    let u = user("ob");
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    let owner = TokenOwner::User(u.user_id.clone());
    let read = outbound("T1", "docs", owner.clone(), "", &["read"], 10);
    assert_eq!(s.put_outbound_token(p, &read, 10).await.unwrap().as_deref(), Some("T1"));
    let write = outbound("T2", "docs", owner.clone(), "", &["read", "write"], 20);
    assert_eq!(s.put_outbound_token(p, &write, 10).await.unwrap().as_deref(), Some("T2"));
    let in_tenant = outbound("T3", "docs", owner.clone(), "t1", &["read"], 30);
    assert_eq!(s.put_outbound_token(p, &in_tenant, 10).await.unwrap().as_deref(), Some("T3"));
    let docs = provider("docs");
    let ids = |v: Vec<SealedOutboundToken>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_outbound_tokens(p, &docs, &owner, None, 10).await.unwrap()), ["T3", "T2", "T1"]);
    assert_eq!(ids(s.list_outbound_tokens(p, &docs, &owner, Some(""), 10).await.unwrap()), ["T2", "T1"]);
    assert_eq!(ids(s.list_outbound_tokens(p, &docs, &owner, Some("t1"), 10).await.unwrap()), ["T3"]);
    assert_eq!(ids(s.list_outbound_tokens(p, &docs, &owner, None, 1).await.unwrap()), ["T3"]);
    // The same scope set replaces the token: its id stays, its version moves on.
    let again = SealedOutboundToken {
        access_token: Some(vec![9]),
        ..outbound("T9", "docs", owner.clone(), "", &["read"], 40)
    };
    assert_eq!(s.put_outbound_token(p, &again, 10).await.unwrap().as_deref(), Some("T1"));
    let t1 = s.get_outbound_token(p, "T1").await.unwrap().unwrap();
    assert_eq!(
        (t1.access_token.clone(), t1.version, t1.updated_ms, t1.created_ms),
        (Some(vec![9]), 2, 40, 10)
    );
    assert_eq!(t1.scopes, ["read"]);
    assert_eq!(t1.owner, owner);
    assert_eq!(s.get_outbound_token(p, "T9").await.unwrap(), None);
    // The bound counts other scope sets of the same (app, owner, tenant).
    assert_eq!(
        s.put_outbound_token(p, &outbound("T4", "docs", owner.clone(), "", &["admin"], 50), 2).await.unwrap(),
        None
    );
    assert!(s
        .put_outbound_token(p, &outbound("T5", "docs", owner.clone(), "", &["read"], 50), 2)
        .await
        .unwrap()
        .is_some());
    // Another project sees nothing.
    assert_eq!(s.get_outbound_token(&ProjectId::generate(), "T1").await.unwrap(), None);
    // Tenant tokens.
    let org = TokenOwner::Tenant("acme".into());
    s.put_outbound_token(p, &outbound("T6", "docs", org.clone(), "", &[], 60), 10).await.unwrap();
    assert_eq!(ids(s.list_outbound_tokens(p, &docs, &org, None, 10).await.unwrap()), ["T6"]);
    // Within one millisecond, the later write is the newer (by updated time, not by id).
    for id in ["T8", "T7"] {
        s.put_outbound_token(p, &outbound(id, "docs", org.clone(), "", &[id], 60), 10).await.unwrap();
    }
    assert_eq!(ids(s.list_outbound_tokens(p, &docs, &org, None, 10).await.unwrap()), ["T7", "T8", "T6"]);
    s.put_outbound_token(p, &outbound("T9", "docs", org.clone(), "", &[], 60), 10).await.unwrap();
    assert_eq!(
        ids(s.list_outbound_tokens(p, &docs, &org, None, 1).await.unwrap()),
        ["T6"],
        "replaced: newest"
    );
}

pub async fn outbound_token_refresh_and_reauth_flag_are_compare_and_swap(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    s.put_provider(p, &app("docs", "Docs")).await.unwrap();
    let org = TokenOwner::Tenant("acme".into());
    s.put_outbound_token(p, &outbound("R1", "docs", org.clone(), "", &["a"], 1), 10).await.unwrap();
    let refreshed = SealedOutboundToken {
        access_token: Some(vec![7]),
        expiration: 500,
        last_refresh_ms: 5,
        updated_ms: 5,
        ..outbound("R1", "docs", org.clone(), "", &["a"], 1)
    };
    assert!(s.replace_refreshed_outbound_token(p, &refreshed, 1).await.unwrap());
    assert!(!s.replace_refreshed_outbound_token(p, &refreshed, 1).await.unwrap(), "stale version");
    let now = s.get_outbound_token(p, "R1").await.unwrap().unwrap();
    assert_eq!(
        (now.access_token, now.expiration, now.last_refresh_ms, now.version),
        (Some(vec![7]), 500, 5, 2)
    );
    assert!(!s.flag_outbound_reauth(p, "R1", 1, "invalid_grant", 6).await.unwrap(), "stale version");
    assert!(s.flag_outbound_reauth(p, "R1", 2, "invalid_grant", 6).await.unwrap());
    let flagged = s.get_outbound_token(p, "R1").await.unwrap().unwrap();
    assert!(flagged.reauth_required);
    assert_eq!((flagged.last_refresh_error.as_str(), flagged.version), ("invalid_grant", 3));
    // A new upload of the same scope set clears the flag.
    s.put_outbound_token(p, &outbound("R2", "docs", org, "", &["a"], 9), 10).await.unwrap();
    let cleared = s.get_outbound_token(p, "R1").await.unwrap().unwrap();
    assert!(!cleared.reauth_required);
    assert_eq!(cleared.last_refresh_error, "");
}

pub async fn outbound_tokens_go_with_their_app_user_and_tenant(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    for (id, name) in [("docs", "Docs"), ("mail", "Mail")] {
        s.put_provider(p, &app(id, name)).await.unwrap();
    }
    let (a, b) = (user("oa"), user("ob"));
    s.create_users(p, &[a.clone(), b.clone()]).await.unwrap();
    let (ua, ub) = (TokenOwner::User(a.user_id.clone()), TokenOwner::User(b.user_id.clone()));
    for (id, app_id, owner, tenant) in [
        ("D1", "docs", &ua, ""),
        ("D2", "docs", &ub, "t1"),
        ("M1", "mail", &ua, "t1"),
        ("M2", "mail", &ub, ""),
    ] {
        s.put_outbound_token(p, &outbound(id, app_id, owner.clone(), tenant, &[], 1), 10).await.unwrap();
    }
    s.put_outbound_token(p, &outbound("O1", "docs", TokenOwner::Tenant("t1".into()), "", &[], 1), 10)
        .await
        .unwrap();
    s.put_outbound_token(p, &outbound("O2", "mail", TokenOwner::Tenant("acme".into()), "", &[], 1), 10)
        .await
        .unwrap();

    assert_eq!(s.apps_with_user_token(p, &a.user_id, None).await.unwrap(), ["docs", "mail"]);
    assert_eq!(s.apps_with_user_token(p, &a.user_id, Some("t1")).await.unwrap(), ["mail"]);
    let version = s.get_outbound_token(p, "M1").await.unwrap().unwrap().version;
    s.flag_outbound_reauth(p, "M1", version, "invalid_grant", 2).await.unwrap();
    assert_eq!(
        s.apps_with_user_token(p, &a.user_id, None).await.unwrap(),
        ["docs"],
        "flagged tokens are not valid"
    );

    // By app and user, by app only (tenant tokens stay), by id.
    assert_eq!(s.delete_user_outbound_tokens(p, Some(&provider("docs")), Some(&b.user_id)).await.unwrap(), 1);
    assert!(s.get_outbound_token(p, "D1").await.unwrap().is_some());
    assert_eq!(s.delete_user_outbound_tokens(p, Some(&provider("docs")), None).await.unwrap(), 1);
    assert!(s.get_outbound_token(p, "O1").await.unwrap().is_some(), "tenant tokens are not user tokens");
    assert!(s.delete_outbound_token(p, "O1").await.unwrap());
    assert!(!s.delete_outbound_token(p, "O1").await.unwrap());
    // Deleting the user, the tenant or the app deletes their tokens.
    assert!(s.delete_user(p, &a.user_id).await.unwrap());
    assert_eq!(s.get_outbound_token(p, "M1").await.unwrap(), None);
    assert!(s.delete_tenant(p, "acme", NOW_MS).await.unwrap());
    assert_eq!(s.get_outbound_token(p, "O2").await.unwrap(), None);
    assert!(s.get_outbound_token(p, "M2").await.unwrap().is_some());
    assert!(s.delete_provider(p, &provider("mail")).await.unwrap());
    assert_eq!(s.get_outbound_token(p, "M2").await.unwrap(), None);
    assert_eq!(s.delete_user_outbound_tokens(p, None, Some(&b.user_id)).await.unwrap(), 0);
}

pub async fn outbound_batches_are_written_whole_or_not_at_all(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    s.put_provider(p, &app("docs", "Docs")).await.unwrap();
    let (a, b) = (user("ba"), user("bb"));
    s.create_users(p, &[a.clone(), b.clone()]).await.unwrap();
    let ids: Vec<String> = vec![a.user_id.to_string(), "U-nobody".into(), b.user_id.to_string()];
    let known = s.existing_user_ids(p, &ids).await.unwrap();
    assert_eq!(known.len(), 2);
    assert!(known.contains(a.user_id.as_str()) && known.contains(b.user_id.as_str()));
    assert!(s.existing_user_ids(&ProjectId::generate(), &ids).await.unwrap().is_empty());

    let (ua, ub, org) = (
        TokenOwner::User(a.user_id.clone()),
        TokenOwner::User(b.user_id.clone()),
        TokenOwner::Tenant("acme".into()),
    );
    s.put_outbound_token(p, &outbound("OLD", "docs", ua.clone(), "", &["read"], 1), 10).await.unwrap();
    let batch = vec![
        SealedOutboundToken {
            access_token: Some(vec![7]),
            ..outbound("B1", "docs", ua.clone(), "", &["read"], 5)
        },
        outbound("B2", "docs", ub.clone(), "t1", &["read", "write"], 5),
        SealedOutboundToken { access_token: None, ..outbound("B3", "docs", org.clone(), "", &[], 5) },
    ];
    assert_eq!(s.put_outbound_tokens(p, batch, 10).await.unwrap(), vec![]);
    let old = s.get_outbound_token(p, "OLD").await.unwrap().unwrap();
    assert_eq!((old.access_token, old.version, old.created_ms), (Some(vec![7]), 2, 1), "replaced in place");
    assert_eq!(s.get_outbound_token(p, "B1").await.unwrap(), None);
    assert_eq!(s.get_outbound_token(p, "B2").await.unwrap().unwrap().tenant_id, "t1");
    assert_eq!(s.get_outbound_token(p, "B3").await.unwrap().unwrap().access_token, None);

    // Over the per-owner bound: nothing of the batch is written, the full slot is answered.
    let over = vec![
        outbound("C1", "docs", ub.clone(), "", &["x"], 9),
        outbound("C2", "docs", ua.clone(), "", &["y"], 9),
        outbound("C3", "docs", ua.clone(), "", &["z"], 9),
    ];
    let full = s.put_outbound_tokens(p, over, 2).await.unwrap();
    assert_eq!(
        full,
        vec![OverfullSlot { app_id: provider("docs"), owner: ua.clone(), tenant_id: String::new() }]
    );
    for id in ["C1", "C2", "C3"] {
        assert_eq!(s.get_outbound_token(p, id).await.unwrap(), None, "{id} rolled back");
    }
    // Within one batch (and one millisecond), the later item of an owner is the newer, after
    // everything stored before.
    let ordered = vec![
        outbound("D2", "docs", org.clone(), "", &["two"], 5),
        outbound("D1", "docs", org.clone(), "", &["one"], 5),
    ];
    assert_eq!(s.put_outbound_tokens(p, ordered, 10).await.unwrap(), vec![]);
    let newest: Vec<String> = s
        .list_outbound_tokens(p, &provider("docs"), &org, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(newest, ["D1", "D2", "B3"]);
    // Deleting the user deletes what the batch stored for it.
    s.delete_user(p, &b.user_id).await.unwrap();
    assert_eq!(s.get_outbound_token(p, "B2").await.unwrap(), None);
}

pub async fn concurrent_outbound_batches_in_opposite_orders_both_succeed(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    s.put_provider(p, &app("docs", "Docs")).await.unwrap();
    let users: Vec<User> = (0..1000).map(|i| user(&format!("cb{i}"))).collect();
    s.create_users(p, &users).await.unwrap();
    for round in 0..3 {
        let ok =
            wins(2, |reversed| {
                let (s, p) = (s.clone(), p.clone());
                let mut batch: Vec<SealedOutboundToken> = users
                    .iter()
                    .map(|u| {
                        outbound(
                            &format!("R{round}-{reversed}-{}", u.user_id),
                            "docs",
                            TokenOwner::User(u.user_id.clone()),
                            "",
                            &["s"],
                            1,
                        )
                    })
                    .collect();
                if reversed == 1 {
                    batch.reverse();
                }
                async move {
                    s.put_outbound_tokens(&p, batch, 10).await.map(|full| full.is_empty()).unwrap_or(false)
                }
            })
            .await;
        assert_eq!(ok, 2, "round {round}: both batches are written, one after the other");
    }
}

pub async fn pending_connects_keep_their_intent(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let intent = ConnectIntent {
        user_id: UserId::generate(),
        tenant_id: "t1".into(),
        tenant_level: true,
        scopes: vec!["a".into(), "b".into()],
        external_identifier: "ext".into(),
    };
    let state = OAuthState { connect: Some(intent), ..oauth_state(p, 77, 100, 200) };
    assert!(s.insert_oauth_state(&state, 100).await.unwrap());
    assert!(s.take_oauth_state(&[77; 32]).await.unwrap() == Some(state), "the intent round-trips");
}

// ---------------------------------------------------------------------------------------------
// The bulk import path.

pub async fn import_users_writes_users_with_tokens_whole_or_not_at_all(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    s.put_provider(p, &app("docs", "Docs")).await.unwrap();
    let google = provider("google");
    let imported = |login: &str, id: &str| {
        let mut u =
            NewUser { login_id: login.into(), name: Some(format!("Name {login}")), ..Default::default() }
                .into_user(UserId::parse(id).unwrap(), 1_000)
                .unwrap();
        u.tenants = vec![member("t1", &["viewer"])];
        u.role_names = vec!["admin".into()];
        u.custom_attributes.insert("plan".into(), json!("pro"));
        u.oauth_providers = vec!["google".into()];
        let owner = TokenOwner::User(u.user_id.clone());
        ImportedUser {
            outbound_tokens: vec![outbound(&format!("O{id}"), "docs", owner, "", &["read"], 1_000)],
            tokens: vec![sealed(&google, 7)],
            user: u,
        }
    };
    let before = s.taken_user_keys(p, &["Uimp1".into()], &["imp1@example.com".into()]).await.unwrap();
    assert_eq!(before, Default::default(), "nothing taken in a project without users");
    s.import_users(p, vec![imported("imp1@example.com", "Uimp1"), imported("imp2", "Uimp2")]).await.unwrap();

    // Loaded like any user: enriched, findable by login id, free text and tenant; tokens readable.
    let got = s.get_user(p, &login("imp1@example.com")).await.unwrap().unwrap();
    assert_eq!(got.user_id.as_str(), "Uimp1");
    assert_eq!(
        (got.tenants[0].tenant_name.as_str(), got.tenants[0].permissions.clone()),
        ("Tenant One", vec!["read".to_owned()])
    );
    assert_eq!(got.oauth_providers, ["google"]);
    assert_eq!(got.custom_attributes["plan"], json!("pro"));
    let found = find(s, p, Find::Text("name imp2")).await;
    assert_eq!(
        found.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(),
        ["Uimp2"],
        "free-text index filled"
    );
    assert_eq!(find(s, p, Find::Tenant("t1")).await.len(), 2);
    let token = token_of(s.get_token(p, &by_id(&got.user_id), &google).await.unwrap());
    assert_eq!((token.access_token, token.version), (vec![7; 40], 1));
    let owner = TokenOwner::User(got.user_id.clone());
    let ob = s.list_outbound_tokens(p, &provider("docs"), &owner, None, 10).await.unwrap();
    assert_eq!((ob.len(), ob[0].id.as_str(), ob[0].version), (1, "OUimp1", 1));

    let taken = s
        .taken_user_keys(p, &["Uimp1".into(), "Unew".into()], &["imp2".into(), "new@example.com".into()])
        .await
        .unwrap();
    assert_eq!(taken.user_ids, HashSet::from(["Uimp1".to_owned()]));
    assert_eq!(taken.login_ids, HashSet::from(["imp2".to_owned()]));

    // A taken login id, a taken user id, a login id twice in the batch, an unknown tenant: an
    // error, and nothing of the batch is written.
    let fresh = imported("imp3", "Uimp3");
    for (bad, want) in [
        (vec![fresh.clone(), imported("imp1@example.com", "Uimp4")], "imp1@example.com"),
        (vec![fresh.clone(), imported("imp5", "Uimp1")], "Uimp1"),
        (vec![fresh.clone(), imported("imp3", "Uimp6")], "imp3"),
    ] {
        let err = s.import_users(p, bad).await.unwrap_err();
        assert!(matches!(&err, Error::UserAlreadyExists(m) if m.contains(want)), "{err:?}");
        assert!(s.get_user(p, &login("imp3")).await.unwrap().is_none(), "nothing written");
    }
    let mut stray = imported("imp7", "Uimp7");
    stray.user.tenants = vec![member("nope", &[])];
    let err = s.import_users(p, vec![fresh.clone(), stray]).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { field: "userTenants", .. }), "{err:?}");
    assert!(s.get_user(p, &login("imp3")).await.unwrap().is_none(), "nothing written");
    s.import_users(p, vec![fresh]).await.unwrap();
    assert!(s.get_user(p, &login("imp3")).await.unwrap().is_some());
}

// ---------------------------------------------------------------------------------------------
// Refresh locks (cross-process exclusion is backend-specific and tested by the backend).

/// Awaits `fut`, failing the test if it hangs: a hang is the failure looked for, the bound only
/// keeps a broken backend from stalling the run.
async fn within<T>(fut: impl std::future::Future<Output = Result<T>>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut).await.expect("no answer within 10 s").unwrap()
}

pub async fn refresh_locks_are_released_on_drop(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let (user_id, google, github) = (UserId::generate(), provider("google"), provider("github"));
    let held = within(s.refresh_lock(p, &user_id, &google)).await;
    let other_key = within(s.refresh_lock(p, &user_id, &github)).await;
    drop(held);
    drop(other_key);
    drop(within(s.refresh_lock(p, &user_id, &google)).await);
}

// ---------------------------------------------------------------------------------------------
// Access keys.

fn access_key(p: &ProjectId, id: &str, created_ms: i64) -> AccessKey {
    AccessKey {
        id: id.to_owned(),
        project_id: p.clone(),
        name: format!("key {id}"),
        description: "d".into(),
        role_names: vec!["admin".into()],
        key_tenants: vec![KeyTenant {
            tenant_id: "t1".into(),
            role_names: vec!["viewer".into()],
            ..KeyTenant::default()
        }],
        active: true,
        expire_time: 4_102_444_800,
        created_by: "creator".into(),
        bound_user_id: String::new(),
        custom_claims: json!({"team": "ops", "n": 1}).as_object().unwrap().clone(),
        custom_attributes: json!({"env": "prod"}).as_object().unwrap().clone(),
        permitted_ips: vec!["10.0.0.0/8".into(), "::1".into()],
        secret_hash: [id.len() as u8; 32],
        created_ms,
        updated_ms: created_ms,
    }
}

pub async fn access_keys_round_trip_update_rotate_and_batches(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&*f.store, &f.project);
    let a = access_key(p, "Ka", 10);
    let b = access_key(p, "Kbb", 20);
    let c = access_key(p, "Kccc", 30);
    for k in [&b, &a, &c] {
        assert!(s.insert_access_key(k, 100).await.unwrap());
    }
    assert_eq!(s.get_access_key(p, "Ka").await.unwrap(), Some(a.clone()), "every field round-trips");
    assert!(
        matches!(s.insert_access_key(&a, 100).await.unwrap_err(), Error::AlreadyExists(_)),
        "an id is unique in its project"
    );
    let other = ProjectId::generate();
    s.create_project(&Project { id: other.clone(), name: "o".into(), created_ms: 1 }).await.unwrap();
    assert_eq!(s.get_access_key(&other, "Ka").await.unwrap(), None, "another project's key is not found");
    let ids: Vec<String> = s.list_access_keys(p).await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(ids, ["Ka", "Kbb", "Kccc"], "oldest first");
    assert!(s.list_access_keys(&other).await.unwrap().is_empty());

    // Update changes the descriptive fields only.
    let mut changed = a.clone();
    changed.name = "renamed".into();
    changed.description = String::new();
    changed.role_names = vec![];
    changed.key_tenants = vec![];
    changed.custom_claims = serde_json::Map::new();
    changed.custom_attributes = json!({"env": "dev"}).as_object().unwrap().clone();
    changed.permitted_ips = vec![];
    changed.updated_ms = 50;
    changed.active = false;
    changed.expire_time = 1;
    changed.secret_hash = [9; 32];
    assert!(s.update_access_key(p, &changed).await.unwrap());
    let stored = s.get_access_key(p, "Ka").await.unwrap().unwrap();
    assert_eq!(
        stored,
        AccessKey { active: true, expire_time: a.expire_time, secret_hash: a.secret_hash, ..changed.clone() }
    );
    assert!(!s.update_access_key(&other, &changed).await.unwrap(), "another project's key is not updated");

    assert!(s.replace_access_key_secret(p, "Kbb", &[7; 32], 60).await.unwrap());
    let rotated = s.get_access_key(p, "Kbb").await.unwrap().unwrap();
    assert_eq!((rotated.secret_hash, rotated.updated_ms), ([7; 32], 60));
    assert!(!s.replace_access_key_secret(p, "Knope", &[7; 32], 60).await.unwrap());

    // Batches are all or nothing.
    let both = vec!["Ka".to_owned(), "Kbb".to_owned()];
    let with_unknown = vec!["Ka".to_owned(), "Knope".to_owned()];
    assert_eq!(s.set_access_keys_active(p, &with_unknown, false, 70).await.unwrap(), ["Knope"]);
    assert!(s.get_access_key(p, "Ka").await.unwrap().unwrap().active, "nothing written");
    assert!(s.set_access_keys_active(p, &both, false, 70).await.unwrap().is_empty());
    for id in &both {
        assert!(!s.get_access_key(p, id).await.unwrap().unwrap().active);
    }
    assert!(s.get_access_key(p, "Kccc").await.unwrap().unwrap().active);
    assert_eq!(s.set_access_keys_active(&other, &both, true, 80).await.unwrap(), both, "other project");
    assert!(s.set_access_keys_active(p, &both[..1], true, 80).await.unwrap().is_empty());
    assert!(s.get_access_key(p, "Ka").await.unwrap().unwrap().active);

    assert_eq!(s.delete_access_keys(p, &with_unknown).await.unwrap(), ["Knope"]);
    assert!(s.get_access_key(p, "Ka").await.unwrap().is_some(), "nothing deleted");
    assert!(s.delete_access_keys(p, &both).await.unwrap().is_empty());
    let ids: Vec<String> = s.list_access_keys(p).await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(ids, ["Kccc"]);
}

pub async fn access_keys_per_project_are_bounded_under_concurrency(backend: TestStore) {
    let f = directory(backend).await;
    let (s, p) = (&f.store, &f.project);
    let inserted = wins(12, |i| {
        let (s, k) = (s.clone(), access_key(p, &format!("K{i}"), i as i64));
        async move { s.insert_access_key(&k, 5).await.unwrap() }
    })
    .await;
    assert_eq!(inserted, 5, "concurrent creates stop at the bound");
    assert_eq!(s.list_access_keys(p).await.unwrap().len(), 5);
    let other = ProjectId::generate();
    s.create_project(&Project { id: other.clone(), name: "o".into(), created_ms: 1 }).await.unwrap();
    assert!(s.insert_access_key(&access_key(&other, "K1", 1), 5).await.unwrap(), "a bound per project");
}

/// Expands one `#[tokio::test]` per case of the contract, each on a fresh store from
/// `$backend`, an `async fn() -> Option<TestStore>` (None: skip).
#[macro_export]
macro_rules! store_contract_tests {
    ($backend:path) => {
        $crate::store_contract_tests!(@cases $backend;
            projects_create_get_and_list,
            management_keys_insert_get_list_and_revoke,
            management_keys_update_name_and_expiry,
            audit_records_round_trip_and_every_filter_applies,
            audit_batches_of_a_thousand_and_more_are_stored_whole,
            audit_purge_deletes_only_older_records,
            audit_writer_stores_everything_queued_by_shutdown,
            users_round_trip_every_field,
            create_users_is_all_or_nothing,
            create_users_each_keeps_the_good_ones,
            delete_user_cascades_to_login_ids_tokens_and_history,
            delete_test_users_deletes_only_test_users,
            search_filters_paging_and_total,
            search_totals_stay_exact_through_creates_status_changes_and_deletes,
            search_by_custom_attributes_and_sso_apps,
            search_text_follows_concurrent_creates_renames_and_deletes,
            update_user_applies_every_change_at_once,
            update_user_refuses_unknown_references_and_writes_nothing,
            update_user_refuses_a_taken_login_id,
            concurrent_update_user_loses_no_update,
            concurrent_creates_of_one_login_id_let_exactly_one_win,
            concurrent_login_id_changes_to_one_value_let_exactly_one_win,
            concurrent_batches_in_opposite_orders_fail_cleanly,
            directory_references_are_checked,
            tenants_attributes_and_permissions_update_and_list,
            permission_rename_and_delete_follow_into_roles,
            role_rename_follows_on_users_except_where_a_tenant_role_shadows_it,
            role_delete_follows_on_users_except_where_a_tenant_role_shadows_it,
            tenant_delete_removes_membership_and_tenant_roles,
            login_history_is_newest_first_per_user,
            tokens_put_get_delete_and_provider_flag,
            token_refresh_and_reauth_flag_are_compare_and_swap,
            concurrent_token_refreshes_let_exactly_one_win,
            concurrent_token_writes_for_different_providers_keep_both,
            providers_put_replace_list_and_delete,
            data_keys_insert_once_and_rewrap_by_compare_and_swap,
            oauth_states_are_usable_once_and_expired_ones_swept,
            pending_oauth_states_are_bounded_under_concurrency,
            auth_codes_are_usable_once,
            complete_sign_in_creates_a_new_user_with_its_identity_and_token,
            complete_sign_in_of_an_existing_user_replaces_its_token,
            sessions_revoke_and_advance_by_compare_and_swap,
            delete_user_ends_its_sessions_and_identities,
            signing_keys_retire_all_but_the_active_one,
            auth_settings_default_and_round_trip,
            refresh_locks_are_released_on_drop,
            outbound_apps_keep_their_fields_and_names_are_unique,
            outbound_tokens_upsert_by_scope_set_and_list_newest_first,
            outbound_token_refresh_and_reauth_flag_are_compare_and_swap,
            outbound_tokens_go_with_their_app_user_and_tenant,
            outbound_batches_are_written_whole_or_not_at_all,
            concurrent_outbound_batches_in_opposite_orders_both_succeed,
            pending_connects_keep_their_intent,
            import_users_writes_users_with_tokens_whole_or_not_at_all,
            access_keys_round_trip_update_rotate_and_batches,
            access_keys_per_project_are_bounded_under_concurrency,
        );
    };
    (@cases $backend:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $case() {
                if let Some(store) = $backend().await {
                    $crate::$case(store).await;
                }
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// A case written above but missing from the macro's list would silently never run.
    #[test]
    fn every_case_is_listed_in_the_macro() {
        let source = include_str!("lib.rs");
        let (cases, rest) = source.split_once("#[macro_export]").unwrap();
        let defined: BTreeSet<&str> = cases
            .lines()
            .filter_map(|l| l.strip_prefix("pub async fn "))
            .map(|l| l.split('(').next().unwrap())
            .collect();
        let list = rest.split_once("(@cases $backend;").unwrap().1.split_once(");").unwrap().0;
        let listed: BTreeSet<&str> = list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
        assert!(defined.len() > 30, "{defined:?}");
        assert_eq!(defined, listed);
    }
}
