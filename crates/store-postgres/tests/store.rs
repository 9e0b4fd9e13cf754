//! Store conformance tests against a real PostgreSQL (a port of crates/store-sqlite/src/tests.rs,
//! plus the behaviours only a shared, concurrent database has).
//!
//! Server: `IDVAULT_TEST_PG_URL` (URL form; default `postgres://postgres@127.0.0.1:5432/test`),
//! used only to create a fresh database `idv_test_<random>` per test and to drop it afterwards.
//! When the server cannot be reached, each test prints "skipped: PostgreSQL not reachable" and
//! passes, unless `CI` is set, where it fails saying so.

// Test code may unwrap and panic: a failure is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use idvault_core::directory::{AttributeDef, AttributeType, Permission, Role, Tenant};
use idvault_core::error::Error;
use idvault_core::ids::{LoginId, ProjectId, ProviderName, UserId};
use idvault_core::project::{issue_key, Project};
use idvault_core::store::{
    AuthStore, DirectoryStore, HealthCheck, ProjectStore, RefreshLock, SignIn, SignInUser, TokenLookup,
    TokenStore, UserStore,
};
use idvault_core::user::{
    ListOp, NameParts, NewUser, RoleScope, SortBy, SortField, TenantRoleFilter, TestUserFilter, User,
    UserChange, UserPatch, UserQuery, UserRef, UserStatus, UserTenant, UserUpdate,
};
use idvault_core::vault::SealedToken;
use idvault_store_postgres::{known_schema_version, migrate, PgOptions, PgStore};
use rand::Rng;
use tokio_postgres::NoTls;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn admin_url() -> String {
    std::env::var("IDVAULT_TEST_PG_URL").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| DEFAULT_URL.into())
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    let mut out = format!("{authority}/{db}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn admin_client() -> Result<tokio_postgres::Client, String> {
    let url = admin_url();
    let connect = tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(&url, NoTls)).await;
    match connect {
        Ok(Ok((client, connection))) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        }
        Ok(Err(e)) => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            Err(text)
        }
        Err(_) => Err("connection timed out".into()),
    }
}

/// A database of its own, dropped (with any connection left to it) when this is dropped.
struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    async fn create() -> Option<TestDb> {
        let admin = match admin_client().await {
            Ok(c) => c,
            Err(e) => {
                if std::env::var_os("CI").is_some() {
                    panic!(
                        "PostgreSQL not reachable through IDVAULT_TEST_PG_URL (default {DEFAULT_URL}): {e}; \
                         the PostgreSQL store tests need a server in CI"
                    );
                }
                eprintln!("skipped: PostgreSQL not reachable ({e})");
                return None;
            }
        };
        let name = format!("idv_test_{:016x}", rand::thread_rng().gen::<u64>());
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        Some(TestDb { url: with_database(&admin_url(), &name), name })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A runtime of its own: this may run while the test's runtime is unwinding.
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(admin) = admin_client().await {
                    let _ =
                        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        });
        let _ = dropper.join();
    }
}

fn opts() -> PgOptions {
    PgOptions { pool_size: 8, connect_timeout: Duration::from_secs(5), ..PgOptions::default() }
}

struct Fixture {
    store: PgStore,
    project: ProjectId,
    // Last: dropped after the store.
    db: TestDb,
}

