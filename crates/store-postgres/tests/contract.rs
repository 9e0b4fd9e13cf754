//! The store contract (crates/store-suite) on PostgreSQL, then what only a database shared by
//! several processes has: refresh locks across replicas, revocation notifications, the schema
//! checks, the trigram index.
//!
//! Server: `IDVAULT_TEST_PG_ADMIN_URL` (default `postgres://postgres@127.0.0.1:5432/test`), used
//! only to create a fresh database `idv_test_<random>` per test and to drop it afterwards, so
//! tests run in parallel. When the server cannot be reached, each test prints "skipped:
//! PostgreSQL not reachable" and passes, unless `CI` is set, where it fails saying so.

// Test code may unwrap and panic: a failure is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use idvault_core::ids::{ProjectId, ProviderName, UserId};
use idvault_core::project::{issue_key, Project};
use idvault_core::store::{HealthCheck, ProjectStore, RefreshLock};
use idvault_store_postgres::{known_schema_version, migrate, PgOptions, PgStore, RevocationEvent};
use idvault_store_suite::TestStore;
use rand::Rng;
use tokio_postgres::NoTls;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn admin_url() -> String {
    std::env::var("IDVAULT_TEST_PG_ADMIN_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.into())
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
    let connect =
        tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(&admin_url(), NoTls)).await;
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
                        "PostgreSQL not reachable through IDVAULT_TEST_PG_ADMIN_URL (default {DEFAULT_URL}): {e}; \
                         the PostgreSQL store tests need a server in CI"
                    );
                }
                eprintln!("skipped: PostgreSQL not reachable ({e})");
                return None;
            }
        };
        let name = format!("idv_test_{:016x}", rand::thread_rng().gen::<u64>());
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        // A test database need not survive a crash: commits do not wait for the WAL flush, which
        // on a busy machine is most of a test's time. Visibility and atomicity are unchanged.
        admin.batch_execute(&format!("ALTER DATABASE {name} SET synchronous_commit = off")).await.unwrap();
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

async fn postgres() -> Option<TestStore> {
    let db = TestDb::create().await?;
    let store = PgStore::connect(&db.url, &opts()).await.unwrap();
    Some(TestStore::new(Arc::new(store), db))
}

idvault_store_suite::store_contract_tests!(postgres);

/// A migrated database with one project, and a store on it standing for one replica.
async fn replica_fixture() -> Option<(PgStore, ProjectId, TestDb)> {
    let db = TestDb::create().await?;
    let store = PgStore::connect(&db.url, &opts()).await.unwrap();
    let project = ProjectId::generate();
    store.create_project(&Project { id: project.clone(), name: "t".into(), created_ms: 1 }).await.unwrap();
    Some((store, project, db))
}

/// The versions of the migration files (`V<n>__<name>.sql`), ascending. Not `1..=known`: parallel
/// branches number their migrations ahead, so a branch may have a gap until they are merged.
fn migration_versions() -> Vec<i32> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut versions: Vec<i32> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix('V')?.split("__").next()?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions.last().copied(), Some(known_schema_version()));
    versions
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_schema_newer_than_it_knows_and_an_unmigrated_one_without_migrate() {
    let Some(db) = TestDb::create().await else { return };
    let no_migrate = PgOptions { migrate: false, ..opts() };
    let err = PgStore::connect(&db.url, &no_migrate).await.err().unwrap();
    assert!(err.to_string().contains("behind"), "{err}");
    assert_eq!(migrate(&db.url).await.unwrap(), migration_versions(), "every migration, in order");
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
async fn free_text_search_can_use_the_trigram_index() {
    let Some((_store, _project, db)) = replica_fixture().await else { return };
    let (client, connection) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
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
    let Some((store, project, db)) = replica_fixture().await else { return };
    let other_replica = PgStore::connect(&db.url, &opts()).await.unwrap();
    let (user_id, google, github) =
        (UserId::generate(), ProviderName::parse("google").unwrap(), ProviderName::parse("github").unwrap());
    let first = store.refresh_lock(&project, &user_id, &google).await.unwrap();

    let waiter = {
        let (store, project, user_id, google) =
            (other_replica.clone(), project.clone(), user_id.clone(), google.clone());
        tokio::spawn(async move { store.refresh_lock(&project, &user_id, &google).await.unwrap() })
    };
    // Half a second is ample for a lock that does not exclude to be taken.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "the second replica waits for the first");
    // Other keys are not blocked.
    let unrelated = tokio::time::timeout(
        Duration::from_secs(10),
        other_replica.refresh_lock(&project, &user_id, &github),
    )
    .await
    .unwrap()
    .unwrap();
    drop(unrelated);

    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap();
    drop(second);
    // And the first replica can have it again.
    let again =
        tokio::time::timeout(Duration::from_secs(10), store.refresh_lock(&project, &user_id, &google))
            .await
            .unwrap()
            .unwrap();
    drop(again);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_lock_dies_with_its_session() {
    let Some((store, project, db)) = replica_fixture().await else { return };
    let other_replica = PgStore::connect(&db.url, &opts()).await.unwrap();
    let admin = admin_client().await.unwrap();
    let (user_id, google) = (UserId::generate(), ProviderName::parse("google").unwrap());
    let crashed = store.refresh_lock(&project, &user_id, &google).await.unwrap();
    let pid = advisory_lock_holder(&admin, &db.name).await.expect("the lock is held");

    // The holder's session ends (as when its process dies): the lock goes with it.
    let killed: bool = admin.query_one("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap().get(0);
    assert!(killed);
    let taken = tokio::time::timeout(
        Duration::from_secs(10),
        other_replica.refresh_lock(&project, &user_id, &google),
    )
    .await
    .expect("a dead session's lock is released")
    .unwrap();
    // Dropping the dead guard is harmless (its unlock fails; the connection is discarded).
    drop(crashed);
    drop(taken);
    let again =
        tokio::time::timeout(Duration::from_secs(10), store.refresh_lock(&project, &user_id, &google))
            .await
            .unwrap()
            .unwrap();
    drop(again);
}

/// The next event a listener reported; a listener that stays silent fails the test.
async fn next_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("no event within 10 s").unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_revoked_on_one_replica_is_announced_to_the_others() {
    let Some((store, project, db)) = replica_fixture().await else { return };
    let other_replica = PgStore::connect(&db.url, &opts()).await.unwrap();
    let issued = issue_key(&project, "k", 10, None);
    store.insert_key(&issued.record).await.unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let tx = Mutex::new(tx);
    let listener = other_replica.listen_key_revocations(move |event| {
        let text = match event {
            RevocationEvent::Listening => "listening".to_owned(),
            RevocationEvent::Revoked(key_id) => format!("revoked {key_id}"),
            RevocationEvent::Lost => "lost".to_owned(),
        };
        let _ = tx.lock().unwrap().send(text);
    });
    assert_eq!(next_event(&mut rx).await, "listening");
    assert!(store.revoke_key(&project, &issued.record.key_id, 20).await.unwrap());
    assert_eq!(next_event(&mut rx).await, format!("revoked {}", issued.record.key_id));
    // A revocation through the CLI's own connection is announced as well.
    let second = issue_key(&project, "k2", 10, None);
    store.insert_key(&second.record).await.unwrap();
    let cli = PgStore::connect(&db.url, &opts()).await.unwrap();
    assert!(cli.revoke_key(&project, &second.record.key_id, 30).await.unwrap());
    assert_eq!(next_event(&mut rx).await, format!("revoked {}", second.record.key_id));
    listener.abort();
}
