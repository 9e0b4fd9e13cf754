//! Backup and restore. SQLite: `idvault backup` snapshots the database while the server runs and
//! writes continue, and `idvault restore` into an empty data directory gives a server with every
//! write acknowledged before the snapshot began. PostgreSQL: `idvault backup` points to pg_dump,
//! and a pg_dump / pg_restore round trip into a fresh database serves the same data.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::audit::search_until;
use crate::cli::{command, run_err, run_ok};
use crate::helpers::*;

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Bytes no JSON escaping or trimming would leave alone by accident.
const TOKEN: &str = "ya29.backup-\u{e9}\u{1F511}-token/+=";

/// A user acknowledged by the server, and whether its request was sent after the backup had
/// finished.
type Acked = Arc<Mutex<Vec<(String, bool)>>>;

/// Creates users `w0`, `w1`, ... one after another until `stop`, recording each acknowledged one.
fn keep_writing(
    api: Api,
    acked: Acked,
    backup_done: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let login = format!("w{i}");
            let sent_after_backup = backup_done.load(Ordering::SeqCst);
            let r = api.post("/v1/mgmt/user/create", json!({"loginId": login})).await;
            assert_eq!(r.status, 200, "{}", r.body);
            acked.lock().unwrap().push((login, sent_after_backup));
            i += 1;
        }
    })
}