async fn fixture() -> Option<Fixture> {
    let db = TestDb::create().await?;
    let store = PgStore::connect(&db.url, &opts()).await.unwrap();
    let project = ProjectId::generate();
    store.create_project(&Project { id: project.clone(), name: "t".into(), created_ms: 1 }).await.unwrap();
    // The directory the tests' users refer to.
    for (id, name) in [("t1", "Tenant One"), ("acme", "Acme")] {
        store.create_tenant(&project, &tenant(id, name)).await.unwrap();
    }
    let read =
        Permission { id: "PRM1".into(), name: "read".into(), description: String::new(), created_ms: 1 };
    store.create_permission(&project, &read).await.unwrap();
    for (i, name) in ["admin", "viewer", "editor"].into_iter().enumerate() {
        let perms = if name == "viewer" { vec!["read".into()] } else { vec![] };
        store.create_role(&project, &role(&format!("ROL{i}"), name, None, perms)).await.unwrap();
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
    store.put_attribute_defs(&project, &[plan, seats]).await.unwrap();
    Some(Fixture { store, project, db })
}

/// The fixture, or return from the test when PostgreSQL is not there (outside CI).
macro_rules! fixture {
    () => {
        match fixture().await {
            Some(f) => f,
            None => return,
        }
    };
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

fn user(login: &str) -> User {
    NewUser { login_id: login.into(), ..Default::default() }.into_user(UserId::generate(), 1_000).unwrap()
}

fn update(change: UserChange) -> UserUpdate {
    UserUpdate { change, now_ms: 2_000 }
}

fn login(s: &str) -> UserRef {
    UserRef::LoginId(LoginId::parse(s).unwrap())
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

#[tokio::test(flavor = "multi_thread")]
async fn create_load_by_login_and_id_round_trips_every_field() {
    let f = fixture!();
    let mut u = user("dana@example.com");
    u.name = Some("Dana".into());
    u.given_name = Some("Dana".into());
    u.middle_name = Some("M".into());
    u.family_name = Some("Doe".into());
    u.phone = Some("+14155550123".into());
    u.verified_phone = true;
    u.picture = Some("https://example.com/p.png".into());
    u.status = UserStatus::Invited;
    u.sso_app_ids = vec!["app1".into()];
    u.role_names = vec!["admin".into()];
    u.tenants =
        vec![UserTenant { tenant_id: "t1".into(), role_names: vec!["viewer".into()], ..Default::default() }];
    u.custom_attributes.insert("plan".into(), serde_json::json!("pro"));
    u.custom_attributes.insert("seats".into(), serde_json::json!(2.5));
    u.login_ids.push("dana-alt".into());
    f.store.create_users(&f.project, std::slice::from_ref(&u)).await.unwrap();
    // Loading fills in the tenant's name and the permissions its roles grant.
    u.tenants[0].tenant_name = "Tenant One".into();
    u.tenants[0].permissions = vec!["read".into()];

    assert_eq!(f.store.get_user(&f.project, &login("dana@example.com")).await.unwrap(), Some(u.clone()));
    assert_eq!(f.store.get_user(&f.project, &login("dana-alt")).await.unwrap(), Some(u.clone()));
    assert_eq!(
        f.store.get_user(&f.project, &UserRef::UserId(u.user_id.clone())).await.unwrap(),
        Some(u.clone())
    );
    // Another project sees nothing.
    assert_eq!(f.store.get_user(&ProjectId::generate(), &login("dana@example.com")).await.unwrap(), None);
    // Bulk load keeps the order asked for, skips unknown and repeated ids.
    let other = user("other");
    f.store.create_users(&f.project, std::slice::from_ref(&other)).await.unwrap();
    let ids =
        vec![other.user_id.to_string(), "Unope".into(), u.user_id.to_string(), other.user_id.to_string()];
    let loaded = f.store.load_users(&f.project, &ids).await.unwrap();
    assert_eq!(loaded, vec![other, u]);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_login_id_fails_the_whole_batch() {
    let f = fixture!();
    f.store.create_users(&f.project, &[user("a")]).await.unwrap();
    let err = f.store.create_users(&f.project, &[user("b"), user("a")]).await.unwrap_err();
    assert!(matches!(err, Error::UserAlreadyExists(ref l) if l == "a"), "{err:?}");
    // "b" was not written: the batch is atomic.
    assert_eq!(f.store.get_user(&f.project, &login("b")).await.unwrap(), None);
    // Unknown references are refused, and nothing is written.
    let mut bad = user("c");
    bad.role_names = vec!["nope".into()];
    let err = f.store.create_users(&f.project, &[bad]).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { field: "roleNames", .. }), "{err:?}");
    let mut bad = user("c");
    bad.custom_attributes.insert("undefined".into(), serde_json::json!(1));
    assert!(matches!(
        f.store.create_users(&f.project, &[bad]).await.unwrap_err(),
        Error::Invalid { field: "customAttributes", .. }
    ));
    assert_eq!(f.store.get_user(&f.project, &login("c")).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn search_filters_paging_and_total() {
    let f = fixture!();
    let mut users = Vec::new();
    for i in 0..10 {
        let mut u = user(&format!("user{i}@example.com"));
        u.status = if i % 2 == 0 { UserStatus::Enabled } else { UserStatus::Disabled };
        if i < 3 {
            u.tenants = vec![UserTenant {
                tenant_id: "acme".into(),
                role_names: vec!["editor".into()],
                ..Default::default()
            }];
        }
        u.test = i == 9;
        users.push(u);
    }
    f.store.create_users(&f.project, &users).await.unwrap();

    let f = &f;
    let q = |q: UserQuery| async move { f.store.search_users(&f.project, &q).await.unwrap() };
    let base = UserQuery { limit: 100, ..Default::default() };

    let (all, total) = q(base.clone()).await;
    assert_eq!((all.len(), total), (9, 9), "test user excluded by default");
    let (_, total) = q(UserQuery { test: TestUserFilter::Include, ..base.clone() }).await;
    assert_eq!(total, 10);
    let (only, _) = q(UserQuery { test: TestUserFilter::Only, ..base.clone() }).await;
    assert_eq!(only.len(), 1);
    assert!(only[0].test);

    let (acme, _) = q(UserQuery { tenant_ids: vec!["acme".into()], ..base.clone() }).await;
    assert_eq!(acme.len(), 3);
    assert_eq!(acme[0].tenants[0].tenant_name, "Acme", "search results are enriched");
    let (editors, _) = q(UserQuery { role_names: vec!["editor".into()], ..base.clone() }).await;
    assert_eq!(editors.len(), 3);
    let (enabled_acme, _) =
        q(UserQuery { tenant_ids: vec!["acme".into()], statuses: vec![UserStatus::Enabled], ..base.clone() })
            .await;
    assert_eq!(enabled_acme.len(), 2, "filters combine with AND");
    let (by_email, _) = q(UserQuery { emails: vec!["USER4@example.com".into()], ..base.clone() }).await;
    assert_eq!(by_email.len(), 1, "emails match case-insensitively");
    let (by_login, _) = q(UserQuery { login_ids: vec!["user5@example.com".into()], ..base.clone() }).await;
    assert_eq!(by_login.len(), 1);
    let (by_text, _) = q(UserQuery { text: Some("user7".into()), ..base.clone() }).await;
    assert_eq!(by_text.len(), 1);
    let (by_text, _) = q(UserQuery { text: Some("USER7@EXAMPLE".into()), ..base.clone() }).await;
    assert_eq!(by_text.len(), 1, "text matches case-insensitively");
    let (short, _) = q(UserQuery { text: Some("r7".into()), ..base.clone() }).await;
    assert_eq!(short.len(), 1, "text shorter than a trigram still matches");
    let (none, _) = q(UserQuery { text: Some("%".into()), ..base.clone() }).await;
    assert!(none.is_empty(), "LIKE wildcards in text are literal");
    let (none, _) = q(UserQuery { text: Some("user_".into()), ..base.clone() }).await;
    assert!(none.is_empty(), "LIKE wildcards in text are literal");
    let (tenant_roles, _) = q(UserQuery {
        tenant_roles: vec![TenantRoleFilter {
            tenant_id: "acme".into(),
            roles: vec!["editor".into()],
            all: true,
        }],
        ..base.clone()
    })
    .await;
    assert_eq!(tenant_roles.len(), 3);
    let (created, _) = q(UserQuery { from_created_ms: Some(1_001), ..base.clone() }).await;
    assert!(created.is_empty());

    let (sorted, _) =
        q(UserQuery { sort: vec![SortBy { field: SortField::LoginId, desc: true }], ..base.clone() }).await;
    let logins: Vec<&str> = sorted.iter().map(|u| u.login_ids[0].as_str()).collect();
    let mut expected = logins.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(logins, expected);

    let mut seen = HashSet::new();
    for page in 0..4 {
        let (rows, total) = q(UserQuery { limit: 4, page, ..base.clone() }).await;
        assert_eq!(total, 9);
        assert_eq!(rows.len(), [4, 4, 1, 0][page as usize]);
        for r in rows {
            assert!(seen.insert(r.user_id));
        }
    }
    assert_eq!(seen.len(), 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn search_by_custom_attributes_and_sso_apps() {
    let f = fixture!();
    let mut a = user("a");
    a.custom_attributes.insert("plan".into(), serde_json::json!("pro"));
    a.custom_attributes.insert("seats".into(), serde_json::json!(3));
    a.sso_app_ids = vec!["app1".into()];
    let mut b = user("b");
    b.custom_attributes.insert("plan".into(), serde_json::json!("free"));
    f.store.create_users(&f.project, &[a.clone(), b]).await.unwrap();
    let base = UserQuery { limit: 10, ..Default::default() };
    let attrs = |v: serde_json::Value| UserQuery {
        custom_attributes: v.as_object().unwrap().clone(),
        ..base.clone()
    };
    let ids = |r: (Vec<User>, u64)| r.0.into_iter().map(|u| u.login_ids[0].clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(f.store.search_users(&f.project, &attrs(serde_json::json!({"plan": "pro"}))).await.unwrap()),
        ["a"]
    );
    assert_eq!(
        ids(f
            .store
            .search_users(&f.project, &attrs(serde_json::json!({"plan": ["pro", "free"]})))
            .await
            .unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        ids(f.store.search_users(&f.project, &attrs(serde_json::json!({"seats": 3.0}))).await.unwrap()),
        ["a"]
    );
    assert!(ids(f.store.search_users(&f.project, &attrs(serde_json::json!({"seats": "3"}))).await.unwrap())
        .is_empty());
    let sso = UserQuery { sso_app_ids: vec!["app2".into(), "app1".into()], ..base.clone() };
    assert_eq!(ids(f.store.search_users(&f.project, &sso).await.unwrap()), ["a"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn free_text_search_can_use_the_trigram_index() {
    let f = fixture!();
    let (client, connection) = tokio_postgres::connect(&f.db.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute("SET enable_seqscan = off").await.unwrap();
    let plan: Vec<String> = client
        .query("EXPLAIN SELECT pk FROM users u WHERE u.search_text ILIKE '%' || $1::text || '%'", &[&"dana"])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(plan.iter().any(|l| l.contains("users_search_text")), "{plan:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_cascades_to_login_ids_and_tokens() {
    let f = fixture!();
    let u = user("gone");
    f.store.create_users(&f.project, std::slice::from_ref(&u)).await.unwrap();
    let google = ProviderName::parse("google").unwrap();
    let token = SealedToken { refresh_token: None, expiration: 0, scopes: vec![], ..sealed(&google, 1) };
    assert!(f.store.put_token(&f.project, &u.user_id, &token).await.unwrap());
    f.store.record_login(&f.project, &u.user_id, 5, "127.0.0.1").await.unwrap();
    assert!(f.store.delete_user(&f.project, &u.user_id).await.unwrap());
    assert!(!f.store.delete_user(&f.project, &u.user_id).await.unwrap());
    assert!(matches!(
        f.store.get_token(&f.project, &login("gone"), &google).await.unwrap(),
        TokenLookup::NoUser
    ));
    // The login id is free again.
    f.store.create_users(&f.project, &[user("gone")]).await.unwrap();
    assert!(matches!(
        f.store.get_token(&f.project, &login("gone"), &google).await.unwrap(),
        TokenLookup::NoToken
    ));
    let mut t = user("tester");
    t.test = true;
    f.store.create_users(&f.project, &[t]).await.unwrap();
    assert_eq!(f.store.delete_test_users(&f.project).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_upsert_and_provider_flag() {
    let f = fixture!();
    let u = user("t");
    f.store.create_users(&f.project, std::slice::from_ref(&u)).await.unwrap();
    let github = ProviderName::parse("github").unwrap();
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
    assert!(f.store.put_token(&f.project, &u.user_id, &token).await.unwrap());
    token.access_token = vec![7; 40];
    assert!(f.store.put_token(&f.project, &u.user_id, &token).await.unwrap());
    match f.store.get_token(&f.project, &login("t"), &github).await.unwrap() {
        TokenLookup::Found { user_id, token: got } => {
            assert_eq!(user_id, u.user_id);
            assert_eq!(got, SealedToken { version: 2, ..token.clone() }, "second write bumps the version");
        }
        other => panic!("{other:?}"),
    }
    let loaded = f.store.get_user(&f.project, &login("t")).await.unwrap().unwrap();
    assert_eq!(loaded.oauth_providers, vec!["github"]);
    assert_eq!(loaded.modified_ms, 5);
    assert!(f.store.delete_token(&f.project, &u.user_id, &github).await.unwrap());
    assert!(!f.store.delete_token(&f.project, &u.user_id, &github).await.unwrap());
    let loaded = f.store.get_user(&f.project, &login("t")).await.unwrap().unwrap();
    assert!(loaded.oauth_providers.is_empty());
    assert!(!f.store.put_token(&f.project, &UserId::generate(), &token).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_token_writes_for_different_providers_keep_both() {
    let f = fixture!();
    let u = user("multi");
    f.store.create_users(&f.project, std::slice::from_ref(&u)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, project, user_id) = (f.store.clone(), f.project.clone(), u.user_id.clone());
        tasks.push(tokio::spawn(async move {
            let p = ProviderName::parse(&format!("p{i}")).unwrap();
            store.put_token(&project, &user_id, &sealed(&p, i)).await.unwrap()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    let mut providers = f.store.get_user(&f.project, &login("multi")).await.unwrap().unwrap().oauth_providers;
    providers.sort();
    assert_eq!(providers, (0..8).map(|i| format!("p{i}")).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_projects() {
    let f = fixture!();
    let issued = issue_key(&f.project, "k", 10, None);
    f.store.insert_key(&issued.record).await.unwrap();
    assert_eq!(f.store.get_key(&issued.record.key_id).await.unwrap(), Some(issued.record.clone()));
    assert_eq!(f.store.list_keys(&f.project).await.unwrap().len(), 1);
    assert!(f.store.revoke_key(&f.project, &issued.record.key_id, 20).await.unwrap());
    assert_eq!(f.store.get_key(&issued.record.key_id).await.unwrap().unwrap().revoked_ms, Some(20));
    assert!(f.store.revoke_key(&f.project, &issued.record.key_id, 25).await.unwrap());
    assert_eq!(
        f.store.get_key(&issued.record.key_id).await.unwrap().unwrap().revoked_ms,
        Some(20),
        "first wins"
    );
    assert!(!f.store.revoke_key(&ProjectId::generate(), &issued.record.key_id, 30).await.unwrap());
    assert_eq!(f.store.get_key("nope").await.unwrap(), None);
    let projects = f.store.list_projects().await.unwrap();
    assert_eq!(projects.len(), 1);
    assert_eq!(f.store.get_project(&f.project).await.unwrap(), Some(projects[0].clone()));
    let dup = Project { id: f.project.clone(), name: "again".into(), created_ms: 2 };
    assert!(matches!(f.store.create_project(&dup).await.unwrap_err(), Error::AlreadyExists(_)));
    f.store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_schema_newer_than_it_knows_and_an_unmigrated_one_without_migrate() {
    let Some(db) = TestDb::create().await else { return };
    let no_migrate = PgOptions { migrate: false, ..opts() };
    let err = PgStore::connect(&db.url, &no_migrate).await.err().unwrap();
    assert!(err.to_string().contains("behind"), "{err}");
    assert_eq!(migrate(&db.url).await.unwrap(), (1..=known_schema_version()).collect::<Vec<_>>());
    assert!(migrate(&db.url).await.unwrap().is_empty(), "nothing left to apply");
    let store = PgStore::connect(&db.url, &no_migrate).await.unwrap();
    store.close().await.unwrap();
    assert!(store.ping().await.is_err(), "closed");

    let (client, connection) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (999, 'future', '2030-01-01T00:00:00Z', '0')",
            &[],
        )
        .await
        .unwrap();
    let err = PgStore::connect(&db.url, &opts()).await.err().unwrap();
    assert!(err.to_string().contains("newer"), "{err}");
    let err = migrate(&db.url).await.unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshed_token_replacement_is_compare_and_swap() {
    let f = fixture!();
    let u = user("cas");
    f.store.create_users(&f.project, std::slice::from_ref(&u)).await.unwrap();
    let google = ProviderName::parse("google").unwrap();
    let token = sealed(&google, 1);
    f.store.put_token(&f.project, &u.user_id, &token).await.unwrap();
    let refreshed = SealedToken { access_token: vec![3; 40], expiration: 99, ..token.clone() };
    assert!(
        !f.store.replace_refreshed_token(&f.project, &u.user_id, &refreshed, 7).await.unwrap(),
        "stale version"
    );
    assert!(f.store.replace_refreshed_token(&f.project, &u.user_id, &refreshed, 1).await.unwrap());
    assert!(
        !f.store.replace_refreshed_token(&f.project, &u.user_id, &refreshed, 1).await.unwrap(),
        "already swapped"
    );
    assert!(!f.store.flag_reauth_required(&f.project, &u.user_id, &google, 1).await.unwrap());
    assert!(f.store.flag_reauth_required(&f.project, &u.user_id, &google, 2).await.unwrap());
    match f.store.get_token(&f.project, &login("cas"), &google).await.unwrap() {
        TokenLookup::Found { token: got, .. } => {
            assert_eq!(got.access_token, vec![3; 40]);
            assert_eq!(got.version, 3);
            assert!(got.reauth_required);
        }
        other => panic!("{other:?}"),
    }
    // A new import clears the flag.
    f.store.put_token(&f.project, &u.user_id, &token).await.unwrap();
    match f.store.get_token(&f.project, &UserRef::UserId(u.user_id.clone()), &google).await.unwrap() {
        TokenLookup::Found { token: got, .. } => assert!(!got.reauth_required),
        other => panic!("{other:?}"),
    }
    // Of concurrent swaps from one version, exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let (store, project, user_id) = (f.store.clone(), f.project.clone(), u.user_id.clone());
        let t = SealedToken { access_token: vec![i; 40], ..token.clone() };
        tasks.push(tokio::spawn(async move {
            store.replace_refreshed_token(&project, &user_id, &t, 4).await.unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_and_data_keys() {
    use idvault_core::provider::{ClientAuthMethod, ProviderConfig};
    use idvault_core::store::{DataKeyStore, ProviderStore, WrappedDataKey};
    let f = fixture!();
    let cfg = ProviderConfig {
        name: ProviderName::parse("acme").unwrap(),
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
    };
    f.store.put_provider(&f.project, &cfg).await.unwrap();
    assert_eq!(f.store.get_provider(&f.project, &cfg.name).await.unwrap(), Some(cfg.clone()));
    let updated = ProviderConfig { client_id: "cid2".into(), updated_ms: 3, ..cfg.clone() };
    f.store.put_provider(&f.project, &updated).await.unwrap();
    assert_eq!(f.store.list_providers(&f.project).await.unwrap(), vec![updated]);
    assert!(f.store.delete_provider(&f.project, &cfg.name).await.unwrap());
    assert!(f.store.get_provider(&f.project, &cfg.name).await.unwrap().is_none());

    let key = WrappedDataKey {
        project_id: f.project.clone(),
        version: u32::MAX,
        wrapped: vec![9; 60],
        master_key_version: 1,
        created_ms: 5,
    };
    assert!(f.store.insert_data_key(&key).await.unwrap());
    assert!(!f.store.insert_data_key(&key).await.unwrap(), "first writer wins");
    let rewrapped = WrappedDataKey { wrapped: vec![8; 60], master_key_version: 2, ..key.clone() };
    assert!(!f.store.rewrap_data_key(&rewrapped, 5).await.unwrap());
    assert!(f.store.rewrap_data_key(&rewrapped, 1).await.unwrap());
    assert_eq!(f.store.get_data_key(&f.project, u32::MAX).await.unwrap(), Some(rewrapped.clone()));
    assert_eq!(f.store.get_data_key(&f.project, 1).await.unwrap(), None);
    assert_eq!(f.store.list_data_keys().await.unwrap(), vec![rewrapped]);
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_changes_cascade_into_users_and_roles() {
    let f = fixture!();
    let (s, p) = (&f.store, &f.project);
    s.create_role(p, &role("ROLT", "viewer", Some("acme"), vec![])).await.unwrap();
    assert!(matches!(
        s.create_role(p, &role("ROLX", "admin", None, vec![])).await.unwrap_err(),
        Error::AlreadyExists(_)
    ));
    assert!(matches!(
        s.create_role(p, &role("ROLY", "x", Some("nope"), vec![])).await.unwrap_err(),
        Error::Invalid { field: "tenantId", .. }
    ));
    assert!(matches!(
        s.create_role(p, &role("ROLZ", "x", None, vec!["nope".into()])).await.unwrap_err(),
        Error::Invalid { field: "permissionNames", .. }
    ));
    assert!(matches!(
        s.create_tenant(p, &tenant("other", "ACME")).await.unwrap_err(),
        Error::AlreadyExists(_)
    ));

    let mut u = user("member");
    u.role_names = vec!["admin".into(), "viewer".into()];
    u.tenants = vec![
        UserTenant { tenant_id: "t1".into(), role_names: vec!["viewer".into()], ..Default::default() },
        UserTenant { tenant_id: "acme".into(), role_names: vec!["viewer".into()], ..Default::default() },
    ];
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    // t1 uses the project "viewer" (grants read); acme has its own "viewer" (grants nothing).
    assert_eq!(loaded.tenants[0].permissions, vec!["read"]);
    assert!(loaded.tenants[1].permissions.is_empty());

    // Renaming a permission renames it in roles; users see it at once.
    s.update_permission(p, "read", "read-all", "").await.unwrap();
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    assert_eq!(loaded.tenants[0].permissions, vec!["read-all"]);
    // Renaming the project role follows into users, except in tenants with their own role.
    let renamed = role("ROL1", "reader", None, vec!["read-all".into()]);
    s.update_role(p, "viewer", None, &renamed, 5_000).await.unwrap();
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    assert_eq!(loaded.role_names, vec!["admin", "reader"]);
    assert_eq!(loaded.tenants[0].role_names, vec!["reader"]);
    assert_eq!(loaded.tenants[1].role_names, vec!["viewer"]);
    assert_eq!(loaded.modified_ms, 5_000, "the rename stamps the users it changes");
    let (found, _) = s
        .search_users(p, &UserQuery { role_names: vec!["reader".into()], limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "the role index follows the rename");

    // Deleting a permission removes it from roles.
    assert!(s.delete_permission(p, "read-all").await.unwrap());
    let roles = s.list_roles(p).await.unwrap();
    assert!(roles.iter().all(|r| r.permission_names.is_empty()), "{roles:?}");
    // Deleting a role removes it from users.
    assert!(s.delete_role(p, "admin", None, 5_000).await.unwrap());
    assert!(!s.delete_role(p, "admin", None, 5_000).await.unwrap());
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    assert_eq!(loaded.role_names, vec!["reader"]);
    // Deleting a tenant removes its roles and the membership.
    assert!(s.delete_tenant(p, "acme", 5_000).await.unwrap());
    let loaded = s.get_user(p, &login("member")).await.unwrap().unwrap();
    assert_eq!(loaded.tenants.len(), 1);
    assert!(s.list_roles(p).await.unwrap().iter().all(|r| r.tenant_id.is_none()));
    assert!(s.get_tenant(p, "acme").await.unwrap().is_none());
    let (found, _) = s
        .search_users(p, &UserQuery { tenant_ids: vec!["acme".into()], limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert!(found.is_empty());

    // Tenants update and list; attribute definitions.
    let t = s
        .update_tenant(
            p,
            &Tenant { name: "Tenant 1".into(), disabled: true, enforce_sso: true, ..tenant("t1", "") },
        )
        .await
        .unwrap();
    assert_eq!((t.name.as_str(), t.disabled, t.enforce_sso, t.created_ms), ("Tenant 1", true, true, 1));
    assert_eq!(s.get_tenant(p, "t1").await.unwrap().as_ref(), Some(&t));
    assert!(matches!(s.update_tenant(p, &tenant("nope", "x")).await.unwrap_err(), Error::NotFound(_)));
    assert_eq!(s.list_tenants(p).await.unwrap(), vec![t]);
    s.delete_attribute_defs(p, &["seats".into()]).await.unwrap();
    let defs = s.list_attribute_defs(p).await.unwrap();
    assert_eq!(defs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["plan"]);
    assert_eq!(s.list_permissions(p).await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn update_user_checks_references_and_login_ids() {
    let f = fixture!();
    let (s, p) = (&f.store, &f.project);
    let a = user("a");
    s.create_users(p, &[a.clone(), user("b")]).await.unwrap();
    let err = s
        .update_user(
            p,
            &a.user_id,
            &update(UserChange::Roles {
                scope: RoleScope::Project,
                op: ListOp::Add,
                roles: vec!["nope".into()],
            }),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { field: "roleNames", .. }), "{err:?}");
    let err = s
        .update_user(p, &a.user_id, &update(UserChange::LoginId { old: "a".into(), new: "b".into() }))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UserAlreadyExists(ref l) if l == "b"), "{err:?}");
    let err = s
        .update_user(p, &UserId::generate(), &update(UserChange::Status(UserStatus::Enabled)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UserNotFound));
    s.update_user(p, &a.user_id, &update(UserChange::LoginId { old: "a".into(), new: "a2".into() }))
        .await
        .unwrap();
    let patch = UserPatch {
        names: NameParts { name: Some("Zoë Smith".into()), ..Default::default() },
        tenants: Some(vec![UserTenant {
            tenant_id: "t1".into(),
            role_names: vec!["viewer".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    let saved = s.update_user(p, &a.user_id, &update(UserChange::Patch(Box::new(patch)))).await.unwrap();
    assert_eq!(saved.modified_ms, 2_000);
    assert_eq!(saved.tenants[0].tenant_name, "Tenant One");
    assert_eq!(s.get_user(p, &login("a2")).await.unwrap(), Some(saved));
    assert_eq!(s.get_user(p, &login("a")).await.unwrap(), None);
    let (found, _) = s
        .search_users(p, &UserQuery { text: Some("SMITH".into()), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "text search follows updates");

    // Each user of a batch in its own savepoint.
    let mut bad = user("c");
    bad.tenants = vec![UserTenant { tenant_id: "nope".into(), ..Default::default() }];
    let results = s.create_users_each(p, &[user("d"), user("b"), bad, user("e")]).await.unwrap();
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(Error::UserAlreadyExists(_))));
    assert!(matches!(results[2], Err(Error::Invalid { field: "userTenants", .. })));
    assert!(results[3].is_ok());
    assert!(s.get_user(p, &login("e")).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_update_user_loses_no_update() {
    let f = fixture!();
    for i in 0..20 {
        f.store
            .create_role(&f.project, &role(&format!("RC{i}"), &format!("r{i}"), None, vec![]))
            .await
            .unwrap();
    }
    let u = user("busy");
    f.store.create_users(&f.project, std::slice::from_ref(&u)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, project, user_id) = (f.store.clone(), f.project.clone(), u.user_id.clone());
        tasks.push(tokio::spawn(async move {
            store
                .update_user(
                    &project,
                    &user_id,
                    &update(UserChange::Roles {
                        scope: RoleScope::Project,
                        op: ListOp::Add,
                        roles: vec![format!("r{i}")],
                    }),
                )
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let loaded = f.store.get_user(&f.project, &login("busy")).await.unwrap().unwrap();
    let roles: HashSet<String> = loaded.role_names.into_iter().collect();
    assert_eq!(roles, (0..20).map(|i| format!("r{i}")).collect::<HashSet<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creates_of_one_login_id_let_exactly_one_win() {
    let f = fixture!();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (store, project) = (f.store.clone(), f.project.clone());
        tasks.push(tokio::spawn(
            async move { store.create_users(&project, &[user("same@example.com")]).await },
        ));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(Error::UserAlreadyExists(l)) => assert_eq!(l, "same@example.com"),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, 1);
    let (found, total) =
        f.store.search_users(&f.project, &UserQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!((found.len(), total), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_batches_in_opposite_orders_fail_cleanly() {
    let f = fixture!();
    for round in 0..3 {
        let logins: Vec<String> = (0..20).map(|i| format!("r{round}-{i}")).collect();
        let mut tasks = Vec::new();
        for reversed in [false, true] {
            let (store, project) = (f.store.clone(), f.project.clone());
            let mut batch: Vec<User> = logins.iter().map(|l| user(l)).collect();
            if reversed {
                batch.reverse();
            }
            tasks.push(tokio::spawn(async move { store.create_users(&project, &batch).await }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ok += 1,
                Err(Error::UserAlreadyExists(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(ok, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_states_codes_sessions_and_settings() {
    use idvault_core::auth::{AuthCode, OAuthState, ProjectAuthSettings, SessionRecord, SigningKeyRecord};
    let f = fixture!();
    let (s, p) = (&f.store, &f.project);
    let google = ProviderName::parse("google").unwrap();

    let state = OAuthState {
        state_hash: [7; 32],
        project_id: p.clone(),
        provider: google.clone(),
        redirect_url: "http://127.0.0.1/cb".into(),
        code_verifier: vec![1, 2],
        nonce: "n".into(),
        created_ms: 100,
        expires_ms: 200,
    };
    assert!(s.insert_oauth_state(&state, 100).await.unwrap());
    let mut takes = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        takes.push(tokio::spawn(async move { s.take_oauth_state(&[7; 32]).await.unwrap() }));
    }
    let mut got = Vec::new();
    for t in takes {
        got.extend(t.await.unwrap());
    }
    assert!(got == vec![state.clone()], "a state is usable once");
    // Expired states are swept by the next insert.
    assert!(s.insert_oauth_state(&OAuthState { state_hash: [8; 32], ..state.clone() }, 100).await.unwrap());
    assert!(s
        .insert_oauth_state(
            &OAuthState { state_hash: [9; 32], created_ms: 300, expires_ms: 400, ..state.clone() },
            100
        )
        .await
        .unwrap());
    assert!(s.take_oauth_state(&[8; 32]).await.unwrap().is_none());
    // Pending states are bounded per project, atomically; expired ones do not count.
    let mut starts = Vec::new();
    for i in 0..12u8 {
        let s = s.clone();
        let st = OAuthState { state_hash: [40 + i; 32], created_ms: 1000, expires_ms: 2000, ..state.clone() };
        starts.push(tokio::spawn(async move { s.insert_oauth_state(&st, 5).await.unwrap() }));
    }
    let mut inserted = 0;
    for t in starts {
        inserted += usize::from(t.await.unwrap());
    }
    assert_eq!(inserted, 5, "concurrent starts stop at the bound");
    let later = OAuthState { state_hash: [60; 32], created_ms: 2500, expires_ms: 3000, ..state.clone() };
    assert!(s.insert_oauth_state(&later, 5).await.unwrap(), "expired states free the bound");

    // A new user signs in: user, identity and token in one go.
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
    assert_eq!(s.find_user_by_verified_email(p, "sso@EXAMPLE.com").await.unwrap(), Some(new.user_id.clone()));
    // A new user whose login id is taken: nothing is written.
    let mut twin = user("sso@example.com");
    twin.email = Some("twin@example.com".into());
    let taken = SignIn {
        user: SignInUser::New(Box::new(twin.clone())),
        provider_user_id: "g-2".into(),
        token: sealed(&google, 5),
    };
    assert!(matches!(s.complete_sign_in(p, &google, &taken).await.unwrap_err(), Error::UserAlreadyExists(_)));
    assert_eq!(s.find_identity(p, &google, "g-2").await.unwrap(), None);
    assert_eq!(s.get_user(p, &UserRef::UserId(twin.user_id.clone())).await.unwrap(), None);
    let again = SignIn { user: SignInUser::Existing(new.user_id.clone()), ..sign_in.clone() };
    s.complete_sign_in(p, &google, &again).await.unwrap();
    match s.get_token(p, &login("sso@example.com"), &google).await.unwrap() {
        TokenLookup::Found { token, .. } => assert_eq!(token.version, 2),
        other => panic!("{other:?}"),
    }
    let ghost = SignIn { user: SignInUser::Existing(UserId::generate()), ..sign_in.clone() };
    assert!(matches!(s.complete_sign_in(p, &google, &ghost).await.unwrap_err(), Error::UserNotFound));

    let code = AuthCode {
        code_hash: [3; 32],
        project_id: p.clone(),
        user_id: new.user_id.clone(),
        first_seen: true,
        amr: "oauth".into(),
        created_ms: 1,
        expires_ms: 2,
    };
    s.insert_auth_code(&code).await.unwrap();
    assert_eq!(s.take_auth_code(&[3; 32]).await.unwrap(), Some(code));
    assert_eq!(s.take_auth_code(&[3; 32]).await.unwrap(), None);

    let session = SessionRecord {
        id: "jti1".into(),
        project_id: p.clone(),
        user_id: new.user_id.clone(),
        created_ms: 1,
        expires_ms: 10,
        revoked_ms: None,
        generation: 0,
    };
    s.insert_session(&session).await.unwrap();
    assert!(matches!(
        s.insert_session(&SessionRecord {
            id: "jti2".into(),
            user_id: UserId::generate(),
            ..session.clone()
        })
        .await
        .unwrap_err(),
        Error::UserNotFound
    ));
    assert_eq!(s.get_session(p, "jti1").await.unwrap(), Some(session.clone()));
    // Refresh rotation: of concurrent advances from one generation exactly one wins.
    let mut advances = Vec::new();
    for _ in 0..8 {
        let (s, p) = (s.clone(), p.clone());
        advances.push(tokio::spawn(async move { s.advance_session(&p, "jti1", 0).await.unwrap() }));
    }
    let mut wins = 0;
    for t in advances {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert_eq!(s.get_session(p, "jti1").await.unwrap().unwrap().generation, 1);
    assert!(!s.advance_session(p, "jti1", 0).await.unwrap());
    assert!(s.advance_session(p, "jti1", 1).await.unwrap());
    assert!(s.revoke_session(p, "jti1", 5).await.unwrap());
    assert!(!s.advance_session(p, "jti1", 2).await.unwrap(), "a revoked session does not rotate");
    assert!(!s.revoke_session(p, "jti1", 6).await.unwrap());
    s.insert_session(&SessionRecord { id: "jti3".into(), ..session.clone() }).await.unwrap();
    assert_eq!(s.revoke_user_sessions(p, &new.user_id, 7).await.unwrap(), 1);
    assert_eq!(s.get_session(p, "jti3").await.unwrap().unwrap().revoked_ms, Some(7));

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
    let keys = s.list_signing_keys(p).await.unwrap();
    assert_eq!(
        keys.iter().map(|k| (k.kid.as_str(), k.retired_ms)).collect::<Vec<_>>(),
        [("k1", Some(9)), ("k2", None)]
    );

    assert_eq!(
        s.get_auth_settings(p).await.unwrap(),
        ProjectAuthSettings { redirect_urls: vec![], link_by_verified_email: true }
    );
    let settings = ProjectAuthSettings {
        redirect_urls: vec!["http://127.0.0.1/cb".into()],
        link_by_verified_email: false,
    };
    s.set_auth_settings(p, &settings).await.unwrap();
    assert_eq!(s.get_auth_settings(p).await.unwrap(), settings);
    assert!(matches!(
        s.get_auth_settings(&ProjectId::generate()).await.unwrap_err(),
        Error::ProjectNotFound(_)
    ));

    // Deleting the user ends its sessions and identities.
    assert!(s.delete_user(p, &new.user_id).await.unwrap());
    assert_eq!(s.get_session(p, "jti1").await.unwrap(), None);
    assert_eq!(s.find_identity(p, &google, "g-1").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_history_is_newest_first_per_user() {
    let f = fixture!();
    let (a, b) = (user("a"), user("b"));
    f.store.create_users(&f.project, &[a.clone(), b.clone()]).await.unwrap();
    for (u, ms) in [(&a, 1), (&b, 2), (&a, 3)] {
        f.store.record_login(&f.project, &u.user_id, ms, "10.0.0.1").await.unwrap();
    }
    let history =
        f.store.login_history(&f.project, &[b.user_id.to_string(), a.user_id.to_string()]).await.unwrap();
    let got: Vec<(UserId, i64)> = history.into_iter().map(|h| (h.user_id, h.login_ms)).collect();
    assert_eq!(got, vec![(b.user_id.clone(), 2), (a.user_id.clone(), 3), (a.user_id.clone(), 1)]);
}

/// The backend holding the only granted advisory lock in `db`.
async fn advisory_lock_holder(admin: &tokio_postgres::Client, db: &str) -> Option<i32> {
    admin
        .query_opt(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND l.granted AND d.datname = $1",
            &[&db],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_lock_excludes_a_second_holder_until_the_guard_drops() {
    let f = fixture!();
    let other_replica = PgStore::connect(&f.db.url, &opts()).await.unwrap();
    let (user_id, google, github) =
        (UserId::generate(), ProviderName::parse("google").unwrap(), ProviderName::parse("github").unwrap());
    let first = f.store.refresh_lock(&f.project, &user_id, &google).await.unwrap();

    let waiter = {
        let (store, project, user_id, google) =
            (other_replica.clone(), f.project.clone(), user_id.clone(), google.clone());
        tokio::spawn(async move { store.refresh_lock(&project, &user_id, &google).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "the second replica waits for the first");
    // Other keys are not blocked.
    let unrelated = tokio::time::timeout(
        Duration::from_secs(5),
        other_replica.refresh_lock(&f.project, &user_id, &github),
    )
    .await
    .unwrap()
    .unwrap();
    drop(unrelated);

    drop(first);
    let started = Instant::now();
    let second = tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(second);
    // And the first replica can have it again.
    let again =
        tokio::time::timeout(Duration::from_secs(5), f.store.refresh_lock(&f.project, &user_id, &google))
            .await
            .unwrap()
            .unwrap();
    drop(again);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_lock_dies_with_its_session() {
    let f = fixture!();
    let other_replica = PgStore::connect(&f.db.url, &opts()).await.unwrap();
    let admin = admin_client().await.unwrap();
    let (user_id, google) = (UserId::generate(), ProviderName::parse("google").unwrap());
    let crashed = f.store.refresh_lock(&f.project, &user_id, &google).await.unwrap();
    let pid = advisory_lock_holder(&admin, &f.db.name).await.expect("the lock is held");

    // The holder's session ends (as when its process dies): the lock goes with it.
    let killed: bool = admin.query_one("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap().get(0);
    assert!(killed);
    let taken = tokio::time::timeout(
        Duration::from_secs(10),
        other_replica.refresh_lock(&f.project, &user_id, &google),
    )
    .await
    .expect("a dead session's lock is released")
    .unwrap();
    // Dropping the dead guard is harmless (its unlock fails; the connection is discarded).
    drop(crashed);
    drop(taken);
    let again =
        tokio::time::timeout(Duration::from_secs(10), f.store.refresh_lock(&f.project, &user_id, &google))
            .await
            .unwrap()
            .unwrap();
    drop(again);
}
