//! Store tests on a real SQLite file.

use idvault_core::error::Error;
use idvault_core::ids::{LoginId, ProjectId, ProviderName, UserId};
use idvault_core::project::{issue_key, Project};
use idvault_core::store::{ProjectStore, TokenLookup, TokenStore, UserStore};
use idvault_core::user::{NewUser, TestUserFilter, User, UserQuery, UserRef, UserStatus, UserTenant};
use idvault_core::vault::SealedToken;

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    project: ProjectId,
}

async fn fixture() -> Fixture {
    use idvault_core::directory::{AttributeDef, AttributeType, Permission, Role, Tenant};
    use idvault_core::store::DirectoryStore;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db"), &SqliteOptions::default()).unwrap();
    let project = ProjectId::generate();
    store.create_project(&Project { id: project.clone(), name: "t".into(), created_ms: 1 }).await.unwrap();
    // The directory the tests' users refer to.
    for (id, name) in [("t1", "Tenant One"), ("acme", "Acme")] {
        let t = Tenant {
            id: id.into(),
            name: name.into(),
            self_provisioning_domains: vec![],
            custom_attributes: Default::default(),
            disabled: false,
            enforce_sso: false,
            created_ms: 1,
        };
        store.create_tenant(&project, &t).await.unwrap();
    }
    let read =
        Permission { id: "PRM1".into(), name: "read".into(), description: String::new(), created_ms: 1 };
    store.create_permission(&project, &read).await.unwrap();
    for (i, name) in ["admin", "viewer", "editor"].into_iter().enumerate() {
        let r = Role {
            id: format!("ROL{i}"),
            name: name.into(),
            tenant_id: None,
            description: String::new(),
            permission_names: if name == "viewer" { vec!["read".into()] } else { vec![] },
            default: false,
            private: false,
            created_ms: 1,
        };
        store.create_role(&project, &r).await.unwrap();
    }
    let plan = AttributeDef {
        name: "plan".into(),
        kind: AttributeType::String,
        display_name: "Plan".into(),
        options: vec![],
        required: false,
    };
    store.put_attribute_defs(&project, &[plan]).await.unwrap();
    Fixture { _dir: dir, store, project }
}

fn user(login: &str) -> User {
    NewUser { login_id: login.into(), ..Default::default() }.into_user(UserId::generate(), 1_000).unwrap()
}