async fn wait_for_acked(acked: &Acked, at_least: usize) {
    while acked.lock().unwrap().len() < at_least {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restores_every_write_acknowledged_before_it() {
    if postgres_mode() {
        println!("skipped here: SQLite only (the PostgreSQL pass runs the pg_dump round trip)");
        return;
    }
    let app = TestApp::spawn();
    app.api.create_user(json!({"loginId": "holder"})).await;
    assert_eq!(app.api.put_token(google_token("holder", TOKEN, "refresh-\u{e9}")).await.status, 200);
    // The audit trail lives in a file of its own beside the database: the backup takes it too.
    let holder_created = json!({"actions": ["UserCreated"], "externalIds": ["holder"]});
    let found = search_until(&app.api, holder_created.clone(), |a| !a.is_empty()).await;
    assert_eq!(found.len(), 1, "the holder's creation is recorded before the backup");

    let acked: Acked = Arc::default();
    let (backup_done, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let client =
        Api { base_url: app.api.base_url.clone(), http: reqwest::Client::new(), auth: app.api.auth.clone() };
    let writer = keep_writing(client, acked.clone(), backup_done.clone(), stop.clone());
    wait_for_acked(&acked, 200).await;

    // Everything acknowledged up to here must be in the snapshot.
    let before: Vec<String> = acked.lock().unwrap().iter().map(|(l, _)| l.clone()).collect();
    let data = app.server.data_dir.clone();
    let snapshot = app.dir.path().join("snapshot.db");
    let started = std::time::Instant::now();
    let out = {
        let (data, snapshot) = (data.clone(), snapshot.clone());
        tokio::task::spawn_blocking(move || run_ok(&data, &["backup", "--out", snapshot.to_str().unwrap()]))
            .await
            .unwrap()
    };
    let during = acked.lock().unwrap().len() - before.len();
    backup_done.store(true, Ordering::SeqCst);
    let took = started.elapsed();
    println!("{out}\n`idvault backup` took {took:?} (process start to exit); writes acknowledged meanwhile: {during}");
    assert!(out.contains("wrote") && out.contains("master key"), "{out}");
    // Writes go on, and some are sent only after the backup finished.
    let after_backup = acked.lock().unwrap().len();
    wait_for_acked(&acked, after_backup + 20).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let sent_after: Vec<String> =
        acked.lock().unwrap().iter().filter(|(_, after)| *after).map(|(l, _)| l.clone()).collect();
    assert!(!sent_after.is_empty());

    #[cfg(unix)]
    assert_eq!(mode(&snapshot), 0o600, "the snapshot holds sealed secrets");
    let audit_snapshot = app.dir.path().join("snapshot-audit.db");
    assert!(out.contains("audit trail") && out.contains("snapshot-audit.db"), "{out}");
    #[cfg(unix)]
    assert_eq!(mode(&audit_snapshot), 0o600, "the audit snapshot holds personal data");
    assert!(run_err(&data, &["backup", "--out", snapshot.to_str().unwrap()]).contains("not overwriting"));

    // Restore into an empty data directory: refused until the master key is there.
    let restored = app.dir.path().join("restored");
    let from = snapshot.to_str().unwrap();
    let err = run_err(&restored, &["restore", "--from", from]);
    assert!(err.contains("no master key") && err.contains("master.key"), "{err}");
    assert!(!restored.join("idvault.db").exists(), "a refused restore wrote nothing");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(data.join("master.key"), restored.join("master.key")).unwrap();
    assert!(run_ok(&restored, &["restore", "--from", from]).contains("restored"));
    assert!(run_err(&restored, &["restore", "--from", from]).contains("exists"), "never over a database");
    #[cfg(unix)]
    assert_eq!(mode(&restored.join("idvault.db")), 0o600);
    #[cfg(unix)]
    assert_eq!(mode(&restored.join("idvault-audit.db")), 0o600);

    let server = TestServer::start(&restored);
    let api =
        Api { base_url: server.base_url.clone(), http: reqwest::Client::new(), auth: app.api.auth.clone() };
    for login in &before {
        let r = api.get(&format!("/v1/mgmt/user?loginId={login}")).await;
        assert_eq!(r.status, 200, "{login} was acknowledged before the backup: {}", r.body);
    }
    for login in &sent_after {
        let r = api.get(&format!("/v1/mgmt/user?loginId={login}")).await;
        r.assert_error(400, "E112102");
    }
    let token = api.get_token("holder", "google", true).await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert_eq!(token.body["accessToken"].as_str().unwrap().as_bytes(), TOKEN.as_bytes());
    assert_eq!(token.body["refreshToken"], "refresh-\u{e9}");
    let found = search_until(&api, holder_created, |a| !a.is_empty()).await;
    assert_eq!(found.len(), 1, "the audit trail came back with the database");
    println!(
        "restored: {} users acknowledged before the backup all read back; {} sent after it are absent",
        before.len(),
        sent_after.len()
    );
    drop(server);
}

#[test]
fn restore_refuses_a_keyring_that_does_not_open_the_snapshot_and_a_file_that_is_not_one() {
    if postgres_mode() {
        println!("skipped here: SQLite only");
        return;
    }
    let dir = TestDir::new();
    let data = dir.path().join("data");
    let pid = run_ok(&data, &["project", "create", "--name", "p"]).trim().to_owned();
    // Configuring a provider seals its client secret: the project gets a data key.
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "client-secret").unwrap();
    run_ok(
        &data,
        &[
            "provider",
            "set",
            "--project",
            &pid,
            "--name",
            "google",
            "--preset",
            "google",
            "--client-id",
            "c",
            "--client-secret-file",
            secret.to_str().unwrap(),
        ],
    );
    let snapshot = dir.path().join("snap.db");
    run_ok(&data, &["backup", "--out", snapshot.to_str().unwrap()]);

    let target = dir.path().join("target");
    let wrong = run_ok(dir.path(), &["keys", "generate"]);
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("master.key"), wrong).unwrap();
    let err = run_err(&target, &["restore", "--from", snapshot.to_str().unwrap()]);
    assert!(err.contains("different key than the one that wrapped them"), "{err}");
    assert!(!target.join("idvault.db").exists());

    let not_a_db = dir.path().join("notes.txt");
    std::fs::write(&not_a_db, "hello").unwrap();
    std::fs::copy(data.join("master.key"), target.join("master.key")).unwrap();
    let out = command(&target, &["restore", "--from", not_a_db.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(!target.join("idvault.db").exists());
    run_ok(&target, &["restore", "--from", snapshot.to_str().unwrap()]);
    assert!(run_ok(&target, &["provider", "list", "--project", &pid]).contains("google"));
}

fn pg_dump_available() -> bool {
    let found =
        std::process::Command::new("pg_dump").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("CI").is_some() {
        panic!("pg_dump is required in CI");
    }
    found
}

#[tokio::test]
async fn postgres_backup_is_pg_dump_and_a_restored_dump_serves_the_same_data() {
    if !postgres_mode() {
        println!("skipped here: runs in the PostgreSQL pass");
        return;
    }
    let app = TestApp::spawn();
    let data = app.server.data_dir.clone();
    for i in 0..10 {
        app.api.create_user(json!({"loginId": format!("pg{i}@example.com")})).await;
    }
    assert_eq!(app.api.put_token(google_token("pg3@example.com", TOKEN, "pg-refresh")).await.status, 200);
    let err = run_err(&data, &["backup", "--out", app.dir.path().join("x.db").to_str().unwrap()]);
    assert!(err.contains("pg_dump") && err.contains("pg_restore"), "{err}");
    assert!(!app.dir.path().join("x.db").exists());
    if !pg_dump_available() {
        println!("skipped: pg_dump is not installed");
        return;
    }

    let url = database_url_for(&data).unwrap();
    let dump = app.dir.path().join("idvault.pgdump");
    let out = std::process::Command::new("pg_dump")
        .args(["--format=custom", "--file", dump.to_str().unwrap(), &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));

    // A fresh database, recorded in the new data directory so that the test directory drops it.
    let target = app.dir.path().join("restored");
    std::fs::create_dir_all(&target).unwrap();
    let restored_url = create_test_database();
    std::fs::write(target.join(".test-database-url"), &restored_url).unwrap();
    let out = std::process::Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname", &restored_url, dump.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_restore: {}", String::from_utf8_lossy(&out.stderr));

    std::fs::copy(data.join("master.key"), target.join("master.key")).unwrap();
    let server = TestServer::start(&target);
    assert!(server.management_key.is_none(), "the restored database has its project: {}", server.ready);
    let api =
        Api { base_url: server.base_url.clone(), http: reqwest::Client::new(), auth: app.api.auth.clone() };
    for i in 0..10 {
        let r = api.get(&format!("/v1/mgmt/user?loginId=pg{i}%40example.com")).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let token = api.get_token("pg3@example.com", "google", true).await;
    assert_eq!(token.body["accessToken"].as_str().unwrap().as_bytes(), TOKEN.as_bytes(), "{}", token.body);
    assert_eq!(token.body["refreshToken"], "pg-refresh");
    drop(server);
}
