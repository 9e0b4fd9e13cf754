//! Master key rotation, re-wrap and retirement, online and across a restart.

use serde_json::json;

use crate::cli::{run_err, run_ok};
use crate::helpers::*;

#[tokio::test]
async fn rotate_rewrap_retire_while_serving_then_restart() {
    let app = TestApp::spawn();
    for i in 0..5 {
        let login = format!("r{i}");
        app.api.create_user(json!({"loginId": login})).await;
        assert_eq!(
            app.api.put_token(google_token(&login, &format!("access-{i}"), "refresh")).await.status,
            200
        );
    }
    let data = app.server.data_dir.clone();
    let list = run_ok(&data, &["keys", "list"]);
    assert!(list.lines().any(|l| l.starts_with("1 ") && l.trim_end().ends_with(" 1")), "{list}");

    assert!(run_ok(&data, &["keys", "rotate"]).contains("version 2 added"));
    // Version 1 still wraps the project's data key: retiring it is refused.
    assert!(run_err(&data, &["keys", "retire", "1"]).contains("still wraps 1"));
    assert!(run_ok(&data, &["keys", "rewrap"]).contains("1 re-wrapped under master key version 2"));
    assert!(run_ok(&data, &["keys", "rewrap"]).contains("0 re-wrapped"), "idempotent");
    assert!(run_err(&data, &["keys", "retire", "2"]).contains("current"));
    assert!(run_ok(&data, &["keys", "retire", "1"]).contains("retired"));

    // The running server keeps reading and writing throughout.
    for i in 0..5 {
        assert_eq!(
            app.api.get_token(&format!("r{i}"), "google", false).await.body["accessToken"],
            format!("access-{i}")
        );
    }
    app.api.create_user(json!({"loginId": "after"})).await;
    assert_eq!(app.api.put_token(google_token("after", "access-after", "r")).await.status, 200);

    let TestApp { server, api, dir } = app;
    assert!(server.stop().success());
    let keyring = std::fs::read_to_string(data.join("master.key")).unwrap();
    assert!(keyring.lines().any(|l| l.starts_with("2:")) && !keyring.lines().any(|l| l.starts_with("1:")));
    let server = TestServer::start(&data);
    let api = Api { base_url: server.base_url.clone(), ..api };
    for i in 0..5 {
        assert_eq!(
            api.get_token(&format!("r{i}"), "google", true).await.body["accessToken"],
            format!("access-{i}")
        );
    }
    assert_eq!(api.get_token("after", "google", false).await.body["accessToken"], "access-after");
    drop(dir);
}

#[test]
fn env_keyrings_are_not_rotated_by_idvault_and_generate_prints_an_entry() {
    let dir = TestDir::new();
    let entry = run_ok(dir.path(), &["keys", "generate", "--version", "3"]);
    assert!(entry.trim().starts_with("3:") && entry.trim().len() > 40);
    let out = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["keys", "rotate"])
        .env("IDVAULT_MASTER_KEY", entry.trim())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("IDVAULT_MASTER_KEY"));
}
