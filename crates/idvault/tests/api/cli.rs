//! The project and key commands, on the data directory of a running server.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;

/// Runs `idvault --data-dir <dir> <args>` and answers its stdout; panics on failure.
/// `idvault --data-dir <dir> [--database-url <its test database>] <args>`.
pub fn command(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(data_dir);
    if let Some(url) = database_url_for(data_dir) {
        cmd.args(["--database-url", &url]);
    }
    cmd.args(args);
    cmd
}

pub fn run_ok(data_dir: &Path, args: &[&str]) -> String {
    let out = command(data_dir, args).output().unwrap();
    assert!(out.status.success(), "idvault {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub fn run_err(data_dir: &Path, args: &[&str]) -> String {
    let out = command(data_dir, args).output().unwrap();
    assert!(!out.status.success(), "idvault {args:?} should have failed");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn project_and_key_lifecycle_without_a_server() {
    let dir = TestDir::new();
    let data = dir.path().join("d");
    let pid = run_ok(&data, &["project", "create", "--name", "Acme"]).trim().to_owned();
    assert!(pid.starts_with('P') && pid.len() == 28, "{pid}");
    let list = run_ok(&data, &["project", "list"]);
    assert!(list.contains(&pid) && list.contains("Acme"), "{list}");

    let key = run_ok(&data, &["key", "create", "--project", &pid, "--name", "ci", "--expires-in", "30d"])
        .trim()
        .to_owned();
    assert!(key.starts_with("idv_"), "{key}");
    let key_id = key.strip_prefix("idv_").unwrap().split('.').next().unwrap().to_owned();
    let keys = run_ok(&data, &["key", "list", "--project", &pid]);
    assert!(keys.contains(&key_id) && keys.contains("active") && keys.contains("ci"), "{keys}");
    let secret = key.split('.').nth(1).unwrap();
    assert!(!keys.contains(secret), "key list must never show the key");

    run_ok(&data, &["key", "revoke", "--project", &pid, &key_id]);
    assert!(run_ok(&data, &["key", "list", "--project", &pid]).contains("revoked"));
    let err = run_err(&data, &["key", "revoke", "--project", &pid, "nosuchkey"]);
    assert!(err.contains("not found"), "{err}");
    let err = run_err(&data, &["key", "create", "--project", "Pmissing"]);
    assert!(err.contains("not found"), "{err}");
    let err = run_err(&data, &["project", "create", "--name", ""]);
    assert!(err.contains("name"), "{err}");

    // The database keeps only a hash of the key.
    let db = storage_dump(&data);
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));
    assert!(run_ok(&data, &["migrate"]).contains("up to date"));
}
