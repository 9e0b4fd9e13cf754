//! Keyring safety: a server (or command) whose master keyring cannot open the database's data
//! keys refuses to start, says which versions the database needs and which it has, and never
//! creates a new master key for a database that already holds wrapped data keys.

use std::path::Path;

use base64::Engine;
use serde_json::json;

use crate::cli::{command, run_ok};
use crate::helpers::*;

/// A second data directory on the same data: in PostgreSQL mode the same database (a replica),
/// on SQLite a copy of the stopped server's database file.
fn second_data_dir(first: &Path, second: &Path) {
    std::fs::create_dir_all(second).unwrap();
    match database_url_for(first) {
        Some(url) => std::fs::write(second.join(".test-database-url"), url).unwrap(),
        None => {
            std::fs::copy(first.join("idvault.db"), second.join("idvault.db")).unwrap();
        }
    }
}

fn run_refused(data_dir: &Path, args: &[&str]) -> String {
    let out = command(data_dir, args).env_remove("IDVAULT_MASTER_KEY").output().unwrap();
    assert!(!out.status.success(), "idvault {args:?} should have refused");
    String::from_utf8(out.stderr).unwrap()
}

#[tokio::test]
async fn a_data_directory_without_the_databases_key_refuses_to_start_and_creates_no_key() {
    let app = TestApp::spawn();
    assert!(app.server.stderr().contains("created a new master key"), "a first start creates the key");
    assert!(app.server.data_dir.join("master.key").exists());
    app.api.create_user(json!({"loginId": "kr"})).await;
    assert_eq!(app.api.put_token(google_token("kr", "kr-access", "kr-refresh")).await.status, 200);
    let pid = app.server.project_id.clone().unwrap();
    let TestApp { server, api, dir } = app;
    let first = server.data_dir.clone();
    // A PostgreSQL replica starts beside a running first server; a SQLite file is copied once
    // its server stopped.
    let running = if postgres_mode() {
        Some(server)
    } else {
        assert!(server.stop().success());
        None
    };

    let second = dir.path().join("second");
    second_data_dir(&first, &second);
    let (status, stderr) = start_expecting_refusal(&second, &[]);
    assert!(!status.success());
    assert!(stderr.contains("no master key"), "{stderr}");
    assert!(stderr.contains("wrapped under master key version(s) 1"), "{stderr}");
    assert!(stderr.contains("Not creating a new key"), "{stderr}");
    assert!(!second.join("master.key").exists(), "a refused start created a master key");

    // One-shot commands: those that use the keyring refuse the same way; none creates a key.
    run_ok(&second, &["migrate"]);
    run_ok(&second, &["project", "list"]);
    for args in [
        &["provider", "list", "--project", pid.as_str()][..],
        &["keys", "list"],
        &["keys", "rotate"],
        &["keys", "rewrap"],
    ] {
        let err = run_refused(&second, args);
        assert!(err.contains("no master key"), "{args:?}: {err}");
    }
    assert!(!second.join("master.key").exists(), "a command created a master key");

    // Another data directory's key file (right version number, other key) is refused too, and
    // left as it was.
    let other = format!("1:{}\n", base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
    std::fs::write(second.join("master.key"), &other).unwrap();
    let (status, stderr) = start_expecting_refusal(&second, &[]);
    assert!(!status.success());
    assert!(stderr.contains("need master key version(s) 1; the keyring has version(s) 1"), "{stderr}");
    assert!(stderr.contains("different key than the one that wrapped them"), "{stderr}");
    assert!(!stderr.contains(other.trim()), "the key is not echoed");
    assert_eq!(std::fs::read_to_string(second.join("master.key")).unwrap(), other);
    let list = run_ok(&second, &["keys", "list"]);
    assert!(list.contains("does not fit the database"), "{list}");

    // With the first server's key it starts and reads the token.
    std::fs::copy(first.join("master.key"), second.join("master.key")).unwrap();
    let server = TestServer::start(&second);
    let api = Api { base_url: server.base_url.clone(), ..api };
    assert_eq!(api.get_token("kr", "google", true).await.body["refreshToken"], "kr-refresh");
    drop(server);
    drop(running);
    drop(dir);
}

#[tokio::test]
async fn a_wrong_or_incomplete_master_key_refuses_to_start() {
    let dir = TestDir::new();
    let data = dir.path().join("data");
    let key_a = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
    let key_b = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
    let server = TestServer::start_with_env(&data, &[("IDVAULT_MASTER_KEY", &key_a)]);
    assert!(!data.join("master.key").exists(), "an env master key must not create a key file");
    let api = Api::new(
        &server.base_url,
        server.project_id.as_deref().unwrap(),
        server.management_key.as_deref().unwrap(),
    );
    api.create_user(json!({"loginId": "u"})).await;
    assert_eq!(api.put_token(google_token("u", "tok", "ref")).await.status, 200);
    assert!(server.stop().success());

    let (status, stderr) = start_expecting_refusal(&data, &[("IDVAULT_MASTER_KEY", &key_b)]);
    assert!(!status.success());
    assert!(stderr.contains("IDVAULT_MASTER_KEY, version(s) 1"), "{stderr}");
    assert!(stderr.contains("different key than the one that wrapped them"), "{stderr}");
    assert!(!stderr.contains(&key_b) && !stderr.contains(&key_a), "no key is echoed: {stderr}");

    // The right key under another version number: the database needs version 1.
    let renumbered = format!("2:{key_a}");
    let (status, stderr) = start_expecting_refusal(&data, &[("IDVAULT_MASTER_KEY", &renumbered)]);
    assert!(!status.success());
    assert!(
        stderr.contains("need master key version(s) 1; the keyring has version(s) 2; missing: 1"),
        "{stderr}"
    );
    assert!(!data.join("master.key").exists());

    // A malformed key is refused before anything else, without being echoed.
    let (status, stderr) = start_expecting_refusal(&data, &[("IDVAULT_MASTER_KEY", "too-short")]);
    assert!(!status.success());
    assert!(stderr.contains("IDVAULT_MASTER_KEY"), "{stderr}");
    assert!(!stderr.contains("too-short"), "the bad key is not echoed");

    // The right keyring, with a newer version added, starts and reads the token.
    let server =
        TestServer::start_with_env(&data, &[("IDVAULT_MASTER_KEY", &format!("1:{key_a},2:{key_b}"))]);
    let api = Api { base_url: server.base_url.clone(), ..api };
    assert_eq!(api.get_token("u", "google", false).await.body["accessToken"], "tok");
    drop(server);
    drop(dir);
}
