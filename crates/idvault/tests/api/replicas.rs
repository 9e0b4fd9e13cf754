//! Several idvault processes on one PostgreSQL database: exactly one refresh across replicas,
//! a crashed replica cannot keep the refresh lock, and a SQLite project moves to PostgreSQL.
//! These need PostgreSQL; they run in the suite's PostgreSQL pass (IDVAULT_TEST_BACKEND=postgres).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::oauth_server::OAuthServer;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A second replica: another data directory with the same master key and database.
fn second_replica(app: &TestApp, name: &str, serve_args: &[&str]) -> TestServer {
    let dir = app.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(app.server.data_dir.join("master.key"), dir.join("master.key")).unwrap();
    let url = database_url_for(&app.server.data_dir).unwrap();
    std::fs::write(dir.join(".test-database-url"), url).unwrap();
    TestServer::start_with(&dir, &[], serve_args)
}

async fn setup_grant(api: &Api, oauth: &OAuthServer, login: &str) {
    let r = api
        .post(
            "/v1/mgmt/provider/set",
            json!({"name": "acme", "clientId": "idvault-test", "clientSecret": "idvault-test-secret", "issuer": oauth.issuer}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    api.create_user(json!({"loginId": login})).await;
    let grant = oauth.grant(login).await;
    let r = api
        .put_token(json!({"loginId": login, "provider": "acme", "providerUserId": login,
            "accessToken": grant["access_token"], "refreshToken": grant["refresh_token"], "expiration": now() + 3600}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

fn forced(login: &str) -> String {
    format!("/v1/mgmt/user/provider/token?loginId={}&provider=acme&forceRefresh=true", urlencode(login))
}

#[tokio::test]
async fn two_replicas_make_exactly_one_refresh_for_100_concurrent_requests() {
    if !postgres_mode() {
        println!("skipped here: runs in the PostgreSQL pass");
        return;
    }
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    // Replica B also runs with a small, explicit connection pool.
    let b = second_replica(&app, "replica-b", &["--db-pool-size", "4", "--db-statement-timeout", "20s"]);
    assert!(b.management_key.is_none(), "the second replica made a key: {}", b.ready);
    assert_eq!(
        b.project_id, app.server.project_id,
        "the second replica found the project in the shared database"
    );
    assert_eq!(b.ready["backend"], "postgres");
    setup_grant(&app.api, &oauth, "shared@example.com").await;
    oauth.control("delay", json!({"ms": 300})).await;
    oauth.control("stats/reset", json!({})).await;

    let mut tasks = Vec::new();
    for i in 0..100 {
        let base = if i % 2 == 0 { app.server.base_url.clone() } else { b.base_url.clone() };
        let api = Api { http: reqwest::Client::new(), base_url: base, auth: app.api.auth.clone() };
        tasks.push(tokio::spawn(async move { api.get(&forced("shared@example.com")).await }));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        tokens.insert(r.body["accessToken"].as_str().unwrap().to_owned());
    }
    let calls = oauth.refresh_requests().await;
    println!("two replicas, 100 concurrent forceRefresh requests -> {calls} token request(s), {} distinct token(s)", tokens.len());
    assert_eq!(calls, 1, "exactly one upstream refresh across both replicas");
    assert_eq!(tokens.len(), 1);
    assert_eq!(oauth.stats().await["refresh_reuse_detected"], 0);
}

#[tokio::test]
async fn two_replicas_make_exactly_one_refresh_of_an_outbound_token() {
    if !postgres_mode() {
        println!("skipped here: runs in the PostgreSQL pass");
        return;
    }
    let oauth = OAuthServer::start();
    let app = TestApp::spawn();
    let b = second_replica(&app, "replica-b", &[]);
    let r = app
        .api
        .post(
            "/v1/mgmt/outbound/app/create",
            json!({"id": "acme", "name": "Acme", "clientId": "idvault-test", "clientSecret": "idvault-test-secret",
                "discoveryUrl": format!("{}/.well-known/openid-configuration", oauth.issuer)}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let user_id = app.api.create_user(json!({"loginId": "outbound@example.com"})).await["userId"].clone();
    let grant = oauth.grant("outbound@example.com").await;
    let r = app
        .api
        .post(
            "/v1/mgmt/outbound/app/user/oauthtoken/upload",
            json!({"appId": "acme", "userId": user_id, "accessToken": grant["access_token"],
                "refreshToken": grant["refresh_token"], "accessTokenExpiry": now() + 3600, "scopes": ["openid"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    oauth.control("delay", json!({"ms": 300})).await;
    oauth.control("stats/reset", json!({})).await;

    let mut tasks = Vec::new();
    for i in 0..100 {
        let base = if i % 2 == 0 { app.server.base_url.clone() } else { b.base_url.clone() };
        let api = Api { http: reqwest::Client::new(), base_url: base, auth: app.api.auth.clone() };
        let body = json!({"appId": "acme", "userId": user_id, "options": {"forceRefresh": true}});
        tasks.push(tokio::spawn(
            async move { api.post("/v1/mgmt/outbound/app/user/token/latest", body).await },
        ));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        tokens.insert(r.body["token"]["accessToken"].as_str().unwrap().to_owned());
    }
    let calls = oauth.refresh_requests().await;
    println!("two replicas, 100 concurrent forced outbound fetches -> {calls} token request(s), {} distinct token(s)", tokens.len());
    assert_eq!(calls, 1, "exactly one upstream refresh across both replicas");
    assert_eq!(tokens.len(), 1);
    assert_eq!(oauth.stats().await["refresh_reuse_detected"], 0);
}

#[tokio::test]
async fn a_replica_killed_while_refreshing_does_not_block_the_other() {
    if !postgres_mode() {
        println!("skipped here: runs in the PostgreSQL pass");
        return;
    }
    let oauth = OAuthServer::start();
    let app = TestApp::spawn_with(&["--provider-timeout", "60s"]);
    let b = second_replica(&app, "replica-b", &[]);
    setup_grant(&app.api, &oauth, "crash@example.com").await;

    // Replica A starts a refresh that hangs at the provider, holding the refresh lock.
    oauth.mode("hang").await;
    let a_api = Api {
        http: reqwest::Client::new(),
        base_url: app.server.base_url.clone(),
        auth: app.api.auth.clone(),
    };
    let hung = tokio::spawn(async move {
        a_api
            .http
            .get(format!("{}{}", a_api.base_url, forced("crash@example.com")))
            .header("Authorization", a_api.auth)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(800)).await;

    // Kill A (no chance to unlock), let the provider answer again, and refresh through B.
    let TestApp { server: a, api, dir } = app;
    a.kill_hard();
    let _ = hung.await;
    oauth.mode("normal").await;
    let b_api = Api { base_url: b.base_url.clone(), ..api };
    let started = Instant::now();
    let r = b_api.get(&forced("crash@example.com")).await;
    let waited = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    println!("refresh through replica B after replica A died holding the lock: {waited:?}");
    assert!(
        waited < Duration::from_secs(10),
        "the dead replica's lock was released with its session ({waited:?})"
    );
    drop(b);
    drop(dir);
}

#[tokio::test]
async fn a_sqlite_project_moves_to_postgresql_and_reads_back_identical() {
    if !postgres_mode() {
        println!("skipped here: runs in the PostgreSQL pass");
        return;
    }
    // The source runs on SQLite whatever the pass: started without a database URL.
    let dir = TestDir::new();
    let source = dir.path().join("sqlite-source");
    std::fs::create_dir_all(&source).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    let out =
        cmd.arg("--data-dir").arg(&source).args(["project", "create", "--name", "Moving"]).output().unwrap();
    assert!(out.status.success());
    let pid = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(&source)
        .args(["key", "create", "--project", &pid])
        .output()
        .unwrap();
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let ready_path = ready_file_for(&source);
    let mut server = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(&source)
        .args(["serve", "--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready_path)
        .env("IDVAULT_PROVIDER_ALLOWED_HOSTS", "127.0.0.1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_for_ready_file(&mut server, &ready_path, String::new);
    assert_eq!(ready["backend"], "sqlite", "{ready}");
    let base = ready["url"].as_str().unwrap().to_owned();
    let api = Api::new(&base, &pid, &key);
    seed_directory(&api).await;
    for i in 0..20 {
        let login = format!("m{i}@example.com");
        api.create_user(json!({"loginId": login, "roleNames": ["admin"], "userTenants": [{"tenantId": "acme", "roleNames": ["viewer"]}]})).await;
        assert_eq!(api.put_token(google_token(&login, &format!("a{i}"), &format!("r{i}"))).await.status, 200);
    }
    let users_before: Value =
        api.post("/v2/mgmt/user/search", json!({"limit": 100})).await.body["users"].clone();
    let _ = server.kill();
    let _ = server.wait();

    let file = dir.path().join("move.jsonl");
    let out = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(&source)
        .args(["export", "--project", &pid, "--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let target = dir.path().join("pg-target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(source.join("master.key"), target.join("master.key")).unwrap();
    let out = crate::cli::run_ok(&target, &["import", "--in", file.to_str().unwrap()]);
    assert!(out.contains("verified: every count matches"), "{out}");
    println!("{out}");

    let pg = TestServer::start(&target);
    let api = Api::new(&pg.base_url, &pid, &key);
    let users_after: Value =
        api.post("/v2/mgmt/user/search", json!({"limit": 100})).await.body["users"].clone();
    assert_eq!(users_after, users_before, "every user reads back identical");
    for i in 0..20 {
        let t = api.get_token(&format!("m{i}@example.com"), "google", true).await;
        assert_eq!(
            (t.body["accessToken"].as_str(), t.body["refreshToken"].as_str()),
            (Some(format!("a{i}").as_str()), Some(format!("r{i}").as_str()))
        );
    }
}
