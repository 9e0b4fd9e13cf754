//! The store contract (crates/store-suite) on SQLite: every case on a fresh database file,
//! migrated as in production. Then what only SQLite has: its schema-version checks.

// Test code may unwrap and panic: a failure is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use idvault_store_sqlite::{SqliteOptions, SqliteStore};
use idvault_store_suite::TestStore;

async fn sqlite() -> Option<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("contract.db"), &SqliteOptions::default()).unwrap();
    Some(TestStore::new(Arc::new(store), dir))
}

idvault_store_suite::store_contract_tests!(sqlite);

#[test]
fn refuses_a_schema_newer_than_it_knows_and_an_unmigrated_one_without_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let no_migrate = SqliteOptions { migrate: false, ..SqliteOptions::default() };
    assert!(SqliteStore::open(&path, &no_migrate).is_err(), "schema behind and migrate off");
    drop(SqliteStore::open(&path, &SqliteOptions::default()).unwrap());
    drop(SqliteStore::open(&path, &no_migrate).unwrap());
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