fn login(s: &str) -> UserRef {
    UserRef::LoginId(LoginId::parse(s).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn create_load_by_login_and_id_round_trips_every_field() {
    let f = fixture().await;
    let mut u = user("dana@example.com");
    u.name = Some("Dana".into());
    u.phone = Some("+14155550123".into());
    u.role_names = vec!["admin".into()];
    u.tenants =
        vec![UserTenant { tenant_id: "t1".into(), role_names: vec!["viewer".into()], ..Default::default() }];
    u.custom_attributes.insert("plan".into(), serde_json::json!("pro"));
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
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_login_id_fails_the_whole_batch() {
    let f = fixture().await;
    f.store.create_users(&f.project, &[user("a")]).await.unwrap();
    let err = f.store.create_users(&f.project, &[user("b"), user("a")]).await.unwrap_err();
    assert!(matches!(err, Error::UserAlreadyExists(ref l) if l == "a"), "{err:?}");
    // "b" was not written: the batch is atomic.
    assert_eq!(f.store.get_user(&f.project, &login("b")).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn search_filters_paging_and_total() {
    let f = fixture().await;
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
    let (editors, _) = q(UserQuery { role_names: vec!["editor".into()], ..base.clone() }).await;
    assert_eq!(editors.len(), 3);
    let (enabled_acme, _) =
        q(UserQuery { tenant_ids: vec!["acme".into()], statuses: vec![UserStatus::Enabled], ..base.clone() })
            .await;
    assert_eq!(enabled_acme.len(), 2, "filters combine with AND");
    let (by_email, _) = q(UserQuery { emails: vec!["USER4@example.com".into()], ..base.clone() }).await;
    assert_eq!(by_email.len(), 1, "emails match case-insensitively");
    let (by_text, _) = q(UserQuery { text: Some("user7".into()), ..base.clone() }).await;
    assert_eq!(by_text.len(), 1);
    let (none, _) = q(UserQuery { text: Some("%".into()), ..base.clone() }).await;
    assert!(none.is_empty(), "LIKE wildcards in text are literal");

    let mut seen = std::collections::HashSet::new();
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
async fn delete_cascades_to_login_ids_and_tokens() {
    let f = fixture().await;
    let u = user("gone");
    f.store.create_users(&f.project, std::slice::from_ref(&u)).await.unwrap();
    let google = ProviderName::parse("google").unwrap();
    let token = SealedToken {
        provider: google.clone(),
        provider_user_id: "g1".into(),
        access_token: vec![1, 2, 3],
        refresh_token: None,
        expiration: 0,
        scopes: vec![],
        updated_ms: 5,
        version: 0,
        reauth_required: false,
    };
    assert!(f.store.put_token(&f.project, &u.user_id, &token).await.unwrap());
    assert!(f.store.delete_user(&f.project, &u.user_id).await.unwrap());
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
}

#[tokio::test(flavor = "multi_thread")]
async fn token_upsert_and_provider_flag() {
    let f = fixture().await;
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
    assert!(f.store.delete_token(&f.project, &u.user_id, &github).await.unwrap());
    let loaded = f.store.get_user(&f.project, &login("t")).await.unwrap().unwrap();
    assert!(loaded.oauth_providers.is_empty());
    assert!(!f.store.put_token(&f.project, &UserId::generate(), &token).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_projects() {
    let f = fixture().await;
    let issued = issue_key(&f.project, "k", 10, None);
    f.store.insert_key(&issued.record).await.unwrap();
    assert_eq!(f.store.get_key(&issued.record.key_id).await.unwrap(), Some(issued.record.clone()));
    assert_eq!(f.store.list_keys(&f.project).await.unwrap().len(), 1);
    assert!(f.store.revoke_key(&f.project, &issued.record.key_id, 20).await.unwrap());
    assert_eq!(f.store.get_key(&issued.record.key_id).await.unwrap().unwrap().revoked_ms, Some(20));
    assert!(!f.store.revoke_key(&ProjectId::generate(), &issued.record.key_id, 30).await.unwrap());
    assert_eq!(f.store.list_projects().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_schema_newer_than_it_knows_and_an_unmigrated_one_without_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let no_migrate = SqliteOptions { migrate: false, ..SqliteOptions::default() };
    assert!(SqliteStore::open(&path, &no_migrate).is_err(), "schema behind and migrate off");
    drop(SqliteStore::open(&path, &SqliteOptions::default()).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (999, 'future', '', '0')",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path, &SqliteOptions::default()).err().unwrap();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshed_token_replacement_is_compare_and_swap() {
    let f = fixture().await;
    let u = user("cas");
    f.store.create_users(&f.project, std::slice::from_ref(&u)).await.unwrap();
    let google = ProviderName::parse("google").unwrap();
    let token = SealedToken {
        provider: google.clone(),
        provider_user_id: "g".into(),
        access_token: vec![1; 40],
        refresh_token: Some(vec![2; 40]),
        expiration: 10,
        scopes: vec!["a".into()],
        updated_ms: 1,
        version: 0,
        reauth_required: false,
    };
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
    match f.store.get_token(&f.project, &login("cas"), &google).await.unwrap() {
        TokenLookup::Found { token: got, .. } => assert!(!got.reauth_required),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_and_data_keys() {
    use idvault_core::provider::{ClientAuthMethod, ProviderConfig};
    use idvault_core::store::{DataKeyStore, ProviderStore, WrappedDataKey};
    let f = fixture().await;
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
        version: 1,
        wrapped: vec![9; 60],
        master_key_version: 1,
        created_ms: 5,
    };
    assert!(f.store.insert_data_key(&key).await.unwrap());
    assert!(!f.store.insert_data_key(&key).await.unwrap(), "first writer wins");
    let rewrapped = WrappedDataKey { wrapped: vec![8; 60], master_key_version: 2, ..key.clone() };
    assert!(!f.store.rewrap_data_key(&rewrapped, 5).await.unwrap());
    assert!(f.store.rewrap_data_key(&rewrapped, 1).await.unwrap());
    assert_eq!(f.store.get_data_key(&f.project, 1).await.unwrap(), Some(rewrapped.clone()));
    assert_eq!(f.store.list_data_keys().await.unwrap(), vec![rewrapped]);
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_point_reads_are_not_re_prepared() {
    let f = fixture().await;
    f.store.create_users(&f.project, &[user("hot@example.com")]).await.unwrap();
    let conn = rusqlite::Connection::open(f.store.path()).unwrap();
    tune(&conn, &SqliteOptions::default()).unwrap();
    for sql in [crate::users::USER_BY_LOGIN_ID, crate::tokens::TOKEN_BY_LOGIN] {
        let mut total = 0;
        for _ in 0..50 {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let pid = f.project.as_str();
            let params: Vec<&dyn rusqlite::ToSql> = if sql.contains("?3") {
                vec![&pid, &"hot@example.com", &"google"]
            } else {
                vec![&pid, &"hot@example.com"]
            };
            let mut rows = stmt.query(params.as_slice()).unwrap();
            while rows.next().unwrap().is_some() {}
            drop(rows);
            total += stmt.get_status(rusqlite::StatementStatus::RePrepare);
        }
        assert_eq!(total, 0, "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_sign_ins_are_bounded_and_sessions_rotate_by_compare_and_swap() {
    use idvault_core::auth::{OAuthState, SessionRecord};
    use idvault_core::store::AuthStore;
    let f = fixture().await;
    let (s, p) = (&f.store, &f.project);

    let state = |i: u8, created_ms: i64| OAuthState {
        state_hash: [i; 32],
        project_id: p.clone(),
        provider: ProviderName::parse("google").unwrap(),
        redirect_url: "http://127.0.0.1/cb".into(),
        code_verifier: vec![1],
        nonce: "n".into(),
        created_ms,
        expires_ms: created_ms + 1000,
    };
    let mut starts = Vec::new();
    for i in 0..12u8 {
        let (s, st) = (s.clone(), state(i, 1000));
        starts.push(tokio::spawn(async move { s.insert_oauth_state(&st, 5).await.unwrap() }));
    }
    let mut inserted = 0;
    for t in starts {
        inserted += usize::from(t.await.unwrap());
    }
    assert_eq!(inserted, 5, "concurrent starts stop at the bound");
    assert!(s.insert_oauth_state(&state(50, 2500), 5).await.unwrap(), "expired states free the bound");

    let u = user("rotating@example.com");
    s.create_users(p, std::slice::from_ref(&u)).await.unwrap();
    let session = SessionRecord {
        id: "S1".into(),
        project_id: p.clone(),
        user_id: u.user_id.clone(),
        created_ms: 1,
        expires_ms: 10,
        revoked_ms: None,
        generation: 0,
    };
    s.insert_session(&session).await.unwrap();
    let mut advances = Vec::new();
    for _ in 0..8 {
        let (s, p) = (s.clone(), p.clone());
        advances.push(tokio::spawn(async move { s.advance_session(&p, "S1", 0).await.unwrap() }));
    }
    let mut wins = 0;
    for t in advances {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1, "of concurrent advances from one generation exactly one wins");
    assert_eq!(s.get_session(p, "S1").await.unwrap().unwrap().generation, 1);
    assert!(!s.advance_session(p, "S1", 0).await.unwrap());
    assert!(s.revoke_session(p, "S1", 5).await.unwrap());
    assert!(!s.advance_session(p, "S1", 1).await.unwrap(), "a revoked session does not rotate");
}
