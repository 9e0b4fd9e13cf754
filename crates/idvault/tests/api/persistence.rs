//! Restarts, crashes, and what is on disk.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn restart_keeps_users_and_tokens_and_never_reprints_secrets() {
    let app = TestApp::spawn();
    let access = "ya29.PLAINTEXT-ACCESS-TOKEN-should-never-hit-disk";
    let refresh = "1//PLAINTEXT-REFRESH-TOKEN-should-never-hit-disk";
    for i in 0..20 {
        let login = format!("p{i}@example.com");
        app.api.create_user(json!({"loginId": login})).await;
        assert_eq!(
            app.api
                .put_token(google_token(&login, &format!("{access}-{i}"), &format!("{refresh}-{i}")))
                .await
                .status,
            200
        );
    }
    // While running, the database and its WAL hold no token in clear.
    let data = app.server.data_dir.clone();
    assert!(!storage_contains(&data, "PLAINTEXT"), "a token was written in clear text");

    let TestApp { server, api, dir } = app;
    let status = server.stop();
    assert!(status.success(), "graceful stop exits 0");
    assert!(!storage_contains(&data, "PLAINTEXT"), "a token was written in clear text");

    let server = TestServer::start(&data);
    assert!(server.management_key.is_none(), "the restart announced a key: {}", server.ready);
    assert!(!server.stdout().contains("idv_"), "the restart printed a key: {}", server.stdout());
    // The restarted server still names its one project.
    assert_eq!(
        server.project_id.as_deref(),
        api.auth.strip_prefix("Bearer ").and_then(|a| a.split(':').next())
    );
    let api = Api { base_url: server.base_url.clone(), ..api };
    let all = api.post("/v2/mgmt/user/search", json!({"limit": 100})).await;
    assert_eq!(all.body["total"], 20);
    for i in 0..20 {
        let r = api.get_token(&format!("p{i}@example.com"), "google", true).await;
        assert_eq!(r.body["accessToken"], format!("{access}-{i}"));
        assert_eq!(r.body["refreshToken"], format!("{refresh}-{i}"));
    }
    drop(server);
    drop(dir);
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let app = TestApp::spawn();
    for i in 0..25 {
        app.api.create_user(json!({"loginId": format!("k{i}")})).await;
    }
    assert_eq!(app.api.put_token(google_token("k3", "acc", "ref")).await.status, 200);
    let TestApp { server, api, dir } = app;
    let data = server.data_dir.clone();
    server.kill_hard();
    let server = TestServer::start(&data);
    let api = Api { base_url: server.base_url.clone(), ..api };
    assert_eq!(api.post("/v2/mgmt/user/search", json!({})).await.body["total"], 25);
    assert_eq!(api.get_token("k3", "google", false).await.body["accessToken"], "acc");
    drop(dir);
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_fails_to_decrypt_cleanly() {
    let app = TestApp::spawn();
    app.api.create_user(json!({"loginId": "alice"})).await;
    app.api.create_user(json!({"loginId": "mallory"})).await;
    assert_eq!(app.api.put_token(google_token("alice", "alice-secret", "r1")).await.status, 200);
    assert_eq!(app.api.put_token(google_token("mallory", "mallory-token", "r2")).await.status, 200);
    let TestApp { server, api, dir } = app;
    let data = server.data_dir.clone();
    assert!(server.stop().success());

    // Copy alice's sealed access token onto mallory's row, as an attacker with database access
    // might.
    exec_sql(
        &data,
        "UPDATE provider_tokens SET access_token = (SELECT t.access_token FROM provider_tokens t \
         JOIN user_login_ids l ON l.user_pk = t.user_pk WHERE l.login_id = 'alice') \
         WHERE user_pk = (SELECT user_pk FROM user_login_ids WHERE login_id = 'mallory')",
    );

    let server = TestServer::start(&data);
    let api = Api { base_url: server.base_url.clone(), ..api };
    let r = api.get_token("mallory", "google", false).await;
    r.assert_error(500, "E112104");
    assert!(!r.body.to_string().contains("alice-secret"));
    assert_eq!(api.get_token("alice", "google", false).await.body["accessToken"], "alice-secret");
    drop(dir);
}

#[tokio::test]
async fn the_ready_file_describes_the_server_and_goes_away_on_a_clean_stop() {
    let app = TestApp::spawn();
    let ready = app.server.ready.clone();
    assert_eq!(ready["pid"], app.server.child.id(), "{ready}");
    assert_eq!(ready["backend"], if postgres_mode() { "postgres" } else { "sqlite" }, "{ready}");
    let port = ready["port"].as_u64().unwrap();
    assert_eq!(ready["url"], format!("http://127.0.0.1:{port}"));
    // The key it announces is the one the first-start banner shows, and it works.
    let key = app.server.management_key.clone().unwrap();
    assert!(app.server.stdout().contains(&key));
    assert_eq!(app.api.get("/v1/mgmt/license").await.status, 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&app.server.ready_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the ready file holds a secret: owner only");
    }
    let TestApp { server, dir, .. } = app;
    let path = server.ready_path.clone();
    assert!(server.stop().success());
    assert!(!path.exists(), "a clean stop removes the ready file");
    drop(dir);
}
